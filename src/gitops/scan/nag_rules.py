"""Which resource types each AwsSolutions rule applies to, read from the installed cdk-nag pack's own code.

cdk-nag calls every rule of the pack on every CfnResource and each rule first tests the
resource's class (`if (node instanceof aws_s3_1.CfnBucket ...)`); its report keeps only the
violations. To say which rules applied to which resource types, this reads the pack (the jsii
bundle inside the installed cdk_nag package): each `applyRule` of AwsSolutions, the rule it calls,
and that rule's first class test (aws_s3_1.CfnBucket is AWS::S3::Bucket: the L1 class is named
after the type). Nothing of aws_cdk is loaded: the scan does not need the CDK.
"""

from __future__ import annotations

import importlib.util
import re
import tarfile
from functools import cache
from importlib import metadata
from pathlib import Path

from gitops.scan.errors import ScanError

_PACK = "package/lib/packs/aws-solutions.js"
_APPLY = re.compile(r"ruleSuffixOverride:\s*'([^']+)'.*?rule:\s*([a-z0-9_]+)_1\.([A-Za-z0-9]+)", re.DOTALL)
_FIRST_TEST = re.compile(r"exports\.default\s*=.*?\bif\s*\((.*?)\)\s*\{", re.DOTALL)
_CLASS_TEST = re.compile(r"instanceof\s+(aws_[a-z0-9]+)_1\.(Cfn[A-Za-z0-9]+)")


def _bundle() -> Path:
    spec = importlib.util.find_spec("cdk_nag")  # located, not imported: importing starts the jsii runtime
    if spec is None or spec.origin is None:
        raise ScanError("cdk-nag is not installed, so its rules cannot be listed")
    package = Path(spec.origin).parent
    found = sorted((package / "_jsii").glob("cdk-nag@*.jsii.tgz"))
    if not found:
        raise ScanError(f"{package}: cdk-nag's jsii bundle is missing (reinstall cdk-nag)")
    return found[-1]


def class_of(cfn_type: str) -> tuple[str, str] | None:
    """AWS::S3::Bucket -> ("aws_s3", "CfnBucket"): the aws_cdk module and L1 class of a CloudFormation type."""
    parts = cfn_type.split("::")
    if len(parts) != 3 or parts[0] != "AWS":
        return None
    return f"aws_{parts[1].lower()}", f"Cfn{parts[2]}"


@cache
def rule_classes(version: str | None = None) -> dict[str, frozenset[tuple[str, str]]]:
    """AwsSolutions-<id> -> the (aws_cdk module, L1 class) it applies to, for the installed cdk-nag.

    version is only the cache key: a different installed cdk-nag is a different answer.
    """
    del version  # only the cache key: a different installed cdk-nag is a different answer
    with tarfile.open(_bundle()) as bundle:

        def text(name: str) -> str:
            member = bundle.extractfile(name)
            if member is None:
                raise ScanError(f"cdk-nag bundle: {name} is missing")
            return member.read().decode("utf-8")

        pack = text(_PACK)
        rules: dict[str, frozenset[tuple[str, str]]] = {}
        for suffix, folder, function in _APPLY.findall(pack):
            try:
                source = text(f"package/lib/rules/{folder}/{function}.js")
            except KeyError:
                source = ""
            test = _FIRST_TEST.search(source)
            rules[f"AwsSolutions-{suffix}"] = frozenset(_CLASS_TEST.findall(test.group(1)) if test else ())
    if not rules:
        raise ScanError(f"{_bundle()}: no AwsSolutions rules found in cdk-nag's pack (an unknown cdk-nag layout)")
    return rules


def coverage(cfn_types: set[str]) -> tuple[list[str], dict[str, list[str]]]:
    """Every AwsSolutions rule, and per given CloudFormation type the rules that apply to it."""
    rules = rule_classes(metadata.version("cdk-nag"))
    by_type: dict[str, list[str]] = {}
    for cfn_type in sorted(cfn_types):
        cls = class_of(cfn_type)
        applied = sorted(rule for rule, classes in rules.items() if cls in classes)
        if applied:
            by_type[cfn_type] = applied
    return sorted(rules), by_type
