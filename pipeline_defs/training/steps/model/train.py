"""Train step: fit a churn classifier on the preprocessed CSVs; write the model directory.

Runs as the entry point of the SageMaker scikit-learn training container (script mode through
the container's training toolkit: hyperparameters arrive as --name value, data channels as
SM_CHANNEL_<NAME>, the model directory as SM_MODEL_DIR), or locally with
the schema on the path as a job has it:
    PYTHONPATH=pipeline_defs python pipeline_defs/training/steps/model/train.py --train /tmp/prep/train \
        --validation /tmp/prep/validation --model-dir /tmp/model

The model directory holds model.joblib (a scikit-learn Pipeline fitted on a DataFrame, so it
knows its input column names) and code/inference.py, the serving entry point, so that the
model artifact is self-contained and serves with network isolation.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

import features  # the schema, on the job's PYTHONPATH (pipeline_defs/common.py)
import joblib
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler


def read_split(directory: Path) -> tuple[pd.DataFrame, pd.Series]:
    files = sorted(directory.glob("*.csv"))
    if not files:
        raise SystemExit(f"{directory}: no *.csv files")
    frame = pd.concat([pd.read_csv(path) for path in files], ignore_index=True)
    missing = [c for c in (features.LABEL, *features.MODEL_INPUTS) if c not in frame.columns]
    if missing:
        raise SystemExit(f"{directory}: missing column(s) {', '.join(missing)}")
    return frame[list(features.MODEL_INPUTS)].astype("float64"), frame[features.LABEL].astype("int64")


def build_model(c: float, max_iter: int) -> Pipeline:
    return Pipeline(
        [
            ("scale", StandardScaler()),
            ("classify", LogisticRegression(C=c, max_iter=max_iter, class_weight="balanced")),
        ]
    )


def main(argv: list[str] | None = None) -> int:
    env = os.environ.get
    parser = argparse.ArgumentParser(description="Train the churn classifier")
    parser.add_argument("--C", dest="c", type=float, default=1.0, help="inverse regularisation strength")
    parser.add_argument("--max_iter", type=int, default=1000)
    parser.add_argument("--train", type=Path, default=Path(env("SM_CHANNEL_TRAIN", "/opt/ml/input/data/train")))
    parser.add_argument(
        "--validation",
        type=Path,
        default=Path(env("SM_CHANNEL_VALIDATION", "/opt/ml/input/data/validation")),
    )
    parser.add_argument("--model-dir", type=Path, default=Path(env("SM_MODEL_DIR", "/opt/ml/model")))
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        print(f"ignoring unknown arguments: {unknown}")

    x_train, y_train = read_split(args.train)
    model = build_model(args.c, args.max_iter).fit(x_train, y_train)
    report = {"train_rows": len(x_train), "C": args.c, "max_iter": args.max_iter}
    if args.validation.is_dir() and any(args.validation.glob("*.csv")):
        x_val, y_val = read_split(args.validation)
        report["validation_auc"] = float(roc_auc_score(y_val, model.predict_proba(x_val)[:, 1]))
        # Parsed by the training job's metric definition (validation:auc).
        print(f"validation:auc={report['validation_auc']:.6f}")

    args.model_dir.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, args.model_dir / "model.joblib")
    code_dir = args.model_dir / "code"
    code_dir.mkdir(exist_ok=True)
    shutil.copyfile(Path(__file__).resolve().with_name("inference.py"), code_dir / "inference.py")
    (args.model_dir / "training_report.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    print(f"model written to {args.model_dir}: {json.dumps(report, sort_keys=True)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
