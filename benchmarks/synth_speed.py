"""Synthesis throughput: cadences/s for `seti-nb synth`, and the minutes a Kaggle-size set would take.

    python benchmarks/synth_speed.py [--n 3000] [--workers 2]
"""

import argparse
import tempfile
import time

from seti_nb.config import SynthConfig
from seti_nb.synth import synthesize


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        config = SynthConfig(n=args.n, seed=0, test_fraction=0.0)
        start = time.perf_counter()
        synthesize(f"{tmp}/data", config, workers=args.workers, progress=False)
        seconds = time.perf_counter() - start
    rate = args.n / seconds
    print(f"{args.n} cadences in {seconds:.1f} s: {rate:.1f} cadences/s "
          f"-> 60,000 (Kaggle's training set) in {60_000 / rate / 60:.1f} min")


if __name__ == "__main__":  # synthesis starts worker processes, which import this file
    main()
