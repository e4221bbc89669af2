"""The whole training state as plain data: tensors (for safetensors) and JSON (never pickle).

``capture_*`` turn the optimizer, scheduler, grad scaler and every random-number source into
``(tensors, meta)`` pairs, ``restore_*`` put them back. The engine only produces and consumes
this data; the run record decides where it is written (``runs/record.py``).
"""

from __future__ import annotations

import random

import numpy as np
import torch

Tensors = dict[str, torch.Tensor]


def _json_safe(value, where: str):
    """Plain JSON values only: a tensor or object here would silently not survive a resume."""
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_json_safe(v, where) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_safe(v, where) for k, v in value.items()}
    raise TypeError(f"{where}: {type(value).__name__} cannot be saved as JSON")


# --- optimizer -------------------------------------------------------------------------
def capture_optimizer(optimizer: torch.optim.Optimizer, prefix: str = "optimizer.") \
        -> tuple[Tensors, dict]:
    state = optimizer.state_dict()
    tensors: Tensors = {}
    scalars: dict[str, dict] = {}
    for index, slots in state["state"].items():
        for name, value in slots.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{prefix}{index}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(index), {})[name] = _json_safe(value, "optimizer")
    meta = {"param_groups": _json_safe(state["param_groups"], "optimizer"),
            "scalars": scalars, "slots": sorted({k[len(prefix):] for k in tensors})}
    return tensors, meta


def restore_optimizer(optimizer: torch.optim.Optimizer, tensors: Tensors, meta: dict,
                      prefix: str = "optimizer.") -> None:
    per_param: dict[int, dict] = {}
    for key in meta["slots"]:
        index, name = key.split(".", 1)
        per_param.setdefault(int(index), {})[name] = tensors[prefix + key]
    for index, values in meta["scalars"].items():
        per_param.setdefault(int(index), {}).update(values)
    groups = meta["param_groups"]
    for group in groups:
        if "betas" in group:
            group["betas"] = tuple(group["betas"])
    optimizer.load_state_dict({"state": per_param, "param_groups": groups})


# --- scheduler and grad scaler -----------------------------------------------------------
def capture_scheduler(scheduler) -> dict:
    return _json_safe(scheduler.state_dict(), "scheduler")


def restore_scheduler(scheduler, meta: dict) -> None:
    scheduler.load_state_dict(meta)


def capture_scaler(scaler) -> dict | None:
    return None if scaler is None else _json_safe(scaler.state_dict(), "grad scaler")


def restore_scaler(scaler, meta: dict | None) -> None:
    if scaler is not None and meta:
        scaler.load_state_dict(meta)


# --- random numbers ----------------------------------------------------------------------
def capture_rng(generators: dict[str, torch.Generator]) -> tuple[Tensors, dict]:
    """Python, NumPy and torch global states, CUDA devices, and the named generators."""
    tensors: Tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    for name, gen in generators.items():
        tensors[f"rng.generator.{name}"] = gen.get_state()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    tensors["rng.numpy"] = torch.from_numpy(np.asarray(keys, dtype=np.int64))
    version, py_state, gauss = random.getstate()
    meta = {"numpy": [kind, int(pos), int(has_gauss), float(cached)],
            "python": [version, list(py_state), gauss], "generators": sorted(generators)}
    return tensors, meta


def restore_rng(generators: dict[str, torch.Generator], tensors: Tensors, meta: dict) -> None:
    missing = set(meta["generators"]) ^ set(generators)
    if missing:
        raise ValueError(f"the saved state has other random generators ({sorted(missing)})")
    torch.set_rng_state(tensors["rng.torch"])
    cuda = sorted(k for k in tensors if k.startswith("rng.cuda."))
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([tensors[k] for k in cuda][: torch.cuda.device_count()])
    for name, gen in generators.items():
        gen.set_state(tensors[f"rng.generator.{name}"])
    kind, pos, has_gauss, cached = meta["numpy"]
    keys = tensors["rng.numpy"].numpy().astype(np.uint32)
    np.random.set_state((kind, keys, pos, has_gauss, cached))
    version, py_state, gauss = meta["python"]
    random.setstate((version, tuple(py_state), gauss))
