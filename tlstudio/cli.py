"""Command line: ``tlstudio`` opens the studio; ``tlstudio train|predict|backbones`` run headless.

Each command is a thin shell over one ``tlstudio.core`` call, the same call the GUI makes.
Exit codes: 0 success, 1 failure while working, 2 bad input (message on stderr), 130 stopped.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from .errors import UserError

EXIT_FAILED, EXIT_BAD_INPUT, EXIT_STOPPED = 1, 2, 130


class ProgressPrinter:
    """Training events as a one-line progress bar on a terminal, plain lines otherwise."""

    def __init__(self, stream=sys.stderr):
        self.stream = stream
        self.tty = stream.isatty()
        self._last = 0.0
        self._epoch_start = time.perf_counter()

    def _line(self, text: str, final: bool = False) -> None:
        if self.tty:
            end = "\n" if final else ""
            self.stream.write("\r\033[K" + text + end)
        elif final:
            self.stream.write(text + "\n")
        self.stream.flush()

    def __call__(self, event) -> None:
        from .core import events as ev

        if isinstance(event, ev.StageProgress):
            if self.tty or event.done == event.total:
                if event.done == event.total or time.perf_counter() - self._last > 0.1:
                    self._last = time.perf_counter()
                    self._line(f"{event.stage}: {event.done}/{event.total}",
                               final=event.done == event.total)
        elif isinstance(event, ev.EpochStarted):
            self._epoch_start = time.perf_counter()
        elif isinstance(event, ev.BatchDone):
            if self.tty and time.perf_counter() - self._last > 0.1:
                self._last = time.perf_counter()
                width = 24
                filled = int(width * event.batch / event.batches)
                bar = "#" * filled + "-" * (width - filled)
                self._line(f"epoch {event.epoch} [{bar}] {event.batch}/{event.batches} "
                           f"loss {event.loss:.3f} {event.images_per_s:.0f} img/s")
        elif isinstance(event, ev.EpochDone):
            mark = " *" if event.improved else ""
            self._line(
                f"epoch {event.epoch}/{event.epochs}: train loss {event.train_loss:.4f}  "
                f"val loss {event.val_loss:.4f}  val acc {event.val_accuracy:.4f}  "
                f"({event.seconds:.1f} s){mark}", final=True)
        elif isinstance(event, ev.Notice):
            self._line(event.message, final=True)


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="fine-tune a pretrained backbone on a labeled folder or CSV")
    p.add_argument("--data", required=True,
                   help="folder with one sub-folder per class, a CSV path,label[,group], "
                        "or 'sample' for the built-in Br35H sample")
    p.add_argument("--backbone", default=None, help="backbone name (see `tlstudio backbones`)")
    p.add_argument("--mode", choices=["linear-probe", "fine-tune"], default="linear-probe")
    p.add_argument("--freeze", default="last-1",
                   help="fine-tune: head | last-N (N stages + head) | full  (default last-1)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float)
    p.add_argument("--val-fraction", type=float, default=0.2)
    p.add_argument("--test-fraction", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--augmentation", default="light",
                   choices=["none", "light", "photo", "grayscale-medical"])
    p.add_argument("--schedule", default="cosine", choices=["cosine", "onecycle"])
    p.add_argument("--label-smoothing", type=float, default=0.1)
    p.add_argument("--class-weights", action="store_true", help="balance classes in the loss")
    p.add_argument("--patience", type=int, help="early stopping: epochs without improvement")
    p.add_argument("--weights", help="local weights file (.safetensors/.pth/.bin) to start from")
    p.add_argument("--random-init", action="store_true",
                   help="no pretrained weights (to see what pretraining is worth)")
    p.add_argument("--init-from", help="start from a previous run's weights (same classes)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps")
    p.add_argument("--no-amp", action="store_true", help="full float32 on the GPU")
    p.add_argument("--out", required=True, help="new run folder")
    p.set_defaults(func=cmd_train)


def _resolve_data(value: str) -> str:
    if value == "sample":
        from .core.samples import sample_dataset

        return str(sample_dataset())
    return value


def cmd_train(args) -> int:
    from .core.backbones import DEFAULT_BACKBONE
    from .core.config import TrainConfig
    from .core.training import train

    config = TrainConfig(
        backbone=args.backbone or DEFAULT_BACKBONE, weights=args.weights,
        pretrained=not args.random_init, mode=args.mode, freeze=args.freeze,
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
        schedule=args.schedule, label_smoothing=args.label_smoothing,
        augmentation=args.augmentation, class_weights=args.class_weights,
        patience=args.patience, val_fraction=args.val_fraction,
        test_fraction=args.test_fraction, seed=args.seed, device=args.device,
        amp=not args.no_amp, init_from=args.init_from,
    )
    result = train(config, _resolve_data(args.data), args.out, [ProgressPrinter()])
    if result.cancelled and not result.metrics:
        print("stopped before the first epoch finished; nothing was saved", file=sys.stderr)
        return EXIT_STOPPED
    m = result.metrics
    print(f"run: {result.run_dir}")
    print(f"validation accuracy: {m['val_accuracy']:.4f}  loss: {m['val_loss']:.4f}  "
          f"(best epoch {m['best_epoch']} of {m['epochs_run']}, {m['count']} images)")
    for name, row in m["per_class"].items():
        print(f"  {name:>20}: precision {row['precision']:.3f}  recall {row['recall']:.3f}  "
              f"f1 {row['f1']:.3f}  n={row['support']}")
    if "test_accuracy" in m:
        print(f"test accuracy: {m['test_accuracy']:.4f}")
    return EXIT_STOPPED if result.cancelled else 0


def _add_predict(sub) -> None:
    p = sub.add_parser("predict", help="label images with a trained run or an exported model")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", help="run folder written by `tlstudio train`")
    source.add_argument("--model", help="exported model.onnx or model.pt (sidecars beside it)")
    p.add_argument("paths", nargs="+", help="images or folders")
    p.add_argument("--json", action="store_true", help="print a JSON list")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_predict)


def cmd_predict(args) -> int:
    from .core.predict import Predictor, expand_paths

    if args.model:
        from .export_runtime import ExportedModel

        rows = ExportedModel.load(args.model).predict(expand_paths(args.paths))
    else:
        rows = [r.as_dict() for r in Predictor.from_run(args.run, args.device).predict(
            args.paths)]
    if not rows:
        print("no images found in the given paths", file=sys.stderr)
        return EXIT_BAD_INPUT
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
    return EXIT_BAD_INPUT if all(r.get("error") for r in rows) else 0


def _add_export(sub) -> None:
    p = sub.add_parser("export", help="export a run to ONNX or TorchScript, with a parity check")
    p.add_argument("--run", required=True)
    p.add_argument("--format", choices=["onnx", "torchscript"], default="onnx")
    p.add_argument("--out", required=True, help="new folder for the model and its sidecars")
    p.set_defaults(func=cmd_export)


def cmd_export(args) -> int:
    from .core.export import ExportError, export_run

    try:
        result = export_run(args.run, args.format, args.out,
                            progress=lambda text: print(text, file=sys.stderr))
    except ExportError as exc:
        print(f"tlstudio: export refused: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"exported {result.model_file}")
    print(f"parity on {result.images} validation images: {result.agreement:.2%} agreement, "
          f"max |dp| {result.max_abs_diff:.2e}")
    return 0


def _add_backbones(sub) -> None:
    p = sub.add_parser("backbones", help="list the pretrained backbones and offline availability")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_backbones)


def cmd_backbones(args) -> int:
    from .core.backbones import REGISTRY

    rows = [spec.as_dict() for spec in REGISTRY.values()]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'name':<20}{'params':>8}  {'input':<9}{'offline':<9}{'license':<14}pretrained on")
    for r in rows:
        size = "x".join(map(str, r["input_size"]))
        offline = "yes" if r["available_offline"] else "download"
        print(f"{r['name']:<20}{r['parameters'] / 1e6:>7.1f}M  {size:<9}{offline:<9}"
              f"{r['license']:<14}{r['pretrained_on']}")
    return 0


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
    from .core.backbones import DEFAULT_BACKBONE
    from .core.bench import format_report, run_bench
    from .core.dataset import scan

    index = scan(_resolve_data(args.data))
    result = run_bench(index, args.backbone or DEFAULT_BACKBONE, args.mode, args.epochs,
                       args.batch_size, args.lr, args.device, args.seed, args.repeats,
                       log=lambda text: print(text, file=sys.stderr, flush=True))
    print(format_report(result))
    if args.json:
        print(json.dumps(result))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="tlstudio",
        description="Transfer-learning studio. Without a command, opens the desktop app.",
    )
    parser.add_argument("--version", action="version", version=f"tlstudio {__version__}")
    parser.add_argument("--sample", action="store_true",
                        help="open the studio on the built-in sample dataset")
    parser.add_argument("--smoke-test", action="store_true",
                        help="check this installation end to end (imports, bundled weights, "
                             "the sample, a short training in the worker thread, prediction, "
                             "the main window) and exit")
    sub = parser.add_subparsers(dest="command")
    _add_train(sub)
    _add_predict(sub)
    _add_backbones(sub)
    _add_bench(sub)
    _add_export(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.smoke_test:
        from .gui.smoke import run_smoke_test

        return run_smoke_test(lambda text: print(text, flush=True))
    if args.command is None:
        from .gui.app import run_app

        return run_app(sample=args.sample)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("\nstopped", file=sys.stderr)
        return EXIT_STOPPED
    except Exception as exc:
        if isinstance(exc, (UserError, ValueError, FileNotFoundError)):
            print(f"tlstudio: error: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
        print(f"tlstudio: failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
