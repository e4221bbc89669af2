"""`tlstudio map`: every image of a run placed by its model's features, mistakes marked,
near-duplicates paired and called leakage when the split separated them."""

from __future__ import annotations

import csv
import json

import pytest
from PIL import Image

from tlstudio.core.data.synthetic import make_shapes_folder
from tlstudio.core.engine.config import TrainConfig
from tlstudio.core.runs.training import train

from ..conftest import cli


@pytest.mark.slow
def test_map_finds_a_copied_image_across_the_split(tmp_path):
    data = make_shapes_folder(tmp_path / "shapes", per_class=12)
    for k in range(4):  # near-copies (one pixel changed: not byte-identical duplicates,
        image = Image.open(data / "disc" / f"disc_00{k}.png").convert("RGB")  # which the
        image.putpixel((0, 0), (1, 2, 3))  # scan already sets aside); the split may put
        image.save(data / "disc" / f"copy_{k}.png")  # them apart
    run = tmp_path / "run"
    train(TrainConfig(mode="linear-probe", epochs=3, batch_size=16, workers=2), data, run)
    split = json.loads((run / "split.json").read_text())
    part_of = {key: part for part, keys in split.items() for key in keys}

    out = tmp_path / "map.csv"
    answer = cli("map", "--run", run, "--json", "--out", out)
    assert answer.returncode == 0, answer.stderr
    result = json.loads(answer.stdout)
    assert len(result["points"]) == 28 and result["left_out"] == 0
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 28 and {r["part"] for r in rows} == {"train", "val", "test"}
    pairs = {frozenset((d["a"], d["b"])): d for d in result["duplicates"]}
    for k in range(4):
        a, b = str(data / "disc" / f"disc_00{k}.png"), str(data / "disc" / f"copy_{k}.png")
        found = pairs[frozenset((a, b))]
        assert found["leak"] == (part_of[a] != part_of[b])

    again = cli("map", "--run", run, "--out", out)
    assert again.returncode == 2 and "exists" in again.stderr
