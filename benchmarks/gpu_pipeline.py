"""Does the data path keep the GPU busy? Training images/s of the model alone (random tensors already on the
device) and of the whole pipeline (files -> preprocessing in DataLoader workers -> pinned memory -> device), for
cadence-cnn and EfficientNet-B1 at full resolution, both through the trainer's own training step.

    .venv/bin/python benchmarks/gpu_pipeline.py [--data DIR] [--device auto] [--batches 30] [--workers 16]

The inputs: cadence-cnn on the six scans at full resolution (6 x 273 x 256, the OFF bandpass removed);
EfficientNet-B1 on the six scans stacked (1638 x 256) and resized on the device to 512 x 512, the 2nd-place Kaggle
input. The last column is the pipeline's share of the model-only rate (the target on one GPU: >= 90 %). On a CPU
both rates are tiny and the figures only show that the script runs; run it on the GPU machine.
"""

import argparse
import os
import time

import torch

from seti_nb.config import Run, TrainConfig
from seti_nb.data import read_labels
from seti_nb.dataset import CadenceDataset
from seti_nb.preprocess import Preprocess
from seti_nb.runtime import pick_device, seed_everything
from seti_nb.study import run_model
from seti_nb.train import _Epochs, _loader
from seti_nb.workbook import ensure_data

FULL = Preprocess("off", 1, 1, 20.0)
RUNS = {"cadence-cnn": Run(preprocess=FULL),
        "efficientnet-b1": Run(model="timm:efficientnet_b1", layout="all_stack", size=(512, 512), preprocess=FULL)}


def rate(trainer: _Epochs, batches, n: int) -> float:
    """Training images/s over `n` batches after two warm-up batches, the device synchronised at both ends."""
    seen, start = 0, None
    for i, (x, y) in enumerate(batches):
        if i == 2:
            torch.cuda.synchronize() if trainer.device == "cuda" else None
            start, seen = time.perf_counter(), 0
        trainer.step(x, y)
        seen += len(x)
        if i + 1 == n + 2:
            break
    torch.cuda.synchronize() if trainer.device == "cuda" else None
    return seen / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default="")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batches", type=int, default=30, help="batches timed per measurement")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="DataLoader workers of the pipeline")
    args = parser.parse_args()
    device = pick_device(args.device)
    root = ensure_data(args.data)
    items = read_labels(root).iloc[: (args.batches + 2) * args.batch_size]
    name = torch.cuda.get_device_name() if device == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"{name}; batch {args.batch_size}, {args.workers} workers, {args.batches} batches timed\n")
    print("| model | input | model alone (images/s) | pipeline (images/s) | pipeline / model |")
    print("| --- | --- | --- | --- | --- |")
    for label, run in RUNS.items():
        config = TrainConfig(batch_size=args.batch_size, device=device, num_workers=args.workers)
        dataset = CadenceDataset(root, items, run.layout, run.preprocess, progress=False)
        seed_everything(0)
        trainer = _Epochs(run_model(run), dataset, config, progress=False)
        x, y = dataset[0]
        fake = [(torch.randn(args.batch_size, *x.shape, device=device), torch.zeros(args.batch_size, device=device))
                ] * (args.batches + 2)
        alone = rate(trainer, fake, args.batches)
        pipeline = rate(trainer, _loader(dataset, config, balanced=False, shuffle=True, epoch=0), args.batches)
        shape = "x".join(map(str, x.shape)) + (f" -> {run.size[0]}x{run.size[1]}" if run.size else "")
        print(f"| {label} | {shape} | {alone:.0f} | {pipeline:.0f} | {pipeline / alone:.0%} |", flush=True)


if __name__ == "__main__":
    main()
