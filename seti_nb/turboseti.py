"""turboSETI itself, through its real API and quietly: its de-Doppler search (`FindDoppler`) of a cadence's six
files and its event filter (`find_event_pipeline`), for the workbook's searches to be measured beside."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from pathlib import Path

from .cadence import N_FRAMES
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
