"""The CDK app: one Stage per infra/config/<stage>.yaml, each holding the stacks of infra/stacks/specs.py.

`build_app` is what `gitops render` synthesizes in-process; running this file is what the standard
CLI does (`cdk synth` with the root cdk.json). Both apply the same context (cdk.json feature flags),
need no credentials and look nothing up, so the templates are a pure function of the source tree.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if __name__ == "__main__":  # run as a script by the CDK CLI: import the repo, not infra/, by name
    sys.path[:] = [str(ROOT), str(ROOT / "src")] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "infra"]

import aws_cdk as cdk  # noqa: E402

from gitops.config import StageConfig, load_stages  # noqa: E402
from gitops.errors import SynthError  # noqa: E402
from infra.roles.env_repository_guard import AttachEnvRepositoryGuard  # noqa: E402
from infra.stacks.specs import STACKS, StackSpec, check_order  # noqa: E402
from infra.stacks.stage_stack import StageInputs  # noqa: E402

CDK_JSON = "cdk.json"
# Context every synthesis carries, CLI or in-process, so both write the same templates.
FIXED_CONTEXT = {
    "aws:cdk:enable-path-metadata": True,
    "aws:cdk:enable-asset-metadata": True,
    "aws:cdk:version-reporting": False,
    "aws:cdk:disable-creation-stack-traces": True,  # they hold temp paths: the assembly would differ per run
}


def load_cdk_context(root: Path) -> dict:
    """The "context" of the repository's cdk.json: the feature flags every synthesis applies."""
    path = root / CDK_JSON
    try:
        context = json.loads(path.read_text(encoding="utf-8")).get("context", {})
    except FileNotFoundError as exc:
        raise SynthError(f"{path}: not found (the CDK app's feature flags live there)") from exc
    except json.JSONDecodeError as exc:
        raise SynthError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(context, dict):
        raise SynthError(f"{path}: 'context' must be an object of feature flags")
    return context


def stack_name(cfg: StageConfig, stack_id: str) -> str:
    return f"{cfg.prefix}-{stack_id.lower()}"


def build_stage(
    app: cdk.App, root: Path, cfg: StageConfig, stages: dict[str, StageConfig], specs: tuple[StackSpec, ...] = STACKS
) -> cdk.Stage:
    """One stage: its stacks in spec order, each depending on the stacks its spec names (no cross-stack exports)."""
    check_order(specs)
    stage = cdk.Stage(app, cfg.stage, env=cdk.Environment(account=cfg.account, region=cfg.region))
    cdk.Tags.of(stage).add("gitops:project", cfg.project)
    cdk.Tags.of(stage).add("gitops:stage", cfg.stage)
    cdk.Aspects.of(stage).add(AttachEnvRepositoryGuard(cfg))  # every role: only the writer writes the env repo
    inputs = StageInputs(
        cfg=cfg,
        root=root,
        target=stages[cfg.promote_to] if cfg.promote_to else None,
        promoted_from=tuple(source for source in stages.values() if source.promote_to == cfg.stage),
        stack_classes=tuple(spec.stack_class for spec in specs),
    )
    built: dict[str, cdk.Stack] = {}
    for spec in specs:
        built[spec.id] = spec.stack_class(
            stage,
            spec.id,
            inputs=inputs,
            stack_name=stack_name(cfg, spec.id),
            description=f"{cfg.prefix} {spec.id}: {spec.description} (sagemaker-gitops)",
            termination_protection=cfg.retain_data,
        )
        # Cost allocation: project and stage (above) and the component, on every resource that takes tags.
        cdk.Tags.of(built[spec.id]).add("gitops:component", spec.id.lower())
    for spec in specs:
        for dependency in spec.depends_on:
            built[spec.id].add_stack_dependency(built[dependency])
    return stage


def build_app(
    root: Path, stages: dict[str, StageConfig], outdir: str | None = None, specs: tuple[StackSpec, ...] = STACKS
) -> cdk.App:
    """Every stage of the repository at root, in promotion order, as one CDK app (not yet synthesized)."""
    app = cdk.App(
        outdir=outdir,
        context=load_cdk_context(root),
        post_cli_context=FIXED_CONTEXT,
        analytics_reporting=False,
        stack_traces=False,
    )
    for cfg in stages.values():
        build_stage(app, root, cfg, stages, specs)
    return app


if __name__ == "__main__":
    from gitops.scan.cdk_nag import enforce_in_cdk_cli

    cli_app = build_app(ROOT, load_stages(ROOT))
    # cdk-nag as a validation plugin, acknowledgments generated from policy.yaml: `cdk synth` fails on
    # exactly the cdk-nag findings `gitops scan` reports. Template bytes are unchanged.
    enforce_in_cdk_cli(cli_app, ROOT, lambda: load_stages(ROOT))
    cli_app.synth()
