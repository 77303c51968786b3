"""`scan_release`: every registered scanner over a release and the source, the policy applied, reports, attestation."""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path

from gitops.progress import Progress
from gitops.release.manifest import RELEASE_POLICY, load_release, load_stage_config_from_release
from gitops.scan.attestation import engine_digest, policy_sha256, record_attestation
from gitops.scan.errors import ScanError
from gitops.scan.findings import POLICY, Finding, ToolRun, merge, sort_key
from gitops.scan.inline_skips import RULE as INLINE_RULE
from gitops.scan.inline_skips import inline_suppressions, neutralise
from gitops.scan.pipeline_files import release_pipelines
from gitops.scan.policy import POLICY_FILE, Policy, PolicyOutcome, apply_policy, load_policy, stage_values
from gitops.scan.reports import write_junit, write_sarif
from gitops.scan.result import ScanReport, ToolStats
from gitops.scan.scanner import ScanInput, Scanner
from gitops.scan.scanners import SCANNERS, TOOL_ORDER
from gitops.scan.templates import release_templates

REPORTS_DIR = Path("reports")
SARIF_FILE = "scan.sarif"
JUNIT_FILE = "scan-junit.xml"
# The gate's own rules: what it refuses whatever the tools say.
# A policy resource naming a pipeline step: pipelines/<pipeline>/<step> (gitops.scan.findings).
PIPELINES_PREFIX = "pipelines"
POLICY_RULES = (INLINE_RULE, "expired-suppression", "unused-suppression")

__all__ = ["ScanReport", "ToolStats", "scan_release"]


def scan_release(
    root: Path,
    release_dir: Path,
    *,
    policy_path: Path | None = None,
    out_dir: Path | None = None,
    progress: Progress | None = None,
    sarif_path: Path | None = None,
    junit_path: Path | None = None,
    install_checkov: bool = True,
    today: date | None = None,
    record: bool = True,
    source: bool = True,
    use_cache: bool = True,
) -> ScanReport:
    """Scan a rendered release with every registered scanner (templates, pipeline definitions, source).

    Only the policy suppresses: policy_path, else the copy the release carries, else <root>/policy.yaml.
    source=False scans the release alone (a stage has no source tree): no secrets scan, and only
    the release's own policy applies, never a file at root. Writes SARIF and JUnit (under out_dir,
    default <root>/reports/) and, with record, this machine's attestation of the verdict
    (gitops.scan.attestation). use_cache=False scans every template and file afresh (the cache:
    gitops.scan.result_cache). Raises ScanError on bad input.
    """
    say = progress or (lambda _msg: None)
    started = time.perf_counter()
    today = today or date.today()
    root = root.resolve()
    release_dir = release_dir.resolve()
    manifest = load_release(release_dir)
    if policy_path is None and (release_dir / RELEASE_POLICY).is_file():
        policy_path = release_dir / RELEASE_POLICY
    if policy_path is not None:
        policy = load_policy(policy_path, required=True, shown_as=_shown(policy_path, root))
        policy_digest = hashlib.sha256(policy_path.read_bytes()).hexdigest()
    elif source:
        policy = load_policy(root / POLICY_FILE, required=False, shown_as=POLICY_FILE)
        policy_digest = policy_sha256(root)  # <root>/policy.yaml, or none
    else:
        policy, policy_digest = Policy(), policy_sha256(release_dir)  # the release carries none: no suppressions
    if not source:
        stacks = {name for summary in manifest.stages.values() for name in summary.stacks}
        policy = _template_suppressions_only(policy, set(manifest.stages), stacks)
    configs = {name: load_stage_config_from_release(release_dir, name) for name in manifest.stages}
    templates = release_templates(release_dir, manifest.files, {n: c.region for n, c in configs.items()})
    if not templates:
        raise ScanError(f"{release_dir}: the release holds no templates to scan")
    pipelines = release_pipelines(release_dir, manifest.files)

    sarif_path, junit_path = _report_paths(root, out_dir, sarif_path, junit_path)
    # Not source: the release, the reports, and the policy (its fingerprints are hashes of suppressed values).
    own_files = (release_dir, sarif_path, junit_path, root / POLICY_FILE, *([policy_path] if policy_path else []))
    own = frozenset(rel for rel in (_inside(p, root) for p in own_files) if rel)
    # checkov's environment from the lock the release carries (a stage has no scripts/), else the source's.
    checkov_lock = release_dir / manifest.requirements["checkov"] if "checkov" in manifest.requirements else None
    local_policy = root / POLICY_FILE
    if source and policy_path == release_dir / RELEASE_POLICY and local_policy.is_file():
        if local_policy.read_bytes() != policy_path.read_bytes():
            say(f"note: {POLICY_FILE} differs from the release's copy; re-render to scan with your edit")
    inline = [f for t in templates for f in inline_suppressions(t)]
    timings: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="gitops-scan-") as workdir:
        neutralise(templates, Path(workdir))  # the tools read copies without inline skips
        job = ScanInput(
            root,
            release_dir,
            manifest,
            templates,
            pipelines,
            own,
            install_checkov,
            say,
            source,
            checkov_lock,
            policy_sha256=policy_digest,
            use_cache=use_cache,
        )
        for scanner in SCANNERS:
            scanner.check_ready(job)  # a missing environment is one clear error before anything runs
        say(
            f"scanning release {manifest.short_id}: {len(templates)} templates, {len(pipelines)} pipeline"
            f" definitions, {f'source at {root}' if source else 'release only'}, policy {policy.path}"
        )
        runs = _run_all(SCANNERS, job, timings, say)

    raw = [f for run in runs.values() for f in run.findings]
    tool_findings = [f for f in raw if f.tool != POLICY]
    policy_own = [f for f in raw if f.tool == POLICY] + inline
    outcome = apply_policy(policy, tool_findings, {n: stage_values(c) for n, c in configs.items()}, today)
    findings = sorted(merge(outcome.unsuppressed, TOOL_ORDER) + policy_own + outcome.findings, key=sort_key)

    tools = {scanner.name: _stats(scanner, runs[scanner.name], outcome) for scanner in SCANNERS}
    tools[POLICY] = _policy_stats(policy, outcome, policy_own, today)
    report = ScanReport(
        release_id=manifest.release_id,
        root=root,
        release_dir=release_dir,
        policy_path=policy.path,
        passed=not findings,
        findings=findings,
        suppressed=sorted(outcome.suppressed, key=lambda pair: sort_key(pair[0])),
        tools=tools,
        seconds=0.0,
        timings=timings,
    )
    report.sarif, report.junit = sarif_path, junit_path
    write_sarif(report, sarif_path)
    write_junit(report, junit_path)
    if record:
        record_attestation(
            release_id=manifest.release_id,
            policy_sha256=policy_digest,
            scanners={"engine": engine_digest(), **{n: s.version for n, s in tools.items() if n != POLICY}},
            scope="release+source" if source else "release",
            passed=report.passed,
            findings=len(findings),
            rules=[f"{f.rule_id} ({f.target})" for f in findings],
        )
    report.seconds = round(time.perf_counter() - started, 2)
    timings["total"] = report.seconds
    return report


def _run_all(scanners: tuple[Scanner, ...], job: ScanInput, timings: dict[str, float], say: Progress) -> dict:
    """Every scanner in its own thread; the first error is raised once all have finished."""
    lock = threading.Lock()
    errors: list[BaseException] = []

    def run(scanner: Scanner) -> ToolRun | None:
        started = time.perf_counter()
        try:
            result = scanner.run(job)
        except BaseException as exc:  # re-raised below, after the other scanners finish
            with lock:
                errors.append(exc)
            return None
        result.seconds = round(time.perf_counter() - started, 2)
        with lock:
            timings[scanner.name] = result.seconds
        say(f"{scanner.name}: {len(result.findings)} raw finding(s), {result.passed} passed, {result.seconds:.1f}s")
        return result

    # Sized to the cores this process may use: the heavy scanners (cfn-lint here, checkov and
    # detect-secrets in their own processes) lead the list, so they get the cores first and the
    # light ones follow, rather than all contending at once.
    workers = max(1, min(len(scanners), len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 2))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="gitops-scan") as pool:
        futures = {scanner.name: pool.submit(run, scanner) for scanner in scanners}
        results = {name: future.result() for name, future in futures.items()}
    if errors:
        raise errors[0]
    return {name: result for name, result in results.items() if result is not None}


def _stats(scanner: Scanner, run: ToolRun, outcome: PolicyOutcome) -> ToolStats:
    return ToolStats(
        tool=scanner.name,
        version=run.version,
        passed=run.passed,
        failed=sum(1 for f in outcome.unsuppressed if f.tool == scanner.name),
        suppressed=sum(1 for f, _ in outcome.suppressed if f.tool == scanner.name),
        seconds=run.seconds,
        targets=run.targets,
        notes=run.notes,
        passed_unit=scanner.passed_unit,
        information_uri=scanner.information_uri,
        rules=run.rules,
        coverage=run.coverage,
    )


def _policy_stats(policy: Policy, outcome: PolicyOutcome, policy_own: list[Finding], today: date) -> ToolStats:
    in_use = sum(len(s.resources) for s in policy.suppressions if not s.expired(today)) - sum(
        1 for f in outcome.findings if f.rule_id == "unused-suppression"
    )
    return ToolStats(
        tool=POLICY,
        version=f"{policy.path} v{policy.version}",
        passed=max(in_use, 0),
        failed=len(policy_own) + len(outcome.findings),
        suppressed=0,
        seconds=0.0,
        targets=[],
        passed_unit="suppressions in use",
        rules=sorted(POLICY_RULES),
        coverage={"*": sorted(POLICY_RULES)},
    )


def _template_suppressions_only(policy: Policy, stages: set[str], stacks: set[str]) -> Policy:
    """The policy's suppressions of template resources. Without a source tree an entry for a source
    path is neither used nor unused: it is left out rather than reported as unused."""
    kept = []
    for suppression in policy.suppressions:
        resources = [r for r in suppression.resources if _names_template(r, stages, stacks)]
        if resources:
            kept.append(suppression.model_copy(update={"resources": resources}))
    return policy.model_copy(update={"suppressions": kept})  # private attributes (its path) come along


def _names_template(resource: str, stages: set[str], stacks: set[str]) -> bool:
    """<Stack>[/<LogicalId>] or pipelines/<pipeline>/<step> of this release, optionally after <stage>/."""
    parts = resource.split("/")
    if parts[0] in stages and len(parts) > 1:
        parts = parts[1:]
    if parts[0] == PIPELINES_PREFIX:
        return len(parts) == 3
    return parts[0] in stacks and len(parts) <= 2


def _shown(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _inside(path: Path, root: Path) -> str | None:
    try:
        return path.resolve().relative_to(root).as_posix()
    except ValueError:
        return None


def _report_paths(
    root: Path, out_dir: Path | None, sarif_path: Path | None, junit_path: Path | None
) -> tuple[Path, Path]:
    base = out_dir if out_dir is not None else root / REPORTS_DIR
    return (sarif_path or base / SARIF_FILE).absolute(), (junit_path or base / JUNIT_FILE).absolute()
