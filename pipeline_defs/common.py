"""Build-time helpers shared by the pipeline definitions (pipeline_defs/<name>/pipeline.py).

These run only while a definition is built (they import the SageMaker SDK lazily); nothing
here is shipped to a job. Step code reaches a job only as a release asset: ctx.asset() for one
file, ctx.source_archive() for a directory, and pipeline_defs/features.py is shipped to every
step that needs it as its own input (features_input), never copied. That input's directory is
on the job's PYTHONPATH (schema_on_path), so a step script simply does `import features`, in a
job as locally with PYTHONPATH=pipeline_defs.
"""

from __future__ import annotations

from typing import Any

# One scikit-learn image for every job: the version the step code is tested with locally.
SKLEARN_VERSION = "1.9-0"
# Where features.py lands in a job: a processing input, or the training channel "schema".
PROCESSING_SCHEMA_DIR = "/opt/ml/processing/input/schema"
SCHEMA_CHANNEL = "schema"
TRAINING_SCHEMA_DIR = f"/opt/ml/input/data/{SCHEMA_CHANNEL}"
# Under the artifact bucket: the ingestion pipeline exports what it ingested here (one folder per
# execution) and the training pipeline reads the whole prefix by default.
CUSTOMER_EXPORTS = ("datasets", "customers")


def sklearn_image(region: str, scope: str = "training") -> str:
    """The SageMaker scikit-learn image for region ('training' also serves processing)."""
    from sagemaker.core import image_uris

    return image_uris.retrieve("sklearn", region, version=SKLEARN_VERSION, py_version="py3", image_scope=scope)


def s3_input(name: str, uri: Any, local_path: str):
    """A File-mode S3Prefix ProcessingInput (uri may be a pipeline variable)."""
    from sagemaker.core.shapes import ProcessingInput, ProcessingS3Input

    return ProcessingInput(
        input_name=name,
        s3_input=ProcessingS3Input(s3_uri=uri, local_path=local_path, s3_data_type="S3Prefix", s3_input_mode="File"),
    )


def offline_store_input(ctx, name: str, local_path: str) -> Any:
    """The feature group's offline store through features.offline_store_query(), as a ProcessingInput.

    SageMaker runs the query in the stage's own Athena workgroup (encrypted with the stage key,
    results in the artifact bucket, configuration enforced) and hands the job its result as JSON
    lines under local_path.
    """
    from sagemaker.core.shapes import AthenaDatasetDefinition, DatasetDefinition, ProcessingInput
    from sagemaker.core.workflow.execution_variables import ExecutionVariables
    from sagemaker.core.workflow.functions import Join

    from pipeline_defs.features import offline_store_query

    stage = ctx.stage
    return ProcessingInput(
        input_name=name,
        dataset_definition=DatasetDefinition(
            athena_dataset_definition=AthenaDatasetDefinition(
                catalog="AwsDataCatalog",
                database=stage.offline_store_database,
                query_string=offline_store_query(stage.offline_store_database, stage.offline_store_table),
                work_group=stage.athena_workgroup_name,
                output_s3_uri=Join(
                    on="", values=[stage.athena_results_uri, ExecutionVariables.PIPELINE_EXECUTION_ID, "/"]
                ),
                kms_key_id=ctx.kms_key,
                output_format="JSON",
            ),
            local_path=local_path,
            data_distribution_type="FullyReplicated",
            input_mode="File",
        ),
    )


def processing_step_with_datasets(inputs: list, **kwargs: Any) -> Any:
    """A ProcessingStep whose arguments keep each input's DatasetDefinition (the Athena input).

    sagemaker 3.27's request builder (processing._processing_input_to_request_dict) keeps only an
    input's S3Input: an Athena input would reach the definition as a bare name. This step puts the
    definitions back; tests/pipeline_defs/test_pipeline_training.py checks the rendered input.
    """
    from sagemaker.core.utils.utils import serialize
    from sagemaker.mlops.workflow import ProcessingStep

    defined = {i.input_name: serialize(i.dataset_definition) for i in inputs if i.dataset_definition}

    class _ProcessingStepWithDatasets(ProcessingStep):
        @property
        def arguments(self) -> Any:
            request = super().arguments
            for entry in request.get("ProcessingInputs", []):
                if entry.get("InputName") in defined and "DatasetDefinition" not in entry:
                    entry["DatasetDefinition"] = defined[entry["InputName"]]
            return request

    return _ProcessingStepWithDatasets(**kwargs)


def s3_output(name: str, local_path: str):
    """A ProcessingOutput whose S3 URI the SDK derives per execution, deterministically:
    s3://<artifact bucket>/<pipeline>/<execution id>/<step>/output/<name>."""
    from sagemaker.core.shapes import ProcessingOutput, ProcessingS3Output

    return ProcessingOutput(
        output_name=name,
        s3_output=ProcessingS3Output(s3_uri=local_path, local_path=local_path, s3_upload_mode="EndOfJob"),
    )


def features_asset(ctx) -> str:
    """pipeline_defs/features.py as a release asset (its deployed S3 URI)."""
    return ctx.asset("../features.py")


def features_input(ctx) -> Any:
    """pipeline_defs/features.py as a processing input at PROCESSING_SCHEMA_DIR."""
    return s3_input(SCHEMA_CHANNEL, features_asset(ctx), PROCESSING_SCHEMA_DIR)


def schema_on_path(schema_dir: str) -> dict[str, str]:
    """The job environment that puts the schema's directory on the import path of its scripts."""
    return {"PYTHONPATH": schema_dir}


def script_processor(
    ctx,
    instance_type: Any,
    *,
    env: dict[str, str] | None = None,
    network_isolation: bool = True,
    max_runtime_in_seconds: int = 3600,
):
    """A ScriptProcessor on the scikit-learn image, KMS-encrypted volume and outputs.

    ScriptProcessor.run(code=<S3 URI>) ships the script as the job's `code` input without any
    upload; FrameworkProcessor would upload a generated runproc.sh while building.
    """
    from sagemaker.core.network import NetworkConfig
    from sagemaker.core.processing import ScriptProcessor

    return ScriptProcessor(
        role=ctx.role_arn,
        image_uri=sklearn_image(ctx.region),
        command=["python3"],
        instance_count=1,
        instance_type=instance_type,
        volume_size_in_gb=30,
        volume_kms_key=ctx.kms_key,
        output_kms_key=ctx.kms_key,
        max_runtime_in_seconds=max_runtime_in_seconds,
        sagemaker_session=ctx.session,
        env={**schema_on_path(PROCESSING_SCHEMA_DIR), **(env or {})},
        network_config=NetworkConfig(enable_network_isolation=network_isolation, encrypt_inter_container_traffic=True),
    )
