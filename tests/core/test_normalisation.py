"""Re-estimating BatchNorm statistics on another domain's images (the basis of issue 19's
adaptation): the statistics become those of the new images, nothing else changes, and a
backbone without BatchNorm says so."""

from __future__ import annotations

import numpy as np
import torch

from tlstudio.core.engine.device import pick_device
from tlstudio.core.evaluation.normalisation import (
    batch_norms,
    has_batch_norm,
    load_statistics,
    reestimate,
    statistics,
)
from tlstudio.core.models.backbones import build_model, get_spec


def _squares(rng, n, side, low, high):
    return rng.integers(low, high, size=(n, side, side, 3), dtype=np.uint8)


def test_statistics_follow_the_new_images_and_weights_stay():
    spec = get_spec("efficientnet_lite0")
    prep = spec.preprocessing()
    side = prep.input_size[-1]
    model = build_model(spec, 2, pretrained=False).eval()
    setup = pick_device("cpu")
    weights = {k: v.clone() for k, v in model.state_dict().items()
               if "running" not in k and "num_batches" not in k}
    rng = np.random.default_rng(0)
    dark, bright = _squares(rng, 12, side, 0, 60), _squares(rng, 12, side, 190, 255)

    assert reestimate(model, dark, prep, setup, batch_size=4) == len(batch_norms(model))
    dark_stats = statistics(model)
    reestimate(model, bright, prep, setup, batch_size=4)
    bright_stats = statistics(model)
    first = f"{batch_norms(model)[0][0]}.running_mean"
    # the first layer sees brighter inputs: its remembered means follow them
    assert not torch.allclose(dark_stats[first], bright_stats[first])
    assert not model.training and all(not m.training for m in model.modules())
    for k, v in model.state_dict().items():
        if k in weights:
            assert torch.equal(v, weights[k]), k
    # the same images give the same statistics (nothing left over from the last pass)
    reestimate(model, dark, prep, setup, batch_size=4)
    for k, v in statistics(model).items():
        torch.testing.assert_close(v, dark_stats[k])
    load_statistics(model, bright_stats)
    assert torch.equal(statistics(model)[first], bright_stats[first])


def test_a_backbone_without_batch_norm_has_nothing_to_reestimate():
    import timm

    vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=2)
    assert not has_batch_norm(vit)
    assert has_batch_norm(build_model("efficientnet_lite0", 2, pretrained=False))


def test_only_the_chosen_stages_are_reestimated():
    spec = get_spec("efficientnet_lite0")
    prep = spec.preprocessing()
    model = build_model(spec, 2, pretrained=False).eval()
    before = statistics(model)
    images = _squares(np.random.default_rng(1), 8, prep.input_size[-1], 150, 255)
    changed = reestimate(model, images, prep, pick_device("cpu"), batch_size=4,
                         within=("bn1", "blocks.0"))
    after = statistics(model)
    moved = {k.rsplit(".", 1)[0] for k in after if not torch.equal(after[k], before[k])}
    assert moved and all(k == "bn1" or k.startswith("blocks.0.") for k in moved)
    assert changed == len([n for n, _ in batch_norms(model)
                           if n == "bn1" or n.startswith("blocks.0.")])


def _sums(per_image: torch.Tensor, parts: np.ndarray) -> dict:
    """Per-part sums as MomentRecorder keeps them, from per-image [mean, square] rows
    (one position per image)."""
    k = int(parts.max()) + 1
    total = torch.zeros(k, 2, per_image.shape[-1], dtype=torch.float64)
    counts = torch.zeros(k, dtype=torch.float64)
    rows = torch.from_numpy(parts)
    total.index_add_(0, rows, per_image.double())
    counts.index_add_(0, rows, torch.ones(len(parts), dtype=torch.float64))
    return {"layer": (total, counts)}


def test_a_small_sample_of_the_source_itself_is_no_change_of_domain():
    """2,000 source images in 10 parts (200 each): 30 more images of the same domain lie
    within what luck gives a sample of 30, a shift of half a spread does not (the luck of
    a sample smaller than a part is scaled from one part, as one over the size)."""
    from tlstudio.core.evaluation.normalisation import combine, distance, sampling_noise

    def images(rng, n, shift=0.0):
        x = torch.from_numpy(rng.normal(shift, 1.0, size=(n, 64)))
        return torch.stack([x, x * x], 1)

    same_called_changed = 0
    for seed in range(20):
        rng = np.random.default_rng(seed)
        sums = _sums(images(rng, 2000), rng.permutation(2000) % 10)
        source = combine(sums)
        luck = sampling_noise(sums, 30 / 2000, seed=seed)
        same = distance(combine(_sums(images(rng, 30), np.zeros(30, np.int64))), source)
        moved = distance(combine(_sums(images(rng, 30, 0.5), np.zeros(30, np.int64))), source)
        same_called_changed += same > 1.5 * luck
        assert moved > 1.5 * luck, (seed, moved, luck)
    assert same_called_changed <= 1
