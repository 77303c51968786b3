"""Where two JSON documents differ: the deepest changed paths, and values shown short (release diffs)."""

from __future__ import annotations

import json
from typing import Any

ABSENT: Any = object()  # a key one side does not have
VALUE_WIDTH = 80


def shown(value: Any) -> str | None:
    if value is ABSENT:
        return None
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, separators=(",", ":"))
    text = text.replace("\n", "\\n")
    return text if len(text) <= VALUE_WIDTH else text[: VALUE_WIDTH - 1] + "…"


def is_intrinsic(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and next(iter(value)).startswith(("Fn::", "Ref", "Get", "Std:"))


def path_text(segments: tuple) -> str:
    text = ""
    for seg in segments:
        text += f"[{seg}]" if isinstance(seg, int) else (f".{seg}" if text else str(seg))
    return text


def value_changes(before: Any, after: Any, segments: tuple = ()) -> list[tuple[tuple, Any, Any]]:
    """The deepest paths at which two JSON values differ (a list that changed length is one value)."""
    if before == after:
        return []
    if isinstance(before, dict) and isinstance(after, dict) and not (is_intrinsic(before) or is_intrinsic(after)):
        found = []
        for key in sorted(set(before) | set(after)):
            found += value_changes(before.get(key, ABSENT), after.get(key, ABSENT), (*segments, key))
        return found
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        found = []
        for i, (b, a) in enumerate(zip(before, after, strict=True)):
            found += value_changes(b, a, (*segments, i))
        return found
    return [(segments, before, after)]
