"""Observation files: a synthetic BL observation written with setigen and blimpy, read back as a cadence, and the
six files checked to belong together (one line for each fault, exit 2 from the command line, nothing written)."""

import shutil

import numpy as np
import pandas as pd
import pytest

from seti_nb.cli import main
from seti_nb.data import DataError
from seti_nb.observation import (
    HIGH_RESOLUTION,
    SLEW_SECONDS,
    _waterfall,
    observation_files,
    read_observation,
    synthesize_observation,
)


@pytest.fixture(scope="module")
def observation(tmp_path_factory):
    """4,096 channels, one signal of each kind."""
    return synthesize_observation(tmp_path_factory.mktemp("obs") / "o", channels=4096, seed=5, needles=1,
                                  interference=1, stationary=1, snr_range=(200, 201), progress=False)


@pytest.mark.parametrize("kind", ["needles", "interference", "stationary"])
def test_a_synthetic_observation_reads_back_as_a_cadence_with_its_signals_where_the_truth_says(kind, tmp_path):
    """One bright signal (one kind an observation, so no other path crosses it): the path, continued in cadence
    time, is bright in the scans the truth names and nowhere else."""
    counts = {"needles": 0, "interference": 0, "stationary": 0, "bursts": 0, kind: 1}
    observation = synthesize_observation(tmp_path / "o", channels=4096, seed=5, snr_range=(200, 201),
                                         progress=False, **counts)
    scans = read_observation(observation_files(observation))
    geometry = scans[0].grid
    assert (geometry.rows, geometry.channels) == (16, 4096)
    assert geometry.channel_hz == pytest.approx(-HIGH_RESOLUTION["channel_hz"])  # descending, as BL's files
    assert [s.source for s in scans] == ["SYNTH-A", "SYNTH-B", "SYNTH-A", "SYNTH-C", "SYNTH-A", "SYNTH-D"]
    data = [_waterfall(s.path).data[:, 0, :] for s in scans]
    for scan in data:  # the coarse channel's centre spike, a bright stationary bin in every scan, left out
        scan[:, geometry.channels // 2 - 1:geometry.channels // 2 + 1] = np.median(scan)
    truth = pd.read_csv(observation / "truth.csv", dtype={"scans": str})
    step = geometry.rows * geometry.row_seconds + SLEW_SECONDS
    for row in truth.itertuples():
        evidence = []
        for i, scan in enumerate(data):  # the path, continued in cadence time, followed row by row
            noise = 1.4826 * np.median(np.abs(scan - np.median(scan)))
            sums = []
            for r in range(geometry.rows):
                centre = int(row.channel + row.drift_hz_s * (i * step + (r + 0.5) * geometry.row_seconds)
                             / geometry.channel_hz)
                sums.append((scan[r, centre - 15:centre + 16] - np.median(scan)).sum())
            evidence.append(np.mean(sums) / (noise * np.sqrt(31 / geometry.rows)))  # in noise sigmas
        bright = [e > 10 for e in evidence]
        assert bright == [str(i) in row.scans.split() for i in range(6)], (row.kind, np.round(evidence, 1))


def test_six_files_that_do_not_make_a_cadence_are_refused_one_line_each(observation, tmp_path):
    files = observation_files(observation)
    other = synthesize_observation(tmp_path / "other", channels=4096, seed=6, needles=0, interference=0,
                                   stationary=0, fch1_mhz=1500.0, progress=False)
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(files[3].read_bytes()[:5000])
    foreign = tmp_path / "foreign.fil"
    foreign.write_bytes(b"HEADER_START but not a filterbank" + bytes(1000))
    cases = {
        "a cadence is six files": files[:5],
        "fch1_mhz 1500.0, but": [*files[:5], observation_files(other)[5]],
        "not after": [files[0], files[2], files[1], *files[3:]],
        "blimpy cannot read it": [*files[:3], truncated, *files[4:]],
        "blimpy cannot read it as a BL": [*files[:5], foreign],
        "observation file not found": [*files[:5], tmp_path / "absent.h5"],
        "not a filterbank": [*files[:5], observation / "truth.csv"],
    }
    for message, paths in cases.items():
        with pytest.raises(DataError, match=message) as err:
            read_observation(paths)
        assert "\n" not in str(err.value)
    # an ON target among the OFF scans (the files in time order, the sources swapped by hand)
    swapped = tmp_path / "swapped"
    shutil.copytree(observation, swapped)
    import h5py

    with h5py.File(observation_files(swapped)[1], "r+") as f:
        f["data"].attrs["source_name"] = "SYNTH-A"
    with pytest.raises(DataError, match="as an OFF scan"):
        read_observation(observation_files(swapped))


def test_the_command_writes_a_new_folder_and_never_over_one(tmp_path, capsys):
    out = tmp_path / "obs"
    assert main(["synth-observation", str(out), "--channels", "2048", "--needles", "1", "--interference", "1",
                 "--stationary", "0"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["0_A.h5", "1_B.h5", "2_A.h5", "3_C.h5", "4_A.h5", "5_D.h5",
                                                     "truth.csv"]
    assert not list(tmp_path.glob("*.partial"))
    assert "wrote six scans" in capsys.readouterr().out
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    assert main(["synth-observation", str(out), "--channels", "2048"]) == 2
    assert "exists; choose a new folder" in capsys.readouterr().err
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before


def test_reading_an_observation_leaves_the_notebooks_figures_alone(observation):
    """setigen's import (which blimpy's reader needs) switches matplotlib to Agg: 07's figures were lost."""
    import subprocess
    import sys

    code = ("import matplotlib; matplotlib.use('svg'); from seti_nb.observation import read_scan; "
            f"read_scan({str(observation_files(observation)[0])!r}); print(matplotlib.get_backend())")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.stdout.strip().splitlines()[-1] == "svg", result.stdout[-500:] + result.stderr[-2000:]
