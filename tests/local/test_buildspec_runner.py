"""Buildspec 0.2 run locally: CodeBuild's phase semantics, shell session, artifacts, reports and timeouts."""

from __future__ import annotations

import textwrap
import time
from pathlib import Path

from gitops.local.buildspec_runner import BuildResult, run_buildspec
from gitops.release.buildspec import parse_buildspec

CLEAN_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/nonexistent", "LANG": "C.UTF-8"}


def run(text: str, workdir: Path, env: dict[str, str] | None = None, **kwargs) -> tuple[BuildResult, list[str]]:
    lines: list[str] = []
    kwargs.setdefault("output_dir", workdir.parent / f"{workdir.name}-out")
    workdir.mkdir(exist_ok=True)
    spec = parse_buildspec(textwrap.dedent(text), "bs.yml")
    result = run_buildspec(spec, workdir, env or {}, log=lines.append, base_env=CLEAN_ENV, **kwargs)
    return result, lines


def output(lines: list[str]) -> list[str]:
    """The lines the commands printed (without the runner's own lines)."""
    return [
        line.split("] ", 1)[1]
        for line in lines
        if "] " in line
        and not line.split("] ", 1)[1].startswith(("Running command", "Phase complete", "Phase context", "    "))
    ]


# --- running --------------------------------------------------------------------------------------


def test_variables_and_cd_persist_across_commands_and_phases(tmp_path: Path):
    result, lines = run(
        """\
        version: 0.2
        phases:
          install:
            commands:
              - export EXPORTED=one
              - PLAIN=two
              - mkdir -p sub/dir && cd sub
          build:
            commands:
              - cd dir
              - echo "$EXPORTED $PLAIN $(basename "$PWD")"
              - unset PLAIN
          post_build:
            commands:
              - echo "${PLAIN:-gone} $(basename "$PWD")"
        """,
        tmp_path / "src",
    )
    assert result.succeeded, result.message
    assert output(lines) == ["one two dir", "gone dir"]


def test_buildspec_variables_are_overridden_by_the_callers_env(tmp_path: Path):
    result, lines = run(
        """\
        version: 0.2
        env: {variables: {A: from-buildspec, B: from-buildspec}}
        phases: {build: {commands: ['echo "$A $B $CODEBUILD_SRC_DIR"']}}
        """,
        tmp_path / "src",
        {"B": "from-project"},
    )
    assert output(lines) == [f"from-buildspec from-project {tmp_path / 'src'}"]


def test_default_shell_is_sh_and_bash_is_selectable(tmp_path: Path):
    text = "version: 0.2\n{env}phases: {{build: {{commands: ['[[ 1 == 1 ]] && echo bash-ok']}}}}\n"
    as_sh, _ = run(text.format(env=""), tmp_path / "sh")
    as_bash, lines = run(text.format(env="env: {shell: bash}\n"), tmp_path / "bash")
    assert not as_sh.succeeded  # /bin/sh, as on CodeBuild's Linux images, has no [[
    assert as_bash.succeeded and output(lines) == ["bash-ok"]


def test_a_failing_command_fails_its_phase_and_finally_still_runs(tmp_path: Path):
    result, lines = run(
        """\
        version: 0.2
        phases:
          build:
            commands:
              - echo first
              - exit 3
              - echo never
            finally:
              - echo cleanup
          post_build:
            commands:
              - echo "post succeeding=$CODEBUILD_BUILD_SUCCEEDING"
        """,
        tmp_path / "src",
    )
    assert (result.status, result.failed_phase) == ("FAILED", "BUILD")
    assert result.message == "command failed with exit status 3: exit 3"
    # post_build runs after a failed build; CODEBUILD_BUILD_SUCCEEDING tells it the build failed.
    assert output(lines) == ["first", "cleanup", "post succeeding=0"]
    assert [(p.name, p.status) for p in result.phases] == [("BUILD", "FAILED"), ("POST_BUILD", "SUCCEEDED")]


def test_a_failed_install_ends_the_build_as_documented(tmp_path: Path):
    result, lines = run(
        """\
        version: 0.2
        phases:
          install: {commands: ['false']}
          build: {commands: [echo build]}
          post_build: {commands: [echo post]}
        artifacts: {files: ['*']}
        """,
        tmp_path / "src",
    )
    assert (result.status, result.failed_phase) == ("FAILED", "INSTALL")
    assert output(lines) == []
    assert [p.name for p in result.phases] == ["INSTALL"] and result.artifact_dir is None


def test_on_failure_abort_stops_and_continue_goes_on(tmp_path: Path):
    template = """\
        version: 0.2
        phases:
          install: {{on-failure: {mode}, commands: ['false']}}
          pre_build: {{commands: [echo pre]}}
          build: {{on-failure: {mode}, commands: ['false']}}
          post_build: {{commands: [echo post]}}
        """
    aborted, abort_lines = run(template.format(mode="ABORT"), tmp_path / "a")
    continued, continue_lines = run(template.format(mode="CONTINUE"), tmp_path / "c")
    assert (aborted.status, aborted.failed_phase, output(abort_lines)) == ("FAILED", "INSTALL", [])
    assert (continued.status, continued.failed_phase) == ("FAILED", "INSTALL")
    assert output(continue_lines) == ["pre", "post"]
    assert [p.status for p in continued.phases] == ["FAILED", "SUCCEEDED", "FAILED", "SUCCEEDED"]


def test_exported_variables_come_from_the_final_environment(tmp_path: Path):
    result, _ = run(
        """\
        version: 0.2
        env: {exported-variables: [IMAGE_TAG, STATUS, NEVER_SET]}
        phases:
          build: {commands: [IMAGE_TAG=abc, STATUS=building]}
          post_build: {commands: [STATUS=done]}
        """,
        tmp_path / "src",
    )
    assert result.exported_variables == {"IMAGE_TAG": "abc", "STATUS": "done"}


def test_artifacts_are_collected_with_base_directory_and_excludes(tmp_path: Path):
    src = tmp_path / "src"
    result, _ = run(
        """\
        version: 0.2
        phases:
          build:
            commands:
              - mkdir -p out/nested && echo a > out/a.txt && echo b > out/nested/b.txt && echo x > out/skip.log
        artifacts:
          base-directory: out
          files: ['**/*']
          exclude-paths: ['*.log']
          secondary-artifacts:
            flat: {files: ['out/**/*.txt'], discard-paths: yes}
        """,
        src,
    )
    assert result.succeeded, result.message
    primary = result.artifact_dir
    assert sorted(p.relative_to(primary).as_posix() for p in primary.rglob("*") if p.is_file()) == [
        "a.txt",
        "nested/b.txt",
    ]
    assert sorted(p.name for p in result.secondary_artifact_dirs["flat"].iterdir()) == ["a.txt", "b.txt"]


def test_artifacts_that_match_nothing_fail_the_upload(tmp_path: Path):
    result, _ = run(
        "version: 0.2\nphases: {build: {commands: ['true']}}\nartifacts: {files: ['dist/*.whl']}\n", tmp_path / "src"
    )
    assert (result.status, result.failed_phase) == ("FAILED", "UPLOAD_ARTIFACTS")
    assert "no file matches ['dist/*.whl']" in result.message


JUNIT = """<?xml version="1.0"?>
<testsuites>
  <testsuite name="unit">
    <testcase name="a"/><testcase name="b"/>
    <testcase name="c"><failure message="boom"/></testcase>
    <testcase name="d"><skipped/></testcase>
  </testsuite>
</testsuites>
"""


def test_junit_reports_are_collected_and_counted(tmp_path: Path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "junit.xml.in").write_text(JUNIT)
    result, lines = run(
        """\
        version: 0.2
        phases: {build: {commands: ['mkdir reports', 'cp junit.xml.in reports/unit.xml', 'echo bad > reports/x.xml']}}
        reports:
          unit-tests: {files: [unit.xml], base-directory: reports}
          broken: {files: [x.xml], base-directory: reports}
          missing: {files: [none.xml]}
        """,
        src,
    )
    assert result.succeeded  # as on CodeBuild, reports never fail the build
    reports = {r.group: r for r in result.reports}
    unit = reports["unit-tests"]
    assert (unit.status, unit.total, unit.passed, unit.failed, unit.skipped) == ("SUCCEEDED", 4, 2, 1, 1)
    assert (unit.directory / "unit.xml").is_file()
    assert reports["broken"].status == "FAILED" and "not JUnit XML" in reports["broken"].message
    assert reports["missing"].status == "FAILED"
    assert any("report unit-tests: SUCCEEDED (2/4 passed)" in line for line in lines)


def test_output_is_streamed_with_the_prefix(tmp_path: Path):
    _, lines = run(
        "version: 0.2\nphases: {build: {commands: ['echo out; echo err >&2']}}\n",
        tmp_path / "src",
        log_prefix="Deploy ",
    )
    assert "Deploy [BUILD] Running command echo out; echo err >&2" in lines
    assert "Deploy [BUILD] out" in lines and "Deploy [BUILD] err" in lines
    assert lines[-1] == "Deploy [BUILD] Phase complete: BUILD State: SUCCEEDED"


def test_a_build_over_its_timeout_is_stopped(tmp_path: Path):
    result, lines = run(
        "version: 0.2\nphases: {build: {commands: ['sleep 30']}, post_build: {commands: [echo post]}}\n",
        tmp_path / "src",
        timeout_seconds=0.3,
    )
    assert (result.status, result.failed_phase) == ("FAILED", "BUILD")
    assert "timed out" in result.message and output(lines) == []
    assert result.duration_seconds < 5


def test_background_processes_are_stopped_when_the_build_ends(tmp_path: Path):
    result, _ = run(
        "version: 0.2\nphases: {install: {commands: ['sleep 30 > /dev/null 2>&1 & echo $! > ../bg.pid']}}\n",
        tmp_path / "src",
    )
    assert result.succeeded
    stat = Path(f"/proc/{(tmp_path / 'bg.pid').read_text().strip()}/stat")
    deadline = time.monotonic() + 5
    while stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] != "Z" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] == "Z"


def test_parameter_store_needs_a_resolver(tmp_path: Path):
    text = "version: 0.2\nenv: {parameter-store: {TOKEN: /app/token}}\nphases: {build: {commands: ['echo $TOKEN']}}\n"
    unresolved, _ = run(text, tmp_path / "a")
    assert (unresolved.failed_phase, unresolved.message) == (
        "PROVISIONING",
        "env.parameter-store.TOKEN: no resolver for parameter-store references on this target",
    )
    resolved, lines = run(text, tmp_path / "b", resolve_reference=lambda kind, ref: f"{kind}:{ref}")
    assert resolved.succeeded and output(lines) == ["parameter-store:/app/token"]


def test_build_result_round_trips_through_json(tmp_path: Path):
    result, _ = run("version: 0.2\nphases: {build: {commands: ['true']}}\n", tmp_path / "src")
    assert BuildResult.model_validate_json(result.model_dump_json()) == result
