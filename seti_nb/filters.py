"""Classical computer vision on cadences: derivative operators, smoothing, the study's two denoisers, a score."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .cadence import OFF_FRAMES, ON_FRAMES

# The original study's 3x3 operator: it responds to change along x (frequency), i.e. to vertical lines.
DERIVATIVE_X = np.array([[1, 0, -1], [1, 0, -1], [1, 0, -1]], dtype=np.float32)
DERIVATIVE_Y = np.rot90(DERIVATIVE_X).copy()  # the 90-degree rotation: change along time, horizontal lines


def derivative_kernel(size: int = 3, axis: str = "x") -> np.ndarray:
    """A size x size derivative operator: +1 in the first column, -1 in the last (rotated for `axis='y'`)."""
    if size < 3 or size % 2 == 0:
        raise ValueError(f"kernel size must be odd and at least 3, got {size}")
    kernel = np.zeros((size, size), dtype=np.float32)
    kernel[:, 0], kernel[:, -1] = 1, -1
    if axis == "x":
        return kernel
    if axis == "y":
        return np.rot90(kernel).copy()
    raise ValueError(f"axis must be 'x' or 'y', got {axis!r}")


def convolve(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """2-D convolution of one frame (edges repeat the border pixels)."""
    return ndimage.convolve(np.asarray(image, dtype=np.float32), kernel, mode="nearest")


def smooth(image: np.ndarray, sigma: float = 1.0) -> np.ndarray:
    """Gaussian smoothing; sigma 0 returns the image unchanged."""
    image = np.asarray(image, dtype=np.float32)
    return ndimage.gaussian_filter(image, sigma) if sigma > 0 else image


def merge_similar(image: np.ndarray, strength: float = 1.0) -> np.ndarray:
    """Denoiser (a) of the study: map similar pixel values to one value.

    The tolerance is `strength` times the mean difference between consecutive distinct values; the value
    range is cut into steps of that tolerance from the smallest value, and the values in each step are
    replaced by their mean. Strength 0 returns the image unchanged.
    """
    return apply_filters(image, derivative="none", sigma=0, merge_strength=strength)


def respace(image: np.ndarray) -> np.ndarray:
    """Denoiser (b) of the study: re-space the distinct values evenly, at their mean difference.

    The order of the values is kept and the range is kept, but every step between neighbouring values
    becomes equal: a rank transform that spreads crowded values and packs sparse bright outliers.
    """
    return apply_filters(image, derivative="none", sigma=0, respaced=True)


def _merged(values: np.ndarray, strength: float) -> np.ndarray:
    """`merge_similar` on an image's sorted distinct values: each value's group mean."""
    tolerance = strength * np.diff(values).mean()
    _, group = np.unique(np.floor((values - values[0]) / tolerance), return_inverse=True)
    return (np.bincount(group, weights=values) / np.bincount(group))[group].astype(np.float32)


def _respaced(values: np.ndarray) -> np.ndarray:
    """`respace` on an image's sorted values (repeats allowed: what `_merged` returns)."""
    distinct, rank = np.unique(values, return_inverse=True)
    step = (float(distinct[-1]) - float(distinct[0])) / (len(distinct) - 1)  # the mean difference
    return (distinct[0] + step * np.arange(len(distinct)))[rank].astype(np.float32)


def apply_filters(frame: np.ndarray, derivative: str = "x", size: int = 3, sigma: float = 1.0,
                  merge_strength: float = 0.0, respaced: bool = False) -> np.ndarray:
    """One frame through the playground's chain: denoise (a, then b), smooth, derivative ('x', 'y', 'none').
    Both denoisers map each distinct value to a new one, so they work on the sorted distinct values (one sort)."""
    out = np.asarray(frame, np.float32)
    if merge_strength > 0 or respaced:
        values, inverse = np.unique(out, return_inverse=True)
        if len(values) > 1:
            values = _merged(values, merge_strength) if merge_strength > 0 else values
            values = _respaced(values) if respaced and values[-1] > values[0] else values
            out = values[inverse].reshape(out.shape)
    out = smooth(out, sigma)
    if derivative != "none":
        out = convolve(out, derivative_kernel(size, derivative))
    return out


def filter_cadence(cadence: np.ndarray, **settings) -> np.ndarray:
    """`apply_filters` on each of the six frames."""
    return np.stack([apply_filters(frame, **settings) for frame in cadence])


def line_energy(filtered: np.ndarray) -> np.ndarray:
    """Per frame and channel: the mean absolute filter response down the time axis, shape (6, channels).

    A narrowband signal that stays within a few channels during a scan gives a high value at its channels.
    """
    return np.abs(filtered).mean(axis=1)


def on_off_score(cadence: np.ndarray, veto_channels: int = 4, **settings) -> float:
    """A classical needle score: the largest excess of ON-frame line energy over OFF-frame line energy.

    For each channel: the strongest ON frame minus the strongest OFF frame within +-`veto_channels`
    (interference seen while pointing away vetoes nearby ON energy, as turboSETI's event filter does).
    """
    energy = line_energy(filter_cadence(cadence, **settings))
    on = energy[list(ON_FRAMES)].max(axis=0)
    off = ndimage.maximum_filter1d(energy[list(OFF_FRAMES)].max(axis=0), 2 * veto_channels + 1)
    return float((on - off).max())


def on_off_scores(cadence: np.ndarray, settings: dict[str, dict]) -> dict[str, float]:
    """`on_off_score` of one cadence for each named filter setting."""
    return {name: on_off_score(cadence, **setting) for name, setting in settings.items()}
