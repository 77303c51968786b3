"""Every `gitops` call in the buildspecs and workflows, checked against the verbs and flags the CLI registers.

Render runs this: a buildspec that calls `gitops deplyo` would otherwise render, scan and publish
cleanly and fail only inside CodeBuild, in the stage it was meant to deploy.
"""

from __future__ import annotations

import difflib
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitops.errors import GitopsError
from gitops.release.buildspec import PHASES, BuildspecError, parse_buildspec
from gitops.strict_yaml import YamlError, load_yaml

BUILDSPEC_DIR = Path("buildspecs")
WORKFLOW_DIR = Path(".github") / "workflows"

_OPERATORS = {"|", "||", "&&", ";", "&", "(", ")", "{", "}"}
_REDIRECTS = {">", ">>", "<", ">&", "<&", ">|", "&>"}
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


class CiCallError(GitopsError):
    """A buildspec or workflow calls a `gitops` verb or flag the CLI does not have, or cannot be read."""

    hint = "call only verbs and flags that `gitops --help` and `gitops <verb> --help` list"


@dataclass(frozen=True)
class GitopsCall:
    """One `gitops ...` command line found in a script: the arguments after `gitops`, and its source line."""

    args: list[str]
    line: str


def simple_commands(script: str) -> list[list[str]]:
    """The simple commands of a script, as argv lists (redirections and operators removed)."""
    return [argv for argv, _ in _commands_with_lines(script)]


def _commands_with_lines(script: str) -> list[tuple[list[str], str]]:
    found: list[tuple[list[str], str]] = []
    for line in script.replace("\\\n", " ").splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        lexer.commenters = "#"
        current: list[str] = []
        skip = False
        for token in lexer:
            if skip:
                skip = False
            elif token in _REDIRECTS or re.fullmatch(r"\d?[<>]+&?", token):
                skip = True
                if current and current[-1].isdigit():  # the file descriptor of `2>&1`
                    current.pop()
            elif token in _OPERATORS:
                found.append((current, line))
                current = []
            else:
                current.append(token)
        found.append((current, line))
    return [(argv, line) for argv, line in found if argv]


def gitops_argv(argv: list[str]) -> list[str] | None:
    """The arguments after `gitops` when argv runs it (directly, `uv run [...] gitops` or `python -m gitops`)."""
    while argv and _ASSIGNMENT.match(argv[0]):  # FOO=bar gitops ...
        argv = argv[1:]
    if not argv:
        return None
    if argv[0] == "gitops":
        return argv[1:]
    if argv[:2] == ["uv", "run"] and "gitops" in argv:
        return argv[argv.index("gitops") + 1 :]
    if re.fullmatch(r"python(3(\.\d+)?)?", argv[0]) and argv[1:3] == ["-m", "gitops"]:
        return argv[3:]
    return None


def gitops_calls(scripts: list[str]) -> list[GitopsCall]:
    """Every `gitops` call in a list of shell scripts, in order."""
    return [
        GitopsCall(args, line)
        for script in scripts
        for argv, line in _commands_with_lines(script)
        if (args := gitops_argv(argv)) is not None
    ]


# --- the CLI as it is registered ----------------------------------------------------------------------


@dataclass
class Verb:
    path: str
    options: dict[str, bool]  # every spelling -> takes a value
    arguments: int


def _did_you_mean(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    return f" (did you mean '{close[0]}'?)" if close else f" (have {', '.join(choices)})"


def resolve(command: Any, args: list[str]) -> tuple[Verb, list[str]]:
    """The verb `gitops args...` runs and the rest of args; CiCallError naming what does not exist."""
    words: list[str] = []
    rest = list(args)
    while rest and not rest[0].startswith("-") and getattr(command, "commands", None) is not None:
        name = rest.pop(0)
        words.append(name)
        sub = command.commands.get(name)
        if sub is None:
            raise CiCallError(
                f"`gitops {' '.join(words)}`: no such verb{_did_you_mean(name, sorted(command.commands))}"
            )
        command = sub
    if getattr(command, "commands", None) is not None:
        raise CiCallError(
            f"`gitops {' '.join(words)}` needs a sub-command (one of {', '.join(sorted(command.commands))})"
        )
    options: dict[str, bool] = {}
    arguments = 0
    for param in command.params:
        if param.param_type_name == "argument":
            arguments += 1
            continue
        for opt in [*param.opts, *param.secondary_opts]:
            options[opt] = not param.is_flag and not getattr(param, "count", False)
    return Verb(" ".join(words), options, arguments), rest


def check_call(command: Any, args: list[str]) -> str:
    """Raise CiCallError unless `gitops args` names a registered verb with its flags; return the verb."""
    verb, rest = resolve(command, args)
    positional = 0
    while rest:
        token = rest.pop(0)
        if token.startswith("-") and token != "-":
            name = token.split("=", 1)[0]
            if name not in verb.options:
                raise CiCallError(
                    f"`gitops {verb.path}` has no option {name}{_did_you_mean(name, sorted(verb.options))}"
                )
            if verb.options[name] and "=" not in token:
                if not rest:
                    raise CiCallError(f"`gitops {verb.path} {name}` needs a value")
                rest.pop(0)
        else:
            positional += 1
    if positional > verb.arguments:
        raise CiCallError(f"`gitops {verb.path}`: unexpected argument(s) in `{' '.join(args)}`")
    return verb.path


def registered_cli() -> Any:
    """The click command tree of `gitops`, every verb registered (what a build would run)."""
    from gitops.cli import command_tree

    return command_tree()


# --- the surfaces: buildspecs and workflows ----------------------------------------------------------------


def buildspec_scripts(path: Path, shown: str) -> list[str]:
    """The commands of every phase of a buildspec (finally blocks included), validated as CodeBuild would."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BuildspecError(f"{shown}: cannot read the buildspec ({exc})") from exc
    spec = parse_buildspec(text, shown)
    scripts: list[str] = []
    for name in PHASES:
        phase = spec.phases.get(name)
        if phase is not None:
            scripts += [*phase.commands, *(phase.finally_ or [])]
    return scripts


def workflow_scripts(path: Path, shown: str) -> list[str]:
    """The `run:` scripts of every step of every job of a GitHub workflow."""
    try:
        data = load_yaml(path.read_text(encoding="utf-8"), shown)
    except YamlError as exc:
        raise CiCallError(str(exc), hint="fix the workflow's YAML") from exc
    jobs = data.get("jobs") if isinstance(data, dict) else None
    if not isinstance(jobs, dict):
        raise CiCallError(f"{shown}: a workflow needs a mapping of 'jobs'", hint="fix the workflow's YAML")
    scripts: list[str] = []
    for name, job in jobs.items():
        steps = job.get("steps", []) if isinstance(job, dict) else None
        if not isinstance(steps, list):
            raise CiCallError(f"{shown}: job '{name}': 'steps' must be a list", hint="fix the workflow's YAML")
        scripts += [step["run"] for step in steps if isinstance(step, dict) and isinstance(step.get("run"), str)]
    return scripts


def ci_surfaces(root: Path) -> list[tuple[str, Path, list[str]]]:
    """(shown path, path, scripts) of every buildspec and workflow of the repository at root."""
    found = []
    for path in sorted((root / BUILDSPEC_DIR).glob("*.yml")) + sorted((root / BUILDSPEC_DIR).glob("*.yaml")):
        shown = path.relative_to(root).as_posix()
        found.append((shown, path, buildspec_scripts(path, shown)))
    for path in sorted((root / WORKFLOW_DIR).glob("*.yml")) + sorted((root / WORKFLOW_DIR).glob("*.yaml")):
        shown = path.relative_to(root).as_posix()
        found.append((shown, path, workflow_scripts(path, shown)))
    return found


def _line_of(path: Path, source_line: str) -> int | None:
    wanted = source_line.strip()
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if wanted and wanted in line:
            return number
    return None


def check_ci_calls(root: Path, command: Any = None) -> int:
    """Check every `gitops` call of the buildspecs and workflows against the CLI; return how many were checked."""
    command = command if command is not None else registered_cli()
    checked = 0
    for shown, path, scripts in ci_surfaces(root):
        for call in gitops_calls(scripts):
            try:
                check_call(command, call.args)
            except CiCallError as exc:
                number = _line_of(path, call.line)
                where = f"{shown}: line {number}" if number else shown
                raise CiCallError(f"{where}: {exc}") from exc
            checked += 1
    return checked
