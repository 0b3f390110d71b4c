"""`seti-nb scan` beside turboSETI on the same six observation files: recall of the injected needles, false
level-3 candidates, MHz of band searched per second on one core, and peak memory, each tool in a process of its own.

    .venv/bin/python benchmarks/observation_search.py [FOLDER] [--channels 1048576] [--seed 1]

FOLDER holds the six .h5 files and truth.csv of `seti-nb synth-observation`; without it, one is made in a temporary
folder (one coarse channel, 20 needles of SNR 10-60, 20 interference paths through all six scans, 10 stationary
lines). turboSETI: `FindDoppler(max_drift=4, snr=10)` on each file, then `find_event_pipeline` at level 3.
"""

import argparse
import glob
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from seti_nb.observation import read_scan

SETI_NB = Path(sys.executable).with_name("seti-nb")
TURBOSETI = """
import glob, logging, os, sys, warnings
warnings.simplefilter("ignore")
from turbo_seti.find_doppler.find_doppler import FindDoppler
from turbo_seti.find_event.find_event_pipeline import find_event_pipeline
folder, work = sys.argv[1:]
files = sorted(glob.glob(os.path.join(folder, "[0-5]_[ABCD].h5")))
for f in files:
    FindDoppler(f, max_drift=4, snr=10, out_dir=work, n_coarse_chan=1, log_level_int=logging.WARNING).search()
dats = [os.path.join(work, os.path.basename(f).replace(".h5", ".dat")) for f in files]
for name, lines in (("dat.lst", dats), ("h5.lst", files)):
    open(os.path.join(work, name), "w").write("\\n".join(lines) + "\\n")
find_event_pipeline(os.path.join(work, "dat.lst"), os.path.join(work, "h5.lst"), filter_threshold=3,
                    number_in_cadence=6, saving=True, csv_name=os.path.join(work, "events.csv"))
"""


def timed(command: list[str]) -> tuple[float, float]:
    """Wall seconds and peak resident memory (GB) of one child process."""
    start = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        sys.exit(f"{command[:3]} failed:\n{child.stderr.read()[-2000:]}")
    return time.perf_counter() - start, usage.ru_maxrss / 1e6


def found(needles: pd.DataFrame, events: pd.DataFrame) -> np.ndarray:
    """Which needles an event lies on: within 0.3 Hz/s of the needle's drift and 50 Hz (+ 1 % of the distance
    drifted) of where the needle's path is at the start of the event's scan."""
    hit = np.zeros(len(needles), bool)
    for i, n in enumerate(needles.itertuples()):
        at = n.frequency_mhz + n.drift_hz_s * events["start_s"] / 1e6
        slack = 50e-6 + 0.01 * abs(n.drift_hz_s) * events["start_s"] / 1e6
        hit[i] = ((np.abs(events["frequency_mhz"] - at) <= slack)
                  & (np.abs(events["drift_hz_s"] - n.drift_hz_s) <= 0.3)).any()
    return hit


def false_events(needles: pd.DataFrame, events: pd.DataFrame) -> int:
    """Events that lie on no needle."""
    return sum(not found(needles, events.iloc[[i]]).any() for i in range(len(events)))


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
        low, high = read_scan(files[0]).geometry.band_mhz
        band_mhz = high - low
        ours_s, ours_gb = timed([str(SETI_NB), "scan", *files, "--out", str(work / "scan.csv"), "--workers", "1"])
        (work / "turboseti").mkdir()
        theirs_s, theirs_gb = timed([sys.executable, "-c", TURBOSETI, str(folder), str(work / "turboseti")])
        scan = pd.read_csv(work / "scan.csv")
        scan = scan[scan.level == 3].assign(start_s=0.0)  # the scan reports each path at the cadence's start
        events = _turboseti_events(work / "turboseti" / "events.csv", read_scan(files[0]).tstart_mjd)
    rows = []
    for name, table, seconds, gb in (("seti-nb scan", scan, ours_s, ours_gb),
                                     ("turboSETI level 3", events, theirs_s, theirs_gb)):
        hit = found(needles, table)
        bright = needles.snr >= 25
        rows.append({"search": name, "needles found": f"{hit.sum()}/{len(needles)}",
                     "SNR >= 25": f"{hit[bright].sum()}/{bright.sum()}",
                     "SNR 10-25": f"{hit[~bright].sum()}/{(~bright).sum()}",
                     "false level-3 events": false_events(needles, table), "seconds": round(seconds, 1),
                     "MHz/s a core": round(band_mhz / seconds, 3), "peak GB": round(gb, 2)})
    print(f"{folder.name if args.folder else 'a new synthetic observation'}: {band_mhz:.3f} MHz, "
          f"{len(needles)} needles")
    print(pd.DataFrame(rows).to_string(index=False))


def _turboseti_events(path: Path, mjd0: float) -> pd.DataFrame:
    """turboSETI's level-3 events (one row an ON hit), with the start of the hit's scan from the cadence's."""
    if not path.is_file():
        return pd.DataFrame(columns=["frequency_mhz", "drift_hz_s", "start_s"])
    events = pd.read_csv(path)
    return pd.DataFrame({"frequency_mhz": events["Freq"], "drift_hz_s": events["DriftRate"],
                         "start_s": (events["MJD"] - mjd0) * 86400.0})


if __name__ == "__main__":
    main()
