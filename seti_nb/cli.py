"""The `seti-nb` command line: synth, check, run (and, as the workbook grows, train, predict)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def _synth(args) -> int:
    from .synth import SynthConfig, synthesize

    config = SynthConfig(n=args.n, seed=args.seed, positive_fraction=args.positive_fraction,
                         test_fraction=args.test_fraction)
    start = time.perf_counter()
    out = synthesize(args.out, config, workers=args.workers)
    seconds = time.perf_counter() - start
    total = config.n + round(config.n * config.test_fraction)
    print(f"wrote {total} cadences to {out} in {seconds:.1f} s ({total / seconds:.1f} cadences/s)")
    return 0


def _check(args) -> int:
    from .data import check_dataset

    report = check_dataset(args.data)
    print(report)
    return 0 if report.ok else 1


def _run(args) -> int:
    from .runner import find_notebooks, run_notebooks
    from .workbook import ensure_data

    notebooks = find_notebooks(args.notebooks)
    data = ensure_data(args.data or "")  # made once, before the first notebook needs it
    run, ok = run_notebooks(notebooks, args.profile, data=str(data) if args.data else None,
                            out=args.out, device=args.device)
    print(f"run folder: {run}")
    return 0 if ok else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seti-nb", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("synth", help="write a synthetic data set in the Kaggle layout")
    p.add_argument("out", type=Path, help="new (or empty) output folder")
    p.add_argument("--n", type=int, default=2000, help="training cadences (default 2000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--positive-fraction", type=float, default=0.1, help="share of needles (default 0.1)")
    p.add_argument("--test-fraction", type=float, default=0.1,
                   help="unlabelled test cadences, as a share of --n (default 0.1)")
    p.add_argument("--workers", type=int, default=None, help="processes (default: one per core)")
    p.set_defaults(func=_synth)

    p = sub.add_parser("check", help="validate a Kaggle-layout data folder")
    p.add_argument("data", type=Path)
    p.set_defaults(func=_check)

    p = sub.add_parser("run", help="execute the notebooks in order with papermill into a new run folder")
    p.add_argument("notebooks", nargs="*", metavar="NOTEBOOK", help="number (03), stem or path; default: all")
    p.add_argument("--profile", choices=["quick", "full"], default="quick",
                   help="quick: the parameters cells, sized for a CPU; full: notebooks/params/full.yaml")
    p.add_argument("--data", type=Path, default=None, help="a Kaggle-layout folder (default: the synthetic set)")
    p.add_argument("--out", type=Path, default=None, help="where the new run folder goes (default: runs/)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.set_defaults(func=_run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (FileExistsError, FileNotFoundError, ValueError) as e:  # DataError is a ValueError
        print(f"seti-nb {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
