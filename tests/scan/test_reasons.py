"""A suppression's reason must say what makes the exception safe: the rules it is held to, each refusal named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gitops.scan.errors import PolicyError
from gitops.scan.policy import load_policy, parse_policy
from gitops.scan.reasons import refusal

ROOT = Path(__file__).resolve().parents[2]


def entry(reason: str, rule: str = "CKV_AWS_18", resource: str = "MLOps/AccessLogsBucket") -> str:
    return f"suppressions:\n  - rule: {rule}\n    resources: [{resource}]\n    reason: {json.dumps(reason)}\n"


@pytest.mark.parametrize(
    ("reason", "rule"),
    [
        ("x" * 20, "reason-repeated-character"),
        ("x" * 200, "reason-repeated-character"),
        ("ab " * 10, "reason-repeated-character"),
        ("!!!!!!!!!!!!!!!!!!!!!!!!", "reason-repeated-character"),
        ("short", "reason-too-short"),
        ("TODO: explain why this bucket is fine", "reason-placeholder"),
        ("tbd by the platform team later on", "reason-placeholder"),
        ("lorem ipsum dolor sit amet consectetur", "reason-placeholder"),
        ("it is ok, it is fine, it is ok, fine", "reason-too-few-words"),
        ("accepted accepted accepted accepted", "reason-too-few-words"),
        ("This is a false positive.", "reason-just-suppression"),
        ("this finding is a known false positive", "reason-just-suppression"),
        ("the check was accepted.", "reason-just-suppression"),
        ("suppression of CKV_AWS_18 for the resource MLOps/AccessLogsBucket in MLOps", "reason-restates-rule"),
    ],
)
def test_a_reason_that_says_nothing_is_refused_with_its_rule_named(reason, rule):
    with pytest.raises(PolicyError) as caught:
        parse_policy(entry(reason), "policy.yaml")
    message = str(caught.value)
    assert f"reason: refused ({rule}" in message, message
    assert message.startswith("policy.yaml: suppressions[0] (CKV_AWS_18): ") and "\n" not in message
    assert len(message) < 250


@pytest.mark.parametrize(
    "reason",
    [
        "This is the server-access-log target of the artifact bucket; logging it to itself would loop.",
        "The literal placeholder credential that moto requires; it authenticates nothing.",
        "Versions of the stage's own model package group only; SageMaker numbers each version.",
    ],
)
def test_a_reason_that_says_why_passes(reason):
    assert refusal(reason, ("CKV_AWS_18", "MLOps/AccessLogsBucket")) is None
    parse_policy(entry(reason))


def test_every_reason_in_the_projects_policy_passes_the_rules():
    policy = load_policy(ROOT / "policy.yaml")
    for suppression in policy.suppressions:
        assert refusal(suppression.reason, (suppression.rule, *suppression.resources)) is None, suppression.rule


NAMES = ("CKV_AWS_18", "MLOps/AccessLogsBucket")


def test_the_word_and_character_counts_hold_at_their_limits():
    # Four distinct words beyond the names is enough; three is not.
    assert refusal("encrypted bucket holds logs here", NAMES) is None
    assert refusal("MLOps AccessLogsBucket encrypted bucket holds logs", NAMES) is None
    assert refusal("encrypted bucket holds it, it is fine", ()) == (
        "reason-too-few-words: 3 distinct word(s); say in at least 4 what makes the exception safe"
    )
    # Five distinct characters are not a repeated character: the word count is what refuses this one.
    assert refusal("abcde abcde abcde abcde").startswith("reason-too-few-words: 1 distinct word(s)")


def test_punctuation_around_a_word_does_not_make_it_another_word():
    assert refusal("encrypted. encrypted: encrypted/ encrypted_ bucket").startswith(
        "reason-too-few-words: 2 distinct word(s)"
    )


@pytest.mark.parametrize(
    "reason",
    [
        "CKV_AWS_18 MLOps AccessLogsBucket encrypted bucket holds",  # the rule id is a name too
        "MLOps AccessLogsBucket encrypted bucket holds",  # so is each part of the resource path
    ],
)
def test_the_rule_id_and_every_part_of_the_resource_count_as_names(reason):
    assert refusal(reason, NAMES) == (
        "reason-restates-rule: beyond the rule id and resource names it says too little; say what makes the"
        " exception safe"
    )
