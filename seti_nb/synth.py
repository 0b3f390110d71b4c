"""Synthetic cadences in the exact Kaggle layout, made with setigen, with a truth table per cadence."""

from __future__ import annotations

import json
import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from .cadence import (
    DF_HZ,
    DT_S,
    FRAME_SHAPE,
    N_FRAMES,
    OFF_FRAMES,
    ON_FRAMES,
    cadence_rows,
    frame_start_s,
    signal_channels,
)
from .config import SynthConfig
from .data import UNFINISHED, unfinished_synthesis
from .runtime import parallel_map, progress_bar

NOISE_MEAN = 10.0
VERSION = 2  # of the generator: bump it when a change alters the files a seed gives
KINDS = ("line", "curve", "sine")
# Spectral shapes of a narrowband signal across channels (setigen's f profiles): Gaussian; sinc squared, the
# response of Breakthrough Listen's polyphase filterbank to a pure tone; box; Lorentzian (broad wings).
PROFILES = {"gaussian": 0.5, "sinc2": 0.25, "box": 0.125, "lorentzian": 0.125}
BACKGROUNDS = ("ripple", "slope", "gain", "burst", "rfi", "drift_rfi", "off_signal")
# Each background is drawn for every cadence with the same probability whatever its class, so
# backgrounds alone never tell the classes apart.  `off_signal` is a needle-shaped signal continuous
# across the OFF scans: with it, statistics pooled over the six frames cannot see a needle.
BACKGROUND_P = {"ripple": 0.9, "slope": 0.5, "gain": 0.8, "burst": 0.3, "rfi": 0.55, "drift_rfi": 0.35,
                "off_signal": 0.55}
TRUTH_COLUMNS = [
    "id", "side", "target", "kind", "profile", "snr", "width_hz", "drift_hz_s", "channel_ref", "row_ref",
    "drift_px", "curvature_px", "sine_amp_px", "sine_period_rows", "scintillating", "on_frames",
    "backgrounds",
]


def import_setigen():
    """setigen, imported without blimpy's warning that pkg_resources is deprecated (not ours to fix). Deferred on
    purpose: setigen brings blimpy and astropy (seconds of start-up), needed only where frames are drawn."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
        import setigen
    return setigen


def _draw_signal(rng: np.random.Generator, frames: tuple[int, ...], snr_range) -> dict:
    """Parameters of one needle-like signal, visible at the start of the first of `frames`."""
    kind = KINDS[rng.choice(3, p=[0.5, 0.25, 0.25])]
    lo, hi = np.log(snr_range[0]), np.log(snr_range[1])
    # Most drifts are small (the signal stays in the band through the cadence), a few are steep.
    drift_px = float(rng.choice([-1, 1]) * np.exp(rng.uniform(np.log(0.003), np.log(0.4))))
    params = {
        "kind": kind,
        "profile": str(rng.choice(list(PROFILES), p=list(PROFILES.values()))),
        "snr": float(np.exp(rng.uniform(lo, hi))),
        "width_hz": float(DF_HZ * np.exp(rng.uniform(np.log(1.0), np.log(12.0)))),
        "channel_ref": float(rng.uniform(12, FRAME_SHAPE[1] - 12)),
        "row_ref": float(cadence_rows(frames[0])[0] + rng.uniform(0, FRAME_SHAPE[0])),
        "drift_px": drift_px,
        "curvature_px": 0.0,
        "sine_amp_px": 0.0,
        "sine_period_rows": 1.0,
        "scintillating": bool(rng.random() < 0.2),
    }
    if kind == "curve":  # bends by 10-60 channels over one scan
        params["curvature_px"] = float(rng.choice([-1, 1]) * rng.uniform(10, 60) * 2 / FRAME_SHAPE[0] ** 2)
    elif kind == "sine":  # S-shaped: a slow wobble on top of the drift
        params["sine_amp_px"] = float(rng.uniform(4, 30))
        params["sine_period_rows"] = float(rng.uniform(100, 600))
    params["drift_hz_s"] = drift_px * DF_HZ / DT_S
    return params


class _Maker:
    """Reusable setigen frames for one worker process: a fresh Frame per scan costs a sigma-clip each."""

    def __init__(self):
        self.sg = sg = import_setigen()
        self.frames = [
            sg.Frame(fchans=FRAME_SHAPE[1], tchans=FRAME_SHAPE[0], df=DF_HZ, dt=DT_S, fch1=6e9,
                     ascending=True, t_start=frame_start_s(i), seed=0)
            for i in range(N_FRAMES)
        ]
        self.f0 = self.frames[0].get_frequency(0)
        self.fchans = np.arange(FRAME_SHAPE[1])

    def _add(self, frame_ids, path_px, level, width_hz, t_profile=None, local_time=False, profile="gaussian"):
        """Add a signal whose centre channel is `path_px(rows)` to the frames `frame_ids`.

        Cadence time (`local_time=False`) makes one signal continuous across the frames, as setigen's
        Cadence.add_signal does; local time restarts the path in every frame (interference that recurs
        per scan). Each frame computes the signal only over the channels its path crosses, plus a
        margin of six widths: setigen's `bounding_f_range`, which makes synthesis three times faster.
        """
        sg = self.sg
        t_prof = t_profile or sg.constant_t_profile(level=level)
        f_prof, bp_prof = getattr(sg, f"{profile}_f_profile")(width=width_hz), sg.constant_bp_profile(level=1)
        margin = 6 * width_hz / DF_HZ + 2
        for i in frame_ids:
            start_row = 0.0 if local_time else frame_start_s(i) / DT_S
            channels = path_px(start_row + np.arange(FRAME_SHAPE[0]))
            lo, hi = channels.min() - margin, channels.max() + margin
            if hi < 0 or lo > FRAME_SHAPE[1]:
                continue  # the path misses this frame's band

            def path(t, start_row=start_row):  # setigen passes the frame's own time in seconds
                return self.f0 + DF_HZ * path_px(start_row + t / DT_S)

            self.frames[i].add_signal(path, t_prof, f_prof, bp_prof,
                                      bounding_f_range=(self.f0 + DF_HZ * max(lo, 0),
                                                        self.f0 + DF_HZ * min(hi, FRAME_SHAPE[1])))

    def _signal(self, params, frame_ids, rng):
        level = self.frames[0].get_intensity(snr=params["snr"])
        t_profile = None
        if params["scintillating"]:  # intensity that fades in and out during a scan
            t_profile = self.sg.sine_t_profile(period=rng.uniform(60, 300), phase=rng.uniform(0, 300),
                                               amplitude=0.8 * level, level=level)
        self._add(frame_ids, lambda r: signal_channels(params, r), level, params["width_hz"], t_profile,
                  profile=params["profile"])

    def make(self, seed: int, index: int, target: int, snr_range) -> tuple[np.ndarray, dict]:
        rng = np.random.default_rng([seed, index])
        for fr in self.frames:
            fr.rng = rng
            fr.zero_data()
            fr.add_noise(x_mean=NOISE_MEAN, noise_type="chi2")
        noise_std = self.frames[0].noise_std
        present = [b for b in BACKGROUNDS if rng.random() < BACKGROUND_P[b]]
        truth = {"target": target, "backgrounds": ",".join(present)}

        if target:
            n_on = rng.choice([3, 2, 1], p=[0.65, 0.2, 0.15])
            on = tuple(sorted(rng.choice(ON_FRAMES, size=n_on, replace=False).tolist()))
            params = _draw_signal(rng, on, snr_range)
            # Frames where the path enters the band: steep drifts leave it, as real ones do.
            on = tuple(i for i in on if np.any(np.abs(signal_channels(params, cadence_rows(i)) - 127.5) < 128))
            self._signal(params, on, rng)
            truth.update(params, on_frames="".join(map(str, on)))
        if "off_signal" in present:
            n_off = rng.choice([3, 2, 1], p=[0.65, 0.2, 0.15])
            off = tuple(sorted(rng.choice(OFF_FRAMES, size=n_off, replace=False).tolist()))
            self._signal(_draw_signal(rng, off, snr_range), off, rng)
        if "rfi" in present:  # strong stationary narrowband lines in all six scans
            for _ in range(rng.integers(1, 4)):
                c, d = rng.uniform(0, 256), rng.normal(0, 0.002)
                self._add(range(N_FRAMES), lambda r, c=c, d=d: c + d * r,
                          self.frames[0].get_intensity(snr=np.exp(rng.uniform(np.log(30), np.log(800)))),
                          DF_HZ * rng.uniform(0.7, 4))
        if "drift_rfi" in present:  # drifting interference that restarts in every scan, ON and OFF alike
            for _ in range(rng.integers(1, 3)):
                c, d = rng.uniform(0, 256), rng.choice([-1, 1]) * rng.uniform(0.05, 0.8)
                self._add(range(N_FRAMES), lambda r, c=c, d=d: c + d * r,
                          self.frames[0].get_intensity(snr=np.exp(rng.uniform(np.log(10), np.log(200)))),
                          DF_HZ * rng.uniform(1, 6), local_time=True)

        data = np.stack([fr.data for fr in self.frames])  # float64 (6, 273, 256)
        if "ripple" in present:  # bandpass ripple: vertical stripes shared by all six scans
            k = np.arange(1, 9)
            phases, amps = rng.uniform(0, 2 * np.pi, 8), rng.normal(0, 1, 8) / k
            ripple = (amps[:, None] * np.sin(2 * np.pi * k[:, None] * self.fchans / 256 + phases[:, None])).sum(0)
            ripple += rng.normal(0, 0.5, 256)  # channel-to-channel gain differences
            ripple *= rng.uniform(0.5, 3.0) * noise_std / ripple.std()
            data += ripple * rng.uniform(0.8, 1.2, (N_FRAMES, 1, 1))
        if "slope" in present:  # a tilt of the band, changing a little from scan to scan
            data += (rng.uniform(-2, 2) + rng.normal(0, 0.3, (N_FRAMES, 1, 1))) * noise_std * (self.fchans / 255 - 0.5)
        if "gain" in present:  # receiver gain wandering in time: slow horizontal banding
            walk = np.cumsum(rng.normal(0, 1, (N_FRAMES, FRAME_SHAPE[0])), axis=1)
            walk -= walk.mean(axis=1, keepdims=True)
            walk *= rng.uniform(0.15, 1.2) * noise_std / (walk.std() + 1e-12)
            data += walk[:, :, None] * (1 + rng.uniform(-0.5, 0.5) * (self.fchans / 255 - 0.5))
        if "burst" in present:  # broadband bursts: bright rows in any scan
            for _ in range(rng.integers(1, 5)):
                f, r = rng.integers(N_FRAMES), rng.integers(FRAME_SHAPE[0])
                span = slice(*sorted(rng.integers(0, 257, 2))) if rng.random() < 0.3 else slice(None)
                data[f, r:r + rng.integers(1, 4), span] += rng.uniform(1, 6) * noise_std
        # Standardise every scan in float64, then cast: float16 sums overflow at 65504.
        data -= data.mean(axis=(1, 2), keepdims=True)
        data /= np.sqrt(np.einsum("ijk,ijk->i", data, data) / data[0].size)[:, None, None]
        return data.astype(np.float16), truth


_MAKER: _Maker | None = None


def _make_chunk(args) -> int:
    """Write one chunk's cadences, then its truth rows: a chunk whose truth part exists is finished."""
    out, seed, snr_range, number, items = args
    global _MAKER
    if _MAKER is None:
        _MAKER = _Maker()
    truths = []
    for index, cadence_id, side, target in items:
        data, truth = _MAKER.make(seed, index, target, snr_range)
        np.save(Path(out) / side / cadence_id[0] / f"{cadence_id}.npy", data)
        truths.append({"id": cadence_id, "side": side, **truth})
    part = Path(out) / PARTS / f"{number:06d}.csv"
    tmp = part.with_suffix(".tmp")
    pd.DataFrame(truths).reindex(columns=TRUTH_COLUMNS).to_csv(tmp, index=False, float_format="%.6g")
    os.replace(tmp, part)
    return len(items)


def _plan(config: SynthConfig) -> pd.DataFrame:
    """Ids, sides and labels of every cadence: a function of the seed alone."""
    rng = np.random.default_rng([config.seed, 2**31])
    n_test = round(config.n * config.test_fraction)
    total = config.n + n_test
    ids: list[str] = []
    seen: set[str] = set()
    while len(ids) < total:
        cadence_id = f"{int(rng.integers(0, 16**15)):015x}"
        if cadence_id not in seen:
            seen.add(cadence_id)
            ids.append(cadence_id)
    targets = np.zeros(total, dtype=int)
    for lo, hi in ((0, config.n), (config.n, total)):  # the same needle fraction on both sides
        n_pos = round((hi - lo) * config.positive_fraction)
        targets[lo + rng.choice(hi - lo, size=n_pos, replace=False)] = 1
    return pd.DataFrame({"id": ids, "side": ["train"] * config.n + ["test"] * n_test, "target": targets})


PARTS = ".synth-parts"  # the truth rows of each finished chunk, until the end
CADENCE_BYTES = 128 + N_FRAMES * FRAME_SHAPE[0] * FRAME_SHAPE[1] * 2  # one float16 .npy file


def _meta(config: SynthConfig) -> dict:
    return {"generator": "seti_nb.synth", "version": VERSION, "n": config.n, "seed": config.seed,
            "positive_fraction": config.positive_fraction, "test_fraction": config.test_fraction,
            "snr_range": list(config.snr_range)}


def _check_disk(out: Path, cadences: int) -> None:
    free = shutil.disk_usage(next(p for p in (out, *out.parents) if p.exists())).free
    if cadences * CADENCE_BYTES > free:
        raise OSError(f"{out}: {cadences} cadences need about {cadences * CADENCE_BYTES / 1e9:.1f} GB, only "
                      f"{free / 1e9:.1f} GB free")


def _validate(config: SynthConfig) -> pd.DataFrame:
    """The plan, once it is known to hold both classes (the settings themselves are checked by SynthConfig)."""
    plan = _plan(config)
    needles = int(plan.target[plan.side == "train"].sum())
    if needles == 0 or needles == config.n:
        raise ValueError(f"{config.n} training cadences at a positive fraction of {config.positive_fraction} give "
                         f"{needles} needles: both classes are needed; raise n or change the fraction")
    return plan


def synthesize(out: str | os.PathLike, config: SynthConfig = SynthConfig(), workers: int | None = None,
               progress: bool = True) -> Path:
    """Write a synthetic data set in the Kaggle layout to the new or empty folder `out`.

    Files: train_labels.csv, train/<id[0]>/<id>.npy, test/<id[0]>/<id>.npy, sample_submission.csv,
    truth.csv (what every cadence holds, both sides) and synth.json (the configuration), written last.
    The same seed gives bit-identical files whatever the number of workers. An interrupted synthesis leaves
    a marker; the same call on the same folder finishes it (chunks already written are kept).
    """
    out = Path(out)
    meta = _meta(config)
    marker = out / UNFINISHED
    if marker.is_file():
        if json.loads(marker.read_text()) != meta:
            raise FileExistsError(f"{out}: {unfinished_synthesis(out)} (it was started with other settings)")
    elif out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out}: folder exists and is not empty; synthesize into a new folder")
    else:
        _check_disk(out, config.n + round(config.n * config.test_fraction))
    plan = _validate(config)
    chunk = 64
    items = list(zip(range(len(plan)), plan.id, plan.side, plan.target))
    jobs = [(str(out), config.seed, config.snr_range, i // chunk, items[i:i + chunk])
            for i in range(0, len(items), chunk)]
    done = {int(p.stem) for p in (out / PARTS).glob("*.csv")}
    todo = [job for job in jobs if job[3] not in done]
    remaining = sum(len(job[4]) for job in todo)
    _check_disk(out, remaining)
    (out / PARTS).mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps(meta) + "\n")
    for side in ("train", "test"):
        for h in "0123456789abcdef":
            (out / side / h).mkdir(parents=True, exist_ok=True)
    bar = progress_bar(total=len(items), initial=len(items) - remaining,
                       desc="synthesizing cadences", unit="cadence", disable=not progress)
    with bar:  # Ctrl-C or a failure stops every worker at once; the finished chunks stay
        parallel_map(_make_chunk, todo, workers, ordered=False, each=bar.update)
    truth = pd.concat([pd.read_csv(p, dtype={"id": str, "on_frames": str, "backgrounds": str})
                       for p in sorted((out / PARTS).glob("*.csv"))], ignore_index=True)
    truth = truth.set_index("id").loc[plan.id].reset_index()  # the plan's order, whatever the workers did
    truth.to_csv(out / "truth.csv", index=False, float_format="%.6g")
    train = plan[plan.side == "train"]
    train[["id", "target"]].to_csv(out / "train_labels.csv", index=False)
    test = plan[plan.side == "test"]
    pd.DataFrame({"id": test.id, "target": 0.5}).to_csv(out / "sample_submission.csv", index=False)
    (out / "synth.json").write_text(json.dumps(meta, indent=2) + "\n")
    shutil.rmtree(out / PARTS)
    marker.unlink()
    return out
