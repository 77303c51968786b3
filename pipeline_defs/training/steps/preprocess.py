"""Preprocess step: customer features (CSV export) -> train / validation / test CSVs.

Input (--input-format): `json`, what the pipeline passes, is the result of
pipeline_defs/features.py offline_store_query() as SageMaker's Athena dataset definition hands
it to the job (JSON lines, files without a suffix, every file under --input-dir); `csv` is every
*.csv under --input-dir with a header (a CSV export, or the sample). Any file must have every
feature as a column. Rows are reduced to the latest record per customer
(by event time, as offline_store_query() does), records marked deleted and rows without a
label are dropped, then split deterministically (stratified, fixed seed).

Output: <output-dir>/{train,validation,test}/<name>.csv with a header: the label first, then
the model inputs, in the order features.MODEL_INPUTS declares.

Runs in the SageMaker scikit-learn container, or locally with
the schema on the path as a job has it:
    PYTHONPATH=pipeline_defs python pipeline_defs/training/steps/preprocess.py \
        --input-dir pipeline_defs/feature_ingestion/sample --output-dir /tmp/prep
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import features  # the schema, on the job's PYTHONPATH (pipeline_defs/common.py)
import pandas as pd
from sklearn.model_selection import train_test_split

SPLITS = ("train", "validation", "test")


def read_exports(input_dir: Path, input_format: str = "csv") -> pd.DataFrame:
    if input_format == "json":
        files = sorted(p for p in input_dir.rglob("*") if p.is_file() and not p.name.startswith("."))
    else:
        files = sorted(p for p in input_dir.rglob("*.csv") if p.is_file())
    if not files:
        raise SystemExit(f"{input_dir}: no {'files' if input_format == 'json' else '*.csv files'} to read")
    frames = []
    dtypes = {features.RECORD_IDENTIFIER: str, features.EVENT_TIME: str}
    for path in files:
        if input_format == "json":
            frame = pd.read_json(path, lines=True, dtype=dtypes)
        else:
            frame = pd.read_csv(path, dtype=dtypes)
        missing = [name for name in features.FEATURE_NAMES if name not in frame.columns]
        if missing:
            raise SystemExit(f"{path}: missing column(s) {', '.join(missing)}")
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def latest_per_customer(frame: pd.DataFrame) -> pd.DataFrame:
    """The same reduction as offline_store_query(): newest record per customer, deleted ones dropped."""
    frame = frame.copy()
    if "is_deleted" in frame.columns:
        frame = frame[~frame["is_deleted"].astype(str).str.lower().isin(("true", "1"))]
    frame["_event_time"] = pd.to_datetime(frame[features.EVENT_TIME], utc=True, format="ISO8601")
    order = ["_event_time"] + (["api_invocation_time"] if "api_invocation_time" in frame.columns else [])
    frame = frame.sort_values([features.RECORD_IDENTIFIER, *order], kind="mergesort")
    frame = frame.drop_duplicates(subset=[features.RECORD_IDENTIFIER], keep="last")
    return frame.sort_values(features.RECORD_IDENTIFIER, kind="mergesort").reset_index(drop=True)


def to_model_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Label then model inputs, numeric; customers whose latest record lacks a value are left out."""
    columns = [features.LABEL, *features.MODEL_INPUTS]
    table = frame[[features.RECORD_IDENTIFIER, *columns]].copy()
    for name in columns:
        numbers = pd.to_numeric(table[name], errors="coerce")
        bad = numbers.isna() & table[name].notna()
        if bad.any():
            first = table[bad].iloc[0]
            raise SystemExit(
                f"column '{name}': {int(bad.sum())} non-numeric value(s), e.g. {first[name]!r}"
                f" for customer {first[features.RECORD_IDENTIFIER]!r}"
            )
        table[name] = numbers
    incomplete = table[columns].isna().any(axis=1)
    if incomplete.any():
        print(f"leaving out {int(incomplete.sum())} customer(s) whose latest record lacks the label or an input")
    table = table[~incomplete][columns]
    table[features.LABEL] = table[features.LABEL].astype("int64")
    if table[features.LABEL].nunique() < 2:
        raise SystemExit(f"label '{features.LABEL}' has a single class; cannot train a classifier")
    return table


def split(table: pd.DataFrame, validation: float, test: float, seed: int) -> dict[str, pd.DataFrame]:
    label = table[features.LABEL]
    rest, test_part = train_test_split(table, test_size=test, random_state=seed, stratify=label)
    share = validation / (1.0 - test)
    train_part, validation_part = train_test_split(
        rest, test_size=share, random_state=seed, stratify=rest[features.LABEL]
    )
    return {"train": train_part, "validation": validation_part, "test": test_part}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Split customer features into train/validation/test")
    parser.add_argument("--input-dir", type=Path, default=Path("/opt/ml/processing/input/data"))
    parser.add_argument("--input-format", choices=("json", "csv"), default="csv")
    parser.add_argument("--output-dir", type=Path, default=Path("/opt/ml/processing"))
    parser.add_argument("--validation-fraction", type=float, default=0.15)
    parser.add_argument("--test-fraction", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)

    raw = read_exports(args.input_dir, args.input_format)
    latest = latest_per_customer(raw)
    table = to_model_table(latest)
    parts = split(table, args.validation_fraction, args.test_fraction, args.seed)
    for name in SPLITS:
        target = args.output_dir / name
        target.mkdir(parents=True, exist_ok=True)
        parts[name].to_csv(target / f"{name}.csv", index=False)
    sizes = ", ".join(f"{name}={len(parts[name])}" for name in SPLITS)
    print(f"read {len(raw)} rows, {len(latest)} customers, {len(table)} usable; wrote {sizes}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
