"""Speed of the classical search, beside its brute-force reference, in the same run, on one core.

    .venv/bin/python benchmarks/dedoppler_speed.py [--data DIR] [--n 100]

Prints cadences/s of `Search.score` (preprocessing, Taylor-tree de-Doppler of the six scans for drifts up to
+-4 Hz/s, veto, the three level scores), of the same transform done by brute-force path sums, and of turboSETI
itself (HDF5 files, FindDoppler, find_event_pipeline at three levels), each on one core; then the search as the
notebooks run it (`dedoppler.score_cadences`, files read, one worker process per core).
"""

import argparse
import time

import numpy as np
import torch

from seti_nb.data import cadence_path, load_cadence, read_labels
from seti_nb.dedoppler import Search, brute_force, score_cadences
from seti_nb.runtime import workers
from seti_nb.turboseti import turboseti_scores
from seti_nb.workbook import ensure_data


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default="")
    parser.add_argument("--n", type=int, default=100)
    args = parser.parse_args()
    torch.set_num_threads(1)
    root = ensure_data(args.data)
    cadences = [load_cadence(cadence_path(root, i)) for i in read_labels(root).id[: args.n]]
    search = Search()
    print(f"{search.rows} rows x {search.preprocess.shape()[1]} channels per scan, "
          f"{len(search.drift_rates())} drift rates up to +-{search.max_drift_hz_s} Hz/s")
    start = time.perf_counter()
    search.score(cadences[0])  # the tree's compiled level: compiled once, then read from numba's cache
    print(f"first call (compiling or loading the tree's kernel): {time.perf_counter() - start:.2f} s")
    start = time.perf_counter()
    for cadence in cadences:
        search.score(cadence)
    tree_rate = len(cadences) / (time.perf_counter() - start)
    few = cadences[:3]
    start = time.perf_counter()
    for cadence in few:
        for scan in search.preprocess(cadence)[:, : search.rows]:
            for s in range(search.segments):  # the same drifts, path by path
                sheared = np.stack([np.roll(row, -s * r) for r, row in enumerate(scan)])
                for d in range(search.rows):
                    brute_force(sheared, d)
    brute_rate = len(few) / (time.perf_counter() - start) / 2  # both drift signs
    start = time.perf_counter()
    for cadence in cadences[:10]:
        turboseti_scores(cadence)
    turbo_rate = len(cadences[:10]) / (time.perf_counter() - start)
    print(f"one core: de-Doppler score {tree_rate:.1f} cadences/s | brute-force transform alone {brute_rate:.2f}"
          f" cadences/s | turboSETI {turbo_rate:.1f} cadences/s")
    ids = read_labels(root).id[: args.n * 4].tolist()
    start = time.perf_counter()
    score_cadences(root, ids, search=search, cache=False, progress=False)
    print(f"score_cadences, {workers()} processes, files read: {len(ids) / (time.perf_counter() - start):.1f} "
          "cadences/s")


if __name__ == "__main__":
    main()
