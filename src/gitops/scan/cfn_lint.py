"""cfn-lint through its Python API, with the gate's own rules appended: one Runner per region over the templates."""

from __future__ import annotations

import logging
from importlib import metadata
from pathlib import Path

from gitops.scan.attestation import engine_digest
from gitops.scan.findings import Finding, ToolRun
from gitops.scan.result_cache import ScanCache, combine, unit_digest
from gitops.scan.scanner import ScanInput
from gitops.scan.templates import TemplateRef

OWN_RULES = "gitops.scan.cfn_lint_rules"  # the gate's E9xxx rules, appended by module path
_MAX_MESSAGE = 400  # some rules list every valid value in the message
_SEVERITY = {"error": "error", "warning": "warning", "informational": "note"}
ALL_TYPES = "*"  # coverage key of the rules that look at every resource type


def _types_of(rule) -> set[str]:
    """The resource types a rule is written for; empty when it applies to every resource (schema rules ...)."""
    types = set(getattr(rule, "resource_property_types", None) or [])
    for keyword in getattr(rule, "keywords", None) or []:
        parts = str(keyword).split("/")
        if len(parts) > 1 and parts[0] == "Resources" and parts[1].startswith("AWS::"):
            types.add(parts[1])
    return types


def run_cfn_lint(templates: list[TemplateRef]) -> ToolRun:
    """Every template linted in one run, as one ToolRun."""
    runs = run_cfn_lint_by_template(templates)
    return combine("cfn-lint", metadata.version("cfn-lint"), [runs[t.rel] for t in templates])


def run_cfn_lint_by_template(templates: list[TemplateRef]) -> dict[str, ToolRun]:
    """Lint every template in-process (the import is paid once, not once per template or per run).

    One ToolRun per template (by release path): what the scan cache keeps per template digest.
    """
    from cfnlint.config import ConfigMixIn
    from cfnlint.runner import Runner

    # cfn-lint narrates at INFO ("Run scan of template ..."); when another library in the process
    # has put the root logger at INFO (the SageMaker SDK can, during render), that leaked into
    # `gitops scan` and `rehearse`. Its findings come back as matches; only its warnings are news.
    logging.getLogger("cfnlint").setLevel(logging.WARNING)
    version = metadata.version("cfn-lint")
    by_path = {str(t.tool_path): t for t in templates}
    findings: dict[str, list[Finding]] = {t.rel: [] for t in templates}
    runs: dict[str, ToolRun] = {}
    for region in sorted({t.region for t in templates}):
        group = [t for t in templates if t.region == region]
        args = ["--template", *(str(t.tool_path) for t in group), "--append-rules", OWN_RULES]
        config = ConfigMixIn(args, regions=[region])
        runner = Runner(config)
        enabled = [rule for rule in runner.rules.values() if runner.rules.is_rule_enabled(rule, config)]
        coverage: dict[str, dict[str, set[str]]] = {t.rel: {} for t in group}
        for rule in enabled:
            types = _types_of(rule)  # read before the run: running a rule can change what it lists
            for template in group:
                for kind in (types & template.resource_types) if types else template.resource_types:
                    coverage[template.rel].setdefault(kind, set()).add(rule.id)
        for match in runner.run():
            matched = by_path.get(str(Path(match.filename or "").resolve()))
            if matched is not None:
                findings[matched.rel].append(_finding(match, matched))
        for template in group:
            failed_rules = {f.rule_id for f in findings[template.rel]}
            runs[template.rel] = ToolRun(
                tool="cfn-lint",
                version=version,
                findings=findings[template.rel],
                passed=max(len(enabled) - len(failed_rules), 0),
                rules=sorted({rule.id for rule in enabled}),
                coverage={kind: sorted(ids) for kind, ids in coverage[template.rel].items()},
            )
    return runs


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
        line=(template.line_of(logical_id) if template.scan_path else match.linenumber) or None,
        hint=hint,
        help_uri=getattr(rule, "source_url", None) or None,
    )


class CfnLintScanner:
    """cfn-lint: every enabled rule (its own and the gate's E9xxx) over every template, in-process."""

    name = "cfn-lint"
    information_uri = "https://github.com/aws-cloudformation/cfn-lint"
    passed_unit = "clean (rule, template) pairs"

    def version(self) -> str:
        return metadata.version("cfn-lint")

    def check_ready(self, job: ScanInput) -> None:
        return None

    def run(self, job: ScanInput) -> ToolRun:
        version = self.version()
        cache = ScanCache(self.name, version, engine_digest(), job.policy_sha256, enabled=job.use_cache)
        units = {t.rel: unit_digest(f"{t.rel}@{t.region}", t.tool_path.read_bytes()) for t in job.templates}
        cached = {rel: cache.get(unit) for rel, unit in units.items()}
        fresh = run_cfn_lint_by_template([t for t in job.templates if cached[t.rel] is None]) if cache.misses else {}
        for rel, run in fresh.items():
            cache.put(units[rel], run)
        runs = [cached[t.rel] or fresh[t.rel] for t in job.templates]
        combined = combine(self.name, version, [r for r in runs if r is not None])
        combined.targets = job.template_groups
        combined.notes.append(cache.note())
        return combined


SCANNER = CfnLintScanner()
