"""Training and data-loading throughput, beside a naive loader measured in the same run.

    .venv/bin/python benchmarks/train_speed.py [--data DIR] [--n 2000] [--batches 20]

Prints cadences/s into the training loop (a DataLoader of batches of 64) for: a naive loader (np.load of the whole
file and the preprocessing per item, in one process); the same preprocessing streamed from the files by
CadenceDataset (as at full resolution); and CadenceDataset reading the training cache (built first if absent, its
build rate printed). Then images/s of one training step (forward, backward, AdamW) of every model of the workbook
at the quick profile's input (8 rows x 2 channels averaged), in float32 and in the mixed precision `fit` picks
(`training_dtype`: bfloat16 on a CPU with AMX, except for depthwise convolutions).
"""

import argparse
import time

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from seti_nb.config import QUICK_PREPROCESS
from seti_nb.data import cadence_path, read_labels
from seti_nb.dataset import CadenceDataset, layout_channels, to_layout
from seti_nb.models import build_model
from seti_nb.train import training_dtype
from seti_nb.workbook import ensure_data


class NaiveDataset(Dataset):
    """What a first attempt looks like: the whole file loaded and preprocessed every time."""

    def __init__(self, root, ids, preprocess):
        self.paths, self.preprocess = [cadence_path(root, i) for i in ids], preprocess

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        return torch.tensor(self.preprocess(np.load(self.paths[i]).astype(np.float64))), torch.tensor(0.0)


def loading_rate(dataset, batches: int) -> float:
    loader = DataLoader(dataset, batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(0))
    start, n = time.perf_counter(), 0
    for i, (x, _) in enumerate(loader):
        n += len(x)
        if i + 1 == batches:
            break
    return n / (time.perf_counter() - start)


def training_rate(model, shape, dtype=None, batch=64, steps=4):
    x, y = torch.randn(batch, *shape).contiguous(memory_format=torch.channels_last), torch.zeros(batch, 1)
    model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters())
    loss_fn = torch.nn.BCEWithLogitsLoss()
    for i in range(steps + 1):  # the first step warms up the kernels
        if i == 1:
            start = time.perf_counter()
        optimizer.zero_grad()
        with torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
            out = model(x)
        loss_fn(out.float(), y).backward()
        optimizer.step()
    return steps * batch / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default="")
    parser.add_argument("--n", type=int, default=2000, help="cadences to draw batches from")
    parser.add_argument("--batches", type=int, default=20, help="batches of 64 timed per loader")
    args = parser.parse_args()
    root = ensure_data(args.data)
    items = read_labels(root).iloc[: args.n]
    prep = QUICK_PREPROCESS
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; preprocessing {prep.key()}")
    start = time.perf_counter()
    cached = CadenceDataset(root, items, "frames", prep)  # builds the cache on first use
    print(f"cache ready in {time.perf_counter() - start:.1f} s ({len(read_labels(root))} cadences)")
    naive = loading_rate(NaiveDataset(root, items.id, prep), args.batches)
    streamed = loading_rate(CadenceDataset(root, items, "frames", prep, cache=False), args.batches)
    from_cache = loading_rate(cached, args.batches)
    print(f"loading: naive {naive:.0f} cadences/s | streamed from the files {streamed:.0f} cadences/s | "
          f"from the cache {from_cache:.0f} cadences/s")
    frame = np.zeros((6, *prep.shape()), np.float32)
    for name, layout in (("cadence-cnn", "frames"), ("small-cnn", "frames"), ("small-cnn", "all_stack"),
                         ("timm:tf_efficientnet_lite0", "contrast"), ("efficientnet-b0", "on_stack")):
        shape = to_layout(frame, layout).shape
        rates = {}
        for precision in ("fp32", "auto"):
            torch.manual_seed(0)
            model = build_model(name, in_channels=layout_channels(layout), channel_average=prep.channel_average)
            dtype = training_dtype(model, "cpu", precision)
            rates[str(dtype).replace("torch.", "") if dtype else "float32"] = training_rate(model, shape, dtype)
        print(f"training {name} on {layout} {'x'.join(map(str, shape))}: "
              + " | ".join(f"{rate:.0f} images/s in {kind}" for kind, rate in rates.items()))


if __name__ == "__main__":
    main()
