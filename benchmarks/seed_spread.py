"""How far the quick profile's best run moves from seed to seed: the yardstick a change must beat before a notebook
calls it a gain.

    .venv/bin/python benchmarks/seed_spread.py [--data DIR] [--seeds 0 1 2] [--split 0] [--epochs 25]
        [--set lr=0.008 ...]

Trains 04's best run (cadence-cnn, every training cadence, the workbook's defaults at 04's quick input: 16 rows and
2 channels averaged, emission wider than half of 65 channels removed, the channels of lines that persist in the raw
OFF scans set to 0; 8 counterfactual pairs a batch; scored as the mean of the input and its frequency mirror;
`--set` changes any setting of `Run` by name, `--set time_average=8` gives the full profile's input) once a seed
(the seed draws the split, the weights and the augmentation; with `--split N` every seed trains on split N's parts
and is tested on its test split, so the seeds vary the training alone: a change compared on one split is a paired
comparison) and prints, a row a seed and
then their mean and standard deviation: validation and test AUC, recall at 1 % and 0.1 % FPR, the twin test (pairs
ranked right, interference twins above the run's 1 % threshold), the share of the generator's continuous signals
on its clean test haystacks that pass that threshold (`forms`, `interference_forms.py`'s first figure: 3,000
signals, whole paths and runs of three to five scans), minutes, and on that split's search sample (02's
test cadences) the run alone and combined with level 3 as 04 combines them (`metrics.fisher_combined`): AUC and
recall at 0.1 % FPR. About 4 minutes a seed on two cores.

Measured (seeds 0-4, 2026-12-04, 15 epochs, half the injected interference the injected needle's twin, persistent
OFF lines masked 4 channels either side): test AUC 0.909 / 0.872 / 0.875 / 0.893 / 0.885 (mean 0.887, sd 0.015),
recall at 1 % FPR 0.64 / 0.53 / 0.56 / 0.54 / 0.59, at 0.1 % 0.50 / 0.41 / 0.36 / 0.42 / 0.41, twin pairs right
97.5 / 96.8 / 96.5 / 97.8 / 96.5 %, twins above threshold 1.5 / 1.2 / 1.2 / 2.0 / 1.5 %; on the search sample AUC
0.880 / 0.903 / 0.883 / 0.892 / 0.907 alone, 0.888 / 0.887 / 0.886 / 0.912 / 0.887 with level 3. On split 0
(`--split 0`, 2026-12-05), seeds 0-2: AUC 0.909 / 0.904 / 0.906 (sd 0.003: most of the spread above is the split's),
recall at 1 % FPR 0.64 / 0.61 / 0.66, at 0.1 % 0.50 / 0.49 / 0.58, twin pairs right 97.5 / 97.2 / 96.0 %, twins
above threshold 1.5 / 0.8 / 1.2 %; 5.1 minutes for the three. With the counterfactual pairs (2026-12-05, split 0,
seeds 0-2): AUC 0.906 / 0.908 / 0.899, recall at 1 % FPR 0.66 / 0.65 / 0.65, at 0.1 % 0.58 / 0.54 / 0.48, twin
pairs right 97.2 / 97.5 / 98.0 %, twins above threshold 1.75 % each; 8.2 minutes for the three. At 25 epochs
(2026-12-05, split 0, seeds 0-2, 04's best run since): AUC 0.910 / 0.896 / 0.903, recall at 1 % FPR 0.66 / 0.65 /
0.65, at 0.1 % 0.53 / 0.56 / 0.59, twin pairs right 97.75 / 97.75 / 98.0 %, twins above threshold 1.75 / 0.75 /
1.25 %; 3.8 / 3.7 / 3.7 minutes of training a seed.
"""

import argparse
import ast

import pandas as pd
from interference_forms import passing  # this folder's: the scripts run as files

from seti_nb import metrics
from seti_nb.config import Run, TrainConfig
from seti_nb.data import read_labels, read_truth
from seti_nb.dedoppler import score_cadences
from seti_nb.study import search_sample, train_and_evaluate
from seti_nb.workbook import ensure_data, ensure_twins

# 04's best run's input, quick profile, and its scoring with the frequency mirror
BEST_RUN = {"time_average": 16, "channel_average": 2, "narrowband": 65, "mask_lines": 3.0, "tta": True, "pairs": 8}


def setting(text: str) -> tuple[str, object]:
    """`name=value`, the value read as a Python literal where it is one (0.008, True, "plain"), else as text."""
    name, _, value = text.partition("=")
    try:
        return name, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return name, value


def combined(data, result, seed: int, split: int) -> dict:
    """AUC and recall at 0.1 % FPR of the run alone and combined with level 3 on the split's search sample."""
    sample = search_sample(read_labels(data), split)  # 02's test cadences, as 04 sets its run beside the search
    scores = {"run": result.test.set_index("id").score.loc[sample.id].to_numpy(),
              "level 3": score_cadences(data, sample.id.tolist(), progress=False).level3.to_numpy()}
    out = {}
    for name, score in (("sample", scores["run"]), ("with level 3", metrics.fisher_combined(scores, scores))):
        evaluation = metrics.evaluate(sample.target, score, seed=seed)
        out.update({f"{name} auc": evaluation.auc, f"{name} recall_01pct": evaluation.recall_01pct})
    return out


def forms(data, result) -> dict:
    """The share of the generator's continuous signals drawn onto the run's clean test haystacks that pass its 1 %
    threshold (`interference_forms.py`'s first figure), where the data set has a truth table."""
    if "backgrounds" not in result.test:
        return {}
    table = passing(result.model.eval(), result.run.preprocess, result.run.layout, result.test, data,
                    tta=result.run.tta)[0]
    return {"forms": table.above.mean()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--split", type=int, default=None, help="one split for every seed (default: each its own)")
    parser.add_argument("--epochs", type=int, default=25)  # 04's best run
    parser.add_argument("--set", type=setting, nargs="*", default=[], dest="changes")
    args = parser.parse_args()
    data, twin_dir = ensure_data(args.data), ensure_twins()
    twins = read_truth(twin_dir)
    rows = {}
    for seed in args.seeds:
        run = Run(config=TrainConfig(epochs=args.epochs, seed=seed)).but(**{**BEST_RUN, **dict(args.changes)})
        split = seed if args.split is None else args.split
        result = train_and_evaluate(data, run, name=f"seed {seed}", progress=False, split_seed=split)
        rule = metrics.twin_table(twins, {"run": result.predict(twin_dir, twins)}, {"run": result.threshold})
        rows[f"seed {seed}"] = {**{k: result.row()[k] for k in ("val_auc", "auc", "recall_1pct", "recall_01pct")},
                                "pairs right": rule["pairs right"]["run"],
                                "twins above threshold": rule["twins above threshold"]["run"], **forms(data, result),
                                "minutes": result.row()["minutes"], **combined(data, result, seed, split)}
        print(pd.Series(rows[f"seed {seed}"], name=f"seed {seed}").round(3).to_frame().T.to_string(), flush=True)
    table = pd.DataFrame(rows).T
    print(pd.concat([table, table.agg(["mean", "std"])]).round(3).to_string())


if __name__ == "__main__":
    main()
