"""The committed aws-nuke configuration names every resource the stacks create that backups and the loop need."""

from __future__ import annotations

import fnmatch
import re
import sys

import pytest
from recovery_release import ROOT, STAGES

from gitops.config import StageConfig, kms_alias_name
from gitops.strict_yaml import load_yaml

pytestmark = pytest.mark.integration  # imports the CDK app's stack specs

if str(ROOT) not in sys.path:  # infra/ is imported from the repository root (as tests/infra/infra_synth.py does)
    sys.path.insert(0, str(ROOT))

CONFIG = ROOT / "scripts" / "aws-nuke.yaml"
BOOTSTRAP = "hnb659fds"  # the CDK's default qualifier (the release's templates check its version parameter)


def protected(cfg: StageConfig) -> dict[str, list[str]]:
    """What must survive a wipe of the stage's account, as aws-nuke names each resource (its String())."""
    from infra import names
    from infra.stacks.specs import STACKS

    roles = [
        names.deploy_role_name(cfg),
        *(names.build_role_name(cfg, verb) for verb in (names.DEPLOY, names.VERIFY, names.PROMOTE)),
        names.promotion_role_name(cfg),
        names.pipeline_role_name(cfg),
        cfg.sagemaker_execution_role_name,
        f"{cfg.prefix}-backup",
        f"cdk-{BOOTSTRAP}-deploy-role-{cfg.account}-{cfg.region}",
    ]
    return {
        "IAMRole": roles,
        "IAMRolePolicyAttachment": [f"{role} -> AdministratorAccess" for role in roles],
        "IAMPolicy": [f"arn:aws:iam::{cfg.account}:policy/{names.env_repository_guard_name(cfg)}"],
        "CodeCommitRepository": [cfg.env_repository_name],
        "CodePipelinePipeline": [names.release_pipeline_name(cfg)],
        "CodeBuildProject": [names.build_project_name(cfg, v) for v in (names.DEPLOY, names.VERIFY, names.PROMOTE)],
        "KMSAlias": [kms_alias_name(cfg)],
        "S3Bucket": [
            cfg.artifact_bucket_name,
            names.access_logs_bucket_name(cfg),
            f"cdk-{BOOTSTRAP}-assets-{cfg.account}-{cfg.region}",
        ],
        "S3Object": [f"s3://{cfg.artifact_bucket_name}/release/manifest.json"],
        "CloudFormationStack": ["CDKToolkit", *(f"{cfg.prefix}-{spec.id.lower()}" for spec in STACKS)],
        "SSMParameter": [f"/{cfg.project}/{cfg.stage}/kms/key-arn", f"/cdk-bootstrap/{BOOTSTRAP}/version"],
        "ECRRepository": [f"cdk-{BOOTSTRAP}-container-assets-{cfg.account}-{cfg.region}"],
    }


def _matches(rule: object, name: str) -> bool:
    if isinstance(rule, str):
        return rule == name
    assert isinstance(rule, dict), rule
    if "property" in rule:
        return False  # tag/property filters do not name anything (and aws-nuke ignores some: #110, #612)
    kind, value = rule.get("type", "exact"), str(rule["value"])
    if kind == "glob":
        return fnmatch.fnmatchcase(name, value)
    if kind == "regex":
        return re.fullmatch(value, name) is not None
    if kind == "contains":
        return value in name
    return kind == "exact" and value == name


def _filters(config: dict, account: str) -> dict[str, list]:
    merged: dict[str, list] = {}
    entry = config["accounts"][account]
    for preset in entry.get("presets", []):
        for kind, rules in config["presets"][preset]["filters"].items():
            merged.setdefault(kind, []).extend(rules)
    for kind, rules in entry.get("filters", {}).items():
        merged.setdefault(kind, []).extend(rules)
    return merged


def test_every_loop_resource_of_a_nukable_stage_is_named_and_tagged():
    config = load_yaml(CONFIG.read_text(encoding="utf-8"), str(CONFIG))
    blocklist = {str(a) for a in config["blocklist"]}
    nukable = [cfg for cfg in STAGES.values() if cfg.account not in blocklist]
    assert [cfg.stage for cfg in nukable] == ["dev"]
    assert {STAGES["prod"].account} <= blocklist  # prod is never nuked
    for cfg in nukable:
        filters = _filters(config, cfg.account)
        missing = [
            f"{kind} {name}"
            for kind, wanted in protected(cfg).items()
            for name in wanted
            if not any(_matches(rule, name) for rule in filters.get(kind, []))
        ]
        assert missing == [], f"{CONFIG.name} does not protect: {missing}"
        for kind in ("IAMRole", "KMSKey", "CodeCommitRepository", "CodePipelinePipeline", "CodeBuildProject"):
            assert {"property": "tag:gitops:stage", "value": cfg.stage} in filters[kind], kind
        # Data holders are protected by name only: a tag filter would keep the data the wipe must take.
        for kind in ("S3Bucket", "CloudFormationStack"):
            assert not any(isinstance(r, dict) and "property" in r for r in filters[kind]), kind
    assert {"AWSBackupVault", "AWSBackupRecoveryPoint"} <= set(config["resource-types"]["excludes"])


def test_the_matcher_is_not_vacuous():
    assert _matches({"type": "glob", "value": "mlops-dev-*"}, "mlops-dev-env")
    assert not _matches({"type": "glob", "value": "mlops-dev-*"}, "mlops-prod-env")
    assert not _matches({"property": "tag:gitops:stage", "value": "dev"}, "dev")
    assert not _matches("mlops-dev-env", "mlops-dev-env-2")
