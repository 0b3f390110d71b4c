"""`seti-nb scan`: the de-Doppler search over six observation files and the ON/OFF event filter along each hit's
path: needles found at level 3, interference and stationary lines vetoed, the same table whatever the chunks and
processes, and bad input refused with one line and nothing written."""

import numpy as np
import pandas as pd
import pytest

from seti_nb import scan as scan_module
from seti_nb.cli import main
from seti_nb.config import SearchSettings
from seti_nb.dedoppler import dedoppler_blocks, dedoppler_plane
from seti_nb.observation import observation_files, synthesize_observation
from seti_nb.scan import Cadence, chunks, scan


@pytest.fixture(scope="module")
def observation(tmp_path_factory):
    """131,072 channels (two chunks of the search): four needles, four interference paths continuous through all
    six scans, two stationary lines, SNR 30-60 (seed 4: no path crosses another's), four broadband bursts."""
    return synthesize_observation(tmp_path_factory.mktemp("obs") / "o", channels=2**17, seed=4, needles=4,
                                  interference=4, stationary=2, snr_range=(30, 60), progress=False)


@pytest.fixture(scope="module")
def result(observation):
    return scan(observation_files(observation), progress=False)


def _on(events: pd.DataFrame, signal) -> pd.Series:
    """Which events lie on a truth signal's path: the same drift within 0.1 Hz/s, the same channel at the
    cadence's start within 20."""
    return (np.abs(events["drift_hz_s"] - signal.drift_hz_s) < 0.1) & (np.abs(events["channel"] - signal.channel) < 20)


def test_every_needle_is_found_at_level_3_and_nothing_else_passes_the_on_off_filter(observation, result):
    truth = pd.read_csv(observation / "truth.csv")
    events = result.candidates
    for signal in truth[truth.kind != "burst"].itertuples():
        mine = events[_on(events, signal)]
        if signal.kind == "needle":
            assert (mine["level"] == 3).any(), (signal, events)
            assert mine["snr"].max() > 0.8 * signal.snr  # Doppler smearing summed: the SNR is not lost
        else:  # continuous through all six scans: seen in the ON scans, vetoed by the OFF scans
            assert len(mine) and (mine["level"] == 1).all(), (signal, mine)
    passed = events[events["level"] >= 2]
    assert len(passed) == (truth["kind"] == "needle").sum()  # one row a path, however many ON scans hit it: no burst
    assert (truth["kind"] == "burst").sum() == 4
    assert list(events["level"]) == sorted(events["level"], reverse=True)
    assert result.band_mhz == pytest.approx(2**17 * 2.7939677238464355e-6)
    assert "level 3: 4" in result.summary()


def test_an_event_matches_a_signal_within_one_row_of_its_drift():
    """The benchmark's and 07's truth matching: a steep path is placed no better than one row's drift (the 4-coarse-
    channel benchmark's needle at 3.59 Hz/s was found 62 Hz away at 3.54 Hz/s, and counted as a false event)."""
    row_s, drift = 18.25, 3.59
    signal = pd.DataFrame({"frequency_mhz": [1417.976167], "drift_hz_s": [drift]})
    hz = np.array([0, 62, 0.9 * drift * row_s + 50, 1.1 * drift * row_s + 50, 3 * drift * row_s])
    events = pd.DataFrame({"frequency_mhz": 1417.976167 + hz / 1e6, "drift_hz_s": 3.54})
    assert list(scan_module.matches(signal, events, row_s)[0]) == [True, True, True, False, False]
    later = events.assign(start_s=600.0, frequency_mhz=events.frequency_mhz + drift * 600 / 1e6)  # turboSETI's
    assert list(scan_module.matches(signal, later, row_s)[0]) == [True, True, True, True, False]  # + 1 % drifted
    assert not scan_module.matches(signal, events.assign(drift_hz_s=drift + 0.4), row_s).any()


def test_the_table_is_the_same_whatever_the_chunks_or_processes(observation, result):
    files = observation_files(observation)
    again = scan(files, progress=False, workers=2)
    pd.testing.assert_frame_equal(again.candidates, result.candidates)
    small = scan(files, progress=False, chunk=20_000).candidates  # chunk edges cut through paths
    mine, theirs = (t[t["level"] == 3].sort_values("channel") for t in (result.candidates, small))
    np.testing.assert_allclose(theirs["channel"], mine["channel"], atol=2)
    np.testing.assert_allclose(theirs["drift_hz_s"], mine["drift_hz_s"], atol=0.02)


def test_a_band_is_searched_in_chunks_that_cover_it_once(observation):
    cadence = Cadence.of(observation_files(observation))
    spans = chunks(cadence, SearchSettings(), size=50_000)
    assert spans == [(0, 50_000), (50_000, 100_000), (100_000, 2**17)]
    low, high = cadence.grid.band_mhz
    part = chunks(cadence, SearchSettings(), (low + 0.1, low + 0.2), size=50_000)
    assert sum(hi - lo for lo, hi in part) == pytest.approx(0.1e6 / 2.7939677238464355, abs=2)
    with pytest.raises(ValueError, match="outside the files'"):
        chunks(cadence, SearchSettings(), (high + 1, high + 2))


def test_the_smeared_transform_keeps_noise_at_unit_scale_and_the_kaggle_transform_unchanged():
    rng = np.random.default_rng(0)
    scan_ = rng.normal(size=(16, 4096)).astype(np.float32)
    for _, block in dedoppler_blocks(scan_, 4, smear=True):
        assert np.std(block[:, 200:-200]) / 4 == pytest.approx(1, abs=0.05)  # a sum of 16 rows of unit noise
    plain = dedoppler_plane(scan_, 4)
    assert plain.shape == (2 * 4 * 16 - 1, 4096)
    np.testing.assert_allclose(plain[4 * 16 - 1], scan_.sum(axis=0), rtol=1e-5, atol=1e-4)  # drift zero


def test_the_command_writes_a_new_table_and_refuses_bad_input_with_one_line(observation, tmp_path, capsys):
    files = [str(f) for f in observation_files(observation)]
    out = tmp_path / "candidates.csv"
    low, high = pd.read_csv(observation / "truth.csv").frequency_mhz.agg(["min", "max"])
    assert main(["scan", *files, "--out", str(out), "--f-start", str(low - 0.01), "--f-stop", str(high + 0.01),
                 "--workers", "1"]) == 0
    table = pd.read_csv(out)
    assert list(table.columns) == scan_module.COLUMNS and (table["level"] == 3).sum() == 4
    assert "MHz" in capsys.readouterr().out
    before = out.read_bytes()
    cases = {
        "exists": [*files, "--out", str(out)],
        "a cadence is six files": [*files[:5], "--out", str(tmp_path / "a.csv")],
        "not after": [files[1], files[0], *files[2:], "--out", str(tmp_path / "b.csv")],
        "outside the files'": [*files, "--out", str(tmp_path / "c.csv"), "--f-start", "10", "--f-stop", "11"],
        "give both --f-start and --f-stop": [*files, "--out", str(tmp_path / "d.csv"), "--f-start", "1419.9"],
    }
    for message, argv in cases.items():
        assert main(["scan", *argv]) == 2, message
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["candidates.csv"]


def test_an_interrupted_scan_leaves_no_output(observation, tmp_path, monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(scan_module, "search_chunk", interrupted)
    out = tmp_path / "candidates.csv"
    assert main(["scan", *map(str, observation_files(observation)), "--out", str(out), "--workers", "1"]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_chunks_read_through_blimpy_are_exactly_the_files_channels(observation):
    """blimpy selects by frequency and rounds back to channels: half a channel off, and a chunk at the band's edge
    came back one channel short."""
    import h5py

    cadence = Cadence.of(observation_files(observation))
    n = cadence.grid.channels
    for lo, hi in [(0, 1000), (n - 1000, n), (12_345, 12_346)]:
        with h5py.File(cadence.paths[2]) as f:
            expected = f["data"][:16, 0, lo:hi]
        np.testing.assert_array_equal(scan_module.read_chunk(cadence.paths[2], cadence.grid, lo, hi, 16),
                                      expected)


def test_filterbank_files_give_the_same_table_as_hdf5(observation, result, tmp_path):
    """BL's open data come as .fil as often as .h5: the same scans written by blimpy as filterbank files."""
    from seti_nb.observation import _quiet, _waterfall

    fils = []
    for path in observation_files(observation):
        fils.append(tmp_path / f"{path.stem}.fil")
        with _quiet():
            _waterfall(path).write_to_fil(str(fils[-1]))
    pd.testing.assert_frame_equal(scan(fils, progress=False, workers=1).candidates, result.candidates)


def test_a_needle_crossing_other_signals_is_kept_and_crossing_interference_is_not(tmp_path):
    """An OFF signal on a needle's path vetoes it only when it drifts as the path does: a stationary line, or an
    interference path of another drift, crossing the needle's path in an OFF scan is not the needle continued.
    Interference paths crossing each other are still vetoed by their own continuation through the OFF scans."""
    crossing = [  # file channels at the first scan's start; drifts in Hz/s (the files' channels run down)
        {"kind": "needle", "channel": 5000, "drift_hz_s": -2.0, "snr": 40, "width_hz": 10},
        {"kind": "stationary", "channel": 5775, "drift_hz_s": 0.0, "snr": 40, "width_hz": 10},  # on its path in OFF2
        {"kind": "needle", "channel": 12000, "drift_hz_s": 1.0, "snr": 40, "width_hz": 10},
        {"kind": "interference", "channel": 11200, "drift_hz_s": 3.0, "snr": 40, "width_hz": 10},  # crosses in OFF1
        {"kind": "interference", "channel": 20000, "drift_hz_s": 1.5, "snr": 40, "width_hz": 10},
        {"kind": "interference", "channel": 19700, "drift_hz_s": -1.5, "snr": 40, "width_hz": 10},  # cross in OFF1
    ]
    observation = synthesize_observation(tmp_path / "o", channels=2**15, seed=8, needles=0, interference=0,
                                         stationary=0, bursts=0, signals=crossing, progress=False)
    events = scan(observation_files(observation), progress=False, workers=1).candidates
    for signal in pd.read_csv(observation / "truth.csv").itertuples():
        levels = set(events[_on(events, signal)]["level"])
        assert levels == ({3} if signal.kind == "needle" else {1}), (signal, events)


def test_broadband_bursts_make_no_event_and_hide_no_needle(tmp_path):
    """Eight bursts (a few rows of one scan, ON or OFF, 2-20 sigma a channel over a tenth of the band or more) in
    65,536 channels: a burst's rows are set aside block by block, so no steep path summing a burst's row (Doppler
    smearing sums a row's channels) passes the ON/OFF filter, and the needles among them are still found. Without
    it, here, a needle is lost and eight paths through the bursts pass as events."""
    needles = [{"kind": "needle", "channel": c, "drift_hz_s": d, "snr": 40, "width_hz": 10}
               for c, d in ((8000, -3.0), (30000, 0.5), (52000, 2.0))]
    observation = synthesize_observation(tmp_path / "o", channels=2**16, seed=9, needles=0, interference=0,
                                         stationary=0, bursts=8, signals=needles, progress=False)
    events = scan(observation_files(observation), progress=False).candidates
    truth = pd.read_csv(observation / "truth.csv")
    assert (truth.kind == "burst").sum() == 8
    for signal in truth[truth.kind == "needle"].itertuples():
        assert (events[_on(events, signal)]["level"] >= 2).any(), (signal, events)
    assert (events["level"] >= 2).sum() == len(needles), events
