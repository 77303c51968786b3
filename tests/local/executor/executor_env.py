"""Helpers of the executor tests: the embedded stage, the sample's expected records, the feature group's properties.

The definitions are the offline builds of pipeline_defs/ (the JSON render writes into the
release), their step code uploaded to the embedded S3 at the asset URIs they name, as deploy
uploads it. The feature group is created through the SageMaker API with the properties infra's
template gives it (moto's CloudFormation cannot create one).
"""

from __future__ import annotations

import copy
import csv
import sys
from dataclasses import dataclass
from pathlib import Path

from gitops.config import StageConfig
from gitops.local.executor.embedded import embedded_services
from gitops.local.executor.execution import ExecutionServices
from gitops.target import Target

ROOT = Path(__file__).resolve().parents[3]
SAMPLE = ROOT / "pipeline_defs" / "feature_ingestion" / "sample" / "customers.csv"


def feature_group_properties(stage: StageConfig) -> dict:
    """What infra/stacks/mlops.py declares for the stage's AWS::SageMaker::FeatureGroup."""
    sys.path.insert(0, str(ROOT / "pipeline_defs"))
    import features

    return {
        "FeatureGroupName": stage.feature_group_name,
        "RecordIdentifierFeatureName": features.RECORD_IDENTIFIER,
        "EventTimeFeatureName": features.EVENT_TIME,
        "FeatureDefinitions": [{"FeatureName": f.name, "FeatureType": f.feature_type} for f in features.FEATURES],
        "OfflineStoreConfig": {"S3StorageConfig": {"S3Uri": f"s3://{stage.artifact_bucket_name}/feature-store"}},
        "RoleArn": stage.sagemaker_execution_role_arn,
    }


def latest_per_customer(path: Path = SAMPLE) -> dict[str, dict[str, str]]:
    """The sample's newest row per customer (by event time): what the online store must hold."""
    latest: dict[str, dict[str, str]] = {}
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            held = latest.get(row["customer_id"])
            if held is None or row["event_time"] >= held["event_time"]:
                latest[row["customer_id"]] = row
    return latest


@dataclass
class Embedded:
    target: Target
    stage: StageConfig
    definitions: dict[str, dict]

    def services(self):
        return embedded_services(self.target, self.stage)

    def put(self, services: ExecutionServices, key: str, data: bytes) -> str:
        services.s3.put_object(Bucket=self.stage.artifact_bucket_name, Key=key, Body=data)
        return f"s3://{self.stage.artifact_bucket_name}/{key}"

    def definition(self, name: str) -> dict:
        return copy.deepcopy(self.definitions[name])


def processing_step(
    name: str,
    code_uri: str,
    *,
    inputs: list[dict] | None = None,
    outputs: list[dict] | None = None,
    arguments: list | None = None,
    environment: dict | None = None,
) -> dict:
    """A hand-made Processing step in the shape the SDK renders: the code as the `code` input, run by python3."""
    script = code_uri.rsplit("/", 1)[-1]
    return {
        "Name": name,
        "Type": "Processing",
        "Arguments": {
            "AppSpecification": {
                "ContainerEntrypoint": ["python3", f"/opt/ml/processing/input/code/{script}"],
                "ContainerArguments": arguments or [],
                "ImageUri": "sklearn",
            },
            "Environment": environment or {},
            "NetworkConfig": {"EnableNetworkIsolation": True},
            "ProcessingInputs": [
                *(inputs or []),
                {
                    "InputName": "code",
                    "S3Input": {"LocalPath": "/opt/ml/processing/input/code", "S3Uri": code_uri, "S3InputMode": "File"},
                },
            ],
            "ProcessingOutputConfig": {"Outputs": outputs or []},
            "ProcessingResources": {"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large"}},
            "StoppingCondition": {"MaxRuntimeInSeconds": 120},
        },
    }


def s3_output(name: str, local_path: str, uri) -> dict:
    return {"OutputName": name, "S3Output": {"LocalPath": local_path, "S3Uri": uri, "S3UploadMode": "EndOfJob"}}
