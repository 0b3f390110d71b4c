"""Interactive views: each wraps a pure function of seti_nb that also runs, and plots, without a widget."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .data import cadence_path, load_cadence
from .filters import filter_cadence
from .plots import compare_cadences, plot_cadence
from .cadence import CHANNELS, N_FRAMES, ROWS, cadence_rows, signal_channels

FILTER_SLIDERS = {
    "derivative": ["x", "y", "none"],
    "size": (3, 15, 2),
    "sigma": (0.0, 4.0, 0.25),
    "merge_strength": (0.0, 8.0, 0.5),
    "respaced": False,
}


def describe(row: pd.Series) -> str:
    """A one-line title for a cadence from its truth row."""
    if row.get("target") == 1:
        return (f"{row.id}: needle, {row.kind}, SNR {row.snr:.0f}, drift {row.drift_hz_s:+.2f} Hz/s,"
                f" ON frames {','.join(row.on_frames)}")
    return f"{row.id}: haystack" + (f" ({row.backgrounds})" if isinstance(row.get("backgrounds"), str) else "")


def truth_path(row: pd.Series) -> list[np.ndarray] | None:
    """The needle's centre channel per row in each of the six frames (NaN outside its frames)."""
    if row.get("target") != 1 or not isinstance(row.get("on_frames"), str):
        return None
    path = []
    for i in range(N_FRAMES):
        channels = signal_channels(row, cadence_rows(i)) if str(i) in row.on_frames else np.full(ROWS, np.nan)
        path.append(np.where((channels >= 0) & (channels < CHANNELS), channels, np.nan))
    return path


def show_cadence(root: str | Path, cadence_id: str, truth: pd.DataFrame | None = None, side: str = "train",
                 show_path: bool = True, fig=None):
    """Plot one cadence, titled (and its needle's path drawn) from the truth table when there is one."""
    cadence = load_cadence(cadence_path(root, cadence_id, side))
    row = None
    if truth is not None and cadence_id in set(truth.id):
        row = truth.set_index("id").loc[cadence_id].copy()
        row["id"] = cadence_id
    title = describe(row) if row is not None else cadence_id
    path = truth_path(row) if (row is not None and show_path) else None
    return plot_cadence(cadence, title=title, fig=fig, path=path)


def cadence_browser(root: str | Path, labels: pd.DataFrame, truth: pd.DataFrame | None = None):
    """Choose a class, a signal kind and an id; the cadence plot updates."""
    import matplotlib.pyplot as plt
    import ipywidgets as w

    table = labels.merge(truth.drop(columns="target"), on="id", how="left") if truth is not None else labels
    kinds = ["any"] + (sorted(table.kind.dropna().unique()) if "kind" in table else [])
    cls = w.Dropdown(options=["any", "needle", "haystack"], value="needle", description="class")
    kind = w.Dropdown(options=kinds, value="any", description="kind")
    ids = w.Dropdown(description="id")
    path = w.Checkbox(value=True, description="draw truth path")
    out = w.Output()

    def choices(*_):
        rows = table
        if cls.value != "any":
            rows = rows[rows.target == (cls.value == "needle")]
        if kind.value != "any":
            rows = rows[rows.kind == kind.value]
        ids.options = rows.id.tolist()[:500]
        if ids.options and ids.value not in ids.options:
            ids.value = ids.options[0]  # a new choice of class or kind shows its first cadence

    def draw(*_):
        out.clear_output(wait=True)
        if ids.value:
            with out:
                show_cadence(root, ids.value, truth, show_path=path.value)
                plt.show()

    for control in (cls, kind):
        control.observe(choices, "value")
    for control in (ids, path):
        control.observe(draw, "value")
    choices()
    draw()
    return w.VBox([w.HBox([cls, kind]), w.HBox([ids, path]), out])


def filter_view(cadence: np.ndarray, derivative: str = "x", size: int = 3, sigma: float = 1.0,
                merge_strength: float = 0.0, respaced: bool = False, fig=None):
    """The cadence beside its filtered version: the pure function behind the filter sliders."""
    settings = dict(derivative=derivative, size=size, sigma=sigma, merge_strength=merge_strength,
                    respaced=respaced)
    filtered = filter_cadence(cadence, **settings)
    label = ", ".join(f"{k}={v}" for k, v in settings.items())
    return compare_cadences({"original": cadence, label: filtered}, fig=fig)


def filter_playground(cadence: np.ndarray):
    """Sliders for every filter parameter; the filtered cadence updates live."""
    import matplotlib.pyplot as plt
    from ipywidgets import interact

    def view(**settings):
        filter_view(cadence, **settings)
        plt.show()

    return interact(view, **FILTER_SLIDERS)
