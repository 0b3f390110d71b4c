"""What every notebook does first: seed, style, data, device and output folder, in one `setup` call."""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython import get_ipython
from matplotlib_inline.backend_inline import set_matplotlib_formats

from .cadence import Geometry
from .config import SynthConfig
from .data import read_labels, read_truth, unfinished_synthesis
from .observation import VERSION as OBSERVATION_VERSION
from .observation import synthesize_observation
from .runtime import new_folder, pick_device, project_dir, runs_dir, seed_everything
from .synth import VERSION, synthesize

DEFAULT_DATA = SynthConfig(n=8000, seed=0)  # the embedded default data set
TWIN_DATA = SynthConfig(n=800, seed=1, twins=True)  # the twin test's set: 400 needles, each with its interference twin


def default_data_dir() -> Path:
    """Where the embedded default data set lives: `$SETI_NB_DATA`, else `data/synthetic-v<generator version>`
    in the checkout (or in `~/.cache/seti-nb` for a plain install): a new generator writes a new folder."""
    if os.environ.get("SETI_NB_DATA"):
        return Path(os.environ["SETI_NB_DATA"])
    checkout = project_dir()
    parent = checkout / "data" if checkout else Path.home() / ".cache" / "seti-nb"
    return parent / f"synthetic-v{VERSION}"


def twin_data_dir() -> Path:
    """Where the twin test's set lives: `twins-v<generator version>` beside the default data set."""
    return default_data_dir().with_name(f"twins-v{VERSION}")


def ensure_data(data_dir: str | os.PathLike = "", config: SynthConfig = DEFAULT_DATA) -> Path:
    """The data folder to use. An empty `data_dir` means the embedded default, synthesized on first use;
    any other folder must already hold a Kaggle-layout data set (real or synthetic)."""
    if data_dir:
        path = Path(data_dir)
        if not (path / "train_labels.csv").is_file():
            raise FileNotFoundError(f"{path}: no train_labels.csv; point data_dir at a Kaggle-layout folder "
                                    "(train_labels.csv, train/) or leave it empty for the synthetic default")
        return path
    return _synthesized(default_data_dir(), config)


def ensure_twins(config: SynthConfig = TWIN_DATA) -> Path:
    """The twin test's set (`TWIN_DATA`), synthesized on first use (about ten seconds on two cores)."""
    return _synthesized(twin_data_dir(), config)


def ensure_observation(parent: Path, channels: int = 2**20, seed: int = 1) -> Path:
    """A synthetic BL observation (`synthesize_observation`: six .h5 files and truth.csv) in the folder `parent`
    (beside the data set), `observation-<channels>-s<seed>-v<its version>`, written on first use (atomically: an
    interrupted one leaves nothing)."""
    path = Path(parent) / f"observation-{channels}-s{seed}-v{OBSERVATION_VERSION}"
    if not path.is_dir():
        print(f"writing a synthetic observation ({channels} channels, seed {seed}) to {path.name}")
        synthesize_observation(path, channels, seed)
    return path


def ensure_like(parent: Path, geometry: Geometry, n: int = 3000, seed: int = 1) -> Path:
    """The twin test's pairs at an observation's geometry (`seti-nb synth --like FILE --twins`), to train a model
    that scores a scan's candidates: each already a hit, to be told from a signal continuing through the OFF
    scans. In the folder `parent` beside the data set, made on first use."""
    name = f"like-twins-{geometry.rows}x{geometry.channels}-{geometry.row_seconds:.2f}s-{n}-s{seed}-v{VERSION}"
    return _synthesized(Path(parent) / name, SynthConfig(n=n, seed=seed, twins=True, geometry=geometry))


def _synthesized(path: Path, config: SynthConfig) -> Path:
    """`path`, holding the synthetic set of `config`: written under a temporary name on first use (an interrupted
    synthesis is finished), then renamed."""
    if not (path / "synth.json").is_file():
        if path.exists() and any(path.iterdir()):
            raise FileExistsError(f"{path}: holds files but no finished synthetic data set (no synth.json); "
                                  "move it away to let seti-nb write the data set there")
        print(f"writing a synthetic data set ({config.n} cadences, seed {config.seed}) to {path}")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".partial")
        if tmp.exists() and not unfinished_synthesis(tmp):
            shutil.rmtree(tmp)  # ours, but not resumable
        synthesize(tmp, config)  # finishes an interrupted earlier synthesis
        if path.exists():
            path.rmdir()  # empty, as checked above
        tmp.rename(path)
    return path


def set_style() -> None:
    """The workbook's one plotting style."""
    if get_ipython() is not None:  # in a notebook: noisy waterfalls take a tenth of the room as JPEG
        set_matplotlib_formats("jpeg")
    plt.rcParams.update({"figure.dpi": 80, "axes.grid": False, "axes.titlesize": 10, "axes.labelsize": 9,
                         "xtick.labelsize": 8, "ytick.labelsize": 8, "legend.fontsize": 8,
                         "axes.spines.top": False, "axes.spines.right": False})


@dataclass
class Workbook:
    """A notebook's context: where its data and outputs are, its device and seed."""

    name: str
    data: Path
    out: Path
    device: str
    seed: int

    @cached_property
    def labels(self) -> pd.DataFrame:
        return read_labels(self.data)

    @cached_property
    def truth(self) -> pd.DataFrame | None:
        """The synthetic truth table (training side), or None for real data."""
        truth = read_truth(self.data)
        return None if truth is None else truth[truth.side == "train"].reset_index(drop=True)

    @cached_property
    def twin_dir(self) -> Path:
        """The twin test's set (synthetic, whatever data the notebook studies), made on first use."""
        return ensure_twins()

    @cached_property
    def twins(self) -> pd.DataFrame:
        """The twin test's truth table: each pair's needle (target 1) and interference twin (target 0)."""
        return read_truth(self.twin_dir)

    def headline(self, **numbers) -> pd.Series:
        """Record the notebook's headline numbers in `out/headline.json` (read by `seti-nb run`) and return them
        (floats rounded to four decimals, in both): a conclusion reads them as `h.name`."""
        rounded = {k: round(float(v), 4) if isinstance(v, (float, np.floating)) else
                   int(v) if isinstance(v, np.integer) else v for k, v in numbers.items()}
        path = self.out / "headline.json"
        old = json.loads(path.read_text()) if path.exists() else {}
        path.write_text(json.dumps({**old, **rounded}, indent=1) + "\n")
        return pd.Series(rounded, name=self.name, dtype=object)


def setup(name: str, data_dir: str = "", seed: int = 0, device: str = "auto", out_dir: str = "",
          kaggle_data: bool = True) -> Workbook:
    """Seed, style, data (the synthetic default made on first use; not looked at without `kaggle_data`), device and
    a new output folder.

    `out_dir` empty: a new folder `runs/<name>-<time>` in the checkout; else that folder (made if absent).
    """
    seed_everything(seed)
    set_style()
    data = ensure_data(data_dir) if kaggle_data else Path(data_dir or default_data_dir())
    if out_dir:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
    else:
        out = new_folder(runs_dir(), f"{name}-{time.strftime('%Y%m%d-%H%M%S')}")
    return Workbook(name=name, data=data, out=out, device=pick_device(device), seed=seed)
