"""Training pipeline: Preprocess -> Train -> Evaluate -> (AUC >= threshold ? RegisterModel : Fail).

Step code lives in steps/ (plain Python, runnable locally on the sample CSV) and reaches the
jobs only as release assets (ctx.asset / ctx.source_archive), so building this definition
uploads nothing and is a pure function of the code and the stage config.

SDK notes (sagemaker 3.x):
- Processing uses ScriptProcessor with an S3 `code` URI; FrameworkProcessor would upload a
  generated runproc.sh.
- Training uses ModelTrainer *without* SourceCode: with SourceCode the SDK always uploads its
  own sm_drivers directory under a timestamped job name (an upload and a nondeterministic
  URI). Instead the scikit-learn image's training toolkit runs our script in script mode:
  the code archive is an input channel and sagemaker_program / sagemaker_submit_directory
  point at it, which also works with network isolation.
"""

from __future__ import annotations

import json

from gitops.pipelines import PipelineContext

SKLEARN_VERSION = "1.9-0"
CODE_CHANNEL_DIR = "/opt/ml/input/data/code"
PROCESSING_SCHEMA_DIR = "/opt/ml/processing/input/schema"
EVALUATION_JSON_PATH = "binary_classification_metrics.auc.value"


def _s3_input(name: str, uri, local_path: str):
    from sagemaker.core.shapes import ProcessingInput, ProcessingS3Input

    return ProcessingInput(
        input_name=name,
        s3_input=ProcessingS3Input(
            s3_uri=uri, local_path=local_path, s3_data_type="S3Prefix", s3_input_mode="File"
        ),
    )


def _s3_output(name: str, local_path: str):
    """An output whose S3 URI the SDK derives: s3://<bucket>/<pipeline>/<execution id>/<step>/output/<name>."""
    from sagemaker.core.shapes import ProcessingOutput, ProcessingS3Output

    return ProcessingOutput(
        output_name=name,
        s3_output=ProcessingS3Output(s3_uri=local_path, local_path=local_path, s3_upload_mode="EndOfJob"),
    )


def build(ctx: PipelineContext):
    from sagemaker.core import image_uris
    from sagemaker.core.model_metrics import MetricsSource, ModelMetrics
    from sagemaker.core.network import NetworkConfig
    from sagemaker.core.processing import ScriptProcessor
    from sagemaker.core.shapes import StoppingCondition
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
    session = ctx.session

    processing_instance_type = ParameterString(
        "ProcessingInstanceType", default_value=stage.training.processing_instance_type
    )
    training_instance_type = ParameterString(
        "TrainingInstanceType", default_value=stage.training.training_instance_type
    )
    # A prefix of CSV exports of the customer Feature Group (or Athena results of
    # features.offline_store_query()); see steps/preprocess.py.
    input_data = ParameterString("InputDataUri", default_value=ctx.s3_uri("datasets", "customers") + "/")
    approval_status = ParameterString(
        "ModelApprovalStatus",
        default_value=stage.training.model_approval_status,
        enum_values=["PendingManualApproval", "Approved"],
    )
    auc_threshold = ParameterFloat("AucThreshold", default_value=stage.training.metric_threshold)

    sklearn_image = image_uris.retrieve(
        "sklearn", ctx.region, version=SKLEARN_VERSION, py_version="py3", image_scope="training"
    )
    serving_image = image_uris.retrieve(
        "sklearn", ctx.region, version=SKLEARN_VERSION, py_version="py3", image_scope="inference"
    )
    features_uri = ctx.asset("../features.py")
    isolated = NetworkConfig(enable_network_isolation=True, encrypt_inter_container_traffic=True)

    def processor(job: str) -> ScriptProcessor:
        return ScriptProcessor(
            role=ctx.role_arn,
            image_uri=sklearn_image,
            command=["python3"],
            instance_count=1,
            instance_type=processing_instance_type,
            volume_size_in_gb=30,
            volume_kms_key=ctx.kms_key,
            output_kms_key=ctx.kms_key,
            max_runtime_in_seconds=3600,
            base_job_name=f"{ctx.pipeline_name}-{job}",
            sagemaker_session=session,
            env={"FEATURES_DIR": PROCESSING_SCHEMA_DIR},
            network_config=isolated,
        )

    # 1. Preprocess: latest record per customer -> stratified train/validation/test CSVs.
    preprocess = ProcessingStep(
        name="Preprocess",
        description="Latest record per customer from the feature export; deterministic split",
        step_args=processor("preprocess").run(
            code=ctx.asset("steps/preprocess.py"),
            inputs=[
                _s3_input("features", input_data, "/opt/ml/processing/input/data"),
                _s3_input("schema", features_uri, PROCESSING_SCHEMA_DIR),
            ],
            outputs=[_s3_output(name, f"/opt/ml/processing/{name}") for name in ("train", "validation", "test")],
            arguments=["--input-dir", "/opt/ml/processing/input/data", "--output-dir", "/opt/ml/processing"],
        ),
    )
    split_uri = {
        name: preprocess.properties.ProcessingOutputConfig.Outputs[name].S3Output.S3Uri
        for name in ("train", "validation", "test")
    }

    # 2. Train: script mode in the scikit-learn image, code as an input channel, no network.
    trainer = ModelTrainer(
        sagemaker_session=session,
        role=ctx.role_arn,
        base_job_name=f"{ctx.pipeline_name}-train",
        training_image=sklearn_image,
        compute=Compute(
            instance_type=training_instance_type,
            instance_count=1,
            volume_size_in_gb=30,
            volume_kms_key_id=ctx.kms_key,
        ),
        networking=Networking(enable_network_isolation=True, enable_inter_container_traffic_encryption=True),
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
            # Read by the container's training toolkit (JSON-encoded, as the toolkit expects).
            "sagemaker_program": json.dumps("train.py"),
            "sagemaker_submit_directory": json.dumps(f"{CODE_CHANNEL_DIR}/sourcedir.tar.gz"),
            "C": 1.0,
            "max_iter": 1000,
        },
    ).with_metric_definitions(_metric_definitions())
    train = TrainingStep(
        name="Train",
        description="Logistic regression on features.MODEL_INPUTS, label features.LABEL",
        step_args=trainer.train(
            input_data_config=[
                InputData(channel_name="train", data_source=split_uri["train"], content_type="text/csv"),
                InputData(channel_name="validation", data_source=split_uri["validation"], content_type="text/csv"),
                InputData(channel_name="code", data_source=ctx.source_archive("steps/model")),
                InputData(channel_name="schema", data_source=features_uri),
            ]
        ),
    )
    model_data = train.properties.ModelArtifacts.S3ModelArtifacts

    # 3. Evaluate: metrics on the held-out split into evaluation.json (a PropertyFile).
    evaluation_report = PropertyFile(name="EvaluationReport", output_name="evaluation", path="evaluation.json")
    evaluate = ProcessingStep(
        name="Evaluate",
        description="AUC, accuracy, precision, recall and F1 on the test split",
        property_files=[evaluation_report],
        step_args=processor("evaluate").run(
            code=ctx.asset("steps/evaluate.py"),
            inputs=[
                _s3_input("model", model_data, "/opt/ml/processing/model"),
                _s3_input("test", split_uri["test"], "/opt/ml/processing/test"),
                _s3_input("schema", features_uri, PROCESSING_SCHEMA_DIR),
            ],
            outputs=[_s3_output("evaluation", "/opt/ml/processing/evaluation")],
            arguments=[
                "--model-dir", "/opt/ml/processing/model",
                "--test-dir", "/opt/ml/processing/test",
                "--output-dir", "/opt/ml/processing/evaluation",
            ],
        ),
    )
    auc = JsonGet(step_name=evaluate.name, property_file=evaluation_report, json_path=EVALUATION_JSON_PATH)

    # 4a. Register the model version (PendingManualApproval by default) with its metrics.
    evaluation_uri = Join(
        on="/",
        values=[evaluate.properties.ProcessingOutputConfig.Outputs["evaluation"].S3Output.S3Uri, "evaluation.json"],
    )
    register = ModelStep(
        name="RegisterModel",
        step_args=ModelBuilder(
            s3_model_data_url=model_data,
            image_uri=serving_image,
            role_arn=ctx.role_arn,
            sagemaker_session=session,
            instance_type=stage.inference.instance_type,
            env_vars={
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
            inference_instances=sorted({stage.inference.instance_type, "ml.m5.large", "ml.m5.xlarge"}),
            transform_instances=sorted({stage.inference.instance_type, "ml.m5.large", "ml.m5.xlarge"}),
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
            on=" ",
            values=["Model AUC", auc, "is below the threshold", auc_threshold, "; the model was not registered."],
        ),
    )

    check = ConditionStep(
        name="CheckAuc",
        conditions=[ConditionGreaterThanOrEqualTo(left=auc, right=auc_threshold)],
        if_steps=[register],
        else_steps=[fail],
    )

    return Pipeline(
        name=ctx.pipeline_name,
        parameters=[processing_instance_type, training_instance_type, input_data, approval_status, auc_threshold],
        steps=[preprocess, train, evaluate, check],
        sagemaker_session=session,
    )


def _metric_definitions():
    from sagemaker.core.shapes import MetricDefinition

    return [MetricDefinition(name="validation:auc", regex=r"validation:auc=([0-9.]+)")]
