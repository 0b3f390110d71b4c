"""Interactive views: each wraps a pure figure function of `seti_nb.plots` that also runs without a widget."""

from __future__ import annotations

import inspect
from pathlib import Path

import ipywidgets as w
import matplotlib.pyplot as plt
import pandas as pd

from .plots import filter_view, show_cadence, show_candidate

FILTER_SLIDERS = {
    "derivative": ["x", "y", "none"],
    "size": (3, 15, 2),
    "sigma": (0.0, 4.0, 0.25),
    "merge_strength": (0.0, 8.0, 0.5),
    "respaced": False,
}
WIDE_LABEL = {"description_width": "initial"}  # the whole name beside the control, never cut


def cadence_browser(root: str | Path, labels: pd.DataFrame, truth: pd.DataFrame | None = None, side: str = "train"):
    """Choose a class, a signal kind and an id of `side`; the cadence plot updates. No match says so. `labels`:
    ids and targets (a test side's `sample_submission.csv`, or a scan's snippets' `candidates.csv` with a target)."""
    table = labels.merge(truth.drop(columns="target"), on="id", how="left") if truth is not None else labels
    kinds = ["any"] + (sorted(table.kind.dropna().unique()) if "kind" in table else [])
    cls = w.Dropdown(options=["any", "needle", "haystack"], value="needle" if (table.target == 1).any() else "any",
                     description="class")
    kind = w.Dropdown(options=kinds, value="any", description="kind")
    ids = w.Dropdown(description="id")
    path = w.Checkbox(value=True, description="draw truth path", style=WIDE_LABEL)
    out = w.Output()

    def draw(*_):
        with out:
            out.clear_output(wait=True)
            if ids.value:
                show_cadence(root, ids.value, truth, side, show_path=path.value)
                plt.show()
            else:
                print(f"no cadence matches class {cls.value!r} and kind {kind.value!r}")

    choosing = False

    def choices(*_):
        nonlocal choosing
        rows = table
        if cls.value != "any":
            rows = rows[rows.target == (cls.value == "needle")]
        if kind.value != "any":
            rows = rows[rows.kind == kind.value]
        choosing = True  # one redraw for a new class or kind, which shows its first cadence
        try:
            ids.options = rows.id.tolist()[:500]
            ids.value = ids.options[0] if ids.options else None
        finally:
            choosing = False
        draw()

    for control in (cls, kind):
        control.observe(choices, "value")
    ids.observe(lambda _: choosing or draw(), "value")
    path.observe(draw, "value")
    choices()
    return w.VBox([w.HBox([cls, kind]), w.HBox([ids, path]), out])


def filter_playground(cadence):
    """Sliders for every filter parameter, starting at `plots.filter_view`'s defaults; the figure updates live."""
    defaults = {name: p.default for name, p in inspect.signature(filter_view).parameters.items()}
    controls = {}
    for name, spec in FILTER_SLIDERS.items():
        if isinstance(spec, list):
            control = w.Dropdown(options=spec)
        elif isinstance(spec, bool):
            control = w.Checkbox()
        else:
            low, high, step = spec
            control = (w.IntSlider if isinstance(step, int) else w.FloatSlider)(min=low, max=high, step=step)
        control.description, control.style, control.value = name, WIDE_LABEL, defaults[name]
        controls[name] = control

    def view(**settings):
        filter_view(cadence, **settings)
        plt.show()

    return w.interactive(view, **controls)


def candidate_browser(cadence, candidates: pd.DataFrame):
    """Choose a candidate of `seti-nb scan`'s table: its six scans, the path drawn through them."""
    choices = [(f"{i + 1}: {c.frequency_mhz:.6f} MHz, {c.drift_hz_s:+.3f} Hz/s, level {c.level}, SNR {c.snr:.0f}", i)
               for i, c in enumerate(candidates.itertuples())]
    pick = w.Dropdown(options=choices, description="candidate", layout=w.Layout(width="32em"))
    out = w.Output()

    def draw(*_):
        with out:
            out.clear_output(wait=True)
            show_candidate(cadence, candidates.iloc[pick.value])
            plt.show()

    pick.observe(draw, "value")
    draw()
    return w.VBox([pick, out])
