"""The notebook machinery: hygiene of the committed notebooks, nbval catching a change, `seti-nb run`."""

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

from seti_nb.runner import find_notebooks, run_notebooks

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
FULL = yaml.safe_load((ROOT / "notebooks/params/full.yaml").read_text())


def test_notebooks_are_numbered_in_order():
    assert NOTEBOOKS, "no committed notebooks"
    for i, path in enumerate(NOTEBOOKS, start=1):
        assert re.fullmatch(rf"{i:02d}_[a-z0-9]+(_[a-z0-9]+)*\.ipynb", path.name), path.name
    assert find_notebooks() == NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_hygiene(path):
    nb = nbformat.read(path, as_version=4)
    assert nb.metadata.kernelspec.name == "python3"
    assert "papermill" not in nb.metadata
    code = [c for c in nb.cells if c.cell_type == "code"]
    tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and tagged[0] is code[0], "one parameters cell, the first code cell"
    for statement in ast.parse(tagged[0].source).body:  # literals only: papermill cannot update derived values
        assert isinstance(statement, ast.Assign), ast.unparse(statement)
        ast.literal_eval(statement.value)
    names = {t.id for s in ast.parse(tagged[0].source).body for t in s.targets}
    assert {"data_dir", "seed", "out_dir"} <= names
    import papermill as pm

    assert set(pm.inspect_notebook(str(path))) == names, "papermill parses every parameter (no '=' in comments)"
    assert not any("injected-parameters" in c.metadata.get("tags", []) for c in code)
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1)), "executed top to bottom, once"
    for cell in nb.cells:
        assert "papermill" not in cell.metadata and "execution" not in cell.metadata, "execution-time noise"
    checked = [c for c in code if "# NBVAL_CHECK_OUTPUT" in c.source]
    assert checked and all(c.outputs for c in checked), "checked cells carry their stored outputs"
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
    learned, numbers, conclusion = nb.cells[-3:]  # the numbers in one cell, the conclusion from them in the last
    assert "What we learned" in learned.source and "wb.headline(" in numbers.source
    assert "Markdown(" in conclusion.source and "wb.headline(" not in conclusion.source
    longest = max(code, key=lambda c: len([line for line in c.source.splitlines() if line.strip()]))
    assert len([line for line in longest.source.splitlines() if line.strip()]) <= 15, longest.source[:200]


LOCAL_PATH = re.compile(r"/(root|home|Users|tmp|work)/|site-packages|\.venv")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_stored_outputs_are_what_a_reader_should_see(path):
    """Static figures and text only: no saved widget state, no widget or progress-bar outputs (shown as
    `VBox(children=...` or `0%| 0/600` before running), no warnings, no paths of the machine that ran it."""
    nb = nbformat.read(path, as_version=4)
    assert "widgets" not in nb.metadata, "saved widget state (JupyterLab does not use it)"
    for cell in (c for c in nb.cells if c.cell_type == "code"):
        for output in cell.outputs:
            assert "application/vnd.jupyter.widget-view+json" not in output.get("data", {}), cell.source[:80]
            text = output.get("text", "") + str(output.get("data", {}).get("text/plain", ""))
            assert output.get("name") != "stderr" and "Warning" not in text, (cell.source[:80], text[:300])
            assert not LOCAL_PATH.search(text), (cell.source[:80], text[:300])


def test_full_profile_only_sets_declared_parameters():
    import papermill as pm

    declared = set().union(*(pm.inspect_notebook(str(p)) for p in NOTEBOOKS))
    assert set(FULL) <= declared


def _tiny_notebook(path, body, checked_output=None):
    cells = [nbformat.v4.new_code_cell('seed = 0\nout_dir = ""', metadata={"tags": ["parameters"]}),
             nbformat.v4.new_code_cell(body)]
    if checked_output is not None:
        cells[0].execution_count, cells[1].execution_count = 1, 2
        cells[1].outputs = [nbformat.v4.new_output("stream", name="stdout", text=checked_output)]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata.kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


@pytest.mark.parametrize("stored, passes", [("4\n", True), ("5\n", False)])
def test_nbval_fails_when_a_checked_output_changes(tmp_path, stored, passes):
    nb = _tiny_notebook(tmp_path / "check.ipynb", "# NBVAL_CHECK_OUTPUT\nprint(2 + 2)", stored)
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=",
                             "--nbval-lax", "--nbval-sanitize-with", ROOT / "notebooks/nbval_sanitize.cfg", nb],
                            capture_output=True, text=True, cwd=tmp_path)
    assert (result.returncode == 0) == passes, result.stdout[-2000:]


def test_run_writes_a_new_folder_and_a_summary(tmp_path, capfd):
    ok = _tiny_notebook(tmp_path / "01_ok.ipynb",
                        "from pathlib import Path\nimport json\nPath(out_dir).mkdir(parents=True, exist_ok=True)\n"
                        "(Path(out_dir) / 'headline.json').write_text(json.dumps({'answer': 42}))")
    bad = _tiny_notebook(tmp_path / "02_bad.ipynb", "raise ValueError('broken on purpose')")
    never = _tiny_notebook(tmp_path / "03_never.ipynb", "print('not reached')")
    run, success = run_notebooks([ok, bad, never], out=str(tmp_path / "runs"))
    assert not success
    summary = json.loads((run / "summary.json").read_text())
    rows = summary["notebooks"]
    assert [r["status"] for r in rows] == ["ok", "failed"], "stops at the first failure"
    assert rows[0]["headline"] == {"answer": 42}
    assert "ValueError: broken on purpose" in rows[1]["error"] and rows[1]["error"].startswith("cell ")
    assert (run / "01_ok.ipynb").exists() and (run / "summary.md").exists()
    again, success = run_notebooks([ok], out=str(tmp_path / "runs"))
    assert success and again != run and (run / "summary.json").exists(), "a new folder, the old one kept"
    assert "without encryption" not in capfd.readouterr().err, "kernels talk over IPC, not TCP"


def test_full_profile_smoke_run(tmp_path):
    """Every notebook with the full profile's parameters, on a tiny data set, on the CPU, one epoch: a GPU run
    cannot then fail on a typo or a size that only the full profile uses."""
    from seti_nb.config import SynthConfig
    from seti_nb.synth import synthesize

    tiny = synthesize(tmp_path / "tiny", SynthConfig(n=400, seed=11), progress=False)
    run, ok = run_notebooks(NOTEBOOKS, "full", data=str(tiny), out=str(tmp_path / "runs"), device="cpu",
                            parameters={"epochs": 1, "ablation_epochs": 1, "n_turbo": 30,
                                        "n_turbo_pairs": 5,  # turboSETI: 0.45 s a cadence
                                        # 04's comparison at full resolution: a GPU's batch of 128 needs more
                                        # memory than this machine has; the full profile's EfficientNet input
                                        # (layout, pooling, mirror) resized to 128 x 128, not 512 x 512: 5 minutes
                                        # less on a CPU (the size changes the work, not the code path)
                                        "batch_size": 16, "lite_budget": [60, 1],
                                        "lite_input": dict(FULL["lite_input"], size=[128, 128]),
                                        "channels": 2**17,  # 07's observation: a bigger band than the quick one
                                        "like_n": 400, "like_epochs": 1})  # 07's model at the files' geometry
    summary = json.loads((run / "summary.json").read_text())
    assert ok, [(r["notebook"], r["error"]) for r in summary["notebooks"] if r["status"] != "ok"]
