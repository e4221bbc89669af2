"""Splitting a network at the end of its frozen prefix, to compute that part only once.

When the first stages are frozen their output never changes, so it is computed once per
image (for a fixed set of views: as is, and mirrored) and only the trainable rest runs each
epoch. ``feature_units`` lists, for the families whose ``forward_features`` is a plain chain
(EfficientNet/MobileNet, ResNet, ConvNeXt), the modules in forward order; other families
(ViT: tokens and position embeddings between modules) fall back to the full forward.
"""

from __future__ import annotations

from torch import nn

_CHAINS = {
    # timm class name -> (modules before the stage container, container, modules after)
    "EfficientNet": (("conv_stem", "bn1"), "blocks", ("conv_head", "bn2")),
    "MobileNetV3": (("conv_stem", "bn1"), "blocks", ()),
    "ResNet": (("conv1", "bn1", "act1", "maxpool"), None, ("layer1", "layer2", "layer3",
                                                          "layer4")),
    "ConvNeXt": (("stem",), "stages", ("norm_pre",)),
}


def feature_units(model: nn.Module) -> list[tuple[str, nn.Module]] | None:
    """(path, module) pairs whose chained application equals ``model.forward_features``."""
    chain = _CHAINS.get(type(model).__name__)
    if chain is None:
        return None
    before, container, after = chain
    units = [(name, getattr(model, name)) for name in before]
    if container is not None:
        units += [(f"{container}.{i}", m) for i, m in enumerate(getattr(model, container))]
    units += [(name, getattr(model, name)) for name in after]
    return units


class Suffix(nn.Module):
    """The trainable rest of a model: remaining feature units, then the model's own head."""

    def __init__(self, model: nn.Module, units: list[nn.Module]):
        super().__init__()
        self.units = nn.Sequential(*units)
        self._model = [model]  # kept out of the module tree: its head is called, not owned

    def train(self, mode: bool = True) -> Suffix:
        """Also switch the head, and the model's own flag that its ``forward_head`` reads
        (timm applies dropout there when ``model.training``): validating a suffix must not
        drop features at random."""
        super().train(mode)
        model = self._model[0]
        model.training = mode  # only the flag: the frozen prefix keeps its own mode
        model.get_classifier().train(mode)
        return self

    def forward(self, x):
        return self._model[0].forward_head(self.units(x))


def split_frozen_prefix(model: nn.Module, frozen: set[str]) -> tuple[nn.Module, Suffix] | None:
    """``(prefix, suffix)`` with ``suffix(prefix(x)) == model(x)``, or None when nothing
    useful can be cut off (an unsupported family, or the first unit already trains)."""
    units = feature_units(model)
    if not units:
        return None
    params = dict(model.named_parameters())
    cut = 0
    for path, module in units:
        names = [f"{path}.{n}" for n, _ in module.named_parameters()]
        if all(name in frozen for name in names) and all(name in params for name in names):
            cut += 1
        else:
            break
    if cut == 0:
        return None
    prefix = nn.Sequential(*(m for _, m in units[:cut]))
    return prefix, Suffix(model, [m for _, m in units[cut:]])
