"""Shared fixtures: a small synthetic data set made once per test session, the real Kaggle sample, and a
training cache of the tests' own."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
KAGGLE_SAMPLE = ROOT.parent / "shared" / "kaggle_sample"


@pytest.fixture(scope="session")
def kaggle_sample() -> Path:
    if not (KAGGLE_SAMPLE / "train_labels.csv").is_file():
        pytest.skip("../shared/kaggle_sample is not here (it is not part of a user's clone)")
    return KAGGLE_SAMPLE


@pytest.fixture(scope="session")
def synth_data(tmp_path_factory) -> Path:
    """1,000 training + 50 test synthetic cadences (seed 7): enough for the leak test's statistics."""
    from seti_nb.config import SynthConfig
    from seti_nb.synth import synthesize

    return synthesize(tmp_path_factory.mktemp("synth") / "data", SynthConfig(n=1000, seed=7), progress=False)


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> Path:
    """40 training + 2 test cadences (4 needles), seed 3: small enough to copy and spoil, or to cache in seconds."""
    from seti_nb.config import SynthConfig
    from seti_nb.synth import synthesize

    return synthesize(tmp_path_factory.mktemp("tiny") / "s40", SynthConfig(n=40, seed=3), progress=False)


@pytest.fixture(scope="session", params=["real", "synthetic"])
def sample(request, tiny) -> Path:
    """A few labelled cadences: the real Kaggle sample where it is here (not in a user's clone), and always a
    synthetic stand-in, so the tests that take it run everywhere."""
    if request.param == "synthetic":
        return tiny
    return request.getfixturevalue("kaggle_sample")


@pytest.fixture(scope="session")
def _test_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(autouse=True)
def _cache_outside_the_checkout(_test_cache, monkeypatch):
    """Tests build their training caches in a folder of their own, never in the checkout's data/cache."""
    monkeypatch.setenv("SETI_NB_CACHE", str(_test_cache))
