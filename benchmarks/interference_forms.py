"""Which forms of interference a trained model lets through, where its test split cannot say (a few dozen haystacks
pass its 1 % threshold there): signals continuous in cadence time, drawn as the generator draws its `continuous`
interference (`signals.continuous_path`: the needles' kinds, widths, drifts and SNRs, through all six scans or a run
of three to five), rendered onto the test split's haystacks that carry none, and scored; the share above the run's
1 % FPR threshold (from its own test scores) by the scans the path is seen in, its kind, drift and SNR, and with and
without each of the haystack's other backgrounds.

With `--one-sided`, pairs instead, one a haystack: a needle in one ON scan, and its twin, the same draw continued
into one adjacent OFF scan only (interference that starts or stops within the cadence: an ON scan with OFF evidence
on one side, as ON 0 always has); pairs ranked right and the shares of twins and needles above the threshold.

    .venv/bin/python benchmarks/interference_forms.py RUN_DIR [--data DIR] [--haystacks 1000] [--repeats 3] [--seed 5]
        [--one-sided]

RUN_DIR: a training run's folder with `best.pt` and `test_scores.csv` (`seti-nb train`, or a notebook's run such as
`runs/04_efficientnet_transfer-*/cadence-cnn`). A model that knows the ON/OFF rule lets none through, whatever the
form; the clean haystacks' own share comes first, for comparison. Prints cadences/s of the scoring too.
"""

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import TensorDataset

from seti_nb import data, metrics
from seti_nb.cadence import ON_FRAMES
from seti_nb.dataset import to_layout
from seti_nb.preprocess import Preprocess
from seti_nb.signals import continuous_path, draw_signal, in_band, render
from seti_nb.study import trained_run
from seti_nb.synth import BACKGROUNDS
from seti_nb.train import predict
from seti_nb.workbook import ensure_data

SNR_RANGE = (8.0, 80.0)  # the twin test's: from where a good detector starts to find needles


def one_sided(rng: np.random.Generator) -> tuple[dict, tuple[int, ...], tuple[int, ...]]:
    """A needle's parameters, its ON scan, and its twin's scans: that ON scan and one adjacent OFF scan, in band."""
    while True:
        scan = int(rng.choice(ON_FRAMES))
        other = scan + 1 if scan == 0 or rng.random() < 0.5 else scan - 1
        params = draw_signal(rng, scan, SNR_RANGE)
        if len(in_band(params, (scan, other))) == 2:
            return params, (scan,), tuple(sorted((scan, other)))


def scored(model, images: list[np.ndarray], tta: bool) -> np.ndarray:
    """The model's scores of `images` as its run scored its test split (`tta`: with the frequency mirror), so they
    compare with the threshold drawn from its test scores."""
    images = torch.as_tensor(np.stack(images))
    return predict(model, TensorDataset(images, torch.zeros(len(images))), tta=tta)  # on a GPU where there is one


def drawn(scans: list[np.ndarray], forms: list[set], preprocess: Preprocess, layout: str, repeats: int, seed: int,
          pairs: bool) -> tuple[list[dict], list[np.ndarray]]:
    """What is rendered onto each clean haystack, `repeats` times: one continuous signal, or with `pairs` a needle and
    its one-sided twin (one scintillation for both); a row of truth for each, and the model inputs in that order."""
    rng, rows, images = np.random.default_rng(seed), [], []

    def model_input(image: np.ndarray) -> np.ndarray:
        return to_layout(np.clip(image, -preprocess.clip, preprocess.clip) if preprocess.clip else image, layout)

    for _ in range(repeats):
        for x, present in zip(scans, forms):
            if pairs:
                params, needle, frames = one_sided(rng)
                draw = int(rng.integers(2**32))
                images += [model_input(x + render(params, seen, preprocess, np.random.default_rng(draw)))
                           for seen in (needle, frames)]
            else:
                params, frames = continuous_path(rng, SNR_RANGE)
                images.append(model_input(x + render(params, frames, preprocess, rng)))
            rows.append({"scans": "".join(map(str, frames)), "kind": params["kind"], "SNR": params["snr"],
                         "drift (channels a row)": abs(params["drift_px"]),
                         **{form: form in present for form in BACKGROUNDS}})
    return rows, images


def passing(model, preprocess: Preprocess, layout: str, test: pd.DataFrame, root, haystacks: int = 1000,
            repeats: int = 3, seed: int = 5, pairs: bool = False, tta: bool = False
            ) -> tuple[pd.DataFrame, pd.DataFrame, float, float]:
    """The forms drawn onto the first `haystacks` clean haystacks of a run's test scores `test` (with the truth
    columns), scored by its `model` (in eval mode) on its input: a row each, `above` its 1 % FPR threshold (with
    `pairs`, also `needle_above` and `right`); the clean haystacks, the threshold and the cadences/s scored."""
    threshold = metrics.threshold_at_fpr(test.target, test.score, 0.01)
    clean = test[(test.target == 0) & ~test.backgrounds.fillna("").str.contains("continuous")].head(haystacks)
    rows, images = drawn([preprocess(data.read_cadence(root, i)) for i in clean.id],
                         [set(b.split(",")) for b in clean.backgrounds.fillna("")], preprocess, layout, repeats, seed,
                         pairs)
    start = time.perf_counter()
    scores = scored(model, images, tta).reshape(len(rows), -1)  # (needle,) twin or continuous signal
    speed = len(images) / (time.perf_counter() - start)
    table = pd.DataFrame(rows).assign(above=scores[:, -1] > threshold)
    if pairs:
        table = table.assign(needle_above=scores[:, 0] > threshold, right=scores[:, 0] > scores[:, 1])
    return table, clean, threshold, speed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--data", default="")
    parser.add_argument("--haystacks", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--one-sided", action="store_true", help="needles and their one-sided twins, in pairs")
    args = parser.parse_args()
    root = ensure_data(args.data)
    model, meta, test = trained_run(args.run, root)
    table, clean, threshold, speed = passing(model, Preprocess(**meta["preprocess"]), meta["layout"], test, root,
                                             args.haystacks, args.repeats, args.seed, args.one_sided,
                                             meta.get("tta", False))
    what = "one-sided twin" if args.one_sided else "continuous signal"
    print(f"{args.run}: 1 % FPR threshold {threshold:.4f}; clean haystacks above it: "
          f"{(clean.score > threshold).mean():.1%} of {len(clean)}; with one {what}: "
          f"{table.above.mean():.1%} of {len(table)} ({speed:.0f} cadences/s scored)")
    if args.one_sided:
        print(f"one-sided pairs: {table.right.mean():.1%} ranked right; needles above the threshold: "
              f"{table.needle_above.mean():.1%}")
    table["SNR"] = pd.cut(table.SNR, [8, 15, 30, 80], right=False)
    table["drift (channels a row)"] = pd.cut(table["drift (channels a row)"], [0, 0.01, 0.03, 0.1, 0.4])
    for by in ("scans", "kind", "drift (channels a row)", "SNR"):
        share = table.groupby(by, observed=True).above.agg(["mean", "size"]).rename(
            columns={"mean": "share above threshold", "size": "signals"})
        print(share.sort_values("share above threshold", ascending=False).round(3).to_string(), "\n")
    others = [form for form in BACKGROUNDS if form != "continuous"]
    backgrounds = pd.DataFrame({form: {"with it": table.above[table[form]].mean(),
                                       "without it": table.above[~table[form]].mean(),
                                       "haystacks with it": int(table[form].sum()) // args.repeats}
                                for form in others}).T
    print("share above threshold by the haystack's other backgrounds:")
    print(backgrounds.sort_values("with it", ascending=False).round(3).to_string())


if __name__ == "__main__":
    main()
