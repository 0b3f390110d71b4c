"""Scores of a detector: ROC AUC, recall at a fixed false-positive rate, and recall by SNR and signal kind."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

SNR_BINS = (0, 8, 15, 30, np.inf)
SNR_LABELS = ("<8", "8-15", "15-30", "30+")


def threshold_at_fpr(target, score, fpr: float = 0.05) -> float:
    """The score above which a fraction `fpr` of the haystack lies."""
    target, score = np.asarray(target), np.asarray(score, dtype=float)
    return float(np.quantile(score[target == 0], 1 - fpr))


def recall_at_fpr(target, score, fpr: float = 0.05) -> float:
    """Share of needles found when the threshold lets through a fraction `fpr` of the haystack."""
    target, score = np.asarray(target), np.asarray(score, dtype=float)
    return float((score[target == 1] > threshold_at_fpr(target, score, fpr)).mean())


def summary(target, score, fpr: float = 0.05) -> dict[str, float]:
    """ROC AUC and recall at a fixed false-positive rate."""
    return {"auc": float(roc_auc_score(target, score)), f"recall@fpr{fpr:g}": recall_at_fpr(target, score, fpr)}


def recall_by(truth: pd.DataFrame, score, threshold: float, by: str = "snr") -> pd.DataFrame:
    """Recall of the needles in `truth` (rows aligned with `score`) per SNR bin or per value of a column.

    Only meaningful with a synthetic truth table: how detection efficiency falls with SNR, per signal kind.
    """
    found = pd.Series(np.asarray(score, dtype=float) > threshold, index=truth.index)
    needles = truth.target == 1
    key = pd.cut(truth.snr, SNR_BINS, right=False, labels=SNR_LABELS) if by == "snr" else truth[by]
    table = found[needles].groupby(key[needles], observed=True).agg(["mean", "size"])
    table.columns = ["recall", "needles"]
    table.index.name = "SNR" if by == "snr" else by
    return table
