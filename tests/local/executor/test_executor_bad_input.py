"""Bad input: a CSV that does not match the schema, a step whose code raises, a step type the executor lacks."""

from __future__ import annotations

import pytest
from executor_env import SAMPLE, Embedded, processing_step, s3_output

from gitops.local.executor import UnsupportedStep, run_definition
from gitops.local.executor.featurestore import LoopbackFeatureStore
from gitops.local.executor.record import RECORDS_DIR


def run(embedded: Embedded, name: str, definition: dict, **parameters: str):
    with embedded.services() as services:
        return run_definition(
            definition,
            pipeline_name=name,
            stage=embedded.stage.stage,
            services=services,
            parameters=parameters,
        )


def record_count(embedded: Embedded) -> tuple[int, bool]:
    """(offline-store objects, whether the bad file's first customer reached the online store)."""
    with embedded.services() as services:
        group = services.sagemaker.describe_feature_group(FeatureGroupName=embedded.stage.feature_group_name)
        base = group["OfflineStoreConfig"]["S3StorageConfig"]["ResolvedOutputS3Uri"]
        bucket, _, prefix = base[len("s3://") :].partition("/")
        objects = services.s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("KeyCount", 0)
        client = embedded.target.session(embedded.stage).client(
            "sagemaker-featurestore-runtime", endpoint_url=services.network_env[LoopbackFeatureStore.ENDPOINT_ENV]
        )
        got = client.get_record(
            FeatureGroupName=embedded.stage.feature_group_name, RecordIdentifierValueAsString="C90001"
        )
    return objects, "Record" in got


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            lambda lines: [lines[0].replace("tenure_months", "tenure"), *lines[1:]],
            "line 1 (header): missing column(s) tenure_months",
        ),
        (
            lambda lines: [*lines[:3], lines[3].replace(",46,", ",forty-six,", 1), *lines[4:]],
            "line 4 (customer 'C00002'): column 'tenure_months': expected Integral (a whole number), got 'forty-six'",
        ),
    ],
    ids=["wrong-header", "non-numeric-value"],
)
def test_a_bad_csv_fails_ingestion_naming_file_line_and_column_and_writes_nothing(embedded, mutate, expected):
    lines = SAMPLE.read_text().splitlines()
    lines.insert(1, "C90001,2024-06-01T00:00:00Z,1,10.0,10.0,0,1,1,0")  # a new customer ahead of the bad row
    key = "incoming/bad/customers.csv"
    with embedded.services() as services:
        uri = embedded.put(services, key, ("\n".join(mutate(lines)) + "\n").encode())
    before = record_count(embedded)
    record = run(embedded, "mlops-dev-feature-ingestion", embedded.definition("feature_ingestion"), InputCsvUri=uri)
    assert record.status == "Failed"
    step = record.step("IngestFeatures")
    assert step.status == "Failed"
    assert f"/opt/ml/processing/input/data/customers.csv: {expected}" in step.metadata["log_tail"]
    assert "/opt/ml/processing/input/data/customers.csv" in step.failure_reason
    assert record_count(embedded) == before == (before[0], False)


def test_a_step_whose_code_raises_fails_the_execution_there_with_the_end_of_its_log(embedded):
    with embedded.services() as services:
        code = embedded.put(
            services,
            "tests/raises/job.py",
            b"print('loading the model')\nraise ValueError('the model file is truncated')\n",
        )
        after = embedded.put(services, "tests/raises/after.py", b"print('never')\n")
    definition = {
        "Version": "2020-12-01",
        "Parameters": [],
        "Steps": [
            processing_step("Broken", code),
            {**processing_step("After", after), "DependsOn": ["Broken"]},
        ],
    }
    record = run(embedded, "raises", definition)
    assert record.status == "Failed"
    broken = record.step("Broken")
    assert broken.failure_reason.endswith("ValueError: the model file is truncated")
    assert "loading the model" in broken.metadata["log_tail"] and "Traceback" in broken.metadata["log_tail"]
    assert record.failure_reason.startswith("Step failure: Broken:")
    assert record.step("After").status == "NotRun"


def test_an_unsupported_step_type_is_refused_before_anything_runs(embedded):
    with embedded.services() as services:
        code = embedded.put(services, "tests/unsupported/job.py", b"print('ran')\n")
        output = f"s3://{embedded.stage.artifact_bucket_name}/tests/unsupported/out"
    definition = {
        "Version": "2020-12-01",
        "Steps": [
            processing_step("First", code, outputs=[s3_output("out", "/opt/ml/processing/out", output)]),
            {"Name": "BatchScore", "Type": "Transform", "Arguments": {}},
        ],
    }
    with pytest.raises(UnsupportedStep) as refused:
        run(embedded, "unsupported", definition)
    assert str(refused.value) == (
        "pipeline unsupported: step 'BatchScore': type Transform: not run locally:"
        " the executor runs Condition, Fail, Processing, RegisterModel, Training; nothing ran"
    )
    assert not (embedded.target.local_dir / RECORDS_DIR / "dev" / "unsupported").exists()
    with embedded.services() as services:
        assert (
            services.s3.list_objects_v2(Bucket=embedded.stage.artifact_bucket_name, Prefix="tests/unsupported/out")[
                "KeyCount"
            ]
            == 0
        )


def test_a_reference_to_a_missing_output_is_refused_before_anything_runs(embedded):
    definition = embedded.definition("training")
    train = definition["Steps"][1]
    train["Arguments"]["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"] = {
        "Get": "Steps.Preprocess.ProcessingOutputConfig.Outputs['training'].S3Output.S3Uri"
    }
    with pytest.raises(Exception, match=r"step 'Preprocess' has no output 'training' \(has train, validation, test\)"):
        run(embedded, "mlops-dev-training", definition)
