"""The run loop: stages in order, actions by RunOrder, each through its kind's runner, until one fails.

The runner knows no git and no AWS: the caller injects the source checkout (source_dir_provider)
and the approval decision (approval_gate). CodePipeline variables (``#{codepipeline.PipelineExecutionId}``,
``#{<Namespace>.<Name>}`` of an earlier action, ``#{variables.<Name>}`` of the pipeline) are
resolved at run time, where a kind asks for them (CodeBuild environment variables, the approval's
custom data), as CodePipeline does.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping
from itertools import groupby
from pathlib import Path

from gitops.errors import GitopsError
from gitops.local.buildspec_runner import ReferenceResolver
from gitops.local.codepipeline.model import Action, PipelineModel, PipelineRunnerError, PipelineStage, check_name
from gitops.local.codepipeline.record import ExecutionRecord, finish, now
from gitops.local.codepipeline.registry import ActionContext, ActionFailed, ApprovalGate, SourceProvider
from gitops.progress import Progress

_VARIABLE = re.compile(r"#\{([A-Za-z0-9@_-]+)\.([A-Za-z0-9@_.-]+)\}")


class _Execution:
    def __init__(
        self,
        model: PipelineModel,
        record: ExecutionRecord,
        *,
        source_dir_provider: SourceProvider,
        approval_gate: ApprovalGate,
        env: Mapping[str, str],
        root: Path,
        log: Progress,
        on_update: Callable[[ExecutionRecord], None] | None,
        resolve_reference: ReferenceResolver | None,
        base_env: Mapping[str, str] | None,
        variables: Mapping[str, str],
    ) -> None:
        self.model = model
        self.record = record
        self.source_dir_provider = source_dir_provider
        self.approval_gate = approval_gate
        self.env = dict(env)
        self.root = root
        self.log = log
        self.on_update = on_update
        self.resolve_reference = resolve_reference
        self.base_env = base_env
        self.artifacts: dict[str, Path] = {}
        self.revisions: dict[str, str] = {}  # artifact -> commit id, when the source said
        self.source_namespaces = {
            a.namespace for s in model.stages for a in s.actions if a.category == "Source" and a.namespace
        }
        self.namespaces: dict[str, dict[str, str]] = {
            "codepipeline": {"PipelineExecutionId": record.execution_id},
            "variables": dict(variables),
        }

    def update(self) -> None:
        if self.on_update is not None:
            self.on_update(self.record.model_copy(deep=True))

    def run(self) -> ExecutionRecord:
        record = self.record
        self.log(f"{self.model.name}: execution {record.execution_id} started")
        self.update()
        try:
            for stage in self.model.stages:
                if not self.run_stage(stage):
                    break
            else:
                record.status = "Succeeded"
        except BaseException:
            record.status = "Stopped"
            record.failure = record.failure or "stopped before it finished"
            for srec in record.stages:
                for arec in srec.actions:
                    if arec.status == "InProgress":
                        arec.status, arec.message = "Failed", "stopped"
                        finish(arec)
                if srec.status == "InProgress":
                    srec.status = "Failed"
                    finish(srec)
            finish(record)
            self.update()
            raise
        finish(record)
        self.log(f"{self.model.name}: execution {record.execution_id} {record.status}")
        self.update()
        return record

    def run_stage(self, stage: PipelineStage) -> bool:
        srec = self.record.stage(stage.name)
        srec.status, srec.started_at = "InProgress", now()
        self.update()
        ok = True
        # Actions of one RunOrder run side by side on CodePipeline: all of them finish before the
        # stage fails. Here they run one after the other, in template order.
        for _order, group in groupby(stage.actions, key=lambda a: a.run_order):
            results = [self.run_action(stage, action) for action in group]
            if not all(results):
                ok = False
                break
        srec.status = "Succeeded" if ok else "Failed"
        finish(srec)
        self.update()
        return ok

    def run_action(self, stage: PipelineStage, action: Action) -> bool:
        arec = self.record.stage(stage.name).action(action.name)
        arec.status, arec.started_at = "InProgress", now()
        label = f"{stage.name}/{action.name}"
        self.log(f"{label}: {action.category}/{action.provider} started")
        self.update()
        context = ActionContext(
            pipeline_name=self.model.name,
            stage=stage.name,
            where=f"{self.model.template_path}: stage '{stage.name}' action '{action.name}'",
            root=self.root,
            artifacts=self.artifacts,
            revisions=self.revisions,
            record=arec,
            substitute=self.substitute,
            source_dir_provider=self.source_dir_provider,
            approval_gate=self.approval_gate,
            env=self.env,
            base_env=self.base_env,
            resolve_reference=self.resolve_reference,
            log=self.log,
        )
        try:
            outcome = action.kind.run(action, context)
            arec.output_variables, arec.message = dict(outcome.output_variables), outcome.message
            arec.status = "Succeeded"
        except (ActionFailed, GitopsError, OSError) as exc:
            arec.status = exc.status if isinstance(exc, ActionFailed) else "Failed"
            arec.message = str(exc)
            if self.record.failed_action is None:
                record = self.record
                record.status = "Rejected" if arec.status == "Rejected" else "Failed"
                record.failed_stage, record.failed_action = stage.name, action.name
                record.failure = f"stage '{stage.name}' action '{action.name}': {arec.message}"
        if action.namespace:
            self.namespaces[action.namespace] = dict(arec.output_variables)
        finish(arec)
        self.log(f"{label}: {arec.status}" + (f": {arec.message}" if arec.message else ""))
        self.update()
        return arec.status == "Succeeded"

    def substitute(self, text: str, where: str) -> str:
        def one(match: re.Match) -> str:
            namespace, name = match.groups()
            values = self.namespaces.get(namespace)
            if values is None or name not in values:
                why = " (the source provider gave no such variable)" if namespace in self.source_namespaces else ""
                raise ActionFailed(f"{where}: cannot resolve the variable #{{{namespace}.{name}}}{why}")
            return values[name]

        return _VARIABLE.sub(one, text)


def run_pipeline(
    model: PipelineModel,
    *,
    source_dir_provider: SourceProvider,
    approval_gate: ApprovalGate,
    env: Mapping[str, str],
    workdir: Path,
    log: Progress = print,
    execution_id: str | None = None,
    variables: Mapping[str, str] | None = None,
    on_update: Callable[[ExecutionRecord], None] | None = None,
    resolve_reference: ReferenceResolver | None = None,
    base_env: Mapping[str, str] | None = None,
) -> ExecutionRecord:
    """Run the pipeline's stages in order; the first failed or rejected action ends the execution.

    - source_dir_provider() returns the checkout of the env repository's head: a SourceOutput
      with its CommitId etc. (a bare Path gives no source variables, so a template that uses
      #{SourceVariables.CommitId} fails); its files, without .git, become the output artifact.
    - CodeBuild actions run their buildspec in a fresh copy of their primary input artifact
      (CODEBUILD_SRC_DIR) under workdir/<execution id>/. Environment, lowest precedence first:
      base_env (default: this process's), the buildspec's variables, the project's variables,
      the action's, `env` (so a local target can never be pointed elsewhere by a template), then
      CODEBUILD_INITIATOR, CODEBUILD_BUILD_ID and CODEBUILD_RESOLVED_SOURCE_VERSION.
    - approval_gate(stage, action, custom_data) returns ("Approved" | "Rejected", summary); it may block.
    - on_update(record) is called with a copy of the record at every change (to persist it, so
      that another process sees the pending approval).
    The returned record's status is Succeeded, Failed or Rejected; `failure` names the stage and action.
    """
    unknown = sorted(set(variables or {}) - set(model.variables))
    if unknown:
        raise PipelineRunnerError(f"{model.template_path}: pipeline {model.name} declares no variable '{unknown[0]}'")
    if execution_id is not None:
        check_name(execution_id, "execution id", f"{model.template_path}: pipeline {model.name}")
    record = ExecutionRecord.new(model, execution_id or str(uuid.uuid4()))
    root = workdir / record.execution_id
    try:
        root.mkdir(parents=True, exist_ok=False)
    except FileExistsError as exc:
        raise PipelineRunnerError(f"{root}: already exists; an execution id is used once") from exc
    execution = _Execution(
        model,
        record,
        source_dir_provider=source_dir_provider,
        approval_gate=approval_gate,
        env=env,
        root=root,
        log=log,
        on_update=on_update,
        resolve_reference=resolve_reference,
        base_env=base_env,
        variables={**model.variables, **(variables or {})},
    )
    return execution.run()
