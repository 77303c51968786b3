"""The CDK app: one Stage per infra/config/<stage>.yaml, each of stacks Base, Network, MLOps, Inference.

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
from infra.stacks.base import BaseStack  # noqa: E402
from infra.stacks.inference import InferenceStack  # noqa: E402
from infra.stacks.mlops import MLOpsStack  # noqa: E402
from infra.stacks.network import NetworkStack  # noqa: E402

STACK_IDS = ("Base", "Network", "MLOps", "Inference")
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


def build_stage(app: cdk.App, root: Path, cfg: StageConfig, stages: dict[str, StageConfig]) -> cdk.Stage:
    """One stage: its four stacks, deployable one by one in this order (no cross-stack exports)."""
    stage = cdk.Stage(app, cfg.stage, env=cdk.Environment(account=cfg.account, region=cfg.region))
    cdk.Tags.of(stage).add("gitops:project", cfg.project)
    cdk.Tags.of(stage).add("gitops:stage", cfg.stage)
    target = stages[cfg.promote_to] if cfg.promote_to else None
    promoted_from = [source for source in stages.values() if source.promote_to == cfg.stage]

    def props(stack_id: str, what: str) -> dict:
        return {
            "stack_name": stack_name(cfg, stack_id),
            "description": f"{cfg.prefix} {stack_id}: {what} (sagemaker-gitops)",
            "termination_protection": cfg.retain_data,
        }

    base = BaseStack(
        stage, "Base", cfg=cfg, target=target, promoted_from=promoted_from, **props("Base", "KMS key and IAM roles")
    )
    network = NetworkStack(stage, "Network", cfg=cfg, **props("Network", "isolated VPC and endpoints"))
    mlops = MLOpsStack(
        stage, "MLOps", cfg=cfg, target=target, root=root, **props("MLOps", "artifacts, registry, env pipeline")
    )
    inference = InferenceStack(stage, "Inference", cfg=cfg, **props("Inference", "endpoint, scaling, alarms"))
    network.add_stack_dependency(base)
    mlops.add_stack_dependency(base)
    inference.add_stack_dependency(network)
    inference.add_stack_dependency(mlops)
    return stage


def build_app(root: Path, stages: dict[str, StageConfig], outdir: str | None = None) -> cdk.App:
    """Every stage of the repository at root, in promotion order, as one CDK app (not yet synthesized)."""
    app = cdk.App(
        outdir=outdir,
        context=load_cdk_context(root),
        post_cli_context=FIXED_CONTEXT,
        analytics_reporting=False,
        stack_traces=False,
    )
    for cfg in stages.values():
        build_stage(app, root, cfg, stages)
    return app


if __name__ == "__main__":
    from gitops.scan.cdk_nag import enforce_in_cdk_cli

    cli_app = build_app(ROOT, load_stages(ROOT))
    # cdk-nag as a validation plugin, acknowledgments generated from policy.yaml: `cdk synth` fails on
    # exactly the cdk-nag findings `gitops scan` reports. Template bytes are unchanged.
    enforce_in_cdk_cli(cli_app, ROOT, lambda: load_stages(ROOT))
    cli_app.synth()
