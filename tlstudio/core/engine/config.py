"""TrainConfig: every choice a training run makes, with defaults that work on small data."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from ..data.preprocess import AUGMENTATIONS
from ..models.backbones import DEFAULT_BACKBONE

MODES = ("linear-probe", "fine-tune")
SCHEDULES = ("cosine", "onecycle")

# Per-mode defaults: a linear probe trains a tiny head on cached features (many cheap
# epochs, larger steps); a fine-tune moves pretrained weights (few epochs, small steps).
MODE_DEFAULTS = {
    "linear-probe": {"epochs": 40, "lr": 3e-3, "patience": 15},
    "fine-tune": {"epochs": 8, "lr": 5e-4, "patience": 4},
}


@dataclass
class TrainConfig:
    backbone: str = DEFAULT_BACKBONE
    weights: str | None = None  # a local weights file instead of the backbone's own
    pretrained: bool = True  # False: random initialisation (to see what pretraining buys)
    mode: str = "linear-probe"
    freeze: str = "last-1"  # fine-tune preset: head | last-N | full
    frozen_paths: list[str] | None = None  # explicit frozen module paths (the layer tree)
    trainable_paths: list[str] | None = None  # or: everything frozen except these paths
    epochs: int | None = None
    batch_size: int = 32
    lr: float | None = None
    weight_decay: float = 0.01
    schedule: str = "cosine"
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.1
    augmentation: str = "light"
    class_weights: bool = False
    patience: int | None = None  # early stopping: epochs without improvement
    val_fraction: float = 0.2
    test_fraction: float = 0.0
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    init_from: str | None = None  # a previous run whose weights this one starts from
    workers: int = 4  # decoding threads
    use_cache: bool = True  # decoded images kept on disk (tlstudio's cache, keyed by file)
    cache_dir: str | None = None  # None: tlstudio's own cache folder
    cache_frozen_prefix: bool = True  # compute a frozen prefix once instead of every epoch
    prefix_cache_mb: int = 2048  # memory allowed for those cached activations

    def resolved(self) -> TrainConfig:
        """A copy with mode defaults filled in and every value checked."""
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, not '{self.mode}'")
        if self.augmentation not in AUGMENTATIONS:
            raise ValueError(
                f"augmentation must be one of {', '.join(AUGMENTATIONS)}, not '{self.augmentation}'"
            )
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}")
        if self.frozen_paths is not None and self.trainable_paths is not None:
            raise ValueError("give frozen paths or trainable paths, not both")
        defaults = MODE_DEFAULTS[self.mode]
        data = asdict(self)
        for key, value in defaults.items():
            if data[key] is None:
                data[key] = value
        out = TrainConfig(**data)
        if out.epochs < 1 or out.batch_size < 1 or out.lr <= 0 or out.patience < 1:
            raise ValueError("epochs, batch size and patience must be at least 1 and the "
                             "learning rate > 0")
        return out

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})
