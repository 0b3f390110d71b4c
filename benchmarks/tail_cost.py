"""What the interference tail costs a trained model in recall: needles drawn as the generator draws them (kind, shape,
width, drift; `signals.draw_signal`) at fixed SNRs in the three ON scans, rendered onto the test split's clean
haystacks (none of `continuous`, `rfi`, `drift_rfi`, `off_signal`, `burst`), and scored; the share above the run's
1 % FPR threshold (from its whole test split, whose haystacks carry interference) against the share above the clean
haystacks' own 1 % threshold, by SNR, width and kind. The gap is the recall the interference the model does not
reject costs it; the second share is what the model could find if it rejected all of it.

    .venv/bin/python benchmarks/tail_cost.py RUN_DIR [--data DIR] [--haystacks 300] [--snrs 8 12 20 30] [--seed 3]

RUN_DIR: a training run's folder with `best.pt` and `test_scores.csv` (`seti-nb train`, or a notebook's run such as
`runs/04_efficientnet_transfer-*/cadence-cnn`). Prints cadences/s of the scoring too.
"""

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
from interference_forms import scored  # this folder's: the scripts run as files

from seti_nb import data, metrics
from seti_nb.cadence import ON_FRAMES
from seti_nb.dataset import to_layout
from seti_nb.preprocess import Preprocess
from seti_nb.signals import draw_signal, in_band, render
from seti_nb.study import trained_run
from seti_nb.workbook import ensure_data

SIGNAL_LIKE = "continuous|rfi|off_signal|burst"  # `drift_rfi` is matched by `rfi`


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--data", default="")
    parser.add_argument("--haystacks", type=int, default=300)
    parser.add_argument("--snrs", type=float, nargs="+", default=[8, 12, 20, 30])
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    root = ensure_data(args.data)
    model, meta, test = trained_run(args.run, root)
    preprocess = Preprocess(**meta["preprocess"])
    haystacks = test[test.target == 0]
    threshold = metrics.threshold_at_fpr(test.target, test.score, 0.01)
    clean = haystacks[~haystacks.backgrounds.fillna("").str.contains(SIGNAL_LIKE)]
    clean_threshold = float(np.quantile(clean.score, 0.99))
    scans = [preprocess(data.read_cadence(root, i)) for i in clean.id[: args.haystacks]]
    rng, rows, images = np.random.default_rng(args.seed), [], []
    for snr in args.snrs:
        for x in scans:
            params = draw_signal(rng, ON_FRAMES[0], (snr, snr))
            image = x + render(params, in_band(params, ON_FRAMES), preprocess, rng)
            images.append(to_layout(np.clip(image, -preprocess.clip, preprocess.clip) if preprocess.clip else image,
                                    meta["layout"]))
            rows.append({"snr": snr, "width_hz": params["width_hz"], "kind": params["kind"], "target": 1})
    start = time.perf_counter()
    score = scored(model, images, meta.get("tta", False))
    seconds = time.perf_counter() - start
    table = pd.DataFrame(rows)
    print(f"{args.run}: 1 % FPR threshold {threshold:.4f} (all {len(haystacks)} haystacks); {clean_threshold:.4f} for "
          f"the {len(clean)} clean ones; {len(table)} needles injected into {len(scans)} of them "
          f"({len(table) / seconds:.0f} cadences/s scored)\n")
    table["SNR"] = table.snr
    for by in ("SNR", ("width", "SNR"), ("kind", "SNR")):
        share = pd.DataFrame({name: metrics.recall_by(table, score, bar, by).recall for name, bar in
                              (("above the threshold", threshold), ("above the clean haystacks'", clean_threshold))})
        print(share.round(2).to_string(), "\n")


if __name__ == "__main__":
    main()
