"""The studio's "Adapt to new images…": `tlstudio adapt` for the run on show. The images of
the new domain (and optionally a labels CSV) are chosen here; the work runs off the GUI
thread with its stage shown and a Stop button; the result is a new run the Results step can
open. The words of the outcome are the CLI's (core.runs.adapt.describe)."""

from __future__ import annotations

import html
import re
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ..core.engine.events import StageProgress
from ..core.runs.adapt import adapt
from ..core.runs.adapt_output import describe
from ..core.runs.adapt_request import DEFAULT_METHOD, METHODS
from ..core.runs.history import runs_root
from ..errors import UserError
from .workers import run_task


class AdaptStopped(UserError):
    """The user pressed Stop: nothing was written."""


def default_out(run_dir: Path, domain: str, root: Path | None = None) -> Path:
    """``<runs>/<run>-to-<domain>`` (numbered when taken): a new folder beside the runs."""
    root = root or runs_root()
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", domain).strip("-.") or "new-domain"
    candidate, n = root / f"{run_dir.name}-to-{slug}", 1
    while candidate.exists():
        n += 1
        candidate = root / f"{run_dir.name}-to-{slug}-{n}"
    return candidate


class AdaptDialog(QDialog):
    """Choose the new images, adapt, read the outcome; ``adapted`` carries the new run."""

    adapted = Signal(object)  # Path of the new run, when the user opens it
    stage = Signal(str, int, int)  # emitted from the worker thread; painted here

    def __init__(self, run_dir: Path, parent: QWidget | None = None):
        super().__init__(parent)
        self.run_dir = Path(run_dir)
        self.out_dir: Path | None = None
        self.running = False
        self._stop = False
        self.setWindowTitle(f"Adapt {self.run_dir.name} to new images")
        layout = QVBoxLayout(self)
        intro = QLabel(
            "Give images of the new scanner, site or camera (no labels needed). tlstudio "
            "adapts the model's normalisation to them and writes a <b>new run</b>; this run "
            "stays as it is. With a labels CSV for some of them, accuracy is measured before "
            "and after and the better model kept.")
        intro.setWordWrap(True)
        layout.addWidget(intro)
        form = QFormLayout()
        self.images_edit, images_row = self._path_row("Choose…", self._choose_images)
        form.addRow("New images (folder):", images_row)
        self.labels_edit, labels_row = self._path_row("Choose…", self._choose_labels)
        self.labels_edit.setPlaceholderText("optional: path,label rows")
        form.addRow("Labels (CSV):", labels_row)
        self.domain_edit = QLineEdit()
        self.domain_edit.setPlaceholderText("e.g. site B; default: the folder's name")
        form.addRow("Name of the new domain:", self.domain_edit)
        self.method_combo = QComboBox()
        for key, words in METHODS.items():
            self.method_combo.addItem(key, key)
            self.method_combo.setItemData(self.method_combo.count() - 1, words,
                                          Qt.ItemDataRole.ToolTipRole)
        self.method_combo.setCurrentIndex(self.method_combo.findData(DEFAULT_METHOD))
        form.addRow("Method:", self.method_combo)
        layout.addLayout(form)
        self.progress = QProgressBar()
        self.progress.setVisible(False)
        layout.addWidget(self.progress)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.status, 1)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        self.start_button = QPushButton("Adapt")
        self.start_button.setObjectName("primary")
        self.start_button.clicked.connect(self.start)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setEnabled(False)
        self.stop_button.clicked.connect(self.stop)
        self.open_button = QPushButton("Show the new run")
        self.open_button.setEnabled(False)
        self.open_button.clicked.connect(self._open)
        self.close_button = QPushButton("Close")
        self.close_button.clicked.connect(self.close)
        for b in (self.start_button, self.stop_button, self.open_button, self.close_button):
            buttons.addWidget(b)
        layout.addLayout(buttons)
        self.stage.connect(self._show_stage)
        self.setMinimumWidth(560)

    def _path_row(self, text: str, slot) -> tuple[QLineEdit, QWidget]:
        row = QWidget()
        box = QHBoxLayout(row)
        box.setContentsMargins(0, 0, 0, 0)
        edit = QLineEdit()
        button = QPushButton(text)
        button.clicked.connect(slot)
        box.addWidget(edit, 1)
        box.addWidget(button)
        return edit, row

    def _choose_images(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Images of the new domain",
                                                  str(Path.home()))
        if folder:
            self.images_edit.setText(folder)

    def _choose_labels(self) -> None:
        file, _ = QFileDialog.getOpenFileName(self, "Labels of some new images",
                                              str(Path.home()), "CSV files (*.csv *.tsv)")
        if file:
            self.labels_edit.setText(file)

    # --- the work -----------------------------------------------------------------------
    def start(self) -> None:
        if self.running:
            return
        images = self.images_edit.text().strip()
        labels = self.labels_edit.text().strip() or None
        method = self.method_combo.currentData()
        domain = self.domain_edit.text().strip() or (Path(images).name if images else "")
        if not images:
            self.status.setText("<b>Choose a folder of images of the new domain first.</b>")
            return
        out = default_out(self.run_dir, domain)
        # adapt() checks the request first (it lists the folder and reads the labels: off
        # this thread), so a bad one comes back in a moment as "Not adapted: why"
        self.running, self._stop, self.out_dir = True, False, None
        self._set_busy(True)
        self.status.setText("Starting…")
        run_dir = self.run_dir

        def emit(event) -> None:
            if self._stop:
                raise AdaptStopped("Stopped: nothing was written.")
            if isinstance(event, StageProgress):
                self.stage.emit(event.stage, event.done, event.total)

        def work():
            return out, adapt(run_dir, images, out, labels, method, domain=domain, emit=emit)

        run_task(work, on_done=self._done, on_error=self._failed, parent=self)

    def stop(self) -> None:
        if self.running:
            self._stop = True
            self.status.setText("Stopping…")

    def _set_busy(self, busy: bool) -> None:
        self.start_button.setEnabled(not busy)
        self.stop_button.setEnabled(busy)
        self.progress.setVisible(busy)
        for w in (self.images_edit, self.labels_edit, self.domain_edit, self.method_combo):
            w.setEnabled(not busy)

    def _show_stage(self, stage: str, done: int, total: int) -> None:
        if self._stop:
            return
        self.progress.setMaximum(max(total, 1))
        self.progress.setValue(done)
        self.status.setText(f"{stage[:1].upper()}{stage[1:]}: {done} of {total}")

    def _done(self, result) -> None:
        out, block = result
        self.running = False
        self._set_busy(False)
        self.out_dir = out
        self.open_button.setEnabled(True)
        self.status.setText("<br>".join(html.escape(line) for line in describe(block))
                            + f"<br>New run: {html.escape(str(out))}")

    def _failed(self, message: str) -> None:
        self.running = False
        self._set_busy(False)
        first = message.splitlines()[0] if message else "stopped"
        self.status.setText(f"<b>Not adapted.</b> {html.escape(first)}")

    def _open(self) -> None:
        if self.out_dir is not None:
            self.adapted.emit(self.out_dir)
            self.close()

    def closeEvent(self, event):  # noqa: N802
        """Closing while it works stops it (nothing half-written stays behind)."""
        self.stop()
        super().closeEvent(event)
