"""The data layer: the real Kaggle sample, layouts, splits, folds, and clear errors on bad input."""

import numpy as np
import pandas as pd
import pytest

from seti_nb.cli import main
from seti_nb.data import (
    DataError,
    cadence_path,
    check_dataset,
    load_cadence,
    map_cadences,
    read_labels,
    submission_ids,
)
from seti_nb.dataset import CadenceDataset
from seti_nb.preprocess import Preprocess
from seti_nb.study import assign_folds, folds_csv, split

NEEDLES = {"0024012d1431fbc", "0028a35de92941d", "1004c26b9a3f877"}


def test_real_sample_loads_and_checks(kaggle_sample, capsys):
    labels = read_labels(kaggle_sample)
    assert set(labels.id[labels.target == 1]) == NEEDLES
    x = load_cadence(cadence_path(kaggle_sample, "0024012d1431fbc"))
    assert x.shape == (6, 273, 256) and x.dtype == np.float32
    np.testing.assert_allclose(x.std(axis=(1, 2)), 1, atol=0.01)
    assert main(["check", str(kaggle_sample)]) == 0
    out = capsys.readouterr().out
    assert "6 labelled cadences, 3 needles, 3 haystack" in out
    assert "2 cadence files present for 39995 listed ids" in out
    assert len(submission_ids(kaggle_sample)) == 39995


@pytest.mark.parametrize("layout, shape", [("frames", (6, 273, 256)), ("contrast", (3, 273, 256)),
                                           ("on_stack", (1, 819, 256)), ("all_stack", (1, 1638, 256)),
                                           ("on_channels", (3, 273, 256))])
def test_dataset_layouts(sample, layout, shape, tmp_path, monkeypatch):
    monkeypatch.setenv("SETI_NB_CACHE", str(tmp_path))
    labels = read_labels(sample)
    raw_only = Preprocess(bandpass="none")
    ds = CadenceDataset(sample, labels, layout=layout, preprocess=raw_only)
    image, target = ds[0]
    assert tuple(image.shape) == shape and str(image.dtype) == "torch.float32"
    assert float(target) == labels.target[0]
    raw = raw_only(load_cadence(cadence_path(sample, labels.id[0])))
    if layout == "on_stack":  # frames 0, 2, 4 one above the other
        np.testing.assert_array_equal(image[0, 273:546].numpy(), raw[2])
    if layout == "contrast":  # each ON scan minus the OFF scan after it
        np.testing.assert_allclose(image[1].numpy(), raw[2] - raw[3])
    small = CadenceDataset(sample, labels, layout=layout, preprocess=Preprocess("scan", 8, 2, 20))
    assert tuple(small[0][0].shape) == (shape[0], shape[1] // 8, 128)
    assert list(tmp_path.iterdir()), "reduced resolutions come from the cache"


def test_the_models_input_can_drop_wide_emission_and_keep_a_needle():
    """`Preprocess(narrowband=65)`, 04's best run's input: a smooth bump in frequency (sigma 30 channels, 4 sigma a
    pixel) over half of an ON scan, the wide emission of the real haystacks that no OFF-scan bandpass removes, falls
    to under 40 % of what the input shows without it; a still needle 12 channels wide (the widest drawn) in two ON
    scans keeps its level; a window narrower than twice a needle is refused."""
    x = np.random.default_rng(6).normal(10, 1, (6, 273, 256)).astype(np.float32)
    x[2, 60:200] += 4.0 * np.exp(-0.5 * ((np.arange(256) - 128) / 30) ** 2)
    x[[0, 4], :, 40:52] += 1.0
    plain = Preprocess("off", 16, 2, 20.0)
    levels = {}
    for name, pre in (("plain", plain), ("narrowband", Preprocess("off", 16, 2, 20.0, narrowband=65))):
        y = pre(x)
        levels[name] = (y[2, 4:12, 54:74].mean(), y[[0, 4], :, 20:26].mean())
    (bump, needle), (bump_nb, needle_nb) = levels["plain"], levels["narrowband"]
    assert bump > 4 and bump_nb < 0.4 * bump and needle > 4 and needle_nb > 0.9 * needle, levels
    assert Preprocess(narrowband=65).key() != Preprocess().key()
    with pytest.raises(ValueError, match="narrowband must be 0 \\(off\\) or at least 25 channels"):
        Preprocess(narrowband=20)


def test_dataset_rejects_unknown_layout(sample):
    with pytest.raises(ValueError, match="unknown layout 'sideways'"):
        CadenceDataset(sample, read_labels(sample), layout="sideways")


def _labels(n=200, positive=20):
    ids = [f"{i:015x}" for i in range(n)]
    return pd.DataFrame({"id": ids, "target": [1] * positive + [0] * (n - positive)})


def test_split_is_reproducible_and_stratified():
    labels = _labels()
    train, test = split(labels, 0.3, seed=1)
    again, _ = split(labels, 0.3, seed=1)
    other, _ = split(labels, 0.3, seed=2)
    assert (len(train), len(test)) == (140, 60)
    assert train.id.tolist() == again.id.tolist() and train.id.tolist() != other.id.tolist()
    assert (train.target.sum(), test.target.sum()) == (14, 6)
    assert not set(train.id) & set(test.id)
    fit, val = split(train, 0.1, seed=1)
    assert (len(fit), len(val), val.target.sum()) == (126, 14, 1)


def test_folds_are_stratified_written_and_reused(tmp_path):
    labels = _labels()
    folds = assign_folds(labels, k=5, seed=0)
    assert folds.groupby("fold").target.sum().tolist() == [4] * 5
    path = tmp_path / "folds.csv"
    written = folds_csv(path, labels, k=5, seed=0)
    reread = folds_csv(path, labels, k=5, seed=99)  # the file wins over a new seed
    assert reread.fold.tolist() == written.fold.tolist()
    with pytest.raises(DataError, match="folds.csv: fold file covers other ids"):
        folds_csv(path, labels.iloc[:100], k=5)
    with pytest.raises(DataError, match="expected 0..2"):
        folds_csv(path, labels, k=3)


# ---- bad input -------------------------------------------------------------------------------------

def _good() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((6, 273, 256)).astype(np.float16)


def _bad_files(root):
    """One bad file of each kind, as (path, phrase its error must contain)."""
    (root / "train" / "0").mkdir(parents=True)
    cases = {}
    path = root / "train/0/000000000000001.npy"  # cut short, as by an interrupted download
    np.save(path, _good())
    path.write_bytes(path.read_bytes()[:400_000])
    cases[path] = "truncated"
    path = root / "train/0/000000000000002.npy"
    np.save(path, _good()[:, :200])
    cases[path] = "shape (6, 200, 256), expected (6, 273, 256)"
    path = root / "train/0/000000000000003.npy"
    np.save(path, _good().astype(np.int32))
    cases[path] = "dtype int32"
    path = root / "train/0/000000000000004.npy"
    x = _good()
    x[3, 10, 10] = np.nan
    np.save(path, x)
    cases[path] = "NaN/inf values"
    path = root / "train/0/000000000000005.npy"
    np.save(path, np.array([{"evil": 1}], dtype=object), allow_pickle=True)
    cases[path] = "pickled data"
    path = root / "train/0/000000000000006.npy"
    path.write_text("this is not numpy")
    cases[path] = "not a readable .npy file"
    cases[root / "train/0/000000000000007.npy"] = "not found"
    return cases


def test_loader_names_the_file_and_the_fault(tmp_path):
    for path, phrase in _bad_files(tmp_path).items():
        with pytest.raises(DataError) as err:
            load_cadence(path)
        assert str(path) in str(err.value) and phrase in str(err.value)


def test_check_reports_every_bad_file(tmp_path, capsys):
    cases = _bad_files(tmp_path)
    ids = [p.stem for p in cases] + ["000000000000008"]
    pd.DataFrame({"id": ids, "target": [0, 1] * 4}).to_csv(tmp_path / "train_labels.csv", index=False)
    np.save(tmp_path / "train/0/000000000000008.npy", _good())
    (tmp_path / "train/1").mkdir()
    np.save(tmp_path / "train/1/100000000000009.npy", _good())  # a file nobody listed
    report = check_dataset(tmp_path, progress=False)
    assert (report.cadences, report.needles) == (8, 4)
    assert main(["check", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    for path, phrase in cases.items():
        assert any(str(path) in line and phrase in line for line in out.splitlines()), (path, phrase)
    assert "100000000000009.npy: file not listed in train_labels.csv" in out
    assert "000000000000008" not in out


@pytest.mark.parametrize("text, phrase", [
    ("id,label\n000000000000001,0\n", "columns ['id', 'label'], expected ['id', 'target']"),
    ("id,target\n000000000000001,2\n", "targets not 0 or 1, first: '2' for id '000000000000001' on row 2"),
    ("id,target\n000000000000001,0\n000000000000002,True\n000000000000003,False\n",  # read by pandas as bools
     "2 targets not 0 or 1, first: 'True' for id '000000000000002' on row 3"),
    ("id,target\n000000000000001,0\n000000000000001,1\n", "1 duplicate ids, first: 000000000000001"),
    ("id,target\nnot-an-id,0\n", "malformed ids (expected 15 hex characters), first: 'not-an-id'"),
    ("id,target\n000000000000001,\n", "targets not 0 or 1"),
])
def test_malformed_label_file(tmp_path, capsys, text, phrase):
    (tmp_path / "train_labels.csv").write_text(text)
    with pytest.raises(DataError) as err:
        read_labels(tmp_path)
    assert "train_labels.csv" in str(err.value) and phrase in str(err.value)
    assert main(["check", str(tmp_path)]) == 1
    assert phrase in capsys.readouterr().out


def test_missing_folder_and_label_file(tmp_path, capsys):
    assert main(["check", str(tmp_path / "nowhere")]) == 1
    assert "folder not found" in capsys.readouterr().out
    with pytest.raises(DataError, match="train_labels.csv: label file not found"):
        read_labels(tmp_path)


def test_map_cadences_gives_the_same_results_in_any_number_of_processes(synth_data):
    from functools import partial

    from seti_nb.filters import on_off_score

    ids = read_labels(synth_data).id[:20].tolist()
    score = partial(on_off_score, sigma=1)
    one = map_cadences(score, synth_data, ids, processes=1, progress=False)
    two = map_cadences(score, synth_data, ids, processes=2, progress=False)
    assert one == two == [score(load_cadence(cadence_path(synth_data, i))) for i in ids]
    with pytest.raises(DataError, match="0000000000000ff.npy: file not found"):  # a worker's error reaches the caller
        map_cadences(score, synth_data, ids + ["0000000000000ff"], processes=2, progress=False)


def test_fast_median_and_average_are_numpys():
    """The preprocessing's own median and block average (several times faster) give NumPy's numbers: bit for bit
    at the workbook's settings, so caches and scores do not depend on which one computed them."""
    from seti_nb.preprocess import average, median

    x = (np.random.default_rng(0).normal(size=(6, 273, 256)) * 50 + 3).astype(np.float32)
    for part in (x, x[..., :255], x[:, :1, :1]):  # even, odd and one value along the last axis
        np.testing.assert_array_equal(median(part), np.median(part, axis=-1))

    def block_mean(rows, channels):
        h, w = 273 // rows, 256 // channels
        return x[:, : h * rows, : w * channels].reshape(6, h, rows, w, channels).mean(axis=(-3, -1))

    for rows, channels in ((8, 2), (17, 1), (3, 3), (1, 2)):
        np.testing.assert_array_equal(average(x, rows, channels), block_mean(rows, channels))
    np.testing.assert_allclose(average(x, 4, 16), block_mean(4, 16), rtol=1e-5, atol=1e-4)
