"""Reading the Kaggle layout: label files, cadence files with clear errors, the ids of each side, an unfinished
synthesis, and the check of a whole data set. Everything that reads a data folder goes through here."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from .cadence import CADENCE_SHAPE, KAGGLE, Geometry
from .runtime import parallel_map, progress_bar

DTYPES = (np.float16, np.float32)  # Kaggle ships float16; float32 copies are accepted
ID_PATTERN = re.compile(r"^[0-9a-f]{15}$")
UNFINISHED = ".synth-unfinished.json"  # present while a synthesis is under way (or was interrupted)
GEOMETRY = "geometry.json"  # a folder's cadence geometry, where it is not Kaggle's


class DataError(ValueError):
    """A data file that cannot be used; the message names the file and what is wrong."""


def cadence_path(root: str | Path, cadence_id: str, side: str = "train") -> Path:
    """`<root>/<side>/<id[0]>/<id>.npy`, the Kaggle layout."""
    return Path(root) / side / cadence_id[0] / f"{cadence_id}.npy"


def folder_geometry(root: str | Path) -> Geometry:
    """A folder's cadence geometry: its geometry.json (`seti-nb synth --like`, `scan --snippets`), else Kaggle's."""
    path = Path(root) / GEOMETRY
    if not path.is_file():
        return KAGGLE
    try:
        return Geometry.from_dict(json.loads(path.read_text()), str(path))
    except ValueError as e:  # JSONDecodeError is one
        raise DataError(f"{path}: not JSON ({e})" if isinstance(e, json.JSONDecodeError) else str(e)) from None


def write_geometry(root: str | Path, geometry: Geometry) -> None:
    """Record a folder's geometry (nothing for Kaggle's, so a Kaggle-layout folder stays as Kaggle's are)."""
    if geometry != KAGGLE:
        (Path(root) / GEOMETRY).write_text(json.dumps(geometry.to_dict(), indent=1) + "\n")


def _header(path: Path) -> tuple[tuple, np.dtype, int]:
    """Shape, dtype and data offset of a .npy file, read without loading the array or any pickle."""
    with open(path, "rb") as f:
        major, _ = np.lib.format.read_magic(f)
        read = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read(f)
        return shape, dtype, f.tell()


def inspect_cadence(path: str | Path, full: bool = True, shape: tuple = CADENCE_SHAPE) -> str | None:
    """What is wrong with one cadence file, or None when it is a usable cadence of `shape`.

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
        found, dtype, offset = _header(path)
    except Exception as e:  # not a .npy file, or a damaged header
        return f"not a readable .npy file ({e})"
    if dtype.hasobject:
        return "holds Python objects (pickled data), refused"
    if tuple(found) != tuple(shape):
        return f"shape {tuple(found)}, expected {tuple(shape)}"
    if dtype not in DTYPES:
        return f"dtype {dtype}, expected float16 (or float32)"
    expected = offset + int(np.prod(found)) * dtype.itemsize
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


def load_cadence(path: str | Path, frames=None, shape: tuple = CADENCE_SHAPE) -> np.ndarray:
    """One cadence of `shape` as float32 `(len(frames), rows, channels)`; raises DataError naming the file and the
    fault. The file is memory-mapped, so only the asked-for frames are read from disk.
    """
    problem = inspect_cadence(path, full=False, shape=shape)
    if problem:
        raise DataError(f"{path}: {problem}")
    data = np.load(path, mmap_mode="r", allow_pickle=False)
    data = np.asarray(data if frames is None else data[list(frames)], dtype=np.float32)
    if not np.isfinite(data).all():
        raise DataError(f"{path}: {int((~np.isfinite(data)).sum())} NaN/inf values")
    return data


def read_cadence(root: str | Path, cadence_id: str, side: str = "train", frames=None) -> np.ndarray:
    """Cadence `cadence_id` of `root`'s `side`, float32, of the folder's geometry (see `load_cadence`)."""
    return load_cadence(cadence_path(root, cadence_id, side), frames, folder_geometry(root).cadence_shape)


def check_files(root: str | Path, ids, side: str = "train") -> None:
    """The fast header check of every file a run will read (existence, shape, dtype, size), before the run:
    a bad file is named now, not after an hour of training. Raises DataError listing the faults."""
    shape = folder_geometry(root).cadence_shape
    faults = [(path, fault) for path in (cadence_path(root, i, side) for i in ids)
              if (fault := inspect_cadence(path, full=False, shape=shape))]
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
        labels = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
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
    """Id problems, and targets that are not the whole numbers 0 or 1 as written (not `True`, `1.0` or blank)."""
    problems = _id_problems(labels.id)
    bad = ~labels.target.fillna("").str.strip().isin(["0", "1"])
    if bad.any():
        first = labels.index[bad][0]
        shown = "blank" if pd.isna(labels.target[first]) else repr(labels.target[first])
        problems.append(f"{int(bad.sum())} targets not 0 or 1, first: {shown} for id {labels.id[first]!r} "
                        f"on row {first + 2}")
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


def read_scores(path: str | Path) -> pd.DataFrame:
    """A score file `id,target` with probabilities (a Kaggle submission, what `seti-nb predict` writes), validated:
    ids as in a label file, every target a finite number from 0 to 1."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: score file not found")
    try:
        scores = pd.read_csv(path, dtype={"id": str})
    except Exception as e:
        raise DataError(f"{path}: not a readable CSV ({e})") from e
    if list(scores.columns) != ["id", "target"]:
        raise DataError(f"{path}: columns {list(scores.columns)}, expected ['id', 'target']")
    problems = _id_problems(scores.id)
    target = pd.to_numeric(scores.target, errors="coerce")
    bad = ~target.between(0, 1)  # NaN, text and numbers out of range alike
    if bad.any():
        first = scores.index[bad][0]
        problems.append(f"{int(bad.sum())} targets not a probability from 0 to 1, first: {scores.target[first]!r} "
                        f"on row {first + 2}")
    if problems:
        raise DataError(f"{path}: " + "; ".join(problems))
    return scores.assign(target=target.astype(float))


def side_ids(root: str | Path, side: str) -> list[str]:
    """The cadences of one side: the label file's ids (`train`), or the listed test files present (`test`). Every
    reader of a whole side comes here, so an unfinished synthesis is refused here, with what to do."""
    unfinished = unfinished_synthesis(root)
    if unfinished:
        raise DataError(f"{root}: {unfinished}")
    if side == "train":
        return read_labels(root).id.tolist()
    return [i for i in submission_ids(root) if cadence_path(root, i, side).is_file()]


def unfinished_synthesis(root: str | os.PathLike) -> str | None:
    """What to do with a folder whose synthesis was interrupted, or None when it holds none. Every reader of
    a whole side (check, train, predict, dedoppler) refuses such a folder: its files are incomplete."""
    marker = Path(root) / UNFINISHED
    if not marker.is_file():
        return None
    meta = json.loads(marker.read_text())
    command = (f"seti-nb synth {root} --n {meta['n']} --seed {meta['seed']} "
               + ("--twins" if meta.get("twins") else f"--positive-fraction {meta['positive_fraction']} "
                                                      f"--test-fraction {meta['test_fraction']}"))
    return f"an unfinished synthesis (interrupted): run `{command}` to finish it, or remove the folder"


def map_cadences(function, root: str | Path, ids, side: str = "train", processes: int | None = None,
                 desc: str = "", progress: bool = True) -> list:
    """`function(cadence)` for every id of `root`'s `side`, in order, spread over worker processes (one per core
    by default) with a progress bar. The same results whatever the number of processes."""
    ids = list(ids)
    batches = [ids[i: i + 8] for i in range(0, len(ids), 8)]
    with progress_bar(total=len(ids), desc=desc, unit="cadence", disable=not progress) as bar:
        done = parallel_map(partial(_apply, function, str(root), side), batches, processes,
                            each=lambda batch: bar.update(len(batch)))
    return [result for batch in done for result in batch]


def _apply(function, root: str, side: str, ids: list[str]) -> list:
    return [function(read_cadence(root, i, side)) for i in ids]


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
    root = Path(root)
    report = CheckReport(root)
    if not root.is_dir():
        report.problems.append((str(root), "folder not found"))
        return report
    unfinished = unfinished_synthesis(root)
    if unfinished:  # its files are incomplete by definition
        report.problems.append((str(root), unfinished))
        return report
    try:
        shape = folder_geometry(root).cadence_shape
    except DataError as e:
        _note(report, e)
        return report
    train_files = _check_train_side(root, report)
    test_files = _check_test_side(root, report)
    for path in progress_bar(sorted(train_files) + sorted(test_files), desc="checking cadences", unit="file",
                             disable=not progress):
        fault = inspect_cadence(path, shape=shape)
        if fault:
            report.problems.append((str(path), fault))
    return report


def _note(report: CheckReport, error: DataError) -> None:
    where, _, what = str(error).partition(": ")
    report.problems.append((where, what))


def _check_train_side(root: Path, report: CheckReport) -> list[Path]:
    """The label file against the train/ files (and truth.csv); the files present, to be checked one by one."""
    train_files = {p.stem: p for p in (root / "train").glob("*/*.npy")}
    if not train_files and not (root / "train_labels.csv").exists() and (root / "test").is_dir():
        return []  # a folder of unlabelled cadences only (as `seti-nb scan --snippets` writes)
    try:
        labels = read_labels(root)
    except DataError as e:  # the files are still checked
        _note(report, e)
        labels = None
    if labels is not None:
        report.labels_read = True
        report.cadences = len(labels)
        report.needles = int(labels.target.sum())
        report.haystack = report.cadences - report.needles
        report.problems += [(str(cadence_path(root, i)), "listed in train_labels.csv but file not found")
                            for i in labels.id if i not in train_files]
        report.problems += [(str(train_files[i]), "file not listed in train_labels.csv")
                            for i in sorted(set(train_files) - set(labels.id))]
        try:
            report.problems += [(str(root / "truth.csv"), p) for p in truth_problems(root, labels)]
        except DataError as e:
            _note(report, e)
    report.problems += [(str(path), f"in folder {path.parent.name}/, expected {path.stem[0]}/")
                        for path in train_files.values() if path != cadence_path(root, path.stem)]
    return list(train_files.values())


def _check_test_side(root: Path, report: CheckReport) -> list[Path]:
    """sample_submission.csv against the test/ files; the files present, to be checked one by one."""
    test_files = {p.stem: p for p in (root / "test").glob("*/*.npy")}
    try:
        listed = submission_ids(root)
    except DataError as e:
        _note(report, e)
        listed = sorted(test_files)
    report.test_listed = len(listed)
    report.test_present = len(set(listed) & set(test_files))
    if (root / "sample_submission.csv").is_file():
        report.problems += [(str(test_files[i]), "file not listed in sample_submission.csv")
                            for i in sorted(set(test_files) - set(listed))]
    return list(test_files.values())
