"""The backbone advisor: features once (then from the cache), LogME, a quick probe, a
recommendation among the best; `tlstudio advise` prints it."""

from __future__ import annotations

import json

import pytest

from tlstudio.cli import main
from tlstudio.core.data.dataset import scan
from tlstudio.core.studies.advisor import advise


def test_the_advisor_ranks_measures_and_recommends_one_of_the_best(shapes_folder):
    index = scan(shapes_folder)
    first = advise(index, ["efficientnet_lite0", "mobilenet_v2"], device="cpu")
    ranking = first["ranking"]
    assert [r["backbone"] for r in ranking] != [] and len(ranking) == 2
    accuracies = [r["probe_accuracy"] for r in ranking]
    assert accuracies == sorted(accuracies, reverse=True)
    assert accuracies[0] >= 0.9  # discs vs squares: far above chance for a frozen backbone
    chosen = next(r for r in ranking if r["backbone"] == first["recommended"])
    assert chosen["probe_accuracy"] >= accuracies[0] - 0.01  # within a point of the best
    assert chosen["display_name"] in first["sentence"]
    assert all(not r["features_cached"] for r in ranking)

    again = advise(index, ["efficientnet_lite0", "mobilenet_v2"], device="cpu")
    assert all(r["features_cached"] for r in again["ranking"])  # features computed once
    assert [(r["backbone"], r["score"]) for r in again["ranking"]] == \
        [(r["backbone"], r["score"]) for r in ranking]


def test_advise_from_the_shell_prints_json(shapes_folder, capsys):
    assert main(["advise", str(shapes_folder), "--backbones", "mobilenet_v2,lite0",
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["recommended"] in {"mobilenet_v2", "efficientnet_lite0"}
    assert set(result["ranking"][0]) >= {"backbone", "score", "probe_accuracy", "seconds"}
    # how far each stage of the recommended backbone is from its pretraining, and what to adapt
    assert [st["stage"] for st in result["stages"]][:2] == ["blocks.0", "blocks.1"]
    assert all(st["shift"] >= 0 for st in result["stages"])
    assert result["unfreeze"] and result["unfreeze"][-1] == result["stages"][-1]["stage"]


@pytest.mark.parametrize("args,message", [
    (["advise"], "needs a dataset"),
    (["advise", "{data}", "--backbones", "alexnet-9000"], "unknown backbone"),
    (["advise", "/no/such/folder"], "does not exist"),
])
def test_bad_advise_input_exits_2(shapes_folder, capsys, args, message):
    args = [a.format(data=shapes_folder) for a in args]
    assert main(args) == 2
    assert message in capsys.readouterr().err


def test_the_advisor_sees_the_pixels_the_run_will_train_on(tmp_path):
    """DICOM through another window are other pixels: other features, another score."""
    from tlstudio.core.studies.advisor import backbone_features

    from .test_dicom import dicom_folder

    index = scan(dicom_folder(tmp_path / "dicom"))
    auto, _, _ = backbone_features(index, "mobilenet_v2", "cpu", window="auto")
    bone, _, cached = backbone_features(index, "mobilenet_v2", "cpu", window="400,1800")
    assert not cached and auto.shape == bone.shape
    assert abs(auto - bone).max() > 1e-3
