"""checkov in its own environment (its pins would hold the engine's back), run offline over the templates.

The environment is .gitops/tools/checkov, built by uv from the committed lock
scripts/checkov-requirements.txt (hash-checked) and stamped with the lock's sha256, so a changed
lock rebuilds it. `python -m gitops.scan.checkov` (what scripts/setup-checkov runs) creates it;
`gitops scan` creates it on first use unless told not to.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from gitops.progress import Progress
from gitops.scan.attestation import engine_digest
from gitops.scan.errors import CheckovMissing, ScanError
from gitops.scan.findings import Finding, ToolRun
from gitops.scan.result_cache import ScanCache, combine, unit_digest
from gitops.scan.scanner import ScanInput
from gitops.scan.templates import TemplateRef

CHECKOV_VERSION = "3.3.30"
ENV_DIR = Path(".gitops") / "tools" / "checkov"
LOCK = Path("scripts") / "checkov-requirements.txt"
STAMP = "gitops-lock.sha256"
CHECKS_DIR = Path(__file__).parent / "checkov_checks"  # our own checks, for what checkov lacks on CloudFormation
ENV_OVERRIDE = "GITOPS_CHECKOV_ENV"  # another location for the environment (a CI cache, a test)
_INSTALL_TIMEOUT = 900
_RUN_TIMEOUT = 900


def env_dir(root: Path) -> Path:
    override = os.environ.get(ENV_OVERRIDE)
    return Path(override).absolute() if override else (root / ENV_DIR).absolute()


def _python(env: Path) -> Path:
    return env / "bin" / "python"


def _lock_digest(lock: Path) -> str:
    try:
        return hashlib.sha256(lock.read_bytes()).hexdigest()
    except FileNotFoundError as exc:
        raise CheckovMissing(f"{lock}: checkov's lock file is missing") from exc


def _dead_shebang(env: Path) -> Path | None:
    """A console script whose `#!` names an interpreter that is gone (an environment built elsewhere, then moved)."""
    for script in sorted((env / "bin").iterdir()):
        try:
            with open(script, "rb") as handle:
                first = handle.readline(512)
        except OSError:
            continue
        if first.startswith(b"#!/"):
            interpreter = Path(first[2:].split()[0].decode(errors="replace"))
            if not interpreter.exists():
                return script
    return None


def env_state(root: Path, lock: Path | None = None) -> str:
    """ready, missing, or stale (built from another lock, or its scripts name a gone interpreter).

    lock: default <root>/scripts/checkov-requirements.txt.
    """
    env = env_dir(root)
    if not _python(env).exists() or not (env / STAMP).exists():
        return "missing"
    if (env / STAMP).read_text().strip() != _lock_digest(lock or root / LOCK):
        return "stale"
    return "stale" if _dead_shebang(env) is not None else "ready"


@contextmanager
def _exclusive(env: Path):
    env.parent.mkdir(parents=True, exist_ok=True)
    with open(env.parent / f".{env.name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run(cmd: list[str], what: str) -> None:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=_INSTALL_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CheckovMissing(f"checkov environment: {what} failed: {exc}") from exc
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise CheckovMissing(f"checkov environment: {what} failed: {tail}")


def install_checkov(root: Path, progress: Progress | None = None, lock: Path | None = None) -> float:
    """Build the environment from the lock next to its place, then move it in: never half-built."""
    say = progress or (lambda _msg: None)
    started = time.perf_counter()
    env = env_dir(root)
    lock = lock or root / LOCK
    digest = _lock_digest(lock)
    uv = shutil.which("uv")
    if uv is None:
        raise CheckovMissing(
            "checkov environment: `uv` is not on PATH, so it cannot be created",
            hint="install uv (python3 -m pip install uv==0.13.8), then run scripts/setup-checkov",
        )
    with _exclusive(env):
        if env_state(root, lock) == "ready":
            return 0.0
        say(f"checkov: creating its environment in {env} from {lock} (once; checkov=={CHECKOV_VERSION})")
        tmp = Path(tempfile.mkdtemp(prefix=f".{env.name}.tmp-", dir=env.parent))
        try:
            # --relocatable: the console scripts find their interpreter relative to themselves, so
            # they still run after the rename below (an absolute #! would name the temporary path).
            venv = [uv, "venv", "--quiet", "--allow-existing", "--relocatable", "--python", sys.executable, str(tmp)]
            _run(venv, "uv venv")
            # --compile-bytecode: checkov imports ~2000 modules per run; where PYTHONDONTWRITEBYTECODE is
            # set (CI images often do) nothing is cached otherwise and every run compiles them all again.
            sync = [uv, "pip", "sync", "--quiet", "--compile-bytecode", "--python", str(_python(tmp)), str(lock)]
            _run(sync, "uv pip sync")
            (tmp / STAMP).write_text(digest + "\n")
            shutil.rmtree(env, ignore_errors=True)
            os.rename(tmp, env)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    seconds = round(time.perf_counter() - started, 2)
    say(f"checkov: environment ready in {seconds:.1f}s")
    return seconds


def ensure_checkov(
    root: Path, *, install: bool = True, progress: Progress | None = None, lock: Path | None = None
) -> Path:
    """The interpreter of a ready checkov environment; created now if allowed, else a clear error."""
    state = env_state(root, lock)
    if state != "ready":
        if not install:
            raise CheckovMissing(f"{env_dir(root)}: checkov environment is {state} (built from {lock or LOCK})")
        install_checkov(root, progress, lock)
    return _python(env_dir(root))


def _offline_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BC_", "PRISMA_", "CKV_", "CHECKOV_"))}
    env.update(
        CKV_SKIP_PACKAGE_UPDATE_CHECK="true",  # no PyPI version check
        BC_SKIP_MAPPING="TRUE",  # no guideline/mapping download from the platform
        CHECKOV_RUN_SCA_PACKAGE_SCAN_V2="false",
        LOG_LEVEL="ERROR",
        PYTHONWARNINGS="ignore",
    )
    return env


def _json_document(stdout: str) -> object:
    start = min((i for i in (stdout.find("{"), stdout.find("[")) if i >= 0), default=-1)
    if start < 0:
        raise ValueError("no JSON in checkov's output")
    return json.loads(stdout[start:])


def run_checkov(python: Path, templates: list[TemplateRef]) -> dict[str, ToolRun]:
    """`checkov --framework cloudformation --skip-download` over the templates, nothing from the network.

    One ToolRun per template (by release path): what the scan cache keeps per template digest.
    """
    by_path = {str(t.tool_path): t for t in templates}
    cmd = [
        str(python),
        "-m",
        "checkov.main",
        "--framework",
        "cloudformation",
        "--skip-download",
        "--output",
        "json",
        "--compact",
        "--external-checks-dir",
        str(CHECKS_DIR),
    ]
    for template in templates:
        cmd += ["-f", str(template.tool_path)]
    with tempfile.TemporaryDirectory(prefix="gitops-checkov-") as cwd:  # no stray .checkov.yaml is read
        try:
            done = subprocess.run(
                cmd, capture_output=True, text=True, env=_offline_env(), cwd=cwd, timeout=_RUN_TIMEOUT
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ScanError(f"checkov: could not run {python}: {exc}") from exc
    if done.returncode not in (0, 1):
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ScanError(f"checkov: exited {done.returncode}: {tail}")
    try:
        document = _json_document(done.stdout)
    except ValueError as exc:
        raise ScanError(f"checkov: unreadable output ({exc})") from exc
    listed = document if isinstance(document, list) else [document]
    reports: list[dict] = [r for r in listed if isinstance(r, dict)]
    findings: dict[str, list[Finding]] = {t.rel: [] for t in templates}
    passed: dict[str, int] = {t.rel: 0 for t in templates}
    coverage: dict[str, dict[str, set[str]]] = {t.rel: {} for t in templates}
    for report in reports:
        summary = report.get("summary", {})
        if summary.get("parsing_errors"):
            raise ScanError(f"checkov: could not parse {summary['parsing_errors']} template(s)")
        results = report.get("results", {})
        for outcome in ("passed_checks", "failed_checks", "skipped_checks"):
            for check in results.get(outcome, []):
                scanned = by_path.get(str(Path(check.get("file_abs_path", "")).resolve()))
                if scanned is None:
                    continue
                kind = str(check.get("resource", "")).rsplit(".", 1)[0]
                if kind.startswith("AWS::"):
                    coverage[scanned.rel].setdefault(kind, set()).add(check["check_id"])
                if outcome == "passed_checks":
                    passed[scanned.rel] += 1
                elif outcome == "failed_checks":
                    findings[scanned.rel].append(_finding(check, scanned))
    version = str(reports[0].get("summary", {}).get("checkov_version", CHECKOV_VERSION)) if reports else CHECKOV_VERSION
    return {
        t.rel: ToolRun(
            tool="checkov",
            version=version,
            findings=findings[t.rel],
            passed=passed[t.rel],
            rules=sorted({rule for ids in coverage[t.rel].values() for rule in ids}),
            coverage={kind: sorted(ids) for kind, ids in coverage[t.rel].items()},
        )
        for t in templates
    }


def _finding(check: dict, template: TemplateRef) -> Finding:
    resource = str(check.get("resource", ""))
    logical_id = resource.rsplit(".", 1)[1] if "." in resource else None
    lines = check.get("file_line_range") or []
    severity = str(check.get("severity") or "").lower()
    return Finding(
        tool="checkov",
        rule_id=check["check_id"],
        severity="warning" if severity in ("low", "info") else "error",
        message=check.get("check_name") or check["check_id"],
        file=template.rel,
        stage=template.stage,
        stack=template.stack,
        resource=logical_id,
        line=template.line_of(logical_id) or (lines[0] if lines and lines[0] > 0 else None),
        hint=check.get("guideline") if check.get("guideline") and "://" not in check["guideline"] else None,
        help_uri=check.get("guideline") if check.get("guideline") and "://" in check["guideline"] else None,
    )


class CheckovScanner:
    """checkov over the templates, offline, in its own environment (built from the lock on first use)."""

    name = "checkov"
    information_uri = "https://www.checkov.io"
    passed_unit = "passed (check, resource) pairs"

    def version(self) -> str:
        return CHECKOV_VERSION

    def check_ready(self, job: ScanInput) -> None:
        if not job.install_checkov and env_state(job.root, job.checkov_lock) != "ready":
            # raises the clear "missing environment" error now
            ensure_checkov(job.root, install=False, lock=job.checkov_lock)

    def run(self, job: ScanInput) -> ToolRun:
        # The lock decides what checkov runs: its digest (and our own checks, in the engine's) keys the cache.
        config = engine_digest() + _lock_digest(job.checkov_lock or job.root / LOCK)
        cache = ScanCache(self.name, CHECKOV_VERSION, config, job.policy_sha256, enabled=job.use_cache)
        units = {t.rel: unit_digest(f"{t.rel}@{t.region}", t.tool_path.read_bytes()) for t in job.templates}
        cached = {rel: cache.get(unit) for rel, unit in units.items()}
        notes = []
        fresh: dict[str, ToolRun] = {}
        if cache.misses:
            started = time.perf_counter()
            python = ensure_checkov(job.root, install=job.install_checkov, progress=job.progress, lock=job.checkov_lock)
            installed = round(time.perf_counter() - started, 2)
            if installed > 1:
                notes.append(f"environment created in {installed:.1f}s")
            fresh = run_checkov(python, [t for t in job.templates if cached[t.rel] is None])
            for rel, run in fresh.items():
                cache.put(units[rel], run)
        runs = [cached[t.rel] or fresh[t.rel] for t in job.templates]
        combined = combine(self.name, runs[0].version if runs else CHECKOV_VERSION, [r for r in runs if r])
        combined.targets = job.template_groups
        combined.notes += [*notes, cache.note()]
        return combined


SCANNER = CheckovScanner()


def main() -> int:
    """scripts/setup-checkov: create (or rebuild a stale) checkov environment, printing what it does."""
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path.cwd()
    try:
        state = env_state(root)
        if state == "ready":
            print(f"checkov environment ready: {env_dir(root)}")
            return 0
        install_checkov(root, progress=print)
    except ScanError as exc:
        print(f"error: {exc}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
