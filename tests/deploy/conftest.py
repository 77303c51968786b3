"""The embedded target for tests/deploy: one moto server per test module, reset before each test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from test_deploy import embedded_server, reset_moto

from gitops.target import Target


@pytest.fixture(scope="module")
def moto_server(tmp_path_factory) -> Iterator[tuple[Path, str]]:
    yield from embedded_server(tmp_path_factory.mktemp("embedded"))


@pytest.fixture
def target(moto_server) -> Target:
    local_dir, endpoint = moto_server
    reset_moto(endpoint)
    return Target("local", local_dir, endpoint)
