"""The shell commands a user runs: train, predict, backbones; errors exit non-zero."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from .conftest import make_shapes_folder


def tlstudio(*args, timeout=600):
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    return subprocess.run([sys.executable, "-m", "tlstudio", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, env=env)


def test_train_then_predict_from_the_shell(tmp_path):
    data = make_shapes_folder(tmp_path / "shapes", per_class=20)
    run = tmp_path / "run"
    trained = tlstudio("train", "--data", data, "--backbone", "efficientnet_lite0",
                       "--mode", "linear-probe", "--epochs", "12", "--batch-size", "16",
                       "--val-fraction", "0.25", "--seed", "1", "--out", run)
    assert trained.returncode == 0, trained.stderr
    assert "HELD-OUT TEST" in trained.stdout and "95 % CI" in trained.stdout
    assert "epoch 1/12" in trained.stderr  # progress while training
    accuracy = float(trained.stdout.split("HELD-OUT TEST")[1].split("accuracy")[1].split()[0])
    assert accuracy >= 80.0

    predicted = tlstudio("predict", "--run", run, data / "disc", data / "square" / "square_003.png",
                         "--json")
    assert predicted.returncode == 0, predicted.stderr
    rows = json.loads(predicted.stdout)
    assert len(rows) == 21
    assert set(rows[0]) == {"path", "label", "probabilities", "ood", "ood_score"}
    assert set(rows[0]["probabilities"]) == {"disc", "square"}
    assert sum(r["label"] == "disc" for r in rows[:20]) >= 16
    assert rows[-1]["path"].endswith("square_003.png")

    explained = tmp_path / "heat"
    plain = tlstudio("predict", "--run", run, data / "square" / "square_004.png",
                     data / "disc" / "disc_001.png", "--explain", explained)
    assert plain.returncode == 0 and "square" in plain.stdout, plain.stderr
    for stem in ("square_004", "disc_001"):
        heat = np.load(explained / f"{stem}.heatmap.npy")
        assert heat.dtype == np.float32 and heat.shape == (96, 96)  # the original's H x W
        assert heat.min() >= 0.0 and heat.max() == pytest.approx(1.0)
        assert Image.open(explained / f"{stem}.overlay.png").size == (96, 96)
    assert sorted(p.name for p in explained.iterdir()) == sorted(
        f"{s}.{k}" for s in ("square_004", "disc_001") for k in ("heatmap.npy", "overlay.png"))


@pytest.mark.parametrize("args,message", [
    (["train", "--data", "/no/such/folder", "--out", "{out}"], "does not exist"),
    (["train", "--data", "{data}", "--backbone", "alexnet-9000", "--out", "{out}"],
     "unknown backbone"),
    (["train", "--data", "{data}", "--out", "{data}/runs"], "never writes into your data"),
    (["predict", "--run", "{data}", "x.png"], "not a tlstudio run folder"),
])
def test_bad_input_exits_2_with_a_message(tmp_path, args, message):
    data = make_shapes_folder(tmp_path / "d", per_class=3)
    args = [a.format(data=data, out=tmp_path / "out") for a in args]
    result = tlstudio(*args)
    assert result.returncode == 2
    assert message in result.stderr


def test_backbones_lists_offline_availability():
    result = tlstudio("backbones", "--json")
    assert result.returncode == 0
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert rows["efficientnet_lite0"]["available_offline"] is True
    assert rows["efficientnet_lite0"]["input_size"] == [224, 224]
    table = tlstudio("backbones")
    assert "efficientnet_lite0" in table.stdout and "download" in table.stdout


def test_the_cli_split_defaults_are_the_engines():
    from tlstudio.cli import build_parser
    from tlstudio.core.engine.config import TrainConfig

    for command in (["train"], ["scan", "x"]):
        args = build_parser().parse_args(command)
        assert (args.val_fraction, args.test_fraction) == (
            TrainConfig().val_fraction, TrainConfig().test_fraction)
