"""Running an exported tlstudio model with nothing but its sidecar files.

This module deliberately imports nothing from the training code: it is what
``tlstudio predict --model`` uses, what the export parity check measures against, and a
reference for anyone deploying the model elsewhere. The contract (also in
``preprocessing.json``): RGB, shorter side resized to ``input_size / crop_pct`` with the
named method, centre crop to ``input_size``, values scaled to [0, 1], NCHW float32; the model
normalises inside and outputs ``probabilities``.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from .errors import UserError

_RESAMPLE = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR,
             "nearest": Image.Resampling.NEAREST, "lanczos": Image.Resampling.LANCZOS}


class ModelLoadError(UserError):
    """An exported model cannot be loaded; the message says why."""


def preprocess(path: str | Path, spec: dict) -> np.ndarray:
    """One image file -> float32 CHW in [0, 1], following ``preprocessing.json``."""
    with Image.open(path) as img:
        img = ImageOps.exif_transpose(img) or img
        img = img.convert("RGB")
    h, w = spec["input_size"]
    side = int(math.floor(max(h, w) / spec["crop_pct"]))
    scale = side / min(img.size)
    size = (max(side, round(img.width * scale)), max(side, round(img.height * scale)))
    img = img.resize(size, _RESAMPLE[spec["resize"]], reducing_gap=None)
    left, top = (img.width - w) // 2, (img.height - h) // 2
    img = img.crop((left, top, left + w, top + h))
    return (np.asarray(img, dtype=np.float32) / 255.0).transpose(2, 0, 1)


@dataclass
class ExportedModel:
    path: Path
    labels: list[str]
    preprocessing: dict
    _run: object

    @classmethod
    def load(cls, path: str | Path) -> ExportedModel:
        path = Path(path)
        folder = path.parent
        try:
            labels = json.loads((folder / "labels.json").read_text())
            spec = json.loads((folder / "preprocessing.json").read_text())
        except FileNotFoundError as exc:
            raise ModelLoadError(f"{exc.filename} is missing: an exported model needs its "
                                 "labels.json and preprocessing.json beside it") from exc
        if path.suffix == ".onnx":
            import onnxruntime as ort

            session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            name = session.get_inputs()[0].name

            def run(batch: np.ndarray) -> np.ndarray:
                return session.run(["probabilities"], {name: batch})[0]
        elif path.suffix in (".pt", ".pth", ".ts"):
            run = _torchscript(path)
        else:
            raise ModelLoadError(f"{path.name}: expected an exported .onnx or TorchScript .pt")
        return cls(path, labels, spec, run)

    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        return np.asarray(self._run(batch.astype(np.float32)))

    def predict(self, paths: list[Path], batch_size: int = 32) -> list[dict]:
        out: list[dict] = []
        for start in range(0, len(paths), batch_size):
            images, ok = [], []
            for p in paths[start : start + batch_size]:
                try:
                    images.append(preprocess(p, self.preprocessing))
                    ok.append(p)
                except (OSError, ValueError) as exc:
                    out.append({"path": str(p), "label": None, "probabilities": {},
                                "error": f"unreadable image ({exc})"})
            if ok:
                for p, probs in zip(ok, self.probabilities(np.stack(images)), strict=True):
                    out.append({"path": str(p), "label": self.labels[int(probs.argmax())],
                                "probabilities": {c: float(v) for c, v in
                                                  zip(self.labels, probs, strict=True)}})
        order = {str(p): i for i, p in enumerate(paths)}
        return sorted(out, key=lambda r: order[r["path"]])


def _torchscript(path: Path):
    import zipfile

    import torch

    if not zipfile.is_zipfile(path):
        raise ModelLoadError(f"{path.name} is not a TorchScript archive")
    with zipfile.ZipFile(path) as archive:
        if not any(name.endswith("/code/__torch__.py") or "/code/" in name
                   for name in archive.namelist()):
            raise ModelLoadError(
                f"{path.name} is a pickled checkpoint, not an exported TorchScript model. "
                "tlstudio loads checkpoints only as safetensors or with weights_only=True, "
                "and will not unpickle objects that could run code.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # jit is deprecated, still works
            module = torch.jit.load(str(path), map_location="cpu").eval()
    except Exception as exc:
        raise ModelLoadError(f"{path.name} cannot be loaded as TorchScript ({exc})") from exc

    def run(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return module(torch.from_numpy(batch)).numpy()

    return run
