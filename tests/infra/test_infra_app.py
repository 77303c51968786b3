"""The CDK app in infra/: its stages and stacks as tests/infra/infra_synth.py synthesizes them once.

The stage is exactly the stack specs; the context is cdk.json's; synthesis is deterministic;
bad input is a SynthError naming the file.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from infra_synth import (
    ROOT,
    STACK_IDS,
    STAGE_NAMES,
    SYNTH_ENV,
    cfg_of,
)

from gitops.errors import GitopsError, SynthError
from infra import names
from infra.app import load_cdk_context
from infra.components.buildspecs import read_buildspec
from infra.stacks.specs import STACKS

pytestmark = pytest.mark.integration  # every test here needs the CDK app (tests/infra/conftest.py)

# App shape ------------------------------------------------------------------------------------


@pytest.mark.parametrize("stage", STAGE_NAMES)
def test_each_stage_has_the_four_stacks_named_from_its_prefix(synth, stage):
    cfg = cfg_of(stage)
    assert {sid for (s, sid) in synth.templates if s == stage} == set(STACK_IDS)
    manifest = json.loads((synth.outdir / f"assembly-{stage}" / "manifest.json").read_text())
    stacks = {a["displayName"]: a for a in manifest["artifacts"].values() if a["type"] == "aws:cloudformation:stack"}
    for stack_id in STACK_IDS:
        artifact = stacks[f"{stage}/{stack_id}"]
        assert artifact["properties"]["stackName"] == f"{cfg.prefix}-{stack_id.lower()}"
        assert artifact["environment"] == f"aws://{cfg.account}/{cfg.region}"


@pytest.mark.parametrize("stage", STAGE_NAMES)
def test_stacks_share_values_without_exports(synth, stage):
    for stack_id in STACK_IDS:
        text = json.dumps(synth.template(stage, stack_id))
        assert "Fn::ImportValue" not in text and "Fn::GetStackOutput" not in text
        outputs = synth.template(stage, stack_id).get("Outputs", {})
        assert not any("Export" in output for output in outputs.values())


@pytest.mark.parametrize("stage", STAGE_NAMES)
def test_the_stage_is_exactly_the_stack_specs_with_their_dependencies_in_deploy_order(synth, stage):
    """infra/stacks/specs.py is the one list: the assembly holds its stacks, depending as declared."""
    assert {sid: synth.dependencies[(stage, sid)] for (s, sid) in synth.templates if s == stage} == {
        spec.id: set(spec.depends_on) for spec in STACKS
    }
    manifest = json.loads((synth.outdir / f"assembly-{stage}" / "manifest.json").read_text())
    order = [a["displayName"].split("/")[1] for a in manifest["artifacts"].values() if a["type"].endswith(":stack")]
    assert order == STACK_IDS  # the assembly lists them in spec order, which is a deploy order:
    for spec in STACKS:
        assert all(order.index(dependency) < order.index(spec.id) for dependency in spec.depends_on), spec.id
    for spec in STACKS:
        description = synth.template(stage, spec.id)["Description"]
        assert description == f"{cfg_of(stage).prefix} {spec.id}: {spec.description} (sagemaker-gitops)"


# Context, determinism, bad input -------------------------------------------------------------


def test_cdk_json_is_the_cli_entry_and_its_feature_flags_are_applied(synth):
    cdk_json = json.loads((ROOT / "cdk.json").read_text())
    assert "infra/app.py" in cdk_json["app"]
    assert cdk_json["context"] and synth.context == cdk_json["context"]
    # A flag with a visible effect: access logs are granted by bucket policy, not the legacy ACL.
    assert cdk_json["context"]["@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy"] is True
    for stage in STAGE_NAMES:
        cfg = cfg_of(stage)
        buckets = synth.resources(stage, "MLOps", "AWS::S3::Bucket")
        logs_id = next(
            k for k, b in buckets.items() if b["Properties"]["BucketName"] == names.access_logs_bucket_name(cfg)
        )
        assert "AccessControl" not in buckets[logs_id]["Properties"]
        policy = next(
            p
            for p in synth.resources(stage, "MLOps", "AWS::S3::BucketPolicy").values()
            if p["Properties"]["Bucket"] == {"Ref": logs_id}
        )
        principals = [s.get("Principal") for s in policy["Properties"]["PolicyDocument"]["Statement"]]
        assert {"Service": "logging.s3.amazonaws.com"} in principals


def test_synth_is_byte_identical_from_another_checkout_and_process(synth, tmp_path):
    """A second synthesis, in a fresh interpreter with another hash seed, from a copy of the tree elsewhere."""
    checkout = tmp_path / "elsewhere" / "checkout"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for part in ("infra", "src", "pipeline_defs", "buildspecs", "seed_repo", "prod_repo"):
        shutil.copytree(ROOT / part, checkout / part, ignore=ignore)
    shutil.copy2(ROOT / "cdk.json", checkout / "cdk.json")
    outdir = tmp_path / "cdk.out"
    script = (
        "import sys; from pathlib import Path; root = Path(sys.argv[1]);"
        "sys.path[:0] = [str(root), str(root / 'src')];"
        "from gitops.config import load_stages; from infra.app import build_app;"
        "build_app(root, load_stages(root), outdir=sys.argv[2]).synth()"
    )
    env = {**os.environ, **SYNTH_ENV, "PYTHONHASHSEED": "12345"}
    subprocess.run([sys.executable, "-c", script, str(checkout), str(outdir)], check=True, env=env, cwd=tmp_path)
    first = {p.relative_to(synth.outdir): p.read_bytes() for p in synth.outdir.rglob("*") if p.is_file()}
    second = {p.relative_to(outdir): p.read_bytes() for p in outdir.rglob("*") if p.is_file()}
    assert sorted(first) == sorted(second)
    differing = [str(path) for path in first if first[path] != second[path]]
    assert differing == []
    assert any(str(path).endswith(".template.json") for path in first)


def test_a_broken_buildspec_fails_synthesis_naming_the_file(tmp_path):
    (tmp_path / "buildspecs").mkdir()
    (tmp_path / "buildspecs" / "deploy.yml").write_text("version: 0.2\nphases: [unclosed\n")
    with pytest.raises(GitopsError, match=r"buildspecs/deploy\.yml:.* not valid YAML"):
        read_buildspec(tmp_path, "deploy")
    (tmp_path / "buildspecs" / "verify.yml").write_text("version: 0.1\nphases: {build: {commands: [x]}}\n")
    with pytest.raises(GitopsError, match=r"buildspecs/verify\.yml: version"):
        read_buildspec(tmp_path, "verify")
    with pytest.raises(SynthError, match=r"buildspecs/promote\.yml: buildspec not found"):
        read_buildspec(tmp_path, "promote")


def test_a_missing_cdk_json_is_a_synth_error(tmp_path):
    with pytest.raises(SynthError, match="cdk.json: not found"):
        load_cdk_context(tmp_path)


@pytest.mark.parametrize("name", ["deploy", "verify", "promote", "build-and-scan", "publish"])
def test_buildspecs_are_thin(name):
    """Version 0.2, one gitops verb per phase, no shell logic: anything with an `if` belongs in Python."""
    spec = read_buildspec(ROOT, name)
    commands = [c for phase in spec["phases"].values() for c in phase.get("commands", [])]
    verbs = [c for c in commands if "gitops " in c]
    assert verbs, f"{name}: runs no gitops verb"
    for phase in spec["phases"].values():
        assert sum("gitops " in c for c in phase.get("commands", [])) <= 1
    for command in commands:
        assert not any(token in f" {command} " for token in (" if ", " for ", " then ", "&&", "||", ";")), command
