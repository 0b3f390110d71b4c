"""turboSETI itself, through its real API and quietly: its de-Doppler search (`FindDoppler`) of a cadence's six
files and its event filter (`find_event_pipeline`), for the workbook's searches to be measured beside."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np

from .cadence import KAGGLE, N_FRAMES, ON_FRAMES
from .dedoppler import power_of_two_rows
from .preprocess import Preprocess
from .synth import import_setigen


@contextlib.contextmanager
def quiet():
    """turboSETI's and blimpy's prints, log lines and deprecation warnings (numpy, pandas: not ours to fix) held
    back; matplotlib's backend, which turboSETI's modules switch to Agg (every later figure of a notebook would be
    lost), switched back after."""
    import matplotlib  # deferred on purpose, as turboSETI itself (seconds of start-up)

    backend = matplotlib.get_backend()
    held = io.StringIO()
    with contextlib.redirect_stdout(held), contextlib.redirect_stderr(held), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.disable(logging.CRITICAL)
        try:
            yield
        finally:
            logging.disable(logging.NOTSET)
            if matplotlib.get_backend() != backend:
                matplotlib.use(backend)


def turboseti_events(h5s, work, max_drift_hz_s: float = 4.0, snr: float = 10.0, levels=(3,)) -> dict:
    """turboSETI's own search of six files of a cadence (in time order) into the folder `work`: `FindDoppler`'s
    de-Doppler search of each, then `find_event_pipeline` at each filter level; its events table (one row an ON
    hit; None where it finds none) by level."""
    with quiet():
        import_setigen()  # blimpy, without its warning about pkg_resources (it switches matplotlib to Agg, too)
        from turbo_seti.find_doppler.find_doppler import FindDoppler
        from turbo_seti.find_event.find_event_pipeline import find_event_pipeline

        dats = []
        for h5 in map(str, h5s):
            FindDoppler(h5, max_drift=max_drift_hz_s, snr=snr, out_dir=str(work), n_coarse_chan=1,
                        log_level_int=logging.CRITICAL).search()
            dats.append(os.path.join(work, Path(h5).with_suffix(".dat").name))
        for name, files in (("h5.lst", list(map(str, h5s))), ("dat.lst", dats)):
            Path(work, name).write_text("\n".join(files) + "\n")
        return {level: find_event_pipeline(os.path.join(work, "dat.lst"), os.path.join(work, "h5.lst"),
                                           filter_threshold=level, number_in_cadence=N_FRAMES, saving=False)
                for level in levels}


# The preprocessing turboSETI 2.3.2 needs here: it pads a scan's rows to a power of two and fails when that
# exceeds the channels (273 rows -> 512 > 256), so 17 rows are averaged into one (16 rows); each channel's median
# over time is removed first (the bandpass), since turboSETI's SNR is relative to the whole spectrum.
TURBOSETI_PREPROCESS = Preprocess("scan", time_average=17, gain=False)


def turboseti_scores(cadence: np.ndarray, work: str | None = None, max_drift_hz_s: float = 4.0,
                     snr: float = 10.0) -> dict:
    """turboSETI itself on one cadence, through its real API: the six scans written as HDF5 files with setigen,
    then `turboseti_events` at filter levels 1-3. A level's score is the highest SNR among the events it keeps (0
    when it keeps none). `work` is an empty folder for the files (a temporary one, removed after, by default)."""
    if work is None:
        with tempfile.TemporaryDirectory(prefix="turboseti-") as work:
            return turboseti_scores(cadence, work, max_drift_hz_s, snr)
    sg = import_setigen()
    prep = TURBOSETI_PREPROCESS
    h5s = []
    for i, scan in enumerate(prep(cadence)[:, : power_of_two_rows(prep)]):
        frame = sg.Frame.from_data(KAGGLE.channel_hz, KAGGLE.row_seconds * prep.time_average, 6e9, True,
                                   scan.astype(np.float64) + 10)
        frame.t_start = 60000 * 86400 + KAGGLE.frame_start_s(i)  # turboSETI orders the scans by start time
        frame.source_name = "target" if i in ON_FRAMES else f"off{i}"
        h5s.append(os.path.join(work, f"scan{i}.h5"))
        with quiet():
            frame.save_h5(h5s[-1])
    events = turboseti_events(h5s, work, max_drift_hz_s, snr, levels=(1, 2, 3))
    return {f"level{k}": 0.0 if e is None or not len(e) else float(e.SNR.max()) for k, e in events.items()}
