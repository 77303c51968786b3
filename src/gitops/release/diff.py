"""What a release changes against another (a stage's current one): templates, pipelines, assets.

Resource-level template diff (added, removed, modified properties down to the changed value; a
change to a property the resource type cannot update in place is flagged as a replacement, from
the CloudFormation resource schemas cfn-lint ships), pipeline diff by step and parameter, and the
changed assets. Readable as text (terminal, approval screen), markdown (PR comment) and JSON.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

from gitops.errors import ReleaseError
from gitops.model.change import ModelChange, release_model_change
from gitops.release.json_diff import ABSENT as _ABSENT
from gitops.release.json_diff import path_text as _path
from gitops.release.json_diff import shown as _show
from gitops.release.json_diff import value_changes as _value_changes
from gitops.release.manifest import ReleaseManifest, load_release

_SHOWN_CHANGES = 8  # value changes shown per resource or step; the JSON form has all of them
# Regions only select which copy of the (region-independent) createOnly lists cfn-lint reads.
_DEFAULT_REGION = "us-east-1"


@dataclass
class ValueChange:
    """One changed value: its path inside the resource's Properties (or the step's Arguments)."""

    path: str  # e.g. ProductionVariants[0].InstanceType
    before: str | None  # compact JSON (strings bare), None when the value was absent
    after: str | None
    replacement: bool = False  # this property cannot be updated in place


@dataclass
class ResourceChange:
    logical_id: str
    type: str
    action: str  # add | remove | modify
    properties: list[str] = field(default_factory=list)  # top-level keys that changed
    replacement: bool = False
    changes: list[ValueChange] = field(default_factory=list)


@dataclass
class StackDiff:
    stack: str
    change: str  # add | remove | modify
    resources: list[ResourceChange] = field(default_factory=list)
    other: list[str] = field(default_factory=list)  # Parameters, Outputs, Conditions ...

    def count(self, action: str) -> int:
        return sum(1 for r in self.resources if r.action == action)

    @property
    def replacements(self) -> int:
        return sum(1 for r in self.resources if r.replacement)


@dataclass
class StepChange:
    name: str
    type: str
    action: str  # add | remove | modify
    fields: list[str] = field(default_factory=list)  # top-level keys (of Arguments and the step)
    changes: list[ValueChange] = field(default_factory=list)


@dataclass
class ParameterChange:
    name: str
    action: str  # add | remove | modify
    changes: list[ValueChange] = field(default_factory=list)  # DefaultValue, Type, EnumValues


@dataclass
class PipelineDiff:
    pipeline: str
    change: str
    steps: list[StepChange] = field(default_factory=list)
    parameters: list[ParameterChange] = field(default_factory=list)
    other: list[str] = field(default_factory=list)  # other top-level keys of the definition


@dataclass
class StageDiff:
    stage: str
    stacks: list[StackDiff] = field(default_factory=list)
    pipelines: list[PipelineDiff] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.stacks and not self.pipelines


@dataclass
class AssetChange:
    """An asset by file name: a changed one kept its name under a new content digest."""

    name: str
    action: str  # add | remove | modify
    before: str | None = None  # assets/<sha256>/<name>
    after: str | None = None


@dataclass
class ReleaseDiff:
    base_release: str | None
    head_release: str
    stages: list[StageDiff]
    assets_added: list[str]
    assets_removed: list[str]
    against: str | None = None  # what the base is, for readers: "stage dev", a directory ...
    model: ModelChange | None = None  # the served model: package old -> new, metrics

    @property
    def empty(self) -> bool:
        model_same = self.model is None or not self.model.changed
        return all(s.empty for s in self.stages) and not self.assets_added and not self.assets_removed and model_same

    @property
    def assets(self) -> list[AssetChange]:
        """Added and removed asset files, paired by file name where one replaced the other."""
        added: dict[str, list[str]] = {}
        removed: dict[str, list[str]] = {}
        for path in self.assets_added:
            added.setdefault(_asset_name(path), []).append(path)
        for path in self.assets_removed:
            removed.setdefault(_asset_name(path), []).append(path)
        found = []
        for name in sorted(set(added) | set(removed)):
            new, old = added.get(name, []), removed.get(name, [])
            if len(new) == 1 and len(old) == 1:
                found.append(AssetChange(name, "modify", old[0], new[0]))
                continue
            found += [AssetChange(name, "add", None, p) for p in new]
            found += [AssetChange(name, "remove", p, None) for p in old]
        return found

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ReleaseDiff:
        """The inverse of to_dict (for a diff read back from its JSON form)."""

        def values(items: list[dict]) -> list[ValueChange]:
            return [ValueChange(**v) for v in items]

        stages = [
            StageDiff(
                s["stage"],
                [
                    StackDiff(
                        k["stack"],
                        k["change"],
                        [ResourceChange(**{**r, "changes": values(r["changes"])}) for r in k["resources"]],
                        list(k["other"]),
                    )
                    for k in s["stacks"]
                ],
                [
                    PipelineDiff(
                        p["pipeline"],
                        p["change"],
                        [StepChange(**{**st, "changes": values(st["changes"])}) for st in p["steps"]],
                        [ParameterChange(**{**pa, "changes": values(pa["changes"])}) for pa in p["parameters"]],
                        list(p["other"]),
                    )
                    for p in s["pipelines"]
                ],
            )
            for s in data["stages"]
        ]
        return cls(
            data["base_release"],
            data["head_release"],
            stages,
            list(data["assets_added"]),
            list(data["assets_removed"]),
            data.get("against"),
            ModelChange(**{**data["model"], "package": tuple(data["model"]["package"])}) if data.get("model") else None,
        )

    # -- rendering ---------------------------------------------------------------------------
    def _base_text(self, code: str = "") -> str:
        what = f" ({self.against})" if self.against else ""
        if not self.base_release:
            return f"nothing{what}"
        return f"{code}{self.base_release[:12]}{code}{what}"

    def to_text(self) -> str:
        lines = [f"release {self.head_release[:12]} against {self._base_text()}"]
        if self.empty:
            return lines[0] + ": no changes"
        if self.model is not None:
            lines += [self.model.headline(), *(f"  ~ {line}" for line in self.model.lines)]
        for stage in self.stages:
            if stage.empty:
                continue
            lines.append(f"stage {stage.stage}:")
            for stack in stage.stacks:
                lines.append(f"  stack {stack.stack} ({_WORD[stack.change]}) {_counts(stack)}")
                for res in stack.resources:
                    flag = "  !! DELETION" if res.action == "remove" else "  !! REPLACEMENT" if res.replacement else ""
                    lines.append(f"    {_SIGN[res.action]} {res.logical_id} ({res.type}){flag}")
                    lines += [f"        {line}" for line in _change_lines(res.changes, text=True)]
                lines += [f"    ~ {item}" for item in stack.other]
            for pipe in stage.pipelines:
                lines.append(f"  pipeline {pipe.pipeline} ({_WORD[pipe.change]})")
                for step in pipe.steps:
                    lines.append(f"    {_SIGN[step.action]} step {step.name} ({step.type})")
                    lines += [f"        {line}" for line in _change_lines(step.changes, text=True)]
                for param in pipe.parameters:
                    detail = "; ".join(_change_lines(param.changes, text=True))
                    head = f"    {_SIGN[param.action]} parameter {param.name}"
                    lines.append(head + (f": {detail}" if detail else ""))
                lines += [f"    ~ {item}" for item in pipe.other]
        assets = self.assets
        if assets:
            lines.append(f"assets: {_asset_counts(assets)}")
            lines += [f"  {_SIGN[a.action]} {a.name}{_asset_digests(a)}" for a in assets]
        return "\n".join(lines)

    def to_markdown(self) -> str:
        out = [f"### Release `{self.head_release[:12]}` against {self._base_text('`')}", ""]
        if self.empty:
            return "\n".join(out + ["No changes.", ""])
        if self.model is not None:
            out += [f"**{self.model.headline()}**", "", *(f"- {line}" for line in self.model.lines), ""]
        for stage in self.stages:
            if stage.empty:
                continue
            out += [f"#### Stage `{stage.stage}`", "", _stage_summary(stage), ""]
            if stage.stacks:
                out += ["| stack | change | added | modified | removed | replaced |", "|---|---|---|---|---|---|"]
                for s in stage.stacks:
                    warn = " ⚠️" if s.replacements or s.count("remove") else ""
                    out.append(
                        f"| {s.stack} | {_WORD[s.change]} | {s.count('add')} | {s.count('modify')}"
                        f" | {s.count('remove')} | {s.replacements}{warn} |"
                    )
                out.append("")
                flagged = [(s, r) for s in stage.stacks for r in s.resources if r.replacement or r.action == "remove"]
                if flagged:
                    out += ["**Replacements and deletions:**", ""]
                    out += [_flagged_line(s, r) for s, r in flagged]
                    out.append("")
                rows = [
                    f"| {_SIGN[r.action]} | `{s.stack}/{r.logical_id}` | {r.type} | {_cell(r)} |"
                    for s in stage.stacks
                    for r in s.resources
                ]
                if rows:
                    out += [f"<details><summary>Resources ({len(rows)})</summary>", ""]
                    out += ["| | resource | type | change |", "|---|---|---|---|", *rows, "", "</details>", ""]
                out += [f"- stack `{s.stack}`: {item}" for s in stage.stacks for item in s.other]
                if any(s.other for s in stage.stacks):
                    out.append("")
            for p in stage.pipelines:
                out += [f"**Pipeline `{p.pipeline}`** ({_WORD[p.change]})", ""]
                if p.steps or p.parameters:
                    out += ["| | step / parameter | type | change |", "|---|---|---|---|"]
                    out += [f"| {_SIGN[st.action]} | step `{st.name}` | {st.type} | {_cell(st)} |" for st in p.steps]
                    out += [f"| {_SIGN[pa.action]} | parameter `{pa.name}` | | {_cell(pa)} |" for pa in p.parameters]
                    out.append("")
                if p.other:
                    out += [f"Also changed: {', '.join(f'`{o}`' for o in p.other)}.", ""]
        assets = self.assets
        if assets:
            out += [f"#### Assets ({_asset_counts(assets)})", ""]
            out += [f"- {_SIGN[a.action]} `{a.name}`{_asset_digests(a, code=True)}" for a in assets]
            out.append("")
        return "\n".join(out).rstrip() + "\n"


_SIGN = {"add": "+", "remove": "-", "modify": "~"}
_WORD = {"add": "added", "remove": "removed", "modify": "modified"}


def _counts(stack: StackDiff) -> str:
    text = f"+{stack.count('add')} ~{stack.count('modify')} -{stack.count('remove')}"
    return text + (f", {stack.replacements} replaced" if stack.replacements else "")


def _flagged_line(stack: StackDiff, res: ResourceChange) -> str:
    line = f"- {'deletion' if res.action == 'remove' else 'replacement'}: `{stack.stack}/{res.logical_id}` ({res.type})"
    causes = [f"`{c.path}`" for c in res.changes if c.replacement]
    return line + (f", because of {', '.join(causes)}" if causes else "")


def _stage_summary(stage: StageDiff) -> str:
    parts = []
    if stage.stacks:
        repl = sum(s.replacements for s in stage.stacks)
        dels = sum(s.count("remove") for s in stage.stacks)
        parts.append(
            f"{len(stage.stacks)} stack{'s' if len(stage.stacks) != 1 else ''} changed"
            f" ({repl} replacement{'s' if repl != 1 else ''}, {dels} deletion{'s' if dels != 1 else ''})"
        )
    if stage.pipelines:
        steps = sum(len(p.steps) for p in stage.pipelines)
        parts.append(
            f"{len(stage.pipelines)} pipeline{'s' if len(stage.pipelines) != 1 else ''} changed"
            f" ({steps} step{'s' if steps != 1 else ''})"
        )
    return "; ".join(parts) + "."


def _asset_name(path: str) -> str:
    return path.split("/", 2)[-1]


def _asset_digests(a: AssetChange, code: bool = False) -> str:
    q = "`" if code else ""

    def short(path: str | None) -> str:
        return (path or "").split("/")[1][:12]

    if a.action == "modify":
        return f" {q}{short(a.before)}{q} → {q}{short(a.after)}{q}"
    return f" {q}{short(a.after or a.before)}{q}"


def _asset_counts(assets: list[AssetChange]) -> str:
    counts = {k: sum(1 for a in assets if a.action == k) for k in ("modify", "add", "remove")}
    return ", ".join(f"{n} {_WORD[k]}" for k, n in counts.items() if n)


def _change_lines(changes: list[ValueChange], *, text: bool) -> list[str]:
    arrow = "->" if text else "→"
    lines = []
    for c in changes[:_SHOWN_CHANGES]:
        flag = (" (replaces)" if text else " **replaces**") if c.replacement else ""
        if text:
            before = "(none)" if c.before is None else c.before
            after = "(none)" if c.after is None else c.after
            lines.append(f"{c.path}: {before} {arrow} {after}{flag}")
        else:
            before = "*none*" if c.before is None else _code(c.before)
            after = "*none*" if c.after is None else _code(c.after)
            lines.append(f"{_code(c.path)}: {before} {arrow} {after}{flag}")
    if len(changes) > _SHOWN_CHANGES:
        lines.append(f"… and {len(changes) - _SHOWN_CHANGES} more")
    return lines


def _code(value: str) -> str:
    fence = "``" if "`" in value else "`"
    pad = " " if fence == "``" else ""
    return f"{fence}{pad}{value}{pad}{fence}"


def _cell(item: ResourceChange | StepChange | ParameterChange) -> str:
    if item.action != "modify":
        head = _WORD[item.action] + (
            " — **deletion**" if isinstance(item, ResourceChange) and item.action == "remove" else ""
        )
        return head.replace("|", "\\|")
    lines = _change_lines(item.changes, text=False)
    if isinstance(item, ResourceChange) and item.replacement:
        lines.insert(0, "**⚠️ replacement**")
    return "<br>".join(lines).replace("|", "\\|").replace("\n", " ") or "modified"


# -- computing --------------------------------------------------------------------------------------


def _forces_replacement(segments: tuple, create_only: frozenset[tuple[str, ...]]) -> bool:
    """A change at `segments` touches a createOnly path when one path is a prefix of the other."""
    for pattern in create_only:
        n = min(len(pattern), len(segments))
        if all(p == "*" or p == str(s) for p, s in zip(pattern[:n], segments[:n], strict=True)):
            return True
    return False


@lru_cache(maxsize=512)
def _create_only(resource_type: str, region: str) -> frozenset[tuple[str, ...]]:
    """Property paths whose change replaces the resource (CloudFormation resource schema)."""
    try:
        from cfnlint.schema import PROVIDER_SCHEMA_MANAGER
    except ImportError:  # the deploy-only install has no cfn-lint: no replacement flags, still a diff
        return frozenset()
    try:
        schema = PROVIDER_SCHEMA_MANAGER.get_resource_schema(region, resource_type).schema
    except Exception:  # noqa: BLE001 (unknown or custom types: no replacement knowledge)
        return frozenset()
    paths = (p.split("/")[2:] for p in schema.get("createOnlyProperties", []) if p.startswith("/properties/"))
    return frozenset(tuple(p) for p in paths if p)


def _changed_keys(old: dict, new: dict) -> list[str]:
    return sorted(k for k in set(old) | set(new) if old.get(k, _ABSENT) != new.get(k, _ABSENT))


def _changes(
    before: dict, after: dict, body: str, skip: tuple[str, ...], create_only: frozenset = frozenset()
) -> list[ValueChange]:
    """Changes inside `body` (Properties / Arguments) by path, then other top-level keys by name."""
    found = [
        ValueChange(_path(segs), _show(b), _show(a), _forces_replacement(segs, create_only))
        for segs, b, a in _value_changes(before.get(body, {}), after.get(body, {}))
    ]
    for key in _changed_keys(before, after):
        if key != body and key not in skip:
            found += [
                ValueChange(_path(segs), _show(b), _show(a))
                for segs, b, a in _value_changes(before.get(key, _ABSENT), after.get(key, _ABSENT), (key,))
            ]
    return found


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
            type_change = ValueChange("Type", before.get("Type"), after.get("Type"), replacement=True)
            diff.resources.append(ResourceChange(lid, after["Type"], "modify", ["Type"], True, [type_change]))
            continue
        props = _changed_keys(before.get("Properties", {}), after.get("Properties", {}))
        other = [k for k in _changed_keys(before, after) if k not in ("Properties", "Metadata")]
        if not props and not other:
            continue  # only CDK metadata moved
        changes = _changes(before, after, "Properties", ("Metadata",), _create_only(after["Type"], region))
        replaced = any(c.replacement for c in changes)
        diff.resources.append(ResourceChange(lid, after["Type"], "modify", props + other, replaced, changes))
    if change == "modify":  # an added or removed stack's parameters and outputs come and go with it
        for section in ("Parameters", "Outputs", "Conditions", "Mappings", "Rules"):
            before, after = (old or {}).get(section, {}), (new or {}).get(section, {})
            for key in _changed_keys(before, after):
                how = "added" if key not in before else "removed" if key not in after else "modified"
                diff.other.append(f"{section}.{key} ({how})")
    return diff if diff.resources or diff.other or change != "modify" else None


def _steps(definition: dict) -> dict[str, dict]:
    """Every step by name, including those inside Condition steps (whose branches hold names only)."""
    found: dict[str, dict] = {}

    def walk(steps: list[dict]) -> None:
        for step in steps:
            if step.get("Type") == "Condition":
                args = dict(step.get("Arguments", {}))
                walk(args.get("IfSteps", []))
                walk(args.get("ElseSteps", []))
                for branch in ("IfSteps", "ElseSteps"):
                    if branch in args:
                        args[branch] = [s.get("Name") for s in args[branch]]
                step = {**step, "Arguments": args}
            found[step["Name"]] = step

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
            s = after if after is not None else before
            assert s is not None  # not both: equal Nones were skipped above
            diff.steps.append(StepChange(step, s.get("Type", "?"), "add" if before is None else "remove"))
            continue
        fields = _changed_keys(before.get("Arguments", {}), after.get("Arguments", {}))
        fields += [k for k in _changed_keys(before, after) if k not in ("Arguments",)]
        changes = _changes(before, after, "Arguments", ())
        diff.steps.append(StepChange(step, after.get("Type", "?"), "modify", fields, changes))
    old_params = {p["Name"]: p for p in (old or {}).get("Parameters", [])}
    new_params = {p["Name"]: p for p in (new or {}).get("Parameters", [])}
    for key in sorted(set(old_params) | set(new_params)):
        before, after = old_params.get(key), new_params.get(key)
        if before == after:
            continue
        action = "add" if before is None else "remove" if after is None else "modify"
        found = _value_changes(
            {k: v for k, v in (before or {}).items() if k != "Name"},
            {k: v for k, v in (after or {}).items() if k != "Name"},
        )
        diff.parameters.append(
            ParameterChange(key, action, [ValueChange(_path(segs), _show(b), _show(a)) for segs, b, a in found])
        )
    if change == "modify":
        diff.other = [k for k in _changed_keys(old or {}, new or {}) if k not in ("Steps", "Parameters")]
    return diff


def _read(release: Path | None, rel: str, manifest: ReleaseManifest | None) -> dict | None:
    if release is None or manifest is None or rel not in manifest.files:
        return None
    return json.loads((release / rel).read_text())


_STAGE_FILE = re.compile(r"^stages/([^/]+)/")


def _stage_names(manifest: ReleaseManifest | None) -> list[str]:
    """Stages in manifest order, then any stage that has files but no summary."""
    if manifest is None:
        return []
    names = list(manifest.stages)
    for rel in sorted(manifest.files):
        m = _STAGE_FILE.match(rel)
        if m and m.group(1) not in names:
            names.append(m.group(1))
    return names


def diff_releases(base: Path | None, head: Path, stages: list[str] | None = None) -> ReleaseDiff:
    """Diff head against base (None: against nothing, as for a stage's first release)."""
    head_m = load_release(head)
    base_m = load_release(base) if base is not None else None
    known = _stage_names(head_m) + [s for s in _stage_names(base_m) if s not in _stage_names(head_m)]
    unknown = [s for s in stages or [] if s not in known]
    if unknown:
        raise ReleaseError(f"{head}: no stage '{unknown[0]}' in either release (have {', '.join(known) or 'none'})")
    files = set(head_m.files) | set(base_m.files if base_m else {})
    result = []
    for stage in stages or known:
        summary = head_m.stages.get(stage) or (base_m.stages.get(stage) if base_m else None)
        region = summary.region if summary else _DEFAULT_REGION
        sd = StageDiff(stage)
        prefix = f"stages/{stage}/"
        for rel in sorted(f for f in files if f.startswith(prefix + "templates/") and f.endswith(".template.json")):
            stack = rel.rsplit("/", 1)[1].removesuffix(".template.json")
            d = diff_template(stack, _read(base, rel, base_m), _read(head, rel, head_m), region)
            if d:
                sd.stacks.append(d)
        for rel in sorted(f for f in files if f.startswith(prefix + "pipelines/") and f.endswith(".json")):
            name = rel.rsplit("/", 1)[1].removesuffix(".json")
            pd = diff_pipeline(name, _read(base, rel, base_m), _read(head, rel, head_m))
            if pd:
                sd.pipelines.append(pd)
        result.append(sd)
    old_assets = {f for f in (base_m.files if base_m else {}) if f.startswith("assets/")}
    new_assets = {f for f in head_m.files if f.startswith("assets/")}
    return ReleaseDiff(
        base_m.release_id if base_m else None,
        head_m.release_id,
        result,
        sorted(new_assets - old_assets),
        sorted(old_assets - new_assets),
        model=release_model_change(base, head),
    )
