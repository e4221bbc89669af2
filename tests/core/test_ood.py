"""The out-of-distribution warning: fitted with every run, flags images unlike anything the
model was trained on, in Predict, `predict --json` and the exported runtime alike."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from tlstudio.core.data.synthetic import make_shapes_folder
from tlstudio.core.evaluation.ood import fit_detector
from tlstudio.core.runs.predict import Predictor


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
