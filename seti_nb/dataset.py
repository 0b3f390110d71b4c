"""The torch side of the data: a cadence's six preprocessed scans arranged as a model's input (the layouts), a
Dataset over one side of a data folder, and the augmentations that keep the physics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import ConcatDataset

from . import distributed
from .cache import cached_frames, open_frames
from .cadence import KAGGLE, N_FRAMES, OFF_FRAMES, ON_FRAMES, Geometry
from .config import LAYOUT_CHANNELS, LAYOUTS, Run, SynthConfig
from .data import DataError, check_files, folder_geometry, read_cadence, read_scores, side_ids
from .preprocess import Preprocess
from .signals import continuous_path, draw_needle, in_band, render


def layout_channels(layout: str) -> int:
    """Input channels of a layout."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; choose one of {tuple(LAYOUTS)}")
    return LAYOUT_CHANNELS[layout]


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
    `transform` (a callable on the six preprocessed scans, float32 `(6, rows, channels)`, and the label, returning
    both: augmentation, which may change the label; it must not write into the scans) is given by whoever builds
    the training set.
    """

    def __init__(self, root: str | Path, items: pd.DataFrame, layout: str = "frames", preprocess=None,
                 side: str = "train", transform=None, cache: bool = True, progress: bool = True):
        self.root, self.layout, self.side, self.transform = Path(root), layout, side, transform
        self.preprocess = preprocess or Preprocess()
        self.channels = layout_channels(layout)
        self.items = items.reset_index(drop=True)
        self.targets = (self.items.target.to_numpy(np.float32) if "target" in self.items
                        else np.zeros(len(self.items), np.float32))
        self.cache_file, self.rows = None, None
        if cache and not self.preprocess.full_resolution:
            self.cache_file, index = cached_frames(root, side, self.preprocess, progress=progress)
            shape = self.preprocess.shape(folder_geometry(root))
            self._frames = open_frames(self.cache_file, (len(index), N_FRAMES, *shape))
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
            return self.preprocess(read_cadence(self.root, self.items.id[i], self.side))
        if self._frames is None:  # in a DataLoader worker: a memmap does not travel there, it is opened anew
            self._frames = np.load(self.cache_file, mmap_mode="r", allow_pickle=False)
        # float16 -> float32 by torch: vectorised, seven times faster than NumPy's cast (the same values)
        return torch.from_numpy(np.array(self._frames[self.rows[i]])).float().numpy()

    def __getitem__(self, i: int):
        frames, target = self.frames(i), self.targets[i]
        if self.transform is not None:
            frames, target = self.transform(frames, target)
        return torch.from_numpy(np.ascontiguousarray(to_layout(frames, self.layout))), torch.tensor(target)

    def __getstate__(self):
        return {**self.__dict__, "_frames": None}


class Augment:
    """Augmentations that keep the physics, on the six preprocessed scans `(6, rows, channels)` and the label,
    before the layout is made: mirror the band (a drift becomes the opposite drift) and shift along frequency (a
    needle can sit anywhere in the band). Time is never flipped: that would reverse the ON/OFF order and the
    direction of time within each scan.

    `interference` > 0 adds, each with that probability, interference the telescope receives wherever it points,
    to one scan drawn at random, whatever the label (so it comes to be ignored, in ON scans too): a broadband
    burst over part of the band (one row, 10-50 % of the channels) and a wide emission over 5-25 % of the band that
    lasts part of the scan. Both are what the real sample's haystacks show and the default generator lacks.

    `inject` > 0 adds, with that probability, a signal drawn as the generator draws needles (`signals.render`):
    to a haystack, half the time in its ON scans only (it becomes a needle); otherwise, and always to a needle,
    interference (the label stays): half the time the needle's twin, the same draw continued in cadence time
    through the OFF scans it reaches, so that only the OFF scans tell the two apart (the counterfactual that teaches
    the ON/OFF rule, in numbers no data set holds); otherwise a path drawn apart as the generator's `continuous`
    interference is (`signals.continuous_path`: also runs of three to five scans, starting in any scan).

    `pairs` > 0: the trainer asks `paired` for that many counterfactual pairs on each batch's haystacks, which it
    ranks by a pairwise loss (`train.PAIR_WEIGHT`).
    """

    def __init__(self, preprocess: Preprocess, max_shift: int = 16, interference: float = 0.0, inject: float = 0.0,
                 seed: int = 0, snr_range: tuple[float, float] = SynthConfig().snr_range, geometry: Geometry = KAGGLE,
                 pairs: int = 0):
        self.preprocess, self.max_shift, self.interference, self.inject = preprocess, max_shift, interference, inject
        self.pairs = pairs
        self.snr_range, self.geometry = snr_range, geometry
        self.rng = np.random.default_rng(seed)
        self.pair_rng = np.random.default_rng([seed, 7])  # pairs on or off, the other draws stay the same

    def __call__(self, frames: np.ndarray, target: float) -> tuple[np.ndarray, float]:
        rng = self.rng
        if rng.random() < self.inject:
            frames, target = self._inject(frames, target)
        if rng.random() < 0.5:
            frames = frames[..., ::-1]
        shift = int(rng.integers(-self.max_shift, self.max_shift + 1))
        frames = np.roll(frames, shift, axis=-1) if shift else frames
        if self.interference > 0:
            frames = np.array(frames, dtype=np.float32)  # a copy: the cached scans are never written
            rows, channels = frames.shape[-2:]
            if rng.random() < self.interference:  # a burst: one row, part of the band
                width = int(rng.uniform(0.1, 0.5) * channels)
                start = int(rng.integers(0, channels - width + 1))
                frames[rng.integers(len(frames)), rng.integers(rows), start:start + width] += rng.uniform(3, 15)
            if rng.random() < self.interference:  # wide emission: a smooth bump in frequency, for part of the scan
                centre, sigma = rng.uniform(0, channels), rng.uniform(0.05, 0.25) * channels / 2
                first = int(rng.integers(0, rows))
                last = int(rng.integers(first + 1, rows + 1))
                bump = rng.uniform(1, 8) * np.exp(-0.5 * ((np.arange(channels) - centre) / sigma) ** 2)
                frames[rng.integers(len(frames)), first:last] += bump.astype(np.float32)
        return frames, target

    def _inject(self, frames: np.ndarray, target: float) -> tuple[np.ndarray, float]:
        rng, g = self.rng, self.geometry
        params, on = draw_needle(rng, self.snr_range, g)  # one draw, as the generator draws a needle
        needle, apart = rng.random(2) < 0.5  # both tossed for either label: one seed, one draw, needle or twin
        if needle and target == 0:
            scans, target = in_band(params, on, g), 1.0
        else:  # its twin: the same signal continued in cadence time through the OFF scans it reaches
            scans = in_band(params, range(N_FRAMES), g)
            # or (and for a path that leaves the band before the first OFF scan) a path drawn apart, as the
            # generator's `continuous` interference is: runs of three to five scans too, starting anywhere
            if apart or not set(scans) & set(OFF_FRAMES):
                params, scans = continuous_path(rng, self.snr_range, g)
        signal = render(params, scans, self.preprocess, rng, g)
        frames = frames + signal
        if self.preprocess.clip:
            np.clip(frames, -self.preprocess.clip, self.preprocess.clip, out=frames)
        return frames, target

    def paired(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
        """The batch `x` (`(batch, 6, rows, channels)`, the 'frames' layout) and its labels `y` with up to `pairs`
        counterfactual pairs after them, `k` needles then their `k` twins: each pair one haystack of the batch and
        one draw, as the generator draws needles, continued in cadence time through every scan its path reaches (the
        twin, label 0), and the same rendering in the draw's ON scans alone (the needle, label 1): the two differ in
        the OFF scans alone, even where the OFF bandpass carries the twin's OFF signal into its ON scans. Returns
        the joined batch, labels and `k` (fewer where the batch holds fewer haystacks)."""
        rng, g, clip = self.pair_rng, self.geometry, self.preprocess.clip
        haystacks = rng.permutation(np.flatnonzero(y.numpy() < 0.5))[: self.pairs]
        needles, twins = [], []
        for i in haystacks:
            for _ in range(20):  # a path seen in one of the needle's ON scans and in an OFF scan
                params, on = draw_needle(rng, self.snr_range, g)
                scans = in_band(params, range(N_FRAMES), g)
                if set(scans) & set(on) and set(scans) & set(OFF_FRAMES):
                    break
            else:
                continue
            twin = render(params, scans, self.preprocess, rng, g)
            needle = np.where(np.isin(np.arange(N_FRAMES), on)[:, None, None], twin, 0)  # equal in its ON scans
            for signal, out in ((needle, needles), (twin, twins)):
                made = x[i].numpy() + signal
                out.append(np.clip(made, -clip, clip) if clip else made)
        k = len(needles)
        if not k:
            return x, y, 0
        extra = torch.from_numpy(np.stack(needles + twins).astype(np.float32))
        return torch.cat([x, extra]), torch.cat([y, torch.ones(k), torch.zeros(k)]), k


class Joined(ConcatDataset):
    """Datasets one after another (the training part and pseudo-labelled test cadences), with their `targets`
    joined for the trainer's samplers and loss, and the first part's `transform` (they share it)."""

    def __init__(self, *parts: CadenceDataset):
        super().__init__(parts)
        self.targets, self.transform = np.concatenate([p.targets for p in parts]), parts[0].transform


def pseudo_labelled(data_dir, scores_file, confidence: float) -> pd.DataFrame:
    """`id,target` of the unlabelled test cadences a score file is confident about: needles at `confidence` or
    above, haystacks at `1 - confidence` or below (the 2nd- and 3rd-place Kaggle recipe: a trained model's confident
    predictions of the test side train the next model). None may be: a run then trains on its own part alone, as
    its `train_cadences` shows."""
    scores = read_scores(scores_file)
    foreign = sorted(set(scores.id) - set(side_ids(data_dir, "test")))
    if foreign:
        raise DataError(f"{scores_file}: {len(foreign)} ids not on the test side of {data_dir}, first: {foreign[0]}")
    sure = scores[(scores.target >= confidence) | (scores.target <= 1 - confidence)]
    return sure.assign(target=(sure.target >= confidence).astype(int)).reset_index(drop=True)


def datasets(data_dir, run: Run, *items, progress: bool = True) -> list[CadenceDataset]:
    """A run's datasets for the cadences `items` (training set first: it alone gets the run's augmentation, and
    the pseudo-labelled test cadences of `run.pseudo`)."""
    made = []
    for i, part in enumerate(items):
        seed = run.config.seed + 1_000_003 * distributed.world()[0]  # ranks draw apart
        transform = (Augment(run.preprocess, interference=run.interference, inject=run.inject, seed=seed,
                             geometry=folder_geometry(data_dir), pairs=run.pairs) if run.augment and i == 0 else None)
        made.append(CadenceDataset(data_dir, part, run.layout, run.preprocess, transform=transform,
                                   progress=progress))
    sure = pseudo_labelled(data_dir, run.pseudo, run.pseudo_confidence) if run.pseudo and made else ()
    if len(sure):
        made[0] = Joined(made[0], CadenceDataset(data_dir, sure, run.layout, run.preprocess, "test",
                                                 made[0].transform, progress=progress))
    return made
