"""Serving entry point for the SageMaker scikit-learn inference container.

train.py copies this file into the model artifact (code/inference.py); the registered model
sets SAGEMAKER_PROGRAM=inference.py and SAGEMAKER_SUBMIT_DIRECTORY=/opt/ml/model/code so the
container loads it from the artifact and needs no network.

Requests: text/csv (rows of model inputs in training column order, optional header row) or
application/json ({"instances": [{"tenure_months": 3, ...}, ...]} or a list of such objects).
Response: application/json {"predictions": [{"churn_probability": 0.83, "churned": 1}, ...]}.
"""

from __future__ import annotations

import io
import json
import os

import joblib
import pandas as pd

THRESHOLD = 0.5


def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))


def _columns(model) -> list[str]:
    return [str(c) for c in model.feature_names_in_]


def input_fn(request_body, content_type="text/csv"):
    if isinstance(request_body, bytes):
        request_body = request_body.decode("utf-8")
    content_type = (content_type or "text/csv").split(";")[0].strip().lower()
    if content_type == "application/json":
        payload = json.loads(request_body)
        instances = payload.get("instances", payload) if isinstance(payload, dict) else payload
        if isinstance(instances, dict):
            instances = [instances]
        return pd.DataFrame(instances)
    if content_type == "text/csv":
        return pd.read_csv(io.StringIO(request_body), header=None)
    raise ValueError(f"unsupported content type {content_type!r}; use text/csv or application/json")


def predict_fn(data, model):
    columns = _columns(model)
    if list(map(str, data.columns)) != columns:
        if set(map(str, data.columns)) >= set(columns):
            data = data[columns]
        elif [str(v) for v in data.iloc[0].tolist()] == columns:  # CSV with a header row
            data = data.iloc[1:].reset_index(drop=True)
            data.columns = columns
        elif data.shape[1] == len(columns):
            data.columns = columns
        else:
            raise ValueError(f"expected {len(columns)} values per row ({', '.join(columns)}), got {data.shape[1]}")
    return model.predict_proba(data.astype("float64"))[:, 1]


def output_fn(prediction, accept="application/json"):
    body = {
        "predictions": [{"churn_probability": round(float(p), 6), "churned": int(p >= THRESHOLD)} for p in prediction]
    }
    return json.dumps(body), "application/json"
