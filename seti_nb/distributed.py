"""Training on many processes with PyTorch's own engine: DistributedDataParallel, one process per GPU (or per
group of CPU cores, with the gloo backend), launched by torchrun on one machine or many.

A run with `TrainConfig(processes=N)` (`seti-nb train --nproc N`, a notebook's `nproc`) is trained by N ranks that
torchrun starts (`study.train_and_evaluate`); `torchrun ... -m seti_nb.cli train` starts them on several machines.
The training loop (`train.fit`) asks `world()` which rank it is: the model is wrapped in DistributedDataParallel,
every rank draws the same epoch's sample (plain, oversampled or hybrid) and keeps its own share of it, the batch
size stays the run's global batch (each rank takes an Nth), scores are gathered from every rank so that all of them
choose the same epoch, and rank 0 alone writes the checkpoint and the metrics. With one process none of this is
used.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import Sampler


def world() -> tuple[int, int]:
    """(rank, number of ranks) of this process: (0, 1) unless a process group is running."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def launched() -> int:
    """The number of ranks torchrun started this process among; 0 when it did not start several."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    return size if size > 1 else 0


def local_rank() -> int:
    """This process's rank among those on its machine (0 without torchrun)."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def gpu_count() -> int:
    return torch.cuda.device_count()


def start(device: str) -> None:
    """Join the process group torchrun set up: nccl on GPUs (one GPU per rank of a machine), gloo on CPUs."""
    if device == "cuda":
        local = local_rank()
        if local >= gpu_count():
            raise RuntimeError(f"rank {local} of this machine has no GPU: torch sees {gpu_count()}; "
                               "ask for at most that many processes per machine")
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device == "cuda" else "gloo")


def finish() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if world()[1] > 1:
        dist.barrier()


def align(model: torch.nn.Module) -> None:
    """Rank 0's buffers (batch-norm statistics, which each rank updates from its own batches) on every rank; the
    weights are equal on all of them already."""
    if world()[1] > 1:
        for buffer in model.buffers():
            dist.broadcast(buffer, 0)


def share(value):
    """Rank 0's `value` (any picklable object) on every rank."""
    if world()[1] == 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def part(n: int) -> range:
    """This rank's contiguous share of `n` items for scoring: every item exactly once over the ranks."""
    rank, size = world()
    return range(rank * n // size, (rank + 1) * n // size)


def gather(scores: np.ndarray) -> np.ndarray:
    """Every rank's scores of its `part`, joined in rank order: all `n` scores on every rank."""
    if world()[1] == 1:
        return scores
    pieces = [None] * world()[1]
    dist.all_gather_object(pieces, scores)
    return np.concatenate(pieces)


class Shard(Sampler):
    """A distributed form of any sampler: every rank draws the same sequence (the sampler's generator is seeded
    alike on all ranks), pads it by repeating its start to a multiple of the ranks, as DistributedSampler does,
    and keeps every Nth index from its own rank on. Used for the oversampling and hybrid samplers."""

    def __init__(self, sampler: Sampler):
        self.sampler, (self.rank, self.size) = sampler, world()

    def __iter__(self):
        drawn = list(self.sampler)
        drawn += drawn[: -len(drawn) % self.size]
        return iter(drawn[self.rank::self.size])

    def __len__(self) -> int:
        return -(-len(self.sampler) // self.size)


def launch(module: str, args: list[str], nproc: int) -> int:
    """Run `python -m <module> <args>` as `nproc` ranks on this machine with torchrun; the group's exit status."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
               "-m", module, *args]
    env = {"OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // nproc)), **os.environ}
    return subprocess.run(command, env=env).returncode
