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
