"""Each way past the gate that once got through is refused now, with the rule named.

One release of hand-written templates (as a hand edit of the rendered release would look) and a
pipeline definition, one `gitops scan` over it through the CLI (one checkov run), then a test per
bypass: the public bucket policy, the internet gateway route, privileged mode, the pipeline job
without isolation or KMS, the bridgecrew skip, the skip in a tag, and the twenty-x reason.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from gitops.release.pipelines import canonical_json
from gitops.scan import checkov

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scan_builders import source_tree, write_release  # noqa: E402

GITOPS = [sys.executable, "-m", "gitops"]
ENCRYPTION = {"ServerSideEncryptionConfiguration": [{"ServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms"}}]}
PRIVATE = {
    "BlockPublicAcls": True,
    "BlockPublicPolicy": True,
    "IgnorePublicAcls": True,
    "RestrictPublicBuckets": True,
}


def _template(resources: dict) -> bytes:
    return canonical_json({"AWSTemplateFormatVersion": "2010-09-09", "Resources": resources})


def _model(**extra) -> dict:
    """A SageMaker model without network isolation (checkov CKV_AWS_370), plus whatever is given."""
    return {
        "Type": "AWS::SageMaker::Model",
        "Properties": {
            "ExecutionRoleArn": "arn:aws:iam::111111111111:role/model",
            "PrimaryContainer": {"Image": "111111111111.dkr.ecr.eu-west-1.amazonaws.com/model:1"},
            **extra.pop("Properties", {}),
        },
        **extra,
    }


def _build(name: str, privileged: bool) -> dict:
    return {
        "Type": "AWS::CodeBuild::Project",
        "Properties": {
            "Name": name,
            "ServiceRole": "arn:aws:iam::111111111111:role/build",
            "EncryptionKey": "arn:aws:kms:eu-west-1:111111111111:alias/mlops-dev",
            "Artifacts": {"Type": "NO_ARTIFACTS"},
            "Source": {"Type": "NO_SOURCE", "BuildSpec": "version: 0.2\nphases:\n  build:\n    commands: [make]\n"},
            "Environment": {
                "Type": "LINUX_CONTAINER",
                "ComputeType": "BUILD_GENERAL1_SMALL",
                "Image": "aws/codebuild/standard:7.0",
                "PrivilegedMode": privileged,
            },
        },
    }


TEMPLATES = {
    "PublicPolicy": {
        "Bucket": {
            "Type": "AWS::S3::Bucket",
            "Properties": {"BucketEncryption": ENCRYPTION, "PublicAccessBlockConfiguration": PRIVATE},
        },
        "BucketPolicy": {
            "Type": "AWS::S3::BucketPolicy",
            "Properties": {
                "Bucket": {"Ref": "Bucket"},
                "PolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": "*",
                            "Action": "s3:GetObject",
                            "Resource": {"Fn::Sub": "${Bucket.Arn}/*"},
                        }
                    ],
                },
            },
        },
    },
    "InternetRoute": {
        "Vpc": {"Type": "AWS::EC2::VPC", "Properties": {"CidrBlock": "10.0.0.0/16"}},
        "Gateway": {"Type": "AWS::EC2::InternetGateway"},
        "Attachment": {
            "Type": "AWS::EC2::VPCGatewayAttachment",
            "Properties": {"VpcId": {"Ref": "Vpc"}, "InternetGatewayId": {"Ref": "Gateway"}},
        },
        "Routes": {"Type": "AWS::EC2::RouteTable", "Properties": {"VpcId": {"Ref": "Vpc"}}},
        "DefaultRoute": {
            "Type": "AWS::EC2::Route",
            "DependsOn": "Attachment",
            "Properties": {
                "RouteTableId": {"Ref": "Routes"},
                "DestinationCidrBlock": "0.0.0.0/0",
                "GatewayId": {"Ref": "Gateway"},
            },
        },
    },
    "Builds": {"Privileged": _build("privileged", True), "ImageBuild": _build("image-build", True)},
    "BridgecrewSkip": {
        "Model": _model(Metadata={"bridgecrew": {"skip": [{"id": "CKV_AWS_370", "comment": "not needed"}]}})
    },
    "TagSkip": {
        "Model": _model(Properties={"Tags": [{"Key": "note", "Value": "checkov:skip=CKV_AWS_370:isolation is off"}]})
    },
}
# A training job with no network isolation and no KMS key on its volume or output, in a Condition's branch.
OPEN_PIPELINE = {
    "Version": "2020-12-01",
    "Parameters": [],
    "Steps": [
        {
            "Name": "Gate",
            "Type": "Condition",
            "Arguments": {
                "Conditions": [],
                "ElseSteps": [],
                "IfSteps": [
                    {
                        "Name": "TrainOpen",
                        "Type": "Training",
                        "Arguments": {
                            "AlgorithmSpecification": {"TrainingImage": "img", "TrainingInputMode": "File"},
                            "OutputDataConfig": {"S3OutputPath": "s3://bucket/out"},
                            "ResourceConfig": {
                                "InstanceCount": 2,
                                "InstanceType": "ml.m5.xlarge",
                                "VolumeSizeInGB": 30,
                            },
                            "RoleArn": "arn:aws:iam::111111111111:role/sagemaker",
                            "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
                        },
                    }
                ],
            },
        }
    ],
}
POLICY = """\
version: 1
suppressions:
  - rule: E9201
    resources: [InternetRoute/Gateway]
    reason: >-
      CloudFront VPC origins need an internet gateway attached to the VPC; no route table sends traffic
      to it, so no subnet reaches the internet through it.
  - rule: E9301
    resources: [Builds/ImageBuild]
    reason: >-
      The image build: docker build needs the daemon, so this one project runs privileged; it builds from
      the reviewed Dockerfile only and pushes to the stage's own repository.
"""


def run_scan(release: Path, source: Path, reports: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            *GITOPS,
            "scan",
            "--release",
            str(release),
            "--root",
            str(source),
            "--json",
            "--sarif",
            str(reports / "scan.sarif"),
            "--junit",
            str(reports / "scan-junit.xml"),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=600,
    )


@pytest.fixture(scope="module")
def bypasses(tmp_path_factory, checkov_env) -> dict:
    base = tmp_path_factory.mktemp("bypasses")
    release = write_release(
        base / "release",
        {name: _template(resources) for name, resources in TEMPLATES.items()},
        pipelines={"open": canonical_json(OPEN_PIPELINE)},
    )
    source = source_tree(base / "source", secret=False)
    (source / "policy.yaml").write_text(POLICY)
    done = run_scan(release, source, base / "reports", {checkov.ENV_OVERRIDE: str(checkov_env)})
    assert done.stdout, done.stderr
    return {
        "exit": done.returncode,
        "report": json.loads(done.stdout),
        "sarif": json.loads((base / "reports" / "scan.sarif").read_text()),
        "junit": ET.parse(base / "reports" / "scan-junit.xml").getroot(),
        "release": release,
        "source": source,
        "base": base,
        "checkov_env": checkov_env,
    }


def named(report: dict, rule: str, stack: str | None = None) -> list[dict]:
    return [
        f
        for f in report["findings"]
        if rule in f["rule_ids"] and (stack is None or f["stack"] == stack or f["pipeline"] == stack)
    ]


def test_the_scan_fails(bypasses):
    assert bypasses["exit"] == 1 and bypasses["report"]["passed"] is False


def test_a_public_bucket_policy_is_refused_by_rule_e9101(bypasses):
    [finding] = named(bypasses["report"], "E9101", "PublicPolicy")
    assert finding["resource"] == "BucketPolicy" and "any principal" in finding["message"]
    assert finding["tool"] == "cfn-lint"


def test_a_route_to_the_internet_gateway_is_refused_by_rule_e9204_whatever_the_policy_says(bypasses):
    refused = named(bypasses["report"], "E9204", "InternetRoute")
    assert {f["resource"] for f in refused} == {"DefaultRoute"}
    assert any("0.0.0.0/0" in f["message"] for f in refused)
    assert any("internet gateway" in f["message"] for f in refused)
    # The gateway itself is named in policy.yaml with why: suppressed, and the route is still refused.
    suppressed = [s for s in bypasses["report"]["suppressed"] if s["rule_id"] == "E9201"]
    assert [s["resource"] for s in suppressed] == ["Gateway"] and "CloudFront" in suppressed[0]["reason"]


def test_privileged_mode_is_refused_by_rule_e9301_except_for_the_image_build_in_policy(bypasses):
    [finding] = named(bypasses["report"], "E9301", "Builds")
    assert finding["resource"] == "Privileged" and "PrivilegedMode is true" in finding["message"]
    suppressed = [s for s in bypasses["report"]["suppressed"] if s["rule_id"] == "E9301"]
    assert [s["resource"] for s in suppressed] == ["ImageBuild"]


def test_a_pipeline_job_without_isolation_or_kms_is_refused_naming_pipeline_and_step(bypasses):
    report = bypasses["report"]
    for rule in ("GITOPS_SM_NETWORK_ISOLATION", "GITOPS_SM_VOLUME_KMS", "GITOPS_SM_OUTPUT_KMS", "GITOPS_SM_VPC"):
        [finding] = named(report, rule, "open")
        assert (finding["pipeline"], finding["step"], finding["tool"]) == ("open", "TrainOpen", "pipelines")
        assert "pipeline open, step TrainOpen" in finding["message"]
        assert finding["file"] == "release/stages/dev/pipelines/open.json" and finding["line"]
    # Two instances and no inter-container encryption.
    assert named(report, "GITOPS_SM_INTER_CONTAINER_ENCRYPTION", "open")


def test_pipeline_findings_are_in_the_sarif_and_junit_reports(bypasses):
    [run] = [r for r in bypasses["sarif"]["runs"] if r["tool"]["driver"]["name"] == "pipelines"]
    results = {r["ruleId"]: r for r in run["results"]}
    assert "GITOPS_SM_NETWORK_ISOLATION" in results
    [location] = results["GITOPS_SM_NETWORK_ISOLATION"]["locations"]
    assert location["logicalLocations"][0]["fullyQualifiedName"] == "dev/pipelines/open/TrainOpen"
    failing = [c.get("name") for c in bypasses["junit"].iter("testcase") if c.find("failure") is not None]
    assert "GITOPS_SM_VOLUME_KMS dev/pipelines/open/TrainOpen" in failing


def test_a_bridgecrew_skip_is_refused_and_hides_nothing(bypasses):
    report = bypasses["report"]
    [refusal] = named(report, "inline-suppression", "BridgecrewSkip")
    assert "bridgecrew" in refusal["message"] and "CKV_AWS_370" in refusal["message"]
    assert refusal["resource"] == "Model"
    # checkov read the template without the skip: the finding it would have hidden is there too.
    assert named(report, "CKV_AWS_370", "BridgecrewSkip")


def test_a_skip_written_in_a_tag_value_is_refused_and_hides_nothing(bypasses):
    report = bypasses["report"]
    [refusal] = named(report, "inline-suppression", "TagSkip")
    assert "checkov skip comment" in refusal["message"] and "Tags" in refusal["message"]
    assert named(report, "CKV_AWS_370", "TagSkip")


def test_coverage_reports_the_rules_that_ran_per_tool_and_resource_type(bypasses):
    coverage = bypasses["report"]["coverage"]
    assert {"cfn-lint", "checkov", "cdk-nag", "pipelines"} <= set(coverage)
    lint = coverage["cfn-lint"]
    assert {"E9101", "E9201", "E9204", "E9301"} <= set(lint["rule_ids"]) and lint["rules"] == len(lint["rule_ids"])
    assert "E9101" in lint["resource_types"]["AWS::S3::BucketPolicy"]["rule_ids"]
    assert "E9101" not in lint["resource_types"]["AWS::EC2::Route"]["rule_ids"]
    assert "CKV_AWS_370" in coverage["checkov"]["resource_types"]["AWS::SageMaker::Model"]["rule_ids"]
    assert "AwsSolutions-S1" in coverage["cdk-nag"]["resource_types"]["AWS::S3::Bucket"]["rule_ids"]
    training = coverage["pipelines"]["resource_types"]["SageMaker pipeline step: Training"]
    assert training["rules"] == 5


def _cli_with_policy(bypasses, policy: str, name: str) -> subprocess.CompletedProcess:
    source = bypasses["base"] / name
    source_tree(source, secret=False)
    (source / "policy.yaml").write_text(policy)
    return run_scan(
        bypasses["release"],
        source,
        bypasses["base"] / f"{name}-reports",
        {checkov.ENV_OVERRIDE: str(bypasses["checkov_env"])},
    )


def test_a_twenty_x_reason_is_refused_with_its_rule_named(bypasses):
    policy = (
        "suppressions:\n  - rule: E9101\n    resources: [PublicPolicy/BucketPolicy]\n    reason: " + "x" * 20 + "\n"
    )
    done = _cli_with_policy(bypasses, policy, "twenty-x")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    [line] = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert "policy.yaml: suppressions[0] (E9101): reason: refused (reason-repeated-character" in line
    assert len(line) < 250
    assert not (bypasses["base"] / "twenty-x-reports").exists()  # nothing written downstream


def test_a_route_to_the_internet_cannot_be_suppressed(bypasses):
    policy = (
        "suppressions:\n  - rule: E9204\n    resources: [InternetRoute/DefaultRoute]\n"
        "    reason: the application needs outbound internet access for its package downloads\n"
    )
    done = _cli_with_policy(bypasses, policy, "route")
    assert done.returncode == 1
    assert "E9204 (a route to the internet) can never be suppressed" in done.stderr
