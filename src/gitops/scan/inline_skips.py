"""Every tool's inline skip in a template, refused as a finding; and the copy the tools read, skips removed.

Only policy.yaml may suppress. A tool reads its skips from the template itself: checkov from
`Metadata.checkov.skip` / `Metadata.bridgecrew.skip` and from `checkov:skip=` (or `bridgecrew:`,
`cortex:`) text anywhere in a resource, a tag value for instance; cfn-lint from
`Metadata.cfn-lint` (its config, ignore_checks among it); cfn_nag and cdk-nag v2 from
`Metadata.cfn_nag` / `Metadata.cdk_nag`; cfn-guard from `Metadata.guard`. Each is found in any
spelling (case, `-` or `_`) wherever a Metadata object sits, and reported; the scanners then read
a copy without them, so what a skip would have hidden is reported as well.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from gitops.files import atomic_write
from gitops.scan.findings import POLICY, Finding
from gitops.scan.templates import TemplateRef

RULE = "inline-suppression"
# Metadata keys a tool reads skips or its own configuration from, by their folded spelling.
SKIP_KEYS = {
    "checkov": "checkov skip",
    "bridgecrew": "checkov (bridgecrew) skip",
    "cfnlint": "cfn-lint configuration",
    "cfnnag": "cfn_nag rules_to_suppress",
    "cdknag": "cdk-nag rules_to_suppress",
    "guard": "cfn-guard SuppressedRules",
    "cfnguard": "cfn-guard SuppressedRules",
    "awscdkacknowledgedrules": "cdk-nag acknowledgment",
}
# checkov's inline comment (checkov.common.comment.enum.COMMENT_REGEX), in any case and spacing.
SKIP_TEXT = re.compile(r"(checkov|bridgecrew|cortex)\s*:\s*skip\s*=\s*([A-Za-z_\d,-]*)", re.IGNORECASE)
_NEUTRAL = "skip-refused-by-gitops"


def _fold(key: str) -> str:
    return re.sub(r"[^a-z]", "", key.lower())


def _ids_in(value: Any) -> list[str]:
    """Rule ids named by a skip's value, as far as its shape says (id/rules lists, ignore_checks ...)."""
    found: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if key in ("id", "ID", "Id") and isinstance(item, str):
                found.append(item)
            else:
                found += _ids_in(item)
    elif isinstance(value, list):
        for item in value:
            found += [item] if isinstance(item, str) else _ids_in(item)
    return found


def _resource_of(path: list) -> str | None:
    return path[1] if len(path) > 1 and path[0] == "Resources" and isinstance(path[1], str) else None


def find_skips(body: dict) -> list[tuple[str | None, str, list[str], list]]:
    """(logical id or None, what, skipped ids, path) for every inline skip in a template body."""
    found: list[tuple[str | None, str, list[str], list]] = []

    def walk(node: Any, path: list) -> None:
        if isinstance(node, dict):
            under_metadata = bool(path) and path[-1] == "Metadata"
            for key, value in node.items():
                if isinstance(key, str) and SKIP_TEXT.search(key):
                    found.append((_resource_of(path), "checkov skip comment", _text_ids(key), [*path, key]))
                if under_metadata and isinstance(key, str) and _fold(key) in SKIP_KEYS:
                    found.append((_resource_of(path), SKIP_KEYS[_fold(key)], _ids_in(value), [*path, key]))
                    continue  # the whole entry is refused; its inside is not looked at twice
                walk(value, [*path, key])
        elif isinstance(node, list):
            for index, item in enumerate(node):
                walk(item, [*path, index])
        elif isinstance(node, str) and SKIP_TEXT.search(node):
            found.append((_resource_of(path), "checkov skip comment", _text_ids(node), path))

    walk(body, [])
    return found


def _text_ids(text: str) -> list[str]:
    return [i for m in SKIP_TEXT.finditer(text) for i in m.group(2).split(",") if i]


def inline_suppressions(template: TemplateRef) -> list[Finding]:
    """A finding for each tool-specific skip written into the template (never honoured: policy.yaml only)."""
    found = []
    for logical_id, what, ids, path in find_skips(template.body):
        where = ".".join(str(p) for p in path)
        skipped = f" skips {', '.join(ids)}" if ids else ""
        found.append(
            Finding(
                tool=POLICY,
                rule_id=RULE,
                severity="error",
                message=f"{what} at {where}{skipped}: inline skips are refused, only policy.yaml may suppress",
                file=template.rel,
                stage=template.stage,
                stack=template.stack,
                resource=logical_id,
                line=template.line_of(logical_id),
                hint="remove it from the template (or its CDK source); add a suppression with a reason to policy.yaml",
            )
        )
    return found


def without_skips(body: Any, parent: object = None) -> Any:
    """The template with every inline skip taken out: skip metadata dropped, skip comments defused."""
    if isinstance(body, dict):
        cleaned = {}
        for key, value in body.items():
            if parent == "Metadata" and isinstance(key, str) and _fold(key) in SKIP_KEYS:
                continue
            name = SKIP_TEXT.sub(_NEUTRAL, key) if isinstance(key, str) else key
            cleaned[name] = without_skips(value, key)
        return cleaned
    if isinstance(body, list):
        return [without_skips(item) for item in body]
    if isinstance(body, str):
        return SKIP_TEXT.sub(_NEUTRAL, body)
    return body


def neutralise(templates: list[TemplateRef], workdir: Path) -> None:
    """Point each template that holds a skip at a copy without it (under workdir, same relative path)."""
    for template in templates:
        if not find_skips(template.body):
            continue
        copy = workdir / template.rel
        atomic_write(copy, json.dumps(without_skips(template.body), indent=2, sort_keys=True) + "\n")
        template.scan_path = copy
