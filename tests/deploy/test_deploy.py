"""Deploy against a loopback moto server: safety refusals, change sets, projection report, idempotence.

Most tests use a small hand-made release (make_release) so they need no CDK or SageMaker SDK; one
slow test deploys and verifies the real rendered release for the dev stage.
"""

from __future__ import annotations

import base64
import copy
import json
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from release_builder import build_release, repin_release, stack_summary

from gitops.config import StageConfig
from gitops.deploy.apply import deploy_stage
from gitops.deploy.model_parameters import MODEL_PARAMETER_DEFAULTS, MODEL_PARAMETERS
from gitops.deploy.order import stack_order
from gitops.deploy.plan import plan_stage
from gitops.deploy.templates import validate_template
from gitops.errors import DeployError, DeployFailed, GitopsError, TemplateError
from gitops.local.embedded import start_server, stop_server
from gitops.local.projection import embedded_projection
from gitops.release.assets import sha256_bytes
from gitops.release.manifest import (
    PipelineSummary,
    StageSummary,
    stage_config_path,
)
from gitops.release.pipelines import canonical_json
from gitops.target import Target

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT, REGION = "111111111111", "eu-west-1"
BUCKET = f"mlops-dev-artifacts-{ACCOUNT}-{REGION}"
CDK_BUCKET = f"cdk-hnb659fds-assets-{ACCOUNT}-{REGION}"
STEP_CODE = b"print('preprocess')\n"
STEP_PATH = f"assets/{sha256_bytes(STEP_CODE)}/preprocess.py"
CDK_ASSET = b"PK-not-really-a-zip"
CDK_ASSET_PATH = f"assets/{sha256_bytes(CDK_ASSET)}/handler.zip"

DECLARED_DEPENDENCIES = {"MLOps": ["Base"], "Inference": ["Base", "MLOps"]}
BOOTSTRAP_PARAMETER = {
    "BootstrapVersion": {"Type": "AWS::SSM::Parameter::Value<String>", "Default": "/cdk-bootstrap/hnb659fds/version"}
}
BOOTSTRAP_RULE = {
    "CheckBootstrapVersion": {
        "Assertions": [
            {
                "Assert": {"Fn::Not": [{"Fn::Contains": [["1", "2", "3", "4", "5"], {"Ref": "BootstrapVersion"}]}]},
                "AssertDescription": "CDK bootstrap stack version 6 required.",
            }
        ]
    }
}


def _cdk(resources: dict, parameters: dict | None = None, **sections: Any) -> dict:
    """A template shaped like the CDK's DefaultStackSynthesizer output."""
    return {
        "Parameters": {**(parameters or {}), **BOOTSTRAP_PARAMETER},
        "Resources": resources,
        "Rules": BOOTSTRAP_RULE,
        **sections,
    }


def base_template() -> dict:
    return _cdk(
        {
            "Key": {
                "Type": "AWS::KMS::Key",
                "Properties": {
                    "KeyPolicy": {"Version": "2012-10-17", "Statement": []},
                    "Tags": [{"Key": "gitops:stage", "Value": "dev"}],
                },
            },
            "KeyAlias": {
                "Type": "AWS::KMS::Alias",
                "Properties": {"AliasName": "alias/mlops-dev", "TargetKeyId": {"Ref": "Key"}},
            },
            "KeyArnParam": {
                "Type": "AWS::SSM::Parameter",
                "Properties": {
                    "Name": "/mlops/dev/kms/key-arn",
                    "Type": "String",
                    "Value": {"Fn::GetAtt": ["Key", "Arn"]},
                },
            },
        }
    )


def mlops_template() -> dict:
    return _cdk(
        {
            "ArtifactBucket": {
                "Type": "AWS::S3::Bucket",
                "Properties": {
                    "BucketName": BUCKET,
                    "PublicAccessBlockConfiguration": {
                        "BlockPublicAcls": True,
                        "BlockPublicPolicy": True,
                        "IgnorePublicAcls": True,
                        "RestrictPublicBuckets": True,
                    },
                    "BucketEncryption": {
                        "ServerSideEncryptionConfiguration": [
                            {
                                "ServerSideEncryptionByDefault": {
                                    "SSEAlgorithm": "aws:kms",
                                    "KMSMasterKeyID": {"Ref": "KeyArn"},
                                }
                            }
                        ]
                    },
                },
            },
            "ArtifactBucketPolicy": {
                "Type": "AWS::S3::BucketPolicy",
                "Properties": {
                    "Bucket": {"Ref": "ArtifactBucket"},
                    "PolicyDocument": {"Version": "2012-10-17", "Statement": []},
                },
            },
            "ModelPackageGroup": {
                "Type": "AWS::SageMaker::ModelPackageGroup",
                "Properties": {"ModelPackageGroupName": "mlops-dev-models"},
            },
            "GroupArnParam": {
                "Type": "AWS::SSM::Parameter",
                "Properties": {
                    "Name": "/mlops/dev/models/group-arn",
                    "Type": "String",
                    "Value": {"Fn::GetAtt": ["ModelPackageGroup", "ModelPackageGroupArn"]},
                },
            },
            "BucketNameParam": {
                "Type": "AWS::SSM::Parameter",
                "DependsOn": ["ArtifactBucketPolicy"],
                "Properties": {"Name": "/mlops/dev/bucket", "Type": "String", "Value": {"Ref": "ArtifactBucket"}},
            },
        },
        {"KeyArn": {"Type": "AWS::SSM::Parameter::Value<String>", "Default": "/mlops/dev/kms/key-arn"}},
        Outputs={"GroupArn": {"Value": {"Fn::GetAtt": ["ModelPackageGroup", "ModelPackageGroupArn"]}}},
    )


def inference_template() -> dict:
    """The Inference stack's model parameters (as infra declares them); an SSM parameter stands in for the endpoint."""
    return _cdk(
        {
            "ServedModelParam": {
                "Type": "AWS::SSM::Parameter",
                "Properties": {
                    "Name": "/mlops/dev/inference/model",
                    "Type": "String",
                    "Value": {
                        "Fn::If": [
                            "HasModel",
                            {"Fn::Join": [" ", [{"Ref": "ModelDataUrl"}, {"Ref": "ModelSha256"}]]},
                            "none",
                        ]
                    },
                },
            }
        },
        {name: {"Type": "String", "Default": MODEL_PARAMETER_DEFAULTS.get(name, "")} for name in MODEL_PARAMETERS},
        Conditions={"HasModel": {"Fn::Not": [{"Fn::Equals": [{"Ref": "ModelDataUrl"}, ""]}]}},
    )


ARTIFACT = b"model.tar.gz stand-in bytes"
ARTIFACT_SHA = sha256_bytes(ARTIFACT)
TRAINED_KEY = "mlops-dev-training/exec-1/Train/output/model.tar.gz"
IMAGE = "141502667606.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-scikit-learn@sha256:" + "ab" * 32


def model_pin(version: int = 1, sha: str = ARTIFACT_SHA, auc: float = 0.9, **changes: Any) -> dict:
    model = {
        "package_arn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/mlops-dev-models/{version}",
        "artifact": {"uri": f"s3://{BUCKET}/{TRAINED_KEY}", "sha256": sha},
        "image": IMAGE,
        "metrics": {"auc": auc},
    }
    return {"model": model | changes}


def pipeline_definition(marker: str = "v1") -> dict:
    return {
        "Version": "2020-12-01",
        "Metadata": {"marker": marker},
        "Parameters": [],
        "Steps": [
            {
                "Name": "Preprocess",
                "Type": "Processing",
                "Arguments": {
                    "AppSpecification": {"ImageUri": "img", "ContainerEntrypoint": ["python3", "preprocess.py"]},
                    "ProcessingInputs": [{"InputName": "code", "S3Input": {"S3Uri": f"s3://{BUCKET}/{STEP_PATH}"}}],
                },
            }
        ],
    }


def stage_config(account: str = ACCOUNT) -> StageConfig:
    return StageConfig(stage="dev", account=account, region=REGION)


def make_release(
    out: Path,
    *,
    templates: dict[str, dict] | None = None,
    definition: dict | None = None,
    account: str = ACCOUNT,
    pin: dict | None = None,
) -> Path:
    """A complete, verifiable release of one stage 'dev' (stacks Base, MLOps, Inference; pipeline training)."""
    config = stage_config(account)
    templates = templates or {"Base": base_template(), "MLOps": mlops_template(), "Inference": inference_template()}
    if account != ACCOUNT:
        templates = json.loads(json.dumps(templates).replace(ACCOUNT, account))
    files: dict[str, bytes] = {
        stage_config_path("dev"): canonical_json(config.model_dump(mode="json")),
        "stages/dev/pipelines/training.json": canonical_json(definition or pipeline_definition()),
        STEP_PATH: STEP_CODE,
        CDK_ASSET_PATH: CDK_ASSET,
        "model.json": canonical_json(pin or {"model": None}),
    }
    stacks = {}
    for name, template in templates.items():
        stack_name = f"mlops-dev-{name.lower()}"
        files[f"stages/dev/templates/{name}.template.json"] = canonical_json(template)
        assets = []
        if name == "Base":
            key = f"{sha256_bytes(CDK_ASSET)}.zip"
            bucket = "cdk-hnb659fds-assets-${AWS::AccountId}-${AWS::Region}"
            assets.append({"asset_id": "a1", "release_path": CDK_ASSET_PATH, "bucket": bucket, "key": key})
        # As render records them from the cloud assembly: Inference serves what MLOps trains.
        depends_on = [d for d in DECLARED_DEPENDENCIES.get(name, []) if d in templates]
        doc = {"stack_name": stack_name, "files": assets, "depends_on": depends_on}
        files[f"stages/dev/templates/{name}.assets.json"] = canonical_json(doc)
        stacks[name] = stack_summary(stack_name, template)
    build_release(
        out,
        files,
        {
            "dev": StageSummary(
                account=account,
                region=REGION,
                promote_to=None,
                stacks=stacks,
                pipelines={
                    "training": PipelineSummary(pipeline_name="mlops-dev-training", steps=["Preprocess"], parameters=[])
                },
            )
        },
    )
    return out


# ---------------------------------------------------------------- the embedded target


def reset_moto(endpoint: str) -> None:
    request = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")
    with urllib.request.urlopen(request, timeout=10) as resp:  # noqa: S310 (loopback)
        assert resp.status == 200


@dataclass(frozen=True)
class OtherAccountTarget(Target):
    """The embedded target, but with credentials of another account (as a misconfigured profile would be)."""

    account: str = "999999999999"

    def session(self, stage: StageConfig) -> Any:
        return super().session(stage.model_copy(update={"account": self.account}))


def embedded_server(local_dir: Path) -> Iterator[tuple[Path, str]]:
    """A moto server for one test module, stopped afterwards."""
    info = start_server(local_dir)
    try:
        yield local_dir, info.endpoint_url
    finally:
        assert stop_server(local_dir)


def clients(target: Target, account: str = ACCOUNT) -> dict[str, Any]:
    cfg = stage_config(account)
    session = target.session(cfg)
    return {name: target.client(cfg, name, session) for name in ("cloudformation", "s3", "ssm", "sagemaker", "ec2")}


# ---------------------------------------------------------------- structure, before any AWS call


UNREACHABLE = Target("local", Path("/nonexistent"), "http://127.0.0.1:9")  # any AWS call would fail to connect


def test_dangling_ref_is_rejected_before_any_aws_call(tmp_path: Path):
    mlops = mlops_template()
    mlops["Resources"]["BucketNameParam"]["Properties"]["Value"] = {"Ref": "ArtifactBuckt"}
    release = make_release(tmp_path / "r", templates={"Base": base_template(), "MLOps": mlops})
    with pytest.raises(TemplateError) as err:
        deploy_stage(release, "dev", UNREACHABLE)
    message = str(err.value)
    assert "stages/dev/templates/MLOps.template.json" in message
    assert "resource 'BucketNameParam' refers to 'ArtifactBuckt' (Ref)" in message


def _with(mutate) -> dict:
    template = copy.deepcopy(mlops_template())
    mutate(template)
    return template


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            lambda t: t["Resources"]["ArtifactBucket"].update(DependsOn="BucketNameParam"),
            "circular dependency between resources: ArtifactBucket -> BucketNameParam -> ArtifactBucket",
        ),
        (
            lambda t: t["Resources"]["GroupArnParam"].update(DependsOn=["Nope"]),
            "resource 'GroupArnParam' DependsOn unknown resource 'Nope'",
        ),
        (
            lambda t: t["Resources"]["GroupArnParam"].update(Condition="IsProd"),
            "resource 'GroupArnParam' has unknown condition 'IsProd'",
        ),
        (
            lambda t: t["Resources"]["GroupArnParam"]["Properties"].update(Value={"Fn::GetAtt": ["KeyArn", "Arn"]}),
            "refers to 'KeyArn.Arn' (Fn::GetAtt), which is not a resource",
        ),
        (
            lambda t: t["Resources"]["GroupArnParam"]["Properties"].update(Value={"Fn::Sub": "${Bucket.Arn}/x"}),
            "refers to 'Bucket.Arn' (Fn::Sub)",
        ),
        (
            lambda t: t["Resources"]["GroupArnParam"]["Properties"].update(Value={"Fn::If": ["Missing", "a", "b"]}),
            "uses Fn::If with unknown condition 'Missing'",
        ),
        (
            lambda t: t.update(Conditions={"C": {"Fn::Equals": [{"Ref": "ArtifactBucket"}, "x"]}}),
            "condition 'C' refers to 'ArtifactBucket' (Ref), which is not a parameter",
        ),
        (lambda t: t.update(Resourcez={}), "unknown top-level section 'Resourcez'"),
    ],
)
def test_structural_validation_names_the_problem(mutate, expected):
    with pytest.raises(TemplateError) as err:
        validate_template(_with(mutate), "MLOps.template.json")
    assert str(err.value).startswith("MLOps.template.json: ")
    assert expected in str(err.value)


def test_valid_templates_pass_and_sub_literals_and_locals_are_not_references():
    template = mlops_template()
    template["Resources"]["GroupArnParam"]["Properties"]["Value"] = {
        "Fn::Sub": ["${!Literal}-${Local}-${ArtifactBucket.Arn}-${AWS::Region}", {"Local": "x"}]
    }
    for t in (base_template(), template, inference_template()):
        validate_template(t, "t.json")


def test_stack_order_follows_the_ssm_parameters_stacks_share():
    producer = {"Resources": {"P": {"Type": "AWS::SSM::Parameter", "Properties": {"Name": "/x/y", "Value": "v"}}}}
    consumer = {
        "Parameters": {"Y": {"Type": "AWS::SSM::Parameter::Value<String>", "Default": "/x/y"}},
        "Resources": {"Q": {"Type": "AWS::SNS::Topic"}},
    }
    # Without the link, Base would come first; the consumer must wait for the producer.
    assert stack_order({"Base": consumer, "Zeta": producer}) == ["Zeta", "Base"]
    assert stack_order({"Inference": base_template(), "MLOps": mlops_template(), "Base": base_template()})[0] == "Base"
    with pytest.raises(TemplateError, match="a cycle"):
        both = copy.deepcopy(producer) | {"Parameters": consumer["Parameters"]}
        stack_order({"A": both, "B": both})


def test_unknown_stage_is_refused(tmp_path: Path):
    release = make_release(tmp_path / "r")
    with pytest.raises(DeployError, match="has no stage 'qa' \\(has dev\\)"):
        deploy_stage(release, "qa", UNREACHABLE)


@pytest.mark.parametrize(
    "pin, expected",
    [
        (model_pin(package_arn="my-model"), "field 'model.package_arn': not a versioned model package ARN"),
        (model_pin(image=IMAGE.split("@")[0] + ":1.2-1"), "field 'model.image': must be an ECR image by digest"),
        (model_pin(sha="ABC"), "field 'model.artifact.sha256': must be 64 lower-case hex"),
        (model_pin(auc=0.6), "auc 0.6000 is under stage 'dev' threshold 0.7"),
        ({"served": None}, "expected a mapping with a 'model' key"),
    ],
)
def test_a_bad_model_pin_in_the_release_is_refused_before_any_aws_call(tmp_path: Path, pin, expected):
    release = make_release(tmp_path / "r", pin=pin)
    with pytest.raises(GitopsError) as err:
        deploy_stage(release, "dev", UNREACHABLE)  # any AWS call would fail to connect instead
    assert str(err.value).startswith(f"{release / 'model.json'}: ")
    message = str(err.value).removeprefix(f"{release / 'model.json'}: ")
    assert expected in message and "\n" not in message and len(message) < 180


# ---------------------------------------------------------------- deploy on the embedded target


def test_account_mismatch_is_refused_before_any_change(tmp_path: Path, target: Target):
    release = make_release(tmp_path / "r")
    wrong = OtherAccountTarget("local", target.local_dir, target.endpoint_url)
    with pytest.raises(DeployError) as err:
        deploy_stage(release, "dev", wrong)
    assert "refusing to deploy stage 'dev' (account 111111111111)" in str(err.value)
    assert "credentials of account 999999999999" in str(err.value)
    for account in (ACCOUNT, "999999999999"):
        aws = clients(target, account)
        assert aws["cloudformation"].describe_stacks()["Stacks"] == []
        assert aws["s3"].list_buckets()["Buckets"] == []
        assert aws["ssm"].describe_parameters()["Parameters"] == []


def test_deploy_creates_stacks_uploads_encrypted_assets_and_pipelines(tmp_path: Path, target: Target):
    release = make_release(tmp_path / "r")
    messages: list[str] = []
    report = deploy_stage(release, "dev", target, progress=messages.append)
    assert report.ok, report.error
    assert [(s.name, s.action) for s in report.stacks] == [
        ("Base", "created"),
        ("MLOps", "created"),
        ("Inference", "created"),
    ]
    assert [(p.pipeline_name, p.action) for p in report.pipelines] == [("mlops-dev-training", "created")]
    assert report.model_package_group == "mlops-dev-models: created (outside CloudFormation)"
    assert report.model == "none pinned (no endpoint)"
    assert sorted(report.assets_uploaded) == [
        f"s3://{CDK_BUCKET}/{sha256_bytes(CDK_ASSET)}.zip",
        f"s3://{BUCKET}/{STEP_PATH}",
    ]
    assert any("mlops-dev-base: created" in m for m in messages)

    aws = clients(target)
    head = aws["s3"].head_object(Bucket=BUCKET, Key=STEP_PATH, ChecksumMode="ENABLED")
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"] == f"arn:aws:kms:{REGION}:{ACCOUNT}:alias/mlops-dev"
    # S3 computed the checksum from the bytes it stored: that, not a metadata label, is what deploy compares.
    assert base64.b64decode(head["ChecksumSHA256"]).hex() == sha256_bytes(STEP_CODE)
    pipeline = aws["sagemaker"].describe_pipeline(PipelineName="mlops-dev-training")
    assert json.loads(pipeline["PipelineDefinition"]) == pipeline_definition()
    assert pipeline["RoleArn"] == f"arn:aws:iam::{ACCOUNT}:role/mlops-dev-sagemaker-execution"
    tags = {t["Key"]: t["Value"] for t in aws["sagemaker"].list_tags(ResourceArn=pipeline["PipelineArn"])["Tags"]}
    assert tags["gitops:release-id"] == report.release_id
    # The MLOps stack read the key ARN the Base stack published: order and SSM wiring worked.
    key_arn = aws["ssm"].get_parameter(Name="/mlops/dev/kms/key-arn")["Parameter"]["Value"]
    assert key_arn.startswith(f"arn:aws:kms:{REGION}:{ACCOUNT}:key/")
    assert aws["ssm"].get_parameter(Name="/mlops/dev/inference/model")["Parameter"]["Value"] == "none"
    json.dumps(report.to_dict())  # the --json output


def test_redeploy_of_the_same_release_changes_nothing(tmp_path: Path, target: Target):
    release = make_release(tmp_path / "r")
    assert deploy_stage(release, "dev", target).ok
    again = deploy_stage(release, "dev", target)
    assert again.ok, again.error
    assert {s.action for s in again.stacks} == {"unchanged"}
    assert [p.action for p in again.pipelines] == ["unchanged"]
    assert again.assets_uploaded == []
    assert len(again.assets_skipped) == 2
    assert again.model_package_group == "mlops-dev-models: exists"
    cfn = clients(target)["cloudformation"]
    # "no changes" change sets are deleted, not left behind
    for stack in again.stacks:
        assert [
            c for c in cfn.list_change_sets(StackName=stack.stack_name)["Summaries"] if c["Status"] == "FAILED"
        ] == []


def test_a_new_pipeline_definition_updates_only_the_pipeline(tmp_path: Path, target: Target):
    assert deploy_stage(make_release(tmp_path / "r1"), "dev", target).ok
    report = deploy_stage(make_release(tmp_path / "r2", definition=pipeline_definition("v2")), "dev", target)
    assert report.ok, report.error
    assert {s.action for s in report.stacks} == {"unchanged"}
    assert [p.action for p in report.pipelines] == ["updated"]
    sm = clients(target)["sagemaker"]
    live = sm.describe_pipeline(PipelineName="mlops-dev-training")
    assert json.loads(live["PipelineDefinition"])["Metadata"] == {"marker": "v2"}
    tags = {t["Key"]: t["Value"] for t in sm.list_tags(ResourceArn=live["PipelineArn"])["Tags"]}
    assert tags["gitops:release-id"] == report.release_id


def test_embedded_projection_reports_exactly_what_it_drops(tmp_path: Path, target: Target):
    report = deploy_stage(make_release(tmp_path / "r"), "dev", target)
    assert report.ok, report.error
    mlops = next(s for s in report.stacks if s.name == "MLOps")
    assert [(d.logical_id, d.type, d.reason) for d in mlops.dropped] == [
        ("ArtifactBucketPolicy", "AWS::S3::BucketPolicy", "type not supported by moto's CloudFormation"),
        ("GroupArnParam", "AWS::SSM::Parameter", "refers to dropped ModelPackageGroup (Fn::GetAtt)"),
        ("ModelPackageGroup", "AWS::SageMaker::ModelPackageGroup", "type not supported by moto's CloudFormation"),
        ("Outputs.GroupArn", "Output", "refers to dropped ModelPackageGroup (Fn::GetAtt)"),
    ]
    assert mlops.detached_depends_on == {"BucketNameParam": ["ArtifactBucketPolicy"]}
    base = next(s for s in report.stacks if s.name == "Base")
    assert base.dropped == [] and base.adjusted == [
        "Key (AWS::KMS::Key): Tags left out: moto's KMS model misreads CloudFormation tags (KeyError 'TagKey')"
    ]
    assert report.dropped_counts == {
        "AWS::S3::BucketPolicy": 1,
        "AWS::SageMaker::ModelPackageGroup": 1,
        "AWS::SSM::Parameter": 1,
        "Output": 1,
    }
    # What was deployed is the projection: the kept resources exist, the dropped ones do not.
    cfn = clients(target)["cloudformation"]
    live = {r["LogicalResourceId"] for r in cfn.describe_stack_resources(StackName="mlops-dev-mlops")["StackResources"]}
    assert live == {"ArtifactBucket", "BucketNameParam"}


def test_projection_drops_custom_resources_and_keeps_a_placeholder():
    template = {
        "Resources": {
            "Seed": {"Type": "Custom::SeedRepository", "Properties": {"ServiceToken": "arn:aws:lambda:x"}},
            "Uses": {
                "Type": "AWS::SSM::Parameter",
                "Properties": {"Type": "String", "Value": {"Fn::Sub": "${Seed.Out}"}},
            },
        }
    }
    projection = embedded_projection(template)
    assert [d.logical_id for d in projection.dropped] == ["Seed", "Uses"]
    assert "Lambda provider" in projection.dropped[0].reason
    assert list(projection.template["Resources"]) == ["GitopsEmbeddedPlaceholder"]
    assert template["Resources"]["Seed"]  # the release's template is left untouched


def _trained_in_dev(target: Target, data: bytes = ARTIFACT) -> None:
    """What a training job leaves behind: model.tar.gz in dev's artifact bucket."""
    clients(target)["s3"].put_object(Bucket=BUCKET, Key=TRAINED_KEY, Body=data)


def _served(target: Target) -> str:
    return clients(target)["ssm"].get_parameter(Name="/mlops/dev/inference/model")["Parameter"]["Value"]


def test_deploy_serves_the_pin_and_never_asks_the_registry(tmp_path: Path, target: Target, monkeypatch):
    """(a) deploy never looks the model up; (b) approving a package changes nothing until the pin changes."""
    assert deploy_stage(make_release(tmp_path / "empty"), "dev", target).ok
    _trained_in_dev(target)
    sm = clients(target)["sagemaker"]
    sm.create_model_package(ModelPackageGroupName="mlops-dev-models", ModelApprovalStatus="Approved")
    # Deploy makes no registry read at all: every SageMaker model-package call it could make fails the test.
    import botocore.client

    real = botocore.client.BaseClient._make_api_call

    def guarded(self, operation, params):
        assert "ModelPackage" not in operation or operation == "CreateModelPackageGroup" or "Group" in operation, (
            f"deploy called {operation}"
        )
        return real(self, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", guarded)
    unpinned = deploy_stage(make_release(tmp_path / "empty2"), "dev", target)
    assert unpinned.ok and _served(target) == "none"  # an Approved package alone serves nothing

    pinned = deploy_stage(make_release(tmp_path / "pinned", pin=model_pin()), "dev", target)
    assert pinned.ok, pinned.error
    staged = f"s3://{BUCKET}/models/{ARTIFACT_SHA}/model.tar.gz"
    assert _served(target) == f"{staged} {ARTIFACT_SHA}"
    assert pinned.model_artifact == f"{staged}: copied from s3://{BUCKET}/{TRAINED_KEY} (S3's ChecksumSHA256)"
    head = clients(target)["s3"].head_object(Bucket=BUCKET, Key=f"models/{ARTIFACT_SHA}/model.tar.gz")
    assert head["ServerSideEncryption"] == "aws:kms"

    # The training output is overwritten or deleted afterwards: the stage's content-addressed copy still serves.
    _trained_in_dev(target, b"something else")
    again = deploy_stage(make_release(tmp_path / "pinned", pin=model_pin()), "dev", target)
    assert again.ok and again.model_artifact == f"{staged}: in place (S3's ChecksumSHA256)"
    assert _served(target) == f"{staged} {ARTIFACT_SHA}"


def test_a_pin_whose_sha256_does_not_match_the_artifact_deploys_nothing(tmp_path: Path, target: Target):
    assert deploy_stage(make_release(tmp_path / "empty"), "dev", target).ok
    _trained_in_dev(target, b"not the pinned bytes")
    stacks_before = clients(target)["cloudformation"].describe_stacks()["Stacks"]
    with pytest.raises(GitopsError) as err:
        deploy_stage(make_release(tmp_path / "pinned", pin=model_pin()), "dev", target)
    message = str(err.value)
    assert message.startswith(f"models/serving.yaml: artifact s3://{BUCKET}/{TRAINED_KEY} has sha256 ")
    assert f"the pin says {ARTIFACT_SHA[:12]}" in message and "refusing to serve it" in message
    after = clients(target)["cloudformation"].describe_stacks()["Stacks"]
    assert [(s["StackName"], s.get("LastUpdatedTime")) for s in after] == [
        (s["StackName"], s.get("LastUpdatedTime")) for s in stacks_before
    ]
    assert _served(target) == "none"


def _failing_mlops() -> dict:
    mlops = mlops_template()
    mlops["Resources"]["Handler"] = {
        "Type": "AWS::Lambda::Function",
        "Properties": {
            "Code": {"S3Bucket": "no-such-bucket-anywhere", "S3Key": "x.zip"},
            "Role": f"arn:aws:iam::{ACCOUNT}:role/x",
            "Handler": "index.handler",
            "Runtime": "python3.12",
        },
    }
    return mlops


def test_a_failing_stack_stops_the_deploy_with_its_reason_and_the_next_deploy_converges(tmp_path: Path, target):
    bad = make_release(
        tmp_path / "bad",
        templates={"Base": base_template(), "MLOps": _failing_mlops(), "Inference": inference_template()},
    )
    report = deploy_stage(bad, "dev", target)
    assert not report.ok
    assert [(s.name, s.action) for s in report.stacks] == [("Base", "created"), ("MLOps", "failed")]
    assert "NoSuchBucket" in report.stacks[1].reason
    assert report.pipelines == []
    with pytest.raises(DeployFailed, match="deploy of stage 'dev' failed: stack mlops-dev-mlops: .*NoSuchBucket"):
        report.raise_for_failure()

    good = deploy_stage(make_release(tmp_path / "good"), "dev", target)
    assert good.ok, good.error
    mlops = good.stacks[1]
    assert (mlops.action, mlops.note) == (
        "created",
        "deleted the empty stack an earlier failed deploy left in REVIEW_IN_PROGRESS",
    )


def test_a_template_above_the_body_limit_goes_through_s3(tmp_path: Path, target: Target):
    base = base_template()
    base["Metadata"] = {"Padding": "x" * 60_000}
    report = deploy_stage(
        make_release(tmp_path / "r", templates={"Base": base, "MLOps": mlops_template()}), "dev", target
    )
    assert report.ok, report.error
    body = clients(target)["cloudformation"].get_template(StackName="mlops-dev-base")["TemplateBody"]
    assert body["Metadata"]["Padding"] == "x" * 60_000
    listed = clients(target)["s3"].list_objects_v2(Bucket=CDK_BUCKET, Prefix="gitops-templates/")
    assert len(listed["Contents"]) == 1


def test_aws_target_requires_the_cdk_bootstrap(tmp_path: Path, moto_server, monkeypatch):
    """On AWS there is no stand-in: a missing bootstrap is a clear refusal before any stack changes."""
    _, endpoint = moto_server
    reset_moto(endpoint)
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)  # "real AWS" code path, answered by moto
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    moto_default_account = "123456789012"
    release = make_release(tmp_path / "r", account=moto_default_account)
    with pytest.raises(DeployError) as err:
        deploy_stage(release, "dev", Target("aws"))
    assert "is not CDK-bootstrapped (SSM parameter /cdk-bootstrap/hnb659fds/version is missing)" in str(err.value)
    assert "npx aws-cdk@^2.1148 bootstrap aws://123456789012/eu-west-1" in err.value.hint
    import boto3

    cfn = boto3.client("cloudformation", region_name=REGION)
    assert cfn.describe_stacks()["Stacks"] == []


# ---------------------------------------------------------------- the real release


@pytest.fixture(scope="session")
def rendered_release(tmp_path_factory) -> tuple[Path, float]:
    """The repository's release and its render time, rendered once per session (the render cache helps)."""
    if not (ROOT / "infra" / "app.py").exists():
        pytest.skip("infra/app.py does not exist yet")
    from gitops.release.render import render_release

    out = tmp_path_factory.mktemp("release") / "release"
    return out, render_release(ROOT, out).seconds


def pinned_release(release: Path, out: Path, target: Target) -> Path:
    """The rendered release with the sample model pinned, its artifact where training would leave it in dev."""
    from gitops.local.sample_model import stand_in_image, train_sample_model
    from gitops.model.pin import ModelPin, load_release_pin, release_model_bytes

    trained = train_sample_model(ROOT)
    clients(target)["s3"].put_object(Bucket=BUCKET, Key=TRAINED_KEY, Body=trained.data)
    tag, digest = stand_in_image(REGION)
    pin = ModelPin.model_validate(
        model_pin(sha=trained.sha256, auc=trained.metrics["auc"], image=f"{tag.rsplit(':', 1)[0]}@{digest}")
    )
    repin_release(release, out, release_model_bytes(pin, load_release_pin(release).sample))
    return out


@pytest.mark.slow
def test_real_release_deploys_and_verifies_on_the_embedded_target(rendered_release, target: Target, capsys):
    from gitops.deploy.verify import verify_stage

    release, render_seconds = rendered_release
    started = time.perf_counter()
    report = deploy_stage(release, "dev", target)
    deployed = time.perf_counter() - started
    assert report.ok, report.error
    assert [s.name for s in report.stacks][0] == "Base"
    assert {s.action for s in report.stacks} == {"created"}
    assert {p.action for p in report.pipelines} == {"created"}
    verified = verify_stage(release, "dev", target)
    assert verified.ok, verified.problems
    again = deploy_stage(release, "dev", target)
    assert {s.action for s in again.stacks} == {"unchanged"} and {p.action for p in again.pipelines} == {"unchanged"}

    # Once a model is pinned (a release with another model.json), deploy serves it and verify calls it.
    release = pinned_release(release, release.parent / "pinned", target)
    served = deploy_stage(release, "dev", target)
    assert served.ok, served.error
    assert served.stacks[-1].action == "created"  # recreated on moto
    served_checks = verify_stage(release, "dev", target).checks
    prediction = next(c for c in served_checks if c.kind == "prediction")
    assert prediction.ok and prediction.detail.startswith("local: code/inference.py of the pinned artifact")
    served_model = next(c for c in served_checks if c.kind == "served-model")  # read back from the live endpoint
    assert served_model.ok and served_model.detail.startswith("every variant runs the pinned image and artifact")
    endpoint = next(c for c in served_checks if c.kind == "endpoint")
    assert endpoint.name == "mlops-dev-inference/ServingEndpointC149CBA2"
    assert (endpoint.ok, endpoint.skipped) == (True, False) and " InService on " in endpoint.detail

    # Out of band: a VPC endpoint and the SageMaker endpoint are deleted. The templates still
    # match, so only reading the resources back finds it; deploy then puts both back.
    aws = clients(target)
    vpce = aws["ec2"].describe_vpc_endpoints()["VpcEndpoints"]
    gone = next(e for e in vpce if e["ServiceName"].endswith(".sagemaker.runtime"))
    aws["ec2"].delete_vpc_endpoints(VpcEndpointIds=[gone["VpcEndpointId"]])
    serving = endpoint.detail.split()[0]
    aws["sagemaker"].delete_endpoint(EndpointName=serving)
    drifted = verify_stage(release, "dev", target)
    problems = drifted.problems
    assert any(p.startswith("vpc-endpoint mlops-dev-network/") and "sagemaker.runtime" in p for p in problems), problems
    assert any(p.startswith("endpoint mlops-dev-inference/") for p in problems), problems
    assert not any(p.startswith("aws ") for p in problems), problems  # every check ran
    repaired = deploy_stage(release, "dev", target)
    assert repaired.ok, repaired.error
    assert {s.action for s in repaired.stacks} == {"unchanged"}
    fixed = {s.name: s.repaired for s in repaired.stacks if s.repaired}
    assert sorted(fixed) == ["Inference", "Network"], fixed
    after = verify_stage(release, "dev", target)
    assert after.ok, after.problems
    total = time.perf_counter() - started
    with capsys.disabled():
        print(
            f"\n[real release, stage dev] render {render_seconds:.1f}s; deploy {deployed:.1f}s {report.timings};"
            f" verify {verified.seconds:.1f}s; re-deploy {again.seconds:.1f}s; with a model {served.seconds:.1f}s;"
            f" total {total:.1f}s\n[dropped on moto] {report.dropped_counts}\n[drift found] {problems}"
            f"\n[repaired] {fixed}"
        )


def test_moto_capabilities_are_cached_per_version_and_agree_with_moto(tmp_path, monkeypatch):
    import gitops.local.projection as deploy_module

    fresh = deploy_module.MotoCapabilities(tmp_path)
    answers = (
        fresh.supports("AWS::S3::Bucket"),
        fresh.supports("AWS::CodePipeline::Pipeline"),
        fresh.has_attr("AWS::S3::Bucket", "Arn"),
        fresh.has_attr("AWS::S3::Bucket", "NoSuchAttribute"),
    )
    assert answers == (True, False, True, False)
    fresh.save()

    def no_moto():
        raise AssertionError("moto's models were imported although the answers are cached")

    monkeypatch.setattr(deploy_module, "_moto_models", no_moto)
    cached = deploy_module.MotoCapabilities(tmp_path)
    assert (
        cached.supports("AWS::S3::Bucket"),
        cached.supports("AWS::CodePipeline::Pipeline"),
        cached.has_attr("AWS::S3::Bucket", "Arn"),
        cached.has_attr("AWS::S3::Bucket", "NoSuchAttribute"),
    ) == answers


def test_cloudformation_acts_as_the_stage_execution_role_once_it_exists(tmp_path: Path, target: Target, monkeypatch):
    """moto ignores RoleARN; the request itself is what AWS would act on, so it is what is checked."""
    import botocore.client

    sent: list[dict] = []
    real = botocore.client.BaseClient._make_api_call

    def record(self, operation, params):
        if operation == "CreateChangeSet":
            sent.append(params)
        return real(self, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", record)
    release = make_release(tmp_path / "r")
    assert deploy_stage(release, "dev", target).ok
    assert sent and all("RoleARN" not in p for p in sent)  # first deploy: the role does not exist yet
    sent.clear()
    assert deploy_stage(release, "dev", target).ok
    role = f"arn:aws:iam::{ACCOUNT}:role/mlops-dev-cfn-exec"
    assert sent and all(p.get("RoleARN") == role for p in sent)


def test_an_edited_manifest_summary_cannot_change_what_deploys(tmp_path: Path):
    """The summary is inside the release id: dropping a stack from it must not drop it from deploy."""
    from gitops.errors import ReleaseError
    from gitops.release.manifest import MANIFEST, manifest_bytes, read_manifest

    release = make_release(tmp_path / "r")
    manifest = read_manifest(release)
    del manifest.stages["dev"].stacks["Inference"]
    (release / MANIFEST).write_bytes(manifest_bytes(manifest))
    with pytest.raises(ReleaseError, match="manifest.json: release_id .* does not match the manifest's content"):
        plan_stage(release, "dev", Target("local", tmp_path, "http://127.0.0.1:1"))


def test_deploy_refuses_an_env_repository_of_another_stage(tmp_path: Path):
    import os
    import subprocess
    import sys

    (tmp_path / "env" / "release").mkdir(parents=True)
    (tmp_path / "env" / "STAGE").write_text("dev\n")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "gitops",
            "deploy",
            "--stage",
            "prod",
            "--release",
            str(tmp_path / "env" / "release"),
            "--target",
            "aws",
        ],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert done.returncode == 1
    assert "belongs to stage 'dev', not 'prod'" in done.stderr.splitlines()[0]
