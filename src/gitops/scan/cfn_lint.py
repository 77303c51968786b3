"""cfn-lint through its Python API: one Runner per region over all of the release's templates."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

from gitops.scan.findings import Finding, ToolRun
from gitops.scan.templates import TemplateRef

_MAX_MESSAGE = 400  # some rules list every valid value in the message
_SEVERITY = {"error": "error", "warning": "warning", "informational": "note"}


def run_cfn_lint(templates: list[TemplateRef]) -> ToolRun:
    """Lint every template in-process (the import is paid once, not once per template or per run)."""
    from cfnlint.config import ConfigMixIn
    from cfnlint.runner import Runner

    by_path = {str(t.path.resolve()): t for t in templates}
    regions = sorted({t.region for t in templates})
    findings: list[Finding] = []
    checks = 0
    for region in regions:
        group = [t for t in templates if t.region == region]
        config = ConfigMixIn(["--template", *(str(t.path.resolve()) for t in group)], regions=[region])
        runner = Runner(config)
        enabled = sum(1 for rule in runner.rules.values() if runner.rules.is_rule_enabled(rule, config))
        checks += enabled * len(group)
        for match in runner.run():
            template = by_path.get(str(Path(match.filename or "").resolve()))
            if template is None:
                continue
            findings.append(_finding(match, template))
    failed_pairs = {(f.rule_id, f.file) for f in findings}
    return ToolRun(
        tool="cfn-lint",
        version=metadata.version("cfn-lint"),
        findings=findings,
        passed=max(checks - len(failed_pairs), 0),
    )


def _finding(match, template: TemplateRef) -> Finding:
    rule = match.rule
    path = getattr(match, "path", None) or []
    logical_id = path[1] if len(path) > 1 and path[0] == "Resources" else template.resource_at(match.linenumber)
    hint = (rule.description or "").strip() or None
    message = match.message if len(match.message) <= _MAX_MESSAGE else match.message[: _MAX_MESSAGE - 3] + "..."
    return Finding(
        tool="cfn-lint",
        rule_id=rule.id,
        severity=_SEVERITY.get(rule.severity, "error"),
        message=message,
        file=template.rel,
        stage=template.stage,
        stack=template.stack,
        resource=logical_id if isinstance(logical_id, str) else None,
        line=match.linenumber or None,
        hint=hint,
        help_uri=getattr(rule, "source_url", None) or None,
    )
