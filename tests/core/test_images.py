"""Reading images by content, in every pixel mode, upright, with reasons for failures."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from tlstudio.core.data.images import ImageReadError, read_image


def _save(img: Image.Image, path, fmt: str, **kw):
    img.save(path, format=fmt, **kw)
    return path


@pytest.mark.parametrize("fmt,ext", [("JPEG", ".jpg"), ("PNG", ".png"), ("BMP", ".bmp"),
                                     ("TIFF", ".tif"), ("WEBP", ".webp"), ("GIF", ".gif")])
def test_formats_read_as_rgb(tmp_path, fmt, ext):
    img = Image.new("RGB", (40, 30), (200, 100, 50))
    out = read_image(_save(img, tmp_path / f"a{ext}", fmt))
    assert out.mode == "RGB" and out.size == (40, 30)


def test_format_comes_from_content_not_extension(tmp_path):
    png_named_jpg = _save(Image.new("RGB", (8, 8), (0, 255, 0)), tmp_path / "x.jpg", "PNG")
    assert read_image(png_named_jpg).getpixel((0, 0)) == (0, 255, 0)


def test_modes_convert_consistently(tmp_path):
    gray = read_image(_save(Image.new("L", (4, 4), 77), tmp_path / "g.png", "PNG"))
    assert gray.getpixel((0, 0)) == (77, 77, 77)
    rgba = Image.new("RGBA", (4, 4), (255, 0, 0, 0))  # fully transparent red
    assert read_image(_save(rgba, tmp_path / "t.png", "PNG")).getpixel((0, 0)) == (0, 0, 0)
    pal = Image.new("RGB", (4, 4), (10, 20, 30)).convert("P", palette=Image.Palette.ADAPTIVE)
    assert read_image(_save(pal, tmp_path / "p.png", "PNG")).getpixel((0, 0)) == (10, 20, 30)
    sixteen = Image.fromarray(np.array([[0, 1000], [30000, 65535]], dtype=np.uint16))
    out = read_image(_save(sixteen, tmp_path / "s.png", "PNG"))
    # full 16-bit range maps to 0..255, not clipped at 255
    assert out.getpixel((0, 0)) == (0, 0, 0) and out.getpixel((1, 1)) == (255, 255, 255)
    assert 100 < out.getpixel((0, 1))[0] < 130


def test_exif_orientation_is_applied(tmp_path):
    img = Image.new("RGB", (60, 20), (255, 255, 255))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    img.save(tmp_path / "o.jpg", exif=exif.tobytes())
    assert read_image(tmp_path / "o.jpg").size == (20, 60)


def test_broken_files_have_reasons(tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "text.png").write_text("this is not a picture")
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(
        buf, "JPEG")
    (tmp_path / "cut.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    reasons = {}
    for name in ("empty.jpg", "text.png", "cut.jpg", "missing.png"):
        with pytest.raises(ImageReadError) as err:
            read_image(tmp_path / name)
        reasons[name] = str(err.value)
    assert "empty" in reasons["empty.jpg"]
    assert "not an image" in reasons["text.png"]
    assert "truncated" in reasons["cut.jpg"]
    assert "cannot open" in reasons["missing.png"]
