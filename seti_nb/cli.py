"""The `seti-nb` command line: synth, check, run, train, predict, dedoppler."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def _count(text: str) -> int:
    """A whole number of at least 1 (epochs, batch size, cadences, averaging factors)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _share(text: str) -> float:
    """A fraction from 0 to 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {value}")
    return value


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


def _train(args) -> int:
    import json

    from .preprocess import Preprocess
    from .runtime import new_folder, pick_device, runs_dir
    from .train import Run, TrainConfig, train_and_evaluate
    from .workbook import ensure_data

    pick_device(args.device)  # an absent GPU is named before anything else happens
    data = ensure_data(args.data or "")
    config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, sampler=args.sampler,
                         loss=args.loss, scheduler=args.scheduler, device=args.device, precision=args.precision,
                         num_workers=args.workers, seed=args.seed)
    preprocess = Preprocess(args.bandpass, args.time_average, args.channel_average, args.clip, args.gain)
    run = Run(args.model, args.layout, preprocess, args.pretrained, args.augment, args.interference, args.limit,
              config)
    parent = args.out or runs_dir()
    made_parent = not parent.exists()
    out = new_folder(parent, f"train-{args.model.replace(':', '-')}-{time.strftime('%Y%m%d-%H%M%S')}")
    try:
        result = train_and_evaluate(data, run, out, fpr=args.fpr)
    except BaseException:
        if not any(out.iterdir()):  # a run that wrote nothing leaves no folder
            out.rmdir()
            if made_parent and not any(parent.iterdir()):
                parent.rmdir()
        raise
    print(json.dumps({**run.describe(), **result.row()}, indent=1))
    print(f"best.pt, history.csv, metrics.json, test_scores.csv: {out}")
    return 0


def _predict(args) -> int:
    from .runtime import check_new_file, pick_device, write_new_csv
    from .train import score_folder

    check_new_file(args.out)
    pick_device(args.device)
    side = args.split or ("test" if (args.data / "test").is_dir() else "train")
    scores = score_folder(args.checkpoint, args.data, side, args.device)
    write_new_csv(scores.rename(columns={"score": "target"}), args.out)
    print(f"scored {len(scores)} {side} cadences with {args.checkpoint} -> {args.out}")
    return 0


def _dedoppler(args) -> int:
    import pandas as pd

    from .cache import side_ids
    from .dedoppler import Search, score_cadences
    from .runtime import check_new_file, write_new_csv

    check_new_file(args.out)
    side = args.split or ("test" if (args.data / "test").is_dir() else "train")
    ids = side_ids(args.data, side)
    if not ids:
        raise FileNotFoundError(f"{args.data}: no {side} cadences to score")
    search = Search(max_drift_hz_s=args.max_drift, threshold=args.threshold)
    scores = score_cadences(args.data, ids, side, search, processes=args.workers)
    write_new_csv(pd.DataFrame({"id": ids, "target": scores[f"level{args.level}"]}), args.out)
    print(f"scored {len(ids)} {side} cadences with the de-Doppler search (level {args.level}) -> {args.out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .data import LAYOUTS
    from .preprocess import BANDPASS
    from .runner import PROFILES
    from .train import LOSSES, PRECISIONS, SAMPLERS, SCHEDULERS

    parser = argparse.ArgumentParser(prog="seti-nb", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("synth", help="write a synthetic data set in the Kaggle layout")
    p.add_argument("out", type=Path, help="new (or empty) output folder")
    p.add_argument("--n", type=_count, default=2000, help="training cadences (default 2000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--positive-fraction", type=_share, default=0.1, help="share of needles (default 0.1)")
    p.add_argument("--test-fraction", type=_share, default=0.1,
                   help="unlabelled test cadences, as a share of --n (default 0.1)")
    p.add_argument("--workers", type=_count, default=None, help="processes (default: one per core)")
    p.set_defaults(func=_synth)

    p = sub.add_parser("check", help="validate a Kaggle-layout data folder")
    p.add_argument("data", type=Path)
    p.set_defaults(func=_check)

    p = sub.add_parser("run", help="execute the notebooks in order with papermill into a new run folder")
    p.add_argument("notebooks", nargs="*", metavar="NOTEBOOK", help="number (03), stem or path; default: all")
    p.add_argument("--profile", choices=list(PROFILES), default="quick",
                   help="quick: the parameters cells, sized for a CPU; full: notebooks/params/full.yaml")
    p.add_argument("--data", type=Path, default=None, help="a Kaggle-layout folder (default: the synthetic set)")
    p.add_argument("--out", type=Path, default=None, help="where the new run folder goes (default: runs/)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.set_defaults(func=_run)

    p = sub.add_parser("train", help="train on the 70 %% split, evaluate on the 30 %% test split")
    p.add_argument("--data", type=Path, default=None, help="a Kaggle-layout folder (default: the synthetic set)")
    p.add_argument("--model", default="cadence-cnn",
                   help="cadence-cnn (default), small-cnn, efficientnet-b0 .. efficientnet-b7, or timm:<name> "
                        "(timm:tf_efficientnet_lite0)")
    p.add_argument("--pretrained", action="store_true", help="start from ImageNet weights (local files only)")
    p.add_argument("--layout", choices=list(LAYOUTS), default="frames",
                   help="; ".join(f"{k}: {v}" for k, v in LAYOUTS.items()).replace("%", "%%"))
    p.add_argument("--bandpass", choices=list(BANDPASS), default="off",
                   help="remove each channel's median over time of the OFF scans (default), of each scan, or nothing")
    p.add_argument("--gain", action=argparse.BooleanOptionalAction, default=True,
                   help="remove each row's median over channels: gain drifts, broadband bursts (default on)")
    p.add_argument("--time-average", type=_count, default=8, help="rows averaged into one (1: full resolution)")
    p.add_argument("--channel-average", type=_count, default=2, help="channels averaged into one (1: all 256)")
    p.add_argument("--clip", type=float, default=20.0, help="clip at this many noise sigmas (0: off)")
    p.add_argument("--epochs", type=_count, default=6)
    p.add_argument("--batch-size", type=_count, default=64)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--sampler", choices=list(SAMPLERS), default="oversample")
    p.add_argument("--loss", choices=list(LOSSES), default="bce")
    p.add_argument("--scheduler", choices=list(SCHEDULERS), default="onecycle")
    p.add_argument("--augment", action=argparse.BooleanOptionalAction, default=True,
                   help="frequency flip and shift on training data (default on)")
    p.add_argument("--interference", type=_share, default=0.4,
                   help="with --augment: the chance of adding a partial-band burst and wide emission to a scan")
    p.add_argument("--limit", type=int, default=0, help="train on a stratified subset of this many cadences")
    p.add_argument("--fpr", type=_share, default=0.01, help="false-positive rate for the recall figure")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--precision", choices=list(PRECISIONS), default="auto",
                   help="auto: mixed precision where it is faster (CUDA; a CPU with AMX); fp32: none")
    p.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None, help="where the new run folder goes (default: runs/)")
    p.set_defaults(func=_train)

    p = sub.add_parser("dedoppler", help="score a Kaggle-layout folder with the classical de-Doppler search")
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--split", choices=["train", "test"], default=None,
                   help="which side to score (default: test where a test/ folder exists, else train)")
    p.add_argument("--out", type=Path, required=True, help="a new CSV file (id,target)")
    p.add_argument("--level", type=int, choices=[1, 2, 3], default=3,
                   help="1: strongest ON signal; 2: in an ON scan, not in the OFF scans; 3: in every ON scan, "
                        "continuous in time, not in the OFF scans (default)")
    p.add_argument("--max-drift", type=float, default=4.0, help="largest drift rate searched, Hz/s (default 4)")
    p.add_argument("--threshold", type=float, default=10.0, help="hit SNR; OFF signals above it veto (default 10)")
    p.add_argument("--workers", type=_count, default=None, help="processes (default: one per core)")
    p.set_defaults(func=_dedoppler)

    p = sub.add_parser("predict", help="score a Kaggle-layout folder; writes id,target like a submission")
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--split", choices=["train", "test"], default=None,
                   help="which side to score (default: test where a test/ folder exists, else train)")
    p.add_argument("--out", type=Path, required=True, help="a new CSV file")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.set_defaults(func=_predict)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        hint = "; the same command finishes it" if args.command == "synth" else ""
        print(f"seti-nb {args.command}: interrupted{hint}", file=sys.stderr)
        return 130
    except (OSError, ValueError, RuntimeError) as e:  # DataError is a ValueError; PermissionError an OSError
        print(f"seti-nb {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
