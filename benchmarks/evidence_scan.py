"""Which ON scan a trained cadence-cnn takes its evidence from: for the test split's highest-scoring haystacks and,
for comparison, its needles above the run's 1 % FPR threshold, the ON scan whose place-pooled evidence (the head's
features at their strongest place, weighted as the final layer weighs their maximum over the ON scans) is largest.
A continuous signal is interference wherever it is seen: a model that vetoes it in ON 2 and ON 4, which have an OFF
scan on either side, but not in ON 0, which has one after it only, shows its false positives piled on ON 0.

    .venv/bin/python benchmarks/evidence_scan.py RUN_DIR [--data DIR] [--top 24]

RUN_DIR: a cadence-cnn run's folder with `best.pt` and `test_scores.csv` (e.g. `runs/04_efficientnet_transfer-*/
cadence-cnn`); the input as given (no frequency mirror). About 20 s on two cores. Measured (04's best run of
75d614e, seed 0, threshold 0.843): of its 24 highest-scoring haystacks (the 22 above the threshold among them, 21
of them with continuous interference), 18 take their evidence from ON 0, 3 from ON 2, 3 from ON 4; of its 154
needles above the threshold, 95 (62 %) from ON 0, 26 from ON 2, 33 from ON 4.
"""

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from seti_nb import data, metrics
from seti_nb.cadence import ON_FRAMES
from seti_nb.dataset import to_layout
from seti_nb.models import CadenceCNN
from seti_nb.preprocess import Preprocess
from seti_nb.study import trained_run
from seti_nb.workbook import ensure_data


@torch.no_grad()
def evidence_scan(model: CadenceCNN, preprocess: Preprocess, root, ids) -> pd.Series:
    """The ON scan (0, 2 or 4) of each cadence whose pooled head features the final layer's maximum term reads most."""
    heads = []
    hook = model.head[-1].register_forward_hook(lambda module, inputs, output: heads.append(output))
    try:
        for i in ids:
            model(torch.from_numpy(to_layout(preprocess(data.read_cadence(root, i)), "frames"))[None])
    finally:
        hook.remove()
    if not heads:  # no cadence to read (a run with no needle above its threshold)
        return pd.Series([], dtype=int, name="ON scan")
    width = heads[0].shape[1]
    weight = model.fc.weight[0, :width]  # on the features' maximum over the ON scans
    per_scan = [(h.amax((-2, -1)) * weight).sum(1).numpy() for h in heads]  # (ON scans,) each
    return pd.Series([ON_FRAMES[int(np.argmax(s))] for s in per_scan], index=list(ids), name="ON scan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--data", default="")
    parser.add_argument("--top", type=int, default=24)
    args = parser.parse_args()
    root = ensure_data(args.data)
    model, meta, test = trained_run(args.run, root)
    if not isinstance(model, CadenceCNN):
        raise SystemExit(f"{args.run}: a {meta['model']} run; this reads cadence-cnn's head")
    preprocess = Preprocess(**meta["preprocess"])
    haystacks = test[test.target == 0].sort_values("score", ascending=False)
    threshold = metrics.threshold_at_fpr(test.target, test.score, 0.01)
    top = haystacks.head(args.top)
    needles = test[(test.target == 1) & (test.score > threshold)]
    found = {"top haystacks": evidence_scan(model, preprocess, root, top.id),
             "needles above threshold": evidence_scan(model, preprocess, root, needles.id)}
    print(f"{args.run}: 1 % FPR threshold {threshold:.3f}; {len(top)} top haystacks, {len(needles)} needles above it")
    print(pd.DataFrame({k: v.value_counts().reindex(ON_FRAMES, fill_value=0) for k, v in found.items()}).to_string())
    if "backgrounds" in top:
        print(top.assign(scan=found["top haystacks"].to_numpy())[["id", "score", "scan", "backgrounds"]].round(3)
              .to_string(index=False))


if __name__ == "__main__":
    main()
