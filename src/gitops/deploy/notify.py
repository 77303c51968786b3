"""The optional notification of a deploy's result (a Slack-style webhook), skipped and said so without a secret."""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Callable, Mapping

from gitops.deploy.report import DeployReport

WEBHOOK_ENV = "DEPLOY_WEBHOOK_URL"  # a secret: GitHub Actions `secrets.DEPLOY_WEBHOOK_URL`, or the build's env


def message(report: DeployReport) -> str:
    verdict = "succeeded" if report.ok else f"FAILED: {report.error}"
    return (
        f"gitops deploy {report.stage} ({report.account}/{report.region}): release {report.release_id[:12]} {verdict}"
    )


def _post(url: str, body: bytes) -> int:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (the operator's https webhook)
        return response.status


def notify_deploy(
    report: DeployReport, env: Mapping[str, str] | None = None, post: Callable[[str, bytes], int] = _post
) -> str:
    """Send the result; a notification that cannot be sent is reported, never a reason to fail the deploy."""
    url = (env if env is not None else os.environ).get(WEBHOOK_ENV, "").strip()
    if not url:
        return f"notification skipped: no {WEBHOOK_ENV} secret is set"
    if not url.startswith("https://"):
        return f"notification not sent: {WEBHOOK_ENV} is not an https:// URL"
    try:
        status = post(url, json.dumps({"text": message(report)}).encode())
    except OSError as exc:
        return f"notification not sent: {type(exc).__name__}: {exc}"
    return f"notification sent (HTTP {status})" if 200 <= status < 300 else f"notification not sent: HTTP {status}"
