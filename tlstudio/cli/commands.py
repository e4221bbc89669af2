"""``tlstudio scan|predict|export|backbones|layers|bench``."""

from __future__ import annotations

import json
import sys

from ..core.words import count
from ..errors import UserError
from .common import EXIT_BAD_INPUT, EXIT_FAILED, add_split_options, path_list, resolve_data


def _add_scan(sub) -> None:
    p = sub.add_parser("scan", help="check a dataset as the Data step does: classes, images, "
                                    "every file or row not used and why, the split")
    p.add_argument("data", nargs="?", help="folder of class sub-folders, CSV, or 'sample'")
    p.add_argument("--data", dest="data_option", metavar="DATA", help="the same, as an option")
    p.add_argument("--window", default="file",
                   help="DICOM / 16-bit window used to check every image decodes (see train)")
    p.add_argument("--frames", default="middle", choices=["middle", "all"],
                   help="multi-frame DICOM: the middle frame, or every frame (see train)")
    add_split_options(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_scan)


def cmd_scan(args) -> int:
    from ..core.data.dataset import scan
    from ..core.data.preprocess import Preprocessing
    from ..core.data.split import make_split
    from ..core.engine.config import TrainConfig

    data = args.data_option or args.data
    if not data:
        raise UserError("scan needs a dataset: tlstudio scan DATA (a folder, CSV or 'sample')")
    TrainConfig(val_fraction=args.val_fraction, test_fraction=args.test_fraction,
                seed=args.seed, window=args.window, frames=args.frames).resolved()
    prep = Preprocessing((224, 224), (0.5,) * 3, (0.5,) * 3, window=args.window,
                         frames=args.frames)
    index = scan(resolve_data(data), prep=prep)
    split = make_split(index, args.val_fraction, args.test_fraction, args.seed)
    sizes = {name: len(part) for name, part in split.as_dict().items()}
    groups = index.groups_per_class()
    if args.json:
        print(json.dumps({
            "root": str(index.root), "source": index.source, "classes": index.classes,
            "counts": index.counts(), "formats": index.formats(), "split": sizes,
            "groups": len({i.group for i in index.items if i.group is not None}),
            "groups_per_class": groups if index.has_groups else {},
            "problems": [{"kind": p.kind, "message": p.message, "used": not p.skipped,
                          "path": None if p.path is None else str(p.path)}
                         for p in index.problems]}, indent=2))
        return 0
    print(f"{index.root} ({index.source})")
    print(index.summary())
    print("formats: " + ", ".join(f"{n} {kind}" for kind, n in index.formats().items()))
    if index.has_groups:
        print("patients/groups per class: " + ", ".join(f"{c}: {n}" for c, n in groups.items())
              + " — grouping is active: no group is split between parts")
    print("split: " + ", ".join(f"{n} {name}" for name, n in sizes.items() if n)
          + f" (seed {args.seed})")
    if index.problems:
        print(f"problems ({len(index.problems)}):")
        for problem in index.problems:
            print(f"  [{problem.kind}] {problem}")
    return 0


def _add_predict(sub) -> None:
    p = sub.add_parser("predict", help="label images with a trained run or an exported model")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", help="run folder written by `tlstudio train`")
    source.add_argument("--model", help="exported model.onnx or model.pt (sidecars beside it)")
    p.add_argument("paths", nargs="+", help="images or folders")
    p.add_argument("--json", action="store_true", help="print a JSON list")
    p.add_argument("--csv", metavar="FILE",
                   help="also write the predictions to FILE: path, frame, patient group, the "
                        "call, one probability column per class, the unfamiliar warning, "
                        "errors")
    p.add_argument("--device", default="auto")
    p.add_argument("--explain", metavar="OUT_DIR",
                   help="with --run: write a Grad-CAM heatmap per image into OUT_DIR "
                        "(<stem>.heatmap.npy, float32 in [0, 1] at the image's size, and "
                        "<stem>.overlay.png)")
    p.add_argument("--explain-class", metavar="CLASS",
                   help="explain this class instead of the one each image is called")
    p.set_defaults(func=cmd_predict)


def cmd_predict(args) -> int:
    from pathlib import Path

    from ..core.runs import prediction_table as table
    from ..core.runs.predict import Predictor, expand_paths, explanation_files

    if args.csv is not None:  # refused before any model is loaded
        table.check_target(args.csv)
    if args.explain or args.explain_class:
        if args.model:
            raise UserError("--explain needs --run: an exported model carries no gradients "
                            "to explain with")
        if not args.explain:
            raise UserError("--explain-class needs --explain OUT_DIR")
        if Path(args.explain).exists() and not Path(args.explain).is_dir():
            raise UserError(f"--explain: '{args.explain}' is a file; name a folder")
    if args.model:
        from ..export_runtime import ExportedModel

        rows = ExportedModel.load(args.model).predict(expand_paths(args.paths))
    else:
        predictor = Predictor.from_run(args.run, args.device)
        if args.explain_class and args.explain_class not in predictor.classes:
            raise UserError(f"--explain-class: the run has no class '{args.explain_class}'; "
                            f"its classes are {', '.join(predictor.classes)}")
        predictions = predictor.predict(args.paths)
        rows = [r.as_dict() for r in predictions]
        if args.explain and predictions and not all(r.error for r in predictions):
            written = explanation_files(
                args.explain, predictions, predictor.explain(predictions, args.explain_class))
            print(f"{count(len(written) // 2, 'heatmap')} written to {args.explain}",
                  file=sys.stderr)
    if not rows:
        print("no images found in the given paths", file=sys.stderr)
        return EXIT_BAD_INPUT
    grouped = table.add_groups(rows)  # DICOM: the patient's pseudonym, never the ID
    if args.csv is not None:
        try:
            written = table.write_csv(rows, args.csv)
        except OSError as exc:  # the disk filled up, the file system went read-only
            raise UserError(f"--csv: cannot write {args.csv}: {exc.strerror or exc}") from exc
        print(f"predictions written to {written}", file=sys.stderr)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for r in rows:
            if r.get("error"):
                print(f"{r['path']}\tERROR: {r['error']}")
            else:
                top = sorted(r["probabilities"].items(), key=lambda kv: -kv[1])[:3]
                text = ", ".join(f"{c} {p:.3f}" for c, p in top)
                print(f"{r['path']}\t{r['label']}\t({text})")
        if grouped:
            print("by patient (pseudonyms keyed by this installation's secret: no ID is shown):")
            for entry in table.by_group(rows):
                print("  " + table.group_line(entry))
    return EXIT_BAD_INPUT if all(r.get("error") for r in rows) else 0


def _add_export(sub) -> None:
    p = sub.add_parser("export", help="export a run to ONNX or TorchScript, with a parity check")
    p.add_argument("--run", required=True)
    p.add_argument("--format", choices=["onnx", "torchscript"], default="onnx")
    p.add_argument("--out", required=True, help="new folder for the model and its sidecars")
    p.set_defaults(func=cmd_export)


def cmd_export(args) -> int:
    from ..core.runs.export import ExportRefused, export_run

    try:
        result = export_run(args.run, args.format, args.out,
                            progress=lambda text: print(text, file=sys.stderr))
    except ExportRefused as exc:  # bad input (ExportError) exits 2 in main
        print(f"tlstudio: export refused: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"exported {result.model_file}")
    print(f"parity on {result.images} validation and test images: {result.agreement:.2%} "
          f"agreement, max |dp| {result.max_abs_diff:.2e}")
    return 0


def _add_backbones(sub) -> None:
    p = sub.add_parser("backbones", help="list the pretrained backbones and offline availability")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_backbones)


def cmd_backbones(args) -> int:
    from ..core.models.backbones import REGISTRY

    rows = [spec.as_dict() for spec in REGISTRY.values()]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'name':<20}{'params':>8}  {'input':<9}{'offline':<14}{'license':<14}"
          "pretrained on")
    for r in rows:
        size = "x".join(map(str, r["input_size"]))
        offline = {"available offline": "yes", "needs download": "download"}.get(
            r["availability"], r["availability"])
        print(f"{r['name']:<20}{r['parameters'] / 1e6:>7.1f}M  {size:<9}{offline:<14}"
              f"{r['license']:<14}{r['pretrained_on']}")
    for r in rows:
        if r["availability"] == "not installed":
            print(f"{r['name']}: {r['what_to_do']}")
    return 0


def _add_layers(sub) -> None:
    p = sub.add_parser("layers", help="print a backbone's layer tree: module paths, parameters "
                                      "and which train under a freeze choice")
    p.add_argument("--backbone", default=None)
    p.add_argument("--freeze", default=None, help="head | last-N | full (default last-1, or "
                                                  "with --data the recommended stages)")
    paths = p.add_mutually_exclusive_group()
    paths.add_argument("--frozen", metavar="PATHS", help="comma-separated paths to freeze")
    paths.add_argument("--trainable", metavar="PATHS", help="comma-separated paths that train")
    p.add_argument("--depth", type=int, default=2, help="levels shown (default 2)")
    p.add_argument("--data", help="also measure how far these images are from the backbone's "
                                  "pretraining, stage by stage, and show the recommended "
                                  "stages to adapt (folder, CSV or 'sample')")
    p.add_argument("--window", default="file", help="with --data: DICOM / 16-bit window")
    p.add_argument("--frames", default="middle", choices=["middle", "all"])
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_layers)


def cmd_layers(args) -> int:
    from ..core.models.backbones import DEFAULT_BACKBONE, build_model, get_spec
    from ..core.models.layers import (
        FreezePlan,
        adapt_plan,
        known_paths,
        layer_in_words,
        layer_tree,
        preset_plan,
    )

    name = args.backbone or DEFAULT_BACKBONE
    model = build_model(name, 2, pretrained=False)
    chosen = path_list(args.frozen) or path_list(args.trainable) or []
    unknown = [p for p in chosen if p not in known_paths(model)]
    if unknown:
        raise UserError(f"{name} has no module {', '.join(map(repr, unknown))}")
    shifts, wanted, adapt = {}, None, None
    if args.data:  # the rule the Recommended mode and the Layers step use, on this device
        from ..core.engine.device import pick_device
        from ..core.evaluation.domain_shift import stages_to_adapt
        from ..core.models.layers import stages

        measured = _measured_shifts(args, get_spec(name).name)
        shifts = {s["stage"]: s["shift"] for s in measured}
        wanted, adapt = stages_to_adapt(measured, stages(model),
                                        pick_device(args.device).device.type)
    if args.frozen:
        plan = FreezePlan(model, chosen)
    elif args.trainable:
        plan = FreezePlan(model, [""])
        for path in chosen:
            plan.unfreeze(path)
    elif adapt is not None and args.freeze is None:
        plan = adapt_plan(model, adapt)
    else:
        plan = preset_plan(model, args.freeze or "last-1")

    def show(node, depth: int) -> None:
        if node.path:
            shift = f"{shifts[node.path]:>7.2f}" if node.path in shifts else " " * 7
            print(f"{'  ' * (depth - 1)}{node.path:<{40 - 2 * (depth - 1)}} "
                  f"{layer_in_words(node.type_name)[0]:<28}{node.parameters:>12,}  "
                  f"{plan.state(node.path):<9}{shift if shifts else ''}  {node.type_name}")
        if depth < args.depth:
            for child in node.children:
                show(child, depth + 1)

    print(f"{'module path':<40} {'kind':<28}{'parameters':>12}  {'state':<9}"
          + ("  shift" if shifts else "") + "  class")
    show(layer_tree(model), 0)
    if adapt is not None:
        print("shift: how far your images move each stage from its pretraining statistics "
              "(0 = as on ImageNet)")
        print("recommended to adapt: " + ", ".join(adapt)
              + ("" if args.freeze is None and not chosen else "  (not what is shown above)"))
        if adapt != wanted:
            print("your images also shift " + ", ".join(s for s in wanted if s not in adapt)
                  + "; adapting such early stages is left to a GPU (on this CPU it would run "
                  "the whole network every batch)")
    print(plan.summary())
    print("frozen paths: " + ",".join(plan.frozen_paths(model)))
    return 0


def _measured_shifts(args, name: str) -> list[dict]:
    """Per-stage shift of ``name`` on the images of ``--data``."""
    from ..core.data.dataset import scan
    from ..core.engine.config import TrainConfig
    from ..core.engine.device import pick_device
    from ..core.models.backbones import get_spec
    from ..core.studies.advisor import stage_shifts

    pick_device(args.device)
    TrainConfig(window=args.window, frames=args.frames).resolved()  # checked before the scan
    prep = get_spec(name).preprocessing().with_window(args.window, args.frames)
    index = scan(resolve_data(args.data), prep=prep)
    shifts = stage_shifts(index, name, args.device, window=args.window, frames=args.frames)
    if not shifts:
        raise UserError(f"{name} has no BatchNorm statistics to compare with (a ViT or "
                        "ConvNeXt): its stage shift cannot be measured")
    return shifts


def _add_bench(sub) -> None:
    p = sub.add_parser("bench", help="time the engine against a plain hand-written PyTorch loop")
    p.add_argument("--data", required=True, help="folder, CSV, or 'sample'")
    p.add_argument("--backbone", default=None)
    p.add_argument("--mode", choices=["linear-probe", "fine-tune", "partial"],
                   default="linear-probe",
                   help="partial: only the last stage (and head) trains")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float)
    p.add_argument("--repeats", type=int, default=1, help="alternating engine/reference pairs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true", help="end stdout with one JSON object")
    p.set_defaults(func=cmd_bench)


def cmd_bench(args) -> int:
    from ..core.data.dataset import scan
    from ..core.engine.device import pick_device
    from ..core.models.backbones import DEFAULT_BACKBONE
    from ..core.studies.bench import format_report, run_bench

    if args.repeats < 1 or args.epochs < 1 or args.batch_size < 1:
        raise UserError("--repeats, --epochs and --batch-size must be at least 1")
    pick_device(args.device)  # a device that is not here fails before the scan
    index = scan(resolve_data(args.data))
    result = run_bench(index, args.backbone or DEFAULT_BACKBONE, args.mode, args.epochs,
                       args.batch_size, args.lr, args.device, args.seed, args.repeats,
                       log=lambda text: print(text, file=sys.stderr, flush=True))
    print(format_report(result))
    if args.json:
        print(json.dumps(result))
    return 0




def _add_advise(sub) -> None:
    p = sub.add_parser("advise", help="which backbone suits these images: LogME and a quick "
                                      "cross-validated probe per backbone, in seconds")
    p.add_argument("data", nargs="?", help="folder of class sub-folders, CSV, or 'sample'")
    p.add_argument("--data", dest="data_option", metavar="DATA", help="the same, as an option")
    p.add_argument("--backbones", metavar="A,B", help="only these (default: every backbone "
                                                       "whose weights are on this machine)")
    p.add_argument("--window", default="file",
                   help="DICOM / 16-bit window, as the run will use it (see train)")
    p.add_argument("--frames", default="middle", choices=["middle", "all"],
                   help="multi-frame DICOM: the middle frame, or every frame (see train)")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_advise)


def cmd_advise(args) -> int:
    from ..core.data.dataset import scan
    from ..core.data.preprocess import Preprocessing
    from ..core.engine.config import TrainConfig
    from ..core.engine.device import pick_device
    from ..core.models.backbones import get_spec
    from ..core.studies.advisor import advise

    data = args.data_option or args.data
    if not data:
        raise UserError("advise needs a dataset: tlstudio advise DATA (a folder, CSV or "
                        "'sample')")
    names = path_list(args.backbones)
    for name in names or []:
        get_spec(name)  # an unknown name fails before any slow work
    pick_device(args.device)
    TrainConfig(window=args.window, frames=args.frames).resolved()  # checked before the scan
    index = scan(resolve_data(data), prep=Preprocessing(
        (224, 224), (0.5,) * 3, (0.5,) * 3, window=args.window, frames=args.frames))
    result = advise(index, names, args.device, args.seed,
                    emit=lambda e: None if args.json else _advise_progress(e),
                    window=args.window, frames=args.frames)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{'backbone':<22}{'probe accuracy':>16}{'LogME':>9}{'seconds':>9}")
    for row in result["ranking"]:
        print(f"{row['backbone']:<22}{row['probe_accuracy'] * 100:>9.1f} % ± "
              f"{row['probe_accuracy_std'] * 100:3.1f}{row['score']:>9.3f}{row['seconds']:>9.1f}")
    for row in result["skipped"]:
        print(f"{row['backbone']:<22}  not measured: {row['skipped']}")
    print(f"\nrecommended: {result['recommended']} — {result['sentence']}")
    if result["stages"]:
        print("distance of each stage from its pretraining (BatchNorm statistics): "
              + ", ".join(f"{st['stage']} {st['shift']:.2f}" for st in result["stages"]))
        print("stages to adapt: " + ", ".join(result["unfreeze"]))
    return 0


def _advise_progress(event) -> None:
    from ..core.engine.events import StageProgress

    if isinstance(event, StageProgress) and event.done == event.total:
        print(f"{event.stage}: {event.done}/{event.total}", file=sys.stderr)
