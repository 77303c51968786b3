"""The policy gate on a deliberately insecure release: it fails, naming each problem, and its reports hold.

One small CDK app (tests/fixtures/scan/insecure) is synthesized once, through the same in-process
synth as `gitops render` (so cdk-nag runs on its constructs), into a small release; a source tree
with a generated AWS secret key sits beside it. One `gitops scan` over both (one checkov run) feeds
the tests that name each concern; policy, merging and bad input are tested without the scanners.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from datetime import date
from pathlib import Path

import jsonschema
import pytest

from gitops.release.assets import AssetRegistry
from gitops.release.manifest import load_release, read_manifest
from gitops.release.pipelines import canonical_json
from gitops.scan import checkov
from gitops.scan.errors import CheckovMissing, PolicyError, ScanError
from gitops.scan.findings import Finding, merge
from gitops.scan.inline_skips import inline_suppressions
from gitops.scan.policy import apply_policy, parse_policy
from gitops.scan.scanners import TOOL_ORDER
from gitops.scan.secrets import run_secrets_scan
from gitops.scan.templates import TemplateRef

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scan_builders import DEV, fake_aws_secret_key, source_tree, write_release  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "scan"
INSECURE_APP = FIXTURES / "insecure"
SARIF_SCHEMA = FIXTURES / "sarif-2.1.0-rtm.5.json"
GITOPS = [sys.executable, "-m", "gitops"]
TODAY = date(2026, 11, 21)
VALUES = {
    "dev": {"project": "mlops", "stage": "dev", "prefix": "mlops-dev", "account": "111111111111", "region": "eu-west-1"}
}


@pytest.fixture(scope="module")
def insecure(tmp_path_factory, checkov_env) -> dict:
    """The insecure app synthesized (cdk-nag included) into a release, scanned once through the CLI."""
    from gitops.release.synth import synthesize

    base = tmp_path_factory.mktemp("insecure")
    saved_env, saved_path = dict(os.environ), list(sys.path)
    try:
        synthesized = synthesize(INSECURE_APP, {"dev": DEV}, AssetRegistry())["dev"]
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        sys.path[:] = saved_path
    release = write_release(
        base / "release",
        {stack.name: canonical_json(stack.template) for stack in synthesized},
        nag={stack.name: stack.nag for stack in synthesized},
    )
    before = read_manifest(release)
    source = source_tree(base / "source", secret=True)
    reports = base / "reports"
    done = subprocess.run(
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
        env={**os.environ, checkov.ENV_OVERRIDE: str(checkov_env)},
        timeout=600,
    )
    assert done.stdout, done.stderr
    return {
        "release": release,
        "before": before,
        "exit": done.returncode,
        "report": json.loads(done.stdout),
        "sarif": json.loads((reports / "scan.sarif").read_text()),
        "junit": ET.parse(reports / "scan-junit.xml").getroot(),
    }


def findings_on(report: dict, stack: str) -> list[dict]:
    return [f for f in report["findings"] if f["stack"] == stack]


# The gate fails, naming each insecure variant --------------------------------------------------


def test_insecure_release_fails_the_gate(insecure):
    assert insecure["exit"] == 1
    assert insecure["report"]["passed"] is False


@pytest.mark.parametrize(
    ("stack", "rule", "concern"),
    [
        ("PublicBucket", "CKV_AWS_53", "public bucket"),
        ("PublicBucket", "AwsSolutions-S2", "public bucket"),
        ("UnencryptedBucket", "CKV2_GITOPS_2", "unencrypted bucket"),
        ("WildcardIam", "CKV_AWS_63", "IAM * action"),
        ("WildcardIam", "AwsSolutions-IAM5[Action::*]", "IAM * action"),
        ("WildcardIam", "AwsSolutions-IAM5[Resource::*]", "IAM * resource"),
        ("OpenModel", "CKV_AWS_370", "model without network isolation"),
        ("PlainEndpointConfig", "CKV2_GITOPS_1", "endpoint config without KMS"),
    ],
)
def test_each_insecure_variant_is_named(insecure, stack, rule, concern):
    named = [f for f in findings_on(insecure["report"], stack) if rule in f["rule_ids"]]
    assert named, f"{concern}: no finding {rule} on {stack}: {findings_on(insecure['report'], stack)}"
    finding = named[0]
    assert finding["stage"] == "dev" and finding["resource"], finding
    assert finding["file"] == f"release/stages/dev/templates/{stack}.template.json"


def test_a_hard_coded_aws_secret_key_in_source_is_named(insecure):
    source = [f for f in insecure["report"]["findings"] if f["file"] == "app/settings.py"]
    assert source, insecure["report"]["findings"]
    assert any("AWSKeyDetector" in f["rule_ids"] for f in source)
    assert all(f["tool"] == "detect-secrets" and f["line"] for f in source)
    assert not [f for f in insecure["report"]["findings"] if f["file"] == "app/clean.py"]


def test_the_same_problem_from_two_tools_is_shown_once_with_both_rule_ids(insecure):
    public = [f for f in findings_on(insecure["report"], "PublicBucket") if "AwsSolutions-S2" in f["rule_ids"]]
    assert len(public) == 1
    assert {"checkov", "cdk-nag"} <= set(public[0]["tools"])
    assert {"CKV_AWS_53", "CKV_AWS_54", "CKV_AWS_55", "CKV_AWS_56", "AwsSolutions-S2"} <= set(public[0]["rule_ids"])
    wildcard = [f for f in findings_on(insecure["report"], "WildcardIam") if "CKV_AWS_63" in f["rule_ids"]]
    assert len(wildcard) == 1 and "AwsSolutions-IAM5[Action::*]" in wildcard[0]["rule_ids"]


def test_a_hand_written_cdk_nag_acknowledgment_is_refused(insecure):
    refused = [f for f in findings_on(insecure["report"], "InlineAck") if f["rule_id"] == "inline-suppression"]
    assert refused and "AwsSolutions-S1" in refused[0]["message"] and "policy.yaml" in refused[0]["message"]


def test_the_verdict_is_attested_outside_the_release_which_stays_unchanged(insecure):
    from gitops.scan.attestation import find_attestation

    manifest = load_release(insecure["release"])  # still whole: the scan writes nothing into it
    assert manifest.release_id == insecure["before"].release_id
    assert insecure["before"] == read_manifest(insecure["release"])
    no_policy = hashlib.sha256(b"").hexdigest()  # neither the release nor the source tree holds a policy.yaml
    record = find_attestation(manifest.release_id, no_policy)
    assert record is not None and record.passed is False and record.scope == "release+source"
    assert record.findings == len(insecure["report"]["findings"])
    assert any(rule.startswith("CKV_AWS_") for rule in record.rules)
    assert record.scanners["checkov"] == insecure["report"]["tools"]["checkov"]["version"]


# Reports -------------------------------------------------------------------------------------------


def test_the_vendored_sarif_schema_is_the_sarif_2_1_0_schema():
    schema = json.loads(SARIF_SCHEMA.read_text())
    jsonschema.Draft4Validator.check_schema(schema)
    assert schema["title"].startswith("Static Analysis Results Format (SARIF) Version 2.1.0")
    assert schema["properties"]["version"]["enum"] == ["2.1.0"]


def validate_sarif(log: dict) -> None:
    schema = json.loads(SARIF_SCHEMA.read_text())
    jsonschema.Draft4Validator(schema).validate(log)
    assert log["version"] == "2.1.0"
    assert 1 <= len(log["runs"]) <= 20
    names = [run["tool"]["driver"]["name"] for run in log["runs"]]
    assert len(set(names)) == len(names)
    categories = [run["automationDetails"]["id"] for run in log["runs"]]
    assert len(set(categories)) == len(categories)
    for run in log["runs"]:
        rule_ids = [rule["id"] for rule in run["tool"]["driver"]["rules"]]
        assert len(set(rule_ids)) == len(rule_ids)
        for result in run["results"]:
            assert run["tool"]["driver"]["rules"][result["ruleIndex"]]["id"] == result["ruleId"]
            for location in result["locations"]:
                uri = location["physicalLocation"]["artifactLocation"]["uri"]
                assert not uri.startswith(("/", "file:")) and ".." not in uri.split("/"), uri


def test_sarif_is_one_valid_sarif_2_1_0_log_with_every_tool(insecure):
    log = insecure["sarif"]
    validate_sarif(log)
    by_tool = {run["tool"]["driver"]["name"]: run for run in log["runs"]}
    assert set(by_tool) == set(TOOL_ORDER)
    ids = {r["ruleId"] for run in log["runs"] for r in run["results"]}
    assert {"CKV2_GITOPS_2", "CKV_AWS_370", "CKV2_GITOPS_1", "AWSKeyDetector", "inline-suppression"} <= ids
    assert len([r for run in log["runs"] for r in run["results"]]) == len(insecure["report"]["findings"])


def test_junit_has_a_failing_case_per_finding(insecure):
    root = insecure["junit"]
    assert root.tag == "testsuites"
    assert int(root.get("failures")) == len(insecure["report"]["findings"])
    suites = {suite.get("name"): suite for suite in root}
    assert set(TOOL_ORDER) <= set(suites)
    failing = [c for c in root.iter("testcase") if c.find("failure") is not None]
    assert any("CKV2_GITOPS_1" in c.get("name") and "PlainEndpointConfig" in c.get("name") for c in failing)


# Policy: the only place to suppress -----------------------------------------------------------


def finding(rule="CKV_AWS_19", stack="Data", resource="Bucket1", tool="checkov", stage="dev", **kw) -> Finding:
    return Finding(
        tool=tool,
        rule_id=rule,
        severity="error",
        message="m",
        file=f"stages/{stage}/templates/x",
        stage=stage,
        stack=stack,
        resource=resource,
        **kw,
    )


REASON = "a reason a security reviewer would accept"


def test_a_suppression_applies_to_its_rule_and_named_resource_only():
    policy = parse_policy(
        f"version: 1\nsuppressions:\n  - rule: CKV_AWS_19\n    resources: [Data/Bucket1]\n    reason: {REASON}\n"
    )
    hit, other_resource, other_rule = finding(), finding(resource="Bucket2"), finding(rule="CKV_AWS_18")
    outcome = apply_policy(policy, [hit, other_resource, other_rule], VALUES, TODAY)
    assert [f for f, _ in outcome.suppressed] == [hit]
    assert outcome.unsuppressed == [other_resource, other_rule]
    assert outcome.findings == []


def test_placeholders_and_stage_specific_resources():
    rule = "AwsSolutions-IAM5[Resource::arn:aws:s3:::mlops-dev-artifacts-111111111111-eu-west-1/*]"
    policy = parse_policy(
        "suppressions:\n"
        "  - rule: AwsSolutions-IAM5[Resource::arn:aws:s3:::{prefix}-artifacts-{account}-{region}/*]\n"
        f"    resources: [dev/Base/Role1]\n    reason: {REASON}\n"
    )
    outcome = apply_policy(policy, [finding(rule=rule, stack="Base", resource="Role1", tool="cdk-nag")], VALUES, TODAY)
    assert len(outcome.suppressed) == 1 and not outcome.findings


def test_an_expired_suppression_is_refused_and_reported():
    policy = parse_policy(
        f"suppressions:\n  - rule: CKV_AWS_19\n    resources: [Data/Bucket1]\n"
        f"    reason: {REASON}\n    expires: 2026-01-31\n"
    )
    outcome = apply_policy(policy, [finding()], VALUES, TODAY)
    assert outcome.suppressed == [] and len(outcome.unsuppressed) == 1
    [expired] = outcome.findings
    assert expired.rule_id == "expired-suppression" and "2026-01-31" in expired.message
    assert expired.file == "policy.yaml" and expired.line == 2
    still = apply_policy(policy, [finding()], VALUES, date(2026, 1, 31))
    assert len(still.suppressed) == 1 and not still.findings


def test_an_unused_suppression_is_a_finding():
    policy = parse_policy(
        f"suppressions:\n  - rule: CKV_AWS_19\n    resources: [Data/Bucket1, Data/Gone]\n    reason: {REASON}\n"
    )
    outcome = apply_policy(policy, [finding()], VALUES, TODAY)
    [unused] = outcome.findings
    assert unused.rule_id == "unused-suppression" and "Data/Gone" in unused.message


def test_a_fingerprint_pins_a_secrets_suppression_to_one_value():
    policy = parse_policy(
        f"suppressions:\n  - rule: KeywordDetector\n    resources: [src/a.py]\n"
        f"    fingerprint: abc\n    reason: {REASON}\n"
    )
    known = Finding("detect-secrets", "KeywordDetector", "error", "m", "src/a.py", fingerprint="abc")
    new = Finding("detect-secrets", "KeywordDetector", "error", "m", "src/a.py", fingerprint="def")
    outcome = apply_policy(policy, [known, new], VALUES, TODAY)
    assert [f for f, _ in outcome.suppressed] == [known] and outcome.unsuppressed == [new]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "suppressions:\n  - rule: CKV_AWS_19\n    resources: [Data/Bucket1]\n",
            r"policy\.yaml: suppressions\[0\] \(CKV_AWS_19\): 'reason' is required",
        ),
        (
            "suppressions:\n  - rule: CKV_AWS_19\n    resources: [Data/Bucket1]\n    reason: because\n",
            r"policy\.yaml: suppressions\[0\] \(CKV_AWS_19\): reason: refused \(reason-too-short: .* at least 20",
        ),
        (
            f"suppressions:\n  - rule: CKV_AWS_19\n    resources: [Data/Bucket1]\n"
            f"    reason: {REASON}\n    skip: all\n",
            r"suppressions\[0\] \(CKV_AWS_19\): unknown key 'skip'",
        ),
        ("version: 1\nskip_checks: [CKV_AWS_19]\nsuppressions: []\n", r"policy\.yaml: unknown key 'skip_checks'"),
        (
            f"suppressions:\n  - rule: CKV_AWS_19\n    resources: ['*']\n    reason: {REASON}\n",
            r"wildcards are not allowed in a resource",
        ),
        (
            f"suppressions:\n  - rule: CKV_AWS_*\n    resources: [Data/Bucket1]\n    reason: {REASON}\n",
            r"wildcards are not allowed in a rule id",
        ),
        (f"suppressions:\n  - rule: CKV_AWS_19\n    resources: []\n    reason: {REASON}\n", r"resources"),
        (
            f"suppressions:\n  - rule: X[{{acount}}]\n    resources: [Data/B]\n    reason: {REASON}\n",
            r"unknown placeholder \{acount\}",
        ),
        (
            f"suppressions:\n  - rule: CKV_AWS_19\n    resources: [Data/B]\n    reason: {REASON}\n    expires: soon\n",
            r"expires",
        ),
        ("suppressions: [unclosed\n", r"policy\.yaml: line 2: not valid YAML"),
        ("- just a list\n", r"policy\.yaml: must be a mapping"),
    ],
)
def test_a_bad_policy_file_is_refused_with_one_clear_line(text, message):
    with pytest.raises(PolicyError, match=message) as caught:
        parse_policy(text, "policy.yaml")
    assert "\n" not in str(caught.value)


def test_merge_keeps_distinct_resources_and_concerns_apart():
    same = [finding(rule="CKV_AWS_53", resource="B"), finding(rule="AwsSolutions-S2", resource="B", tool="cdk-nag")]
    other = [finding(rule="CKV_AWS_53", resource="C"), finding(rule="CKV_AWS_19", resource="B")]
    merged = merge(same + other, TOOL_ORDER)
    assert len(merged) == 3
    [public_b] = [f for f in merged if f.resource == "B" and f.concern == "s3-public-access"]
    assert public_b.rule_ids == ["AwsSolutions-S2", "CKV_AWS_53"] and public_b.tools == ["checkov", "cdk-nag"]


# Inline suppressions are refused ----------------------------------------------------------------


def test_tool_specific_suppressions_in_a_template_are_refused():
    body = {
        "Metadata": {"cfn-lint": {"config": {"ignore_checks": ["W3005"]}}},
        "Resources": {
            "Bucket": {"Type": "AWS::S3::Bucket", "Metadata": {"checkov": {"skip": [{"id": "CKV_AWS_18"}]}}},
            "Role": {"Type": "AWS::IAM::Role", "Metadata": {"cdk_nag": {"rules_to_suppress": [{"id": "X"}]}}},
        },
    }
    text = canonical_json(body).decode()
    ref = TemplateRef(
        "dev", "Data", "stages/dev/templates/Data.template.json", Path("x"), "eu-west-1", body, text.splitlines()
    )
    refused = inline_suppressions(ref)
    assert {(f.resource, f.rule_id) for f in refused} == {
        (None, "inline-suppression"),
        ("Bucket", "inline-suppression"),
        ("Role", "inline-suppression"),
    }
    assert all("policy.yaml" in f.message for f in refused)
    assert next(f for f in refused if f.resource == "Bucket").line == ref.line_of("Bucket") > 0


def test_a_secrets_allowlist_comment_neither_hides_the_secret_nor_passes(tmp_path):
    pragma = "pragma: " + "allowlist secret"
    (tmp_path / "conf.py").write_text(f'aws_secret_access_key = "{fake_aws_secret_key()}"  # {pragma}\n')
    run = run_secrets_scan(tmp_path, files=["conf.py"])
    assert any(f.tool == "detect-secrets" for f in run.findings)
    assert any(f.rule_id == "inline-suppression" and f.line == 1 for f in run.findings)


# Bad input -------------------------------------------------------------------------------------


def test_a_template_that_is_not_json_is_a_clear_error(tmp_path):
    from gitops.scan import scan_release

    release = write_release(tmp_path / "release", {"Base": b'{"Resources": {"A": \n'})
    source = source_tree(tmp_path / "source", secret=False)
    with pytest.raises(ScanError, match=r"stages/dev/templates/Base\.template\.json: not valid JSON \(line 2"):
        scan_release(source, release, out_dir=tmp_path / "reports", install_checkov=False)
    assert not (tmp_path / "reports").exists()


def test_a_missing_checkov_environment_is_a_clear_error(tmp_path, monkeypatch):
    from gitops.scan import scan_release

    monkeypatch.setenv(checkov.ENV_OVERRIDE, str(tmp_path / "no-checkov"))
    release = write_release(tmp_path / "release", {"Base": canonical_json({"Resources": {}})})
    source = source_tree(tmp_path / "source", secret=False)
    with pytest.raises(CheckovMissing, match=r"no-checkov: checkov environment is missing") as caught:
        scan_release(source, release, out_dir=tmp_path / "reports", install_checkov=False)
    assert "scripts/setup-checkov" in caught.value.hint


def run_cli(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*GITOPS, *args], cwd=cwd, capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=300
    )


def test_cli_bad_input_exits_non_zero_with_one_line_naming_the_problem(tmp_path):
    release = write_release(tmp_path / "release", {"Base": canonical_json({"Resources": {}})})
    source = source_tree(tmp_path / "source", secret=False)
    missing = run_cli(
        "scan",
        "--release",
        str(release),
        "--no-install",
        cwd=source,
        env={checkov.ENV_OVERRIDE: str(tmp_path / "none")},
    )
    assert missing.returncode == 1
    assert "checkov environment is missing" in missing.stderr and "hint:" in missing.stderr
    assert "Traceback" not in missing.stderr
    (source / "policy.yaml").write_text("suppressions:\n  - rule: CKV_AWS_19\n    resources: [Base/B]\n")
    bad_policy = run_cli("scan", "--release", str(release), cwd=source)
    assert bad_policy.returncode == 1
    assert "policy.yaml: suppressions[0] (CKV_AWS_19): 'reason' is required" in bad_policy.stderr
    assert "Traceback" not in bad_policy.stderr


# cdk-nag's inline suppressions are generated from the policy ------------------------------------------


def insecure_app_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("_insecure_app", INSECURE_APP / "infra" / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.integration  # a CDK synthesis
def test_acknowledgments_generated_from_the_policy_silence_exactly_those_cdk_nag_findings():
    from cdk_nag import AwsSolutionsChecks

    from gitops.scan.cdk_nag import acknowledge_from_policy

    module = insecure_app_module()
    policy = parse_policy(
        f"suppressions:\n  - rule: AwsSolutions-IAM5[Action::*]\n    resources: [WildcardIam/Role]\n"
        f"    reason: {REASON}\n"
    )

    def violations(app) -> set[tuple[str, str]]:
        report = AwsSolutionsChecks().validate_scope(app.node.find_child("dev"))
        return {(v.rule_name, r.construct_path) for v in report.violations for r in v.violating_resources}

    plain = violations(module.build_app(INSECURE_APP, {"dev": DEV}))
    acked_app = module.build_app(INSECURE_APP, {"dev": DEV})
    assert acknowledge_from_policy(acked_app, policy, {"dev": DEV}, TODAY) == 1
    acked = violations(acked_app)
    assert ("AwsSolutions-IAM5[Action::*]", "dev/WildcardIam/Role") in plain
    assert plain - acked == {("AwsSolutions-IAM5[Action::*]", "dev/WildcardIam/Role")}


@pytest.mark.integration  # a CDK synthesis
def test_cdk_synth_fails_on_what_the_policy_does_not_acknowledge(tmp_path):
    """The standard `cdk synth` path (infra/app.py) registers cdk-nag as a validation plugin."""
    from gitops.scan.cdk_nag import enforce_in_cdk_cli

    app = insecure_app_module().build_app(INSECURE_APP, {"dev": DEV}, outdir=str(tmp_path / "cdk.out"))
    enforce_in_cdk_cli(app, tmp_path, lambda: {"dev": DEV})  # no policy.yaml there: nothing acknowledged
    with pytest.raises(Exception, match="ValidationFailed") as caught:
        app.synth()
    assert "AwsSolutions-IAM5[Action::*]" in str(caught.value)
