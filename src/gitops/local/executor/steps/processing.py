"""Processing steps: inputs from the embedded S3 (or an Athena query) into /opt/ml/processing, the job, outputs back."""

from __future__ import annotations

import json
import uuid

from gitops.local.executor.container import Container, base_env
from gitops.local.executor.errors import StepFailed, UnsupportedStep
from gitops.local.executor.registry import DefinitionStep, StepContext, StepKind, StepOutcome
from gitops.local.executor.storage import download_prefix, upload_dir

SUPPORTED_INPUT_MODES = ("File", "FastFile")  # FastFile streams on demand; locally it is a download like File


def check(step: DefinitionStep) -> None:
    args = step.arguments
    if "AppSpecification" not in args:
        raise UnsupportedStep(f"{step.where}: no AppSpecification; nothing to run")
    count = args.get("ProcessingResources", {}).get("ClusterConfig", {}).get("InstanceCount", 1)
    if isinstance(count, int) and count > 1:
        raise UnsupportedStep(f"{step.where}: not run locally: InstanceCount {count} needs a cluster of instances")
    for item in args.get("ProcessingInputs", []):
        name = item.get("InputName", "?")
        if "S3Input" in item:
            mode = item["S3Input"].get("S3InputMode", "File")
            if mode not in SUPPORTED_INPUT_MODES:
                raise UnsupportedStep(f"{step.where}: input {name!r}: not run locally: S3InputMode {mode}")
            continue
        dataset = item.get("DatasetDefinition", {})
        if "AthenaDatasetDefinition" in dataset:
            continue
        kinds = ", ".join(dataset) or ", ".join(k for k in item if k != "InputName")
        raise UnsupportedStep(f"{step.where}: input {name!r}: not run locally: {kinds}")
    for item in args.get("ProcessingOutputConfig", {}).get("Outputs", []):
        if "S3Output" not in item:
            raise UnsupportedStep(
                f"{step.where}: output {item.get('OutputName', '?')!r}: not run locally: only S3Output is"
            )


def run(ctx: StepContext) -> StepOutcome:
    args = ctx.arguments
    where = ctx.step.where
    container = Container(ctx.workdir, ctx.job_python, where)
    for item in args.get("ProcessingInputs", []):
        name = item.get("InputName", "?")
        if "S3Input" in item:
            s3_input = item["S3Input"]
            download_prefix(
                ctx.s3, s3_input["S3Uri"], container.path(s3_input["LocalPath"]), f"{where}: input {name!r}"
            )
        else:
            dataset = item["DatasetDefinition"]
            if ctx.athena is None:
                raise StepFailed(f"{where}: input {name!r}: not run locally: no Athena engine was given")
            ctx.athena(dataset["AthenaDatasetDefinition"], container.path(dataset["LocalPath"]))
    outputs = args.get("ProcessingOutputConfig", {}).get("Outputs", [])
    for item in outputs:
        container.path(item["S3Output"]["LocalPath"]).mkdir(parents=True, exist_ok=True)

    app = args["AppSpecification"]
    env = base_env(ctx.job_env, args.get("Environment", {}), container)
    if not args.get("NetworkConfig", {}).get("EnableNetworkIsolation", False):
        env.update(ctx.network_env)
    job_name = f"pipelines-{ctx.execution_id[:12]}-{ctx.step.name[:20]}-{uuid.uuid4().hex[:6]}"
    timeout = float(args.get("StoppingCondition", {}).get("MaxRuntimeInSeconds", 86400))
    container.run(
        [*app.get("ContainerEntrypoint", []), *app.get("ContainerArguments", [])],
        env,
        cwd=container.path("/opt/ml"),
        timeout=timeout,
        log_path=ctx.workdir / "job.log",
        log=ctx.log,
    )

    uploaded = {}
    for item in outputs:
        out = item["S3Output"]
        local = container.path(out["LocalPath"])
        if not any(p.is_file() for p in local.rglob("*")):
            raise StepFailed(
                f"{where}: broken wiring: output {item['OutputName']!r} is empty: the job wrote nothing to"
                f" {out['LocalPath']} (its LocalPath); check it against the step's arguments"
            )
        uploaded[item["OutputName"]] = len(upload_dir(ctx.s3, local, out["S3Uri"], f"{where}: output"))
    properties = {
        "ProcessingJobName": job_name,
        "ProcessingJobStatus": "Completed",
        "ProcessingInputs": args.get("ProcessingInputs", []),
        "ProcessingOutputConfig": args.get("ProcessingOutputConfig", {}),
        "AppSpecification": app,
    }
    return StepOutcome(properties, {"ProcessingJobName": job_name, "uploaded": uploaded})


def property_file(properties: dict, files: list[dict], name: str, where: str) -> tuple[str, str]:
    """(S3 URI of a declared property file, its output name) from a processing step's properties."""
    declared = next((f for f in files if f.get("PropertyFileName") == name), None)
    if declared is None:
        raise StepFailed(f"{where}: no property file {name!r} is declared")
    output = next(
        (
            o
            for o in properties["ProcessingOutputConfig"].get("Outputs", [])
            if o["OutputName"] == declared["OutputName"]
        ),
        None,
    )
    if output is None:
        raise StepFailed(f"{where}: property file {name!r} names output {declared['OutputName']!r}, which it lacks")
    return output["S3Output"]["S3Uri"].rstrip("/") + "/" + declared["FilePath"], declared["OutputName"]


def parse_json(data: bytes, where: str) -> object:
    try:
        return json.loads(data)
    except ValueError as exc:
        raise StepFailed(f"{where}: not JSON: {exc}") from None


KIND = StepKind("Processing", check, run, properties=("ProcessingOutputConfig", "ProcessingJobName", "PropertyFiles"))
