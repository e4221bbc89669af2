"""Command line: ``tlstudio`` opens the studio; ``tlstudio train|predict|export|...`` run headless.

Each command is a thin shell over one ``tlstudio.core`` call, the same call the GUI makes.
Exit codes: 0 success, 1 failure while working, 2 bad input (message on stderr), 130 stopped.
"""

from __future__ import annotations

import argparse
import logging
import sys

from ..errors import UserError
from .adapting import _add_adapt
from .commands import (
    _add_advise,
    _add_backbones,
    _add_bench,
    _add_export,
    _add_layers,
    _add_predict,
    _add_scan,
)
from .common import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_STOPPED
from .labeling import _add_review, _add_suggest
from .runs import _add_compare, _add_map, _add_report, _add_runs
from .training import ProgressPrinter, _add_train

__all__ = ["ProgressPrinter", "build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

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
    _add_scan(sub)
    _add_train(sub)
    _add_predict(sub)
    _add_backbones(sub)
    _add_layers(sub)
    _add_bench(sub)
    _add_export(sub)
    _add_runs(sub)
    _add_compare(sub)
    _add_report(sub)
    _add_advise(sub)
    _add_map(sub)
    _add_suggest(sub)
    _add_review(sub)
    _add_adapt(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from ..core.logs import setup_logging

    setup_logging()
    if args.smoke_test:
        from ..gui.smoke import run_smoke_test

        return run_smoke_test(lambda text: print(text, flush=True))
    if args.command is None:
        from ..gui.app import run_app

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
        from ..core.logs import report_bug

        print(f"tlstudio: {report_bug(logging.getLogger('tlstudio.cli'), exc, args.command)}",
              file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
