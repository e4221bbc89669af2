"""``tlstudio suggest`` (which images to label next) and ``tlstudio review`` (labels that look
wrong, near-duplicates): the Label step's proposals and review queue, headless."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..core.words import count
from ..errors import UserError
from .common import resolve_data


def _add_common(p) -> None:
    p.add_argument("--backbone", default=None,
                   help="whose frozen features the probe uses (default: the default backbone)")
    p.add_argument("--window", default="file",
                   help="DICOM / 16-bit window, as training will use it (see train)")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print one JSON list")


def _add_suggest(sub) -> None:
    p = sub.add_parser("suggest", help="the next images to label, most informative first, "
                                       "with the model's guess")
    p.add_argument("--labels", required=True, metavar="CSV",
                   help="the labels so far (path,label[,group]); an empty or missing file "
                        "means none yet")
    p.add_argument("--images", required=True, metavar="DIR",
                   help="the folder of images being labeled")
    p.add_argument("--n", type=int, default=10, help="how many to propose (default 10)")
    _add_common(p)
    p.set_defaults(func=cmd_suggest)


def _add_review(sub) -> None:
    p = sub.add_parser("review", help="suspected label errors and near-duplicates of a "
                                      "labeled dataset, most suspicious first")
    p.add_argument("data", nargs="?", help="folder of class sub-folders, CSV, or 'sample'")
    p.add_argument("--data", dest="data_option", metavar="DATA", help="the same, as an option")
    p.add_argument("--keep", action="append", default=[], metavar="IMAGE",
                   help="decide: this image's label is right (not listed again)")
    p.add_argument("--exclude", action="append", default=[], metavar="IMAGE",
                   help="decide: leave this image out of training")
    p.add_argument("--relabel", action="append", default=[], metavar="IMAGE=LABEL",
                   help="decide: this image belongs to LABEL")
    _add_common(p)
    p.set_defaults(func=cmd_review)


def _checked(args) -> str:
    from ..core.engine.config import TrainConfig
    from ..core.engine.device import pick_device
    from ..core.models.backbones import DEFAULT_BACKBONE, get_spec

    backbone = get_spec(args.backbone or DEFAULT_BACKBONE).name  # unknown: said at once
    pick_device(args.device)
    TrainConfig(window=args.window).resolved()
    return backbone


def _progress(event) -> None:
    from ..core.engine.events import StageProgress

    if isinstance(event, StageProgress) and event.done == event.total:
        print(f"{event.stage}: {event.done}/{event.total}", file=sys.stderr)


def cmd_suggest(args) -> int:
    from ..core.data.folders import list_images
    from ..core.data.labels import image_id, read_labels
    from ..core.studies.active_learning import MIN_PER_CLASS, FolderFeatures

    if args.n < 1:
        raise UserError(f"--n must be 1 or more, not {args.n}")
    backbone = _checked(args)
    images = Path(args.images).expanduser()
    files, skipped = list_images(images)
    if not files:
        raise UserError(f"'{images}' holds no images")
    labels, _ = read_labels(args.labels)
    inside = {image_id(f) for f in files}
    outside = [k for k in labels if k not in inside]
    labels = {k: v for k, v in labels.items() if k in inside}
    classes = sorted(set(labels.values()))
    for problem in skipped:
        print(f"not used: {problem}", file=sys.stderr)
    if outside:
        print(f"{count(len(outside), 'labeled file')} not in {images}, so not used, e.g. "
              f"{outside[0]}", file=sys.stderr)
    found = FolderFeatures.compute(files, backbone, args.device, args.window,
                                   emit=(lambda e: None) if args.json else _progress)
    for path in found.unreadable:
        print(f"not used: {path}: cannot be read as an image", file=sys.stderr)
    rows = found.suggestions(labels, classes, args.n, args.seed)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    model = found.model(labels, classes, args.seed)
    if not model.ready:
        print(f"fewer than {MIN_PER_CLASS} labels in two classes: these images cover the "
              "folder's variety; the model guesses once each of two classes has "
              f"{MIN_PER_CLASS} labels")
    for row in rows:
        guess = f"  guess: {row['suggested_label']}" if row["suggested_label"] else ""
        print(f"{row['score']:.3f}  {row['path']}{guess}")
    curve = model.learning_curve()
    if curve:
        print("accuracy against labels (cross-validated): " + ", ".join(
            f"{n}: {acc * 100:.0f} %" for n, acc, _ in curve))
    return 0


def cmd_review(args) -> int:
    from ..core.data.dataset import scan
    from ..core.studies.label_review import review_dataset

    data = args.data_option or args.data
    if not data:
        raise UserError("review needs a dataset: tlstudio review DATA (a folder, CSV or "
                        "'sample')")
    backbone = _checked(args)
    index = scan(resolve_data(data))
    if args.keep or args.exclude or args.relabel:
        return _decide(index, args)
    found = review_dataset(index, backbone, args.device, args.window, args.seed,
                           emit=(lambda e: None) if args.json else _progress)
    if args.json:
        print(json.dumps([s.as_dict() for s in found], indent=2))
        return 0
    labels = [s for s in found if s.kind == "label"]
    twins = [s for s in found if s.kind == "duplicate"]
    print(f"{count(len(labels), 'suspected label error')}, "
          f"{count(len(twins), 'near-duplicate pair')} "
          f"among {len(index.items)} images, most suspicious first:")
    for s in found:
        what = (f"labeled '{s.label}', looks like '{s.suggested_label}'" if s.kind == "label"
                else f"duplicate: {s.note}")
        print(f"{s.score:.3f}  {s.path}  {what}")
    return 0


def _decide(index, args) -> int:
    """The review queue's decisions, remembered in tlstudio's folder like the studio's; the
    corrected labels are a CSV any step reads. The dataset itself is never changed."""
    from ..core.data.labels import LabelProject, image_id

    known = {image_id(item.path) for item in index.items}
    relabels = []
    for entry in args.relabel:
        image, sep, label = entry.rpartition("=")
        if not sep or not image or label not in index.classes:
            raise UserError(f"--relabel {entry}: expected IMAGE=LABEL with LABEL one of "
                            f"{', '.join(index.classes)}")
        relabels.append((image, label))
    for image in [*args.keep, *args.exclude, *(i for i, _ in relabels)]:
        if image_id(image) not in known:
            raise UserError(f"'{image}' is not an image of {index.root}")
    project = LabelProject.for_dataset(index)
    for image in args.keep:
        project.keep(image)
    for image in args.exclude:
        project.exclude(image)
    for image, label in relabels:
        project.set_label(image, label)
        project.keep(image)
    counts = ", ".join(f"{k} {v}" for k, v in project.counts().items())
    print(f"decisions remembered in {project.dir}; the corrected labels ({counts}; "
          f"{len(project.excluded)} excluded): {project.csv_path}")
    print(f"train on them: tlstudio train --data {project.csv_path} --out RUN")
    return 0
