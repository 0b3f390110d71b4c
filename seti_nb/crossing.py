"""The ON/OFF rule at the scan boundaries: a track that runs out of an ON scan into a neighbouring OFF scan (or in
from one) is interference, however it bends.

The search's whole-scan veto extrapolates an ON bin's straight line into the OFF scans; a path that bends (a sine
of tens of channels) leaves that line, and its best whole-scan bin is a chord whose ends are far from the track's.
Here the track is followed instead: de-Doppler planes of each quarter of a scan (a quarter of a bending path is
nearly straight) link the ON scan's last quarter to the next OFF scan's first one within the drift times the time
between them (turboSETI's `find_event` rule on short segments), then back quarter by quarter through the ON scan
(and likewise from the previous OFF scan's end forward). An ON bin whose path meets such a track in some quarter,
drifting as the track does there, is vetoed by its strength (`dedoppler.Search.crossing_evidence`). A needle that
crosses a track keeps its score unless a quarter segment bridges the two (starts on one, ends on the other: where
they cross near a quarter's start); then it is vetoed. Planes are in SNR units; `bar` is the SNR a quarter segment
needs to count (noise in a quarter plane is skewed: its highest of some 65,000 bins reaches 5.5-6 sigmas).
"""

from __future__ import annotations

import numba
import numpy as np
from scipy.ndimage import maximum_filter1d


@numba.njit(cache=True, boundscheck=False)
def ends(planes, shifts, out):
    """out[k, c]: the strongest bin of plane k whose path ends at channel c (starts at c - shifts[drift])."""
    n, drifts, channels = planes.shape
    for k in range(n):
        out[k, :] = 0.0
        for d in range(drifts):
            for c in range(max(0, shifts[d]), min(channels, channels + shifts[d])):
                out[k, c] = max(out[k, c], planes[k, d, c - shifts[d]])


def window_max(profile: np.ndarray, half: int) -> np.ndarray:
    """The maximum over +-`half` channels around every channel (-inf beyond the band)."""
    return maximum_filter1d(profile, 2 * half + 1, axis=-1, mode="constant", cval=-np.inf)


def chord_max(rows: np.ndarray, shifts, starts: bool) -> np.ndarray:
    """For each row d of `rows` `(drifts, channels)`, a plane's bins by drift and start channel, whose chord runs
    from its start c to c + shifts[d]: with `starts`, at each channel x the strongest bin whose chord covers x;
    without, at each start c the strongest value of the row over the channels its chord covers."""
    out = np.empty_like(rows)
    for d, shift in enumerate(shifts):
        size = abs(int(shift)) + 1
        before = (shift >= 0) == starts  # the window lies at and before the channel
        out[d] = maximum_filter1d(rows[d], size, mode="constant", cval=-np.inf,
                                  origin=(size - 1) // 2 if before else -(size // 2))
    return out


def read_shifted(profile: np.ndarray, shifts: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """out[d, c] = profile[c + shifts[d]] (-inf where that leaves the band); into a given `out`, its maximum with
    what it holds."""
    if out is None:
        out = np.full((len(shifts), profile.shape[-1]), -np.inf, np.float32)
    shifts = np.asarray(shifts, np.int64)
    max_rows_shifted(np.asarray(profile, np.float32)[None], np.zeros_like(shifts), shifts, out)
    return out


def crossing_tracks(quarters: np.ndarray, next_start, prev_end, to_next: np.ndarray, from_prev: np.ndarray,
                    step: np.ndarray, bar: float, link: int) -> np.ndarray:
    """For one ON scan, `(4, drifts, channels)`: the strength (the weakest of its segments) of a track that crosses
    into a neighbouring OFF scan, at each quarter's segment (drift, first channel) on it; below `bar` off every
    such track.

    `quarters`: the ON scan's quarter planes `(4, drifts, channels)`; `next_start`: the strongest segment starting
    at each channel in the next OFF scan's first quarter (None after the last ON scan); `prev_end`: the strongest
    one ending at each channel in the previous OFF scan's last quarter (None before the first); `to_next[d]`,
    `from_prev[d]`: the channels a segment of drift d moves from its start to the next OFF scan's start, and from
    the previous OFF scan's end to its own start; `step[d]`: from one quarter's start to the next's. Two segments
    of neighbouring quarters join when one ends within `link` channels of where the other starts, whatever their
    drifts (a bending track turns by up to a channel a row from one quarter to the next; requiring their drifts to
    agree within 0.5 Hz/s let 2.25 % of the twins through, against 1 %)."""
    strong = np.where(quarters >= bar, quarters, -np.inf)
    out = np.full(quarters.shape, -np.inf, np.float32)
    if next_start is not None:  # back from the last quarter, which runs into the next OFF scan
        track = read_shifted(window_max(next_start, link), to_next)
        for q in (3, 2, 1, 0):
            values = np.minimum(strong[q], track)
            np.maximum(out[q], values, out=out[q])
            if values.max() < bar:
                break  # the track ends here
            track = read_shifted(window_max(values.max(axis=0), link), step)
    if prev_end is not None:  # on from the first quarter, which the previous OFF scan runs into
        values = np.minimum(strong[0], read_shifted(window_max(prev_end, link), -from_prev))
        for q in (0, 1, 2, 3):
            if q:
                reach = np.empty((1, values.shape[-1]), np.float32)
                ends(np.where(np.isfinite(values), values, 0).astype(np.float32)[None], step, reach)
                values = np.minimum(strong[q], window_max(reach[0], link)[None])
            np.maximum(out[q], values, out=out[q])
            if values.max() < bar:
                break
    return np.where(np.isfinite(out), out, 0.0).astype(np.float32)


@numba.njit(cache=True, boundscheck=False)
def max_rows_shifted(table, rows, shifts, out):
    """out[d, c] = max(out[d, c], table[rows[d], c + shifts[d]]) where that is in the band."""
    drifts, channels = out.shape
    for d in range(drifts):
        for c in range(max(0, -shifts[d]), min(channels, channels - shifts[d])):
            out[d, c] = max(out[d, c], table[rows[d], c + shifts[d]])
