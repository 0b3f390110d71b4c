"""Where a trained model's sensitivity goes: needles drawn as the generator draws them (kind, shape, width, drift, one
to three ON scans; `signals.draw_needle`, no scintillation), each scaled to a fixed matched-filter SNR in the model's
own input (the root sum of squares of its rendered signal, in noise sigmas: what a detector that knew the needle's
exact path and shape would see), and rendered onto pure Gaussian noise and onto the test split's haystacks.

Prints the share found (above a 1 % FPR threshold) by matched-filter SNR: in pure noise at pure noise's own
threshold (the model's sensitivity alone), in pure noise at the run's threshold (from its test split, whose top
haystacks carry interference: what that tail costs), and in the haystacks at the run's threshold (what the
backgrounds around a needle cost too); then, in the haystacks, by each background and by how far the needle's
channels are from the nearest channel the line mask leaves with two pixels or more above 8 sigmas (interference
the model must veto where the needle is).

    .venv/bin/python benchmarks/sensitivity.py RUN_DIR [--data DIR] [--haystacks 600] [--snrs 8 12 16 24] [--seed 5]

RUN_DIR: a training run's folder with `best.pt` and `test_scores.csv` (`seti-nb train`, or a notebook's run such as
`runs/04_efficientnet_transfer-*/cadence-cnn`). About 30 s on two cores.
"""

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from interference_forms import scored  # this folder's: the scripts run as files

from seti_nb import data, metrics
from seti_nb.dataset import to_layout
from seti_nb.preprocess import Preprocess
from seti_nb.signals import draw_needle, in_band, render
from seti_nb.study import trained_run
from seti_nb.synth import BACKGROUNDS
from seti_nb.workbook import ensure_data

BRIGHT = 8.0  # sigmas: a pixel of interference far above any needle of the SNRs drawn here
DISTANCES = (1, 8, 24)  # input channels from the needle's channels to the nearest bright one: 0, 1-7, 8-23, 24+


def unit_needles(n: int, preprocess: Preprocess, rng: np.random.Generator) -> np.ndarray:
    """`n` needles in the model's input, each scaled to a matched-filter SNR of 1: `(n, 6, rows, channels)`."""
    out = []
    while len(out) < n:
        params, on = draw_needle(rng, (8, 80))
        params["scintillating"] = False
        if scans := in_band(params, on):
            signal = render(params, scans, preprocess, rng).astype(np.float64)
            out.append(signal / np.sqrt((signal ** 2).sum()))
    return np.stack(out).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--data", default="")
    parser.add_argument("--haystacks", type=int, default=600)
    parser.add_argument("--snrs", type=float, nargs="+", default=[8, 12, 16, 24])
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()
    root = ensure_data(args.data)
    model, meta, test = trained_run(args.run, root)
    preprocess, tta, rng = Preprocess(**meta["preprocess"]), meta.get("tta", False), np.random.default_rng(args.seed)
    haystacks = test[test.target == 0].sample(min(args.haystacks, int((test.target == 0).sum())), random_state=0)
    scans = np.stack([preprocess(data.read_cadence(root, i)) for i in haystacks.id])
    noise = rng.standard_normal(scans.shape).astype(np.float32)
    units = unit_needles(len(scans), preprocess, rng)

    def found(background: np.ndarray, snr: float, threshold: float) -> np.ndarray:
        x = background + snr * units
        x = np.clip(x, -preprocess.clip, preprocess.clip) if preprocess.clip else x
        return scored(model, [to_layout(image, meta["layout"]) for image in x], tta) > threshold

    threshold = metrics.threshold_at_fpr(test.target, test.score, 0.01)
    own = float(np.quantile(scored(model, [to_layout(image, meta["layout"]) for image in noise], tta), 0.99))
    shares = {snr: {"pure noise, its own threshold": found(noise, snr, own).mean(),
                    "pure noise, the run's threshold": found(noise, snr, threshold).mean()} for snr in args.snrs}
    in_haystacks = pd.DataFrame({snr: found(scans, snr, threshold) for snr in args.snrs})
    for snr in args.snrs:
        shares[snr]["test haystacks, the run's threshold"] = in_haystacks[snr].mean()
    print(f"{args.run}: the run's 1 % FPR threshold {threshold:.4f}, pure noise's {own:.4f}; {len(scans)} needles; "
          "the share found by matched-filter SNR (columns):")
    print(pd.DataFrame(shares).round(2).to_string(), "\n")
    if "backgrounds" in haystacks:  # the generator's truth table: which backgrounds each haystack holds
        present = haystacks.backgrounds.fillna("").to_numpy()
        by_form = {form: {"with it": in_haystacks[has].mean().round(2).tolist(),
                          "without it": in_haystacks[~has].mean().round(2).tolist(), "haystacks": int(has.sum())}
                   for form in BACKGROUNDS if (has := np.array([form in p.split(",") for p in present])).any()}
        print("in the test haystacks, by background (shares at the SNRs above):")
        print(pd.DataFrame(by_form).T.to_string(), "\n")
    masked = (scans == 0).all(axis=(1, 2))
    bright = ((np.abs(scans) > BRIGHT).sum(axis=(1, 2)) > 1) & ~masked  # a line, not a one-row burst
    peak = np.abs(units).max(axis=(1, 2))
    needle = peak > 0.2 * peak.max(axis=1, keepdims=True)
    channel = np.arange(scans.shape[-1])
    distance = np.array([np.abs(channel[n][:, None] - channel[b][None]).min() if b.any() else np.inf
                         for n, b in zip(needle, bright)])
    labels = np.array(["0: on the needle's channels", "1-7", "8-23", "24 or more"])
    group = np.where(np.isfinite(distance), labels[np.searchsorted(DISTANCES, distance, side="right")],
                     "none in the cadence")
    table = in_haystacks.groupby(group).mean().assign(needles=pd.Series(group).value_counts())
    table = table.reindex([*labels, "none in the cadence"]).dropna(how="all")
    print(f"in the test haystacks, by input channels from the needle to the nearest unmasked channel with pixels above "
          f"{BRIGHT:g} sigmas:")
    print(table.round(2).to_string())


if __name__ == "__main__":
    main()
