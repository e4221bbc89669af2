"""The out-of-distribution warning: fitted with every run, flags images unlike anything the
model was trained on, in Predict, `predict --json` and the exported runtime alike."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from tlstudio.core.data.synthetic import make_shapes_folder
from tlstudio.core.evaluation.ood import fit_detector
from tlstudio.core.runs.predict import Predictor

from ..test_cli import tlstudio


def test_detector_flags_far_points_and_few_familiar_ones():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 64)) * 3
    def sample(n):
        y = rng.integers(0, 3, n)
        return centres[y] + rng.normal(size=(n, 64)), y

    train, y = sample(300)
    val, _ = sample(200)
    test, _ = sample(400)
    detector = fit_detector(train, y, val)
    familiar = detector.flags(detector.scores(test)).mean()
    strange = detector.flags(detector.scores(rng.normal(size=(200, 64)) * 3)).mean()
    assert familiar <= 0.05 and strange >= 0.95


def _other_domain(tmp_path):
    """Pictures no brain-MRI model has seen: drawn shapes, noise, a CT and an RGB scan."""
    import pydicom.data

    folder = make_shapes_folder(tmp_path / "shapes", per_class=10)
    rng = np.random.default_rng(1)
    for i in range(10):
        Image.fromarray(rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)).save(
            folder / f"noise-{i}.png")
    files = [p for p in folder.rglob("*.png")]
    files += [pydicom.data.get_testdata_file(n) for n in ("CT_small.dcm", "SC_rgb.dcm")]
    return files


def test_a_brain_mri_run_flags_other_domains_not_its_own_test_images(br35h_probe_run,
                                                                     tmp_path):
    metrics = json.loads((br35h_probe_run / "metrics.json").read_text())
    ood = metrics["ood"]
    assert ood["test_flagged"] <= 0.05  # held-out in-domain images: rarely flagged
    assert ood["threshold"] > 0 and (br35h_probe_run / "ood.safetensors").is_file()

    predictor = Predictor.from_run(br35h_probe_run, "cpu")
    others = predictor.predict(_other_domain(tmp_path))
    assert all(r.error is None for r in others)
    flagged = np.mean([r.ood for r in others])
    assert flagged >= 0.95, [(r.path, r.ood_score) for r in others if not r.ood]


@pytest.mark.slow
def test_predict_json_and_the_export_say_the_same(br35h_probe_run, br35h_csv, tmp_path):
    shapes = make_shapes_folder(tmp_path / "shapes", per_class=2)
    mri = [line.split(",")[0] for line in br35h_csv.read_text().splitlines()[1:4]]
    images = [*map(str, sorted(shapes.rglob("*.png"))), *mri]
    answer = tlstudio("predict", "--run", br35h_probe_run, "--json", *images)
    assert answer.returncode == 0, answer.stderr
    rows = json.loads(answer.stdout)
    assert all(isinstance(r["ood"], bool) and r["ood_score"] >= 0 for r in rows)
    assert [r["ood"] for r in rows] == [True] * 4 + [False] * 3

    out = tmp_path / "export"
    made = tlstudio("export", "--run", br35h_probe_run, "--format", "onnx", "--out", out)
    assert made.returncode == 0, made.stderr
    decision = json.loads((out / "decision.json").read_text())
    assert decision["ood_threshold"] == pytest.approx(
        json.loads((br35h_probe_run / "metrics.json").read_text())["ood"]["threshold"])
    exported = json.loads(tlstudio("predict", "--model", out / "model.onnx", "--json",
                                   *images).stdout)
    assert [r["ood"] for r in exported] == [r["ood"] for r in rows]
    for a, b in zip(exported, rows, strict=True):
        assert a["ood_score"] == pytest.approx(b["ood_score"], rel=1e-3)
