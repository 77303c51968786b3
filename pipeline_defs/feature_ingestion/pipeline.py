"""Feature ingestion pipeline: IngestFeatures validates customer CSVs and writes them to the Feature Group.

One processing step runs steps/ingest.py: the whole input is validated against
pipeline_defs/features.py FEATURES before the first record is written, then rows go to the
stage's Feature Group in batches of PutRecord calls. On success the ingested rows are also
exported as CSV under s3://<artifact bucket>/datasets/customers/<execution id>/ (for people and
backups: training reads the offline store through Athena, pipeline_defs/common.py). The job calls
the Feature Store runtime API, so unlike the training steps it runs without network isolation.
"""

from __future__ import annotations

from gitops.release.pipelines import PipelineContext
from pipeline_defs.common import CUSTOMER_EXPORTS, features_input, s3_input, s3_output, script_processor


def build(ctx: PipelineContext):
    from sagemaker.core.shapes import ProcessingOutput, ProcessingS3Output
    from sagemaker.core.workflow.execution_variables import ExecutionVariables
    from sagemaker.core.workflow.functions import Join
    from sagemaker.core.workflow.parameters import ParameterInteger, ParameterString
    from sagemaker.mlops.workflow import Pipeline, ProcessingStep

    stage = ctx.stage
    # An S3 object or prefix: every *.csv under it is validated, then ingested.
    input_csv = ParameterString("InputCsvUri", default_value=ctx.s3_uri("incoming", "customers.csv"))
    processing_instance_type = ParameterString(
        "ProcessingInstanceType", default_value=stage.training.processing_instance_type
    )
    batch_size = ParameterInteger("BatchSize", default_value=100)

    export = ProcessingOutput(
        output_name="export",
        s3_output=ProcessingS3Output(
            s3_uri=Join(
                on="/", values=["s3:/", ctx.bucket, *CUSTOMER_EXPORTS, ExecutionVariables.PIPELINE_EXECUTION_ID]
            ),
            local_path="/opt/ml/processing/export",
            s3_upload_mode="EndOfJob",
        ),
    )
    processor = script_processor(
        ctx,
        processing_instance_type,
        network_isolation=False,
        env={"FEATURE_GROUP_NAME": stage.feature_group_name, "AWS_DEFAULT_REGION": ctx.region},
    )
    ingest = ProcessingStep(
        name="IngestFeatures",
        description=f"Validate against the feature schema, then PutRecord into {stage.feature_group_name}",
        step_args=processor.run(
            code=ctx.asset("steps/ingest.py"),
            inputs=[
                s3_input("data", input_csv, "/opt/ml/processing/input/data"),
                features_input(ctx),
            ],
            outputs=[s3_output("report", "/opt/ml/processing/report"), export],
            arguments=[
                "--input-dir",
                "/opt/ml/processing/input/data",
                "--report-dir",
                "/opt/ml/processing/report",
                "--export-dir",
                "/opt/ml/processing/export",
                "--feature-group-name",
                stage.feature_group_name,
                "--batch-size",
                batch_size.to_string(),
            ],
        ),
    )

    return Pipeline(
        name=ctx.pipeline_name,
        parameters=[input_csv, processing_instance_type, batch_size],
        steps=[ingest],
        sagemaker_session=ctx.session,
    )
