"""``tlstudio --smoke-test``: what the packaged app runs to prove it works, here from source."""

from __future__ import annotations

import subprocess
import sys

from tlstudio.core.data import samples
from tlstudio.core.models import backbones
from tlstudio.gui.smoke import FAILED, SENTINEL, run_smoke_test


def test_smoke_test_passes_from_the_command_line(tmp_path):
    done = subprocess.run([sys.executable, "-m", "tlstudio", "--smoke-test"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)
    lines = done.stdout.strip().splitlines()
    assert done.returncode == 0, done.stdout + done.stderr
    assert lines[-1] == SENTINEL
    for stage in ("imports", "backbone", "qt", "sample", "train", "predict", "dicom", "window"):
        assert any(line.strip().startswith(f"{stage} ") and " ok " in line for line in lines), \
            f"stage {stage} not reported:\n{done.stdout}"
    assert list(tmp_path.iterdir()) == [], "the smoke test wrote into the current folder"


def test_missing_weights_fail_with_the_reason(qapp, monkeypatch):
    monkeypatch.setattr(backbones.BackboneSpec, "weights_file", lambda self: None)
    lines: list[str] = []
    assert run_smoke_test(lines.append) == 1
    assert lines[-1].startswith(f"{FAILED} at stage 'backbone'")
    assert "weights of EfficientNet-Lite0 are not bundled" in lines[-1]
    assert SENTINEL not in lines


def test_a_packaged_app_without_its_sample_fails(qapp, monkeypatch):
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(samples, "br35h_folder", lambda: None)
    lines: list[str] = []
    assert run_smoke_test(lines.append) == 1
    assert lines[-1] == f"{FAILED} at stage 'sample': the sample images are not bundled"
