"""One findings model for every scanner, and the merge that shows one problem once with all its rule ids."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

SEVERITIES = ("error", "warning", "note")
POLICY = "policy"  # the gate's own findings: inline skips, expired or unused suppressions

# The same concern as each tool names it: findings of one concern on one resource are one problem.
CONCERNS: dict[str, tuple[str, ...]] = {
    "s3-public-access": (
        "CKV_AWS_20",
        "CKV_AWS_53",
        "CKV_AWS_54",
        "CKV_AWS_55",
        "CKV_AWS_56",
        "CKV_AWS_57",
        "AwsSolutions-S2",
        "AwsSolutions-S5",
    ),
    "s3-encryption": ("CKV_AWS_19", "CKV2_GITOPS_2"),
    "s3-access-logs": ("CKV_AWS_18", "AwsSolutions-S1"),
    "iam-wildcard": (
        "CKV_AWS_62",
        "CKV_AWS_63",
        "CKV_AWS_107",
        "CKV_AWS_108",
        "CKV_AWS_109",
        "CKV_AWS_110",
        "CKV_AWS_111",
        "AwsSolutions-IAM5",
    ),
    "kms-key-rotation": ("CKV_AWS_7", "AwsSolutions-KMS5"),
    "vpc-flow-logs": ("CKV2_AWS_11", "AwsSolutions-VPC7"),
    "security-group-open-ingress": ("CKV_AWS_24", "CKV_AWS_25", "CKV_AWS_260", "AwsSolutions-EC23"),
    "codebuild-encryption": ("CKV_AWS_78", "AwsSolutions-CB4"),
    "sns-encryption": ("CKV_AWS_26", "AwsSolutions-SNS2"),
    "log-group-encryption": ("CKV_AWS_158",),
    "sagemaker-model-network-isolation": ("CKV_AWS_370",),
    "sagemaker-endpoint-kms": ("CKV2_GITOPS_1",),
}
CONCERN_OF = {rule: concern for concern, rules in CONCERNS.items() for rule in rules}


def base_rule(rule_id: str) -> str:
    """`AwsSolutions-IAM5[Resource::*]` -> `AwsSolutions-IAM5` (cdk-nag's per-finding suffix dropped)."""
    return rule_id.split("[", 1)[0]


@dataclass
class Finding:
    """One problem a tool reported, located as precisely as the tool allows."""

    tool: str  # a registered scanner's name, or POLICY
    rule_id: str
    severity: str  # one of SEVERITIES
    message: str
    file: str  # release-relative for release files (stages/<stage>/...), repo-relative for source
    stage: str | None = None
    stack: str | None = None
    resource: str | None = None  # CloudFormation logical id
    pipeline: str | None = None  # a SageMaker pipeline of the release (stages/<stage>/pipelines/<name>.json)
    step: str | None = None  # the pipeline's step
    line: int | None = None
    hint: str | None = None  # how to fix it, where the tool says
    help_uri: str | None = None
    fingerprint: str | None = None  # identity beyond rule + resource (a secret's sha1)
    also: list[Finding] = field(default_factory=list)  # the same problem as other rules/tools report it

    @property
    def in_template(self) -> bool:
        return self.stage is not None

    @property
    def unit(self) -> str | None:
        """The stack, or `pipelines/<name>` for a pipeline finding: what the table groups by."""
        return f"pipelines/{self.pipeline}" if self.pipeline else self.stack

    @property
    def target(self) -> str:
        """What policy.yaml names: <stage>/<Stack>/<LogicalId>, <stage>/<Stack>, <stage>/pipelines/<name>/<step>,
        or a source path."""
        if self.stage is None:
            return self.file
        return "/".join(p for p in (self.stage, self.unit, self.step or self.resource) if p)

    @property
    def group(self) -> str:
        """How the readable table groups it: <stage>/<Stack>, <stage>/pipelines/<name>, or the source file."""
        if self.stage is None:
            return "source" if self.tool != POLICY else POLICY
        return f"{self.stage}/{self.unit}" if self.unit else self.stage

    @property
    def rule_ids(self) -> list[str]:
        return sorted({self.rule_id, *(f.rule_id for f in self.also)})

    @property
    def tools(self) -> list[str]:
        """Every tool that reported it, the leading one first (in the order `merge` ranked them)."""
        return list(dict.fromkeys([self.tool, *(f.tool for f in self.also)]))

    @property
    def concern(self) -> str:
        if self.tool == "detect-secrets":
            return "secret"
        return CONCERN_OF.get(base_rule(self.rule_id), f"{self.tool}:{base_rule(self.rule_id)}")

    def to_dict(self) -> dict:
        return {
            "tool": self.tool,
            "tools": self.tools,
            "rule_id": self.rule_id,
            "rule_ids": self.rule_ids,
            "severity": self.severity,
            "stage": self.stage,
            "stack": self.stack,
            "resource": self.resource,
            "pipeline": self.pipeline,
            "step": self.step,
            "file": self.file,
            "line": self.line,
            "message": self.message,
            "hint": self.hint,
            "help_uri": self.help_uri,
            "fingerprint": self.fingerprint,
        }


@dataclass
class ToolRun:
    """What one scanner reported: its raw findings, how many of its checks passed, and which rules it ran.

    coverage maps each resource type the tool looked at (a CloudFormation type, a pipeline step
    type, `source`) to the rule ids it applied to that type; rules is every rule id it ran.
    """

    tool: str
    version: str
    findings: list[Finding]
    passed: int  # checks that passed, in the tool's own unit (its scanner's `passed_unit`)
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    targets: list[str] = field(default_factory=list)  # what it looked at, as groups (dev/Base, source)
    rules: list[str] = field(default_factory=list)
    coverage: dict[str, list[str]] = field(default_factory=dict)


def _merge_key(finding: Finding) -> tuple:
    if finding.stage is None:
        # A secret is the same secret wherever two plugins see it; other source findings are per line.
        where = finding.fingerprint or str(finding.line)
        return (None, None, finding.file, where, finding.concern)
    return (finding.stage, finding.unit, finding.step or finding.resource, None, finding.concern)


def merge(findings: Iterable[Finding], order: Sequence[str] = ()) -> list[Finding]:
    """One finding per (resource, concern): the most severe leads and carries the others in `also`.

    order ranks the tools among equally severe findings (the registered scanners' order); a tool
    not in it ranks after those that are, by name.
    """

    def rank(finding: Finding) -> tuple:
        tool = order.index(finding.tool) if finding.tool in order else len(order)
        return (SEVERITIES.index(finding.severity), tool, finding.tool, finding.rule_id)

    groups: dict[tuple, list[Finding]] = {}
    for finding in findings:
        groups.setdefault(_merge_key(finding), []).append(finding)
    merged = []
    for members in groups.values():
        members = sorted(members, key=rank)
        lead = members[0]
        fields = {k: v for k, v in vars(lead).items() if k != "also"}
        for key in ("hint", "help_uri", "line", "resource"):
            fields[key] = fields[key] or next((getattr(m, key) for m in members if getattr(m, key)), None)
        merged.append(Finding(**fields, also=members[1:]))
    return sorted(merged, key=sort_key)


def sort_key(finding: Finding) -> tuple:
    return (
        finding.stage is None,
        finding.stage or "",
        finding.unit or "",
        finding.file,
        finding.step or finding.resource or "",
        SEVERITIES.index(finding.severity),
        finding.rule_id,
        finding.line or 0,
    )
