"""Where things go and how runs repeat: the checkout, new run folders, new output files, seeding, the compute
device, worker processes; and the checks every setting passes where it enters."""

from __future__ import annotations

import contextlib
import ctypes
import math
import numbers
import os
import random
import shutil
import signal
import tempfile
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm


def progress_bar(iterable=None, **kwargs):
    """The workbook's progress bar: tqdm.auto, redrawn at most once a second. In a notebook every redraw is a
    message to the front end; a kernel that sends thousands while a headless client (nbval) is not reading drops
    the excess, the end of the cell among them."""
    return tqdm(iterable, **{"mininterval": 1.0, **kwargs})


def project_dir() -> Path | None:
    """The checkout this package runs from (editable install), or None for a plain install."""
    checkout = Path(__file__).resolve().parents[1]
    return checkout if (checkout / "pyproject.toml").is_file() else None


def runs_dir() -> Path:
    checkout = project_dir()
    return checkout / "runs" if checkout else Path.cwd() / "runs"


def new_folder(parent: str | os.PathLike, name: str) -> Path:
    """A new folder `parent/name`, or `name-2`, `name-3`... : earlier runs are never written over."""
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    for i in range(1, 10_000):
        path = parent / (name if i == 1 else f"{name}-{i}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise RuntimeError(f"{parent}: no free folder name for {name}")


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch, and ask torch for deterministic kernels (CPU results repeat exactly)."""
    import torch  # deferred on purpose: this module also serves torch-free work (synthesis workers, the command line)

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    # deterministic mode also fills every new tensor with NaN (a debugging aid for reads of uninitialised memory):
    # a fifth of a CPU training step here, and no kernel of ours reads memory it did not write
    torch.utils.deterministic.fill_uninitialized_memory = False
    torch.backends.cudnn.benchmark = False


def pick_device(device: str = "auto") -> str:
    """'cuda' when asked for or available with 'auto', else 'cpu'; a clear error for an absent GPU."""
    import torch  # deferred on purpose, as in seed_everything

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device='cuda' asked for, but torch sees no GPU; use device='auto' or 'cpu'")
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}")
    return device


def check_whole(name: str, value, low: int = 1) -> None:
    """A whole number of at least `low`, or a ValueError naming the setting."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{name} must be a whole number of at least {low}, got {value!r}")


def check_number(name: str, value, low: float = 0.0, high: float = math.inf, low_open: bool = False,
                 high_open: bool = False) -> None:
    """A finite number between `low` and `high` (either end excluded where asked), or a ValueError naming it:
    NaN and infinity are refused everywhere, so no blank score or empty cache ever comes of them."""
    ok = (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
          and (value > low if low_open else value >= low) and (value < high if high_open else value <= high))
    if not ok:
        ends = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open or high == math.inf else ']'}"
        raise ValueError(f"{name} must be a finite number in {ends}, got {value!r}")


def check_choice(name: str, value, allowed) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {tuple(allowed)}, got {value!r}")


def check_new_file(path: str | os.PathLike) -> None:
    """Refuse, before any work, an output file that exists or whose folder is missing or not writable."""
    path = Path(path)
    if path.exists() or path.is_symlink():
        raise FileExistsError(f"{path}: exists; choose a new file name (nothing is overwritten)")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"{path.parent}: output folder not found")
    check_writable(path.parent)


def check_writable(folder: str | os.PathLike) -> None:
    """Refuse, before any work, a folder (made if absent) that cannot be written."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".seti-nb-probe."):
            pass
    except OSError as e:
        raise PermissionError(f"{folder}: cannot write there ({e.strerror})") from None


def check_free_space(folder: str | os.PathLike, needed: int, what: str) -> None:
    """Refuse, before writing, when the file system of `folder` has fewer than `needed` bytes free for `what`."""
    folder = Path(folder)
    free = shutil.disk_usage(next(p for p in (folder, *folder.parents) if p.exists())).free
    if needed > free:
        raise OSError(f"{folder}: {what} needs about {_size(needed)}, only {_size(free)} free; free space or write "
                      "elsewhere")


def _size(n: float) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{n / 1e6:.0f} MB"


def _readable_by_others(path: Path) -> None:
    """Give a file made by `tempfile` (mode 0600) the permissions the user's umask gives any new file."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)


def write_new_csv(frame, path: str | os.PathLike) -> None:
    """Write a DataFrame to a new file, complete or not at all, never replacing a file that appeared meanwhile
    (written beside it, then hard-linked into place: the link fails if the name is taken)."""
    path = Path(path)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.", suffix=".tmp",
                                     delete=False) as f:
        tmp = Path(f.name)
    try:
        frame.to_csv(tmp, index=False)
        _readable_by_others(tmp)
        os.link(tmp, path)
    except FileExistsError:
        raise FileExistsError(f"{path}: was created by someone else meanwhile; nothing written over it") from None
    finally:
        tmp.unlink()


def workers(asked: int | None = None) -> int:
    """Worker processes for work spread over cadences: `asked`, or one per CPU core, at most 8."""
    return max(1, min(asked or os.cpu_count() or 1, 8))


def parallel_map(function, items, processes: int | None = None, ordered: bool = True, each=None) -> list:
    """`function` over `items` in worker processes: the results, in the order of `items` unless `ordered=False`;
    `each(result)` is called as each one arrives (a progress bar). `function` and the items must pickle (a
    module-level function, or a partial of one).

    Workers are spawned fresh (nothing inherited from a notebook's kernel), die with this process (even on
    `kill -9`) and leave Ctrl-C to it; Ctrl-C or an error, in a worker or in `each`, stops them all at once. A
    worker that dies (a script that calls this without `if __name__ == "__main__":` kills every worker as it
    starts, since a spawned worker runs the script's top level again) is an error, never a wait.
    With one process, the work runs here."""
    items = list(items)
    processes = min(workers(processes), len(items) or 1)
    if processes == 1:
        return [_each(function(item), each) for item in items]
    pool = ProcessPoolExecutor(processes, get_context("spawn"), initializer=_worker_init, initargs=(os.getpid(),))
    try:
        futures = [pool.submit(function, item) for item in items]
        results = {}
        for future in (futures if ordered else as_completed(futures)):
            results[future] = _each(future.result(), each)
        return [results[future] for future in futures]
    except BrokenProcessPool:
        raise RuntimeError("worker processes died as they started; from a script, call the workbook under "
                           "`if __name__ == \"__main__\":` (a spawned worker runs the script's top level "
                           "again)") from None
    except BaseException:
        for worker in list(pool._processes.values()):  # stopped now, not after their current item
            worker.kill()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _each(result, each):
    if each is not None:
        each(result)
    return result


def _worker_init(parent: int) -> None:
    """A worker dies with its parent (even a `kill -9` of it) and leaves Ctrl-C to the parent."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with contextlib.suppress(OSError, AttributeError):  # not Linux: the worker simply outlives a killed parent
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG (Linux)
    if os.getppid() != parent:  # the parent died before the line above
        os._exit(1)
