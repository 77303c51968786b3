"""Where in infra/ a resource of a rendered template was made: its construct path (aws:cdk:path) -> file and line.

The rendered templates live under release/, which is not in the repository, so a finding located
there shows no annotation in a PR. The construct path CDK writes into each resource's metadata
(`<stage>/<StackId>/<ConstructId>/...`) leads back to the source: the stack id names its module
(infra/stacks/specs.py), and the construct id is the string literal the code passes to the
construct. Read as text, with no CDK import, so a scan needs no node.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

CDK_PATH = "aws:cdk:path"
SPECS = Path("infra") / "stacks" / "specs.py"
_SPEC = re.compile(r'StackSpec\(\s*"(\w+)",\s*(\w+)')
_IMPORT = re.compile(r"^from (infra\.stacks\.\w+) import (.+)$", re.MULTILINE)


@dataclass(frozen=True)
class SourceLocation:
    file: str  # repository-relative, e.g. infra/stacks/mlops.py
    line: int
    construct_path: str  # e.g. dev/MLOps/ArtifactBucket/Resource


class CdkSources:
    """Maps (stage template, logical id) to the infra/ source line that declared the construct."""

    def __init__(self, root: Path, release_dir: Path) -> None:
        self.root = root
        self.release_dir = release_dir
        self._templates: dict[str, dict] = {}

    @property
    def available(self) -> bool:
        return (self.root / SPECS).is_file()

    @cached_property
    def _stack_modules(self) -> dict[str, str]:
        """Stack id -> its module's repository-relative path, from specs.py's imports and StackSpec lines."""
        text = (self.root / SPECS).read_text(encoding="utf-8")
        module_of = {}
        for module, names in _IMPORT.findall(text):
            for name in names.split(","):
                module_of[name.strip()] = module.replace(".", "/") + ".py"
        return {stack_id: module_of[cls] for stack_id, cls in _SPEC.findall(text) if cls in module_of}

    @cached_property
    def _infra_files(self) -> list[Path]:
        return sorted((self.root / "infra").rglob("*.py"))

    def _template(self, rel: str) -> dict:
        if rel not in self._templates:
            try:
                self._templates[rel] = json.loads((self.release_dir / rel).read_text(encoding="utf-8"))
            except (OSError, ValueError):
                self._templates[rel] = {}
        return self._templates[rel]

    def construct_path(self, template_rel: str, logical_id: str) -> str | None:
        resource = (self._template(template_rel).get("Resources") or {}).get(logical_id) or {}
        path = (resource.get("Metadata") or {}).get(CDK_PATH)
        return path if isinstance(path, str) else None

    def _literal(self, construct_id: str, preferred: str | None) -> tuple[str, int] | None:
        quoted = json.dumps(construct_id)
        files = [self.root / preferred] if preferred else []
        files += [f for f in self._infra_files if not preferred or f != self.root / preferred]
        for path in files:
            try:
                lines = path.read_text(encoding="utf-8").splitlines()
            except OSError:
                continue
            for number, text in enumerate(lines, 1):
                if quoted in text:
                    return path.relative_to(self.root).as_posix(), number
        return None

    def locate(self, template_rel: str | None, logical_id: str | None) -> SourceLocation | None:
        """The source of the resource, or None when the template says nothing about where it came from."""
        if not (self.available and template_rel and logical_id):
            return None
        path = self.construct_path(template_rel, logical_id)
        if path is None:
            return None
        parts = path.split("/")
        module = self._stack_modules.get(parts[1]) if len(parts) > 1 else None
        # The construct the stack's code creates; what CDK nests under it (Resource, Policy ...) is not named there.
        found = self._literal(parts[2], module) if len(parts) > 2 else None
        if found is not None:
            return SourceLocation(found[0], found[1], path)
        if module is not None:
            return SourceLocation(module, 1, path)  # the stack's module, when the id is built at run time
        return None
