"""The embedded target for executor tests: a moto server per module, a stage's bucket, assets and registry.

The definitions are the offline builds of pipeline_defs/ (the JSON render writes into the
release), their step code uploaded to the embedded S3 at the asset URIs they name, as deploy
uploads it. The feature group is created through the SageMaker API with the properties infra's
template gives it (moto's CloudFormation cannot create one).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from executor_env import SAMPLE, Embedded, feature_group_properties

from gitops.local.embedded import start_server, stop_server
from gitops.local.executor.embedded import embedded_services, ensure_feature_group
from gitops.target import Target


@pytest.fixture(scope="module")
def embedded(tmp_path_factory, stages, built_pipeline) -> Iterator[Embedded]:
    local_dir = tmp_path_factory.mktemp("embedded")
    server = start_server(local_dir)
    stage = stages["dev"]
    target = Target("local", local_dir, server.endpoint_url)
    built = {name: built_pipeline(name, "dev") for name in ("feature_ingestion", "training")}
    try:
        with embedded_services(target, stage) as services:
            services.s3.create_bucket(
                Bucket=stage.artifact_bucket_name, CreateBucketConfiguration={"LocationConstraint": stage.region}
            )
            for pipeline in built.values():
                for asset in pipeline.registry.assets.values():
                    services.s3.put_object(Bucket=stage.artifact_bucket_name, Key=asset.release_path, Body=asset.data)
            services.s3.put_object(
                Bucket=stage.artifact_bucket_name, Key="incoming/customers.csv", Body=SAMPLE.read_bytes()
            )
            services.sagemaker.create_model_package_group(ModelPackageGroupName=stage.model_package_group_name)
            ensure_feature_group(services.sagemaker, feature_group_properties(stage))
        yield Embedded(target, stage, {name: b.definition for name, b in built.items()})
    finally:
        stop_server(local_dir)
