"""The study's protocol: which cadences train, validate and test; a run trained and evaluated on them; variants
compared; K-fold cross-validation; the deep models against the classical search; a checkpoint scoring a folder."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.model_selection import StratifiedKFold, train_test_split
from torch import nn

from . import distributed, metrics
from .cache import cached_frames
from .cadence import OFF_FRAMES, ON_FRAMES
from .config import Run
from .data import DataError, folder_geometry, read_cadence, read_labels, read_truth, side_ids
from .dataset import CadenceDataset, datasets, to_layout
from .dedoppler import score_cadences
from .models import build_model
from .preprocess import Preprocess
from .runtime import pick_device, seed_everything
from .train import TrainResult, check_geometry, fit, load_checkpoint, model_from_checkpoint, predict

SEARCH_SAMPLE = 600  # test cadences on which 02 scores the search and 03-06 set their models beside it


# ---- which cadences go where ----------------------------------------------------------------------------

def split(labels: pd.DataFrame, test_size: float = 0.3, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A reproducible stratified split: 70/30 train/test by default (as in the original study)."""
    a, b = train_test_split(labels, test_size=test_size, random_state=seed, stratify=labels.target)
    return a.reset_index(drop=True), b.reset_index(drop=True)


def splits(labels: pd.DataFrame, seed: int = 0, test_size: float = 0.3, val_size: float = 0.1, limit: int = 0):
    """The study's protocol: a stratified 70/30 train/test split, then 90/10 train/validation of the 70 %;
    `limit` keeps a stratified subset of that many training cadences."""
    train_items, test_items = split(labels, test_size, seed)
    fit_items, val_items = split(train_items, val_size, seed)
    if limit < 0:
        raise ValueError(f"limit must be 0 (all) or a number of training cadences, got {limit}")
    if limit and limit < len(fit_items):
        fit_items, _ = split(fit_items, 1 - limit / len(fit_items), seed)
    return fit_items, val_items, test_items


def stratified_sample(items: pd.DataFrame, n: int, seed: int = 0) -> pd.DataFrame:
    """About `n` rows of `items` with its share of each class (all of them when `n` is 0 or larger)."""
    if not n:
        return items
    return items.groupby("target").sample(frac=min(1.0, n / len(items)), random_state=seed)


def search_sample(labels: pd.DataFrame, seed: int = 0, n: int = SEARCH_SAMPLE) -> pd.DataFrame:
    """The test cadences on which the classical search is scored (02) and the deep models are set beside it
    (03-06): a stratified sample of `n` from the 70/30 test split (all of it when `n` is 0)."""
    return stratified_sample(split(labels, 0.3, seed)[1], n, seed)


def assign_folds(labels: pd.DataFrame, k: int = 5, seed: int = 0) -> pd.DataFrame:
    """`labels` with a `fold` column (0..k-1) from a stratified K-fold."""
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


# ---- a run, trained and evaluated ----------------------------------------------------------------------

@dataclass
class Result:
    """One training run evaluated on the test split."""

    name: str
    run: Run
    history: pd.DataFrame
    lrs: list[float]
    test: pd.DataFrame  # id, target, score (and the truth columns for synthetic data)
    evaluation: metrics.Evaluation
    train_cadences: int
    best_epoch: int
    val_auc: float
    minutes: float
    images_per_s: float
    checkpoint: Path | None
    model: nn.Module = field(repr=False)

    def row(self) -> dict:
        """The run as one table row of plain numbers."""
        return {**self.evaluation.to_dict(), "val_auc": self.val_auc, "train_cadences": self.train_cadences,
                "epochs": len(self.history), "best_epoch": self.best_epoch, "minutes": self.minutes,
                "images_per_s": self.images_per_s}

    @property
    def threshold(self) -> float:
        """The score above which 1 % of the test split's haystack lies: the run's survey operating point."""
        return metrics.threshold_at_fpr(self.test.target, self.test.score, 0.01)

    def predict(self, data_dir, items: pd.DataFrame, side: str = "train", progress: bool = False,
                tta: bool | None = None) -> np.ndarray:
        """The trained model's scores of the cadences `items` (an `id` column) of another folder, in order, with
        the run's layout and preprocessing (the twin test's set, say), and with the frequency mirror where the run
        scores with it, unless `tta` says."""
        dataset = CadenceDataset(data_dir, items, self.run.layout, self.run.preprocess, side=side, progress=progress)
        tta = self.run.tta if tta is None else tta
        return predict(self.model, dataset, self.run.config.batch_size * 2, self.run.config.device, tta=tta)

    def scans_worth(self, data_dir, ids, donor: str) -> pd.DataFrame:
        """What the ON and the OFF scans count for in the model's scores: each cadence of `ids` (in `data_dir`)
        scored as it is, with its three OFF scans (as the model sees them) replaced by those of the cadence `donor`
        (a quiet haystack: plain scans; not simply the lowest-scoring one, which may hold interference the
        model vetoes), and with its three ON scans replaced; and the logit each kind
        of scan adds (as is minus replaced). By the ON/OFF rule a signal that continues through the OFF scans is
        vetoed by them: their logit should cancel the ON scans'."""
        plain, rows = self.run.preprocess(read_cadence(data_dir, donor)), []
        device = next(self.model.parameters()).device
        for i in ids:
            x = self.run.preprocess(read_cadence(data_dir, i))
            off, on = x.copy(), x.copy()
            off[list(OFF_FRAMES)], on[list(ON_FRAMES)] = plain[list(OFF_FRAMES)], plain[list(ON_FRAMES)]
            inputs = np.stack([to_layout(v, self.run.layout) for v in (x, off, on)])
            with torch.no_grad():
                logit = self.model.eval()(torch.as_tensor(inputs, device=device)).float().cpu()[:, 0]
            score, added = torch.sigmoid(logit).tolist(), (logit[0] - logit).tolist()
            rows.append({"id": i, "score": score[0], "OFF scans plain": score[1], "ON scans plain": score[2],
                         "OFF scans' logit": added[1], "ON scans' logit": added[2]})
        return pd.DataFrame(rows)


def with_truth(data_dir, table: pd.DataFrame) -> pd.DataFrame:
    """`table` (with an `id` column) joined with the synthetic truth table where the data set has one."""
    truth = read_truth(data_dir)
    if truth is None:
        return table
    return table.merge(truth.drop(columns=["target", "side"]), on="id", how="left")


def run_model(run: Run) -> nn.Module:
    """The untrained model of a run: its architecture, input channels, weights, input size and pooling."""
    return build_model(run.model, in_channels=run.in_channels, pretrained=run.pretrained, size=run.size,
                       pool=run.pool, channel_average=run.preprocess.channel_average)


def train_and_evaluate(data_dir: str | Path, run: Run = Run(), out_dir: str | Path | None = None,
                       name: str = "", progress: bool = True, split_seed: int | None = None) -> Result:
    """Split, train on the training part, pick the epoch on validation, score and evaluate the 30 % test split.

    The split is drawn with `split_seed`, by default the run's seed: a fixed split and several seeds measure what
    the training alone varies (weights, batches, augmentation), apart from what the split varies.

    Seeded once, before the model is built; the device is the caller's to check first (`setup`, the command line
    do). Writes `best.pt`, `history.csv`, `metrics.json` and `test_scores.csv`
    into `out_dir` when given. With `run.config.processes` > 1 the run is trained by that many processes
    (DistributedDataParallel through torchrun, each process a rank running this function) into `out_dir`, and
    read back from it.
    """
    if run.config.processes > 1 and not distributed.launched():
        return _on_ranks(data_dir, run, out_dir, name, split_seed)
    start = time.perf_counter()
    if distributed.launched():
        distributed.start(pick_device(run.config.device))
        if distributed.local_rank() == 0 and not run.preprocess.full_resolution:
            cached_frames(data_dir, "train", run.preprocess, progress=progress)  # one rank a machine builds it
        distributed.barrier()
    split_seed = run.config.seed if split_seed is None else split_seed
    fit_items, val_items, test_items = splits(read_labels(data_dir), split_seed, limit=run.limit)
    seed_everything(run.config.seed)
    model = run_model(run)
    train_set, val_set, test_set = datasets(data_dir, run, fit_items, val_items, test_items, progress=progress)
    if val_items.target.nunique() < 2:
        raise ValueError(f"{data_dir}: the validation split holds only one class: its AUC cannot choose an epoch; "
                         "use a data set with more cadences or needles")
    geometry = folder_geometry(data_dir)
    meta = run.meta(geometry=geometry.to_dict())  # what `predict` and `scan` check first
    trained = fit(model, train_set, val_set, run.config, out_dir, meta, progress)
    scores = predict(model, test_set, run.config.batch_size * 2, run.config.device, tta=run.tta)
    result = _result(data_dir, run, name, trained, test_items.assign(score=scores), len(train_set), start, model)
    if out_dir is not None and distributed.world()[0] == 0:
        out = Path(out_dir)
        (out / "metrics.json").write_text(json.dumps({**run.describe(geometry), **result.row()}, indent=1) + "\n")
        result.test[["id", "target", "score"]].to_csv(out / "test_scores.csv", index=False)
    return result


def _result(data_dir, run: Run, name: str, trained: TrainResult, scored: pd.DataFrame, train_cadences: int,
            start: float, model: nn.Module) -> Result:
    test = with_truth(data_dir, scored)
    return Result(name=name or run.model, run=run, history=trained.history, lrs=trained.lrs, test=test,
                  evaluation=metrics.evaluate(test.target, test.score, seed=run.config.seed),
                  train_cadences=train_cadences, best_epoch=trained.best_epoch, val_auc=trained.best_auc,
                  minutes=(time.perf_counter() - start) / 60,
                  images_per_s=float(trained.history.images_per_s.mean()), checkpoint=trained.checkpoint,
                  model=model)


def _on_ranks(data_dir, run: Run, out_dir, name: str, split_seed: int | None) -> Result:
    """`run` trained by `run.config.processes` ranks that torchrun starts, each running `train_and_evaluate` on the
    settings written to `out_dir/run.json` (`python -m seti_nb.study`); the result read back from the run folder
    (all but the learning rate of every step: the history holds each epoch's last)."""
    if out_dir is None:
        raise ValueError("training on several processes needs an out_dir: the processes write the run there")
    start, out = time.perf_counter(), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "run.json").write_text(json.dumps({"data": str(data_dir), "run": run.to_dict(), "name": name,
                                                  "split_seed": split_seed}) + "\n")
    if distributed.launch("seti_nb.study", [str(out / "run.json")], run.config.processes):
        raise RuntimeError(f"{out}: training on {run.config.processes} processes failed (their messages are above)")
    checkpoint = load_checkpoint(out / "best.pt")
    trained = TrainResult(pd.read_csv(out / "history.csv"), [], checkpoint["epoch"], checkpoint["val_auc"],
                          out / "best.pt")
    scored = pd.read_csv(out / "test_scores.csv", dtype={"id": str})[["id", "target", "score"]]
    train_cadences = json.loads((out / "metrics.json").read_text())["train_cadences"]
    return _result(data_dir, run, name, trained, scored, train_cadences, start,
                   model_from_checkpoint(checkpoint, out / "best.pt"))


def compare(data_dir: str | Path, runs: dict, base: Run = Run(), out_dir: str | Path | None = None,
            progress: bool = True) -> dict[str, Result]:
    """Train and evaluate several variants of `base` ({name: {setting: value}}), each into `out_dir/<name>`."""
    results = {}
    for name, changes in runs.items():
        folder = Path(out_dir) / name.replace(" ", "_").replace("+", "plus") if out_dir else None
        results[name] = train_and_evaluate(data_dir, base.but(**changes), folder, name, progress)
    return results


def table(results: dict[str, Result]) -> pd.DataFrame:
    """One row per run: test AUC with its 95 % interval, recall at 1 % and 0.1 % FPR, counting metrics, cost."""
    return pd.DataFrame({name: r.row() for name, r in results.items()}).T.astype(float)


# ---- K-fold cross-validation ---------------------------------------------------------------------------

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


def _train_fold(data_dir, run: Run, folds: pd.DataFrame, fold: int, test_part: pd.DataFrame, fold_dir: Path,
                progress: bool) -> None:
    """Train fold `fold`, score its validation part and the test split, and mark it finished (fold.json, last)."""
    train_items, val_items = folds[folds.fold != fold], folds[folds.fold == fold]
    train_set, val_set, test_set = datasets(data_dir, run, train_items, val_items, test_part, progress=progress)
    seed_everything(run.config.seed + fold)
    model = run_model(run)
    meta = run.meta(fold=fold, geometry=folder_geometry(data_dir).to_dict())
    trained = fit(model, train_set, val_set, run.config, fold_dir, meta, progress)
    batch = run.config.batch_size * 2
    for part, dataset, name in ((val_items, val_set, "oof.csv"), (test_part, test_set, "test_scores.csv")):
        part.assign(score=predict(model, dataset, batch, run.config.device, tta=run.tta)).to_csv(fold_dir / name,
                                                                                               index=False)
    (fold_dir / "fold.json").write_text(json.dumps({"fold": fold, "best_epoch": trained.best_epoch,
                                                    "val_auc": trained.best_auc,
                                                    "epochs": len(trained.history)}) + "\n")


def cross_validate(data_dir: str | Path, out_dir: str | Path, run: Run = Run(), k: int = 5,
                   progress: bool = True) -> CrossValidation:
    """Stratified K-fold cross-validation on the 70 % training part, each fold's model also scored on the 30 %
    test split.

    The fold assignment is written to `out_dir/folds.csv` and reused. A finished fold leaves
    `fold<k>/fold.json` (written last); a rerun after an interruption skips those folds and trains the rest.
    """
    if run.config.processes > 1:
        raise ValueError("cross-validation trains each fold on one process; set processes=1")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    train_part, test_part = split(read_labels(data_dir), 0.3, run.config.seed)
    folds = folds_csv(out / "folds.csv", train_part, k, run.config.seed)
    rows, oof, test_scores = [], [], {}
    for fold in range(k):
        fold_dir = out / f"fold{fold}"
        if not (fold_dir / "fold.json").exists():
            _train_fold(data_dir, run, folds, fold, test_part, fold_dir, progress)
        summary = json.loads((fold_dir / "fold.json").read_text())
        fold_test = pd.read_csv(fold_dir / "test_scores.csv", dtype={"id": str})
        test_scores[fold] = fold_test.score.to_numpy()
        rows.append({**summary, **{f"test_{m}": v for m, v in
                                   metrics.threshold_metrics(fold_test.target, fold_test.score).items()}})
        oof.append(pd.read_csv(fold_dir / "oof.csv", dtype={"id": str}))
    return CrossValidation(pd.DataFrame(rows).set_index("fold"), pd.concat(oof, ignore_index=True),
                           test_part.reset_index(drop=True), test_scores)


# ---- the deep models beside the classical search; a checkpoint on any folder ---------------------------

def versus_search(data_dir, labels: pd.DataFrame, models: dict, seed: int = 0, levels=(2, 3)):
    """Deep models against the classical search on the same test cadences (`search_sample`: de-Doppler scores
    cached by 02, computed here when absent). `models` maps a name to a table with `id` and `score` over the test
    split. Returns the sample (with the truth columns where the data set has them) and {detector: scores aligned
    with it}."""
    test = search_sample(labels, seed)
    classical = score_cadences(data_dir, test.id.tolist())
    scores = {name: table.set_index("id").score.loc[test.id].to_numpy() for name, table in models.items()}
    scores.update({f"de-Doppler, level {level}": classical[f"level{level}"].to_numpy() for level in levels})
    return with_truth(data_dir, test).reset_index(drop=True), scores


def score_folder(checkpoint_path: str | Path, data_dir: str | Path, side: str = "", device: str = "cpu",
                 progress: bool = True) -> pd.DataFrame:
    """id and score of every cadence file of one side of a Kaggle-layout folder (`test` where it exists, unless
    `side` says), scored by a checkpoint with the layout and preprocessing it was trained on."""
    checkpoint = load_checkpoint(checkpoint_path)
    model = model_from_checkpoint(checkpoint, checkpoint_path)
    side = side or ("test" if (Path(data_dir) / "test").is_dir() else "train")
    ids = side_ids(data_dir, side)  # the files present: a partial download scores what it has
    if not ids:
        raise FileNotFoundError(f"{data_dir}: no {side} cadences to score")
    meta = checkpoint["meta"]
    check_geometry(meta, folder_geometry(data_dir), str(data_dir), checkpoint_path)
    dataset = CadenceDataset(data_dir, pd.DataFrame({"id": ids}), meta["layout"], Preprocess(**meta["preprocess"]),
                             side=side, progress=progress)
    scores = predict(model, dataset, device=device, progress=progress, tta=meta.get("tta", False))
    if not np.isfinite(scores).all():  # no blank target ever reaches a submission
        raise ValueError(f"{checkpoint_path}: gives {int((~np.isfinite(scores)).sum())} NaN or infinite scores of "
                         f"{len(scores)} (damaged weights); nothing written")
    return pd.DataFrame({"id": ids, "score": scores})


def trained_run(run_dir: str | Path, data_dir: str | Path) -> tuple[nn.Module, dict, pd.DataFrame]:
    """A training run's folder (`best.pt` and `test_scores.csv`: `seti-nb train`, or a notebook's run such as
    `runs/04_efficientnet_transfer-*/cadence-cnn`): its model in eval mode, its checkpoint's meta, and its test scores
    with the truth columns of `data_dir`'s data set where it has them (what the benchmarks of a run start from)."""
    run_dir = Path(run_dir)
    checkpoint = load_checkpoint(run_dir / "best.pt")
    model = model_from_checkpoint(checkpoint, run_dir / "best.pt").eval()
    return model, checkpoint["meta"], with_truth(data_dir, pd.read_csv(run_dir / "test_scores.csv", dtype={"id": str}))


if __name__ == "__main__":  # one rank of a run on several processes: torchrun ... -m seti_nb.study RUN_JSON
    import sys

    spec = Path(sys.argv[1])
    settings = json.loads(spec.read_text())
    try:
        train_and_evaluate(settings["data"], Run.from_dict(settings["run"]), spec.parent, settings["name"],
                           split_seed=settings["split_seed"])
    finally:
        distributed.finish()
