"""policy.yaml: the one place a finding may be suppressed (rule + named resources + reason + optional expiry).

A suppression names one rule id exactly as the tool reports it (cdk-nag's per-finding ids
included) and the resources it applies to: `<Stack>/<LogicalId>` in every stage,
`<stage>/<Stack>/<LogicalId>` in one, `<Stack>` for a template-level finding, or a repository
path for the source scan. No wildcards in either, so nothing is skipped wholesale. A rule id may
use {project}, {stage}, {prefix}, {account} and {region}, filled in per stage, so one entry
covers the same finding in every stage. An expired or unused suppression is itself a finding.
A reason is held to the rules of gitops.scan.reasons; a few rules (UNSUPPRESSIBLE) have no exception.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from gitops.config import StageConfig
from gitops.scan import reasons
from gitops.scan.errors import PolicyError
from gitops.scan.findings import POLICY, Finding
from gitops.strict_yaml import YamlError, load_yaml

POLICY_FILE = "policy.yaml"
MIN_REASON = reasons.MIN_REASON
# Rules no suppression may name: the isolated network's promise (gitops.scan.cfn_lint_rules) has no exception.
UNSUPPRESSIBLE = {
    "E9202": "a NAT gateway",
    "E9203": "an egress-only internet gateway",
    "E9204": "a route to the internet",
}
PLACEHOLDERS = ("project", "stage", "prefix", "account", "region")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_WILDCARDS = set("*?[]")


class Suppression(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    rule: str = Field(min_length=1)
    resources: list[str] = Field(min_length=1)
    reason: str
    expires: date | None = None
    fingerprint: str | None = None
    _line: int = PrivateAttr(default=0)

    @field_validator("rule")
    @classmethod
    def _exact_rule(cls, value: str) -> str:
        if value != value.strip() or any(c.isspace() for c in value):
            raise ValueError("must be one rule id, without spaces")
        if _WILDCARDS & set(value.split("[", 1)[0]):
            raise ValueError(f"'{value}': wildcards are not allowed in a rule id (no blanket skips)")
        for name in _PLACEHOLDER.findall(value):
            if name not in PLACEHOLDERS:
                raise ValueError(f"unknown placeholder {{{name}}} (known: {', '.join(PLACEHOLDERS)})")
        if value.split("[", 1)[0] in UNSUPPRESSIBLE:
            what = UNSUPPRESSIBLE[value.split("[", 1)[0]]
            raise ValueError(f"{value} ({what}) can never be suppressed: the isolated network allows no way out")
        return value

    @field_validator("resources")
    @classmethod
    def _named_resources(cls, value: list[str]) -> list[str]:
        for resource in value:
            if not resource or resource != resource.strip() or resource.startswith("/") or resource.endswith("/"):
                raise ValueError(f"'{resource}': name a resource as <Stack>/<LogicalId> or a repository path")
            if _WILDCARDS & set(resource):
                raise ValueError(f"'{resource}': wildcards are not allowed in a resource (no blanket skips)")
        if len(set(value)) != len(value):
            raise ValueError("a resource is listed twice")
        return value

    @field_validator("reason")
    @classmethod
    def _real_reason(cls, value: str) -> str:
        refused = reasons.refusal(value)
        if refused:
            raise ValueError(f"refused ({refused})")
        return " ".join(value.split())

    @model_validator(mode="after")
    def _reason_beyond_names(self) -> Suppression:
        refused = reasons.refusal(self.reason, (self.rule, *self.resources))
        if refused:
            raise ValueError(f"reason: refused ({refused})")
        return self

    @property
    def line(self) -> int:
        return self._line

    def expired(self, today: date) -> bool:
        return self.expires is not None and self.expires < today

    def rule_for(self, values: dict[str, str] | None) -> str | None:
        """The rule id with the stage's placeholders filled in (None: it has placeholders and no stage)."""
        if values is None:
            return None if _PLACEHOLDER.search(self.rule) else self.rule
        return _PLACEHOLDER.sub(lambda m: values[m.group(1)], self.rule)

    def matches(self, finding: Finding, values: dict[str, str] | None) -> str | None:
        """The listed resource this suppression applies to for the finding, or None."""
        if self.fingerprint is not None and self.fingerprint != finding.fingerprint:
            return None
        if self.rule_for(values) != finding.rule_id:
            return None
        target = finding.target
        stageless = target.split("/", 1)[1] if finding.in_template and "/" in target else None
        for resource in self.resources:
            if resource == target or (stageless is not None and resource == stageless):
                return resource
        return None


class Policy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = 1
    suppressions: list[Suppression] = Field(default_factory=list)
    _path: str = PrivateAttr(default=POLICY_FILE)

    @property
    def path(self) -> str:
        return self._path


def stage_values(cfg: StageConfig) -> dict[str, str]:
    return {
        "project": cfg.project,
        "stage": cfg.stage,
        "prefix": cfg.prefix,
        "account": cfg.account,
        "region": cfg.region,
    }


def _entry_lines(text: str) -> list[int]:
    """1-based line of each item of `suppressions`, for pointing reports at the entry."""
    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return []
    if not isinstance(node, yaml.MappingNode):
        return []
    for key, value in node.value:
        if key.value == "suppressions" and isinstance(value, yaml.SequenceNode):
            return [item.start_mark.line + 1 for item in value.value]
    return []


def _describe(error: dict, data: object) -> str:
    loc = list(error["loc"])
    where = ""
    if len(loc) >= 2 and loc[0] == "suppressions" and isinstance(loc[1], int):
        index = loc[1]
        where = f"suppressions[{index}]"
        entry = data.get("suppressions", [])[index] if isinstance(data, dict) else None
        if isinstance(entry, dict) and isinstance(entry.get("rule"), str):
            where += f" ({entry['rule']})"
        loc = loc[2:]
    name = ".".join(str(p) for p in loc)
    if error["type"] == "extra_forbidden":
        what = f"unknown key '{name}'"
    elif error["type"] == "missing":
        what = f"'{name}' is required" + (
            f": say why the finding is acceptable, in at least {MIN_REASON} characters" if name == "reason" else ""
        )
    else:
        message = error["msg"].removeprefix("Value error, ")
        what = f"{name}: {message}" if name else message
    return f"{where}: {what}" if where else what


def parse_policy(text: str, path: str = POLICY_FILE) -> Policy:
    try:
        data = load_yaml(text, path)
    except YamlError as exc:
        raise PolicyError(str(exc)) from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise PolicyError(f"{path}: must be a mapping with 'version' and 'suppressions'")
    try:
        policy = Policy.model_validate(data)
    except ValidationError as exc:
        raise PolicyError(f"{path}: {_describe(dict(exc.errors()[0]), data)}") from exc
    policy._path = path
    for suppression, line in zip(policy.suppressions, _entry_lines(text), strict=False):
        suppression._line = line
    return policy


def load_policy(path: Path, *, required: bool = True, shown_as: str | None = None) -> Policy:
    """Read and validate the policy file; a missing optional one is an empty policy."""
    shown = shown_as or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        if not required:
            policy = Policy()
            policy._path = shown
            return policy
        raise PolicyError(f"{shown}: policy file not found") from exc
    return parse_policy(text, shown)


@dataclass
class PolicyOutcome:
    unsuppressed: list[Finding]
    suppressed: list[tuple[Finding, Suppression]]
    findings: list[Finding] = field(default_factory=list)  # the policy's own: expired, unused


def _policy_finding(policy: Policy, suppression: Suppression, rule: str, message: str) -> Finding:
    return Finding(
        tool=POLICY,
        rule_id=rule,
        severity="error",
        message=message,
        file=policy.path,
        line=suppression.line or None,
        hint="fix what it suppressed, or update the entry in the policy file",
    )


def apply_policy(
    policy: Policy, findings: list[Finding], stages: dict[str, dict[str, str]], today: date
) -> PolicyOutcome:
    """Split raw findings into suppressed and not; report expired and unused suppressions."""
    active = [s for s in policy.suppressions if not s.expired(today)]
    used: set[tuple[int, str]] = set()
    outcome = PolicyOutcome([], [])
    for finding in findings:
        values = stages.get(finding.stage) if finding.stage else None
        for index, suppression in enumerate(active):
            resource = suppression.matches(finding, values)
            if resource is not None:
                used.add((index, resource))
                outcome.suppressed.append((finding, suppression))
                break
        else:
            outcome.unsuppressed.append(finding)
    for suppression in policy.suppressions:
        if suppression.expired(today):
            outcome.findings.append(
                _policy_finding(
                    policy,
                    suppression,
                    "expired-suppression",
                    f"suppression of {suppression.rule} on {', '.join(suppression.resources)} expired on"
                    f" {suppression.expires}: it no longer applies",
                )
            )
    for index, suppression in enumerate(active):
        for resource in suppression.resources:
            if (index, resource) not in used:
                outcome.findings.append(
                    _policy_finding(
                        policy,
                        suppression,
                        "unused-suppression",
                        f"suppression of {suppression.rule} on {resource} matched no finding: remove it",
                    )
                )
    return outcome
