"""E9101: an S3 bucket (or access point) policy that allows any principal without a condition naming who or where."""

from __future__ import annotations

import re
from typing import Any

from cfnlint.rules import CloudFormationLintRule, RuleMatch

# Condition keys that narrow "anyone" to an account, organisation, network or calling resource.
RESTRICTING_KEYS = {
    "aws:sourcearn",
    "aws:sourceaccount",
    "aws:sourceowner",
    "aws:sourcevpc",
    "aws:sourcevpce",
    "aws:sourceip",
    "aws:vpcsourceip",
    "aws:sourceorgid",
    "aws:sourceorgpaths",
    "aws:principalorgid",
    "aws:principalorgpaths",
    "aws:principalaccount",
    "aws:principalarn",
    "aws:principalservicename",
    "aws:userid",
    "aws:username",
    "s3:dataaccesspointaccount",
    "s3:dataaccesspointarn",
}
# Operators that hold a request to the listed values (the negated, *IfExists and ForAllValues forms
# let a request without the key through, so they restrict nothing).
MATCHING_OPERATORS = {
    "stringequals",
    "stringequalsignorecase",
    "stringlike",
    "arnequals",
    "arnlike",
    "ipaddress",
}
_ANY_ACCOUNT = re.compile(r"^arn:aws[a-z-]*:iam::\*:")


def _listed(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def _anyone(principal: Any) -> bool:
    """Principal "*", {"AWS": "*"} (or a list holding it), or any account's root."""
    if isinstance(principal, str):
        return principal == "*" or bool(_ANY_ACCOUNT.match(principal))
    if isinstance(principal, dict):
        return any(
            _anyone(p) for key, value in principal.items() if key in ("AWS", "CanonicalUser") for p in _listed(value)
        )
    return False


def _restricted(condition: Any) -> bool:
    if not isinstance(condition, dict):
        return False
    for operator, tests in condition.items():
        op = str(operator).lower()
        if op.startswith("forallvalues:") or op.endswith("ifexists"):
            continue
        op = op.removeprefix("foranyvalue:")
        if not isinstance(tests, dict):
            continue
        for key, values in tests.items():
            if op == "bool" and str(key).lower() == "aws:principalisawsservice":
                if all(str(v).lower() == "true" for v in _listed(values)):
                    return True
                continue
            if op in MATCHING_OPERATORS and str(key).lower() in RESTRICTING_KEYS:
                if values not in ([], "") and not any(v == "*" for v in _listed(values)):
                    return True
    return False


class PublicBucketPolicy(CloudFormationLintRule):
    id = "E9101"
    shortdesc = "S3 bucket policy allows any principal without a restricting condition"
    description = (
        "An Allow statement with Principal '*' (or NotPrincipal) must be held by a condition on who or where"
        " the request comes from (aws:SourceArn, aws:SourceAccount, aws:PrincipalOrgID, aws:SourceVpce ...)"
    )
    source_url = "https://docs.aws.amazon.com/AmazonS3/latest/userguide/access-control-block-public-access.html"
    tags = ["resources", "s3", "security", "gitops"]

    def __init__(self) -> None:
        super().__init__()
        self.resource_property_types = ["AWS::S3::BucketPolicy", "AWS::S3::AccessPoint"]

    def match(self, cfn) -> list[RuleMatch]:
        matches = []
        for logical_id, resource in cfn.get_resources(["AWS::S3::BucketPolicy", "AWS::S3::AccessPoint"]).items():
            properties = resource.get("Properties") or {}
            key = "PolicyDocument" if resource.get("Type") == "AWS::S3::BucketPolicy" else "Policy"
            document = properties.get(key)
            if not isinstance(document, dict):
                continue
            statements = document.get("Statement")
            for index, statement in enumerate(_listed(statements)):
                if not isinstance(statement, dict) or statement.get("Effect") == "Deny":
                    continue
                public = _anyone(statement.get("Principal")) or "NotPrincipal" in statement
                if public and not _restricted(statement.get("Condition")):
                    sid = f" ({statement['Sid']})" if isinstance(statement.get("Sid"), str) else ""
                    path = ["Resources", logical_id, "Properties", key, "Statement"]
                    if isinstance(statements, list):
                        path.append(index)
                    matches.append(
                        RuleMatch(
                            path,
                            f"{logical_id}: statement {index}{sid} allows any principal"
                            f" {_listed(statement.get('Action'))} with no condition restricting who or where",
                        )
                    )
        return matches
