"""Import the project's own code (infra/, pipeline_defs/) from one checkout, never a stale copy.

Render may run several times in one process, on several checkouts (tests, a long-lived session):
modules cached in sys.modules from an earlier root or an earlier edit must not leak into this one.
"""

from __future__ import annotations

import sys
from pathlib import Path

PROJECT_PACKAGES = ("infra", "pipeline_defs")


def use_checkout(root: Path) -> None:
    """Put root first on sys.path and forget project modules imported before (from anywhere)."""
    for name in list(sys.modules):
        if name.split(".", 1)[0] in PROJECT_PACKAGES or name.startswith(("_gitops_pipeline_", "_gitops_infra_app")):
            del sys.modules[name]
    entry = str(root)
    if entry in sys.path:
        sys.path.remove(entry)
    sys.path.insert(0, entry)
