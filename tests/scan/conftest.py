"""Fixtures of the scan tests: the repository's checkov environment, built once per machine."""

from __future__ import annotations

from pathlib import Path

import pytest

from gitops.scan import checkov

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def checkov_env() -> Path:
    """The repository's checkov environment, created from the lock if missing (once per machine)."""
    checkov.ensure_checkov(ROOT, install=True, progress=print)
    return checkov.env_dir(ROOT)
