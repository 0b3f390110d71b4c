"""Loaded first by pytest, for the tests and the nbval run over notebooks/ alike."""

import os
import tempfile


def pytest_configure(config):
    """Keep Jupyter's, IPython's and matplotlib's state out of the home folder; draw without a screen."""
    home = tempfile.mkdtemp(prefix="seti-nb-jupyter-")
    for var in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR", "MPLCONFIGDIR"):
        os.environ.setdefault(var, os.path.join(home, var.lower()))
        os.makedirs(os.environ[var], exist_ok=True)
    os.environ.setdefault("MPLBACKEND", "Agg")
