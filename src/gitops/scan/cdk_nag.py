"""cdk-nag AwsSolutions: run on the construct tree during synth, recorded in the release, read by scan.

cdk-nag checks constructs, not templates, so it runs where the tree exists: in `gitops render`'s
in-process synth. Its raw report (no acknowledgments applied) travels in the release as
`stages/<stage>/cdk-nag.json`; the scan applies policy.yaml to it like to every other tool.
cdk-nag's own inline suppressions (`Validations.of(x).acknowledge(...)`) are generated from
policy.yaml (`acknowledge_from_policy`, for the standard `cdk synth` path); hand-written ones are
found in the cloud assembly and refused, in any spelling of the key or the rule id. (Acknowledgments
of other validation plugins' rules, such as the ones aws-cdk-lib's own constructs make for
CloudFormation-Validate, are not cdk-nag's and not suppressions of this gate.)
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from importlib import metadata
from pathlib import Path
from typing import Any

from gitops.scan import nag_rules
from gitops.scan.errors import ScanError
from gitops.scan.findings import POLICY, Finding, ToolRun
from gitops.scan.policy import Policy, stage_values
from gitops.scan.scanner import ScanInput, installed_version

PACK = "AwsSolutions"
ACKNOWLEDGED_RULES = "aws:cdk:acknowledged-rules"  # aws_cdk.Validations.ACKNOWLEDGED_RULES_METADATA_KEY
_NAG_PACK_PREFIXES = ("awssolutions", "hipaa.security", "nist.800.53", "pci.dss", "serverless")


def report_path(stage: str) -> str:
    return f"stages/{stage}/cdk-nag.json"


def _paths_to_logical_ids(template: dict) -> dict[str, str]:
    return {
        res.get("Metadata", {}).get("aws:cdk:path"): logical_id
        for logical_id, res in template.get("Resources", {}).items()
        if res.get("Metadata", {}).get("aws:cdk:path")
    }


def _acknowledgments(asm_dir: Path) -> list[dict]:
    """Every acknowledgment of a nag rule recorded in a stage's cloud assembly (construct metadata)."""
    found = []
    entries: dict[str, list] = {}
    manifest = asm_dir / "manifest.json"
    if manifest.exists():
        for artifact in json.loads(manifest.read_text()).get("artifacts", {}).values():
            for path, items in (artifact.get("metadata") or {}).items():
                entries.setdefault(path, []).extend(items)
    for meta_file in sorted(asm_dir.glob("*.metadata.json")):
        for path, items in json.loads(meta_file.read_text()).items():
            entries.setdefault(path, []).extend(items)
    seen = set()
    for path, items in sorted(entries.items()):
        for item in items:
            # Any spelling: render's synth generates no acknowledgment, so each nag one was written by hand.
            if str(item.get("type", "")).lower() != ACKNOWLEDGED_RULES or not isinstance(item.get("data"), dict):
                continue
            for qualified, reason in item["data"].items():
                rule_id = qualified.split("::", 1)[1] if qualified.lower().startswith("annotation::") else qualified
                key = (path, rule_id)
                if rule_id.lower().startswith(_NAG_PACK_PREFIXES) and key not in seen:
                    seen.add(key)
                    found.append({"construct_path": path.lstrip("/"), "rule_id": rule_id, "reason": str(reason)})
    return found


def _logical_id(stage_construct: Any, parts: list[str]) -> str | None:
    """The logical id of the CfnResource at a path under the stage (for templates without path metadata)."""
    import aws_cdk as cdk

    node = stage_construct
    for part in parts:
        node = node.node.try_find_child(part)
        if node is None:
            return None
    if not cdk.CfnResource.is_cfn_resource(node):
        return None
    return cdk.Stack.of(node).resolve(node.logical_id)


def nag_stage_report(stage_construct: Any, templates: dict[str, dict], asm_dir: Path) -> dict:
    """AwsSolutions over one synthesized cdk.Stage: raw violations per stack, with logical ids.

    templates maps each stack's id in the stage (Base, Network ...) to its template.
    """
    from cdk_nag import AwsSolutionsChecks

    stage_id = stage_construct.node.id
    brief = AwsSolutionsChecks().validate_scope(stage_construct)
    verbose = AwsSolutionsChecks(verbose=True).validate_scope(stage_construct)
    explanations = {}
    for violation in verbose.violations:
        info = next((v.description for v in brief.violations if v.rule_name == violation.rule_name), "")
        explanations[violation.rule_name] = violation.description.removeprefix(info).strip()
    by_path = {stack: _paths_to_logical_ids(template) for stack, template in templates.items()}
    stacks: dict[str, dict] = {
        stack: {"resources": len(template.get("Resources", {})), "violations": [], "acknowledged": []}
        for stack, template in templates.items()
    }
    for violation in brief.violations:
        for resource in violation.violating_resources:
            path = resource.construct_path or ""
            parts = path.split("/")
            stack = parts[1] if len(parts) > 1 and parts[0] == stage_id else None
            if stack is None or stack not in stacks:
                raise ScanError(f"cdk-nag: violation at {path} is outside the stage's stacks")
            stacks[stack]["violations"].append(
                {
                    "rule_id": violation.rule_name,
                    "severity": violation.severity,
                    "construct_path": path,
                    "logical_id": by_path[stack].get(path) or _logical_id(stage_construct, parts[1:]),
                    "message": violation.description,
                    "explanation": explanations.get(violation.rule_name) or None,
                }
            )
    for ack in _acknowledgments(asm_dir):
        parts = ack["construct_path"].split("/")
        if len(parts) > 1 and parts[1] in stacks:
            stacks[parts[1]]["acknowledged"].append(ack)
    for entry in stacks.values():
        entry["violations"].sort(key=lambda v: (v["construct_path"], v["rule_id"]))
    return nag_report_document(stacks)


def nag_report_document(stacks: dict[str, dict]) -> dict:
    """The release file stages/<stage>/cdk-nag.json: the pack, its version, each stack's raw report."""
    return {"pack": PACK, "cdk_nag": metadata.version("cdk-nag"), "stacks": dict(sorted(stacks.items()))}


def read_nag_findings(release_dir: Path, stage: str, files: dict[str, str]) -> tuple[list[Finding], dict]:
    """Findings of a stage's recorded cdk-nag report, plus how many resources it checked."""
    rel = report_path(stage)
    if rel not in files:
        raise ScanError(
            f"{release_dir / rel}: the release has no cdk-nag report for stage '{stage}'",
            hint="re-render the release with this engine (`gitops render`); cdk-nag runs during its synth",
        )
    try:
        report = json.loads((release_dir / rel).read_text())
        stacks = report["stacks"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ScanError(f"{release_dir / rel}: not a cdk-nag report ({exc})") from exc
    findings: list[Finding] = []
    checked = 0
    for stack, entry in sorted(stacks.items()):
        checked += entry.get("resources", 0)
        template = f"stages/{stage}/templates/{stack}.template.json"
        for v in entry.get("violations", []):
            findings.append(
                Finding(
                    tool="cdk-nag",
                    rule_id=v["rule_id"],
                    severity="error" if v.get("severity") == "error" else "warning",
                    message=v["message"],
                    file=template,
                    stage=stage,
                    stack=stack,
                    resource=v.get("logical_id"),
                    hint=v.get("explanation"),
                    help_uri="https://github.com/cdklabs/cdk-nag/blob/main/RULES.md",
                )
            )
        for ack in entry.get("acknowledged", []):
            findings.append(
                Finding(
                    tool=POLICY,
                    rule_id="inline-suppression",
                    severity="error",
                    message=(
                        f"cdk-nag acknowledgment of {ack['rule_id']} written in infra/ at {ack['construct_path']}:"
                        " suppressions live only in policy.yaml"
                    ),
                    file=template,
                    stage=stage,
                    stack=stack,
                    hint="delete the Validations.of(...).acknowledge(...) call and add the entry to policy.yaml",
                )
            )
    return findings, {"checked": checked, "version": str(report.get("cdk_nag", "unknown"))}


class CdkNagScanner:
    """cdk-nag AwsSolutions: the report render's synth recorded in the release (cdk-nag needs the construct tree)."""

    name = "cdk-nag"
    information_uri = "https://github.com/cdklabs/cdk-nag"
    passed_unit = "resources with no violation"

    def version(self) -> str:
        return installed_version("cdk-nag") or "not installed here"  # a deploy build reads render's report

    def check_ready(self, job: ScanInput) -> None:
        for stage in job.manifest.stages:
            if report_path(stage) not in job.manifest.files:
                read_nag_findings(job.release_dir, stage, job.manifest.files)  # raises the clear error

    def run(self, job: ScanInput) -> ToolRun:
        findings: list[Finding] = []
        checked = 0
        versions: set[str] = set()
        for stage in job.manifest.stages:
            found, stats = read_nag_findings(job.release_dir, stage, job.manifest.files)
            findings += found
            checked += stats["checked"]
            versions.add(stats["version"])
        dirty = {(f.stage, f.stack, f.resource) for f in findings if f.tool == self.name}
        notes = ["ran during render (stages/<stage>/cdk-nag.json)"]
        if installed_version("cdk-nag"):
            rules, coverage = nag_rules.coverage({kind for t in job.templates for kind in t.resource_types})
        else:
            # Where the release is deployed only the engine and the scanners it runs are installed:
            # the findings are render's report (in the release, covered by its id); the rule
            # coverage needs cdk-nag's own bundle, so it is not counted here.
            rules, coverage = [], {}
            notes.append("rule coverage not counted: cdk-nag is not installed where this scan ran")
        return ToolRun(
            tool=self.name,
            version=", ".join(sorted(versions)) or self.version(),
            findings=findings,
            passed=max(checked - len(dirty), 0),
            notes=notes,
            targets=job.template_groups,
            rules=rules,
            coverage=coverage,
        )


SCANNER = CdkNagScanner()


def acknowledge_from_policy(app: Any, policy: Policy, stages: dict, today: date | None = None) -> int:
    """Acknowledge, on the CfnResources of an (unsynthesized or synthesized) app, what policy.yaml suppresses.

    These are cdk-nag's inline suppressions, generated: the only ones allowed. Returns how many
    were applied. stages maps stage names to their StageConfig.
    """
    import aws_cdk as cdk

    today = today or date.today()
    applied = 0
    for stage_name, cfg in stages.items():
        stage = app.node.try_find_child(stage_name)
        if stage is None:
            continue
        values = stage_values(cfg)
        for stack in stage.node.children:
            if not cdk.Stack.is_stack(stack):
                continue
            resources = _cfn_resources(stack)
            for suppression in policy.suppressions:
                rule = suppression.rule_for(values)
                if rule is None or suppression.expired(today) or not rule.startswith(PACK):
                    continue
                for resource in suppression.resources:
                    target = _resolve_target(resource, stage_name, stack.node.id)
                    if target is not None and target in resources:
                        cdk.Validations.of(resources[target]).acknowledge(
                            cdk.Acknowledgment(id=rule, reason=suppression.reason)
                        )
                        applied += 1
    return applied


def _resolve_target(resource: str, stage: str, stack: str) -> str | None:
    parts = resource.split("/")
    if len(parts) == 3 and parts[0] == stage and parts[1] == stack:
        return parts[2]
    if len(parts) == 2 and parts[0] == stack:
        return parts[1]
    return None


def _cfn_resources(stack: Any) -> dict[str, Any]:
    import aws_cdk as cdk

    found = {}
    for node in stack.node.find_all():
        if cdk.CfnResource.is_cfn_resource(node):
            found[stack.resolve(node.logical_id)] = node
    return found


def enforce_in_cdk_cli(app: Any, root: Path, load: Callable[[], dict]) -> None:
    """For `cdk synth`: cdk-nag as a validation plugin, acknowledgments generated from policy.yaml.

    Synthesis then fails on exactly what `gitops scan` reports for cdk-nag. load() returns the
    stages (name -> StageConfig).
    """
    import aws_cdk as cdk
    from cdk_nag import AwsSolutionsChecks

    from gitops.scan.policy import POLICY_FILE, load_policy

    policy = load_policy(root / POLICY_FILE, required=False, shown_as=POLICY_FILE)
    acknowledge_from_policy(app, policy, load())
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
