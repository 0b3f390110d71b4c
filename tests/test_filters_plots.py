"""Filters (known inputs, known outputs), plots (figure structure, labels) and widgets' pure functions."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from seti_nb import filters, metrics, plots, widgets


def test_derivative_x_finds_vertical_edges():
    image = np.zeros((5, 6), np.float32)
    image[:, 3:] = 1  # a vertical step between columns 2 and 3
    out = filters.convolve(image, filters.DERIVATIVE_X)
    np.testing.assert_array_equal(out[2], [0, 0, 3, 3, 0, 0])  # convolution flips the kernel
    assert not filters.convolve(image, filters.DERIVATIVE_Y).any()
    np.testing.assert_array_equal(filters.DERIVATIVE_Y, [[-1, -1, -1], [0, 0, 0], [1, 1, 1]])


def test_derivative_kernel_sizes():
    k = filters.derivative_kernel(5, "x")
    assert k.shape == (5, 5) and (k[:, 0] == 1).all() and (k[:, -1] == -1).all() and k[:, 1:-1].sum() == 0
    np.testing.assert_array_equal(filters.derivative_kernel(3, "x"), filters.DERIVATIVE_X)
    with pytest.raises(ValueError, match="odd"):
        filters.derivative_kernel(4)


def test_merge_similar_maps_close_values_to_their_mean():
    image = np.array([[0.0, 0.1, 0.2, 1.0, 1.1, 3.0]], np.float32)
    # distinct values 0, .1, .2, 1, 1.1, 3: mean difference 0.6; strength 1 cuts steps of 0.6 from 0
    out = filters.merge_similar(image, strength=1.0)
    np.testing.assert_allclose(out, [[0.1, 0.1, 0.1, 1.05, 1.05, 3.0]], rtol=1e-6)
    np.testing.assert_array_equal(filters.merge_similar(image, 0), image)


def test_respace_spaces_distinct_values_evenly_in_order():
    image = np.array([[5.0, 0.0, 1.0, 1.0, 2.0]], np.float32)
    out = filters.respace(image)  # distinct 0, 1, 2, 5: mean difference 5/3
    np.testing.assert_allclose(out, [[5.0, 0.0, 5 / 3, 5 / 3, 10 / 3]], rtol=1e-6)


def _cadence_with_line(frames, rng, strength=3.0):
    cadence = rng.standard_normal((6, 273, 256)).astype(np.float32)
    for f in frames:
        cadence[f, :, 100:102] += strength
    return cadence


def test_on_off_score_prefers_a_line_in_on_frames_only():
    rng = np.random.default_rng(0)
    needle = filters.on_off_score(_cadence_with_line((0, 2, 4), rng))
    rfi = filters.on_off_score(_cadence_with_line(range(6), rng))
    noise = filters.on_off_score(_cadence_with_line((), rng))
    assert needle > 1.0 > max(rfi, noise)


def test_metrics_recall_at_fpr_and_recall_by():
    target = np.array([0] * 100 + [1] * 4)
    score = np.r_[np.arange(100) / 100, [2, 2, 0.5, 0.99]]
    assert metrics.threshold_at_fpr(target, score, 0.05) == pytest.approx(0.9405)
    assert metrics.recall_at_fpr(target, score, 0.05) == 0.75
    truth = pd.DataFrame({"target": target, "snr": np.r_[np.zeros(100), [50, 40, 5, 6]],
                          "kind": ["x"] * 100 + ["line", "line", "sine", "line"]})
    by_snr = metrics.recall_by(truth, score, 0.9405, "snr")
    assert by_snr.loc["<8"].tolist() == [0.5, 2] and by_snr.loc["30+"].tolist() == [1.0, 2]
    by_kind = metrics.recall_by(truth, score, 0.9405, "kind")
    assert by_kind.recall.to_dict() == {"line": 1.0, "sine": 0.0}
    truth["width_hz"] = np.r_[np.zeros(100), [3.0, 20.0, 3.0, 8.0]]
    grid = metrics.recall_by(truth, score, 0.9405, ("width", "snr"))
    assert grid.index.names == ["width", "SNR"]
    assert grid.recall.to_dict() == {("<6 Hz", "30+"): 1.0, ("<6 Hz", "<8"): 0.0, ("6-12 Hz", "<8"): 1.0,
                                     ("12+ Hz", "30+"): 1.0}


def test_bootstrap_aucs_are_roc_auc_score_on_each_resample():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(1)
    target = rng.permutation(np.r_[np.ones(15), np.zeros(85)]).astype(int)
    scores = [rng.normal(size=100) + target, np.round(rng.normal(size=100) + target)]  # the second with ties
    draws = np.random.default_rng(7)
    pos, neg = np.flatnonzero(target == 1), np.flatnonzero(target == 0)
    expected = []
    for _ in range(30):
        idx = np.r_[draws.choice(pos, len(pos)), draws.choice(neg, len(neg))]
        expected.append([roc_auc_score(target[idx], s[idx]) for s in scores])
    assert np.allclose(metrics._bootstrap_aucs(target, scores, 30, 7), expected, rtol=0, atol=1e-12)


def test_evaluation_table_verdict_and_recall_panel():
    target = np.array([0] * 100 + [1] * 4)
    scores = {"good": np.r_[np.arange(100) / 100, [2, 2, 0.5, 0.985]], "random": np.arange(104) % 7}
    table = metrics.evaluation_table(target, scores)
    assert list(table.index) == ["good", "random"] and table.dtypes.eq(float).all()
    assert table.loc["good", "auc_low"] <= table.loc["good", "auc"] <= table.loc["good", "auc_high"]
    # the 1 % threshold (0.980) lets 0.985 through, the 0.1 % one (0.989) does not
    assert table.loc["good", "recall_1pct"] == 0.75 and table.loc["good", "recall_01pct"] == 0.5
    tie = {"difference": 0.01, "low": -0.02, "high": 0.04, "tie": True}
    assert metrics.verdict(tie).startswith("a tie")
    assert metrics.verdict({**tie, "low": 0.005, "tie": False}) == "+0.010 (+0.005 to +0.040)"
    truth = pd.DataFrame({"target": target, "snr": np.r_[np.zeros(100), [50, 40, 5, 6]]})
    ax = plots.recall_panel(truth, scores, 0.05).axes[0]
    assert [line.get_label() for line in ax.get_lines()] == ["good", "random"]
    assert ax.get_title() == "recall at 5% FPR, 104 test cadences"
    assert plots.recall_panel(truth.drop(columns="snr"), scores) is None  # real data: no SNR to plot against
    plt.close("all")


def test_show_misses_draws_the_brightest_miss_and_the_worst_false_alarm(synth_data, monkeypatch):
    from seti_nb.data import read_labels, read_truth

    table = read_labels(synth_data).merge(read_truth(synth_data)[["id", "snr"]], on="id")
    score = np.where(table.target == 1, 0.0, np.linspace(0, 1, len(table)))  # every needle missed
    drawn = []
    monkeypatch.setattr(plots, "show_cadence", lambda root, i, truth=None, fig=None: drawn.append(i))
    plots.show_misses(synth_data, table, score, 0.5)
    needles = table[table.target == 1]
    assert drawn == [needles.id[needles.snr.idxmax()], table.id[np.argmax(score)]]
    drawn.clear()
    plots.show_misses(synth_data, table, np.where(table.target == 1, 2.0, score), 0.5)
    assert drawn == [table.id[np.argmax(score)]], "no needle missed: the worst false alarm alone"
    assert drawn == [table.id[np.argmax(score)]], "no miss: only the false alarm is drawn"
    plt.close("all")


def test_plot_cadence_labels_on_and_off():
    fig = plots.plot_cadence(np.zeros((6, 273, 256)), title="t")
    assert len(fig.axes) == 6
    assert [ax.get_ylabel() for ax in fig.axes] == ["ON (A)", "OFF (B)", "ON (A)", "OFF (C)", "ON (A)", "OFF (D)"]
    assert fig.axes[0].get_title() == "t" and fig.axes[-1].get_xlabel() == "frequency channel"
    with pytest.raises(ValueError, match="shape"):
        plots.plot_cadence(np.zeros((5, 10, 10)))
    plt.close("all")


def test_compare_roc_recall_plots():
    fig = plots.compare_cadences({"a": np.zeros((6, 8, 8)), "b": np.ones((6, 8, 8))})
    assert len(fig.axes) == 12 and fig.axes[6].get_title() == "b"
    y = np.array([0, 0, 1, 1])
    ax = plots.plot_roc({"perfect": (y, [0, 0.1, 0.8, 0.9])}).axes[0]
    assert "perfect (AUC 1.000)" in [t.get_text() for t in ax.get_legend().get_texts()]
    table = pd.DataFrame({"recall": [0.5, 1.0], "needles": [2, 3]}, index=pd.Index(["a", "b"], name="kind"))
    ax = plots.plot_recall(table).axes[0]
    assert len(ax.patches) == 2 and ax.get_xlabel() == "kind"
    assert len(plots.plot_timeline().axes[0].patches) == 6
    plt.close("all")


def test_widget_functions_without_widgets():
    row = pd.Series({"id": "abc", "target": 1, "kind": "line", "snr": 20.0, "drift_hz_s": 0.1, "on_frames": "02",
                     "channel_ref": 100.0, "row_ref": 10.0, "drift_px": 0.0, "curvature_px": 0.0,
                     "sine_amp_px": 0.0, "sine_period_rows": 1.0})
    assert "needle, line, SNR 20" in plots.describe(row)
    path = plots.truth_path(row)
    assert np.allclose(path[0], 100) and np.allclose(path[2], 100) and np.isnan(path[4]).all()
    fig = plots.filter_view(np.random.default_rng(0).standard_normal((6, 273, 256)), sigma=0)
    assert len(fig.axes) == 12
    plt.close("all")


def test_cadence_browser_controls_filter_the_ids(synth_data, capsys):
    """Drive the browser as a person would: choosing a class and a kind narrows the ids, an id redraws."""
    from seti_nb.data import read_labels, read_truth

    labels, truth = read_labels(synth_data), read_truth(synth_data)
    truth = truth[truth.side == "train"]
    browser = widgets.cadence_browser(synth_data, labels, truth)
    (cls, kind), (ids, path), _ = browser.children[0].children, browser.children[1].children, browser.children[2]
    needles = set(labels.id[labels.target == 1])
    assert set(ids.options) == needles
    cls.value = "haystack"
    assert set(ids.options) == set(labels.id[labels.target == 0][:500])
    cls.value, kind.value = "needle", "sine"
    assert set(ids.options) == set(truth.id[truth.kind == "sine"]) and ids.value in ids.options
    ids.value = ids.options[-1]  # redraws without error
    path.value = False
    cls.value = "haystack"  # no haystack has a kind: the browser says so instead of keeping the last figure
    assert ids.options == () and ids.value is None
    assert "no cadence matches class 'haystack' and kind 'sine'" in capsys.readouterr().out  # outside a kernel
    plt.close("all")


def test_filter_playground_builds_sliders_for_every_parameter():
    view = widgets.filter_playground(np.zeros((6, 273, 256), np.float32))
    controls = {c.description: c for c in view.children if hasattr(c, "description")}
    assert set(widgets.FILTER_SLIDERS) <= set(controls)
    assert controls["merge_strength"].style.description_width == "initial", "the label is never cut"
    assert (controls["size"].value, controls["sigma"].value) == (3, 1.0), "starts at filter_view's defaults"
    plt.close("all")


def test_twin_table_counts_pairs_ranked_right_and_twins_above_threshold():
    twins = pd.DataFrame({"pair": [0, 0, 1, 1, 2, 2, 3, 3], "target": [1, 0] * 4,
                          "kind": ["line"] * 4 + ["sine"] * 4, "snr": [10, 10, 20, 20, 40, 40, 50, 50]})
    score = np.array([0.9, 0.1, 0.5, 0.5, 0.2, 0.8, 0.7, 0.6])  # right, a tie, wrong, right
    table = metrics.twin_table(twins, {"d": score}, {"d": 0.55})
    row = table.loc["d"]
    assert row["pairs right"] == (1 + 0.5 + 0 + 1) / 4 and row["line"] == 0.75 and row["sine"] == 0.5
    assert row["SNR 8-15"] == 1.0 and row["SNR 15-30"] == 0.5 and row["SNR 30+"] == 0.5
    assert row["twins above threshold"] == 0.5 and row["needles above threshold"] == 0.5  # 0.8, 0.6; 0.9, 0.7
    # the needles it sees (0.9, 0.7) are both above their twins; the pairs it gets wrong are needles it does not see
    assert row["pairs right, needle above threshold"] == 1.0


def test_fisher_combined_lifts_needles_that_one_detector_misses_without_labels():
    rng = np.random.default_rng(0)
    target = np.r_[np.ones(100), np.zeros(900)]
    a, b = rng.normal(size=1000), rng.normal(size=1000)
    a[:50] += 4  # detector a sees the first half of the needles, b the second: each AUC about 0.75
    b[50:100] += 4
    combined = metrics.fisher_combined({"a": a, "b": b}, {"a": a, "b": b})
    single = max(metrics.threshold_metrics(target, s)["auc"] for s in (a, b))
    assert metrics.threshold_metrics(target, combined)["auc"] > single + 0.15
    assert metrics.recall_at_fpr(target, combined) >= max(metrics.recall_at_fpr(target, s) for s in (a, b))
    # each score as an empirical p-value against the reference: the highest of 1000 gets -log(2/1001) from one
    top = metrics.fisher_combined({"a": np.array([a.max(), a.min()])}, {"a": a})
    np.testing.assert_allclose(top, [-np.log(2 / 1001), -np.log(1001 / 1001)])


def test_haystacks_above_names_the_background_that_fills_the_candidate_list():
    truth = pd.DataFrame({"target": [0, 0, 0, 0, 0, 0, 1],
                          "backgrounds": ["ripple,continuous", "continuous", "ripple", "ripple", None, "rfi", ""]})
    score = np.array([0.9, 0.8, 0.9, 0.1, 0.2, 0.1, 0.95])  # two of two continuous above 0.5, one of four others
    table = metrics.haystacks_above(truth, score, 0.5)
    assert table.index[0] == "all haystacks" and table.index[1] == "continuous", "the most over-represented first"
    assert table.loc["all haystacks", "haystacks"] == 6 and table.loc["all haystacks", "of those above"] == 3
    assert table.loc["continuous", "share above"] == 1.0 and table.loc["continuous", "share above without it"] == 0.25
    assert table.loc["ripple", "haystacks"] == 3 and table.loc["ripple", "of those above"] == 2
    assert table.loc["rfi", "share above"] == 0.0 and "" not in table.index, "the needle and empty names ignored"
