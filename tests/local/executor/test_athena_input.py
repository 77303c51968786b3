"""A processing input that is an Athena query of the offline store (AthenaDatasetDefinition), run on DuckDB."""

from __future__ import annotations

import csv
import io

from executor_env import SAMPLE, Embedded, latest_per_customer, processing_step, s3_output

from gitops.local.executor import run_definition
from gitops.local.executor.featurestore import FeatureStoreRuntime

COPY_SCRIPT = b"""import pathlib, shutil, sys
source, target = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
for path in source.rglob('*'):
    if path.is_file():
        shutil.copy(path, target / path.name)
"""


def ingest_sample(embedded: Embedded) -> None:
    """The sample CSV into the feature group, straight through the runtime (as PutRecord would), then flushed."""
    with embedded.services() as services:
        runtime = FeatureStoreRuntime(services.sagemaker, services.s3, embedded.target.local_dir)
        with SAMPLE.open(newline="") as handle:
            for row in csv.DictReader(handle):
                record = [{"FeatureName": k, "ValueAsString": v} for k, v in row.items() if v != ""]
                runtime.put_record(embedded.stage.feature_group_name, record)
        runtime.flush()


def athena_input(embedded: Embedded, local_path: str) -> dict:
    import features

    # The Glue table the stage's template names (what AWS creates; moto would invent another name).
    catalog = {
        "Catalog": "AwsDataCatalog",
        "Database": embedded.stage.offline_store_database,
        "TableName": embedded.stage.offline_store_table,
    }
    return {
        "InputName": "features",
        "AppManaged": False,
        "DatasetDefinition": {
            "AthenaDatasetDefinition": {
                "Catalog": catalog["Catalog"],
                "Database": catalog["Database"],
                "QueryString": features.offline_store_query(catalog["Database"], catalog["TableName"]),
                "OutputS3Uri": {
                    "Std:Join": {
                        "On": "/",
                        "Values": [
                            f"s3://{embedded.stage.artifact_bucket_name}/athena",
                            {"Get": "Execution.PipelineExecutionId"},
                        ],
                    }
                },
                "OutputFormat": "TEXTFILE",
            },
            "LocalPath": local_path,
            "DataDistributionType": "FullyReplicated",
            "InputMode": "File",
        },
    }


def test_an_athena_dataset_definition_delivers_the_query_result_as_csv_to_the_local_path(embedded):
    ingest_sample(embedded)
    bucket = embedded.stage.artifact_bucket_name
    with embedded.services() as services:
        code = embedded.put(services, "tests/athena/copy.py", COPY_SCRIPT)
        out = f"s3://{bucket}/tests/athena/out"
        definition = {
            "Version": "2020-12-01",
            "Steps": [
                processing_step(
                    "Query",
                    code,
                    inputs=[athena_input(embedded, "/opt/ml/processing/input/athena")],
                    outputs=[s3_output("result", "/opt/ml/processing/result", out)],
                    arguments=["/opt/ml/processing/input/athena", "/opt/ml/processing/result"],
                )
            ],
        }
        record = run_definition(definition, pipeline_name="athena", stage="dev", services=services)
        assert record.status == "Succeeded", record.failure_reason
        keys = [o["Key"] for o in services.s3.list_objects_v2(Bucket=bucket, Prefix="tests/athena/out/")["Contents"]]
        assert len(keys) == 1 and keys[0].endswith(".csv")
        text = services.s3.get_object(Bucket=bucket, Key=keys[0])["Body"].read().decode()
        # The query result also stays where Athena writes it, under OutputS3Uri.
        athena = services.s3.list_objects_v2(Bucket=bucket, Prefix=f"athena/{record.execution_id}/")
        assert athena["KeyCount"] == 1
    rows = {row["customer_id"]: row for row in csv.DictReader(io.StringIO(text))}
    expected = latest_per_customer()
    assert rows.keys() == expected.keys()
    for customer, row in expected.items():
        assert rows[customer]["event_time"] == row["event_time"]
        assert float(rows[customer]["monthly_charges"]) == float(row["monthly_charges"])


def test_the_training_preprocess_step_reads_the_athena_result(embedded):
    """The training pipeline's own input: Preprocess reads the offline store through its Athena query."""
    definition = embedded.definition("training")
    preprocess = definition["Steps"][0]
    athena = preprocess["Arguments"]["ProcessingInputs"][0]["DatasetDefinition"]["AthenaDatasetDefinition"]
    assert f'"{embedded.stage.offline_store_table}"' in athena["QueryString"]
    definition["Steps"] = [preprocess]
    with embedded.services() as services:
        if not services.s3.list_objects_v2(Bucket=embedded.stage.artifact_bucket_name, Prefix="feature-store/")[
            "KeyCount"
        ]:
            ingest_sample(embedded)
        record = run_definition(definition, pipeline_name="mlops-dev-training", stage="dev", services=services)
    assert record.status == "Succeeded", (record.failure_reason, record.step("Preprocess").metadata.get("log_tail"))
    assert record.step("Preprocess").metadata["uploaded"] == {"train": 1, "validation": 1, "test": 1}
