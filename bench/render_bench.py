"""Benchmark: cold vs warm `gitops render` on a fresh copy of this repository; prints ratios.

    uv run python bench/render_bench.py [--runs 2]

Cold = every part rebuilt (CDK synth + pipeline builds + engine wheel); warm = the part cache
hit (the incremental path a developer sees on a re-render). The ratio is what the cache buys.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def copy_checkout(dest: Path) -> Path:
    listed = (
        subprocess.run(
            ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True, check=True
        )
        .stdout.decode()
        .split("\0")
    )
    for rel in filter(None, listed):
        if (ROOT / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, dest / rel)
    return dest


def timed(root: Path, *args: str) -> float:
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "gitops", "render", "--json", *args], cwd=root, check=True, capture_output=True
    )
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gitops-bench-") as tmp:
        root = copy_checkout(Path(tmp) / "repo")
        cold = [timed(root, "--no-cache") for _ in range(args.runs)]
        timed(root)  # fill the cache
        warm = [timed(root) for _ in range(args.runs)]
    c, w = statistics.median(cold), statistics.median(warm)
    print(f"render cold  median {c:6.2f} s  over {args.runs} runs")
    print(f"render warm  median {w:6.2f} s  over {args.runs} runs")
    print(f"warm/cold ratio {w / c:.3f}  (cache speed-up x{c / w:.1f})")


if __name__ == "__main__":
    main()
