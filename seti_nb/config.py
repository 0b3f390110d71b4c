"""The settings of a synthesis and of a training run, as dataclasses that validate themselves where they are made.

Light to import (no torch, no pandas): the command line builds its options and defaults from these classes, so
`seti-nb --help` and a wrong option answer at once, and the command and the library never disagree on a default.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field

from .cadence import KAGGLE, Geometry
from .preprocess import Preprocess
from .runtime import check_choice, check_number, check_whole

SAMPLERS = ("plain", "oversample", "hybrid")
LOSSES = ("bce", "weighted", "focal")
SCHEDULERS = ("constant", "step", "cosine", "onecycle")
PRECISIONS = ("auto", "fp32")
DEVICES = ("auto", "cpu", "cuda")
POOLS = ("avg", "gem")  # an EfficientNet's global pooling: average, or generalised mean (GeM, p learnt)
PROFILES = ("quick", "full")  # of `seti-nb run`: the notebooks' parameters cells, or notebooks/params/full.yaml
# How a model sees a cadence (all from the six preprocessed scans), and its input channels:
LAYOUT_CHANNELS = {"frames": 6, "contrast": 3, "on_stack": 1, "all_stack": 1, "on_channels": 3}
LAYOUTS = {
    "frames": "the six scans as six aligned channels (6 x rows x channels)",
    "contrast": "each ON scan minus the OFF scan after it, as three channels (3 x rows x channels)",
    "on_stack": "the three ON scans one above the other, one channel (1 x 3 rows x channels)",
    "all_stack": "all six scans one above the other, one channel (1 x 6 rows x channels)",
    "on_channels": "the three ON scans as three channels (3 x rows x channels)",
}


@dataclass(frozen=True)
class SynthConfig:
    """A synthetic data set: `n` labelled training cadences (a share `positive_fraction` of needles) and
    `round(n * test_fraction)` unlabelled test cadences, all a function of `seed`.

    With `twins`, the set of the twin test instead: `n` labelled cadences in `n / 2` pairs, each a needle and its
    interference twin made from one draw (the same signal continued through the OFF scans), no test side (the two
    fractions are then fixed at 0.5 and 0). `geometry`: the cadences' grid (Kaggle's by default; an observation
    file's with `seti-nb synth --like FILE`).
    """

    n: int = 2000
    seed: int = 0
    positive_fraction: float = 0.1
    test_fraction: float = 0.05
    snr_range: tuple[float, float] = (4.0, 80.0)
    twins: bool = False
    geometry: Geometry = KAGGLE

    def __post_init__(self):
        if self.twins:
            if self.n % 2:
                raise ValueError(f"a twin set holds pairs: n must be even, got {self.n}")
            object.__setattr__(self, "positive_fraction", 0.5)  # frozen: set once, here
            object.__setattr__(self, "test_fraction", 0.0)
        check_whole("n", self.n)
        check_whole("seed", self.seed, 0)
        check_number("positive fraction", self.positive_fraction, 0, 1, low_open=True, high_open=True)
        check_number("test fraction", self.test_fraction, 0, 1)
        low, high = self.snr_range
        check_number("lowest SNR", low, 0, low_open=True)
        check_number("highest SNR", high, low, low_open=True)


@dataclass(frozen=True)
class TrainConfig:
    """How a model is optimised (saved inside every checkpoint)."""

    epochs: int = 6
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    sampler: str = "oversample"  # plain | oversample (balanced classes every epoch) | hybrid (balanced but the last)
    loss: str = "bce"  # bce | weighted (pos_weight = haystack / needles) | focal (torchvision's sigmoid focal loss)
    scheduler: str = "onecycle"  # constant | step | cosine (with warm-up) | onecycle
    warmup_epochs: float = 0.0
    mixup: float = 0.0  # Beta(a, a) mixup with the OR label (a needle mixed in stays a needle); 0 = off
    early_stopping: int = 0  # stop after this many epochs without a better validation AUC; 0 = off
    device: str = "auto"
    precision: str = "auto"  # auto (mixed precision where it is faster: see `train.training_dtype`) | fp32
    num_workers: int = 0
    processes: int = 1  # training processes (DistributedDataParallel through torchrun: `seti_nb.distributed`)
    seed: int = 0

    def __post_init__(self):
        check_whole("epochs", self.epochs)
        check_whole("batch_size", self.batch_size)
        check_whole("processes", self.processes)
        for name in ("early_stopping", "num_workers", "seed"):
            check_whole(name, getattr(self, name), 0)
        check_number("lr", self.lr, 0, 10, low_open=True)
        check_number("weight_decay", self.weight_decay, 0, 1)
        check_number("warmup_epochs", self.warmup_epochs, 0, self.epochs)
        check_number("mixup", self.mixup, 0, 100)
        for name, allowed in (("sampler", SAMPLERS), ("loss", LOSSES), ("scheduler", SCHEDULERS),
                              ("precision", PRECISIONS), ("device", DEVICES)):
            check_choice(name, getattr(self, name), allowed)


@dataclass(frozen=True)
class SearchSettings:
    """The classical search's settings (`dedoppler.Search` is the search made of them): the workbook's
    preprocessing first; `max_drift_hz_s` bounds the drift rates searched (both signs), rounded up to whole shear
    segments of one channel per row (4 Hz/s at full resolution searches up to 5.08 Hz/s; `drift_rates()` lists
    them); `threshold` is the hit SNR; `veto_channels` is how far (in channels at the search's resolution) an OFF
    signal vetoes an ON one; a path followed into another scan is searched for within `veto_channels` plus
    `path_slack` times the channels it was extrapolated by (curved paths leave the straight line they are searched
    along); OFF evidence above `veto_threshold` vetoes (just above the strongest noise along a path: the highest of
    some ten thousand noise bins rarely reaches 5 sigmas); a track that crosses from an ON scan into an OFF one
    vetoes when every quarter-scan segment of it reaches `track_threshold` (above the strongest noise of a quarter
    plane: 5.5-6 sigmas, since the noise of a short sum is skewed). The search is for narrowband signals: emission
    wider than about half of `narrowband_channels` (the running median over that many channels of 8-row blocks,
    subtracted: `preprocess.narrowband`) is removed first; every needle is narrower (at most 12 channels); 0: off.
    """

    preprocess: Preprocess = Preprocess("off")
    max_drift_hz_s: float = 4.0
    threshold: float = 10.0
    veto_channels: int = 3
    path_slack: float = 0.25
    veto_threshold: float = 5.0
    track_threshold: float = 7.0
    narrowband_channels: int = 65

    def __post_init__(self):
        check_number("max_drift_hz_s", self.max_drift_hz_s, 0, 50, low_open=True)  # 50 Hz/s: far beyond BL's
        check_number("threshold", self.threshold, 0, 1e4, low_open=True)
        check_whole("veto_channels", self.veto_channels, 0)
        check_number("path_slack", self.path_slack, 0, 1)
        check_number("veto_threshold", self.veto_threshold, 0, 1e4, low_open=True)
        check_number("track_threshold", self.track_threshold, 0, 1e4, low_open=True)
        check_whole("narrowband_channels", self.narrowband_channels, 0)


QUICK_PREPROCESS = Preprocess(bandpass="off", time_average=8, channel_average=2, clip=20.0)


@dataclass(frozen=True)
class Run:
    """Everything that decides one training run besides the data: model, input, augmentation, optimisation."""

    model: str = "cadence-cnn"
    layout: str = "frames"
    preprocess: Preprocess = QUICK_PREPROCESS
    pretrained: bool = False
    augment: bool = True  # frequency flip and shift on the training data
    interference: float = 0.4  # with augment: the chance of each kind of added interference (see dataset.Augment)
    inject: float = 0.5  # with augment: the chance of an injected signal, needle or interference (dataset.Augment)
    pairs: int = 0  # with augment, 'frames' layout: counterfactual pairs added to each batch (dataset.Augment.paired)
    limit: int = 0  # train on a stratified subset of this many cadences; 0 keeps the whole training part
    size: tuple[int, int] | None = None  # resize the layout's image to (height, width) on the device; None: as is
    pool: str = "avg"  # avg | gem: an EfficientNet's global pooling
    tta: bool = False  # score the test cadences as the mean of the image and its frequency mirror
    pseudo: str = ""  # a score file of the unlabelled test side (`seti-nb predict`): its confident cadences train too
    pseudo_confidence: float = 0.95  # needles score at least this, haystacks at most 1 - this; the rest unused
    config: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self):
        check_choice("layout", self.layout, LAYOUTS)
        check_choice("pool", self.pool, POOLS)
        check_number("pseudo_confidence", self.pseudo_confidence, 0.5, 1, high_open=True)
        if self.size is not None:
            if len(self.size) != 2:
                raise ValueError(f"size must be (height, width), got {self.size!r}")
            for side in self.size:
                check_number("size", side, 8, 4096)
                check_whole("size", side)
            object.__setattr__(self, "size", tuple(int(side) for side in self.size))  # frozen: set once, here
        check_number("interference", self.interference, 0, 1)
        check_number("inject", self.inject, 0, 1)
        check_whole("limit", self.limit, 0)
        check_whole("pairs", self.pairs, 0)
        if self.pairs and (self.layout != "frames" or not self.augment or self.config.mixup):
            raise ValueError(f"pairs need the 'frames' layout, augment=True and no mixup (a needle and its twin are "
                             f"drawn onto the six scans of a batch's haystacks and ranked against each other), got "
                             f"layout {self.layout!r}, augment={self.augment}, mixup={self.config.mixup}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, settings: dict) -> Run:
        """The run `to_dict` gave (a run folder's run.json)."""
        return cls(**{**settings, "preprocess": Preprocess(**settings["preprocess"]),
                      "config": TrainConfig(**settings["config"])})

    def but(self, **changes) -> Run:
        """A copy with some settings changed: any field of Run, Preprocess or TrainConfig by name."""
        groups = {"run": {}, "preprocess": {}, "config": {}}
        for key, value in changes.items():
            for group, fields in (("run", Run), ("preprocess", Preprocess), ("config", TrainConfig)):
                if key in {f.name for f in dataclasses.fields(fields)}:
                    groups[group][key] = value
                    break
            else:
                raise ValueError(f"unknown setting {key!r}")
        return dataclasses.replace(self, **groups["run"],
                                   preprocess=dataclasses.replace(self.preprocess, **groups["preprocess"]),
                                   config=dataclasses.replace(self.config, **groups["config"]))

    @property
    def in_channels(self) -> int:
        """The model's input channels, from the layout."""
        return LAYOUT_CHANNELS[self.layout]

    def meta(self, **extra) -> dict:
        """What a checkpoint records to rebuild the model and its input (`seti-nb predict` reads it)."""
        return {"model": self.model, "layout": self.layout, "preprocess": self.preprocess.to_dict(),
                "in_channels": self.in_channels, "pretrained": self.pretrained, "size": self.size, "pool": self.pool,
                "tta": self.tta, **extra}

    def describe(self, geometry: Geometry = KAGGLE) -> dict:
        """The run's settings in a line each, its input as it is for cadences of `geometry`."""
        p, (rows, channels) = self.preprocess, self.preprocess.shape(geometry)
        return {"model": self.model, "layout": self.layout, "pretrained": self.pretrained,
                "input": f"{rows}x{channels} per scan, bandpass {p.bandpass}"
                         + (f", wider than {p.narrowband // 2} channels removed" if p.narrowband else "")
                         + (", persistent OFF lines masked" if p.mask_lines else "")
                         + (f", resized to {self.size[0]}x{self.size[1]}" if self.size else ""),
                "pool": self.pool, "tta": self.tta, "pseudo": self.pseudo,
                "pseudo_confidence": self.pseudo_confidence if self.pseudo else None,
                "augment": self.augment, "interference": self.interference if self.augment else 0.0,
                "inject": self.inject if self.augment else 0.0, "pairs": self.pairs,
                "sampler": self.config.sampler, "loss": self.config.loss,
                "scheduler": self.config.scheduler, "processes": self.config.processes}


# ---- the command line's number types ------------------------------------------------------------------

def count(text: str) -> int:
    """A whole number of at least 1 (epochs, batch size, cadences, averaging factors)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def share(text: str) -> float:
    """A fraction from 0 to 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {value}")
    return value
