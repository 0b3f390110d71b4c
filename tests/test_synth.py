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
    for b in ("ripple", "slope", "gain", "burst", "rfi", "drift_rfi", "off_signal"):
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
