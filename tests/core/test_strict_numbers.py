"""Non-finite numbers stop training with a reason and never reach a checkpoint."""

from __future__ import annotations

import math

import pytest
import torch
from safetensors.torch import load_file

from tlstudio.core.engine import events as ev
from tlstudio.core.engine import loop as loop_module
from tlstudio.core.engine.config import TrainConfig
from tlstudio.core.engine.loop import NonFiniteError
from tlstudio.core.runs.predict import Predictor
from tlstudio.core.runs.training import train


def _diverge_in_epoch(epoch_to_break: int, monkeypatch) -> None:
    """The head's weights turn to NaN during one epoch, as with a far too large step."""
    real = loop_module.train_one_epoch

    def train_one_epoch(session, epoch):
        loss = real(session, epoch)
        if epoch == epoch_to_break:
            with torch.no_grad():
                for p in session.net.parameters():
                    if p.requires_grad:
                        p.fill_(float("nan"))
        return loss

    monkeypatch.setattr(loop_module, "train_one_epoch", train_one_epoch)


@pytest.mark.parametrize("mode", ["linear-probe", "fine-tune"])
def test_divergence_stops_training_and_keeps_only_finite_checkpoints(
        shapes_folder, tmp_path, monkeypatch, mode):
    _diverge_in_epoch(2, monkeypatch)
    events = []
    config = TrainConfig(backbone="efficientnet_lite0", mode=mode, epochs=4, batch_size=8,
                         workers=2, lr=0.01)
    with pytest.raises(NonFiniteError) as err:
        train(config, shapes_folder, tmp_path / "run", [events.append])
    message = str(err.value)
    assert "epoch 2" in message and "learning rate" in message and "NaN" in message
    assert any(isinstance(e, ev.Failed) and "learning rate" in e.message for e in events)
    run = tmp_path / "run"
    for name in ("best.safetensors", "state.safetensors"):  # epoch 1's, not epoch 2's
        tensors = load_file(str(run / name))
        assert all(bool(torch.isfinite(t).all()) for t in tensors.values()
                   if t.is_floating_point()), name
    rows = Predictor.from_run(run).predict([shapes_folder / "disc"])
    assert rows and all(math.isfinite(p) for r in rows for p in r.probabilities.values())


def test_divergence_in_the_first_epoch_leaves_no_model(shapes_folder, tmp_path, monkeypatch):
    _diverge_in_epoch(1, monkeypatch)
    with pytest.raises(NonFiniteError):
        train(TrainConfig(backbone="efficientnet_lite0", mode="linear-probe", epochs=3,
                          batch_size=8, workers=2),
              shapes_folder, tmp_path / "run")
    assert not (tmp_path / "run" / "best.safetensors").exists()
