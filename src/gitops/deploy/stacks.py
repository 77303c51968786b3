"""Stacks, one change set each: created or updated to the release's template, waited for, failure explained.

On AWS an update is a drift-aware change set (DeploymentMode=REVERT_DRIFT): what was changed out
of band on a resource the template declares is put back. The embedded target has no drift
handling, so deploy reads the live resources back there (deploy/live.py) and repairs them itself.
"""

from __future__ import annotations

import time
import uuid

from gitops.deploy import app_service, live
from gitops.deploy.assets import Assets
from gitops.deploy.aws import (
    AWS_ERRORS,
    EMPTY_STACK_STATES,
    NO_CHANGES,
    OK_STACK_STATES,
    USABLE_STACK_STATES,
    StageClients,
    poll,
    stack_status,
)
from gitops.deploy.endpoint_rollback import explain_rollback
from gitops.deploy.model_parameters import MODEL_DATA_PARAMETER, model_parameter_values
from gitops.deploy.plan import StackPlan, StagePlan
from gitops.deploy.report import DeployReport, StackResult
from gitops.deploy.templates import TEMPLATE_BODY_LIMIT, compact_json, template_references
from gitops.errors import DeployFailed, aws_error_text
from gitops.progress import Progress
from gitops.release.app_image import NO_IMAGE_NOTE, read_release_app
from gitops.release.assets import sha256_bytes
from gitops.target import Target

CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"]


class StackDeployer:
    """Deploys the plan's stacks in order, as the stage's cfn-exec role once it exists."""

    def __init__(
        self,
        plan: StagePlan,
        target: Target,
        aws: StageClients,
        assets: Assets,
        report: DeployReport,
        say: Progress,
    ) -> None:
        self.plan = plan
        self.config = plan.config
        self.target = target
        self.aws = aws
        self.assets = assets
        self.report = report
        self.say = say
        self.execution_role_arn: str | None = None
        self.delay = 0.1 if target.is_local else 5.0

    def deploy_all(self) -> None:
        self.execution_role_arn = self.cfn_execution_role()
        for stack in self.plan.stacks:
            result = self.deploy_stack(stack)
            self.report.stacks.append(result)
            if result.action == "failed":
                if not self.target.is_local and MODEL_DATA_PARAMETER in stack.parameters and self.plan.pin.model:
                    # A blue/green update SageMaker rolled back: the failure names the alarm that fired.
                    rolled_back = explain_rollback(self.aws.sagemaker, self.aws.cloudwatch, self.config)
                    result.reason = rolled_back or result.reason
                raise DeployFailed(f"stack {result.stack_name}: {result.reason}")
            if self.target.is_local:
                result.repaired = self.repair_embedded(stack)
            elif app_service.runs_app(stack):
                self.wait_for_app(stack)

    # -- what each stack gets

    def cfn_execution_role(self) -> str | None:
        """The role CloudFormation acts as: the stage's cfn-exec role, once the first stack created it.

        The very first deploy of a stage (from a workstation, before any of its stacks exist)
        runs as the caller; every later one, the pipeline's included, passes the role, so the
        deploy build role itself needs no rights to create what the templates hold.
        """
        first = self.plan.stacks[0].stack_name if self.plan.stacks else None
        found = stack_status(self.aws.cfn, first) if first else None
        if found is None or found["StackStatus"] not in USABLE_STACK_STATES:
            self.say(f"{first}: not deployed yet; CloudFormation acts as the caller for this first deploy")
            return None
        return f"arn:aws:iam::{self.config.account}:role/{self.config.cfn_execution_role_name}"

    def stack_parameters(self, stack: StackPlan) -> list[dict[str, str]]:
        """The parameters a stack declares, from the release's pins (app image, model): nothing is looked up."""
        if app_service.runs_app(stack):
            return app_service.image_parameters(stack, self.plan.release_dir)
        values = model_parameter_values(self.plan.pin, self.config)
        return [{"ParameterKey": k, "ParameterValue": v} for k, v in values.items() if k in stack.parameters]

    def wait_for_app(self, stack: StackPlan) -> None:
        """The App stack deployed: its service must settle on the release's image (a rollback fails the deploy)."""
        image = read_release_app(self.plan.release_dir)
        if image is None:
            self.say(f"{stack.stack_name}: {NO_IMAGE_NOTE}")
            return
        app_service.wait_for_service(self.aws.ecs, self.config, image, say=self.say)

    def template_location(self, stack: StackPlan) -> dict[str, str]:
        body = compact_json(stack.deployed)
        if len(body) <= TEMPLATE_BODY_LIMIT:
            return {"TemplateBody": body.decode("utf-8")}
        bucket = self.assets.bootstrap_bucket()
        key = f"gitops-templates/{sha256_bytes(body)}.json"
        try:
            self.assets.put(bucket, key, body, encrypt=False)
        except AWS_ERRORS as exc:
            raise DeployFailed(
                f"{stack.path}: uploading the template to s3://{bucket}/{key}: {aws_error_text(exc)}"
            ) from exc
        return {"TemplateURL": f"https://{bucket}.s3.{self.config.region}.amazonaws.com/{key}"}

    # -- one stack

    def deploy_stack(self, stack: StackPlan) -> StackResult:
        cfn = self.aws.cfn
        started = time.perf_counter()
        result = StackResult(stack.name, stack.stack_name, "failed")
        if stack.projection:
            result.dropped = stack.projection.dropped
            result.detached_depends_on = stack.projection.detached
            result.adjusted = stack.projection.adjusted
        found = stack_status(cfn, stack.stack_name)
        status = found["StackStatus"] if found else None
        parameters = self.stack_parameters(stack)
        if found is not None and status in EMPTY_STACK_STATES:
            # Nothing deployed is lost: such a stack holds no resources, and it cannot be updated.
            self._delete_stack(found, f"the empty stack left in {status}")
            result.note = f"deleted the empty stack an earlier failed deploy left in {status}"
            status = None
        elif status and status.endswith("_IN_PROGRESS"):
            raise DeployFailed(f"stack {stack.stack_name} is busy ({status}); another deploy may be running")
        elif status and status.endswith("_FAILED"):
            raise DeployFailed(
                f"stack {stack.stack_name} is {status}; an operator must repair it first"
                " (continue-update-rollback or delete)"
            )
        elif found is not None and self.target.is_local and _condition_inputs_changed(stack, found, parameters):
            # Embedded target only: moto does not create or delete resources whose Condition flips
            # on an update, so the stack is created afresh with the new values instead.
            self._delete_stack(found, "it (embedded target: a parameter its conditions read changed)")
            result.note = "embedded target: recreated, as moto does not apply condition changes on update"
            status = None
        change_type = "CREATE" if status is None else "UPDATE"
        # On AWS an update also puts back what drifted; a new stack has nothing to drift from.
        drift_aware = change_type == "UPDATE" and not self.target.is_local
        name = f"gitops-{self.plan.manifest.short_id}-{uuid.uuid4().hex[:8]}"
        self.say(f"{stack.stack_name}: change set {name} ({change_type}{', revert drift' if drift_aware else ''})")
        try:
            created = cfn.create_change_set(
                StackName=stack.stack_name,
                ChangeSetName=name,
                ChangeSetType=change_type,
                Parameters=parameters,
                Capabilities=CAPABILITIES,
                Description=f"gitops release {self.plan.manifest.short_id}",
                **({"DeploymentMode": "REVERT_DRIFT"} if drift_aware else {}),
                **({"RoleARN": self.execution_role_arn} if self.execution_role_arn else {}),
                **self.template_location(stack),
            )
            change_set = poll(
                lambda: cfn.describe_change_set(ChangeSetName=created["Id"]),
                lambda d: d["Status"] in ("CREATE_COMPLETE", "FAILED"),
                delay=self.delay / 2,
                timeout=900,
                what=f"change set {name} of {stack.stack_name}",
            )
        except AWS_ERRORS as exc:
            result.reason = f"creating the change set: {aws_error_text(exc)}"
            return self._finish(result, started)
        if change_set["Status"] == "FAILED":
            reason = change_set.get("StatusReason", "")
            cfn.delete_change_set(ChangeSetName=created["Id"])
            if any(marker in reason for marker in NO_CHANGES):
                result.action = "unchanged"
            else:
                result.reason = f"change set failed: {reason}"
            return self._finish(result, started)
        result.changes = len(change_set.get("Changes", []))
        while change_set.get("NextToken"):
            change_set = cfn.describe_change_set(ChangeSetName=created["Id"], NextToken=change_set["NextToken"])
            result.changes += len(change_set.get("Changes", []))
        token = f"gitops-{uuid.uuid4().hex}"
        executed_at = time.time()
        try:
            cfn.execute_change_set(ChangeSetName=created["Id"], ClientRequestToken=token)
        except AWS_ERRORS as exc:
            # moto applies a change set synchronously and reports a failing resource this way.
            result.reason = aws_error_text(exc) + (
                " (the embedded target does not roll back)" if self.target.is_local else ""
            )
            return self._finish(result, started)
        final = poll(
            lambda: cfn.describe_stacks(StackName=created["StackId"])["Stacks"][0],
            lambda s: not s["StackStatus"].endswith("_IN_PROGRESS"),
            delay=self.delay,
            timeout=3 * 3600,
            what=f"stack {stack.stack_name}",
        )
        if final["StackStatus"] in OK_STACK_STATES:
            result.action = "created" if change_type == "CREATE" else "updated"
        else:
            result.reason = f"{final['StackStatus']}: {self._failure_cause(created['StackId'], executed_at)}"
        return self._finish(result, started)

    def repair_embedded(self, stack: StackPlan) -> list[str]:
        """Embedded target only: read the stack's resources back and put right what differs from the template.

        A change set that changes nothing does not look at the resources, so a VPC endpoint or
        an endpoint deleted out of band would stay deleted; on AWS REVERT_DRIFT does this job.
        """
        repaired = []
        readings = live.read_back(
            self.aws, stack.stack_name, stack.deployed, region=self.config.region, account=self.config.account
        )
        for reading in readings:
            if reading.ok:
                continue
            if reading.repair is None:
                raise DeployFailed(f"{reading.name}: {reading.detail}, and deploy has no repair for it")
            try:
                done = reading.repair()
            except AWS_ERRORS as exc:
                raise DeployFailed(f"repairing {reading.name} ({reading.detail}): {aws_error_text(exc)}") from exc
            repaired.append(f"{reading.name}: {reading.detail}; {done}")
            self.say(f"{reading.name}: {reading.detail}; repaired: {done}")
        return repaired

    def _delete_stack(self, found: dict, what: str) -> None:
        cfn = self.aws.cfn
        self.say(f"{found['StackName']}: deleting {what}")
        cfn.delete_stack(StackName=found["StackId"])
        poll(
            lambda: cfn.describe_stacks(StackName=found["StackId"])["Stacks"][0]["StackStatus"],
            lambda s: not s.endswith("_IN_PROGRESS"),
            delay=self.delay,
            timeout=1800,
            what=f"deleting {found['StackName']}",
        )

    def _failure_cause(self, stack_id: str, since: float) -> str:
        """The first resource that failed in this operation (later failures are mostly cancellations)."""
        events = []
        for page in self.aws.cfn.get_paginator("describe_stack_events").paginate(StackName=stack_id):
            recent = [e for e in page["StackEvents"] if e["Timestamp"].timestamp() >= since - 5]
            events += recent
            if len(recent) < len(page["StackEvents"]):
                break  # newest first: the rest belong to earlier operations
        failed = [
            e
            for e in reversed(events)
            if e["ResourceStatus"].endswith("_FAILED") and "cancelled" not in e.get("ResourceStatusReason", "")
        ]
        if not failed:
            return "no failing resource reported"
        first = failed[0]
        return f"{first['LogicalResourceId']} ({first['ResourceType']}): {first.get('ResourceStatusReason', '')}"

    def _finish(self, result: StackResult, started: float) -> StackResult:
        result.seconds = round(time.perf_counter() - started, 2)
        detail = f" ({result.reason})" if result.reason else ""
        self.say(f"{result.stack_name}: {result.action} in {result.seconds:.1f}s{detail}")
        return result


def _condition_inputs_changed(stack: StackPlan, found: dict, parameters: list[dict[str, str]]) -> bool:
    """True when a parameter the template's Conditions read gets a value other than the live one."""
    read = {ref.target for ref in template_references(stack.deployed.get("Conditions") or {})}
    current = {p["ParameterKey"]: p.get("ParameterValue") for p in found.get("Parameters", [])}
    return any(p["ParameterKey"] in read and current.get(p["ParameterKey"]) != p["ParameterValue"] for p in parameters)
