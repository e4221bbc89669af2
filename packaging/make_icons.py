"""Render resources/tlstudio.svg into the icon files installers want (PNG sizes, .ico, .icns).

Usage: python packaging/make_icons.py OUT_DIR   (run with the project's virtual environment)
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

SIZES = (16, 24, 32, 48, 64, 128, 256, 512)


def main(out: Path) -> None:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PIL import Image
    from PySide6.QtGui import QGuiApplication, QIcon

    app = QGuiApplication.instance() or QGuiApplication([])  # noqa: F841 (Qt needs one)
    svg = Path(__file__).resolve().parents[1] / "resources" / "tlstudio.svg"
    icon = QIcon(str(svg))
    if icon.isNull():
        raise SystemExit(f"cannot render {svg}")
    out.mkdir(parents=True, exist_ok=True)
    for size in SIZES:
        target = out / f"tlstudio-{size}.png"
        if not icon.pixmap(size, size).save(str(target)):
            raise SystemExit(f"cannot write {target}")
    largest = Image.open(out / "tlstudio-512.png")
    largest.save(out / "tlstudio.ico", sizes=[(s, s) for s in SIZES if s <= 256])
    largest.save(out / "tlstudio.icns")
    print(f"icons written to {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "build/icons"))
