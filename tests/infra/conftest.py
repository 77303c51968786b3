"""The synthesized app, shared by every test module of tests/infra (one synthesis per session)."""

from __future__ import annotations

import pytest
from infra_synth import Synth, synthesize


@pytest.fixture(scope="session")
def synth(tmp_path_factory) -> Synth:
    return synthesize(tmp_path_factory.mktemp("cdk.out"))
