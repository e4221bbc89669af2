"""Which device trains, and how (mixed precision only where it pays and is safe)."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class DeviceSetup:
    device: torch.device
    amp_dtype: torch.dtype | None  # None: full float32

    @property
    def description(self) -> str:
        if self.device.type == "cuda":
            name = torch.cuda.get_device_name(self.device)
            amp = {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(self.amp_dtype, "fp32")
            return f"GPU {name} ({amp})"
        if self.device.type == "mps":
            return "Apple GPU (MPS)"
        return f"CPU ({torch.get_num_threads()} threads)"


def pick_device(requested: str = "auto", amp: bool = True) -> DeviceSetup:
    """cuda > mps > cpu for ``auto``; AMP in bf16 where the GPU supports it, else fp16."""
    if requested == "auto":
        if torch.cuda.is_available():
            requested = "cuda"
        elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            requested = "mps"
        else:
            requested = "cpu"
    device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("a CUDA GPU was asked for but none is available")
    amp_dtype = None
    if amp and device.type == "cuda":
        amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return DeviceSetup(device, amp_dtype)
