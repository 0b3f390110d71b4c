"""Start-up of the command line: wall seconds of `seti-nb --help` and of an argument error, median of five runs.

    .venv/bin/python benchmarks/cli_startup.py

The command imports only light settings at start; each command imports torch, the search or papermill when it
runs (`seti_nb/cli.py`).
"""

import statistics
import subprocess
import sys
import time
from pathlib import Path

SETI_NB = Path(sys.executable).with_name("seti-nb")


def seconds(*args: str) -> float:
    times = []
    for _ in range(5):
        start = time.perf_counter()
        subprocess.run([str(SETI_NB), *args], capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


if __name__ == "__main__":
    print(f"seti-nb --help: {seconds('--help'):.2f} s (median of 5)")
    print(f"seti-nb train --epochs 0 (an argument error): {seconds('train', '--epochs', '0'):.2f} s")
    print(f"seti-nb dedoppler --threshold nan (refused by the search's settings): "
          f"{seconds('dedoppler', '--data', '.', '--out', 'x.csv', '--threshold', 'nan'):.2f} s")
