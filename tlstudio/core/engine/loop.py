"""The one training loop, for the linear probe and for fine-tuning alike.

A :class:`TrainingSession` carries everything a run needs — the model, the part that trains
(``net``: the head over cached features, the trainable suffix over cached frozen-prefix
activations, or the whole network), the batch source, the device, the optimizer, scheduler,
grad scaler, loss, the stop/pause control and the callbacks. :meth:`TrainingSession.fit`
runs epochs of ``train_one_epoch`` then ``validate``; the per-epoch jobs (best score, early
stopping, run record, progress) are callbacks. ``state()`` / ``load_state()`` give the whole
training state as tensors + JSON, so a run continues exactly where its last epoch ended.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ...errors import UserError
from ..data.preprocess import Preprocessing
from ..models.layers import set_train_mode
from .callbacks import BestScore, Callback, EpochResult
from .config import TrainConfig
from .device import DeviceSetup
from .distributed import sum_values
from .events import Cancelled, Control, Event
from .inference import autocast
from .state import (
    capture_optimizer,
    capture_rng,
    capture_scaler,
    capture_scheduler,
    restore_optimizer,
    restore_rng,
    restore_scaler,
    restore_scheduler,
)

MODEL_PREFIX = "model."


class NonFiniteError(UserError):
    """The loss or the model's outputs stopped being finite numbers: training diverged."""


def check_finite(epoch: int, train_loss: float | None, probs: np.ndarray, lr: float) -> None:
    """Stop before a diverged epoch is scored or saved: a NaN model labels everything the
    same with probability NaN, and nothing downstream would notice."""
    if train_loss is not None and not math.isfinite(train_loss):
        what = f"the training loss became {train_loss} in epoch {epoch}"
    elif not np.isfinite(probs).all():
        what = f"the model's outputs became NaN or infinite after epoch {epoch}"
    else:
        return
    raise NonFiniteError(
        f"training stopped: {what} (learning rate {lr:g}). The learning rate is probably "
        "too high for these layers, or the starting weights hold invalid numbers; lower "
        "the learning rate (e.g. ten times) and train again. The checkpoint of the last "
        "finite epoch, if any, is kept.")


def model_weights(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The model's own weights inside a saved training state."""
    return {k[len(MODEL_PREFIX):]: v for k, v in tensors.items() if k.startswith(MODEL_PREFIX)}


@dataclass
class TrainingData:
    """Prepared uint8 squares (N, S, S, 3) and class indices for each part."""

    train_images: np.ndarray
    train_targets: np.ndarray
    val_images: np.ndarray
    val_targets: np.ndarray
    num_classes: int


@dataclass
class TrainingJob:
    """What building a session needs, carried as one object instead of long argument lists:
    the model, the prepared data, its preprocessing, the settings, the device, the stop/pause
    control and the event stream."""

    model: nn.Module
    data: TrainingData
    prep: Preprocessing
    config: TrainConfig
    setup: DeviceSetup
    control: Control
    emit: Callable[[Event], None]


@dataclass
class FitResult:
    best_epoch: int  # 0: the starting point (or nothing finished when epochs_run is 0)
    epochs_run: int
    stopped_early: bool
    cancelled: bool = False


def class_weight_tensor(targets: np.ndarray, num_classes: int) -> torch.Tensor:
    """'Balanced' weights n / (k * count): each class contributes equally to the loss."""
    counts = np.bincount(targets, minlength=num_classes).astype(np.float64)
    weights = len(targets) / (num_classes * np.maximum(counts, 1.0))
    return torch.tensor(weights, dtype=torch.float32)


def make_optimizer(params, config: TrainConfig,
                   factors: dict[int, float] | None = None) -> torch.optim.Optimizer:
    """AdamW, no weight decay on biases and norms; ``factors`` (by parameter id) scale the
    learning rate per parameter (smaller steps for earlier layers)."""
    groups: dict[tuple[bool, float], list] = {}
    for p in params:
        factor = factors.get(id(p), 1.0) if factors else 1.0
        groups.setdefault((p.ndim > 1, factor), []).append(p)
    order = sorted(groups, key=lambda key: (-key[1], not key[0]))  # decayed first, as saved
    return torch.optim.AdamW(
        [{"params": groups[key], "weight_decay": config.weight_decay if key[0] else 0.0,
          "lr": config.lr * key[1]} for key in order], lr=config.lr)


def make_scheduler(optimizer, config: TrainConfig, steps_per_epoch: int):
    total = max(1, config.epochs * steps_per_epoch)
    if config.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=[g["lr"] for g in optimizer.param_groups], total_steps=total,
            pct_start=0.25)
    warmup = min(total - 1, int(config.warmup_epochs * steps_per_epoch))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def validation_scores(probs: np.ndarray, targets: np.ndarray) -> tuple[float, float]:
    """(cross-entropy loss, accuracy): what chooses the best epoch."""
    p = probs[np.arange(len(targets)), targets]
    loss = float(-np.log(np.clip(p, 1e-12, 1.0)).mean())
    return loss, float((probs.argmax(1) == targets).mean())


@dataclass
class TrainingSession:
    model: nn.Module  # the whole network (what a checkpoint holds)
    net: nn.Module  # what runs each training step
    batches: object  # FeatureBatches | ImageBatches | CachedPrefixBatches
    val_targets: np.ndarray
    setup: DeviceSetup
    control: Control
    epochs: int
    optimizer: torch.optim.Optimizer
    scheduler: object
    scaler: torch.amp.GradScaler | None
    loss_fn: nn.Module
    callbacks: list[Callback] = field(default_factory=list)
    evaluate_start: bool = False  # the starting point counts as epoch 0 (warm starts)
    # ``net`` as the training step calls it: under torchrun wrapped to average gradients
    # across processes (validation calls ``net`` itself)
    train_net: nn.Module | None = None
    epoch: int = 0  # last completed epoch
    stop_early: bool = False

    # --- the loop ----------------------------------------------------------------------
    def fit(self) -> FitResult:
        for cb in self.callbacks:
            cb.on_fit_start(self)
        cancelled = False
        try:
            if self.evaluate_start and self.epoch == 0:
                # Fine-tuning a previous run never ends worse than it began.
                val_loss, val_acc, probs = self.validate()
                check_finite(0, None, probs, self.lr)
                self._end_epoch(EpochResult(0, None, val_loss, val_acc, self.lr, 0.0))
            while self.epoch < self.epochs and not self.stop_early:
                epoch = self.epoch + 1
                for cb in self.callbacks:
                    cb.on_epoch_start(self, epoch)
                t0 = time.perf_counter()
                train_loss = train_one_epoch(self, epoch)
                val_loss, val_acc, probs = self.validate()
                check_finite(epoch, train_loss, probs, self.lr)
                self._end_epoch(EpochResult(epoch, train_loss, val_loss, val_acc, self.lr,
                                            time.perf_counter() - t0))
        except Cancelled:
            cancelled = True
        for cb in self.callbacks:
            cb.on_fit_end(self)
        return FitResult(self.best_epoch, self.epoch, self.stop_early, cancelled)

    def _end_epoch(self, result: EpochResult) -> None:
        self.epoch = result.epoch
        for cb in self.callbacks:
            cb.on_epoch_end(self, result)

    def validate(self) -> tuple[float, float, np.ndarray]:
        """Loss, accuracy and probabilities on the validation part, on the training path:
        the numbers that choose the best epoch are the numbers reported for it."""
        probs = self.batches.validate(self.net, self.control)
        loss, accuracy = validation_scores(probs, self.val_targets)
        return loss, accuracy, probs

    # --- facts callbacks read -------------------------------------------------------------
    @property
    def lr(self) -> float:
        return float(self.scheduler.get_last_lr()[0])

    @property
    def best_epoch(self) -> int:
        best = self.callback(BestScore.name)
        return best.epoch if best is not None else self.epoch

    @property
    def will_end(self) -> bool:
        """After the epoch just completed, nothing is left to train."""
        return self.stop_early or self.epoch >= self.epochs

    def callback(self, name: str) -> Callback | None:
        return next((cb for cb in self.callbacks if cb.name == name), None)

    # --- resumable state -----------------------------------------------------------------
    def state(self) -> tuple[dict[str, torch.Tensor], dict]:
        """Everything needed to continue after the last completed epoch."""
        tensors = {MODEL_PREFIX + k: v.detach().to("cpu", copy=True).contiguous()
                   for k, v in self.model.state_dict().items()}
        opt_tensors, opt_meta = capture_optimizer(self.optimizer)
        rng_tensors, rng_meta = capture_rng(self.batches.generators())
        meta = {
            "epoch": self.epoch, "epochs": self.epochs, "finished": self.will_end,
            "stopped_early": self.stop_early, "optimizer": opt_meta,
            "scheduler": capture_scheduler(self.scheduler), "scaler": capture_scaler(self.scaler),
            "rng": rng_meta,
            "callbacks": {cb.name: cb.state_dict() for cb in self.callbacks if cb.name},
        }
        return {**tensors, **opt_tensors, **rng_tensors}, meta

    def load_state(self, tensors: dict[str, torch.Tensor], meta: dict) -> None:
        self.model.load_state_dict(model_weights(tensors), strict=True)
        restore_optimizer(self.optimizer, tensors, meta["optimizer"])
        restore_scheduler(self.scheduler, meta["scheduler"])
        restore_scaler(self.scaler, meta["scaler"])
        for cb in self.callbacks:
            if cb.name in meta["callbacks"]:
                cb.load_state_dict(meta["callbacks"][cb.name])
        self.epoch, self.stop_early = meta["epoch"], meta["stopped_early"]
        restore_rng(self.batches.generators(), tensors, meta["rng"])  # last: nothing draws


def train_one_epoch(session: TrainingSession, epoch: int) -> float:
    """One pass over the training batches; returns the mean training loss.

    The loss stays on the device; it is read back (a host sync) only when a callback asks
    for it (throttled progress) and once at the end of the epoch.
    """
    s = session
    set_train_mode(s.net)
    total = torch.zeros((), device=s.setup.device)
    seen, steps = 0, len(s.batches)
    for b, (x, y) in enumerate(s.batches, 1):
        s.control.step()
        with autocast(s.setup):
            loss = s.loss_fn((s.train_net or s.net)(x), y)
        s.optimizer.zero_grad(set_to_none=True)
        if s.scaler is not None:
            s.scaler.scale(loss).backward()
            s.scaler.step(s.optimizer)
            s.scaler.update()
        else:
            loss.backward()
            s.optimizer.step()
        s.scheduler.step()
        total += loss.detach().float() * len(y)
        seen += len(y)
        for cb in s.callbacks:
            cb.on_batch_end(s, epoch, b, steps, loss, seen)
    total, seen = sum_values(s.setup.world, [total.item(), seen])  # every process's share
    return total / max(1, seen)
