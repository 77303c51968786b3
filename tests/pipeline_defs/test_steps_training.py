"""The training pipeline's step code, run as plain Python on the sample CSV.

preprocess -> train -> evaluate run through their command lines (main(argv)) with the
container paths overridden, in-process (scikit-learn takes seconds to import); the model is
packed into model.tar.gz as SageMaker does before Evaluate reads it. The container layout
(features.py shipped as its own input on the job's PYTHONPATH, not beside the script;
hyperparameters and channels as the training toolkit passes them) is exercised by running a copy
of train.py as a script from outside the repository.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

STEPS = Path("pipeline_defs/training/steps")
SAMPLE_DIR = Path("pipeline_defs/feature_ingestion/sample")
MIN_AUC = 0.75  # the strictest stage threshold (prod); the sample model must clear it


def run(repo_root: Path, script: Path, *args: str, env: dict | None = None, cwd: Path | None = None):
    result = subprocess.run(
        [sys.executable, str(script), *map(str, args)],
        cwd=cwd or repo_root,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, f"{script} failed:\n{result.stdout}\n{result.stderr}"
    return result


def pack_model(model_dir: Path, target_dir: Path) -> Path:
    """model.tar.gz the way a training job packs /opt/ml/model."""
    target_dir.mkdir(parents=True, exist_ok=True)
    archive = target_dir / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(model_dir.rglob("*")):
            tar.add(path, arcname=path.relative_to(model_dir).as_posix(), recursive=False)
    return archive


def main(step_script, relpath: str, *args) -> None:
    assert step_script(relpath).main([str(a) for a in args]) == 0


@pytest.fixture(scope="module")
def workflow(repo_root, tmp_path_factory, step_script):
    """Run preprocess -> train -> evaluate once on the sample; return the working directory."""
    work = tmp_path_factory.mktemp("training")
    preprocess = "training/steps/preprocess.py"
    main(step_script, preprocess, "--input-dir", repo_root / SAMPLE_DIR, "--output-dir", work / "prep")
    train = step_script("training/steps/model/train.py")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert (
            train.main(
                [
                    "--train",
                    str(work / "prep" / "train"),
                    "--validation",
                    str(work / "prep" / "validation"),
                    "--model-dir",
                    str(work / "model"),
                ]
            )
            == 0
        )
    (work / "train.log").write_text(out.getvalue())
    pack_model(work / "model", work / "artifact")
    main(
        step_script,
        "training/steps/evaluate.py",
        "--model-dir",
        work / "artifact",
        "--test-dir",
        work / "prep" / "test",
        "--output-dir",
        work / "evaluation",
    )
    return work


def read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    return rows[0], rows[1:]


def test_preprocess_writes_label_first_splits(workflow, step_script):
    features = step_script("training/steps/preprocess.py").features
    sizes = {}
    for split in ("train", "validation", "test"):
        header, rows = read_csv(workflow / "prep" / split / f"{split}.csv")
        assert header == [features.LABEL, *features.MODEL_INPUTS]
        assert {row[0] for row in rows} == {"0", "1"}, f"{split} split lacks a class"
        sizes[split] = len(rows)
    assert sum(sizes.values()) == 400  # one row per customer of the sample (430 rows, 400 customers)
    assert sizes["test"] == 80 and sizes["validation"] == 60


def test_preprocess_is_deterministic(workflow, repo_root, tmp_path, step_script):
    main(step_script, "training/steps/preprocess.py", "--input-dir", repo_root / SAMPLE_DIR, "--output-dir", tmp_path)
    for split in ("train", "validation", "test"):
        assert (tmp_path / split / f"{split}.csv").read_bytes() == (
            workflow / "prep" / split / f"{split}.csv"
        ).read_bytes()


def test_preprocess_keeps_the_latest_record_per_customer(step_script):
    pre = step_script("training/steps/preprocess.py")
    import pandas as pd

    frame = pd.DataFrame(
        {
            "customer_id": ["A", "A", "B", "C", "C"],
            "event_time": [
                "2024-02-01T00:00:00Z",
                "2024-03-01T00:00:00Z",
                "2024-01-01T00:00:00Z",
                "2024-05-01T00:00:00.500Z",
                "2024-05-01T00:00:00Z",
            ],
            "tenure_months": [1, 2, 3, 4, 5],
            "is_deleted": [False, False, False, False, True],
        }
    )
    latest = pre.latest_per_customer(frame)
    assert latest[["customer_id", "tenure_months"]].values.tolist() == [["A", 2], ["B", 3], ["C", 4]]


def test_preprocess_rejects_an_export_without_the_features(tmp_path, step_script):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "x.csv").write_text("customer_id,event_time\nC1,2024-01-01T00:00:00Z\n")
    with pytest.raises(SystemExit, match=r"x\.csv: missing column\(s\) tenure_months"):
        step_script("training/steps/preprocess.py").main(
            ["--input-dir", str(tmp_path / "in"), "--output-dir", str(tmp_path)]
        )


def test_train_writes_a_self_contained_model(workflow, repo_root):
    model = workflow / "model"
    assert (model / "model.joblib").is_file()
    assert (model / "code" / "inference.py").read_bytes() == (repo_root / STEPS / "model" / "inference.py").read_bytes()
    assert "validation:auc=" in (workflow / "train.log").read_text()  # what the metric definition parses
    report = json.loads((model / "training_report.json").read_text())
    assert report["train_rows"] == 260 and report["validation_auc"] > 0.7


def test_evaluation_json_has_an_auc_above_the_threshold(workflow):
    report = json.loads((workflow / "evaluation" / "evaluation.json").read_text())
    metrics = report["binary_classification_metrics"]
    assert set(metrics) == {"auc", "accuracy", "precision", "recall", "f1"}
    assert all(set(m) == {"value", "standard_deviation"} for m in metrics.values())
    assert metrics["auc"]["value"] >= MIN_AUC  # the JsonGet path binary_classification_metrics.auc.value
    assert report["test_rows"] == 80


def test_inference_serves_csv_and_json(workflow, step_script):
    inference = step_script("training/steps/model/inference.py")
    model = inference.model_fn(str(workflow / "model"))
    csv_rows = "3,95.5,286.5,6,1,1\n60,25.0,1500.0,0,24,0\n"
    high, low = inference.predict_fn(inference.input_fn(csv_rows, "text/csv"), model)
    assert 0 <= low < high <= 1  # short tenure, many calls, monthly contract: churn is likelier
    header = "tenure_months,monthly_charges,total_charges,support_calls,contract_months,has_internet\n"
    assert list(inference.predict_fn(inference.input_fn(header + csv_rows, "text/csv"), model)) == [high, low]
    instance = dict(zip(model.feature_names_in_, [3, 95.5, 286.5, 6, 1, 1], strict=True))
    body = json.dumps({"instances": [instance]})
    scores = inference.predict_fn(inference.input_fn(body.encode(), "application/json"), model)
    payload, content_type = inference.output_fn(scores, "application/json")
    assert content_type == "application/json"
    assert json.loads(payload) == {"predictions": [{"churn_probability": round(float(high), 6), "churned": 1}]}
    with pytest.raises(ValueError, match="unsupported content type"):
        inference.input_fn("x", "text/plain")


def test_scripts_run_in_the_container_layout(workflow, repo_root, tmp_path):
    """features.py arrives as its own input, on the job's PYTHONPATH, not beside the code."""
    code, schema = tmp_path / "code", tmp_path / "schema"
    code.mkdir()
    schema.mkdir()
    shutil.copy(repo_root / "pipeline_defs" / "features.py", schema)
    for script in (STEPS / "model" / "train.py", STEPS / "model" / "inference.py"):
        shutil.copy(repo_root / script, code)
    # The training toolkit passes hyperparameters as arguments and channels as SM_* variables.
    run(
        repo_root,
        code / "train.py",
        "--C",
        "0.5",
        "--max_iter",
        "500",
        env={
            "PYTHONPATH": str(schema),
            "SM_CHANNEL_TRAIN": str(workflow / "prep" / "train"),
            "SM_CHANNEL_VALIDATION": str(workflow / "prep" / "validation"),
            "SM_MODEL_DIR": str(tmp_path / "model"),
        },
        cwd=tmp_path,
    )
    report = json.loads((tmp_path / "model" / "training_report.json").read_text())
    assert report["C"] == 0.5 and report["max_iter"] == 500
    assert (tmp_path / "model" / "code" / "inference.py").is_file()


def test_preprocess_leaves_out_unlabelled_and_rejects_garbage(repo_root, tmp_path, step_script):
    pre = step_script("training/steps/preprocess.py")
    sample = (repo_root / SAMPLE_DIR / "customers.csv").read_text().splitlines()
    (tmp_path / "in").mkdir()
    gone = tuple(f"C0000{n}," for n in range(1, 6))  # every record of five customers loses its label
    unlabelled = [line[: line.rindex(",") + 1] if line.startswith(gone) else line for line in sample]
    (tmp_path / "in" / "a.csv").write_text("\n".join(unlabelled) + "\n")
    assert pre.main(["--input-dir", str(tmp_path / "in"), "--output-dir", str(tmp_path / "out")]) == 0
    total = sum(len(read_csv(tmp_path / "out" / s / f"{s}.csv")[1]) for s in ("train", "validation", "test"))
    assert total == 400 - 5

    garbage = [sample[0], sample[1].replace(",54,", ",fifty-four,")] + sample[2:]
    (tmp_path / "in" / "a.csv").write_text("\n".join(garbage) + "\n")
    with pytest.raises(
        SystemExit,
        match=r"column 'tenure_months': 1 non-numeric value\(s\), e\.g\. 'fifty-four'"
        r" for customer 'C00001'",
    ):
        pre.main(["--input-dir", str(tmp_path / "in"), "--output-dir", str(tmp_path / "out")])


def test_preprocess_reads_the_athena_result_as_json_lines_like_the_csv(workflow, repo_root, tmp_path, step_script):
    """What the pipeline's Athena input hands the job: JSON lines in files without a suffix."""
    import pandas as pd

    frame = pd.read_csv(repo_root / SAMPLE_DIR / "customers.csv", dtype={"customer_id": str, "event_time": str})
    athena = tmp_path / "athena"
    athena.mkdir()
    half = len(frame) // 2
    frame.iloc[:half].to_json(athena / "20260101_000000_00001_abcde", orient="records", lines=True)
    frame.iloc[half:].to_json(athena / "20260101_000000_00001_fghij", orient="records", lines=True)
    out = tmp_path / "prep"
    main(
        step_script,
        "training/steps/preprocess.py",
        "--input-dir",
        athena,
        "--input-format",
        "json",
        "--output-dir",
        out,
    )
    for split in ("train", "validation", "test"):
        assert (out / split / f"{split}.csv").read_bytes() == (workflow / "prep" / split / f"{split}.csv").read_bytes()
