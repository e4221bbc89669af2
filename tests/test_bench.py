"""`tlstudio bench` runs both sides and reports ratios (figures are checked, not timed)."""

from __future__ import annotations

import json

import pytest

from .conftest import make_shapes_folder
from .test_cli import tlstudio

KEYS = {"engine_img_per_s", "reference_img_per_s", "ratio", "engine_val_accuracy",
        "reference_val_accuracy", "device", "engine_first_epoch_s",
        "engine_warm_first_epoch_s", "engine_peak_mb", "reference_peak_mb"}


@pytest.mark.parametrize("mode", ["linear-probe", "partial"])
def test_bench_prints_ratios_and_ends_with_json(tmp_path, mode):
    data = make_shapes_folder(tmp_path / "shapes", per_class=16)
    result = tlstudio("bench", "--data", data, "--backbone", "efficientnet_lite0", "--mode",
                      mode, "--epochs", "2", "--batch-size", "8", "--json", timeout=900)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    report = json.loads(lines[-1])
    assert KEYS <= set(report)
    assert report["mode"] == mode and report["epochs"] == 2
    assert report["engine_img_per_s"] > 0 and report["reference_img_per_s"] > 0
    assert report["ratio"] == pytest.approx(
        report["engine_img_per_s"] / report["reference_img_per_s"])
    assert 0.0 <= report["engine_val_accuracy"] <= 1.0
    assert report["engine_val_accuracy"] >= 0.75  # discs vs squares: really trained
    assert report["reference_val_accuracy"] >= 0.5
    assert "images/s (whole run)" in result.stdout and "ratio" in result.stdout
