"""The optional deploy notification: skipped without a webhook secret, sent with one, never failing a deploy."""

from __future__ import annotations

import json

from gitops.deploy.notify import notify_deploy
from gitops.deploy.report import DeployReport


def _report(ok: bool = True) -> DeployReport:
    report = DeployReport("ab" * 32, "dev", "111111111111", "eu-west-1", "aws")
    report.ok, report.error = ok, None if ok else "stack mlops-dev-app: ECS service rolled back"
    return report


def test_no_webhook_secret_means_skipped_and_nothing_sent():
    sent: list[str] = []
    assert notify_deploy(_report(), {}, post=lambda u, b: sent.append(u) or 200) == (
        "notification skipped: no DEPLOY_WEBHOOK_URL secret is set"
    )
    assert notify_deploy(_report(), {"DEPLOY_WEBHOOK_URL": "  "}, post=lambda u, b: sent.append(u) or 200).startswith(
        "notification skipped"
    )
    assert sent == []


def test_a_failure_is_sent_as_a_failure():
    sent: list[tuple[str, dict]] = []
    note = notify_deploy(
        _report(ok=False),
        {"DEPLOY_WEBHOOK_URL": "https://hooks.example.com/T/B/x"},
        post=lambda url, body: sent.append((url, json.loads(body))) or 200,
    )
    assert note == "notification sent (HTTP 200)"
    ((url, body),) = sent
    assert url == "https://hooks.example.com/T/B/x"
    assert "release abababababab FAILED: stack mlops-dev-app: ECS service rolled back" in body["text"]


def test_an_unreachable_or_plain_http_webhook_is_reported_not_raised():
    def refuse(_url: str, _body: bytes) -> int:
        raise ConnectionRefusedError("refused")

    env = {"DEPLOY_WEBHOOK_URL": "https://hooks.example.com/x"}
    assert notify_deploy(_report(), env, post=refuse) == "notification not sent: ConnectionRefusedError: refused"
    plain = {"DEPLOY_WEBHOOK_URL": "http://hooks.example.com/x"}
    assert notify_deploy(_report(), plain).startswith("notification not sent: DEPLOY_WEBHOOK_URL is not an https://")
