"""Every tool's inline skip is a finding wherever it hides, in any spelling, and the tools read a copy without it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gitops.release.pipelines import canonical_json
from gitops.scan.cdk_nag import _acknowledgments
from gitops.scan.inline_skips import find_skips, inline_suppressions, neutralise, without_skips
from gitops.scan.templates import TemplateRef

MODEL = {"Type": "AWS::SageMaker::Model", "Properties": {"ExecutionRoleArn": "arn:aws:iam::1:role/r"}}


def ref(body: dict, tmp_path: Path | None = None) -> TemplateRef:
    text = canonical_json(body)
    rel = "stages/dev/templates/Data.template.json"
    path = Path("x")
    if tmp_path is not None:
        path = tmp_path / "release" / rel
        path.parent.mkdir(parents=True)
        path.write_bytes(text)
    return TemplateRef("dev", "Data", rel, path, "eu-west-1", body, text.decode().splitlines())


def with_metadata(metadata: dict, where: str = "resource") -> dict:
    if where == "template":
        return {"Metadata": metadata, "Resources": {"Model": MODEL}}
    return {"Resources": {"Model": {**MODEL, "Metadata": metadata}}}


@pytest.mark.parametrize(
    ("metadata", "what", "rule"),
    [
        ({"checkov": {"skip": [{"id": "CKV_AWS_370", "comment": "c"}]}}, "checkov skip", "CKV_AWS_370"),
        ({"bridgecrew": {"skip": [{"id": "CKV_AWS_370"}]}}, "checkov (bridgecrew) skip", "CKV_AWS_370"),
        ({"BridgeCrew": {"skip": [{"id": "CKV_AWS_370"}]}}, "checkov (bridgecrew) skip", "CKV_AWS_370"),
        ({"CHECKOV": {"skip": [{"id": "CKV_AWS_370"}]}}, "checkov skip", "CKV_AWS_370"),
        ({"cfn_nag": {"rules_to_suppress": [{"id": "W58", "reason": "r"}]}}, "cfn_nag rules_to_suppress", "W58"),
        ({"cfn-nag": {"rules_to_suppress": [{"id": "W58"}]}}, "cfn_nag rules_to_suppress", "W58"),
        ({"cfn-lint": {"config": {"ignore_checks": ["E3012"]}}}, "cfn-lint configuration", "E3012"),
        ({"CFN_Lint": {"config": {"ignore_checks": ["E3012"]}}}, "cfn-lint configuration", "E3012"),
        (
            {"cdk_nag": {"rules_to_suppress": [{"id": "AwsSolutions-S1", "reason": "r"}]}},
            "cdk-nag rules_to_suppress",
            "AwsSolutions-S1",
        ),
        (
            {"guard": {"SuppressedRules": ["S3_BUCKET_LOGGING_ENABLED"]}},
            "cfn-guard SuppressedRules",
            "S3_BUCKET_LOGGING_ENABLED",
        ),
    ],
)
@pytest.mark.parametrize("where", ["resource", "template"])
def test_a_skip_in_metadata_is_refused_in_any_spelling(metadata, what, rule, where):
    [refused] = inline_suppressions(ref(with_metadata(metadata, where)))
    assert refused.rule_id == "inline-suppression" and refused.tool == "policy"
    assert what in refused.message and "only policy.yaml may suppress" in refused.message
    assert refused.resource == ("Model" if where == "resource" else None)
    assert f"skips {rule}" in refused.message


def test_a_skip_with_no_rule_ids_is_refused_all_the_same():
    [refused] = inline_suppressions(ref(with_metadata({"cfn-lint": {"config": {"regions": ["us-east-1"]}}})))
    assert "cfn-lint configuration" in refused.message


@pytest.mark.parametrize(
    "text",
    [
        "checkov:skip=CKV_AWS_370:isolation is off",
        "CHECKOV:SKIP=CKV_AWS_370",
        "owner team; bridgecrew:skip=CKV_AWS_370",
        "cortex:skip=CKV_AWS_370",
        "checkov : skip = CKV_AWS_370",
    ],
)
def test_a_skip_comment_in_any_string_is_refused(text):
    tagged = {**MODEL, "Properties": {**MODEL["Properties"], "Tags": [{"Key": "note", "Value": text}]}}
    [refused] = inline_suppressions(ref({"Resources": {"Model": tagged}}))
    assert refused.resource == "Model" and "CKV_AWS_370" in refused.message
    assert "Resources.Model.Properties.Tags.0.Value" in refused.message
    # ... a description, an output, a key: anywhere in the template.
    assert inline_suppressions(ref({"Resources": {"Model": MODEL}, "Outputs": {"O": {"Description": text}}}))
    assert inline_suppressions(ref({"Resources": {"Model": {**MODEL, "Metadata": {text: "x"}}}}))


def test_a_clean_template_has_no_refusal_and_no_copy(tmp_path):
    plain = ref({"Metadata": {"aws:cdk:path": "dev/Data"}, "Resources": {"Model": MODEL}}, tmp_path)
    assert inline_suppressions(plain) == []
    neutralise([plain], tmp_path / "work")
    assert plain.scan_path is None and plain.tool_path == plain.path.resolve()


def test_the_tools_read_a_copy_without_the_skips(tmp_path):
    body = {
        "Metadata": {"cfn-lint": {"config": {"ignore_checks": ["E9101"]}}},
        "Resources": {
            "Model": {
                **MODEL,
                "Metadata": {"bridgecrew": {"skip": [{"id": "CKV_AWS_370"}]}, "aws:cdk:path": "dev/Data/Model"},
                "Properties": {**MODEL["Properties"], "Tags": [{"Key": "k", "Value": "checkov:skip=CKV_AWS_370"}]},
            }
        },
    }
    template = ref(body, tmp_path)
    neutralise([template], tmp_path / "work")
    assert template.scan_path == tmp_path / "work" / template.rel
    copy = json.loads(template.scan_path.read_text())
    assert find_skips(copy) == []
    assert copy["Resources"]["Model"]["Metadata"] == {"aws:cdk:path": "dev/Data/Model"}
    assert "Metadata" not in copy or "cfn-lint" not in copy.get("Metadata", {})
    assert copy["Resources"]["Model"]["Properties"]["ExecutionRoleArn"] == MODEL["Properties"]["ExecutionRoleArn"]
    assert json.loads(template.path.read_text()) == body  # the release itself is untouched
    # A property that happens to be named like a tool is not metadata: kept.
    assert without_skips({"Properties": {"Guard": 1}}) == {"Properties": {"Guard": 1}}


def test_hand_written_cdk_nag_acknowledgments_are_found_in_any_spelling(tmp_path):
    metadata = {
        "/dev/Data/Bucket/Resource": [
            {"type": "aws:cdk:acknowledged-rules", "data": {"Annotation::AwsSolutions-S1": "by hand"}},
            {"type": "AWS:CDK:Acknowledged-Rules", "data": {"annotation::awssolutions-s10": "by hand"}},
            {"type": "aws:cdk:acknowledged-rules", "data": {"annotation::serverless-LambdaTracing": "by hand"}},
            # aws-cdk-lib's own constructs acknowledge CloudFormation-Validate rules: not cdk-nag's, not ours.
            {"type": "aws:cdk:acknowledged-rules", "data": {"CloudFormation-Validate::F3002": "the library's"}},
            {"type": "aws:cdk:logicalId", "data": "Bucket"},
        ]
    }
    (tmp_path / "Data.metadata.json").write_text(json.dumps(metadata))
    found = _acknowledgments(tmp_path)
    assert {a["rule_id"] for a in found} == {"AwsSolutions-S1", "awssolutions-s10", "serverless-LambdaTracing"}
    assert all(a["construct_path"] == "dev/Data/Bucket/Resource" for a in found)


def test_the_refusal_names_template_resource_line_and_every_skipped_id():
    body = {
        "Resources": {
            "Model": {
                **MODEL,
                "Metadata": {
                    "checkov": {"skip": [{"ID": "CKV_AWS_370"}, {"Id": "CKV_AWS_1"}, {"id": "CKV_AWS_2"}, "CKV_3"]}
                },
            }
        }
    }
    template = ref(body)
    [finding] = inline_suppressions(template)
    assert finding.message == (
        "checkov skip at Resources.Model.Metadata.checkov skips CKV_AWS_370, CKV_AWS_1, CKV_AWS_2, CKV_3:"
        " inline skips are refused, only policy.yaml may suppress"
    )
    assert (finding.tool, finding.rule_id, finding.severity) == ("policy", "inline-suppression", "error")
    assert (finding.file, finding.stage, finding.stack, finding.resource) == (template.rel, "dev", "Data", "Model")
    assert finding.line == template.line_of("Model") and finding.line is not None
    assert finding.hint == (
        "remove it from the template (or its CDK source); add a suppression with a reason to policy.yaml"
    )


def test_a_skip_with_no_ids_says_none_and_one_outside_resources_names_no_resource():
    template = ref({"Metadata": {"cfn_nag": {}}, "Resources": {"Model": MODEL}})
    [finding] = inline_suppressions(template)
    assert finding.message == (
        "cfn_nag rules_to_suppress at Metadata.cfn_nag: inline skips are refused, only policy.yaml may suppress"
    )
    assert finding.resource is None and finding.line is None
    assert [
        f.resource
        for f in inline_suppressions(
            ref({"Resources": {"Model": MODEL}, "Outputs": {"X": {"Value": "checkov:skip=CKV_1"}}})
        )
    ] == [None]  # noqa: E501


def test_a_skip_comment_names_each_rule_it_lists_and_where_it_is():
    body = {
        "Resources": {"Model": {**MODEL, "Properties": {"Tags": [{"Key": "k", "Value": "checkov:skip=CKV_1,CKV_2"}]}}}
    }
    [finding] = inline_suppressions(ref(body))
    assert finding.message.startswith(
        "checkov skip comment at Resources.Model.Properties.Tags.0.Value skips CKV_1, CKV_2: "
    )
    keyed = {"Resources": {"Model": {**MODEL, "Metadata": {"checkov:skip=CKV_9": "x"}}}}
    assert [f.message.split(":")[0] for f in inline_suppressions(ref(keyed))] == [
        "checkov skip comment at Resources.Model.Metadata.checkov"
    ]


def test_every_template_with_a_skip_gets_its_own_clean_copy(tmp_path):
    from gitops.scan.inline_skips import neutralise

    clean = ref({"Resources": {"Model": MODEL}}, tmp_path / "a")
    skipped_body = {"Resources": {"Model": {**MODEL, "Metadata": {"checkov:skip=CKV_9": "x", "cfn_nag": {}}}}}
    skipped = ref(skipped_body, tmp_path / "b")
    skipped.rel = "stages/dev/templates/Other.template.json"
    neutralise([clean, skipped], tmp_path / "work")
    assert clean.scan_path is None
    assert skipped.scan_path == tmp_path / "work" / skipped.rel
    copy = skipped.scan_path.read_text()
    assert "checkov:skip" not in copy and "cfn_nag" not in copy
    assert copy == json.dumps(json.loads(copy), indent=2, sort_keys=True) + "\n"  # readable, stable for the tools
    assert without_skips([{"Value": "checkov:skip=CKV_1"}]) == [{"Value": "skip-refused-by-gitops"}]


def test_each_skip_entry_of_a_metadata_object_is_refused_and_only_ids_count_as_ids():
    metadata = {"checkov": {"skip": [{"id": "CKV_1", "comment": "why"}]}, "cfn_nag": {"rules_to_suppress": []}}
    findings = inline_suppressions(ref(with_metadata(metadata)))
    assert [f.message.split(":")[0] for f in findings] == [
        "checkov skip at Resources.Model.Metadata.checkov skips CKV_1",
        "cfn_nag rules_to_suppress at Resources.Model.Metadata.cfn_nag",
    ]


def test_a_skip_comment_as_a_key_is_placed_at_its_resource_or_at_none():
    in_resource = {"Resources": {"Model": {**MODEL, "checkov:skip=CKV_1": "x"}}}
    assert [f.resource for f in inline_suppressions(ref(in_resource))] == ["Model"]
    as_logical_id = {"Resources": {"checkov:skip=CKV_1": MODEL}}
    assert [f.resource for f in inline_suppressions(ref(as_logical_id))] == [None]
