"""The one YAML loader of the engine: safe types only, and a repeated key is an error naming its line.

PyYAML's safe_load keeps the last of two equal keys without a word (`region` twice in a stage
config: the second silently wins). Every YAML file the engine reads (stage configs, policy.yaml,
buildspecs, workflows) goes through load_yaml instead, and a repeat is refused.
"""

from __future__ import annotations

from typing import Any

import yaml

from gitops.errors import GitopsError

_MERGE_TAG = "tag:yaml.org,2002:merge"
_BaseLoader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class YamlError(GitopsError):
    """A YAML file does not parse, or repeats a key in one mapping."""

    hint = "fix the named line of the file"


class _DuplicateKey(yaml.YAMLError):
    def __init__(self, key: object, line: int, first: int) -> None:
        super().__init__(f"duplicate key {key!r}")
        self.key, self.line, self.first = key, line, first


class _StrictLoader(_BaseLoader):
    """SafeLoader that refuses a key written twice in one mapping (merge keys `<<` may be overridden)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == _MERGE_TAG:
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.get(key)
                except TypeError:  # an unhashable key: the base constructor reports it
                    continue
                line = key_node.start_mark.line + 1
                if first is not None:
                    shown = key_node.value if isinstance(key_node, yaml.ScalarNode) else key
                    raise _DuplicateKey(shown, line, first)
                seen[key] = line
        return super().construct_mapping(node, deep=deep)


def load_yaml(text: str, source: str) -> Any:
    """Parse YAML text read from `source` (shown in errors); YamlError names the line of any problem."""
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except _DuplicateKey as exc:
        raise YamlError(
            f"{source}: line {exc.line}: duplicate key '{exc.key}' (first on line {exc.first}); keep one"
        ) from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        where = f" line {mark.line + 1}:" if mark else ""
        raise YamlError(f"{source}:{where} not valid YAML ({problem})") from exc
