"""Benchmark: the two SageMaker pipelines of a release, run by the local executor on a fresh embedded target.

    uv run gitops render && uv run python bench/executor_bench.py [--release release] [--stage dev]

Starts a moto server in a temporary directory, uploads the release's assets to the stage's
artifact bucket (as deploy does), creates the model package group and the feature groups the
release's templates declare, drops the sample CSV, then runs feature_ingestion and training from
release/stages/<stage>/pipelines/*.json. Prints each step's seconds and each pipeline's total
(which includes the offline-store write after ingestion).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from gitops.config import load_stages
from gitops.local.embedded import start_server, stop_server
from gitops.local.executor import run_definition
from gitops.local.executor.embedded import embedded_services, ensure_feature_groups
from gitops.local.executor.rehearsal import SAMPLE
from gitops.target import Target

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--release", type=Path, default=ROOT / "release")
    parser.add_argument("--stage", default="dev")
    args = parser.parse_args()
    stages = load_stages(ROOT)
    if args.stage not in stages:
        print(f"--stage {args.stage}: no such stage (have {', '.join(stages)})", file=sys.stderr)
        return 2
    stage = stages[args.stage]
    pipelines = args.release / "stages" / args.stage / "pipelines"
    if not pipelines.is_dir():
        print(f"{pipelines}: missing; run `uv run gitops render` first", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="gitops-executor-bench-") as tmp:
        local_dir = Path(tmp)
        t0 = time.perf_counter()
        server = start_server(local_dir)
        target = Target("local", local_dir, server.endpoint_url)
        rows: list[tuple[str, str, str, float]] = []
        try:
            with embedded_services(target, stage) as services:
                bucket = stage.artifact_bucket_name
                services.s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": stage.region})
                for path in sorted((args.release / "assets").rglob("*")):
                    if path.is_file():
                        services.s3.upload_file(str(path), bucket, path.relative_to(args.release).as_posix())
                services.sagemaker.create_model_package_group(ModelPackageGroupName=stage.model_package_group_name)
                ensure_feature_groups(args.release, stage, services.sagemaker)
                services.s3.put_object(Bucket=bucket, Key="incoming/customers.csv", Body=(ROOT / SAMPLE).read_bytes())
                print(f"embedded target ready in {time.perf_counter() - t0:.2f}s")
                for name in ("feature_ingestion", "training"):
                    definition = json.loads((pipelines / f"{name}.json").read_text())
                    record = run_definition(
                        definition, pipeline_name=stage.pipeline_name(name), stage=stage.stage, services=services
                    )
                    for step in record.steps:
                        rows.append((name, step.name, step.status, step.seconds or 0.0))
                    rows.append((name, "(pipeline total)", record.status, record.seconds or 0.0))
                    if record.status != "Succeeded":
                        print(f"{name}: {record.failure_reason}", file=sys.stderr)
                        break
        finally:
            stop_server(local_dir)
    width = max(len(r[1]) for r in rows)
    print(f"{'pipeline':<18} {'step':<{width}} {'status':<10} seconds")
    for pipeline, step, status, seconds in rows:
        print(f"{pipeline:<18} {step:<{width}} {status:<10} {seconds:7.2f}")
    return 0 if all(r[2] in ("Succeeded", "NotRun") for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
