"""Reading the Kaggle layout: labels, cadence files with clear errors, splits, folds, a torch Dataset."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .cadence import CADENCE_SHAPE, N_FRAMES, OFF_FRAMES, ON_FRAMES

DTYPES = (np.float16, np.float32)  # Kaggle ships float16; float32 copies are accepted
ID_PATTERN = re.compile(r"^[0-9a-f]{15}$")
# How a model sees a cadence (all from the six preprocessed scans):
LAYOUTS = {
    "frames": "the six scans as six aligned channels (6 x rows x channels)",
    "contrast": "each ON scan minus the OFF scan after it, as three channels (3 x rows x channels)",
    "on_stack": "the three ON scans one above the other, one channel (1 x 3 rows x channels)",
    "all_stack": "all six scans one above the other, one channel (1 x 6 rows x channels)",
    "on_channels": "the three ON scans as three channels (3 x rows x channels)",
}


class DataError(ValueError):
    """A data file that cannot be used; the message names the file and what is wrong."""


def cadence_path(root: str | Path, cadence_id: str, side: str = "train") -> Path:
    """`<root>/<side>/<id[0]>/<id>.npy`, the Kaggle layout."""
    return Path(root) / side / cadence_id[0] / f"{cadence_id}.npy"


def _header(path: Path) -> tuple[tuple, np.dtype, int]:
    """Shape, dtype and data offset of a .npy file, read without loading the array or any pickle."""
    with open(path, "rb") as f:
        major, _ = np.lib.format.read_magic(f)
        read = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read(f)
        return shape, dtype, f.tell()


def inspect_cadence(path: str | Path, full: bool = True) -> str | None:
    """What is wrong with one cadence file, or None when it is a usable cadence.

    Checks existence, the .npy header, shape, dtype, truncation and (with `full`) NaN or inf values.
    """
    path = Path(path)
    if path.is_symlink() and not path.exists():
        return f"broken link (to {os.readlink(path)})"
    if path.is_dir():
        return "a folder, not a cadence file"
    if not path.exists():
        return "file not found"
    if not path.is_file():
        return "not a regular file"
    try:
        shape, dtype, offset = _header(path)
    except Exception as e:  # not a .npy file, or a damaged header
        return f"not a readable .npy file ({e})"
    if dtype.hasobject:
        return "holds Python objects (pickled data), refused"
    if tuple(shape) != CADENCE_SHAPE:
        return f"shape {tuple(shape)}, expected {CADENCE_SHAPE}"
    if dtype not in DTYPES:
        return f"dtype {dtype}, expected float16 (or float32)"
    expected = offset + int(np.prod(shape)) * dtype.itemsize
    size = path.stat().st_size
    if size < expected:
        return f"truncated: {size} bytes, expected {expected}"
    if size > expected:
        return f"{size - expected} unexpected bytes after the array ({size} bytes, expected {expected})"
    if full:
        data = np.load(path, mmap_mode="r", allow_pickle=False)
        bad = ~np.isfinite(data)
        if bad.any():
            frames = sorted({int(i) for i in np.nonzero(bad)[0]})
            return f"{int(bad.sum())} NaN/inf values in frames {frames}"
    return None


def load_cadence(path: str | Path, frames=None) -> np.ndarray:
    """One cadence as float32 `(len(frames), 273, 256)`; raises DataError naming the file and the fault.

    The file is memory-mapped, so only the asked-for frames are read from disk.
    """
    problem = inspect_cadence(path, full=False)
    if problem:
        raise DataError(f"{path}: {problem}")
    data = np.load(path, mmap_mode="r", allow_pickle=False)
    data = np.asarray(data if frames is None else data[list(frames)], dtype=np.float32)
    if not np.isfinite(data).all():
        raise DataError(f"{path}: {int((~np.isfinite(data)).sum())} NaN/inf values")
    return data


def check_files(root: str | Path, ids, side: str = "train") -> None:
    """The fast header check of every file a run will read (existence, shape, dtype, size), before the run:
    a bad file is named now, not after an hour of training. Raises DataError listing the faults."""
    faults = [(path, fault) for path in (cadence_path(root, i, side) for i in ids)
              if (fault := inspect_cadence(path, full=False))]
    if faults:
        shown = "; ".join(f"{path}: {fault}" for path, fault in faults[:3])
        more = f" (and {len(faults) - 3} more; `seti-nb check {root}` lists them all)" if len(faults) > 3 else ""
        raise DataError(f"{len(faults)} unusable cadence files: {shown}{more}")


def read_labels(root: str | Path, name: str = "train_labels.csv") -> pd.DataFrame:
    """The label file `id,target` (0 or 1), validated; raises DataError naming the file and rows at fault."""
    path = Path(root) / name
    if not path.is_file():
        raise DataError(f"{path}: label file not found (expected the Kaggle layout: train_labels.csv, train/)")
    try:
        labels = pd.read_csv(path, dtype={"id": str})
    except Exception as e:
        raise DataError(f"{path}: not a readable CSV ({e})") from e
    if list(labels.columns) != ["id", "target"]:
        raise DataError(f"{path}: columns {list(labels.columns)}, expected ['id', 'target']")
    problems = _label_problems(labels)
    if problems:
        raise DataError(f"{path}: " + "; ".join(problems))
    labels["target"] = labels.target.astype(int)
    return labels


def _id_problems(ids: pd.Series) -> list[str]:
    """Blank, malformed (not 15 hex characters: a path is refused here) or duplicate ids, each with its row."""
    problems = []
    bad_ids = ids[~ids.fillna("").str.fullmatch(ID_PATTERN)]
    if len(bad_ids):
        shown = "blank" if pd.isna(bad_ids.iloc[0]) else repr(bad_ids.iloc[0])
        problems.append(f"{len(bad_ids)} blank or malformed ids (expected 15 hex characters), first: {shown}"
                        f" on row {bad_ids.index[0] + 2}")
    dup = ids[ids.duplicated() & ids.notna()]
    if len(dup):
        problems.append(f"{len(dup)} duplicate ids, first: {dup.iloc[0]} on row {dup.index[0] + 2}")
    return problems


def _label_problems(labels: pd.DataFrame) -> list[str]:
    problems = _id_problems(labels.id)
    bad = ~labels.target.isin([0, 1])
    if bad.any():
        first = labels.index[bad][0]
        problems.append(f"{int(bad.sum())} targets not 0 or 1, first: {labels.target[first]} for id "
                        f"{labels.id[first]!r} on row {first + 2}")
    return problems


def read_truth(root: str | Path) -> pd.DataFrame | None:
    """The synthetic truth table (signal kind, SNR, drift, ...) when the data set has one, else None."""
    path = Path(root) / "truth.csv"
    if not path.is_file():
        return None
    try:
        truth = pd.read_csv(path, dtype={"id": str, "on_frames": str, "backgrounds": str})
    except Exception as e:
        raise DataError(f"{path}: not a readable CSV ({e})") from e
    missing = {"id", "target"} - set(truth.columns)
    if missing:
        raise DataError(f"{path}: no {sorted(missing)} column")
    problems = _id_problems(truth.id)
    if problems:
        raise DataError(f"{path}: " + "; ".join(problems))
    return truth


def truth_problems(root: str | Path, labels: pd.DataFrame) -> list[str]:
    """How a synthetic data set's truth.csv disagrees with its label file (ids missing, other targets)."""
    truth = read_truth(root)
    if truth is None:
        return []
    merged = labels.merge(truth[["id", "target"]], on="id", how="left", suffixes=("", "_truth"))
    problems = []
    absent = merged.id[merged.target_truth.isna()]
    if len(absent):
        problems.append(f"{len(absent)} labelled ids missing, first: {absent.iloc[0]}")
    other = merged[merged.target_truth.notna() & (merged.target != merged.target_truth)]
    if len(other):
        problems.append(f"{len(other)} targets differ from train_labels.csv, first: id {other.id.iloc[0]}")
    return problems


def submission_ids(root: str | Path) -> list[str]:
    """Ids of the unlabelled side: sample_submission.csv (validated) where present, else the files under test/."""
    root = Path(root)
    path = root / "sample_submission.csv"
    if not path.is_file():
        return sorted(p.stem for p in (root / "test").glob("*/*.npy"))
    try:
        sub = pd.read_csv(path, dtype={"id": str})
    except Exception as e:
        raise DataError(f"{path}: not a readable CSV ({e})") from e
    if "id" not in sub.columns:
        raise DataError(f"{path}: no 'id' column (columns {list(sub.columns)}), expected id,target")
    problems = _id_problems(sub.id)
    if problems:
        raise DataError(f"{path}: " + "; ".join(problems))
    return sub.id.tolist()


def map_cadences(function, root: str | Path, ids, side: str = "train", processes: int | None = None,
                 desc: str = "", progress: bool = True) -> list:
    """`function(cadence)` for every id of `root`'s `side`, in order, spread over worker processes (one per core
    by default) with a progress bar. The same results whatever the number of processes."""
    from functools import partial

    from .runtime import parallel_map, progress_bar

    ids = list(ids)
    batches = [ids[i: i + 8] for i in range(0, len(ids), 8)]
    with progress_bar(total=len(ids), desc=desc, unit="cadence", disable=not progress) as bar:
        done = parallel_map(partial(_apply, function, str(root), side), batches, processes,
                            each=lambda batch: bar.update(len(batch)))
    return [result for batch in done for result in batch]


def _apply(function, root: str, side: str, ids: list[str]) -> list:
    return [function(load_cadence(cadence_path(root, i, side))) for i in ids]


# ---- splits -------------------------------------------------------------------------------------------

def split(labels: pd.DataFrame, test_size: float = 0.3, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A reproducible stratified split: 70/30 train/test by default (as in the original study)."""
    from sklearn.model_selection import train_test_split

    a, b = train_test_split(labels, test_size=test_size, random_state=seed, stratify=labels.target)
    return a.reset_index(drop=True), b.reset_index(drop=True)


def stratified_sample(items: pd.DataFrame, n: int, seed: int = 0) -> pd.DataFrame:
    """About `n` rows of `items` with its share of each class (all of them when `n` is 0 or larger)."""
    if not n:
        return items
    return items.groupby("target").sample(frac=min(1.0, n / len(items)), random_state=seed)


def assign_folds(labels: pd.DataFrame, k: int = 5, seed: int = 0) -> pd.DataFrame:
    """`labels` with a `fold` column (0..k-1) from a stratified K-fold."""
    from sklearn.model_selection import StratifiedKFold

    folds = labels.reset_index(drop=True).copy()
    folds["fold"] = -1
    for fold, (_, idx) in enumerate(StratifiedKFold(k, shuffle=True, random_state=seed).split(folds, folds.target)):
        folds.loc[idx, "fold"] = fold
    return folds


def folds_csv(path: str | Path, labels: pd.DataFrame, k: int = 5, seed: int = 0) -> pd.DataFrame:
    """The fold assignment stored at `path`, written there first if absent.

    An existing file is reused only when it covers exactly these ids with k folds; otherwise a clear error,
    since silently re-splitting would make runs incomparable.
    """
    path = Path(path)
    if not path.exists():
        folds = assign_folds(labels, k, seed)
        path.parent.mkdir(parents=True, exist_ok=True)
        folds.to_csv(path, index=False)
        return folds
    folds = pd.read_csv(path, dtype={"id": str})
    if list(folds.columns) != ["id", "target", "fold"]:
        raise DataError(f"{path}: columns {list(folds.columns)}, expected ['id', 'target', 'fold']")
    if set(folds.id) != set(labels.id) or len(folds) != len(labels):
        raise DataError(f"{path}: fold file covers other ids than these labels; delete it or pass another path")
    if sorted(folds.fold.unique()) != list(range(k)):
        raise DataError(f"{path}: folds {sorted(folds.fold.unique())}, expected 0..{k - 1}")
    return folds


# ---- the torch side -----------------------------------------------------------------------------------

def layout_channels(layout: str) -> int:
    """Input channels of a layout."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; choose one of {tuple(LAYOUTS)}")
    return {"frames": N_FRAMES, "contrast": 3, "on_channels": 3}.get(layout, 1)


def to_layout(frames: np.ndarray, layout: str) -> np.ndarray:
    """The six (preprocessed) scans `(6, rows, channels)` arranged as a `(channels, height, width)` image."""
    if len(frames) != N_FRAMES:
        raise ValueError(f"expected the six frames of a cadence, got {len(frames)}")
    layout_channels(layout)  # validates the name
    if layout == "frames":
        return frames
    if layout == "contrast":
        return frames[list(ON_FRAMES)] - frames[list(OFF_FRAMES)]
    if layout == "on_channels":
        return frames[list(ON_FRAMES)]
    chosen = frames[list(ON_FRAMES)] if layout == "on_stack" else frames
    return chosen.reshape(1, -1, frames.shape[-1])


class CadenceDataset:
    """A torch Dataset over one side of a Kaggle-layout folder: preprocessed cadences in a chosen layout.

    `items` has an `id` column and, for labelled data, `target`. Reduced resolutions come from the training
    cache (built on first use, `seti_nb.cache`); full resolution streams from the files, header-checked first.
    `transform` (a callable on the six preprocessed scans, float32 `(6, rows, channels)`, for augmentation; it must
    not write into them) is given by whoever builds the training set.
    """

    def __init__(self, root: str | Path, items: pd.DataFrame, layout: str = "frames", preprocess=None,
                 side: str = "train", transform=None, cache: bool = True, progress: bool = True):
        from .preprocess import Preprocess

        self.root, self.layout, self.side, self.transform = Path(root), layout, side, transform
        self.preprocess = preprocess or Preprocess()
        self.channels = layout_channels(layout)
        self.items = items.reset_index(drop=True)
        self.targets = (self.items.target.to_numpy(np.float32) if "target" in self.items
                        else np.zeros(len(self.items), np.float32))
        self.cache_file, self.rows = None, None
        if cache and not self.preprocess.full_resolution:
            from .cache import cached_frames

            self.cache_file, index = cached_frames(root, side, self.preprocess, progress=progress)
            missing = [i for i in self.items.id if i not in index]
            if missing:
                raise DataError(f"{root}: {len(missing)} ids not on its {side} side, first: {missing[0]}")
            self.rows = np.array([index[i] for i in self.items.id], dtype=np.int64)
        else:  # streamed: every file it will read is header-checked now (a cache checks them when it is built)
            check_files(root, self.items.id, side)
        self._frames = None

    def __len__(self) -> int:
        return len(self.items)

    def frames(self, i: int) -> np.ndarray:
        """The six preprocessed scans of item i, float32."""
        if self.cache_file is None:
            return self.preprocess(load_cadence(cadence_path(self.root, self.items.id[i], self.side)))
        import torch

        if self._frames is None:  # opened lazily: a memmap must not travel to DataLoader workers
            self._frames = np.load(self.cache_file, mmap_mode="r", allow_pickle=False)
        # float16 -> float32 by torch: vectorised, seven times faster than NumPy's cast (the same values)
        return torch.from_numpy(np.array(self._frames[self.rows[i]])).float().numpy()

    def __getitem__(self, i: int):
        import torch

        frames = self.frames(i)
        if self.transform is not None:
            frames = self.transform(frames)
        return torch.from_numpy(np.ascontiguousarray(to_layout(frames, self.layout))), torch.tensor(self.targets[i])

    def __getstate__(self):
        return {**self.__dict__, "_frames": None}


# ---- validating a whole data set ----------------------------------------------------------------------

@dataclass
class CheckReport:
    """What `check_dataset` found: counts, and every problem as (file, what is wrong)."""

    root: Path
    cadences: int = 0
    needles: int = 0
    haystack: int = 0
    test_listed: int = 0
    test_present: int = 0
    problems: list[tuple[str, str]] = field(default_factory=list)
    labels_read: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems

    def __str__(self) -> str:
        lines = [f"{self.root}: {self.cadences} labelled cadences, {self.needles} needles, {self.haystack} haystack"
                 if self.labels_read else f"{self.root}: label file not usable (below); the files were still checked"]
        if self.test_listed or self.test_present:
            lines.append(f"test side: {self.test_present} cadence files present for {self.test_listed} listed ids")
        if self.problems:
            lines.append(f"{len(self.problems)} problems:")
            lines += [f"  {where}: {what}" for where, what in self.problems]
        else:
            lines.append("no problems found")
        return "\n".join(lines)


def check_dataset(root: str | Path, progress: bool = True) -> CheckReport:
    """Validate a Kaggle-layout folder: the label file, every listed and every present cadence file.

    Missing, extra, unreadable, truncated, wrong-shaped or wrong-typed files, NaN or inf values, malformed or
    duplicate ids and bad targets are all reported, each with its file. On the test side a partial download
    is normal: files listed in sample_submission.csv but absent are counted, not reported.
    """
    from .runtime import progress_bar

    root = Path(root)
    report = CheckReport(root)

    def problem(error: DataError) -> None:
        where, _, what = str(error).partition(": ")
        report.problems.append((where, what))

    if not root.is_dir():
        report.problems.append((str(root), "folder not found"))
        return report
    from .synth import unfinished_synthesis

    unfinished = unfinished_synthesis(root)
    if unfinished:  # its files are incomplete by definition
        report.problems.append((str(root), unfinished))
        return report
    train_files = {p.stem: p for p in (root / "train").glob("*/*.npy")}
    files = sorted(train_files.values())
    try:
        labels = read_labels(root)
    except DataError as e:  # the files are still checked
        problem(e)
        labels = None
    if labels is not None:
        report.labels_read = True
        report.cadences = len(labels)
        report.needles = int(labels.target.sum())
        report.haystack = report.cadences - report.needles
        for cadence_id in labels.id:
            if cadence_id not in train_files:
                report.problems.append((str(cadence_path(root, cadence_id)),
                                        "listed in train_labels.csv but file not found"))
        for cadence_id in sorted(set(train_files) - set(labels.id)):
            report.problems.append((str(train_files[cadence_id]), "file not listed in train_labels.csv"))
        try:
            report.problems += [(str(root / "truth.csv"), p) for p in truth_problems(root, labels)]
        except DataError as e:
            problem(e)
    for path in train_files.values():
        if path != cadence_path(root, path.stem):
            report.problems.append((str(path), f"in folder {path.parent.name}/, expected {path.stem[0]}/"))

    test_files = {p.stem: p for p in (root / "test").glob("*/*.npy")}
    try:
        listed = submission_ids(root)
    except DataError as e:
        problem(e)
        listed = sorted(test_files)
    report.test_listed = len(listed)
    report.test_present = len(set(listed) & set(test_files))
    if (root / "sample_submission.csv").is_file():
        for cadence_id in sorted(set(test_files) - set(listed)):
            report.problems.append((str(test_files[cadence_id]), "file not listed in sample_submission.csv"))
    files += sorted(test_files.values())

    for path in progress_bar(files, desc="checking cadences", unit="file", disable=not progress):
        fault = inspect_cadence(path)
        if fault:
            report.problems.append((str(path), fault))
    return report


def file_statistics(cadence: np.ndarray) -> dict[str, float]:
    """Whole-file statistics pooled over all six frames: what the first Kaggle release leaked through."""
    from scipy.stats import kurtosis

    x = np.asarray(cadence, dtype=np.float64).ravel()
    return {"mean": x.mean(), "std": x.std(), "min": x.min(), "max": x.max(), "kurtosis": kurtosis(x),
            "p99": np.percentile(x, 99)}
