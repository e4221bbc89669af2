"""One image enlarged beside its Grad-CAM heatmap: what the model looked at.

The heatmap is computed off the GUI thread with the run's own model (loaded once per run and
kept for the next image); a newer request replaces an older one, and a dialog closed before
its heatmap arrives drops it.
"""

from __future__ import annotations

import threading
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import QComboBox, QDialog, QHBoxLayout, QLabel, QVBoxLayout

from ..core.runs.predict import Prediction, Predictor
from ..pixels import parse_image_key
from .workers import LatestTask

SIDE = 420
NOTE = ("Grad-CAM: warm colours mark the places whose features raised this class's score "
        "against the others. It shows where the model looked, not whether it was right. Parts "
        "outside the model's centre crop stay uncoloured.")
_cache: dict[str, Predictor] = {}
_lock = threading.Lock()


def predictor_for(run_dir: str | Path) -> Predictor:
    """The run's model, loaded once (only the newest run is kept)."""
    key = str(run_dir)
    with _lock:
        if key not in _cache:
            _cache.clear()
            _cache[key] = Predictor.from_run(run_dir)
        return _cache[key]


def forget_models() -> None:
    with _lock:
        _cache.clear()


def to_qimage(img) -> QImage:
    img = img.convert("RGB")
    img.thumbnail((SIDE, SIDE))
    if max(img.size) < SIDE // 2:  # tiny images shown as big blocks, not a dot
        from PIL import Image

        scale = (SIDE // 2) / max(img.size)
        img = img.resize((round(img.width * scale), round(img.height * scale)),
                         Image.Resampling.NEAREST)
    data = img.tobytes("raw", "RGB")
    return QImage(data, img.width, img.height, img.width * 3,
                  QImage.Format.Format_RGB888).copy()


def explain_one(run_dir, key: str, class_name: str | None):
    """(picture, overlay picture, prediction, explanation) for one image key."""
    from ..core.evaluation.explain import overlay

    predictor = predictor_for(run_dir)
    [prediction] = predictor.predict([key])
    if prediction.error:
        raise ValueError(prediction.error)
    [explanation] = predictor.explain([prediction], class_name)
    image = explanation.image
    return (to_qimage(image), to_qimage(overlay(image, explanation.heatmap)), prediction,
            explanation)


def discard(dialog: QDialog | None) -> None:
    """Close an image window a page opened before and free it: a page shows one at a time,
    and each one closed would otherwise hold its pictures until the main window closes."""
    if dialog is not None:
        dialog.close()
        dialog.deleteLater()


class ImageDialog(QDialog):
    def __init__(self, run_dir, key: str, classes: list[str], window: str = "file",
                 caption: str = "", parent=None):
        super().__init__(parent)
        self.setWindowTitle(Path(parse_image_key(key)[0]).name)
        self.run_dir, self.key, self.classes = run_dir, key, classes
        self.prediction: Prediction | None = None
        self.explanation = None
        self._task = LatestTask(self)
        layout = QVBoxLayout(self)
        head = QHBoxLayout()
        self.caption = QLabel(caption)
        self.caption.setWordWrap(True)
        head.addWidget(self.caption, 1)
        head.addWidget(QLabel("Heatmap for:"))
        self.class_combo = QComboBox()
        self.class_combo.addItem("the class it is called", None)
        for name in classes:
            self.class_combo.addItem(name, name)
        self.class_combo.currentIndexChanged.connect(lambda _i: self.compute())
        head.addWidget(self.class_combo)
        layout.addLayout(head)
        pictures = QHBoxLayout()
        self.image_label = QLabel("Loading…")
        self.heat_label = QLabel("Computing the heatmap…")
        for label in (self.image_label, self.heat_label):
            label.setAlignment(Qt.AlignmentFlag.AlignCenter)
            label.setMinimumSize(SIDE, SIDE)
            pictures.addWidget(label)
        layout.addLayout(pictures)
        self.note = QLabel(NOTE)
        self.note.setWordWrap(True)
        self.note.setObjectName("hint")
        layout.addWidget(self.note)
        self.compute()

    def compute(self) -> None:
        wanted = self.class_combo.currentData()
        self.heat_label.setText("Computing the heatmap…")
        self._task.start(lambda _token: explain_one(self.run_dir, self.key, wanted),
                         on_done=self._show, on_error=self._failed)

    def _show(self, result) -> None:
        image, heat, self.prediction, self.explanation = result
        self.image_label.setPixmap(QPixmap.fromImage(image))
        self.heat_label.setPixmap(QPixmap.fromImage(heat))
        cls = self.classes[self.explanation.class_index]
        text = f"heatmap for '{cls}'"
        if self.explanation.flat:
            text += " — no place raised this class's score: the map is empty"
        self.heat_label.setToolTip(text)
        self.note.setText(f"<b>{text[:1].upper()}{text[1:]}.</b> {NOTE}")

    def _failed(self, message: str) -> None:
        self.heat_label.setText(f"No heatmap: {message}")


class LargeImageDialog(QDialog):
    """One image, large, in the display window chosen for it (decoded off the GUI thread)."""

    SIDE = 760

    def __init__(self, key: str, window: str = "file", caption: str = "", parent=None):
        super().__init__(parent)
        from .widgets import image_facts, thumbnail

        path, frame = parse_image_key(key)
        self.setWindowTitle(Path(path).name + (f" #{frame}" if frame is not None else ""))
        self.key = key
        layout = QVBoxLayout(self)
        screen = self.screen().availableGeometry() if self.screen() is not None else None
        # large, yet whole on a small screen (a 768-pixel-high laptop)
        self.side = min(self.SIDE, int(screen.height() * 0.7)) if screen else self.SIDE
        self.image_label = QLabel("Loading…")
        self.image_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.image_label.setMinimumSize(self.side, self.side)
        layout.addWidget(self.image_label, 1)
        self.caption = QLabel(caption)
        self.caption.setWordWrap(True)
        self.caption.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.caption)
        self._task = LatestTask(self)

        side = self.side

        def work(_token):
            return thumbnail(path, side, window, frame), image_facts(path)

        self._task.start(work, on_done=self._show, on_error=self._failed)

    def _show(self, result) -> None:
        image, facts = result
        pixmap = QPixmap.fromImage(image)
        if max(pixmap.width(), pixmap.height()) > self.side:
            pixmap = pixmap.scaled(self.side, self.side, Qt.AspectRatioMode.KeepAspectRatio,
                                   Qt.TransformationMode.SmoothTransformation)
        self.image_label.setPixmap(pixmap)
        described = " · ".join(f"{k}: {v}" for k, v in facts.items() if v not in (None, ""))
        self.caption.setText(" — ".join(t for t in (self.caption.text(), self.key, described)
                                        if t))

    def _failed(self, message: str) -> None:
        self.image_label.setText(f"Cannot show this image: {message}")
