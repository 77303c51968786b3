"""Training pipeline: Preprocess -> Train -> Evaluate -> CheckAuc -> RegisterModel | AucBelowThreshold.

Step code lives in steps/ (plain Python, runnable locally on the sample CSV) and reaches the
jobs only as release assets (ctx.asset / ctx.source_archive), so building this definition
uploads nothing and is a pure function of the code and the stage config.

SDK notes (sagemaker 3.x):
- Training uses ModelTrainer *without* SourceCode: with SourceCode the SDK always uploads its
  own sm_drivers directory under a timestamped job name (an upload while building and a
  nondeterministic URI). Instead the scikit-learn image's training toolkit runs train.py in
  script mode: the code archive is an input channel and sagemaker_program /
  sagemaker_submit_directory point at it, which also works with network isolation.
- Registration uses ModelBuilder(...).register() under the PipelineSession (a RegisterModel
  step). With no SourceCode and no framework set, ModelBuilder uploads nothing; the inference
  code travels inside the model artifact (train.py copies it to code/).
"""

from __future__ import annotations

import json

from gitops.release.pipelines import PipelineContext
from pipeline_defs.common import (
    SCHEMA_CHANNEL,
    TRAINING_SCHEMA_DIR,
    features_asset,
    features_input,
    offline_store_input,
    processing_step_with_datasets,
    s3_input,
    s3_output,
    schema_on_path,
    script_processor,
    sklearn_image,
)

SPLITS = ("train", "validation", "test")
CODE_CHANNEL_DIR = "/opt/ml/input/data/code"
AUC_JSON_PATH = "binary_classification_metrics.auc.value"


def build(ctx: PipelineContext):
    from sagemaker.core.model_metrics import MetricsSource, ModelMetrics
    from sagemaker.core.shapes import MetricDefinition, StoppingCondition
    from sagemaker.core.training.configs import Compute, InputData, Networking, OutputDataConfig
    from sagemaker.core.workflow.conditions import ConditionGreaterThanOrEqualTo
    from sagemaker.core.workflow.execution_variables import ExecutionVariables
    from sagemaker.core.workflow.functions import Join, JsonGet
    from sagemaker.core.workflow.parameters import ParameterFloat, ParameterString
    from sagemaker.core.workflow.properties import PropertyFile
    from sagemaker.mlops.workflow import (
        ConditionStep,
        FailStep,
        ModelStep,
        Pipeline,
        ProcessingStep,
        TrainingStep,
    )
    from sagemaker.serve.model_builder import ModelBuilder
    from sagemaker.train.model_trainer import ModelTrainer

    stage = ctx.stage
    processing_instance_type = ParameterString(
        "ProcessingInstanceType", default_value=stage.training.processing_instance_type
    )
    training_instance_type = ParameterString(
        "TrainingInstanceType", default_value=stage.training.training_instance_type
    )
    approval_status = ParameterString(
        "ModelApprovalStatus",
        default_value=stage.training.model_approval_status,
        enum_values=["PendingManualApproval", "Approved"],
    )
    auc_threshold = ParameterFloat("AucThreshold", default_value=stage.training.metric_threshold)

    # 1. Preprocess: the offline store through Athena (features.offline_store_query(): the latest
    #    record per customer) -> stratified train / validation / test CSVs.
    preprocess_inputs = [offline_store_input(ctx, "features", "/opt/ml/processing/input/data"), features_input(ctx)]
    preprocess = processing_step_with_datasets(
        preprocess_inputs,
        name="Preprocess",
        description="Latest record per customer from the offline store (Athena); deterministic stratified split",
        step_args=script_processor(ctx, processing_instance_type).run(
            code=ctx.asset("steps/preprocess.py"),
            inputs=preprocess_inputs,
            outputs=[s3_output(name, f"/opt/ml/processing/{name}") for name in SPLITS],
            arguments=[
                "--input-dir",
                "/opt/ml/processing/input/data",
                "--input-format",
                "json",
                "--output-dir",
                "/opt/ml/processing",
            ],
        ),
    )
    split_uri = {name: preprocess.properties.ProcessingOutputConfig.Outputs[name].S3Output.S3Uri for name in SPLITS}

    # 2. Train: script mode in the scikit-learn image; code and schema as input channels; no network.
    trainer = ModelTrainer(
        sagemaker_session=ctx.session,
        role=ctx.role_arn,
        base_job_name=f"{ctx.pipeline_name}-train",
        training_image=sklearn_image(ctx.region),
        compute=Compute(
            instance_type=training_instance_type,
            instance_count=1,
            volume_size_in_gb=30,
            volume_kms_key_id=ctx.kms_key,
        ),
        networking=Networking(enable_network_isolation=True, enable_inter_container_traffic_encryption=True),
        # The training toolkit runs train.py with the container's environment: the schema channel is on its path.
        environment=schema_on_path(TRAINING_SCHEMA_DIR),
        stopping_condition=StoppingCondition(max_runtime_in_seconds=3600),
        output_data_config=OutputDataConfig(
            s3_output_path=Join(
                on="/",
                values=["s3:/", ctx.bucket, ctx.pipeline_name, ExecutionVariables.PIPELINE_EXECUTION_ID, "Train"],
            ),
            kms_key_id=ctx.kms_key,
            compression_type="GZIP",
        ),
        hyperparameters={
            # Read by the image's training toolkit, JSON-encoded as it expects.
            "sagemaker_program": json.dumps("train.py"),
            "sagemaker_submit_directory": json.dumps(f"{CODE_CHANNEL_DIR}/sourcedir.tar.gz"),
            # Passed to train.py as --C 1.0 --max_iter 1000.
            "C": 1.0,
            "max_iter": 1000,
        },
    ).with_metric_definitions([MetricDefinition(name="validation:auc", regex=r"validation:auc=([0-9.]+)")])
    train = TrainingStep(
        name="Train",
        description="Logistic regression on features.MODEL_INPUTS; label features.LABEL",
        step_args=trainer.train(
            input_data_config=[
                InputData(channel_name="train", data_source=split_uri["train"], content_type="text/csv"),
                InputData(channel_name="validation", data_source=split_uri["validation"], content_type="text/csv"),
                InputData(channel_name="code", data_source=ctx.source_archive("steps/model")),
                InputData(channel_name=SCHEMA_CHANNEL, data_source=features_asset(ctx)),
            ]
        ),
    )
    model_data = train.properties.ModelArtifacts.S3ModelArtifacts

    # 3. Evaluate: metrics on the held-out split into evaluation.json, read back as a PropertyFile.
    evaluation_report = PropertyFile(name="EvaluationReport", output_name="evaluation", path="evaluation.json")
    evaluate = ProcessingStep(
        name="Evaluate",
        description="AUC, accuracy, precision, recall and F1 on the test split",
        property_files=[evaluation_report],
        step_args=script_processor(ctx, processing_instance_type).run(
            code=ctx.asset("steps/evaluate.py"),
            inputs=[
                s3_input("model", model_data, "/opt/ml/processing/model"),
                s3_input("test", split_uri["test"], "/opt/ml/processing/test"),
                features_input(ctx),
            ],
            outputs=[s3_output("evaluation", "/opt/ml/processing/evaluation")],
            arguments=[
                "--model-dir",
                "/opt/ml/processing/model",
                "--test-dir",
                "/opt/ml/processing/test",
                "--output-dir",
                "/opt/ml/processing/evaluation",
            ],
        ),
    )
    auc = JsonGet(step_name=evaluate.name, property_file=evaluation_report, json_path=AUC_JSON_PATH)

    # 4a. Register a model version (PendingManualApproval unless overridden) with its metrics.
    evaluation_uri = Join(
        on="/",
        values=[evaluate.properties.ProcessingOutputConfig.Outputs["evaluation"].S3Output.S3Uri, "evaluation.json"],
    )
    instance_types = sorted({stage.inference.instance_type, "ml.m5.large", "ml.m5.xlarge"})
    register = ModelStep(
        name="RegisterModel",
        description="New model version in the stage's model package group",
        step_args=ModelBuilder(
            s3_model_data_url=model_data,
            image_uri=sklearn_image(ctx.region, "inference"),
            role_arn=ctx.role_arn,
            sagemaker_session=ctx.session,
            instance_type=stage.inference.instance_type,
            dependencies={"auto": False},  # the default {"auto": True} only triggers a deprecation warning
            env_vars={
                # The serving code is inside model.tar.gz (code/inference.py): no download needed.
                "SAGEMAKER_PROGRAM": "inference.py",
                "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
                "SAGEMAKER_CONTAINER_LOG_LEVEL": "20",
                "SAGEMAKER_REGION": ctx.region,
            },
        ).register(
            model_package_group_name=stage.model_package_group_name,
            approval_status=approval_status,
            content_types=["text/csv", "application/json"],
            response_types=["application/json"],
            inference_instances=instance_types,
            transform_instances=instance_types,
            model_metrics=ModelMetrics(
                model_statistics=MetricsSource(content_type="application/json", s3_uri=evaluation_uri)
            ),
            domain="MACHINE_LEARNING",
            task="CLASSIFICATION",
        ),
    )

    # 4b. Or stop the execution, saying why.
    fail = FailStep(
        name="AucBelowThreshold",
        error_message=Join(
            on="",
            values=["Model AUC ", auc, " is below the threshold ", auc_threshold, "; the model was not registered."],
        ),
    )

    check = ConditionStep(
        name="CheckAuc",
        description="Register the model only if its test AUC reaches the AucThreshold parameter",
        conditions=[ConditionGreaterThanOrEqualTo(left=auc, right=auc_threshold)],
        if_steps=[register],
        else_steps=[fail],
    )

    return Pipeline(
        name=ctx.pipeline_name,
        parameters=[processing_instance_type, training_instance_type, approval_status, auc_threshold],
        steps=[preprocess, train, evaluate, check],
        sagemaker_session=ctx.session,
    )
