"""The widgets as a person meets them: JupyterLab in headless Chromium, Run All on 01 and 02, then every control
of the cadence browser and the filter playground changed, and the figure must change each time.

Needs Debian's `chromium` and `chromium-driver` (`./workbook test` installs them where it runs as root with
apt) and skips with its reason elsewhere. It works on copies of the notebooks in its own temporary folder,
never on the committed ones, and stops everything it starts (server, kernels, driver, browser), even on
failure, within a hard time limit. Screenshots go to the test's temporary folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER),
                                reason="no chromium and chromium-driver here (./workbook test installs them as root)")
HARD_LIMIT_S = 900
SETTINGS = {  # a user-settings folder of the test's own: no autosave, no news pop-up, every cell in the DOM
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                         "checkForUpdates": False},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}
CHEAP = {"01_data_exploration": {"n_stats": 100},
         "02_filter_playground": {"n_score": 120, "n_turbo": 4}}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _kill_everything_of(marker: str) -> None:
    """SIGKILL every process whose command line names `marker` (our temporary folder): kernels, server."""
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if marker in (proc / "cmdline").read_bytes().decode(errors="replace") and int(proc.name) != os.getpid():
                os.kill(int(proc.name), signal.SIGKILL)
        except (OSError, ValueError):
            pass


class Lab:
    """A JupyterLab server on 127.0.0.1 with a token, over copies of 01 and 02 that use a small data set."""

    def __init__(self, folder: Path, data: Path):
        import nbformat

        self.folder, self.token, self.port = folder, secrets.token_hex(16), _free_port()
        work = folder / "notebooks"
        work.mkdir(parents=True)
        for name, cheap in CHEAP.items():
            nb = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
            params = {"data_dir": str(data), "out_dir": str(folder / "out" / name), **cheap}
            source = "\n".join(f"{k} = {v!r}" for k, v in params.items())  # as papermill injects them
            nb.cells.insert(next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])) + 1,
                            nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]}))
            nbformat.write(nb, work / f"{name}.ipynb")
        for name, value in SETTINGS.items():
            (folder / "settings" / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / "settings" / name).write_text(json.dumps(value))
        env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}  # Agg would draw no figures
        # kernel sockets live in the runtime folder: a short one, since a socket path has at most 107 characters
        self.runtime = Path(tempfile.mkdtemp(prefix="snb-lab-"))
        env.update(JUPYTERLAB_SETTINGS_DIR=str(folder / "settings"), JUPYTER_RUNTIME_DIR=str(self.runtime),
                   SETI_NB_CACHE=str(folder / "cache"))
        self.log = open(folder / "server.log", "w")  # noqa: SIM115 - open for the server's lifetime
        self.server = subprocess.Popen(
            [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--ip=127.0.0.1",
             f"--port={self.port}", f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={work}",
             "--KernelManager.transport=ipc"],
            env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        self.base = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"{self.base}/api/status?token={self.token}", timeout=2)
                break
            except OSError:
                assert self.server.poll() is None and time.monotonic() < deadline, (folder / "server.log").read_text()
                time.sleep(0.5)

    def stop(self) -> None:
        try:
            request = urllib.request.Request(f"{self.base}/api/shutdown?token={self.token}", method="POST")
            urllib.request.urlopen(request, timeout=10)  # shuts the kernels down too
            self.server.wait(timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            pass
        finally:
            with contextlib.suppress(OSError):
                os.killpg(self.server.pid, signal.SIGKILL)
            for marker in (self.folder, self.runtime):
                _kill_everything_of(str(marker))
            shutil.rmtree(self.runtime, ignore_errors=True)
            self.log.close()


def _browser(folder: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1500,1100",
                     f"--user-data-dir={folder / 'chromium'}"):
        options.add_argument(argument)
    options.page_load_strategy = "eager"
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(DRIVER, log_output=str(folder / "driver.log")), options=options)


@pytest.fixture
def session(tmp_path, synth_data):
    """(lab, driver, shots folder); everything stopped afterwards, and by a watchdog after HARD_LIMIT_S."""
    committed = {p: p.read_bytes() for p in (ROOT / "notebooks").glob("*.ipynb")}
    lab = driver = None

    def stop():
        if driver is not None:
            with contextlib.suppress(Exception):  # the browser may be gone already
                driver.quit()
        if lab is not None:
            lab.stop()
        _kill_everything_of(str(tmp_path))  # chromium and its driver run with our --user-data-dir / log path

    watchdog = threading.Timer(HARD_LIMIT_S, stop)
    watchdog.start()
    try:
        lab = Lab(tmp_path / "lab", synth_data)
        driver = _browser(tmp_path)
        yield lab, driver, tmp_path
    finally:
        watchdog.cancel()
        stop()
        assert all(p.read_bytes() == b for p, b in committed.items()), "a committed notebook was written"


# ---- driving JupyterLab -------------------------------------------------------------------------------

def _wait(what, timeout: float, message: str):
    """Poll `what` until it is true. An element re-rendered while it was read counts as "not yet"."""
    from selenium.common.exceptions import StaleElementReferenceException

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = what()
        except StaleElementReferenceException:
            value = None
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout:.0f} s: {message}")


PANEL = "const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)'); if (!panel) return null;"
PROMPTS = PANEL + "return [...panel.querySelectorAll('.jp-CodeCell .jp-InputPrompt')].map(e => e.textContent.trim())"
STATUS = PANEL + ("const e = panel.querySelector('.jp-Notebook-ExecutionIndicator');"
                  "return e ? e.getAttribute('data-status') : null")


def _open_and_run_all(lab: Lab, driver, name: str, shots: Path) -> None:
    from selenium.webdriver.common.by import By

    driver.get(f"{lab.base}/lab/tree/{name}.ipynb?reset&token={lab.token}")  # a fresh workspace: this one alone
    _wait(lambda: driver.execute_script(STATUS) == "idle", 120, f"{name}: the kernel never became idle")
    time.sleep(1)
    assert not driver.find_elements(By.CSS_SELECTOR, ".lm-TabBar-tab.jp-mod-current.jp-mod-dirty"), \
        f"{name} shows as modified right after opening"
    _wait(lambda: "Idle" in driver.find_element(By.CSS_SELECTOR, ".jp-StatusBar-Widget").get_attribute("textContent")
          or "Idle" in driver.execute_script("return document.querySelector('#jp-main-statusbar').textContent"),
          120, f"{name}: the status bar never showed an idle kernel")
    for _ in range(3):  # a Run All given while the kernel connection settles can be dropped: then it is given again
        driver.find_element(By.XPATH, "//div[contains(@class, 'lm-MenuBar-itemLabel') and text()='Run']").click()
        driver.find_element(By.CSS_SELECTOR, "li[data-command='runmenu:run-all']").click()
        try:
            _wait(lambda: "[*]:" in (driver.execute_script(PROMPTS) or []), 20, "")
            break
        except AssertionError:
            continue

    def finished():
        prompts = driver.execute_script(PROMPTS) or []
        errors = driver.find_elements(By.CSS_SELECTOR, "[data-mime-type='application/vnd.jupyter.error']")
        assert not errors, f"{name}: a cell failed: {errors[0].get_attribute('textContent')[-1500:]}"
        return prompts and all(p[1:-2].isdigit() for p in prompts) and driver.execute_script(STATUS) == "idle"

    try:
        _wait(finished, 600, f"{name}: Run All did not finish")
    finally:
        driver.save_screenshot(str(shots / f"{name}-after-run-all.png"))


def _widget_cell(driver, source_phrase: str):
    from selenium.webdriver.common.by import By

    for cell in driver.find_elements(By.CSS_SELECTOR, ".jp-CodeCell"):
        if source_phrase in cell.find_element(By.CSS_SELECTOR, ".jp-InputArea").get_attribute("textContent"):
            driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", cell)
            return cell
    raise AssertionError(f"no cell with {source_phrase!r}")


def _image(cell) -> str | None:
    """The last figure's bytes, read in one script: an <img> found first and read later can be gone by then."""
    return cell.parent.execute_script(
        "const found = arguments[0].querySelectorAll('.jp-OutputArea img');"
        "return found.length ? found[found.length - 1].getAttribute('src') : null", cell)


def _redraws(driver, cell, change, what: str, shots: Path) -> None:
    """Change one control; the figure's image bytes must change."""
    before = _image(cell)
    assert before, f"no figure before changing {what}"
    change()
    _wait(lambda: (_image(cell) or before) != before, 30, f"the figure did not change after {what}")
    cell.screenshot(str(shots / f"{what.replace(' ', '-')}.png"))


def _select(cell, index: int, option: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    def chosen():  # the options of a dropdown are re-rendered when its choices change: then choose again
        Select(cell.find_elements(By.CSS_SELECTOR, ".widget-dropdown select")[index]).select_by_visible_text(option)
        return True

    _wait(chosen, 30, f"could not choose {option!r} in dropdown {index}")


def _console_errors(driver) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def test_cadence_browser_and_filter_playground_redraw_in_a_real_browser(session):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    lab, driver, shots = session
    _open_and_run_all(lab, driver, "01_data_exploration", shots)
    cell = _widget_cell(driver, "widgets.cadence_browser(")
    checkbox = cell.find_element(By.CSS_SELECTOR, ".widget-checkbox input")
    ids = cell.find_elements(By.CSS_SELECTOR, ".widget-dropdown select")[2]
    second = ids.find_elements(By.TAG_NAME, "option")[1].text
    _redraws(driver, cell, lambda: _select(cell, 2, second), "browser id", shots)
    _redraws(driver, cell, checkbox.click, "browser truth path", shots)
    _redraws(driver, cell, lambda: _select(cell, 1, "sine"), "browser kind", shots)
    _select(cell, 0, "haystack")  # no haystack has a kind: nothing matches
    _wait(lambda: "no cadence matches" in cell.get_attribute("textContent") and _image(cell) is None, 30,
          "an empty selection must say so and clear the figure")
    cell.screenshot(str(shots / "browser-empty-selection.png"))
    _select(cell, 1, "any")
    _wait(lambda: _image(cell) is not None, 30, "a haystack figure after kind 'any'")
    _redraws(driver, cell, lambda: _select(cell, 0, "needle"), "browser class", shots)
    assert not _console_errors(driver), _console_errors(driver)

    _open_and_run_all(lab, driver, "02_filter_playground", shots)
    cell = _widget_cell(driver, "widgets.filter_playground(")
    labels = [e.get_attribute("textContent") for e in cell.find_elements(By.CSS_SELECTOR, ".widget-label")]
    assert "merge_strength" in labels, labels
    _redraws(driver, cell, lambda: _select(cell, 0, "y"), "playground derivative", shots)
    for i, name in enumerate(("size", "sigma", "merge_strength")):
        handle = cell.find_elements(By.CSS_SELECTOR, ".noUi-handle")[i]
        _redraws(driver, cell, lambda h=handle: h.send_keys(Keys.ARROW_RIGHT), f"playground {name}", shots)
    respaced = cell.find_element(By.CSS_SELECTOR, ".widget-checkbox input")
    _redraws(driver, cell, respaced.click, "playground respaced", shots)
    assert not _console_errors(driver), _console_errors(driver)
