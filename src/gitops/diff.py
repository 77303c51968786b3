"""What a release changes against another (a stage's current one): templates, pipelines, assets.

Resource-level template diff (added, removed, modified properties; a change to a property the
resource type cannot update in place is flagged as a replacement, from the CloudFormation
resource schemas cfn-lint ships), pipeline diff by step and parameter, and the changed assets.
Readable as text (terminal, approval screen), markdown (PR comment) and JSON.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

from gitops.release import ReleaseManifest, load_release


@dataclass
class ResourceChange:
    logical_id: str
    type: str
    action: str  # add | remove | modify
    properties: list[str] = field(default_factory=list)
    replacement: bool = False


@dataclass
class StackDiff:
    stack: str
    change: str  # add | remove | modify
    resources: list[ResourceChange] = field(default_factory=list)
    other: list[str] = field(default_factory=list)  # Parameters, Outputs, Conditions ...


@dataclass
class StepChange:
    name: str
    type: str
    action: str  # add | remove | modify
    fields: list[str] = field(default_factory=list)


@dataclass
class PipelineDiff:
    pipeline: str
    change: str
    steps: list[StepChange] = field(default_factory=list)
    parameters: list[str] = field(default_factory=list)


@dataclass
class StageDiff:
    stage: str
    stacks: list[StackDiff] = field(default_factory=list)
    pipelines: list[PipelineDiff] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.stacks and not self.pipelines


@dataclass
class ReleaseDiff:
    base_release: str | None
    head_release: str
    stages: list[StageDiff]
    assets_added: list[str]
    assets_removed: list[str]

    @property
    def empty(self) -> bool:
        return all(s.empty for s in self.stages) and not self.assets_added and not self.assets_removed

    def to_dict(self) -> dict:
        return asdict(self)

    # -- rendering ---------------------------------------------------------------------------
    def _counts(self, stack: StackDiff) -> str:
        n = {a: sum(1 for r in stack.resources if r.action == a) for a in ("add", "modify", "remove")}
        repl = sum(1 for r in stack.resources if r.replacement)
        text = f"+{n['add']} ~{n['modify']} -{n['remove']}"
        return text + (f", {repl} replaced" if repl else "")

    def to_text(self) -> str:
        base = self.base_release[:12] if self.base_release else "nothing (first release)"
        lines = [f"release {self.head_release[:12]} against {base}"]
        if self.empty:
            return lines[0] + ": no changes"
        for stage in self.stages:
            if stage.empty:
                continue
            lines.append(f"stage {stage.stage}:")
            for stack in stage.stacks:
                lines.append(f"  stack {stack.stack} ({stack.change}) {self._counts(stack)}")
                for res in stack.resources:
                    flag = "  !! REPLACEMENT" if res.replacement else ""
                    flag = "  !! DELETION" if res.action == "remove" else flag
                    props = f" [{', '.join(res.properties)}]" if res.properties else ""
                    lines.append(f"    {_SIGN[res.action]} {res.logical_id} ({res.type}){props}{flag}")
                lines += [f"    ~ {item}" for item in stack.other]
            for pipe in stage.pipelines:
                lines.append(f"  pipeline {pipe.pipeline} ({pipe.change})")
                for step in pipe.steps:
                    fields = f" [{', '.join(step.fields)}]" if step.fields else ""
                    lines.append(f"    {_SIGN[step.action]} step {step.name} ({step.type}){fields}")
                lines += [f"    ~ parameter {p}" for p in pipe.parameters]
        if self.assets_added or self.assets_removed:
            lines.append(f"assets: +{len(self.assets_added)} -{len(self.assets_removed)}")
            lines += [f"  + {a}" for a in self.assets_added] + [f"  - {a}" for a in self.assets_removed]
        return "\n".join(lines)

    def to_markdown(self) -> str:
        base = f"`{self.base_release[:12]}`" if self.base_release else "nothing (first release)"
        out = [f"### Release `{self.head_release[:12]}` against {base}", ""]
        if self.empty:
            return "\n".join(out + ["No changes."])
        for stage in self.stages:
            if stage.empty:
                continue
            out += [f"#### Stage `{stage.stage}`", ""]
            if stage.stacks:
                out += ["| stack | change | added | modified | removed | replaced |", "|---|---|---|---|---|---|"]
                for s in stage.stacks:
                    n = {a: sum(1 for r in s.resources if r.action == a) for a in ("add", "modify", "remove")}
                    repl = sum(1 for r in s.resources if r.replacement)
                    warn = " ⚠️" if repl or n["remove"] else ""
                    counts = f"{n['add']} | {n['modify']} | {n['remove']} | {repl}{warn}"
                    out.append(f"| {s.stack} | {s.change} | {counts} |")
                out.append("")
                details = [
                    f"- {_SIGN[r.action]} `{r.logical_id}` ({r.type})"
                    + (f": {', '.join(r.properties)}" if r.properties else "")
                    + (" — **replacement**" if r.replacement else "")
                    + (" — **deletion**" if r.action == "remove" else "")
                    for s in stage.stacks
                    for r in s.resources
                ]
                if details:
                    out += ["<details><summary>Resources</summary>", "", *details, "", "</details>", ""]
            for p in stage.pipelines:
                out.append(f"Pipeline `{p.pipeline}` ({p.change}):")
                for st in p.steps:
                    fields = f": {', '.join(st.fields)}" if st.fields else ""
                    out.append(f"- {_SIGN[st.action]} step `{st.name}` ({st.type}){fields}")
                out += [f"- ~ parameter `{name}`" for name in p.parameters]
                out.append("")
        if self.assets_added or self.assets_removed:
            out.append(f"Assets: {len(self.assets_added)} added, {len(self.assets_removed)} removed.")
        return "\n".join(out).rstrip() + "\n"


_SIGN = {"add": "+", "remove": "-", "modify": "~"}


@lru_cache(maxsize=512)
def _create_only(resource_type: str, region: str) -> frozenset[str]:
    """Top-level properties whose change replaces the resource (CloudFormation resource schema)."""
    try:
        from cfnlint.schema import PROVIDER_SCHEMA_MANAGER
    except ImportError:  # the deploy-only install has no cfn-lint: no replacement flags, still a diff
        return frozenset()
    try:
        schema = PROVIDER_SCHEMA_MANAGER.get_resource_schema(region, resource_type).schema
    except Exception:  # noqa: BLE001 (unknown or custom types: no replacement knowledge)
        return frozenset()
    return frozenset(p.split("/")[2] for p in schema.get("createOnlyProperties", []) if p.count("/") >= 2)


def _changed_keys(old: dict, new: dict) -> list[str]:
    return sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))


def diff_template(stack: str, old: dict | None, new: dict | None, region: str) -> StackDiff | None:
    if old == new:
        return None
    change = "add" if old is None else "remove" if new is None else "modify"
    old_res, new_res = (old or {}).get("Resources", {}), (new or {}).get("Resources", {})
    diff = StackDiff(stack, change)
    for lid in sorted(set(old_res) | set(new_res)):
        before, after = old_res.get(lid), new_res.get(lid)
        if before == after:
            continue
        if before is None or after is None:
            res = after or before
            diff.resources.append(ResourceChange(lid, res["Type"], "add" if before is None else "remove"))
            continue
        if before.get("Type") != after.get("Type"):
            diff.resources.append(ResourceChange(lid, after["Type"], "modify", ["Type"], replacement=True))
            continue
        props = _changed_keys(before.get("Properties", {}), after.get("Properties", {}))
        other = [k for k in _changed_keys(before, after) if k not in ("Properties", "Metadata")]
        if not props and not other:
            continue  # only CDK metadata moved
        replaced = bool(set(props) & _create_only(after["Type"], region))
        diff.resources.append(ResourceChange(lid, after["Type"], "modify", props + other, replaced))
    for section in ("Parameters", "Outputs", "Conditions", "Mappings", "Rules"):
        for key in _changed_keys((old or {}).get(section, {}), (new or {}).get(section, {})):
            diff.other.append(f"{section}.{key}")
    return diff if diff.resources or diff.other or change != "modify" else None


def _steps(definition: dict) -> dict[str, dict]:
    found: dict[str, dict] = {}

    def walk(steps: list[dict]) -> None:
        for step in steps:
            found[step["Name"]] = step
            if step.get("Type") == "Condition":
                args = step.get("Arguments", {})
                walk(args.get("IfSteps", []))
                walk(args.get("ElseSteps", []))

    walk(definition.get("Steps", []))
    return found


def diff_pipeline(name: str, old: dict | None, new: dict | None) -> PipelineDiff | None:
    if old == new:
        return None
    change = "add" if old is None else "remove" if new is None else "modify"
    diff = PipelineDiff(name, change)
    old_steps, new_steps = _steps(old or {}), _steps(new or {})
    for step in sorted(set(old_steps) | set(new_steps)):
        before, after = old_steps.get(step), new_steps.get(step)
        if before == after:
            continue
        if before is None or after is None:
            s = after or before
            diff.steps.append(StepChange(step, s.get("Type", "?"), "add" if before is None else "remove"))
            continue
        fields = _changed_keys(before.get("Arguments", {}), after.get("Arguments", {}))
        fields += [k for k in _changed_keys(before, after) if k not in ("Arguments",)]
        diff.steps.append(StepChange(step, after.get("Type", "?"), "modify", fields))
    old_params = {p["Name"]: p for p in (old or {}).get("Parameters", [])}
    new_params = {p["Name"]: p for p in (new or {}).get("Parameters", [])}
    diff.parameters = [k for k in sorted(set(old_params) | set(new_params)) if old_params.get(k) != new_params.get(k)]
    return diff


def _read(release: Path, rel: str, manifest: ReleaseManifest | None) -> dict | None:
    if manifest is None or rel not in manifest.files:
        return None
    return json.loads((release / rel).read_text())


def diff_releases(base: Path | None, head: Path, stages: list[str] | None = None) -> ReleaseDiff:
    """Diff head against base (None: against nothing, as for a stage's first release)."""
    head_m = load_release(head)
    base_m = load_release(base) if base is not None else None
    files = set(head_m.files) | set(base_m.files if base_m else {})
    names = stages or list(head_m.stages) + [s for s in (base_m.stages if base_m else {}) if s not in head_m.stages]
    result = []
    for stage in names:
        region = (head_m.stages.get(stage) or (base_m.stages[stage] if base_m else None)).region
        sd = StageDiff(stage)
        prefix = f"stages/{stage}/"
        for rel in sorted(f for f in files if f.startswith(prefix + "templates/") and f.endswith(".template.json")):
            stack = rel.rsplit("/", 1)[1].removesuffix(".template.json")
            d = diff_template(stack, _read(base, rel, base_m) if base else None, _read(head, rel, head_m), region)
            if d:
                sd.stacks.append(d)
        for rel in sorted(f for f in files if f.startswith(prefix + "pipelines/")):
            name = rel.rsplit("/", 1)[1].removesuffix(".json")
            d = diff_pipeline(name, _read(base, rel, base_m) if base else None, _read(head, rel, head_m))
            if d:
                sd.pipelines.append(d)
        result.append(sd)
    old_assets = {f for f in (base_m.files if base_m else {}) if f.startswith("assets/")}
    new_assets = {f for f in head_m.files if f.startswith("assets/")}
    return ReleaseDiff(
        base_m.release_id if base_m else None,
        head_m.release_id,
        result,
        sorted(new_assets - old_assets),
        sorted(old_assets - new_assets),
    )
