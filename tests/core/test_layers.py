"""Layer tree and FreezePlan: counts, tri-state, presets, frozen BatchNorm stays frozen."""

from __future__ import annotations

import timm
import torch

from tlstudio.core.models.layers import (
    FreezePlan,
    apply_freeze_plan,
    layer_tree,
    preset_plan,
    set_train_mode,
    stages,
)


def _lite0():
    return timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=3)


def test_tree_counts_match_the_model():
    model = _lite0()
    tree = layer_tree(model)
    assert tree.parameters == sum(p.numel() for p in model.parameters())
    top = {child.path: child for child in tree.children}
    assert {"conv_stem", "blocks", "classifier"} <= set(top)
    assert top["blocks"].parameters == sum(c.parameters for c in top["blocks"].children)
    assert top["classifier"].parameters == 1280 * 3 + 3


def test_presets_and_partial_states():
    model = _lite0()
    head = preset_plan(model, "head")
    assert head.trainable() == 1280 * 3 + 3
    assert head.state("classifier") == "trainable" and head.state("blocks") == "frozen"
    assert head.state("") == "partial"
    last1 = preset_plan(model, "last-1")
    assert last1.state("blocks.6") == "trainable" and last1.state("blocks.5") == "frozen"
    assert last1.state("conv_head") == "trainable"  # after the last stage: trains too
    assert last1.state("blocks") == "partial"
    assert preset_plan(model, "full").trainable() == preset_plan(model, "full").total()
    assert stages(model) == [f"blocks.{i}" for i in range(7)]
    assert "parameters trainable" in last1.summary()


def test_toggling_and_round_trip_through_paths():
    model = _lite0()
    plan = preset_plan(model, "head")
    plan.set_trainable("blocks.5", True)
    plan.set_trainable("blocks.5.1", False)
    assert plan.state("blocks.5") == "partial"
    paths = plan.frozen_paths(model)
    again = FreezePlan(model, paths)
    assert again.frozen == plan.frozen
    assert len(paths) < 20  # compressed, not one entry per parameter


def test_frozen_batchnorm_stays_in_eval_mode():
    model = _lite0()
    apply_freeze_plan(model, preset_plan(model, "last-1"))
    set_train_mode(model)
    assert not model.bn1.training and not model.blocks[0][0].bn1.training
    assert model.blocks[6][0].bn1.training and model.bn2.training
    before = model.bn1.running_mean.clone()
    model(torch.randn(2, 3, 64, 64))
    assert torch.equal(model.bn1.running_mean, before)
    optimizer_params = [p for p in model.parameters() if p.requires_grad]
    assert sum(p.numel() for p in optimizer_params) == preset_plan(model, "last-1").trainable()
