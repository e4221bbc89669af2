"""Labels made in tlstudio, the next images to label, and the review of labels that look
wrong: the core behind the Label step, and `tlstudio suggest` / `tlstudio review`."""

from __future__ import annotations

import csv
import dataclasses
import json
import os

import numpy as np
import pytest

from tlstudio.cli import main
from tlstudio.core.data.dataset import scan
from tlstudio.core.data.labels import LabelError, LabelProject, projects_dir
from tlstudio.core.studies.active_learning import simulate
from tlstudio.core.studies.advisor import backbone_features
from tlstudio.core.studies.label_review import review


def _unlabeled(shapes_folder, tmp_path):
    """The shapes images in one folder with no class sub-folders."""
    folder = tmp_path / "unlabeled"
    folder.mkdir()
    truth = {}
    for label_dir in sorted(shapes_folder.iterdir()):
        for f in sorted(label_dir.iterdir()):
            target = folder / f"{label_dir.name}_{f.name}"
            target.write_bytes(f.read_bytes())
            truth[str(target)] = label_dir.name
    return folder, truth


def test_labels_are_kept_in_tlstudios_folder_undone_and_read_as_a_dataset(
        shapes_folder, tmp_path):
    folder, truth = _unlabeled(shapes_folder, tmp_path)
    before = sorted(os.listdir(folder))
    project = LabelProject.for_folder(folder, ["disc", "square"])
    assert project.dir.parent == projects_dir()  # tlstudio's own folder
    files = project.unlabeled()
    assert len(files) == len(truth)
    files = files[:3] + files[-3:] + files[3:-3]  # three of each class first
    for f in files[:6]:
        project.set_label(f, truth[str(f)])
    project.set_label(files[6], "square")
    assert project.undo() == str(files[6])  # the last label taken back
    assert str(files[6]) not in project.labels
    with pytest.raises(LabelError):
        project.set_label(files[7], "triangle")  # not a class

    again = LabelProject.for_folder(folder)  # opened again: goes on where it stopped
    assert again.labels == project.labels and again.classes == ["disc", "square"]
    assert len(again.unlabeled()) == len(truth) - 6
    rows = list(csv.DictReader(open(again.csv_path, encoding="utf-8")))
    assert {r["path"] for r in rows} == {str(f) for f in files[:6]}
    assert sorted(os.listdir(folder)) == before  # nothing written into the user's folder

    again.exclude(files[0], "blurred")
    index = scan(again.csv_path)  # the labels are a dataset the other steps read
    assert len(index.items) == 5 and index.classes == ["disc", "square"]
    out = again.export(tmp_path / "mine.csv")
    assert out.read_text(encoding="utf-8") == again.csv_path.read_text(encoding="utf-8")


def test_suggest_proposes_uncertain_images_with_a_guess(shapes_folder, tmp_path, capsys):
    folder, truth = _unlabeled(shapes_folder, tmp_path)
    labels = tmp_path / "labels.csv"
    first = sorted(truth)[:3] + sorted(truth)[-3:]  # three of each class
    labels.write_text("path,label\n" + "".join(f"{p},{truth[p]}\n" for p in first))
    assert main(["suggest", "--labels", str(labels), "--images", str(folder), "--n", "5",
                 "--json", "--device", "cpu"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 5 and not {r["path"] for r in rows} & set(first)
    assert set(rows[0]) == {"path", "score", "suggested_label"}
    assert [r["score"] for r in rows] == sorted((r["score"] for r in rows), reverse=True)
    # the guesses of a probe on six labels: discs from squares, far above chance
    right = sum(r["suggested_label"] == truth[r["path"]] for r in rows)
    assert right >= 4

    assert main(["suggest", "--labels", str(labels), "--images", str(tmp_path / "none"),
                 "--device", "cpu"]) == 2
    assert "not a folder" in capsys.readouterr().err


def test_review_finds_flipped_labels(br35h_csv):
    """10 % of the sample's labels flipped: at least 60 % of them in the review's top 15 %."""
    index = scan(br35h_csv)
    features, keep, _ = backbone_features(index, "efficientnet_lite0", "cpu")
    flip = set(np.random.default_rng(0).choice(len(index.items), len(index.items) // 10,
                                               replace=False).tolist())
    swap = dict(zip(index.classes, reversed(index.classes), strict=True))
    noisy = dataclasses.replace(index, items=[
        dataclasses.replace(it, label=swap[it.label]) if k in flip else it
        for k, it in enumerate(index.items)])
    found = review(noisy, features, keep)
    top = {s.path for s in found[:int(0.15 * len(index.items))]}
    flipped = {index.items[k].key for k in flip}
    assert len(flipped & top) >= 0.6 * len(flipped)
    kinds = {s.kind for s in found}
    assert kinds <= {"label", "duplicate"} and "label" in kinds
    # decisions already made in a review are not listed again
    decided = {s.path for s in found[:5]}
    assert not decided & {s.path for s in review(noisy, features, keep, decided=decided)}


def test_uncertainty_sampling_is_not_worse_than_random(br35h_csv):
    """After 60 labels of the sample, mean over 5 seeds (BENCHMARKS.md has the curves)."""
    index = scan(br35h_csv)
    features, keep, _ = backbone_features(index, "efficientnet_lite0", "cpu")
    targets = np.array(index.targets())[keep]
    final = {s: np.mean([simulate(features, targets, s, seed)[-1][1] for seed in range(5)])
             for s in ("uncertainty", "random")}
    assert final["uncertainty"] >= final["random"]
    assert final["uncertainty"] >= 0.8  # a random guess between two classes is 0.5


def test_review_from_the_shell(br35h_csv, capsys):
    assert main(["review", str(br35h_csv), "--json", "--device", "cpu"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows and set(rows[0]) >= {"path", "label", "suggested_label", "score", "kind"}
    assert [r["score"] for r in rows] == sorted((r["score"] for r in rows), reverse=True)
    # the sample holds near-duplicates split across parts: flagged as a leak
    leaks = [r for r in rows if r["kind"] == "duplicate" and "leak" in r["note"]]
    assert leaks
    assert main(["review", "--device", "cpu"]) == 2


def test_a_partly_labeled_folder_takes_its_labels_from_a_csv(shapes_folder, tmp_path):
    folder, truth = _unlabeled(shapes_folder, tmp_path)
    some = sorted(truth)[:4]
    made_elsewhere = tmp_path / "made-elsewhere.csv"
    made_elsewhere.write_text("path,label\n" + "".join(f"{p},{truth[p]}\n" for p in some)
                              + f"{tmp_path / 'elsewhere.png'},disc\n")
    project = LabelProject.for_folder(folder)
    assert project.import_csv(made_elsewhere) == (4, 1)  # the outside row is not taken
    assert project.classes == sorted(set(truth[p] for p in some))
    assert {p: project.labels[p] for p in some} == {p: truth[p] for p in some}
    assert len(project.unlabeled()) == len(truth) - 4


def test_review_decisions_from_the_shell(shapes_folder, capsys):
    discs = sorted((shapes_folder / "disc").iterdir())
    assert main(["review", str(shapes_folder), "--exclude", str(discs[0]),
                 "--relabel", f"{discs[1]}=square", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    corrected = out.strip().splitlines()[-1].split("--data ")[1].split(" --out")[0]
    index = scan(corrected)
    labels = {str(item.path): item.label for item in index.items}
    assert str(discs[0]) not in labels and labels[str(discs[1])] == "square"
    assert sorted((shapes_folder / "disc").iterdir()) == discs  # the dataset is unchanged
    assert main(["review", str(shapes_folder), "--relabel", f"{discs[2]}=triangle"]) == 2
    assert main(["review", str(shapes_folder), "--keep", "/nowhere.png"]) == 2


def test_a_folder_of_dicom_files_is_labeled_like_any_other(tmp_path):
    from pydicom.data import get_testdata_file

    from tlstudio.core.studies.active_learning import FolderFeatures

    folder = tmp_path / "scans"
    folder.mkdir()
    names = ["CT_small.dcm", "MR_small.dcm", "693_J2KR.dcm", "MR2_J2KR.dcm",
             "eCT_Supplemental.dcm", "emri_small.dcm"]
    for k, name in enumerate(names):  # scanners often write no extension
        (folder / f"IM{k:04d}").write_bytes(open(get_testdata_file(name), "rb").read())
    project = LabelProject.for_folder(folder, ["ct", "mr"])
    files = project.unlabeled()
    assert len(files) == len(names)  # found by content
    for f, name in zip(files, names, strict=True):
        project.set_label(f, "ct" if "CT" in name or "693" in name else "mr")
        if len(project.labels) == 4:
            break
    found = FolderFeatures.compute(files, "efficientnet_lite0", "cpu", window="auto")
    assert not found.unreadable
    rows = found.suggestions(project.labels, project.classes, n=5)
    assert {r["path"] for r in rows} == {str(f) for f in files[4:]}  # only unlabeled ones
    assert all(r["suggested_label"] in {"ct", "mr"} for r in rows)
