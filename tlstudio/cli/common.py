"""What the commands share: exit codes and argument helpers."""

from __future__ import annotations

EXIT_FAILED, EXIT_BAD_INPUT, EXIT_STOPPED = 1, 2, 130


def resolve_data(value: str) -> str:
    if value == "sample":
        from ..core.data.samples import sample_dataset

        return str(sample_dataset())
    return value


def path_list(value: str | None) -> list[str] | None:
    """``a,b.c`` -> ``["a", "b.c"]``: module paths given on the command line."""
    if value is None:
        return None
    return [p.strip() for p in value.split(",") if p.strip()]


# TrainConfig's defaults (70/15/15), written out so that building the parser imports no
# torch; tests/test_cli.py checks they agree.
VAL_FRACTION, TEST_FRACTION = 0.15, 0.15


def add_split_options(parser) -> None:
    """The split as scan and train take it."""
    parser.add_argument("--val-fraction", type=float, default=VAL_FRACTION,
                        help="share of images (or patients) that choose the epoch, "
                             f"temperature and threshold (default {VAL_FRACTION})")
    parser.add_argument("--test-fraction", type=float, default=TEST_FRACTION,
                        help="share held out for the headline results; 0 reports on "
                             f"validation only (default {TEST_FRACTION})")
    parser.add_argument("--seed", type=int, default=0)
