"""`gitops verify`: prove what runs in a stage's account is exactly what the release says.

Checks every stack (status, deployed template), the live resources the safety promises rest on
(read back through their own APIs, deploy/live.py), CloudFormation's drift detection on AWS, every
SageMaker pipeline (definition hash), the step code in the artifact bucket (hash of its bytes),
the model package group, and the endpoint when a model is deployed. What could not be checked on
this target is listed as such. VerifyReport.raise_for_failure() makes the differences one error.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from gitops.deploy import live
from gitops.deploy.aws import AWS_ERRORS, OK_STACK_STATES, StageClients, check_account, stack_status
from gitops.deploy.model_parameters import MODEL_DATA_PARAMETER, MODEL_SHA256_PARAMETER
from gitops.deploy.plan import StackPlan, StagePlan, plan_stage
from gitops.deploy.sagemaker_pipelines import definition_sha256, describe_model_package_group, describe_pipeline
from gitops.errors import GitopsError, aws_error_text
from gitops.model.artifact import read_sha256
from gitops.model.invoke import call_endpoint, run_locally
from gitops.model.pin import ServedModel
from gitops.progress import Progress
from gitops.target import Target

NOT_CHECKED = "not-checked"  # the kind of a check that could not be made on this target


class VerificationFailed(GitopsError):
    """What is deployed in a stage differs from the release."""

    hint = "re-run `gitops deploy --stage <stage>` to converge, or find who changed the named resource out of band"


@dataclass
class Check:
    # stack | template | live resource type | drift | pipeline | asset | model-package-group
    # | model | model-artifact | prediction
    kind: str
    name: str
    ok: bool
    detail: str
    skipped: bool = False


@dataclass
class VerifyReport:
    release_id: str
    stage: str
    account: str
    region: str
    target: str
    checks: list[Check] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    @property
    def problems(self) -> list[str]:
        return [f"{c.kind} {c.name}: {c.detail}" for c in self.checks if not c.ok]

    @property
    def not_checked(self) -> dict[str, list[str]]:
        """Per stack, what this target could not deploy and so did not check: "LogicalId (Type)"."""
        found: dict[str, list[str]] = {}
        for c in self.checks:
            if c.kind == NOT_CHECKED:
                stack, logical = c.name.split("/", 1)
                found.setdefault(stack, []).append(f"{logical} ({c.detail.split(': ', 1)[0]})")
        return found

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"ok": self.ok, "problems": self.problems, "not_checked": self.not_checked}

    def raise_for_failure(self) -> None:
        if not self.ok:
            problems = self.problems
            shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
            raise VerificationFailed(f"stage '{self.stage}' does not match release {self.release_id[:12]}: {shown}")


def _short(digest: str | None) -> str:
    return (digest or "none")[:12]


class _StageVerify:
    def __init__(self, plan: StagePlan, target: Target, say: Progress) -> None:
        self.plan = plan
        self.config = plan.config
        self.target = target
        self.say = say
        self.aws = StageClients(target, plan.config)
        self.report = VerifyReport(
            plan.manifest.release_id, self.config.stage, self.config.account, self.config.region, target.kind
        )
        self.live_stacks: dict[str, dict] = {}

    def add(self, kind: str, name: str, ok: bool, detail: str, skipped: bool = False) -> None:
        # Recorded, not narrated: the verb prints each check once, in its table (progress says what is being read).
        self.report.checks.append(Check(kind, name, ok, detail, skipped))

    def stacks(self) -> None:
        cfn = self.aws.cfn
        for stack in self.plan.stacks:
            self.say(
                f"{stack.stack_name}: status, template, live resources" + ("" if self.target.is_local else ", drift")
            )
            live = stack_status(cfn, stack.stack_name)
            if live is None:
                self.add("stack", stack.stack_name, False, "does not exist")
                continue
            self.live_stacks[stack.name] = live
            status = live["StackStatus"]
            self.add("stack", stack.stack_name, status in OK_STACK_STATES, status)
            self.template(stack)
            self.resources(stack)
            if not self.target.is_local:
                self.drift(stack)

    def resources(self, stack: StackPlan) -> None:
        """The live resources the promises rest on, read back through their own APIs."""
        for reading in live.read_back(
            self.aws, stack.stack_name, stack.deployed, region=self.config.region, account=self.config.account
        ):
            self.add(reading.kind, reading.name, reading.ok, reading.detail)

    def drift(self, stack: StackPlan) -> None:
        """AWS only: CloudFormation's drift detection over every resource type it supports."""
        try:
            drifts, incomplete = live.detect_drift(self.aws.cfn, stack.stack_name)
        except (live.DriftDetectionFailed, ClientError, BotoCoreError) as exc:
            self.add("drift", stack.stack_name, False, f"drift detection did not run: {exc}")
            return
        for drift in drifts:
            self.add("drift", f"{stack.stack_name}/{drift.logical_id}", False, drift.describe())
        if incomplete:
            self.add("drift", stack.stack_name, True, f"detection incomplete: {incomplete}", skipped=True)
        elif not drifts:
            self.add("drift", stack.stack_name, True, "CloudFormation drift detection: in sync")

    def not_checked(self) -> None:
        """Embedded target: what its projection left out is not deployed there, so not verified there."""
        for stack in self.plan.stacks:
            for dropped in stack.projection.dropped if stack.projection else []:
                if dropped.logical_id.startswith("Outputs."):
                    continue  # an output, not a resource: nothing to read back
                name = f"{stack.stack_name}/{dropped.logical_id}"
                self.add(NOT_CHECKED, name, True, f"{dropped.type}: {dropped.reason}", skipped=True)

    def template(self, stack: StackPlan) -> None:
        body = self.aws.cfn.get_template(StackName=stack.stack_name)["TemplateBody"]
        expected = stack.deployed
        what = "the release's template" if stack.projection is None else "the release's embedded projection"
        if not isinstance(body, dict):
            self.add("template", stack.stack_name, False, f"deployed template is not JSON; expected {what}")
            return
        if body == expected:
            self.add("template", stack.stack_name, True, f"equals {what}")
            return
        deployed_res, expected_res = body.get("Resources", {}), expected.get("Resources", {})
        differs = sorted(
            set(deployed_res) ^ set(expected_res)
            | {lid for lid in set(deployed_res) & set(expected_res) if deployed_res[lid] != expected_res[lid]}
        )
        sections = sorted(k for k in set(body) | set(expected) if k != "Resources" and body.get(k) != expected.get(k))
        parts = []
        if differs:
            parts.append(f"resources {', '.join(differs[:5])}{' …' if len(differs) > 5 else ''}")
        if sections:
            parts.append(f"sections {', '.join(sections)}")
        self.add("template", stack.stack_name, False, f"deployed template differs from {what} ({'; '.join(parts)})")

    def pipelines(self) -> None:
        sm = self.aws.sagemaker
        for pipeline in self.plan.pipelines:
            live = describe_pipeline(sm, pipeline.pipeline_name)
            if live is None:
                self.add("pipeline", pipeline.pipeline_name, False, "does not exist")
                continue
            digest = definition_sha256(live.get("PipelineDefinition"))
            if digest != pipeline.sha256:
                self.add(
                    "pipeline",
                    pipeline.pipeline_name,
                    False,
                    f"definition sha256 {_short(digest)} != release {_short(pipeline.sha256)}",
                )
            elif live.get("RoleArn") != self.config.sagemaker_execution_role_arn:
                self.add(
                    "pipeline",
                    pipeline.pipeline_name,
                    False,
                    f"role {live.get('RoleArn')} != {self.config.sagemaker_execution_role_arn}",
                )
            else:
                self.add("pipeline", pipeline.pipeline_name, True, f"definition sha256 {_short(digest)}")

    def assets(self) -> None:
        bucket = self.config.artifact_bucket_name
        for path in sorted({p for pipeline in self.plan.pipelines for p in pipeline.assets}):
            expected = self.plan.manifest.files[path]
            uri = f"s3://{bucket}/{path}"
            try:
                found, how, head = live.object_sha256(self.aws.s3, bucket, path)
            except ClientError as exc:
                self.add("asset", uri, False, f"missing ({aws_error_text(exc)})")
                continue
            if found != expected:
                self.add("asset", uri, False, f"sha256 {_short(found)} ({how}) != release {_short(expected)}")
            elif head.get("ServerSideEncryption") != "aws:kms":
                self.add("asset", uri, False, f"not encrypted with the stage key ({head.get('ServerSideEncryption')})")
            else:
                self.add("asset", uri, True, f"sha256 matches ({how})")

    def model_package_group(self) -> None:
        name = self.config.model_package_group_name
        exists = describe_model_package_group(self.aws.sagemaker, name) is not None
        self.add("model-package-group", name, exists, "exists" if exists else "does not exist")

    def endpoint(self) -> None:
        """The pinned model: the stage's copy of its artifact, the stack's parameters, and a real prediction."""
        model = self.plan.pin.model
        for stack in self.plan.stacks:
            if MODEL_DATA_PARAMETER not in stack.parameters:
                continue
            live = self.live_stacks.get(stack.name)
            if live is None:
                continue  # the stack check already failed
            params = {p["ParameterKey"]: p.get("ParameterValue", "") for p in live.get("Parameters", [])}
            logical_id = _endpoint_resource(stack.deployed)
            shown = f"{stack.stack_name}/{logical_id or _endpoint_resource(stack.template) or 'endpoint'}"
            served = params.get(MODEL_SHA256_PARAMETER, "")
            if model is None:
                self.add(
                    "model",
                    shown,
                    served == "",
                    "none pinned, none served" if not served else f"serves {served[:12]}… though none is pinned",
                )
                continue
            self.add(
                "model",
                shown,
                served == model.artifact.sha256,
                f"serves {model.short()}"
                if served == model.artifact.sha256
                else f"serves sha256 {served[:12] or 'none'}…, the pin {model.artifact.sha256[:12]}…",
            )
            self.model_artifact(model)
            if _endpoint_resource(stack.template) is None:
                self.add("endpoint", shown, False, "a model is pinned but the template declares no endpoint")
                continue
            if logical_id is not None:
                self.served_container(stack, logical_id, shown, model)
            self.prediction(shown)

    def served_container(self, stack: StackPlan, logical_id: str, shown: str, model: ServedModel) -> None:
        """What the live endpoint runs, read back: its config's model's image and artifact, against the pin."""
        sm = self.aws.sagemaker
        want = (model.image, model.stage_artifact_uri(self.config))
        try:
            physical = self.aws.cfn.describe_stack_resource(StackName=stack.stack_name, LogicalResourceId=logical_id)[
                "StackResourceDetail"
            ]["PhysicalResourceId"]
            endpoint = sm.describe_endpoint(EndpointName=physical.split(":endpoint/")[-1])
            config = sm.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
            containers = {
                v["VariantName"]: sm.describe_model(ModelName=v["ModelName"]).get("PrimaryContainer") or {}
                for v in config["ProductionVariants"]
            }
        except AWS_ERRORS as exc:  # a missing endpoint is reported (and repaired) with the stack's resources
            self.add("served-model", shown, False, f"cannot read what the endpoint runs: {aws_error_text(exc)}")
            return
        for variant, container in containers.items():
            got = (container.get("Image"), container.get("ModelDataUrl"))
            if got != want:
                self.add("served-model", shown, False, f"variant {variant} runs {got}, the pin {want}")
                return
        self.add("served-model", shown, True, f"every variant runs the pinned image and artifact ({model.short()})")

    def model_artifact(self, model: ServedModel) -> None:
        bucket, key = model.stage_artifact(self.config)
        found = read_sha256(self.aws.s3, bucket, key)
        uri = f"s3://{bucket}/{key}"
        if found is None:
            self.add("model-artifact", uri, False, "missing")
        else:
            ok = found[0] == model.artifact.sha256
            self.add(
                "model-artifact",
                uri,
                ok,
                f"sha256 {'matches the pin' if ok else _short(found[0]) + ' != pin'} ({found[1]})",
            )

    def prediction(self, shown: str) -> None:
        """AWS: InvokeEndpoint. Embedded: the artifact's own inference code, since moto's answer is canned."""
        model, sample = self.plan.pin.model, self.plan.pin.sample
        assert model is not None
        if sample is None:
            self.add("prediction", shown, False, "the release's model.json carries no sample records to send")
            return
        limit = self.config.inference.latency_alarm_ms
        if self.target.is_local:
            bucket, key = model.stage_artifact(self.config)
            data = self.aws.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            checked = run_locally(data, sample, limit)
        else:
            checked = call_endpoint(getattr(self.aws, "sagemaker-runtime"), self.config.endpoint_name, sample, limit)
        self.add("prediction", shown, checked.ok, f"{checked.how}: {checked.detail}", skipped=checked.skipped)


def _endpoint_resource(template: dict) -> str | None:
    return next((lid for lid, r in template["Resources"].items() if r["Type"] == "AWS::SageMaker::Endpoint"), None)


def verify_stage(release_dir: Path, stage: str, target: Target, *, progress: Progress | None = None) -> VerifyReport:
    """Compare the stage's account with the release; the report lists every check and what differs.

    Bad input and wrong credentials raise (as deploy does); differences do not: call
    report.raise_for_failure() to turn them into one VerificationFailed.
    """
    started = time.perf_counter()
    plan = plan_stage(release_dir, stage, target)
    run = _StageVerify(plan, target, progress or (lambda _msg: None))
    check_account(run.aws.sts, plan.config, verb="verify")

    try:
        run.stacks()
        run.model_package_group()
        run.pipelines()
        run.assets()
        run.endpoint()
        run.not_checked()
    except AWS_ERRORS as exc:
        run.add("aws", stage, False, aws_error_text(exc))
    run.report.seconds = round(time.perf_counter() - started, 2)
    return run.report
