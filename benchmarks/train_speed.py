"""Training and data-loading throughput, beside a naive loader measured in the same run.

    .venv/bin/python benchmarks/train_speed.py [--data DIR] [--n 256] [--size 256 128] [--workers 2]

Prints cadences/s for loading (seti_nb's memory-mapped CadenceDataset in a DataLoader, and a naive loader:
np.load of the whole file per item, float32 conversion in __getitem__, one process) and images/s for one
training step of SmallCNN and EfficientNet-B0 (efficientnet-pytorch, from scratch) on this machine.
"""

import argparse
import time

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from seti_nb.data import CadenceDataset, cadence_path, read_labels
from seti_nb.models import build_model
from seti_nb.workbook import ensure_data


class NaiveDataset(Dataset):
    """What a first attempt looks like: the whole file, as float64 math, every time."""

    def __init__(self, root, ids, size):
        self.paths, self.size = [cadence_path(root, i) for i in ids], size

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        cadence = np.load(self.paths[i]).astype(np.float32)
        image = torch.tensor(np.vstack([cadence[0], cadence[2], cadence[4]]))[None]
        if self.size:
            image = torch.nn.functional.interpolate(image[None], size=self.size, mode="area")[0]
        return image, torch.tensor(0.0)


def loading_rate(dataset, workers):
    loader = DataLoader(dataset, batch_size=32, num_workers=workers)
    start = time.perf_counter()
    n = sum(len(x) for x, _ in loader)
    return n / (time.perf_counter() - start)


def training_rate(model, size, batch=32, steps=4):
    x, y = torch.randn(batch, 1, *size), torch.zeros(batch, 1)
    optimizer = torch.optim.AdamW(model.parameters())
    loss_fn = torch.nn.BCEWithLogitsLoss()
    for i in range(steps + 1):  # the first step warms up the kernels
        if i == 1:
            start = time.perf_counter()
        optimizer.zero_grad()
        loss_fn(model(x), y).backward()
        optimizer.step()
    return steps * batch / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default="")
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--size", type=int, nargs=2, default=[256, 128])
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    root = ensure_data(args.data)
    ids = read_labels(root).id[: args.n]
    size = tuple(args.size)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, input 1x{size[0]}x{size[1]} (on_stack)")
    naive = loading_rate(NaiveDataset(root, ids, size), 0)
    ours = loading_rate(CadenceDataset(root, ids.to_frame(), size=size), args.workers)
    ours_1 = loading_rate(CadenceDataset(root, ids.to_frame(), size=size), 0)
    print(f"loading: naive {naive:.0f} cadences/s | CadenceDataset {ours_1:.0f} cadences/s in-process, "
          f"{ours:.0f} cadences/s with {args.workers} workers")
    for name in ("small-cnn", "efficientnet-b0"):
        torch.manual_seed(0)
        print(f"training {name}: {training_rate(build_model(name), size):.1f} images/s")


if __name__ == "__main__":
    main()
