"""Numbers in words the way people write them: "1 image", "3 images", never "1 image(s)"."""

from __future__ import annotations


def count(n: int, word: str, plural: str | None = None) -> str:
    """``1 image``, ``3 images``, ``2 patches`` with ``plural``; thousands separated."""
    return f"{n:,} {word if n == 1 else plural or word + 's'}"
