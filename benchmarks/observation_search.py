"""`seti-nb scan` beside turboSETI on the same six observation files: recall of the injected needles, false
level-3 candidates, MHz of band searched per second on one core, and peak memory, each tool in a process of its own.

    .venv/bin/python benchmarks/observation_search.py [FOLDER] [--channels 1048576] [--seed 1]

FOLDER holds the six .h5 files and truth.csv of `seti-nb synth-observation`; without it, one is made in a temporary
folder (one coarse channel, 20 needles of SNR 10-60, 20 interference paths through all six scans, 10 stationary
lines, 4 broadband bursts). turboSETI: `FindDoppler(max_drift=4, snr=10)` on each file, then `find_event_pipeline`
at level 3.
"""

import argparse
import glob
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from seti_nb.observation import read_scan
from seti_nb.scan import matches

SETI_NB = Path(sys.executable).with_name("seti-nb")
TURBOSETI = ("import sys, pandas; from seti_nb.scan import turboseti_candidates; "
             "turboseti_candidates(sys.argv[1:7], sys.argv[7]).to_csv(sys.argv[8], index=False)")


def timed(command: list[str]) -> tuple[float, float]:
    """Wall seconds and peak resident memory (GB) of one child process."""
    with tempfile.TemporaryFile("w+") as log:
        start = time.perf_counter()
        child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log, text=True)
        _, status, usage = os.wait4(child.pid, 0)
        if os.waitstatus_to_exitcode(status):
            log.seek(0)
            sys.exit(f"{command[:3]} failed:\n{log.read()[-2000:]}")
    return time.perf_counter() - start, usage.ru_maxrss / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", nargs="?", type=Path)
    parser.add_argument("--channels", type=int, default=2**20)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="observation-search-") as work:
        work = Path(work)
        folder = args.folder
        if folder is None:
            folder = work / "observation"
            subprocess.run([str(SETI_NB), "synth-observation", str(folder), "--channels", str(args.channels),
                            "--seed", str(args.seed)], check=True, capture_output=True)
        files = sorted(glob.glob(str(folder / "[0-5]_[ABCD].h5")))
        truth = pd.read_csv(folder / "truth.csv")
        needles = truth[truth.kind == "needle"].reset_index(drop=True)
        grid = read_scan(files[0]).grid
        (low, high), row_seconds = grid.band_mhz, grid.row_seconds
        band_mhz = high - low
        ours_s, ours_gb = timed([str(SETI_NB), "scan", *files, "--out", str(work / "scan.csv"), "--workers", "1"])
        (work / "turboseti").mkdir()
        theirs_s, theirs_gb = timed([sys.executable, "-c", TURBOSETI, *files, str(work / "turboseti"),
                                     str(work / "turboseti.csv")])
        scan = pd.read_csv(work / "scan.csv")
        scan = scan[scan.level == 3]
        events = pd.read_csv(work / "turboseti.csv")
    rows = []
    for name, table, seconds, gb in (("seti-nb scan", scan, ours_s, ours_gb),
                                     ("turboSETI level 3", events, theirs_s, theirs_gb)):
        on = matches(needles, table, row_seconds)
        hit = on.any(axis=1)
        bright = needles.snr >= 25
        rows.append({"search": name, "needles found": f"{hit.sum()}/{len(needles)}",
                     "SNR >= 25": f"{hit[bright].sum()}/{bright.sum()}",
                     "SNR 10-25": f"{hit[~bright].sum()}/{(~bright).sum()}",
                     "false level-3 events": int((~on.any(axis=0)).sum()), "seconds": round(seconds, 1),
                     "MHz/s a core": round(band_mhz / seconds, 3), "peak GB": round(gb, 2)})
    print(f"{folder.name if args.folder else 'a new synthetic observation'}: {band_mhz:.3f} MHz, "
          f"{len(needles)} needles")
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
