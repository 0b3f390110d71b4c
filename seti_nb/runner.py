"""Running the notebooks headlessly with papermill: profiles, a new run folder each time, a summary."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from uuid import uuid4

import nbformat
import pandas as pd
import papermill as pm
import yaml
from jupyter_client import AsyncKernelManager
from jupyter_core.paths import jupyter_runtime_dir
from papermill import engines
from papermill.clientwrap import PapermillNotebookClient

from .config import PROFILES
from .runtime import new_folder, progress_bar, project_dir, runs_dir

HEADLESS_ENGINE = "seti-nb"


def _register_headless_engine() -> None:
    """papermill's nbclient engine, minus nbclient's emulation of the ipywidgets Output widget.

    That emulation sends comm messages on the shell channel while nbclient awaits the cell's reply on the
    same channel; the reply can then be lost and the run hangs for ever (jupyter/nbclient#312; it struck
    02's slider cell in 5 runs of 6 here). Without it, what a widget draws lands in the cell's own
    outputs, so the executed notebook shows the figure of the default slider settings.
    """
    class Client(PapermillNotebookClient):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.widget_registry = {}
            self.kernel_manager_class = _ipc_kernel_manager()

    class Engine(engines.NBClientEngine):
        @classmethod
        def execute_managed_notebook(cls, *args, **kwargs):
            original, engines.PapermillNotebookClient = engines.PapermillNotebookClient, Client
            try:
                return super().execute_managed_notebook(*args, **kwargs)
            finally:
                engines.PapermillNotebookClient = original

    engines.papermill_engines.register(HEADLESS_ENGINE, Engine)


def _ipc_kernel_manager():
    """A kernel manager that talks to its kernel over local sockets (IPC), not TCP: nothing is exposed on a
    port, and ipykernel stops warning of unencrypted TCP once per notebook."""
    class IPCKernelManager(AsyncKernelManager):
        def __init__(self, **kwargs):
            runtime = Path(jupyter_runtime_dir())
            if len(str(runtime)) > 60:  # a socket path has at most 107 characters
                runtime = Path(tempfile.gettempdir())
            runtime.mkdir(parents=True, exist_ok=True)
            super().__init__(transport="ipc", ip=str(runtime / f"seti-nb-{uuid4().hex[:12]}"), **kwargs)

    return IPCKernelManager


WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def static_outputs(nb):
    """What a reader sees before running anything: figures and text. Live widgets (the browser, the sliders,
    tqdm's bars) cannot be shown from a file: their outputs and the saved widget state are dropped, while
    the figure a widget drew stays in the cell's outputs."""
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.outputs if WIDGET_VIEW not in o.get("data", {})]
    return nb


def notebooks_dir() -> Path:
    checkout = project_dir()
    if checkout is None or not (checkout / "notebooks").is_dir():
        raise FileNotFoundError("no notebooks/ folder: run seti-nb from a clone of the workbook")
    return checkout / "notebooks"


def find_notebooks(names: list[str] | None = None, folder: Path | None = None) -> list[Path]:
    """The workbook's notebooks in order, or those named (by path, number '03' or stem)."""
    folder = folder or notebooks_dir()
    every = sorted(folder.glob("[0-9][0-9]_*.ipynb"))
    if not names:
        return every
    chosen = []
    for name in names:
        if Path(name).suffix == ".ipynb" and Path(name).is_file():
            chosen.append(Path(name))
            continue
        match = [p for p in every if p.stem == name or p.stem.split("_")[0] == name]
        if not match:
            raise FileNotFoundError(f"no notebook {name!r} in {folder}; have {[p.stem for p in every]}")
        chosen += [p for p in match if p not in chosen]  # a notebook named twice runs once
    return chosen


def profile_parameters(profile: str, folder: Path) -> dict:
    """The quick profile is what each notebook's `parameters` cell holds; the full one is params/full.yaml."""
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, got {profile!r}")
    if profile == "quick":
        return {}
    path = folder / "params" / f"{profile}.yaml"
    return yaml.safe_load(path.read_text()) or {}


def run_notebooks(notebooks: list[Path], profile: str = "quick", data: str | None = None,
                  out: str | None = None, device: str = "auto", parameters: dict | None = None) -> tuple[Path, bool]:
    """Execute `notebooks` in order into a new run folder; stop at the first failure.

    `parameters` override the profile's (each notebook takes those its parameters cell declares). Returns the
    run folder (executed notebooks, each notebook's outputs, summary.json, summary.md) and whether every
    notebook succeeded.
    """
    _register_headless_engine()
    if not notebooks:
        raise FileNotFoundError("no notebooks to run")
    common = {**profile_parameters(profile, notebooks[0].parent), **(parameters or {})}
    run = new_folder(out or runs_dir(), f"{time.strftime('%Y%m%d-%H%M%S')}-{profile}")
    rows = []
    bar = progress_bar(notebooks, desc=f"{profile} profile", unit="notebook")
    for nb in bar:
        bar.set_postfix_str(nb.stem)
        declared = pm.inspect_notebook(str(nb))
        overrides = {"device": device, "out_dir": str((run / nb.stem).resolve())}
        if data:
            overrides["data_dir"] = str(Path(data).resolve())
        params = {k: v for k, v in {**common, **overrides}.items() if k in declared}
        row = {"notebook": nb.stem, "status": "ok", "seconds": 0.0, "error": ""}
        start = time.perf_counter()
        try:
            pm.execute_notebook(str(nb), str(run / nb.name), parameters=params, cwd=str(nb.parent),
                                kernel_name="python3", progress_bar=False, engine_name=HEADLESS_ENGINE)
        except pm.PapermillExecutionError as e:
            row.update(status="failed", error=f"cell {e.exec_count}: {e.ename}: {e.evalue}")
        executed = run / nb.name
        nbformat.write(static_outputs(nbformat.read(executed, as_version=4)), executed)
        row["seconds"] = round(time.perf_counter() - start, 1)
        headline = run / nb.stem / "headline.json"
        row["headline"] = json.loads(headline.read_text()) if headline.exists() else {}
        rows.append(row)
        if row["status"] != "ok":
            bar.write(f"{nb.name} failed at {row['error']}\n  executed copy: {run / nb.name}")
            break
    bar.close()
    write_summary(run, rows, profile)
    return run, all(r["status"] == "ok" for r in rows) and len(rows) == len(notebooks)


def write_summary(run: Path, rows: list[dict], profile: str) -> None:
    (run / "summary.json").write_text(json.dumps({"profile": profile, "notebooks": rows}, indent=1) + "\n")
    table = pd.DataFrame([{"notebook": r["notebook"], "status": r["status"], "seconds": r["seconds"],
                           "headline": ", ".join(f"{k}={v}" for k, v in r["headline"].items()) or r["error"]}
                          for r in rows])
    text = table.to_string(index=False)
    (run / "summary.md").write_text(f"# {profile} profile run\n\n```\n{text}\n```\n")
    print(text)


def refresh_committed(notebook: Path) -> None:
    """Re-execute a committed notebook with its quick profile, in place, with clean metadata.

    For maintainers after a change that alters what a notebook prints: nbval compares the stored outputs.
    """
    _register_headless_engine()
    nb = pm.execute_notebook(str(notebook), None, cwd=str(notebook.parent), kernel_name="python3",
                             progress_bar=False, engine_name=HEADLESS_ENGINE)
    static_outputs(nb)
    nb.metadata.pop("papermill", None)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
    nbformat.write(nb, str(notebook))
