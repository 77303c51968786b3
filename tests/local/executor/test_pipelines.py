"""Both pipelines of pipeline_defs/, from their built definitions, really run on the embedded target."""

from __future__ import annotations

import io
import json
import tarfile

import joblib
import pytest
from executor_env import ROOT, Embedded, latest_per_customer

from gitops.cli import main
from gitops.config import load_stages
from gitops.local.embedded import seed_env_repo
from gitops.local.executor import PipelineExecution, run_definition
from gitops.local.executor.athena import OfflineStoreAthena
from gitops.local.executor.featurestore import LoopbackFeatureStore
from gitops.target import LOCAL_DIR_ENV


def run(embedded: Embedded, name: str, definition: dict | None = None, **parameters: str) -> PipelineExecution:
    with embedded.services() as services:
        return run_definition(
            definition or embedded.definition(name),
            pipeline_name=embedded.stage.pipeline_name(name),
            stage=embedded.stage.stage,
            services=services,
            parameters=parameters,
            log=print,
        )


def timings(record: PipelineExecution) -> str:
    return ", ".join(f"{s.name} {s.status} {s.seconds}s" for s in record.steps)


def runtime_client(embedded: Embedded, endpoint: str):
    session = embedded.target.session(embedded.stage)
    return session.client("sagemaker-featurestore-runtime", endpoint_url=endpoint)


def offline_rows(embedded: Embedded) -> tuple[list[str], list[tuple]]:
    import features

    with embedded.services() as services:
        group = services.sagemaker.describe_feature_group(FeatureGroupName=embedded.stage.feature_group_name)
        catalog = group["OfflineStoreConfig"]["DataCatalogConfig"]
        sql = features.offline_store_query(catalog["Database"], catalog["TableName"])
        return OfflineStoreAthena(services.sagemaker, services.s3, [group["FeatureGroupName"]]).query(sql, "test")


@pytest.fixture(scope="module")
def ingested(embedded: Embedded) -> PipelineExecution:
    record = run(embedded, "feature_ingestion")
    print("feature_ingestion:", timings(record), f"total {record.seconds}s")
    return record


@pytest.fixture(scope="module")
def trained(embedded: Embedded, ingested: PipelineExecution) -> PipelineExecution:
    record = run(embedded, "training")
    print("training:", timings(record), f"total {record.seconds}s")
    return record


def test_ingestion_fills_the_feature_group_with_the_latest_record_per_customer(embedded, ingested):
    assert ingested.status == "Succeeded", ingested.failure_reason
    expected = latest_per_customer()
    with embedded.services() as services:
        client = runtime_client(embedded, services.network_env[LoopbackFeatureStore.ENDPOINT_ENV])
        for customer, row in expected.items():
            got = client.get_record(
                FeatureGroupName=embedded.stage.feature_group_name, RecordIdentifierValueAsString=customer
            )
            values = {f["FeatureName"]: f["ValueAsString"] for f in got["Record"]}
            assert values == {k: v for k, v in row.items() if v != ""}, customer


def test_the_offline_store_query_returns_the_latest_record_per_customer(embedded, ingested):
    columns, rows = offline_rows(embedded)
    expected = latest_per_customer()
    assert len(rows) == len(expected)
    by_customer = {row[columns.index("customer_id")]: dict(zip(columns, row, strict=True)) for row in rows}
    for customer, row in expected.items():
        assert by_customer[customer]["event_time"] == row["event_time"]
        assert by_customer[customer]["tenure_months"] == int(row["tenure_months"])


def test_the_offline_store_files_use_sagemakers_layout(embedded, ingested):
    with embedded.services() as services:
        group = services.sagemaker.describe_feature_group(FeatureGroupName=embedded.stage.feature_group_name)
        base = group["OfflineStoreConfig"]["S3StorageConfig"]["ResolvedOutputS3Uri"]
        bucket, _, prefix = base[len("s3://") :].partition("/")
        keys = [o["Key"] for o in services.s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]]
    assert keys and all(k.endswith(".parquet") for k in keys)
    assert all("/year=" in k and "/month=" in k and "/day=" in k and "/hour=" in k for k in keys)


def test_training_trains_evaluates_and_registers_with_the_auc(embedded, trained):
    assert trained.status == "Succeeded", trained.failure_reason
    assert [s.status for s in trained.steps] == ["Succeeded"] * 5 + ["NotRun"]
    assert trained.step("AucBelowThreshold").status == "NotRun"
    with embedded.services() as services:
        model_uri = trained.step("Train").metadata["ModelArtifacts"]
        bucket, _, key = model_uri[len("s3://") :].partition("/")
        assert key.endswith("/output/model.tar.gz")
        archive = services.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            model = joblib.load(tar.extractfile("model.joblib"))
            assert "code/inference.py" in tar.getnames()
        assert hasattr(model, "predict_proba")

        package_arn = trained.step("RegisterModel").metadata["ModelPackageArn"]
        package = services.sagemaker.describe_model_package(ModelPackageName=package_arn)
        assert package["ModelApprovalStatus"] == "PendingManualApproval"
        assert package["InferenceSpecification"]["Containers"][0]["ModelDataUrl"] == model_uri
        metrics_uri = package["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"]
        mbucket, _, mkey = metrics_uri[len("s3://") :].partition("/")
        evaluation = json.loads(services.s3.get_object(Bucket=mbucket, Key=mkey)["Body"].read())
    auc = evaluation["binary_classification_metrics"]["auc"]["value"]
    assert 0.5 < auc <= 1.0
    assert trained.step("CheckAuc").metadata["Conditions"][0]["LeftValue"] == auc


def test_gitops_run_with_a_threshold_above_the_auc_ends_at_the_fail_step_and_status_shows_it(
    embedded, trained, monkeypatch, capsys
):
    """`gitops run --target local` runs the definition deployed in the embedded SageMaker; status lists its steps."""
    for cfg in load_stages(ROOT).values():
        seed_env_repo(ROOT, embedded.target.local_dir, cfg)
    name = embedded.stage.pipeline_name("training")
    with embedded.services() as services:
        services.sagemaker.create_pipeline(
            PipelineName=name,
            PipelineDefinition=json.dumps(embedded.definition("training")),
            RoleArn=embedded.stage.sagemaker_execution_role_arn,
        )
        before = services.sagemaker.list_model_packages(ModelPackageGroupName=embedded.stage.model_package_group_name)
    monkeypatch.setenv(LOCAL_DIR_ENV, str(embedded.target.local_dir))
    args = ["run", "--stage", "dev", "--pipeline", "training", "--target", "local", "--param", "AucThreshold=0.999"]
    with pytest.raises(SystemExit) as exited:
        main([*args, "--root", str(ROOT), "--release", str(ROOT / "no-release")])
    assert exited.value.code == 1
    error = capsys.readouterr().err
    auc = trained.step("CheckAuc").metadata["Conditions"][0]["LeftValue"]
    assert f"Failed: Step failure: AucBelowThreshold: Model AUC {auc} is below the threshold 0.999" in error

    with pytest.raises(SystemExit) as exited:
        main(["status", "--target", "local", "--json", "--root", str(ROOT)])
    assert exited.value.code == 0
    dev = next(s for s in json.loads(capsys.readouterr().out)["stages"] if s["stage"] == "dev")
    last = next(e for e in dev["pipeline_executions"] if e["pipeline_name"] == name)
    assert last["status"] == "Failed"
    by_step = {s["name"]: s for s in last["steps"]}
    assert by_step["AucBelowThreshold"]["failure_reason"] == (
        f"Model AUC {auc} is below the threshold 0.999; the model was not registered."
    )
    assert by_step["Train"]["status"] == "Succeeded" and by_step["Train"]["seconds"] > 0
    assert by_step["RegisterModel"]["status"] == "NotRun"
    with embedded.services() as services:
        after = services.sagemaker.list_model_packages(ModelPackageGroupName=embedded.stage.model_package_group_name)
    assert len(after["ModelPackageSummaryList"]) == len(before["ModelPackageSummaryList"])


def test_an_output_path_changed_in_a_copy_of_the_definition_is_caught_as_broken_wiring(embedded, ingested):
    definition = embedded.definition("training")
    preprocess = definition["Steps"][0]
    train_output = preprocess["Arguments"]["ProcessingOutputConfig"]["Outputs"][0]
    assert train_output["OutputName"] == "train"
    train_output["S3Output"]["LocalPath"] = "/opt/ml/processing/training"
    record = run(embedded, "training", definition)
    assert record.status == "Failed"
    reason = record.step("Preprocess").failure_reason
    assert "broken wiring: output 'train' is empty" in reason and "/opt/ml/processing/training" in reason
    assert [s.status for s in record.steps[1:]] == ["NotRun"] * 5
