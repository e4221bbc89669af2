"""The bad-input suite: every way a user can hand tlstudio something wrong.

Each case builds its input, runs the command as a user types it (``tlstudio.cli.main``, in
this process so the suite stays fast), and checks three things a user would notice: the
exit code (2 for bad input, before any slow work), a message naming the option, file or
line at fault, and that the data folder is byte-identical afterwards.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from tlstudio.cli import main
from tlstudio.core.data.synthetic import make_shapes_folder
from tlstudio.core.engine.config import TrainConfig
from tlstudio.core.runs.export import export_run
from tlstudio.core.runs.training import train

pytestmark = pytest.mark.slow


# --- fixtures: one tiny run and its export, damaged copies per case ------------------------
@pytest.fixture(scope="module")
def made(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad-input")
    os.environ["TLSTUDIO_HOME"] = str(root / "home")
    data = make_shapes_folder(root / "shapes", per_class=10)
    run = root / "run"
    train(TrainConfig(backbone="efficientnet_lite0", mode="linear-probe", epochs=2,
                      batch_size=8, workers=2),
          data, run)
    export_run(run, "onnx", root / "export")
    return {"data": data, "run": run, "export": root / "export"}


def snapshot(folder: Path) -> dict:
    """Every entry under ``folder`` (links not followed): bytes, link targets, modes."""
    out = {}
    for here, dirs, files in os.walk(folder, followlinks=False):
        for name in dirs + files:
            path = Path(here) / name
            rel = str(path.relative_to(folder))
            if path.is_symlink():
                out[rel] = ("link", os.readlink(path))
            elif path.is_file():
                out[rel] = ("file", hashlib.sha256(path.read_bytes()).hexdigest(),
                            path.stat().st_mode)
            else:
                out[rel] = ("dir", path.stat().st_mode)
    return out


@dataclass
class Case:
    args: list
    code: int
    says: tuple[str, ...]
    data: Path  # the user's folder that must not change
    setup: object = None  # builds a damaged run or export, only for the case that runs
    never: tuple[str, ...] = ()  # what must not reach the terminal


def _png(path: Path, size=(40, 40), colour=(120, 30, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)
    return path


def _two_classes(root: Path, n: int = 3) -> Path:
    for label, colour in (("cat", (200, 50, 50)), ("dog", (50, 50, 200))):
        for i in range(n):
            _png(root / label / f"{label}{i}.png", colour=tuple(c + i for c in colour))
    return root


def _csv(root: Path, text: str, name: str = "labels.csv", encoding="utf-8") -> Path:
    _two_classes(root)
    (root / name).write_bytes(text.encode(encoding))
    return root / name


def _made(made, key: str) -> Path:
    """The tiny run or export; a placeholder while only the case names are collected."""
    return Path("/collecting") / key if made is None else made[key]


def _truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _edit_json(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def _bomb(path: Path) -> Path:
    """A few bytes of PNG that claim 20000 x 20000 pixels (400 MP): a decompression bomb."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body)))

    header = struct.pack(">IIBBBBB", 20000, 20000, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                     + chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + chunk(b"IEND", b""))
    return path


def _train(data, tmp, *extra) -> list:
    return ["train", "--data", data, "--out", tmp / "out", "--epochs", "1",
            "--no-compare-scratch", *extra]


# --- the cases --------------------------------------------------------------------------
def images_cases(made, tmp: Path) -> dict:
    pics = tmp / "pics"
    _png(pics / "good.png")
    (pics / "empty.png").write_bytes(b"")
    (pics / "text.png").write_text("hello")
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)).save(
        buf, "JPEG")
    (pics / "cut.jpg").write_bytes(buf.getvalue()[:400])
    _bomb(pics / "bomb.png")
    odd = tmp / "odd-exif"
    odd.mkdir()
    ifd = (b"MM\x00*" + struct.pack(">IH", 8, 1) + struct.pack(">HHII", 0x010F, 2, 100, 5000)
           + struct.pack(">I", 0))  # a Make tag pointing past the end of the file
    Image.new("RGB", (32, 32), (9, 9, 9)).save(odd / "odd.jpg", exif=b"Exif\x00\x00" + ifd)
    run, model = _made(made, "run"), _made(made, "export") / "model.onnx"
    return {
        "predict-run: empty, text, truncated, bomb are error rows":
            Case(["predict", "--run", run, pics], 0,
                 ("empty file", "not an image", "truncated", "too large", "good.png"), pics),
        "predict-model: empty, text, truncated, bomb are error rows":
            Case(["predict", "--model", model, pics], 0,
                 ("empty file", "not an image", "truncated", "too large", "good.png"), pics),
        "predict-run: only unreadable images": Case(
            ["predict", "--run", run, pics / "empty.png", pics / "text.png"], 2,
            ("empty file",), pics),
        "predict-model: only a bomb": Case(
            ["predict", "--model", model, pics / "bomb.png"], 2, ("decompression bomb",), pics),
        "predict-run: a path that does not exist": Case(
            ["predict", "--run", run, pics / "nope.png"], 2, ("cannot open",), pics),
        "predict-run: an image with corrupt EXIF is still labelled": Case(
            ["predict", "--run", run, odd], 0, ("odd.jpg",), odd),
        "predict-run: an empty folder": Case(
            ["predict", "--run", run, (tmp / "none").mkdir() or tmp / "none"], 2,
            ("no images found",), pics),
    }


def dataset_cases(made, tmp: Path) -> dict:
    loose = tmp / "loose"
    _png(loose / "a.png")
    one_class = tmp / "one-class"
    for i in range(3):
        _png(one_class / "cat" / f"c{i}.png", colour=(i, 0, 0))
    tiny = tmp / "tiny"
    _png(tiny / "cat" / "c.png")
    _png(tiny / "dog" / "d.png", colour=(0, 0, 9))
    broken = tmp / "broken"
    for label in ("cat", "dog"):
        for i in range(3):
            (broken / label).mkdir(parents=True, exist_ok=True)
            (broken / label / f"{i}.png").write_text("not a picture")
    links = _two_classes(tmp / "links")
    (links / "cat" / "gone.png").symlink_to(tmp / "nowhere.png")
    (links / "dog" / "loop").symlink_to(links / "dog")
    (tmp / "emptydir").mkdir()
    notcsv = tmp / "notes"
    notcsv.mkdir()
    (notcsv / "notes.docx").write_text("x")
    hidden = tmp / "hidden"
    _png(hidden / ".cache" / "a.png")
    dup = _two_classes(tmp / "dup")
    shutil.copy(dup / "cat" / "cat0.png", dup / "dog" / "same.png")
    return {
        "data: missing folder": Case(["scan", tmp / "missing"], 2, ("does not exist",),
                                     tmp / "emptydir"),
        "data: empty folder": Case(["scan", tmp / "emptydir"], 2, ("no class sub-folders",),
                                   tmp / "emptydir"),
        "data: images without class folders": Case(["scan", loose], 2,
                                                    ("no class sub-folders",), loose),
        "data: one class": Case(["scan", one_class], 2, ("1 usable class",), one_class),
        "data: classes of one image": Case(["scan", tiny], 2, ("at least 2",), tiny),
        "data: every image unreadable": Case(["scan", broken], 2, ("not an image",), broken),
        "data: a file that is not a CSV": Case(["scan", notcsv / "notes.docx"], 2,
                                               ("not a CSV",), notcsv),
        "data: only hidden folders": Case(["scan", hidden], 2, ("no class sub-folders",),
                                          hidden),
        "data: broken link and link loop are listed": Case(
            ["scan", links], 0, ("broken link", "link loop", "gone.png"), links),
        "data: same image in two classes is listed": Case(
            ["scan", dup], 0, ("same image appears in classes cat, dog",), dup),
        "train: dataset that is missing, before any work": Case(
            _train(tmp / "missing", tmp), 2, ("does not exist",), tmp / "emptydir"),
    }


def csv_cases(made, tmp: Path) -> dict:
    def folder(name):
        return tmp / name

    rows = "".join(f"{label}/{label}{i}.png,{label}\n" for label in ("cat", "dog")
                   for i in range(3))
    cases = {}
    quote = _csv(folder("quote"), "path,label\n" + '"cat/cat0.png,cat\n' + rows)
    cases["csv: stray quote names the line"] = Case(["scan", quote], 2,
                                                     ("line 2", "unmatched quote"),
                                                     folder("quote"))
    semi = _csv(folder("semi"), "path;label\n" + rows.replace(",", ";"))
    cases["csv: semicolons work"] = Case(["scan", semi], 0, ("6 images in 2 classes",),
                                         folder("semi"))
    tab = _csv(folder("tab"), "path\tlabel\n" + rows.replace(",", "\t"))
    cases["csv: tabs work"] = Case(["scan", tab], 0, ("6 images in 2 classes",),
                                   folder("tab"))
    bom = _csv(folder("bom"), "\ufeffpath,label\n" + rows)
    cases["csv: UTF-8 with BOM works"] = Case(["scan", bom], 0, ("6 images",), folder("bom"))
    latin = _csv(folder("latin"), "path,label\n" + rows + "cat/cat0.png,chat é\n",
                 encoding="latin-1")
    cases["csv: Latin-1 is read with a notice"] = Case(["scan", latin], 0, ("Latin-1",),
                                                       folder("latin"))
    wide = _csv(folder("wide"), "path,label\n" + rows + "cat/cat1.png,cat,extra\n")
    cases["csv: too many columns listed by line"] = Case(["scan", wide], 0,
                                                         ("line 8", "3 columns"),
                                                         folder("wide"))
    short = _csv(folder("short"), "path,label\n" + rows + "cat/cat1.png\n")
    cases["csv: too few columns listed by line"] = Case(["scan", short], 0,
                                                        ("line 8", "1 column"),
                                                        folder("short"))
    missing = _csv(folder("missing"), "path,label\n" + rows + "cat/ghost.png,cat\n")
    cases["csv: missing file listed by line"] = Case(["scan", missing], 0,
                                                     ("line 8", "file not found"),
                                                     folder("missing"))
    empty_label = _csv(folder("emptylabel"), "path,label\n" + rows + "cat/cat2.png,\n")
    cases["csv: empty label listed by line"] = Case(["scan", empty_label], 0,
                                                    ("line 8", "empty label"),
                                                    folder("emptylabel"))
    one_col = _csv(folder("onecol"), "path|label\n" + rows.replace(",", "|"))
    cases["csv: one column names the separators"] = Case(
        ["scan", one_col], 2, ("one column", "semicolon"), folder("onecol"))
    empty = _csv(folder("emptycsv"), "")
    cases["csv: empty file"] = Case(["scan", empty], 2, ("is empty",), folder("emptycsv"))
    header_only = _csv(folder("headeronly"), "path,label\n")
    cases["csv: header only"] = Case(["scan", header_only], 2, ("0 usable class",),
                                     folder("headeronly"))
    dirrow = _csv(folder("dirrow"), "path,label\n" + rows + "cat,cat\n")
    cases["csv: a folder as path listed by line"] = Case(["scan", dirrow], 0,
                                                         ("line 8", "folder"),
                                                         folder("dirrow"))
    out_csv = _csv(folder("csvout"), "path,label\n" + rows)
    cases["train: --out inside a CSV dataset's folder"] = Case(
        ["train", "--data", out_csv, "--out", folder("csvout") / "run"], 2,
        ("inside the dataset folder",), folder("csvout"))
    return cases


def argument_cases(made, tmp: Path) -> dict:
    data = _two_classes(tmp / "args", n=4)
    a_file = tmp / "a-file.txt"
    a_file.write_text("x")
    nan_weights = tmp / "nan.safetensors"
    save_file({"w": torch.full((2, 2), float("nan"))}, str(nan_weights))
    pickled = tmp / "evil.pth"

    class Payload:
        def __reduce__(self):
            return (print, ("pwned",))

    pickled.write_bytes(pickle.dumps({"model": Payload()}))
    cases = {
        "--lr inf": (["--lr", "inf"], ("--lr",)),
        "--lr nan": (["--lr", "nan"], ("--lr",)),
        "--lr negative": (["--lr", "-0.1"], ("--lr",)),
        "--lr zero": (["--lr", "0"], ("--lr",)),
        "--lr huge": (["--lr", "1000"], ("--lr",)),
        "--epochs 0": (["--epochs", "0"], ("--epochs",)),
        "--batch-size 0": (["--batch-size", "0"], ("--batch-size",)),
        "--seed negative": (["--seed", "-1"], ("--seed",)),
        "--seed too large": (["--seed", str(2**32)], ("--seed",)),
        "--patience 0": (["--patience", "0"], ("--patience",)),
        "--val-fraction 1.5": (["--val-fraction", "1.5"], ("--val-fraction",)),
        "--val-fraction 0": (["--val-fraction", "0"], ("--val-fraction",)),
        "--test-fraction 0.95": (["--test-fraction", "0.95"], ("--test-fraction",)),
        "--label-smoothing 1": (["--label-smoothing", "1"], ("label smoothing",)),
        "--device cuda without a GPU": (["--device", "cuda"], ("--device", "cpu")),
        "--device cuda:7": (["--device", "cuda:7"], ("--device",)),
        "--device banana": (["--device", "banana"], ("--device", "not a device")),
        "--device meta": (["--device", "meta"], ("--device",)),
        "--backbone unknown": (["--backbone", "nope"], ("unknown backbone",)),
        "--augmentation unknown": (["--augmentation", "sparkles"], ("augmentation",)),
        "--frozen unknown module": (["--mode", "fine-tune", "--frozen", "blocks.99"],
                                    ("blocks.99",)),
        "--weights missing file": (["--weights", tmp / "none.safetensors"], ("not found",)),
        "--weights full of NaN": (["--weights", nan_weights], ("NaN",)),
        "--weights pickle that runs code": (["--weights", pickled], ("refused",)),
        "--init-from not a run": (["--init-from", tmp], ("not a tlstudio run",)),
    }
    out = {name: Case(_train(data, tmp, *extra), 2, says, data)
           for name, (extra, says) in cases.items()}
    if torch.cuda.is_available():
        del out["--device cuda without a GPU"]
    out["train: --out is a file"] = Case(
        ["train", "--data", data, "--out", a_file], 2, ("is a file",), data)
    out["train: --out inside the dataset"] = Case(
        ["train", "--data", data, "--out", data / "run"], 2, ("inside the dataset",), data)
    out["train: --mode unknown (argparse)"] = Case(
        ["train", "--data", data, "--out", tmp / "o", "--mode", "magic"], 2, ("--mode",), data)
    out["train: no --data"] = Case(["train", "--out", tmp / "o"], 2, ("--data",), data)
    out["train: --resume with settings"] = Case(
        ["train", "--resume", _made(made, "run"), "--lr", "0.1"], 2, ("drop --lr",), data)
    out["bench: --repeats 0"] = Case(["bench", "--data", data, "--repeats", "0"], 2,
                                     ("--repeats",), data)
    out["bench: --device banana"] = Case(["bench", "--data", data, "--device", "banana"], 2,
                                         ("--device",), data)
    out["scan: --seed negative"] = Case(["scan", data, "--seed", "-3"], 2, ("--seed",), data)
    if os.geteuid() != 0:  # root may write anywhere: no read-only folder to test with
        locked = tmp / "locked"
        locked.mkdir()
        locked.chmod(0o555)
        out["train: --out in a read-only folder"] = Case(
            ["train", "--data", data, "--out", locked / "run"], 2, ("cannot write",), data)
    return out


def run_cases(made, tmp: Path) -> dict:
    pics = tmp / "pics"
    _png(pics / "one.png")
    cases = {}

    setups = {}

    def damaged(name: str, damage) -> Path:
        run = tmp / name / "run"

        def setup():
            shutil.copytree(made["run"], run)
            damage(run)

        setups[run] = setup
        return run

    run = damaged("no-weights", lambda r: (r / "best.safetensors").unlink())
    cases["run: no best.safetensors"] = Case(["predict", "--run", run, pics], 2,
                                             ("best.safetensors", "--resume"), pics)
    run = damaged("truncated", lambda r: _truncate(r / "best.safetensors"))
    cases["run: truncated checkpoint"] = Case(["predict", "--run", run, pics], 2,
                                              ("damaged or truncated",), pics)

    def nan(r):
        tensors = load_file(str(r / "best.safetensors"))
        name = sorted(k for k, v in tensors.items() if v.is_floating_point())[-1]
        tensors[name] = torch.full_like(tensors[name], float("nan"))
        save_file(tensors, str(r / "best.safetensors"))

    run = damaged("nan", nan)
    cases["run: checkpoint with NaN"] = Case(["predict", "--run", run, pics], 2,
                                             ("non-finite", "NaN"), pics)
    run = damaged("badjson", lambda r: (r / "config.json").write_text("{not json"))
    cases["run: invalid config.json names the file"] = Case(
        ["predict", "--run", run, pics], 2, ("config.json", "damaged"), pics)
    run = damaged("noclasses", lambda r: _edit_json(r / "config.json",
                                                    lambda c: c.pop("classes")))
    cases["run: config.json without classes"] = Case(["predict", "--run", run, pics], 2,
                                                     ("config.json", "classes"), pics)
    run = damaged("threeclasses", lambda r: _edit_json(
        r / "config.json", lambda c: c.update(classes=["a", "b", "c"])))
    cases["run: classes do not fit the weights"] = Case(
        ["predict", "--run", run, pics], 2, ("does not fit", "3 classes"), pics)
    run = damaged("otherarch", lambda r: _edit_json(
        r / "config.json", lambda c: c["backbone"].update(name="mobilenetv2_100")))
    cases["run: architecture does not fit the weights"] = Case(
        ["predict", "--run", run, pics], 2, ("does not fit", "mobilenetv2_100"), pics)
    run = damaged("rule", lambda r: _edit_json(
        r / "config.json", lambda c: c["preprocessing"].update(pixel_rule="other/9")))
    cases["run: another pixel rule"] = Case(["predict", "--run", run, pics], 2,
                                            ("pixel rule other/9",), pics)
    cases["run: folder that is not a run"] = Case(["predict", "--run", pics, pics], 2,
                                                  ("not a tlstudio run",), pics)
    cases["run: folder that does not exist"] = Case(
        ["predict", "--run", tmp / "nowhere", pics], 2, ("not a tlstudio run",), pics)
    run = damaged("unfinished", lambda r: (r / "metrics.json").unlink())
    cases["export: unfinished run"] = Case(
        ["export", "--run", run, "--out", tmp / "exp1"], 2, ("did not finish", "--resume"),
        pics)
    busy = tmp / "busy"
    _png(busy / "x.png")
    cases["export: --out not empty"] = Case(
        ["export", "--run", _made(made, "run"), "--out", busy], 2, ("not empty",), busy)
    cases["export: --out is a file"] = Case(
        ["export", "--run", _made(made, "run"), "--out", pics / "one.png"], 2, ("is a file",), pics)
    cases["export: --format unknown (argparse)"] = Case(
        ["export", "--run", _made(made, "run"), "--format", "tflite", "--out", tmp / "e"], 2,
        ("--format",), pics)
    cases["resume: a finished run"] = Case(["train", "--resume", _made(made, "run")], 2,
                                           ("already finished",), pics)
    cases["resume: not a run"] = Case(["train", "--resume", pics], 2,
                                      ("not a tlstudio run",), pics)

    def exported(name: str, damage) -> Path:
        out = tmp / name / "export"

        def setup():
            shutil.copytree(made["export"], out)
            damage(out)

        setups[out / "model.onnx"] = setup
        return out / "model.onnx"

    model = exported("onnx-cut", lambda o: _truncate(o / "model.onnx", 0.3))
    cases["model: truncated .onnx"] = Case(["predict", "--model", model, pics], 2,
                                           ("model.onnx", "damaged"), pics)
    model = exported("nolabels", lambda o: (o / "labels.json").unlink())
    cases["model: labels.json missing"] = Case(["predict", "--model", model, pics], 2,
                                               ("labels.json",), pics)
    model = exported("norule", lambda o: _edit_json(
        o / "preprocessing.json", lambda s: s.pop("pixel_rule")))
    cases["model: preprocessing.json without the pixel rule"] = Case(
        ["predict", "--model", model, pics], 2, ("older tlstudio",), pics)
    model = exported("labels3", lambda o: (o / "labels.json").write_text('["a","b","c"]'))
    cases["model: labels do not fit the outputs"] = Case(
        ["predict", "--model", model, pics], 2, ("3", "classes"), pics)
    model = exported("badspec", lambda o: _edit_json(
        o / "preprocessing.json", lambda s: s.update(crop_pct="wide")))
    cases["model: damaged preprocessing.json"] = Case(
        ["predict", "--model", model, pics], 2, ("preprocessing.json", "damaged"), pics)
    cases["model: a file that does not exist"] = Case(
        ["predict", "--model", tmp / "none.onnx", pics], 2, ("does not exist",), pics)
    evil = tmp / "evil"
    evil.mkdir()
    torch.save({"x": 1}, evil / "model.pt")
    cases["model: pickled checkpoint as .pt"] = Case(
        ["predict", "--model", evil / "model.pt", pics], 2, ("pickled checkpoint",), pics)
    for case in cases.values():
        case.setup = next((setups[a] for a in case.args if a in setups), None)
    return cases


GROUPS = {"images": images_cases, "dataset": dataset_cases, "csv": csv_cases,
          "arguments": argument_cases, "runs": run_cases}


def _all_names() -> list[tuple[str, str]]:
    """(group, case name) for parametrisation, from the builders in a scratch folder."""
    import tempfile

    names = []
    with tempfile.TemporaryDirectory() as scratch:
        for group, build in GROUPS.items():
            folder = Path(scratch) / group
            folder.mkdir()
            names += [(group, name) for name in build(None, folder)]
    return names


CASES = _all_names()


def run_cli(args: list) -> int:
    try:
        return main([str(a) for a in args])
    except SystemExit as exc:  # argparse's own refusals
        return exc.code


def test_the_suite_is_large_enough():
    assert len(CASES) >= 60, len(CASES)


@pytest.mark.parametrize("group,name", CASES, ids=[f"{g}: {n}" for g, n in CASES])
def test_bad_input(made, tmp_path, capsys, group, name):
    case = GROUPS[group](made, tmp_path)[name]
    if case.setup is not None:
        case.setup()
    before = snapshot(case.data)
    code = run_cli(case.args)
    out, err = capsys.readouterr()
    text = out + err
    assert code == case.code, f"exit {code}, expected {case.code}:\n{text}"
    for words in case.says:
        assert words.lower() in text.lower(), f"{words!r} not in:\n{text}"
    assert "Traceback" not in text and "pwned" not in out
    for words in case.never:
        assert words not in text
    assert snapshot(case.data) == before, "the data folder changed"
    if case.code == 2 and case.args[0] == "train" and "--out" in case.args:
        out_dir = Path(case.args[case.args.index("--out") + 1])
        assert not out_dir.is_dir() or not any(out_dir.iterdir()), "a half-made run was left"
