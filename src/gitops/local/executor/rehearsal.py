"""The rehearsal's SageMaker part: after a stage's Deploy, ingest the sample CSV, then train, evaluate and register.

The definitions are the ones deploy upserted into the embedded SageMaker; the sample goes to the
S3 URI the ingestion pipeline's InputCsvUri parameter defaults to, as an operator would drop a file.
"""

from __future__ import annotations

from pathlib import Path

from gitops.config import StageConfig
from gitops.local.executor.embedded import deployed_definition, embedded_services, ensure_feature_groups
from gitops.local.executor.execution import run_definition
from gitops.local.executor.record import PipelineExecution
from gitops.local.executor.storage import split_uri
from gitops.progress import Progress, silent
from gitops.target import Target

SAMPLE = Path("pipeline_defs") / "feature_ingestion" / "sample" / "customers.csv"
# In order: the training pipeline reads what ingestion exported.
REHEARSED = (("feature_ingestion", "InputCsvUri"), ("training", None))


def rehearse_pipelines(
    root: Path, release_dir: Path, stage: StageConfig, target: Target, *, log: Progress = silent
) -> list[PipelineExecution]:
    """Run the rehearsed pipelines one after another; stops after the first that does not succeed."""
    records: list[PipelineExecution] = []
    with embedded_services(target, stage) as services:
        ensure_feature_groups(release_dir, stage, services.sagemaker, log)
        for pipeline, sample_parameter in REHEARSED:
            name = stage.pipeline_name(pipeline)
            definition = deployed_definition(services.sagemaker, name)
            if sample_parameter:
                default = next(p["DefaultValue"] for p in definition["Parameters"] if p["Name"] == sample_parameter)
                bucket, key = split_uri(default, f"pipeline {name}: parameter {sample_parameter}")
                services.s3.put_object(Bucket=bucket, Key=key, Body=(root / SAMPLE).read_bytes())
                log(f"{SAMPLE} -> {default}")
            log(f"pipeline {name}: started (the definition deployed in the embedded SageMaker)")
            record = run_definition(definition, pipeline_name=name, stage=stage.stage, services=services, log=log)
            records.append(record)
            if record.status != "Succeeded":
                break
    return records
