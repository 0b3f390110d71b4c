"""The classical search: the tree against brute force, drifts recovered from injected lines, the ON/OFF veto."""

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from scipy.ndimage import median_filter

from seti_nb.cadence import CADENCE_SHAPE, DF_HZ, DT_S, ROWS, frame_start_s
from seti_nb.cli import main
from seti_nb.dedoppler import Search, _tree, brute_force, score_cadences
from seti_nb.preprocess import Preprocess, average, narrowband


@pytest.mark.parametrize("n", [1, 2, 8, 32])
def test_tree_equals_brute_force_on_random_data(n):
    x = np.random.default_rng(n).normal(size=(n, 50))
    tree = _tree(x)
    for d in range(n):
        np.testing.assert_allclose(tree[d], brute_force(x, d), atol=1e-9)


def _cadence(seed=0):
    return np.random.default_rng(seed).normal(size=CADENCE_SHAPE).astype(np.float32)


def _add_line(cadence, frame, channel, drift_hz_s, amplitude, local_time=False):
    """A line starting at `channel` in `frame` (cadence time unless `local_time`: then it restarts per scan)."""
    t0 = 0.0 if local_time else frame_start_s(frame)
    start = 0.0 if local_time else frame_start_s(0)
    for r in range(ROWS):
        c = channel + drift_hz_s * (t0 - start + r * DT_S) / DF_HZ
        if 0 <= round(c) < CADENCE_SHAPE[2]:
            cadence[frame, r, int(round(c))] += amplitude


@pytest.mark.parametrize("drift_hz_s", [-3.1, -0.8, 0.0, 0.27, 1.5, 3.6])
def test_injected_drift_and_channel_are_recovered_within_one_bin(drift_hz_s):
    search = Search()
    cadence = _cadence(1)
    channel = 60 if drift_hz_s >= 0 else 200
    _add_line(cadence, 0, channel, drift_hz_s, amplitude=4.0, local_time=True)
    plane = search.transform(search.preprocess(cadence))[0]
    hit = search.hits(plane).iloc[0]
    rates = search.drift_rates()
    bin_width = np.diff(rates).max()
    assert abs(hit.drift_hz_s - drift_hz_s) <= bin_width + 1e-9
    assert abs(hit.channel - channel) <= 1
    assert hit.snr > search.threshold


def test_veto_rejects_interference_seen_while_pointing_away():
    search = Search()
    needle, stationary, restarting = _cadence(2), _cadence(2), _cadence(2)
    for frame in (0, 2, 4):  # one signal, continuous across the ON scans
        _add_line(needle, frame, 100, 0.1, 3.0)
    for frame in range(6):
        _add_line(stationary, frame, 100, 0.0, 30.0)  # bright interference in all six scans
        _add_line(restarting, frame, 100, 1.2, 10.0, local_time=True)  # restarts in every scan
    scores = {name: search.score(c) for name, c in
              (("needle", needle), ("stationary", stationary), ("restarting", restarting))}
    for level in ("level2", "level3"):
        assert scores["needle"][level] > search.threshold
        assert scores["stationary"][level] < scores["needle"][level] / 2
        assert scores["restarting"][level] < scores["needle"][level] / 2
    assert scores["restarting"]["level1"] > scores["needle"]["level1"], "without the veto, interference wins"
    assert scores["stationary"]["level1"] < search.threshold, "the OFF scans' bandpass takes stationary lines away"


def test_cli_dedoppler_scores_like_a_model(synth_data, tmp_path):
    out = tmp_path / "scores.csv"
    assert main(["dedoppler", "--data", str(synth_data), "--split", "test", "--out", str(out)]) == 0
    table = pd.read_csv(out, dtype={"id": str})
    assert list(table.columns) == ["id", "target"] and len(table) == 50 and table.target.notna().all()
    assert main(["dedoppler", "--data", str(synth_data), "--split", "test", "--out", str(out)]) == 2


def test_turboseti_runs_through_its_real_api_and_vetoes_interference(tmp_path):
    from seti_nb.turboseti import turboseti_scores

    needle, interference = _cadence(3), _cadence(3)
    for frame in (0, 2, 4):
        _add_line(needle, frame, 100, 0.1, 2.0)
    for frame in range(6):
        _add_line(interference, frame, 100, 0.1, 2.0)
    for name in ("needle", "interference"):
        (tmp_path / name).mkdir()
    found = turboseti_scores(needle, str(tmp_path / "needle"))
    vetoed = turboseti_scores(interference, str(tmp_path / "interference"))
    assert found["level1"] > 10 and found["level3"] > 10, found
    assert vetoed["level1"] > 10 and vetoed["level2"] == vetoed["level3"] == 0, vetoed


def test_turboseti_leaves_the_notebooks_figures_alone(tmp_path):
    """turboSETI's modules switch matplotlib to Agg when imported: every later figure of a notebook was lost."""
    import subprocess
    import sys

    code = ("import matplotlib, numpy as np; matplotlib.use('svg'); from seti_nb.turboseti import turboseti_scores; "
            f"turboseti_scores(np.random.default_rng(0).standard_normal((6, 273, 256)), {str(tmp_path)!r}); "
            "print(matplotlib.get_backend())")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.stdout.strip().splitlines()[-1] == "svg", result.stdout[-500:] + result.stderr[-2000:]


def test_search_scores_are_cached_and_read_back(synth_data, monkeypatch):
    import pandas as pd

    from seti_nb.data import read_labels
    from seti_nb.dedoppler import Search, score_cadences

    ids = read_labels(synth_data).id[:4].tolist()
    first = score_cadences(synth_data, ids, progress=False)
    monkeypatch.setattr(Search, "score", lambda self, cadence: pytest.fail("a cached cadence was searched again"))
    again = score_cadences(synth_data, ids[::-1], progress=False)
    pd.testing.assert_frame_equal(again, first.loc[ids[::-1]])


@pytest.mark.parametrize("drift_hz_s", [0.3, -1.2])
def test_a_signal_continuous_through_all_six_scans_scores_as_low_as_noise_at_level_3(drift_hz_s):
    """The ON/OFF rule: the same drifting line, continued in cadence time through the OFF scans, is vetoed along its
    path (the OFF scans are read where the line has moved to by then), down to the noise; in the ON scans only, it
    is a needle."""
    search = Search()
    noise, needle, interference = _cadence(5), _cadence(5), _cadence(5)
    channel = 40 if drift_hz_s > 0 else 215
    for frame in range(6):
        if frame in (0, 2, 4):
            _add_line(needle, frame, channel, drift_hz_s, 3.0)
        _add_line(interference, frame, channel, drift_hz_s, 3.0)
    levels = {name: search.score(c)["level3"] for name, c in
              (("noise", noise), ("needle", needle), ("interference", interference))}
    assert levels["interference"] < 1.25 * levels["noise"], levels
    assert levels["needle"] > 3 * levels["noise"], levels


def test_wide_emission_in_one_on_scan_is_removed_and_a_wide_needle_kept():
    """The search is for narrowband signals: a smooth bump in frequency (sigma 30 channels, 4 sigma a pixel at its
    peak) for half of one ON scan and in no OFF scan, the wide emission the real haystacks show, scores as noise
    does at level 3 (without `narrowband`, 2.6 times that); a needle 12 channels wide (full width at half maximum,
    the widest the generator draws) keeps most of its score. (A bump of sigma 15-20 keeps a third to a half of its
    score: too close to a needle's width for a median over 65 channels to take it.)"""
    noise, wide, needle = _cadence(6), _cadence(6), _cadence(6)
    wide[2, 60:200] += 4.0 * np.exp(-0.5 * ((np.arange(CADENCE_SHAPE[2]) - 128) / 30) ** 2)
    for frame in (0, 2, 4):
        for offset in range(-9, 10):
            _add_line(needle, frame, 100 + offset, 0.3, 1.2 * np.exp(-0.5 * (offset / 5.1) ** 2))
    search, plain = Search(), Search(narrowband_channels=0)
    levels = {name: search.score(c)["level3"] for name, c in (("noise", noise), ("wide", wide), ("needle", needle))}
    assert levels["wide"] < 1.25 * levels["noise"] and plain.score(wide)["level3"] > 2.5 * levels["noise"], levels
    assert levels["needle"] > 3 * levels["noise"] and levels["needle"] > 0.8 * plain.score(needle)["level3"], levels


def test_the_narrowband_steps_sampled_median_stays_near_the_exact_one():
    """`narrowband` takes the running median at every fourth block and interpolates between: on noise with a wide
    bump and a bright needle, within 0.03 sigma rms and 0.5 sigma at most of scipy's median at every block (the
    reference), and exactly it when taken at every block."""
    x = _cadence(3)[:, :256]
    x[1, 40:200] += 3.0 * np.exp(-0.5 * ((np.arange(CADENCE_SHAPE[2]) - 90) / 25) ** 2)
    x[2, :, 150:153] += 8.0
    blocks = median_filter(average(x, 8, 2), size=(1, 1, 33), mode="nearest")
    exact = x - np.repeat(np.repeat(blocks, 8, axis=1), 2, axis=2)
    assert np.array_equal(narrowband(x, 65, every=1), exact)
    error = np.abs(narrowband(x, 65) - exact)
    assert 0 < np.sqrt(np.mean(error**2)) < 0.03 and error.max() < 0.5, (np.sqrt(np.mean(error**2)), error.max())


def _add_sine(cadence, frame, channel, amplitude_channels, period_s, value):
    """A sine path in cadence time (the bending interference a straight extrapolation misses)."""
    for r in range(ROWS):
        c = round(channel + amplitude_channels * np.sin(2 * np.pi * (frame_start_s(frame) + r * DT_S) / period_s))
        if 0 <= c < CADENCE_SHAPE[2]:
            cadence[frame, r, c] += value


@pytest.mark.parametrize("amplitude, period_s", [(20, 500), (23, 520)])
def test_a_bending_path_through_all_six_scans_is_vetoed_by_either_veto(amplitude, period_s):
    """A sine of tens of channels: the best whole-scan bin is a chord whose straight continuation misses the track
    in the OFF scans. The track followed quarter by quarter across the scan boundaries (`crossing_evidence`) vetoes
    it, and so do the OFF scans' own chords, which start or end where the ON chord starts (`off_evidence` at the
    same place), with the crossing switched off by an unreachable `track_threshold`. Either way it falls to the
    noise, and the same path in the ON scans only (a needle) keeps its score exactly."""
    noise, needle, interference = _cadence(7), _cadence(7), _cadence(7)
    for frame in range(6):
        if frame in (0, 2, 4):
            _add_sine(needle, frame, 128, amplitude, period_s, 5.0)
        _add_sine(interference, frame, 128, amplitude, period_s, 5.0)
    for search in (Search(), Search(track_threshold=1e4)):
        levels = {name: search.score(c)["level3"] for name, c in
                  (("noise", noise), ("needle", needle), ("interference", interference))}
        assert levels["interference"] < 1.25 * levels["noise"], (search, levels)
        assert levels["needle"] > 3 * levels["noise"], (search, levels)
    assert Search(track_threshold=1e4).score(needle)["level3"] == Search().score(needle)["level3"]


@pytest.mark.parametrize("amplitude, period_s", [(29, 263), (30, 200)])
def test_a_path_turning_within_each_scan_is_vetoed_by_the_off_chords_over_its_channels(amplitude, period_s):
    """A sine of about a period a scan: each scan's best whole-scan bin is a steep chord that the straight
    continuation, the same-place test and the quarter tracks all miss. The OFF scans' chords that drift as it does
    over the channels it covers veto it to the noise; the same path in the ON scans only keeps its score."""
    noise, needle, interference = _cadence(7), _cadence(7), _cadence(7)
    for frame in range(6):
        if frame in (0, 2, 4):
            _add_sine(needle, frame, 128, amplitude, period_s, 3.0)
        _add_sine(interference, frame, 128, amplitude, period_s, 3.0)
    levels = {name: Search().score(c)["level3"] for name, c in
              (("noise", noise), ("needle", needle), ("interference", interference))}
    assert levels["interference"] < 1.25 * levels["noise"] < levels["needle"] / 1.25, levels


def test_an_off_chord_over_a_needles_channels_at_another_drift_does_not_veto_it():
    """A steep line restarting in every OFF scan crosses the channels of a slow needle in the ON scans: its chords
    cover the needle's channels at a drift far from the needle's (over `DRIFT_TOLERANCE`), so the needle keeps its
    score."""
    needle, crossed = _cadence(5), _cadence(5)
    for frame in (0, 2, 4):
        for cadence in (needle, crossed):
            _add_line(cadence, frame, 100, 0.1, 1.0, local_time=True)
    for frame in (1, 3, 5):
        _add_line(crossed, frame, 40, 1.0, 1.5, local_time=True)  # channels 40 to about 140 in each OFF scan
    assert Search().score(crossed)["level3"] == pytest.approx(Search().score(needle)["level3"], rel=0.02)


def test_the_search_ranks_needles_above_their_interference_twins(tmp_path):
    """The twin test, on a few pairs of the generator's twin set: level 3 ranks nearly every needle above the same
    signal continued through the OFF scans; level 1, which ignores the OFF scans, cannot (about half)."""
    from seti_nb.config import SynthConfig
    from seti_nb.data import read_truth
    from seti_nb.metrics import twin_table
    from seti_nb.synth import synthesize

    twins = synthesize(tmp_path / "twins", SynthConfig(n=40, seed=2, twins=True), progress=False)
    truth = read_truth(twins)
    levels = score_cadences(twins, truth.id.tolist(), cache=False, progress=False)
    table = twin_table(truth, {f"level {k}": levels[f"level{k}"].to_numpy() for k in (1, 3)})
    assert table.loc["level 3", "pairs right"] >= 0.9, table
    assert table.loc["level 1", "pairs right"] < 0.75, table


def scaled_bandpass() -> np.ndarray:
    """Unit noise over a bandpass whose scale changes from scan to scan (1.2, 1, 0.8, 1, 1.1, 0.9)."""
    rng = np.random.default_rng(3)
    bandpass = 10 * (1 + 0.3 * np.sin(np.arange(256) / 9))
    return rng.normal(0, 1, CADENCE_SHAPE) + np.array([1.2, 1, 0.8, 1, 1.1, 0.9])[:, None, None] * bandpass


def still_line(needle: bool = False) -> np.ndarray:
    """A still line, 5 sigma a pixel, at channel 100 of all six scans under `scaled_bandpass`; with `needle`, a
    needle drifting through channels 40-49 of the ON scans."""
    x = scaled_bandpass()
    x[..., 100] += 5.0
    rows = np.arange(CADENCE_SHAPE[1])
    for scan in (0, 2, 4) if needle else ():
        x[scan, rows, 40 + rows // 30] += 1.5
    return x


def test_a_line_the_off_bandpass_leaves_in_the_on_scans_is_vetoed_by_the_raw_off_scans():
    """A strong still line (5 sigma a pixel) in all six scans, under a bandpass whose scale changes from scan to
    scan (0.8-1.2): the OFF bandpass, fitted to each scan, scales the line with it and leaves a faint copy in the
    scans whose scale differs, ON ones among them, and none in the OFF scans it came from. The raw OFF scans hold
    the line, so it is vetoed; a needle drifting through the ON scans of the same cadence is not."""
    search = Search()
    residual, needle = search.score(still_line()), search.score(still_line(needle=True))
    assert residual["level1"] > search.threshold > max(residual["level2"], residual["level3"]), residual
    assert needle["level3"] > 2 * search.threshold, needle


def test_the_models_input_masks_the_line_the_off_bandpass_leaves_in_the_on_scans():
    """The same still line as above, as the models see it: with the `"off"` bandpass alone its faint copy stands in
    the ON scans (the OFF scans it came from hold none, so it looks like a needle that does not drift); with
    `mask_lines` its channels read 0 in all six scans, and a needle elsewhere in the cadence is left as it was."""
    x = still_line(needle=True)
    plain = Preprocess("off", 16, 2, 20, narrowband=65)
    before, after = plain(x), replace(plain, mask_lines=3.0)(x)
    line, needle = before[..., 50].mean(-1), before[..., 20:26].max(-1).mean(-1)
    assert abs(line[0]) > 2 and abs(line[1]) < 1, line  # a copy in ON scan 0 (scale 1.2), none in OFF scan 1 (1.0)
    assert np.all(after[..., 49:52] == 0), after[..., 48:53].mean((1, 2))
    np.testing.assert_allclose(after[..., :45], before[..., :45], atol=1e-5)
    assert needle[0] > 3 and np.all(after[..., 20:26].max(-1).mean(-1) == needle), needle
    with pytest.raises(ValueError, match="mask_lines needs all six frames"):  # it reads the OFF scans
        replace(plain, bandpass="scan", mask_lines=3.0)(x[:3])


def test_the_models_input_masks_a_slowly_drifting_line_in_ON_scan_0_too():
    """A persistent line as the generator's `rfi` draws one (5 sigma a pixel, 3 channels wide) drifting a channel a
    scan, under `scaled_bandpass`: found in the raw OFF scans where it is, it must be blanked where it is a scan
    before the first of them, in ON scan 0, too. Blanked 2 channels either side of where it is found (the mask
    before), its copy stood there at 5 sigmas: a still needle in ON scan 0 alone, with its OFF evidence blanked."""
    x = scaled_bandpass()
    rows = np.arange(6)[:, None] * ROWS + np.arange(ROWS)  # cadence time, in rows (slews left out)
    x += 5.0 * np.exp(-0.5 * ((np.arange(256) - (100.3 + 0.004 * rows)[..., None]) / 1.3) ** 2)
    masked = Preprocess("off", 16, 2, 20, narrowband=65, mask_lines=3.0)(x)
    assert np.all(masked[..., 49:54] == 0), masked[..., 46:57].mean(1)  # channels 98-107: where it is, every scan
    assert np.abs(masked.mean(1)).max() < 2, masked.mean(1).max(1)  # and no copy of it anywhere
