"""Needle-like signals: their parameters drawn (kind, spectral shape, SNR, width, drift, curvature, wobble,
scintillation), the scans their path crosses, interference continuous in cadence time, and a signal rendered
straight onto preprocessed scans. The generator (`synth`) and the training-time injection (`dataset.Augment`) draw
from the same distributions here."""

from __future__ import annotations

import numba
import numpy as np

from .cadence import KAGGLE, N_FRAMES, OFF_FRAMES, ON_FRAMES, Geometry, signal_channels
from .preprocess import Preprocess, fitted_bandpass, time_median

KINDS = ("line", "curve", "sine")
# Spectral shapes of a narrowband signal across channels (setigen's f profiles): Gaussian; sinc squared, the
# response of Breakthrough Listen's polyphase filterbank to a pure tone; box; Lorentzian (broad wings).
PROFILES = {"gaussian": 0.5, "sinc2": 0.25, "box": 0.125, "lorentzian": 0.125}
MAX_DRIFT_HZ_S = 4.0  # the steepest drift drawn at another geometry than Kaggle's: the search's default (turboSETI's)

def draw_signal(rng: np.random.Generator, frame: int, snr_range, geometry: Geometry = KAGGLE) -> dict:
    """Parameters of one needle-like signal, in the band at a random time of scan `frame` of a cadence of
    `geometry`. Drifts, wobbles and widths are drawn in physical units (those of Kaggle's rows and channels),
    curvature over one scan."""
    g = geometry
    kind = KINDS[rng.choice(3, p=[0.5, 0.25, 0.25])]
    lo, hi = np.log(snr_range[0]), np.log(snr_range[1])
    # Most drifts are small (the signal stays in the band through the cadence), a few are steep: Kaggle's up to 0.4
    # channels a row (1 Hz/s); at an observation's geometry up to the search's 4 Hz/s, as its candidates drift.
    rows_per_kaggle_row = KAGGLE.row_seconds / g.row_seconds  # 1.0 exactly for Kaggle's geometry
    steepest = 0.4 if g == KAGGLE else MAX_DRIFT_HZ_S * KAGGLE.row_seconds / KAGGLE.channel_hz
    drift_px = float(rng.choice([-1, 1]) * np.exp(rng.uniform(np.log(0.003), np.log(steepest)))
                     / rows_per_kaggle_row * (KAGGLE.channel_hz / g.channel_hz))
    params = {
        "kind": kind,
        "profile": str(rng.choice(list(PROFILES), p=list(PROFILES.values()))),
        "snr": float(np.exp(rng.uniform(lo, hi))),
        "width_hz": float(g.channel_hz * np.exp(rng.uniform(np.log(1.0), np.log(12.0)))),
        "channel_ref": float(rng.uniform(12, g.channels - 12)),
        "row_ref": float(g.cadence_rows(frame)[0] + rng.uniform(0, g.rows)),
        "drift_px": drift_px,
        "curvature_px": 0.0,
        "sine_amp_px": 0.0,
        "sine_period_rows": 1.0,
        "scintillating": bool(rng.random() < 0.2),
    }
    if kind == "curve":  # bends by 10-60 channels over one scan
        params["curvature_px"] = float(rng.choice([-1, 1]) * rng.uniform(10, 60) * 2 / g.rows**2)
    elif kind == "sine":  # S-shaped: a slow wobble on top of the drift, of 110-660 s
        params["sine_amp_px"] = float(rng.uniform(4, 30))
        params["sine_period_rows"] = float(rng.uniform(100, 600) * rows_per_kaggle_row)
    params["drift_hz_s"] = drift_px * g.channel_hz / g.row_seconds
    return params


def draw_needle(rng: np.random.Generator, snr_range, geometry: Geometry = KAGGLE) -> tuple[dict, tuple[int, ...]]:
    """A needle's parameters and the ON scans it is put in: one to three of them (65 / 20 / 15 %), in the band at a
    random time of the first (`in_band` says which of them its path reaches)."""
    n_on = rng.choice([3, 2, 1], p=[0.65, 0.2, 0.15])
    on = tuple(sorted(rng.choice(ON_FRAMES, size=n_on, replace=False).tolist()))
    return draw_signal(rng, on[0], snr_range, geometry), on


def in_band(params: dict, frames, geometry: Geometry = KAGGLE) -> tuple[int, ...]:
    """The frames of `frames` in which the signal's path enters the band: steep drifts leave it, as real ones do."""
    g = geometry
    return tuple(int(i) for i in frames
                 if np.any(np.abs(signal_channels(params, g.cadence_rows(i)) - (g.channels - 1) / 2) < g.channels / 2))


def continuous_path(rng: np.random.Generator, snr_range, geometry: Geometry = KAGGLE) -> tuple[dict, tuple[int, ...]]:
    """A needle-like signal continuous in cadence time through the whole cadence (70 %) or a run of three to five
    scans, seen in the band in at least two scans, one of them an OFF scan: interference by the ON/OFF rule."""
    for _ in range(100):
        if rng.random() < 0.7:
            run = tuple(range(N_FRAMES))
        else:
            length = int(rng.integers(3, 6))
            start = int(rng.integers(0, N_FRAMES - length + 1))
            run = tuple(range(start, start + length))
        params = draw_signal(rng, int(rng.choice(run)), snr_range, geometry)
        frames = in_band(params, run, geometry)
        if len(frames) >= 2 and set(frames) & set(OFF_FRAMES):
            return params, frames
    raise RuntimeError("no interference path stays in the band")  # never seen: most paths do at the first draw


@numba.njit(cache=True)
def _splat(centre, level, sigma, reach, t, out):
    """Add a Gaussian profile of width `sigma` at `centre[k, r]` (preprocessed channels), of flux `level[k, r]`, for
    every full-resolution row r of scan k, into row r // t of `out[k]`, averaged over the t rows."""
    norm = 1 / (np.sqrt(2 * np.pi) * sigma * t)
    channels = out.shape[-1]
    for k in range(centre.shape[0]):
        for r in range(centre.shape[1]):
            first = int(np.floor(centre[k, r]))
            for ch in range(max(first - reach, 0), min(first + reach + 1, channels)):
                d = (ch - centre[k, r]) / sigma
                out[k, r // t, ch] += level[k, r] * norm * np.exp(-0.5 * d * d)


def render(params: dict, frames, preprocess: Preprocess, rng: np.random.Generator,
           geometry: Geometry = KAGGLE) -> np.ndarray:
    """The signal of `params` in scans `frames` as it shows after `preprocess`: a Gaussian profile of its width on
    its path, row by full-resolution row, at setigen's SNR (peak = SNR x noise / sqrt(rows), here in noise units),
    block-averaged as the preprocessing averages and scaled to its noise, then the preprocessing's bandpass step
    applied to the signal alone (an OFF bandpass removes what sits still in the OFF scans). The generator's
    signals drawn straight onto preprocessed scans in about a millisecond, for injection during training.
    Returns float32 `(6, rows, channels)` at the preprocessed resolution."""
    t, c = preprocess.time_average, preprocess.channel_average
    g = geometry
    rows, channels = preprocess.shape(g)
    out = np.zeros((N_FRAMES, rows, channels), np.float32)
    frames = list(frames)
    if not frames:
        return out
    cadence_time = np.stack([g.cadence_rows(i)[: rows * t] for i in frames])
    centre = (signal_channels(params, cadence_time) + 0.5) / c - 0.5  # in preprocessed channels
    fwhm = params["width_hz"] / g.channel_hz  # in full-resolution channels
    sigma = np.sqrt((fwhm / (2 * np.sqrt(2 * np.log(2)))) ** 2 + (c**2 - 1) / 12) / c  # the profile and the block
    # per full-resolution row (tests/test_synth.py holds it against the generator's own signals)
    flux = params["snr"] / np.sqrt(g.rows) * 1.0645 * fwhm * np.sqrt(t * c) / c
    level = np.full(cadence_time.shape, flux)
    if params["scintillating"]:  # fading in and out during each scan (the scan's own time), as the generator's
        phase = rng.uniform(0, 2 * np.pi)
        level *= 1 + 0.8 * np.sin(2 * np.pi * np.arange(rows * t) * g.row_seconds / rng.uniform(60, 300) + phase)
    image = np.zeros((len(frames), rows, channels))
    _splat(centre, level, sigma, int(np.ceil(4 * sigma)) + 1, t, image)
    out[frames] = image
    if preprocess.bandpass == "off":
        out -= fitted_bandpass(out)[:, None, :]
    elif preprocess.bandpass == "scan":
        out -= time_median(out)[:, None, :]
    return out
