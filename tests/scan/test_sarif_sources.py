"""SARIF locations a PR can annotate: each template finding points at the CDK source that made the resource."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema

from gitops.release.pipelines import canonical_json
from gitops.scan.findings import Finding
from gitops.scan.reports import sarif_log
from gitops.scan.result import ScanReport, ToolStats

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "tests" / "fixtures" / "scan" / "sarif-2.1.0-rtm.5.json"
TEMPLATE = "stages/dev/templates/MLOps.template.json"


def _finding(resource: str) -> Finding:
    return Finding(
        tool="checkov",
        rule_id="CKV_AWS_18",
        severity="error",
        message="Ensure the S3 bucket has access logging enabled",
        file=TEMPLATE,
        stage="dev",
        stack="MLOps",
        resource=resource,
        line=4,
    )


def _log(tmp_path: Path, resources: dict) -> dict:
    release = tmp_path / "release-copy"
    (release / TEMPLATE).parent.mkdir(parents=True)
    (release / TEMPLATE).write_bytes(canonical_json({"Resources": resources}))
    findings = [_finding(lid) for lid in resources]
    tools = {"checkov": ToolStats("checkov", "3.3.30", 10, len(findings), 0, 1.0)}
    report = ScanReport("ab" * 32, ROOT, release, "policy.yaml", False, findings, [], tools, 1.0, {})
    log = sarif_log(report)
    jsonschema.Draft4Validator(json.loads(SCHEMA.read_text())).validate(log)
    return log


def _line_of(rel: str, text: str) -> int:
    return next(n for n, line in enumerate((ROOT / rel).read_text().splitlines(), 1) if text in line)


def test_a_finding_points_at_the_line_of_infra_that_made_the_resource_and_keeps_the_template_as_related(tmp_path):
    bucket = {"Type": "AWS::S3::Bucket", "Metadata": {"aws:cdk:path": "dev/MLOps/ArtifactBucket/Resource"}}
    (result,) = _log(tmp_path, {"ArtifactBucket1A2B": bucket})["runs"][0]["results"]
    (primary,) = result["locations"]
    assert primary["physicalLocation"]["artifactLocation"]["uri"] == "infra/stacks/mlops.py"
    assert primary["physicalLocation"]["region"]["startLine"] == _line_of("infra/stacks/mlops.py", '"ArtifactBucket",')
    assert primary["message"]["text"] == "construct dev/MLOps/ArtifactBucket/Resource"
    assert primary["logicalLocations"][0]["fullyQualifiedName"] == "dev/MLOps/ArtifactBucket1A2B"
    (related,) = result["relatedLocations"]
    # The release directory is outside the repository here, so its path is shown as release/.
    assert related["physicalLocation"]["artifactLocation"]["uri"] == f"release/{TEMPLATE}"
    assert related["physicalLocation"]["region"]["startLine"] == 4
    assert "[the template](1)" in result["message"]["text"]


def test_a_construct_named_at_run_time_points_at_its_stack_module(tmp_path):
    project = {"Type": "AWS::CodeBuild::Project", "Metadata": {"aws:cdk:path": "dev/MLOps/DeployProject/Resource"}}
    (result,) = _log(tmp_path, {"DeployProject": project})["runs"][0]["results"]
    assert result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "infra/stacks/mlops.py"


def test_without_construct_metadata_the_rendered_template_stays_the_location(tmp_path):
    (result,) = _log(tmp_path, {"Bucket": {"Type": "AWS::S3::Bucket"}})["runs"][0]["results"]
    assert result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == f"release/{TEMPLATE}"
    assert "relatedLocations" not in result
