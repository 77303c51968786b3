"""The stacks of a stage, declared once: id, class, description and dependencies, in deploy order.

infra/app.py builds every stage from this list; tests/infra/ reads it. Adding a stack is one
module under infra/stacks/, its test, and one line here.
"""

from __future__ import annotations

from dataclasses import dataclass

from gitops.errors import SynthError
from infra.stacks.app import AppStack
from infra.stacks.app_images import AppImagesStack
from infra.stacks.base import BaseStack
from infra.stacks.inference import InferenceStack
from infra.stacks.mlops import MLOpsStack
from infra.stacks.network import NetworkStack
from infra.stacks.stage_stack import StageStack


@dataclass(frozen=True)
class StackSpec:
    id: str  # construct id in the stage; the stack name is <prefix>-<id in lower case>
    stack_class: type[StageStack]
    description: str  # what it holds, for the stack's CloudFormation description
    depends_on: tuple[str, ...] = ()  # ids of stacks deployed before it (it reads their names or parameters)


STACKS: tuple[StackSpec, ...] = (
    StackSpec("Base", BaseStack, "KMS key and IAM roles"),
    StackSpec("Network", NetworkStack, "isolated VPC and endpoints", depends_on=("Base",)),
    StackSpec("MLOps", MLOpsStack, "artifacts, registry, env pipeline", depends_on=("Base",)),
    StackSpec("Inference", InferenceStack, "endpoint, scaling, alarms", depends_on=("Network", "MLOps")),
    StackSpec("AppImages", AppImagesStack, "app image repository", depends_on=("Base",)),
    StackSpec("App", AppStack, "serving app, database, CDN, alarms", depends_on=("Network", "AppImages")),
)


def check_order(specs: tuple[StackSpec, ...]) -> None:
    """Ids are unique and every dependency is declared before its dependent (so the list is a deploy order)."""
    declared: set[str] = set()
    for spec in specs:
        if spec.id in declared:
            raise SynthError(f"infra/stacks/specs.py: stack '{spec.id}' is declared twice")
        later = [dep for dep in spec.depends_on if dep not in declared]
        if later:
            raise SynthError(
                f"infra/stacks/specs.py: stack '{spec.id}' depends on {', '.join(later)}, not declared before it"
            )
        declared.add(spec.id)
