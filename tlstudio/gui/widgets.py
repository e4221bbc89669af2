"""Small widgets shared by pages: the drop zone, section titles, thumbnails."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QEvent, QObject, QPoint, Qt, Signal
from PySide6.QtGui import QCursor, QImage
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QToolButton,
    QToolTip,
    QVBoxLayout,
    QWidget,
)

from ..core.glossary import explain


def title(text: str) -> QLabel:
    label = QLabel(text)
    label.setObjectName("title")
    return label


def hint(text: str) -> QLabel:
    label = QLabel(text)
    label.setObjectName("hint")
    label.setWordWrap(True)
    return label


class HelpMark(QToolButton):
    """A small "?" beside a setting or a measure: hovering or clicking it says what it means
    (core/glossary.py, the same words everywhere)."""

    def __init__(self, key: str, parent=None):
        super().__init__(parent)
        self.setText("?")
        self.setObjectName("help")
        self.setAutoRaise(True)
        self.setFixedWidth(14)  # a mark, not a button: forms stay as narrow as before
        self.setStyleSheet("QToolButton { padding: 0px; color: #2a5d9f; font-weight: bold; }")
        self.setCursor(Qt.CursorShape.WhatsThisCursor)
        self.explanation = explain(key)
        self.setToolTip(self.explanation)
        self.clicked.connect(self._show)

    def _show(self) -> None:
        QToolTip.showText(self.mapToGlobal(QPoint(0, self.height())), self.explanation, self)


def explained(text: str, key: str, *widgets: QWidget) -> QWidget:
    """A form label with its "?"; the same explanation on the widgets it labels."""
    box = QWidget()
    row = QHBoxLayout(box)
    row.setContentsMargins(0, 0, 0, 0)
    row.setSpacing(2)
    label = QLabel(text)
    row.addWidget(label)
    mark = HelpMark(key)
    row.addWidget(mark)
    row.addStretch(1)
    label.setToolTip(mark.explanation)
    for widget in widgets:
        widget.setToolTip(mark.explanation)
    return box


class TermsLine(QLabel):
    """ "What these mean:" and the terms as links: hovering or clicking one shows its
    explanation (core/glossary.py). One wrapping line: it never widens the window."""

    def __init__(self, terms: list[tuple[str, str]], parent=None):
        super().__init__(parent)
        self.setObjectName("hint")
        self.setWordWrap(True)
        self.explanations = {key: explain(key) for _, key in terms}
        links = " · ".join(f'<a href="{key}" style="color: #2a5d9f; text-decoration: none;">'
                           f"{text} ?</a>" for text, key in terms)
        self.setText(f"What these mean: {links}")
        self.setTextInteractionFlags(Qt.TextInteractionFlag.LinksAccessibleByMouse)
        self.linkHovered.connect(self._show)
        self.linkActivated.connect(self._show)

    def _show(self, key: str) -> None:
        if key in self.explanations:
            QToolTip.showText(QCursor.pos(), self.explanations[key], self)


class Pager(QWidget):
    """"Images 61-120 of 266" with Previous/Next: every image of a long list reachable a page
    at a time (thumbnails are decoded per page, so a page stays quick)."""

    changed = Signal()

    def __init__(self, per_page: int, noun: str = "images", parent=None):
        super().__init__(parent)
        self.per_page, self.noun = per_page, noun
        self.page, self.total = 0, 0
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        self.previous = QPushButton("◀ Previous")
        self.next = QPushButton("Next ▶")
        self.label = QLabel("")
        self.label.setWordWrap(True)  # a long class name must not widen the window
        self.previous.clicked.connect(lambda: self.go(self.page - 1))
        self.next.clicked.connect(lambda: self.go(self.page + 1))
        row.addWidget(self.previous)
        row.addWidget(self.label, 1)
        row.addWidget(self.next)
        self._update()

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))

    def reset(self, total: int) -> None:
        """A new list: its first page."""
        self.total, self.page = total, 0
        self._update()

    def go(self, page: int) -> None:
        page = min(max(0, page), self.pages - 1)
        if page != self.page:
            self.page = page
            self._update()
            self.changed.emit()

    def page_range(self) -> tuple[int, int]:
        """(start, end) of the page shown, for slicing the list."""
        start = self.page * self.per_page
        return start, min(self.total, start + self.per_page)

    def _update(self) -> None:
        start, end = self.page_range()
        self.label.setText(f"{self.noun} {start + 1:,}–{end:,} of {self.total:,}"
                           if self.total > self.per_page else
                           f"all {self.total:,} {self.noun}" if self.total else "")
        self.previous.setVisible(self.total > self.per_page)
        self.next.setVisible(self.total > self.per_page)
        self.previous.setEnabled(self.page > 0)
        self.next.setEnabled(self.page < self.pages - 1)


class PlotNote(QLabel):
    """Grey words over the middle of a plot while it has nothing to show ("no data yet"),
    so that bare 0-1 axes are not read as a result."""

    def __init__(self, plot, text: str = "no data yet", hide: tuple = ()):
        super().__init__(text, plot)
        self._hidden_while_empty = hide  # e.g. a legend of curves that are not there yet
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setWordWrap(True)
        self.setStyleSheet("color: #777; background: transparent; font-style: italic;")
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        plot.installEventFilter(self)
        self._place(plot)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Resize:
            self._place(watched)
        return False

    def _place(self, plot) -> None:
        width = max(120, plot.width() - 80)
        self.setGeometry((plot.width() - width) // 2, plot.height() // 2 - 20, width, 40)

    def show_when(self, empty: bool, text: str | None = None) -> None:
        if text is not None:
            self.setText(text)
        self.setVisible(empty)
        for item in self._hidden_while_empty:
            item.setVisible(not empty)
        if empty:
            self.raise_()


def dropped_paths(mime) -> list[Path]:
    return [Path(url.toLocalFile()) for url in mime.urls() if url.isLocalFile()]


class DropZone(QFrame):
    """A dashed area that takes dropped files and folders."""

    dropped = Signal(list)

    def __init__(self, text: str, parent=None):
        super().__init__(parent)
        self.setObjectName("dropzone")
        self.setAcceptDrops(True)
        self.setMinimumHeight(64)
        layout = QVBoxLayout(self)
        self.label = QLabel(text)
        self.label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.label.setWordWrap(True)
        layout.addWidget(self.label)

    def dragEnterEvent(self, event):  # noqa: N802 (Qt override)
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event):  # noqa: N802
        paths = dropped_paths(event.mimeData())
        if paths:
            event.acceptProposedAction()
            self.dropped.emit(paths)


def add_window_choices(combo) -> None:
    """The windows a DICOM / 16-bit image can be shown through (item data: the window)."""
    from ..pixels import PRESETS

    combo.addItem("stored in each file", "file")
    combo.addItem("automatic (0.5–99.5 %)", "auto")
    for name, (centre, width) in PRESETS.items():
        combo.addItem(f"CT {name} ({centre:g}, {width:g} HU)", name)


def thumbnail(path: str | Path, side: int = 96, window: str = "file",
              frame: int | None = None) -> QImage:
    """A square-ish thumbnail, read with the engine's reader (any format, EXIF upright,
    DICOM and 16-bit through ``window``): what the model will see.

    Runs in worker threads: QImage (unlike QPixmap) may be made off the GUI thread.
    """
    from PIL import Image

    from ..core.data.images import read_image

    img = read_image(path, window, frame)
    if max(img.size) < side:  # tiny images (16 x 16 test slices) shown as big blocks
        scale = side / max(img.size)
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))),
                         Image.Resampling.NEAREST)
    img.thumbnail((side, side))
    data = img.tobytes("raw", "RGB")
    qimage = QImage(data, img.width, img.height, img.width * 3, QImage.Format.Format_RGB888)
    return qimage.copy()  # own the pixels: `data` goes away with this frame


def image_facts(path: str | Path) -> dict:
    """What the Data step says about one image: DICOM header facts (never a patient
    attribute), else the file's format, size and pixel mode."""
    from PIL import Image

    from ..pixels import dicom

    path = Path(path)
    if dicom.is_dicom(path):
        try:
            return dicom.facts(path)
        except dicom.DicomError as exc:
            return {"DICOM": str(exc)}
    try:
        with Image.open(path) as img:
            return {"format": img.format, "size": f"{img.width} x {img.height}",
                    "pixels": img.mode}
    except (OSError, ValueError) as exc:
        return {"file": f"cannot be read ({exc})"}
