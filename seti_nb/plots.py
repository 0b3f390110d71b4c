"""Figures of the workbook, in one style: each takes `ax=None` (or `fig=None`) and returns the figure."""

from __future__ import annotations

import numpy as np

from .data import N_FRAMES, ON_FRAMES

ON_COLOUR, OFF_COLOUR = "tab:red", "tab:blue"


def frame_label(i: int) -> str:
    """'ON (A)' / 'OFF (B)' ... for frame i of an ABACAD cadence."""
    return f"{'ON' if i in ON_FRAMES else 'OFF'} ({'ABACAD'[i]})"


def plot_cadence(cadence: np.ndarray, title: str | None = None, fig=None, cmap: str = "viridis",
                 vmax_percentile: float = 99.5, path=None):
    """The six scans of a cadence one above the other, as in Breakthrough Listen's plots.

    ON scans carry a red label, OFF scans a blue one. `path` is an optional list of six arrays of
    channel positions per row (NaN where absent), drawn as a thin dashed line over the image.
    """
    import matplotlib.pyplot as plt

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
            ax.plot(path[i], np.arange(len(path[i])), "w--", lw=0.8, alpha=0.7)
            ax.set_xlim(-0.5, cadence.shape[2] - 0.5)
    axes[-1].set_xlabel("frequency channel")
    if title:
        axes[0].set_title(title, fontsize=10)
    fig.subplots_adjust(hspace=0.05)
    return fig
