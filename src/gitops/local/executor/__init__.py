"""The local SageMaker pipeline executor: runs a pipeline definition, as the release holds it, on the embedded target.

Steps run as their jobs would (Processing, Training, Condition, Fail, RegisterModel, one module
per kind under steps/), against the embedded S3 and SageMaker registry, with a loopback Feature
Store runtime (featurestore.py) and Athena queries on DuckDB (athena.py). What cannot run here
is refused before anything runs, or reported as "not run locally: <why>".
"""

from gitops.local.executor.errors import BrokenWiring, ExecutorError, StepFailed, UnsupportedStep
from gitops.local.executor.execution import ExecutionServices, run_definition
from gitops.local.executor.record import PipelineExecution, StepRun

__all__ = [
    "BrokenWiring",
    "ExecutionServices",
    "ExecutorError",
    "PipelineExecution",
    "StepFailed",
    "StepRun",
    "UnsupportedStep",
    "run_definition",
]
