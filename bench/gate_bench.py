"""Benchmark: our gate against the standard tool chain, side by side, alternating A B A B; prints median ratios.

    uv run python bench/gate_bench.py [--quick] [--pairs N] [--scale-pipelines 50 --scale-stages 6]

A (our gate): `gitops render && gitops scan`, cold: the render's part cache (.gitops/cache) and the
scan cache (a fresh state directory) emptied first, so every part is built and every template and
file scanned, as with `render --no-cache` and GITOPS_SCAN_NO_CACHE (which also store nothing, so
the warm cases after it would start cold again).
B (the standard chain, same checkout): `cdk synth -q` (aws-cdk ^2.1148 from .gitops/tools/cdk,
installed there with npm if missing), `cfn-lint` over the synthesized templates, `checkov -d
<cdk.out> --framework cloudformation` from .gitops/tools/checkov, and bench/sdk_pipelines.py
(the pipeline definitions built with the SDK). Wall time per run, and CPU time of every process
the run waited for (getrusage of the children). Then, on copies of the checkout: the unchanged
re-run, one changed pipeline step, one changed stage-config value, and a scale copy (N pipelines,
S stages) cold and with one pipeline changed. The machine is shared: absolute seconds are noisy,
which is why the figures are medians of alternated runs and ratios.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from render_bench import copy_checkout  # noqa: E402

CDK_VERSION = "^2.1148"
CDK_DIR = ROOT / ".gitops" / "tools" / "cdk"
CHECKOV = ROOT / ".gitops" / "tools" / "checkov" / "bin" / "checkov"
BIN = Path(sys.executable).parent


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(cmd: list[str], cwd: Path, env: dict | None = None, ok: tuple[int, ...] = (0,)) -> tuple[float, float]:
    """(wall, cpu) of one command and every process it waited for; a failure stops the bench, named."""
    cpu0, t0 = _cpu(), time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True)
    wall, cpu = time.perf_counter() - t0, _cpu() - cpu0
    if done.returncode not in ok:
        tail = (done.stderr.strip().splitlines() or done.stdout.strip().splitlines() or ["no output"])[-1]
        sys.exit(f"bench: `{' '.join(cmd[:4])} ...` exited {done.returncode}: {tail[:300]}")
    return wall, cpu


def add(*runs: tuple[float, float]) -> tuple[float, float]:
    return sum(r[0] for r in runs), sum(r[1] for r in runs)


def gitops(root: Path, *args: str, env: dict | None = None) -> tuple[float, float]:
    return run([sys.executable, "-m", "gitops", *args], root, env)


def our_gate(root: Path, *, cold: bool, env: dict) -> tuple[float, float]:
    if cold:
        shutil.rmtree(root / ".gitops" / "cache", ignore_errors=True)
        shutil.rmtree(env["GITOPS_STATE_DIR"], ignore_errors=True)
    render = gitops(root, "render", "--json", env=env)
    return add(render, gitops(root, "scan", "--json", env=env))


def cdk_cli() -> Path:
    cli = CDK_DIR / "node_modules" / ".bin" / "cdk"
    if not cli.exists():
        CDK_DIR.mkdir(parents=True, exist_ok=True)
        npm = ["npm", "install", "--no-audit", "--no-fund", "--silent", f"aws-cdk@{CDK_VERSION}"]
        subprocess.run(npm, cwd=CDK_DIR, check=True)
    return cli


def standard_chain(root: Path, work: Path) -> tuple[float, float]:
    out = work / "cdk.out"
    shutil.rmtree(out, ignore_errors=True)
    synth = run([str(cdk_cli()), "synth", "-q", "--output", str(out)], root)
    templates = sorted(str(p) for p in out.rglob("*.template.json"))
    # cfn-lint's and checkov's exit codes say what they found; the time is what is measured here.
    lint = run([str(BIN / "cfn-lint"), *templates], root, ok=tuple(range(0, 64)))
    scan = run([str(CHECKOV), "-d", str(out), "--framework", "cloudformation", "--quiet", "--compact"], work, ok=(0, 1))
    sdk = run([sys.executable, str(ROOT / "bench" / "sdk_pipelines.py"), str(root), str(work / "sdk")], root)
    return add(synth, lint, scan, sdk)


def edit(path: Path, pattern: str, replacement: str) -> None:
    text = path.read_text()
    changed = re.sub(pattern, replacement, text, count=1, flags=re.MULTILINE)
    if changed == text:
        sys.exit(f"bench: {path}: nothing matched {pattern!r} to change")
    path.write_text(changed)


def scale_copy(src: Path, dest: Path, pipelines: int, stages: int) -> Path:
    """A copy with `pipelines` pipeline packages (copies of the sample's) and `stages` stages (dev -> ... -> prod)."""
    root = copy_checkout(dest)
    defs = root / "pipeline_defs"
    originals = sorted(p.parent.name for p in defs.glob("*/pipeline.py"))
    for i in range(pipelines - len(originals)):
        base = originals[i % len(originals)]
        shutil.copytree(defs / base, defs / f"{base}_{i:02d}")
    config = root / "infra" / "config"
    middle = [f"stage{i}" for i in range(1, stages - 1)]
    chain = ["dev", *middle, "prod"]
    for i, name in enumerate(middle):
        text = (config / "dev.yaml").read_text()
        text = re.sub(r"^stage: dev$", f"stage: {name}", text, flags=re.MULTILINE)
        text = re.sub(r'^account: "\d+"$', f'account: "{222222222200 + i}"', text, flags=re.MULTILINE)
        text = re.sub(r"^promote_to: \w+$", f"promote_to: {chain[i + 2]}", text, flags=re.MULTILINE)
        (config / f"{name}.yaml").write_text(text)
    if middle:
        edit(config / "dev.yaml", r"^promote_to: \w+$", f"promote_to: {middle[0]}")
    return root


def ratio(a: list[float], b: list[float]) -> str:
    return f"{statistics.median(a) / statistics.median(b):.2f}x"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one pair, no config change, no scale case (< 2 min)")
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--scale-pipelines", type=int, default=50)
    parser.add_argument("--scale-stages", type=int, default=6)
    args = parser.parse_args()
    pairs = 1 if args.quick else args.pairs
    with tempfile.TemporaryDirectory(prefix="gitops-gate-bench-") as tmp:
        work = Path(tmp)
        state = {"GITOPS_STATE_DIR": str(work / "state"), "GITOPS_CHECKOV_ENV": str(CHECKOV.parents[1])}
        root = copy_checkout(work / "repo")
        (root / ".venv").symlink_to(BIN.parent)  # cdk.json's app runs .venv/bin/python
        a: list[tuple[float, float]] = []
        b: list[tuple[float, float]] = []
        for i in range(pairs):
            a.append(our_gate(root, cold=True, env=state))
            b.append(standard_chain(root, work))
            gate, chain = a[-1], b[-1]
            print(f"pair {i + 1}: gate {gate[0]:.1f}s wall {gate[1]:.1f}s cpu |", end=" ")
            print(f"chain {chain[0]:.1f}s wall {chain[1]:.1f}s cpu")
        aw, ac, bw, bc = [x[0] for x in a], [x[1] for x in a], [x[0] for x in b], [x[1] for x in b]
        print(f"cold gate / standard chain: wall {ratio(aw, bw)}, cpu {ratio(ac, bc)} (medians over {pairs} pair(s))")

        unchanged = [our_gate(root, cold=False, env=state) for _ in range(max(pairs, 2))]
        print(
            f"unchanged re-run (render + scan): {statistics.median(x[0] for x in unchanged):.2f}s wall,"
            f" {ratio([x[0] for x in unchanged], aw)} of the cold gate"
        )

        step = next(iter(sorted((root / "pipeline_defs").glob("*/steps/*.py"))))
        edit(step, r"\Z", "\n# bench: a changed step\n")
        changed_step = our_gate(root, cold=False, env=state)
        print(
            f"one changed pipeline step ({step.relative_to(root)}): {changed_step[0]:.2f}s wall,"
            f" {changed_step[0] / statistics.median(aw):.2f}x of the cold gate"
        )
        if not args.quick:
            edit(root / "infra" / "config" / "dev.yaml", r"^log_retention_days: (\d+)$", "log_retention_days: 60")
            changed_config = our_gate(root, cold=False, env=state)
            print(
                f"one changed stage-config value (dev log_retention_days): {changed_config[0]:.2f}s wall,"
                f" {changed_config[0] / statistics.median(aw):.2f}x of the cold gate"
            )

            big = scale_copy(root, work / "scale", args.scale_pipelines, args.scale_stages)
            cold = gitops(big, "render", "--json", env=state)  # a new copy: its part cache is empty
            target = sorted((big / "pipeline_defs").glob("*_00/steps/*.py"))[0]
            edit(target, r"\Z", "\n# bench: one pipeline changed\n")
            one = gitops(big, "render", "--json", env=state)
            name = target.parents[1].name
            sdk = [sys.executable, str(ROOT / "bench" / "sdk_pipelines.py"), str(big), str(work / "one"), "dev", name]
            one_cold = run(sdk, ROOT)
            print(
                f"scale ({args.scale_pipelines} pipelines, {args.scale_stages} stages): render cold {cold[0]:.1f}s wall"
                f" {cold[1]:.1f}s cpu; one pipeline changed {one[0]:.1f}s wall, {one[0] / one_cold[0]:.2f}x of"
                f" building that one pipeline cold with the SDK ({one_cold[0]:.1f}s)"
            )


if __name__ == "__main__":
    main()
