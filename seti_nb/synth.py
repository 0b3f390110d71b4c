"""Synthetic cadences in the exact Kaggle layout, made with setigen, with a truth table per cadence; and the twin
test's pairs."""

from __future__ import annotations

import json
import os
import shutil
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from .cadence import KAGGLE, N_FRAMES, OFF_FRAMES, ON_FRAMES, Geometry, signal_channels
from .config import SynthConfig
from .data import UNFINISHED, unfinished_synthesis, write_geometry
from .runtime import check_free_space, parallel_map, progress_bar
from .signals import continuous_path, draw_needle, draw_signal, in_band

NOISE_MEAN = 10.0
VERSION = 3  # of the generator: bump it when a change alters the files a seed gives
# Each background is drawn for every cadence with the same probability whatever its class, so backgrounds alone
# never tell the classes apart. The signals among them are the interference the ON/OFF rule exists for:
# `continuous`: a signal drawn exactly as a needle is (kind, profile, width, drift, SNR, scintillation) but
#   continuous in cadence time through the OFF scans, for the whole cadence or a run of three to five scans (a
#   transmitter switching on or off): terrestrial interference as it shows in real cadences, a line that simply
#   continues across the slews. Only the OFF scans tell it from a needle.
# `rfi`: strong near-stationary lines in all six scans, a third of them pulsed (switched on and off every few
#   tens of seconds, as in the real sample's haystack 00042890562ff68).
# `drift_rfi`: drifting interference that restarts in every scan at the same channel.
# `off_signal`: needle-shaped signals in one to three OFF scans, each its own (B, C and D are three sky
#   positions), so statistics pooled over the six frames cannot see a needle.
BACKGROUNDS = ("ripple", "slope", "gain", "burst", "rfi", "drift_rfi", "off_signal", "continuous")
BACKGROUND_P = {"ripple": 0.9, "slope": 0.5, "gain": 0.8, "burst": 0.3, "rfi": 0.5, "drift_rfi": 0.2,
                "off_signal": 0.3, "continuous": 0.35}
SIGNAL_COLUMNS = ["kind", "profile", "snr", "width_hz", "drift_hz_s", "channel_ref", "row_ref", "drift_px",
                  "curvature_px", "sine_amp_px", "sine_period_rows", "scintillating"]
TRUTH_COLUMNS = ["id", "side", "target", *SIGNAL_COLUMNS, "on_frames", "backgrounds", "interference_snr", "pair"]


def import_setigen():
    """setigen, imported without blimpy's warning that pkg_resources is deprecated (not ours to fix), and with
    matplotlib's backend as it was (setigen's import switches it to Agg: every later figure of a notebook would be
    lost). Deferred on purpose: setigen brings blimpy and astropy (seconds of start-up), needed only where frames
    are drawn or observation files read."""
    matplotlib = sys.modules.get("matplotlib")
    backend = matplotlib.get_backend() if matplotlib else None
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
        import setigen
    if backend and matplotlib.get_backend() != backend:
        matplotlib.use(backend)
    return setigen


TWIN_SNR = (8.0, 80.0)  # the twin test's SNR range: from where a good detector starts to find needles to obvious


class _Maker:
    """setigen frames for one worker process, whose data are views into one preallocated cadence (float64): no
    frame or array is made anew per cadence (a fresh Frame costs a sigma-clip, a fresh array a page fault)."""

    def __init__(self, geometry: Geometry = KAGGLE):
        self.sg = sg = import_setigen()
        self.g = g = geometry
        self.cadence = np.zeros(g.cadence_shape)
        self.frames = [
            sg.Frame(fchans=g.channels, tchans=g.rows, df=g.channel_hz, dt=g.row_seconds, fch1=6e9,
                     ascending=True, t_start=g.frame_start_s(i), seed=0)
            for i in range(N_FRAMES)
        ]
        # setigen's chi-squared radiometer noise (its degrees of freedom, mean NOISE_MEAN) is drawn for the whole
        # cadence at once as the equal gamma distribution: chi2(k) * mean / k = gamma(k / 2) * mean / (k / 2)
        self.gamma_shape = self.frames[0].chi2_df / 2
        self.noise_std = np.sqrt(2 * self.frames[0].chi2_df) * NOISE_MEAN / self.frames[0].chi2_df
        for frame, data in zip(self.frames, self.cadence):
            frame.data, frame.noise_mean, frame.noise_std = data, NOISE_MEAN, self.noise_std
        self.f0 = self.frames[0].get_frequency(0)
        self.fchans = np.arange(g.channels)

    def _noise(self, rng: np.random.Generator) -> None:
        rng.standard_gamma(self.gamma_shape, out=self.cadence)
        self.cadence *= NOISE_MEAN / self.gamma_shape
        for frame in self.frames:
            frame.rng = rng

    def _add(self, frame_ids, path_px, level, width_hz, t_profile=None, local_time=False, profile="gaussian"):
        """Add a signal whose centre channel is `path_px(rows)` to the frames `frame_ids`.

        Cadence time (`local_time=False`) makes one signal continuous across the frames, as setigen's
        Cadence.add_signal does; local time restarts the path in every frame (interference that recurs
        per scan). Each frame computes the signal only over the channels its path crosses, plus a
        margin of six widths: setigen's `bounding_f_range`, which makes synthesis three times faster.
        """
        sg, g = self.sg, self.g
        t_prof = t_profile or sg.constant_t_profile(level=level)
        f_prof, bp_prof = getattr(sg, f"{profile}_f_profile")(width=width_hz), sg.constant_bp_profile(level=1)
        margin = 6 * width_hz / g.channel_hz + 2
        for i in frame_ids:
            start_row = 0.0 if local_time else g.frame_start_s(i) / g.row_seconds
            channels = path_px(start_row + np.arange(g.rows))
            lo, hi = channels.min() - margin, channels.max() + margin
            if hi < 0 or lo > g.channels:
                continue  # the path misses this frame's band

            def path(t, start_row=start_row):  # setigen passes the frame's own time in seconds
                return self.f0 + g.channel_hz * path_px(start_row + t / g.row_seconds)

            self.frames[i].add_signal(path, t_prof, f_prof, bp_prof,
                                      bounding_f_range=(self.f0 + g.channel_hz * max(lo, 0),
                                                        self.f0 + g.channel_hz * min(hi, g.channels)))

    def _t_profile(self, params: dict, rng: np.random.Generator):
        """The signal's intensity in time: constant, or fading in and out during each scan (scintillation)."""
        level = self.frames[0].get_intensity(snr=params["snr"])
        if params["scintillating"]:
            return self.sg.sine_t_profile(period=rng.uniform(60, 300), phase=rng.uniform(0, 300),
                                          amplitude=0.8 * level, level=level)
        return self.sg.constant_t_profile(level=level)

    def _signal(self, params: dict, frame_ids, t_profile) -> None:
        self._add(frame_ids, lambda r: signal_channels(params, r), None, params["width_hz"], t_profile,
                  profile=params["profile"])

    def _interference(self, present: list[str], rng: np.random.Generator, snr_range, truth: dict) -> None:
        """The signals among the backgrounds, into the six frames."""
        if "off_signal" in present:  # B, C and D are three sky positions: a source of one shows in its scan only
            n_off = rng.choice([1, 2, 3], p=[0.6, 0.3, 0.1])
            for frame in sorted(rng.choice(OFF_FRAMES, size=n_off, replace=False).tolist()):
                params = draw_signal(rng, frame, snr_range, self.g)
                self._signal(params, [frame], self._t_profile(params, rng))
        if "continuous" in present:
            snrs = []
            for _ in range(1 if rng.random() < 0.8 else 2):
                params, frames = continuous_path(rng, snr_range, self.g)
                self._signal(params, frames, self._t_profile(params, rng))
                snrs.append(params["snr"])
            truth["interference_snr"] = max(snrs)
        g = self.g
        per_row = g.row_seconds / KAGGLE.row_seconds  # drifts below in channels a Kaggle row (1.0 for Kaggle's)
        if "rfi" in present:  # strong near-stationary lines in all six scans, a third of them pulsed
            for _ in range(rng.integers(1, 4)):
                c, d = rng.uniform(0, g.channels), rng.normal(0, 0.002) * per_row
                level = self.frames[0].get_intensity(snr=np.exp(rng.uniform(np.log(30), np.log(800))))
                profile = None
                if rng.random() < 1 / 3:
                    period, duty, phase = rng.uniform(10, 120), rng.uniform(0.2, 0.7), rng.uniform(0, 120)
                    profile = lambda t, p=period, q=duty, f=phase, a=level: a * (((t + f) / p) % 1 < q)  # noqa: E731
                self._add(range(N_FRAMES), lambda r, c=c, d=d: c + d * r, level, g.channel_hz * rng.uniform(0.7, 4),
                          t_profile=profile)
        if "drift_rfi" in present:  # drifting interference that restarts in every scan, ON and OFF alike
            for _ in range(rng.integers(1, 3)):
                c, d = rng.uniform(0, g.channels), rng.choice([-1, 1]) * rng.uniform(0.05, 0.8) * per_row
                self._add(range(N_FRAMES), lambda r, c=c, d=d: c + d * r,
                          self.frames[0].get_intensity(snr=np.exp(rng.uniform(np.log(10), np.log(200)))),
                          g.channel_hz * rng.uniform(1, 6), local_time=True)

    def _instrumental(self, present: list[str], rng: np.random.Generator) -> None:
        """The receiver's own backgrounds, added to the cadence: bandpass ripple, tilt, gain drift, bursts."""
        data, noise_std, g = self.cadence, self.noise_std, self.g
        if "ripple" in present:  # bandpass ripple: vertical stripes shared by all six scans
            k = np.arange(1, 9)
            phases, amps = rng.uniform(0, 2 * np.pi, 8), rng.normal(0, 1, 8) / k
            ripple = (amps[:, None] * np.sin(2 * np.pi * k[:, None] * self.fchans / g.channels
                                             + phases[:, None])).sum(0)
            ripple += rng.normal(0, 0.5, g.channels)  # channel-to-channel gain differences
            ripple *= rng.uniform(0.5, 3.0) * noise_std / ripple.std()
            data += ripple * rng.uniform(0.8, 1.2, (N_FRAMES, 1, 1))
        if "slope" in present:  # a tilt of the band, changing a little from scan to scan
            tilt = rng.uniform(-2, 2) + rng.normal(0, 0.3, (N_FRAMES, 1, 1))
            data += tilt * noise_std * (self.fchans / (g.channels - 1) - 0.5)
        if "gain" in present:  # receiver gain wandering in time: slow horizontal banding
            walk = np.cumsum(rng.normal(0, 1, (N_FRAMES, g.rows)), axis=1)
            walk -= walk.mean(axis=1, keepdims=True)
            walk *= rng.uniform(0.15, 1.2) * noise_std / (walk.std() + 1e-12)
            data += walk[:, :, None] * (1 + rng.uniform(-0.5, 0.5) * (self.fchans / (g.channels - 1) - 0.5))
        if "burst" in present:  # broadband bursts: bright rows in any scan
            for _ in range(rng.integers(1, 5)):
                f, r = rng.integers(N_FRAMES), rng.integers(g.rows)
                span = slice(*sorted(rng.integers(0, g.channels + 1, 2))) if rng.random() < 0.3 else slice(None)
                data[f, r:r + rng.integers(1, 4), span] += rng.uniform(1, 6) * noise_std

    def _standardised(self) -> np.ndarray:
        """Every scan standardised in float64 (float16 sums overflow at 65504), cast to float16 in the same pass."""
        x = self.cadence
        mean = x.mean(axis=(1, 2))
        spread = np.sqrt(np.einsum("ijk,ijk->i", x, x) / x[0].size - mean**2)
        out = np.empty(x.shape, np.float16)
        np.multiply(x - mean[:, None, None], (1 / spread)[:, None, None], out=out, casting="unsafe")
        return out

    def make(self, seed: int, index: int, target: int, snr_range) -> tuple[np.ndarray, dict]:
        """Cadence `index` of the data set of `seed`: noise, a needle when `target`, the backgrounds."""
        rng = np.random.default_rng([seed, index])
        self._noise(rng)
        present = [b for b in BACKGROUNDS if rng.random() < BACKGROUND_P[b]]
        truth = {"target": target, "backgrounds": ",".join(present)}
        if target:
            params, on = draw_needle(rng, snr_range, self.g)
            on = in_band(params, on, self.g)
            self._signal(params, on, self._t_profile(params, rng))
            truth.update(params, on_frames="".join(map(str, on)))
        self._interference(present, rng, snr_range, truth)
        self._instrumental(present, rng)
        return self._standardised(), truth

    def twins(self, seed: int, index: int) -> tuple[np.ndarray, np.ndarray, dict]:
        """Pair `index` of the twin set of `seed`, from one draw of noise, instrumental backgrounds and signal: the
        needle carries the signal in the ON scans only, its interference twin the same signal continued in cadence
        time through the OFF scans too. The path stays in the band through ON, OFF and ON again (scans 0-2), so
        the twin always shows it where the needle's path has moved to by the OFF scan."""
        rng = np.random.default_rng([seed, index])
        self._noise(rng)
        present = [b for b in ("ripple", "slope", "gain", "burst") if rng.random() < BACKGROUND_P[b]]
        self._instrumental(present, rng)
        while True:
            params = draw_signal(rng, 0, TWIN_SNR, self.g)
            frames = in_band(params, range(N_FRAMES), self.g)
            if {0, 1, 2} <= set(frames):
                break
        t_profile = self._t_profile(params, rng)
        self._signal(params, [f for f in frames if f in ON_FRAMES], t_profile)
        needle = self._standardised()
        self._signal(params, [f for f in frames if f in OFF_FRAMES], t_profile)
        truth = {**params, "backgrounds": ",".join(present), "pair": index}
        on = "".join(str(f) for f in frames if f in ON_FRAMES)
        return needle, self._standardised(), [{**truth, "target": 1, "on_frames": on},
                                              {**truth, "target": 0, "on_frames": "".join(map(str, frames))}]


_MAKER: _Maker | None = None


def _make_chunk(args) -> int:
    """Write one chunk's cadences, then its truth rows: a chunk whose truth part exists is finished. A twin set's
    chunks hold whole pairs (needle, then its twin), made from one draw."""
    out, geometry, seed, snr_range, twins, number, items = args
    global _MAKER
    if _MAKER is None or _MAKER.g != geometry:
        _MAKER = _Maker(geometry)
    made = []
    if twins:
        for (index, needle_id, side, _), (_, twin_id, _, _) in zip(items[::2], items[1::2]):
            needle, twin, (needle_truth, twin_truth) = _MAKER.twins(seed, index // 2)
            made += [(needle_id, side, needle, needle_truth), (twin_id, side, twin, twin_truth)]
    else:
        for index, cadence_id, side, target in items:
            made.append((cadence_id, side, *_MAKER.make(seed, index, target, snr_range)))
    truths = []
    for cadence_id, side, data, truth in made:
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
    if config.twins:  # needle, twin, needle, twin...
        targets[0::2] = 1
    for lo, hi in () if config.twins else ((0, config.n), (config.n, total)):  # one needle share on both sides
        n_pos = round((hi - lo) * config.positive_fraction)
        targets[lo + rng.choice(hi - lo, size=n_pos, replace=False)] = 1
    return pd.DataFrame({"id": ids, "side": ["train"] * config.n + ["test"] * n_test, "target": targets})


PARTS = ".synth-parts"  # the truth rows of each finished chunk, until the end


def _meta(config: SynthConfig) -> dict:
    return {"generator": "seti_nb.synth", "version": VERSION, "n": config.n, "seed": config.seed,
            "positive_fraction": config.positive_fraction, "test_fraction": config.test_fraction,
            "snr_range": list(config.snr_range), **({"twins": True} if config.twins else {}),
            **({"geometry": config.geometry.to_dict()} if config.geometry != KAGGLE else {})}


def _check_disk(out: Path, cadences: int, geometry: Geometry) -> None:
    cadence_bytes = 128 + int(np.prod(geometry.cadence_shape)) * 2  # one float16 .npy file
    check_free_space(out, cadences * cadence_bytes, f"{cadences} cadences")


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
        _check_disk(out, config.n + round(config.n * config.test_fraction), config.geometry)
    plan = _validate(config)
    chunk = 64
    items = list(zip(range(len(plan)), plan.id, plan.side, plan.target))
    jobs = [(str(out), config.geometry, config.seed, config.snr_range, config.twins, i // chunk, items[i:i + chunk])
            for i in range(0, len(items), chunk)]
    done = {int(p.stem) for p in (out / PARTS).glob("*.csv")}
    todo = [job for job in jobs if job[5] not in done]
    remaining = sum(len(job[6]) for job in todo)
    _check_disk(out, remaining, config.geometry)
    (out / PARTS).mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps(meta) + "\n")
    for side in ("train", "test"):
        for h in "0123456789abcdef":
            (out / side / h).mkdir(parents=True, exist_ok=True)
    bar = progress_bar(total=len(items), initial=len(items) - remaining,
                       desc="synthesizing cadences", unit="cadence", disable=not progress)
    with bar:  # Ctrl-C or a failure stops every worker at once; the finished chunks stay
        parallel_map(_make_chunk, todo, workers, ordered=False, each=bar.update)
    truth = pd.concat([pd.read_csv(p, dtype={"id": str, "on_frames": str, "backgrounds": str, "pair": "Int64"})
                       for p in sorted((out / PARTS).glob("*.csv"))], ignore_index=True)
    truth = truth.set_index("id").loc[plan.id].reset_index()  # the plan's order, whatever the workers did
    truth.to_csv(out / "truth.csv", index=False, float_format="%.6g")
    train = plan[plan.side == "train"]
    train[["id", "target"]].to_csv(out / "train_labels.csv", index=False)
    test = plan[plan.side == "test"]
    pd.DataFrame({"id": test.id, "target": 0.5}).to_csv(out / "sample_submission.csv", index=False)
    write_geometry(out, config.geometry)
    (out / "synth.json").write_text(json.dumps(meta, indent=2) + "\n")
    shutil.rmtree(out / PARTS)
    marker.unlink()
    return out
