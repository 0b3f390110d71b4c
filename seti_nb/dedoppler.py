"""The field's classical search: a de-Doppler transform of every scan (Taylor's tree), hits, and turboSETI's
ON/OFF event filter, with continuous cadence scores so the search is scored like a model.

A narrowband signal drifting at a constant rate is a straight line in a scan. The de-Doppler transform sums each
scan along straight lines of every drift, so a line's power is integrated into one bin: `(drift, start channel)`.
Taylor's tree does it for n rows and the n drifts 0..n-1 channels per scan in n log2(n) additions per channel
instead of n^2; steeper drifts first shear the scan by whole channels per row.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from dataclasses import dataclass
from pathlib import Path

import numba
import numpy as np
import pandas as pd
from scipy.ndimage import maximum_filter, maximum_filter1d

from .cache import cache_root, fingerprint, source_stem, tidy, touch
from .cadence import KAGGLE, OFF_FRAMES, ON_FRAMES, Geometry
from .config import SearchSettings
from .crossing import chord_max, crossing_tracks, ends, max_rows_shifted, window_max
from .data import folder_geometry, map_cadences, side_ids
from .preprocess import NARROWBAND_EVERY, Preprocess, narrowband, persistent_lines
from .runtime import check_writable

SCORES_VERSION = 4  # of the search's scores: bump it when a change alters them for the same settings (kept scores)
DRIFT_TOLERANCE = 0.25  # Hz/s: an OFF track or chord vetoes the ON bins it meets that drift within this of it
PERSISTENT = (3.0, 6)  # a persistent line in the raw OFF scans: its noise sigmas, and the channels it vetoes beyond


def power_of_two_rows(preprocess: Preprocess, geometry: Geometry = KAGGLE) -> int:
    """The preprocessed rows of a scan, trimmed to a power of two (what a Taylor tree takes)."""
    return 1 << int(np.log2(preprocess.shape(geometry)[0]))


def _shear(x: np.ndarray, per_row: int) -> np.ndarray:
    """out[..., k, c] = x[..., k, c + per_row * k] (zero beyond the last channel): a strided view of a padded
    copy."""
    k, c = x.shape[-2:]
    padded = np.zeros(x.shape[:-1] + (c + per_row * k,), dtype=x.dtype)
    padded[..., :c] = x
    s = padded.strides
    return np.lib.stride_tricks.as_strided(padded, x.shape, s[:-2] + (s[-2] + per_row * s[-1], s[-1]),
                                           writeable=False)


def _tree(x: np.ndarray) -> np.ndarray:
    """Taylor's tree on `(..., n, channels)`, n a power of two: out[..., d, c] is the sum over the n rows of the
    path that starts at channel c and drifts d channels over the n rows (zero beyond the last channel).

    Bottom-up: blocks of 1 row, then 2, 4... Two neighbouring blocks of m rows merge into one of 2m: drift 2k
    and 2k + 1 both follow drift k in each half, the second half starting k or k + 1 channels on.
    """
    n, c = x.shape[-2:]
    state = np.array(x, dtype=np.result_type(x, np.float32), order="C").reshape(-1, n, c)
    merged = np.empty_like(state)
    m = 1
    while m < n:
        _merge(state, merged, m)
        state, merged = merged, state
        m *= 2
    return state.reshape(x.shape)


@numba.njit(cache=True, boundscheck=False)
def _merge(state, merged, m):
    """One level of the tree, compiled: NumPy needs a padded copy and a skewed view per level, three times
    slower. Block rows t0..t0+m-1 (top) and t0+m..t0+2m-1 (bottom) -> rows t0..t0+2m-1."""
    planes, n, c = state.shape
    for p in range(planes):
        for t0 in range(0, n, 2 * m):
            for k in range(m):
                top, bottom = state[p, t0 + k], state[p, t0 + m + k]
                for extra in range(2):
                    shift, out = k + extra, merged[p, t0 + 2 * k + extra]
                    for ch in range(c - shift):
                        out[ch] = top[ch] + bottom[ch + shift]
                    for ch in range(max(c - shift, 0), c):
                        out[ch] = top[ch]


def dedoppler_blocks(scan: np.ndarray, segments: int, smear: bool = False):
    """The de-Doppler plane of one scan `(n, channels)`, n a power of two, as blocks of n drift rows: yields
    `(first row, block)`. The plane's rows are the drifts from the steepest negative (-segments channels a row) to
    the steepest positive, `2 segments n - 1` of them in steps of 1 / (n - 1) channel a row (zero drift comes
    twice, the same sums); column c holds the sums along the paths that start (first row) at channel c.

    Positive drifts come from the scan, negative ones from the scan mirrored in frequency; steep drifts first shift
    row r by s * r channels (a skewed view, one shear segment s at a time, so the working set stays small whatever
    the drift range), and the tree does the remaining 0..1 channel a row. With `smear`, segment s first sums s + 1
    neighbouring channels (divided by their square root, so noise keeps its scale): a path drifting s channels
    within a row spreads its power over them (Doppler smearing), and a single channel would catch 1 / (s + 1) of it.
    """
    n, _ = scan.shape
    base = segments * n - 1  # the row of drift zero
    mirrored = np.stack([scan, scan[:, ::-1]]).astype(np.float32, copy=False)
    summed = mirrored.copy()  # with `smear`: channels c .. c + s summed (zero beyond the band's edge)
    for s in range(segments):
        if smear and s:
            summed[..., :-s] += mirrored[..., s:]
        tree = _tree(_shear(summed * np.float32(1 / np.sqrt(s + 1)) if smear and s else mirrored, s))
        yield base - s * n - n + 1, tree[1, ::-1, ::-1]  # drifts -(s n + n - 1) .. -(s n)
        yield base + s * n, tree[0]  # drifts s n .. s n + n - 1


def dedoppler_plane(scan: np.ndarray, segments: int) -> np.ndarray:
    """The whole de-Doppler plane of one scan (`dedoppler_blocks`): `(2 segments n - 1, channels)`."""
    n, channels = scan.shape
    plane = np.empty((2 * segments * n - 1, channels), dtype=np.float32)
    for first, block in dedoppler_blocks(scan, segments):
        plane[first : first + n] = block
    return plane


def tree_path(d: int, n: int) -> np.ndarray:
    """The channel offset, row by row, of the path the tree sums for drift index d over n rows."""
    if n == 1:
        return np.zeros(1, dtype=int)
    k, shift = d // 2, d - d // 2
    return np.concatenate([tree_path(k, n // 2), shift + tree_path(k, n // 2)])


def brute_force(x: np.ndarray, d: int) -> np.ndarray:
    """The reference: the sum along `tree_path(d, n)` from every start channel, one row at a time."""
    n, c = x.shape
    out = np.zeros(c, dtype=np.float64)
    for r, offset in enumerate(tree_path(d, n)):
        out[: c - offset] += x[r, offset:]
    return out


@dataclass(frozen=True)
class Search(SearchSettings):
    """The classical search with its settings (`config.SearchSettings`): how it sees a scan (the workbook's
    preprocessing, then rows trimmed to a power of two), the de-Doppler transform, and the ON/OFF filter's scores;
    `geometry` is the cadences' (`score_cadences` takes a data folder's own)."""

    geometry: Geometry = KAGGLE

    @property
    def rows(self) -> int:
        """Rows searched: the preprocessed rows, trimmed to a power of two."""
        return power_of_two_rows(self.preprocess, self.geometry)

    @property
    def channel_hz(self) -> float:
        return self.geometry.channel_hz * self.preprocess.channel_average

    @property
    def row_s(self) -> float:
        return self.geometry.row_seconds * self.preprocess.time_average

    @property
    def segments(self) -> int:
        """Shears of 0, 1, 2... channels per row, each followed by the tree's 0..1 channel per row."""
        return max(1, int(np.ceil(self.max_drift_hz_s * self.row_s / self.channel_hz)))

    def drift_rates(self, rows: int | None = None) -> np.ndarray:
        """Drift rate (Hz/s) of each row of the planes of `rows` rows (`transform`'s by default), from the steepest
        negative to the steepest positive; the tree's index d over n rows drifts d / (n - 1) channels per row."""
        n = rows or self.rows
        positive = np.array([s + d / (n - 1) for s in range(self.segments) for d in range(n)])
        return np.concatenate([-positive[::-1][:-1], positive]) * self.channel_hz / self.row_s

    def transform(self, scans: np.ndarray) -> np.ndarray:
        """De-Doppler planes of preprocessed scans `(frames, rows, channels)` -> `(frames, drifts, channels)`, in
        SNR units: each bin is the path's sum divided by the noise of a sum of `rows` unit-noise pixels."""
        x = np.asarray(scans, dtype=np.float32)[:, : self.rows]
        planes = np.stack([dedoppler_plane(scan, self.segments) for scan in x])  # a scan at a time: cache-sized
        planes *= 1 / np.sqrt(self.rows)
        return planes

    def score(self, cadence: np.ndarray) -> dict[str, float]:
        """Continuous cadence scores at turboSETI's three filter levels, from the raw cadence `(6, 273, 256)`
        (preprocessed, then emission wider than a needle removed: `preprocess.narrowband`).

        1: the strongest ON bin (no veto). 2: the strongest ON bin after the OFF veto. 3: the combined SNR of one
        signal continuous in time through the ON scans, after the veto. The veto is the ON/OFF rule: an ON bin's
        SNR is divided by how far the strongest OFF signal on its path exceeds `veto_threshold` (`off_evidence`, a
        track its path meets that crosses into an OFF scan: `crossing_evidence`, or a persistent line in the raw
        OFF scans, which the OFF bandpass hides: `persistent_evidence`), a ratio, so interference of any brightness
        is vetoed relative to itself.
        """
        scans = narrowband(np.asarray(self.preprocess(cadence), np.float32)[:, : self.rows], self.narrowband_channels)
        planes = self.transform(scans)
        on, off = planes[list(ON_FRAMES)], planes[list(OFF_FRAMES)]
        evidence = np.maximum(np.maximum(self.off_evidence(off), self.crossing_evidence(scans)),
                              self.persistent_evidence(cadence))
        vetoed = on / np.maximum(1.0, evidence / self.veto_threshold)
        level3 = self._continuous(vetoed)
        return {"level1": float(on.max()), "level2": float(vetoed.max()), "level3": float(level3)}

    def persistent_evidence(self, cadence: np.ndarray) -> np.ndarray:
        """The raw OFF scans' persistent lines (`preprocess.persistent_lines`) as the SNR they have over the rows
        searched, for every bin within `veto_channels` and a few more channels of them (such lines drift slowly
        over a cadence): `(channels,)` at the search's resolution."""
        sigmas, slack = PERSISTENT
        lines, c = persistent_lines(cadence, sigmas), self.preprocess.channel_average
        lines = lines[: len(lines) // c * c].reshape(-1, c).max(1) * np.sqrt(self.rows * self.preprocess.time_average)
        return maximum_filter1d(lines, 2 * (self.veto_channels + slack) + 1)

    def crossing_evidence(self, scans: np.ndarray) -> np.ndarray:
        """For each ON scan and bin of its plane, the strongest track crossing into a neighbouring OFF scan that
        the bin's path meets at the start of one of the scan's quarters, drifting within `DRIFT_TOLERANCE` of the
        bin (`crossing.crossing_tracks`: segments of `track_threshold` or more joined within `veto_channels`), in
        `off_evidence`'s units: a track at `track_threshold` counts as OFF evidence at `veto_threshold`. `scans`:
        the six preprocessed scans trimmed to `rows`; zero for scans of under 16 rows. Returns `(3, drifts,
        channels)`."""
        out = np.zeros((len(ON_FRAMES), len(self.drift_rates()), scans.shape[-1]), np.float32)
        if self.rows < 16:
            return out
        q, steps = self.rows // 4, _crossing_steps(self)

        def plane(frame: int, first: int) -> np.ndarray:
            return dedoppler_plane(np.ascontiguousarray(scans[frame, first: first + q]), self.segments) / np.sqrt(q)

        for k, on in enumerate(ON_FRAMES):
            after = plane(on + 1, 0).max(axis=0) if on + 1 < len(scans) else None
            before = None
            if on > 0:
                before = np.empty((1, scans.shape[-1]), np.float32)
                ends(plane(on - 1, self.rows - q)[None], steps["end"], before)
                before = before[0]
            if all(p is None or p.max() < self.track_threshold for p in (after, before)):
                continue  # no OFF segment strong enough at either boundary
            tracks = crossing_tracks(np.stack([plane(on, j * q) for j in range(4)]), after, before,
                                     steps["to_next"][k], steps["from_prev"][k], steps["step"],
                                     self.track_threshold, self.veto_channels)
            if tracks.max() < self.track_threshold:
                continue  # no track crosses
            met = np.full(out.shape[1:], -np.inf, np.float32)
            for j in range(4):
                table = maximum_filter1d(window_max(tracks[j], self.veto_channels), 2 * steps["near"] + 1, axis=0)
                max_rows_shifted(table, steps["nearest"], steps["along"] * j, met)
            out[k] = np.where(met >= self.track_threshold, met * (self.veto_threshold / self.track_threshold), 0.0)
        return out

    def off_evidence(self, off: np.ndarray) -> np.ndarray:
        """For each ON scan and bin (drift, start channel) of its plane, the strongest OFF signal on that bin's path
        continued in time (`on_path`), of any drift starting or ending within `veto_channels` of the bin's start
        (interference that restarts in every scan), or drifting within `DRIFT_TOLERANCE` of the bin over a channel
        its chord covers (a path bending about its place: its chords differ from scan to scan, the channels they
        cover do not). `off`: the three OFF planes `(3, drifts, channels)`; returns `(3, drifts, channels)`."""
        shifts, near = _scan_shifts(self), round(DRIFT_TOLERANCE * self.row_s * (self.rows - 1) / self.channel_hz)
        reach = np.empty((len(off), off.shape[-1]), off.dtype)
        ends(off, shifts, reach)
        same_place = window_max(np.maximum(off.max(axis=(0, 1)), reach.max(axis=0)), self.veto_channels)
        covered = window_max(chord_max(off.max(axis=0), shifts, starts=True), self.veto_channels)
        bent = chord_max(maximum_filter1d(covered, 2 * near + 1, axis=0, mode="nearest"), shifts, starts=False)
        return np.maximum(np.maximum(same_place, bent), self.on_path(off, ON_FRAMES, OFF_FRAMES).max(axis=1))

    def on_path(self, planes: np.ndarray, sources, targets, outside: float = 0.0) -> np.ndarray:
        """For each bin (drift, start channel) of the planes of scans `sources`, the strongest signal of each of
        the planes of scans `targets` (given, in that order) on the bin's path continued in time: where the path is
        when a later scan starts or when an earlier one ends (turboSETI's `find_event` looks for an OFF hit within
        the drift times the elapsed time), whatever that signal's own drift (a bending path keeps its place, not
        its drift), within `veto_channels` plus `path_slack` of the channels extrapolated; `outside` where the
        path has left the band. Returns `(len(sources), len(targets), drifts, channels)`."""
        channels = planes.shape[-1]
        reach = np.empty((len(planes), channels), planes.dtype)
        ends(planes, _scan_shifts(self), reach)  # the strongest signal ending at each channel
        profiles = np.concatenate([planes.max(axis=1), reach])  # ... and starting there: (2 n, channels)
        table = np.concatenate([maximum_filter1d(profiles, 2 * (self.veto_channels + w) + 1, axis=1, mode="constant",
                                                 cval=-np.inf) for w in _slack_steps(channels)])
        rows, shifts = _path_reading(self, channels, tuple(sources), tuple(targets))
        out = np.empty((*rows.shape, channels), planes.dtype)
        _read_paths(table, rows, shifts, outside, out)
        return out

    def _continuous(self, vetoed: np.ndarray) -> float:
        """The strongest signal continuous in time through the ON scans: max over (drift, start channel in the
        first ON scan) of the combined SNR along the continued path (the sum over the ON scans where the path is in
        the band, divided by the square root of their number: a matched filter along the path), after the veto.
        A drift that leaves the band is not held against a needle; a minimum over the scans would be, and would
        sink a faint needle into the noise."""
        later = self.on_path(vetoed[1:], ON_FRAMES[:1], ON_FRAMES[1:], outside=np.nan)[0]
        along = np.concatenate([vetoed[:1], later])
        return float((np.nansum(along, axis=0) / np.sqrt(np.isfinite(along).sum(axis=0))).max())

    def hits(self, scan_plane: np.ndarray, frame: int = 0) -> pd.DataFrame:
        """Local maxima of one scan's de-Doppler plane above the threshold: channel, drift (Hz/s), SNR."""
        peaks = scan_plane == maximum_filter(scan_plane, size=(3, 2 * self.veto_channels + 1), mode="nearest")
        d, c = np.nonzero(peaks & (scan_plane > self.threshold))
        return pd.DataFrame({"frame": frame, "channel": c * self.preprocess.channel_average,
                             "drift_hz_s": self.drift_rates()[d], "snr": scan_plane[d, c]}).sort_values(
            "snr", ascending=False, ignore_index=True)


def _slack_steps(channels: int) -> tuple[int, ...]:
    """The extra channels of the windows a continued path is searched in: 0, 2, 6, 14... up to the band."""
    return tuple(2 ** k - 2 for k in range(1, (channels + 1).bit_length() + 1))  # the last one reaching `channels`


@functools.lru_cache(maxsize=8)
def _scan_shifts(search: Search) -> np.ndarray:
    """The channels each drift row of a plane drifts over one scan (whole channels)."""
    return np.rint(search.drift_rates() / search.channel_hz * (search.rows - 1) * search.row_s).astype(np.int64)


@functools.lru_cache(maxsize=8)
def _crossing_steps(search: Search) -> dict:
    """The channels `crossing_evidence` moves by, for each drift of a quarter plane (`end`: from a segment's start
    to its end; `step`: to the next quarter's start; `to_next`, `from_prev`, for each ON scan: from its last quarter's
    start to the next OFF scan's start, from the previous OFF scan's end to its own start) and for each drift of a
    whole plane (`along`: over a quarter); `nearest`: the quarter drift nearest each whole-plane drift, `near`: the
    quarter drifts within `DRIFT_TOLERANCE`."""
    n, q, start = search.rows, search.rows // 4, search.geometry.frame_start_s
    px = search.drift_rates(q) / search.channel_hz  # channels a second

    def whole(x):
        return np.rint(x).astype(np.int64)

    return {"end": whole(px * (q - 1) * search.row_s), "step": whole(px * q * search.row_s),
            "to_next": [whole(px * (start(on + 1) - start(on) - (n - q) * search.row_s)) for on in ON_FRAMES],
            "from_prev": [whole(px * (start(on) - start(on - 1) - (n - 1) * search.row_s)) for on in ON_FRAMES],
            "along": whole(search.drift_rates() / search.channel_hz * search.row_s * q),
            "nearest": np.abs(search.drift_rates()[:, None] - search.drift_rates(q)[None]).argmin(axis=1),
            "near": int(round(DRIFT_TOLERANCE / (search.channel_hz / search.row_s / (q - 1))))}


@numba.njit(cache=True, boundscheck=False)
def _read_paths(table, rows, shifts, outside, out):
    """out[a, b, d, c] = table[rows[a, b, d], c + shifts[a, b, d]], `outside` where that leaves the band."""
    sources, targets, drifts, channels = out.shape
    for a in range(sources):
        for b in range(targets):
            for d in range(drifts):
                row, shift = rows[a, b, d], shifts[a, b, d]
                for c in range(channels):
                    at = c + shift
                    out[a, b, d, c] = table[row, at] if 0 <= at < channels else outside


@functools.lru_cache(maxsize=16)
def _path_reading(search: Search, channels: int, sources: tuple[int, ...], targets: tuple[int, ...]):
    """Where `on_path` reads its table (windows x (starts, ends) x targets, channels) along each source bin's
    continued path: the row (window wide enough for the channels extrapolated; a later target scan's starts, an
    earlier one's ends) and the channel shift, each `(sources, targets, drifts)`."""
    drifts_px_s = search.drift_rates() / search.channel_hz
    scan_s = (search.rows - 1) * search.row_s
    steps = np.array(_slack_steps(channels))
    n = len(targets)
    rows = np.empty((len(sources), n, len(drifts_px_s)), dtype=np.int64)
    shifts = np.empty_like(rows)
    for a, source in enumerate(sources):
        for b, target in enumerate(targets):
            later = target > source
            elapsed = search.geometry.frame_start_s(target) - search.geometry.frame_start_s(source)
            shift = drifts_px_s * (elapsed + (0 if later else scan_s))
            step = np.minimum(np.searchsorted(steps, search.path_slack * np.abs(shift)), len(steps) - 1)
            rows[a, b] = step * 2 * n + (0 if later else n) + b
            shifts[a, b] = np.rint(shift)
    return rows, shifts


def score_cadences(root, ids: list[str], side: str = "train", search: Search = Search(), progress: bool = True,
                   cache: bool = True, processes: int | None = None) -> pd.DataFrame:
    """The search's three level scores for cadences `ids` of `root`'s `side` (one row per id, in order), spread
    over `processes` worker processes (one per core by default).

    With `cache`, scores are kept beside the training cache (keyed by the source's fingerprint and the search's
    settings; the folder is checked writable before any search): a notebook that scores cadences another one already
    scored reads them back."""
    search = dataclasses.replace(search, geometry=folder_geometry(root))
    path = _scores_file(root, side, search) if cache else None
    if path is not None:
        check_writable(path.parent)
    known = (pd.read_csv(path, dtype={"id": str}, index_col="id") if path is not None and path.is_file()
             else pd.DataFrame(columns=["level1", "level2", "level3"], index=pd.Index([], name="id", dtype=str)))
    todo = [i for i in dict.fromkeys(ids) if i not in known.index]
    rows = map_cadences(search.score, root, todo, side, processes, "de-Doppler search", progress) if todo else []
    if rows:
        known = pd.concat([known.astype(float), pd.DataFrame(rows, index=pd.Index(todo, name="id"))])
        if path is not None:
            tmp = path.with_name(f"{path.name}.partial-{os.getpid()}")
            try:
                known.to_csv(tmp)
                os.replace(tmp, path)
            finally:
                tmp.unlink(missing_ok=True)
    if path is not None and path.is_file():
        touch(path)
    return known.loc[list(ids)].astype(float)


def _scores_file(root, side: str, search: Search) -> Path:
    """Where the search's scores of `root`'s `side` are kept: named by the source, the search's settings and the
    source's fingerprint; older ones of the same settings are retired as the training caches are (`cache.tidy`)."""
    stem = (f"{source_stem(root, side, search.preprocess)}-dedoppler{SCORES_VERSION}-d{search.max_drift_hz_s:g}"
            f"_t{search.threshold:g}_v{search.veto_channels}_s{search.path_slack:g}_w{search.veto_threshold:g}"
            f"_x{search.track_threshold:g}_r{DRIFT_TOLERANCE:g}_n{search.narrowband_channels}e{NARROWBAND_EVERY}")
    key = fingerprint(root, side, side_ids(root, side), search.preprocess)
    tidy(stem, key)
    return cache_root() / f"{stem}-{key}.csv"
