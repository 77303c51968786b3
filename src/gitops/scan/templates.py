"""The release's CloudFormation templates as the scanners see them (inline skips are gitops.scan.inline_skips')."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from gitops.scan.errors import ScanError

_TEMPLATE = re.compile(r"^stages/([^/]+)/templates/([^/]+)\.template\.json$")
_RESOURCE_LINE = re.compile(r'^    "(.+)": \{$')


@dataclass
class TemplateRef:
    stage: str
    stack: str
    rel: str  # release-relative path
    path: Path
    region: str
    body: dict
    lines: list[str] = field(repr=False, default_factory=list)
    # What the tools read: the release file itself, or a copy with its inline skips neutralised.
    scan_path: Path | None = None

    @property
    def tool_path(self) -> Path:
        return (self.scan_path or self.path).resolve()

    @property
    def resource_types(self) -> set[str]:
        return {
            r["Type"] for r in self.body["Resources"].values() if isinstance(r, dict) and isinstance(r.get("Type"), str)
        }

    def line_of(self, logical_id: str | None) -> int | None:
        """The 1-based line where a resource starts (canonical JSON, 2-space indent)."""
        if not logical_id:
            return None
        wanted = f"    {json.dumps(logical_id)}: {{"
        for number, text in enumerate(self.lines, 1):
            if text == wanted:
                return number
        return None

    def resource_at(self, line: int | None) -> str | None:
        """The logical id of the resource whose block holds the line, if any."""
        if not line:
            return None
        current = None
        in_resources = False
        for number, text in enumerate(self.lines, 1):
            if text == '  "Resources": {':
                in_resources = True
            elif in_resources and text.startswith("  }"):
                in_resources = False
                current = None
            elif in_resources:
                found = _RESOURCE_LINE.match(text)
                if found:
                    current = json.loads(f'"{found.group(1)}"')
            if number == line:
                return current
        return None


def release_templates(release_dir: Path, files: dict[str, str], regions: dict[str, str]) -> list[TemplateRef]:
    """Every template of the release, parsed; one that is not a JSON object is bad input, named."""
    found = []
    for rel in sorted(files):
        match = _TEMPLATE.match(rel)
        if not match:
            continue
        stage, stack = match.groups()
        path = release_dir / rel
        text = path.read_text(encoding="utf-8", errors="replace")
        try:
            body = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ScanError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from exc
        if not isinstance(body, dict) or not isinstance(body.get("Resources"), dict):
            raise ScanError(f"{path}: not a CloudFormation template (no Resources object)")
        found.append(TemplateRef(stage, stack, rel, path, regions.get(stage, "us-east-1"), body, text.splitlines()))
    return found
