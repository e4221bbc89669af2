"""Running an exported tlstudio model with nothing but its sidecar files.

This module deliberately imports nothing from the training code: it is what
``tlstudio predict --model`` uses, what the export parity check measures against, and a
reference for anyone deploying the model elsewhere. Pixels follow the one rule in
:mod:`tlstudio.pixels` (the same code the app trains and predicts with; its steps are
written out in ``preprocessing.json``): RGB, shorter side resized to
``input_size / crop_pct`` with the named method, centre square, centre crop to
``input_size``, values scaled to [0, 1], NCHW float32; the model normalises inside and
outputs ``probabilities`` and, for runs with the out-of-distribution detector, ``ood_score``
(above decision.json's ``ood_threshold``: unlike anything the model was trained on).
"""

from __future__ import annotations

import json
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import pixels
from .errors import UserError


class ModelLoadError(UserError):
    """An exported model cannot be loaded; the message says why."""


def preprocess(path: str | Path, spec: dict, frame: int | None = None) -> np.ndarray:
    """One image file -> float32 CHW in [0, 1], following ``preprocessing.json``.

    Raises :class:`tlstudio.pixels.ImageReadError` with a reason for files that are not
    readable images (truncated, not an image, decompression bomb, ...).
    """
    h, w = spec["input_size"]
    side = pixels.prepared_side((h, w), spec["crop_pct"])
    image = pixels.read_image(path, spec.get("window", "file"), frame)
    square = pixels.prepared_square(image, side, spec["resize"])
    top, left = pixels.centre_offsets(side, side, h, w)
    crop = square[top : top + h, left : left + w]
    return (crop.astype(np.float32) / 255.0).transpose(2, 0, 1)


def _check_spec(spec: object, where: Path) -> dict:
    """preprocessing.json must name this runtime's pixel rule and hold usable geometry."""
    if not isinstance(spec, dict):
        raise ModelLoadError(f"{where} does not describe a preprocessing")
    declared = spec.get("pixel_rule")
    rule = declared.get("id") if isinstance(declared, dict) else None
    if rule != pixels.RULE:
        raise ModelLoadError(
            f"{where} names pixel rule {rule or '(none: an older tlstudio)'}; this runtime "
            f"applies {pixels.RULE}, so it would not see the pixels the model was checked on. "
            "Export the run again with this version.")
    try:
        pixels.parse_window(spec.get("window", "file"))
        if spec.get("frames", "middle") not in pixels.FRAMES:
            raise pixels.WindowError(f"frames must be {' or '.join(pixels.FRAMES)}")
    except pixels.WindowError as exc:
        raise ModelLoadError(f"{where} names a window this runtime cannot apply: {exc}") from exc
    try:
        h, w = (int(v) for v in spec["input_size"])
        crop = float(spec["crop_pct"])
        if spec["resize"] not in pixels.RESAMPLE or h < 1 or w < 1 or not 0 < crop <= 1:
            raise ValueError
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelLoadError(f"{where} is damaged: input_size, crop_pct or resize is "
                             "missing or invalid") from exc
    return spec


def _quiet_onnxruntime():
    """onnxruntime, without the telemetry it may otherwise write under the user's home."""
    os.environ["ORT_DISABLE_TELEMETRY"] = "1"  # read when onnxruntime is first imported
    import onnxruntime as ort

    try:
        ort.disable_telemetry_events()
    except AttributeError:  # builds without telemetry have no switch
        pass
    return ort


def _read_decision(folder: Path, labels: list[str]) -> tuple[float | None, float | None]:
    """decision.json's threshold (two classes: the probability of ``labels[1]`` that calls
    it, or None for the highest probability) and its out-of-distribution threshold (None
    for exports without the detector). Missing or damaged: refused, since guessing would
    call cases the run never called."""
    where = folder / "decision.json"
    try:
        data = json.loads(where.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ModelLoadError(f"{where} is missing: an exported model needs its labels.json, "
                             "preprocessing.json and decision.json beside it") from exc
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ModelLoadError(f"{where} is damaged ({exc})") from exc
    threshold = data.get("threshold") if isinstance(data, dict) else "?"
    ood = data.get("ood_threshold") if isinstance(data, dict) else None
    if ood is not None and (isinstance(ood, bool) or not isinstance(ood, int | float)
                            or not math.isfinite(ood) or ood < 0):
        raise ModelLoadError(f"{where} is damaged: ood_threshold must be a number of 0 or more")
    if threshold is None:
        return None, ood
    if (isinstance(threshold, bool) or not isinstance(threshold, int | float)
            or not 0.0 <= threshold <= 1.0 or len(labels) != 2
            or data.get("positive_class") != labels[1]):
        raise ModelLoadError(f"{where} is damaged: its threshold must be a probability for "
                             f"the second of two classes in labels.json")
    return float(threshold), ood


@dataclass
class ExportedModel:
    path: Path
    labels: list[str]
    preprocessing: dict
    _run: object  # batch -> (probabilities, ood scores or None)
    threshold: float | None = None
    ood_threshold: float | None = None

    def call(self, probabilities: np.ndarray) -> str:
        """The answer for one row of probabilities: at the run's threshold, else the top."""
        if self.threshold is not None:
            return self.labels[1 if probabilities[1] >= self.threshold else 0]
        return self.labels[int(np.argmax(probabilities))]

    @classmethod
    def load(cls, path: str | Path) -> ExportedModel:
        path = Path(path)
        folder = path.parent
        if not path.is_file():
            raise ModelLoadError(f"{path} does not exist or is not a file")
        if path.suffix not in (".onnx", ".pt", ".pth", ".ts"):
            raise ModelLoadError(f"{path.name}: expected an exported .onnx or TorchScript .pt")
        if path.suffix != ".onnx":
            _refuse_pickles(path)  # before anything else is read
        try:
            labels = json.loads((folder / "labels.json").read_text(encoding="utf-8"))
            spec = json.loads((folder / "preprocessing.json").read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ModelLoadError(f"{exc.filename} is missing: an exported model needs its "
                                 "labels.json and preprocessing.json beside it") from exc
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise ModelLoadError(f"the sidecar files beside {path.name} are damaged "
                                 f"({exc})") from exc
        if not isinstance(labels, list) or len(labels) < 2 or not all(
                isinstance(x, str) for x in labels):
            raise ModelLoadError(f"{folder / 'labels.json'} must list the class names")
        spec = _check_spec(spec, folder / "preprocessing.json")
        if path.suffix == ".onnx":
            ort = _quiet_onnxruntime()
            try:
                session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            except Exception as exc:  # onnxruntime raises its own types for bad files
                raise ModelLoadError(f"{path.name} cannot be loaded: it is damaged, truncated "
                                     f"or not an ONNX model ({str(exc)[:200]})") from exc
            name = session.get_inputs()[0].name
            outputs = session.get_outputs()
            wanted = [o.name for o in outputs if o.name in ("probabilities", "ood_score")]
            if not outputs or outputs[0].name != "probabilities":
                raise ModelLoadError(f"{path.name} is not a tlstudio export (it has no "
                                     "'probabilities' output)")
            width = outputs[0].shape[-1]
            if isinstance(width, int) and width != len(labels):
                raise ModelLoadError(f"{path.name} answers {width} classes but labels.json "
                                     f"names {len(labels)}: the files come from different "
                                     "exports")

            def run(batch: np.ndarray):
                answers = session.run(wanted, {name: batch})
                return answers[0], (answers[1] if len(answers) > 1 else None)
        else:
            run = _torchscript(path)
        threshold, ood_threshold = _read_decision(folder, labels)
        model = cls(path, labels, spec, run, threshold, ood_threshold)
        _, scores = model.answer(np.zeros((1, 3, *spec["input_size"]), dtype=np.float32))
        if (scores is None) != (ood_threshold is None):
            raise ModelLoadError(
                f"{path.name} and decision.json disagree about the out-of-distribution "
                "warning (one has it, the other not): the files come from different exports")
        return model

    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        return self.answer(batch)[0]

    def answer(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Probabilities and (with the detector) out-of-distribution scores."""
        probs, scores = self._run(batch.astype(np.float32))
        return np.asarray(probs), (None if scores is None else np.asarray(scores))

    def predict(self, paths: list[Path], batch_size: int = 32) -> list[dict]:
        """One row per image: files, image keys (``file#frame=N``), and with frames 'all'
        one row per frame of a multi-frame DICOM (with its ``frame``)."""
        frames = self.preprocessing.get("frames", "middle")
        entries = [e for p in paths for e in pixels.image_entries(p, frames)]
        out: list[dict] = []

        def row(path, frame, **fields) -> dict:
            data = {"path": str(path), **fields}
            if frame is not None:
                data["frame"] = frame
            return data

        for start in range(0, len(entries), batch_size):
            images, ok = [], []
            for p, frame in entries[start : start + batch_size]:
                try:
                    images.append(preprocess(p, self.preprocessing, frame))
                    ok.append((p, frame))
                except pixels.ImageReadError as exc:
                    out.append(row(p, frame, label=None, probabilities={}, error=str(exc)))
            if ok:
                batch, scores = self.answer(np.stack(images))
                if batch.shape != (len(ok), len(self.labels)):
                    raise ModelLoadError(f"{self.path.name} answered with shape {batch.shape}; "
                                         f"labels.json names {len(self.labels)} classes")
                for k, ((p, frame), probs) in enumerate(zip(ok, batch, strict=True)):
                    score = None if scores is None else float(scores[k])
                    if not np.isfinite(probs).all() or (score is not None
                                                        and not math.isfinite(score)):
                        out.append(row(p, frame, label=None, probabilities={},
                                       error="the model answered NaN or infinity; it is "
                                             "broken and must not be used"))
                        continue
                    extra = {} if score is None else {"ood": score > self.ood_threshold,
                                                      "ood_score": score}
                    out.append(row(p, frame, label=self.call(probs),
                                   probabilities={c: float(v) for c, v in
                                                  zip(self.labels, probs, strict=True)},
                                   **extra))
        order = {pixels.image_key(p, f): i for i, (p, f) in enumerate(entries)}
        return sorted(out, key=lambda r: order[pixels.image_key(r["path"], r.get("frame"))])


def _refuse_pickles(path: Path) -> None:
    import zipfile

    if not zipfile.is_zipfile(path):
        raise ModelLoadError(f"{path.name} is not a TorchScript archive (damaged, truncated "
                             "or another kind of file)")
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise ModelLoadError(f"{path.name} is a damaged archive ({exc})") from exc
    if not any(name.endswith("/code/__torch__.py") or "/code/" in name for name in names):
        raise ModelLoadError(
            f"{path.name} is a pickled checkpoint, not an exported TorchScript model. "
            "tlstudio loads checkpoints only as safetensors or with weights_only=True, "
            "and will not unpickle objects that could run code.")


def _torchscript(path: Path):
    import torch

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # jit is deprecated, still works
            module = torch.jit.load(str(path), map_location="cpu").eval()
    except Exception as exc:
        raise ModelLoadError(f"{path.name} cannot be loaded as TorchScript ({exc})") from exc

    def run(batch: np.ndarray):
        with torch.inference_mode():
            out = module(torch.from_numpy(batch))
        if isinstance(out, tuple | list):
            return out[0].numpy(), out[1].numpy()
        return out.numpy(), None

    return run
