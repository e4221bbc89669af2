"""The reference loop of ``tlstudio bench``: what a skilled user writes by hand.

Kept deliberately plain and separate from the engine: a Dataset that opens every file with
PIL each epoch, torchvision transforms, a DataLoader with worker processes, the same model,
batch size, epochs, optimizer (AdamW, same learning rate and weight decay) and loss as the
engine, validation after every epoch.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms as T

from ..models.backbones import BackboneSpec, build_model
from ..models.layers import apply_freeze_plan, preset_plan


class FileDataset(Dataset):
    def __init__(self, paths, targets, transform):
        self.paths, self.targets, self.transform = paths, targets, transform

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        with Image.open(self.paths[i]) as img:
            return self.transform(img.convert("RGB")), self.targets[i]


def _transforms(spec: BackboneSpec, augment: bool):
    prep = spec.preprocessing()
    interpolation = {"bilinear": T.InterpolationMode.BILINEAR,
                     "bicubic": T.InterpolationMode.BICUBIC}[prep.interpolation]
    tail = [T.ToTensor(), T.Normalize(prep.mean, prep.std)]
    resize = T.Resize(prep.prepared_size, interpolation=interpolation)
    train = [resize, T.RandomCrop(prep.input_size), T.RandomHorizontalFlip()] if augment \
        else [resize, T.CenterCrop(prep.input_size)]
    return T.Compose(train + tail), T.Compose([resize, T.CenterCrop(prep.input_size)] + tail)


def run_reference(
    spec: BackboneSpec, train_items: list, val_items: list, num_classes: int, mode: str,
    epochs: int, batch_size: int, lr: float, device: torch.device, seed: int,
    on_epoch: Callable[[int], None] | None = None,
) -> dict:
    """Train the hand-written way; returns accuracy and the epoch timestamps."""
    torch.manual_seed(seed)
    augment = mode != "linear-probe"
    train_tf, val_tf = _transforms(spec, augment)
    workers = min(4, os.cpu_count() or 1)
    train_loader = DataLoader(
        FileDataset([p for p, _ in train_items], [t for _, t in train_items], train_tf),
        batch_size=batch_size, shuffle=True, num_workers=workers, drop_last=True,
        pin_memory=device.type == "cuda", persistent_workers=True)
    val_loader = DataLoader(
        FileDataset([p for p, _ in val_items], [t for _, t in val_items], val_tf),
        batch_size=batch_size, num_workers=workers, pin_memory=device.type == "cuda",
        persistent_workers=True)
    model = build_model(spec, num_classes)
    preset = {"linear-probe": "head", "partial": "last-1", "fine-tune": "full"}[mode]
    apply_freeze_plan(model, preset_plan(model, preset))
    model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer,
                                                           epochs * len(train_loader))
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.1)
    amp = dict(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    accuracy = 0.0
    frozen_bn = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
                 and not any(p.requires_grad for p in m.parameters())]
    for epoch in range(1, epochs + 1):
        model.train() if mode != "linear-probe" else model.eval()
        for m in frozen_bn:  # what a careful hand-written loop does for frozen layers
            m.eval()
        for x, y in train_loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            with torch.autocast(**amp):
                loss = loss_fn(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
        model.eval()
        correct = total = 0
        with torch.no_grad():
            for x, y in val_loader:
                x, y = x.to(device), y.to(device)
                with torch.autocast(**amp):
                    correct += (model(x).argmax(1) == y).sum().item()
                total += len(y)
        accuracy = correct / total
        if on_epoch is not None:
            on_epoch(epoch)
    return {"val_accuracy": accuracy, "finished": time.perf_counter()}
