"""The geometry of a Breakthrough Listen cadence: scan order, ON/OFF scans, frame shape, channel width, row time.

Like setigen's `OrderedCadence`, the cadence owns its order (A B A C A D: the target star "A" three times, three
other sky positions between) and the time of every row, so a signal's path can be followed across scans. Every
other module takes these facts from here.
"""

from __future__ import annotations

import numpy as np

ORDER = "ABACAD"
N_FRAMES = len(ORDER)
ON_FRAMES = tuple(i for i, name in enumerate(ORDER) if name == "A")  # (0, 2, 4): pointing at the target
OFF_FRAMES = tuple(i for i, name in enumerate(ORDER) if name != "A")  # (1, 3, 5)
FRAME_SHAPE = (273, 256)  # time rows x frequency channels of one scan in the Kaggle files
ROWS, CHANNELS = FRAME_SHAPE
CADENCE_SHAPE = (N_FRAMES, *FRAME_SHAPE)
DF_HZ = 2.7939677238464355  # channel width of Breakthrough Listen's high-resolution product
DT_S = 1.1  # row length: 273 rows make one 5-minute scan
SLEW_S = 15.0  # telescope move between scans
SCAN_S = ROWS * DT_S


def frame_label(i: int) -> str:
    """'ON (A)' / 'OFF (B)' ... for frame i."""
    return f"{'ON' if i in ON_FRAMES else 'OFF'} ({ORDER[i]})"


def frame_start_s(frame: int) -> float:
    """Start time of scan `frame` (0-5) from the start of the cadence, in seconds."""
    return frame * (SCAN_S + SLEW_S)


def cadence_rows(frame: int) -> np.ndarray:
    """Time of each row of scan `frame`, in rows (units of DT_S) from the start of the cadence."""
    return frame_start_s(frame) / DT_S + np.arange(ROWS)


def signal_channels(params, rows: np.ndarray) -> np.ndarray:
    """Centre channel of a signal at cadence times `rows`, from its truth parameters (a dict or a truth row):
    a drift, a curvature and a sine wobble about `channel_ref` at `row_ref`."""
    r = np.asarray(rows, dtype=float) - params["row_ref"]
    return (params["channel_ref"] + params["drift_px"] * r + 0.5 * params["curvature_px"] * r**2
            + params["sine_amp_px"] * np.sin(2 * np.pi * r / params["sine_period_rows"]))
