"""`gitops report` in a real browser: what a reviewer sees for an instance-type change plus a new pipeline step."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest
from browser import screenshot
from release_builder import build_release

from gitops.config import load_stages
from gitops.local.embedded import seed_env_repo
from gitops.promotion.envrepo import push_release
from gitops.release.assets import sha256_bytes
from gitops.release.manifest import StageSummary, stage_config_path
from gitops.release.pipelines import canonical_json
from gitops.report.html import render_html
from gitops.report.page import collect_page
from gitops.report.scan_results import read_scan_results
from gitops.scan.findings import Finding
from gitops.scan.policy import Suppression
from gitops.scan.reports import write_sarif
from gitops.scan.result import ScanReport, ToolStats
from gitops.target import Target

ROOT = Path(__file__).resolve().parents[2]
STAGES = load_stages(ROOT)

INFERENCE = {
    "Resources": {
        "EndpointConfig": {
            "Type": "AWS::SageMaker::EndpointConfig",
            "Metadata": {"aws:cdk:path": "dev/Inference/EndpointConfig"},
            "Properties": {
                "KmsKeyId": "alias/mlops",
                "ProductionVariants": [
                    {
                        "InstanceType": "ml.m5.large",
                        "InitialInstanceCount": 1,
                        "ModelName": "mlops-model",
                        "VariantName": "AllTraffic",
                    }
                ],
            },
        },
        "Endpoint": {
            "Type": "AWS::SageMaker::Endpoint",
            "Properties": {"EndpointConfigName": {"Fn::GetAtt": ["EndpointConfig", "EndpointConfigName"]}},
        },
        "Alarm": {
            "Type": "AWS::CloudWatch::Alarm",
            "Properties": {"MetricName": "ModelLatency", "Threshold": 500, "EvaluationPeriods": 3},
        },
    }
}


def _step(name: str, kind: str, **arguments) -> dict:
    return {"Name": name, "Type": kind, "Arguments": arguments}


TRAINING = {
    "Version": "2020-12-01",
    "Parameters": [{"Name": "TrainingInstanceType", "Type": "String", "DefaultValue": "ml.m5.xlarge"}],
    "Steps": [
        _step("Preprocess", "Processing", AppSpecification={"ImageUri": "sklearn:1.2-1"}),
        _step("Train", "Training", HyperParameters={"C": "1.0"}),
        _step("Evaluate", "Processing", AppSpecification={"ImageUri": "sklearn:1.2-1"}),
    ],
}
SUPPRESSION_REASON = "The artifact bucket's access logs go to the log bucket, which cannot log to itself"


def _head_parts() -> tuple[dict, dict]:
    """The change under review: a bigger endpoint instance (replaces the config) and a new Validate step."""
    inference = copy.deepcopy(INFERENCE)
    inference["Resources"]["EndpointConfig"]["Properties"]["ProductionVariants"][0]["InstanceType"] = "ml.m5.xlarge"
    training = copy.deepcopy(TRAINING)
    training["Steps"].insert(2, _step("Validate", "Processing", AppSpecification={"ImageUri": "sklearn:1.2-1"}))
    training["Steps"][1]["Arguments"]["HyperParameters"]["C"] = "0.5"
    return inference, training


def _release(out: Path, inference: dict, training: dict, model: dict, step_code: bytes) -> str:
    files: dict[str, bytes] = {"model.json": canonical_json(model)}
    summaries = {}
    for name in ("dev", "prod"):
        cfg = STAGES[name]
        files[stage_config_path(name)] = canonical_json(cfg.model_dump(mode="json"))
        files[f"stages/{name}/templates/Inference.template.json"] = canonical_json(inference)
        files[f"stages/{name}/pipelines/training.json"] = canonical_json(training)
        summaries[name] = StageSummary(
            account=cfg.account, region=cfg.region, promote_to=cfg.promote_to, stacks={}, pipelines={}
        )
    files[f"assets/{sha256_bytes(step_code)}/validate.py"] = step_code
    return build_release(out, files, summaries).release_id


def _scan_log(path: Path, release: Path, release_id: str) -> Path:
    """The SARIF log `gitops scan` writes: per-tool counts and one suppression with its reason and expiry."""
    suppressed = Finding(
        tool="checkov",
        rule_id="CKV_AWS_18",
        severity="error",
        message="Ensure the S3 bucket has access logging enabled",
        file="stages/dev/templates/MLOps.template.json",
        stage="dev",
        stack="MLOps",
        resource="AccessLogBucket",
    )
    suppression = Suppression(
        rule="CKV_AWS_18", resources=["MLOps/AccessLogBucket"], reason=SUPPRESSION_REASON, expires="2027-06-30"
    )
    tools = {
        "cfn-lint": ToolStats("cfn-lint", "1.40.0", 612, 0, 0, 1.2, passed_unit="clean (rule, template) pairs"),
        "checkov": ToolStats("checkov", "3.3.30", 148, 0, 1, 9.0, passed_unit="passed (check, resource) pairs"),
    }
    report = ScanReport(release_id, ROOT, release, "policy.yaml", True, [], [(suppressed, suppression)], tools, 10, {})
    write_sarif(report, path)
    return path


def _pin(version: int, digit: str, auc: float) -> dict:
    """model.json as render writes it from models/serving.yaml: one package, its artifact, image and metrics."""
    return {
        "model": {
            "package_arn": f"arn:aws:sagemaker:eu-west-1:111111111111:model-package/mlops-dev-models/{version}",
            "artifact": {"uri": f"s3://mlops-dev-artifacts/train/{version}/model.tar.gz", "sha256": digit * 64},
            "image": "141502667606.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-scikit-learn@sha256:" + "c" * 64,
            "metrics": {"auc": auc},
        },
        "sample": None,
    }


@pytest.fixture(scope="module")
def page_file(tmp_path_factory) -> tuple[Path, str]:
    """A PR-review page: dev and prod hold the base release; the head is rendered, scanned, not yet published."""
    tmp = tmp_path_factory.mktemp("page")
    base_id = _release(tmp / "base", INFERENCE, TRAINING, _pin(3, "a", 0.81), b"print('v1')\n")
    inference, training = _head_parts()
    head_id = _release(tmp / "head", inference, training, _pin(4, "b", 0.84), b"print('v2')\n")
    local_dir = tmp / "local"
    for name in ("dev", "prod"):
        url = str(seed_env_repo(ROOT, local_dir, STAGES[name]))
        push_release(url, tmp / "base", f"Publish release {base_id[:12]}")
    scan = read_scan_results(_scan_log(tmp / "scan.sarif", tmp / "head", head_id))
    page = collect_page(tmp / "head", target=Target("local", local_dir), scan=scan)
    path = tmp / "release.html"
    path.write_text(render_html(page), encoding="utf-8")
    return path, head_id


def _text(driver, css: str) -> list[str]:
    from selenium.webdriver.common.by import By

    return [e.text for e in driver.find_elements(By.CSS_SELECTOR, css) if e.is_displayed()]


def test_a_reviewer_sees_the_replacement_the_changed_steps_and_the_suppression_reasons(browser, page_file):
    from selenium.webdriver.common.by import By

    path, head_id = page_file
    browser.get(path.as_uri())
    assert browser.title == f"Release {head_id[:12]}"

    # The replaced resource is flagged where the eye lands, with the property that forces it.
    callouts = _text(browser, ".callout")
    assert len(callouts) == 2  # dev and prod both hold the base release
    assert "replacement Inference/EndpointConfig (AWS::SageMaker::EndpointConfig)" in callouts[0]
    assert "because ProductionVariants[0].InstanceType cannot change in place" in callouts[0]
    row = browser.find_element(By.XPATH, "(//tr[td/code[text()='Inference/EndpointConfig']])[1]")
    assert "ml.m5.large → ml.m5.xlarge" in row.text and "forces replacement" in row.text
    badge = row.find_element(By.CSS_SELECTOR, ".badge.replace")
    assert badge.value_of_css_property("color") != browser.find_element(By.TAG_NAME, "body").value_of_css_property(
        "color"
    )  # flagged in its own colour, not plain text
    # The endpoint and the alarm did not change, so they are not listed.
    assert not browser.find_elements(By.XPATH, "//td/code[text()='Inference/Alarm']")

    # The pipeline: the new step and the changed one, with before and after.
    added = browser.find_element(By.XPATH, "(//tr[td/code[text()='Validate']])[1]")
    assert added.get_attribute("class") == "add" and added.text.startswith("+ step Validate Processing")
    changed = browser.find_element(By.XPATH, "(//tr[td/code[text()='Train']])[1]")
    assert "HyperParameters.C: 1.0 → 0.5" in changed.text
    assert not browser.find_elements(By.XPATH, "//tr[td/code[text()='Preprocess']]")

    # The scan: counts per tool and each suppression's reason and expiry.
    suppressions = _text(browser, "table tr")
    reason_rows = [r for r in suppressions if SUPPRESSION_REASON in r]
    assert len(reason_rows) == 1 and "CKV_AWS_18" in reason_rows[0] and "2027-06-30" in reason_rows[0]
    assert "MLOps/AccessLogBucket" in reason_rows[0]
    checkov = next(r for r in suppressions if r.startswith("checkov 3.3.30"))
    assert checkov.split()[2:4] == ["148", "passed"]

    # The evidence promotion will check, as it stands at review time; and each stage's history.
    evidence = next(r for r in _text(browser, "tr") if r.startswith("published to dev"))
    assert "missing" in evidence
    assert any(r.startswith("scanned yes") for r in _text(browser, "tr"))
    assert any("Publish release" in r for r in _text(browser, "tr"))

    # Readable on a laptop: no sideways scrolling at 1366 px; nothing fetched from anywhere.
    assert browser.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
    assert browser.execute_script("return performance.getEntriesByType('resource').length") == 0
    shot = screenshot(browser, "release-page")
    assert shot.stat().st_size > 10_000
    cards = _text(browser, ".card")
    assert cards[0].splitlines()[1:] == [
        "1 stack changed: 1 replacement, 0 deletions",
        "1 pipeline changed: 2 steps added, changed or removed",
        "new model",  # the head pins package 4 where the stage serves package 3
    ]
    browser.execute_script("window.scrollTo(0, document.body.scrollHeight)")
    screenshot(browser, "release-page-scan")


def test_the_page_prints_without_cutting_anything_off(browser, page_file):
    path, _ = page_file
    browser.get(path.as_uri())
    browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "print"})
    try:
        # A4 at 96 dpi less margins is about 700 px wide: tables must fit, not run off the page.
        browser.set_window_size(760, 1000)
        assert browser.execute_script("return document.documentElement.scrollWidth <= window.innerWidth + 1")
        pdf = browser.execute_cdp_cmd("Page.printToPDF", {"printBackground": True})
        assert len(pdf["data"]) > 1000
    finally:
        browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": ""})
        browser.set_window_size(1366, 900)


def test_the_report_verb_writes_the_page_against_a_release_and_refuses_a_scan_log_of_another(page_file, tmp_path):
    path, head_id = page_file
    tmp = path.parent
    out = tmp_path / "page.html"
    args = [sys.executable, "-m", "gitops", "report", "--release", str(tmp / "head"), "--against", str(tmp / "base")]
    done = subprocess.run(
        [*args, "--scan", str(tmp / "scan.sarif"), "--output", str(out), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["release_id"] == head_id and summary["stages"]["dev"]["replacements"] == 1
    assert "Inference/EndpointConfig" in out.read_text()

    other = tmp_path / "other.sarif"
    other.write_text((tmp / "scan.sarif").read_text().replace(head_id, "f" * 64))
    refused = subprocess.run(
        [*args, "--scan", str(other), "--output", str(tmp_path / "no.html")], capture_output=True, text=True
    )
    assert refused.returncode != 0
    assert f"the scan log is of release ffffffffffff, not {head_id[:12]}" in refused.stderr
    assert not (tmp_path / "no.html").exists()
    # The default reports/scan.sarif an earlier scan left behind is not shown as this release's.
    (tmp_path / "reports").mkdir()
    other.rename(tmp_path / "reports" / "scan.sarif")
    stale = subprocess.run(
        [*args, "--output", str(tmp_path / "stale.html")], capture_output=True, text=True, cwd=tmp_path, timeout=120
    )
    assert stale.returncode == 0, stale.stderr
    page = (tmp_path / "stale.html").read_text()
    assert "reports/scan.sarif is of release ffffffffffff, not this one: not shown" in page
    assert SUPPRESSION_REASON not in page


def test_once_the_stage_holds_the_release_the_page_compares_with_the_one_it_held_before(page_file, tmp_path):
    # What the Verify build sees: dev already holds the release it verifies.
    path, head_id = page_file
    releases = path.parent
    local_dir = tmp_path / "local"
    url = str(seed_env_repo(ROOT, local_dir, STAGES["dev"]))
    base_id = push_release(url, releases / "base", "Publish base").release_id
    push_release(url, releases / "head", "Publish head")
    page = collect_page(releases / "head", target=Target("local", local_dir), stages=["dev"])
    (dev,) = page.stages
    assert dev.against == f"release {base_id[:12]}, which dev held before it"
    assert [r.logical_id for s in dev.diff.stacks for r in s.resources if r.replacement] == ["EndpointConfig"]
    assert [h.release_id for h in dev.history or [] if h.release_id] == [head_id, base_id]
    published = next(e for e in dev.evidence if e.label == "published to dev")
    assert published.state == "ok"
