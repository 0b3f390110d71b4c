"""Figures of the workbook, in one style: each takes `ax=None` (or `fig=None`) and returns the figure."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.patches import Rectangle
from sklearn.metrics import ConfusionMatrixDisplay, roc_auc_score, roc_curve

from .cadence import CHANNELS, DT_S, KAGGLE, N_FRAMES, ON_FRAMES, Geometry, cadence_rows, frame_label, signal_channels
from .data import folder_geometry, read_cadence
from .filters import filter_cadence
from .metrics import recall_table

ON_COLOUR, OFF_COLOUR = "tab:red", "tab:blue"


def plot_cadence(cadence: np.ndarray, title: str | None = None, fig=None, cmap: str = "viridis",
                 vmax_percentile: float = 99.5, path=None):
    """The six scans of a cadence one above the other, as in Breakthrough Listen's plots.

    ON scans carry a red label, OFF scans a blue one. `path` is an optional list of six arrays of
    channel positions per row (NaN where absent), drawn as a thin dashed line over the image.
    """
    cadence = np.asarray(cadence, dtype=np.float32)
    if cadence.ndim != 3 or cadence.shape[0] != N_FRAMES:
        raise ValueError(f"expected a cadence of shape (6, rows, channels), got {cadence.shape}")
    if fig is None:
        fig = plt.figure(figsize=(4, 7))
    axes = fig.subplots(N_FRAMES, 1, sharex=True)
    vmin, vmax = np.percentile(cadence, [0.5, vmax_percentile])
    for i, ax in enumerate(axes):
        ax.imshow(cadence[i], aspect="auto", cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
        colour = ON_COLOUR if i in ON_FRAMES else OFF_COLOUR
        ax.set_ylabel(frame_label(i), color=colour, rotation=0, ha="right", va="center", fontsize=9)
        for side in ax.spines.values():
            side.set_edgecolor(colour)
            side.set_linewidth(2 if i in ON_FRAMES else 1)
        ax.set_yticks([])
        if path is not None and np.isfinite(path[i]).any():
            ax.plot(np.asarray(path[i]) + 8, np.arange(len(path[i])), "w--", lw=0.8, alpha=0.8)
            ax.set_xlim(-0.5, cadence.shape[2] - 0.5)
    axes[-1].set_xlabel("frequency channel")
    if title:
        axes[0].set_title(title, fontsize=10)
    fig.subplots_adjust(hspace=0.05, left=0.25)
    return fig


def compare_cadences(cadences: dict, fig=None, **kwargs):
    """Several cadences side by side, titled by the keys of `cadences` (e.g. before and after a filter)."""
    if fig is None:
        fig = plt.figure(figsize=(3.2 * len(cadences), 6.5))
    subfigs = np.atleast_1d(fig.subfigures(1, len(cadences)))
    for sub, (title, cadence) in zip(subfigs, cadences.items()):
        plot_cadence(cadence, title=title, fig=sub, **kwargs)
    return fig


def plot_timeline(path_channels=None, ax=None):
    """The ABACAD observing sequence on a time axis: six scans, ON (A) in red, OFF in blue.

    `path_channels` (optional, six arrays of channels per row, NaN where absent) draws a needle's
    frequency through time, to show that one signal continues across the ON scans.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(9, 2.6))
    for i in range(N_FRAMES):
        rows = cadence_rows(i)
        colour = ON_COLOUR if i in ON_FRAMES else OFF_COLOUR
        ax.add_patch(Rectangle((rows[0], 0), len(rows), CHANNELS, color=colour, alpha=0.12))
        ax.text(rows.mean(), CHANNELS + 6, frame_label(i), ha="center", color=colour, fontsize=8)
        if path_channels is not None:
            ax.plot(rows, path_channels[i], color="k", lw=1.5)
    ax.set_xlim(0, cadence_rows(N_FRAMES - 1)[-1] + 1)
    ax.set_ylim(0, CHANNELS + 19)
    ax.set_xlabel(f"time (rows of {DT_S} s, scans of 5 min, slews between)")
    ax.set_ylabel("frequency channel")
    return ax.figure


def plot_class_histograms(values, target, bins=50, ax=None, xlabel: str = "", density: bool = True):
    """Overlaid histograms of one quantity for haystack (0) and needles (1)."""
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 3))
    values, target = np.asarray(values, dtype=float), np.asarray(target)
    edges = np.histogram_bin_edges(values[np.isfinite(values)], bins=bins)
    for label, colour, name in ((0, "0.5", "haystack"), (1, ON_COLOUR, "needles")):
        ax.hist(values[target == label], bins=edges, density=density, histtype="step", lw=1.5, color=colour,
                label=f"{name} ({int((target == label).sum())})")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("density" if density else "count")
    ax.legend()
    return ax.figure


def plot_roc(curves: dict, ax=None):
    """ROC curves: `curves` maps a name to (target, score); the legend gives each AUC."""
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 4))
    for name, (target, score) in curves.items():
        fpr, tpr, _ = roc_curve(target, score)
        ax.plot(fpr, tpr, lw=1.5, label=f"{name} (AUC {roc_auc_score(target, score):.3f})")
    ax.plot([0, 1], [0, 1], "k:", lw=1, label="chance")
    ax.set_xlabel("false-positive rate")
    ax.set_ylabel("true-positive rate (recall)")
    ax.legend(loc="lower right")
    return ax.figure


def plot_recall(table, ax=None, title: str = ""):
    """A bar chart of recall per group (a table from `metrics.recall_by`), with the needle count on each bar."""
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 3))
    bars = ax.bar(range(len(table)), table.recall, color=ON_COLOUR, alpha=0.7)  # positions: labels like "2"
    ax.set_xticks(range(len(table)), [str(i) for i in table.index])                # stay labels, not numbers
    for bar, n in zip(bars, table.needles):
        ax.text(bar.get_x() + bar.get_width() / 2, bar.get_height() + 0.02, f"n={n}", ha="center", fontsize=7)
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("recall")
    ax.set_xlabel(table.index.name)
    ax.set_title(title)
    return ax.figure


HISTORY_METRICS = ("loss", "accuracy", "precision", "recall", "auc")


def plot_history(histories: dict, metrics=HISTORY_METRICS, fig=None):
    """Per-epoch curves, one panel per metric, runs overlaid: training solid, validation dashed.

    `histories` maps a run's name to its history DataFrame (columns `train_<metric>`, `val_<metric>`).
    """
    if fig is None:
        fig = plt.figure(figsize=(3.3 * len(metrics), 3))
    axes = np.atleast_1d(fig.subplots(1, len(metrics)))
    for i, (name, history) in enumerate(histories.items()):
        colour = f"C{i}"
        for ax, metric in zip(axes, metrics):
            ax.plot(history.epoch, history[f"train_{metric}"], "-", color=colour, label=f"{name} train")
            ax.plot(history.epoch, history[f"val_{metric}"], "--", color=colour, label=f"{name} validation")
            ax.set_title(metric)
            ax.set_xlabel("epoch")
    axes[-1].legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


def plot_confusion(target, predicted, ax=None, title: str = ""):
    """The confusion matrix with counts, haystack and needle labelled."""
    if ax is None:
        _, ax = plt.subplots(figsize=(3.2, 3))
    ConfusionMatrixDisplay.from_predictions(target, predicted, display_labels=["haystack", "needle"], ax=ax,
                                            colorbar=False, cmap="Blues")
    ax.set_title(title)
    return ax.figure


def plot_detection_efficiency(table, ax=None, title: str = ""):
    """Recall at a fixed false-positive rate against SNR, one line per detector: the field's injection-recovery
    plot. `table` is `metrics.recall_table(...)` (SNR bins as rows, a column per detector, and `needles`)."""
    if ax is None:
        _, ax = plt.subplots(figsize=(4.5, 3))
    labels = [f"{i}\n(n={n})" for i, n in zip(table.index, table.needles)]
    for name in table.columns.drop("needles"):
        ax.plot(labels, table[name], "o-", label=name)
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel("SNR")
    ax.set_ylabel("recall")
    ax.set_title(title)
    ax.legend(fontsize=7)
    return ax.figure


def recall_panel(table: pd.DataFrame, scores: dict, fpr: float = 0.01, ax=None, title: str = ""):
    """The injection-recovery plot of several detectors on the same cadences ({name: scores aligned with
    `table`}): recall at false-positive rate `fpr` against SNR. Synthetic data only (its truth gives the SNR);
    None without an `snr` column, as for the real data."""
    if "snr" not in table:
        return None
    title = title or f"recall at {fpr:.0%} FPR, {len(table)} test cadences"
    return plot_detection_efficiency(recall_table(table, scores, fpr, "snr"), ax=ax, title=title)


# ---- one cadence, from the truth table -----------------------------------------------------------------

def describe(row: pd.Series) -> str:
    """A one-line title for a cadence from its truth row."""
    if row.get("target") == 1:
        return (f"{row.id}: needle, {row.kind}, SNR {row.snr:.0f}, drift {row.drift_hz_s:+.2f} Hz/s,"
                f" ON frames {','.join(row.on_frames)}")
    return f"{row.id}: haystack" + (f" ({row.backgrounds})" if isinstance(row.get("backgrounds"), str) else "")


def truth_path(row: pd.Series, geometry: Geometry = KAGGLE) -> list[np.ndarray] | None:
    """The signal's centre channel per row in each of the six frames that carry it (`on_frames`; NaN elsewhere):
    a needle's, or an interference twin's, in a cadence of `geometry`; None for a cadence without one."""
    if not isinstance(row.get("on_frames"), str):
        return None
    path, g = [], geometry
    for i in range(N_FRAMES):
        channels = signal_channels(row, g.cadence_rows(i)) if str(i) in row.on_frames else np.full(g.rows, np.nan)
        path.append(np.where((channels >= 0) & (channels < g.channels), channels, np.nan))
    return path


def show_cadence(root: str | Path, cadence_id: str, truth: pd.DataFrame | None = None, side: str = "train",
                 show_path: bool = True, fig=None):
    """Plot one cadence, titled (and its needle's path drawn) from the truth table when there is one."""
    cadence = read_cadence(root, cadence_id, side)
    row = None
    if truth is not None and cadence_id in set(truth.id):
        row = truth.set_index("id").loc[cadence_id].copy()
        row["id"] = cadence_id
    title = describe(row) if row is not None else cadence_id
    path = truth_path(row, folder_geometry(root)) if (row is not None and show_path) else None
    return plot_cadence(cadence, title=title, fig=fig, path=path)


def show_twins(root: str | Path, twins: pd.DataFrame, pair: int, preprocess=None, fig=None):
    """A needle and its interference twin side by side (pair `pair` of the twin set at `root`, truth `twins`), the
    signal's path drawn: the same signal, absent from the OFF scans in one, continued through them in the other.
    `preprocess` (a full-resolution `Preprocess`, say with the bandpass removed) is applied first when given."""
    if fig is None:
        fig = plt.figure(figsize=(9, 6.5))
    rows = twins[twins.pair == pair].sort_values("target", ascending=False)
    for sub, (_, row) in zip(fig.subfigures(1, 2), rows.iterrows()):
        kind = "needle: ON scans only" if row.target == 1 else "its interference twin: through the OFF scans"
        cadence = read_cadence(root, row.id)
        plot_cadence(cadence if preprocess is None else preprocess(cadence), fig=sub, path=truth_path(row),
                     title=f"{kind}\n{row.kind}, SNR {row.snr:.0f}, drift {row.drift_hz_s:+.2f} Hz/s")
    return fig


def show_candidate(cadence, candidate: pd.Series, fig=None):
    """One candidate of `seti-nb scan` (of the observation `cadence`, a `scan.Cadence`) as turboSETI's
    `plot_event` shows an event: the six scans over the band its path crosses during the cadence, flattened, with
    the path drawn through all six (beside the signal)."""
    from .scan import around  # deferred on purpose: the observation search (blimpy, numba) only where it is drawn

    scans, path = around(cadence, candidate)
    title = (f"{candidate.frequency_mhz:.6f} MHz, {candidate.drift_hz_s:+.3f} Hz/s\n"
             f"level {int(candidate.level)}, SNR {candidate.snr:.0f}, OFF on its path {candidate.off_snr:.1f}")
    return plot_cadence(scans, title=title, fig=fig, path=path)


def show_saliency(items: dict, fig=None):
    """Where a model looks: for each {title: (input, saliency)} (both the six scans as the model sees them,
    `(6, rows, channels)`; saliency from `train.saliency`), the input beside the magnitude of the saliency."""
    if fig is None:
        fig = plt.figure(figsize=(3.4 * 2 * len(items), 6.5))
    subfigs = np.atleast_1d(fig.subfigures(1, 2 * len(items)))
    for (title, (x, where)), left, right in zip(items.items(), subfigs[0::2], subfigs[1::2]):
        plot_cadence(x, title=title, fig=left)
        plot_cadence(np.abs(where), title="where it looks", fig=right, cmap="magma", vmax_percentile=99.9)
    return fig


def show_misses(root: str | Path, table: pd.DataFrame, score, threshold: float, truth: pd.DataFrame | None = None):
    """What a detector gets wrong at `threshold`: the brightest needle it misses (left; none drawn when it misses
    none) beside the haystack it scores highest (right). `table` holds id and target (and snr, for synthetic
    data), rows aligned with `score`."""
    scored = table.assign(score=np.asarray(score, dtype=float))
    missed = scored[(scored.target == 1) & (scored.score <= threshold)]
    if "snr" in missed:
        missed = missed.sort_values("snr", ascending=False)
    fig = plt.figure(figsize=(12, 6.5))
    left, right = fig.subfigures(1, 2)
    if len(missed):
        show_cadence(root, missed.id.iloc[0], truth, fig=left)
    show_cadence(root, scored[scored.target == 0].sort_values("score").id.iloc[-1], truth, fig=right)
    return fig


def filter_view(cadence: np.ndarray, derivative: str = "x", size: int = 3, sigma: float = 1.0,
                merge_strength: float = 0.0, respaced: bool = False, fig=None):
    """The cadence beside its filtered version: the pure function behind the filter sliders."""
    settings = {"derivative": derivative, "size": size, "sigma": sigma, "merge_strength": merge_strength,
                "respaced": respaced}
    filtered = filter_cadence(cadence, **settings)
    label = ", ".join(f"{k}={v}" for k, v in settings.items())
    return compare_cadences({"original": cadence, label: filtered}, fig=fig)
