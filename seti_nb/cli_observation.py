"""The command line's observation commands: `seti-nb synth-observation` and `seti-nb scan` (options built from
the light settings alone, as `cli`'s are; the heavy modules are imported when a command runs)."""

from __future__ import annotations

import time
from pathlib import Path

from .config import DEVICES, SearchSettings, count


def synth_observation(args) -> int:
    from .observation import synthesize_observation

    start = time.perf_counter()
    out = synthesize_observation(args.out, args.channels, args.seed, args.needles, args.interference,
                                 args.stationary, args.bursts)
    print(f"wrote six scans of {args.channels} channels and truth.csv to {out} in "
          f"{time.perf_counter() - start:.1f} s")
    return 0


def scan(args) -> int:
    settings = SearchSettings(max_drift_hz_s=args.max_drift, threshold=args.threshold)  # refused before loading
    from .runtime import check_new_file, write_new_csv
    from .scan import Cadence, scan

    check_new_file(args.out)
    if args.snippets is not None and (args.snippets.exists() or not args.snippets.parent.is_dir()):
        raise FileExistsError(f"{args.snippets}: exists; choose a new folder" if args.snippets.exists()
                              else f"{args.snippets.parent}: output folder not found")
    f_range = None if args.f_start is None and args.f_stop is None else (args.f_start, args.f_stop)
    if f_range is not None and None in f_range:
        raise ValueError("give both --f-start and --f-stop, or neither (the whole band)")
    cut = args.checkpoint is not None or args.snippets is not None  # snippets around the candidates
    if cut:
        from . import snippets

        cadence = Cadence.of(args.files)
    checkpoint = snippets.checked_checkpoint(args.checkpoint, cadence) if args.checkpoint is not None else None
    result = scan(args.files, settings, f_range, args.workers)
    table = result.candidates
    if cut:
        cuts, firsts = snippets.cut_all(cadence, table if checkpoint is not None else table.head(args.top))
        if checkpoint is not None:
            table = table.assign(model_score=snippets.score(checkpoint, cuts, args.checkpoint, args.device))
        if args.snippets is not None:
            snippets.write_folder(args.snippets, cadence, table.head(args.top), cuts[:args.top], firsts[:args.top])
            print(f"{min(args.top, len(table))} snippets ({snippets.snippet_geometry(cadence).describe()}) -> "
                  f"{args.snippets}")
    write_new_csv(table, args.out)
    print(f"{result.summary()} -> {args.out}")
    return 0


def synth_observation_options(p) -> None:
    p.add_argument("out", type=Path, help="new output folder")
    p.add_argument("--channels", type=count, default=2**20,
                   help="channels of 2.79 Hz (default %(default)s: one coarse channel, 2.9 MHz)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--needles", type=int, default=20, help="signals in the ON scans only (default %(default)s)")
    p.add_argument("--interference", type=int, default=20,
                   help="signals continuous through all six scans (default %(default)s)")
    p.add_argument("--stationary", type=int, default=10, help="lines that do not drift (default %(default)s)")
    p.add_argument("--bursts", type=int, default=4,
                   help="broadband bursts: a few rows of one scan over part of the band (default %(default)s)")


def scan_options(p) -> None:
    default = SearchSettings()
    p.add_argument("files", type=Path, nargs="+", metavar="FILE",
                   help="the six .h5 or .fil files of a cadence in time order: ON1 OFF1 ON2 OFF2 ON3 OFF3")
    p.add_argument("--out", type=Path, required=True, help="a new CSV file: one row a candidate path")
    p.add_argument("--f-start", type=float, default=None, help="lowest frequency searched, MHz (default: the band's)")
    p.add_argument("--f-stop", type=float, default=None, help="highest frequency searched, MHz (default: the band's)")
    p.add_argument("--max-drift", type=float, default=default.max_drift_hz_s,
                   help="largest drift rate searched, Hz/s (default %(default)s)")
    p.add_argument("--threshold", type=float, default=default.threshold, help="hit SNR (default %(default)s)")
    p.add_argument("--workers", type=count, default=None, help="processes (default: one per core, at most 8)")
    p.add_argument("--checkpoint", type=Path, default=None,
                   help="score every candidate's snippet (6 x rows x 256 channels) with a checkpoint trained at the "
                        "files' geometry (seti-nb synth --like FILE); adds model_score")
    p.add_argument("--snippets", type=Path, default=None, metavar="DIR",
                   help="write the top candidates' snippets as the test side of a new Kaggle-layout folder "
                        "(candidates.csv gives each id's frequency and drift)")
    p.add_argument("--top", type=count, default=100, help="candidates written with --snippets (default %(default)s)")
    p.add_argument("--device", choices=DEVICES, default="cpu", help="where the checkpoint runs (default cpu)")
