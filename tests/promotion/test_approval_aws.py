"""The approval click and promotion evidence on AWS: CodePipeline calls moto does not implement.

moto has no GetPipelineState, PutApprovalResult, ListActionExecutions or CodeCommit GetFile, so
these tests drive the real code path through botocore's Stubber, which checks every request
against the service model (parameter names, types, required members) as AWS would.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from gitops.config import load_stages
from gitops.promotion.approval import decide, pending_approvals
from gitops.promotion.evidence import EvidenceError, PipelineEvidence, evidence_for, require_approved
from gitops.promotion.state import ApprovalMissing
from gitops.target import Target

ROOT = Path(__file__).resolve().parents[2]
DEV = load_stages(ROOT)["dev"]
RELEASE = "ab12" * 16
OTHER = "cd34" * 16
TOKEN = "1a2b3c4d-0000-4000-8000-000000000000"
EXECUTION = "0f0e0d0c-0000-4000-8000-000000000000"
COMMIT = "9" * 40


@dataclass(frozen=True)
class StubbedTarget(Target):
    """The AWS target with clients whose every call must match an expected, shape-checked request."""

    stubs: dict[str, Stubber] = field(default_factory=dict, compare=False, hash=False)
    # (stage, service, session) of every client asked for: the stage's own account, the session made for it.
    asked: list[tuple[str, str, Any]] = field(default_factory=list, compare=False, hash=False)

    def session(self, stage):
        return ("session of", stage.stage)

    def client(self, stage, service, session=None) -> Any:
        self.asked.append((stage.stage, service, session))
        return self.stubs[service].client


def _stubbed() -> StubbedTarget:
    session = boto3.Session(aws_access_key_id="x", aws_secret_access_key="y", region_name=DEV.region)
    stubs = {name: Stubber(session.client(name)) for name in ("codepipeline", "codecommit")}
    for stub in stubs.values():
        stub.activate()
    return StubbedTarget("aws", stubs=stubs)


def _expect_waiting(target: StubbedTarget, release_id: str = RELEASE) -> None:
    target.stubs["codepipeline"].add_response(
        "get_pipeline_state",
        {
            "pipelineName": DEV.release_pipeline_name,
            "stageStates": [
                {"stageName": "Verify", "latestExecution": {"pipelineExecutionId": EXECUTION, "status": "Succeeded"}},
                {
                    "stageName": "Approve",
                    "latestExecution": {"pipelineExecutionId": EXECUTION, "status": "InProgress"},
                    "actionStates": [
                        {
                            "actionName": "ApproveRelease",
                            "latestExecution": {
                                "status": "InProgress",
                                "token": TOKEN,
                                "lastStatusChange": datetime(2026, 11, 21, tzinfo=UTC),
                            },
                        }
                    ],
                },
            ],
        },
        {"name": DEV.release_pipeline_name},
    )
    _expect_execution_source(target, release_id)


def _expect_execution_source(target: StubbedTarget, release_id: str = RELEASE) -> None:
    """The execution's source commit, and the release manifest at that commit."""
    target.stubs["codepipeline"].add_response(
        "get_pipeline_execution",
        {
            "pipelineExecution": {
                "pipelineExecutionId": EXECUTION,
                "status": "InProgress",
                "artifactRevisions": [{"name": "Source", "revisionId": COMMIT}],
            }
        },
        {"pipelineName": DEV.release_pipeline_name, "pipelineExecutionId": EXECUTION},
    )
    target.stubs["codecommit"].add_response(
        "get_file",
        {
            "commitId": COMMIT,
            "blobId": "b" * 40,
            "filePath": "release/manifest.json",
            "fileMode": "NORMAL",
            "fileSize": 10,
            "fileContent": json.dumps({"release_id": release_id}).encode(),
        },
        {"repositoryName": DEV.env_repository_name, "commitSpecifier": COMMIT, "filePath": "release/manifest.json"},
    )


def test_pending_approval_names_the_release_of_the_waiting_execution():
    target = _stubbed()
    _expect_waiting(target)
    [pending] = pending_approvals(DEV, target)
    assert (pending.release_id, pending.execution_id, pending.token) == (RELEASE, EXECUTION, TOKEN)
    assert (pending.stage, pending.action_name, pending.requested_at) == (
        "dev",
        "ApproveRelease",
        "2026-11-21 00:00:00+00:00",
    )
    target.stubs["codepipeline"].assert_no_pending_responses()
    # Every read went to dev's own account, through the one session made for it.
    session = ("session of", "dev")
    assert target.asked == [
        ("dev", "codepipeline", session),
        ("dev", "codepipeline", session),
        ("dev", "codecommit", session),
    ]


def test_approve_sends_a_well_formed_put_approval_result_naming_the_release():
    target = _stubbed()
    _expect_waiting(target)
    target.stubs["codepipeline"].add_response(
        "put_approval_result",
        {"approvedAt": datetime(2026, 11, 21, tzinfo=UTC)},
        {
            "pipelineName": DEV.release_pipeline_name,
            "stageName": "Approve",
            "actionName": "ApproveRelease",
            "result": {"summary": f"release {RELEASE}: latency ok", "status": "Approved"},
            "token": TOKEN,
        },
    )
    chosen = decide(DEV, target, approved=True, release_prefix=RELEASE[:12], summary="latency ok")
    assert chosen.release_id == RELEASE
    target.stubs["codepipeline"].assert_no_pending_responses()
    assert target.asked[-1] == ("dev", "codepipeline", None)  # the write goes to dev's pipeline too


def _sent(target: StubbedTarget, service: str, operation: str) -> list[dict]:
    """The requests of one operation the code sends from now on (whatever the Stubber answers)."""
    sent: list[dict] = []
    client = target.stubs[service].client
    client.meta.events.register(
        f"before-parameter-build.{service}.{operation}", lambda params, **_: sent.append(params)
    )
    return sent


def test_approving_another_release_than_the_waiting_one_is_refused_before_any_write():
    target = _stubbed()
    _expect_waiting(target)
    # AWS would accept the write (the token is the waiting execution's): only the code's own check stops it.
    target.stubs["codepipeline"].add_response("put_approval_result", {"approvedAt": datetime(2026, 11, 21, tzinfo=UTC)})
    writes = _sent(target, "codepipeline", "PutApprovalResult")
    with pytest.raises(ApprovalMissing) as refused:
        decide(DEV, target, approved=True, release_prefix=OTHER[:12], summary=None)
    assert str(refused.value) == (
        f"release {OTHER[:12]} is not waiting for approval in stage dev; waiting: {RELEASE[:12]}"
    )
    assert writes == [], "an approval was sent for the release that waits, not the one named"


def _expect_actions(target: StubbedTarget, approve_status: str) -> None:
    t0 = datetime(2026, 11, 21, tzinfo=UTC)
    actions = [
        {
            "pipelineExecutionId": EXECUTION,
            "stageName": stage,
            "actionName": stage,
            "status": status,
            "startTime": t0,
            "lastUpdateTime": t0,
            **(
                {
                    "updatedBy": "arn:aws:iam::111111111111:user/approver",
                    "output": {"executionResult": {"externalExecutionSummary": f"release {RELEASE}: ok"}},
                }
                if stage == "Approve"
                else {}
            ),
        }
        for stage, status in (("Deploy", "Succeeded"), ("Verify", "Succeeded"), ("Approve", approve_status))
    ]
    target.stubs["codepipeline"].add_response(
        "list_action_executions",
        {"actionExecutionDetails": actions},
        {"pipelineName": DEV.release_pipeline_name, "filter": {"pipelineExecutionId": EXECUTION}},
    )


def test_pipeline_evidence_reads_verify_and_approval_of_this_execution():
    target = _stubbed()
    evidence = PipelineEvidence(target, EXECUTION)
    _expect_execution_source(target)
    _expect_actions(target, "Succeeded")
    assert evidence.verified(DEV, RELEASE)
    _expect_actions(target, "Succeeded")
    record = require_approved(evidence, DEV, RELEASE)
    assert record.decided_by.endswith("user/approver") and RELEASE in record.summary


def test_pipeline_evidence_never_vouches_for_another_release():
    """Promoting B with execution A's approval: the execution's own source commit holds A.

    The execution did verify and approve (its actions are stubbed as Succeeded, and answer however
    often they are asked): only the binding of that evidence to release A refuses B.
    """
    target = _stubbed()
    evidence = PipelineEvidence(target, EXECUTION)
    _expect_execution_source(target, RELEASE)
    assert evidence.held_release_id(DEV) == RELEASE  # read from the execution's source commit, then kept
    for _ in range(2):
        _expect_actions(target, "Succeeded")
    assert evidence.verified(DEV, OTHER) is False
    with pytest.raises(ApprovalMissing) as refused:
        require_approved(evidence, DEV, OTHER)
    assert str(refused.value) == f"release {OTHER[:12]} has no approval in stage dev"
    assert evidence.approval(DEV, OTHER) is None
    assert require_approved(evidence, DEV, RELEASE).release_id == RELEASE  # the same evidence vouches for A


def test_pipeline_evidence_without_an_approved_action_refuses():
    target = _stubbed()
    _expect_execution_source(target)
    _expect_actions(target, "Failed")
    with pytest.raises(ApprovalMissing, match="has no approval"):
        require_approved(PipelineEvidence(target, EXECUTION), DEV, RELEASE)


def test_promote_on_aws_outside_a_pipeline_execution_is_refused(monkeypatch):
    monkeypatch.delenv("PIPELINE_EXECUTION_ID", raising=False)
    with pytest.raises(EvidenceError, match="PIPELINE_EXECUTION_ID is not set"):
        evidence_for(Target("aws"))


def test_an_aws_error_is_one_line_not_a_traceback(tmp_path):
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env |= {
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "COLUMNS": "200",
    }
    done = subprocess.run(
        [sys.executable, "-m", "gitops", "approve", "--target", "aws", "--root", str(ROOT), "--release", RELEASE],
        capture_output=True,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )
    assert done.returncode == 1
    assert done.stderr.splitlines()[0] == "error: AWS: Unable to locate credentials"
    assert "Traceback" not in done.stderr


def test_promotion_pushes_as_the_target_accounts_role(monkeypatch):
    """The Promote build (dev account) reaches prod's repository through prod's promotion role."""
    from moto import mock_aws

    prod = load_stages(ROOT)["prod"]
    role = f"arn:aws:iam::{prod.account}:role/{prod.promotion_role_name}"
    for key, value in {
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "y",
        "TARGET_ROLE_ARN": role,
        "TARGET_STAGE": "prod",
    }.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        creds = Target("aws").repo_credentials(prod)
        identity = (
            boto3.Session(
                aws_access_key_id=creds["AWS_ACCESS_KEY_ID"],
                aws_secret_access_key=creds["AWS_SECRET_ACCESS_KEY"],
                aws_session_token=creds["AWS_SESSION_TOKEN"],
                region_name=prod.region,
            )
            .client("sts")
            .get_caller_identity()
        )
        assert identity["Account"] == prod.account
        assert Target("aws").repo_credentials(DEV) == {}  # the source stage's own repo: the build's own role


@dataclass(frozen=True)
class StubbedWithRepos(StubbedTarget):
    """CodePipeline and CodeCommit's API through the Stubber; the env repositories' git as bare repos here."""

    repos: Path | None = None

    def env_repo_url(self, stage) -> str:
        assert self.repos is not None
        return str(self.repos / "repos" / f"{stage.stage}.git")

    def repo_credentials(self, stage) -> dict[str, str]:
        return {}


def _aws_promotion(tmp_path: Path):
    """A release published to dev's repo, and a Promote action's evidence for its execution on AWS."""
    from promotion_env import make_env, make_release

    from gitops.promotion.promote import publish_release

    local_target, _, _ = make_env(tmp_path)
    base = _stubbed()
    target = StubbedWithRepos("aws", stubs=base.stubs, repos=local_target.local_dir)
    release = tmp_path / "release"
    manifest = make_release(release, "aws")
    publish_release(release, "dev", target)
    _expect_execution_source(target, manifest.release_id)
    _expect_actions(target, "Succeeded")  # verified
    _expect_actions(target, "Succeeded")  # approved
    return target, release, manifest, PipelineEvidence(target, EXECUTION)


def test_promote_on_aws_records_the_execution_and_the_approver_codepipeline_names(tmp_path):
    from gitops.promotion import envrepo
    from gitops.promotion.promote import promote_release

    target, release, manifest, evidence = _aws_promotion(tmp_path)
    result = promote_release(release, "dev", "prod", target, evidence)
    assert result.changed and result.release_id == manifest.release_id
    work = envrepo.clone(target.env_repo_url(load_stages(ROOT)["prod"]), tmp_path / "prod")
    message = envrepo.git("log", "-1", "--format=%B", cwd=work).stdout
    assert f"Approval-Execution: {EXECUTION}" in message
    assert "Approved-By: arn:aws:iam::111111111111:user/approver" in message  # from AWS, not a settable field
    target.stubs["codepipeline"].assert_no_pending_responses()


def test_promote_on_aws_refuses_a_downgrade_before_any_push(tmp_path):
    from promotion_env import make_release

    from gitops.promotion import envrepo
    from gitops.promotion.promote import PromotionRefused, promote_release, publish_release

    target, old_release, old, evidence = _aws_promotion(tmp_path)
    newer = tmp_path / "newer"
    new = make_release(newer, "newer")
    publish_release(newer, "dev", target)
    prod = load_stages(ROOT)["prod"]
    envrepo.push_release(target.env_repo_url(prod), newer, "promoted earlier")  # prod already holds the newer
    with pytest.raises(PromotionRefused, match=f"release {old.short_id} is older than release {new.short_id}"):
        promote_release(old_release, "dev", "prod", target, evidence)
    _, held = envrepo.current_release(target.env_repo_url(prod))
    assert held is not None and held.release_id == new.release_id


def test_reject_sends_rejected_naming_the_release_with_a_default_summary():
    target = _stubbed()
    _expect_waiting(target)
    target.stubs["codepipeline"].add_response(
        "put_approval_result",
        {"approvedAt": datetime(2026, 11, 21, tzinfo=UTC)},
        {
            "pipelineName": DEV.release_pipeline_name,
            "stageName": "Approve",
            "actionName": "ApproveRelease",
            "result": {"summary": f"release {RELEASE}: rejected", "status": "Rejected"},
            "token": TOKEN,
        },
    )
    assert decide(DEV, target, approved=False, release_prefix=None, summary=None).release_id == RELEASE
    target.stubs["codepipeline"].assert_no_pending_responses()


def test_a_long_summary_is_cut_to_what_codepipeline_takes():
    target = _stubbed()
    _expect_waiting(target)
    sent = _sent(target, "codepipeline", "PutApprovalResult")
    target.stubs["codepipeline"].add_response("put_approval_result", {"approvedAt": datetime(2026, 11, 21, tzinfo=UTC)})
    decide(DEV, target, approved=True, release_prefix=RELEASE[:7], summary="x" * 600)
    assert len(sent[0]["result"]["summary"]) == 512 and sent[0]["result"]["summary"].startswith(f"release {RELEASE}: x")


def _expect_state(target: StubbedTarget, stage_states: list[dict]) -> None:
    target.stubs["codepipeline"].add_response(
        "get_pipeline_state", {"pipelineName": DEV.release_pipeline_name, "stageStates": stage_states}
    )


def test_only_an_approval_action_in_progress_with_a_token_is_waiting():
    target = _stubbed()
    execution = {"pipelineExecutionId": EXECUTION, "status": "InProgress"}
    _expect_state(
        target,
        [
            # A manual approval elsewhere than the Approve stage, one already decided, one without a token.
            {"stageName": "Verify", "latestExecution": execution, "actionStates": [
                {"actionName": "Check", "latestExecution": {"status": "InProgress", "token": TOKEN}}]},
            {"stageName": "Approve", "latestExecution": execution, "actionStates": [
                {"actionName": "ApproveRelease", "latestExecution": {"status": "Succeeded", "token": TOKEN}},
                {"actionName": "Second", "latestExecution": {"status": "InProgress"}},
                {"actionName": "Third"},
            ]},
        ],
    )  # fmt: skip
    assert pending_approvals(DEV, target) == []
    # Stages and actions are all looked at: one waiting after those that do not still counts.
    _expect_state(
        target,
        [
            {"stageName": "Verify", "latestExecution": execution},
            {"stageName": "Approve", "latestExecution": execution, "actionStates": [
                {"actionName": "Earlier", "latestExecution": {"status": "Succeeded", "token": TOKEN}},
                {"actionName": "ApproveRelease", "latestExecution": {"status": "InProgress", "token": TOKEN}},
            ]},
        ],
    )  # fmt: skip
    _expect_execution_source(target)
    assert [(p.release_id, p.action_name, p.requested_at) for p in pending_approvals(DEV, target)] == [
        (RELEASE, "ApproveRelease", "")
    ]
    _expect_state(target, [])
    with pytest.raises(ApprovalMissing) as nothing:
        decide(DEV, target, approved=True, release_prefix=None, summary=None)
    assert str(nothing.value) == "nothing is waiting for approval in stage dev"


def test_a_release_prefix_under_seven_characters_is_refused():
    target = _stubbed()
    _expect_waiting(target)
    with pytest.raises(ApprovalMissing) as short:
        decide(DEV, target, approved=True, release_prefix=RELEASE[:6], summary=None)
    assert str(short.value) == f"--release {RELEASE[:6]}: give at least 7 characters of the release id"
