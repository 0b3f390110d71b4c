"""The geometry of a Breakthrough Listen cadence: scan order, ON/OFF scans, frame shape, channel width, row time.

Like setigen's `OrderedCadence`, the cadence owns its order (A B A C A D: the target star "A" three times, three
other sky positions between) and the time of every row, so a signal's path can be followed across scans. Every
other module takes these facts from here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

ORDER = "ABACAD"
N_FRAMES = len(ORDER)
ON_FRAMES = tuple(i for i, name in enumerate(ORDER) if name == "A")  # (0, 2, 4): pointing at the target
OFF_FRAMES = tuple(i for i, name in enumerate(ORDER) if name != "A")  # (1, 3, 5)


@dataclass(frozen=True)
class Geometry:
    """The grid of a cadence's six scans: `rows` of `row_seconds` by `channels` of `channel_hz`, `slew_seconds`
    between one scan's end and the next one's start. Kaggle's snippets (the default): 273 rows of 1.1 s by 256
    channels of 2.79 Hz. Breakthrough Listen's high-resolution files: 16 rows of 18.25 s at the same channel width
    (`seti-nb synth --like FILE` makes training cadences at a file's geometry; a checkpoint scores only the
    geometry it was trained at)."""

    rows: int = 273
    channels: int = 256
    row_seconds: float = 1.1
    channel_hz: float = 2.7939677238464355
    slew_seconds: float = 15.0

    def __post_init__(self):
        if not (isinstance(self.rows, int) and isinstance(self.channels, int) and self.rows >= 2
                and self.channels >= 16):
            raise ValueError(f"a cadence geometry needs at least 2 rows and 16 channels, got {self.rows!r} x "
                             f"{self.channels!r}")
        numbers = (self.row_seconds, self.channel_hz, self.slew_seconds)
        if not all(isinstance(v, (int, float)) and np.isfinite(v) for v in numbers) or min(numbers[:2]) <= 0 \
                or self.slew_seconds < 0:
            raise ValueError(f"a cadence geometry needs positive row and channel widths and a slew of 0 s or more, "
                             f"got {self.row_seconds!r} s, {self.channel_hz!r} Hz, {self.slew_seconds!r} s")

    @property
    def frame_shape(self) -> tuple[int, int]:
        return self.rows, self.channels

    @property
    def cadence_shape(self) -> tuple[int, int, int]:
        return N_FRAMES, self.rows, self.channels

    @property
    def scan_seconds(self) -> float:
        return self.rows * self.row_seconds

    def frame_start_s(self, frame: int) -> float:
        """Start time of scan `frame` (0-5) from the start of the cadence, in seconds."""
        return frame * (self.scan_seconds + self.slew_seconds)

    def cadence_rows(self, frame: int) -> np.ndarray:
        """Time of each row of scan `frame`, in rows (units of `row_seconds`) from the start of the cadence."""
        return self.frame_start_s(frame) / self.row_seconds + np.arange(self.rows)

    def same_grid(self, other: Geometry) -> bool:
        """The same rows and channels, row time and channel width within 1 % (the slews may differ)."""
        return (self.frame_shape == other.frame_shape and np.isclose(self.row_seconds, other.row_seconds, rtol=0.01)
                and np.isclose(self.channel_hz, other.channel_hz, rtol=0.01))

    def describe(self) -> str:
        return f"{self.rows} rows of {self.row_seconds:.4g} s x {self.channels} channels of {self.channel_hz:.4g} Hz"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, settings, source: str = "geometry") -> Geometry:
        """A geometry from its dict (a data folder's geometry.json, a checkpoint's meta), checked: a ValueError
        naming `source` otherwise."""
        try:
            return cls(**settings)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{source}: not a cadence geometry ({e})") from None


KAGGLE = Geometry()
FRAME_SHAPE = KAGGLE.frame_shape  # time rows x frequency channels of one scan in the Kaggle files
ROWS, CHANNELS = FRAME_SHAPE
CADENCE_SHAPE = KAGGLE.cadence_shape
DF_HZ = KAGGLE.channel_hz  # channel width of Breakthrough Listen's high-resolution product
DT_S = KAGGLE.row_seconds  # row length: 273 rows make one 5-minute scan
SLEW_S = KAGGLE.slew_seconds  # telescope move between scans
SCAN_S = KAGGLE.scan_seconds


def frame_label(i: int) -> str:
    """'ON (A)' / 'OFF (B)' ... for frame i."""
    return f"{'ON' if i in ON_FRAMES else 'OFF'} ({ORDER[i]})"


def frame_start_s(frame: int) -> float:
    """Start time of scan `frame` (0-5) of a Kaggle cadence, in seconds (`Geometry.frame_start_s` for another)."""
    return KAGGLE.frame_start_s(frame)


def cadence_rows(frame: int) -> np.ndarray:
    """Time of each row of scan `frame` of a Kaggle cadence, in rows from its start (`Geometry.cadence_rows`)."""
    return KAGGLE.cadence_rows(frame)


def signal_channels(params, rows: np.ndarray) -> np.ndarray:
    """Centre channel of a signal at cadence times `rows`, from its truth parameters (a dict or a truth row):
    a drift, a curvature and a sine wobble about `channel_ref` at `row_ref`."""
    r = np.asarray(rows, dtype=float) - params["row_ref"]
    return (params["channel_ref"] + params["drift_px"] * r + 0.5 * params["curvature_px"] * r**2
            + params["sine_amp_px"] * np.sin(2 * np.pi * r / params["sine_period_rows"]))
