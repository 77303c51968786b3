"""Buildspec 0.2 schema: bad input named by file and key, every section parsed, the repository's buildspecs valid."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from gitops.release.buildspec import BuildspecError, load_buildspec, parse_buildspec

ROOT = Path(__file__).resolve().parents[2]


def spec(text: str):
    return parse_buildspec(textwrap.dedent(text), "bs.yml")


# --- parsing --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("version: 0.1\nphases: {build: {commands: [x]}}", "bs.yml: version: only version 0.2 is supported"),
        ("version: 1.0\nphases: {build: {commands: [x]}}", "bs.yml: version: must be 0.2 (got 1.0)"),
        ("phases: {build: {commands: [x]}}", "bs.yml: version: required key is missing"),
        ("version: 0.2\nphases: {build: {commands: [x]}}\nstages: {}", "bs.yml: stages: unknown key (allowed: version"),
        (
            "version: 0.2\nphases: {bild: {commands: [x]}}",
            "bs.yml: phases.bild: unknown key (allowed: install, pre_build, build, post_build)",
        ),
        (
            "version: 0.2\nphases: {build: {commands: echo hi}}",
            "bs.yml: phases.build.commands: input should be a valid list",
        ),
        ("version: 0.2\nphases: {build: {finally: [x]}}", "bs.yml: phases.build.commands: required key is missing"),
        ("version: 0.2\nphases: {build: {commands: [echo, 3]}}", "phases.build.commands[1]: must be a string"),
        ("version: 0.2\nphases:\n  build:\n    commands:\n      - echo a: b", "quote a command that contains ': '"),
        (
            "version: 0.2\nphases: {build: {commands: [x], on-failure: RETRY}}",
            "phases.build.on-failure: input should be",
        ),
        (
            "version: 0.2\nphases: {build: {commands: [x], runtime-versions: {python: 3.11}}}",
            "phases.build.runtime-versions: unknown key (runtime-versions is only allowed under phases.install)",
        ),
        ("version: 0.2\nenv: {variables: {A: [1]}}\nphases: {build: {commands: [x]}}", "env.variables.A: input should"),
        ("version: 0.2\nenv: {exported: [A]}\nphases: {build: {commands: [x]}}", "env.exported: unknown key"),
        ("version: 0.2\nphases: {}", "bs.yml: phases: must define at least one of install"),
        ("version: 0.2\nphases: {build: {commands: [x]}}\nartifacts: {name: a}", "artifacts: needs 'files'"),
        ("- version: 0.2", "bs.yml: expected a mapping with 'version: 0.2', got list"),
        ("version: 0.2\nphases: [\n", "bs.yml: line"),
    ],
)
def test_parse_errors_name_the_file_and_key(text: str, message: str):
    with pytest.raises(BuildspecError) as caught:
        parse_buildspec(text, "bs.yml")
    assert message in str(caught.value)


def test_valid_buildspec_parses_every_section():
    parsed = spec(
        """\
        version: 0.2
        run-as: root
        env:
          shell: bash
          variables: {RETRIES: 3, NAME: x}
          parameter-store: {TOKEN: /a/b}
          exported-variables: [NAME]
          git-credential-helper: yes
        proxy: {upload-artifacts: no, logs: yes}
        phases:
          install:
            runtime-versions: {python: 3.11}
            commands: [echo install]
          build:
            on-failure: CONTINUE
            commands: [echo build]
            finally: [echo done]
        reports:
          unit: {files: ['**/*.xml'], base-directory: reports, file-format: JUNITXML}
        artifacts:
          files: ['**/*']
          discard-paths: yes
          secondary-artifacts:
            extra: {files: [a.txt]}
        cache: {paths: [/var/cache/pip/**/*]}
        """
    )
    assert parsed.env.variables == {"RETRIES": "3", "NAME": "x"}  # numbers taken as their text
    assert parsed.env.git_credential_helper is True
    assert parsed.phases.install.runtime_versions == {"python": "3.11"}
    assert parsed.phases.build.on_failure == "CONTINUE"
    assert parsed.artifacts.discard_paths is True
    assert parsed.source == "bs.yml"


def test_json_buildspec_as_cdk_writes_it_inline():
    parsed = parse_buildspec('{\n  "version": 0.2,\n  "phases": {"build": {"commands": ["echo hi"]}}\n}', "inline")
    assert parsed.phases.build.commands == ["echo hi"]


def test_load_buildspec_names_a_missing_file(tmp_path: Path):
    with pytest.raises(BuildspecError, match="nope.yml: buildspec not found"):
        load_buildspec(tmp_path / "nope.yml")


@pytest.mark.parametrize("path", sorted((ROOT / "buildspecs").glob("*.yml")), ids=lambda p: p.name)
def test_repository_buildspecs_are_valid(path: Path):
    load_buildspec(path)
