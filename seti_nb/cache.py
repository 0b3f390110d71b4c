"""The training cache: one side of a data set, preprocessed once into one memory-mapped float16 array.

Reading and preprocessing 840 kB per cadence costs milliseconds; an epoch reads every cadence again. The cache
keeps the preprocessed frames `(cadences, 6, rows, channels)` in `frames.npy` beside `ids.csv`, in a folder
outside the data (real data may be read-only), named by a fingerprint of the source (label or submission file,
every cadence file's size and time, `synth.json`) and of the preprocessing: a changed source gets a new folder,
and the stale one is removed. Folders are written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from .cadence import N_FRAMES
from .data import cadence_path, check_files, read_cadence, side_ids
from .preprocess import Preprocess
from .runtime import progress_bar, project_dir

CACHE_VERSION = 2  # bump when a cache's content changes for the same key (2: the OFF bandpass fitted per scan)


def cache_root() -> Path:
    """`$SETI_NB_CACHE`, else `data/cache` in the checkout (or `~/.cache/seti-nb` for a plain install)."""
    if os.environ.get("SETI_NB_CACHE"):
        return Path(os.environ["SETI_NB_CACHE"])
    checkout = project_dir()
    return checkout / "data" / "cache" if checkout else Path.home() / ".cache" / "seti-nb"


def fingerprint(root: str | Path, side: str, ids: list[str], preprocess: Preprocess) -> str:
    root = Path(root)
    h = hashlib.sha256(f"{CACHE_VERSION}|{side}|{preprocess.key()}|{root.resolve()}".encode())
    for name in ("train_labels.csv", "sample_submission.csv", "synth.json"):
        if (root / name).is_file():
            h.update(name.encode() + (root / name).read_bytes())
    for cadence_id in ids:
        stat = cadence_path(root, cadence_id, side).stat()
        h.update(f"{cadence_id}:{stat.st_size}:{stat.st_mtime_ns};".encode())
    return h.hexdigest()[:16]


def _fill(args) -> int:
    """Preprocess cadences `start:stop` of `ids` into rows of the cache file (one worker's share)."""
    path, root, side, ids, start, preprocess = args
    frames = np.load(path, mmap_mode="r+", allow_pickle=False)
    for i, cadence_id in enumerate(ids, start):
        frames[i] = preprocess(read_cadence(root, cadence_id, side))
    frames.flush()
    return len(ids)


def cached_frames(root: str | Path, side: str, preprocess: Preprocess, workers: int | None = None,
                  progress: bool = True) -> tuple[Path, dict[str, int]]:
    """The cache file of `root`'s `side` under `preprocess` (built on first use) and each id's row in it."""
    root = Path(root)
    ids = side_ids(root, side)
    try:
        key = fingerprint(root, side, ids, preprocess)
    except OSError:
        check_files(root, ids, side)  # names every missing or unreadable file
        raise
    where = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:6]
    stem = f"{root.resolve().name}-{where}-{side}-{preprocess.key()}"
    folder = cache_root() / f"{stem}-{key}"
    if not (folder / "frames.npy").is_file():
        check_files(root, ids, side)  # every bad file named at once, before a minute of work
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = folder.with_name(f"{folder.name}.partial-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        shape = (len(ids), N_FRAMES, *preprocess.frame_shape)
        np.lib.format.open_memmap(tmp / "frames.npy", mode="w+", dtype=np.float16, shape=shape).flush()
        chunk = 64
        jobs = [(tmp / "frames.npy", root, side, ids[i:i + chunk], i, preprocess) for i in range(0, len(ids), chunk)]
        workers = min(workers or os.cpu_count() or 1, len(jobs), 8)  # threads: numpy releases the GIL
        bar = progress_bar(total=len(ids), desc=f"caching {side} cadences ({preprocess.key()})", unit="cadence",
                           disable=not progress)
        try:
            with ThreadPoolExecutor(workers) as pool:
                for n in pool.map(_fill, jobs):
                    bar.update(n)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        finally:
            bar.close()
        pd.DataFrame({"id": ids}).to_csv(tmp / "ids.csv", index=False)
        (tmp / "source.json").write_text(json.dumps({"root": str(root.resolve()), "side": side,
                                                     "preprocess": preprocess.to_dict()}, indent=1) + "\n")
        for stale in folder.parent.glob(f"{stem}-*"):  # the same source before it changed
            if stale.is_dir() and ".partial-" not in stale.name and stale != folder:
                shutil.rmtree(stale, ignore_errors=True)
        try:
            tmp.rename(folder)
        except OSError:  # another process finished the same cache first
            shutil.rmtree(tmp, ignore_errors=True)
    return folder / "frames.npy", {cadence_id: i for i, cadence_id in enumerate(ids)}
