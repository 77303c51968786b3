"""The ingestion step code: CSV validation against features.FEATURES and batched PutRecord.

moto implements no sagemaker-featurestore-runtime, so PutRecord goes to a real boto3 client
behind botocore's Stubber (which validates every request against the service model) and, for
concurrency and failures, to a fake client whose requests are checked against the same model.
"""

from __future__ import annotations

import csv
import io
import json
import threading
from pathlib import Path

import boto3
import botocore.session
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from botocore.validate import ParamValidator

SAMPLE = Path("pipeline_defs/feature_ingestion/sample/customers.csv")
GROUP = "mlops-dev-customers"


@pytest.fixture(scope="module")
def ingest(step_script):
    return step_script("feature_ingestion/steps/ingest.py")


@pytest.fixture(scope="module")
def sample_text(repo_root) -> str:
    return (repo_root / SAMPLE).read_text()


@pytest.fixture(scope="module")
def put_record_shape():
    model = botocore.session.get_session().get_service_model("sagemaker-featurestore-runtime")
    return model.operation_model("PutRecord").input_shape


def write(tmp_path: Path, text: str, name: str = "customers.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def edit(text: str, line: int, column: str, value: str) -> str:
    """The CSV text with one cell (1-based line, by column name) replaced."""
    rows = list(csv.reader(io.StringIO(text)))
    rows[line - 1][rows[0].index(column)] = value
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue()


def drop_column(text: str, column: str) -> str:
    rows = list(csv.reader(io.StringIO(text)))
    index = rows[0].index(column)
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows([r[:index] + r[index + 1 :] for r in rows])
    return out.getvalue()


def add_column(text: str, column: str) -> str:
    rows = list(csv.reader(io.StringIO(text)))
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows([rows[0] + [column]] + [r + ["1"] for r in rows[1:]])
    return out.getvalue()


def test_sample_is_generated_by_the_committed_script(step_script, sample_text):
    generator = step_script("feature_ingestion/sample/generate.py")
    assert generator.generate() == sample_text


def test_sample_has_exactly_the_feature_columns(ingest, sample_text):
    header = sample_text.splitlines()[0].split(",")
    assert tuple(header) == ingest.features.FEATURE_NAMES


def test_validator_accepts_the_sample(ingest, repo_root):
    rows = ingest.validate_dir(repo_root / SAMPLE.parent)
    assert len(rows) == 430
    assert len({r.record_id for r in rows}) == 400
    first = dict(rows[0].record)
    assert first["customer_id"] == "C00001" and first["event_time"].endswith("Z")


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda t: drop_column(t, "support_calls"), r"line 1 \(header\): missing column\(s\) support_calls"),
        (lambda t: add_column(t, "extra"), r"line 1 \(header\): unexpected column\(s\) extra"),
        (
            lambda t: edit(t, 2, "tenure_months", "12.5"),
            r"line 2 \(customer 'C00001'\): column 'tenure_months': expected Integral \(a whole number\), got '12.5'",
        ),
        (
            lambda t: edit(t, 3, "monthly_charges", "cheap"),
            r"line 3 \(customer 'C00002'\): column 'monthly_charges': expected Fractional \(a number\), got 'cheap'",
        ),
        (
            lambda t: edit(t, 4, "total_charges", "nan"),
            r"line 4 .*column 'total_charges': expected a finite Fractional",
        ),
        (
            lambda t: edit(t, 5, "customer_id", ""),
            r"line 5 \(no customer id\): column 'customer_id' is empty; it is required",
        ),
        (lambda t: edit(t, 6, "event_time", ""), r"line 6 \(customer 'C00005'\): column 'event_time' is empty"),
        (
            lambda t: edit(t, 7, "event_time", "2024-01-03 10:00:00"),
            r"line 7 .*column 'event_time': expected ISO-8601 UTC",
        ),
        (
            lambda t: edit(t, 8, "event_time", "2024-02-30T10:00:00Z"),
            r"line 8 .*column 'event_time': not a valid date",
        ),
        (
            lambda t: "\n".join(line + ",1" if number == 10 else line for number, line in enumerate(t.split("\n"), 1)),
            r"line 10: expected 9 values, got 10",
        ),
        (lambda t: "", r"empty file, expected a header row"),
        (lambda t: t.splitlines()[0] + "\n", r"no data rows"),
    ],
    ids=[
        "missing-column",
        "unexpected-column",
        "integral",
        "fractional",
        "non-finite",
        "empty-id",
        "empty-event-time",
        "event-time-format",
        "event-time-date",
        "value-count",
        "empty-file",
        "header-only",
    ],
)
def test_validator_rejects_bad_csv_naming_the_row(ingest, sample_text, tmp_path, mutate, expected):
    path = write(tmp_path, mutate(sample_text))
    with pytest.raises(ingest.CsvValidationError, match=expected) as caught:
        ingest.validate_dir(tmp_path)
    assert str(path) in str(caught.value)


def test_validator_reports_every_bad_row_at_once(ingest, sample_text, tmp_path):
    text = sample_text
    for line in range(2, 40):
        text = edit(text, line, "support_calls", "many")
    write(tmp_path, text)
    with pytest.raises(ingest.CsvValidationError) as caught:
        ingest.validate_dir(tmp_path)
    message = str(caught.value)
    assert message.startswith("38 problem(s) in ")
    assert message.count("\n") == ingest.MAX_REPORTED_ERRORS + 1
    assert message.endswith("... and 18 more problem(s)")


def test_empty_optional_features_are_left_out_of_the_record(ingest, sample_text, tmp_path):
    write(tmp_path, edit(sample_text, 2, "churned", ""))
    record = ingest.to_record(ingest.validate_dir(tmp_path)[0])
    assert "churned" not in {value["FeatureName"] for value in record}


def test_records_match_the_put_record_api(ingest, repo_root, put_record_shape):
    rows = ingest.validate_dir(repo_root / SAMPLE.parent)
    record = ingest.to_record(rows[0])
    assert [v["FeatureName"] for v in record] == list(ingest.features.FEATURE_NAMES)
    assert record[2] == {"FeatureName": "tenure_months", "ValueAsString": "54"}
    for row in rows:
        request = {"FeatureGroupName": GROUP, "Record": ingest.to_record(row)}
        report = ParamValidator().validate(request, put_record_shape)
        assert not report.has_errors(), report.generate_report()


def test_ingest_puts_every_row_through_a_stubbed_boto3_client(ingest, repo_root):
    rows = ingest.validate_dir(repo_root / SAMPLE.parent)[:7]
    client = boto3.client(
        "sagemaker-featurestore-runtime",
        region_name="eu-west-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    logs = []
    with Stubber(client) as stub:
        for row in rows:  # the Stubber validates each request against the service model
            stub.add_response("put_record", {}, {"FeatureGroupName": GROUP, "Record": ingest.to_record(row)})
        written = ingest.ingest(client, GROUP, rows, batch_size=3, max_workers=1, log=logs.append)
        stub.assert_no_pending_responses()
    assert written == 7
    assert logs == [
        "batch 1: 3 record(s) written (3/7)",
        "batch 2: 3 record(s) written (6/7)",
        "batch 3: 1 record(s) written (7/7)",
    ]


class FakeFeatureStore:
    """Records PutRecord requests (validated against the service model); can fail one customer."""

    def __init__(self, shape, fail_customer: str | None = None):
        self.shape = shape
        self.fail_customer = fail_customer
        self.records: list[dict] = []
        self.threads: set[int] = set()
        self.lock = threading.Lock()

    def put_record(self, **request):
        report = ParamValidator().validate(request, self.shape)
        assert not report.has_errors(), report.generate_report()
        values = {v["FeatureName"]: v["ValueAsString"] for v in request["Record"]}
        if values["customer_id"] == self.fail_customer:
            raise ClientError({"Error": {"Code": "ValidationError", "Message": "Record is invalid"}}, "PutRecord")
        with self.lock:
            self.records.append(values)
            self.threads.add(threading.get_ident())
        return {}


def test_ingest_writes_all_rows_in_concurrent_batches(ingest, repo_root, put_record_shape):
    rows = ingest.validate_dir(repo_root / SAMPLE.parent)
    store = FakeFeatureStore(put_record_shape)
    logs = []
    assert ingest.ingest(store, GROUP, rows, batch_size=100, max_workers=4, log=logs.append) == 430
    assert len(logs) == 5 and logs[-1] == "batch 5: 30 record(s) written (430/430)"
    written = sorted((r["customer_id"], r["event_time"]) for r in store.records)
    assert written == sorted((dict(r.record)["customer_id"], dict(r.record)["event_time"]) for r in rows)


def test_ingest_failure_names_the_row_and_stops_before_the_next_batch(ingest, repo_root, put_record_shape):
    rows = ingest.validate_dir(repo_root / SAMPLE.parent)
    index = next(i for i, row in enumerate(rows) if row.record_id == "C00012")
    line = index + 2  # after the header, 1-based
    store = FakeFeatureStore(put_record_shape, fail_customer="C00012")
    expected = (
        rf"PutRecord failed for customers\.csv:{line} \(customer 'C00012'\)"
        r" into feature group mlops-dev-customers: .*Record is invalid"
    )
    with pytest.raises(ingest.IngestionError, match=expected):
        ingest.ingest(store, GROUP, rows, batch_size=10, max_workers=4, log=lambda _: None)
    batch_end = (index // 10 + 1) * 10
    assert batch_end - 10 <= len(store.records) < batch_end  # earlier batches complete, no later batch started


def test_main_validates_ingests_and_exports(ingest, repo_root, tmp_path, put_record_shape, monkeypatch, capsys):
    store = FakeFeatureStore(put_record_shape)
    monkeypatch.setattr(ingest, "make_client", lambda region: store)
    code = ingest.main(
        [
            "--input-dir",
            str(repo_root / SAMPLE.parent),
            "--report-dir",
            str(tmp_path / "report"),
            "--export-dir",
            str(tmp_path / "export"),
            "--feature-group-name",
            GROUP,
            "--batch-size",
            "50",
        ]
    )
    assert code == 0
    assert len(store.records) == 430
    report = json.loads((tmp_path / "report" / "ingestion.json").read_text())
    assert report == {"customers": 400, "dry_run": False, "feature_group": GROUP, "rows": 430, "written": 430}
    # The export is what the training pipeline reads by default: here, byte for byte the sample.
    assert (tmp_path / "export" / "customers.csv").read_text() == (repo_root / SAMPLE).read_text()
    assert "ingested 430 record(s) into mlops-dev-customers" in capsys.readouterr().out


def test_main_rejects_bad_input_before_writing_anything(
    ingest, sample_text, tmp_path, put_record_shape, monkeypatch, capsys
):
    store = FakeFeatureStore(put_record_shape)
    monkeypatch.setattr(ingest, "make_client", lambda region: store)
    (tmp_path / "in").mkdir()
    write(tmp_path / "in", edit(sample_text, 300, "has_internet", "yes"))
    code = ingest.main(
        ["--input-dir", str(tmp_path / "in"), "--feature-group-name", GROUP, "--export-dir", str(tmp_path / "export")]
    )
    assert code == 2
    assert store.records == [] and not (tmp_path / "export").exists()
    err = capsys.readouterr().err
    assert "invalid input: 1 problem(s) in " in err
    assert "line 300 (customer " in err and "column 'has_internet': expected Integral" in err


def test_main_dry_run_needs_no_feature_store(ingest, repo_root, tmp_path, monkeypatch):
    monkeypatch.setattr(ingest, "make_client", lambda region: pytest.fail("dry run must not create a client"))
    assert ingest.main(["--input-dir", str(repo_root / SAMPLE.parent), "--dry-run"]) == 0
