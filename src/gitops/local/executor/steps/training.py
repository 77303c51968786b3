"""Training steps: script mode as the SageMaker scikit-learn training toolkit runs it, then model.tar.gz to S3.

Channels land in /opt/ml/input/data/<channel>; the toolkit's configuration files and SM_*
variables are written as the toolkit writes them; sagemaker_submit_directory is unpacked into
/opt/ml/code and sagemaker_program runs there with the other hyperparameters as --name value.
/opt/ml/model is packed as <S3OutputPath>/<job name>/output/model.tar.gz.
"""

from __future__ import annotations

import json
import os
import re
import tarfile
import uuid
from pathlib import Path

from gitops.local.executor.container import Container, base_env
from gitops.local.executor.errors import StepFailed, UnsupportedStep
from gitops.local.executor.registry import DefinitionStep, StepContext, StepKind, StepOutcome
from gitops.local.executor.storage import download_prefix, split_uri

TOOLKIT_KEYS = ("sagemaker_program", "sagemaker_submit_directory", "sagemaker_container_log_level", "sagemaker_region")


def check(step: DefinitionStep) -> None:
    args = step.arguments
    algorithm = args.get("AlgorithmSpecification", {})
    if "TrainingImage" not in algorithm:
        raise UnsupportedStep(f"{step.where}: not run locally: only a training image in script mode runs here")
    if algorithm.get("TrainingInputMode", "File") not in ("File", "FastFile"):
        raise UnsupportedStep(f"{step.where}: not run locally: TrainingInputMode {algorithm['TrainingInputMode']}")
    count = args.get("ResourceConfig", {}).get("InstanceCount", 1)
    if isinstance(count, int) and count > 1:
        raise UnsupportedStep(f"{step.where}: not run locally: InstanceCount {count} (distributed training)")
    if "sagemaker_program" not in args.get("HyperParameters", {}):
        raise UnsupportedStep(f"{step.where}: not run locally: no sagemaker_program hyperparameter (not script mode)")
    for channel in args.get("InputDataConfig", []):
        if "S3DataSource" not in channel.get("DataSource", {}):
            raise UnsupportedStep(f"{step.where}: channel {channel.get('ChannelName')!r}: not run locally: not S3")


def _decoded(value: str) -> object:
    try:
        return json.loads(value)
    except (TypeError, ValueError):
        return value


def run(ctx: StepContext) -> StepOutcome:
    args = ctx.arguments
    where = ctx.step.where
    container = Container(ctx.workdir, ctx.job_python, where)
    channels = []
    for channel in args.get("InputDataConfig", []):
        name = channel["ChannelName"]
        source = channel["DataSource"]["S3DataSource"]
        download_prefix(
            ctx.s3, source["S3Uri"], container.path(f"/opt/ml/input/data/{name}"), f"{where}: channel {name!r}"
        )
        channels.append(name)

    hyperparameters = {k: str(v) for k, v in args.get("HyperParameters", {}).items()}
    config_dir = container.path("/opt/ml/input/config")
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / "hyperparameters.json").write_text(json.dumps(hyperparameters))
    (config_dir / "inputdataconfig.json").write_text(
        json.dumps(
            {
                c["ChannelName"]: {k: v for k, v in c.items() if k != "ChannelName"}
                for c in args.get("InputDataConfig", [])
            }
        )
    )
    (config_dir / "resourceconfig.json").write_text(json.dumps({"current_host": "algo-1", "hosts": ["algo-1"]}))

    program = str(_decoded(hyperparameters["sagemaker_program"]))
    submit = _decoded(hyperparameters.get("sagemaker_submit_directory", '""'))
    code_dir = container.path("/opt/ml/code")
    code_dir.mkdir(parents=True, exist_ok=True)
    if submit:
        archive = _submit_archive(ctx, container, str(submit))
        with tarfile.open(archive) as tar:
            tar.extractall(code_dir, filter="data")
    if not (code_dir / program).is_file():
        raise StepFailed(f"{where}: sagemaker_program {program!r} is not in the submitted code ({submit or 'none'})")

    user = {k: _decoded(v) for k, v in hyperparameters.items() if k not in TOOLKIT_KEYS}
    user_args = [part for key, value in user.items() for part in (f"--{key}", _arg(value))]
    model_dir = container.path("/opt/ml/model")
    model_dir.mkdir(parents=True, exist_ok=True)
    output_data = container.path("/opt/ml/output/data")
    output_data.mkdir(parents=True, exist_ok=True)
    env = base_env(ctx.job_env, args.get("Environment", {}), container)
    if not args.get("EnableNetworkIsolation", False):
        env.update(ctx.network_env)
    env.update(
        {
            "SM_MODEL_DIR": str(model_dir),
            "SM_CHANNELS": json.dumps(channels),
            "SM_OUTPUT_DATA_DIR": str(output_data),
            "SM_OUTPUT_DIR": str(container.path("/opt/ml/output")),
            "SM_INPUT_DIR": str(container.path("/opt/ml/input")),
            "SM_INPUT_CONFIG_DIR": str(config_dir),
            "SM_HPS": json.dumps(user),
            "SM_USER_ARGS": json.dumps(user_args),
            "SM_USER_ENTRY_POINT": program,
            "SM_MODULE_DIR": str(submit),
            "SM_CURRENT_HOST": "algo-1",
            "SM_HOSTS": json.dumps(["algo-1"]),
            "SM_NUM_CPUS": str(os.cpu_count() or 1),
            "SM_NUM_GPUS": "0",
            "SM_TRAINING_ENV": json.dumps({"hyperparameters": user, "channel_input_dirs": {}}),
            **{f"SM_CHANNEL_{name.upper()}": str(container.path(f"/opt/ml/input/data/{name}")) for name in channels},
            **{f"SM_HP_{key.upper()}": _arg(value) for key, value in user.items()},
        }
    )
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(code_dir), env.get("PYTHONPATH", "")]))
    timeout = float(args.get("StoppingCondition", {}).get("MaxRuntimeInSeconds", 86400))
    output = container.run(
        ["python3", f"/opt/ml/code/{program}", *user_args],
        env,
        cwd=code_dir,
        timeout=timeout,
        log_path=ctx.workdir / "job.log",
        log=ctx.log,
    )
    if not any(p.is_file() for p in model_dir.rglob("*")):
        raise StepFailed(f"{where}: the training script wrote nothing to SM_MODEL_DIR (/opt/ml/model)")

    job_name = f"pipelines-{ctx.execution_id[:12]}-{ctx.step.name[:20]}-{uuid.uuid4().hex[:6]}"
    output_path = str(args["OutputDataConfig"]["S3OutputPath"]).rstrip("/")
    model_uri = f"{output_path}/{job_name}/output/model.tar.gz"
    packed = ctx.workdir / "model.tar.gz"
    with tarfile.open(packed, "w:gz") as tar:
        for path in sorted(model_dir.rglob("*")):
            tar.add(path, arcname=path.relative_to(model_dir).as_posix(), recursive=False)
    bucket, key = split_uri(model_uri, f"{where}: OutputDataConfig.S3OutputPath")
    ctx.s3.upload_file(str(packed), bucket, key)

    metrics = _final_metrics(args.get("AlgorithmSpecification", {}).get("MetricDefinitions", []), output)
    properties = {
        "TrainingJobName": job_name,
        "TrainingJobStatus": "Completed",
        "ModelArtifacts": {"S3ModelArtifacts": model_uri},
        "OutputDataConfig": args["OutputDataConfig"],
        "HyperParameters": hyperparameters,
        "FinalMetricDataList": metrics,
    }
    return StepOutcome(properties, {"TrainingJobName": job_name, "ModelArtifacts": model_uri, "metrics": metrics})


def _submit_archive(ctx: StepContext, container: Container, submit: str) -> Path:
    if submit.startswith("s3://"):
        local = container.path("/opt/ml/input/submit")
        files = download_prefix(ctx.s3, submit, local, f"{ctx.step.where}: sagemaker_submit_directory")
        return files[0]
    archive = container.path(submit)
    if not archive.is_file():
        raise StepFailed(
            f"{ctx.step.where}: sagemaker_submit_directory {submit} is not in any channel (check the code channel)"
        )
    return archive


def _arg(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _final_metrics(definitions: list[dict], log: str) -> list[dict]:
    """The last value each MetricDefinition's regex finds in the job's log (FinalMetricDataList)."""
    metrics = []
    for definition in definitions:
        found = re.findall(definition["Regex"], log)
        if found:
            last = found[-1] if isinstance(found[-1], str) else found[-1][0]
            try:
                metrics.append({"MetricName": definition["Name"], "Value": float(last)})
            except ValueError:
                continue
    return metrics


KIND = StepKind(
    "Training", check, run, properties=("ModelArtifacts", "TrainingJobName", "FinalMetricDataList", "OutputDataConfig")
)
