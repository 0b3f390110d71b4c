"""Scores of a detector: ROC AUC with a bootstrap interval, recall at a fixed false-positive rate, recall by SNR
and signal kind (detection efficiency, as the field reports it); and the whole-file statistics a leak would show."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy.stats import kurtosis
from sklearn.metrics import accuracy_score, precision_score, recall_score, roc_auc_score

SNR_BINS = (0, 8, 15, 30, np.inf)
SNR_LABELS = ("<8", "8-15", "15-30", "30+")
# A needle's width (FWHM, Hz): at most about 2, 2-4 and over 4 of Kaggle's 2.79 Hz channels. setigen's SNR is one
# channel's, summed over the scan, so at one SNR a wider needle carries more power in all.
WIDTH_BINS = (0, 6, 12, np.inf)
WIDTH_LABELS = ("<6 Hz", "6-12 Hz", "12+ Hz")


def threshold_at_fpr(target, score, fpr: float = 0.01) -> float:
    """The score above which a fraction `fpr` of the haystack lies."""
    target, score = np.asarray(target), np.asarray(score, dtype=float)
    return float(np.quantile(score[target == 0], 1 - fpr))


def recall_at_fpr(target, score, fpr: float = 0.01) -> float:
    """Share of needles found when the threshold lets through a fraction `fpr` of the haystack."""
    target, score = np.asarray(target), np.asarray(score, dtype=float)
    return float((score[target == 1] > threshold_at_fpr(target, score, fpr)).mean())


def threshold_metrics(target, score, threshold: float = 0.5) -> dict[str, float]:
    """Accuracy, precision and recall at `threshold` (0.5 on a probability), and ROC AUC: one pass's metrics."""
    target, score = np.asarray(target).astype(int), np.asarray(score, dtype=float)
    pred = (score > threshold).astype(int)
    return {"accuracy": accuracy_score(target, pred), "precision": precision_score(target, pred, zero_division=0),
            "recall": recall_score(target, pred, zero_division=0),
            "auc": roc_auc_score(target, score) if len(set(target)) > 1 else float("nan")}


def _bootstrap_aucs(target, scores: list, n: int, seed: int) -> np.ndarray:
    """AUCs of each score array on the same `n` resamples of the cadences (stratified: classes keep their size).

    A resample is held as how often it draws each cadence; its AUC, the share of (needle, haystack) pairs ranked
    right (ties count half), is counted over the distinct score values at once for all resamples: the numbers of
    `roc_auc_score` on each resample, a hundred times faster."""
    target = np.asarray(target).astype(int)
    rng = np.random.default_rng(seed)
    pos, neg = np.flatnonzero(target == 1), np.flatnonzero(target == 0)
    draws_pos, draws_neg = np.empty((n, len(pos)), dtype=np.intp), np.empty((n, len(neg)), dtype=np.intp)
    for b in range(n):
        draws_pos[b], draws_neg[b] = rng.choice(len(pos), len(pos)), rng.choice(len(neg), len(neg))
    resample = np.arange(n)[:, None]
    pos_counts = np.bincount((resample * len(pos) + draws_pos).ravel(), minlength=n * len(pos)).reshape(n, -1)
    neg_counts = np.bincount((resample * len(neg) + draws_neg).ravel(), minlength=n * len(neg)).reshape(n, -1)
    out = np.empty((n, len(scores)))
    for j, s in enumerate(scores):
        s = np.asarray(s, dtype=float)
        values, group = np.unique(np.r_[s[pos], s[neg]], return_inverse=True)
        g_pos, g_neg, k = group[: len(pos)], group[len(pos):], len(values)
        haystack_at = np.bincount((resample * k + g_neg).ravel(), weights=neg_counts.ravel(),
                                  minlength=n * k).reshape(n, k)  # haystack drawn at each distinct value
        below = np.cumsum(haystack_at, axis=1) - haystack_at
        out[:, j] = (pos_counts * (below[:, g_pos] + 0.5 * haystack_at[:, g_pos])).sum(axis=1)
    return out / (len(pos) * len(neg))


def auc_interval(target, score, n: int = 1000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """A bootstrap `level` interval of the ROC AUC over the test cadences."""
    aucs = _bootstrap_aucs(target, [score], n, seed)[:, 0]
    return tuple(float(q) for q in np.quantile(aucs, [(1 - level) / 2, (1 + level) / 2]))


def auc_difference(target, score_a, score_b, n: int = 1000, seed: int = 0, level: float = 0.95) -> dict:
    """AUC of a minus AUC of b, with a paired bootstrap interval; `tie` when the interval holds 0."""
    aucs = _bootstrap_aucs(target, [score_a, score_b], n, seed)
    diff = aucs[:, 0] - aucs[:, 1]
    low, high = np.quantile(diff, [(1 - level) / 2, (1 + level) / 2])
    point = roc_auc_score(target, score_a) - roc_auc_score(target, score_b)
    return {"difference": float(point), "low": float(low), "high": float(high), "tie": bool(low <= 0 <= high)}


def verdict(difference) -> str:
    """A paired AUC difference (from `auc_difference`) in words: a tie when its 95 % interval holds 0."""
    if difference["tie"]:
        return "a tie (the 95 % interval of the difference holds 0)"
    return f"{difference['difference']:+.3f} ({difference['low']:+.3f} to {difference['high']:+.3f})"


OPERATING_POINTS = {"recall_1pct": 0.01, "recall_01pct": 0.001}  # where surveys work: 1 % and 0.1 % FPR


@dataclass
class Evaluation:
    """A detector's scores evaluated against the truth: flat floats with names, ready for a table."""

    auc: float
    auc_low: float
    auc_high: float
    recall_1pct: float  # recall at 1 % false-positive rate
    recall_01pct: float  # recall at 0.1 % false-positive rate
    accuracy: float
    precision: float
    recall: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def evaluate(target, score, n_boot: int = 1000, seed: int = 0) -> Evaluation:
    """ROC AUC with its bootstrap 95 % interval, recall at 1 % and 0.1 % false-positive rate, and the counting
    metrics at the 0.5 threshold (of a probability)."""
    low, high = auc_interval(target, score, n_boot, seed)
    counting = threshold_metrics(target, score)
    recalls = {name: recall_at_fpr(target, score, fpr) for name, fpr in OPERATING_POINTS.items()}
    return Evaluation(auc=counting.pop("auc"), auc_low=low, auc_high=high, **recalls, **counting)


def evaluation_table(target, scores: dict, seed: int = 0,
                     columns=("auc", "auc_low", "auc_high", *OPERATING_POINTS)) -> pd.DataFrame:
    """`evaluate` of several detectors on the same cadences ({name: scores aligned with `target`}), one row each."""
    return pd.DataFrame({name: evaluate(target, s, seed=seed).to_dict() for name, s in scores.items()}).T[
        list(columns)].astype(float)


def recall_by(truth: pd.DataFrame, score, threshold: float, by: str | tuple[str, ...] = "snr") -> pd.DataFrame:
    """Recall of the needles in `truth` (rows aligned with `score`) per SNR bin (`"snr"`), width bin (`"width"`) or
    value of a column; a tuple of them groups by each in turn (`("width", "snr")`: a row per width and SNR bin).

    Only meaningful with a synthetic truth table: how detection efficiency falls with SNR, per signal kind.
    """
    found = pd.Series(np.asarray(score, dtype=float) > threshold, index=truth.index)
    needles = truth.target == 1
    keys = [_group(truth, name)[needles] for name in ((by,) if isinstance(by, str) else by)]
    table = found[needles].groupby(keys, observed=True).agg(["mean", "size"])
    table.columns = ["recall", "needles"]
    return table


def _group(truth: pd.DataFrame, by: str) -> pd.Series:
    if by == "snr":
        return pd.cut(truth.snr, SNR_BINS, right=False, labels=SNR_LABELS).rename("SNR")
    if by == "width":
        return pd.cut(truth.width_hz, WIDTH_BINS, right=False, labels=WIDTH_LABELS).rename("width")
    return truth[by]


def recall_table(truth: pd.DataFrame, scores: dict, fpr: float = 0.01, by: str = "snr") -> pd.DataFrame:
    """Recall at false-positive rate `fpr` per SNR bin (or kind), one column per detector in `scores`
    ({name: scores aligned with `truth`}), and the needle count."""
    columns = {}
    for name, s in scores.items():
        table = recall_by(truth, s, threshold_at_fpr(truth.target, s, fpr), by)
        columns[name], needles = table.recall, table.needles
    return pd.DataFrame(columns).assign(needles=needles)


def haystacks_above(truth: pd.DataFrame, score, threshold: float) -> pd.DataFrame:
    """Where a detector's false positives come from: for each background form the synthetic truth table names
    (its `backgrounds` column, rows aligned with `score`), the haystacks that carry it, the share of them above
    `threshold` (the detector's operating point) against the share of the haystacks without it, and how many of
    the haystacks above the threshold carry it; the form most over-represented first, after a row of all
    haystacks. A form that passes far more often than the rest is what would fill a survey's candidate list."""
    above = pd.Series(np.asarray(score, dtype=float) > threshold, index=truth.index)[truth.target == 0]
    forms = truth.backgrounds[truth.target == 0].fillna("").str.split(",")
    rows = {}
    for form in sorted({f for names in forms for f in names if f}):
        carries = forms.apply(lambda names, f=form: f in names)
        rows[form] = {"haystacks": int(carries.sum()), "share above": above[carries].mean(),
                      "share above without it": above[~carries].mean(), "of those above": int(above[carries].sum())}
    table = pd.DataFrame(rows).T
    table["ratio"] = table["share above"] / table["share above without it"].where(lambda share: share > 0)
    table = table.sort_values("ratio", ascending=False).drop(columns="ratio")
    every = pd.DataFrame({"haystacks": len(above), "share above": above.mean(), "share above without it": np.nan,
                          "of those above": int(above.sum())}, index=["all haystacks"])
    table = pd.concat([every, table]).astype({"haystacks": int, "of those above": int})
    table.index.name = "background"
    return table


def fisher_combined(scores: dict, reference: dict) -> np.ndarray:
    """Several detectors' scores of the same cadences as one score, by Fisher's method: each detector's score becomes
    the share of a reference set's scores by that detector at or above it (an empirical p-value, with one added to
    both counts; a false-positive rate where the reference is mostly haystacks, as a search's cadences are, and no
    label is used), and the combined score is -sum(log p). Detectors that miss different needles lift each other,
    and a cadence each calls ordinary stays ordinary. `scores` and `reference` map the same detector names to
    scores."""
    combined = 0.0
    for name, score in scores.items():
        ranked = np.sort(np.asarray(reference[name], dtype=float))
        at_or_above = len(ranked) - np.searchsorted(ranked, np.asarray(score, dtype=float), side="left")
        combined = combined - np.log((at_or_above + 1) / (len(ranked) + 1))
    return np.asarray(combined, dtype=float)


def twin_table(twins: pd.DataFrame, scores: dict, thresholds: dict | None = None) -> pd.DataFrame:
    """The twin test of several detectors, one row each ({name: scores aligned with `twins`}, the twin set's truth:
    `pair`, `target`, `kind`, `snr`). A pair is ranked right when the needle scores above its interference twin (a
    tie counts half): overall, by path kind and by SNR. With `thresholds` ({name: the detector's 1 % FPR threshold
    on its own test split}), also the share of interference twins, and of needles, above it: how much interference
    would join a survey's candidate list; and the pairs ranked right among those whose needle passes it, which
    tells the rule from sensitivity: a needle below the threshold is not reported whatever its rank, so at a survey's
    operating point the rule is this column and the twins above the threshold."""
    rows = {}
    for name, score in scores.items():
        table = twins.assign(score=np.asarray(score, dtype=float))
        needle = table[table.target == 1].set_index("pair").sort_index()
        twin = table[table.target == 0].set_index("pair").loc[needle.index]
        right = (needle.score > twin.score) + 0.5 * (needle.score == twin.score)
        snr = pd.cut(needle.snr, TWIN_SNR_BINS, right=False, labels=[f"SNR {b}" for b in TWIN_SNR_LABELS])
        row = {"pairs right": right.mean(), **right.groupby(needle.kind).mean(),
               **right.groupby(snr, observed=True).mean()}
        if thresholds is not None and name in thresholds:
            seen = needle.score > thresholds[name]
            row.update({"twins above threshold": float((twin.score > thresholds[name]).mean()),
                        "needles above threshold": float(seen.mean()),
                        "pairs right, needle above threshold": right[seen].mean() if seen.any() else np.nan})
        rows[name] = row
    return pd.DataFrame(rows).T.astype(float)


TWIN_SNR_BINS = (0, 15, 30, np.inf)  # the twin set's SNRs run from 8 to 80
TWIN_SNR_LABELS = ("8-15", "15-30", "30+")


def file_statistics(cadence: np.ndarray) -> dict[str, float]:
    """Whole-file statistics pooled over all six frames: what the first Kaggle release leaked through."""
    x = np.asarray(cadence, dtype=np.float64).ravel()
    return {"mean": x.mean(), "std": x.std(), "min": x.min(), "max": x.max(), "kurtosis": kurtosis(x),
            "p99": np.percentile(x, 99)}
