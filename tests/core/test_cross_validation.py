"""``--folds K``: every image tested once, mean and spread over folds, then the final model."""

from __future__ import annotations

import json

import pytest

from tlstudio.cli import main
from tlstudio.core.data.dataset import scan
from tlstudio.core.data.split import make_folds


def test_folds_test_every_image_once_and_keep_groups_together(tmp_path):
    from tlstudio.core.data.synthetic import make_shapes_folder

    folder = make_shapes_folder(tmp_path / "d" / "images", per_class=15)
    lines = ["path,label,patient"] + [
        f"{f},{f.parent.name},p{k // 3}" for k, f in enumerate(sorted(folder.rglob("*.png")))]
    (tmp_path / "d" / "data.csv").write_text("\n".join(lines) + "\n")
    index = scan(tmp_path / "d" / "data.csv")
    folds = make_folds(index, 4, seed=1)
    tested = sorted(p for f in folds for p in f.test)
    assert tested == list(range(len(index.items)))  # each image in exactly one test fold
    for f in folds:
        assert not set(f.test) & (set(f.train) | set(f.val))
        test_groups = {index.items[p].group for p in f.test}
        other = {index.items[p].group for p in f.train + f.val}
        assert not test_groups & other  # a patient never on both sides
        labels = {index.items[p].label for p in f.test}
        assert labels == {"disc", "square"}  # stratified
    assert make_folds(index, 4, seed=1) == folds  # seeded


def test_train_with_folds_reports_mean_and_spread_then_trains_the_final_model(
        shapes_folder, tmp_path, capsys):
    out = tmp_path / "cv"
    assert main(["train", "--data", str(shapes_folder), "--out", str(out), "--folds", "3",
                 "--mode", "linear-probe", "--epochs", "20", "--batch-size", "16"]) == 0
    printed = capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    cv = metrics["cv"]
    assert cv["k"] == 3 and len(cv["folds"]) == 3
    assert sum(f["n"] for f in cv["folds"]) == 48  # every image tested once
    assert cv["accuracy_mean"] >= 0.8 and cv["accuracy_std"] >= 0.0
    assert "CROSS-VALIDATION (3 folds" in printed
    for k in (1, 2, 3):
        assert (out / "folds" / f"fold-{k}" / "best.safetensors").is_file()
    # the final model (all images but a validation share) is a run like any other
    assert (out / "best.safetensors").is_file() and "test" not in metrics
    assert json.loads((out / "cv.json").read_text()) == cv
    # the report and an export's model card carry it
    assert main(["report", "--run", str(out), "--no-images"]) == 0
    assert "Cross-validation (3 folds)" in (out / "report.html").read_text()


@pytest.mark.parametrize("args,message", [
    (["--folds", "1"], "at least 2"),
    (["--folds", "30"], "fewer than the 30 folds"),
    (["--final", "none"], "--final goes with --folds"),
])
def test_bad_fold_settings_exit_2(shapes_folder, tmp_path, capsys, args, message):
    out = tmp_path / "cv"
    assert main(["train", "--data", str(shapes_folder), "--out", str(out), *args]) == 2
    assert message in capsys.readouterr().err
    assert not (out / "config.json").exists()
