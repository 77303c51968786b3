"""`scan_release`: every scanner over a release and the source, the policy applied, reports, the attestation."""

from __future__ import annotations

import hashlib
import multiprocessing
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from gitops.progress import Progress
from gitops.release.manifest import RELEASE_POLICY, load_release, load_stage_config_from_release
from gitops.scan.attestation import engine_digest, policy_sha256, record_attestation
from gitops.scan.errors import ScanError
from gitops.scan.findings import TOOLS, Finding, ToolRun, merge, sort_key
from gitops.scan.policy import POLICY_FILE, Policy, Suppression, apply_policy, load_policy, stage_values

REPORTS_DIR = Path("reports")
SARIF_FILE = "scan.sarif"
JUNIT_FILE = "scan-junit.xml"


@dataclass
class ToolStats:
    """One tool's tally. `passed` is in the tool's unit: checkov's passed checks, cfn-lint's clean
    (rule, template) pairs, cdk-nag's clean resources, detect-secrets' clean files, policy's
    suppressions in use."""

    tool: str
    version: str
    passed: int
    failed: int
    suppressed: int
    seconds: float
    targets: list[str] = field(default_factory=list)  # what it looked at, as groups (dev/Base, source)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "version": self.version,
            "passed": self.passed,
            "failed": self.failed,
            "suppressed": self.suppressed,
            "seconds": self.seconds,
            "notes": self.notes,
        }


@dataclass
class ScanReport:
    release_id: str
    root: Path
    release_dir: Path
    policy_path: str
    passed: bool
    findings: list[Finding]  # unsuppressed, one per problem (merged across tools)
    suppressed: list[tuple[Finding, Suppression]]
    tools: dict[str, ToolStats]
    seconds: float
    timings: dict[str, float]
    sarif: Path | None = None
    junit: Path | None = None

    def repo_path(self, finding: Finding) -> str:
        """The finding's file relative to the repository (a release outside it counts as release/)."""
        if finding.in_template:
            try:
                base = self.release_dir.resolve().relative_to(self.root).as_posix()
            except ValueError:
                base = "release"
            return f"{base}/{finding.file}"
        return finding.file

    def to_dict(self) -> dict:
        return {
            "release_id": self.release_id,
            "passed": self.passed,
            "policy": self.policy_path,
            "findings": [{**f.to_dict(), "file": self.repo_path(f)} for f in self.findings],
            "suppressed": [
                {**f.to_dict(), "file": self.repo_path(f), "reason": s.reason, "expires": s.expires}
                for f, s in self.suppressed
            ],
            "tools": {name: stats.to_dict() for name, stats in self.tools.items()},
            "seconds": self.seconds,
            "timings": self.timings,
            "sarif": str(self.sarif) if self.sarif else None,
            "junit": str(self.junit) if self.junit else None,
        }


def _timed(name: str, timings: dict[str, float], say: Progress, work: Callable[[], ToolRun]) -> ToolRun:
    started = time.perf_counter()
    run = work()
    run.seconds = round(time.perf_counter() - started, 2)
    timings[name] = run.seconds
    say(f"{name}: {len(run.findings)} raw finding(s), {run.passed} passed, {run.seconds:.1f}s")
    return run


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
) -> ScanReport:
    """Scan a rendered release with cfn-lint, checkov and its recorded cdk-nag report, and the source for secrets.

    Only the policy suppresses: policy_path, else the copy the release carries, else <root>/policy.yaml.
    source=False scans the release alone (a stage has no source tree): no secrets scan, and only
    the release's own policy applies, never a file at root. Writes SARIF and JUnit (under out_dir,
    default <root>/reports/) and, with record, this machine's attestation of the verdict
    (gitops.scan.attestation). Raises ScanError on bad input.
    """
    from gitops.scan import cdk_nag, checkov
    from gitops.scan.cfn_lint import run_cfn_lint
    from gitops.scan.templates import inline_suppressions, release_templates

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
    # checkov's environment from the lock the release carries (a stage has no scripts/), else the source's.
    checkov_lock = release_dir / manifest.requirements["checkov"] if "checkov" in manifest.requirements else None
    if not install_checkov and checkov.env_state(root, checkov_lock) != "ready":
        # Raises the clear "missing environment" error now, before any scanner starts.
        checkov.ensure_checkov(root, install=False, lock=checkov_lock)

    sarif_path, junit_path = _report_paths(root, out_dir, sarif_path, junit_path)
    # Not source: the release, the reports, and the policy (its fingerprints are hashes of suppressed values).
    own_files = (release_dir, sarif_path, junit_path, root / POLICY_FILE, *([policy_path] if policy_path else []))
    own = {rel for rel in (_inside(p, root) for p in own_files) if rel}
    timings: dict[str, float] = {}
    where = f"source at {root}" if source else "release only"
    say(f"scanning release {manifest.short_id}: {len(templates)} templates, {where}, policy {policy.path}")
    local_policy = root / POLICY_FILE
    if source and policy_path == release_dir / RELEASE_POLICY and local_policy.is_file():
        if local_policy.read_bytes() != policy_path.read_bytes():
            say(f"note: {POLICY_FILE} differs from the release's copy; re-render to scan with your edit")
    nag_findings: list[Finding] = []
    nag_checked = 0
    nag_versions: set[str] = set()
    for stage in manifest.stages:
        found, stats = cdk_nag.read_nag_findings(release_dir, stage, manifest.files)
        nag_findings += found
        nag_checked += stats["checked"]
        nag_versions.add(stats["version"])

    def checkov_run() -> ToolRun:
        install_started = time.perf_counter()
        python = checkov.ensure_checkov(root, install=install_checkov, progress=say, lock=checkov_lock)
        installed = round(time.perf_counter() - install_started, 2)
        run = _timed("checkov", timings, say, lambda: checkov.run_checkov(python, templates))
        if installed > 1:
            run.notes.append(f"environment created in {installed:.1f}s")
            timings["checkov-install"] = installed
        return run

    lock = threading.Lock()
    errors: list[BaseException] = []

    def guarded(work: Callable[[], ToolRun]) -> Callable[[], ToolRun | None]:
        def run() -> ToolRun | None:
            try:
                return work()
            except BaseException as exc:  # re-raised below, after the other scanners finish
                with lock:
                    errors.append(exc)
                return None

        return run

    with ThreadPoolExecutor(max_workers=3, thread_name_prefix="gitops-scan") as pool:
        futures = {
            "checkov": pool.submit(guarded(checkov_run)),
            "cfn-lint": pool.submit(guarded(lambda: _timed("cfn-lint", timings, say, lambda: run_cfn_lint(templates)))),
        }
        if source:
            futures["detect-secrets"] = pool.submit(
                guarded(lambda: _timed("detect-secrets", timings, say, lambda: _in_own_process(root, own)))
            )
        results = {name: future.result() for name, future in futures.items()}
    if errors:
        raise errors[0]
    runs: dict[str, ToolRun] = {name: run for name, run in results.items() if run is not None}
    if not source:
        runs["detect-secrets"] = ToolRun("detect-secrets", "not run", [], 0, notes=["release-only scan: no source"])
    # The version that ran during render, as its report in the release records it.
    runs["cdk-nag"] = ToolRun("cdk-nag", ", ".join(sorted(nag_versions)) or "none", nag_findings, 0)

    inline = [f for t in templates for f in inline_suppressions(t)]
    raw = [f for run in runs.values() for f in run.findings]
    tool_findings = [f for f in raw if f.tool != "policy"]
    policy_own = [f for f in raw if f.tool == "policy"] + inline
    outcome = apply_policy(policy, tool_findings, {n: stage_values(c) for n, c in configs.items()}, today)
    findings = sorted(merge(outcome.unsuppressed) + policy_own + outcome.findings, key=sort_key)

    groups_of_templates = sorted({f"{t.stage}/{t.stack}" for t in templates})
    tools: dict[str, ToolStats] = {}
    for name in TOOLS[:-1]:
        run = runs[name]
        failed = sum(1 for f in outcome.unsuppressed if f.tool == name)
        suppressed = sum(1 for f, _ in outcome.suppressed if f.tool == name)
        passed = run.passed
        if name == "cdk-nag":
            dirty = {(f.stage, f.stack, f.resource) for f in run.findings}
            passed = max(nag_checked - len(dirty), 0)
        tools[name] = ToolStats(
            tool=name,
            version=run.version,
            passed=passed,
            failed=failed,
            suppressed=suppressed,
            seconds=run.seconds if name != "cdk-nag" else 0.0,
            targets=["source"] if name == "detect-secrets" else groups_of_templates,
            notes=run.notes + (["ran during render (stages/<stage>/cdk-nag.json)"] if name == "cdk-nag" else []),
        )
    in_use = sum(len(s.resources) for s in policy.suppressions if not s.expired(today)) - sum(
        1 for f in outcome.findings if f.rule_id == "unused-suppression"
    )
    tools["policy"] = ToolStats(
        tool="policy",
        version=f"{policy.path} v{policy.version}",
        passed=max(in_use, 0),
        failed=len(policy_own) + len(outcome.findings),
        suppressed=0,
        seconds=0.0,
        targets=[],
    )
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
    _write_reports(report, sarif_path, junit_path)
    if record:
        record_attestation(
            release_id=manifest.release_id,
            policy_sha256=policy_digest,
            scanners={
                "engine": engine_digest(),
                **{name: tools[name].version for name in ("cfn-lint", "checkov", "cdk-nag", "detect-secrets")},
            },
            scope="release+source" if source else "release",
            passed=report.passed,
            findings=len(findings),
            rules=[f"{f.rule_id} ({f.target})" for f in findings],
        )
    report.seconds = round(time.perf_counter() - started, 2)
    timings["total"] = report.seconds
    return report


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
    """<Stack>, <Stack>/<LogicalId>, <stage>/<Stack> or <stage>/<Stack>/<LogicalId> of this release."""
    parts = resource.split("/")
    if parts[0] in stages and len(parts) > 1:
        parts = parts[1:]
    return parts[0] in stacks and len(parts) <= 2


def _in_own_process(root: Path, exclude: set[str]) -> ToolRun:
    """detect-secrets in a fresh process: pure-Python scanning would otherwise share cfn-lint's GIL."""
    from gitops.scan.secrets import run_secrets_scan

    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(run_secrets_scan, root, None, exclude).result()


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


def _write_reports(report: ScanReport, sarif_path: Path, junit_path: Path) -> None:
    from gitops.scan.reports import write_junit, write_sarif

    report.sarif, report.junit = sarif_path, junit_path
    write_sarif(report, sarif_path)
    write_junit(report, junit_path)
