"""Real data: Br35H brain MRI (tumour yes/no), 150 images per class, on the CPU.

Thresholds are ones a random model cannot reach; the random-initialisation run shows
what ImageNet pretraining is worth on the same recipe.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from tlstudio.core.engine import events as ev
from tlstudio.core.engine.config import TrainConfig
from tlstudio.core.runs.training import train

pytestmark = [pytest.mark.realdata, pytest.mark.slow]


def test_linear_probe_on_pretrained_lite0_beats_085(br35h_probe_run):
    metrics = json.loads((br35h_probe_run / "metrics.json").read_text())
    assert metrics["count"] == 46  # 15 % of 300, stratified
    assert metrics["val_accuracy"] >= 0.85
    assert min(r["recall"] for r in metrics["per_class"].values()) >= 0.75
    # the headline: 46 held-out images no choice looked at, far from chance with its interval
    test = metrics["test"]
    assert test["n"] == 46 and test["accuracy"] >= 0.8 and test["accuracy_ci"][0] > 0.6
    assert test["roc_auc"] >= 0.85 and test["roc_auc_ci"][0] > 0.7


def test_random_init_is_at_least_ten_points_worse(br35h_probe_run, br35h_csv, tmp_path):
    pretrained = json.loads((br35h_probe_run / "metrics.json").read_text())["val_accuracy"]
    result = train(TrainConfig(mode="linear-probe", pretrained=False, seed=0), br35h_csv,
                   tmp_path / "random")
    assert result.metrics["val_accuracy"] <= pretrained - 0.10


def test_fine_tuning_the_last_stage_ends_no_worse(br35h_probe_run, br35h_csv, tmp_path):
    seen: list = []
    out = tmp_path / "ft"
    result = train(
        TrainConfig(mode="fine-tune", freeze="last-1", epochs=2, seed=0,
                    init_from=str(br35h_probe_run)),
        br35h_csv, out, [seen.append],
    )
    start = json.loads((br35h_probe_run / "metrics.json").read_text())
    assert result.metrics["epochs_run"] == 2
    assert result.metrics["val_accuracy"] >= start["val_accuracy"]
    assert result.metrics["val_loss"] <= start["val_loss"] + 1e-6
    # progress is throttled, but every epoch reports its last batch (208 images / 32)
    last = {e.epoch: e for e in seen if isinstance(e, ev.BatchDone)}
    assert sorted(last) == [1, 2]
    assert all(e.batch == e.batches == last[1].batches >= 6 for e in last.values())
    # epoch 0 is the starting point; the two trained epochs moved the model away from it
    epochs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in epochs] == [0, 1, 2]
    assert all(np.isfinite(e["val_loss"]) for e in epochs)
    assert all(abs(e["val_loss"] - epochs[0]["val_loss"]) > 1e-6 for e in epochs[1:])
    # what was frozen is bit for bit the probe's; a checkpoint from a trained epoch differs
    # from the probe in the last stage
    probe = load_file(str(br35h_probe_run / "best.safetensors"))
    trained = load_file(str(out / "best.safetensors"))
    assert torch.equal(trained["blocks.0.0.conv_dw.weight"], probe["blocks.0.0.conv_dw.weight"])
    if result.metrics["best_epoch"] > 0:
        assert not torch.equal(trained["blocks.6.0.conv_pw.weight"],
                               probe["blocks.6.0.conv_pw.weight"])


def _broken_files(folder):
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(2).integers(0, 255, (128, 128, 3), np.uint8)).save(
        buf, "JPEG")
    (folder / "truncated.jpg").write_bytes(buf.getvalue()[:1500])
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "notes.png").write_text("scan protocol v2, not an image")
    Image.new("RGB", (64, 64), (40, 40, 40)).save(folder / "really_a_png.jpg", format="PNG")


def test_folder_with_broken_files_trains_and_reports_each(tmp_path, mri_folder):
    data = mri_folder
    _broken_files(data / "yes")
    notices: list[str] = []
    result = train(TrainConfig(mode="linear-probe", epochs=20, seed=0), data,
                   tmp_path / "run", [lambda e: notices.append(e.message)
                                      if isinstance(e, ev.Notice) else None])
    assert result.metrics["val_accuracy"] >= 0.75
    problems = {p.path.name: p.message for p in result.index.problems if p.path is not None}
    assert "truncated" in problems["truncated.jpg"]
    assert "empty" in problems["empty.jpg"]
    assert "not an image" in problems["notes.png"]
    assert "really_a_png.jpg" not in problems  # read by content, used for training
    assert result.index.counts()["yes"] == 41
    assert any("truncated.jpg" in n for n in notices)  # the user is told during training
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert any("empty.jpg" in p for p in config["dataset"]["problems"])
