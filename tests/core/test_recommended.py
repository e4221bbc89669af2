"""The Recommended mode: a linear probe first, then fine-tuning from it with smaller steps for
earlier layers, layers from the stage-shift gauge, epochs scaled to the data and device."""

from __future__ import annotations

import json

import pytest

from tlstudio.core.engine import events as ev
from tlstudio.core.engine.config import TrainConfig
from tlstudio.core.engine.loop import make_optimizer
from tlstudio.core.engine.recipe import schedule, stage_factors
from tlstudio.core.models.backbones import build_model
from tlstudio.core.models.layers import stages
from tlstudio.core.runs.history import read_epochs
from tlstudio.core.runs.training import train


def test_it_is_the_default_and_its_epochs_follow_the_data_and_the_device():
    assert TrainConfig().mode == "recommended"
    TrainConfig().resolved()  # epochs and steps left open until the data is known
    small, large = schedule(200, "cuda"), schedule(20_000, "cuda")
    assert small["epochs"] > large["epochs"]  # fewer images: more passes over them
    assert schedule(100_000, "cpu")["epochs"] < schedule(100_000, "cuda")["epochs"]
    with pytest.raises(ValueError, match="learning rate"):
        TrainConfig(lr=-1).resolved()


def test_earlier_stages_take_smaller_steps():
    model = build_model("efficientnet_lite0", 2, pretrained=False)
    paths = stages(model)
    factors = stage_factors(model, paths)
    optimizer = make_optimizer(list(model.parameters()), TrainConfig(lr=1e-3), factors)
    lr_of = {id(p): g["lr"] for g in optimizer.param_groups for p in g["params"]}
    named = dict(model.named_parameters())
    assert lr_of[id(named["classifier.weight"])] == pytest.approx(1e-3)
    assert lr_of[id(named[f"{paths[-1]}.0.conv_pwl.weight"])] == pytest.approx(1e-3)
    assert lr_of[id(named[f"{paths[-2]}.0.conv_pwl.weight"])] == pytest.approx(5e-4)
    assert lr_of[id(named[f"{paths[0]}.0.conv_pw.weight"])] < 1e-4


def test_probe_first_then_fine_tune_from_it(shapes_folder, tmp_path):
    seen: list = []
    out = tmp_path / "run"
    result = train(TrainConfig(backbone="efficientnet_lite0", batch_size=16, workers=2,
                               epochs=3, compare_scratch=False), shapes_folder, out, [seen.append])

    config = json.loads((out / "config.json").read_text())
    assert config["train"]["mode"] == "recommended"
    chosen = config["train"]["trainable_paths"]  # what the gauge picked, recorded
    assert "blocks.6" in chosen and "classifier" in chosen
    assert config["train"]["lr"] > 0 and config["train"]["patience"] >= 1
    stages_seen = [e.stage for e in seen if isinstance(e, ev.StageProgress)]
    assert "linear probe first" in stages_seen and "choosing layers" in stages_seen
    assert any(isinstance(e, ev.Notice) and "linear probe first, then fine-tuning" in e.message
               for e in seen)

    rows = read_epochs(out)
    assert [r["epoch"] for r in rows][:2] == [0, 1]  # epoch 0: the probe, before fine-tuning
    probe = rows[0]["val_accuracy"]
    assert probe >= 0.8  # the probe already separates discs from squares
    assert result.metrics["val_accuracy"] >= probe  # never ends worse than its probe
    assert result.metrics["test"]["accuracy"] >= 0.8


def test_layers_the_user_chose_are_kept(shapes_folder, tmp_path):
    out = tmp_path / "run"
    train(TrainConfig(backbone="efficientnet_lite0", batch_size=16, workers=2, epochs=1,
                      freeze="last-2", compare_scratch=False), shapes_folder, out)
    config = json.loads((out / "config.json").read_text())
    assert config["train"]["trainable_paths"] is None
    assert not any(p.startswith("blocks.5") for p in config["frozen_paths"])
    assert "blocks.4" in config["frozen_paths"]


def test_stopped_while_probing_then_resumed(shapes_folder, tmp_path):
    from tlstudio.core.runs.training import resume

    control = ev.Control()

    def stop_in_probe(event):
        if isinstance(event, ev.StageProgress) and event.stage == "linear probe first" \
                and event.done == 2:
            control.stop()

    out = tmp_path / "run"
    first = train(TrainConfig(backbone="efficientnet_lite0", batch_size=16, workers=2,
                              epochs=2, compare_scratch=False), shapes_folder, out,
                  [stop_in_probe], control)
    assert first.cancelled and not (out / "metrics.json").exists()
    seen: list = []
    done = resume(out, [seen.append])
    assert not done.cancelled
    assert [r["epoch"] for r in read_epochs(out)] == [0, 1, 2]
    assert any(isinstance(e, ev.StageProgress) and e.stage == "linear probe first"
               for e in seen)


def test_far_images_fine_tune_from_a_fresh_head(monkeypatch):
    """When the gauge finds an early stage shifted (another modality, contrast, scale), the
    features must move and a probed head would hold them back: the fine-tune starts from a
    fresh head. Near images keep the probe; the user's own choice is kept either way."""
    from types import SimpleNamespace

    import numpy as np

    from tlstudio.core.engine.device import pick_device
    from tlstudio.core.runs import recommended

    model = build_model("efficientnet_lite0", 2, pretrained=False)
    paths = stages(model)
    images = np.zeros((8, 8, 8, 3), dtype=np.uint8)
    prepared = SimpleNamespace(data=SimpleNamespace(train_images=images,
                                                    train_targets=np.zeros(8, dtype=np.int64)))

    def choose(shifted: str, **settings) -> tuple[TrainConfig, list]:
        monkeypatch.setattr(recommended, "stage_shift", lambda *a, **k: [
            {"stage": p, "shift": 3.0 if p == shifted else 0.1, "layers": 2} for p in paths])
        seen: list = []
        config = recommended.choose(TrainConfig(**settings), model, prepared, None,
                                    pick_device("cpu"), seen.append)
        return config, [e.message for e in seen if isinstance(e, ev.Notice)]

    far, said = choose(paths[1])  # an early stage
    assert far.probe_first is False and "from a fresh head" in said[0]
    assert "shift early stages" in said[0]
    near, said = choose(paths[-1])  # new concepts only: the last stage
    assert near.probe_first is True and "linear probe first" in said[0]
    kept, _ = choose(paths[1], probe_first=True)
    assert kept.probe_first is True


def test_a_fresh_head_trains_without_the_probe(shapes_folder, tmp_path):
    seen: list = []
    out = tmp_path / "run"
    train(TrainConfig(backbone="efficientnet_lite0", batch_size=16, workers=2, epochs=1,
                      probe_first=False, compare_scratch=False), shapes_folder, out,
          [seen.append])
    assert "linear probe first" not in [e.stage for e in seen if isinstance(e, ev.StageProgress)]
    assert [r["epoch"] for r in read_epochs(out)] == [1]  # no epoch 0: nothing probed
    assert json.loads((out / "config.json").read_text())["train"]["probe_first"] is False
