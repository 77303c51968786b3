"""Fixtures of the promotion tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from promotion_env import make_env


@pytest.fixture
def env(tmp_path: Path):
    return make_env(tmp_path)
