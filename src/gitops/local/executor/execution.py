"""Run a planned definition: steps in dependency order (independent ones side by side), each one recorded."""

from __future__ import annotations

import graphlib
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gitops.local.executor.container import tail
from gitops.local.executor.errors import ExecutorError, StepFailed
from gitops.local.executor.expressions import Resolver
from gitops.local.executor.plan import ExecutionPlan, plan_execution
from gitops.local.executor.record import PipelineExecution, StepRun, now, save_execution
from gitops.local.executor.registry import StepContext, StepOutcome
from gitops.local.executor.steps.processing import parse_json, property_file
from gitops.local.executor.storage import read_object
from gitops.progress import Progress, silent

MAX_PARALLEL_STEPS = 2  # jobs are CPU-bound processes; more would only share the same cores


@dataclass
class ExecutionServices:
    """The embedded target as the steps use it."""

    s3: Any
    sagemaker: Any
    local_dir: Path  # where execution records and step logs are kept
    region: str
    account: str
    job_env: Mapping[str, str] = field(default_factory=dict)  # every job: region, credentials
    network_env: Mapping[str, str] = field(default_factory=dict)  # jobs with network: endpoints
    athena: Callable[[dict, Path], None] | None = None
    job_python: str = sys.executable
    after_step: Callable[[], object] | None = None  # e.g. the Feature Store's offline-store flush


def run_definition(
    definition: dict,
    *,
    pipeline_name: str,
    stage: str,
    services: ExecutionServices,
    parameters: Mapping[str, str] | None = None,
    execution_id: str | None = None,
    log: Progress = silent,
) -> PipelineExecution:
    """Check the whole definition (ExecutorError: nothing ran), then run it; the record says how it ended."""
    where = f"pipeline {pipeline_name}"
    plan = plan_execution(definition, dict(parameters or {}), where)
    execution_id = execution_id or uuid.uuid4().hex[:12]
    record = PipelineExecution(execution_id, pipeline_name, stage, parameters=plan.parameters)
    record.steps = [StepRun(name, step.type, status="NotRun") for name, step in plan.steps.items()]
    save_execution(services.local_dir, record)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"gitops-exec-{execution_id}-") as work:
        _Run(plan, record, services, Path(work), log).run()
    record.seconds = round(time.perf_counter() - started, 3)
    record.ended = now()
    save_execution(services.local_dir, record)
    return record


class _Run:
    def __init__(
        self, plan: ExecutionPlan, record: PipelineExecution, services: ExecutionServices, work: Path, log: Progress
    ) -> None:
        self.plan = plan
        self.record = record
        self.services = services
        self.work = work
        self.log = log
        self.properties: dict[str, dict] = {}
        self.property_files: dict[tuple[str, str], Any] = {}
        self.lock = threading.Lock()
        arn = f"arn:aws:sagemaker:{services.region}:{services.account}:pipeline/{record.pipeline_name.lower()}"
        self.resolver = Resolver(
            plan.parameters,
            {
                "PipelineExecutionId": record.execution_id,
                "PipelineName": record.pipeline_name,
                "PipelineExecutionArn": f"{arn}/execution/{record.execution_id}",
                "PipelineExperimentName": record.pipeline_name,
                "PipelineTrialName": record.execution_id,
                "StartDateTime": datetime.now(UTC).isoformat(),
                "CurrentDateTime": datetime.now(UTC).isoformat(),
            },
            self.properties,
            self._property_file,
        )

    def _property_file(self, step: str, name: str) -> Any:
        key = (step, name)
        if key not in self.property_files:
            where = f"property file {step}.{name}"
            uri, _ = property_file(
                self.properties[step], self.plan.steps[step].raw.get("PropertyFiles", []), name, where
            )
            self.property_files[key] = parse_json(read_object(self.services.s3, uri, where), where)
        return self.property_files[key]

    def run(self) -> None:
        sorter = graphlib.TopologicalSorter(self.plan.depends_on)
        sorter.prepare()
        skipped: set[str] = set()
        running: dict[Future, str] = {}
        with ThreadPoolExecutor(max_workers=MAX_PARALLEL_STEPS, thread_name_prefix="gitops-step") as pool:
            while sorter.is_active():
                for name in sorter.get_ready():
                    if self.record.status == "Failed":
                        continue  # after a failure nothing new starts
                    if name in skipped or self.plan.depends_on[name] & skipped:
                        skipped.add(name)
                        sorter.done(name)
                        continue
                    running[pool.submit(self._step, name)] = name
                if not running:
                    break
                finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for future in finished:
                    name = running.pop(future)
                    outcome = future.result()
                    if outcome is not None:
                        skipped.update(outcome.skip)
                        sorter.done(name)
        if self.record.status != "Failed":
            self.record.status = "Succeeded"

    def _step(self, name: str) -> StepOutcome | None:
        step = self.plan.steps[name]
        run = self.record.step(name)
        run.status, run.started = "Executing", now()
        self._save()
        self.log(f"{step.name} ({step.type}): started")
        t0 = time.perf_counter()
        step_dir = self.work / name
        step_dir.mkdir(parents=True)
        outcome: StepOutcome | None = None
        try:
            arguments = self.resolver.resolve(step.arguments, f"{self.record.pipeline_name}: {step.where}")
            context = StepContext(
                execution_id=self.record.execution_id,
                pipeline_name=self.record.pipeline_name,
                step=step,
                arguments=arguments,
                workdir=step_dir,
                s3=self.services.s3,
                sagemaker=self.services.sagemaker,
                job_env=self.services.job_env,
                job_python=self.services.job_python,
                network_env=self.services.network_env,
                athena=self.services.athena,
                log=self.log,
            )
            outcome = self.plan.kinds[name].run(context)
        except StepFailed as exc:
            self._failed(run, exc.reason, exc.log_tail)
        except ExecutorError as exc:  # a reference that did not resolve at run time
            self._failed(run, str(exc), "")
        except Exception as exc:  # an AWS call of the step itself; the step fails, the run goes on recording
            self._failed(run, f"{step.where}: {type(exc).__name__}: {exc}", tail(step_dir / "job.log"))
        finally:
            run.ended = now()
            run.seconds = round(time.perf_counter() - t0, 3)
            self._keep_log(step_dir, run)
        if outcome is None:
            self.log(f"{step.name}: Failed after {run.seconds:.2f}s: {run.failure_reason}")
            self._save()
            return None
        with self.lock:
            self.properties[name] = outcome.properties
        if self.services.after_step is not None:
            t1 = time.perf_counter()
            done = self.services.after_step()
            if done:
                self.log(f"  {done} (after {step.name}, {time.perf_counter() - t1:.2f}s)")
        run.status = "Succeeded"
        run.metadata = outcome.metadata
        self.log(f"{step.name}: Succeeded in {run.seconds:.2f}s")
        self._save()
        return outcome

    def _failed(self, run: StepRun, reason: str, log_tail: str) -> None:
        run.status = "Failed"
        run.failure_reason = reason
        if log_tail:
            run.metadata["log_tail"] = log_tail
        with self.lock:
            if self.record.status != "Failed":
                self.record.status = "Failed"
                self.record.failure_reason = f"Step failure: {run.name}: {reason}"

    def _keep_log(self, step_dir: Path, run: StepRun) -> None:
        log = step_dir / "job.log"
        if log.is_file():
            kept = self.services.local_dir / "sagemaker-logs" / self.record.execution_id / f"{run.name}.log"
            kept.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(log, kept)
            run.metadata["log"] = str(kept)

    def _save(self) -> None:
        with self.lock:
            save_execution(self.services.local_dir, self.record)
