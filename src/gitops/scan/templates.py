"""The release's CloudFormation templates as the scanners see them, and refusal of inline suppressions in them."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from gitops.scan.errors import ScanError
from gitops.scan.findings import Finding

_TEMPLATE = re.compile(r"^stages/([^/]+)/templates/([^/]+)\.template\.json$")
_RESOURCE_LINE = re.compile(r'^    "(.+)": \{$')

# Metadata keys by which tools read suppressions out of a template: all refused (policy.yaml only).
INLINE_SUPPRESSION_KEYS = {
    "cfn-lint": "cfn-lint config ignore_checks",
    "checkov": "checkov skip",
    "cdk_nag": "cdk-nag rules_to_suppress",
    "cfn_nag": "cfn_nag rules_to_suppress",
    "guard": "cfn-guard SuppressedRules",
}


@dataclass
class TemplateRef:
    stage: str
    stack: str
    rel: str  # release-relative path
    path: Path
    region: str
    body: dict
    lines: list[str] = field(repr=False, default_factory=list)

    def line_of(self, logical_id: str | None) -> int | None:
        """The 1-based line where a resource starts (canonical JSON, 2-space indent)."""
        if not logical_id:
            return None
        wanted = f"    {json.dumps(logical_id)}: {{"
        for number, text in enumerate(self.lines, 1):
            if text == wanted:
                return number
        return None

    def resource_at(self, line: int | None) -> str | None:
        """The logical id of the resource whose block holds the line, if any."""
        if not line:
            return None
        current = None
        in_resources = False
        for number, text in enumerate(self.lines, 1):
            if text == '  "Resources": {':
                in_resources = True
            elif in_resources and text.startswith("  }"):
                in_resources = False
                current = None
            elif in_resources:
                found = _RESOURCE_LINE.match(text)
                if found:
                    current = json.loads(f'"{found.group(1)}"')
            if number == line:
                return current
        return None


def release_templates(release_dir: Path, files: dict[str, str], regions: dict[str, str]) -> list[TemplateRef]:
    """Every template of the release, parsed; one that is not a JSON object is bad input, named."""
    found = []
    for rel in sorted(files):
        match = _TEMPLATE.match(rel)
        if not match:
            continue
        stage, stack = match.groups()
        path = release_dir / rel
        text = path.read_text(encoding="utf-8", errors="replace")
        try:
            body = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ScanError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from exc
        if not isinstance(body, dict) or not isinstance(body.get("Resources"), dict):
            raise ScanError(f"{path}: not a CloudFormation template (no Resources object)")
        found.append(TemplateRef(stage, stack, rel, path, regions.get(stage, "us-east-1"), body, text.splitlines()))
    return found


def _suppressed_ids(key: str, value: object) -> list[str]:
    if not isinstance(value, dict):
        return [str(value)]
    if key == "cfn-lint":
        ignored = (value.get("config") or {}).get("ignore_checks") if isinstance(value.get("config"), dict) else None
        return [str(i) for i in ignored or []]
    if key == "checkov":
        return [str(s.get("id") if isinstance(s, dict) else s) for s in value.get("skip", [])]
    if key in ("cdk_nag", "cfn_nag"):
        return [str(r.get("id") if isinstance(r, dict) else r) for r in value.get("rules_to_suppress", [])]
    if key == "guard":
        return [str(r) for r in value.get("SuppressedRules", [])]
    return []


def inline_suppressions(template: TemplateRef) -> list[Finding]:
    """A finding for each tool-specific suppression written into the template (never honoured as policy)."""
    found = []
    places = [(None, template.body.get("Metadata"))]
    places += [(lid, res.get("Metadata")) for lid, res in template.body["Resources"].items() if isinstance(res, dict)]
    for logical_id, meta in places:
        if not isinstance(meta, dict):
            continue
        for key, what in INLINE_SUPPRESSION_KEYS.items():
            if key not in meta:
                continue
            ids = _suppressed_ids(key, meta[key])
            if not ids:
                continue
            found.append(
                Finding(
                    tool="policy",
                    rule_id="inline-suppression",
                    severity="error",
                    message=f"{what} in the template suppresses {', '.join(ids)}: only policy.yaml may suppress",
                    file=template.rel,
                    stage=template.stage,
                    stack=template.stack,
                    resource=logical_id,
                    line=template.line_of(logical_id),
                    hint=f"remove the '{key}' metadata; add a suppression with a reason to policy.yaml instead",
                )
            )
    return found
