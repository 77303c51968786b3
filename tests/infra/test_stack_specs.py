"""The stack spec list (infra/stacks/specs.py) and the merge of the execution role's statements.

A new stack is one spec: the app builds it in its stage, with its dependencies, and the
CloudFormation execution role gets the permissions it declares.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from aws_cdk import aws_iam as iam
from aws_cdk import aws_ssm as ssm
from infra_synth import ROOT, STAGES, SYNTH_ENV

from gitops.errors import SynthError
from infra import names
from infra.app import build_app
from infra.roles.arns import StageArns
from infra.roles.cloudformation_execution import STATEMENT_ORDER
from infra.roles.deploy_statements import merge
from infra.roles.statements import allow, in_region
from infra.stacks.specs import STACKS, StackSpec, check_order
from infra.stacks.stage_stack import StageInputs, StageStack

pytestmark = pytest.mark.integration  # every test here needs the CDK app (tests/infra/conftest.py)


class ExtraStack(StageStack):
    """A stack that is not part of the project: one parameter, one permission to deploy it."""

    def __init__(self, scope, id: str, *, inputs: StageInputs, **kwargs) -> None:
        super().__init__(scope, id, inputs=inputs, **kwargs)
        ssm.StringParameter(self, "Marker", parameter_name=f"/{inputs.cfg.prefix}/extra", string_value="x")

    @staticmethod
    def deploy_statements(arns: StageArns) -> list[iam.PolicyStatement]:
        return [allow(["ssm:PutParameter"], [f"arn:aws:ssm:::parameter/{arns.cfg.prefix}/extra"], sid="ExtraMarker")]


def test_the_project_spec_list_is_a_deploy_order():
    check_order(STACKS)
    assert STACKS[0].depends_on == ()
    assert len({spec.id for spec in STACKS}) == len(STACKS)


def test_a_spec_depending_on_a_later_or_unknown_stack_is_refused():
    later = (StackSpec("A", ExtraStack, "a", ("B",)), StackSpec("B", ExtraStack, "b"))
    with pytest.raises(SynthError, match=r"specs\.py: stack 'A' depends on B, not declared before it"):
        check_order(later)
    twice = (StackSpec("A", ExtraStack, "a"), StackSpec("A", ExtraStack, "again"))
    with pytest.raises(SynthError, match=r"stack 'A' is declared twice"):
        check_order(twice)


def test_one_more_spec_is_one_more_stack_with_its_dependency_and_its_deploy_permission(tmp_path):
    os.environ.update(SYNTH_ENV)
    stages = {"prod": STAGES["prod"]}  # a stage that promotes nowhere: no other stage is needed
    cfg = stages["prod"]
    specs = (STACKS[0], StackSpec("Extra", ExtraStack, "a test stack", depends_on=("Base",)))
    assembly = build_app(ROOT, stages, outdir=str(tmp_path), specs=specs).synth()
    stacks = {a.hierarchical_id: a for a in assembly.stacks_recursively}
    assert set(stacks) == {"prod/Base", "prod/Extra"}
    extra = stacks["prod/Extra"]
    assert extra.stack_name == f"{cfg.prefix}-extra"
    assert [d.id for d in extra.dependencies if d.id in {a.id for a in stacks.values()}] == [stacks["prod/Base"].id]
    base = json.loads(Path(stacks["prod/Base"].template_full_path).read_text())
    role = next(
        r["Properties"]
        for r in base["Resources"].values()
        if r["Type"] == "AWS::IAM::Role" and r["Properties"]["RoleName"] == names.deploy_role_name(cfg)
    )
    statements = role["Policies"][0]["PolicyDocument"]["Statement"]
    # A Sid the fixed order does not name comes last.
    assert statements[-1] == {
        "Sid": "ExtraMarker",
        "Effect": "Allow",
        "Action": "ssm:PutParameter",
        "Resource": f"arn:aws:ssm:::parameter/{cfg.prefix}/extra",
    }
    assert "ManageStageNetwork" not in {s["Sid"] for s in statements}  # Network is not among the specs


def test_merge_unions_actions_and_resources_of_one_sid_in_the_fixed_order():
    arns = StageArns(STAGES["prod"])
    merged = merge(
        [
            allow(["b:Two"], ["arn:2"], sid="Later"),
            allow(["a:One"], ["arn:1"], in_region(arns.cfg), sid=STATEMENT_ORDER[0]),
            allow(["a:Zero", "a:One"], ["arn:1", "arn:0"], in_region(arns.cfg), sid=STATEMENT_ORDER[0]),
        ],
        STATEMENT_ORDER,
    )
    assert [s.to_statement_json() for s in merged] == [
        {
            "Sid": STATEMENT_ORDER[0],
            "Effect": "Allow",
            "Action": ["a:One", "a:Zero"],
            "Resource": ["arn:1", "arn:0"],
            "Condition": in_region(arns.cfg),
        },
        {"Sid": "Later", "Effect": "Allow", "Action": "b:Two", "Resource": "arn:2"},
    ]


def test_merge_refuses_a_sid_contributed_with_another_condition_or_without_a_sid():
    arns = StageArns(STAGES["prod"])
    with pytest.raises(SynthError, match="deploy statement Same: stacks contribute it with different"):
        merge([allow(["a:One"], ["*"], in_region(arns.cfg), sid="Same"), allow(["a:Two"], ["*"], sid="Same")], ())
    with pytest.raises(SynthError, match="a deploy statement without a Sid"):
        merge([allow(["a:One"], ["*"])], ())
