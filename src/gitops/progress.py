"""How a long-running step reports progress: a callback that takes one line of text."""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[str], None]


def silent(_line: str) -> None:
    """The progress callback that shows nothing (library calls, --json)."""
