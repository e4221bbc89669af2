"""The one loop and its run folder: decode once, explicit random generators, one evaluation
path, explicit splits and module paths, and folders that stay usable after an early stop."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from tlstudio.core.data import images as images_module
from tlstudio.core.data.dataset import scan
from tlstudio.core.data.split import Split
from tlstudio.core.engine import events as ev
from tlstudio.core.engine.config import TrainConfig
from tlstudio.core.models.backbones import build_model
from tlstudio.core.runs.history import list_runs, read_epochs, summarize
from tlstudio.core.runs.training import TrainingError, resume, train


def _quick(tmp_path, **kw) -> TrainConfig:
    base = dict(backbone="efficientnet_lite0", mode="linear-probe", batch_size=8, seed=0,
                workers=2, cache_dir=str(tmp_path / "cache"))
    base.update(kw)
    return TrainConfig(**base)


def test_each_image_is_decoded_once(shapes_folder, tmp_path, monkeypatch):
    """Scanning proves every image readable by decoding it; that decode fills the cache,
    and training reads it back instead of decoding again."""
    decoded: list = []
    real = images_module.read_image

    def counting(path, *args):
        decoded.append(str(path))
        return real(path, *args)

    for module in ("tlstudio.core.data.dataset", "tlstudio.core.data.cache"):
        monkeypatch.setattr(f"{module}.read_image", counting)
    train(_quick(tmp_path, epochs=1), shapes_folder, tmp_path / "run")
    assert len(decoded) == 48 and len(set(decoded)) == 48


def test_same_seed_same_numbers_while_other_threads_draw_random_numbers(shapes_folder,
                                                                       tmp_path):
    """Order and augmentation come from the run's own generators: a busy global RNG (other
    threads, the GUI) changes nothing."""
    config = dict(mode="fine-tune", freeze="last-1", epochs=2, augmentation="photo",
                  cache_frozen_prefix=False)
    first = train(_quick(tmp_path, **config), shapes_folder, tmp_path / "a")
    stop = threading.Event()

    def noise():
        while not stop.is_set():
            torch.rand(8)

    thread = threading.Thread(target=noise, daemon=True)
    thread.start()
    try:
        second = train(_quick(tmp_path, **config), shapes_folder, tmp_path / "b")
    finally:
        stop.set()
        thread.join()
    assert read_epochs(tmp_path / "a") == [
        {**row, "seconds": a["seconds"]}
        for row, a in zip(read_epochs(tmp_path / "b"), read_epochs(tmp_path / "a"), strict=True)]
    assert second.metrics["val_loss"] == first.metrics["val_loss"]


@pytest.mark.parametrize("mode,freeze", [("fine-tune", "last-1"), ("linear-probe", "head")])
def test_reported_numbers_are_those_of_the_chosen_epoch(shapes_folder, tmp_path, mode,
                                                       freeze):
    """The best epoch is chosen and reported on the same evaluation path (and validation
    never drops features at random, even when only the suffix of a network runs)."""
    result = train(_quick(tmp_path, mode=mode, freeze=freeze, epochs=3), shapes_folder,
                   tmp_path / "run")
    rows = {row["epoch"]: row for row in read_epochs(tmp_path / "run")}
    best = rows[result.metrics["best_epoch"]]
    assert result.metrics["val_loss"] == best["val_loss"]
    assert result.metrics["val_accuracy"] == best["val_accuracy"]


def test_a_given_split_is_used_and_recorded(shapes_folder, tmp_path):
    index = scan(shapes_folder)
    discs = [i for i, item in enumerate(index.items) if item.label == "disc"]
    squares = [i for i, item in enumerate(index.items) if item.label == "square"]
    split = Split(train=discs[:20] + squares[:20], val=discs[20:] + squares[20:], test=[])
    train(_quick(tmp_path, epochs=1), index, tmp_path / "run", split=split)
    recorded = json.loads((tmp_path / "run" / "split.json").read_text())
    assert recorded["val"] == [str(index.items[p].path) for p in split.val]
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["count"] == 8


def test_explicit_trainable_paths_train_only_those(shapes_folder, tmp_path):
    out = tmp_path / "run"
    train(_quick(tmp_path, mode="fine-tune", trainable_paths=["blocks.6", "classifier"],
                 epochs=1), shapes_folder, out)
    config = json.loads((out / "config.json").read_text())
    assert "conv_head" in config["frozen_paths"] and "blocks.6" not in config["frozen_paths"]
    start = build_model("efficientnet_lite0", 2).state_dict()
    best = load_file(str(out / "best.safetensors"))
    assert torch.equal(best["conv_head.weight"], start["conv_head.weight"])
    assert not torch.equal(best["blocks.6.0.conv_pw.weight"], start["blocks.6.0.conv_pw.weight"])


def test_unknown_module_path_fails_before_any_slow_work(shapes_folder, tmp_path):
    seen: list = []
    with pytest.raises(TrainingError, match="has no module 'blocks.60'"):
        train(_quick(tmp_path, mode="fine-tune", frozen_paths=["blocks.60"]), shapes_folder,
              tmp_path / "run", [seen.append])
    assert not any(isinstance(e, ev.StageProgress) for e in seen)
    assert not (tmp_path / "run").exists()


def test_stop_before_the_first_epoch_leaves_a_folder_resume_accepts(shapes_folder, tmp_path):
    control = ev.Control()

    def stop_while_decoding(event):
        if isinstance(event, ev.StageProgress) and event.stage == "decoding images":
            control.stop()

    out = tmp_path / "run"
    first = train(_quick(tmp_path, epochs=2), shapes_folder, out, [stop_while_decoding],
                  control)
    assert first.cancelled and not first.metrics
    assert summarize(out).status == "not started" and summarize(out).resumable
    done = resume(out)
    assert not done.cancelled and done.metrics["epochs_run"] == 2
    assert [row["epoch"] for row in read_epochs(out)] == [1, 2]
    assert summarize(out).status == "finished"


def test_failure_before_anything_was_written_leaves_no_folder(tmp_path):
    empty = tmp_path / "empty"
    (empty / "a").mkdir(parents=True)
    (empty / "b").mkdir()
    with pytest.raises(Exception, match="usable class"):
        train(_quick(tmp_path), empty, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_runs_are_listed_with_what_they_can_do(shapes_folder, tmp_path):
    control = ev.Control()

    def stop_after_first(event):
        if isinstance(event, ev.EpochDone):
            control.stop()

    train(_quick(tmp_path, epochs=1), shapes_folder, tmp_path / "runs" / "b-done")
    train(_quick(tmp_path, mode="fine-tune", freeze="head", epochs=5), shapes_folder,
          tmp_path / "runs" / "a-stopped", [stop_after_first], control)
    runs = {r.dir.name: r for r in list_runs(tmp_path / "runs")}
    assert runs["b-done"].status == "finished" and not runs["b-done"].resumable
    stopped = runs["a-stopped"]
    assert stopped.status == "stopped" and stopped.resumable
    assert (stopped.epochs_done, stopped.epochs) == (1, 5)
    assert np.isfinite(json.loads((stopped.dir / "metrics.json").read_text())["val_loss"])
