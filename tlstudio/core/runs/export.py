"""Export a trained run to ONNX or TorchScript with preprocessing inside, and prove it.

The exported model takes RGB in [0, 1] at the input size and normalises inside, so nobody
can lose the mean/std on the way. After writing, every validation image goes through the
exported file exactly as an outside user would run it (``tlstudio.export_runtime``: the
pixel rule and geometry from ``preprocessing.json``, onnxruntime or torch.jit) and is compared
with the in-app prediction; below 99.5 % agreement the export is refused. Everything is
written into a hidden folder beside the destination and moved into place only when the check
passes, so a refused or interrupted export leaves nothing a predictor would load.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ... import export_runtime, pixels
from ...errors import UserError
from ..engine.inference import head_and_features
from .history import LoadedRun, load_run, require_finished
from .predict import Predictor

FORMATS = {"onnx": "model.onnx", "torchscript": "model.pt"}
MIN_AGREEMENT = 0.995


class ExportError(UserError):
    """The export cannot be made as asked (format, destination, run); nothing was written."""


class ExportRefused(ExportError):
    """The exported file did not reproduce the app's predictions; nothing was kept."""


class WithPreprocessing(nn.Module):
    """image: RGB in [0, 1], NCHW -> calibrated probabilities; mean/std normalisation and the
    run's temperature inside, so no deployment can forget either. With the run's
    out-of-distribution detector, a second output: each image's ``ood_score`` (its threshold
    is in decision.json)."""

    def __init__(self, model: nn.Module, mean, std, temperature: float = 1.0,
                 ood: nn.Module | None = None):
        super().__init__()
        self.model = model
        self.ood = ood
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("temperature", torch.tensor(float(temperature)))

    def forward(self, image: torch.Tensor):
        x = (image - self.mean) / self.std
        if self.ood is None:
            return (self.model(x) / self.temperature).softmax(dim=1)
        logits, features = head_and_features(self.model, x)
        return (logits / self.temperature).softmax(dim=1), self.ood(features)


@dataclass
class ExportResult:
    out_dir: Path
    model_file: Path
    agreement: float
    max_abs_diff: float
    images: int

    @property
    def ok(self) -> bool:
        return self.agreement >= MIN_AGREEMENT


def preprocessing_spec(run: LoadedRun) -> dict:
    prep = run.preprocessing
    return {
        "pixel_rule": {"id": prep.pixel_rule, "steps": list(pixels.RULE_STEPS)},
        "window": prep.window,
        "frames": prep.frames,
        "input_size": list(prep.input_size),
        "resize": prep.interpolation,
        "crop_pct": prep.crop_pct,
        "color": "RGB",
        "scale": "divide by 255 (inputs in [0, 1])",
        "layout": "NCHW float32, input name 'image'",
        "normalization": {"mean": list(prep.mean), "std": list(prep.std),
                          "applied": "inside the model"},
        "output": "calibrated probabilities [N, classes], in labels.json order (the "
                  "temperature in decision.json is applied inside the model)",
    }


def decision_spec(run: LoadedRun) -> dict:
    """decision.json: how an output becomes an answer, as chosen on validation."""
    decision = run.decision
    how = ("the class with the highest probability" if decision.threshold is None else
           f"'{decision.positive}' when its probability is at least the threshold, "
           f"otherwise '{run.classes[0]}'")
    spec = {**decision.as_dict(), "temperature_applied": "inside the model", "call": how}
    if run.ood is not None:
        spec["ood_threshold"] = float(run.ood.threshold)
        spec["ood"] = ("an image whose 'ood_score' output exceeds ood_threshold is unlike "
                       "anything this model was trained on: do not trust its answer")
    return spec


def _write_model(run: LoadedRun, fmt: str, file: Path) -> None:
    ood = run.ood
    wrapped = WithPreprocessing(run.model.float().eval(), run.preprocessing.mean,
                                run.preprocessing.std, run.decision.temperature,
                                ood.cpu() if ood is not None else None).eval()
    outputs = ["probabilities"] + (["ood_score"] if ood is not None else [])
    h, w = run.preprocessing.input_size
    example = torch.rand(2, 3, h, w)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer and legacy-exporter notices
        if fmt == "onnx":
            # The TorchScript-based exporter: no extra dependencies, exact for these CNNs.
            torch.onnx.export(
                wrapped, (example,), str(file), dynamo=False, opset_version=17,
                input_names=["image"], output_names=outputs,
                dynamic_axes={"image": {0: "batch"}, **{o: {0: "batch"} for o in outputs}},
            )
        else:
            with torch.inference_mode():
                traced = torch.jit.trace(wrapped, example, check_trace=False)
            traced.save(str(file))


def parity(run: LoadedRun, model_file: Path, paths: list[Path]) -> tuple[float, float]:
    """(share of images with the same top class, max |Δp|): app vs exported file."""
    app = Predictor(run)
    exported = export_runtime.ExportedModel.load(model_file)
    ours = [r for r in app.predict(paths) if not r.error]
    theirs = {pixels.image_key(r["path"], r.get("frame")): r
              for r in exported.predict([r.key for r in ours])}
    if not ours:
        raise ExportError("no validation image could be read for the parity check")
    same, worst = 0, 0.0
    for r in ours:
        other = theirs[r.key]
        if other.get("error"):  # the runtime could not read what the app read: a mismatch
            worst = 1.0
            continue
        same += other["label"] == r.label and _same_warning(r, other, app)
        worst = max(worst, max(abs(other["probabilities"][c] - p)
                               for c, p in r.probabilities.items()))
    return same / len(ours), worst


def _same_warning(ours, theirs: dict, app: Predictor) -> bool:
    """The out-of-distribution warning agrees (scores a hair from the threshold aside)."""
    if ours.ood is None:
        return "ood" not in theirs
    if "ood" not in theirs:
        return False
    threshold = float(app.ood.threshold)
    near = abs(ours.ood_score - threshold) <= 1e-3 * max(1.0, threshold)
    return near or theirs["ood"] == ours.ood


def _check_destination(out: Path, run: LoadedRun) -> None:
    if out.exists() and not out.is_dir():
        raise ExportError(f"'{out}' is a file; choose a new folder for the export")
    if out.is_dir() and any(out.iterdir()):
        raise ExportError(f"'{out}' is not empty; choose a new folder for the export")
    data_root = Path(run.config.get("dataset", {}).get("root", ""))
    if data_root.is_file():
        data_root = data_root.parent
    if str(data_root) not in ("", ".") and data_root.is_dir():
        target, root = out.resolve(), data_root.resolve()
        if target == root or root in target.parents:
            raise ExportError(f"'{out}' is inside the run's dataset folder; tlstudio never "
                              "writes into your data. Choose a folder elsewhere.")


def _staging_folder(out: Path) -> Path:
    """A hidden sibling of ``out``, so the final move is a rename on the same disk."""
    parent = out.resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        staging = parent / f".{out.name}.export-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
    except OSError as exc:
        raise ExportError(f"cannot write into '{parent}' ({exc.strerror or exc}); choose a "
                          "folder you can write to") from exc
    return staging


def export_run(run_dir: str | Path, fmt: str, out_dir: str | Path,
               progress=None) -> ExportResult:
    """Write model, sidecars and MODEL_CARD.md into ``out_dir`` only if the exported file
    reproduces the app (parity); otherwise nothing is left there."""
    if fmt not in FORMATS:
        raise ExportError(f"format must be one of {', '.join(FORMATS)}, not '{fmt}'")
    require_finished(run_dir)  # the card and the check need the run's final results
    run = load_run(run_dir)
    out = Path(out_dir).expanduser()
    _check_destination(out, run)
    staging = _staging_folder(out)
    try:
        result = _export_into(staging, run, Path(run_dir), fmt, progress)
        if out.is_dir():
            out.rmdir()  # checked empty above
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return ExportResult(out, out / result.model_file.name, result.agreement,
                        result.max_abs_diff, result.images)


def _export_into(out: Path, run: LoadedRun, run_dir: Path, fmt: str,
                 progress) -> ExportResult:
    from .model_card import model_card

    step = progress or (lambda text: None)
    step("writing the model")
    model_file = out / FORMATS[fmt]
    _write_model(run, fmt, model_file)
    (out / "labels.json").write_text(json.dumps(run.classes, indent=2))
    (out / "preprocessing.json").write_text(json.dumps(preprocessing_spec(run), indent=2))
    (out / "decision.json").write_text(json.dumps(decision_spec(run), indent=2))
    shutil.copyfile(run_dir / "best.safetensors", out / "weights.safetensors")

    step("checking the exported model against the app on the validation and test images")
    split = json.loads((run_dir / "split.json").read_text())
    paths = list(split["val"]) + list(split.get("test", []))  # files, or file#frame=N
    agreement, max_diff = parity(run, model_file, paths)
    result = ExportResult(out, model_file, agreement, max_diff, len(paths))
    report = {"format": fmt, "images": len(paths), "agreement": agreement,
              "max_abs_probability_difference": max_diff, "threshold": MIN_AGREEMENT,
              "passed": result.ok}
    (out / "parity.json").write_text(json.dumps(report, indent=2))
    (out / "MODEL_CARD.md").write_text(model_card(run, fmt, result))
    if not result.ok:
        raise ExportRefused(
            f"the exported model agrees with the app on only {agreement:.1%} of "
            f"{len(paths)} validation and test images (needs {MIN_AGREEMENT:.1%}); nothing was "
            "written. Do not deploy it; report this as a bug with the run folder.")
    return result
