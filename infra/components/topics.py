"""KMS-encrypted, TLS-only SNS topics for approvals and alarms."""

from __future__ import annotations

from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct


def encrypted_topic(
    scope: Construct, id: str, *, name: str, display_name: str, key: kms.IKey, email: str | None
) -> sns.Topic:
    topic = sns.Topic(scope, id, topic_name=name, display_name=display_name, master_key=key, enforce_ssl=True)
    if email:
        topic.add_subscription(subscriptions.EmailSubscription(email))
    return topic
