"""Bad input and interrupted work: every fault ends in one clear line and a non-zero exit, or works correctly,
and leaves nothing half-written behind. The family of faults is one table: a new fault is one new row."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from seti_nb.cli import main
from seti_nb.config import Run
from seti_nb.data import UNFINISHED, cadence_path
from seti_nb.runtime import write_new_csv
from seti_nb.train import save_checkpoint


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A genuine (untrained) cadence-cnn checkpoint, as `fit` writes it."""
    from seti_nb.models import build_model

    path = tmp_path_factory.mktemp("ckpt") / "best.pt"
    save_checkpoint(path, {"model": build_model("cadence-cnn", 6).state_dict(), "config": {},
                           "meta": Run().meta(), "epoch": 1, "val_auc": 0.5})
    return path


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def _first(data: Path, side: str = "train") -> Path:
    ids = pd.read_csv(data / ("train_labels.csv" if side == "train" else "sample_submission.csv"), dtype=str).id
    return cadence_path(data, ids[0], side)


def _replace(path: Path, make) -> None:
    path.unlink()
    make(path)


def _edit_csv(path: Path, edit) -> None:
    table = pd.read_csv(path, dtype={"id": str})
    edit(table).to_csv(path, index=False)


def _unfinish(data: Path) -> None:
    """Leave the marker an interrupted `seti-nb synth` leaves."""
    meta = json.loads((data / "synth.json").read_text())
    (data / UNFINISHED).write_text(json.dumps(meta) + "\n")


def _checkpoint_variant(checkpoint: Path, out: Path, change) -> Path:
    payload = torch.load(checkpoint, weights_only=True)
    change(payload)
    torch.save(payload, out)
    return out


# Each row: name, how to spoil a copy of the tiny data set (or None), the command (with {data}, {ckpt}, {tmp}),
# the exit code, and a phrase of the one-line message. Data faults go through `check` (exit 1), the rest through
# the command that meets them (exit 2; argparse's own usage errors also exit 2).
FAULTS = [
    ("validation without a needle", None, "train --data {data} --epochs 1 --out {tmp}/runs", 2,
     "validation split holds only one class"),
    ("synthesis without a needle", None, "synth {tmp}/s10 --n 10 --positive-fraction 0.01", 2, "give 0 needles"),
    ("synthesis too large for the disk", None, "synth {tmp}/huge --n 100000000", 2, "cadences needs about"),
    ("negative test fraction", None, "synth {tmp}/s --n 10 --test-fraction -0.5", 2, "must be between 0 and 1"),
    ("zero epochs", None, "train --data {data} --epochs 0", 2, "--epochs: must be at least 1"),
    ("zero batch size", None, "train --data {data} --batch-size 0", 2, "--batch-size: must be at least 1"),
    ("zero averaging", None, "train --data {data} --time-average 0", 2, "--time-average: must be at least 1"),
    ("unknown timm model", None, "train --data {data} --model timm:nope --out {tmp}/runs", 2,
     "timm has no model 'nope'"),
    ("broken link", lambda d: _replace(_first(d), lambda p: p.symlink_to("/nonexistent")), "check {data}", 1,
     "broken link"),
    ("a folder for a file", lambda d: _replace(_first(d), Path.mkdir), "check {data}", 1, "a folder, not a cadence"),
    ("/dev/null for a file", lambda d: _replace(_first(d), lambda p: p.symlink_to("/dev/null")), "check {data}", 1,
     "not a regular file"),
    ("trailing bytes", lambda d: _first(d).open("ab").write(b"junk"), "check {data}", 1,
     "4 unexpected bytes after the array"),
    ("truncated file", lambda d: os.truncate(_first(d), 1000), "check {data}", 1, "truncated: 1000 bytes"),
    ("NaN values", lambda d: np.save(_first(d), np.full((6, 273, 256), np.nan, np.float16)), "check {data}", 1,
     "NaN/inf values"),
    ("blank submission id", lambda d: _edit_csv(d / "sample_submission.csv", lambda t: t.assign(id=[""] * len(t))),
     "check {data}", 1, "blank or malformed ids (expected 15 hex characters), first: blank on row 2"),
    ("duplicate submission id", lambda d: _edit_csv(d / "sample_submission.csv", lambda t: t.assign(id=t.id[0])),
     "check {data}", 1, "duplicate ids"),
    ("path as a submission id", lambda d: _edit_csv(d / "sample_submission.csv",
                                                     lambda t: t.assign(id=["/tmp/x/evil"] * len(t))),
     "predict --checkpoint {ckpt} --data {data} --out {tmp}/p.csv", 2, "first: '/tmp/x/evil' on row 2"),
    ("submission without an id column", lambda d: _edit_csv(d / "sample_submission.csv",
                                                            lambda t: t.drop(columns="id")),
     "predict --checkpoint {ckpt} --data {data} --out {tmp}/p.csv", 2, "sample_submission.csv: no 'id' column"),
    ("truth that contradicts the labels", lambda d: _edit_csv(d / "truth.csv", lambda t: t.assign(target=1 - t.target)),
     "check {data}", 1, "truth.csv: 40 targets differ from train_labels.csv"),
    ("a label fault still checks the files",
     lambda d: (_edit_csv(d / "train_labels.csv", lambda t: t.assign(target=7)), os.truncate(_first(d), 1000)),
     "check {data}", 1, "truncated: 1000 bytes"),
    ("a bad test file found before training", lambda d: os.truncate(_first(d), 10),
     "train --data {data} --out {tmp}/runs", 2, "unusable cadence files"),
    ("a missing file found before training", lambda d: _first(d).unlink(),
     "train --data {data} --out {tmp}/runs", 2, "unusable cadence files"),
    ("a bad file found before streaming at full resolution", lambda d: os.truncate(_first(d), 10),
     "train --data {data} --time-average 1 --channel-average 1 --out {tmp}/runs", 2, "unusable cadence files"),
    ("existing --out", lambda d: (d / "mine.csv").write_text("keep me"),
     "predict --checkpoint {ckpt} --data {data} --out {data}/mine.csv", 2, "mine.csv: exists"),
    ("--out in a missing folder", None, "predict --checkpoint {ckpt} --data {data} --out {tmp}/no/p.csv", 2,
     "output folder not found"),
    ("--out under a file", None, "dedoppler --data {data} --out {ckpt}/p.csv", 2, "output folder not found"),
    ("foreign checkpoint", None, "predict --checkpoint {tmp}/foreign.pt --data {data} --out {tmp}/p.csv", 2,
     "foreign.pt: not a seti-nb checkpoint"),
    ("pickled code in a checkpoint", None, "predict --checkpoint {tmp}/evil.pt --data {data} --out {tmp}/p.csv", 2,
     "evil.pt: not a seti-nb checkpoint"),
    ("weights of another model", None,
     "predict --checkpoint {tmp}/mismatch.pt --data {data} --out {tmp}/p.csv", 2, "weights do not fit cadence-cnn"),
    ("checkpoint without our meta", None,
     "predict --checkpoint {tmp}/nometa.pt --data {data} --out {tmp}/p.csv", 2, "its meta lacks"),
    # the reliability round (issue 23): numbers at the door, edited checkpoints, unfinished data, blank scores
    ("an unfinished synthesis scored by the search", _unfinish, "dedoppler --data {data} --out {tmp}/p.csv", 2,
     "an unfinished synthesis (interrupted): run `seti-nb synth"),
    ("an unfinished synthesis scored by a checkpoint", _unfinish,
     "predict --checkpoint {ckpt} --data {data} --out {tmp}/p.csv", 2, "an unfinished synthesis"),
    ("threshold nan", None, "dedoppler --data {data} --out {tmp}/p.csv --threshold nan", 2,
     "threshold must be a finite number"),
    ("threshold 0", None, "dedoppler --data {data} --out {tmp}/p.csv --threshold 0", 2,
     "threshold must be a finite number in (0, 10000]"),
    ("drift rate inf", None, "dedoppler --data {data} --out {tmp}/p.csv --max-drift inf", 2,
     "max_drift_hz_s must be a finite number in (0, 50]"),
    ("drift rate 1e6", None, "dedoppler --data {data} --out {tmp}/p.csv --max-drift 1e6", 2,
     "max_drift_hz_s must be a finite number in (0, 50]"),
    ("negative drift rate", None, "dedoppler --data {data} --out {tmp}/p.csv --max-drift -1", 2,
     "max_drift_hz_s must be a finite number"),
    ("clip nan", None, "train --data {data} --clip nan --out {tmp}/runs", 2, "clip must be a finite number"),
    ("a narrowband window narrower than a needle", None, "train --data {data} --narrowband 9 --out {tmp}/runs", 2,
     "narrowband must be 0 (off) or at least 25 channels"),
    ("learning rate inf", None, "train --data {data} --lr inf --out {tmp}/runs", 2, "lr must be a finite number"),
    ("averaging wider than the scan", None, "train --data {data} --time-average 300 --out {tmp}/runs", 2,
     "time_average must be at most 273"),
    ("a score cache that cannot be written", None, "dedoppler --data {data} --out {tmp}/p.csv", 2,
     "cannot write there"),  # SETI_NB_CACHE under a file: see the test
    ("NaN weights give no blank submission", None,
     "predict --checkpoint {tmp}/nan.pt --data {data} --out {tmp}/p.csv", 2, "NaN or infinite scores"),
    ("an extra preprocessing key in the meta", None,
     "predict --checkpoint {tmp}/extra.pt --data {data} --out {tmp}/p.csv", 2, "preprocessing is not valid"),
    ("preprocessing given as a string", None,
     "predict --checkpoint {tmp}/prepstr.pt --data {data} --out {tmp}/p.csv", 2, "preprocessing is not valid"),
    ("a model that is not a name", None,
     "predict --checkpoint {tmp}/modelnum.pt --data {data} --out {tmp}/p.csv", 2, "names model 7"),
    ("200 million input channels", None,
     "predict --checkpoint {tmp}/channels.pt --data {data} --out {tmp}/p.csv", 2, "gives 200000000 input channels"),
]


@pytest.mark.parametrize("name, spoil, command, code, phrase", FAULTS, ids=[f[0] for f in FAULTS])
def test_fault_gives_one_clear_line(tiny, checkpoint, tmp_path, capsys, monkeypatch, name, spoil, command, code,
                                   phrase):
    data = tiny
    if spoil is not None:
        data = Path(shutil.copytree(tiny, tmp_path / "data", symlinks=True))
        spoil(data)
    torch.save({"weights": torch.zeros(2)}, tmp_path / "foreign.pt")
    torch.save({"model": {}, "meta": Evil()}, tmp_path / "evil.pt")
    _checkpoint_variant(checkpoint, tmp_path / "mismatch.pt", lambda c: c["model"].popitem())
    _checkpoint_variant(checkpoint, tmp_path / "nometa.pt", lambda c: c.update(meta={"model": "cadence-cnn"}))
    _checkpoint_variant(checkpoint, tmp_path / "nan.pt", lambda c: [t.fill_(float("nan")) for t in c["model"].values()
                                                                    if t.is_floating_point()])
    _checkpoint_variant(checkpoint, tmp_path / "extra.pt", lambda c: c["meta"]["preprocess"].update(colour="red"))
    _checkpoint_variant(checkpoint, tmp_path / "prepstr.pt", lambda c: c["meta"].update(preprocess="bp-off"))
    _checkpoint_variant(checkpoint, tmp_path / "modelnum.pt", lambda c: c["meta"].update(model=7))
    _checkpoint_variant(checkpoint, tmp_path / "channels.pt", lambda c: c["meta"].update(in_channels=200_000_000))
    if name == "a score cache that cannot be written":
        monkeypatch.setenv("SETI_NB_CACHE", str(checkpoint / "cache"))  # under a file: no folder can be made there
    before = {p: p.read_bytes() for p in [*tmp_path.rglob("*.csv"), *tmp_path.rglob("*.pt")] if p.is_file()}
    argv = command.format(data=data, ckpt=checkpoint, tmp=tmp_path).split()
    try:
        result = main(argv)
    except SystemExit as exit_:  # argparse
        result = exit_.code
    captured = capsys.readouterr()
    message = captured.err + captured.out
    assert result == code and phrase in message, message[-1500:]
    assert "Traceback" not in message and "weights_only" not in message and "pwned" not in message
    assert all(p.read_bytes() == b for p, b in before.items()), "a file that was there is unchanged"
    runs = tmp_path / "runs"
    assert not runs.exists() or not any(runs.rglob("*")), "a run that failed leaves no empty run folder"
    assert not (tmp_path / "p.csv").exists() and not list(tmp_path.glob("s10")) + list(tmp_path.glob("huge"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
def test_cuda_without_a_gpu_is_named_first(tiny, capsys):
    assert main(["train", "--data", str(tiny), "--device", "cuda"]) == 2
    assert "torch sees no GPU" in capsys.readouterr().err


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_output_folder_is_found_before_scoring(tiny, checkpoint, tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    assert main(["predict", "--checkpoint", str(checkpoint), "--data", str(tiny), "--out", str(locked / "p.csv")]) == 2
    assert "cannot write there" in capsys.readouterr().err


def test_ctrl_c_is_one_line(monkeypatch, capsys):
    import seti_nb.data

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(seti_nb.data, "check_dataset", interrupted)
    assert main(["check", "anywhere"]) == 130
    assert capsys.readouterr().err.strip() == "seti-nb check: interrupted"


def test_an_output_that_appears_meanwhile_is_not_replaced(tmp_path):
    target = tmp_path / "preds.csv"

    class Racing(pd.DataFrame):  # another predict finishes while this one writes
        def to_csv(self, *args, **kwargs):
            target.write_text("the other run's file")
            return super().to_csv(*args, **kwargs)

    with pytest.raises(FileExistsError, match="created by someone else meanwhile"):
        write_new_csv(Racing({"id": ["a"], "target": [0.5]}), target)
    assert target.read_text() == "the other run's file" and [p.name for p in tmp_path.iterdir()] == ["preds.csv"]


def test_a_notebook_named_twice_runs_once():
    from seti_nb.runner import find_notebooks

    assert [p.stem[:2] for p in find_notebooks(["01", "01", "02", "01"])] == ["01", "02"]


def _ctrl_c_as_in_a_terminal() -> None:
    """A suite started in the background (as CI may start it) ignores SIGINT, and a child inherits that: Python
    then never raises KeyboardInterrupt. The command under test gets Ctrl-C as a person at a terminal would."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _synth_process(out: Path) -> subprocess.Popen:
    """`seti-nb synth` of 300 cadences with two workers, once its first chunk is written."""
    process = subprocess.Popen([sys.executable, "-m", "seti_nb.cli", "synth", str(out), "--n", "300", "--seed", "2",
                                "--workers", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=_ctrl_c_as_in_a_terminal)
    deadline = time.monotonic() + 120
    while not list((out / ".synth-parts").glob("*.csv")):
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.1)
    return process


def test_interrupted_synthesis_says_so_and_the_same_command_finishes_it(tmp_path, capsys):
    out = tmp_path / "s"
    process = _synth_process(out)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130 and "Traceback" not in err
    assert err.strip().splitlines()[-1] == "seti-nb synth: interrupted; the same command finishes it"
    assert main(["check", str(out)]) == 1
    assert f"run `seti-nb synth {out} --n 300 --seed 2" in capsys.readouterr().out
    assert main(["synth", str(out), "--n", "700", "--seed", "2"]) == 2
    assert "started with other settings" in capsys.readouterr().err
    assert main(["synth", str(out), "--n", "300", "--seed", "2", "--workers", "1"]) == 0
    assert not (out / UNFINISHED).exists() and main(["check", str(out)]) == 0


def test_killed_synthesis_leaves_no_worker_behind(tmp_path):
    process = _synth_process(tmp_path / "s")
    workers = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
    assert workers
    process.kill()
    process.communicate()
    deadline = time.monotonic() + 10
    alive = workers
    while alive and time.monotonic() < deadline:
        alive = [w for w in workers if Path(f"/proc/{w}").exists() and
                 "zombie" not in Path(f"/proc/{w}/status").read_text()]
        time.sleep(0.2)
    assert not alive, "synthesis workers outlived a kill -9 of their parent"


def test_a_script_without_a_main_guard_gets_an_error_not_a_hang(tiny, tmp_path):
    """A spawned worker runs the calling script's top level again; without `if __name__ == "__main__":` every
    worker dies as it starts. multiprocessing's Pool started new ones for ever (a script that never ended): the
    caller gets one clear error instead."""
    script = tmp_path / "search.py"
    script.write_text("from seti_nb.data import read_labels\nfrom seti_nb.dedoppler import score_cadences\n"
                      f"score_cadences({str(tiny)!r}, read_labels({str(tiny)!r}).id.tolist(), cache=False, "
                      "progress=False, processes=2)\n")
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        'RuntimeError: worker processes died as they started; from a script, call the workbook under `if __name__ == '
        '"__main__":` (a spawned worker runs the script\'s top level again)'), result.stderr[-2000:]


# ---- caches that never serve stale data, and leave nothing behind ------------------------------------------------

def _spoil_keeping_the_time(path: Path) -> None:
    """Rewrite a cadence file with NaN and set its modification time back: what a size + mtime key cannot see."""
    stat = path.stat()
    np.save(path, np.full((6, 273, 256), np.nan, np.float16))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_a_file_rewritten_with_its_time_set_back_is_never_served_from_the_old_cache(tiny, tmp_path):
    from seti_nb.cache import cached_frames
    from seti_nb.data import DataError
    from seti_nb.dedoppler import score_cadences
    from seti_nb.preprocess import Preprocess

    data = Path(shutil.copytree(tiny, tmp_path / "data"))
    prep = Preprocess("off", 16, 8, 20)
    cached_frames(data, "train", prep, progress=False)
    ids = pd.read_csv(data / "train_labels.csv", dtype=str).id.tolist()
    score_cadences(data, ids[:3], progress=False)
    _spoil_keeping_the_time(_first(data))
    with pytest.raises(DataError, match="NaN/inf values"):
        cached_frames(data, "train", prep, progress=False)  # rebuilt, so the bad file is found
    with pytest.raises(DataError, match="NaN/inf values"):
        score_cadences(data, ids[:3], progress=False)  # searched again, not read back


def test_an_interrupted_cache_build_leaves_nothing_and_a_killed_one_is_swept(tiny, tmp_path, monkeypatch):
    import seti_nb.cache as cache
    from seti_nb.preprocess import Preprocess

    monkeypatch.setenv("SETI_NB_CACHE", str(tmp_path / "cache"))
    left = tmp_path / "cache" / "x-abc-train-key.partial-999999999"  # a build killed with -9: its pid is gone
    left.mkdir(parents=True)

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cache, "_fill", interrupted)
    with pytest.raises(KeyboardInterrupt):
        cache.cached_frames(tiny, "train", Preprocess("off", 16, 8, 20), progress=False)
    assert list((tmp_path / "cache").iterdir()) == [], "the interrupted build and the killed one's leftovers are gone"


def test_a_cache_in_use_is_never_deleted_by_a_newer_one_and_retired_once_unused(tiny, tmp_path, monkeypatch):
    from seti_nb.cache import RETIRE_AFTER_S, cached_frames
    from seti_nb.dataset import CadenceDataset
    from seti_nb.preprocess import Preprocess

    monkeypatch.setenv("SETI_NB_CACHE", str(tmp_path / "cache"))
    data = Path(shutil.copytree(tiny, tmp_path / "data"))
    prep = Preprocess("off", 16, 8, 20)
    labels = pd.read_csv(data / "train_labels.csv", dtype={"id": str})
    reader = CadenceDataset(data, labels, "frames", prep, progress=False)  # run A, reading
    before = reader[3][0].clone()
    os.utime(_first(data))  # the source changes; run B builds its own cache
    first, _ = cached_frames(data, "train", prep, progress=False)
    assert len(list((tmp_path / "cache").iterdir())) == 2 and reader.cache_file.is_file()
    assert torch.equal(reader[3][0], before), "run A reads on"
    old = reader.cache_file.parent / "last_used"
    os.utime(old, (time.time() - RETIRE_AFTER_S - 60,) * 2)  # A finished a day ago
    cached_frames(data, "train", prep, progress=False)
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [first.parent.name]


def test_a_damaged_cache_is_named_when_opened(tiny, tmp_path, monkeypatch):
    from seti_nb.cache import cached_frames
    from seti_nb.data import DataError
    from seti_nb.preprocess import Preprocess

    monkeypatch.setenv("SETI_NB_CACHE", str(tmp_path / "cache"))
    path, _ = cached_frames(tiny, "train", Preprocess("off", 16, 8, 20), progress=False)
    np.save(path, np.zeros((3, 6, 17, 32), np.float16))
    with pytest.raises(DataError, match=r"a damaged training cache \(shape \(3, 6, 17, 32\)"):
        cached_frames(tiny, "train", Preprocess("off", 16, 8, 20), progress=False)


def test_a_full_disk_is_named_before_the_cache_or_a_checkpoint_is_written(tiny, checkpoint, tmp_path, monkeypatch):
    from collections import namedtuple

    import seti_nb.runtime
    from seti_nb.cache import cached_frames
    from seti_nb.preprocess import Preprocess

    monkeypatch.setenv("SETI_NB_CACHE", str(tmp_path / "cache"))
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(seti_nb.runtime.shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 10**5, 10**5))
    with pytest.raises(OSError, match=r"the training cache needs about \d+ MB, only 0 MB free"):
        cached_frames(tiny, "train", Preprocess("off", 16, 8, 20), progress=False)
    with pytest.raises(OSError, match="the checkpoint needs about"):
        save_checkpoint(tmp_path / "best.pt", torch.load(checkpoint, weights_only=True))
    assert not list(tmp_path.rglob("*.partial-*")) and not list(tmp_path.glob("*.tmp"))


def test_a_checkpoint_write_that_fails_midway_leaves_no_temporary_file(checkpoint, tmp_path, monkeypatch):
    def full_disk(payload, path):
        Path(path).write_bytes(b"half")
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(OSError, match=r"best.pt: could not write the checkpoint .*is the disk full"):
        save_checkpoint(tmp_path / "best.pt", {"model": {}, "meta": {}})
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small file system needs root")
def test_a_cache_on_a_nearly_full_file_system_fails_with_a_message_not_a_bus_error(tiny, tmp_path):
    small = tmp_path / "small"
    small.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(small)], capture_output=True).returncode:
        pytest.skip("this machine does not let a test mount a tmpfs")
    try:
        result = subprocess.run([sys.executable, "-m", "seti_nb.cli", "train", "--data", str(tiny), "--out",
                                 str(tmp_path / "runs")], capture_output=True, text=True, timeout=300,
                                env={**os.environ, "SETI_NB_CACHE": str(small)})
        assert result.returncode == 2 and "training cache needs about" in result.stderr, result.stderr[-1500:]
        assert list(small.iterdir()) == []
    finally:
        subprocess.run(["umount", str(small)])


def test_outputs_honour_the_umask(tiny, checkpoint, tmp_path):
    old = os.umask(0o022)
    try:
        assert main(["predict", "--checkpoint", str(checkpoint), "--data", str(tiny), "--out",
                     str(tmp_path / "p.csv")]) == 0
    finally:
        os.umask(old)
    assert (tmp_path / "p.csv").stat().st_mode & 0o777 == 0o644


def test_ctrl_c_inside_a_string_exec_still_exits_130(tmp_path):
    """CPython under `python -m` marks a KeyboardInterrupt raised in a string exec (as dataclasses and typing run at
    import) as unhandled even when caught, and dies by SIGINT at exit; the command line clears the mark."""
    (tmp_path / "interrupted_cli.py").write_text(
        "import sys, types\nfrom seti_nb import cli\n"
        "command = types.SimpleNamespace(func=lambda args: exec('raise KeyboardInterrupt', {}))\n"
        "cli.build_parser = lambda name: types.SimpleNamespace(parse_args=lambda argv: command)\n"
        "sys.exit(cli.main(['train']))\n")
    process = subprocess.run([sys.executable, "-m", "interrupted_cli"], cwd=tmp_path, capture_output=True, text=True)
    assert (process.returncode, process.stderr) == (130, "seti-nb train: interrupted\n")


def test_ctrl_c_while_a_command_starts_is_one_line(tiny, tmp_path):
    process = subprocess.Popen([sys.executable, "-m", "seti_nb.cli", "train", "--data", str(tiny), "--out",
                                str(tmp_path / "runs")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=_ctrl_c_as_in_a_terminal)
    time.sleep(1.0)  # importing torch
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130 and err.strip().splitlines()[-1] == "seti-nb train: interrupted", err[-1500:]
    assert "Traceback" not in err
