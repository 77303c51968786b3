"""The engine's layout stays readable: modules of one job (no more than ~600 lines), no import cycles."""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 600


def _modules(base: Path, package_root: Path) -> dict[str, Path]:
    found = {}
    for path in sorted(base.rglob("*.py")):
        name = ".".join(path.with_suffix("").relative_to(package_root).parts)
        found[name.removesuffix(".__init__")] = path
    return found


def _module_level_imports(path: Path, known: dict[str, Path], prefix: str) -> set[str]:
    """What a module imports when it is imported (function-level imports are deferred, so not cycles)."""
    deps: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith(prefix):
            module = node.module or ""
            for alias in node.names:
                deps.add(f"{module}.{alias.name}" if f"{module}.{alias.name}" in known else module)
        elif isinstance(node, ast.Import):
            deps |= {alias.name for alias in node.names if alias.name in known}
    return deps & set(known)


@pytest.mark.parametrize("tree", ["src/gitops", "infra"])
def test_no_module_is_over_the_line_limit(tree: str):
    long = {
        str(path.relative_to(ROOT)): n
        for path in (ROOT / tree).rglob("*.py")
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"split these along their jobs (over {MAX_LINES} lines): {long}"


@pytest.mark.parametrize(("tree", "package_root", "prefix"), [("src/gitops", "src", "gitops"), ("infra", ".", "infra")])
def test_no_import_cycle(tree: str, package_root: str, prefix: str):
    known = _modules(ROOT / tree, ROOT / package_root)
    graph = {name: _module_level_imports(path, known, prefix) for name, path in known.items()}
    try:
        list(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as cycle:
        pytest.fail(f"import cycle: {' -> '.join(cycle.args[1])}")


def test_test_modules_have_unique_basenames():
    """tests/ has no __init__.py: modules share one import namespace, and a repeated name breaks collection."""
    seen: dict[str, list[str]] = {}
    for path in (ROOT / "tests").rglob("test_*.py"):
        seen.setdefault(path.name, []).append(str(path.relative_to(ROOT)))
    assert not {name: paths for name, paths in seen.items() if len(paths) > 1}
