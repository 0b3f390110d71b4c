"""Breakthrough Listen observation files as a cadence: six scans (A B A C A D), one filterbank (.fil) or HDF5 file
(.h5, bitshuffle-compressed as BL's are) each, read with blimpy and checked to belong together; and a synthetic
observation written with setigen, with its truth table, to try a search on.

Everything the Kaggle snippets fix (273 rows, 256 channels) comes here from the file headers: an observation's
`Grid` (BL's high-resolution product: 16 rows of 18.25 s, channels of 2.79 Hz, 1,048,576 to a coarse channel).
"""

from __future__ import annotations

import contextlib
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

with contextlib.suppress(ImportError):  # registers the bitshuffle filter with h5py before blimpy opens a BL file
    import hdf5plugin  # noqa: F401  (without it, `read_scan` names a file that needs it)

from .cadence import N_FRAMES, ON_FRAMES, Geometry
from .data import DataError
from .runtime import check_whole, progress_bar
from .synth import import_setigen

SUFFIXES = (".h5", ".fil")
SCAN_NAMES = ("A", "B", "A", "C", "A", "D")  # the targets of a cadence: A the star, B C D three other positions
HIGH_RESOLUTION = {"channel_hz": 2.7939677238464355, "row_seconds": 18.253611008, "rows": 16}  # BL's product
SLEW_SECONDS = 20.0  # between the end of one scan and the start of the next
VERSION = 2  # of the synthetic observation: bump it when a change alters the files a seed gives


@contextlib.contextmanager
def _quiet():
    """blimpy's and hdf5plugin's log lines (a line a file written, a deprecation inside blimpy) held back; errors
    still raise."""
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)


def _waterfall(path: Path, **kwargs):
    import_setigen()  # blimpy comes with it, without its warning about pkg_resources
    from blimpy import Waterfall

    with _quiet():
        return Waterfall(str(path), **kwargs)


@dataclass(frozen=True)
class Grid:
    """A scan's grid from its header: `rows` of `row_seconds`, `channels` of `channel_hz` from `fch1_mhz` (a
    negative `channel_hz` for a band that descends, as BL's files do)."""

    rows: int
    channels: int
    row_seconds: float
    channel_hz: float
    fch1_mhz: float

    @property
    def band_mhz(self) -> tuple[float, float]:
        edge = self.fch1_mhz + self.channels * self.channel_hz / 1e6
        return min(self.fch1_mhz, edge), max(self.fch1_mhz, edge)

    @property
    def rows_searched(self) -> int:
        """The rows a search takes: a power of two (what the Taylor tree takes), the first of the scan."""
        return 1 << int(np.log2(self.rows))

    def cadence_geometry(self, slew_seconds: float = SLEW_SECONDS, channels: int = 256) -> Geometry:
        """The geometry of Kaggle-layout snippets of this grid: the rows searched by `channels` channels of its
        width, scans `slew_seconds` apart (what `seti-nb synth --like` makes and `seti-nb scan --snippets` cuts)."""
        return Geometry(self.rows_searched, channels, self.row_seconds, abs(self.channel_hz), slew_seconds)


@dataclass(frozen=True)
class Scan:
    """One observation file's header: where it is, its grid, the source it points at, when it starts."""

    path: Path
    grid: Grid
    source: str
    tstart_mjd: float


FILTERS = {32008: "bitshuffle", 32001: "blosc", 32004: "lz4"}  # those BL's and blimpy's files use


def _missing_filters(path: Path) -> list[int]:
    """The compression filters of an HDF5 file's data that h5py cannot decode here (none, with hdf5plugin)."""
    import h5py

    with h5py.File(path, "r") as f:
        plist = f["data"].id.get_create_plist()
        used = [plist.get_filter(i)[0] for i in range(plist.get_nfilters())]
    return [code for code in used if not h5py.h5z.filter_avail(code)]


def read_scan(path: str | Path) -> Scan:
    """One scan's header (the data stay on disk), checked: the file exists, blimpy reads it, it holds one
    polarisation product on a grid of at least two rows."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: observation file not found")
    if path.suffix not in SUFFIXES:
        raise DataError(f"{path}: not a filterbank (.fil) or HDF5 (.h5) file")
    try:
        waterfall = _waterfall(path, load_data=False)
        header, rows = waterfall.header, int(waterfall.n_ints_in_file)
    except Exception as e:  # blimpy raises bare Exceptions, OSErrors, KeyErrors and ValueErrors for damaged files
        text = (str(e).splitlines() or [type(e).__name__])[0][:120]
        raise DataError(f"{path}: blimpy cannot read it as a BL observation ({text})") from None
    missing = _missing_filters(path) if path.suffix == ".h5" else []
    if missing:
        raise DataError(f"{path}: compressed with HDF5 filter {missing[0]} ({FILTERS.get(missing[0], 'unknown')}), "
                        "which this Python's h5py cannot decode: pip install hdf5plugin")
    if int(header.get("nifs", 1)) != 1:
        raise DataError(f"{path}: {header['nifs']} polarisation products; the search takes one (Stokes I)")
    grid = Grid(rows, int(header["nchans"]), float(header["tsamp"]), float(header["foff"]) * 1e6,
                        float(header["fch1"]))
    if rows < 2 or grid.channels < 1 or not np.isfinite([grid.row_seconds, grid.channel_hz]).all():
        raise DataError(f"{path}: a grid of {rows} rows x {grid.channels} channels of {grid.channel_hz} Hz "
                        f"and {grid.row_seconds} s: not an observation a search can use")
    source = header.get("source_name", "")
    source = source.decode() if isinstance(source, bytes) else str(source)
    return Scan(path, grid, source.strip(), float(header["tstart"]))


def read_observation(paths) -> list[Scan]:
    """The six scans of a cadence in the order given (ON OFF ON OFF ON OFF), checked to belong together: one grid
    (band, resolution, rows), in time order, the ON scans pointing at one source and the OFF scans elsewhere (where
    the headers name their sources)."""
    paths = [Path(p) for p in paths]
    if len(paths) != N_FRAMES:
        raise DataError(f"a cadence is six files (ON OFF ON OFF ON OFF: A B A C A D), got {len(paths)}")
    scans = [read_scan(p) for p in paths]
    first = scans[0]
    for scan in scans[1:]:
        for field, value in vars(scan.grid).items():
            if value != getattr(first.grid, field):
                raise DataError(f"{scan.path}: {field} {value}, but {first.path} has {getattr(first.grid, field)}: "
                                "the six files of a cadence share one band, resolution and number of rows")
    for before, after in zip(scans, scans[1:]):
        if after.tstart_mjd <= before.tstart_mjd:
            raise DataError(f"{after.path}: starts at MJD {after.tstart_mjd}, not after {before.path} (MJD "
                            f"{before.tstart_mjd}): give the six files in time order")
    target = first.source
    for i, scan in enumerate(scans):
        if target and scan.source and (scan.source == target) != (i in ON_FRAMES):
            role = "an ON scan" if i in ON_FRAMES else "an OFF scan"
            raise DataError(f"{scan.path}: points at {scan.source!r} as {role}, but the first ON scan points at "
                            f"{target!r}: the order must be ON OFF ON OFF ON OFF (A B A C A D)")
    return scans


def _coarse_bandpass(channels: int) -> np.ndarray:
    """The shape of one coarse channel of BL's polyphase filterbank: flat, rolling off at both edges, with the
    spike at its centre that every BL coarse channel shows (the DC bin)."""
    x = np.linspace(-1, 1, channels)
    shape = 1 - 0.6 * np.abs(x) ** 16
    shape[channels // 2] *= 4.0
    return shape


def _draw(frames: list, kind: str, rng: np.random.Generator, snr_range: tuple[float, float],
          tstart: list[float]) -> dict:
    """One signal's parameters, drawn: a drift up to 4 Hz/s (none for a stationary line) and a channel (the file's,
    at the first scan's start) that keep its path in the band, an SNR log-uniform in `snr_range`, a width of 3-20
    Hz."""
    first = frames[0]
    duration = tstart[-1] + first.tchans * first.dt
    fastest = min(4.0, (first.fchans / 2 - 200) * first.df / duration)  # a path that stays in the band
    drift = 0.0 if kind == "stationary" else float(rng.uniform(-fastest, fastest))
    snr = float(np.exp(rng.uniform(*np.log(snr_range))))
    width = float(rng.uniform(3, 20))
    margin = abs(drift) * duration / first.df + 200
    return {"kind": kind, "channel": first.fchans - 1 - int(rng.uniform(margin, first.fchans - margin)),
            "drift_hz_s": drift, "snr": snr, "width_hz": width}


def _signal(frames: list, kind: str, channel: int, drift_hz_s: float, snr: float, width_hz: float,
            tstart: list[float]) -> dict:
    """Add one signal, continuous in cadence time (its frequency at `tstart[i]` seconds after the first scan's
    start follows from its drift), to the scans where it is (a needle: the ON scans; interference: all six; a
    stationary line: all six, no drift), from the file's `channel` at the first scan's start; returns its truth
    row."""
    first = frames[0]
    drift, width = drift_hz_s, width_hz
    channel = first.fchans - 1 - channel  # setigen counts channels up in frequency; the files, as BL's, down
    f0 = first.get_frequency(channel)
    scans = ON_FRAMES if kind == "needle" else tuple(range(N_FRAMES))
    stg = import_setigen()
    for i in scans:
        scan = frames[i]
        start = f0 + drift * tstart[i]
        reach = abs(drift) * scan.tchans * scan.dt + 10 * width
        lo, hi = sorted((scan.get_index(start - reach), scan.get_index(start + reach)))
        scan.add_signal(stg.constant_path(f_start=start, drift_rate=drift), stg.constant_t_profile(
            level=scan.get_intensity(snr=snr)), stg.gaussian_f_profile(width=width),
            bounding_f_range=(scan.get_frequency(max(lo, 0)), scan.get_frequency(min(hi, scan.fchans - 1))),
            doppler_smearing=abs(drift) * scan.dt > scan.df)  # a path faster than a channel a row smears
    return {"kind": kind, "frequency_mhz": f0 / 1e6, "channel": first.fchans - 1 - channel, "drift_hz_s": drift,
            "snr": snr, "width_hz": width, "scans": " ".join(map(str, scans))}


def synthesize_observation(out: str | Path, channels: int = 2**20, seed: int = 0, needles: int = 20,
                           interference: int = 20, stationary: int = 10, bursts: int = 4,
                           snr_range: tuple[float, float] = (10, 60), fch1_mhz: float = 1420.0, signals=(),
                           progress: bool = True) -> Path:
    """Six `.h5` files of a cadence (A B A C A D) at BL's high resolution with setigen: noise drawn from real GBT
    statistics (`add_noise_from_obs`), the shape of a coarse channel, `needles` signals in the ON scans only,
    `interference` signals continuous in cadence time through all six (the canonical interference),
    `stationary` lines, `bursts` broadband bursts (`_burst`) and the `signals` given (dicts of kind, channel (the
    file's, at the first scan's start), drift_hz_s, snr, width_hz); `truth.csv` lists them. Written into a new
    folder `out` (atomically: a stopped run leaves nothing behind)."""
    stg = import_setigen()
    from astropy import units as u

    check_whole("channels", channels, 1024)
    out = Path(out)
    if out.exists():
        raise FileExistsError(f"{out}: exists; choose a new folder")
    rng = np.random.default_rng(seed)
    rows, dt, df = HIGH_RESOLUTION["rows"], HIGH_RESOLUTION["row_seconds"], HIGH_RESOLUTION["channel_hz"]
    mjd0 = 60000.0
    tstart = [i * (rows * dt + SLEW_SECONDS) for i in range(N_FRAMES)]  # seconds from the first scan's start
    frames = []
    for i, name in enumerate(SCAN_NAMES):
        frame = stg.Frame(fchans=channels, tchans=rows, df=df * u.Hz, dt=dt * u.s, fch1=fch1_mhz * u.MHz,
                          mjd=mjd0 + tstart[i] / 86400, source_name=f"SYNTH-{name}", seed=int(rng.integers(2**31)))
        frame.add_noise_from_obs()
        frames.append(frame)
    kinds = ["needle"] * needles + ["interference"] * interference + ["stationary"] * stationary
    drawn = [_draw(frames, kind, rng, snr_range, tstart) for kind in kinds] + list(signals)
    truth = pd.DataFrame([_signal(frames, **signal, tstart=tstart)
                          for signal in progress_bar(drawn, desc="signals", disable=not progress)]
                         + [_burst(frames, rng) for _ in range(bursts)])
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        shape = _coarse_bandpass(channels)
        for i, frame in enumerate(frames):
            frame.data = (frame.data * shape).astype(np.float32)
            with _quiet():
                frame.save_h5(str(partial / f"{i}_{SCAN_NAMES[i]}.h5"))
        truth.to_csv(partial / "truth.csv", index=False)
        partial.rename(out)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return out


def _burst(frames: list, rng: np.random.Generator) -> dict:
    """A broadband burst (radar, a switching transient) in one scan, ON or OFF: one to three rows, 2-20 noise sigma
    a channel (log-uniform: `snr` in its truth row) over a tenth of the band to all of it (`width_hz` about its
    `frequency_mhz`). A search must not see a drifting signal in it."""
    i = int(rng.integers(N_FRAMES))
    scan = frames[i]
    span = int(scan.fchans * rng.uniform(0.1, 1))
    lo, row = int(rng.integers(0, scan.fchans - span + 1)), int(rng.integers(scan.tchans))
    rows = int(rng.integers(1, 4))
    level = float(np.exp(rng.uniform(np.log(2), np.log(20))))
    scan.data[row:row + rows, lo:lo + span] += level * scan.noise_std
    centre = lo + span // 2
    return {"kind": "burst", "frequency_mhz": scan.get_frequency(centre) / 1e6, "channel": scan.fchans - 1 - centre,
            "drift_hz_s": 0.0, "snr": level, "width_hz": span * scan.df, "scans": str(i)}


def observation_files(folder: str | Path) -> list[Path]:
    """The six scan files a synthetic observation's folder holds, in time order."""
    return sorted(Path(folder).glob("[0-5]_[ABCD].h5"))
