"""The stage's endpoint as the serving app sees it on the embedded target: the pinned model's own code.

moto answers InvokeEndpoint with canned bytes, which the app rightly refuses as no prediction. So on
the embedded target the app is given this invoker (APP_INVOKER=gitops.local.model_endpoint:from_settings):
the stage's own verified copy of the pinned model.tar.gz, unpacked, its code/inference.py called as
the SageMaker scikit-learn serving container calls it (model_fn once; input_fn, predict_fn and
output_fn per request). What the app sends and stores is then a real prediction of the pinned model.
"""

from __future__ import annotations

import importlib.util
import io
import os
import tarfile
from pathlib import Path
from types import ModuleType
from typing import Any

from gitops.config import StageConfig
from gitops.errors import GitopsError
from gitops.model.artifact import read_verified
from gitops.model.pin import ServedModel, load_release_pin
from gitops.target import Target

MODEL_DIR_ENV = "GITOPS_LOCAL_MODEL_DIR"
INVOKER = "gitops.local.model_endpoint:from_settings"


class LocalModelError(GitopsError):
    hint = "deploy the stage first (`gitops deploy --stage S --target local`): it puts the pinned artifact in place"


def unpack_stage_model(target: Target, config: StageConfig, release_dir: Path, dest: Path) -> ServedModel | None:
    """The model the release pins, unpacked from the stage's own copy (sha256-checked) into dest; None if unpinned."""
    model = load_release_pin(release_dir).model
    if model is None:
        return None
    data = read_verified(target.client(config, "s3"), model.stage_artifact_uri(config), model.artifact.sha256)
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        tar.extractall(dest, filter="data")
    if not (dest / "code" / "inference.py").is_file():
        raise LocalModelError(f"{model.stage_artifact_uri(config)}: model.tar.gz holds no code/inference.py")
    return model


class LocalModelInvoker:
    """An EndpointInvoker (app/prediction_service/endpoint.py) over an unpacked model directory."""

    def __init__(self, endpoint_name: str, model_dir: Path) -> None:
        self.endpoint_name = endpoint_name
        self.model_dir = model_dir
        spec = importlib.util.spec_from_file_location("inference", model_dir / "code" / "inference.py")
        if spec is None or spec.loader is None:
            raise LocalModelError(f"{model_dir}: no code/inference.py to serve")
        self._code: ModuleType = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(self._code)
        self._model = self._code.model_fn(str(model_dir))

    def invoke(self, body: bytes, content_type: str) -> Any:
        from prediction_service.endpoint import EndpointAnswer

        data = self._code.input_fn(body.decode(), content_type)
        answer, answer_type = self._code.output_fn(self._code.predict_fn(data, self._model), "application/json")
        payload = answer.encode() if isinstance(answer, str) else answer
        return EndpointAnswer(payload, answer_type, "local-model")

    def readiness(self) -> Any:
        from prediction_service.endpoint import Readiness

        return Readiness(True, f"local model {self.model_dir.name} (the pinned artifact's code/inference.py)")


def from_settings(settings: Any) -> LocalModelInvoker:
    """APP_INVOKER factory: the model unpacked in GITOPS_LOCAL_MODEL_DIR, for the settings' endpoint name."""
    model_dir = os.environ.get(MODEL_DIR_ENV)
    if not model_dir:
        raise LocalModelError(f"{MODEL_DIR_ENV} is not set: the local model invoker has no model to serve")
    return LocalModelInvoker(settings.endpoint_name, Path(model_dir))
