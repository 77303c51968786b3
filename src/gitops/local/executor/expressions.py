"""Pipeline expressions: parameters, execution variables, Std:Join, Std:JsonGet and step properties.

A definition's values are literals or one-key objects ({"Get": "Parameters.X"},
{"Std:Join": ...}, {"Std:JsonGet": ...}); resolve() turns a whole Arguments tree into plain
JSON once the steps it refers to have run. references() lists the steps a tree depends on, so
the executor can order steps by their data before running any.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from gitops.local.executor.errors import BrokenWiring

EXPRESSION_KEYS = ("Get", "Std:Join", "Std:JsonGet")
# Outputs['train'] / Outputs[0] / .Name: the property path grammar of SageMaker Pipelines.
_TOKEN = re.compile(r"\.?([A-Za-z_][A-Za-z0-9_]*)|\[\s*'([^']*)'\s*\]|\[\s*\"([^\"]*)\"\s*\]|\[\s*(\d+)\s*\]")


def property_path(path: str, where: str) -> list[str | int]:
    """'Outputs['train'].S3Output.S3Uri' -> ['Outputs', 'train', 'S3Output', 'S3Uri']."""
    tokens: list[str | int] = []
    pos = 0
    while pos < len(path):
        match = _TOKEN.match(path, pos)
        if match is None:
            raise BrokenWiring(f"{where}: cannot read property path {path!r} at {path[pos:]!r}")
        name, quoted, dquoted, index = match.groups()
        tokens.append(int(index) if index is not None else (name or quoted or dquoted or ""))
        pos = match.end()
    return tokens


def walk(value: Any, tokens: list[str | int], where: str, shown: str) -> Any:
    """Follow tokens into value; a list is indexed by position or by the Name/OutputName its items carry."""
    current = value
    for token in tokens:
        if isinstance(current, list):
            if isinstance(token, int) and token < len(current):
                current = current[token]
                continue
            named = [item for item in current if isinstance(item, dict) and token in _names(item)]
            if not named:
                have = ", ".join(sorted(n for item in current if isinstance(item, dict) for n in _names(item)))
                raise BrokenWiring(f"{where}: {shown}: no {token!r} (have: {have or 'none'})")
            current = named[0]
        elif isinstance(current, dict) and token in current:
            current = current[token]
        else:
            raise BrokenWiring(f"{where}: {shown}: no property {token!r}")
    return current


def _names(item: dict) -> set[str]:
    return {str(item[k]) for k in ("OutputName", "ChannelName", "Name", "InputName") if k in item}


def json_get(document: Any, path: str, where: str) -> Any:
    """A JsonGet path ('a.b[0].c') in a property file's JSON."""
    try:
        return walk(document, property_path(path, where), where, f"JsonGet path {path!r}")
    except BrokenWiring as exc:
        raise BrokenWiring(str(exc)) from None


class Resolver:
    """Resolves expressions against parameters, execution variables and the properties of steps run so far."""

    def __init__(
        self,
        parameters: Mapping[str, Any],
        execution_variables: Mapping[str, Any],
        step_properties: Mapping[str, dict],
        read_property_file: Callable[[str, str], Any],
    ) -> None:
        self.parameters = parameters
        self.execution_variables = execution_variables
        self.step_properties = step_properties
        self.read_property_file = read_property_file  # (step, property file name) -> parsed JSON

    def resolve(self, value: Any, where: str) -> Any:
        if isinstance(value, dict):
            if len(value) == 1 and next(iter(value)) in EXPRESSION_KEYS:
                return self._expression(value, where)
            return {key: self.resolve(item, where) for key, item in value.items()}
        if isinstance(value, list):
            return [self.resolve(item, where) for item in value]
        return value

    def _expression(self, value: dict, where: str) -> Any:
        ((key, body),) = value.items()
        if key == "Get":
            return self._get(str(body), where)
        if key == "Std:Join":
            values = [self.resolve(item, where) for item in body.get("Values", [])]
            return str(body.get("On", "")).join(_as_text(item) for item in values)
        # Std:JsonGet
        source = body.get("PropertyFile")
        path = str(body.get("Path", ""))
        if not (isinstance(source, dict) and isinstance(source.get("Get"), str)):
            raise BrokenWiring(f"{where}: Std:JsonGet without a PropertyFile reference")
        step, name = _property_file_ref(source["Get"], where)
        return json_get(self.read_property_file(step, name), path, f"{where}: property file {step}.{name}")

    def _get(self, ref: str, where: str) -> Any:
        head, _, rest = ref.partition(".")
        if head == "Parameters":
            if rest not in self.parameters:
                raise BrokenWiring(f"{where}: {ref}: no such parameter (have {', '.join(self.parameters) or 'none'})")
            return self.parameters[rest]
        if head == "Execution":
            if rest not in self.execution_variables:
                raise BrokenWiring(f"{where}: {ref}: not an execution variable the executor knows")
            return self.execution_variables[rest]
        if head == "Steps":
            step, _, path = rest.partition(".")
            if step not in self.step_properties:
                raise BrokenWiring(f"{where}: {ref}: step {step!r} has not run (or does not exist)")
            return walk(self.step_properties[step], property_path(path, where), where, ref)
        raise BrokenWiring(f"{where}: {ref}: unknown reference")


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def _property_file_ref(ref: str, where: str) -> tuple[str, str]:
    parts = ref.split(".")
    if len(parts) != 4 or parts[0] != "Steps" or parts[2] != "PropertyFiles":
        raise BrokenWiring(f"{where}: {ref}: a PropertyFile reference reads Steps.<step>.PropertyFiles.<name>")
    return parts[1], parts[3]


def references(value: Any) -> Iterator[str]:
    """Every 'Get' reference string in a tree (Steps.X..., Parameters.Y, Execution.Z)."""
    if isinstance(value, dict):
        if len(value) == 1 and "Get" in value and isinstance(value["Get"], str):
            yield value["Get"]
            return
        for item in value.values():
            yield from references(item)
    elif isinstance(value, list):
        for item in value:
            yield from references(item)


def referenced_steps(value: Any) -> set[str]:
    """Names of the steps whose properties a tree reads."""
    return {ref.split(".")[1] for ref in references(value) if ref.startswith("Steps.") and ref.count(".") >= 2}
