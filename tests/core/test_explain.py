"""Grad-CAM is a claim about where the evidence is: checked where the answer is known."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from tlstudio.core.data.preprocess import Preprocessing
from tlstudio.core.data.synthetic import shape_with_mask
from tlstudio.core.engine.config import TrainConfig
from tlstudio.core.evaluation.explain import explain_images, to_original
from tlstudio.core.runs.predict import Predictor
from tlstudio.core.runs.training import train


def _held_out_shapes(n: int, seed: int, size: int = 96):
    rng = np.random.default_rng(seed)
    kinds = ["disc", "square"] * (n // 2)
    return [(kind, *shape_with_mask(kind, rng, size)) for kind in kinds]


def _peak_inside(explanations, cases) -> float:
    hits = []
    for explanation, (_, _, mask) in zip(explanations, cases, strict=True):
        y, x = np.unravel_index(np.argmax(explanation.heatmap), explanation.heatmap.shape)
        hits.append(bool(mask[y, x]) and not explanation.flat)
    return float(np.mean(hits))


@pytest.mark.parametrize("backbone,mode", [("mobilenet_v2", "linear-probe"),
                                           ("efficientnet_lite0", "fine-tune")])
def test_cnn_heatmaps_peak_inside_the_object(shapes_folder, tmp_path, backbone, mode):
    """A frozen backbone (linear probe) and a fine-tuned one: new images, one shape at a
    random place; the heatmap's peak lies inside the shape."""
    run = tmp_path / "run"
    train(TrainConfig(backbone=backbone, mode=mode, epochs=10 if mode == "linear-probe" else 3,
                      batch_size=16, workers=2), shapes_folder, run)
    predictor = Predictor.from_run(run, device="cpu")
    cases = _held_out_shapes(40, seed=123)
    images = [img for _, img, _ in cases]
    maps = explain_images(predictor.model, images, predictor.run.preprocessing)
    assert all(m.heatmap.shape == (96, 96) and m.heatmap.dtype == np.float32 for m in maps)
    assert _peak_inside(maps, cases) >= 0.8

    # explaining the other class gives another map, not the same one relabelled
    other = explain_images(predictor.model, images[:4], predictor.run.preprocessing,
                           classes=[1 - m.class_index for m in maps[:4]])
    assert [m.class_index for m in other] == [1 - m.class_index for m in maps[:4]]
    assert not np.allclose(other[0].heatmap, maps[0].heatmap)


def test_a_vit_heatmap_drops_its_class_token_and_peaks_inside_the_object():
    """A small Vision Transformer trained here from scratch on the same task (no hub
    weights offline): the map comes from the patch tokens only, laid out on the patch grid."""
    import timm

    torch.manual_seed(0)
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=2,
                              img_size=96, patch_size=12, depth=4)
    prep = Preprocessing((96, 96), (0.5,) * 3, (0.5,) * 3, "bilinear", 1.0)
    train_cases = _held_out_shapes(240, seed=5)
    x = torch.stack([torch.from_numpy(np.array(img)).permute(2, 0, 1) for _, img, _
                     in train_cases]).float() / 127.5 - 1.0
    y = torch.tensor([0 if kind == "disc" else 1 for kind, _, _ in train_cases])
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()
    for _ in range(6):
        for batch in torch.randperm(len(y)).split(32):
            optimiser.zero_grad()
            torch.nn.functional.cross_entropy(model(x[batch]), y[batch]).backward()
            optimiser.step()
    cases = _held_out_shapes(30, seed=321)
    maps = explain_images(model, [img for _, img, _ in cases], prep)
    with torch.inference_mode():
        accuracy = np.mean([m.class_index == (0 if k == "disc" else 1)
                            for m, (k, _, _) in zip(maps, cases, strict=True)])
    assert accuracy >= 0.9  # it learned the task, so its evidence has a place
    assert _peak_inside(maps, cases) >= 0.8


@pytest.mark.parametrize("size", [(120, 80), (64, 200)])
def test_heatmaps_map_back_through_the_pixel_rule(size):
    """A hot spot at one place of the model's crop lands on the same place of the original,
    through the resize, centre square and centre crop; what the model never saw is 0."""
    prep = Preprocessing((224, 224), (0.5,) * 3, (0.5,) * 3, "bicubic", 0.875)
    w, h = size
    cam = np.zeros((7, 7), dtype=np.float32)
    cam[3, 3] = 1.0  # the centre of the crop
    heat = to_original(cam, (w, h), prep)
    assert heat.shape == (h, w)
    y, x = np.unravel_index(np.argmax(heat), heat.shape)
    assert abs(y - h / 2) <= h * 0.08 and abs(x - w / 2) <= w * 0.08
    long_axis = heat[:, 0] if h > w else heat[0, :]
    assert long_axis.max() == 0.0  # the ends of the long side were cut off: never seen
    Image.fromarray((heat * 255).astype(np.uint8))  # a picture, not NaN


@pytest.mark.parametrize("backbone", ["efficientnet_lite0", "mobilenet_v2", "resnet18",
                                      "convnext_tiny", "vit_small"])
def test_every_family_we_offer_explains_frozen_or_not(backbone):
    """Each family's map has the image's size, is finite and not empty, with every weight
    frozen too (a linear probe's backbone)."""
    from tlstudio.core.models.backbones import build_model, get_spec

    torch.manual_seed(0)
    model = build_model(backbone, 2, pretrained=False)
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    prep = get_spec(backbone).preprocessing()
    rng = np.random.default_rng(0)
    image = shape_with_mask("disc", rng, size=150)[0].resize((150, 120))
    [explained] = explain_images(model, [image], prep, classes=[1])
    assert explained.heatmap.shape == (120, 150) and explained.class_index == 1
    assert np.isfinite(explained.heatmap).all()
    assert explained.flat or explained.heatmap.max() == pytest.approx(1.0)
