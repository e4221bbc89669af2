"""Results per subgroup make a hidden failure visible (known answer: one site's labels are
noise, so the model cannot be right there more than by chance)."""

from __future__ import annotations

import json

import numpy as np

from tlstudio.cli.training import results_text
from tlstudio.core.data.synthetic import make_shapes_folder
from tlstudio.core.engine.config import TrainConfig
from tlstudio.core.runs.report import build_report
from tlstudio.core.runs.training import train


def two_site_run(tmp_path):
    """Shapes from site A labelled right, from site B labelled at random; a run on them."""
    folder = make_shapes_folder(tmp_path / "shapes" / "images", per_class=60, seed=3)
    rng = np.random.default_rng(0)
    lines = ["path,label,site,image_id"]
    for k, file in enumerate(sorted(folder.rglob("*.png"))):
        site = "B" if k % 3 == 0 else "A"
        label = file.parent.name if site == "A" else rng.choice(["disc", "square"])
        lines.append(f"{file},{label},{site},id{k:04d}")
    csv = tmp_path / "shapes" / "data.csv"
    csv.write_text("\n".join(lines) + "\n")
    run = tmp_path / "run"
    train(TrainConfig(mode="linear-probe", epochs=10, batch_size=32, workers=2,
                      test_fraction=0.3,
                      val_fraction=0.2), csv, run)
    return run


def test_subgroups_from_csv_columns_show_where_the_model_fails(tmp_path):
    run = two_site_run(tmp_path)
    metrics = json.loads((run / "metrics.json").read_text())
    test = json.loads((run / "metrics.json").read_text())["test"]
    groups = test["subgroups"]
    assert set(groups) == {"site"}  # image_id has a value per image: not a subgroup
    a, b = groups["site"]["A"], groups["site"]["B"]
    assert a["n"] + b["n"] == test["n"]
    assert a["accuracy"] >= 0.9 and a["accuracy"] > b["accuracy"] + 0.25
    assert a["accuracy_ci"][0] <= a["accuracy"] <= a["accuracy_ci"][1]
    assert "sensitivity_ci" in b
    # aggregates only: no file name in the subgroup block
    assert ".png" not in json.dumps(groups)
    # the same numbers in the terminal and in the report
    text = "\n".join(results_text(metrics))
    assert "by site:" in text and f"n={a['n']}" in text
    assert "site = B" in build_report(run, images=False)
