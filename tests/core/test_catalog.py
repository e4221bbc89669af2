"""``tlstudio runs`` and ``tlstudio compare``: what the Runs view shows, from a terminal."""

from __future__ import annotations

import json
import shutil

import pytest

from tlstudio.cli import main
from tlstudio.core.engine.config import TrainConfig
from tlstudio.core.runs.training import train

from ..conftest import make_shapes_folder


@pytest.fixture(scope="module")
def trained_pair(tmp_path_factory):
    """Two probes on the same images, trained once for the module (the tests delete and
    change runs: each gets copies)."""
    base = tmp_path_factory.mktemp("catalog")
    shapes = make_shapes_folder(base / "shapes")
    root = base / "runs"
    a, b = root / "20261130-090000-a", root / "20261130-100000-b"
    with pytest.MonkeyPatch.context() as mp:  # tlstudio's own folder: the tests', not yours
        mp.setenv("TLSTUDIO_HOME", str(tmp_path_factory.getbasetemp() / "tlstudio-home"))
        train(TrainConfig(mode="linear-probe", epochs=2, batch_size=16, workers=2), shapes, a)
        train(TrainConfig(mode="linear-probe", epochs=2, batch_size=16, workers=2,
                          lr=1e-4), shapes, b)
    return root


@pytest.fixture
def two_runs(trained_pair, tmp_path):
    root = tmp_path / "runs"
    shutil.copytree(trained_pair, root)
    return root, root / "20261130-090000-a", root / "20261130-100000-b"


def test_runs_lists_compare_puts_side_by_side_and_delete_removes(two_runs, capsys):
    root, a, b = two_runs
    assert main(["runs", "--root", str(root), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in listed] == [b.name, a.name]
    assert all(r["status"] == "finished" and "test accuracy" in r["headline"] for r in listed)

    assert main(["compare", str(a), str(b)]) == 0
    text = capsys.readouterr().out
    test = json.loads((a / "metrics.json").read_text())["test"]
    assert f"accuracy: {test['accuracy'] * 100:.1f} % (95 % CI" in text
    assert "not measured on the same images" not in text  # same data, seed and shares

    assert main(["compare", str(a), str(b), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["n"] for r in rows] == [test["n"]] * 2 and rows[0]["same_test_images"]

    assert main(["runs", "--delete", str(a)]) == 0
    assert not a.exists() and b.exists()


def test_bad_runs_and_compare_input_exit_2(two_runs, tmp_path, capsys):
    root, a, _ = two_runs
    assert main(["compare", str(a)]) == 2
    assert main(["compare", str(a), str(tmp_path)]) == 2  # not a run folder
    assert main(["runs", "--delete", str(tmp_path / "nothing")]) == 2
    assert main(["runs", "--root", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert "at least two" in err and "not a tlstudio run folder" in err
    assert a.exists()
