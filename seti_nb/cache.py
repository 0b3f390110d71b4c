"""The training cache: one side of a data set, preprocessed once into one memory-mapped float16 array.

Reading and preprocessing 840 kB per cadence costs milliseconds; an epoch reads every cadence again. The cache
keeps the preprocessed frames `(cadences, 6, rows, channels)` in `frames.npy` beside `ids.csv`, in a folder
outside the data (real data may be read-only), named by a fingerprint of the source (label or submission file,
every cadence file's size, modification time and inode change time, which no user can set back, `synth.json`) and
of the preprocessing: a changed source gets a new folder. A folder is written under a temporary name, with its
space reserved first (a full disk is named, never a crash), and renamed when complete; it is checked against the
shape it records whenever it is opened. Nothing a running reader may use is deleted: a stale cache is retired once
unused for a day, and what an interrupted build left is swept once its process is gone.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from .cadence import N_FRAMES
from .data import DataError, cadence_path, check_files, folder_geometry, read_cadence, side_ids
from .preprocess import Preprocess
from .runtime import check_free_space, progress_bar, project_dir

CACHE_VERSION = 4  # bump when a cache's content changes for the same key (4: `preprocess.LINE_MASK` 2 -> 4)
RETIRE_AFTER_S = 24 * 3600  # a cache or score file of a source that has since changed, unused this long, goes


def cache_root() -> Path:
    """`$SETI_NB_CACHE`, else `data/cache` in the checkout (or `~/.cache/seti-nb` for a plain install)."""
    if os.environ.get("SETI_NB_CACHE"):
        return Path(os.environ["SETI_NB_CACHE"])
    checkout = project_dir()
    return checkout / "data" / "cache" if checkout else Path.home() / ".cache" / "seti-nb"


def fingerprint(root: str | Path, side: str, ids: list[str], preprocess: Preprocess) -> str:
    """What a cache of `root`'s `side` depends on: the label files, and every cadence file's size, modification and
    inode change times (rewriting a file and setting its modification time back still changes the last)."""
    root = Path(root)
    h = hashlib.sha256(f"{CACHE_VERSION}|{side}|{preprocess.key()}|{root.resolve()}".encode())
    for name in ("train_labels.csv", "sample_submission.csv", "synth.json"):
        if (root / name).is_file():
            h.update(name.encode() + (root / name).read_bytes())
    for cadence_id in ids:
        stat = cadence_path(root, cadence_id, side).stat()
        h.update(f"{cadence_id}:{stat.st_size}:{stat.st_mtime_ns}:{stat.st_ctime_ns};".encode())
    return h.hexdigest()[:16]


def source_stem(root: str | Path, side: str, preprocess: Preprocess) -> str:
    """The name every cache (and score file) of one source and preprocessing begins with, whatever its state."""
    where = hashlib.sha256(str(Path(root).resolve()).encode()).hexdigest()[:6]
    return f"{Path(root).resolve().name}-{where}-{side}-{preprocess.key()}"


def tidy(stem: str, key: str) -> None:
    """Sweep what interrupted writers of the cache folder left (`*.partial-<pid>` of a process that is gone), and
    retire the caches and score files of `stem` made from an older state of the source (another fingerprint than
    `key`) that nobody used for a day: a run still reading one is never robbed of it."""
    now = time.time()
    for path in cache_root().glob("*.partial-*"):
        pid = path.name.rsplit(".partial-", 1)[1]
        if pid.isdigit() and not _alive(int(pid)):
            _remove(path)
    for path in cache_root().glob(f"{stem}-*"):
        if key not in path.name and ".partial-" not in path.name and now - _last_used(path) > RETIRE_AFTER_S:
            _remove(path)


def touch(path: Path) -> None:
    """Mark a cache (or score file) as used now: retirement counts from the last use."""
    with contextlib.suppress(OSError):  # a read-only cache is used all the same
        os.utime(path / "last_used" if path.is_dir() else path)


def _last_used(path: Path) -> float:
    marker = path / "last_used" if path.is_dir() else path
    return marker.stat().st_mtime if marker.exists() else path.stat().st_mtime


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def cached_frames(root: str | Path, side: str, preprocess: Preprocess, workers: int | None = None,
                  progress: bool = True) -> tuple[Path, dict[str, int]]:
    """The cache file of `root`'s `side` under `preprocess` (built on first use, checked against its recorded
    shape) and each id's row in it."""
    root = Path(root)
    ids = side_ids(root, side)
    try:
        key = fingerprint(root, side, ids, preprocess)
    except OSError:
        check_files(root, ids, side)  # names every missing or unreadable file
        raise
    stem = source_stem(root, side, preprocess)
    folder = cache_root() / f"{stem}-{key}"
    tidy(stem, key)
    shape = (len(ids), N_FRAMES, *preprocess.shape(folder_geometry(root)))
    if not (folder / "frames.npy").is_file():
        _build(folder, root, side, ids, preprocess, shape, workers, progress)
    open_frames(folder / "frames.npy", shape)
    touch(folder)
    return folder / "frames.npy", {cadence_id: i for i, cadence_id in enumerate(ids)}


def open_frames(path: Path, shape: tuple[int, ...]) -> np.memmap:
    """A cache's array, memory-mapped read-only, once it is known to hold `shape` float16 values."""
    try:
        frames = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: an unreadable training cache ({e}); remove its folder to rebuild it") from None
    if frames.shape != tuple(shape) or frames.dtype != np.float16:
        raise DataError(f"{path}: a damaged training cache (shape {frames.shape}, {frames.dtype}; expected {shape}, "
                        "float16); remove its folder to rebuild it")
    return frames


def _build(folder: Path, root: Path, side: str, ids: list[str], preprocess: Preprocess, shape, workers, progress):
    """Write the cache under a temporary name (its space reserved first), then rename it into place."""
    check_files(root, ids, side)  # every bad file named at once, before a minute of work
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(f"{folder.name}.partial-{os.getpid()}")
    try:
        tmp.mkdir()
        _reserve(tmp / "frames.npy", shape)
        chunk = 64
        jobs = [(tmp / "frames.npy", root, side, ids[i:i + chunk], i, preprocess) for i in range(0, len(ids), chunk)]
        with progress_bar(total=len(ids), desc=f"caching {side} cadences ({preprocess.key()})", unit="cadence",
                          disable=not progress) as bar, ThreadPoolExecutor(min(workers or os.cpu_count() or 1,
                                                                               len(jobs), 8)) as pool:
            for n in pool.map(_fill, jobs):  # threads: numpy releases the GIL
                bar.update(n)
        pd.DataFrame({"id": ids}).to_csv(tmp / "ids.csv", index=False)
        (tmp / "source.json").write_text(json.dumps({"root": str(root.resolve()), "side": side,
                                                     "preprocess": preprocess.to_dict()}, indent=1) + "\n")
        (tmp / "last_used").touch()
    except BaseException as e:  # Ctrl-C, TERM, a full disk: nothing half-written stays
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, OSError) and e.errno is not None:  # the system's own words, without the where and what
            raise OSError(f"{folder.parent}: could not write the training cache ({e.strerror}); free space or point "
                          "SETI_NB_CACHE elsewhere") from None
        raise
    try:
        tmp.rename(folder)
    except OSError:  # another process finished the same cache first
        shutil.rmtree(tmp, ignore_errors=True)


def _reserve(path: Path, shape) -> None:
    """Create the cache's .npy file with all its space allocated now: a full disk fails here with a message,
    not later, inside a memory-mapped write, as a bus error."""
    size = int(np.prod(shape)) * 2
    check_free_space(path.parent, size + 2**20, "the training cache")  # and a little for its list of ids
    np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=shape).flush()
    with open(path, "r+b") as f:
        try:
            os.posix_fallocate(f.fileno(), 0, os.fstat(f.fileno()).st_size)
        except OSError as e:
            raise OSError(f"{path.parent}: cannot reserve {size / 1e9:.2f} GB for the training cache ({e.strerror}); "
                          "free space or point SETI_NB_CACHE elsewhere") from None


def _fill(args) -> int:
    """Preprocess cadences `start:stop` of `ids` into rows of the cache file (one worker's share)."""
    path, root, side, ids, start, preprocess = args
    frames = np.load(path, mmap_mode="r+", allow_pickle=False)
    for i, cadence_id in enumerate(ids, start):
        frames[i] = preprocess(read_cadence(root, cadence_id, side))
    frames.flush()
    return len(ids)
