"""Synthesize the CDK app in-process for every stage and collect templates and file assets."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gitops.config import StageConfig
from gitops.errors import GitopsError, SynthError
from gitops.release.assets import AssetRegistry, deterministic_zip

INFRA_APP = Path("infra") / "app.py"

# The context the CDK CLI itself passes to an app (cdk synth), so templates here equal the CLI's.
_CLI_CONTEXT = {
    "aws:cdk:enable-path-metadata": True,
    "aws:cdk:enable-asset-metadata": True,
    "aws:cdk:bundling-stacks": ["**"],
    "aws:cdk:disable-stack-trace": True,
}


@dataclass
class SynthesizedStack:
    name: str  # construct id inside the stage: Base, Network, MLOps, Inference ...
    stack_name: str
    template: dict
    assets: list[dict] = field(default_factory=list)
    nag: dict = field(default_factory=dict)  # cdk-nag AwsSolutions on this stack's constructs (raw)
    depends_on: list[str] = field(default_factory=list)  # stacks of the stage it depends on (cloud assembly)


def cdk_context(root: Path) -> dict[str, Any]:
    """Context from cdk.json plus the keys the CDK CLI adds, as `cdk synth` would see it."""
    path = root / "cdk.json"
    try:
        cdk_json = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise SynthError(f"{path}: missing; the CDK app needs its cdk.json at the repository root") from exc
    except json.JSONDecodeError as exc:
        raise SynthError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from exc
    context = dict(cdk_json.get("context", {}))
    context.update(_CLI_CONTEXT)
    context["aws:cdk:version-reporting"] = bool(cdk_json.get("versionReporting", True))
    return context


def _load_app_module(root: Path) -> Any:
    path = root / INFRA_APP
    if str(root) not in sys.path:  # render_release put it first already (gitops.release.project_import)
        sys.path.insert(0, str(root))
    spec = importlib.util.spec_from_file_location("_gitops_infra_app", path)
    if spec is None or spec.loader is None or not path.exists():
        raise SynthError(f"{INFRA_APP}: not found")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise SynthError(f"{INFRA_APP}: import failed: {type(exc).__name__}: {exc}") from exc
    if not callable(getattr(module, "build_app", None)):
        raise SynthError(f"{INFRA_APP}: defines no build_app(root, stages, outdir)")
    return module


def synthesize(
    root: Path, stages: dict[str, StageConfig], registry: AssetRegistry
) -> dict[str, list[SynthesizedStack]]:
    """All stacks of all stages in one process; file assets become deterministic release assets."""
    os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
    os.environ.setdefault("JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION", "1")
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "18,20")
    os.environ["CDK_CONTEXT_JSON"] = json.dumps(cdk_context(root))
    os.environ["CDK_DISABLE_STACK_TRACE"] = "1"
    module = _load_app_module(root)
    result: dict[str, list[SynthesizedStack]] = {}
    with tempfile.TemporaryDirectory(prefix="gitops-synth-") as outdir:
        try:
            app = module.build_app(root, stages, outdir=outdir)
            assembly = app.synth()
        except Exception as exc:
            raise SynthError(f"{INFRA_APP}: synthesis failed: {type(exc).__name__}: {_first_line(exc)}") from exc
        nested = {a.directory_name.removeprefix("assembly-"): a.nested_assembly for a in assembly.nested_assemblies}
        for stage_name in stages:
            stage_asm = nested.get(stage_name)
            if stage_asm is None:
                raise SynthError(f"{INFRA_APP}: build_app created no cdk.Stage named '{stage_name}'")
            result[stage_name] = [_collect(stack, Path(stage_asm.directory), registry) for stack in stage_asm.stacks]
            _run_cdk_nag(app, stage_name, Path(stage_asm.directory), result[stage_name])
    return result


def _run_cdk_nag(app: Any, stage_name: str, asm_dir: Path, stacks: list[SynthesizedStack]) -> None:
    """cdk-nag needs the construct tree, so it runs here; its raw report travels in the release."""
    from gitops.scan.cdk_nag import nag_stage_report

    try:
        report = nag_stage_report(
            app.node.find_child(stage_name), {stack.name: stack.template for stack in stacks}, asm_dir
        )
    except GitopsError:
        raise
    except Exception as exc:
        raise SynthError(f"{INFRA_APP}: cdk-nag failed on stage '{stage_name}': {_first_line(exc)}") from exc
    for stack in stacks:
        stack.nag = report["stacks"][stack.name]


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [""])[0]


def _collect(stack: Any, asm_dir: Path, registry: AssetRegistry) -> SynthesizedStack:
    name = stack.hierarchical_id.split("/")[-1]
    template = json.loads(Path(stack.template_full_path).read_text())
    assets: list[dict] = []
    for manifest_path in sorted(asm_dir.glob(f"{stack.id}.assets.json")):
        manifest = json.loads(manifest_path.read_text())
        for asset_id, spec in sorted(manifest.get("files", {}).items()):
            source = spec["source"]
            if source.get("path") == Path(stack.template_full_path).name:
                continue  # the template itself; the release carries it under templates/
            src_path = asm_dir / source["path"]
            if source.get("packaging") == "zip" or src_path.is_dir():
                asset = registry.add(f"{asset_id}.zip", deterministic_zip(src_path))
            else:
                asset = registry.add(src_path.name, src_path.read_bytes())
            for dest in spec.get("destinations", {}).values():
                assets.append(
                    {
                        "asset_id": asset_id,
                        "release_path": asset.release_path,
                        "bucket": dest["bucketName"],
                        "key": dest["objectKey"],
                    }
                )
        if manifest.get("dockerImages"):
            raise SynthError(
                f"{INFRA_APP}: stack {stack.hierarchical_id} builds a Docker image asset;"
                " reference a pushed image instead (no Docker engine in the render path)"
            )
    # The cloud assembly records each stack's dependencies (its asset manifest is one of them too);
    # deploy orders the stacks by them, so the order is decided here, by the CDK app, not guessed.
    depends_on = sorted(
        dep.hierarchical_id.split("/")[-1] for dep in stack.dependencies if hasattr(dep, "template_full_path")
    )
    return SynthesizedStack(name, stack.stack_name, template, assets, depends_on=depends_on)
