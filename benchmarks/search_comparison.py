"""The classical detectors compared on the whole default test split: the study's best image filter, the de-Doppler
search at turboSETI's three filter levels, and turboSETI itself, with the time each takes.

    .venv/bin/python benchmarks/search_comparison.py [--data DIR] [--n 0] [--fpr 0.01]

Notebook 02 scores a stratified sample of the test split, and turboSETI on 200 of those cadences only (it takes
about 0.4 s a cadence); this script scores all of them (`--n 0`, about 10 minutes on two cores) and prints AUC with
its bootstrap 95 % interval, recall at the fixed FPR overall, by SNR and by signal kind, and cadences/s per process.
"""

import argparse
import time
from functools import partial

import pandas as pd

from seti_nb import data, dedoppler, filters, metrics, study, turboseti
from seti_nb.runtime import workers
from seti_nb.workbook import ensure_data

BEST_FILTER = {"study filter (smoothing + 7x7 x)": {"derivative": "x", "size": 7, "sigma": 2}}  # 02's best


def timed(function, root, ids, desc):
    start = time.perf_counter()
    rows = pd.DataFrame(data.map_cadences(function, root, ids, desc=desc))
    return rows, len(ids) / (time.perf_counter() - start) / min(workers(), len(ids))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default="")
    parser.add_argument("--n", type=int, default=0, help="test cadences (a stratified sample); 0: all")
    parser.add_argument("--fpr", type=float, default=0.01)
    args = parser.parse_args()
    root = ensure_data(args.data)
    labels = data.read_labels(root)
    test = study.search_sample(labels, 0, args.n)
    ids = test.id.tolist()
    best_filter, filter_rate = timed(partial(filters.on_off_scores, settings=BEST_FILTER), root, ids, "study filter")
    search = dedoppler.Search()
    ours, ours_rate = timed(search.score, root, ids, "de-Doppler")
    turbo, turbo_rate = timed(turboseti.turboseti_scores, root, ids, "turboSETI")
    scores = {**{name: best_filter[name].to_numpy() for name in best_filter},
              **{f"de-Doppler, level {k[-1]}": ours[k].to_numpy() for k in ours},
              **{f"turboSETI, level {k[-1]}": turbo[k].to_numpy() for k in turbo}}
    rates = {**dict.fromkeys(best_filter, filter_rate), **{n: ours_rate for n in scores if "de-Doppler" in n},
             **{n: turbo_rate for n in scores if "turboSETI" in n}}
    table = metrics.evaluation_table(test.target, scores, 0).assign(cadences_per_s=pd.Series(rates))
    pd.set_option("display.width", 200)
    print(f"{len(test)} test cadences, {int(test.target.sum())} needles; recall at {args.fpr:.0%} FPR; "
          "cadences/s per process\n")
    print(table.round(3).to_string(), "\n")
    truth = data.read_truth(root)
    if truth is not None:
        aligned = truth.set_index("id").loc[ids].reset_index()
        for by in ("snr", "kind"):
            print(metrics.recall_table(aligned, scores, args.fpr, by).T.round(2).to_string(), "\n")
        line = ((aligned.kind == "line") & (aligned.on_frames.str.len() == 3) & (aligned.snr > 25)).to_numpy()
        found = {name: float((s[line] > metrics.threshold_at_fpr(test.target, s, args.fpr)).mean())
                 for name, s in scores.items()}
        print(f"straight needles in all three ON scans above SNR 25 ({line.sum()}), recall at {args.fpr:.0%} FPR:")
        print(pd.Series(found).round(3).to_string())


if __name__ == "__main__":
    main()
