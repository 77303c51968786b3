"""Ingestion step: validate customer CSVs against features.FEATURES, then PutRecord every row.

Validation reads every *.csv under --input-dir completely before anything is written, so a
bad file changes nothing in the Feature Group. It checks, per file and row:
  - the header is exactly the feature set (missing and unexpected columns are both errors);
  - the record identifier and event time are present on every row;
  - the event time is ISO-8601 UTC as Feature Store accepts it (2024-05-01T12:00:00Z,
    optionally with milliseconds);
  - Integral / Fractional values parse as such (an empty non-key value is allowed: the
    feature is omitted from the record).
Any problem fails the step with a message naming the file, line, customer and column.

Ingestion sends rows in batches: each batch is written concurrently (one PutRecord per row;
the client retries throttling with adaptive backoff) and a batch must succeed completely
before the next starts; a failure names the row.

Runs in the SageMaker scikit-learn processing container (boto3 is in the image), or locally with
the schema on the path as a job has it:
    PYTHONPATH=pipeline_defs python pipeline_defs/feature_ingestion/steps/ingest.py \
        --input-dir pipeline_defs/feature_ingestion/sample --dry-run
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import features  # the schema, on the job's PYTHONPATH (pipeline_defs/common.py)

# The EventTime formats Feature Store accepts for a String event time feature.
ISO_8601_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?Z$")
INTEGRAL = re.compile(r"^[+-]?\d+$")
MAX_REPORTED_ERRORS = 20


class CsvValidationError(ValueError):
    """The input does not match the feature schema; the message names every offending row."""


@dataclass(frozen=True)
class Row:
    source: str  # "<file>:<line>" for messages
    record: tuple[tuple[str, str], ...]  # (feature name, value as string), empty values left out

    @property
    def record_id(self) -> str:
        return dict(self.record)[features.RECORD_IDENTIFIER]


def _check_value(feature, raw: str) -> str | None:
    """The problem with one value, or None when it is valid for the feature's type."""
    if feature.name == features.EVENT_TIME:
        if not ISO_8601_UTC.match(raw):
            return f"expected ISO-8601 UTC time like 2024-05-01T12:00:00Z, got {raw!r}"
        try:
            datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            return f"not a valid date/time: {raw!r}"
    elif feature.feature_type == "Integral":
        if not INTEGRAL.match(raw):
            return f"expected Integral (a whole number), got {raw!r}"
    elif feature.feature_type == "Fractional":
        try:
            number = float(raw)
        except ValueError:
            return f"expected Fractional (a number), got {raw!r}"
        if not math.isfinite(number):
            return f"expected a finite Fractional, got {raw!r}"
    return None


def validate_file(path: Path) -> list[Row]:
    """Rows of one CSV, type-checked against features.FEATURES; raises CsvValidationError."""
    schema = {f.name: f for f in features.FEATURES}
    required = (features.RECORD_IDENTIFIER, features.EVENT_TIME)
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise CsvValidationError(f"{path}: empty file, expected a header row: {', '.join(schema)}")
        header = [name.strip() for name in header]
        missing = [name for name in schema if name not in header]
        unexpected = [name for name in header if name not in schema]
        duplicated = sorted({name for name in header if header.count(name) > 1})
        problems = []
        if missing:
            problems.append(f"missing column(s) {', '.join(missing)}")
        if unexpected:
            problems.append(f"unexpected column(s) {', '.join(unexpected)}")
        if duplicated:
            problems.append(f"duplicate column(s) {', '.join(duplicated)}")
        if problems:
            raise CsvValidationError(f"{path}: line 1 (header): {'; '.join(problems)}")

        rows: list[Row] = []
        errors: list[str] = []
        for values in reader:
            line = reader.line_num
            if not values or all(not v.strip() for v in values):
                continue  # blank line
            if len(values) != len(header):
                errors.append(f"{path}: line {line}: expected {len(header)} values, got {len(values)}")
                continue
            cells = {name: values[index].strip() for index, name in enumerate(header)}
            record_id = cells[features.RECORD_IDENTIFIER]
            who = f"customer {record_id!r}" if record_id else "no customer id"
            record = []
            for name, feature in schema.items():
                raw = cells[name]
                if not raw:
                    if name in required:
                        errors.append(f"{path}: line {line} ({who}): column '{name}' is empty; it is required")
                    continue
                problem = _check_value(feature, raw)
                if problem:
                    errors.append(f"{path}: line {line} ({who}): column '{name}': {problem}")
                    continue
                record.append((name, raw))
            rows.append(Row(f"{path.name}:{line}", tuple(record)))
        if errors:
            shown = errors[:MAX_REPORTED_ERRORS]
            more = len(errors) - len(shown)
            tail = f"\n... and {more} more problem(s)" if more else ""
            raise CsvValidationError(f"{len(errors)} problem(s) in {path}:\n" + "\n".join(shown) + tail)
        if not rows:
            raise CsvValidationError(f"{path}: no data rows")
        return rows


def validate_dir(input_dir: Path) -> list[Row]:
    files = sorted(p for p in input_dir.rglob("*.csv") if p.is_file())
    if not files:
        raise CsvValidationError(f"{input_dir}: no *.csv files to ingest")
    rows: list[Row] = []
    for path in files:
        rows.extend(validate_file(path))
    return rows


def to_record(row: Row) -> list[dict[str, str]]:
    """The PutRecord 'Record' member: one FeatureValue per present feature, in schema order."""
    return [{"FeatureName": name, "ValueAsString": value} for name, value in row.record]


def batches(rows: Sequence[Row], size: int) -> Iterator[Sequence[Row]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


class IngestionError(RuntimeError):
    """A PutRecord call failed after the client's retries; the message names the row."""


def ingest(
    client,
    feature_group_name: str,
    rows: Sequence[Row],
    *,
    batch_size: int = 100,
    max_workers: int = 8,
    log=print,
) -> int:
    """PutRecord every row, batch by batch; returns the number of records written."""

    def put(row: Row) -> None:
        try:
            client.put_record(FeatureGroupName=feature_group_name, Record=to_record(row))
        except Exception as exc:  # botocore ClientError or a transport error, after retries
            raise IngestionError(
                f"PutRecord failed for {row.source} (customer {row.record_id!r})"
                f" into feature group {feature_group_name}: {exc}"
            ) from exc

    written = 0
    with ThreadPoolExecutor(max_workers=max_workers) as pool:
        for number, batch in enumerate(batches(rows, batch_size), start=1):
            for _ in pool.map(put, batch):  # re-raises the first failure, in row order
                written += 1
            log(f"batch {number}: {len(batch)} record(s) written ({written}/{len(rows)})")
    return written


def make_client(region: str | None):
    import boto3
    from botocore.config import Config

    config = Config(retries={"mode": "adaptive", "max_attempts": 10}, max_pool_connections=32)
    return boto3.client("sagemaker-featurestore-runtime", region_name=region, config=config)


def write_export(export_dir: Path | None, rows: Sequence[Row]) -> None:
    """The ingested rows as one CSV with the feature header: the training pipeline's input.

    Exports accumulate like the offline store does (one file per execution); the training
    preprocessing keeps the latest record per customer across all of them.
    """
    if export_dir is None:
        return
    export_dir.mkdir(parents=True, exist_ok=True)
    with (export_dir / "customers.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(features.FEATURE_NAMES)
        for row in rows:
            values = dict(row.record)
            writer.writerow([values.get(name, "") for name in features.FEATURE_NAMES])


def write_report(report_dir: Path | None, report: dict) -> None:
    if report_dir is None:
        return
    report_dir.mkdir(parents=True, exist_ok=True)
    (report_dir / "ingestion.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Validate customer CSVs and ingest them into the Feature Group")
    parser.add_argument("--input-dir", type=Path, default=Path("/opt/ml/processing/input/data"))
    parser.add_argument("--report-dir", type=Path, default=None, help="where to write ingestion.json")
    parser.add_argument("--export-dir", type=Path, default=None, help="where to write the ingested rows as CSV")
    parser.add_argument("--feature-group-name", default=os.environ.get("FEATURE_GROUP_NAME"))
    parser.add_argument("--region", default=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"))
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--max-workers", type=int, default=8)
    parser.add_argument("--dry-run", action="store_true", help="validate only; write nothing")
    args = parser.parse_args(list(argv) if argv is not None else None)

    try:
        rows = validate_dir(args.input_dir)
    except CsvValidationError as exc:
        print(f"invalid input: {exc}", file=sys.stderr)
        return 2
    customers = len({row.record_id for row in rows})
    print(f"validated {len(rows)} row(s) for {customers} customer(s) from {args.input_dir}")
    report = {"rows": len(rows), "customers": customers, "feature_group": args.feature_group_name}
    if args.dry_run:
        write_report(args.report_dir, report | {"written": 0, "dry_run": True})
        return 0
    if not args.feature_group_name:
        print("no feature group: pass --feature-group-name or set FEATURE_GROUP_NAME", file=sys.stderr)
        return 2
    try:
        written = ingest(
            make_client(args.region),
            args.feature_group_name,
            rows,
            batch_size=args.batch_size,
            max_workers=args.max_workers,
        )
    except IngestionError as exc:
        print(f"ingestion failed: {exc}", file=sys.stderr)
        return 1
    write_export(args.export_dir, rows)
    write_report(args.report_dir, report | {"written": written, "dry_run": False})
    print(f"ingested {written} record(s) into {args.feature_group_name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
