"""E9301: a CodeBuild project in privileged mode (root on the build host's Docker daemon)."""

from __future__ import annotations

from cfnlint.rules import CloudFormationLintRule, RuleMatch


class CodeBuildPrivilegedMode(CloudFormationLintRule):
    id = "E9301"
    shortdesc = "CodeBuild project runs in privileged mode"
    description = (
        "PrivilegedMode gives the build root on the Docker daemon; only the image build may have it, named in"
        " policy.yaml with its reason"
    )
    source_url = "https://docs.aws.amazon.com/codebuild/latest/userguide/build-env-ref-compute-types.html"
    tags = ["resources", "codebuild", "security", "gitops"]

    def __init__(self) -> None:
        super().__init__()
        self.resource_property_types = ["AWS::CodeBuild::Project"]

    def match(self, cfn) -> list[RuleMatch]:
        matches = []
        for logical_id, resource in cfn.get_resources(["AWS::CodeBuild::Project"]).items():
            environment = (resource.get("Properties") or {}).get("Environment")
            if not isinstance(environment, dict) or "PrivilegedMode" not in environment:
                continue
            value = environment["PrivilegedMode"]
            if value is False or (isinstance(value, str) and value.lower() == "false"):
                continue
            shown = "true" if value is True or str(value).lower() == "true" else "set by an expression (may be true)"
            matches.append(
                RuleMatch(
                    ["Resources", logical_id, "Properties", "Environment", "PrivilegedMode"],
                    f"{logical_id}: PrivilegedMode is {shown}; only the image build may run privileged",
                )
            )
        return matches
