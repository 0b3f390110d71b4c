"""The `seti-nb` command line: synth, synth-observation, check, run, train, predict, dedoppler, scan.

Options and defaults come from the library's own settings (`config`, `Preprocess`, the search), so the command
and the library never disagree. Start-up is kept short on purpose: this module imports only those light settings;
each command imports the heavy modules it needs (torch, the search, papermill) when it runs, and the options of
a command are built only when that command is named, so `seti-nb --help` and a wrong option answer at once.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

from .cadence import KAGGLE
from .cli_observation import scan, scan_options, synth_observation, synth_observation_options
from .config import (
    DEVICES,
    LAYOUTS,
    LOSSES,
    POOLS,
    PRECISIONS,
    PROFILES,
    SAMPLERS,
    SCHEDULERS,
    Run,
    SearchSettings,
    SynthConfig,
    TrainConfig,
    count,
    share,
)
from .preprocess import BANDPASS

# ---- the commands -------------------------------------------------------------------------------------

def _synth(args) -> int:
    from .synth import synthesize

    geometry = KAGGLE
    if args.like is not None:
        from .observation import read_scan

        geometry = read_scan(args.like).grid.cadence_geometry()
    config = SynthConfig(n=args.n, seed=args.seed, positive_fraction=args.positive_fraction,
                         test_fraction=args.test_fraction, twins=args.twins, geometry=geometry)
    start = time.perf_counter()
    out = synthesize(args.out, config, workers=args.workers)
    seconds = time.perf_counter() - start
    total = config.n + round(config.n * config.test_fraction)
    print(f"wrote {total} cadences of {geometry.describe()} to {out} in {seconds:.1f} s "
          f"({total / seconds:.1f} cadences/s)")
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
    from . import distributed
    from .preprocess import Preprocess
    from .runtime import new_folder, pick_device, runs_dir
    from .study import train_and_evaluate
    from .workbook import ensure_data

    device = pick_device(args.device)  # an absent GPU is named before anything else happens
    if device == "cuda" and args.nproc > (gpus := distributed.gpu_count()):
        raise RuntimeError(f"--nproc {args.nproc} asks for a GPU per process; torch sees {gpus}")
    config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, sampler=args.sampler,
                         loss=args.loss, scheduler=args.scheduler, device=args.device, precision=args.precision,
                         num_workers=args.workers, processes=distributed.launched() or args.nproc, seed=args.seed)
    preprocess = Preprocess(args.bandpass, args.time_average, args.channel_average, args.clip, args.gain,
                            narrowband=args.narrowband, mask_lines=args.mask_lines)
    run = Run(model=args.model, layout=args.layout, preprocess=preprocess, pretrained=args.pretrained,
              augment=args.augment, interference=args.interference, inject=args.inject, pairs=args.pairs,
              limit=args.limit,
              size=tuple(args.size) if args.size else None, pool=args.pool, tta=args.tta,
              pseudo=str(args.pseudo or ""), pseudo_confidence=args.pseudo_confidence, config=config)
    data = ensure_data(args.data or "")  # made once, before any training process starts
    if distributed.launched():  # one of the ranks torchrun started on this machine or several (see the README)
        distributed.start(device)
    rank = distributed.world()[0]
    parent = args.out or runs_dir()
    made_parent = not parent.exists()
    name = f"train-{args.model.replace(':', '-')}-{time.strftime('%Y%m%d-%H%M%S')}"
    out = distributed.share(new_folder(parent, name) if rank == 0 else None)
    try:
        train_and_evaluate(data, run, out)
    except BaseException:
        if rank == 0 and not any(out.iterdir()):  # a run that wrote nothing leaves no folder
            out.rmdir()
            if made_parent and not any(parent.iterdir()):
                parent.rmdir()
        raise
    finally:
        distributed.finish()
    if rank == 0:
        print((out / "metrics.json").read_text().rstrip())
        print(f"best.pt, history.csv, metrics.json, test_scores.csv: {out}")
    return 0


def _predict(args) -> int:
    from .runtime import check_new_file, pick_device, write_new_csv
    from .study import score_folder

    check_new_file(args.out)
    pick_device(args.device)
    side = args.split or ("test" if (args.data / "test").is_dir() else "train")
    scores = score_folder(args.checkpoint, args.data, side, args.device)
    write_new_csv(scores.rename(columns={"score": "target"}), args.out)
    print(f"scored {len(scores)} {side} cadences with {args.checkpoint} -> {args.out}")
    return 0


def _dedoppler(args) -> int:
    SearchSettings(max_drift_hz_s=args.max_drift, threshold=args.threshold)  # refused before the search loads
    import pandas as pd

    from .data import side_ids
    from .dedoppler import Search, score_cadences
    from .runtime import check_new_file, write_new_csv

    search = Search(max_drift_hz_s=args.max_drift, threshold=args.threshold)
    check_new_file(args.out)
    side = args.split or ("test" if (args.data / "test").is_dir() else "train")
    ids = side_ids(args.data, side)
    if not ids:
        raise FileNotFoundError(f"{args.data}: no {side} cadences to score")
    scores = score_cadences(args.data, ids, side, search, processes=args.workers)[f"level{args.level}"]
    if not scores.notna().all():  # no blank target ever reaches a submission
        raise ValueError(f"{args.data}: the search gives {int(scores.isna().sum())} undefined scores; nothing written")
    write_new_csv(pd.DataFrame({"id": ids, "target": scores.to_numpy()}), args.out)
    print(f"scored {len(ids)} {side} cadences with the de-Doppler search (level {args.level}) -> {args.out}")
    return 0


# ---- their options ------------------------------------------------------------------------------------

def _synth_options(p) -> None:
    default = SynthConfig()
    p.add_argument("out", type=Path, help="new (or empty) output folder")
    p.add_argument("--n", type=count, default=default.n, help="training cadences (default %(default)s)")
    p.add_argument("--seed", type=int, default=default.seed)
    p.add_argument("--positive-fraction", type=share, default=default.positive_fraction,
                   help="share of needles (default %(default)s)")
    p.add_argument("--test-fraction", type=share, default=default.test_fraction,
                   help="unlabelled test cadences, as a share of --n (default %(default)s)")
    p.add_argument("--twins", action="store_true",
                   help="the twin test's set instead: --n cadences in pairs, each a needle and the same signal "
                        "continued through the OFF scans (interference), no test side")
    p.add_argument("--like", type=Path, default=None, metavar="FILE",
                   help="cadences at an observation file's geometry (its rows, row time and channel width; 256 "
                        "channels), to train a model `seti-nb scan --checkpoint` can use on such files")
    p.add_argument("--workers", type=count, default=None, help="processes (default: one per core)")


def _check_options(p) -> None:
    p.add_argument("data", type=Path)


def _run_options(p) -> None:
    p.add_argument("notebooks", nargs="*", metavar="NOTEBOOK", help="number (03), stem or path; default: all")
    p.add_argument("--profile", choices=PROFILES, default="quick",
                   help="quick: the parameters cells, sized for a CPU; full: notebooks/params/full.yaml")
    p.add_argument("--data", type=Path, default=None, help="a Kaggle-layout folder (default: the synthetic set)")
    p.add_argument("--out", type=Path, default=None, help="where the new run folder goes (default: runs/)")
    p.add_argument("--device", choices=DEVICES, default="auto")


def _train_options(p) -> None:
    run, prep = Run(), Run().preprocess
    p.add_argument("--data", type=Path, default=None, help="a Kaggle-layout folder (default: the synthetic set)")
    p.add_argument("--model", default=run.model,
                   help="cadence-cnn (default), small-cnn, efficientnet-b0 .. efficientnet-b7, or timm:<name> "
                        "(timm:tf_efficientnet_lite0)")
    p.add_argument("--pretrained", action="store_true", help="start from ImageNet weights (local files only)")
    p.add_argument("--layout", choices=list(LAYOUTS), default=run.layout,
                   help="; ".join(f"{k}: {v}" for k, v in LAYOUTS.items()).replace("%", "%%"))
    p.add_argument("--size", type=count, nargs=2, metavar=("HEIGHT", "WIDTH"), default=None,
                   help="resize the layout's image to HEIGHT x WIDTH on the device (the Kaggle solutions: "
                        "--layout all_stack --time-average 1 --channel-average 1 --size 512 512)")
    p.add_argument("--pool", choices=POOLS, default=run.pool,
                   help="an EfficientNet's global pooling: average or GeM (generalised mean, p learnt)")
    p.add_argument("--tta", action="store_true", help="score test cadences as the mean of each image and its "
                                                      "frequency mirror")
    p.add_argument("--bandpass", choices=BANDPASS, default=prep.bandpass,
                   help="remove each channel's median over time of the OFF scans, of each scan, or nothing "
                        "(default %(default)s)")
    p.add_argument("--gain", action=argparse.BooleanOptionalAction, default=prep.gain,
                   help="remove each row's median over channels: gain drifts, broadband bursts")
    p.add_argument("--time-average", type=count, default=prep.time_average,
                   help="rows averaged into one (1: full resolution; default %(default)s)")
    p.add_argument("--channel-average", type=count, default=prep.channel_average,
                   help="channels averaged into one (1: all 256; default %(default)s)")
    p.add_argument("--clip", type=float, default=prep.clip, help="clip at this many noise sigmas (0: off; "
                                                                  "default %(default)s)")
    p.add_argument("--narrowband", type=int, default=prep.narrowband, metavar="CHANNELS",
                   help="remove emission wider than about half this many channels of the full resolution, as the "
                        "search does (04's best run: 65; 0: off; default %(default)s)")
    p.add_argument("--mask-lines", type=float, default=prep.mask_lines, metavar="SIGMAS",
                   help="set to 0 the channels of lines that persist in the raw OFF scans, found at this many noise "
                        "sigmas, as the search vetoes them (04's best run: 3; 0: off; default %(default)s)")
    _optimisation_options(p)


def _optimisation_options(p) -> None:
    run, config = Run(), Run().config
    p.add_argument("--epochs", type=count, default=config.epochs)
    p.add_argument("--batch-size", type=count, default=config.batch_size)
    p.add_argument("--lr", type=float, default=config.lr)
    p.add_argument("--sampler", choices=SAMPLERS, default=config.sampler)
    p.add_argument("--loss", choices=LOSSES, default=config.loss)
    p.add_argument("--scheduler", choices=SCHEDULERS, default=config.scheduler)
    p.add_argument("--augment", action=argparse.BooleanOptionalAction, default=run.augment,
                   help="frequency flip and shift on training data")
    p.add_argument("--interference", type=share, default=run.interference,
                   help="with --augment: the chance of adding a partial-band burst and wide emission to a scan")
    p.add_argument("--inject", type=share, default=run.inject,
                   help="with --augment: the chance of injecting a signal, a needle in the ON scans only or the same "
                        "kind continued through the OFF scans (interference), which only the OFF scans tell apart "
                        "(default %(default)s)")
    p.add_argument("--pairs", type=int, default=run.pairs,
                   help="with --augment and the frames layout: counterfactual pairs added to each batch, a needle "
                        "and the same draw continued through the OFF scans, ranked by a pairwise loss")
    p.add_argument("--limit", type=int, default=run.limit, help="train on a stratified subset of this many cadences")
    p.add_argument("--pseudo", type=Path, default=None, metavar="SCORES_CSV",
                   help="pseudo-labelling: a score file of the unlabelled test side (what `seti-nb predict` writes); "
                        "its confident cadences join the training part")
    p.add_argument("--pseudo-confidence", type=float, default=run.pseudo_confidence,
                   help="needles score at least this, haystacks at most 1 - this (default %(default)s)")
    p.add_argument("--device", choices=DEVICES, default=config.device)
    p.add_argument("--precision", choices=PRECISIONS, default=config.precision,
                   help="auto: mixed precision where it is faster (CUDA; a CPU with AMX); fp32: none")
    p.add_argument("--workers", type=int, default=config.num_workers, help="DataLoader worker processes")
    p.add_argument("--nproc", type=count, default=1,
                   help="training processes on this machine, one per GPU (or CPU processes, gloo backend): "
                        "DistributedDataParallel through torchrun; --batch-size stays the global batch "
                        "(default %(default)s)")
    p.add_argument("--seed", type=int, default=config.seed)
    p.add_argument("--out", type=Path, default=None, help="where the new run folder goes (default: runs/)")


def _side_option(p) -> None:
    p.add_argument("--split", choices=["train", "test"], default=None,
                   help="which side to score (default: test where a test/ folder exists, else train)")


def _dedoppler_options(p) -> None:
    default = SearchSettings()
    p.add_argument("--data", type=Path, required=True)
    _side_option(p)
    p.add_argument("--out", type=Path, required=True, help="a new CSV file (id,target)")
    p.add_argument("--level", type=int, choices=[1, 2, 3], default=3,
                   help="1: strongest ON signal; 2: in an ON scan, not in the OFF scans; 3: in every ON scan, "
                        "continuous in time, not in the OFF scans (default)")
    p.add_argument("--max-drift", type=float, default=default.max_drift_hz_s,
                   help="largest drift rate searched, Hz/s (default %(default)s)")
    p.add_argument("--threshold", type=float, default=default.threshold,
                   help="hit SNR; OFF signals above it veto (default %(default)s)")
    p.add_argument("--workers", type=count, default=None, help="processes (default: one per core)")


def _predict_options(p) -> None:
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--data", type=Path, required=True)
    _side_option(p)
    p.add_argument("--out", type=Path, required=True, help="a new CSV file")
    p.add_argument("--device", choices=DEVICES, default="auto")


COMMANDS = {  # name: (what it does, its options, the command)
    "synth": ("write a synthetic data set in the Kaggle layout", _synth_options, _synth),
    "synth-observation": ("write a synthetic BL observation: the six .h5 files of a cadence and truth.csv",
                          synth_observation_options, synth_observation),
    "check": ("validate a Kaggle-layout data folder", _check_options, _check),
    "run": ("execute the notebooks in order with papermill into a new run folder", _run_options, _run),
    "train": ("train on the 70 %% split, evaluate on the 30 %% test split", _train_options, _train),
    "dedoppler": ("score a Kaggle-layout folder with the classical de-Doppler search", _dedoppler_options,
                  _dedoppler),
    "predict": ("score a Kaggle-layout folder; writes id,target like a submission", _predict_options, _predict),
    "scan": ("search six observation files (a cadence) over their band: de-Doppler hits and the ON/OFF event filter",
             scan_options, scan),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command; the options of `command` alone are built (none for `seti-nb --help`)."""
    parser = argparse.ArgumentParser(prog="seti-nb", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (what, options, run) in COMMANDS.items():
        p = sub.add_parser(name, help=what, description=what)
        if name == command:
            options(p)
        p.set_defaults(func=run)
    return parser


class Terminated(BaseException):
    """SIGTERM, raised like Ctrl-C so that whatever a command is writing is cleaned up on the way out."""


def _terminate(signum, frame):
    raise Terminated


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = next((a for a in argv if not a.startswith("-")), None)
    name = f"seti-nb {command}" if command in COMMANDS else "seti-nb"
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        args = build_parser(command).parse_args(argv)
        args.argv = argv
        return args.func(args)
    except KeyboardInterrupt:
        # Under `python -m`, CPython dies by SIGINT at exit (status -2, not 130) when a Ctrl-C landed inside a string
        # exec (dataclasses and typing make classes so, at import), even though it was caught here; a string exec of
        # its own clears that mark
        exec("")
        hint = "; the same command finishes it" if command == "synth" else ""
        print(f"{name}: interrupted{hint}", file=sys.stderr)
        return 130
    except Terminated:
        print(f"{name}: terminated", file=sys.stderr)
        return 143
    except (OSError, ValueError, RuntimeError) as e:  # DataError is a ValueError; PermissionError an OSError
        print(f"{name}: error: {e}", file=sys.stderr)
        return 2
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
