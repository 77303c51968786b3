"""The executor on the embedded target: its services (S3, SageMaker, Feature Store, Athena) and a run by name.

A run reads the definition from the embedded SageMaker (DescribePipeline: what deploy upserted),
not from a file that could differ. moto's CloudFormation cannot create AWS::SageMaker::FeatureGroup;
ensure_feature_groups() creates the groups a stage's release templates declare through the
SageMaker API instead, with the template's properties, and says so.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gitops.config import StageConfig
from gitops.local.executor.athena import OfflineStoreAthena
from gitops.local.executor.errors import ExecutorError
from gitops.local.executor.execution import ExecutionServices, run_definition
from gitops.local.executor.featurestore import FeatureStoreRuntime, LoopbackFeatureStore
from gitops.local.executor.record import PipelineExecution
from gitops.progress import Progress, silent
from gitops.target import Target

FEATURE_GROUP_TYPE = "AWS::SageMaker::FeatureGroup"


@contextlib.contextmanager
def embedded_services(target: Target, stage: StageConfig) -> Iterator[ExecutionServices]:
    """Clients acting in the stage's account, the loopback Feature Store (flushed after each step) and Athena."""
    assert target.is_local and target.local_dir is not None and target.endpoint_url is not None
    session = target.session(stage)
    s3 = target.client(stage, "s3", session)
    sagemaker = target.client(stage, "sagemaker", session)
    creds = session.get_credentials().get_frozen_credentials()
    job_env = {
        "AWS_REGION": stage.region,
        "AWS_DEFAULT_REGION": stage.region,
        "AWS_ACCESS_KEY_ID": creds.access_key,
        "AWS_SECRET_ACCESS_KEY": creds.secret_key,
        "AWS_SESSION_TOKEN": creds.token or "",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    runtime = FeatureStoreRuntime(sagemaker, s3, target.local_dir)
    with LoopbackFeatureStore(runtime) as store:
        yield ExecutionServices(
            s3=s3,
            sagemaker=sagemaker,
            local_dir=target.local_dir,
            region=stage.region,
            account=stage.account,
            job_env=job_env,
            network_env={
                "AWS_ENDPOINT_URL": target.endpoint_url,
                LoopbackFeatureStore.ENDPOINT_ENV: store.endpoint_url,
            },
            athena=OfflineStoreAthena(
                sagemaker,
                s3,
                [stage.feature_group_name],
                {stage.feature_group_name: (stage.offline_store_database, stage.offline_store_table)},
            ).run_dataset_definition,
            after_step=runtime.flush,
        )


def feature_groups_of(release_dir: Path, stage: str) -> list[dict]:
    """The Properties of every FeatureGroup resource in the stage's templates of a release."""
    groups = []
    for path in sorted((release_dir / "stages" / stage / "templates").glob("*.template.json")):
        template = json.loads(path.read_text())
        for resource in template.get("Resources", {}).values():
            if resource.get("Type") == FEATURE_GROUP_TYPE:
                groups.append(resource.get("Properties", {}))
    return groups


def ensure_feature_group(sagemaker: Any, properties: dict) -> bool:
    """Create a feature group from its template properties unless it exists; True if created."""
    name = properties["FeatureGroupName"]
    try:
        sagemaker.describe_feature_group(FeatureGroupName=name)
        return False
    except sagemaker.exceptions.ClientError:
        pass
    offline = properties.get("OfflineStoreConfig") or {}
    s3_config = {k: v for k, v in (offline.get("S3StorageConfig") or {}).items() if isinstance(v, str)}
    if not isinstance(s3_config.get("S3Uri"), str):
        raise ExecutorError(f"feature group {name}: its template's offline store S3Uri is not a literal")
    offline_config: dict[str, Any] = {"S3StorageConfig": {"S3Uri": s3_config["S3Uri"]}}
    # The Glue table the template names (Athena queries it by that name); without one, SageMaker names it.
    catalog = offline.get("DataCatalogConfig") or {}
    if catalog and all(isinstance(catalog.get(k), str) for k in ("Catalog", "Database", "TableName")):
        offline_config["DataCatalogConfig"] = {k: catalog[k] for k in ("Catalog", "Database", "TableName")}
    elif catalog:
        raise ExecutorError(f"feature group {name}: its template's DataCatalogConfig is not literal strings")
    sagemaker.create_feature_group(
        FeatureGroupName=name,
        RecordIdentifierFeatureName=properties["RecordIdentifierFeatureName"],
        EventTimeFeatureName=properties["EventTimeFeatureName"],
        FeatureDefinitions=properties["FeatureDefinitions"],
        OnlineStoreConfig={"EnableOnlineStore": True},
        OfflineStoreConfig=offline_config,
        RoleArn=properties["RoleArn"],
    )
    return True


def ensure_feature_groups(release_dir: Path, stage: StageConfig, sagemaker: Any, log: Progress = silent) -> list[str]:
    created = []
    for properties in feature_groups_of(release_dir, stage.stage):
        if ensure_feature_group(sagemaker, properties):
            created.append(properties["FeatureGroupName"])
            log(
                f"feature group {properties['FeatureGroupName']}: created through the SageMaker API from the release's"
                " template (the embedded CloudFormation cannot create AWS::SageMaker::FeatureGroup)"
            )
    return created


def deployed_definition(sagemaker: Any, pipeline_name: str) -> dict:
    """The definition deploy upserted, read back from the embedded SageMaker."""
    try:
        described = sagemaker.describe_pipeline(PipelineName=pipeline_name)
    except sagemaker.exceptions.ClientError:
        raise ExecutorError(
            f"pipeline {pipeline_name}: not deployed on the embedded target", hint="run `gitops deploy` first"
        ) from None
    return json.loads(described["PipelineDefinition"])


def run_deployed_pipeline(
    target: Target,
    stage: StageConfig,
    pipeline: str,
    *,
    parameters: dict[str, str] | None = None,
    release_dir: Path | None = None,
    log: Progress = silent,
) -> PipelineExecution:
    """`gitops run` on the embedded target: the deployed definition, run by the local executor."""
    name = stage.pipeline_name(pipeline)
    with embedded_services(target, stage) as services:
        if release_dir is not None:
            ensure_feature_groups(release_dir, stage, services.sagemaker, log)
        definition = deployed_definition(services.sagemaker, name)
        return run_definition(
            definition, pipeline_name=name, stage=stage.stage, services=services, parameters=parameters, log=log
        )
