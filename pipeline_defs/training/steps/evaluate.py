"""Evaluate step: score the trained model on the held-out test split; write evaluation.json.

evaluation.json uses the model-quality layout SageMaker Model Registry displays, and the
pipeline reads binary_classification_metrics.auc.value from it (a PropertyFile) to decide
whether the model is registered:
    {"binary_classification_metrics": {"auc": {"value": 0.83, "standard_deviation": "NaN"}, ...}}

Runs in the SageMaker scikit-learn processing container, or locally with
the schema on the path as a job has it:
    PYTHONPATH=pipeline_defs python pipeline_defs/training/steps/evaluate.py --model-dir /tmp/model \
        --test-dir /tmp/prep/test --output-dir /tmp/evaluation
--model-dir may hold model.tar.gz (the training job's artifact) or the unpacked model.joblib.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tarfile
import tempfile
from pathlib import Path

import features  # the schema, on the job's PYTHONPATH (pipeline_defs/common.py)
import joblib
import pandas as pd
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score

THRESHOLD = 0.5


def load_model(model_dir: Path, scratch: Path):
    if (model_dir / "model.joblib").is_file():
        return joblib.load(model_dir / "model.joblib")
    archive = model_dir / "model.tar.gz"
    if not archive.is_file():
        raise SystemExit(f"{model_dir}: neither model.joblib nor model.tar.gz found")
    with tarfile.open(archive, "r:gz") as tar:
        members = [m for m in tar.getmembers() if m.isfile() and os.path.normpath(m.name) == "model.joblib"]
        if not members:
            raise SystemExit(f"{archive}: holds no model.joblib")
        member = members[0]
        if hasattr(tarfile, "data_filter"):
            tar.extract(member, scratch, filter="data")
        else:  # Python without extraction filters: model.joblib is a plain, fixed member name
            tar.extract(member, scratch)
    return joblib.load(scratch / "model.joblib")


def _metric(value: float) -> dict:
    return {"value": round(float(value), 6), "standard_deviation": "NaN"}


def evaluate(model, test: pd.DataFrame) -> dict:
    y_true = test[features.LABEL].astype("int64")
    scores = model.predict_proba(test[list(features.MODEL_INPUTS)].astype("float64"))[:, 1]
    y_pred = (scores >= THRESHOLD).astype("int64")
    return {
        "binary_classification_metrics": {
            "auc": _metric(roc_auc_score(y_true, scores)),
            "accuracy": _metric(accuracy_score(y_true, y_pred)),
            "precision": _metric(precision_score(y_true, y_pred, zero_division=0)),
            "recall": _metric(recall_score(y_true, y_pred, zero_division=0)),
            "f1": _metric(f1_score(y_true, y_pred, zero_division=0)),
        },
        "test_rows": int(len(test)),
        "positive_rate": round(float(y_true.mean()), 6),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Evaluate the churn classifier on the test split")
    parser.add_argument("--model-dir", type=Path, default=Path("/opt/ml/processing/model"))
    parser.add_argument("--test-dir", type=Path, default=Path("/opt/ml/processing/test"))
    parser.add_argument("--output-dir", type=Path, default=Path("/opt/ml/processing/evaluation"))
    args = parser.parse_args(argv)

    files = sorted(args.test_dir.glob("*.csv"))
    if not files:
        raise SystemExit(f"{args.test_dir}: no *.csv files")
    test = pd.concat([pd.read_csv(path) for path in files], ignore_index=True)
    with tempfile.TemporaryDirectory() as scratch:
        model = load_model(args.model_dir, Path(scratch))
    report = evaluate(model, test)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    (args.output_dir / "evaluation.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    print(json.dumps(report, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
