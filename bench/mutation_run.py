"""Mutation testing of the modules the safety rules rest on: mutmut, one module at a time, scored.

    bench/mutation [MODULE ...] [--max-children N] [--report reports/mutation.md]

Each module runs in its own scratch copy of the checkout (.mutation/<name>/), where mutmut
mutates only that module and runs only the test files MODULES maps it to (mutmut then narrows
those further to the tests that call the mutated function). The shared settings are pyproject's
[tool.mutmut]. Prints the score per module and in total; writes a Markdown report with every
surviving mutant's diff, and marks the ones docs/mutation-survivors.md explains as equivalent.
Score = mutants killed (a test failed, or it timed out) / mutants tried.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from render_bench import copy_checkout  # noqa: E402  (a sibling script, not a package)

ROOT = Path(__file__).resolve().parents[1]
SCRATCH = ROOT / ".mutation"
SURVIVORS_DOC = ROOT / "docs" / "mutation-survivors.md"

# Module (under src/gitops/) -> the test files that exercise its rules. mutmut's stats run maps
# each mutated function to the tests among these that call it, and runs only those per mutant.
MODULES: dict[str, tuple[str, ...]] = {
    "release/manifest.py": ("tests/release/test_release.py", "tests/release/test_stage_summary.py"),
    # The gate's decisions with stand-in scanners: the real-scanner tests spend seconds per scan (and
    # test_gate_bypasses scans through a subprocess, where a mutant is never loaded).
    "scan/gate.py": ("tests/scan/test_gate_rules.py",),
    "scan/attestation.py": ("tests/scan/test_attestation.py", "tests/scan/test_gate_rules.py"),
    # test_scan.py runs the real scanners (over a minute per run) and its attestation test fails
    # under mutmut (the mutated engine's digest is not the one attested): these use the gate's rules.
    "scan/policy.py": ("tests/scan/test_reasons.py", "tests/scan/test_gate_rules.py", "tests/test_strict_yaml.py"),
    "scan/inline_skips.py": ("tests/scan/test_inline_skips.py", "tests/scan/test_gate_rules.py"),
    "scan/reasons.py": ("tests/scan/test_reasons.py",),
    "promotion/promote.py": (
        "tests/promotion/test_promote.py",
        "tests/promotion/test_forward_only.py",
        "tests/promotion/test_approval_aws.py",
    ),
    "promotion/approval.py": ("tests/promotion/test_approval_aws.py", "tests/promotion/test_forward_only.py"),
    "promotion/evidence.py": (
        "tests/promotion/test_approval_aws.py",
        "tests/promotion/test_forward_only.py",
        "tests/promotion/test_promote.py",
    ),
    "promotion/lineage.py": ("tests/promotion/test_lineage.py", "tests/promotion/test_forward_only.py"),
    "promotion/envrepo.py": ("tests/promotion/test_envrepo.py", "tests/promotion/test_forward_only.py"),
    "deploy/verify.py": ("tests/deploy/test_verify.py",),
    "local/buildspec_runner.py": ("tests/local/test_buildspec_runner.py",),
    "local/codepipeline/execution.py": ("tests/local/codepipeline/test_execution.py",),
    "config.py": ("tests/cli/test_config.py",),
}

KILLED = {"killed", "timeout", "caught by type check"}
# What `mutmut show NAME` prints, for every name on stdin (mutmut 3.8's own functions), as JSON.
_SHOW_ALL = """
import json, sys
from mutmut.mutation.diff_apply import find_mutant, get_diff_for_mutant
names = sys.stdin.read().split()
print(json.dumps({n: get_diff_for_mutant(n, path=find_mutant(n).path).strip() for n in names}))
"""
_RESULT = re.compile(r"^\s+(?P<name>\S+): (?P<status>.+)$")


@dataclass
class ModuleScore:
    module: str
    statuses: dict[str, str] = field(default_factory=dict)  # mutant name -> mutmut's status
    diffs: dict[str, str] = field(default_factory=dict)  # surviving mutant -> its diff
    seconds: float = 0.0

    @property
    def killed(self) -> int:
        return sum(status in KILLED for status in self.statuses.values())

    @property
    def tried(self) -> int:
        return sum(status != "skipped" for status in self.statuses.values())

    @property
    def survivors(self) -> list[str]:
        return sorted(n for n, s in self.statuses.items() if s not in KILLED and s != "skipped")


def percent(killed: int, tried: int) -> str:
    return f"{100 * killed / tried:.1f} %" if tried else "n/a"


def explained_mutants() -> set[str]:
    """Mutant names docs/mutation-survivors.md explains as equivalent (written there in backticks)."""
    if not SURVIVORS_DOC.exists():
        return set()
    return set(re.findall(r"`(gitops\.[\w.]+__mutmut_\d+)`", SURVIVORS_DOC.read_text(encoding="utf-8")))


def scratch_checkout(module: str) -> Path:
    """A fresh copy of the checkout whose [tool.mutmut] mutates only `module`, with its tests."""
    where = SCRATCH / module.removesuffix(".py").replace("/", ".")
    shutil.rmtree(where, ignore_errors=True)
    copy_checkout(where)
    pyproject = where / "pyproject.toml"
    text = pyproject.read_text(encoding="utf-8")
    selection = [f"only_mutate = {json.dumps(['src/gitops/' + module])}"]
    selection.append(f"pytest_add_cli_args_test_selection = {json.dumps(list(MODULES[module]))}")
    text = text.replace("[tool.mutmut]\n", "[tool.mutmut]\n" + "\n".join(selection) + "\n", 1)
    pyproject.write_text(text, encoding="utf-8")
    return where


def mutmut(where: Path, *args: str, log: Path | None = None) -> str:
    command = [sys.executable, "-m", "mutmut", *args]
    if log is None:
        return subprocess.run(command, cwd=where, capture_output=True, text=True, check=True).stdout
    with log.open("w", encoding="utf-8") as out:
        done = subprocess.run(command, cwd=where, stdout=out, stderr=subprocess.STDOUT, check=False)
    if done.returncode != 0:
        sys.exit(f"mutation: `mutmut run` failed for {where.name} (exit {done.returncode}); see {log}")
    return ""


def run_module(module: str, max_children: int) -> ModuleScore:
    where = scratch_checkout(module)
    score = ModuleScore(module)
    t0 = time.monotonic()
    mutmut(where, "run", "--max-children", str(max_children), log=where / "mutmut-run.log")
    score.seconds = time.monotonic() - t0
    for line in mutmut(where, "results", "--all", "true").splitlines():
        if m := _RESULT.match(line):
            score.statuses[m["name"]] = m["status"]
    if score.survivors:  # `mutmut show` for each, in one process (a process per mutant takes minutes)
        shown = subprocess.run(
            [sys.executable, "-c", _SHOW_ALL],
            cwd=where,
            input="\n".join(score.survivors),
            capture_output=True,
            text=True,
            check=True,
        )
        score.diffs = json.loads(shown.stdout)
    return score


def report(scores: list[ModuleScore], explained: set[str], seconds: float, max_children: int) -> str:
    killed, tried = sum(s.killed for s in scores), sum(s.tried for s in scores)
    lines = [
        f"# Mutation testing: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"mutmut, `--max-children {max_children}`, {seconds / 60:.1f} min in all. Score = killed / tried.",
        "",
        "| module | killed | tried | score | survivors explained | minutes |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for s in scores:
        known = sum(n in explained for n in s.survivors)
        row = f"| {s.module} | {s.killed} | {s.tried} | {percent(s.killed, s.tried)} | {known}/{len(s.survivors)}"
        lines.append(f"{row} | {s.seconds / 60:.1f} |")
    lines += [f"| **total** | {killed} | {tried} | {percent(killed, tried)} | | {seconds / 60:.1f} |", ""]
    for s in scores:
        for name in s.survivors:
            mark = "explained in docs/mutation-survivors.md" if name in explained else "NOT EXPLAINED"
            lines += [f"## {name}: {s.statuses[name]} ({mark})", "", "```diff", s.diffs.get(name, ""), "```", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", metavar="MODULE", help=f"default: all of {', '.join(MODULES)}")
    parser.add_argument("--max-children", type=int, default=1, help="mutants tested at once (default 1)")
    parser.add_argument("--report", type=Path, default=ROOT / "reports" / "mutation.md")
    args = parser.parse_args()
    unknown = [m for m in args.modules if m not in MODULES]
    if unknown:
        sys.exit(f"mutation: unknown module {unknown[0]!r}: one of {', '.join(MODULES)}")
    explained = explained_mutants()
    started = time.monotonic()
    scores = []
    for module in args.modules or MODULES:
        score = run_module(module, args.max_children)
        unexplained = sum(n not in explained for n in score.survivors)
        print(
            f"{module:36} {score.killed:4}/{score.tried:<4} killed  {percent(score.killed, score.tried):>7}"
            f"  {len(score.survivors)} survived ({unexplained} not explained)  {score.seconds / 60:5.1f} min",
            flush=True,
        )
        scores.append(score)
    seconds = time.monotonic() - started
    killed, tried = sum(s.killed for s in scores), sum(s.tried for s in scores)
    print(f"{'total':36} {killed:4}/{tried:<4} killed  {percent(killed, tried):>7}  in {seconds / 60:.1f} min")
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(report(scores, explained, seconds, args.max_children), encoding="utf-8")
    print(f"report: {args.report}")


if __name__ == "__main__":
    main()
