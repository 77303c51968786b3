"""`gitops diff`: what a reviewer or approver sees a release change, on small hand-made releases."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from release_builder import build_release
from typer.testing import CliRunner

from gitops.config import load_stages
from gitops.errors import ReleaseError
from gitops.local.embedded import seed_env_repo
from gitops.promotion.promote import publish_release
from gitops.release.assets import sha256_bytes
from gitops.release.diff import ReleaseDiff, diff_releases
from gitops.release.manifest import (
    ReleaseManifest,
    StageSummary,
    stage_config_path,
)
from gitops.release.pipelines import canonical_json
from gitops.target import Target

ROOT = Path(__file__).resolve().parents[2]
GITOPS = [sys.executable, "-m", "gitops"]
STAGES = load_stages(ROOT)

BUCKET = {"Type": "AWS::S3::Bucket", "Properties": {"BucketName": "data-a", "Tags": [{"Key": "team", "Value": "ml"}]}}
TOPIC = {"Type": "AWS::SNS::Topic", "Properties": {"DisplayName": "alarms"}}
ENDPOINT_CONFIG = {
    "Type": "AWS::SageMaker::EndpointConfig",
    "Properties": {
        "ProductionVariants": [
            {"InstanceType": "ml.m5.xlarge", "InitialInstanceCount": 2, "VariantName": "AllTraffic", "ModelName": "m"}
        ]
    },
}
ENDPOINT = {
    "Type": "AWS::SageMaker::Endpoint",
    "Properties": {"EndpointConfigName": {"Fn::GetAtt": ["EndpointConfig", "EndpointConfigName"]}},
}
FEATURE_GROUP = {
    "Type": "AWS::SageMaker::FeatureGroup",
    "Properties": {
        "FeatureGroupName": "customers",
        "OnlineStoreConfig": {
            "EnableOnlineStore": True,
            "SecurityConfig": {"KmsKeyId": "key-a"},
            "TtlDuration": {"Unit": "Days", "Value": 30},
        },
    },
}
TEMPLATE = {
    "Resources": {
        "Bucket": BUCKET,
        "Topic": TOPIC,
        "EndpointConfig": ENDPOINT_CONFIG,
        "Endpoint": ENDPOINT,
        "Features": FEATURE_GROUP,
    },
    "Outputs": {"BucketName": {"Value": {"Ref": "Bucket"}}},
}


def _step(name: str, kind: str, **arguments) -> dict:
    return {"Name": name, "Type": kind, "Arguments": arguments}


PIPELINE = {
    "Version": "2020-12-01",
    "Parameters": [
        {"Name": "TrainingInstanceType", "Type": "String", "DefaultValue": "ml.m5.2xlarge"},
        {"Name": "AucThreshold", "Type": "Float", "DefaultValue": 0.75},
    ],
    "Steps": [
        _step("Preprocess", "Processing", AppSpecification={"ImageUri": "sklearn:1"}),
        _step("Train", "Training", HyperParameters={"C": "1.0", "max_iter": "1000"}),
        _step(
            "CheckAuc",
            "Condition",
            Conditions=[{"Type": "GreaterThanOrEqualTo", "LeftValue": 0.8, "RightValue": 0.75}],
            IfSteps=[_step("Register", "RegisterModel", ModelApprovalStatus="PendingManualApproval")],
            ElseSteps=[_step("Fail", "Fail", ErrorMessage="too low")],
        ),
    ],
}


def make_release(
    out: Path,
    files: dict[str, object],
    *,
    stages: tuple[str, ...] = ("dev",),
    summaries: bool = True,
    scanned: bool = False,
) -> ReleaseManifest:
    """A release from {path: JSON value | bytes}, with each stage's real settings."""
    data = {rel: value if isinstance(value, bytes) else canonical_json(value) for rel, value in files.items()}
    for name in stages:
        data[stage_config_path(name)] = canonical_json(STAGES[name].model_dump(mode="json"))
    stage_summaries = (
        {
            name: StageSummary(
                account=STAGES[name].account, region=STAGES[name].region, promote_to=None, stacks={}, pipelines={}
            )
            for name in stages
        }
        if summaries
        else {}
    )
    return build_release(out, data, stage_summaries, scanned=scanned)


def release_files(
    template: dict | None = None,
    pipeline: dict | None = None,
    assets: dict[str, bytes] | None = None,
    stage: str = "dev",
) -> dict[str, object]:
    files: dict[str, object] = {}
    if template is not None:
        files[f"stages/{stage}/templates/Main.template.json"] = template
    if pipeline is not None:
        files[f"stages/{stage}/pipelines/training.json"] = pipeline
    for name, blob in (assets or {}).items():
        files[f"assets/{sha256_bytes(blob)}/{name}"] = blob
    return files


@pytest.fixture
def pair(tmp_path: Path):
    """diff(base_files, head_files) -> ReleaseDiff of two releases written under tmp_path."""

    def diff(base: dict[str, object] | None, head: dict[str, object]) -> ReleaseDiff:
        head_dir = tmp_path / "head"
        make_release(head_dir, head)
        base_dir = None
        if base is not None:
            base_dir = tmp_path / "base"
            make_release(base_dir, base)
        return diff_releases(base_dir, head_dir)

    return diff


def edited(template: dict, lid: str, mutate) -> dict:
    new = copy.deepcopy(template)
    mutate(new["Resources"][lid]["Properties"])
    return new


def stack(result: ReleaseDiff, stage: str = "dev"):
    (only,) = next(s for s in result.stages if s.stage == stage).stacks
    return only


def resource(result: ReleaseDiff, lid: str):
    return next(r for r in stack(result).resources if r.logical_id == lid)


# --- templates ------------------------------------------------------------------------------------------


def test_identical_releases_have_no_changes(pair):
    result = pair(release_files(TEMPLATE, PIPELINE), release_files(TEMPLATE, PIPELINE))
    assert result.empty
    assert result.to_text().endswith(": no changes")
    assert "No changes." in result.to_markdown()


def test_added_removed_and_modified_resources(pair):
    head = copy.deepcopy(TEMPLATE)
    head["Resources"]["Queue"] = {"Type": "AWS::SQS::Queue", "Properties": {}}
    del head["Resources"]["Topic"]
    head["Resources"]["Bucket"]["Properties"]["Tags"][0]["Value"] = "platform"
    result = pair(release_files(TEMPLATE), release_files(head))
    actions = {r.logical_id: (r.action, r.replacement) for r in stack(result).resources}
    assert actions == {"Queue": ("add", False), "Topic": ("remove", False), "Bucket": ("modify", False)}
    bucket = resource(result, "Bucket")
    assert bucket.properties == ["Tags"]
    assert [(c.path, c.before, c.after) for c in bucket.changes] == [("Tags[0].Value", "ml", "platform")]
    text = result.to_text()
    assert "- Topic (AWS::SNS::Topic)  !! DELETION" in text
    assert "+ Queue (AWS::SQS::Queue)" in text
    assert "Tags[0].Value: ml -> platform" in text


def test_bucket_name_change_forces_replacement(pair):
    head = edited(TEMPLATE, "Bucket", lambda p: p.update(BucketName="data-b"))
    result = pair(release_files(TEMPLATE), release_files(head))
    bucket = resource(result, "Bucket")
    assert bucket.replacement
    assert [(c.path, c.before, c.after, c.replacement) for c in bucket.changes] == [
        ("BucketName", "data-a", "data-b", True)
    ]
    assert "~ Bucket (AWS::S3::Bucket)  !! REPLACEMENT" in result.to_text()


def test_endpoint_config_instance_type_forces_replacement(pair):
    head = edited(TEMPLATE, "EndpointConfig", lambda p: p["ProductionVariants"][0].update(InstanceType="ml.m5.large"))
    result = pair(release_files(TEMPLATE), release_files(head))
    assert [r.logical_id for r in stack(result).resources] == ["EndpointConfig"]  # the endpoint updates in place
    config = resource(result, "EndpointConfig")
    assert config.replacement
    (change,) = config.changes
    assert (change.path, change.before, change.after, change.replacement) == (
        "ProductionVariants[0].InstanceType",
        "ml.m5.xlarge",
        "ml.m5.large",
        True,
    )


def test_replacement_follows_nested_create_only_paths(pair):
    """OnlineStoreConfig.SecurityConfig is create-only, its sibling TtlDuration is not."""
    ttl = edited(TEMPLATE, "Features", lambda p: p["OnlineStoreConfig"]["TtlDuration"].update(Value=60))
    result = pair(release_files(TEMPLATE), release_files(ttl))
    assert not resource(result, "Features").replacement
    key = edited(TEMPLATE, "Features", lambda p: p["OnlineStoreConfig"]["SecurityConfig"].update(KmsKeyId="key-b"))
    result = pair(release_files(TEMPLATE), release_files(key))
    features = resource(result, "Features")
    assert features.replacement
    assert [c.path for c in features.changes if c.replacement] == ["OnlineStoreConfig.SecurityConfig.KmsKeyId"]


def test_a_type_change_is_a_replacement_and_metadata_alone_is_no_change(pair):
    head = copy.deepcopy(TEMPLATE)
    head["Resources"]["Topic"]["Type"] = "AWS::SQS::Queue"
    head["Resources"]["Bucket"]["Metadata"] = {"aws:cdk:path": "dev/Main/Bucket"}
    result = pair(release_files(TEMPLATE), release_files(head))
    (topic,) = stack(result).resources
    assert (topic.logical_id, topic.action, topic.replacement, topic.properties) == ("Topic", "modify", True, ["Type"])


def test_attribute_and_section_changes_are_listed(pair):
    head = copy.deepcopy(TEMPLATE)
    head["Resources"]["Bucket"]["DeletionPolicy"] = "Retain"
    head["Outputs"]["TopicArn"] = {"Value": {"Ref": "Topic"}}
    result = pair(release_files(TEMPLATE), release_files(head))
    bucket = resource(result, "Bucket")
    assert bucket.properties == ["DeletionPolicy"] and not bucket.replacement
    assert [(c.path, c.before, c.after) for c in bucket.changes] == [("DeletionPolicy", None, "Retain")]
    assert stack(result).other == ["Outputs.TopicArn (added)"]


def test_added_stack_against_nothing(pair):
    result = pair(None, release_files(TEMPLATE, PIPELINE))
    assert result.base_release is None
    added = stack(result)
    assert added.change == "add" and {r.action for r in added.resources} == {"add"} and added.other == []
    assert result.to_text().startswith(f"release {result.head_release[:12]} against nothing")
    assert "against nothing" in result.to_markdown()


def test_removed_stack_flags_every_resource_as_a_deletion(pair):
    result = pair(release_files(TEMPLATE), release_files(None, PIPELINE))
    removed = stack(result)
    assert removed.change == "remove" and removed.count("remove") == len(TEMPLATE["Resources"])
    assert result.to_text().count("!! DELETION") == len(TEMPLATE["Resources"])


# --- pipelines ------------------------------------------------------------------------------------------


def test_pipeline_steps_added_removed_and_modified(pair):
    head = copy.deepcopy(PIPELINE)
    head["Steps"][1]["Arguments"]["HyperParameters"]["C"] = "2.0"
    head["Steps"].insert(1, _step("Validate", "Processing", AppSpecification={"ImageUri": "sklearn:1"}))
    del head["Steps"][0]
    result = pair(release_files(pipeline=PIPELINE), release_files(pipeline=head))
    (pipe,) = result.stages[0].pipelines
    assert pipe.change == "modify"
    steps = {s.name: s for s in pipe.steps}
    assert {name: s.action for name, s in steps.items()} == {
        "Preprocess": "remove",
        "Train": "modify",
        "Validate": "add",
    }
    assert steps["Train"].fields == ["HyperParameters"]
    assert [(c.path, c.before, c.after) for c in steps["Train"].changes] == [("HyperParameters.C", "1.0", "2.0")]
    text = result.to_text()
    assert "+ step Validate (Processing)" in text and "- step Preprocess (Processing)" in text
    assert "HyperParameters.C: 1.0 -> 2.0" in text


def test_a_step_inside_a_condition_is_diffed_as_itself(pair):
    head = copy.deepcopy(PIPELINE)
    head["Steps"][2]["Arguments"]["IfSteps"][0]["Arguments"]["ModelApprovalStatus"] = "Approved"
    result = pair(release_files(pipeline=PIPELINE), release_files(pipeline=head))
    (pipe,) = result.stages[0].pipelines
    assert [(s.name, s.action) for s in pipe.steps] == [("Register", "modify")]  # not CheckAuc as well
    assert [c.path for c in pipe.steps[0].changes] == ["ModelApprovalStatus"]


def test_parameters_added_removed_and_changed(pair):
    head = copy.deepcopy(PIPELINE)
    head["Parameters"][1]["DefaultValue"] = 0.8
    head["Parameters"][0] = {"Name": "ProcessingInstanceType", "Type": "String", "DefaultValue": "ml.m5.xlarge"}
    result = pair(release_files(pipeline=PIPELINE), release_files(pipeline=head))
    (pipe,) = result.stages[0].pipelines
    assert pipe.steps == []
    params = {p.name: p for p in pipe.parameters}
    assert {name: p.action for name, p in params.items()} == {
        "AucThreshold": "modify",
        "ProcessingInstanceType": "add",
        "TrainingInstanceType": "remove",
    }
    assert [(c.path, c.before, c.after) for c in params["AucThreshold"].changes] == [("DefaultValue", "0.75", "0.8")]
    assert "~ parameter AucThreshold: DefaultValue: 0.75 -> 0.8" in result.to_text()
    assert "| ~ | parameter `AucThreshold` |" in result.to_markdown()


def test_pipeline_added_and_removed(pair):
    result = pair(release_files(TEMPLATE), release_files(TEMPLATE, PIPELINE))
    (pipe,) = result.stages[0].pipelines
    assert pipe.change == "add" and {s.action for s in pipe.steps} == {"add"}
    assert {s.name for s in pipe.steps} == {"Preprocess", "Train", "CheckAuc", "Register", "Fail"}
    result = pair(release_files(TEMPLATE, PIPELINE), release_files(TEMPLATE))
    assert result.stages[0].pipelines[0].change == "remove"


# --- assets ---------------------------------------------------------------------------------------------


def test_assets_added_removed_and_changed_by_name(pair):
    base = release_files(assets={"preprocess.py": b"v1", "old.py": b"old"})
    head = release_files(assets={"preprocess.py": b"v2", "new.py": b"new"})
    result = pair(base, head)
    assert [(a.name, a.action) for a in result.assets] == [
        ("new.py", "add"),
        ("old.py", "remove"),
        ("preprocess.py", "modify"),
    ]
    assert result.assets_added == sorted(
        [f"assets/{sha256_bytes(b'v2')}/preprocess.py", f"assets/{sha256_bytes(b'new')}/new.py"]
    )
    markdown = result.to_markdown()
    assert "#### Assets (1 modified, 1 added, 1 removed)" in markdown
    assert f"- ~ `preprocess.py` `{sha256_bytes(b'v1')[:12]}` → `{sha256_bytes(b'v2')[:12]}`" in markdown
    assert "- + `new.py`" in markdown and "- - `old.py`" in markdown


# --- renderings -----------------------------------------------------------------------------------------


def _busy_change(pair) -> ReleaseDiff:
    head = copy.deepcopy(TEMPLATE)
    head["Resources"]["Bucket"]["Properties"]["BucketName"] = "data-b"
    head["Resources"]["Queue"] = {"Type": "AWS::SQS::Queue", "Properties": {}}
    head["Resources"]["Topic"]["Properties"]["DisplayName"] = "alarms | pager"
    del head["Resources"]["Endpoint"]
    pipeline = copy.deepcopy(PIPELINE)
    pipeline["Steps"][1]["Arguments"]["HyperParameters"]["C"] = "2.0"
    return pair(release_files(TEMPLATE, PIPELINE, {"a.py": b"1"}), release_files(head, pipeline, {"a.py": b"2"}))


def test_markdown_has_the_stack_table_the_flags_and_the_steps(pair):
    markdown = _busy_change(pair).to_markdown()
    assert "#### Stage `dev`" in markdown
    assert "| stack | change | added | modified | removed | replaced |" in markdown
    assert "| Main | modified | 1 | 2 | 1 | 1 ⚠️ |" in markdown
    assert "- replacement: `Main/Bucket` (AWS::S3::Bucket), because of `BucketName`" in markdown
    assert "- deletion: `Main/Endpoint` (AWS::SageMaker::Endpoint)" in markdown
    assert "`DisplayName`: `alarms` → `alarms \\| pager`" in markdown  # a | would end the table cell
    assert "**Pipeline `training`** (modified)" in markdown
    assert "| ~ | step `Train` | Training | `HyperParameters.C`: `1.0` → `2.0` |" in markdown
    assert "#### Assets (1 modified)" in markdown


def test_json_round_trip(pair):
    result = _busy_change(pair)
    result.against = "stage dev"
    back = ReleaseDiff.from_dict(json.loads(json.dumps(result.to_dict())))
    assert back == result
    assert back.to_markdown() == result.to_markdown() and back.to_text() == result.to_text()


def test_long_values_are_shortened_and_changes_capped(pair):
    head = copy.deepcopy(TEMPLATE)
    head["Resources"]["Topic"]["Properties"] = {f"P{i}": "x" * 200 for i in range(12)}
    result = pair(release_files(TEMPLATE), release_files(head))
    text = result.to_text()
    assert "… and 5 more" in text  # 13 changes (12 added, DisplayName removed), 8 shown
    assert max(len(line) for line in text.splitlines()) < 220
    assert len(resource(result, "Topic").changes) == 13  # the JSON form keeps them all


# --- releases the diff is given -----------------------------------------------------------------------------


def test_a_stage_without_a_summary_in_the_manifest_is_still_diffed(tmp_path):
    make_release(tmp_path / "base", release_files(TEMPLATE), summaries=False)
    make_release(
        tmp_path / "head",
        release_files(edited(TEMPLATE, "Bucket", lambda p: p.update(BucketName="b"))),
        summaries=False,
    )
    result = diff_releases(tmp_path / "base", tmp_path / "head")
    assert [s.stage for s in result.stages] == ["dev"]
    assert resource(result, "Bucket").replacement


def test_stages_are_diffed_in_release_order_and_an_unknown_one_is_refused(tmp_path):
    files = {**release_files(TEMPLATE, stage="dev"), **release_files(TEMPLATE, stage="prod")}
    make_release(tmp_path / "head", files, stages=("dev", "prod"))
    assert [s.stage for s in diff_releases(None, tmp_path / "head").stages] == ["dev", "prod"]
    with pytest.raises(ReleaseError, match="no stage 'qa'"):
        diff_releases(None, tmp_path / "head", stages=["qa"])


def test_a_broken_release_is_refused(tmp_path):
    make_release(tmp_path / "head", release_files(TEMPLATE))
    (tmp_path / "head" / "stages/dev/templates/Main.template.json").write_text("{}")
    with pytest.raises(ReleaseError, match="content differs from the manifest"):
        diff_releases(None, tmp_path / "head")


# --- the CLI ---------------------------------------------------------------------------------------------


def gitops(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "GITOPS_TARGET": "aws"}
    return subprocess.run([*GITOPS, *args], cwd=cwd, capture_output=True, text=True, env=env)


def in_process(*args: str) -> str:
    """The CLI in this process (a second process would load cfn-lint's schemas again)."""
    from gitops import cli

    cli._register_commands()
    result = CliRunner().invoke(cli.app, list(args))
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


@pytest.fixture
def two_releases(tmp_path: Path) -> tuple[Path, Path]:
    make_release(tmp_path / "old", release_files(TEMPLATE, PIPELINE))
    head = edited(TEMPLATE, "EndpointConfig", lambda p: p["ProductionVariants"][0].update(InstanceType="ml.m5.large"))
    make_release(tmp_path / "new", release_files(head, PIPELINE))
    return tmp_path / "old", tmp_path / "new"


def test_cli_diff_against_a_release_directory(two_releases, tmp_path):
    old, new = two_releases
    text = gitops("diff", "--release", str(new), "--against", str(old), cwd=tmp_path)
    assert text.returncode == 0, text.stderr
    assert f"against {diff_releases(old, new).base_release[:12]} ({old})" in text.stdout
    assert "ProductionVariants[0].InstanceType: ml.m5.xlarge -> ml.m5.large (replaces)" in text.stdout
    markdown = in_process("diff", "--release", str(new), "--against", str(old), "--format", "markdown")
    assert "| Main | modified | 0 | 1 | 0 | 1 ⚠️ |" in markdown
    as_json = in_process("diff", "--release", str(new), "--against", str(old), "--json")
    assert ReleaseDiff.from_dict(json.loads(as_json)).stages[0].stacks[0].resources[0].replacement


def test_cli_diff_writes_the_output_file(two_releases, tmp_path):
    old, new = two_releases
    done = gitops(
        "diff",
        "--release",
        str(new),
        "--against",
        str(tmp_path / "release"),
        "--format",
        "markdown",
        "--output",
        "reports/diff.md",
        cwd=tmp_path,
    )
    assert done.returncode == 1 and not (tmp_path / "reports/diff.md").exists()  # bad input writes nothing
    written = in_process(
        "diff",
        "--release",
        str(new),
        "--against",
        str(old),
        "--format",
        "markdown",
        "--output",
        str(tmp_path / "reports/diff.md"),
    )
    assert "### Release" not in written  # the diff went to the file, not the terminal
    assert (tmp_path / "reports/diff.md").read_text().startswith("### Release `")
    assert not list((tmp_path / "reports").glob(".*"))  # no temporary file left beside it


def test_cli_diff_defaults_to_the_release_directory_and_against_nothing(two_releases, tmp_path):
    _, new = two_releases
    new.rename(tmp_path / "release")
    done = gitops("diff", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "against nothing" in done.stdout and "+ EndpointConfig (AWS::SageMaker::EndpointConfig)" in done.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--release", "missing"], "error: missing: not a release (no manifest.json)"),
        (["--against", "missing"], "error: missing: not a release (no manifest.json)"),
        (["--against", "old", "--stage", "dev"], "error: --against and --stage both name what to compare with"),
        (["--from", "dev", "--release", "new"], "error: --release and --from both name the release to show"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_1(two_releases, tmp_path, args, message):
    new = str(two_releases[1]) if "--release" not in args else None
    done = gitops("diff", *(["--release", new] if new else []), *args, cwd=tmp_path)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert lines[0].startswith(message), done.stderr
    assert len(lines) <= 2 and "Traceback" not in done.stderr
    assert done.stdout == ""


def test_cli_unknown_format_is_a_usage_error(two_releases, tmp_path):
    done = gitops("diff", "--release", str(two_releases[1]), "--format", "html", cwd=tmp_path)
    assert done.returncode == 2 and "html" in done.stderr


# --- against what a stage's env repository holds ------------------------------------------------------


@pytest.fixture
def local_target(tmp_path: Path) -> Target:
    local, seeds = tmp_path / "local", tmp_path / "src"
    for seed in ("seed_repo", "prod_repo"):
        (seeds / seed).mkdir(parents=True)
        (seeds / seed / "README.md").write_text(f"{seed}\n")
    for cfg in STAGES.values():
        seed_env_repo(seeds, local, cfg)
    return Target("local", local, "http://127.0.0.1:1")  # git only: no AWS call is made


def _cli_stage_diff(monkeypatch, target: Target, *args: str) -> str:
    from gitops import cli
    from gitops.commands import diff as diff_command

    cli._register_commands()
    monkeypatch.setattr(diff_command, "target_from", lambda root, kind: target)
    result = CliRunner().invoke(cli.app, ["diff", *args])
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def test_cli_diff_against_a_stage(monkeypatch, tmp_path, local_target):
    files = {**release_files(TEMPLATE), **release_files(TEMPLATE, stage="prod")}
    make_release(tmp_path / "v1", files, stages=("dev", "prod"), scanned=True)
    head = edited(TEMPLATE, "Bucket", lambda p: p.update(BucketName="data-b"))
    make_release(
        tmp_path / "v2", {**release_files(head), **release_files(TEMPLATE, stage="prod")}, stages=("dev", "prod")
    )

    empty = _cli_stage_diff(monkeypatch, local_target, "--release", str(tmp_path / "v2"), "--stage", "dev")
    assert "against nothing (dev holds no release yet)" in empty

    v1 = publish_release(tmp_path / "v1", "dev", local_target)
    shown = _cli_stage_diff(
        monkeypatch, local_target, "--release", str(tmp_path / "v2"), "--stage", "dev", "--format", "markdown"
    )
    assert f"against `{v1.release_id[:12]}` (dev's current release)" in shown
    assert "- replacement: `Main/Bucket` (AWS::S3::Bucket), because of `BucketName`" in shown

    promotion = _cli_stage_diff(monkeypatch, local_target, "--from", "dev", "--stage", "prod")
    assert f"release {v1.release_id[:12]} against nothing (prod holds no release yet)" in promotion
