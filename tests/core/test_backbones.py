"""Backbones: real pretrained weights, mapped right, loaded safely, with new heads."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import timm
import torch
from PIL import Image
from safetensors.torch import save_file

from tlstudio.core.data.preprocess import eval_view, normalize, prepare
from tlstudio.core.models.backbones import REGISTRY, BackboneError, build_model, get_spec
from tlstudio.core.models.weights import WeightsError, load_into, read_state_dict

IMAGENET_CATS = set(range(281, 286))  # tabby, tiger cat, Persian, Siamese, Egyptian cat


def _imagenet_top5(spec_name: str, img: Image.Image) -> list[int]:
    spec = get_spec(spec_name)
    model = timm.create_model(spec.timm_name, pretrained=False,
                              pretrained_cfg_overlay=spec.cfg_overlay or None)
    load_into(model, read_state_dict(spec.weights_file()), "classifier", strict=True)
    prep = spec.preprocessing()
    square = torch.from_numpy(prepare(img, prep)).permute(2, 0, 1)[None]
    with torch.inference_mode():
        logits = model.eval()(normalize(eval_view(square, prep), prep))
    return logits[0].topk(5).indices.tolist()


@pytest.mark.parametrize("name", ["efficientnet_lite0", "efficientnet_lite1",
                                  "efficientnet_lite2", "mobilenet_v2"])
def test_offline_weights_recognise_a_real_cat(name):
    skimage_data = pytest.importorskip("skimage.data")
    if not get_spec(name).available_offline():
        pytest.skip(f"{name} weight package not installed")
    top5 = _imagenet_top5(name, Image.fromarray(skimage_data.chelsea()))
    assert IMAGENET_CATS & set(top5), f"no cat class in top-5 {top5}"


def test_lite0_is_available_offline_and_lite_preprocessing_is_half():
    spec = get_spec("lite0")
    assert spec.available_offline()
    prep = spec.preprocessing()
    assert prep.mean == (0.5, 0.5, 0.5) and prep.std == (0.5, 0.5, 0.5)
    assert prep.input_size == (224, 224)
    assert get_spec("resnet18").preprocessing().mean[0] == pytest.approx(0.485)


def test_build_replaces_the_head_and_keeps_pretrained_body():
    model = build_model("efficientnet_lite0", num_classes=3)
    assert model.get_classifier().out_features == 3
    reference = read_state_dict(get_spec("efficientnet_lite0").weights_file())
    assert torch.equal(model.conv_stem.weight, reference["_conv_stem.weight"])
    random_model = build_model("efficientnet_lite0", num_classes=3, pretrained=False)
    assert not torch.equal(random_model.conv_stem.weight, reference["_conv_stem.weight"])


def test_registry_entries_describe_themselves():
    rows = [spec.as_dict() for spec in REGISTRY.values()]
    names = {r["name"] for r in rows}
    assert {"efficientnet_lite0", "resnet18", "resnet50", "efficientnet_b0", "convnext_tiny",
            "vit_small", "mobilenet_v2"} <= names
    for r in rows:
        assert r["parameters"] > 1_000_000 and r["license"] and r["pretrained_on"]
        assert isinstance(r["available_offline"], bool)


def test_hub_entry_loads_through_timm_from_a_local_file(tmp_path):
    """The online path (timm pretrained=True) fed a local file instead of a download."""
    source = timm.create_model("resnet18", pretrained=False)
    file = tmp_path / "resnet18.safetensors"
    save_file(source.state_dict(), str(file))
    model = build_model("resnet18", num_classes=4, weights=file)
    assert model.fc.out_features == 4
    assert torch.equal(model.layer4[1].conv2.weight, source.layer4[1].conv2.weight)
    pth = tmp_path / "resnet18.pth"
    torch.save(source.state_dict(), pth)
    model = build_model("resnet18", num_classes=2, weights=pth)
    assert torch.equal(model.conv1.weight, source.conv1.weight)


def test_hub_entry_without_cache_explains_what_to_do(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    spec = get_spec("convnext_tiny")
    if spec.available_offline():
        pytest.skip("convnext weights happen to be cached here")
    with pytest.raises(BackboneError, match="Hugging Face hub"):
        build_model(spec, num_classes=2)


def test_local_file_for_offline_entry_and_wrong_architecture(tmp_path):
    trained = build_model("efficientnet_lite0", num_classes=5)
    file = tmp_path / "mine.safetensors"
    save_file(trained.state_dict(), str(file))
    again = build_model("efficientnet_lite0", num_classes=2, weights=file)
    assert torch.equal(again.blocks[6][0].conv_pw.weight, trained.blocks[6][0].conv_pw.weight)
    other = tmp_path / "resnet.safetensors"
    save_file(timm.create_model("resnet18").state_dict(), str(other))
    with pytest.raises(BackboneError, match="do not fit|wrong shape"):
        build_model("efficientnet_lite0", num_classes=2, weights=other)


class _Payload:
    def __reduce__(self):
        return (print, ("this pickle runs code",))


def test_tampered_pickle_is_refused(tmp_path):
    evil = tmp_path / "evil.pth"
    with open(evil, "wb") as fh:
        pickle.dump({"conv_stem.weight": _Payload()}, fh)
    with pytest.raises(WeightsError, match="weights_only"):
        read_state_dict(evil)
    checkpoint = tmp_path / "tampered.pt"  # a real torch.save zip holding a code-running object
    torch.save({"conv_stem.weight": torch.zeros(1), "extra": _Payload()}, checkpoint)
    with pytest.raises(WeightsError, match="refused"):
        read_state_dict(checkpoint)
    with pytest.raises(BackboneError):
        build_model("efficientnet_lite0", num_classes=2, weights=evil)


def test_unknown_backbone_lists_known_ones():
    with pytest.raises(BackboneError, match="efficientnet_lite0"):
        get_spec("alexnet-9000")


def test_mapping_is_strict_for_every_tensor():
    spec = get_spec("efficientnet_lite0")
    state = read_state_dict(spec.weights_file())
    state.pop("_blocks.3._project_conv.weight")
    model = timm.create_model(spec.timm_name, pretrained=False)
    with pytest.raises(WeightsError, match="missing"):
        load_into(model, state, "classifier", strict=True)
    np.testing.assert_equal(len(read_state_dict(spec.weights_file())), 296)


def test_a_backbone_that_needs_a_download_fails_at_once_when_offline(
        monkeypatch, tmp_path, capsys):
    """Issue 18: offline, a hub backbone sat 20-45 s at "loading backbone: 0/1", then showed
    a library's message cut off mid-sentence. Now: within 5 s, the backbone named, and what
    to do instead."""
    import socket
    import time

    import tlstudio.core.models.backbones as backbones
    from tlstudio.cli import main
    from tlstudio.core.models.backbones import BackboneError, build_model

    from ..conftest import make_shapes_folder

    monkeypatch.setattr(backbones, "_hub_cached", lambda _id: False)  # nothing downloaded

    def hanging(*args, **kwargs):  # no network: the name lookup hangs, then fails
        time.sleep(30)
        raise OSError("no route")

    monkeypatch.setattr(socket, "create_connection", hanging)
    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)  # a proxy would skip the direct probe
    monkeypatch.setattr("urllib.request.getproxies", dict)  # nor a system-wide one
    for offline in ("1", ""):  # downloads switched off / a machine without network
        monkeypatch.setenv("HF_HUB_OFFLINE", offline)
        started = time.monotonic()
        with pytest.raises(BackboneError) as caught:
            build_model("resnet18", 2)
        assert time.monotonic() - started < 5
        message = str(caught.value)
        assert "ResNet-18" in message and "available offline" in message
        assert "import a weights file" in message and message.endswith(".")

    data = make_shapes_folder(tmp_path / "shapes", per_class=4)
    started = time.monotonic()
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "run"),
                 "--backbone", "resnet18", "--epochs", "1"]) == 2
    assert time.monotonic() - started < 5 + 5  # + scanning and imports
    assert "ResNet-18 needs its pretrained weights" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()  # nothing left behind


def test_behind_a_system_proxy_the_download_is_tried_not_refused(monkeypatch):
    """Windows and macOS keep the proxy in the system's settings, not in the environment:
    a direct connection fails there while the hub's client, going through the proxy, would
    download. Such a machine is not called offline."""
    import urllib.request

    import tlstudio.core.models.backbones as backbones

    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY",
                 "no_proxy", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    probed = []
    monkeypatch.setattr(backbones, "_hub_reachable", lambda: probed.append(1) or False)
    spec = backbones.get_spec("resnet18")
    monkeypatch.setattr(urllib.request, "getproxies", dict)
    with pytest.raises(backbones.BackboneError, match="cannot be reached"):
        backbones._check_hub_reachable(spec)
    assert probed == [1]

    monkeypatch.setattr(urllib.request, "getproxies",
                        lambda: {"https": "http://proxy.hospital.example:3128"})
    monkeypatch.setattr(urllib.request, "proxy_bypass", lambda host: False)
    backbones._check_hub_reachable(spec)  # no error: the download goes through the proxy
    assert probed == [1]
    monkeypatch.setattr(urllib.request, "proxy_bypass", lambda host: True)  # bypassed: direct
    with pytest.raises(backbones.BackboneError):
        backbones._check_hub_reachable(spec)
