"""Shared builders for the local CodePipeline runner's tests: the fixture template, a checkout, a gate, a run."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from gitops.local.codepipeline import ExecutionRecord, PipelineModel, SourceOutput, read_pipeline, run_pipeline

FIXTURE = Path(__file__).parents[2] / "fixtures" / "runner" / "mlops-dev.template.json"
PSEUDO = {"AWS::AccountId": "111111111111", "AWS::Region": "eu-west-1"}
CLEAN_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/nonexistent", "LANG": "C.UTF-8"}
PIPELINE_ID = "ReleasePipeline48597FD7"


class Gate:
    """An approval gate that records what it was asked and answers as told."""

    def __init__(self, decision: str = "Approved", summary: str = "looks good") -> None:
        self.decision, self.summary = decision, summary
        self.asked: list[tuple[str, str, str | None]] = []
        self.run_log: Path | None = None

    def __call__(self, stage: str, action: str, custom_data: str | None) -> tuple[str, str]:
        self.asked.append((stage, action, custom_data))
        if self.run_log is not None:
            self.run_log.write_text(self.run_log.read_text() + f"approval {stage}/{action}\n")
        return self.decision, self.summary


@dataclass(frozen=True)
class PipelineFixture:
    """tests/fixtures/runner/mlops-dev.template.json (Source, Deploy, Verify, Approve, Promote) and ways to run it."""

    tmp_path: Path
    checkout: Path
    path: Path = FIXTURE
    clean_env = CLEAN_ENV
    Gate = Gate

    def template(self) -> dict:
        return json.loads(FIXTURE.read_text())

    def model(self, data: dict | None = None, **options) -> PipelineModel:
        return read_pipeline(data or self.template(), FIXTURE, pseudo_parameters=PSEUDO, **options)

    @staticmethod
    def stages(data: dict) -> list:
        return data["Resources"][PIPELINE_ID]["Properties"]["Stages"]

    @staticmethod
    def set_buildspec(data: dict, project: str, text: str) -> dict:
        data = copy.deepcopy(data)
        data["Resources"][project]["Properties"]["Source"]["BuildSpec"] = text
        return data

    def execute(self, gate: Gate, data: dict | None = None, model: PipelineModel | None = None, **kwargs):
        """Run the pipeline on the checkout; (record, lines the buildspecs wrote to $RUN_LOG, updates, log)."""
        run_log = self.tmp_path / "run.log"
        run_log.write_text("")
        gate.run_log = run_log
        updates: list[ExecutionRecord] = []
        lines: list[str] = []
        record = run_pipeline(
            model or self.model(data),
            source_dir_provider=lambda: SourceOutput(self.checkout, {"CommitId": "c0ffee"}),
            approval_gate=gate,
            env={"RUN_LOG": str(run_log)},
            workdir=self.tmp_path / "work",
            log=lines.append,
            execution_id="exec-1",
            on_update=updates.append,
            base_env=CLEAN_ENV,
            **kwargs,
        )
        return record, run_log.read_text().splitlines(), updates, lines


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """The env repository's head as the caller would check it out (with a .git directory)."""
    src = tmp_path / "checkout"
    (src / ".git").mkdir(parents=True)
    (src / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (src / "marker.txt").write_text("original\n")
    return src


@pytest.fixture
def pipeline(tmp_path: Path, checkout: Path) -> PipelineFixture:
    return PipelineFixture(tmp_path, checkout)
