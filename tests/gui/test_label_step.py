"""The Label step: an unlabeled folder labeled with keys alone, then trained on; labels that
survive kill -9 of the studio; the review queue's decisions."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from PySide6.QtCore import Qt

from tlstudio.core.data.labels import LabelProject
from tlstudio.core.data.synthetic import make_shapes_folder


def unlabeled_folder(tmp_path: Path, per_class: int = 16) -> Path:
    shapes = make_shapes_folder(tmp_path / "shapes", per_class=per_class)
    folder = tmp_path / "scans"
    folder.mkdir()
    for f in sorted(shapes.rglob("*.png")):
        (folder / f.name).write_bytes(f.read_bytes())  # disc_000.png, square_000.png, ...
    return folder


def rows(csv_path: Path) -> list[dict]:
    with open(csv_path, encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_label_twenty_images_with_keys_then_train(qtbot, window, tmp_path):
    folder = unlabeled_folder(tmp_path)
    before = sorted(os.listdir(folder))
    page = window.label_page
    window.go(0)
    assert window.current == 0
    page.open_folder(folder)
    for name in ("disc", "square"):
        qtbot.keyClicks(page.class_edit, name)
        qtbot.keyClick(page.class_edit, Qt.Key.Key_Return)
    assert page.project.classes == ["disc", "square"]
    # the folder's features are read in the background while labeling starts
    qtbot.waitUntil(lambda: page.features is not None, timeout=120_000)
    page.setFocus()
    accepted = 0
    for _ in range(20):
        image = page.current()
        truth = image.name.split("_")[0]
        guess = page.guesses.get(str(image))
        if guess == truth:  # the model's guess is right: Enter accepts it
            qtbot.keyClick(page, Qt.Key.Key_Return)
            accepted += 1
        else:
            qtbot.keyClick(page, "1" if truth == "disc" else "2")
        qtbot.waitUntil(lambda image=image: str(image) in page.project.labels, timeout=5000)
        if len(page.project.labels) >= 4:  # let the model catch up now and then
            qtbot.waitUntil(lambda: not page._model_task.busy, timeout=60_000)
    labeled = rows(page.project.csv_path)
    assert len(labeled) == 20
    assert all(Path(r["path"]).name.startswith(r["label"]) for r in labeled)  # every key right
    assert accepted > 0  # the model's guesses were offered and taken
    # a mistaken key is taken back with Backspace
    image = page.current()
    qtbot.keyClick(page, "2" if image.name.startswith("disc") else "1")
    qtbot.keyClick(page, Qt.Key.Key_Backspace)
    assert str(image) not in page.project.labels and page.current() == image
    assert sorted(os.listdir(folder)) == before  # nothing written into the user's folder

    assert page.use_button.isEnabled()
    qtbot.mouseClick(page.use_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.state.index is not None, timeout=60_000)
    assert window.current == 1 and len(window.state.index.items) == 20
    window.go(2)
    qtbot.waitUntil(lambda: not window.backbone_page.loading, timeout=60_000)
    window.go(3)
    qtbot.waitUntil(lambda: window.layers_page.tree_model is not None, timeout=60_000)
    window.layers_page.probe_radio.setChecked(True)
    window.go(4)
    train = window.train_page
    train.epochs.setValue(3)
    train.start()
    qtbot.waitUntil(lambda: not train.running and window.state.run_dir is not None,
                    timeout=300_000)
    metrics = (window.state.run_dir / "metrics.json").read_text()
    assert '"val_accuracy"' in metrics


KILLED = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from tlstudio.gui.app import create_app
    from tlstudio.gui.main_window import MainWindow
    app = create_app()
    window = MainWindow()
    window.show()
    page = window.label_page
    window.go(0)
    page.open_folder(Path(sys.argv[1]))
    page.project.add_class("disc")
    page.project.add_class("square")
    page._refresh()
    done = 0
    while page.current() is not None:
        image = page.current()
        page.label_with(0 if image.name.startswith("disc") else 1)
        done += 1
        app.processEvents()
        print(done, flush=True)
    time.sleep(60)
""")


def test_labels_survive_kill_9_of_the_studio(tmp_path):
    folder = unlabeled_folder(tmp_path, per_class=40)
    env = dict(os.environ, TLSTUDIO_HOME=str(tmp_path / "home"), QT_QPA_PLATFORM="offscreen")
    proc = subprocess.Popen([sys.executable, "-c", KILLED, str(folder)], env=env,
                            stdout=subprocess.PIPE, text=True)
    seen = 0
    deadline = time.monotonic() + 120
    while seen < 25 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen = int(line)
    os.kill(proc.pid, signal.SIGKILL)  # mid-labeling, without warning
    proc.wait()
    assert seen >= 25
    os.environ["TLSTUDIO_HOME"] = str(tmp_path / "home")
    project = LabelProject.for_folder(folder)
    saved = rows(project.csv_path)
    assert len(saved) >= seen  # every label reported done is on disk
    assert all(Path(r["path"]).name.startswith(r["label"]) for r in saved)
    assert not [p for p in project.dir.iterdir() if p.name.endswith(".tmp")]
    assert len(project.unlabeled()) == 80 - len(saved)  # the studio goes on where it stopped


def test_review_queue_keeps_relabels_and_excludes(qtbot, window, tmp_path):
    shapes = make_shapes_folder(tmp_path / "shapes", per_class=24)
    wrong = sorted((shapes / "disc").iterdir())[:3]
    for f in wrong:  # three discs filed as squares
        f.rename(shapes / "square" / f.name)
    files = sorted(str(p) for p in shapes.rglob("*"))
    window.data_page.load(shapes)
    qtbot.waitUntil(lambda: window.state.index is not None, timeout=60_000)
    window.go(0)
    page = window.label_page
    page.tabs.setCurrentIndex(1)
    review = page.review
    review.on_enter()
    review.find()
    qtbot.waitUntil(lambda: review.index is not None, timeout=120_000)
    flagged = [Path(s.path).name for s in review.rows if s.kind == "label"]
    # (how many mislabeled images the review finds is measured on real data in
    # tests/core/test_labeling.py; here: they reach the queue)
    assert {f.name for f in wrong} & set(flagged)
    before = review.table.rowCount()
    first = review.rows[0]
    review.table.selectRow(0)
    review.relabel_combo.setCurrentText("disc")
    review.relabel()
    review.table.selectRow(0)
    second = review.rows[0]
    review.exclude()
    assert review.table.rowCount() <= before - 2
    project = LabelProject.find_for_dataset(shapes)
    assert project.labels[str(Path(first.path))] == "disc"
    assert str(Path(second.path)) in project.excluded
    assert sorted(str(p) for p in shapes.rglob("*")) == files  # the user's files untouched
    # decided images are not listed again; the corrected labels train like any dataset
    review.find()
    qtbot.waitUntil(lambda: review.index is not None, timeout=60_000)
    assert review.table.rowCount() <= before - 2
    assert first.path not in {s.path for s in review.rows}
    assert review.use_button.isEnabled()
    review.use_button.click()
    qtbot.waitUntil(lambda: window.state.index is not None
                    and window.state.index.root == project.csv_path, timeout=60_000)
    assert len(window.state.index.items) == 47  # one excluded


def test_a_review_list_goes_when_the_data_step_opens_another_dataset(qtbot, window, tmp_path):
    first = make_shapes_folder(tmp_path / "a", per_class=12)
    window.data_page.load(first)
    qtbot.waitUntil(lambda: window.state.index is not None, timeout=60_000)
    review = window.label_page.review
    review.on_enter()
    review.source.setCurrentIndex(review.source.findData("data"))
    review.find()
    qtbot.waitUntil(lambda: review.index is not None, timeout=120_000)
    window.data_page.load(make_shapes_folder(tmp_path / "b", per_class=12, seed=1))
    qtbot.waitUntil(lambda: window.state.index is not None
                    and window.state.index.root == tmp_path / "b", timeout=60_000)
    assert review.index is None and review.table.rowCount() == 0
    assert "changed" in review.status.text()
