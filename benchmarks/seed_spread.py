"""How far the quick profile's best run moves from seed to seed: the yardstick a change must beat before a notebook
calls it a gain.

    .venv/bin/python benchmarks/seed_spread.py [--data DIR] [--seeds 0 1 2] [--epochs 7] [--set lr=0.008 ...]

Trains 04's best run (cadence-cnn, every training cadence, the workbook's defaults at 04's quick input of 16 rows and
2 channels averaged; `--set` changes any setting of `Run` by name, `--set time_average=8` gives the full profile's
input) once a seed (the seed draws the split, the weights and the augmentation) and prints, a row a seed and then their
mean and standard deviation: validation and test AUC, recall at 1 % and 0.1 % FPR, the twin test (pairs ranked right,
interference twins above the run's 1 % threshold) and minutes. About 2-3 minutes a seed on two cores.
"""

import argparse
import ast

import pandas as pd

from seti_nb import metrics
from seti_nb.config import Run, TrainConfig
from seti_nb.data import read_truth
from seti_nb.study import train_and_evaluate
from seti_nb.workbook import ensure_data, ensure_twins

QUICK_INPUT = {"time_average": 16, "channel_average": 2}  # 04's `resolution` in the quick profile


def setting(text: str) -> tuple[str, object]:
    """`name=value`, the value read as a Python literal where it is one (0.008, True, "plain"), else as text."""
    name, _, value = text.partition("=")
    try:
        return name, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return name, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=7)
    parser.add_argument("--set", type=setting, nargs="*", default=[], dest="changes")
    args = parser.parse_args()
    data, twin_dir = ensure_data(args.data), ensure_twins()
    twins = read_truth(twin_dir)
    rows = {}
    for seed in args.seeds:
        run = Run(config=TrainConfig(epochs=args.epochs, seed=seed)).but(**{**QUICK_INPUT, **dict(args.changes)})
        result = train_and_evaluate(data, run, name=f"seed {seed}", progress=False)
        rule = metrics.twin_table(twins, {"run": result.predict(twin_dir, twins)}, {"run": result.threshold})
        rows[f"seed {seed}"] = {**{k: result.row()[k] for k in ("val_auc", "auc", "recall_1pct", "recall_01pct")},
                                "pairs right": rule["pairs right"]["run"],
                                "twins above threshold": rule["twins above threshold"]["run"],
                                "minutes": result.row()["minutes"]}
        print(pd.Series(rows[f"seed {seed}"], name=f"seed {seed}").round(3).to_frame().T.to_string(), flush=True)
    table = pd.DataFrame(rows).T
    print(pd.concat([table, table.agg(["mean", "std"])]).round(3).to_string())


if __name__ == "__main__":
    main()
