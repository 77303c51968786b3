"""The gate's own cfn-lint rules (E9xxx), for what neither cfn-lint nor checkov checks on CloudFormation.

cfn-lint loads them with `--append-rules gitops.scan.cfn_lint_rules` (a module path): every
CloudFormationLintRule named here runs beside cfn-lint's own, reported as cfn-lint findings.
"""

from gitops.scan.cfn_lint_rules.codebuild_privileged import CodeBuildPrivilegedMode
from gitops.scan.cfn_lint_rules.internet_egress import (
    EgressOnlyInternetGateway,
    InternetGateway,
    InternetRoute,
    NatGateway,
)
from gitops.scan.cfn_lint_rules.public_bucket_policy import PublicBucketPolicy

# Never suppressible in policy.yaml: the isolated network's promise has no exception.
UNSUPPRESSIBLE = {
    NatGateway.id: NatGateway.shortdesc,
    EgressOnlyInternetGateway.id: EgressOnlyInternetGateway.shortdesc,
    InternetRoute.id: InternetRoute.shortdesc,
}

__all__ = [
    "UNSUPPRESSIBLE",
    "CodeBuildPrivilegedMode",
    "EgressOnlyInternetGateway",
    "InternetGateway",
    "InternetRoute",
    "NatGateway",
    "PublicBucketPolicy",
]
