"""The stage-shift gauge: a low-level change to the images (noise, inverted contrast) moves
the early stages' statistics further from ImageNet's than the originals do."""

from __future__ import annotations

import numpy as np
import pytest

from tlstudio.core.data.images import read_image
from tlstudio.core.data.preprocess import prepare
from tlstudio.core.engine.device import pick_device
from tlstudio.core.evaluation.domain_shift import recommend_unfreeze, stage_shift
from tlstudio.core.models.backbones import build_model, get_spec


@pytest.fixture(scope="module")
def lite0():
    spec = get_spec("efficientnet_lite0")
    return build_model(spec, 2), spec.preprocessing()


def _squares(folder, prep):
    files = sorted(folder.rglob("*.jpg"))[:40]
    return np.stack([prepare(read_image(f), prep) for f in files])


def test_low_level_changes_shift_the_early_stages_most(lite0, mri_folder):
    model, prep = lite0
    setup = pick_device("cpu")
    original = _squares(mri_folder, prep)
    rng = np.random.default_rng(0)
    noisy = np.clip(original + rng.normal(0, 60, original.shape), 0, 255).astype(np.uint8)
    inverted = (255 - original).astype(np.uint8)
    base = stage_shift(model, original, prep, setup)
    assert [s["stage"] for s in base] == [f"blocks.{i}" for i in range(7)]
    for changed in (noisy, inverted):
        shifted = stage_shift(model, changed, prep, setup)
        rise = [s["shift"] - b["shift"] for s, b in zip(shifted, base, strict=True)]
        assert rise[0] > 0  # the first stage sees the change
        assert np.mean(rise[:2]) > rise[-1]  # the early stages more than the last one
    advice = recommend_unfreeze(stage_shift(model, noisy, prep, setup))
    assert advice[-1] == "blocks.6"  # the last stage is always adapted


def test_backbones_without_batchnorm_get_no_gauge():
    spec = get_spec("vit_small")
    model = build_model(spec, 2, pretrained=False)
    images = np.zeros((2, 248, 248, 3), dtype=np.uint8)
    assert stage_shift(model, images, spec.preprocessing(), pick_device("cpu")) == []
    assert recommend_unfreeze([]) == []
