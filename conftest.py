"""Loaded first by pytest, for the tests and the nbval run over notebooks/ alike."""

import os
import shutil
import tempfile

_HOME = []


def pytest_configure(config):
    """Keep Jupyter's, IPython's and matplotlib's state out of the home folder; draw without a screen."""
    home = tempfile.mkdtemp(prefix="seti-nb-jupyter-")
    _HOME.append(home)
    for var in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR", "MPLCONFIGDIR"):
        os.environ.setdefault(var, os.path.join(home, var.lower()))
        os.makedirs(os.environ[var], exist_ok=True)
    os.environ.setdefault("MPLBACKEND", "Agg")


def pytest_unconfigure(config):
    """Remove that state again: a test session leaves nothing behind in the temporary folder."""
    for home in _HOME:
        shutil.rmtree(home, ignore_errors=True)
