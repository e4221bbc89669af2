"""TrainConfig: every choice a training run makes, with defaults that work on small data."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

from ...pixels import FRAMES
from ...pixels.windows import WindowError, parse_window
from ..data.preprocess import AUGMENTATIONS
from ..models.backbones import DEFAULT_BACKBONE

MODES = ("recommended", "linear-probe", "fine-tune")
SCHEDULES = ("cosine", "onecycle")

# Per-mode defaults: a linear probe trains a tiny head on cached features (many cheap
# epochs, larger steps); a fine-tune moves pretrained weights (few epochs, small steps).
MODE_DEFAULTS = {
    "linear-probe": {"epochs": 40, "lr": 3e-3, "patience": 15},
    "fine-tune": {"epochs": 8, "lr": 5e-4, "patience": 4},
    # probe first, then fine-tune: epochs and steps of the fine-tune are scaled to the
    # dataset and the device when the run starts (engine/recipe.py)
    "recommended": {},
}


@dataclass
class TrainConfig:
    backbone: str = DEFAULT_BACKBONE
    weights: str | None = None  # a local weights file instead of the backbone's own
    pretrained: bool = True  # False: random initialisation (to see what pretraining buys)
    mode: str = "recommended"  # probe then fine-tune (recipe.py) | linear-probe | fine-tune
    # fine-tune preset: head | last-N | full; None: last-1, or in the Recommended mode the
    # stages the stage-shift gauge picks
    freeze: str | None = None
    # Recommended: train the head on frozen features before fine-tuning (LP-FT); False: from
    # a fresh head, as when the gauge finds the images far from pretraining; None: it decides
    probe_first: bool | None = None
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
    window: str = "file"  # DICOM / 16-bit range -> 0..255 (tlstudio.pixels.windows)
    frames: str = "middle"  # multi-frame DICOM: the middle frame, or all as separate images
    class_weights: bool = False
    patience: int | None = None  # early stopping: epochs without improvement
    val_fraction: float = 0.15  # chooses the epoch, the temperature and the threshold
    test_fraction: float = 0.15  # held out: reports the headline numbers
    threshold: str = "youden"  # two classes: youden | sensitivity=S | specificity=S
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    init_from: str | None = None  # a previous run whose weights this one starts from
    # also train from random weights to measure what pretraining gains; None: on in the
    # Recommended mode for small datasets (runs/transfer.py)
    compare_scratch: bool | None = None
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
        try:
            parse_window(self.window)
        except WindowError as exc:
            raise ValueError(f"--window: {exc}") from None
        if self.frames not in FRAMES:
            raise ValueError(f"--frames must be {' or '.join(FRAMES)}, not '{self.frames}'")
        if self.frozen_paths is not None and self.trainable_paths is not None:
            raise ValueError("give frozen paths or trainable paths, not both")
        defaults = MODE_DEFAULTS[self.mode]
        data = asdict(self)
        for key, value in defaults.items():
            if data[key] is None:
                data[key] = value
        out = TrainConfig(**data)
        out._check_numbers()
        return out

    def _check_numbers(self) -> None:
        """Every number in range, each message naming its setting (and CLI option)."""
        def bad(text: str) -> ValueError:
            return ValueError(text)

        open_ = self.mode == "recommended"  # filled in when the run knows its data
        for name, option, value in (("epochs", "--epochs", self.epochs),
                                    ("batch size", "--batch-size", self.batch_size),
                                    ("patience", "--patience", self.patience),
                                    ("workers", "--workers", self.workers)):
            if value is None and open_ and option != "--batch-size":
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise bad(f"{name} ({option}) must be a whole number of at least 1, "
                          f"not {value!r}")
        if not (self.lr is None and open_) and (not _finite(self.lr) or not 0 < self.lr <= 10):
            raise bad(f"learning rate (--lr) must be a finite number above 0 and at most 10, "
                      f"not {self.lr!r}")
        if not _finite(self.weight_decay) or not 0 <= self.weight_decay <= 10:
            raise bad("weight decay must be a finite number from 0 to 10, "
                      f"not {self.weight_decay!r}")
        if not _finite(self.warmup_epochs) or self.warmup_epochs < 0:
            raise bad(f"warmup epochs must be 0 or more, not {self.warmup_epochs!r}")
        if not _finite(self.label_smoothing) or not 0 <= self.label_smoothing < 1:
            raise bad("label smoothing must be from 0 up to (not including) 1, "
                      f"not {self.label_smoothing!r}")
        if not _finite(self.val_fraction) or not 0 < self.val_fraction < 1:
            raise bad("validation fraction (--val-fraction) must be between 0 and 1, "
                      f"not {self.val_fraction!r}")
        if not _finite(self.test_fraction) or not 0 <= self.test_fraction < 1:
            raise bad("test fraction (--test-fraction) must be from 0 up to 1, "
                      f"not {self.test_fraction!r}")
        if self.val_fraction + self.test_fraction >= 0.9:
            raise bad("validation and test fractions (--val-fraction, --test-fraction) must "
                      "together leave at least 10 % of "
                      "the images for training")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) \
                or not 0 <= self.seed < 2**32:
            raise bad(f"seed (--seed) must be a whole number from 0 to {2**32 - 1}, "
                      f"not {self.seed!r}")
        if not isinstance(self.prefix_cache_mb, int) or self.prefix_cache_mb < 0:
            raise bad(f"prefix cache size must be 0 MB or more, not {self.prefix_cache_mb!r}")

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def _finite(value) -> bool:
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value))
