"""Preprocessing the field uses, one function for the classical and the deep paths: bandpass removal, averaging,
robust scaling and clipping of every scan, and the mask of lines that persist in the OFF scans."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.ndimage import maximum_filter1d, median_filter

from .cadence import FRAME_SHAPE, KAGGLE, N_FRAMES, OFF_FRAMES, Geometry
from .runtime import check_choice, check_number, check_whole

BANDPASS = ("scan", "off", "none")
NARROWBAND_EVERY = 4  # `narrowband` takes its median at every 4th block and interpolates between
# `Preprocess.mask_lines` blanks this many channels either side of a persistent line: half the widest line (about
# 4 channels) and the channel a slowly drifting line moves in a scan, so the line's place in ON scan 0, a scan
# before the first OFF scan it is found in, is blanked too (2 left a copy of such a line there, a needle to a model)
LINE_MASK = 4
MIN_NARROWBAND = 25  # `Preprocess.narrowband`'s smallest window: a needle (up to 12 channels) fills under half of it


@dataclass(frozen=True)
class Preprocess:
    """What is done to a cadence `(6, 273, 256)` before a model or a search sees it, in this order:

    1. bandpass removal: subtract each channel's median over time, of each scan (`"scan"`), or of the three OFF
       scans together fitted to each scan (`"off"`), or nothing (`"none"`). The receiver's bandpass draws the
       vertical stripes of every raw waterfall; a needle, a narrow line that moves, survives the median. With
       `"off"`, a needle that barely drifts survives too (a per-scan median would remove it with the stripes),
       while interference present in the OFF scans is removed from all six. The bandpass keeps its shape from
       pointing to pointing but not its scale (the system temperature changes with the sky), so the OFF scans'
       bandpass is fitted to each scan's own median spectrum (scale, offset and tilt, least squares over the
       channels, where a narrow needle weighs almost nothing) before it is subtracted.
       Then, unless `gain=False`, subtract each row's median over channels: the receiver's gain wandering in time
       and broadband bursts draw horizontal bands; a narrowband needle occupies too few channels to move it.
    2. averaging `time_average` rows and `channel_average` channels into one pixel (a remainder is dropped):
       integrates a slowly drifting needle's power while shrinking the image. With `narrowband` > 0, emission wider
       than about half of `narrowband` channels (of the full resolution) is then removed, as the search removes it
       (`narrowband` below): every needle is narrower, while the wide, scan-to-scan varying emission of real
       haystacks, which no OFF-scan bandpass removes, would otherwise pass for evidence in an ON scan.
    3. robust scaling of every scan to median 0 and noise 1 (1.4826 x the median absolute deviation), so a
       pixel reads in noise sigmas whatever the scan's brightest interference.
    4. clipping to +-`clip` sigmas (0: no clipping), so interference thousands of sigmas bright cannot dominate.
    5. with `mask_lines` > 0, every channel within `LINE_MASK` channels of a persistent line of the raw OFF scans
       (`persistent_lines` at `mask_lines` sigmas) set to 0 in all six scans: the `"off"` bandpass removes such a
       line from the OFF scans and leaves a faint copy in the ON scans whose scale differs, which looks like a
       needle that does not drift; the line's OFF evidence is gone once the bandpass is removed, so it is read
       from the raw scans, as the search reads it (`dedoppler.Search.persistent_evidence`).
    """

    bandpass: str = "scan"
    time_average: int = 1
    channel_average: int = 1
    clip: float = 0.0
    gain: bool = True
    narrowband: int = 0
    mask_lines: float = 0.0

    def __post_init__(self):
        check_choice("bandpass", self.bandpass, BANDPASS)
        for name, limit in (("time_average", FRAME_SHAPE[0]), ("channel_average", FRAME_SHAPE[1])):
            check_whole(name, getattr(self, name))
            if getattr(self, name) > limit:
                raise ValueError(f"{name} must be at most {limit} (the {name.split('_')[0]} axis of a scan), "
                                 f"got {getattr(self, name)}")
        check_number("clip", self.clip, 0, 1e6)  # 0: no clipping
        check_whole("narrowband", self.narrowband, 0)
        check_number("mask_lines", self.mask_lines, 0, 1e6)  # 0: no mask
        if 0 < self.narrowband < MIN_NARROWBAND:
            raise ValueError(f"narrowband must be 0 (off) or at least {MIN_NARROWBAND} channels (twice a needle's "
                             f"width at most, or it is taken for wide emission and removed), got {self.narrowband}")

    def shape(self, geometry: Geometry = KAGGLE) -> tuple[int, int]:
        """(rows, channels) of one preprocessed scan of a cadence of `geometry`."""
        rows, channels = geometry.rows // self.time_average, geometry.channels // self.channel_average
        if not rows or not channels:
            raise ValueError(f"averaging {self.time_average} rows and {self.channel_average} channels leaves nothing "
                             f"of a scan of {geometry.describe()}")
        return rows, channels

    @property
    def full_resolution(self) -> bool:
        return self.time_average == self.channel_average == 1

    def key(self) -> str:
        """A short name that tells preprocessings apart (cache folders, checkpoints)."""
        return (f"bp-{self.bandpass}{'-gain' if self.gain else ''}_t{self.time_average}_c{self.channel_average}"
                f"_clip{self.clip:g}" + (f"_nb{self.narrowband}" if self.narrowband else "")
                + (f"_mask{self.mask_lines:g}" if self.mask_lines else ""))

    def to_dict(self) -> dict:
        return asdict(self)

    def __call__(self, cadence: np.ndarray) -> np.ndarray:
        """The preprocessed cadence, float32 `(frames, rows // time_average, channels // channel_average)`.

        Works on any number of frames (the six of a cadence, or a subset); `"off"` and `mask_lines` need all six.
        """
        x = np.asarray(cadence, dtype=np.float32)
        for needs, what in ((self.bandpass == "off", "bandpass='off'"), (self.mask_lines, "mask_lines")):
            if needs and len(x) != N_FRAMES:
                raise ValueError(f"{what} needs all six frames of a cadence")
        lines = persistent_lines(x, self.mask_lines) if self.mask_lines else None
        if self.bandpass == "scan":
            x = x - time_median(x)[:, None, :]
        elif self.bandpass == "off":
            x = x - fitted_bandpass(x)[:, None, :]
        if self.gain:
            x = x - median(x)[..., None]
        x = average(x, self.time_average, self.channel_average)
        if self.narrowband:  # the search's 8-row blocks, or a row where rows are averaged already
            x = narrowband(x, self.narrowband // self.channel_average, max(1, 8 // self.time_average))
        flat = x.reshape(len(x), -1)
        centre = median(flat)[:, None, None]
        spread = 1.4826 * median(np.abs(flat - centre[:, 0]))[:, None, None]
        x = (x - centre) / np.maximum(spread, 1e-6)
        if self.clip:
            np.clip(x, -self.clip, self.clip, out=x)
        if lines is not None:
            masked = maximum_filter1d((lines > 0).astype(np.uint8), 2 * LINE_MASK + 1).astype(bool)
            x[..., masked[: x.shape[-1] * self.channel_average].reshape(-1, self.channel_average).any(1)] = 0.0
        return x


def fitted_bandpass(x: np.ndarray) -> np.ndarray:
    """The OFF scans' bandpass (each channel's median over their rows) fitted to each scan's own mean spectrum as
    scale x bandpass + offset + tilt (least squares over the channels; a burst shifts a mean spectrum evenly, which
    the offset takes, and a narrow needle weighs almost nothing in three parameters over the band):
    `(6, rows, channels)` -> `(6, channels)`."""
    channels = x.shape[-1]
    reference = time_median(x[list(OFF_FRAMES)].reshape(1, -1, channels))[0]
    design = np.stack([reference, np.ones(channels, np.float32), np.linspace(-1, 1, channels, dtype=np.float32)], 1)
    coefficients = np.linalg.lstsq(design, x.mean(axis=1).T, rcond=None)[0]
    return (design @ coefficients).T.astype(np.float32)


def persistent_lines(cadence: np.ndarray, threshold: float, window: int = 15) -> np.ndarray:
    """How strong a persistent narrowband line each channel of a raw cadence `(6, rows, channels)` holds in its OFF
    scans, in a pixel's noise: the largest excess of an OFF scan's median spectrum over its running median (over
    `window` channels) where it exceeds `threshold` times both a pixel's noise (robust, from the OFF scans' row-to-row
    differences) and the excess's own spread over the band (the bandpass's channel-to-channel scatter, which its
    fitted scale takes care of); 0 elsewhere. `fitted_bandpass` removes such a line from the OFF scans, and the
    scale it fits to each scan leaves a faint copy of it, still, in the scans whose scale differs, ON ones among
    them: OFF evidence to read before the bandpass is removed."""
    off = np.asarray(cadence, np.float32)[list(OFF_FRAMES)]
    reference = time_median(off)
    excess = reference - median_filter(reference, (1, window), mode="nearest")
    noise = max(1.4826 * median(np.abs(np.diff(off, axis=1)).ravel()) / np.sqrt(2), 1e-12)
    spread = 1.4826 * median(np.abs(excess - median(excess.ravel())).ravel())
    return np.where(excess > threshold * max(noise, spread), excess / noise, 0.0).max(axis=0)


def time_median(x: np.ndarray) -> np.ndarray:
    """Each channel's median over time, `(frames, rows, channels)` -> `(frames, channels)`."""
    return median(np.ascontiguousarray(np.swapaxes(x, 1, 2)))


def median(x: np.ndarray) -> np.ndarray:
    """The median along the last axis, exactly np.median's, four to seven times faster: NumPy's partition around
    one index is vectorised, around two (np.median's way for an even count) it is not; the lower middle value of
    an even count is the largest of the lower half."""
    k = x.shape[-1] // 2
    part = np.partition(x, k, axis=-1)
    if x.shape[-1] % 2:
        return part[..., k]
    return (part[..., :k].max(axis=-1) + part[..., k]) / 2


def average(x: np.ndarray, rows: int = 1, channels: int = 1) -> np.ndarray:
    """Average blocks of `rows` x `channels` pixels of the last two axes (a remainder is dropped).

    A few whole-array additions, one per channel and row offset in the block, nine times faster than np.mean over
    the block axes and equal to it to float32 rounding (bit for bit with fewer than 8 channels a block, as in
    every profile of the workbook: the same additions in the same order).
    """
    if rows == channels == 1:
        return x
    h, w = x.shape[-2] // rows, x.shape[-1] // channels
    blocks = x[..., : h * rows, : w * channels].reshape(*x.shape[:-2], h, rows, w, channels)
    across = blocks[..., 0].copy()
    for c in range(1, channels):
        across += blocks[..., c]
    total = across[..., 0, :].copy()
    for r in range(1, rows):
        total += across[..., r, :]
    return total / (rows * channels)


def narrowband(x: np.ndarray, channels: int, rows: int = 8, every: int = NARROWBAND_EVERY) -> np.ndarray:
    """Scans `(frames, rows, channels)` without emission wider than about `channels` / 2: blocks of `rows` rows x 2
    channels averaged, their running median over `channels` channels (the band's edges by their nearest value)
    subtracted. A narrowband signal, narrower than half the window, leaves the median alone and passes; a smooth
    bump over part of the band for part of a scan (the wide emission the real haystacks show, which a de-Doppler
    sum takes for a drifting signal) goes. The median is taken at every `every`-th block only and interpolated
    linearly between (it changes slowly over a window 8 times wider: 6 times faster than scipy's `median_filter`
    at every block, within 0.02 sigma of it rms and 0.4 at most in a cadence of unit noise). `channels` 0: unchanged."""
    r, c = x.shape[-2:]
    if not channels or c < 2:
        return x
    step, half = min(rows, r), channels // 2 | 1
    blocks = average(x, step, 2)
    width = blocks.shape[-1]
    padded = np.pad(blocks, ((0, 0), (0, 0), (half // 2, half // 2)), mode="edge")
    at = np.unique(np.r_[np.arange(0, width, every), width - 1])  # the blocks the median is taken at
    windows = np.lib.stride_tricks.sliding_window_view(padded, half, axis=-1)[..., at, :]
    median = np.partition(windows, half // 2, axis=-1)[..., half // 2]
    right = np.clip(np.searchsorted(at, np.arange(width), side="right"), 1, len(at) - 1)
    weight = ((np.arange(width) - at[right - 1]) / np.maximum(at[right] - at[right - 1], 1)).astype(np.float32)
    base = median[..., right - 1] * (1 - weight) + median[..., right] * weight
    base = np.repeat(np.repeat(base, step, axis=1), 2, axis=2)
    return x - np.pad(base, ((0, 0), (0, r - base.shape[1]), (0, c - base.shape[2])), mode="edge")
