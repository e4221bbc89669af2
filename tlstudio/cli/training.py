"""``tlstudio train``: new runs and ``--resume``, a progress bar, Ctrl-C/SIGTERM that save."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from ..errors import UserError
from .common import EXIT_STOPPED, add_split_options, path_list, resolve_data


class ProgressPrinter:
    """Training events as a one-line progress bar on a terminal, plain lines otherwise."""

    def __init__(self, stream=sys.stderr):
        from ..core.engine.forecast import Forecast

        self.stream = stream
        self.tty = stream.isatty()
        self._last = 0.0
        self._epoch_start = time.perf_counter()
        self.forecast = Forecast()

    def _left(self) -> str:
        from ..core.engine.forecast import describe

        text = describe(self.forecast.estimate())
        return f" · {text}" if text else ""

    def _line(self, text: str, final: bool = False) -> None:
        if self.tty:
            end = "\n" if final else ""
            self.stream.write("\r\033[K" + text + end)
        elif final:
            self.stream.write(text + "\n")
        self.stream.flush()

    def __call__(self, event) -> None:
        from ..core.engine import events as ev

        self.forecast.see(event)
        if isinstance(event, ev.StageProgress):
            if self.tty or event.done == event.total:
                if event.done == event.total or time.perf_counter() - self._last > 0.1:
                    self._last = time.perf_counter()
                    done = event.done == event.total
                    self._line(f"{event.stage}: {event.done}/{event.total}"
                               + ("" if done else self._left()), final=done)
        elif isinstance(event, ev.EpochStarted):
            self._epoch_start = time.perf_counter()
        elif isinstance(event, ev.BatchDone):
            if self.tty and time.perf_counter() - self._last > 0.1:
                self._last = time.perf_counter()
                width = 24
                filled = int(width * event.batch / event.batches)
                bar = "#" * filled + "-" * (width - filled)
                self._line(f"epoch {event.epoch} [{bar}] {event.batch}/{event.batches} "
                           f"loss {event.loss:.3f} {event.images_per_s:.0f} img/s"
                           + self._left())
        elif isinstance(event, ev.EpochDone):
            mark = " *" if event.improved else ""
            self._line(
                f"epoch {event.epoch}/{event.epochs}: train loss {event.train_loss:.4f}  "
                f"val loss {event.val_loss:.4f}  val acc {event.val_accuracy:.4f}  "
                f"({event.seconds:.1f} s){mark}", final=True)
        elif isinstance(event, ev.Notice):
            self._line(event.message, final=True)


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="fine-tune a pretrained backbone on a labeled folder or CSV",
                       description="Train into a new run folder, or continue one with --resume. "
                       "Ctrl-C (or SIGTERM) stops after the current batch and keeps the run "
                       "resumable.")
    p.add_argument("--resume", metavar="RUN_DIR",
                   help="continue a stopped, interrupted or killed run from its own settings "
                        "(no other flags needed; --device may change the device)")
    p.add_argument("--data",
                   help="folder with one sub-folder per class, a CSV path,label[,group], "
                        "or 'sample' for the built-in Br35H sample")
    p.add_argument("--backbone", default=None, help="backbone name (see `tlstudio backbones`)")
    p.add_argument("--mode", choices=["recommended", "linear-probe", "fine-tune"],
                   default="recommended",
                   help="recommended (default): a linear probe first (not for images far "
                        "from pretraining), then fine-tuning the "
                        "layers the stage-shift gauge picks, with smaller steps for earlier "
                        "layers and epochs scaled to the data and device; linear-probe: the "
                        "head alone on frozen features; fine-tune: the unfrozen layers")
    p.add_argument("--freeze", default=None,
                   help="head | last-N (N stages + head) | full: the layers that train "
                        "(fine-tune default last-1; recommended: chosen for your images)")
    paths = p.add_mutually_exclusive_group()
    paths.add_argument("--frozen", metavar="PATHS",
                       help="comma-separated module paths to freeze, everything else "
                            "trains (what the studio's layer tree sets; see `tlstudio layers`)")
    paths.add_argument("--trainable", metavar="PATHS",
                       help="comma-separated module paths that train; everything "
                            "else is frozen")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float)
    add_split_options(p)
    p.add_argument("--augmentation", default="light",
                   choices=["none", "light", "photo", "grayscale-medical"])
    p.add_argument("--schedule", default="cosine", choices=["cosine", "onecycle"])
    p.add_argument("--window", default="file",
                   help="DICOM and 16-bit images: file (the window stored in each file, else "
                        "auto), auto, a CT preset (brain, subdural, stroke, lung, mediastinum, "
                        "bone, abdomen), C,W, or three joined by + (one per colour channel); "
                        "predict and export follow the run")
    p.add_argument("--frames", default="middle", choices=["middle", "all"],
                   help="multi-frame DICOM: the middle frame (default), or every frame as an "
                        "image of its own (frames of one file stay in one part of the split)")
    p.add_argument("--threshold", default="youden", metavar="RULE",
                   help="two classes: how validation picks the probability that calls the "
                        "second class: youden (default), sensitivity=S or specificity=S (the "
                        "highest/lowest threshold reaching S on validation); predict and "
                        "export use it")
    p.add_argument("--folds", type=int, metavar="K",
                   help="small datasets: K-fold cross-validation (stratified, patients kept "
                        "together), each image tested once; reports mean and spread, then "
                        "trains the final model (see --final)")
    p.add_argument("--final", choices=["all", "split", "none"], default="all",
                   help="with --folds: the final model trains on every image but a "
                        "validation share (all, default), on the usual train/validation/test "
                        "split (split), or is not trained (none)")
    p.add_argument("--label-smoothing", type=float, default=0.1)
    p.add_argument("--class-weights", action="store_true", help="balance classes in the loss")
    p.add_argument("--patience", type=int, help="early stopping: epochs without improvement")
    p.add_argument("--weights", help="local weights file (.safetensors/.pth/.bin) to start from")
    p.add_argument("--random-init", action="store_true",
                   help="no pretrained weights (to see what pretraining is worth)")
    p.add_argument("--init-from", help="start from a previous run's weights (same classes)")
    scratch = p.add_mutually_exclusive_group()
    scratch.add_argument("--compare-scratch", dest="compare_scratch", action="store_true",
                         default=None,
                         help="also train the backbone from random weights with the same "
                              "budget and report what pretraining gained (default: on in "
                              "the recommended mode under 500 images on a CPU, 2,000 on a "
                              "GPU)")
    scratch.add_argument("--no-compare-scratch", dest="compare_scratch", action="store_false",
                         help="skip that comparison")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps")
    p.add_argument("--no-amp", action="store_true", help="full float32 on the GPU")
    p.add_argument("--out", help="new run folder")
    p.add_argument("--processes", type=int, metavar="N",
                   help="share the training among N processes on this machine, one per GPU "
                        "(starts torchrun; with --device cpu, N CPU processes). Under your "
                        "own torchrun launch, leave it out")
    p.add_argument("--settings", metavar="FILE",
                   help="every training setting from a JSON file (a run's config.json, or "
                        "its 'train' block); setting flags are then not given, --device may "
                        "change the device")
    p.add_argument("--events", action="store_true",
                   help="print each training event as a line of JSON on stdout instead of "
                        "the progress and results text (for programs following a training)")
    p.set_defaults(func=cmd_train)


_SETTING_FLAGS = ("data", "out", "backbone", "epochs", "lr", "weights", "init_from", "frozen",
                  "trainable")


def _setting_flags_given(args, *allowed) -> list[str]:
    """The setting flags the user gave (beyond ``allowed``), as typed."""
    return [f"--{name.replace('_', '-')}" for name in _SETTING_FLAGS
            if name not in allowed and getattr(args, name) is not None]


def cmd_train(args) -> int:
    from ..core.engine.distributed import launched, leave

    if launched() and args.folds is not None:
        raise UserError("--folds is not available under torchrun: run cross-validation as "
                        "one process (tlstudio train --folds K ...)")
    if args.processes is not None and (args.processes < 1 or launched()):
        raise UserError("--processes takes a whole number of at least 1, and is not given "
                        "under torchrun (which already started the processes)")
    if args.processes is not None and args.processes > 1 and args.folds is not None:
        raise UserError("--folds runs as one process; drop --processes")
    try:
        return _train(args)
    finally:
        leave()  # the processes of a torchrun launch part once the run is written


def _train(args) -> int:
    from ..core.runs.training import resume, train

    listeners = [EventPrinter()] if args.events else [ProgressPrinter()]
    if args.resume:
        given = _setting_flags_given(args)
        if given:
            raise UserError(f"--resume continues a run with its own settings; drop "
                            f"{', '.join(given)}")
        with StopOnSignal() as stopper:
            if (args.processes or 1) > 1:
                from ..core.runs.launch import train_in_processes

                result = train_in_processes(
                    args.processes, None, None, args.resume, listeners, stopper.control,
                    resume=True, device=None if args.device == "auto" else args.device)
            else:
                result = resume(args.resume, listeners, stopper.control,
                                device=None if args.device == "auto" else args.device)
        return _report_training(result, stopper, args.events)
    if not args.data or not args.out:
        raise UserError("train needs --data and --out (or --resume RUN_DIR)")
    if args.final != "all" and args.folds is None:
        raise UserError("--final goes with --folds K")
    config = _config_from(args)
    if args.folds is not None:
        from ..core.runs.cv import cross_validate

        with StopOnSignal() as stopper:
            result = cross_validate(config, resolve_data(args.data), args.out,
                                    args.folds, args.final, listeners, stopper.control)
        return _report_training(result, stopper, args.events)
    with StopOnSignal() as stopper:
        if (args.processes or 1) > 1:
            from ..core.runs.launch import train_in_processes

            result = train_in_processes(args.processes, config, resolve_data(args.data),
                                        args.out, listeners, stopper.control)
        else:
            result = train(config, resolve_data(args.data), args.out, listeners,
                           stopper.control)
    return _report_training(result, stopper, args.events)


class EventPrinter:
    """``--events``: each event as a line of JSON on stdout, at once."""

    def __call__(self, event) -> None:
        from ..core.engine.events import to_line

        print(to_line(event), flush=True)


def _config_from(args):
    from ..core.engine.config import TrainConfig

    if args.settings:
        return _settings_file(args)
    from ..core.models.backbones import DEFAULT_BACKBONE

    return TrainConfig(
        backbone=args.backbone or DEFAULT_BACKBONE, weights=args.weights,
        pretrained=not args.random_init, mode=args.mode, freeze=args.freeze,
        frozen_paths=path_list(args.frozen), trainable_paths=path_list(args.trainable),
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
        schedule=args.schedule, label_smoothing=args.label_smoothing,
        augmentation=args.augmentation, window=args.window, frames=args.frames,
        class_weights=args.class_weights,
        patience=args.patience, val_fraction=args.val_fraction,
        test_fraction=args.test_fraction, threshold=args.threshold, seed=args.seed,
        device=args.device,
        amp=not args.no_amp, init_from=args.init_from, compare_scratch=args.compare_scratch,
    )


def _settings_file(args):
    import json

    from ..core.engine.config import TrainConfig

    given = _setting_flags_given(args, "data", "out")
    if given:
        raise UserError(f"--settings holds every training setting; drop {', '.join(given)}")
    try:
        data = json.loads(Path(args.settings).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"--settings: cannot read '{args.settings}': {exc}") from None
    if isinstance(data, dict) and isinstance(data.get("train"), dict):
        data = data["train"]  # a run's whole config.json
    if not isinstance(data, dict):
        raise UserError(f"--settings: '{args.settings}' holds no settings object")
    try:
        config = TrainConfig.from_dict(data)
    except TypeError as exc:
        raise UserError(f"--settings: {exc}") from None
    if args.device != "auto":  # where it trains is this launch's choice
        config.device = args.device
    return config


class StopOnSignal:
    """Ctrl-C and SIGTERM ask the trainer to stop after the current batch (it then saves
    and writes what a stopped run writes); a second Ctrl-C interrupts at once."""

    def __init__(self) -> None:
        from ..core.engine.events import Control

        self.control = Control()
        self.signal_name: str | None = None
        self._previous: dict = {}

    def _handle(self, signum, _frame) -> None:
        import signal

        if self.signal_name is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signal_name = signal.Signals(signum).name
        print(f"\n{self.signal_name}: stopping after the current batch and saving "
              "(Ctrl-C again to quit at once)", file=sys.stderr, flush=True)
        self.control.stop()

    def __enter__(self) -> StopOnSignal:
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        import signal

        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _report_training(result, stopper: StopOnSignal, events: bool = False) -> int:
    if getattr(result, "secondary", False):  # torchrun: rank 0 reports the run; any other
        return 0  # code would make the launcher end rank 0 while it writes the results
    if events:  # the events said it all
        return EXIT_STOPPED if result.cancelled else 0
    resume_hint = f"continue with: tlstudio train --resume {result.run_dir}"
    if result.cancelled and not result.metrics:
        if result.run_dir.exists():
            print(f"stopped before the first epoch finished; {resume_hint}", file=sys.stderr)
        else:
            print("stopped before anything was saved", file=sys.stderr)
        return EXIT_STOPPED
    m = result.metrics
    print(f"run: {result.run_dir}")
    if "val_accuracy" not in m:  # cross-validation without a final model
        print("\n".join(cv_text(m["cv"])))
        return 0
    for line in results_text(m):
        print(line)
    if result.cancelled:
        print(f"stopped after epoch {m['epochs_run']}; the best checkpoint and these results "
              f"are saved; {resume_hint}", file=sys.stderr)
        return EXIT_STOPPED
    return 0




def results_text(m: dict) -> list[str]:
    """What a run measured, held-out test first (with its intervals); validation, which chose
    the epoch, temperature and threshold, after it and named as such."""
    from ..core.evaluation.uncertainty import format_ci

    lines = cv_text(m["cv"]) if m.get("cv") else []
    t = m.get("test")
    if t:
        lines.append(f"HELD-OUT TEST ({t['n']} images, never used to choose anything; 95 % CI "
                     f"by bootstrap over {t['intervals']['resampled']}):")
        lines.append(f"  accuracy           {format_ci(t['accuracy'], t['accuracy_ci'])}")
        lines.append(f"  balanced accuracy  "
                     f"{format_ci(t['balanced_accuracy'], t['balanced_accuracy_ci'])}")
        if t.get("roc_auc") is not None:
            lines.append(f"  ROC AUC            "
                         f"{format_ci(t['roc_auc'], t['roc_auc_ci'], percent=False)}")
        if t.get("threshold") is not None:
            lines.append(f"  at threshold {t['threshold']:.4f} for '{t['positive_class']}' "
                         f"({t['threshold_rule']}, chosen on validation):")
            lines.append(f"    sensitivity      {format_ci(t['sensitivity'], t['sensitivity_ci'])}")
            lines.append(f"    specificity      {format_ci(t['specificity'], t['specificity_ci'])}")
        lines.append(f"  calibration error  {t['ece']:.3f} (temperature {t['temperature']:.2f}; "
                     f"{t['ece_uncalibrated']:.3f} before)")
        for name, row in t["per_class"].items():
            lines.append(f"  {name:>18}: sensitivity {format_ci(row['sensitivity'], None)}  "
                         f"PPV {format_ci(row['ppv'], None)}  "
                         f"F1 {format_ci(row['f1'], None)}  n={row['support']}")
        for name, values in (t.get("subgroups") or {}).items():
            lines.append(f"  by {name}:")
            for value, row in values.items():
                lines.append(f"    {value:>16}: accuracy "
                             f"{format_ci(row['accuracy'], row['accuracy_ci'])}  n={row['n']}")
    else:
        lines.append("no test part was held out (--test-fraction 0): the numbers below come "
                     "from the validation images that also chose the epoch, so they are "
                     "optimistic")
    lines.append(f"validation (chose the epoch{', threshold' if t and t.get('threshold') else ''}"
                 f"): accuracy {m['val_accuracy']:.4f}  loss {m['val_loss']:.4f}  "
                 f"(best epoch {m['best_epoch']} of {m['epochs_run']}, {m['count']} images)")
    if m.get("transfer"):
        lines.append(f"PRETRAINING vs FROM SCRATCH ({m['transfer']['images']} "
                     f"{m['transfer']['part']} images): {m['transfer']['verdict']}")
    if m.get("ood"):
        from ..core.runs.familiarity import held_out_flagged

        share = held_out_flagged(m["ood"])
        lines.append(f"out-of-distribution warning fitted (threshold {m['ood']['threshold']:.2f}"
                     f"; flags {share:.1%} of the held-out images)")
    if not t:
        for name, row in m["per_class"].items():
            lines.append(f"  {name:>20}: precision {row['precision']:.3f}  "
                         f"recall {row['recall']:.3f}  f1 {row['f1']:.3f}  n={row['support']}")
    return lines


def cv_text(cv: dict) -> list[str]:
    lines = [f"CROSS-VALIDATION ({cv['k']} folds, every image tested once): accuracy "
             f"{cv['accuracy_mean'] * 100:.1f} % ± {cv['accuracy_std'] * 100:.1f} (mean ± SD)"]
    if "roc_auc_mean" in cv:
        lines.append(f"  ROC AUC {cv['roc_auc_mean']:.3f} ± {cv['roc_auc_std']:.3f}")
    for f in cv["folds"]:
        lines.append(f"  fold {f['fold']}: accuracy {f['accuracy'] * 100:.1f} % on {f['n']} "
                     "images")
    return lines
