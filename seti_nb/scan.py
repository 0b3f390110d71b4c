"""`seti-nb scan`: the de-Doppler search over the whole band of six observation files, and the ON/OFF event filter
along each hit's path, as turboSETI's `FindDoppler` + `find_event` do, in frequency chunks so memory stays bounded
whatever the files' size.

Each chunk (with a margin of the farthest a path can move over the cadence on either side) is read from the six
files with blimpy, flattened (each scan divided by its bandpass, in units of its noise, a burst's rows set aside),
de-Dopplered scan by scan at the files' own resolution with Doppler smearing summed (`dedoppler_blocks`), and
reduced as it is made to a few profiles a scan: the strongest path starting and ending at every channel (in an OFF
scan, for each band of drifts). Hits are the ON scans' strongest paths (one a stretch of band a path covers, as
turboSETI's `tophitsearch`); each is followed in cadence time into the five other scans, where its SNR is read
within `veto_channels` plus `path_slack` times the channels extrapolated of where the path has moved by then, and in
an OFF scan among paths of drifts near the hit's only (the path continued drifts as it does; a signal crossing it
there does not, nor does a steep path's sidelobe where it crosses a bright line). Level 1: an ON hit. Level 2: and
no OFF scan holds a signal on the path above `veto_bar` and a quarter of the hit's SNR (nor above `veto_threshold`
at the hit's own channels: interference restarting in every scan). Level 3: and the path is above `threshold` in all
three ON scans. One row a path: the hits of one path in several ON scans are one event.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numba
import numpy as np
import pandas as pd

from .cadence import N_FRAMES, OFF_FRAMES, ON_FRAMES
from .config import SearchSettings
from .data import DataError
from .dedoppler import dedoppler_blocks
from .observation import Grid, _waterfall, read_observation, read_scan
from .runtime import parallel_map, progress_bar
from .turboseti import turboseti_events

CHUNK = 65536  # channels searched a chunk (margins on top); a worker holds one chunk: about 0.5 GB at its peak
BLOCK = 256  # channels over which the bandpass is taken as flat
BURST_SIGMA = 1.0  # a row whose offset over a block passes this (noise sigma a channel) is a burst's: set to zero
BAND_HZ_S = 0.25  # an OFF scan's paths are kept by drift in bands this wide: the veto reads those near the hit's
# An OFF signal on the path vetoes when it also reaches this share of the hit's SNR: interference enters ON and OFF
# scans alike through the sidelobes, while a steep needle's path crossing a bright line in an OFF scan sums one row
# of it (Doppler smearing sums a row's channels): 6 sigma where a line of SNR 40 crosses a path of 2 Hz/s.
OFF_SHARE = 0.25
COLUMNS = ["frequency_mhz", "drift_hz_s", "level", "snr", "snr_on1", "snr_on2", "snr_on3", "off_snr", "channel",
           "found_in"]


@dataclass(frozen=True)
class Cadence:
    """What the search needs to know of six observation files: where they are, their grid, the rows searched (a
    power of two, as the tree takes), and when each scan starts, in seconds from the first."""

    paths: tuple[str, ...]
    grid: Grid
    rows: int
    starts_s: tuple[float, ...]

    @classmethod
    def of(cls, paths) -> Cadence:
        scans = read_observation(paths)
        grid = scans[0].grid
        starts = tuple((s.tstart_mjd - scans[0].tstart_mjd) * 86400.0 for s in scans)
        return cls(tuple(str(s.path) for s in scans), grid, grid.rows_searched, starts)

    def segments(self, settings: SearchSettings) -> int:
        g = self.grid
        return max(1, int(np.ceil(settings.max_drift_hz_s * g.row_seconds / abs(g.channel_hz))))

    def rates(self, settings: SearchSettings) -> np.ndarray:
        """Each plane row's drift in file channels a second (the order of `dedoppler_plane`'s rows)."""
        n, segments = self.rows, self.segments(settings)
        positive = np.array([s + d / (n - 1) for s in range(segments) for d in range(n)])
        return np.concatenate([-positive[::-1][:-1], positive]) / self.grid.row_seconds

    def band_of(self, rate, settings: SearchSettings) -> np.ndarray:
        """The drift bands of drifts `rate` (file channels a second): `BAND_HZ_S` wide from the steepest negative
        drift searched (band 0), clipped to the drifts searched; `band_of(rates(settings))` bands the plane's rows."""
        rates = self.rates(settings)
        clipped = np.clip(rate, rates.min(), rates.max())
        return np.rint((clipped - rates.min()) * abs(self.grid.channel_hz) / BAND_HZ_S).astype(np.int64)

    def margin(self, settings: SearchSettings) -> int:
        """The channels a path of the largest drift can move over the whole cadence, with the search's slack."""
        span_s = self.starts_s[-1] + self.rows * self.grid.row_seconds
        moved = settings.max_drift_hz_s * span_s / abs(self.grid.channel_hz)
        return int(np.ceil((1 + settings.path_slack) * moved)) + settings.veto_channels + 1


def chunks(cadence: Cadence, settings: SearchSettings, f_range=None, size: int = CHUNK) -> list[tuple[int, int]]:
    """The file channels [lo, hi) searched a chunk, covering the band `f_range` (MHz; the whole band by default)."""
    g = cadence.grid
    first, last = 0, g.channels
    if f_range is not None:
        low, high = sorted(f_range)
        band = g.band_mhz
        if high <= band[0] or low >= band[1]:
            raise DataError(f"{cadence.paths[0]}: the band {low}-{high} MHz is outside the files' {band[0]:.6f}-"
                            f"{band[1]:.6f} MHz")
        ends = sorted(int(np.clip(round((f - g.fch1_mhz) * 1e6 / g.channel_hz), 0, g.channels)) for f in (low, high))
        first, last = ends
    return [(lo, min(lo + size, last)) for lo in range(first, max(last, first + 1), size)]


def read_chunk(path: str, grid: Grid, lo: int, hi: int, rows: int) -> np.ndarray:
    """File channels [lo, hi) of the first `rows` rows of one scan, read by blimpy, checked whole and finite."""
    step = grid.channel_hz / 1e6  # blimpy selects by frequency: channel c is asked for as fch1 + c step,
    edges = sorted(grid.fch1_mhz + c * step for c in (lo, hi))  # which it rounds back to c
    data = np.asarray(_waterfall(Path(path), f_start=edges[0], f_stop=edges[1], t_start=0, t_stop=rows).data,
                      dtype=np.float32)
    if data.shape != (rows, 1, hi - lo):
        raise DataError(f"{path}: channels {lo}-{hi} read as an array of shape {data.shape}, not ({rows}, 1, "
                        f"{hi - lo}): a truncated file?")
    if not np.isfinite(data).all():
        raise DataError(f"{path}: channels {lo}-{hi} hold non-finite values (NaN or inf)")
    return data[:, 0]


def flatten(x: np.ndarray) -> np.ndarray:
    """A scan `(rows, channels)` in units of its noise: divided by its bandpass (the median over time, its median
    over 256-channel blocks interpolated, so narrow lines do not bend it), each row's offset removed, divided by a
    robust sigma (1.4826 x the median absolute deviation). A row lifted over a block by more than `BURST_SIGMA` is a
    broadband burst's: set to zero there and in the blocks beside it (its edges)."""
    rows, channels = x.shape
    pad = -channels % BLOCK  # the last block padded with its edge
    padded = np.pad(np.median(x, axis=0), (0, pad), mode="edge").reshape(-1, BLOCK)
    centres = np.minimum(np.arange(0, channels, BLOCK) + BLOCK / 2, channels - 1)
    bandpass = np.interp(np.arange(channels), centres, np.median(padded, axis=1))
    z = x / np.where(bandpass > 0, bandpass, np.inf) - 1
    z -= np.median(z, axis=1, keepdims=True)
    sigma = 1.4826 * np.median(np.abs(z))
    burst = np.abs(np.median(np.pad(z, ((0, 0), (0, pad)), mode="edge").reshape(rows, -1, BLOCK), axis=2)) > (
        BURST_SIGMA * sigma)
    near = burst | np.pad(burst[:, 1:], ((0, 0), (0, 1))) | np.pad(burst[:, :-1], ((0, 0), (1, 0)))
    z[np.repeat(near, BLOCK, axis=1)[:, :channels]] = 0
    return (z / sigma if sigma > 0 else z).astype(np.float32)


@numba.njit(cache=True, boundscheck=False)
def _window_max(profile, centres, halves, outside):
    """out[i] = max(profile[centres[i] - halves[i] : centres[i] + halves[i] + 1]) within the profile, `outside`
    where the window lies wholly outside it."""
    out = np.empty(len(centres), profile.dtype)
    for i in range(len(centres)):
        lo, hi = max(centres[i] - halves[i], 0), min(centres[i] + halves[i] + 1, len(profile))
        out[i] = outside if lo >= hi else profile[lo:hi].max()
    return out


@numba.njit(cache=True, boundscheck=False)
def _window_band_max(profiles, centres, halves, first_band, last_band):
    """out[i] = the largest of `profiles[first_band[i] : last_band[i] + 1]` over the channels of `_window_max`'s
    window (0 where the window lies wholly outside them)."""
    out = np.zeros(len(centres), profiles.dtype)
    channels = profiles.shape[1]
    for i in range(len(centres)):
        lo, hi = max(centres[i] - halves[i], 0), min(centres[i] + halves[i] + 1, channels)
        for b in range(first_band[i], last_band[i] + 1):
            for c in range(lo, hi):
                out[i] = max(out[i], profiles[b, c])
    return out


@numba.njit(cache=True, boundscheck=False)
def _top_hits(order, shifts, reach):
    """turboSETI's `tophitsearch`, along the hit's own path: in order of SNR, a channel is a hit unless its path
    (from it to `shifts` channels on, widened by `reach` either side) touches a stronger hit's. Returns a mask."""
    covered = np.zeros(len(shifts), np.bool_)
    keep = np.zeros(len(shifts), np.bool_)
    for c in order:
        lo = max(min(c, c + shifts[c]) - reach, 0)
        hi = min(max(c, c + shifts[c]) + reach + 1, len(shifts))
        if covered[lo:hi].any():
            continue
        keep[c] = True
        covered[lo:hi] = True
    return keep


@numba.njit(cache=True, boundscheck=False)
def _reduce(block, first, shifts, best, best_row, ends):
    """Fold a block of de-Doppler rows into the profiles: the strongest path starting at each channel (and its
    row), the strongest ending at each channel (a path of row r ends `shifts[r]` channels on)."""
    n, channels = block.shape
    for i in range(n):
        row, shift = first + i, shifts[first + i]
        for c in range(channels):
            v = block[i, c]
            if v > best[c]:
                best[c], best_row[c] = v, row
            e = c + shift
            if 0 <= e < channels and v > ends[e]:
                ends[e] = v


@numba.njit(cache=True, boundscheck=False)
def _reduce_bands(block, first, shifts, bands, starts, ends):
    """Fold a block of de-Doppler rows into an OFF scan's profiles, drift band by drift band: the strongest path
    of each band starting at each channel, and ending at each channel."""
    n, channels = block.shape
    for i in range(n):
        row = first + i
        shift, band = shifts[row], bands[row]
        for c in range(channels):
            v = block[i, c]
            if v > starts[band, c]:
                starts[band, c] = v
            e = c + shift
            if 0 <= e < channels and v > ends[band, e]:
                ends[band, e] = v


def scan_profiles(z: np.ndarray, cadence: Cadence, settings: SearchSettings, by_band: bool = False):
    """One flattened scan's de-Doppler plane (Doppler smearing summed), reduced as it is made, in SNR units: the
    strongest path starting at each channel, its drift row, and the strongest path ending at each channel; with
    `by_band` (an OFF scan), the strongest starting and ending paths of each drift band `(bands, channels)`."""
    channels = z.shape[1]
    shifts = np.rint(cadence.rates(settings) * (cadence.rows - 1) * cadence.grid.row_seconds).astype(np.int64)
    scale = np.float32(1 / np.sqrt(cadence.rows))
    blocks = dedoppler_blocks(z[: cadence.rows], cadence.segments(settings), smear=True)
    if by_band:
        bands = cadence.band_of(cadence.rates(settings), settings)
        starts, ends = (np.full((bands.max() + 1, channels), -np.inf, np.float32) for _ in range(2))
        for first, block in blocks:
            _reduce_bands(block, first, shifts, bands, starts, ends)
        return starts * scale, np.maximum(ends, 0) * scale
    best, ends = np.full(channels, -np.inf, np.float32), np.full(channels, -np.inf, np.float32)
    best_row = np.zeros(channels, np.int64)
    for first, block in blocks:
        _reduce(block, first, shifts, best, best_row, ends)
    return best * scale, best_row, np.maximum(ends, 0) * scale


def _follow(profiles, hits: np.ndarray, rate: np.ndarray, frame: int, cadence: Cadence, settings: SearchSettings):
    """The strongest signal of every scan on each hit's path continued in cadence time from scan `frame`: where
    the path is when a later scan starts (its starting paths) or when an earlier one ends (its ending paths).
    An OFF scan's signal is read among the paths of drifts near the hit's only (within `BAND_HZ_S` and the path
    slack): the hit's path continued drifts as it does, where another signal crossing it there drifts otherwise.
    Returns the signals `(6, hits)` (NaN for an ON scan the path has left the chunk in, 0 for an OFF scan) and
    the half-widths of the windows they were read in. `profiles`: `scan_profiles` of each scan (by band, OFF)."""
    last_row_s = (cadence.rows - 1) * cadence.grid.row_seconds
    out = np.empty((N_FRAMES, len(hits)), np.float32)
    halves = np.zeros((N_FRAMES, len(hits)), np.int64)
    near = BAND_HZ_S / abs(cadence.grid.channel_hz) + settings.path_slack * np.abs(rate)
    first_band, last_band = cadence.band_of(rate - near, settings), cadence.band_of(rate + near, settings)
    for j in range(N_FRAMES):
        if j == frame:
            out[j] = profiles[j][0][hits]
            continue
        later = j > frame
        elapsed = cadence.starts_s[j] - cadence.starts_s[frame] + (0.0 if later else last_row_s)
        moved = rate * elapsed
        halves[j] = settings.veto_channels + settings.path_slack * np.abs(moved)
        centres = np.rint(hits + moved).astype(np.int64)
        starts, ends = profiles[j][0], profiles[j][-1]
        out[j] = (_window_max(starts if later else ends, centres, halves[j], np.float32(np.nan)) if j in ON_FRAMES
                  else _window_band_max(starts if later else ends, centres, halves[j], first_band, last_band))
    return out, halves


def veto_bar(half: np.ndarray, settings: SearchSettings) -> np.ndarray:
    """The OFF signal that vetoes, read in a window of +-`half` channels: `veto_threshold` in the narrowest
    (+-`veto_channels`), raised for wider ones as the largest of that many more noise values grows (the square of
    a Gaussian maximum grows by 2 ln of the factor), so a needle's path followed far is not vetoed by the noise."""
    ratio = (2 * np.asarray(half) + 1) / (2 * settings.veto_channels + 1)
    return np.sqrt(settings.veto_threshold**2 + 2 * np.log(np.maximum(ratio, 1.0)))


def search_chunk(span: tuple[int, int], cadence: Cadence, settings: SearchSettings) -> tuple[pd.DataFrame, int]:
    """The events whose hit lies in file channels [lo, hi), from the six scans read with a margin either side;
    and the number of ON hits."""
    g, (lo, hi) = cadence.grid, span
    margin = cadence.margin(settings)
    a, b = max(lo - margin, 0), min(hi + margin, g.channels)
    profiles = [scan_profiles(flatten(read_chunk(p, g, a, b, cadence.rows)), cadence, settings, j in OFF_FRAMES)
                for j, p in enumerate(cadence.paths)]
    any_drift = {j: profiles[j][0].max(axis=0) for j in OFF_FRAMES}  # an OFF scan's paths starting at each channel
    rates = cadence.rates(settings)
    shift_per_row = np.rint(rates * (cadence.rows - 1) * g.row_seconds).astype(np.int64)
    events, n_hits = [], 0
    for k, frame in enumerate(ON_FRAMES):
        snr, drift_row = profiles[frame][0], profiles[frame][1]
        candidates = np.flatnonzero(snr > settings.threshold)
        candidates = candidates[(candidates + a >= lo) & (candidates + a < hi)]
        order = candidates[np.argsort(-snr[candidates], kind="stable")]
        hits = np.flatnonzero(_top_hits(order, shift_per_row[drift_row], settings.veto_channels))
        n_hits += len(hits)
        rate = rates[drift_row[hits]]
        along, halves = _follow(profiles, hits, rate, frame, cadence, settings)
        on, off = along[list(ON_FRAMES)], along[list(OFF_FRAMES)]
        same_place = np.max([_window_max(any_drift[j], hits, np.full(len(hits), settings.veto_channels),
                                         np.float32(0)) for j in OFF_FRAMES], axis=0, initial=0)
        off_snr = np.maximum(off.max(axis=0, initial=0), same_place)
        bar = np.maximum(veto_bar(halves[list(OFF_FRAMES)], settings), OFF_SHARE * along[frame])
        vetoed = ((off >= bar).any(axis=0)
                  | (same_place >= settings.veto_threshold))
        level = np.where(vetoed, 1, np.where((on >= settings.threshold).all(axis=0), 3, 2))
        channel0 = hits + a - rate * cadence.starts_s[frame]  # the path's channel at the cadence's start
        events.append(pd.DataFrame({
            "frequency_mhz": g.fch1_mhz + channel0 * g.channel_hz / 1e6, "drift_hz_s": rate * g.channel_hz,
            "level": level, "snr": np.nansum(on, axis=0) / np.sqrt(np.isfinite(on).sum(axis=0)),
            **{f"snr_on{i + 1}": on[i] for i in range(3)}, "off_snr": off_snr, "channel": channel0, "found_in": k + 1}))
    return pd.concat(events, ignore_index=True), n_hits


def merge_events(events: pd.DataFrame, cadence: Cadence, settings: SearchSettings) -> pd.DataFrame:
    """One row a path: events found in several ON scans (or in two chunks' margins) are one where each one's path
    passes the other's hit, at the time of that hit, within the tolerance the search allows a path followed over
    the time between them; the one of the highest level and SNR stands for them. Sorted by level, then SNR."""
    events = events.sort_values(["level", "snr", "channel"], ascending=[False, False, True], ignore_index=True)
    rate = events["drift_hz_s"].to_numpy() / cadence.grid.channel_hz
    when = np.array(cadence.starts_s)[np.array(ON_FRAMES)[events["found_in"].to_numpy() - 1]]
    channel = events["channel"].to_numpy()  # at the cadence's start
    kept: list[int] = []
    for i in range(len(events)):
        k = np.array(kept, dtype=np.int64)
        slack = settings.veto_channels + 1 + settings.path_slack * np.maximum(abs(rate[i]), np.abs(rate[k])) * np.abs(
            when[i] - when[k])
        apart = [np.abs(channel[i] + rate[i] * t - channel[k] - rate[k] * t) for t in (when[i], when[k])]
        if not ((apart[0] <= slack) & (apart[1] <= slack)).any():
            kept.append(i)
    return events.iloc[kept].reset_index(drop=True)


@dataclass
class ScanResult:
    """A scan's candidates (one row a path, `COLUMNS`) and what it searched."""

    candidates: pd.DataFrame
    band_mhz: float
    hits: int
    seconds: float

    def summary(self) -> str:
        levels = self.candidates["level"].value_counts()
        counts = ", ".join(f"level {v}: {int(levels.get(v, 0))}" for v in (1, 2, 3))
        return (f"searched {self.band_mhz:.4f} MHz in {self.seconds:.1f} s ({self.band_mhz / self.seconds:.3f} MHz/s): "
                f"{self.hits} ON hits, {len(self.candidates)} events ({counts})")


def scan(paths, settings: SearchSettings = SearchSettings(), f_range=None, workers: int | None = 1,
         chunk: int = CHUNK, progress: bool = True) -> ScanResult:
    """Search six observation files (ON OFF ON OFF ON OFF) over the band `f_range` (MHz; all of it by default),
    chunk by chunk in `workers` processes. `settings.preprocess` plays no part: the files are flattened as
    `flatten` says."""
    began = time.perf_counter()
    cadence = Cadence.of(paths)
    spans = chunks(cadence, settings, f_range, chunk)
    widths = iter([hi - lo for lo, hi in spans])  # the results come in order
    with progress_bar(total=sum(hi - lo for lo, hi in spans), desc="channels searched", unit="ch",
                      unit_scale=True, disable=not progress) as bar:
        done = parallel_map(partial(search_chunk, cadence=cadence, settings=settings), spans, workers,
                            each=lambda result: bar.update(next(widths)))
    events = pd.concat([e for e, _ in done], ignore_index=True) if done else pd.DataFrame(columns=COLUMNS)
    band = sum(hi - lo for lo, hi in spans) * abs(cadence.grid.channel_hz) / 1e6
    return ScanResult(merge_events(events, cadence, settings)[COLUMNS], band, sum(n for _, n in done),
                      time.perf_counter() - began)


def turboseti_candidates(paths, work, max_drift_hz_s: float = 4.0, snr: float = 10.0) -> pd.DataFrame:
    """turboSETI's own search and level-3 event filter (`turboseti.turboseti_events`) on the same six files, into
    the folder `work`: one row an ON hit of an event, its frequency (MHz) at its scan's start, drift, SNR, and when
    that scan starts (seconds from the first)."""
    cadence = Cadence.of(paths)
    Path(work).mkdir(parents=True, exist_ok=True)
    events = turboseti_events(cadence.paths, work, max_drift_hz_s, snr)[3]
    if events is None or not len(events):
        return pd.DataFrame(columns=["frequency_mhz", "drift_hz_s", "snr", "start_s"])
    mjd0 = read_scan(cadence.paths[0]).tstart_mjd
    number = {name: events[name].to_numpy(float) for name in ("Freq", "DriftRate", "SNR", "MJD")}  # some are text
    return pd.DataFrame({"frequency_mhz": number["Freq"], "drift_hz_s": number["DriftRate"], "snr": number["SNR"],
                         "start_s": (number["MJD"] - mjd0) * 86400.0})


def matches(signals: pd.DataFrame, events: pd.DataFrame, row_seconds: float) -> np.ndarray:
    """Which event lies on which signal of a truth table (`synthesize_observation`'s), `(signals, events)`: within
    0.3 Hz/s of its drift and within 50 Hz, one row's drift (a signal smears over drift x `row_seconds` in a row) and
    1 % of the distance drifted of where its path is at the event's time (`start_s`, seconds from the cadence's start;
    0 where absent, as for the scan's own candidates). A signal no event lies on is missed; an event on none, false."""
    when = events["start_s"].to_numpy(float) if "start_s" in events else np.zeros(len(events))
    drift = signals["drift_hz_s"].to_numpy(float)[:, None]
    at = signals["frequency_mhz"].to_numpy(float)[:, None] + drift * when / 1e6
    slack = (50 + np.abs(drift) * (row_seconds + 0.01 * when)) / 1e6
    return ((np.abs(events["frequency_mhz"].to_numpy(float) - at) <= slack)
            & (np.abs(events["drift_hz_s"].to_numpy(float) - drift) <= 0.3))


def around(cadence: Cadence, candidate, margin: int = 64) -> tuple[np.ndarray, list[np.ndarray]]:
    """The six flattened scans over the channels a candidate's path crosses during the cadence (plus `margin`
    either side; 256 at least), `(6, rows, channels)`, and the path's channel in that window row by row in each
    scan (NaN outside it): what turboSETI's `plot_event` draws."""
    g = cadence.grid
    rate = candidate["drift_hz_s"] / g.channel_hz  # file channels a second
    at = [candidate["channel"] + rate * (start + np.arange(g.rows) * g.row_seconds) for start in cadence.starts_s]
    lo = int(np.floor(min(p.min() for p in at))) - margin
    hi = int(np.ceil(max(p.max() for p in at))) + margin + 1
    lo, hi = max(min(lo, (lo + hi) // 2 - BLOCK // 2), 0), min(max(hi, (lo + hi) // 2 + BLOCK // 2), g.channels)
    scans = np.stack([flatten(read_chunk(p, g, lo, hi, g.rows)) for p in cadence.paths])
    return scans, [np.where((p >= lo) & (p < hi), p - lo, np.nan) for p in at]
