"""Render every wizard step offscreen to docs/screenshots/*.png (used by README).

Runs the real studio on the sample dataset: scan, backbone cards, layer tree, a short
training, results and predictions. Usage: QT_QPA_PLATFORM=offscreen python scripts/screenshots.py
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("TLSTUDIO_HOME", tempfile.mkdtemp(prefix="tlstudio-shots-"))
OUT = Path(__file__).resolve().parents[1] / "docs" / "screenshots"


def wait_until(app, condition, timeout: float = 300.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise TimeoutError("the studio did not get there in time")
        app.processEvents()
        time.sleep(0.02)


def main() -> int:
    from tlstudio.gui.app import create_app
    from tlstudio.gui.main_window import MainWindow

    app = create_app()
    window = MainWindow()
    window.resize(1180, 780)
    window.show()
    OUT.mkdir(parents=True, exist_ok=True)

    def shot(name: str) -> None:
        for _ in range(20):
            app.processEvents()
            time.sleep(0.02)
        window.grab().save(str(OUT / f"{name}.png"))
        print("wrote", OUT / f"{name}.png")

    window.data_page.load_sample()
    wait_until(app, lambda: window.state.index is not None)
    wait_until(app, lambda: window.data_page.thumbs.count() >= 24)
    shot("1-data")
    window.go(2)
    wait_until(app, lambda: not window.backbone_page.loading)
    shot("2-backbone")
    window.go(3)
    wait_until(app, lambda: window.layers_page.tree_model is not None)
    wait_until(app, lambda: window.layers_page.adapt is not None)  # the Shift column
    tree, model = window.layers_page.tree, window.layers_page.tree_model
    tree.expand(model.index_of("blocks"))
    shot("3-layers")
    window.go(4)  # Recommended (the default); the comparison from scratch takes minutes
    window.train_page.scratch.setCurrentIndex(window.train_page.scratch.findData(False))
    window.train_page.epochs.setValue(3)  # short: a few mistakes to show in Results
    window.train_page.start()
    wait_until(app, lambda: window.train_page.finished_metrics is not None, 600)
    shot("4-train")
    window.go(5)
    wait_until(app, lambda: window.results_page.gallery.count() > 0
               or "(0)" in window.results_page.gallery_title.text())
    results = window.results_page
    results.export(Path(os.environ["TLSTUDIO_HOME"]) / "export-onnx", "onnx")
    wait_until(app, lambda: "Export" in results.export_label.text()
               and "…" not in results.export_label.text(), 300)
    shot("5-results")
    results.curves.setCurrentWidget(results.map_view)
    results.map_view.draw()
    wait_until(app, lambda: results.map_view.result is not None, 300)
    shot("5-results-map")
    results.curves.setCurrentIndex(0)
    results.show_cell((1, 0))  # the missed tumours
    wait_until(app, lambda: results.gallery_title.text().startswith("True"))
    rows = results.gallery_rows or results.rows
    results.open_image(rows[0])
    wait_until(app, lambda: results.dialog.explanation is not None, 120)
    for _ in range(20):
        app.processEvents()
        time.sleep(0.02)
    results.dialog.grab().save(str(OUT / "5-results-heatmap.png"))
    print("wrote", OUT / "5-results-heatmap.png")
    results.dialog.close()
    results.show_cell(None)
    runs_shot(app, window)
    window.go(6)
    sample = window.state.index.items
    from tlstudio.core.data.synthetic import make_shapes_folder

    other = make_shapes_folder(Path(os.environ["TLSTUDIO_HOME"]) / "not-mri", per_class=1)
    window.predict_page.predict_paths([sample[0].path, sample[-1].path, sample[5].path,
                                       next((other / "disc").iterdir())])
    wait_until(app, lambda: window.predict_page.table.rowCount() == 4)
    window.predict_page.table.selectRow(3)  # the one unlike anything it was trained on
    shot("6-predict")
    dicom_shot(app, window, shot)
    label_shots(app, window, shot)
    window.close()
    return 0


def runs_shot(app, window) -> None:
    """All runs…: a second run (MobileNetV2 probe) beside the studio's, compared."""
    from tlstudio.core.engine.config import TrainConfig
    from tlstudio.core.runs.history import new_run_dir
    from tlstudio.core.runs.training import train

    train(TrainConfig(backbone="mobilenet_v2", epochs=8), window.state.index,
          new_run_dir("mobilenet_v2"))
    dialog = window.open_runs()
    dialog.resize(1100, 720)
    dialog.select_rows([0, 1])
    for _ in range(30):
        app.processEvents()
        time.sleep(0.02)
    dialog.grab().save(str(OUT / "8-runs.png"))
    print("wrote", OUT / "8-runs.png")
    dialog.close()


def dicom_shot(app, window, shot) -> None:
    """The Data step on real CT and MR (pydicom's and pydicom-data's test files), the CT
    slice previewed through the window stored in it."""
    from pydicom.data import get_testdata_file

    folder = Path(tempfile.mkdtemp(prefix="tlstudio-dicom-"))
    for label, names in (("ct", ["693_J2KR.dcm", "CT_small.dcm", "J2K_pixelrep_mismatch.dcm",
                                 "explicit_VR-UN.dcm", "eCT_Supplemental.dcm"]),
                         ("mr", ["MR2_J2KR.dcm", "MR_small.dcm", "emri_small.dcm",
                                 "MR-SIEMENS-DICOM-WithOverlays.dcm", "examples_overlay.dcm"])):
        (folder / label).mkdir(parents=True)
        for name in names:
            (folder / label / name).write_bytes(Path(get_testdata_file(name)).read_bytes())
    data = window.data_page
    window.go(1)
    data.load(folder)
    wait_until(app, lambda: window.state.index is not None and data.thumbs.count() >= 5)
    first = data.thumbs.item(0)
    data.thumbs.setCurrentItem(first)
    wait_until(app, lambda: first.text() in data.facts_label.text())
    shot("1-data-dicom")


def label_shots(app, window, shot) -> None:
    """The Label step on the sample's images put in one unlabeled folder (24 labeled by
    their known class, the model proposing and guessing), and the review of the sample."""
    import csv

    from tlstudio.core.data.samples import sample_dataset

    listing = sample_dataset()
    folder = Path(tempfile.mkdtemp(prefix="tlstudio-unlabeled-"))
    truth = {}
    with open(listing, encoding="utf-8") as fh:
        for k, row in enumerate(csv.DictReader(fh)):
            source = Path(row["path"])
            source = source if source.is_absolute() else listing.parent / source
            target = folder / f"scan{k:03d}{source.suffix}"
            target.symlink_to(source)
            truth[target.name] = "tumour" if row["label"] == "yes" else "no tumour"
    page = window.label_page
    window.go(0)
    page.open_folder(folder)
    for name in ("no tumour", "tumour"):
        page.project.add_class(name)
    page._refresh()
    wait_until(app, lambda: page.features is not None)
    for _ in range(24):
        page.label_with(page.project.classes.index(truth[page.current().name]))
        wait_until(app, lambda: not page._model_task.busy)
    wait_until(app, lambda: not page._view_task.busy and not page._strip_task.busy)
    shot("0-label")
    window.data_page.load_sample()
    wait_until(app, lambda: window.state.index is not None
               and window.state.index.root == listing)
    window.go(0)
    page.tabs.setCurrentIndex(1)
    page.review.on_enter()
    page.review.source.setCurrentIndex(page.review.source.findData("data"))
    page.review.find()
    wait_until(app, lambda: page.review.index is not None)
    page.review.table.selectRow(0)
    wait_until(app, lambda: not page.review._preview.busy)
    shot("0-label-review")


if __name__ == "__main__":
    sys.exit(main())
