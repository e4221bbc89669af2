"""The training loops: a linear probe on frozen features, and fine-tuning with a FreezePlan.

Small named steps (``extract_features``, ``train_one_epoch``, ``validate``) in the spirit of
timm's ``train.py``; :class:`EpochBook` does what both modes share per epoch: events, the
metrics log, best-checkpoint keeping and early stopping. The stop/pause control is checked
between batches, so Stop takes effect within one batch.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .batches import ImageBatches, cached_prefix
from .config import TrainConfig
from .device import DeviceSetup
from .events import (
    BatchDone,
    Cancelled,
    Control,
    EpochDone,
    EpochStarted,
    Event,
    Notice,
)
from .inference import autocast, extract_features
from .layers import set_train_mode
from .preprocess import Preprocessing
from .run import RunRecord

Emit = Callable[[Event], None]
PROGRESS_INTERVAL_S = 0.1  # batch progress (and its host sync) at most ten times a second


@dataclass
class TrainingData:
    """Prepared uint8 squares (N, S, S, 3) and class indices for each part."""

    train_images: np.ndarray
    train_targets: np.ndarray
    val_images: np.ndarray
    val_targets: np.ndarray
    num_classes: int


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


def make_optimizer(params, config: TrainConfig) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for p in params:
        (no_decay if p.ndim <= 1 else decay).append(p)  # no decay on biases and norms
    groups = [{"params": decay, "weight_decay": config.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=config.lr)


def make_scheduler(optimizer, config: TrainConfig, steps_per_epoch: int):
    total = max(1, config.epochs * steps_per_epoch)
    if config.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=config.lr, total_steps=total, pct_start=0.25
        )
    warmup = min(total - 1, int(config.warmup_epochs * steps_per_epoch))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


class EpochBook:
    """Per-epoch bookkeeping shared by both modes."""

    def __init__(self, config: TrainConfig, record: RunRecord, emit: Emit,
                 save: Callable[[], None]):
        self.config, self.record, self.emit, self.save = config, record, emit, save
        self.best: tuple[float, float] | None = None  # (accuracy, -loss)
        self.best_epoch = 0
        self.epochs_run = 0

    def start(self, epoch: int) -> None:
        self.emit(EpochStarted(epoch, self.config.epochs))

    def done(self, epoch: int, train_loss: float, val_loss: float, val_acc: float,
             lr: float, seconds: float) -> bool:
        """Record an epoch; True when training should stop early."""
        self.epochs_run = epoch
        score = (val_acc, -val_loss)
        improved = self.best is None or score > self.best
        if improved:
            self.best, self.best_epoch = score, epoch
            self.save()
        row = {"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss,
               "val_accuracy": val_acc, "lr": lr, "seconds": seconds, "improved": improved}
        self.record.append_epoch(row)
        self.emit(EpochDone(epoch, self.config.epochs, train_loss, val_loss, val_acc, lr,
                            seconds, improved))
        if epoch - self.best_epoch >= self.config.patience and epoch < self.config.epochs:
            self.emit(Notice(f"stopped early: no improvement for {self.config.patience} epochs"))
            return True
        return False


def _val_metrics(probs: np.ndarray, targets: np.ndarray) -> tuple[float, float]:
    p = probs[np.arange(len(targets)), targets]
    loss = float(-np.log(np.clip(p, 1e-12, 1.0)).mean())
    return loss, float((probs.argmax(1) == targets).mean())


def fit_linear_probe(
    model: nn.Module, data: TrainingData, prep: Preprocessing, config: TrainConfig,
    setup: DeviceSetup, record: RunRecord, emit: Emit, control: Control,
) -> FitResult:
    """Features once (plus a mirrored view when augmenting), then the head alone trains."""
    model.to(setup.device)
    views = [False, True] if config.augmentation != "none" else [False]
    train_feats = torch.cat([
        extract_features(model, data.train_images, prep, setup, config.batch_size, control,
                         emit, flip=flip, stage="features (mirrored)" if flip else "features")
        for flip in views
    ]).to(setup.device)
    train_targets = torch.from_numpy(np.tile(data.train_targets, len(views))).to(setup.device)
    val_feats = extract_features(model, data.val_images, prep, setup, config.batch_size,
                                 control, emit, stage="features (validation)").to(setup.device)
    val_targets = data.val_targets

    head = model.get_classifier()
    for p in model.parameters():
        p.requires_grad_(False)
    for p in head.parameters():
        p.requires_grad_(True)
    head.train()
    weights = (class_weight_tensor(data.train_targets, data.num_classes).to(setup.device)
               if config.class_weights else None)
    n = len(train_feats)
    steps = math.ceil(n / config.batch_size)
    optimizer = make_optimizer(head.parameters(), config)
    scheduler = make_scheduler(optimizer, config, steps)
    generator = torch.Generator().manual_seed(config.seed)
    best_state = copy.deepcopy(head.state_dict())

    def keep_best() -> None:
        nonlocal best_state
        best_state = copy.deepcopy(head.state_dict())

    book = EpochBook(config, record, emit, keep_best)
    stopped_early = cancelled = False
    try:
        for epoch in range(1, config.epochs + 1):
            book.start(epoch)
            t0, last_emit = time.perf_counter(), 0.0
            total_loss = torch.zeros((), device=setup.device)
            order = torch.randperm(n, generator=generator).to(setup.device)
            for b in range(steps):
                control.checkpoint()
                idx = order[b * config.batch_size : (b + 1) * config.batch_size]
                loss = F.cross_entropy(head(train_feats[idx]), train_targets[idx], weight=weights,
                                       label_smoothing=config.label_smoothing)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
                total_loss += loss.detach() * len(idx)
                now = time.perf_counter()
                if b + 1 == steps or now - last_emit >= PROGRESS_INTERVAL_S:
                    last_emit = now
                    emit(BatchDone(epoch, b + 1, steps, loss.item(),
                                   len(idx) * (b + 1) / max(1e-9, now - t0)))
            with torch.inference_mode():
                head.eval()
                probs = head(val_feats).float().softmax(1).cpu().numpy()
                head.train()
            val_loss, val_acc = _val_metrics(probs, val_targets)
            if book.done(epoch, total_loss.item() / n, val_loss, val_acc,
                         scheduler.get_last_lr()[0],
                         time.perf_counter() - t0):
                stopped_early = True
                break
    except Cancelled:
        cancelled = True
    head.load_state_dict(best_state)
    head.eval()
    return FitResult(book.best_epoch, book.epochs_run, stopped_early, cancelled)


def train_one_epoch(
    model: nn.Module, batches, setup: DeviceSetup, optimizer, scheduler, scaler, loss_fn,
    epoch: int, emit: Emit, control: Control,
) -> float:
    """One pass over the training batches; returns the mean training loss.

    The loss stays on the device; it is read back (a host sync) only for throttled
    progress events and once at the end of the epoch.
    """
    set_train_mode(model)
    total = torch.zeros((), device=setup.device)
    seen, t0, last_emit = 0, time.perf_counter(), 0.0
    steps = len(batches)
    for b, (x, y) in enumerate(batches, 1):
        control.checkpoint()
        with autocast(setup):
            loss = loss_fn(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        scheduler.step()
        total += loss.detach().float() * len(y)
        seen += len(y)
        now = time.perf_counter()
        if b == steps or now - last_emit >= PROGRESS_INTERVAL_S:
            last_emit = now
            emit(BatchDone(epoch, b, steps, loss.item(), seen / max(1e-9, now - t0)))
    return total.item() / max(1, seen)


def fit_fine_tune(
    model: nn.Module, data: TrainingData, prep: Preprocessing, config: TrainConfig,
    setup: DeviceSetup, record: RunRecord, emit: Emit, control: Control,
    evaluate_start: bool = False,
) -> FitResult:
    """Train the parameters the FreezePlan left trainable (already applied to ``model``).

    When the frozen part is a prefix of the network (the usual "last N stages" recipe) and
    its outputs fit in ``config.prefix_cache_mb``, it runs once per image and view (as is,
    mirrored); only the trainable rest runs each epoch. Otherwise every batch runs the
    whole network on freshly augmented images.
    """
    model.to(setup.device)
    model.to(memory_format=torch.channels_last)
    trainable = [p for p in model.parameters() if p.requires_grad]
    if not trainable:
        raise ValueError("every layer is frozen: unfreeze at least the head to fine-tune")
    generator = torch.Generator().manual_seed(config.seed)
    cached = cached_prefix(model, data, prep, config, setup, emit, control, generator)
    if cached is not None:
        net, batches = cached
    else:
        net, batches = model, ImageBatches(data.train_images, data.train_targets, prep, setup,
                                           config.augmentation, config.batch_size, generator)
    weights = (class_weight_tensor(data.train_targets, data.num_classes).to(setup.device)
               if config.class_weights else None)
    loss_fn = nn.CrossEntropyLoss(weight=weights, label_smoothing=config.label_smoothing)
    optimizer = make_optimizer(trainable, config)
    scheduler = make_scheduler(optimizer, config, len(batches))
    scaler = torch.amp.GradScaler("cuda") if setup.amp_dtype == torch.float16 else None

    def save() -> None:
        record.save_weights(model.state_dict())

    def evaluate() -> tuple[float, float]:
        probs = batches.validation_probabilities(net, data.val_images, control)
        return _val_metrics(probs, data.val_targets)

    book = EpochBook(config, record, emit, save)
    stopped_early = cancelled = False
    try:
        if evaluate_start:
            # The starting point counts as "epoch 0": fine-tuning never ends worse than it
            # began.
            val_loss, val_acc = evaluate()
            book.best, book.best_epoch = (val_acc, -val_loss), 0
            save()
            record.append_epoch({"epoch": 0, "val_loss": val_loss, "val_accuracy": val_acc})
            emit(Notice(f"starting point: validation accuracy {val_acc:.3f}"))
        for epoch in range(1, config.epochs + 1):
            book.start(epoch)
            t0 = time.perf_counter()
            train_loss = train_one_epoch(net, batches, setup, optimizer, scheduler, scaler,
                                         loss_fn, epoch, emit, control)
            val_loss, val_acc = evaluate()
            if book.done(epoch, train_loss, val_loss, val_acc, scheduler.get_last_lr()[0],
                         time.perf_counter() - t0):
                stopped_early = True
                break
    except Cancelled:
        cancelled = True
    return FitResult(book.best_epoch, book.epochs_run, stopped_early, cancelled)
