"""Export a trained run to ONNX or TorchScript with preprocessing inside, and prove it.

The exported model takes RGB in [0, 1] at the input size and normalises inside, so nobody
can lose the mean/std on the way. After writing, every validation image goes through the
exported file exactly as an outside user would run it (``tlstudio.export_runtime``: its own
PIL preprocessing from ``preprocessing.json``, onnxruntime or torch.jit) and is compared with
the in-app prediction; below 99.5 % agreement the export is refused.
"""

from __future__ import annotations

import json
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ... import export_runtime
from ...errors import UserError
from .history import LoadedRun, load_run, require_finished
from .predict import Predictor

FORMATS = {"onnx": "model.onnx", "torchscript": "model.pt"}
MIN_AGREEMENT = 0.995


class ExportError(UserError):
    """The export failed or did not reproduce the app's predictions."""


class WithPreprocessing(nn.Module):
    """image: RGB in [0, 1], NCHW -> probabilities; mean/std normalisation inside."""

    def __init__(self, model: nn.Module, mean, std):
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.model((image - self.mean) / self.std).softmax(dim=1)


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
        "input_size": list(prep.input_size),
        "resize": prep.interpolation,
        "crop_pct": prep.crop_pct,
        "color": "RGB",
        "scale": "divide by 255 (inputs in [0, 1])",
        "layout": "NCHW float32, input name 'image'",
        "normalization": {"mean": list(prep.mean), "std": list(prep.std),
                          "applied": "inside the model"},
        "output": "probabilities [N, classes], in labels.json order",
    }


def _write_model(run: LoadedRun, fmt: str, file: Path) -> None:
    wrapped = WithPreprocessing(run.model.float().eval(), run.preprocessing.mean,
                                run.preprocessing.std).eval()
    h, w = run.preprocessing.input_size
    example = torch.rand(2, 3, h, w)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer and legacy-exporter notices
        if fmt == "onnx":
            # The TorchScript-based exporter: no extra dependencies, exact for these CNNs.
            torch.onnx.export(
                wrapped, (example,), str(file), dynamo=False, opset_version=17,
                input_names=["image"], output_names=["probabilities"],
                dynamic_axes={"image": {0: "batch"}, "probabilities": {0: "batch"}},
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
    theirs = {r["path"]: r for r in exported.predict([Path(r.path) for r in ours])}
    if not ours:
        raise ExportError("no validation image could be read for the parity check")
    same, worst = 0, 0.0
    for r in ours:
        other = theirs[r.path]
        same += other["label"] == r.label
        worst = max(worst, max(abs(other["probabilities"][c] - p)
                               for c, p in r.probabilities.items()))
    return same / len(ours), worst


def export_run(run_dir: str | Path, fmt: str, out_dir: str | Path,
               progress=None) -> ExportResult:
    """Write model, sidecars and MODEL_CARD.md into ``out_dir``; check parity."""
    from .model_card import model_card

    if fmt not in FORMATS:
        raise ExportError(f"format must be one of {', '.join(FORMATS)}, not '{fmt}'")
    require_finished(run_dir)  # the card and the check need the run's final results
    run = load_run(run_dir)
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise ExportError(f"'{out}' is not empty; choose a new folder for the export")
    out.mkdir(parents=True, exist_ok=True)
    step = progress or (lambda text: None)
    step("writing the model")
    model_file = out / FORMATS[fmt]
    _write_model(run, fmt, model_file)
    (out / "labels.json").write_text(json.dumps(run.classes, indent=2))
    (out / "preprocessing.json").write_text(json.dumps(preprocessing_spec(run), indent=2))
    shutil.copyfile(Path(run_dir) / "best.safetensors", out / "weights.safetensors")

    step("checking the exported model against the app on the validation images")
    split = json.loads((Path(run_dir) / "split.json").read_text())
    paths = [Path(p) for p in split["val"]]
    agreement, max_diff = parity(run, model_file, paths)
    result = ExportResult(out, model_file, agreement, max_diff, len(paths))
    report = {"format": fmt, "images": len(paths), "agreement": agreement,
              "max_abs_probability_difference": max_diff, "threshold": MIN_AGREEMENT,
              "passed": result.ok}
    (out / "parity.json").write_text(json.dumps(report, indent=2))
    (out / "MODEL_CARD.md").write_text(model_card(run, fmt, result))
    if not result.ok:
        raise ExportError(
            f"the exported model agrees with the app on only {agreement:.1%} of "
            f"{len(paths)} validation images (needs {MIN_AGREEMENT:.1%}); do not deploy it")
    return result

