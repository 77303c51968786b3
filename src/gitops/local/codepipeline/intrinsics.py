"""CloudFormation intrinsics of a synthesized template, resolved as far as reading its pipeline needs.

They are resolved at read time as follows (anything else becomes a readable
placeholder such as ``{{GetAtt:Project.Arn}}``):

- ``Ref`` to a parameter: the value passed in ``parameters``, else its Default (not for SSM
  parameter types), else ``{{Ref:Name}}``;
- ``Ref`` to a pseudo parameter: ``pseudo_parameters`` (e.g. AWS::Region), else AWS::Partition
  "aws" and AWS::URLSuffix "amazonaws.com", else ``{{AWS::Region}}``; AWS::NoValue drops the item;
- ``Ref`` to a resource whose Ref is its name, when the template names it literally
  (see _REF_NAME_PROPERTY: CodeBuild Name, S3 BucketName, ...), else ``{{Ref:LogicalId}}``;
- ``Fn::GetAtt`` of a name attribute given literally (CodeCommit Repository.Name), else a placeholder;
- ``Fn::Join``, ``Fn::Sub`` (both forms, ``${!Literal}``), ``Fn::Select``: evaluated.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from gitops.local.codepipeline.model import PipelineRunnerError

_NO_VALUE = object()

# Resource types whose Ref is their physical name, and the property that sets that name.
_REF_NAME_PROPERTY = {
    "AWS::CodeBuild::Project": "Name",
    "AWS::CodePipeline::Pipeline": "Name",
    "AWS::S3::Bucket": "BucketName",
    "AWS::IAM::Role": "RoleName",
    "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::SSM::Parameter": "Name",
    "AWS::ECR::Repository": "RepositoryName",
    "AWS::KMS::Alias": "AliasName",
    "AWS::Lambda::Function": "FunctionName",
    "AWS::SageMaker::FeatureGroup": "FeatureGroupName",
}
# (resource type, attribute) -> the property holding the same value.
_GETATT_PROPERTY = {
    ("AWS::CodeCommit::Repository", "Name"): "RepositoryName",
    ("AWS::SageMaker::ModelPackageGroup", "ModelPackageGroupName"): "ModelPackageGroupName",
    ("AWS::SageMaker::Pipeline", "PipelineName"): "PipelineName",
}
_PSEUDO_DEFAULTS = {"AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com"}


class Intrinsics:
    """Resolves the intrinsics listed in the module docstring, in one template; see there for what each yields."""

    def __init__(self, template: dict, parameters: Mapping[str, str], pseudo: Mapping[str, str]) -> None:
        self.resources: dict = template.get("Resources") or {}
        self.parameters: dict = template.get("Parameters") or {}
        self.given = parameters
        self.pseudo = {**_PSEUDO_DEFAULTS, **pseudo}

    def resolve(self, node: Any, where: str, seen: frozenset[str] = frozenset()) -> Any:
        if isinstance(node, list):
            items = [self.resolve(item, where, seen) for item in node]
            return [item for item in items if item is not _NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            key, arg = next(iter(node.items()))
            if key == "Ref":
                return self._ref(arg, where, seen)
            if key == "Fn::GetAtt":
                return self._getatt(arg, where, seen)
            if key == "Fn::Join":
                return self._join(arg, where, seen)
            if key == "Fn::Sub":
                return self._sub(arg, where, seen)
            if key == "Fn::Select":
                return self._select(arg, where, seen)
            if key == "Fn::ImportValue":
                return f"{{{{ImportValue:{self.resolve(arg, where, seen)}}}}}"
            if key.startswith("Fn::"):
                return f"{{{{{key}}}}}"
        return {k: self.resolve(v, where, seen) for k, v in node.items()}

    def text(self, node: Any, where: str) -> str:
        value = self.resolve(node, where)
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise PipelineRunnerError(f"{where}: expected a string, got {type(value).__name__} {value!r}")
        return str(value)

    def _ref(self, name: Any, where: str, seen: frozenset[str]) -> Any:
        if not isinstance(name, str):
            raise PipelineRunnerError(f"{where}: Ref needs a logical id, got {name!r}")
        if name == "AWS::NoValue":
            return _NO_VALUE
        if name.startswith("AWS::"):
            return self.pseudo.get(name, f"{{{{{name}}}}}")
        if name in self.parameters:
            if name in self.given:
                return self.given[name]
            param = self.parameters[name] or {}
            if "Default" in param and not str(param.get("Type", "")).startswith("AWS::SSM::"):
                return str(param["Default"])
            return f"{{{{Ref:{name}}}}}"
        resource = self.resources.get(name)
        if not isinstance(resource, dict):
            raise PipelineRunnerError(f"{where}: Ref to '{name}', which is not a parameter or resource")
        prop = _REF_NAME_PROPERTY.get(resource.get("Type", ""))
        return self._property(name, prop, where, seen) or f"{{{{Ref:{name}}}}}"

    def _getatt(self, arg: Any, where: str, seen: frozenset[str]) -> str:
        if isinstance(arg, str) and "." in arg:
            arg = arg.split(".", 1)
        if not (isinstance(arg, list) and len(arg) == 2 and all(isinstance(a, str) for a in arg)):
            raise PipelineRunnerError(f"{where}: Fn::GetAtt needs [LogicalId, Attribute], got {arg!r}")
        name, attr = arg
        resource = self.resources.get(name)
        if not isinstance(resource, dict):
            raise PipelineRunnerError(f"{where}: Fn::GetAtt of '{name}', which is not a resource")
        prop = _GETATT_PROPERTY.get((resource.get("Type", ""), attr))
        return self._property(name, prop, where, seen) or f"{{{{GetAtt:{name}.{attr}}}}}"

    def _property(self, name: str, prop: str | None, where: str, seen: frozenset[str]) -> str | None:
        if prop is None or name in seen:
            return None
        value = (self.resources[name].get("Properties") or {}).get(prop)
        if value is None:
            return None
        resolved = self.resolve(value, where, seen | {name})
        return resolved if isinstance(resolved, str) else None

    def _join(self, arg: Any, where: str, seen: frozenset[str]) -> str:
        if not (isinstance(arg, list) and len(arg) == 2 and isinstance(arg[0], str)):
            raise PipelineRunnerError(f"{where}: Fn::Join needs [delimiter, [values]], got {arg!r}")
        values = self.resolve(arg[1], where, seen)
        if not isinstance(values, list) or not all(isinstance(v, str | int | float) for v in values):
            raise PipelineRunnerError(f"{where}: Fn::Join values must resolve to strings, got {values!r}")
        return arg[0].join(str(v) for v in values)

    def _sub(self, arg: Any, where: str, seen: frozenset[str]) -> str:
        text, local = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1]) if isinstance(arg, list) else (None, {})
        if not isinstance(text, str) or not isinstance(local, dict):
            raise PipelineRunnerError(f"{where}: Fn::Sub needs a string or [string, {{variables}}], got {arg!r}")

        def one(match: re.Match) -> str:
            ref = match.group(1)
            if ref.startswith("!"):
                return "${" + ref[1:] + "}"
            if ref in local:
                return str(self.resolve(local[ref], where, seen))
            if "." in ref and not ref.startswith("AWS::"):
                return self._getatt(ref, where, seen)
            value = self._ref(ref, where, seen)
            return "" if value is _NO_VALUE else str(value)

        return re.sub(r"\$\{([^}]+)\}", one, text)

    def _select(self, arg: Any, where: str, seen: frozenset[str]) -> Any:
        if not (isinstance(arg, list) and len(arg) == 2):
            raise PipelineRunnerError(f"{where}: Fn::Select needs [index, [values]], got {arg!r}")
        index, values = self.resolve(arg[0], where, seen), self.resolve(arg[1], where, seen)
        try:
            return values[int(index)]
        except (TypeError, ValueError, IndexError, KeyError) as exc:
            raise PipelineRunnerError(f"{where}: Fn::Select index {index!r} out of {values!r}") from exc
