"""The release's SageMaker pipeline definitions as the scanners see them: every step, nested ones included."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from gitops.scan.errors import ScanError

_PIPELINE = re.compile(r"^stages/([^/]+)/pipelines/([^/]+)\.json$")
# Steps that hold further steps (a Condition's branches); their members run like top-level steps.
_NESTED = ("IfSteps", "ElseSteps")


@dataclass
class PipelineRef:
    stage: str
    name: str  # the pipeline's package under pipeline_defs/ (the file's stem)
    rel: str  # release-relative path
    path: Path
    body: dict
    lines: list[str] = field(repr=False, default_factory=list)

    def steps(self) -> Iterator[dict]:
        """Every step of the definition, depth first, a Condition's IfSteps/ElseSteps included."""
        pending = list(reversed(self.body.get("Steps") or []))
        while pending:
            step = pending.pop()
            if not isinstance(step, dict):
                continue
            yield step
            arguments = step.get("Arguments")
            if isinstance(arguments, dict):
                for key in reversed(_NESTED):
                    pending.extend(reversed([s for s in arguments.get(key) or [] if isinstance(s, dict)]))

    def line_of(self, step_name: str | None) -> int | None:
        """The 1-based line of the step's "Name" (canonical JSON: one key per line)."""
        if not step_name:
            return None
        wanted = f'"Name": {json.dumps(step_name)},'
        for number, text in enumerate(self.lines, 1):
            if text.strip() == wanted or text.strip() == wanted.rstrip(","):
                return number
        return None


def release_pipelines(release_dir: Path, files: dict[str, str]) -> list[PipelineRef]:
    """Every pipeline definition of the release, parsed; one that is not a definition is bad input, named."""
    found = []
    for rel in sorted(files):
        match = _PIPELINE.match(rel)
        if not match:
            continue
        stage, name = match.groups()
        path = release_dir / rel
        text = path.read_text(encoding="utf-8", errors="replace")
        try:
            body = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ScanError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from exc
        if not isinstance(body, dict) or not isinstance(body.get("Steps"), list):
            raise ScanError(f"{path}: not a SageMaker pipeline definition (no Steps list)")
        found.append(PipelineRef(stage, name, rel, path, body, text.splitlines()))
    return found
