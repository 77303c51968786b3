"""A small sealed, scanned release of dev and prod for the recovery tests: each stage's artifact bucket stack."""

from __future__ import annotations

from pathlib import Path

from release_builder import build_release, stack_summary

from gitops.config import load_stages
from gitops.release.manifest import StageSummary, stage_config_path
from gitops.release.pipelines import canonical_json

ROOT = Path(__file__).resolve().parents[2]
STAGES = load_stages(ROOT)


def data_template(bucket: str) -> dict:
    return {
        "Resources": {
            "ArtifactBucket": {
                "Type": "AWS::S3::Bucket",
                "Properties": {
                    "BucketName": bucket,
                    "PublicAccessBlockConfiguration": {
                        "BlockPublicAcls": True,
                        "BlockPublicPolicy": True,
                        "IgnorePublicAcls": True,
                        "RestrictPublicBuckets": True,
                    },
                },
            }
        }
    }


def make_release(out: Path) -> Path:
    files: dict[str, bytes] = {}
    summaries = {}
    for name, cfg in STAGES.items():
        files[stage_config_path(name)] = canonical_json(cfg.model_dump(mode="json"))
        template = data_template(cfg.artifact_bucket_name)
        files[f"stages/{name}/templates/MLOps.template.json"] = canonical_json(template)
        files[f"stages/{name}/templates/MLOps.assets.json"] = canonical_json(
            {"stack_name": f"{cfg.prefix}-mlops", "files": [], "depends_on": []}
        )
        summaries[name] = StageSummary(
            account=cfg.account,
            region=cfg.region,
            promote_to=cfg.promote_to,
            pipelines={},
            stacks={"MLOps": stack_summary(f"{cfg.prefix}-mlops", template)},
        )
    build_release(out, files, summaries)
    return out
