"""CodeBuild buildspec 0.2: parse and validate one, and run it locally with CodeBuild's phase semantics.

Running follows the documented build phase transitions (CodeBuild user guide, "Build phase
transitions" and the buildspec reference):

- phases run in the order install, pre_build, build, post_build, then UPLOAD_ARTIFACTS;
- a command that exits non-zero fails its phase; the phase's remaining commands are skipped
  and its `finally` commands still run;
- without `on-failure`, a failed install or pre_build ends the build (build, post_build and the
  artifact upload are skipped); a failed build still runs post_build and the upload; a failed
  post_build still uploads;
- `on-failure: ABORT` ends the build at once; `on-failure: CONTINUE` goes on to the next phase
  (the build is still FAILED);
- all commands share one shell session (buildspec 0.2): variables set by a command, exported or
  not, and the working directory it leaves are what the next command, in any phase, starts with;
- CODEBUILD_BUILD_SUCCEEDING is 1 until a phase fails, then 0.

The default shell is /bin/sh, as on CodeBuild's Linux images; `env: shell: bash` selects bash.
Validated but not applied on this machine: run-as, runtime-versions, proxy, batch, cache and
git-credential-helper (the machine's own tools and credentials are used).
"""

from __future__ import annotations

import glob
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import types
import typing
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from gitops.errors import GitopsError
from gitops.strict_yaml import YamlError, load_yaml

PHASES = ("install", "pre_build", "build", "post_build")
UPLOAD_ARTIFACTS = "UPLOAD_ARTIFACTS"
SUCCEEDING_ENV = "CODEBUILD_BUILD_SUCCEEDING"
SRC_DIR_ENV = "CODEBUILD_SRC_DIR"
_SHELLS = {None: "/bin/sh", "/bin/sh": "/bin/sh", "bash": "bash"}
# Shell variables of our own wrapper, never carried into the build's environment.
_NOT_CARRIED = {"_", "SHLVL", "PWD", "__gitops_rc"}

Log = Callable[[str], None]
# (kind, reference) -> value; kind is "parameter-store" or "secrets-manager".
ReferenceResolver = Callable[[str, str], str]


class BuildspecError(GitopsError):
    """A buildspec is unreadable or not a valid version 0.2 buildspec."""

    hint = "fix the named key (reference: https://docs.aws.amazon.com/codebuild/latest/userguide/build-spec-ref.html)"


# --- the buildspec model -------------------------------------------------------------------------


def _version(value: object) -> str:
    if value in (0.2, "0.2"):
        return "0.2"
    if value in (0.1, "0.1"):
        raise ValueError("only version 0.2 is supported (0.1 runs every command in a separate shell)")
    raise ValueError(f"must be 0.2 (got {value!r})")


def _yes_no(value: object) -> object:
    # YAML 1.1 reads an unquoted yes/no as a boolean; CodeBuild accepts both spellings.
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("yes", "no", "true", "false"):
        return value.lower() in ("yes", "true")
    raise ValueError(f"must be yes or no (got {value!r})")


def _scalar(value: object) -> object:
    # An unquoted number (python: 3.11, RETRIES: 3) is read by YAML as a number; CodeBuild takes its text.
    if isinstance(value, bool) or value is None:
        raise ValueError(f"must be a string (got {value!r}; quote it)")
    if isinstance(value, int | float):
        return str(value)
    return value


YesNo = Annotated[bool, BeforeValidator(_yes_no)]
Scalar = Annotated[str, BeforeValidator(_scalar)]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, populate_by_name=True)


class Phase(_Spec):
    run_as: str | None = Field(None, alias="run-as")
    on_failure: Literal["ABORT", "CONTINUE"] | None = Field(None, alias="on-failure")
    commands: list[str]
    finally_: list[str] | None = Field(None, alias="finally")


class InstallPhase(Phase):
    runtime_versions: dict[str, Scalar] | None = Field(None, alias="runtime-versions")


class Phases(_Spec):
    install: InstallPhase | None = None
    pre_build: Phase | None = None
    build: Phase | None = None
    post_build: Phase | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> Phases:
        if not any(getattr(self, name) for name in PHASES):
            raise ValueError("must define at least one of install, pre_build, build, post_build")
        return self

    def get(self, name: str) -> Phase | None:
        return getattr(self, name)


class Env(_Spec):
    shell: Literal["bash", "/bin/sh", "powershell.exe", "cmd.exe"] | None = None
    variables: dict[str, Scalar] = Field(default_factory=dict)
    parameter_store: dict[str, str] = Field(default_factory=dict, alias="parameter-store")
    exported_variables: list[str] = Field(default_factory=list, alias="exported-variables")
    secrets_manager: dict[str, str] = Field(default_factory=dict, alias="secrets-manager")
    git_credential_helper: YesNo = Field(False, alias="git-credential-helper")


class Proxy(_Spec):
    upload_artifacts: YesNo = Field(False, alias="upload-artifacts")
    logs: YesNo = False


class Cache(_Spec):
    paths: list[str] = Field(default_factory=list)
    key: str | None = None
    fallback_keys: list[str] | None = Field(None, alias="fallback-keys")
    action: Literal["restore", "save"] | None = None


class ArtifactSet(_Spec):
    files: list[str]
    name: str | None = None
    discard_paths: YesNo = Field(False, alias="discard-paths")
    base_directory: str | None = Field(None, alias="base-directory")
    exclude_paths: list[str] = Field(default_factory=list, alias="exclude-paths")
    enable_symlinks: YesNo = Field(False, alias="enable-symlinks")
    s3_prefix: str | None = Field(None, alias="s3-prefix")


class Artifacts(ArtifactSet):
    files: list[str] = Field(default_factory=list)
    secondary_artifacts: dict[str, ArtifactSet] = Field(default_factory=dict, alias="secondary-artifacts")

    @model_validator(mode="after")
    def _something(self) -> Artifacts:
        if not self.files and not self.secondary_artifacts:
            raise ValueError("needs 'files' (or 'secondary-artifacts')")
        return self


ReportFormat = Literal[
    "JUNITXML",
    "CUCUMBERJSON",
    "TESTNGXML",
    "VISUALSTUDIOTRX",
    "NUNITXML",
    "NUNIT3XML",
    "CLOVERXML",
    "COBERTURAXML",
    "JACOCOXML",
    "SIMPLECOV",
]


class ReportGroup(_Spec):
    files: list[str]
    base_directory: str | None = Field(None, alias="base-directory")
    discard_paths: YesNo = Field(False, alias="discard-paths")
    file_format: ReportFormat = Field("JUNITXML", alias="file-format")


class Buildspec(_Spec):
    """A validated buildspec; `source` names where it came from (file or template) for messages."""

    _source: str = PrivateAttr("")

    version: Annotated[str, BeforeValidator(_version)]
    run_as: str | None = Field(None, alias="run-as")
    env: Env = Field(default_factory=Env)
    proxy: Proxy | None = None
    batch: dict[str, Any] | None = None
    phases: Phases
    reports: dict[str, ReportGroup] = Field(default_factory=dict)
    artifacts: Artifacts | None = None
    cache: Cache | None = None

    @property
    def source(self) -> str:
        return self._source


# --- parsing --------------------------------------------------------------------------------------


def _key_path(loc: tuple) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _unwrap_model(annotation: Any) -> tuple[type[BaseModel] | None, bool]:
    """The model a field holds (through Optional/list/dict) and whether a dict key comes first in a loc."""
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _unwrap_model(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _unwrap_model(arg)
            if found[0] is not None:
                return found
        return None, False
    if origin is dict:
        return _unwrap_model(typing.get_args(annotation)[1])[0], True
    if origin is list:
        return _unwrap_model(typing.get_args(annotation)[0])[0], False
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    return None, False


def _allowed_keys(path: tuple) -> list[str]:
    model: type[BaseModel] | None = Buildspec
    parts = list(path)
    while parts and model is not None:
        part = parts.pop(0)
        if isinstance(part, int):
            continue
        field = next((f for name, f in model.model_fields.items() if (f.alias or name) == part), None)
        if field is None:
            return []
        model, keyed = _unwrap_model(field.annotation)
        if keyed and parts:
            parts.pop(0)
    if model is None:
        return []
    return [f.alias or name for name, f in model.model_fields.items()]


def _problem(err: dict) -> str:
    kind, loc = err["type"], err["loc"]
    if kind == "missing":
        return "required key is missing"
    if kind == "extra_forbidden":
        if loc[-1] == "runtime-versions":
            return "unknown key (runtime-versions is only allowed under phases.install)"
        allowed = _allowed_keys(loc[:-1])
        return "unknown key" + (f" (allowed: {', '.join(allowed)})" if allowed else "")
    if kind == "value_error":
        return err["msg"].removeprefix("Value error, ")
    value = err.get("input")
    if kind == "string_type" and isinstance(value, dict):
        return f"must be a string (got a mapping {value!r}: quote a command that contains ': ')"
    if kind == "string_type" and isinstance(value, bool | int | float):
        return f"must be a string (got {type(value).__name__} {value!r}: quote it)"
    return f"{err['msg'][:1].lower()}{err['msg'][1:]} (got {type(value).__name__} {value!r})"


def validate_buildspec(data: object, source_name: str) -> Buildspec:
    """Validate an already-parsed buildspec; any problem is a BuildspecError naming source and key."""
    if not isinstance(data, dict):
        raise BuildspecError(f"{source_name}: expected a mapping with 'version: 0.2', got {type(data).__name__}")
    bad = next((key for key in data if not isinstance(key, str)), None)
    if bad is not None:
        raise BuildspecError(f"{source_name}: {bad!r}: unknown key")
    try:
        spec = Buildspec.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        # Report the top-level version first: a wrong version explains every other complaint.
        err = next((e for e in errors if e["loc"] == ("version",)), errors[0])
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise BuildspecError(f"{source_name}: {_key_path(err['loc'])}: {_problem(err)}{more}") from exc
    spec._source = source_name
    return spec


def parse_buildspec(text: str, source_name: str) -> Buildspec:
    """Parse buildspec text (YAML, or the JSON CDK writes inline) and validate it."""
    try:
        data = load_yaml(text, source_name)
    except YamlError as exc:
        raise BuildspecError(str(exc)) from exc
    return validate_buildspec(data, source_name)


def load_buildspec(path: Path) -> Buildspec:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise BuildspecError(f"{path}: buildspec not found") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise BuildspecError(f"{path}: cannot read the buildspec ({exc})") from exc
    return parse_buildspec(text, str(path))


# --- results --------------------------------------------------------------------------------------


class _Result(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PhaseResult(_Result):
    name: str  # INSTALL, PRE_BUILD, BUILD, POST_BUILD, UPLOAD_ARTIFACTS (CodeBuild's phase types)
    status: Literal["SUCCEEDED", "FAILED"]
    duration_seconds: float
    message: str = ""


class ReportResult(_Result):
    group: str
    file_format: str
    status: Literal["SUCCEEDED", "FAILED"]
    files: list[str] = Field(default_factory=list)
    directory: Path | None = None
    total: int | None = None
    passed: int | None = None
    failed: int | None = None
    errors: int | None = None
    skipped: int | None = None
    message: str = ""


class BuildResult(_Result):
    status: Literal["SUCCEEDED", "FAILED"]
    failed_phase: str | None = None
    message: str = ""
    phases: list[PhaseResult] = Field(default_factory=list)
    exported_variables: dict[str, str] = Field(default_factory=dict)
    artifact_dir: Path | None = None
    secondary_artifact_dirs: dict[str, Path] = Field(default_factory=dict)
    reports: list[ReportResult] = Field(default_factory=list)
    duration_seconds: float = 0.0

    @property
    def succeeded(self) -> bool:
        return self.status == "SUCCEEDED"

    def phase(self, name: str) -> PhaseResult | None:
        return next((p for p in self.phases if p.name == name.upper()), None)


# --- running --------------------------------------------------------------------------------------


class _ShellSession:
    """One build's shell state, carried across commands: the environment and the working directory."""

    def __init__(self, shell: str, env: dict[str, str], cwd: Path, state_dir: Path, log: Log, deadline: float | None):
        self.shell = shell
        self.env = env
        self.cwd = cwd
        self.log = log
        self.deadline = deadline
        self.timed_out = False
        self.sessions: list[int] = []
        self._env_file = state_dir / "env"
        self._cwd_file = state_dir / "cwd"
        env_bin = shlex.quote(shutil.which("env") or "/usr/bin/env")
        # The save function is defined before `set -a` so that it is not itself exported.
        self._prologue = (
            f"__gitops_save() {{ __gitops_rc=$?; pwd > {shlex.quote(str(self._cwd_file))}; "
            f"{env_bin} -0 > {shlex.quote(str(self._env_file))}; exit $__gitops_rc; }}\n"
            "trap __gitops_save EXIT\n"
            "set -a\n"
        )

    def run(self, command: str, tag: str) -> int:
        self._env_file.unlink(missing_ok=True)
        self._cwd_file.unlink(missing_ok=True)
        remaining = None if self.deadline is None else self.deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            self.timed_out = True
            return 124
        try:
            proc = subprocess.Popen(
                [self.shell, "-c", self._prologue + command + "\n"],
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, so a timeout can stop all of it
            )
        except OSError as exc:
            self.log(f"{tag} cannot start {self.shell} in {self.cwd}: {exc}")
            return 127
        self.sessions.append(proc.pid)
        assert proc.stdout is not None
        pump = threading.Thread(target=self._pump, args=(proc.stdout, tag), daemon=True)
        pump.start()
        try:
            code = proc.wait(timeout=remaining)
        except subprocess.TimeoutExpired:
            self.timed_out = True
            _kill_group(proc.pid, signal.SIGKILL)
            code = proc.wait()
        # A background process may hold the pipe open; do not wait for it to finish.
        pump.join(timeout=2.0)
        self._load_state()
        return code

    def _pump(self, stream: Any, tag: str) -> None:
        with stream:
            for raw in iter(stream.readline, b""):
                self.log(f"{tag} {raw.decode('utf-8', errors='replace').rstrip()}")

    def _load_state(self) -> None:
        try:
            dumped = self._env_file.read_bytes()
            cwd = self._cwd_file.read_text(encoding="utf-8").strip()
        except OSError:
            return  # the command replaced the shell (exec) or was killed: keep the previous state
        env = {}
        for entry in dumped.split(b"\0"):
            name, sep, value = entry.decode("utf-8", errors="surrogateescape").partition("=")
            if sep and name and name not in _NOT_CARRIED:
                env[name] = value
        self.env = env
        if cwd and Path(cwd).is_dir():
            self.cwd = Path(cwd)

    def stop_leftovers(self) -> None:
        """Stop background processes the commands left behind, as the end of a CodeBuild container does."""
        for sid in self.sessions:
            for pid in _session_members(sid):
                try:
                    os.kill(pid, signal.SIGTERM)
                except OSError:
                    pass


def _kill_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except OSError:
        pass


def _session_members(sid: int) -> list[int]:
    """Live processes of session sid (Linux /proc); only ours, as sid is the pid of a shell we started."""
    members = []
    for entry in Path("/proc").glob("[0-9]*/stat"):
        try:
            stat = entry.read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 3 and int(fields[3]) == sid and fields[0] != "Z":
            members.append(int(entry.parent.name))
    return members


def _first_line(command: str) -> str:
    lines = command.strip().splitlines()
    return lines[0] + (" ..." if len(lines) > 1 else "") if lines else repr(command)


def _run_commands(commands: list[str], session: _ShellSession, tag: str) -> str:
    """Run commands in order up to the first failure; its message, or "" if all succeeded."""
    for command in commands:
        for i, line in enumerate(command.rstrip().splitlines() or [command]):
            session.log(f"{tag} {'Running command ' if i == 0 else '    '}{line}")
        code = session.run(command, tag)
        if session.timed_out:
            return f"build timed out while running: {_first_line(command)}"
        if code != 0:
            return f"command failed with exit status {code}: {_first_line(command)}"
    return ""


def _run_phase(phase: Phase, session: _ShellSession, tag: str) -> str:
    """A phase's commands, then its finally block even after a failure; the first failure, or ""."""
    failure = _run_commands(phase.commands, session, tag)
    if session.timed_out:
        return failure
    cleanup = _run_commands(phase.finally_ or [], session, tag)
    return failure or cleanup


def _next_phase(name: str, on_failure: str | None, failed: bool) -> str | None:
    """The phase entered after `name` (None: the build goes to FINALIZING without uploading)."""
    order = [*PHASES, UPLOAD_ARTIFACTS]
    following = order[order.index(name) + 1]
    if not failed or on_failure == "CONTINUE":
        return following
    if on_failure == "ABORT" or name in ("install", "pre_build"):
        return None
    return following  # build -> post_build, post_build -> UPLOAD_ARTIFACTS


def _matched_files(base: Path, patterns: list[str], excludes: list[str], symlinks: bool) -> list[str]:
    excluded: set[str] = set()
    for pattern in excludes:
        excluded.update(glob.glob(pattern, root_dir=base, recursive=True, include_hidden=True))
    found: dict[str, None] = {}
    for pattern in patterns:
        for rel in sorted(glob.glob(pattern, root_dir=base, recursive=True, include_hidden=True)):
            path = base / rel
            if Path(rel).is_absolute() or ".." in Path(rel).parts:
                continue  # only what lies under the base directory is collected
            if rel in excluded or not (path.is_file() or (symlinks and path.is_symlink())):
                continue
            found[Path(rel).as_posix()] = None
    return list(found)


def _collect(base: Path, files: list[str], dest: Path, *, discard_paths: bool, symlinks: bool) -> list[str]:
    dest.mkdir(parents=True, exist_ok=True)
    for rel in files:
        target = dest / (Path(rel).name if discard_paths else rel)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(base / rel, target, follow_symlinks=not symlinks)
    return files


def _base_dir(workdir: Path, base_directory: str | None) -> Path:
    return workdir / base_directory if base_directory else workdir


def _upload_artifacts(spec: Buildspec, workdir: Path, out: Path) -> tuple[str, dict[str, Path], Path | None]:
    """Copy the artifact files out of the workdir: (failure, secondary dirs, primary dir)."""
    assert spec.artifacts is not None
    art = spec.artifacts
    sets: list[tuple[str | None, ArtifactSet]] = [(None, art)] if art.files else []
    sets += list(art.secondary_artifacts.items())
    primary: Path | None = None
    secondary: dict[str, Path] = {}
    for ident, aset in sets:
        base = _base_dir(workdir, aset.base_directory)
        files = _matched_files(base, aset.files, aset.exclude_paths, aset.enable_symlinks)
        label = "artifacts" if ident is None else f"artifacts.secondary-artifacts.{ident}"
        if not files:
            return f"{label}: no file matches {aset.files} under {base}", secondary, primary
        dest = out / "artifacts" / (ident or "primary")
        _collect(base, files, dest, discard_paths=aset.discard_paths, symlinks=aset.enable_symlinks)
        if ident is None:
            primary = dest
        else:
            secondary[ident] = dest
    return "", secondary, primary


def _junit_counts(paths: list[Path]) -> dict[str, int]:
    counts = {"total": 0, "passed": 0, "failed": 0, "errors": 0, "skipped": 0}
    for path in paths:
        root = ET.parse(path).getroot()
        if root.tag not in ("testsuites", "testsuite"):
            raise ValueError(f"{path.name}: root element is <{root.tag}>, not <testsuites> or <testsuite>")
        for case in root.iter("testcase"):
            counts["total"] += 1
            if case.find("failure") is not None:
                counts["failed"] += 1
            elif case.find("error") is not None:
                counts["errors"] += 1
            elif case.find("skipped") is not None:
                counts["skipped"] += 1
            else:
                counts["passed"] += 1
    return counts


def _collect_reports(spec: Buildspec, workdir: Path, out: Path) -> list[ReportResult]:
    """Test reports never fail the build on CodeBuild; a report that cannot be read is marked FAILED."""
    results = []
    for group, rep in spec.reports.items():
        base = _base_dir(workdir, rep.base_directory)
        files = _matched_files(base, rep.files, [], symlinks=False)
        common = {"group": group, "file_format": rep.file_format, "files": files}
        if not files:
            results.append(ReportResult(**common, status="FAILED", message=f"no file matches {rep.files}"))
            continue
        dest = out / "reports" / group.replace("/", "_").replace(":", "_")
        _collect(base, files, dest, discard_paths=rep.discard_paths, symlinks=False)
        if rep.file_format != "JUNITXML":
            results.append(ReportResult(**common, status="SUCCEEDED", directory=dest, message="counts not parsed"))
            continue
        try:
            counts = _junit_counts([base / rel for rel in files])
        except (ET.ParseError, ValueError, OSError) as exc:
            results.append(ReportResult(**common, status="FAILED", directory=dest, message=f"not JUnit XML: {exc}"))
            continue
        results.append(ReportResult(**common, status="SUCCEEDED", directory=dest, **counts))
    return results


def _references(spec: Buildspec, resolve: ReferenceResolver | None) -> tuple[dict[str, str], str]:
    values: dict[str, str] = {}
    for kind, refs in (("parameter-store", spec.env.parameter_store), ("secrets-manager", spec.env.secrets_manager)):
        for name, ref in refs.items():
            if resolve is None:
                return values, f"env.{kind}.{name}: no resolver for {kind} references on this target"
            try:
                values[name] = resolve(kind, ref)
            except GitopsError as exc:
                return values, f"env.{kind}.{name}: {exc}"
    return values, ""


def run_buildspec(
    spec: Buildspec,
    workdir: Path,
    env: Mapping[str, str],
    *,
    log: Log = print,
    log_prefix: str = "",
    output_dir: Path | None = None,
    timeout_seconds: float | None = None,
    base_env: Mapping[str, str] | None = None,
    resolve_reference: ReferenceResolver | None = None,
) -> BuildResult:
    """Run the build in workdir, as CodeBuild would; never raises for a failing command.

    Environment precedence, lowest first: base_env (default: this process's environment, the
    "image"), the buildspec's env.variables / parameter-store / secrets-manager, then `env`
    (the project's and the start-build's variables), as on CodeBuild. Artifacts and reports are
    copied under output_dir (default: a new temporary directory) in the UPLOAD_ARTIFACTS phase.
    """
    if spec.env.shell in ("powershell.exe", "cmd.exe"):
        raise BuildspecError(f"{spec.source}: env.shell: {spec.env.shell} cannot run on this machine")
    started = time.monotonic()
    workdir = workdir.resolve()

    def tag(phase: str) -> str:
        return f"{log_prefix}[{phase}]"

    references, failure = _references(spec, resolve_reference)
    if failure:
        log(f"{tag('PROVISIONING')} {failure}")
        return BuildResult(status="FAILED", failed_phase="PROVISIONING", message=failure)
    full_env = {
        **(os.environ if base_env is None else base_env),
        **spec.env.variables,
        **references,
        SRC_DIR_ENV: str(workdir),
        **env,
        SUCCEEDING_ENV: "1",
    }
    deadline = None if timeout_seconds is None else started + timeout_seconds
    phases: list[PhaseResult] = []
    failed_phase: str | None = None
    message = ""
    with tempfile.TemporaryDirectory(prefix="gitops-shell-") as state_dir:
        session = _ShellSession(_SHELLS[spec.env.shell], full_env, workdir, Path(state_dir), log, deadline)
        try:
            current: str | None = PHASES[0]
            while current in PHASES:
                phase = spec.phases.get(current)
                if phase is None:  # an absent phase is an empty one that succeeds
                    current = _next_phase(current, None, failed=False)
                    continue
                name = current.upper()
                t0 = time.monotonic()
                failure = _run_phase(phase, session, tag(name))
                status = "FAILED" if failure else "SUCCEEDED"
                phases.append(PhaseResult(name=name, status=status, duration_seconds=_since(t0), message=failure))
                if failure:
                    log(f"{tag(name)} Phase context: {failure}")
                    session.env[SUCCEEDING_ENV] = "0"
                    if failed_phase is None:
                        failed_phase, message = name, failure
                log(f"{tag(name)} Phase complete: {name} State: {status}")
                current = None if session.timed_out else _next_phase(current, phase.on_failure, bool(failure))
        finally:
            session.stop_leftovers()
    final_env = session.env
    artifact_dir: Path | None = None
    secondary: dict[str, Path] = {}
    reports: list[ReportResult] = []
    if current == UPLOAD_ARTIFACTS and (spec.artifacts or spec.reports):
        t0 = time.monotonic()
        out = output_dir or Path(tempfile.mkdtemp(prefix="gitops-build-"))
        failure = ""
        if spec.artifacts is not None:
            failure, secondary, artifact_dir = _upload_artifacts(spec, workdir, out)
        reports = _collect_reports(spec, workdir, out)
        for report in reports:
            counts = f"{report.passed}/{report.total} passed" if report.total is not None else report.message
            log(f"{tag(UPLOAD_ARTIFACTS)} report {report.group}: {report.status} ({counts})")
        status = "FAILED" if failure else "SUCCEEDED"
        phases.append(PhaseResult(name=UPLOAD_ARTIFACTS, status=status, duration_seconds=_since(t0), message=failure))
        if failure:
            log(f"{tag(UPLOAD_ARTIFACTS)} Phase context: {failure}")
            if failed_phase is None:
                failed_phase, message = UPLOAD_ARTIFACTS, failure
    exported = {name: final_env[name] for name in spec.env.exported_variables if name in final_env}
    return BuildResult(
        status="FAILED" if failed_phase else "SUCCEEDED",
        failed_phase=failed_phase,
        message=message,
        phases=phases,
        exported_variables=exported,
        artifact_dir=artifact_dir,
        secondary_artifact_dirs=secondary,
        reports=reports,
        duration_seconds=_since(started),
    )


def _since(t0: float) -> float:
    return round(time.monotonic() - t0, 3)
