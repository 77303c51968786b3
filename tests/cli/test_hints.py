"""Hints name things a user can run: every repository file an error or hint names exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_NAMED = re.compile(r"\b((?:scripts|buildspecs|infra/config)/[A-Za-z0-9_.-]+[A-Za-z0-9])")


def test_every_file_the_engine_names_in_its_messages_exists():
    named: dict[str, str] = {}
    for module in sorted((ROOT / "src" / "gitops").rglob("*.py")):
        for path in _NAMED.findall(module.read_text(encoding="utf-8")):
            named.setdefault(path, str(module.relative_to(ROOT)))
    assert "scripts/setup-checkov" in named  # the pattern finds what it is meant to
    missing = {path: where for path, where in named.items() if not (ROOT / path).exists()}
    assert missing == {}, f"messages name files that do not exist: {missing}"
