"""Loading weight files safely, and translating foreign key names onto timm's.

Only two readers are used: safetensors, and ``torch.load(..., weights_only=True)``, which
refuses pickles that would run code. The offline weight packages ship checkpoints written
for other model code (efficientnet_pytorch, torchvision); their names are translated onto
timm's module layout block by block, in the order of ``model.blocks``, and the result must
load strictly.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from ...errors import UserError

StateDict = dict[str, torch.Tensor]


class WeightsError(UserError):
    """A weights file cannot be used; the message says why."""


def read_state_dict(path: str | Path) -> StateDict:
    """Read tensors from ``.safetensors`` or a ``.pth``/``.pt``/``.bin`` file, safely."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return _finite(load_file(str(path), device="cpu"), path)
        except WeightsError:
            raise
        except Exception as exc:  # safetensors raises its own error types
            raise WeightsError(f"{path.name} is not a readable safetensors file ({exc})") from exc
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsError(
            f"{path.name} was refused: it is not a plain tensor checkpoint that can be loaded "
            "without running code (weights_only=True). Re-save it as .safetensors or as a "
            f"plain state_dict. Detail: {str(exc).splitlines()[0][:200]}"
        ) from exc
    return _finite(_unwrap(obj, path), path)


def _finite(state: StateDict, path: Path) -> StateDict:
    """Weights holding NaN or infinity would train into NaN: name the file instead."""
    bad = [k for k, v in state.items()
           if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise WeightsError(f"weights file {path} holds NaN or infinite values ({len(bad)} "
                           f"tensor(s), e.g. '{bad[0]}'); it cannot be trained from")
    return state


def _unwrap(obj: object, path: Path) -> StateDict:
    """Accept ``{"state_dict": {...}}`` / ``{"model": {...}}`` wrappers around a state dict."""
    if isinstance(obj, dict):
        for key in ("state_dict_ema", "model_ema", "state_dict", "model"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"{path.name} does not hold a state dict of tensors")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def _block_positions(model: nn.Module) -> list[tuple[int, int, nn.Module]]:
    """(stage, index, block) for every block of a timm EfficientNet-family model, in order."""
    return [(s, j, block) for s, stage in enumerate(model.blocks) for j, block in enumerate(stage)]


def _translate(state: StateDict, rename: Callable[[str], str | None]) -> StateDict:
    out: StateDict = {}
    for key, value in state.items():
        new = rename(key)
        if new is None:
            raise WeightsError(f"cannot place weight '{key}' in the timm model")
        out[new] = value
    return out


# efficientnet_pytorch layer names inside a block -> timm names, by block kind.
_EFFNET_INVERTED = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw",
                    "_bn1": "bn2", "_project_conv": "conv_pwl", "_bn2": "bn3"}
_EFFNET_SEPARABLE = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw",
                     "_bn2": "bn2"}
_EFFNET_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head",
               "_bn1": "bn2", "_fc": "classifier"}


def map_efficientnet_pytorch(state: StateDict, model: nn.Module) -> StateDict:
    """efficientnet_pytorch (lukemelas layout, used by the lite weight packages) -> timm."""
    blocks = _block_positions(model)

    def rename(key: str) -> str | None:
        m = re.fullmatch(r"_blocks\.(\d+)\.(\w+)\.(\w+)", key)
        if m:
            k, layer, tensor = int(m[1]), m[2], m[3]
            if k >= len(blocks):
                return None
            s, j, block = blocks[k]
            table = _EFFNET_INVERTED if hasattr(block, "conv_pwl") else _EFFNET_SEPARABLE
            return f"blocks.{s}.{j}.{table[layer]}.{tensor}" if layer in table else None
        layer, _, tensor = key.partition(".")
        return f"{_EFFNET_TOP[layer]}.{tensor}" if layer in _EFFNET_TOP else None

    return _translate(state, rename)


_TV_INVERTED = {"conv.0.0": "conv_pw", "conv.0.1": "bn1", "conv.1.0": "conv_dw",
                "conv.1.1": "bn2", "conv.2": "conv_pwl", "conv.3": "bn3"}
_TV_SEPARABLE = {"conv.0.0": "conv_dw", "conv.0.1": "bn1", "conv.1": "conv_pw", "conv.2": "bn2"}


def map_torchvision_mobilenet_v2(state: StateDict, model: nn.Module) -> StateDict:
    """torchvision ``mobilenet_v2`` -> timm ``mobilenetv2_100`` (same network, other names)."""
    blocks = _block_positions(model)
    last = len(blocks) + 1  # features.0 is the stem, features.{last} the 1x1 head conv

    def rename(key: str) -> str | None:
        m = re.fullmatch(r"features\.(\d+)\.(.+)\.(\w+)", key)
        if m is None:
            m2 = re.fullmatch(r"classifier\.1\.(\w+)", key)
            return f"classifier.{m2[1]}" if m2 else None
        i, layer, tensor = int(m[1]), m[2], m[3]
        ends = {0: {"0": "conv_stem", "1": "bn1"}, last: {"0": "conv_head", "1": "bn2"}}
        if i in ends:
            name = ends[i].get(layer)
            return f"{name}.{tensor}" if name else None
        if i - 1 >= len(blocks):
            return None
        s, j, block = blocks[i - 1]
        table = _TV_INVERTED if hasattr(block, "conv_pwl") else _TV_SEPARABLE
        return f"blocks.{s}.{j}.{table[layer]}.{tensor}" if layer in table else None

    return _translate(state, rename)


KEY_MAPPINGS: dict[str, Callable[[StateDict, nn.Module], StateDict]] = {
    "efficientnet_pytorch": map_efficientnet_pytorch,
    "torchvision_mobilenet_v2": map_torchvision_mobilenet_v2,
}


def detect_layout(state: StateDict) -> str | None:
    """Name of the foreign layout a state dict is written in, or None for timm's own."""
    if "_conv_stem.weight" in state:
        return "efficientnet_pytorch"
    if "features.0.0.weight" in state and "classifier.1.weight" in state:
        return "torchvision_mobilenet_v2"
    return None


def load_into(model: nn.Module, state: StateDict, classifier: str, strict: bool = False) -> None:
    """Load ``state`` into ``model`` after translating a foreign layout.

    With ``strict`` every tensor must match. Otherwise only the classifier may be left out
    (a checkpoint trained for another number of classes); anything else missing or extra
    means the file belongs to another architecture, and it is refused with the names.
    """
    layout = detect_layout(state)
    if layout is not None:
        state = KEY_MAPPINGS[layout](state, model)
    own = model.state_dict()
    if not strict:
        state = {
            k: v for k, v in state.items()
            if not (k.startswith(classifier + ".") and k in own and own[k].shape != v.shape)
        }
    state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked") or k in own}
    mismatched = [k for k, v in state.items() if k in own and own[k].shape != v.shape]
    if mismatched:
        raise WeightsError(
            f"{len(mismatched)} weights have the wrong shape for this backbone, e.g. "
            + ", ".join(mismatched[:3])
        )
    result = model.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
    if not strict:
        missing = [k for k in missing if not k.startswith(classifier + ".")]
    if missing or result.unexpected_keys:
        raise WeightsError(
            "the weights do not fit this backbone: "
            f"{len(missing)} missing (e.g. {', '.join(missing[:3]) or '-'}), "
            f"{len(result.unexpected_keys)} unexpected "
            f"(e.g. {', '.join(result.unexpected_keys[:3]) or '-'})"
        )
