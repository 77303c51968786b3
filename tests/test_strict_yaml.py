"""The one YAML loader: a repeated key is refused with its file and line, by every reader of YAML."""

from __future__ import annotations

from pathlib import Path

import pytest

from gitops.errors import GitopsError
from gitops.strict_yaml import YamlError, load_yaml

ROOT = Path(__file__).resolve().parents[1]


def test_plain_yaml_loads_as_safe_load_would():
    text = "a: 1\nb: {c: [1, 2]}\nbase: &base {k: 1, j: 2}\nmerged:\n  <<: *base\n  k: 3\non: push\n"
    assert load_yaml(text, "x.yaml") == {
        "a": 1,
        "b": {"c": [1, 2]},
        "base": {"k": 1, "j": 2},
        "merged": {"k": 3, "j": 2},  # an explicit key may override a merged one: that is not a repeat
        True: "push",  # YAML 1.1, as GitHub's own parser reads `on`
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("region: a\nstage: dev\nregion: b\n", "x.yaml: line 3: duplicate key 'region' (first on line 1); keep one"),
        ("top:\n  inner: 1\n  inner: 2\n", "x.yaml: line 3: duplicate key 'inner' (first on line 2); keep one"),
        ("- rule: A\n  rule: B\n", "x.yaml: line 2: duplicate key 'rule' (first on line 1); keep one"),
        ("on: push\ntrue: 1\n", "x.yaml: line 2: duplicate key 'true' (first on line 1); keep one"),
        ("a: [1\n", "x.yaml: line 2: not valid YAML (did not find expected ',' or ']')"),
    ],
    ids=["top-level", "nested", "in-a-list", "same-value-other-spelling", "syntax"],
)
def test_problems_name_the_file_and_line(text: str, expected: str):
    with pytest.raises(YamlError) as info:
        load_yaml(text, "x.yaml")
    assert str(info.value) == expected
    assert isinstance(info.value, GitopsError)


DUPLICATE = "\nversion: 0.2\n"


def test_every_yaml_reader_of_the_engine_refuses_a_repeated_key(tmp_path: Path):
    from gitops.config import load_stage_config
    from gitops.errors import ConfigError
    from gitops.release.buildspec import BuildspecError, parse_buildspec
    from gitops.release.ci_calls import CiCallError, workflow_scripts
    from gitops.scan.errors import PolicyError
    from gitops.scan.policy import parse_policy

    stage = tmp_path / "dev.yaml"
    stage.write_text((ROOT / "infra/config/dev.yaml").read_text() + "account: '999999999999'\n")
    with pytest.raises(ConfigError, match=r"dev\.yaml: line \d+: duplicate key 'account'"):
        load_stage_config(stage)

    policy = (ROOT / "policy.yaml").read_text() + DUPLICATE
    with pytest.raises(PolicyError, match=r"^policy\.yaml: line \d+: duplicate key 'version'"):
        parse_policy(policy, "policy.yaml")

    buildspec = (ROOT / "buildspecs/deploy.yml").read_text() + DUPLICATE
    with pytest.raises(BuildspecError, match=r"^buildspecs/deploy\.yml: line \d+: duplicate key 'version'"):
        parse_buildspec(buildspec, "buildspecs/deploy.yml")

    workflow = tmp_path / "pr.yml"
    workflow.write_text((ROOT / ".github/workflows/pr.yml").read_text() + "\npermissions: {}\n")
    with pytest.raises(CiCallError, match=r"^\.github/workflows/pr\.yml: line \d+: duplicate key 'permissions'"):
        workflow_scripts(workflow, ".github/workflows/pr.yml")


@pytest.mark.integration  # a CDK synthesis
def test_the_synth_reads_buildspecs_through_the_same_loader(tmp_path: Path):
    from gitops.release.project_import import use_checkout

    use_checkout(ROOT)  # this repository's infra/, not tests/infra
    from infra.components.buildspecs import read_buildspec

    assert read_buildspec(ROOT, "deploy")["version"] == 0.2
    (tmp_path / "buildspecs").mkdir()
    (tmp_path / "buildspecs/deploy.yml").write_text((ROOT / "buildspecs/deploy.yml").read_text() + DUPLICATE)
    with pytest.raises(GitopsError, match=r"^buildspecs/deploy\.yml: line \d+: duplicate key 'version'"):
        read_buildspec(tmp_path, "deploy")
