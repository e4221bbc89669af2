"""One pixel rule: the app and the exported model's runtime see the same pixels.

Every image kind a user may drop in (8-bit RGB, grayscale, 16-bit, 32-bit integer and float
TIFF, RGBA, LA, palette with transparency, EXIF-rotated JPEG, CMYK) is made from real
Br35H MRI slices; the exported ONNX model must agree with the app on each kind.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tlstudio import export_runtime, pixels
from tlstudio.core.data.images import read_image
from tlstudio.core.data.preprocess import Preprocessing, eval_view, prepare
from tlstudio.core.runs.export import export_run, parity
from tlstudio.core.runs.history import load_run
from tlstudio.core.runs.record import RunError

PREP = Preprocessing((224, 224), (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), "bicubic", 0.875)
SPEC = {"pixel_rule": {"id": pixels.RULE}, "input_size": [224, 224], "resize": "bicubic",
        "crop_pct": 0.875}


def _gray(source: Path) -> np.ndarray:
    return np.asarray(Image.open(source).convert("L"), dtype=np.float64)


def _alpha(shape) -> np.ndarray:
    """A transparent left quarter, a ramp in the middle, opaque right half."""
    h, w = shape
    ramp = np.clip((np.arange(w) - w / 4) / (w / 4), 0, 1) * 255
    return np.broadcast_to(ramp, (h, w)).astype(np.uint8)


def convert(source: Path, kind: str, folder: Path) -> Path:
    """One real image saved as ``kind``: what a scanner, microscope or editor writes."""
    rgb = Image.open(source).convert("RGB")
    gray = _gray(source)
    stem = folder / f"{source.stem}-{kind}"
    if kind == "rgb8":
        rgb.save(path := stem.with_suffix(".png"))
    elif kind == "gray8":
        rgb.convert("L").save(path := stem.with_suffix(".png"))
    elif kind == "gray16":  # a 12-bit detector in a 16-bit PNG: convert("RGB") clips it
        Image.fromarray((gray * 16 + 1000).astype(np.uint16)).save(
            path := stem.with_suffix(".png"))
    elif kind == "int32-tiff":
        Image.fromarray((gray * 300 - 20000).astype(np.int32), mode="I").save(
            path := stem.with_suffix(".tif"))
    elif kind == "float-tiff":
        Image.fromarray((gray / 255 * 3.7 - 1.2).astype(np.float32), mode="F").save(
            path := stem.with_suffix(".tif"))
    elif kind == "rgba":
        rgba = rgb.copy()
        rgba.putalpha(Image.fromarray(_alpha(gray.shape)))
        rgba.save(path := stem.with_suffix(".png"))
    elif kind == "la":
        la = rgb.convert("L").convert("LA")
        la.putalpha(Image.fromarray(_alpha(gray.shape)))
        la.save(path := stem.with_suffix(".png"))
    elif kind == "palette-transparent":
        pal = rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
        darkest = int(np.argmin(np.asarray(pal.getpalette()[: 64 * 3]).reshape(-1, 3).sum(1)))
        pal.info["transparency"] = darkest
        pal.save(path := stem.with_suffix(".png"), transparency=darkest)
    elif kind == "exif-rotated-jpeg":
        exif = Image.Exif()
        exif[0x0112] = 8  # shown rotated 90° counter-clockwise
        rgb.transpose(Image.Transpose.ROTATE_270).save(path := stem.with_suffix(".jpg"),
                                                       exif=exif.tobytes(), quality=95)
    elif kind == "cmyk-jpeg":
        rgb.convert("CMYK").save(path := stem.with_suffix(".jpg"), quality=95)
    else:
        raise ValueError(kind)
    return path


KINDS = ["rgb8", "gray8", "gray16", "int32-tiff", "float-tiff", "rgba", "la",
         "palette-transparent", "exif-rotated-jpeg", "cmyk-jpeg"]


def _app_input(path: Path) -> np.ndarray:
    square = torch.from_numpy(prepare(read_image(path), PREP)).permute(2, 0, 1)
    return eval_view(square, PREP).numpy().astype(np.float32) / 255.0


def _real_images(n: int) -> list[Path]:
    from ..conftest import br35h_or_skip

    root = br35h_or_skip()
    return sorted((root / "yes").iterdir())[:n] + sorted((root / "no").iterdir())[:n]


@pytest.mark.parametrize("kind", KINDS)
def test_runtime_input_is_the_apps_input_pixel_for_pixel(tmp_path, kind):
    for source in _real_images(2):
        path = convert(source, kind, tmp_path)
        ours, theirs = _app_input(path), export_runtime.preprocess(path, SPEC)
        assert theirs.shape == (3, 224, 224)
        np.testing.assert_array_equal(theirs, ours)
        assert theirs.std() > 0.02, "a kind that turns into a flat picture tests nothing"


def test_sixteen_bit_uses_its_range_instead_of_clipping(tmp_path):
    path = convert(_real_images(1)[0], "gray16", tmp_path)
    picture = np.asarray(read_image(path))
    assert picture.min() == 0 and picture.max() == 255
    clipped = np.asarray(Image.open(path).convert("RGB"))  # what the runtime used to do
    assert (clipped == 255).mean() > 0.9


def test_transparent_areas_are_black_everywhere(tmp_path):
    path = convert(_real_images(1)[0], "rgba", tmp_path)
    picture = np.asarray(read_image(path))
    quarter = picture.shape[1] // 5
    assert picture[:, :quarter].max() == 0
    assert np.asarray(Image.open(path).convert("RGB"))[:, :quarter].max() > 50  # alpha dropped


def test_non_finite_floats_become_black_not_a_blank_image(tmp_path):
    values = np.linspace(0, 1, 64 * 64, dtype=np.float32).reshape(64, 64)
    values[0, :8] = np.nan
    values[1, :8] = np.inf
    Image.fromarray(values, mode="F").save(tmp_path / "f.tif")
    picture = np.asarray(read_image(tmp_path / "f.tif"))[..., 0]
    assert picture[0, :8].max() == 0 and picture[1, :8].max() == 0
    assert picture[-1, -1] == 255 and 100 < picture[32, 32] < 160


@pytest.mark.realdata
@pytest.mark.slow
def test_exported_model_agrees_with_the_app_on_every_pixel_kind(br35h_probe_run, tmp_path):
    out = tmp_path / "export"
    export_run(br35h_probe_run, "onnx", out)
    spec = json.loads((out / "preprocessing.json").read_text())
    assert spec["pixel_rule"]["id"] == pixels.RULE
    assert any("alpha" in step for step in spec["pixel_rule"]["steps"])
    run = load_run(br35h_probe_run)
    val = [Path(p) for p in json.loads((br35h_probe_run / "split.json").read_text())["val"]]
    for kind in KINDS:
        folder = tmp_path / kind
        folder.mkdir()
        paths = [convert(p, kind, folder) for p in val[:24]]
        agreement, worst = parity(run, out / "model.onnx", paths)
        assert agreement >= 0.995, (kind, agreement)
        assert worst < 1e-3, (kind, worst)


@pytest.mark.realdata
def test_a_run_made_under_another_pixel_rule_is_refused(br35h_probe_run, tmp_path):
    copy = tmp_path / "old-run"
    shutil.copytree(br35h_probe_run, copy)
    config = json.loads((copy / "config.json").read_text())
    config["preprocessing"]["pixel_rule"] = "tlstudio-pixels/0"
    (copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(RunError, match="pixel rule tlstudio-pixels/0"):
        load_run(copy)


def test_an_export_without_this_pixel_rule_is_refused(tmp_path):
    (tmp_path / "labels.json").write_text('["a", "b"]')
    (tmp_path / "preprocessing.json").write_text(json.dumps(
        {k: v for k, v in SPEC.items() if k != "pixel_rule"}))
    (tmp_path / "model.onnx").write_bytes(b"not used")
    with pytest.raises(export_runtime.ModelLoadError, match="older tlstudio"):
        export_runtime.ExportedModel.load(tmp_path / "model.onnx")
