"""Every file a job's entrypoint names must be in the code the job receives: checked in the definition.

The SDK and moto accept a training job whose `sagemaker_program` is missing from its code
archive; SageMaker would fail the job at run time, in the stage. The definition says which
release asset each job gets and which file it runs, so render can check both here.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterator
from typing import Any

from gitops.errors import PipelineDefinitionError
from gitops.release.assets import Asset, AssetRegistry

TRAINING_CHANNELS = "/opt/ml/input/data/"
_ARCHIVES = (".tar.gz", ".tgz")


def _steps(steps: list[dict]) -> Iterator[dict]:
    for step in steps:
        yield step
        if step.get("Type") == "Condition":
            args = step.get("Arguments") or {}
            yield from _steps(args.get("IfSteps", []))
            yield from _steps(args.get("ElseSteps", []))


def _hyperparameter(value: Any) -> str | None:
    """A hyperparameter as the training toolkit reads it (JSON-encoded strings, or plain ones)."""
    if not isinstance(value, str):
        return None
    try:
        decoded = json.loads(value)
    except ValueError:
        return value
    return decoded if isinstance(decoded, str) else None


def _archive_members(asset: Asset) -> set[str] | None:
    if not asset.filename.endswith(_ARCHIVES):
        return None
    with tarfile.open(fileobj=io.BytesIO(asset.data), mode="r:*") as tar:
        return {m.name.removeprefix("./") for m in tar.getmembers() if m.isfile()}


class EntrypointCheck:
    """Checks one pipeline definition's jobs against the release assets they receive."""

    def __init__(self, registry: AssetRegistry, bucket: str, sources: dict[str, str], shown: str) -> None:
        self.registry = registry
        self.prefix = f"s3://{bucket}/"
        self.sources = sources  # S3 URI -> the source path it was registered from
        self.shown = shown

    def asset(self, uri: Any) -> Asset | None:
        """The release asset an S3 URI of the definition points at (None: not step code of ours)."""
        if isinstance(uri, str) and uri.startswith(self.prefix):
            return self.registry.assets.get(uri[len(self.prefix) :])
        return None

    def fail(self, step: str, what: str) -> None:
        raise PipelineDefinitionError(f"{self.shown}: step '{step}' {what}")

    def check(self, definition: dict) -> None:
        for step in _steps(definition.get("Steps", [])):
            args = step.get("Arguments") or {}
            name = step.get("Name", "?")
            if step.get("Type") == "Processing":
                self.processing(name, args)
            elif step.get("Type") == "Training":
                self.training(name, args)
            if step.get("Type") != "Condition":  # a condition's branch steps are checked as steps of their own
                for env in _environments(args):
                    self.serving(name, env)

    def processing(self, step: str, args: dict) -> None:
        entrypoint = (args.get("AppSpecification") or {}).get("ContainerEntrypoint") or []
        inputs = {
            i["S3Input"]["LocalPath"].rstrip("/"): i["S3Input"].get("S3Uri")
            for i in args.get("ProcessingInputs", [])
            if isinstance(i.get("S3Input"), dict) and isinstance(i["S3Input"].get("LocalPath"), str)
        }
        for token in (t for t in entrypoint if isinstance(t, str)):
            for local, uri in inputs.items():
                asset = self.asset(uri)
                if asset is None or not token.startswith(local + "/"):
                    continue
                wanted = token[len(local) + 1 :]
                if wanted != asset.filename:
                    source = self.sources.get(uri, asset.filename)
                    self.fail(step, f"runs {token}, but the input at {local} is {source}, not {wanted}")

    def training(self, step: str, args: dict) -> None:
        params = args.get("HyperParameters") or {}
        program = _hyperparameter(params.get("sagemaker_program"))
        submit = _hyperparameter(params.get("sagemaker_submit_directory"))
        if not program or not submit:
            return
        uri: Any = submit
        if submit.startswith(TRAINING_CHANNELS):
            channel, _, inside = submit[len(TRAINING_CHANNELS) :].partition("/")
            channels = {
                c.get("ChannelName"): ((c.get("DataSource") or {}).get("S3DataSource") or {}).get("S3Uri")
                for c in args.get("InputDataConfig", [])
            }
            if channel not in channels:
                self.fail(step, f"takes its code from channel '{channel}', which it does not have")
            uri = channels[channel]
            asset = self.asset(uri)
            if asset is not None and inside != asset.filename:
                self.fail(step, f"takes its code from {submit}, but channel '{channel}' holds {asset.filename}")
        self.program(step, program, uri, "code archive")

    def serving(self, step: str, env: dict) -> None:
        program, submit = env.get("SAGEMAKER_PROGRAM"), env.get("SAGEMAKER_SUBMIT_DIRECTORY")
        # A submit directory inside the model (/opt/ml/model/code) is made by the training job: not checkable here.
        if isinstance(program, str) and isinstance(submit, str) and submit.startswith("s3://"):
            self.program(step, program, submit, "serving code archive")

    def program(self, step: str, program: str, uri: Any, kind: str) -> None:
        asset = self.asset(uri)
        if asset is None:
            return
        members = _archive_members(asset)
        source = self.sources.get(uri, asset.filename)
        if members is None:
            self.fail(step, f"runs {program} from {source}, which is not a .tar.gz code archive")
        elif program.removeprefix("./") not in members:
            held = ", ".join(sorted(members)[:4]) + (", ..." if len(members) > 4 else "")
            self.fail(step, f"runs {program}, but its {kind} {source} does not hold it (holds: {held or 'nothing'})")


def _environments(node: Any) -> Iterator[dict]:
    """Every container Environment mapping under a step's arguments (models, model packages)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Environment" and isinstance(value, dict):
                yield value
            else:
                yield from _environments(value)
    elif isinstance(node, list):
        for item in node:
            yield from _environments(item)


def check_entrypoints(
    definition: dict, registry: AssetRegistry, bucket: str, sources: dict[str, str], shown: str
) -> None:
    """Raise PipelineDefinitionError naming the pipeline, step and file when a job would run code it lacks."""
    EntrypointCheck(registry, bucket, sources, shown).check(definition)
