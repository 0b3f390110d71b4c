"""Re-execute the committed notebooks with the quick profile, in place, so nbval has current outputs.

    .venv/bin/python tools/refresh_notebooks.py [NOTEBOOK ...]     (number, stem or path; default: all)

Run it after a change to seti_nb/ that alters what a notebook prints, then review the diff and commit.
"""

import sys

from seti_nb.runner import find_notebooks, refresh_committed

for notebook in find_notebooks(sys.argv[1:]):
    print(f"executing {notebook.name} ...", flush=True)
    refresh_committed(notebook)
