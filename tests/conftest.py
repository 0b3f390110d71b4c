"""Shared fixtures: a small synthetic data set made once per test session, and the real Kaggle sample."""

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
KAGGLE_SAMPLE = ROOT.parent / "shared" / "kaggle_sample"


@pytest.fixture(scope="session", autouse=True)
def _quiet_jupyter_home(tmp_path_factory):
    """Keep Jupyter's and matplotlib's state out of the home folder."""
    home = tmp_path_factory.mktemp("jupyter")
    for var in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR", "MPLCONFIGDIR"):
        os.environ.setdefault(var, str(home / var.lower()))
    os.environ.setdefault("MPLBACKEND", "Agg")


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
