"""The standard chain's pipeline step: build every stage's pipeline definitions with the SageMaker SDK.

    python bench/sdk_pipelines.py <checkout> <out dir> [<stage> <pipeline>]

What a user without the engine would write: per stage and pipeline, a fresh boto3 session and
PipelineSession (offline, under moto, as no account exists here), the module's build(ctx), and
`pipeline.definition()` written to a file. No validation, no release, no cache.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def main() -> int:
    root, out = Path(sys.argv[1]).resolve(), Path(sys.argv[2])
    only = tuple(sys.argv[3:5])  # one stage's one pipeline: what "building one pipeline cold" costs
    sys.path.insert(0, str(root))
    import boto3
    from moto import mock_aws
    from sagemaker.core.workflow.pipeline_context import PipelineSession

    from gitops.config import load_stages
    from gitops.release.assets import AssetRegistry
    from gitops.release.pipelines import _OFFLINE_ENV, PipelineContext, _load_module, discover_pipelines

    # No account exists here: moto answers, with fake credentials and the SDK's role check off.
    os.environ.update(_OFFLINE_ENV)
    for stage in load_stages(root).values():
        os.environ["AWS_DEFAULT_REGION"] = stage.region
        for name in discover_pipelines(root):
            if only and (stage.stage, name) != only:
                continue
            with mock_aws():
                session = PipelineSession(
                    boto_session=boto3.Session(region_name=stage.region), default_bucket=stage.artifact_bucket_name
                )
                ctx = PipelineContext(name, stage, root / "pipeline_defs" / name, session, AssetRegistry())
                pipeline = _load_module(root, name).build(ctx)
                target = out / stage.stage / f"{name}.json"
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(pipeline.definition())
    return 0


if __name__ == "__main__":
    sys.exit(main())
