"""Shared fixtures: a small synthetic data set made once per test session, and the real Kaggle sample."""

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
    """1,000 training + 100 test synthetic cadences (seed 7): enough for the leak test's statistics."""
    from seti_nb.synth import SynthConfig, synthesize

    return synthesize(tmp_path_factory.mktemp("synth") / "data", SynthConfig(n=1000, seed=7), progress=False)
