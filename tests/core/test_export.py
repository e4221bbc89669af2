"""Exported models give the app's answers outside the app, and say so with numbers."""

from __future__ import annotations

import csv
import json
import math
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from tlstudio.core.data.synthetic import make_shapes_folder
from tlstudio.core.runs import export as export_module
from tlstudio.core.runs.export import ExportError, export_run

from ..conftest import cli
from ..test_cli import tlstudio

pytestmark = [pytest.mark.realdata, pytest.mark.slow]


def _outside_preprocess(path, spec):
    """What a user elsewhere writes from preprocessing.json's steps (no tlstudio code; the
    Br35H files are 8-bit RGB or gray JPEGs, so the pixel rule is a plain convert)."""
    img = Image.open(path).convert("RGB")
    h, w = spec["input_size"]
    side = math.floor(max(h, w) / spec["crop_pct"])
    scale = side / min(img.size)
    img = img.resize((max(side, round(img.width * scale)), max(side, round(img.height * scale))),
                     {"bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR}[spec["resize"]],
                     reducing_gap=None)
    left, top = (img.width - side) // 2, (img.height - side) // 2
    img = img.crop((left, top, left + side, top + side))
    left, top = (side - w) // 2, (side - h) // 2
    img = img.crop((left, top, left + w, top + h))
    return (np.asarray(img, np.float32) / 255.0).transpose(2, 0, 1)


def _app_predictions(run_dir):
    with open(run_dir / "predictions.csv") as fh:
        rows = list(csv.DictReader(fh))
    classes = json.loads((run_dir / "config.json").read_text())["classes"]
    return [r["path"] for r in rows], np.array([[float(r[f"p_{c}"]) for c in classes]
                                                for r in rows]), [r["predicted"] for r in rows]


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_export_reloads_independently_and_agrees(br35h_probe_run, tmp_path, fmt):
    out = tmp_path / fmt
    result = export_run(br35h_probe_run, fmt, out)
    split = json.loads((br35h_probe_run / "split.json").read_text())
    assert result.ok and result.images == len(split["val"]) + len(split["test"]) == 92
    for name in ("labels.json", "preprocessing.json", "decision.json", "weights.safetensors",
                 "MODEL_CARD.md", "parity.json"):
        assert (out / name).is_file(), name
    spec = json.loads((out / "preprocessing.json").read_text())
    assert spec["input_size"] == [224, 224] and spec["color"] == "RGB"
    assert spec["resize"] == "bicubic" and spec["crop_pct"] == pytest.approx(0.875)
    labels = json.loads((out / "labels.json").read_text())
    assert labels == ["no", "yes"]

    paths, app, app_calls = _app_predictions(br35h_probe_run)
    batch = np.stack([_outside_preprocess(p, spec) for p in paths])
    if fmt == "onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
        assert [i.name for i in session.get_inputs()] == ["image"]
        assert session.get_inputs()[0].shape[0] != 60  # dynamic batch, not baked in
        exported = session.run(["probabilities"], {"image": batch})[0]
        single = session.run(["probabilities"], {"image": batch[:1]})[0]
        np.testing.assert_allclose(single, exported[:1], atol=1e-5)
    else:
        module = torch.jit.load(str(out / "model.pt"))
        with torch.inference_mode():  # (probabilities, out-of-distribution score)
            exported, scores = (t.numpy() for t in module(torch.from_numpy(batch)))
        assert scores.shape == (92,) and np.isfinite(scores).all()
    assert exported.shape == (92, 2)
    np.testing.assert_allclose(exported.sum(1), 1.0, atol=1e-5)
    # the temperature is inside the model, the threshold in decision.json: an outside user
    # gets the run's calibrated probabilities and its calls
    np.testing.assert_allclose(exported, app, atol=2e-3)
    decision = json.loads((out / "decision.json").read_text())
    assert decision["positive_class"] == "yes" and 0 < decision["threshold"] < 1
    calls = [labels[1] if p[1] >= decision["threshold"] else labels[0] for p in exported]
    agreement = np.mean([a == b for a, b in zip(calls, app_calls, strict=True)])
    assert agreement >= 0.995
    assert np.abs(exported - app).max() < 1e-3


def test_model_card_carries_the_runs_real_numbers(br35h_probe_run, tmp_path):
    export_run(br35h_probe_run, "onnx", tmp_path / "e")
    card = (tmp_path / "e" / "MODEL_CARD.md").read_text()
    metrics = json.loads((br35h_probe_run / "metrics.json").read_text())
    assert f"Accuracy {metrics['val_accuracy']:.4f}" in card
    matrix = metrics["confusion_matrix"]
    assert f"| no | {matrix[0][0]} | {matrix[0][1]} |" in card
    assert "EfficientNet-Lite0" in card and "Apache-2.0" in card and "ImageNet-1k" in card
    assert "208 training, 46 validation, 46 test images" in card
    test = metrics["test"]
    from tlstudio.core.evaluation.uncertainty import format_ci
    assert f"Accuracy {format_ci(test['accuracy'], test['accuracy_ci'])}" in card
    assert "## Held-out test (46 images" in card
    assert f"at least {test['threshold']:.4f}" in card
    assert "linear probe" in card and "biases of that pretraining data" in card
    parity = json.loads((tmp_path / "e" / "parity.json").read_text())
    assert f"{parity['agreement']:.2%}" in card


def test_low_agreement_is_refused_and_leaves_nothing_to_load(br35h_probe_run, tmp_path,
                                                           monkeypatch):
    monkeypatch.setattr(export_module, "parity", lambda *a: (0.9, 0.4))
    with pytest.raises(ExportError, match="90.0%"):
        export_run(br35h_probe_run, "onnx", tmp_path / "bad")
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no model, no staging folder
    monkeypatch.undo()
    result = cli("predict", "--model", tmp_path / "bad" / "model.onnx", tmp_path)
    assert result.returncode == 2 and "does not exist" in result.stderr


@pytest.mark.slow
def test_cli_export_then_predict_with_the_exported_model(br35h_probe_run, br35h_csv,
                                                        tmp_path):
    """The exported model answers as the run does, from the command line: the same calls,
    probabilities and out-of-distribution flags (generated shapes are unlike any MRI)."""
    out = tmp_path / "cli"
    exported = cli("export", "--run", br35h_probe_run, "--format", "onnx", "--out", out)
    assert exported.returncode == 0, exported.stderr
    agreement = float(exported.stdout.split("images: ")[1].split("%")[0])
    assert agreement >= 99.5
    decision = json.loads((out / "decision.json").read_text())
    assert decision["ood_threshold"] == pytest.approx(
        json.loads((br35h_probe_run / "metrics.json").read_text())["ood"]["threshold"])
    shapes = make_shapes_folder(tmp_path / "shapes", per_class=2)
    mri = [line.split(",")[0] for line in br35h_csv.read_text().splitlines()[1:4]]
    images = [*map(str, sorted(shapes.rglob("*.png"))), *mri]
    by_model = cli("predict", "--model", out / "model.onnx", *images, "--json")
    by_run = cli("predict", "--run", br35h_probe_run, *images, "--json")
    assert by_model.returncode == 0 == by_run.returncode, by_model.stderr
    rows, exported_rows = json.loads(by_run.stdout), json.loads(by_model.stdout)
    assert [r["ood"] for r in rows] == [True] * 4 + [False] * 3
    for a, b in zip(exported_rows, rows, strict=True):
        assert set(a) == set(b) == {"path", "label", "probabilities", "ood", "ood_score"}
        assert a["label"] == b["label"] and a["ood"] is b["ood"]
        assert b["ood_score"] >= 0 and a["ood_score"] == pytest.approx(b["ood_score"], rel=1e-3)
        assert a["probabilities"]["yes"] == pytest.approx(b["probabilities"]["yes"], abs=1e-4)
    again = cli("export", "--run", br35h_probe_run, "--format", "onnx", "--out", out)
    assert again.returncode == 2 and "not empty" in again.stderr


class _Payload:
    def __reduce__(self):
        return (print, ("pwned",))


def test_tampered_pickle_model_is_refused(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "labels.json").write_text('["a", "b"]')
    (folder / "preprocessing.json").write_text('{"input_size": [8, 8]}')  # never read
    torch.save({"model": _Payload()}, folder / "model.pt")
    result = tlstudio("predict", "--model", folder / "model.pt", folder)
    assert result.returncode == 2
    assert "pickled checkpoint" in result.stderr and "pwned" not in result.stdout
    with open(folder / "raw.pt", "wb") as fh:
        pickle.dump(_Payload(), fh)
    result = tlstudio("predict", "--model", folder / "raw.pt", folder)
    assert result.returncode == 2 and "not a TorchScript archive" in result.stderr
