"""A scan's candidates as Kaggle-layout cadences: the six scans along each candidate's path (de-drifted: the path
stands in the middle), cut at the rows searched by 256 channels (frequency ascending, as the generator's),
standardised scan by scan as the generator's are; scored by a checkpoint trained at that geometry, or written as a
data folder that every other command reads (`seti-nb check`, `predict`, `dedoppler`, the notebooks' browsers)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import TensorDataset

from .cadence import Geometry
from .data import DataError, write_geometry
from .dataset import to_layout
from .preprocess import Preprocess
from .runtime import progress_bar
from .scan import Cadence, read_chunk
from .train import check_geometry, load_checkpoint, model_from_checkpoint, predict

CHANNELS = 256


def snippet_geometry(cadence: Cadence) -> Geometry:
    """The geometry of a cadence's snippets: its rows searched by 256 channels, its own slews."""
    g = cadence.grid
    slew = float(np.mean(np.diff(cadence.starts_s))) - g.rows * g.row_seconds
    return g.cadence_geometry(max(slew, 0.0), CHANNELS)


def cut(cadence: Cadence, candidate) -> tuple[np.ndarray, int]:
    """The six scans around one candidate (a row of a scan's table), float16 `(6, rows, 256)`, de-drifted at the
    candidate's drift: each row's window is centred where the candidate's path is halfway through that row, so the
    path stands in the middle of all six scans however steep (a needle of 4 Hz/s crosses 418 channels in one BL
    scan, more than a fixed window's 256), and the OFF scans are read where the path would be by then (interference
    that continues through them stands there too). Each scan standardised (mean 0, standard deviation 1); and the
    file channel the window starts at in the first row."""
    g = cadence.grid
    if g.channels < CHANNELS:
        raise DataError(f"{cadence.paths[0]}: {g.channels} channels, fewer than a snippet's {CHANNELS}")
    rate = candidate["drift_hz_s"] / g.channel_hz  # file channels a second
    rows = np.arange(cadence.rows)
    scans, first = [], None
    for path, start in zip(cadence.paths, cadence.starts_s):
        centre = candidate["channel"] + rate * (start + (rows + 0.5) * g.row_seconds)
        lo = np.clip(np.rint(centre).astype(int) - CHANNELS // 2, 0, g.channels - CHANNELS)
        chunk = read_chunk(path, g, int(lo.min()), int(lo.max()) + CHANNELS, cadence.rows)
        scans.append(chunk[rows[:, None], (lo - lo.min())[:, None] + np.arange(CHANNELS)])
        first = int(lo[0]) if first is None else first
    scans = np.stack(scans).astype(np.float64)
    if g.channel_hz < 0:  # BL's files descend in frequency; snippets ascend, as the generator's
        scans = scans[..., ::-1]
    scans -= scans.mean(axis=(1, 2), keepdims=True)
    scans /= np.maximum(scans.std(axis=(1, 2), keepdims=True), np.finfo(np.float32).tiny)
    return scans.astype(np.float16), first


def cut_all(cadence: Cadence, candidates: pd.DataFrame, progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """`cut` for every row of `candidates`: the snippets `(n, 6, rows, 256)` and their first channels."""
    rows = progress_bar(candidates.iterrows(), total=len(candidates), desc="cutting snippets", unit="candidate",
                        disable=not progress)
    cuts = [cut(cadence, candidate) for _, candidate in rows]
    shape = (0, *snippet_geometry(cadence).cadence_shape)
    return (np.stack([c for c, _ in cuts]) if cuts else np.zeros(shape, np.float16),
            np.array([lo for _, lo in cuts], dtype=np.int64))


def checked_checkpoint(path: str | Path, cadence: Cadence) -> dict:
    """A checkpoint, refused in one line unless it was trained at the snippets' geometry (before any search)."""
    checkpoint = load_checkpoint(path)
    check_geometry(checkpoint["meta"], snippet_geometry(cadence), "the observation", path)
    return checkpoint


def score(checkpoint: dict, snippets: np.ndarray, path: str | Path = "checkpoint", device: str = "cpu") -> np.ndarray:
    """A checkpoint's needle probability for each snippet, with the preprocessing and layout it was trained on."""
    meta = checkpoint["meta"]
    model = model_from_checkpoint(checkpoint, path)
    preprocess = Preprocess(**meta["preprocess"])
    x = np.stack([to_layout(preprocess(s), meta["layout"]) for s in snippets]) if len(snippets) else np.zeros(0)
    dataset = TensorDataset(torch.from_numpy(np.ascontiguousarray(x, np.float32)), torch.zeros(len(snippets)))
    return predict(model, dataset, device=device, tta=meta.get("tta", False)) if len(snippets) else np.zeros(0)


def write_folder(out: str | Path, cadence: Cadence, candidates: pd.DataFrame, snippets: np.ndarray,
                 first_channels: np.ndarray) -> Path:
    """The snippets as the test side of a new Kaggle-layout folder: test/<id[0]>/<id>.npy (ids in the table's
    order), sample_submission.csv, candidates.csv (each id's candidate and the file channel its window starts at)
    and geometry.json. Written whole or not at all."""
    out = Path(out)
    if out.exists():
        raise FileExistsError(f"{out}: exists; choose a new folder (nothing is overwritten)")
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    ids = [f"{i:015x}" for i in range(len(candidates))]
    try:
        for cadence_id, snippet in zip(ids, snippets):
            (partial / "test" / cadence_id[0]).mkdir(parents=True, exist_ok=True)
            np.save(partial / "test" / cadence_id[0] / f"{cadence_id}.npy", snippet)
        (partial / "test").mkdir(parents=True, exist_ok=True)
        pd.DataFrame({"id": ids, "target": 0.5}).to_csv(partial / "sample_submission.csv", index=False)
        table = candidates.reset_index(drop=True).assign(first_channel=first_channels)
        table.insert(0, "id", ids)
        table.to_csv(partial / "candidates.csv", index=False)
        write_geometry(partial, snippet_geometry(cadence))
        partial.rename(out)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return out
