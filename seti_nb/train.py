"""The one training loop, in small steps (an epoch, a validation, a checkpoint), and the study's protocol around
it: split, train, score the test split, compare runs."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader, WeightedRandomSampler

from . import metrics
from .preprocess import Preprocess
from .runtime import pick_device, progress_bar, seed_everything

SAMPLERS = ("plain", "oversample", "hybrid")
LOSSES = ("bce", "weighted", "focal")
SCHEDULERS = ("constant", "step", "cosine", "onecycle")
PRECISIONS = ("auto", "fp32")


@dataclass
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
    precision: str = "auto"  # auto (mixed precision where it is faster: see `training_dtype`) | fp32
    num_workers: int = 0
    seed: int = 0

    def __post_init__(self):
        for name in ("epochs", "batch_size"):
            if not (isinstance(getattr(self, name), int) and getattr(self, name) >= 1):
                raise ValueError(f"{name} must be a whole number of at least 1, got {getattr(self, name)!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        for value, allowed in ((self.sampler, SAMPLERS), (self.loss, LOSSES), (self.scheduler, SCHEDULERS),
                               (self.precision, PRECISIONS)):
            if value not in allowed:
                raise ValueError(f"{value!r} is not one of {allowed}")


class Augment:
    """Augmentations that keep the physics, on the six preprocessed scans `(6, rows, channels)` before the layout
    is made: mirror the band (a drift becomes the opposite drift) and shift along frequency (a needle can sit
    anywhere in the band). Time is never flipped: that would reverse the ON/OFF order and the direction of time
    within each scan.

    `interference` > 0 adds, each with that probability, interference the telescope receives wherever it points,
    to one scan drawn at random, whatever the label (so it comes to be ignored, in ON scans too): a broadband
    burst over part of the band (one row, 10-50 % of the channels) and a wide emission over 5-25 % of the band that
    lasts part of the scan. Both are what the real sample's haystacks show and the default generator lacks.
    """

    def __init__(self, max_shift: int = 16, interference: float = 0.0, seed: int = 0):
        self.max_shift, self.interference = max_shift, interference
        self.rng = np.random.default_rng(seed)

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        rng = self.rng
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
        return frames


def mixup_or(x: torch.Tensor, y: torch.Tensor, alpha: float, generator: torch.Generator):
    """Mixup with the OR label: a cadence mixed with a needle is labelled a needle."""
    lam = float(torch.distributions.Beta(alpha, alpha).sample()) if alpha > 0 else 1.0
    perm = torch.randperm(len(x), generator=generator).to(x.device)
    return lam * x + (1 - lam) * x[perm], torch.maximum(y, y[perm])


def make_loss(config: TrainConfig, targets: np.ndarray, device: str):
    """The loss on logits: plain or weighted binary cross-entropy, or the focal loss (RetinaNet's)."""
    if config.loss == "focal":
        from torchvision.ops import sigmoid_focal_loss

        return lambda logit, y: sigmoid_focal_loss(logit, y, reduction="mean")
    pos_weight = torch.tensor((targets == 0).sum() / max(1, (targets == 1).sum()), device=device)
    return nn.BCEWithLogitsLoss(pos_weight=pos_weight if config.loss == "weighted" else None)


def _lr_lambda(config: TrainConfig, steps_per_epoch: int):
    total, warmup = config.epochs * steps_per_epoch, int(config.warmup_epochs * steps_per_epoch)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if config.scheduler == "cosine":
            return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))
        if config.scheduler == "step":  # a tenth after each third of the run
            return 0.1 ** (step * 3 // max(1, total))
        return 1.0

    return factor


def _scheduler(optimizer, config: TrainConfig, steps_per_epoch: int):
    if config.scheduler == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr,
                                                   total_steps=config.epochs * steps_per_epoch)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(config, steps_per_epoch))


def training_dtype(model: nn.Module, device: str, precision: str = "auto") -> torch.dtype | None:
    """The mixed-precision type of a training step, or None for float32 throughout.

    `auto`: float16 on CUDA (with gradient scaling); bfloat16 on a CPU with AMX, Intel's matrix units (a training
    step 1.4-2x faster here), unless the model has depthwise convolutions, whose bfloat16 backward is slower than
    float32 on a CPU (2.4x slower for EfficientNet-Lite0 here). Scoring stays float32 on a CPU, so a
    checkpoint's scores do not depend on the CPU it runs on.
    """
    if precision == "fp32":
        return None
    if device == "cuda":
        return torch.float16
    amx = getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()
    depthwise = any(isinstance(m, nn.Conv2d) and m.groups > 1 for m in model.modules())
    return torch.bfloat16 if amx and not depthwise else None


def _loader(dataset, config: TrainConfig, balanced: bool, shuffle: bool, epoch: int) -> DataLoader:
    generator = torch.Generator().manual_seed(config.seed * 1000 + epoch)
    sampler = None
    if balanced:  # every class drawn equally often: needles repeat
        targets = dataset.targets.astype(int)
        weights = 1.0 / np.bincount(targets, minlength=2)[targets]
        sampler = WeightedRandomSampler(torch.as_tensor(weights, dtype=torch.double), len(targets),
                                        replacement=True, generator=generator)
    return DataLoader(dataset, batch_size=config.batch_size, shuffle=shuffle and sampler is None, sampler=sampler,
                      generator=generator, num_workers=config.num_workers, pin_memory=torch.cuda.is_available())


def _prepare(x: torch.Tensor, device: str) -> torch.Tensor:
    """A batch on the device, channels-last (faster convolutions on CPUs and GPUs alike)."""
    return x.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)


@torch.no_grad()
def predict(model: nn.Module, dataset, batch_size: int = 128, device: str = "auto", num_workers: int = 0,
            progress: bool = False) -> np.ndarray:
    """Needle probabilities (sigmoid of the logit) for every item of `dataset`, in order."""
    device = pick_device(device)
    model = model.to(device, memory_format=torch.channels_last).eval()
    scores = []
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    for x, _ in progress_bar(loader, desc="predicting", disable=not progress, leave=False):
        with torch.autocast(device, enabled=device == "cuda"):
            scores.append(torch.sigmoid(model(_prepare(x, device)).float()).squeeze(1).cpu())
    return torch.cat(scores).numpy() if scores else np.zeros(0, np.float32)


def save_checkpoint(path: Path, payload: dict) -> None:
    """Write atomically: a crash mid-write leaves the previous checkpoint intact."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | Path) -> dict:
    """A checkpoint written by `fit`, read without unpickling arbitrary objects."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(f"{path}: not a seti-nb checkpoint (torch could not read it as plain tensors)") from e
    if not isinstance(checkpoint, dict) or not {"model", "meta"} <= set(checkpoint):
        raise ValueError(f"{path}: not a seti-nb checkpoint (no model weights and meta)")
    return checkpoint


@dataclass
class TrainResult:
    history: pd.DataFrame  # one row per epoch: train_* and val_* metrics, lr, seconds, images/s
    lrs: list[float] = field(default_factory=list)  # the learning rate at every step
    best_epoch: int = -1
    best_auc: float = float("nan")
    checkpoint: Path | None = None


class _Epochs:
    """The state of one `fit`: model, loss, optimiser, scheduler and the progress bar, stepped batch by batch."""

    def __init__(self, model, train_set, config: TrainConfig, progress: bool):
        self.config, self.device = config, pick_device(config.device)
        self.model = model.to(self.device, memory_format=torch.channels_last)
        self.loss = make_loss(config, train_set.targets, self.device)
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        self.steps = math.ceil(len(train_set) / config.batch_size)
        self.scheduler = _scheduler(self.optimizer, config, self.steps)
        self.dtype = training_dtype(model, self.device, config.precision)
        self.scaler = torch.amp.GradScaler(enabled=self.dtype == torch.float16)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.lrs: list[float] = []
        self.bar = progress_bar(total=config.epochs * self.steps, desc="training", unit="batch", disable=not progress)
        self.announced = not progress

    def step(self, x, y) -> tuple[torch.Tensor, float, torch.Tensor]:
        """One optimisation step on a batch; returns the logits, the loss and the (mixed) labels."""
        x, y = _prepare(x, self.device), y.to(self.device)
        if self.config.mixup > 0:
            x, y = mixup_or(x, y, self.config.mixup, self.generator)
        with torch.autocast(self.device, dtype=self.dtype, enabled=self.dtype is not None):
            logit = self.model(x).squeeze(1)
            loss = self.loss(logit.float(), y)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.lrs.append(self.optimizer.param_groups[0]["lr"])
        self.scheduler.step()
        return logit.detach().float(), float(loss.detach()), y

    def epoch(self, train_set, epoch: int) -> dict:
        """One pass over the training data; its loss and metrics (on what it saw: resampled, augmented)."""
        config = self.config
        balanced = config.sampler == "oversample" or (config.sampler == "hybrid" and epoch < config.epochs - 1)
        self.model.train()
        start, losses, ys, ss = time.perf_counter(), [], [], []
        self.bar.set_description(f"epoch {epoch + 1}/{config.epochs}")
        for batch, (x, y) in enumerate(_loader(train_set, config, balanced, shuffle=True, epoch=epoch)):
            logit, loss, y = self.step(x, y)
            losses.append(loss * len(y))
            ys.append((y > 0.5).int().cpu())
            ss.append(torch.sigmoid(logit).cpu())
            self.bar.update()
            self.bar.set_postfix(loss=f"{sum(losses) / sum(map(len, ys)):.4f}", refresh=False)
            if not self.announced and batch == 9 and self.steps > 10:  # a forecast, not the epoch's own time
                per_epoch = (time.perf_counter() - start) / 10 * self.steps
                self.bar.write(f"about {per_epoch:.0f} s per epoch ({self.steps} batches of {config.batch_size})")
                self.announced = True
        seconds = time.perf_counter() - start
        seen = sum(map(len, ys))
        train = metrics.threshold_metrics(torch.cat(ys).numpy(), torch.cat(ss).numpy())
        return {"epoch": epoch + 1, "train_loss": sum(losses) / seen, **{f"train_{k}": v for k, v in train.items()},
                "lr": self.lrs[-1], "seconds": seconds, "images_per_s": seen / seconds}

    def validate(self, val_set) -> dict:
        scores = predict(self.model, val_set, self.config.batch_size * 2, self.device, self.config.num_workers)
        loss = nn.functional.binary_cross_entropy(torch.as_tensor(scores).clamp(1e-7, 1 - 1e-7),
                                                  torch.as_tensor(val_set.targets))
        return {"val_loss": float(loss), **{f"val_{k}": v for k, v in
                                            metrics.threshold_metrics(val_set.targets, scores).items()}}


def fit(model: nn.Module, train_set, val_set, config: TrainConfig, out_dir: str | Path | None = None,
        meta: dict | None = None, progress: bool = True) -> TrainResult:
    """Train `model` on `train_set`, validating on `val_set` after every epoch.

    The validation data are never resampled or augmented (augmentation is the training set's own transform).
    The best epoch by validation AUC is saved to `out_dir/best.pt` (atomically) with `meta` and the config, and
    its weights are loaded back into `model` at the end. Mixed precision where it is faster (`training_dtype`).
    Seeded: CPU runs repeat.
    """
    if len(set(val_set.targets.astype(int))) < 2:
        raise ValueError("the validation split holds only one class: its AUC cannot choose an epoch; "
                         "use more cadences or a larger validation share")
    seed_everything(config.seed)
    run = _Epochs(model, train_set, config, progress)
    out = Path(out_dir) if out_dir else None
    rows, best, best_state, waited = [], (-1, -math.inf), None, 0
    for epoch in range(config.epochs):
        row = {**run.epoch(train_set, epoch), **run.validate(val_set)}
        rows.append(row)
        run.bar.set_postfix(loss=f"{row['train_loss']:.4f}", val_auc=f"{row['val_auc']:.3f}")
        if row["val_auc"] > best[1]:
            best, waited = (epoch + 1, row["val_auc"]), 0
            best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
            if out is not None:
                out.mkdir(parents=True, exist_ok=True)
                save_checkpoint(out / "best.pt", {"model": best_state, "config": asdict(config), "meta": meta or {},
                                                  "epoch": epoch + 1, "val_auc": row["val_auc"]})
        else:
            waited += 1
            if config.early_stopping and waited >= config.early_stopping:
                break
    run.bar.close()
    model.load_state_dict(best_state)
    history = pd.DataFrame(rows)
    if out is not None:
        history.to_csv(out / "history.csv", index=False)
    return TrainResult(history, run.lrs, best[0], best[1], out / "best.pt" if out is not None else None)


CHECKPOINT_META = ("model", "layout", "preprocess", "in_channels")


def model_from_checkpoint(checkpoint: dict, path: str | Path = "checkpoint") -> nn.Module:
    """Rebuild the model a checkpoint was trained as, with its weights."""
    from .models import build_model

    meta = checkpoint["meta"]
    if not isinstance(meta, dict) or not set(CHECKPOINT_META) <= set(meta):
        raise ValueError(f"{path}: written by an older seti-nb or another program (its meta lacks "
                         f"{sorted(set(CHECKPOINT_META) - set(meta if isinstance(meta, dict) else {}))}); "
                         "train it again with this version")
    model = build_model(meta["model"], in_channels=meta["in_channels"], pretrained=False)
    try:
        model.load_state_dict(checkpoint["model"])
    except RuntimeError:
        raise ValueError(f"{path}: its weights do not fit {meta['model']} with {meta['in_channels']} input "
                         "channels (a damaged or edited checkpoint)") from None
    return model


def score_folder(checkpoint_path: str | Path, data_dir: str | Path, side: str = "", device: str = "cpu",
                 progress: bool = True) -> pd.DataFrame:
    """id and score of every cadence file of one side of a Kaggle-layout folder (`test` where it exists, unless
    `side` says), scored by a checkpoint with the layout and preprocessing it was trained on."""
    from .cache import side_ids
    from .data import CadenceDataset

    checkpoint = load_checkpoint(checkpoint_path)
    model = model_from_checkpoint(checkpoint, checkpoint_path)
    side = side or ("test" if (Path(data_dir) / "test").is_dir() else "train")
    ids = side_ids(data_dir, side)  # the files present: a partial download scores what it has
    if not ids:
        raise FileNotFoundError(f"{data_dir}: no {side} cadences to score")
    meta = checkpoint["meta"]
    dataset = CadenceDataset(data_dir, pd.DataFrame({"id": ids}), meta["layout"], Preprocess(**meta["preprocess"]),
                             side=side, progress=progress)
    return pd.DataFrame({"id": ids, "score": predict(model, dataset, device=device, progress=progress)})


# ---- the study's protocol -----------------------------------------------------------------------------

QUICK_PREPROCESS = Preprocess(bandpass="off", time_average=8, channel_average=2, clip=20.0)


@dataclass
class Run:
    """Everything that decides one training run besides the data: model, input, augmentation, optimisation."""

    model: str = "cadence-cnn"
    layout: str = "frames"
    preprocess: Preprocess = QUICK_PREPROCESS
    pretrained: bool = False
    augment: bool = True  # frequency flip and shift on the training data
    interference: float = 0.4  # with augment: the chance of each kind of added interference (see Augment)
    limit: int = 0  # train on a stratified subset of this many cadences; 0 keeps the whole training part
    config: TrainConfig = field(default_factory=TrainConfig)

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

    def meta(self, in_channels: int, **extra) -> dict:
        """What a checkpoint records to rebuild the model and its input (`seti-nb predict` reads it)."""
        return {"model": self.model, "layout": self.layout, "preprocess": self.preprocess.to_dict(),
                "in_channels": in_channels, "pretrained": self.pretrained, **extra}

    def describe(self) -> dict:
        p = self.preprocess
        return {"model": self.model, "layout": self.layout, "pretrained": self.pretrained,
                "input": f"{p.frame_shape[0]}x{p.frame_shape[1]} per scan, bandpass {p.bandpass}",
                "augment": self.augment, "interference": self.interference if self.augment else 0.0,
                "sampler": self.config.sampler, "loss": self.config.loss,
                "scheduler": self.config.scheduler}


@dataclass
class Result:
    """One training run scored on the test split."""

    name: str
    run: Run
    history: pd.DataFrame
    lrs: list[float]
    test: pd.DataFrame  # id, target, score (and the truth columns for synthetic data)
    scores: metrics.Scores
    train_cadences: int
    best_epoch: int
    val_auc: float
    minutes: float
    images_per_s: float
    checkpoint: Path | None
    model: nn.Module = field(repr=False)

    def row(self) -> dict:
        """The run as one table row of plain numbers."""
        return {**self.scores.to_dict(), "val_auc": self.val_auc, "train_cadences": self.train_cadences,
                "epochs": len(self.history), "best_epoch": self.best_epoch, "minutes": self.minutes,
                "images_per_s": self.images_per_s}


def splits(labels: pd.DataFrame, seed: int = 0, test_size: float = 0.3, val_size: float = 0.1, limit: int = 0):
    """The study's protocol: a stratified 70/30 train/test split, then 90/10 train/validation of the 70 %;
    `limit` keeps a stratified subset of that many training cadences."""
    from .data import split

    train_items, test_items = split(labels, test_size, seed)
    fit_items, val_items = split(train_items, val_size, seed)
    if limit < 0:
        raise ValueError(f"limit must be 0 (all) or a number of training cadences, got {limit}")
    if limit and limit < len(fit_items):
        fit_items, _ = split(fit_items, 1 - limit / len(fit_items), seed)
    return fit_items, val_items, test_items


def datasets(data_dir, run: Run, *items, progress: bool = True):
    """Datasets for `items` (training set first: it alone gets the augmentation)."""
    from .data import CadenceDataset

    made = []
    for i, part in enumerate(items):
        transform = (Augment(interference=run.interference, seed=run.config.seed) if run.augment and i == 0
                     else None)
        made.append(CadenceDataset(data_dir, part, run.layout, run.preprocess, transform=transform,
                                   progress=progress))
    return made


def train_and_evaluate(data_dir: str | Path, run: Run = Run(), out_dir: str | Path | None = None,
                       fpr: float = 0.01, name: str = "", progress: bool = True) -> Result:
    """Split, train on the training part, pick the epoch on validation, score the 30 % test split.

    Writes `best.pt`, `history.csv`, `metrics.json` and `test_scores.csv` into `out_dir` when given.
    """
    from .data import layout_channels, read_labels, read_truth
    from .models import build_model

    start = time.perf_counter()
    pick_device(run.config.device)
    seed_everything(run.config.seed)
    model = build_model(run.model, in_channels=layout_channels(run.layout), pretrained=run.pretrained)
    fit_items, val_items, test_items = splits(read_labels(data_dir), run.config.seed, limit=run.limit)
    train_set, val_set, test_set = datasets(data_dir, run, fit_items, val_items, test_items, progress=progress)
    if val_items.target.nunique() < 2:
        raise ValueError(f"{data_dir}: the validation split holds only one class: its AUC cannot choose an epoch; "
                         "use a data set with more cadences or needles")
    trained = fit(model, train_set, val_set, run.config, out_dir, run.meta(train_set.channels), progress)
    test = test_items.assign(score=predict(model, test_set, run.config.batch_size * 2, run.config.device))
    truth = read_truth(data_dir)
    if truth is not None:
        test = test.merge(truth.drop(columns=["target", "side"]), on="id", how="left")
    result = Result(name=name or run.model, run=run, history=trained.history, lrs=trained.lrs, test=test,
                    scores=metrics.score(test.target, test.score, fpr, seed=run.config.seed),
                    train_cadences=len(fit_items), best_epoch=trained.best_epoch, val_auc=trained.best_auc,
                    minutes=(time.perf_counter() - start) / 60,
                    images_per_s=float(trained.history.images_per_s.mean()), checkpoint=trained.checkpoint,
                    model=model)
    if out_dir is not None:
        out = Path(out_dir)
        (out / "metrics.json").write_text(json.dumps({**run.describe(), **result.row()}, indent=1) + "\n")
        test[["id", "target", "score"]].to_csv(out / "test_scores.csv", index=False)
    return result


def compare(data_dir: str | Path, runs: dict, base: Run = Run(), out_dir: str | Path | None = None,
            fpr: float = 0.01, progress: bool = True) -> dict[str, Result]:
    """Train and score several variants of `base` ({name: {setting: value}}), each into `out_dir/<name>`."""
    results = {}
    for name, changes in runs.items():
        folder = Path(out_dir) / name.replace(" ", "_").replace("+", "plus") if out_dir else None
        results[name] = train_and_evaluate(data_dir, base.but(**changes), folder, fpr, name, progress)
    return results


def table(results: dict[str, Result]) -> pd.DataFrame:
    """One row per run: test AUC with its 95 % interval, recall at the fixed FPR, counting metrics, cost."""
    return pd.DataFrame({name: r.row() for name, r in results.items()}).T.astype(float)


@dataclass
class CrossValidation:
    """K-fold cross-validation: one row per fold, out-of-fold scores of the training part, and each fold's
    scores of the test split."""

    folds: pd.DataFrame  # epochs, best_epoch, val_auc and test_* counting metrics per fold
    oof: pd.DataFrame  # id, target, fold, score: every training cadence scored by the model that did not see it
    test: pd.DataFrame  # id, target of the test split
    test_scores: dict[int, np.ndarray]  # fold -> scores aligned with `test`

    def ensemble(self) -> np.ndarray:
        """The fold models' mean probability on the test split."""
        return np.mean(list(self.test_scores.values()), axis=0)


def cross_validate(data_dir: str | Path, out_dir: str | Path, run: Run = Run(), k: int = 5,
                   progress: bool = True) -> CrossValidation:
    """Stratified K-fold cross-validation on the 70 % training part, each fold's model also scored on the 30 %
    test split.

    The fold assignment is written to `out_dir/folds.csv` and reused. A finished fold leaves
    `fold<k>/fold.json` (written last); a rerun after an interruption skips those folds and trains the rest.
    """
    from .data import folds_csv, read_labels, split
    from .models import build_model

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    train_part, test_part = split(read_labels(data_dir), 0.3, run.config.seed)
    folds = folds_csv(out / "folds.csv", train_part, k, run.config.seed)
    rows, oof, test_scores = [], [], {}
    for fold in range(k):
        fold_dir = out / f"fold{fold}"
        marker = fold_dir / "fold.json"
        if not marker.exists():
            train_items, val_items = folds[folds.fold != fold], folds[folds.fold == fold]
            train_set, val_set, test_set = datasets(data_dir, run, train_items, val_items, test_part,
                                                    progress=progress)
            seed_everything(run.config.seed + fold)
            model = build_model(run.model, in_channels=train_set.channels, pretrained=run.pretrained)
            trained = fit(model, train_set, val_set, run.config, fold_dir, run.meta(train_set.channels, fold=fold),
                          progress)
            batch = run.config.batch_size * 2
            val_items.assign(score=predict(model, val_set, batch, run.config.device)).to_csv(
                fold_dir / "oof.csv", index=False)
            test_part.assign(score=predict(model, test_set, batch, run.config.device)).to_csv(
                fold_dir / "test_scores.csv", index=False)
            marker.write_text(json.dumps({"fold": fold, "best_epoch": trained.best_epoch,
                                          "val_auc": trained.best_auc, "epochs": len(trained.history)}) + "\n")
        summary = json.loads(marker.read_text())
        fold_oof = pd.read_csv(fold_dir / "oof.csv", dtype={"id": str})
        fold_test = pd.read_csv(fold_dir / "test_scores.csv", dtype={"id": str})
        test_scores[fold] = fold_test.score.to_numpy()
        rows.append({**summary, **{f"test_{m}": v for m, v in
                                   metrics.threshold_metrics(fold_test.target, fold_test.score).items()}})
        oof.append(fold_oof)
    return CrossValidation(pd.DataFrame(rows).set_index("fold"), pd.concat(oof, ignore_index=True),
                           test_part.reset_index(drop=True), test_scores)
