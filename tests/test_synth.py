"""The synthetic data set: Kaggle layout, determinism, truth consistency, and no leak."""

import json

import numpy as np
import pandas as pd
import pytest

from seti_nb.cadence import OFF_FRAMES, cadence_rows, signal_channels
from seti_nb.config import SynthConfig
from seti_nb.data import ID_PATTERN, cadence_path, check_dataset, load_cadence, read_labels, read_truth
from seti_nb.metrics import file_statistics
from seti_nb.synth import synthesize


def test_kaggle_layout(synth_data):
    labels = read_labels(synth_data)
    assert len(labels) == 1000 and labels.target.sum() == 100
    assert labels.id.str.match(ID_PATTERN).all()
    assert sorted(p.name for p in (synth_data / "train").iterdir()) == list("0123456789abcdef")
    sub = pd.read_csv(synth_data / "sample_submission.csv", dtype={"id": str})
    assert len(sub) == 50 and (sub.target == 0.5).all()
    x = np.load(cadence_path(synth_data, labels.id[0]), allow_pickle=False)
    assert x.shape == (6, 273, 256) and x.dtype == np.float16
    x = x.astype(np.float64)
    np.testing.assert_allclose(x.mean(axis=(1, 2)), 0, atol=1e-3)
    np.testing.assert_allclose(x.std(axis=(1, 2)), 1, atol=1e-3)
    assert json.loads((synth_data / "synth.json").read_text())["seed"] == 7
    report = check_dataset(synth_data, progress=False)
    assert report.ok, str(report)
    assert (report.cadences, report.needles, report.test_present) == (1000, 100, 50)


def test_truth_describes_every_cadence(synth_data):
    truth = read_truth(synth_data)
    labels = read_labels(synth_data)
    train = truth[truth.side == "train"].set_index("id")
    assert set(train.index) == set(labels.id)
    assert (train.loc[labels.id, "target"].to_numpy() == labels.target.to_numpy()).all()
    needles = train[train.target == 1]
    assert needles.kind.notna().all() and train[train.target == 0].kind.isna().all()
    assert set(needles.kind) == {"line", "curve", "sine"}, "straight and curved paths"
    assert needles.snr.min() < 8 and needles.snr.max() > 40, "SNR from the noise floor to obvious"
    assert needles.on_frames.str.len().value_counts().index.isin([1, 2, 3]).all()
    assert (needles.on_frames.str.len() < 3).mean() > 0.1, "some needles in only one or two ON frames"
    assert all(set(f) <= set("024") for f in needles.on_frames)
    backgrounds = train.backgrounds.fillna("").str.split(",").explode()
    for b in ("ripple", "slope", "gain", "burst", "rfi", "drift_rfi", "off_signal", "continuous"):
        assert (backgrounds == b).any(), b


def test_same_seed_same_files_whatever_the_workers(tmp_path):
    one = synthesize(tmp_path / "one", SynthConfig(n=30, seed=3), workers=1, progress=False)
    two = synthesize(tmp_path / "two", SynthConfig(n=30, seed=3), workers=2, progress=False)
    other = synthesize(tmp_path / "other", SynthConfig(n=30, seed=4), workers=1, progress=False)
    files = sorted(p.relative_to(one) for p in one.rglob("*") if p.is_file())
    assert len(files) == 30 + 2 + 4
    for f in files:
        assert (one / f).read_bytes() == (two / f).read_bytes(), f
    assert (one / "train_labels.csv").read_bytes() != (other / "train_labels.csv").read_bytes()


def test_refuses_to_write_into_a_used_folder(tmp_path):
    (tmp_path / "mine.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not empty"):
        synthesize(tmp_path, SynthConfig(n=5), progress=False)
    assert (tmp_path / "mine.txt").read_text() == "keep me"


def test_needle_power_lies_on_its_truth_path_in_on_frames_only(synth_data):
    """Along the truth path the ON frames that carry the needle are bright; the OFF frames are not."""
    truth = read_truth(synth_data)
    strong = truth[(truth.side == "train") & (truth.target == 1) & (truth.snr > 25)]
    assert len(strong) >= 10
    on_minus_off, off_gains = [], []
    for _, row in strong.iterrows():
        x = np.load(cadence_path(synth_data, row.id), allow_pickle=False).astype(np.float64)
        gains = {}
        for frame in (*[int(f) for f in row.on_frames], *OFF_FRAMES):
            channels = np.rint(signal_channels(row, cadence_rows(frame))).astype(int)
            inside = (channels >= 0) & (channels < 256)
            rows = np.arange(273)[inside]
            along = x[frame, rows, channels[inside]]
            # compare with the same rows 20 channels away, so stripes and bright rows cancel out
            beside = x[frame, rows, (channels[inside] + 20) % 256]
            gains[frame] = np.median(along - beside) if inside.sum() > 20 else np.nan
        on = np.nanmean([gains[int(f)] for f in row.on_frames])
        off = [gains[f] for f in OFF_FRAMES if not np.isnan(gains[f])]  # a steep path can leave the band
        if off:
            off_gains.append(np.mean(off))
            on_minus_off.append(on - np.mean(off))
    assert len(off_gains) > len(strong) / 2
    # OFF frames: nothing along the path, bar crossings of interference (lines, drifting RFI, OFF-only signals)
    assert np.median(np.abs(off_gains)) < 0.3 and np.mean(np.abs(off_gains) < 0.6) > 0.8
    assert np.median(on_minus_off) > 0.5
    assert np.mean(np.array(on_minus_off) > 0.2) > 0.9


def test_no_leak_through_whole_file_statistics(synth_data):
    """The first Kaggle release leaked: per-file statistics separated the classes. Ours must not."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    labels = read_labels(synth_data)
    features = [list(file_statistics(load_cadence(cadence_path(synth_data, i))).values()) for i in labels.id]
    assert len(features[0]) == 6
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    auc = cross_val_score(model, np.array(features), labels.target, cv=5, scoring="roc_auc").mean()
    assert auc < 0.6, f"whole-file statistics separate the classes: cross-validated AUC {auc:.3f}"


def test_twins_share_their_on_scans_and_differ_along_the_path_in_the_off_scans(tmp_path):
    """A twin pair is one draw: the needle's and the interference twin's ON scans are the same bytes; the twin's
    OFF scans carry the signal where its path has moved to (continued in cadence time), the needle's do not."""
    twins = synthesize(tmp_path / "twins", SynthConfig(n=16, seed=5, twins=True), progress=False)
    truth = read_truth(twins)
    assert read_labels(twins).target.tolist() == [1, 0] * 8 and (truth.target == 0).sum() == 8
    for pair, rows in truth.groupby("pair"):
        needle, twin = (rows[rows.target == t].iloc[0] for t in (1, 0))
        a, b = (np.load(cadence_path(twins, row.id), allow_pickle=False) for row in (needle, twin))
        assert np.array_equal(a[[0, 2, 4]], b[[0, 2, 4]]), pair
        assert set("012") <= set(twin.on_frames), "the twin's path runs through ON, OFF and ON again"
        channels = np.rint(signal_channels(twin, cadence_rows(1))).astype(int)  # the path through OFF scan 1
        inside = (channels >= 0) & (channels < 256)
        rows, channels = np.arange(273)[inside], channels[inside]
        on_path = [float(np.median(x[1, rows, channels].astype(np.float64))) for x in (a, b)]
        assert on_path[1] > on_path[0] + 0.1, (pair, on_path)


def test_injected_signals_look_like_the_generators_through_the_preprocessing():
    """`signals.render` (training-time injection) against the generator's own signal, both through the quick
    preprocessing: their power over the signal's pixels (where the rendered one exceeds a tenth of its peak; a
    scan's mean is taken from both by standardisation and the bandpass fit) and their peaks agree within 25 % on
    average over straight Gaussian needles."""
    from seti_nb.config import QUICK_PREPROCESS as prep
    from seti_nb.signals import draw_signal, in_band, render
    from seti_nb.synth import _Maker

    maker, rng, ratios = _Maker(), np.random.default_rng(0), []
    for k in range(12):
        params = {**draw_signal(rng, 0, (30, 60)), "kind": "line", "curvature_px": 0.0, "sine_amp_px": 0.0,
                  "scintillating": False, "profile": "gaussian"}
        on = in_band(params, (0, 2, 4))
        maker._noise(np.random.default_rng(k))
        plain = prep(maker._standardised().astype(np.float32))
        maker._noise(np.random.default_rng(k))
        maker._signal(params, on, maker._t_profile(params, rng))
        made = prep(maker._standardised().astype(np.float32)) - plain
        drawn = render(params, on, prep, rng)
        support = drawn > 0.1 * drawn.max()
        ratios.append((drawn[support].sum() / made[support].sum(), drawn.max() / made.max()))
    power, peak = np.mean(ratios, axis=0)
    assert 0.75 < power < 1.25 and 0.75 < peak < 1.25, (power, peak)
