"""The trainer: one training loop in small steps (an epoch, a validation, a checkpoint), mixed precision where it is
faster, checkpoints and inference. It takes a model and datasets and knows nothing of where the data came from."""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, Subset, WeightedRandomSampler
from torchvision.ops import sigmoid_focal_loss

from . import distributed, metrics
from .cadence import KAGGLE, Geometry
from .config import LAYOUT_CHANNELS, Run, TrainConfig
from .models import build_model
from .preprocess import Preprocess
from .runtime import check_free_space, pick_device, progress_bar


def mixup_or(x: torch.Tensor, y: torch.Tensor, alpha: float, rng: np.random.Generator):
    """Mixup with the OR label: a cadence mixed with a needle is labelled a needle. The mixing weight
    (Beta(alpha, alpha)) and the partners are drawn from `rng`."""
    lam = float(rng.beta(alpha, alpha)) if alpha > 0 else 1.0
    perm = torch.from_numpy(rng.permutation(len(x))).to(x.device)
    return lam * x + (1 - lam) * x[perm], torch.maximum(y, y[perm])


def make_loss(config: TrainConfig, targets: np.ndarray, device: str):
    """The loss on logits: plain or weighted binary cross-entropy, or the focal loss (RetinaNet's)."""
    if config.loss == "focal":
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
    """One epoch's batches. On several ranks (`distributed`) every rank draws the same sample and keeps its share,
    in batches of the run's batch size over the number of ranks: the global batch stays the run's."""
    generator = torch.Generator().manual_seed(config.seed * 1000 + epoch)
    rank, size = distributed.world()
    sampler = None
    if balanced:  # every class drawn equally often: needles repeat
        targets = dataset.targets.astype(int)
        weights = 1.0 / np.bincount(targets, minlength=2)[targets]
        sampler = WeightedRandomSampler(torch.as_tensor(weights, dtype=torch.double), len(targets),
                                        replacement=True, generator=generator)
    if size > 1:
        if sampler is None:
            sampler = DistributedSampler(dataset, size, rank, shuffle=shuffle, seed=config.seed)
            sampler.set_epoch(epoch)
        else:
            sampler = distributed.Shard(sampler)
    return DataLoader(dataset, batch_size=config.batch_size // size, shuffle=shuffle and sampler is None,
                      sampler=sampler, generator=generator, num_workers=config.num_workers,
                      pin_memory=torch.cuda.is_available(), worker_init_fn=_seed_worker)


def _seed_worker(worker: int) -> None:
    """A DataLoader worker's augmentation draws its own numbers: its copy of the transform's generator is reseeded
    from the worker's seed (drawn by the loader's seeded generator) and the rank, so workers and ranks never
    repeat one another's draws and a run still repeats exactly."""
    info = torch.utils.data.get_worker_info()
    transform = getattr(info.dataset, "transform", None)
    if hasattr(transform, "rng"):
        transform.rng = np.random.default_rng([info.seed % 2**63, distributed.world()[0]])


def _prepare(x: torch.Tensor, device: str) -> torch.Tensor:
    """A batch on the device, channels-last (faster convolutions on CPUs and GPUs alike)."""
    return x.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)


def predict(model: nn.Module, dataset, batch_size: int = 128, device: str = "auto", num_workers: int = 0,
            progress: bool = False, tta: bool = False) -> np.ndarray:
    """Needle probabilities (sigmoid of the logit) for every item of `dataset`, in order; with `tta`, the mean of
    the probabilities of each image and its frequency mirror (test-time augmentation: a drift becomes the opposite
    drift, as in training). On several ranks each scores its own part and every rank gets all the scores: each
    item scored exactly once."""
    return _scores(model, dataset, batch_size, pick_device(device), num_workers, progress, tta)


@torch.no_grad()
def _scores(model: nn.Module, dataset, batch_size: int, device: str, num_workers: int = 0,
            progress: bool = False, tta: bool = False) -> np.ndarray:
    """The model's probabilities of `dataset` on `device` (already resolved): float32 on a CPU, so a
    checkpoint's scores do not depend on the CPU; float16 autocast on CUDA."""
    model = model.to(device, memory_format=torch.channels_last).eval()
    mine = distributed.part(len(dataset))
    batches = DataLoader(Subset(dataset, mine) if len(mine) < len(dataset) else dataset, batch_size=batch_size,
                         shuffle=False, num_workers=num_workers, pin_memory=device == "cuda")
    scores = []
    for x, _ in progress_bar(batches, desc="predicting", disable=not progress or mine.start > 0, leave=False):
        x = _prepare(x, device)
        with torch.autocast(device, enabled=device == "cuda"):
            p = torch.sigmoid(model(x).float())
            if tta:
                p = (p + torch.sigmoid(model(x.flip(-1)).float())) / 2
        scores.append(p.squeeze(1).cpu())
    return distributed.gather(torch.cat(scores).numpy() if scores else np.zeros(0, np.float32))


def saliency(model: nn.Module, x: torch.Tensor) -> np.ndarray:
    """Where a model looks: the gradient of its logit with respect to one input `(channels, rows, width)`, times
    the input (gradient x input), in float32; the model's own gradients are left untouched."""
    x = torch.as_tensor(x, dtype=torch.float32, device=next(model.parameters()).device)[None].requires_grad_(True)
    (gradient,) = torch.autograd.grad(model.eval()(x).sum(), x)
    return (gradient * x).detach()[0].cpu().numpy()


def save_checkpoint(path: Path, payload: dict) -> None:
    """Write atomically, after checking the space it needs: a crash or a full disk mid-write leaves the previous
    checkpoint intact and no temporary file behind."""
    tmp = path.with_name(path.name + ".tmp")
    size = sum(t.numel() * t.element_size() for t in payload["model"].values())
    check_free_space(path.parent, size + 2**20, "the checkpoint")
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if isinstance(e, (OSError, RuntimeError)):  # torch reports a full disk as "enforce fail at inline_container"
            raise OSError(f"{path}: could not write the checkpoint ({str(e).splitlines()[0][:80]}); is the disk "
                          "full?") from None
        raise


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


# the weight of the pairwise loss on counterfactual pairs (`dataset.Augment.paired`) beside the cross-entropy: on
# split 0 (seeds 0-2), 8 pairs a batch at 0.3 took twin pairs ranked right from 96.9 to 97.6 % and recall at 1 % FPR
# from 0.639 to 0.651; 16 pairs at 1.0 met the twins' target but lost recall everywhere (benchmarks/README.md)
PAIR_WEIGHT = 0.3


class _Epochs:
    """The state of one `fit`: model, loss, optimiser, scheduler and the progress bar, stepped batch by batch.

    A training set whose transform makes counterfactual pairs (`dataset.Augment` with `pairs`) has them added to
    every batch: both members in the cross-entropy, and `PAIR_WEIGHT` x softplus(twin's logit - needle's logit),
    a loss that only the OFF scans along the needle's path can lower."""

    def __init__(self, model, train_set, config: TrainConfig, progress: bool):
        self.config, self.device = config, pick_device(config.device)
        self.rank, self.size = distributed.world()
        if config.batch_size % self.size:
            raise ValueError(f"batch size {config.batch_size} does not split evenly over {self.size} processes")
        self.steps = math.ceil(math.ceil(len(train_set) / self.size) / (config.batch_size // self.size))
        progress = progress and self.rank == 0
        self.bar = progress_bar(total=config.epochs * self.steps, desc="training", unit="batch", disable=not progress)
        self.announced = not progress
        self.model = model.to(self.device, memory_format=torch.channels_last)
        self.net = self.model if self.size == 1 else DistributedDataParallel(
            self.model, device_ids=[torch.cuda.current_device()] if self.device == "cuda" else None)
        self.loss = make_loss(config, train_set.targets, self.device)
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        self.scheduler = _scheduler(self.optimizer, config, self.steps)
        self.dtype = training_dtype(model, self.device, config.precision)
        self.scaler = torch.amp.GradScaler(enabled=self.dtype == torch.float16)
        self.rng = np.random.default_rng(config.seed if self.size == 1 else [config.seed, self.rank])  # mixup
        transform = getattr(train_set, "transform", None)
        self.paired = transform.paired if getattr(transform, "pairs", 0) else None
        self.lrs: list[float] = []

    def step(self, x, y) -> tuple[torch.Tensor, float, torch.Tensor]:
        """One optimisation step on a batch; returns the logits, the loss and the (mixed) labels."""
        n, k = len(y), 0
        if self.paired is not None:
            x, y, k = self.paired(x, y)
        x, y = _prepare(x, self.device), y.to(self.device)
        if self.config.mixup > 0:
            x, y = mixup_or(x, y, self.config.mixup, self.rng)
        with torch.autocast(self.device, dtype=self.dtype, enabled=self.dtype is not None):
            logit = self.net(x).squeeze(1)
            loss = self.loss(logit.float(), y)
            if k:
                loss = loss + PAIR_WEIGHT * F.softplus(logit[n + k:].float() - logit[n:n + k].float()).mean()
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.lrs.append(self.optimizer.param_groups[0]["lr"])
        self.scheduler.step()
        return logit[:n].detach().float(), float(loss.detach()), y[:n]

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
        ys, ss = distributed.gather(torch.cat(ys).numpy()), distributed.gather(torch.cat(ss).numpy())
        train = metrics.threshold_metrics(ys, ss)
        loss = distributed.gather(np.array([sum(losses)])).sum() / len(ys)
        return {"epoch": epoch + 1, "train_loss": loss, **{f"train_{k}": v for k, v in train.items()},
                "lr": self.lrs[-1], "seconds": seconds, "images_per_s": len(ys) / seconds}

    def validate(self, val_set) -> dict:
        distributed.align(self.model)  # every rank scores with rank 0's batch-norm statistics
        scores = _scores(self.model, val_set, self.config.batch_size * 2, self.device, self.config.num_workers)
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
    Every random draw of the loop comes from generators seeded by `config.seed`; with the global seed set once
    before the model is built (`runtime.seed_everything`, as the study does), CPU runs repeat exactly.
    """
    if len(set(val_set.targets.astype(int))) < 2:
        raise ValueError("the validation split holds only one class: its AUC cannot choose an epoch; "
                         "use more cadences or a larger validation share")
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
            if out is not None and run.rank == 0:
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
    if out is not None and run.rank == 0:
        history.to_csv(out / "history.csv", index=False)
    return TrainResult(history, run.lrs, best[0], best[1], out / "best.pt" if out is not None else None)


CHECKPOINT_META = ("model", "layout", "preprocess", "in_channels")


def checked_meta(meta, path: str | Path = "checkpoint") -> dict:
    """A checkpoint's meta, checked field by field before anything is built from it: the model a known name, the
    layout one of the workbook's with its number of input channels, the preprocessing valid settings."""
    if not isinstance(meta, dict) or not set(CHECKPOINT_META) <= set(meta):
        raise ValueError(f"{path}: written by an older seti-nb or another program (its meta lacks "
                         f"{sorted(set(CHECKPOINT_META) - set(meta if isinstance(meta, dict) else {}))}); "
                         "train it again with this version")
    if not isinstance(meta["model"], str) or meta["layout"] not in LAYOUT_CHANNELS:
        raise ValueError(f"{path}: its meta names model {meta['model']!r} and layout {meta['layout']!r}: a damaged "
                         "or edited checkpoint")
    if meta["in_channels"] != LAYOUT_CHANNELS[meta["layout"]]:
        raise ValueError(f"{path}: its meta gives {meta['in_channels']!r} input channels, the layout "
                         f"{meta['layout']!r} has {LAYOUT_CHANNELS[meta['layout']]}: a damaged or edited checkpoint")
    try:
        Preprocess(**meta["preprocess"])
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path}: its meta's preprocessing is not valid ({e}): a damaged or edited "
                         "checkpoint") from None
    try:
        Run(layout=meta["layout"], size=meta.get("size"), pool=meta.get("pool", "avg"), tta=meta.get("tta", False))
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path}: its meta's input size or pooling is not valid ({e}): a damaged or edited "
                         "checkpoint") from None
    checkpoint_geometry(meta, path)
    return meta


def checkpoint_geometry(meta: dict, path: str | Path = "checkpoint") -> Geometry:
    """The cadence geometry a checkpoint was trained at (Kaggle's for one that does not say)."""
    return Geometry.from_dict(meta.get("geometry", KAGGLE.to_dict()), f"{path}: its meta's geometry")


def check_geometry(meta: dict, geometry: Geometry, what: str, path: str | Path = "checkpoint") -> None:
    """Refuse, in one line, to score cadences of another geometry than the checkpoint's: nothing is resampled."""
    trained = checkpoint_geometry(meta, path)
    if not trained.same_grid(geometry):
        raise ValueError(f"{path}: trained on cadences of {trained.describe()}, but {what} holds {geometry.describe()}"
                         ": a model scores only the geometry it was trained at (nothing is resampled); train one on "
                         "cadences of this geometry (`seti-nb synth --like FILE`)")


def model_from_checkpoint(checkpoint: dict, path: str | Path = "checkpoint") -> nn.Module:
    """Rebuild the model a checkpoint was trained as, with its weights."""
    meta = checked_meta(checkpoint["meta"], path)
    model = build_model(meta["model"], in_channels=meta["in_channels"], size=meta.get("size"),
                        pool=meta.get("pool", "avg"), channel_average=meta["preprocess"]["channel_average"])
    try:
        model.load_state_dict(checkpoint["model"])
    except RuntimeError:
        raise ValueError(f"{path}: its weights do not fit {meta['model']} with {meta['in_channels']} input "
                         "channels as this seti-nb builds it (a damaged or edited checkpoint, or one of an earlier "
                         "version: train it again)") from None
    return model
