"""The speed paths must not change results: cache hits and invalidation, frozen-prefix
logits equal to the plain forward pass, batch augmentation that keeps images sane."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
import timm
import torch

from tlstudio.core.data.augment import augment_batch
from tlstudio.core.data.cache import ImageCache, decode_images
from tlstudio.core.data.preprocess import eval_view, normalize
from tlstudio.core.models.backbones import get_spec
from tlstudio.core.models.layers import preset_plan
from tlstudio.core.models.prefix import split_frozen_prefix


def _paths(folder):
    return sorted(p for p in folder.rglob("*.png"))


def test_cache_hits_and_invalidation(shapes_folder, tmp_path):
    prep = get_spec("efficientnet_lite0").preprocessing()
    paths = _paths(shapes_folder)[:10]
    cache = ImageCache(tmp_path / "cache")
    first, failures = decode_images(paths, prep, cache=cache)
    assert not failures and (cache.stats.hits, cache.stats.misses) == (0, 10)
    assert first.shape == (10, prep.prepared_size, prep.prepared_size, 3)

    second_cache = ImageCache(tmp_path / "cache")  # a later run: same files, same settings
    second, _ = decode_images(paths, prep, cache=second_cache)
    assert (second_cache.stats.hits, second_cache.stats.misses) == (10, 0)
    np.testing.assert_array_equal(first, second)

    from PIL import Image

    Image.new("RGB", (64, 64), (255, 255, 0)).save(paths[3])  # the user edits one image
    os.utime(paths[3], ns=(time.time_ns(), time.time_ns() + 1_000_000))
    third_cache = ImageCache(tmp_path / "cache")
    third, _ = decode_images(paths, prep, cache=third_cache)
    assert (third_cache.stats.hits, third_cache.stats.misses) == (9, 1)
    assert tuple(third[3, 0, 0]) == (255, 255, 0)
    np.testing.assert_array_equal(third[4], first[4])

    lite2 = get_spec("efficientnet_lite2").preprocessing()  # another input size: new entries
    other_cache = ImageCache(tmp_path / "cache")
    decode_images(paths[:2], lite2, cache=other_cache)
    assert other_cache.stats.misses == 2
    assert not any(p.suffix == ".npy" for p in shapes_folder.rglob("*"))  # data untouched


def test_broken_file_is_not_cached(tmp_path):
    prep = get_spec("efficientnet_lite0").preprocessing()
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    cache = ImageCache(tmp_path / "cache")
    _, failures = decode_images([bad], prep, cache=cache)
    assert "not an image" in failures[0] and cache.stats.failures == 1
    assert not list((tmp_path / "cache").rglob("*.npy"))


@pytest.mark.parametrize("name,preset", [("tf_efficientnet_lite0", "last-1"),
                                         ("tf_efficientnet_lite0", "last-3"),
                                         ("resnet18", "last-2"), ("mobilenetv2_100", "last-1"),
                                         ("convnext_tiny", "last-1")])
def test_frozen_prefix_gives_the_same_logits(name, preset):
    torch.manual_seed(0)
    model = timm.create_model(name, num_classes=3).eval()
    plan = preset_plan(model, preset)
    prefix, suffix = split_frozen_prefix(model, plan.frozen)
    x = torch.randn(4, 3, 160, 160)
    with torch.inference_mode():
        plain = model(x)
        via_cache = suffix(prefix(x))
    torch.testing.assert_close(via_cache, plain, rtol=1e-4, atol=1e-4)
    # what is cut off is exactly frozen; what the suffix runs is exactly trainable
    trainable = {id(p) for n, p in model.named_parameters() if n not in plan.frozen}
    assert all(id(p) not in trainable for p in prefix.parameters())
    assert all(id(p) in trainable for p in suffix.parameters())


def test_no_prefix_when_the_first_stage_trains_or_family_is_unsupported():
    lite = timm.create_model("tf_efficientnet_lite0", num_classes=2)
    assert split_frozen_prefix(lite, preset_plan(lite, "full").frozen) is None
    vit = timm.create_model("vit_tiny_patch16_224", num_classes=2)
    assert split_frozen_prefix(vit, preset_plan(vit, "last-1").frozen) is None


def test_batch_augmentation_shapes_and_values():
    prep = get_spec("efficientnet_lite0").preprocessing()
    side = prep.prepared_size
    squares = torch.randint(0, 256, (6, 3, side, side), dtype=torch.uint8)
    none = augment_batch(squares, "none", prep)
    torch.testing.assert_close(none, normalize(eval_view(squares, prep), prep))
    lo = (0 - prep.mean[0]) / prep.std[0]
    hi = (1 - prep.mean[0]) / prep.std[0]
    for preset in ("light", "photo", "grayscale-medical"):
        g = torch.Generator().manual_seed(1)
        out = augment_batch(squares, preset, prep, generator=g)
        assert out.shape == (6, 3, *prep.input_size) and out.dtype == torch.float32
        assert lo - 1e-4 <= out.min() and out.max() <= hi + 1e-4
        again = augment_batch(squares, preset, prep, generator=torch.Generator().manual_seed(1))
        torch.testing.assert_close(out, again)  # seeded: reproducible
        different = augment_batch(squares, preset, prep,
                                  generator=torch.Generator().manual_seed(2))
        assert not torch.allclose(out, different)


def test_light_crop_keeps_the_picture():
    """A random crop of a flat-coloured square is the same flat colour, mirrored or not."""
    prep = get_spec("efficientnet_lite0").preprocessing()
    side = prep.prepared_size
    squares = torch.full((4, 3, side, side), 200, dtype=torch.uint8)
    out = augment_batch(squares, "light", prep, generator=torch.Generator().manual_seed(0))
    expected = (200 / 255 - 0.5) / 0.5
    torch.testing.assert_close(out, torch.full_like(out, expected), rtol=0, atol=1e-4)
