"""The layer tree and the FreezePlan: which parts of the backbone learn.

``layer_tree`` turns ``named_modules()`` into plain data (path, type, parameter counts)
that the GUI shows as a tree and `tlstudio layers` prints. ``FreezePlan`` records frozen
parameters by name; freezing or unfreezing a module path affects everything under it, so a parent
reads as trainable, frozen or partial. Presets cover the usual recipes: head only, the
last N stages (plus everything after them), or everything.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from torch import nn

# Containers whose children are the network's stages, by timm's naming.
_STAGE_CONTAINERS = ("blocks", "stages", "layers", "features")


@dataclass
class LayerNode:
    """One module: its path (``""`` for the whole model), type and parameters in its subtree."""

    path: str
    name: str
    type_name: str
    parameters: int
    children: list[LayerNode] = field(default_factory=list)


# What a layer does, in words, from its class name (first match wins): the layer tree and
# `tlstudio layers` show these; the class name stays in the tooltip and the --json output.
LAYER_WORDS: tuple[tuple[str, str, str], ...] = (
    (r"ClassifierHead|^Head$", "classifier head",
     "Turns the features into one score per class; always trained."),
    (r"PatchEmbed", "patch embedding",
     "Cuts the image into small squares and turns each into a vector."),
    (r"SqueezeExcite|SEModule|EffectiveSE", "channel weighting",
     "Learns how much each feature channel matters for this image (squeeze-and-excite)."),
    (r"Attention", "attention",
     "Lets every part of the image look at every other part."),
    (r"Stage|Sequential|ModuleList", "group of layers", "Layers applied one after another."),
    (r"Block|Bottleneck|InvertedResidual|DepthwiseSeparable|DenseLayer|Transition|Residual",
     "block", "A repeated unit of several layers, usually with a shortcut around them."),
    (r"Conv.*Norm|ConvBnAct", "convolution + normalisation",
     "A convolution followed by normalisation and an activation, as one unit."),
    (r"Norm.*Act", "normalisation + activation",
     "Normalisation followed by an activation, as one unit."),
    (r"Conv", "convolution",
     "Slides small learned filters over the image to find edges, textures and shapes."),
    (r"BatchNorm|LayerNorm|GroupNorm|Norm", "normalisation",
     "Rescales the values passing through to a steady range; its statistics come from the "
     "images it was trained on."),
    (r"Linear", "fully connected",
     "Every input connected to every output by a learned weight."),
    (r"Mlp", "fully connected block",
     "Two fully connected layers with an activation between them."),
    (r"Pool", "pooling",
     "Summarises neighbouring values (average or maximum); nothing to learn."),
    (r"ReLU|GELU|SiLU|Swish|Sigmoid|Tanh|Hardswish|Hardsigmoid|Act", "activation",
     "A fixed non-linear function between layers; nothing to learn."),
    (r"Dropout|DropPath", "dropout",
     "Switches random values off while training so the model cannot rely on any one."),
    (r"Identity|Flatten", "pass-through", "Passes its input on unchanged."),
)


def layer_in_words(type_name: str) -> tuple[str, str]:
    """(short words, one sentence) for a layer class; the whole model for unknown names."""
    import re

    for pattern, words, sentence in LAYER_WORDS:
        if re.search(pattern, type_name):
            return words, sentence
    return "network", "The whole network or a part of it without a common name."


def layer_tree(model: nn.Module, max_depth: int | None = None) -> LayerNode:
    """The module hierarchy with parameter counts; modules without parameters are kept."""

    def build(module: nn.Module, path: str, depth: int) -> LayerNode:
        node = LayerNode(
            path=path,
            name=path.rsplit(".", 1)[-1] if path else type(module).__name__,
            type_name=type(module).__name__,
            parameters=sum(p.numel() for p in module.parameters()),
        )
        if max_depth is None or depth < max_depth:
            for name, child in module.named_children():
                node.children.append(build(child, f"{path}.{name}" if path else name, depth + 1))
        return node

    return build(model, "", 0)


def _under(param_name: str, path: str) -> bool:
    """Whether a parameter belongs to the module at ``path`` (``""`` is the whole model)."""
    return not path or param_name == path or param_name.startswith(path + ".")


class FreezePlan:
    """Which parameters are frozen. Apply it with :func:`apply_freeze_plan`."""

    def __init__(self, model: nn.Module, frozen: Iterable[str] = ()):
        self._sizes = {name: p.numel() for name, p in model.named_parameters()}
        self.frozen: set[str] = set()
        for path in frozen:
            self.freeze(path)

    def _params(self, path: str) -> list[str]:
        return [name for name in self._sizes if _under(name, path)]

    def freeze(self, path: str) -> None:
        self.frozen.update(self._params(path))

    def unfreeze(self, path: str) -> None:
        self.frozen.difference_update(self._params(path))

    def set_trainable(self, path: str, trainable: bool) -> None:
        (self.unfreeze if trainable else self.freeze)(path)

    def state(self, path: str) -> str:
        """'trainable', 'frozen', 'partial', or 'empty' for a module without parameters."""
        names = self._params(path)
        if not names:
            return "empty"
        frozen = sum(1 for n in names if n in self.frozen)
        return "frozen" if frozen == len(names) else "trainable" if frozen == 0 else "partial"

    def total(self, path: str = "") -> int:
        return sum(size for name, size in self._sizes.items() if _under(name, path))

    def trainable(self, path: str = "") -> int:
        return sum(
            size for name, size in self._sizes.items()
            if _under(name, path) and name not in self.frozen
        )

    def summary(self) -> str:
        total, trainable = self.total(), self.trainable()
        share = 100.0 * trainable / total if total else 0.0
        # a head of 4,098 in 23.5 million is 0.017 %, not "0.0 %"
        shown = f"{share:.2g}" if 0 < share < 0.1 else f"{share:.1f}"
        return f"{trainable:,} of {total:,} parameters trainable ({shown} %)"

    def frozen_paths(self, model: nn.Module) -> list[str]:
        """The shortest list of module paths that reproduces this plan (for config files)."""
        paths: list[str] = []

        def visit(module: nn.Module, path: str) -> None:
            state = self.state(path)
            if state == "frozen":
                paths.append(path)
            elif state == "partial":
                for name, child in module.named_children():
                    visit(child, f"{path}.{name}" if path else name)
                own = [n for n, _ in module.named_parameters(recurse=False)]
                paths.extend(f"{path}.{n}" if path else n for n in own
                             if (f"{path}.{n}" if path else n) in self.frozen)

        visit(model, "")
        return paths


def known_paths(model: nn.Module) -> set[str]:
    """Every module path and parameter name a plan may name (``""``: the whole model)."""
    return {name for name, _ in model.named_modules()} | {
        name for name, _ in model.named_parameters()}


def apply_freeze_plan(model: nn.Module, plan: FreezePlan) -> None:
    """Set ``requires_grad`` from the plan (the optimizer then takes only trainable ones)."""
    for name, param in model.named_parameters():
        param.requires_grad_(name not in plan.frozen)


def set_train_mode(model: nn.Module) -> None:
    """``model.train()``, except BatchNorm layers whose parameters are all frozen stay in eval.

    A frozen BatchNorm that kept updating its running statistics on a few hundred images
    would drift away from what the pretrained weights expect.
    """
    model.train()
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            params = list(module.parameters(recurse=False))
            if params and not any(p.requires_grad for p in params):
                module.eval()


def classifier_path(model: nn.Module) -> str:
    """Module path of the classification head (timm's ``pretrained_cfg['classifier']``)."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    path = cfg.get("classifier")
    if isinstance(path, (list, tuple)):
        path = path[0]
    return path or "fc"


def stages(model: nn.Module) -> list[str]:
    """Module paths of the backbone's stages, input to output (ResNet layer1..4, blocks.N...)."""
    children = dict(model.named_children())
    for name in _STAGE_CONTAINERS:
        container = children.get(name)
        if container is not None and len(list(container.children())) >= 2:
            return [f"{name}.{child}" for child, _ in container.named_children()]
    numbered = [n for n in children if re.fullmatch(r"(layer|stage)\d+", n)]
    if numbered:
        return numbered
    head = classifier_path(model).split(".")[0]
    return [n for n, m in children.items() if n != head and any(True for _ in m.parameters())]


def after_stages(model: nn.Module) -> list[str]:
    """Top-level modules with weights after the last stage (EfficientNet's conv_head and bn2,
    a ViT's final norm, the head): they train whenever the last stage does."""
    last = stages(model)[-1].split(".")[0]
    names = [name for name, m in model.named_children() if any(True for _ in m.parameters())]
    return names[names.index(last) + 1:] if last in names else [classifier_path(model)]


def adapt_plan(model: nn.Module, chosen: list[str]) -> FreezePlan:
    """Everything frozen except the ``chosen`` stages and what follows the last stage."""
    plan = FreezePlan(model, [""])
    for path in [*chosen, *after_stages(model)]:
        plan.unfreeze(path)
    return plan


def preset_plan(model: nn.Module, preset: str) -> FreezePlan:
    """A FreezePlan from a preset name: ``head``, ``last-N`` (N stages + head) or ``full``."""
    plan = FreezePlan(model)
    if preset == "full":
        return plan
    plan.freeze("")
    plan.unfreeze(classifier_path(model))
    if preset == "head":
        return plan
    m = re.fullmatch(r"last-(\d+)", preset)
    if not m or int(m[1]) < 1:
        raise ValueError(
            f"unknown freeze preset '{preset}'; use head, last-N (e.g. last-2) or full"
        )
    stage_paths = stages(model)
    n = min(int(m[1]), len(stage_paths))
    first = stage_paths[len(stage_paths) - n]
    # Everything from the first trainable stage on trains, in module order: the stages
    # themselves and what follows them (EfficientNet's conv_head, a ViT's final norm).
    names = [name for name, _ in model.named_parameters()]
    start = next(i for i, name in enumerate(names) if _under(name, first))
    for name in names[start:]:
        plan.unfreeze(name)
    return plan
