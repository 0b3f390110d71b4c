"""The training loop and the models: determinism, samplers, augmentation, checkpoints, weights, the CLI."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from seti_nb.cli import main
from seti_nb.config import QUICK_PREPROCESS, Run, TrainConfig
from seti_nb.data import read_cadence, read_labels
from seti_nb.dataset import Augment, CadenceDataset, to_layout
from seti_nb.models import LITE0_TIMM, build_model, lite0_imagenet_state_dict
from seti_nb.preprocess import Preprocess
from seti_nb.runtime import seed_everything
from seti_nb.study import run_model, split, trained_run
from seti_nb.train import (
    _loader,
    fit,
    load_checkpoint,
    mixup_or,
    model_from_checkpoint,
    predict,
    save_checkpoint,
    training_dtype,
)

COARSE = Preprocess("scan", time_average=16, channel_average=8, clip=20)  # 17 x 32 per scan: fast tests


@pytest.fixture(scope="module")
def small_sets(synth_data):
    labels = read_labels(synth_data)
    items = labels.groupby("target").head(30)  # 30 needles, 30 haystack
    train, val = split(items, 0.3, seed=0)
    make = lambda df, **kw: CadenceDataset(synth_data, df, "on_stack", COARSE, progress=False, **kw)  # noqa: E731
    return make, train, val


@pytest.mark.parametrize("precision", ["auto", "fp32"])  # auto: bfloat16 on a CPU with AMX
def test_same_seed_same_cpu_results(small_sets, precision):
    make, train, val = small_sets
    config = TrainConfig(epochs=2, batch_size=8, seed=3, sampler="plain", scheduler="constant", precision=precision)
    runs = []
    for other in (123, 456):
        torch.manual_seed(other)  # what ran before must not matter: one seed, set where the study sets it
        seed_everything(3)
        model = build_model("small-cnn")
        runs.append((fit(model, make(train), make(val), config, progress=False).history, model))
    cols = ["train_loss", "val_loss", "val_auc"]
    pd.testing.assert_frame_equal(runs[0][0][cols], runs[1][0][cols])
    for a, b in zip(runs[0][1].parameters(), runs[1][1].parameters()):
        assert torch.equal(a, b)


def test_mixed_precision_only_where_it_is_faster(monkeypatch):
    small, lite0 = build_model("small-cnn"), build_model(f"timm:{LITE0_TIMM}")
    assert training_dtype(small, "cuda") == training_dtype(lite0, "cuda") == torch.float16
    assert training_dtype(small, "cuda", "fp32") is None
    for amx in (True, False):
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda amx=amx: amx)
        assert training_dtype(small, "cpu") == (torch.bfloat16 if amx else None)
        assert training_dtype(lite0, "cpu") is None  # depthwise convolutions: bfloat16 is slower on a CPU
        assert training_dtype(small, "cpu", "fp32") is None
    with pytest.raises(ValueError, match="fp64"):
        TrainConfig(precision="fp64")


class Recording(CadenceDataset):
    """Records which items were read, and whether a transform was applied."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.reads = []

    def __getitem__(self, i):
        self.reads.append(i)
        return super().__getitem__(i)


def test_validation_is_never_resampled_or_augmented(small_sets, synth_data):
    make, train, val = small_sets
    val_set = Recording(synth_data, val, "on_stack", COARSE, progress=False)
    train_set = make(train, transform=Augment(COARSE, inject=0.5))
    config = TrainConfig(epochs=2, batch_size=8, sampler="oversample", mixup=0.4)
    fit(build_model("small-cnn"), train_set, val_set, config, progress=False)
    assert val_set.transform is None and isinstance(train_set.transform, Augment)
    assert val_set.reads == list(range(len(val))) * 2, "each validation item once per epoch, in order"


def test_oversampling_balances_classes(small_sets):
    make, train, _ = small_sets
    skewed = make(pd.concat([train[train.target == 1].head(3), train[train.target == 0]]))
    config = TrainConfig(batch_size=len(skewed.items), seed=0)
    _, y = next(iter(_loader(skewed, config, balanced=True, shuffle=True, epoch=0)))
    assert 0.3 < float(y.mean()) < 0.7, "a 3-needle minority drawn about as often as the haystack"
    _, y = next(iter(_loader(skewed, config, balanced=False, shuffle=True, epoch=0)))
    assert float(y.sum()) == 3


def test_augmentations_keep_the_physics():
    frames = np.arange(6 * 3 * 8, dtype=np.float32).reshape(6, 3, 8)
    before = frames.copy()
    out = Augment(QUICK_PREPROCESS, max_shift=0, seed=1)
    flipped = [out(frames, 0.0)[0] for _ in range(8)]
    assert any(np.array_equal(f, frames[..., ::-1]) for f in flipped)
    assert any(np.array_equal(f, frames) for f in flipped)
    for f in flipped:  # rows (time) never move
        assert np.array_equal(np.sort(f, axis=-1), np.sort(frames, axis=-1))
    quiet = np.zeros((6, 34, 128), dtype=np.float32)  # flips and shifts leave it as it is: what is added shows
    added = [Augment(QUICK_PREPROCESS, interference=1.0, seed=s)(quiet, 0.0)[0] for s in range(20)]
    for extra in added:  # interference only adds power, to one or two scans, and never to the caller's array
        assert extra.min() >= 0 and 1 <= sum(bool(np.any(scan)) for scan in extra) <= 2
    assert not quiet.any() and np.array_equal(frames, before)
    hit = {i for extra in added for i in range(6) if np.any(extra[i])}
    assert hit & {0, 2, 4} and hit & {1, 3, 5}, "ON and OFF scans alike"
    assert not any(np.any(Augment(QUICK_PREPROCESS, inject=0.0, seed=s)(quiet, 0.0)[0]) for s in range(5))
    x, y = torch.zeros(4, 1, 2, 2), torch.tensor([1.0, 0, 0, 0])
    _, mixed = mixup_or(x, y, 0.4, np.random.default_rng(0))
    assert set(mixed.tolist()) <= {0.0, 1.0} and mixed.sum() >= 1


def test_checkpoint_is_atomic_safe_and_rebuilds_the_model(small_sets, tmp_path):
    make, train, val = small_sets
    model = build_model("small-cnn")
    result = fit(model, make(train), make(val), TrainConfig(epochs=1, batch_size=8), tmp_path,
                 meta={"model": "small-cnn", "layout": "on_stack", "preprocess": COARSE.to_dict(), "in_channels": 1},
                 progress=False)
    assert result.checkpoint == tmp_path / "best.pt" and not list(tmp_path.glob("*.tmp"))
    assert (tmp_path / "history.csv").is_file()
    checkpoint = load_checkpoint(result.checkpoint)
    rebuilt = model_from_checkpoint(checkpoint)
    np.testing.assert_allclose(predict(rebuilt, make(val)), predict(model, make(val)), rtol=1e-6)
    evil = tmp_path / "evil.pt"
    torch.save({"meta": pd.DataFrame()}, evil)  # an arbitrary pickled object
    with pytest.raises(ValueError, match="evil.pt: not a seti-nb checkpoint"):
        load_checkpoint(evil)


def test_real_imagenet_weights_for_lite0_load_and_recognise_a_daisy():
    import timm
    from sklearn.datasets import load_sample_image

    model = timm.create_model(LITE0_TIMM, pretrained=False)
    model.load_state_dict(lite0_imagenet_state_dict(), strict=True)
    model.eval()
    image = torch.tensor(load_sample_image("flower.jpg")).permute(2, 0, 1)[None].float() / 255
    image = torch.nn.functional.interpolate(image, size=(224, 224), mode="bilinear", antialias=True)
    with torch.no_grad():
        top = model((image - 0.5) / 0.5).softmax(1).topk(1).indices.item()
    assert top == 985, "ImageNet class 985 is 'daisy'"


def test_pretrained_stems_are_adapted_not_reinitialised_and_new_heads_start_at_zero(tmp_path):
    lite = build_model(f"timm:{LITE0_TIMM}", in_channels=1, pretrained=True)
    rgb = lite0_imagenet_state_dict()["conv_stem.weight"]
    torch.testing.assert_close(lite.conv_stem.weight.data, rgb.sum(1, keepdim=True))
    source = build_model("efficientnet-b0", in_channels=3)  # stands in for the ImageNet file
    weights = tmp_path / "efficientnet-b0.pth"
    torch.save(source.state_dict(), weights)
    b0 = build_model("efficientnet-b0", in_channels=1, pretrained=True, weights_path=str(weights))
    torch.testing.assert_close(b0._conv_stem.weight.data, source._conv_stem.weight.data.sum(1, keepdim=True))
    x = torch.randn(4, 1, 64, 64) * 3
    for model in (lite, b0, build_model(f"timm:{LITE0_TIMM}")):  # pretrained or not: every first score is 0.5
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model.train()(x), torch.ones(4, 1))
        torch.testing.assert_close(loss.item(), float(np.log(2)))


def test_missing_weights_say_which_file_to_place_where(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"efficientnet-b3-5fb5a3c3.pth") as err:
        build_model("efficientnet-b3", pretrained=True)
    assert str(tmp_path / "checkpoints") in str(err.value)
    with pytest.raises(ValueError, match="unknown model"):
        build_model("resnet")


def test_cli_train_then_predict(synth_data, tmp_path):
    kaggle_sample = Path(__file__).resolve().parents[2] / "shared" / "kaggle_sample"  # absent in a user's clone
    assert main(["train", "--data", str(synth_data), "--model", "small-cnn", "--layout", "all_stack",
                 "--time-average", "16", "--channel-average", "8", "--narrowband", "65", "--epochs", "1",
                 "--limit", "60", "--out", str(tmp_path)]) == 0
    run = next(tmp_path.glob("train-small-cnn-*"))
    assert {"best.pt", "history.csv", "metrics.json", "test_scores.csv"} <= {p.name for p in run.iterdir()}
    model, meta, test = trained_run(run, synth_data)  # what the benchmarks of a run start from
    assert not model.training and meta["model"] == "small-cnn" and {"snr", "kind", "backgrounds"} <= set(test)
    assert meta["preprocess"]["narrowband"] == 65  # predict preprocesses as training did (the score check below)
    first = to_layout(Preprocess(**meta["preprocess"])(read_cadence(synth_data, test.id.iloc[0])), meta["layout"])
    with torch.no_grad():
        assert torch.sigmoid(model(torch.as_tensor(first)[None])).item() == pytest.approx(test.score.iloc[0], abs=1e-3)
    sides = [(synth_data, 50)] + ([(kaggle_sample, 2)] if (kaggle_sample / "test").is_dir() else [])
    for data, n in sides:  # the unlabelled test side, as a Kaggle submission
        preds = tmp_path / f"preds-{n}.csv"
        assert main(["predict", "--checkpoint", str(run / "best.pt"), "--data", str(data), "--out", str(preds)]) == 0
        table = pd.read_csv(preds, dtype={"id": str})
        assert list(table.columns) == ["id", "target"] and len(table) == n
        assert table.target.between(0, 1).all() and table.id.str.len().eq(15).all()
        assert main(["predict", "--checkpoint", str(run / "best.pt"), "--data", str(data),
                     "--out", str(preds)]) == 2, "an existing file is never overwritten"


def test_cross_validation_resumes_from_finished_folds(synth_data, tmp_path, monkeypatch):
    import seti_nb.study as study

    small = read_labels(synth_data).groupby("target").head(15)  # 15 needles, 15 haystack
    monkeypatch.setattr(study, "read_labels", lambda root: small)
    run = Run("small-cnn", "frames", COARSE, config=TrainConfig(epochs=1, batch_size=8))
    calls = []
    real_fit = study.fit

    def counting_fit(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # killed during the second fold
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(study, "fit", counting_fit)
    with pytest.raises(KeyboardInterrupt):
        study.cross_validate(synth_data, tmp_path, run, k=3, progress=False)
    assert (tmp_path / "fold0" / "fold.json").exists() and not (tmp_path / "fold1" / "fold.json").exists()
    folds_before = (tmp_path / "folds.csv").read_text()
    calls.clear()
    monkeypatch.setattr(study, "fit", real_fit)
    fold0 = (tmp_path / "fold0" / "fold.json").stat().st_mtime_ns
    result = study.cross_validate(synth_data, tmp_path, run, k=3, progress=False)
    assert (tmp_path / "fold0" / "fold.json").stat().st_mtime_ns == fold0, "the finished fold is not retrained"
    assert (tmp_path / "folds.csv").read_text() == folds_before
    assert list(result.folds.index) == [0, 1, 2]
    assert result.ensemble().shape == (len(result.test),)
    assert sorted(result.oof.id) == sorted(split(small, 0.3, 0)[0].id), "every training cadence scored once"


def test_run_settings_by_name():
    run = Run().but(sampler="plain", time_average=4, layout="contrast")
    assert run.config.sampler == "plain" and run.preprocess.time_average == 4 and run.layout == "contrast"
    with pytest.raises(ValueError, match="unknown setting 'colour'"):
        Run().but(colour="red")


def test_injected_signals_make_needles_of_haystack_and_continue_interference_through_the_off_scans():
    """`Augment(inject=1)`: a haystack becomes a needle only with power added to ON scans alone; otherwise the signal
    reaches an OFF scan and the label stays; a needle is never turned into anything else."""
    quiet = np.zeros((6, 34, 128), np.float32)
    augment = Augment(QUICK_PREPROCESS, max_shift=0, inject=1.0, seed=4)
    outcomes = {0.0: 0, 1.0: 0}
    for _ in range(60):
        frames, target = augment(quiet, 0.0)
        power = np.abs(frames).sum(axis=(1, 2))
        outcomes[target] += 1
        if target == 1.0:
            assert power[[1, 3, 5]].max() < 1e-3 < power[[0, 2, 4]].max(), power
        else:
            assert power[[1, 3, 5]].max() > 1e-3, power
    assert min(outcomes.values()) > 10, outcomes
    assert all(augment(quiet, 1.0)[1] == 1.0 for _ in range(20))
    assert not quiet.any(), "the caller's scans are never written"


def test_the_injected_interference_is_the_injected_needles_own_draw_continued_through_the_off_scans():
    """Only the OFF scans tell an injected needle from its twin: given one seed, the haystack turned needle and the
    interference added to a needle are one draw, equal in the needle's ON scans, the twin's signal continued into
    the OFF scans, half the time (otherwise the interference is a path drawn apart). Each scan's own bandpass here:
    the OFF bandpass would carry the twin's OFF signal into its ON scans, as it should."""
    quiet, scan_bandpass = np.zeros((6, 34, 128), np.float32), Preprocess("scan", 8, 2)
    pairs = []
    for seed in range(40):
        needle, target = Augment(scan_bandpass, max_shift=0, inject=1.0, seed=seed)(quiet, 0.0)
        if target == 1.0:
            twin, label = Augment(scan_bandpass, max_shift=0, inject=1.0, seed=seed)(quiet, 1.0)
            assert label == 1.0 and np.abs(twin[[1, 3, 5]]).sum() > 1e-3, seed
            on = [i for i in (0, 2, 4) if np.abs(needle[i]).sum() > 1e-3]
            pairs.append(np.array_equal(needle[on], twin[on]))
    assert len(pairs) > 10 and 0.3 <= np.mean(pairs) <= 0.7, pairs


def test_what_the_off_scans_hold_changes_the_score():
    """Both cadence-cnn designs read the OFF scans: a line added to them alone moves the logit."""
    x = torch.randn(2, 6, 34, 64)
    lined = x.clone()
    lined[:, [1, 3, 5], :, 30:32] += 4
    for name in ("cadence-cnn", "cadence-cnn-same-place"):
        model = build_model(name, in_channels=6).eval()
        with torch.no_grad():
            assert not torch.allclose(model(x), model(lined), atol=1e-4), name
    with pytest.raises(ValueError, match="'frames' layout"):
        build_model("cadence-cnn", in_channels=1)


def test_cadence_cnn_at_full_frequency_resolution_keeps_the_features_grid_and_its_checkpoint(tmp_path):
    """At full frequency resolution cadence-cnn's first convolution strides 4 channels, so its features lie on the
    grid of the 2-channel input (the context's reach in frequency unchanged); its checkpoint rebuilds that model."""
    full, averaged = (Run().but(channel_average=k) for k in (1, 2))
    x = torch.randn(2, 6, 17, 256)
    grids = [run_model(run).encoder(x[:, :1, :, ::k]).shape for run, k in ((full, 1), (averaged, 2))]
    assert grids[0] == grids[1] == (2, 32, 4, 32)
    model = run_model(full).eval()
    save_checkpoint(tmp_path / "full.pt", {"model": model.state_dict(), "meta": full.meta(), "config": {}})
    rebuilt = model_from_checkpoint(load_checkpoint(tmp_path / "full.pt")).eval()
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), model(x))


def test_the_head_convolved_part_by_part_is_the_convolution_of_the_parts_side_by_side():
    """cadence-cnn convolves the OFF scans' same-place features once per cadence, not once per ON scan: the sum of
    the parts' convolutions must equal the head's convolution of the features concatenated per ON scan."""
    torch.manual_seed(0)
    model = build_model("cadence-cnn", in_channels=6).eval()
    on, same, context = torch.randn(2, 3, 32, 4, 16), torch.randn(2, 1, 64, 4, 16), torch.randn(2, 3, 16, 4, 16)
    whole = torch.cat([on, same.expand(-1, 3, -1, -1, -1), context], 2).flatten(0, 1)
    with torch.no_grad():
        torch.testing.assert_close(model._head_input([on, same, context]), model.head[0](whole))


def test_a_briefly_trained_cadence_cnn_ranks_needles_above_their_interference_twins(synth_data, tmp_path):
    """The ON/OFF rule learned end to end: trained a few epochs on a small set with injected signals (needles, and
    the same kind of signal continued through the OFF scans), cadence-cnn ranks most needles of fresh twin pairs
    above their twin, and continuing a signal through the OFF scans lowers its probability by a wide margin (an
    untrained network's scores differ by hundredths, whatever the OFF scans hold)."""
    from seti_nb.config import SynthConfig
    from seti_nb.data import read_truth
    from seti_nb.metrics import twin_table
    from seti_nb.study import train_and_evaluate
    from seti_nb.synth import synthesize

    twins = synthesize(tmp_path / "twins", SynthConfig(n=200, seed=9, twins=True), progress=False)
    truth = read_truth(twins)
    run = Run(preprocess=Preprocess("off", 16, 4, 20), inject=1.0,
              config=TrainConfig(epochs=12, batch_size=64, lr=3e-3, seed=0))
    trained = train_and_evaluate(synth_data, run, progress=False)
    dataset = CadenceDataset(twins, truth[["id", "target"]], "frames", run.preprocess, progress=False)
    scores = {"trained": trained.predict(twins, truth), "untrained": predict(build_model("cadence-cnn", 6), dataset)}
    assert twin_table(truth, scores).loc["trained", "pairs right"] >= 0.85
    mirrored = trained.predict(twins, truth, tta=True)  # the run scores without the mirror unless told
    assert not np.allclose(mirrored, scores["trained"], atol=1e-4)
    assert twin_table(truth, {"mirrored": mirrored}).loc["mirrored", "pairs right"] >= 0.85
    gap = {name: s[truth.target == 1].mean() - s[truth.target == 0].mean() for name, s in scores.items()}
    assert gap["trained"] > 0.05 > abs(gap["untrained"]) * 10, gap

    # with their OFF scans made plain (a needle's: the same noise, no signal), interference twins score higher
    needle, interference = truth[truth.target == 1].id.iloc[0], truth[truth.target == 0].id[:20]
    worth = trained.scans_worth(twins, interference, needle)
    # -0.4998 on one machine of this kind, under -0.5 on CI's (the same seed trains other weights where float
    # rounding differs); an untrained network's are worth +0.002 to +0.008 (three seeds; 0.04 at most for one twin)
    assert list(worth.id) == list(interference) and worth["OFF scans' logit"].mean() < -0.3, worth
    assert np.allclose(worth.score, scores["trained"][truth.target == 0][:20], atol=1e-3)  # the cache's float16


def test_a_fixed_split_leaves_the_seed_to_the_training(synth_data):
    """`split_seed` draws the split apart from the run's seed (`benchmarks/seed_spread.py --split`): two seeds on
    one split are tested on the same cadences and differ in their training alone; by default a seed draws its own
    split."""
    from seti_nb.study import splits, train_and_evaluate

    labels = read_labels(synth_data)
    run = Run("small-cnn", "on_stack", COARSE, limit=60, config=TrainConfig(epochs=1, seed=3))
    fixed = [train_and_evaluate(synth_data, run.but(seed=seed), split_seed=0, progress=False) for seed in (3, 4)]
    own = train_and_evaluate(synth_data, run, progress=False)
    assert list(fixed[0].test.id) == list(fixed[1].test.id) == list(splits(labels, 0)[2].id)
    assert list(own.test.id) == list(splits(labels, 3)[2].id) != list(fixed[0].test.id)
    assert not np.allclose(fixed[0].test.score, fixed[1].test.score)


def test_scans_worth_replaces_one_kind_of_scan_at_a_time(tiny):
    """`Result.scans_worth` scores each cadence with its three OFF scans, as the model sees them, from the donor
    (then its three ON scans): a model that reads the OFF scans' mean alone moves by exactly the difference when
    the OFF scans are replaced, and not at all when the ON scans are."""
    from seti_nb.study import Result

    class OffMean(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.unused = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x):
            return x[:, [1, 3, 5]].mean((1, 2, 3))[:, None]

    run = Run(preprocess=Preprocess("off", 16, 4, 20))
    result = Result("off-mean", run, *[None] * 10, model=OffMean())
    labels = read_labels(tiny)
    ids, donor = labels.id[:3], labels.id.iloc[5]
    worth = result.scans_worth(tiny, ids, donor)
    off_mean = lambda i: run.preprocess(read_cadence(tiny, i))[[1, 3, 5]].mean()  # noqa: E731
    assert np.allclose(worth["OFF scans' logit"], [off_mean(i) - off_mean(donor) for i in ids], atol=1e-5)
    assert np.allclose(worth["ON scans' logit"], 0) and np.allclose(worth["ON scans plain"], worth.score)


def test_a_distributed_sample_gives_every_rank_its_share_of_one_draw(monkeypatch):
    """The distributed form of the oversampling and hybrid samplers: both ranks draw the same sequence and keep
    alternate indices of it, padded by its start to a whole number each, as DistributedSampler does."""
    from seti_nb import distributed

    drawn = [5, 3, 5, 9, 1, 0, 5]
    shares = []
    for rank in (0, 1):
        monkeypatch.setattr(distributed, "world", lambda rank=rank: (rank, 2))
        shard = distributed.Shard(drawn)
        shares.append(list(shard))
        assert len(shard) == 4
    assert shares == [[5, 5, 1, 5], [3, 9, 0, 5]]


def test_training_on_two_processes_matches_one(tmp_path):
    """`seti-nb train --nproc 2` (DistributedDataParallel, gloo on this CPU: two processes that torchrun starts, each
    running `train_and_evaluate`, as a notebook's `nproc` does) writes one loadable checkpoint, scores every test
    cadence exactly once, and its test AUC lies in the one-process run's 95 % interval (a model that learnt nothing
    would not: the interval here lies above 0.6). Its own data: needles of SNR 15-80, 30 % of 600 cadences, on which
    12 epochs learn whatever the seed (AUC 0.80-0.82 for seeds 0-3); on the shared set's 1,000 cadences of SNR 4-80 a
    few epochs gave 0.53-0.78 by seed, too close to chance for the interval to mean anything."""
    from seti_nb.config import SynthConfig
    from seti_nb.study import splits
    from seti_nb.synth import synthesize

    data = synthesize(tmp_path / "data", SynthConfig(n=600, seed=11, positive_fraction=0.3, snr_range=(15.0, 80.0)),
                      progress=False)
    settings = ["train", "--data", str(data), "--time-average", "16", "--channel-average", "4", "--epochs", "12",
                "--inject", "0"]
    runs = {}
    for n in (1, 2):
        assert main([*settings, "--nproc", str(n), "--out", str(tmp_path / f"n{n}")]) == 0
        (runs[n],) = (tmp_path / f"n{n}").iterdir()  # one run folder each
    assert {p.name for p in runs[2].iterdir()} == {"best.pt", "history.csv", "metrics.json", "test_scores.csv",
                                                   "run.json"}  # run.json: the settings the processes read
    model_from_checkpoint(load_checkpoint(runs[2] / "best.pt"))
    test_ids = splits(read_labels(data))[2].id
    scored = pd.read_csv(runs[2] / "test_scores.csv", dtype={"id": str})
    assert sorted(scored.id) == sorted(test_ids) and scored.id.is_unique and scored.score.notna().all()
    one, two = (pd.read_json(runs[n] / "metrics.json", typ="series") for n in (1, 2))
    assert (one.processes, two.processes) == (1, 2)
    assert one.auc_low > 0.6
    assert one.auc_low <= two.auc <= one.auc_high, (one.auc_low, two.auc, one.auc_high)


def test_kaggle_inputs_resized_gem_pooled_and_mirrored_at_test_time(tmp_path):
    """The Kaggle solutions' inputs as run settings: the image resized on the device, GeM pooling, test-time
    mirroring in frequency; a checkpoint rebuilds all three, and refuses an edited size."""
    from seti_nb.models import GeM, Resized

    run = Run(model="timm:tf_efficientnet_lite0", layout="all_stack", size=(64, 96), pool="gem", tta=True)
    seed_everything(0)
    model = run_model(run).eval()
    assert isinstance(model, Resized) and sum(isinstance(m, GeM) for m in model.modules()) == 1
    with torch.no_grad():  # a new head starts at zero (every score 0.5): small weights, so scores differ
        model.net.classifier.weight.normal_(std=0.01)
    x = torch.randn(3, 1, 6 * 17, 32)
    seen = []
    hook = model.net.register_forward_pre_hook(lambda module, args: seen.append(args[0].shape))
    items = [(x[i], torch.tensor(0.0)) for i in range(3)] + [(x[i].flip(-1), torch.tensor(0.0)) for i in range(3)]
    mirrored = predict(model, items, tta=True)
    hook.remove()
    assert seen[0][-2:] == (64, 96)
    np.testing.assert_allclose(mirrored[:3], mirrored[3:], atol=1e-6)  # an image and its mirror, one score
    plain = predict(model, items)
    assert not np.allclose(plain[:3], plain[3:], atol=1e-4)
    save_checkpoint(tmp_path / "c.pt", {"model": model.state_dict(), "meta": run.meta(), "config": {}})
    rebuilt = model_from_checkpoint(load_checkpoint(tmp_path / "c.pt"))
    np.testing.assert_allclose(predict(rebuilt, items), plain, atol=1e-6)
    for size, pool in (((2, 5), "gem"), ((64, 96), "median")):
        torch.save({"model": model.state_dict(), "meta": run.meta(size=size, pool=pool)}, tmp_path / "e.pt")
        with pytest.raises(ValueError, match="input size or pooling is not valid"):
            model_from_checkpoint(load_checkpoint(tmp_path / "e.pt"), tmp_path / "e.pt")
    with pytest.raises(ValueError, match="GeM pooling is for EfficientNet"):
        run_model(Run(pool="gem"))


def test_pseudo_labels_from_a_score_file_join_the_training_part(synth_data, tmp_path):
    """Pseudo-labelling: the test cadences a score file is confident about join the training part with their
    rounded labels (the rest are left out); a score file with a NaN, other columns or foreign ids is refused."""
    from seti_nb.data import DataError, side_ids
    from seti_nb.dataset import datasets

    test_ids = side_ids(synth_data, "test")
    scores = pd.DataFrame({"id": test_ids, "target": np.linspace(0, 1, len(test_ids))})
    path = tmp_path / "preds.csv"
    scores.to_csv(path, index=False)
    fit_items = read_labels(synth_data).head(40)
    run = Run("small-cnn", "on_stack", COARSE, pseudo=str(path), pseudo_confidence=0.9)
    (train,) = datasets(synth_data, run, fit_items, progress=False)
    sure = scores[(scores.target >= 0.9) | (scores.target <= 0.1)]
    assert 0 < len(sure) < len(scores) and len(train) == 40 + len(sure)
    np.testing.assert_array_equal(train.targets[40:], (sure.target >= 0.9).astype(float))
    assert train[len(train) - 1][0].shape == train[0][0].shape
    bad = {"nan": f"id,target\n{test_ids[0]},nan\n", "columns": f"id,score\n{test_ids[0]},0.99\n",
           "foreign": f"id,target\n{'0' * 15},0.99\n"}
    for name, message in (("nan", "not a probability"), ("columns", "expected \\['id', 'target'\\]"),
                          ("foreign", "not on the test side")):
        (tmp_path / f"{name}.csv").write_text(bad[name])
        with pytest.raises(DataError, match=message):
            datasets(synth_data, run.but(pseudo=str(tmp_path / f"{name}.csv")), fit_items, progress=False)
    assert main(["train", "--data", str(synth_data), "--model", "small-cnn", "--layout", "all_stack",
                 "--time-average", "16", "--channel-average", "8", "--epochs", "1", "--limit", "60",
                 "--pseudo", str(path), "--pseudo-confidence", "0.9", "--out", str(tmp_path / "runs")]) == 0
    (folder,) = (tmp_path / "runs").iterdir()
    assert pd.read_json(folder / "metrics.json", typ="series").train_cadences == 60 + len(sure)


def test_counterfactual_pairs_differ_in_the_off_scans_alone():
    """`Augment.paired`: each pair is one haystack of the batch and one draw, the needle (label 1) in the draw's ON
    scans, its twin (label 0) the same signal continued through the OFF scans it reaches: equal in the needle's ON
    scans (each scan's own bandpass here), apart in the OFF scans, which the needle leaves as the haystack had them."""
    x = torch.stack([torch.full((6, 34, 128), float(i)) for i in range(5)])  # haystack i holds the value i
    y = torch.tensor([0.0, 1.0, 0.0, 0.0, 0.0])
    augment = Augment(Preprocess("scan", 8, 2), max_shift=0, seed=2, pairs=3)
    joined, labels, k = augment.paired(x, y)
    assert k == 3 and torch.equal(joined[:5], x) and labels.tolist() == y.tolist() + [1.0] * 3 + [0.0] * 3
    for needle, twin in zip(joined[5:8].numpy(), joined[8:].numpy()):
        base = needle[1, 0, 0]
        assert base in (0.0, 2.0, 3.0, 4.0) and np.all(needle[[1, 3, 5]] == base), "a haystack's own OFF scans"
        on = [i for i in (0, 2, 4) if np.abs(needle[i] - base).sum() > 1e-3]
        assert on and np.array_equal(needle[on], twin[on])
        assert np.abs(twin[[1, 3, 5]] - base).sum() > 1e-3
    assert augment.paired(x, torch.ones(5))[2] == 0, "no haystack, no pair"
    for bad in ({"layout": "contrast"}, {"augment": False}, {"mixup": 0.4}):
        with pytest.raises(ValueError, match="pairs need"):
            Run().but(pairs=4, **bad)


def test_training_with_pairs_adds_them_to_every_batch_and_reports_the_batch_alone(small_sets, synth_data):
    """The trainer asks a training set's transform for its pairs on every batch, trains on them, and keeps its
    running metrics to the batch it was given."""
    _, train, val = small_sets
    make = lambda df, **kw: CadenceDataset(synth_data, df, "frames", COARSE, progress=False, **kw)  # noqa: E731
    augment = Augment(COARSE, seed=0, pairs=2)
    calls = []
    paired = augment.paired
    augment.paired = lambda x, y: calls.append(len(y)) or paired(x, y)
    seed_everything(0)
    config = TrainConfig(epochs=2, batch_size=8, seed=0)
    result = fit(build_model("cadence-cnn", 6), make(train, transform=augment), make(val), config, progress=False)
    assert len(calls) == 2 * int(np.ceil(len(train) / 8)) and sum(calls) == 2 * len(train)
    assert np.isfinite(result.history.train_loss).all() and len(result.history) == 2
