"""Export and ``predict --model`` write only into the output folder and tlstudio's own
folder: nothing into the user's home (onnxruntime's telemetry queue included) or temp."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from tlstudio.core.data.synthetic import make_shapes_folder
from tlstudio.core.engine.config import TrainConfig
from tlstudio.core.runs.training import train

pytestmark = pytest.mark.slow


def _everything(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def test_export_and_predict_model_write_nothing_outside_their_folders(tmp_path):
    data = make_shapes_folder(tmp_path / "data", per_class=10)
    run = tmp_path / "run"
    train(TrainConfig(backbone="efficientnet_lite0", mode="linear-probe", epochs=2,
                      batch_size=8, workers=2), data, run)
    home, temp, out = tmp_path / "home", tmp_path / "temp", tmp_path / "exported"
    home.mkdir()
    temp.mkdir()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("XDG_", "TLSTUDIO_", "ORT_"))}
    env.update(HOME=str(home), TMPDIR=str(temp), TEMP=str(temp), TMP=str(temp),
               HF_HUB_OFFLINE="1")
    own = home / ".local" / "share" / "tlstudio"  # tlstudio's own folder under this HOME
    before_run, before_data = _everything(run), _everything(data)

    def tlstudio(*args):
        done = subprocess.run([sys.executable, "-m", "tlstudio", *map(str, args)], env=env,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
        return done

    tlstudio("export", "--run", run, "--format", "onnx", "--out", out)
    predicted = tlstudio("predict", "--model", out / "model.onnx", data / "disc", "--json")
    assert len(json.loads(predicted.stdout)) == 10
    tlstudio("export", "--run", run, "--format", "torchscript", "--out", tmp_path / "ts")
    tlstudio("predict", "--model", tmp_path / "ts" / "model.pt", data / "square")
    # a library warning (Pillow on a corrupt EXIF block) goes to the log, not the terminal
    odd = tmp_path / "odd"
    odd.mkdir()
    ifd = (b"MM\x00*" + struct.pack(">IH", 8, 1) + struct.pack(">HHII", 0x010F, 2, 100, 5000)
           + struct.pack(">I", 0))
    Image.new("RGB", (32, 32), (9, 9, 9)).save(odd / "odd.jpg", exif=b"Exif\x00\x00" + ifd)
    for source in (["--run", run], ["--model", out / "model.onnx"]):
        labelled = tlstudio("predict", *source, odd / "odd.jpg")
        assert "odd.jpg" in labelled.stdout and "Tag data" not in labelled.stderr
    assert "Tag data" in (own / "logs" / "tlstudio.log").read_text()

    stray = sorted(p for p in _everything(home)
                   if not (home / p == own or own in (home / p).parents
                           or (home / p) in own.parents))
    assert stray == [], f"written into the home folder: {stray}"
    assert _everything(temp) == set(), "left in the temp folder"
    assert _everything(run) == before_run and _everything(data) == before_data
    assert not (home / ".cache").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "exported", "home", "odd",
                                                          "run", "temp", "ts"]
