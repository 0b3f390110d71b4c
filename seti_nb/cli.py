"""The `seti-nb` command line: synth, check, run, train, predict."""

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


def _train(args) -> int:
    import json

    from .train import TrainConfig, train_and_evaluate
    from .workbook import ensure_data, new_folder, runs_dir

    data = ensure_data(args.data or "")
    out = new_folder(args.out or runs_dir(), f"train-{args.model.replace(':', '-')}-{time.strftime('%Y%m%d-%H%M%S')}")
    config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, sampler=args.sampler,
                         loss=args.loss, scheduler=args.scheduler, augment=args.augment, device=args.device,
                         num_workers=args.workers, seed=args.seed)
    size = tuple(args.size) if args.size else None
    outcome = train_and_evaluate(data, args.model, args.layout, size, args.pretrained, config, out,
                                 limit=args.limit)
    print(json.dumps(outcome["metrics"], indent=1, default=float))
    print(f"checkpoint, history.csv, metrics.json, test_scores.csv: {out}")
    return 0


def _predict(args) -> int:
    import pandas as pd

    from .data import CadenceDataset, read_labels, submission_ids
    from .train import load_checkpoint, model_from_checkpoint, predict

    if args.out.exists():
        raise FileExistsError(f"{args.out}: exists; choose a new file name (nothing is overwritten)")
    checkpoint = load_checkpoint(args.checkpoint)
    side = args.split or ("test" if (args.data / "test").is_dir() else "train")
    if side == "test":  # score the test files present (a partial download scores what it has)
        ids = [i for i in submission_ids(args.data) if (args.data / "test" / i[0] / f"{i}.npy").is_file()]
    else:
        ids = read_labels(args.data).id.tolist()
    if not ids:
        raise FileNotFoundError(f"{args.data}: no {side} cadences to score")
    meta = checkpoint["meta"]
    dataset = CadenceDataset(args.data, pd.DataFrame({"id": ids}), layout=meta["layout"],
                             size=tuple(meta["size"]) if meta["size"] else None, side=side)
    scores = predict(model_from_checkpoint(checkpoint), dataset, device=args.device, progress=True)
    pd.DataFrame({"id": ids, "target": scores}).to_csv(args.out, index=False)
    print(f"scored {len(ids)} {side} cadences with {meta['model']} -> {args.out}")
    return 0


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

    p = sub.add_parser("train", help="train on the 70 %% split, evaluate on the 30 %% test split")
    p.add_argument("--data", type=Path, default=None, help="a Kaggle-layout folder (default: the synthetic set)")
    p.add_argument("--model", default="small-cnn",
                   help="small-cnn, efficientnet-b0 .. efficientnet-b7, or timm:<name> (timm:tf_efficientnet_lite0)")
    p.add_argument("--pretrained", action="store_true", help="start from ImageNet weights (local files only)")
    p.add_argument("--layout", choices=["on_stack", "all_stack", "on_channels"], default="on_stack")
    p.add_argument("--size", type=int, nargs=2, metavar=("HEIGHT", "WIDTH"), default=None, help="resize inputs")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--sampler", choices=["plain", "oversample", "hybrid"], default="plain")
    p.add_argument("--loss", choices=["bce", "weighted"], default="bce")
    p.add_argument("--scheduler", choices=["constant", "step", "cosine", "onecycle"], default="constant")
    p.add_argument("--augment", action="store_true", help="frequency flip and shift on training data")
    p.add_argument("--limit", type=int, default=0, help="train on a stratified subset of this many cadences")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None, help="where the new run folder goes (default: runs/)")
    p.set_defaults(func=_train)

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
    except (FileExistsError, FileNotFoundError, ValueError) as e:  # DataError is a ValueError
        print(f"seti-nb {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
