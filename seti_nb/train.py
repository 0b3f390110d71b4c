"""The one training loop: samplers, losses, physics-respecting augmentation, schedulers, metrics, checkpoints."""

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
from torch.utils.data import DataLoader, WeightedRandomSampler

from .workbook import pick_device, seed_everything

SAMPLERS = ("plain", "oversample", "hybrid")
LOSSES = ("bce", "weighted")
SCHEDULERS = ("constant", "step", "cosine", "onecycle")


@dataclass
class TrainConfig:
    """Everything that decides a training run (saved inside every checkpoint)."""

    epochs: int = 3
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    sampler: str = "plain"  # plain | oversample (balanced classes every epoch) | hybrid (balanced but the last)
    loss: str = "bce"  # bce | weighted (pos_weight = haystack / needles)
    scheduler: str = "constant"  # constant | step | cosine (with warm-up) | onecycle
    warmup_epochs: float = 0.0
    augment: bool = False  # frequency flip and frequency shift, on training data only
    mixup: float = 0.0  # Beta(a, a) mixup with the OR label (a needle mixed in stays a needle); 0 = off
    early_stopping: int = 0  # stop after this many epochs without a better validation AUC; 0 = off
    device: str = "auto"
    num_workers: int = 0
    seed: int = 0

    def __post_init__(self):
        for value, allowed in ((self.sampler, SAMPLERS), (self.loss, LOSSES), (self.scheduler, SCHEDULERS)):
            if value not in allowed:
                raise ValueError(f"{value!r} is not one of {allowed}")


class FrequencyAugment:
    """Augmentations that keep the physics: mirror the band (a drift becomes the opposite drift) and shift
    along frequency (a needle can sit anywhere in the band). Time is never flipped: that would reverse the
    ON/OFF order."""

    def __init__(self, max_shift: int = 32, seed: int = 0):
        self.max_shift = max_shift
        self.rng = np.random.default_rng(seed)

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        if self.rng.random() < 0.5:
            image = image.flip(-1)
        shift = int(self.rng.integers(-self.max_shift, self.max_shift + 1))
        return image.roll(shift, dims=-1) if shift else image


def mixup_or(x: torch.Tensor, y: torch.Tensor, alpha: float, generator: torch.Generator):
    """Mixup with the OR label: a cadence mixed with a needle is labelled a needle."""
    lam = float(torch.distributions.Beta(alpha, alpha).sample()) if alpha > 0 else 1.0
    perm = torch.randperm(len(x), generator=generator).to(x.device)
    return lam * x + (1 - lam) * x[perm], torch.maximum(y, y[perm])


def epoch_metrics(target, score) -> dict[str, float]:
    """Loss-free metrics of one pass, from scikit-learn (threshold 0.5 on the sigmoid for the counting ones)."""
    from sklearn.metrics import accuracy_score, precision_score, recall_score, roc_auc_score

    target, score = np.asarray(target), np.asarray(score)
    pred = (score > 0.5).astype(int)
    return {"accuracy": accuracy_score(target, pred), "precision": precision_score(target, pred, zero_division=0),
            "recall": recall_score(target, pred, zero_division=0),
            "auc": roc_auc_score(target, score) if len(set(target)) > 1 else float("nan")}


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


def _loader(dataset, config: TrainConfig, balanced: bool, shuffle: bool, epoch: int) -> DataLoader:
    generator = torch.Generator().manual_seed(config.seed * 1000 + epoch)
    sampler = None
    if balanced:  # every class drawn equally often: needles repeat
        targets = dataset.targets.astype(int)
        weights = 1.0 / np.bincount(targets, minlength=2)[targets]
        sampler = WeightedRandomSampler(torch.as_tensor(weights, dtype=torch.double), len(targets),
                                        replacement=True, generator=generator)
    return DataLoader(dataset, batch_size=config.batch_size, shuffle=shuffle and sampler is None, sampler=sampler,
                      generator=generator, num_workers=config.num_workers,
                      persistent_workers=False, pin_memory=torch.cuda.is_available())


@torch.no_grad()
def predict(model: nn.Module, dataset, batch_size: int = 64, device: str = "auto", num_workers: int = 0,
            progress: bool = False) -> np.ndarray:
    """Needle probabilities (sigmoid of the logit) for every item of `dataset`, in order."""
    from tqdm.auto import tqdm

    device = pick_device(device)
    model = model.to(device).eval()
    scores = []
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    for x, _ in tqdm(loader, desc="predicting", disable=not progress, leave=False):
        with torch.autocast(device, enabled=device == "cuda"):
            scores.append(torch.sigmoid(model(x.to(device)).float()).squeeze(1).cpu())
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
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(f"{path}: not a seti-nb checkpoint ({e})") from e


@dataclass
class TrainResult:
    history: pd.DataFrame  # one row per epoch: train_* and val_* metrics, lr, seconds
    lrs: list[float] = field(default_factory=list)  # the learning rate at every step
    best_epoch: int = -1
    best_auc: float = float("nan")
    checkpoint: Path | None = None


def fit(model: nn.Module, train_set, val_set, config: TrainConfig, out_dir: str | Path | None = None,
        meta: dict | None = None, progress: bool = True) -> TrainResult:
    """Train `model` on `train_set`, validating on `val_set` after every epoch.

    The validation data are never resampled or augmented. The best epoch by validation AUC is saved to
    `out_dir/best.pt` (atomically) with `meta` (model name, layout, size...) and the config, and its weights
    are loaded back into `model` at the end. On CUDA: mixed precision and channels-last.
    """
    from tqdm.auto import tqdm

    seed_everything(config.seed)
    device = pick_device(config.device)
    cuda = device == "cuda"
    model = model.to(device, memory_format=torch.channels_last if cuda else torch.preserve_format)
    targets = train_set.targets
    pos_weight = torch.tensor((targets == 0).sum() / max(1, (targets == 1).sum()), device=device)
    criterion = nn.BCEWithLogitsLoss(pos_weight=pos_weight if config.loss == "weighted" else None)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps = math.ceil(len(train_set) / config.batch_size)
    scheduler = _scheduler(optimizer, config, steps)
    scaler = torch.amp.GradScaler(enabled=cuda)
    generator = torch.Generator().manual_seed(config.seed)
    if config.augment:
        train_set.transform = FrequencyAugment(seed=config.seed)
    out = Path(out_dir) if out_dir else None
    rows, lrs, best, best_state, waited = [], [], (-1, -math.inf), None, 0
    bar = tqdm(range(config.epochs), desc="training", unit="epoch", disable=not progress)
    for epoch in bar:
        balanced = config.sampler == "oversample" or (config.sampler == "hybrid" and epoch < config.epochs - 1)
        model.train()
        start, losses, seen, ys, ss = time.perf_counter(), 0.0, 0, [], []
        for x, y in _loader(train_set, config, balanced, shuffle=True, epoch=epoch):
            x, y = x.to(device, non_blocking=True), y.to(device)
            if cuda:
                x = x.contiguous(memory_format=torch.channels_last)
            if config.mixup > 0:
                x, y = mixup_or(x, y, config.mixup, generator)
            with torch.autocast(device, enabled=cuda):
                logit = model(x).squeeze(1)
                loss = criterion(logit.float(), y)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            lrs.append(optimizer.param_groups[0]["lr"])
            scheduler.step()
            losses += float(loss.detach()) * len(y)
            seen += len(y)
            ys.append((y > 0.5).int().cpu())
            ss.append(torch.sigmoid(logit.detach().float()).cpu())
            bar.set_postfix(loss=f"{losses / seen:.4f}")
        seconds = time.perf_counter() - start
        train = epoch_metrics(torch.cat(ys).numpy(), torch.cat(ss).numpy())
        val_scores = predict(model, val_set, config.batch_size * 2, device, config.num_workers)
        val_loss = float(nn.functional.binary_cross_entropy(torch.as_tensor(val_scores).clamp(1e-7, 1 - 1e-7),
                                                            torch.as_tensor(val_set.targets)))
        val = epoch_metrics(val_set.targets, val_scores)
        rows.append({"epoch": epoch + 1, "train_loss": losses / seen, **{f"train_{k}": v for k, v in train.items()},
                     "val_loss": val_loss, **{f"val_{k}": v for k, v in val.items()},
                     "lr": lrs[-1], "seconds": seconds, "images_per_s": seen / seconds})
        bar.set_postfix(loss=f"{losses / seen:.4f}", val_auc=f"{val['auc']:.3f}")
        if val["auc"] > best[1]:
            best, waited = (epoch + 1, val["auc"]), 0
            best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
            if out is not None:
                out.mkdir(parents=True, exist_ok=True)
                save_checkpoint(out / "best.pt", {"model": best_state, "config": asdict(config),
                                                  "meta": meta or {}, "epoch": epoch + 1, "val_auc": val["auc"]})
        else:
            waited += 1
            if config.early_stopping and waited >= config.early_stopping:
                break
    bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    history = pd.DataFrame(rows)
    if out is not None:
        history.to_csv(out / "history.csv", index=False)
    return TrainResult(history, lrs, best[0], best[1], out / "best.pt" if out is not None and best_state else None)


def model_from_checkpoint(checkpoint: dict) -> nn.Module:
    """Rebuild the model a checkpoint was trained as, with its weights."""
    from .models import build_model

    meta = checkpoint["meta"]
    model = build_model(meta["model"], in_channels=meta["in_channels"], pretrained=False)
    model.load_state_dict(checkpoint["model"])
    return model


def train_and_evaluate(data_dir: str | Path, model_name: str, layout: str = "on_stack", size=None,
                       pretrained: bool = False, config: TrainConfig = TrainConfig(),
                       out_dir: str | Path | None = None, test_size: float = 0.3, val_size: float = 0.1,
                       limit: int = 0, progress: bool = True) -> dict:
    """The study's protocol: a stratified 70/30 train/test split, a 90/10 train/validation split of the 70 %,
    training on the rest, and metrics on the 30 % test split (recall by SNR and kind with a truth table).

    `limit` keeps a stratified subset of that many training cadences (for quick profiles); 0 keeps all.
    Returns the TrainResult, the test items with their scores, and the metrics (also in out_dir/metrics.json).
    """
    import json

    from . import metrics
    from .data import CadenceDataset, read_labels, read_truth, split
    from .models import build_model

    labels = read_labels(data_dir)
    train_items, test_items = split(labels, test_size, config.seed)
    fit_items, val_items = split(train_items, val_size, config.seed)
    if limit and limit < len(fit_items):
        fit_items, _ = split(fit_items, 1 - limit / len(fit_items), config.seed)
    size = tuple(size) if size else None
    make = lambda items: CadenceDataset(data_dir, items, layout=layout, size=size)  # noqa: E731
    train_set, val_set, test_set = make(fit_items), make(val_items), make(test_items)
    in_channels = int(train_set[0][0].shape[0])
    seed_everything(config.seed)
    model = build_model(model_name, in_channels=in_channels, pretrained=pretrained)
    meta = {"model": model_name, "layout": layout, "size": list(size) if size else None, "in_channels": in_channels,
            "pretrained": pretrained}
    result = fit(model, train_set, val_set, config, out_dir, meta, progress)
    scores = predict(model, test_set, config.batch_size * 2, config.device, config.num_workers)
    test = test_items.assign(score=scores)
    summary = {"model": model_name, "layout": layout, "pretrained": pretrained, "train_cadences": len(fit_items),
               "val_cadences": len(val_items), "test_cadences": len(test_items), "epochs": len(result.history),
               "best_epoch": result.best_epoch, "val_auc": result.best_auc,
               **{f"test_{k}": v for k, v in epoch_metrics(test.target, scores).items()},
               "test_recall@fpr0.05": metrics.recall_at_fpr(test.target, scores, 0.05),
               "train_images_per_s": float(result.history.images_per_s.mean())}
    truth = read_truth(data_dir)
    if truth is not None:
        tt = truth.set_index("id").loc[test.id].reset_index()
        threshold = metrics.threshold_at_fpr(test.target, scores, 0.05)
        for by in ("snr", "kind"):
            table = metrics.recall_by(tt, scores, threshold, by)
            summary[f"recall_by_{by}@fpr0.05"] = {str(k): round(float(v), 4) for k, v in table.recall.items()}
    if out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        (Path(out_dir) / "metrics.json").write_text(json.dumps(summary, indent=1, default=float) + "\n")
        test.to_csv(Path(out_dir) / "test_scores.csv", index=False)
    return {"result": result, "test": test, "metrics": summary, "model": model}


def cross_validate(data_dir: str | Path, model_name: str, out_dir: str | Path, k: int = 5, layout: str = "on_stack",
                   size=None, pretrained: bool = False, config: TrainConfig = TrainConfig(),
                   test_size: float = 0.3, progress: bool = True) -> dict:
    """Stratified K-fold cross-validation on the 70 % training part, each fold's model also scored on the 30 %
    test split.

    The fold assignment is written to `out_dir/folds.csv` and reused. A finished fold leaves
    `fold<k>/fold.json` (written last); a rerun after an interruption skips those folds and trains the rest.
    Returns the per-fold table, out-of-fold scores for all training cadences, and the test scores of each fold.
    """
    import json

    from .data import CadenceDataset, folds_csv, read_labels, split
    from .models import build_model

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    train_part, test_part = split(read_labels(data_dir), test_size, config.seed)
    folds = folds_csv(out / "folds.csv", train_part, k, config.seed)
    size = tuple(size) if size else None
    make = lambda items: CadenceDataset(data_dir, items, layout=layout, size=size)  # noqa: E731
    test_set = make(test_part)
    rows, oof, test_scores = [], [], {}
    for fold in range(k):
        fold_dir = out / f"fold{fold}"
        marker = fold_dir / "fold.json"
        if not marker.exists():
            train_items, val_items = folds[folds.fold != fold], folds[folds.fold == fold]
            train_set, val_set = make(train_items), make(val_items)
            in_channels = int(train_set[0][0].shape[0])
            seed_everything(config.seed + fold)
            model = build_model(model_name, in_channels=in_channels, pretrained=pretrained)
            meta = {"model": model_name, "layout": layout, "size": list(size) if size else None,
                    "in_channels": in_channels, "pretrained": pretrained, "fold": fold}
            result = fit(model, train_set, val_set, config, fold_dir, meta, progress)
            val_items.assign(score=predict(model, val_set, config.batch_size * 2, config.device)).to_csv(
                fold_dir / "oof.csv", index=False)
            test_part.assign(score=predict(model, test_set, config.batch_size * 2, config.device)).to_csv(
                fold_dir / "test_scores.csv", index=False)
            marker.write_text(json.dumps({"fold": fold, "best_epoch": result.best_epoch, "val_auc": result.best_auc,
                                          "epochs": len(result.history)}) + "\n")
        summary = json.loads(marker.read_text())
        fold_oof = pd.read_csv(fold_dir / "oof.csv", dtype={"id": str})
        fold_test = pd.read_csv(fold_dir / "test_scores.csv", dtype={"id": str})
        test_scores[fold] = fold_test.score.to_numpy()
        rows.append({**summary, **{f"test_{k}": v for k, v in epoch_metrics(fold_test.target, fold_test.score).items()}})
        oof.append(fold_oof)
    return {"folds": pd.DataFrame(rows).set_index("fold"), "oof": pd.concat(oof, ignore_index=True),
            "test": test_part.reset_index(drop=True), "test_scores": test_scores}
