"""Which device trains, and how (mixed precision only where it pays and is safe)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ...errors import UserError
from .distributed import SINGLE, World, current


class DeviceError(UserError):
    """The device asked for does not exist on this machine; the message names what does."""


@dataclass(frozen=True)
class DeviceSetup:
    device: torch.device
    amp_dtype: torch.dtype | None  # None: full float32
    world: World = SINGLE  # the processes of a torchrun launch sharing this training

    @property
    def description(self) -> str:
        if self.device.type == "cuda":
            name = torch.cuda.get_device_name(self.device)
            amp = {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(self.amp_dtype, "fp32")
            one = f"GPU {name} ({amp})"
        elif self.device.type == "mps":
            one = "Apple GPU (MPS)"
        else:
            one = f"CPU ({torch.get_num_threads()} threads)"
        return one if not self.world.many else f"{self.world.size} processes, each on {one}"


def pick_device(requested: str = "auto", amp: bool = True) -> DeviceSetup:
    """cuda > mps > cpu for ``auto``; AMP in bf16 where the GPU supports it, else fp16.
    Under torchrun each process takes the GPU of its local rank."""
    world = current()
    if world.many and (requested == "auto" or requested.startswith("cuda")) \
            and torch.cuda.is_available():  # a run saved on cuda:0 resumes on all of them
        requested = f"cuda:{world.local_rank}"
    if requested == "auto":
        if torch.cuda.is_available():
            requested = "cuda"
        elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            requested = "mps"
        else:
            requested = "cpu"
    try:
        device = torch.device(requested)
    except (RuntimeError, TypeError, ValueError):
        raise DeviceError(f"--device '{requested}' is not a device name; use auto, cpu, "
                          f"cuda, cuda:N or mps. Here: {available_devices()}") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise DeviceError(f"--device {requested}: this machine has no usable CUDA GPU. "
                              f"Here: {available_devices()}")
        if device.index is not None and device.index >= count:
            raise DeviceError(f"--device {requested}: this machine has {count} GPU(s), "
                              f"numbered 0 to {count - 1}")
    elif device.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise DeviceError(f"--device mps: no Apple GPU here. Here: {available_devices()}")
    elif device.type != "cpu":
        raise DeviceError(f"--device {requested}: tlstudio trains on cpu, cuda or mps. "
                          f"Here: {available_devices()}")
    amp_dtype = None
    if amp and device.type == "cuda":
        amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return DeviceSetup(device, amp_dtype, world)


def available_devices() -> str:
    names = ["cpu"]
    if torch.cuda.is_available():
        names += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        names.append("mps")
    return ", ".join(names)
