"""The main window: a step sidebar, the current step, and Back/Next with the reason when
Next is disabled. Dropping files anywhere goes to the step that takes them."""

from __future__ import annotations

from PySide6.QtCore import QByteArray, QEventLoop, Qt
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QMessageBox,
    QPushButton,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from .. import __version__
from .pages.backbone_page import BackbonePage
from .pages.data_page import DataPage
from .pages.label_page import LabelPage
from .pages.layers_page import LayersPage
from .pages.predict_page import PredictPage
from .pages.results_page import ResultsPage
from .pages.train_page import TrainPage
from .state import StudioState, settings
from .widgets import dropped_paths


class MainWindow(QMainWindow):
    def __init__(self, state: StudioState | None = None):
        super().__init__()
        self._closing = False
        self.state = state or StudioState()
        if state is None:
            self.state.setParent(self)  # the window's own state goes with the window
        self.setWindowTitle(f"tlstudio {__version__} — transfer-learning studio")
        self.setAcceptDrops(True)
        self.label_page = LabelPage(self.state)
        self.data_page = DataPage(self.state)
        self.backbone_page = BackbonePage(self.state)
        self.layers_page = LayersPage(self.state)
        self.train_page = TrainPage(self.state)
        self.results_page = ResultsPage(self.state)
        self.predict_page = PredictPage(self.state)
        self.pages = [self.label_page, self.data_page, self.backbone_page, self.layers_page,
                      self.train_page, self.results_page, self.predict_page]

        self.steps = QListWidget()
        self.steps.setObjectName("steps")
        self.steps.setFixedWidth(170)
        for i, page in enumerate(self.pages, 1):
            self.steps.addItem(QListWidgetItem(f"{i}  {page.title}"))
        self.stack = QStackedWidget()
        for page in self.pages:
            self.stack.addWidget(page)
            page.changed.connect(self.update_navigation)
        self.steps.currentRowChanged.connect(self._show_step)
        self.runs_button = QPushButton("All runs…")
        self.runs_button.setToolTip("Every run kept by tlstudio: reopen its results, compare, "
                                    "delete or resume")
        self.runs_button.clicked.connect(self.open_runs)
        self.runs_dialog = None

        self.back_button = QPushButton("← Back")
        self.next_button = QPushButton("Next →")
        self.next_button.setObjectName("primary")
        self.back_button.clicked.connect(lambda: self.go(self.current - 1))
        self.next_button.clicked.connect(lambda: self.go(self.current + 1))
        self.reason_label = QLabel("")
        self.reason_label.setObjectName("reason")
        self.reason_label.setWordWrap(True)

        nav = QHBoxLayout()
        nav.addWidget(self.reason_label, 1)
        nav.addWidget(self.back_button)
        nav.addWidget(self.next_button)
        right = QVBoxLayout()
        right.addWidget(self.stack, 1)
        right.addLayout(nav)
        central = QWidget()
        outer = QHBoxLayout(central)
        outer.setContentsMargins(0, 0, 8, 8)
        sidebar = QVBoxLayout()
        sidebar.addWidget(self.steps, 1)
        sidebar.addWidget(self.runs_button)
        outer.addLayout(sidebar)
        outer.addLayout(right, 1)
        self.setCentralWidget(central)
        self.train_page.training_finished.connect(lambda _m: self.update_navigation())
        self.state.training_changed.connect(lambda _r: self.update_navigation())

        geometry = settings().value("window_geometry")
        if isinstance(geometry, QByteArray) and not geometry.isEmpty():
            self.restoreGeometry(geometry)
        else:
            self.resize(1180, 780)
        self.label_page.use_labels.connect(self.train_on_labels)
        self.steps.setCurrentRow(self.pages.index(self.data_page))  # most come with labels

    # --- navigation ---------------------------------------------------------------------
    @property
    def current(self) -> int:
        return self.stack.currentIndex()

    def reachable(self) -> int:
        """The furthest step the user may open: up to the first step that blocks."""
        for i, page in enumerate(self.pages):
            if page.blocker() is not None:
                return i
        return len(self.pages) - 1

    def go(self, step: int) -> None:
        if 0 <= step <= self.reachable():
            self.steps.setCurrentRow(step)

    def _show_step(self, step: int) -> None:
        if step > self.reachable():
            self.steps.setCurrentRow(self.current)
            return
        self.stack.setCurrentIndex(step)
        self.pages[step].on_enter()
        self.update_navigation()

    def update_navigation(self) -> None:
        reach = self.reachable()
        for i in range(self.steps.count()):
            item = self.steps.item(i)
            flags = item.flags()
            enabled = i <= reach
            item.setFlags(flags | Qt.ItemFlag.ItemIsEnabled if enabled
                          else flags & ~Qt.ItemFlag.ItemIsEnabled)
        page = self.pages[self.current]
        reason = page.blocker()
        last = self.current == len(self.pages) - 1
        self.next_button.setEnabled(reason is None and not last)
        self.back_button.setEnabled(self.current > 0)
        self.reason_label.setText("" if reason is None else f"Next is disabled: {reason}")

    def train_on_labels(self, csv_path) -> None:
        """Labels made or corrected on the Label step: opened on the Data step."""
        self.data_page.load(csv_path, remember=False)
        self.go(self.pages.index(self.data_page))

    # --- runs ---------------------------------------------------------------------------
    def open_runs(self):
        from .runs_view import RunsDialog

        if self.runs_dialog is None:
            self.runs_dialog = RunsDialog(parent=self)
            self.runs_dialog.resume_requested.connect(self.resume_run)
            self.runs_dialog.run_deleted.connect(self._run_deleted)
        else:
            self.runs_dialog.refresh()
        self.runs_dialog.show()
        self.runs_dialog.raise_()
        return self.runs_dialog

    def _run_deleted(self, run_dir) -> None:
        """The wizard's own run deleted from All runs…: no step may go on showing it."""
        if self.state.run_dir is not None and self.state.run_dir == run_dir:
            self.state.set_run(None, outdated=f"Run {run_dir.name} was deleted (All runs…); "
                                              "train again (step Train).")
        self.train_page.refresh_runs()

    def resume_run(self, run_dir) -> None:
        """Resume from the Runs view: on the Train step, when its dataset is the one loaded
        (the resumed run then becomes the one Results shows)."""
        from .pages.train_page import _dataset_root

        loaded = str(self.state.index.root) if self.state.index is not None else None
        root = _dataset_root(run_dir)
        if root is None or root != loaded or self.train_page.running:
            why = ("training is running" if self.train_page.running else
                   f"its dataset is not the one loaded: open {root} on the Data step first")
            self.runs_dialog.message.setText(
                f"Cannot resume {run_dir.name} here: {why}. Or in a terminal: "
                f"tlstudio train --resume {run_dir}")
            return
        self.train_page.refresh_runs()
        found = self.train_page.unfinished.findData(str(run_dir))
        if found < 0:
            self.runs_dialog.message.setText(f"{run_dir.name} cannot be resumed")
            return
        self.train_page.unfinished.setCurrentIndex(found)
        self.go(self.pages.index(self.train_page))
        self.train_page.resume_selected()
        self.runs_dialog.message.setText(f"Resuming {run_dir.name} on the Train step.")

    # --- drops and closing --------------------------------------------------------------
    def dragEnterEvent(self, event):  # noqa: N802 (Qt override)
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event):  # noqa: N802
        paths = dropped_paths(event.mimeData())
        if not paths:
            return
        event.acceptProposedAction()
        page = self.pages[self.current]
        if not page.accepts_drops():
            self.go(self.pages.index(self.data_page))
            page = self.data_page
        page.drop_paths(paths)

    def closeEvent(self, event):  # noqa: N802
        if self._closing:  # already waiting for training to stop
            event.ignore()
            return
        if self.train_page.running:
            answer = QMessageBox.question(
                self, "Training is running",
                "Stop training and close? The run is saved after its last completed epoch "
                "and can be resumed later.",
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                QMessageBox.StandardButton.No)
            if answer != QMessageBox.StandardButton.Yes:
                event.ignore()
                return
            self.stop_training_and_wait()
        if self.results_page.adapt_dialog is not None:  # an adaptation stops, writing nothing
            self.results_page.adapt_dialog.stop()
        settings().setValue("window_geometry", self.saveGeometry())
        event.accept()

    def quit_now(self) -> None:
        """Close without asking (a signal from the system): training is stopped and saved."""
        self.stop_training_and_wait()
        self.close()

    def stop_training_and_wait(self) -> None:
        """Stop training and wait for the worker to finish its batch and save, however long
        that takes, while the window keeps painting; the thread is never cut off."""
        runner = self.train_page.runner
        if runner is None or not runner.running:
            return
        self._closing = True
        self.setEnabled(False)
        self.reason_label.setText("Stopping training: finishing the current batch and "
                                  "saving, then closing…")
        waiter = QEventLoop()
        runner.thread.finished.connect(waiter.quit)
        runner.worker.stop()
        if runner.running:
            waiter.exec()
        runner.thread.wait()  # finished was emitted: returns at once
        self._closing = False
