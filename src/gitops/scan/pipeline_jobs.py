"""The pipeline definitions' jobs: network isolation, VPC, KMS on volumes and outputs, inter-container encryption.

Every Processing, Training and Transform step (a Condition's branches included), every Model step
and every Tuning step's training definitions is checked against the request it makes of SageMaker
(the step's Arguments are the Create*Job / CreateModel request). A setting must be there as a
literal: a pipeline parameter could turn it off at execution time, so it is not proof. A job whose
container needs the network (it calls an AWS API, say) is suppressed in policy.yaml by rule and
`<pipeline>/<step>`, with why; it still needs its VPC.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from gitops.scan.findings import Finding, ToolRun
from gitops.scan.pipeline_files import PipelineRef
from gitops.scan.scanner import ScanInput

ISOLATION = "GITOPS_SM_NETWORK_ISOLATION"
VPC = "GITOPS_SM_VPC"
VOLUME_KMS = "GITOPS_SM_VOLUME_KMS"
OUTPUT_KMS = "GITOPS_SM_OUTPUT_KMS"
INTER_CONTAINER = "GITOPS_SM_INTER_CONTAINER_ENCRYPTION"
RULES = {
    ISOLATION: "network isolation (EnableNetworkIsolation: true)",
    VPC: "a VPC config with subnets and security groups",
    VOLUME_KMS: "a KMS key on the job's storage volumes (VolumeKmsKeyId)",
    OUTPUT_KMS: "a KMS key on the job's outputs (KmsKeyId)",
    INTER_CONTAINER: "inter-container traffic encryption when it runs on more than one instance",
}
HINTS = {
    ISOLATION: "set enable_network_isolation=True; if the container must call the network, suppress this rule for"
    " the step in policy.yaml saying why",
    VPC: "give the job the stage's isolated subnets and SageMaker security group (NetworkConfig/VpcConfig)",
    VOLUME_KMS: "set volume_kms_key to the stage's KMS key",
    OUTPUT_KMS: "set output_kms_key to the stage's KMS key",
    INTER_CONTAINER: "set encrypt_inter_container_traffic=True (or run on one instance)",
}


@dataclass
class Job:
    """One request a step makes of SageMaker, with where its settings sit in that request."""

    kind: str  # Processing, Training, Transform, Model (a Tuning step's training definitions count as Training)
    step: str
    request: dict
    where: str  # path of the request inside the step, for the message ("" for the step's Arguments)


def _get(node: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


def _is_true(value: Any) -> bool:
    return value is True


def _has_value(value: Any) -> bool:
    """A KMS key given: a non-empty string, or a pipeline expression that yields one."""
    return (isinstance(value, str) and value.strip() != "") or (isinstance(value, dict) and bool(value))


def _vpc_ok(vpc: Any) -> bool:
    return isinstance(vpc, dict) and bool(vpc.get("Subnets")) and bool(vpc.get("SecurityGroupIds"))


def _instances(count: Any) -> int | None:
    """How many instances, or None when a pipeline parameter decides (then it may be more than one)."""
    return count if isinstance(count, int) else None


def _jobs(pipeline: PipelineRef) -> Iterator[Job]:
    for step in pipeline.steps():
        name, kind, arguments = step.get("Name"), step.get("Type"), step.get("Arguments")
        if not isinstance(name, str) or not isinstance(arguments, dict):
            continue
        if kind in ("Processing", "Training", "Transform", "Model", "QualityCheck", "ClarifyCheck"):
            yield Job("Processing" if kind in ("QualityCheck", "ClarifyCheck") else kind, name, arguments, "")
        elif kind == "Tuning":
            single = arguments.get("TrainingJobDefinition")
            if isinstance(single, dict):
                yield Job("Training", name, single, "TrainingJobDefinition.")
            for index, definition in enumerate(arguments.get("TrainingJobDefinitions") or []):
                if isinstance(definition, dict):
                    yield Job("Training", name, definition, f"TrainingJobDefinitions[{index}].")


Check = Callable[[dict], "str | None"]  # the request -> the setting that is missing, or None when it passes


def _need(ok: bool, setting: str) -> str | None:
    return None if ok else setting


def _more_than_one(count: int | None) -> bool:
    return count is None or count > 1


def _training_instances(request: dict) -> int | None:
    config = request.get("ResourceConfig")
    if not isinstance(config, dict):
        return None
    groups = config.get("InstanceGroups")
    if isinstance(groups, list) and groups:
        counts = [_instances(g.get("InstanceCount")) if isinstance(g, dict) else None for g in groups]
        return None if None in counts else sum(c for c in counts if c is not None)
    return _instances(config.get("InstanceCount"))


# (job kind, rule) -> its check. A transform job runs its model's container: isolation and VPC are the
# model's (its Model step), and SageMaker offers no inter-container setting for it.
CHECKS: dict[tuple[str, str], Check] = {
    ("Processing", ISOLATION): lambda r: _need(
        _is_true(_get(r, "NetworkConfig", "EnableNetworkIsolation")), "NetworkConfig.EnableNetworkIsolation"
    ),
    ("Processing", VPC): lambda r: _need(_vpc_ok(_get(r, "NetworkConfig", "VpcConfig")), "NetworkConfig.VpcConfig"),
    ("Processing", VOLUME_KMS): lambda r: _need(
        _has_value(_get(r, "ProcessingResources", "ClusterConfig", "VolumeKmsKeyId")),
        "ProcessingResources.ClusterConfig.VolumeKmsKeyId",
    ),
    ("Processing", OUTPUT_KMS): lambda r: _need(
        not _get(r, "ProcessingOutputConfig", "Outputs") or _has_value(_get(r, "ProcessingOutputConfig", "KmsKeyId")),
        "ProcessingOutputConfig.KmsKeyId",
    ),
    ("Processing", INTER_CONTAINER): lambda r: _need(
        not _more_than_one(_instances(_get(r, "ProcessingResources", "ClusterConfig", "InstanceCount")))
        or _is_true(_get(r, "NetworkConfig", "EnableInterContainerTrafficEncryption")),
        "NetworkConfig.EnableInterContainerTrafficEncryption",
    ),
    ("Training", ISOLATION): lambda r: _need(_is_true(r.get("EnableNetworkIsolation")), "EnableNetworkIsolation"),
    ("Training", VPC): lambda r: _need(_vpc_ok(r.get("VpcConfig")), "VpcConfig"),
    ("Training", VOLUME_KMS): lambda r: _need(
        _has_value(_get(r, "ResourceConfig", "VolumeKmsKeyId")), "ResourceConfig.VolumeKmsKeyId"
    ),
    ("Training", OUTPUT_KMS): lambda r: _need(
        _has_value(_get(r, "OutputDataConfig", "KmsKeyId")), "OutputDataConfig.KmsKeyId"
    ),
    ("Training", INTER_CONTAINER): lambda r: _need(
        not _more_than_one(_training_instances(r)) or _is_true(r.get("EnableInterContainerTrafficEncryption")),
        "EnableInterContainerTrafficEncryption",
    ),
    ("Transform", VOLUME_KMS): lambda r: _need(
        _has_value(_get(r, "TransformResources", "VolumeKmsKeyId")), "TransformResources.VolumeKmsKeyId"
    ),
    ("Transform", OUTPUT_KMS): lambda r: _need(
        _has_value(_get(r, "TransformOutput", "KmsKeyId")), "TransformOutput.KmsKeyId"
    ),
    ("Model", ISOLATION): lambda r: _need(_is_true(r.get("EnableNetworkIsolation")), "EnableNetworkIsolation"),
    ("Model", VPC): lambda r: _need(_vpc_ok(r.get("VpcConfig")), "VpcConfig"),
}


def _what_is_wrong(rule: str) -> str:
    if rule in (ISOLATION, INTER_CONTAINER):
        return "is not true (a pipeline parameter does not count: an execution could set it false)"
    return "is missing"


def coverage_key(kind: str) -> str:
    return f"SageMaker pipeline step: {kind}"


def scan_pipelines(pipelines: list[PipelineRef]) -> ToolRun:
    """Every rule over every job of every pipeline definition; a finding names the pipeline and the step."""
    findings: list[Finding] = []
    passed = 0
    coverage: dict[str, set[str]] = {}
    for pipeline in pipelines:
        for job in _jobs(pipeline):
            for rule in RULES:
                check = CHECKS.get((job.kind, rule))
                if check is None:
                    continue
                coverage.setdefault(coverage_key(job.kind), set()).add(rule)
                missing = check(job.request)
                if missing is None:
                    passed += 1
                    continue
                findings.append(
                    Finding(
                        tool="pipelines",
                        rule_id=rule,
                        severity="error",
                        message=(
                            f"pipeline {pipeline.name}, step {job.step} ({job.kind}): needs {RULES[rule]};"
                            f" {job.where}{missing} {_what_is_wrong(rule)}"
                        ),
                        file=pipeline.rel,
                        stage=pipeline.stage,
                        pipeline=pipeline.name,
                        step=job.step,
                        line=pipeline.line_of(job.step),
                        hint=HINTS[rule],
                    )
                )
    return ToolRun(
        tool="pipelines",
        version=_version(),
        findings=findings,
        passed=passed,
        targets=sorted({f"{p.stage}/pipelines/{p.name}" for p in pipelines}),
        rules=sorted(RULES),
        coverage={kind: sorted(ids) for kind, ids in coverage.items()},
    )


def _version() -> str:
    return f"gitops {metadata.version('sagemaker-gitops')}"


class PipelineJobsScanner:
    """The gate's own rules over the release's SageMaker pipeline definitions (no tool covers them)."""

    name = "pipelines"
    information_uri = "https://docs.aws.amazon.com/sagemaker/latest/dg/mkt-algo-model-internet-free.html"
    passed_unit = "passed (rule, job) pairs"

    def version(self) -> str:
        return _version()

    def check_ready(self, job: ScanInput) -> None:
        return None

    def run(self, job: ScanInput) -> ToolRun:
        return scan_pipelines(job.pipelines)


SCANNER = PipelineJobsScanner()
