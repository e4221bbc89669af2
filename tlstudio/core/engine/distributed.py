"""Training across processes: ``torchrun ... -m tlstudio train ...``.

PyTorch's launcher starts one process per device (``--nproc-per-node``), on one machine or
several (``--nnodes``), and tells each its place through the environment (``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``). Every process runs the same ``tlstudio train``: it scans,
splits and prepares the same data (the machine's first process fills the image cache, the
others then read it), and builds the same model. What differs:

* each epoch, every process draws the same shuffled order from the same generator and takes
  its own share of it (a distributed sampler's shard: reshuffled every epoch, and a resumed
  run continues the sequence because all processes hold the same generator state);
  ``--batch-size`` stays the batch of one optimizer step across all processes, so a run
  takes the same steps however many processes share it;
* gradients are averaged by DistributedDataParallel; the training loss is summed across
  processes; validation, features and frozen-layer outputs are computed in shares and
  gathered, so every process scores the same epoch the same way and agrees on the best one
  and on early stopping;
* only the first process (rank 0) writes the run folder and prints; the others keep quiet.

A single process is a world of one, and every function here is then a no-op.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..data.store import release_mapped
from .events import Cancelled, Control

# scanning tens of thousands of images happens between two meetings of the processes
MEETING_TIMEOUT = _dt.timedelta(hours=2)
GATHER_BYTES = 32 * 2**20  # per process and round when gathering rows


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """The process that writes the run folder and prints."""
        return self.rank == 0

    @property
    def many(self) -> bool:
        return self.size > 1

    def rows(self, n: int) -> tuple[int, int]:
        """This process's contiguous share of ``n`` rows: ``(start, stop)``."""
        per = -(-n // self.size)
        start = min(n, self.rank * per)
        return start, min(n, start + per)

    def shard(self, order: torch.Tensor) -> torch.Tensor:
        """This process's share of a shuffled order (as a distributed sampler: the order
        padded by wrapping to a multiple of the world, then every size-th element)."""
        if not self.many:
            return order
        n = len(order)
        padded = -(-n // self.size) * self.size
        if padded > n:  # repeated as often as needed (fewer images than processes too)
            order = order.repeat(-(-padded // n))[:padded]
        return order[self.rank :: self.size]

    def batch_size(self, global_batch: int) -> int:
        """Each process's share of one optimizer step's batch."""
        return max(1, global_batch // self.size)


SINGLE = World()


class AgreedControl(Control):
    """Stop and pause for one process of several: a stop asked of any of them (Ctrl-C or
    SIGTERM reach each) is acted on by all at the same training step, so none waits for
    the others in a gathering they will never join. Between inference batches (shares of
    different lengths) nothing stops; pausing is not offered."""

    EVERY = 4  # steps between two agreements (each one waits for every process)

    def __init__(self, control: Control, world: World):
        super().__init__()
        self.control, self.world = control, world
        self.steps = 0  # the same count on every process: they take the same steps

    def stop(self) -> None:
        self.control.stop()

    @property
    def stopped(self) -> bool:
        return self.control.stopped

    def checkpoint(self) -> None:
        pass

    def step(self) -> None:
        self.steps += 1
        if (self.steps - 1) % self.EVERY == 0 and sum_values(  # the 1st, 5th, 9th... step
                self.world, [float(self.control.stopped)])[0]:
            raise Cancelled()


def shared_control(control: Control, world: World) -> Control:
    if not world.many or isinstance(control, AgreedControl):
        return control
    return AgreedControl(control, world)


def launched() -> bool:
    """Started by torchrun (or another launcher) as one of several processes."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def current() -> World:
    if not (dist.is_available() and dist.is_initialized()):
        return SINGLE
    return World(dist.get_rank(), dist.get_world_size(),
                 int(os.environ.get("LOCAL_RANK", "0")))


def join(device: str) -> World:
    """Join the other processes of a torchrun launch (once per process): ``gloo`` when
    training on the CPU, ``nccl`` on CUDA GPUs. A single process stays a world of one."""
    if not launched():
        return SINGLE
    if dist.is_initialized():
        return current()
    cuda = device != "cpu" and torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group("nccl" if cuda else "gloo", timeout=MEETING_TIMEOUT)
    return current()


def leave() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier(world: World) -> None:
    if world.many:
        dist.barrier()


@contextmanager
def local_first(world: World):
    """The first process of each machine does the work (filling the machine's cache), then
    the others (reading it)."""
    if world.many and world.local_rank != 0:
        dist.barrier()
    try:
        yield
    finally:
        if world.many and world.local_rank == 0:
            dist.barrier()


def _wire_device() -> torch.device:
    """Where tensors travel from: the process's GPU under nccl, memory under gloo."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def sum_values(world: World, values: list[float]) -> list[float]:
    """Each value summed over the processes."""
    if not world.many:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64)
    t = t.to(_wire_device())
    dist.all_reduce(t)
    return t.cpu().tolist()


def agree(world: World, value):
    """Rank 0's ``value`` (any picklable object) on every process."""
    if not world.many:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_rows(world: World, mine: torch.Tensor | None, n: int,
                out: torch.Tensor | None = None) -> torch.Tensor:
    """The full ``n`` rows from each process's share (``World.rows``; None for an empty
    share), in order, on every process: into ``out`` when given (a preallocated or
    memory-mapped array), gathered a few rows per round so memory stays bounded."""
    if not world.many:
        if out is None:
            return mine
        out[: len(mine)] = mine.to(out.device, out.dtype)
        return out
    # rank 0's share is never empty (n > 0): its rows give the shape and type
    shape, dtype = agree(world, (tuple(mine.shape[1:]), mine.dtype) if world.main else None)
    if mine is None:
        mine = torch.empty((0, *shape), dtype=dtype)
    per = -(-n // world.size)
    if out is None:
        out = torch.empty((n, *shape), dtype=dtype, device=mine.device)
    wire = _wire_device()
    row_bytes = max(1, math.prod(shape)) * torch.empty((), dtype=out.dtype).element_size()
    step = max(1, GATHER_BYTES // row_bytes)
    for first in range(0, per, step):
        rows = min(step, per - first)
        part = torch.zeros((rows, *shape), dtype=out.dtype, device=wire)
        have = mine[first : first + rows]
        part[: len(have)] = have.to(wire, out.dtype)
        parts = [torch.empty_like(part) for _ in range(world.size)]
        dist.all_gather(parts, part)
        release_mapped()  # ``out`` may be a mapped array: its pages go back to the file
        for rank, got in enumerate(parts):
            start, stop = World(rank, world.size).rows(n)
            take = max(0, min(rows, stop - start - first))
            if take:
                out[start + first : start + first + take] = got[:take].to(out.device)
    return out


def in_shares(world: World, n: int, compute, out: torch.Tensor | None = None) -> torch.Tensor:
    """``compute(start, stop)`` (a tensor of rows) over this process's share of ``n`` rows,
    gathered on every process into the full ``n`` rows (``out`` when given)."""
    start, stop = world.rows(n)
    mine = compute(start, stop) if stop > start else None
    return gather_rows(world, mine, n, out)
