"""S3 buckets with the house security baseline: no public access, TLS only, owner-enforced, versioned."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

NONCURRENT_VERSION_DAYS = 90
INCOMPLETE_UPLOAD_DAYS = 7


def access_logs_bucket(scope: Construct, id: str, *, name: str, retain: bool, expire_days: int) -> s3.Bucket:
    """The target of server access logging. S3 delivers access logs only to SSE-S3 buckets, not SSE-KMS."""
    return _logs_bucket(scope, id, name=name, expire_days=expire_days, baseline=_baseline(retain))


def delivery_logs_bucket(scope: Construct, id: str, *, name: str, retain: bool, expire_days: int) -> s3.Bucket:
    """Where ALB and CloudFront deliver access logs: SSE-S3 (neither writes SSE-KMS), ACLs for CloudFront.

    CloudFront's standard logs are written through the bucket ACL by the awslogsdelivery account,
    so objects stay owner-preferred rather than owner-enforced; no public access either way.
    """
    baseline = _baseline(retain) | {"object_ownership": s3.ObjectOwnership.BUCKET_OWNER_PREFERRED}
    return _logs_bucket(scope, id, name=name, expire_days=expire_days, baseline=baseline)


def _logs_bucket(scope: Construct, id: str, *, name: str, expire_days: int, baseline: dict) -> s3.Bucket:
    return s3.Bucket(
        scope,
        id,
        bucket_name=name,
        encryption=s3.BucketEncryption.S3_MANAGED,
        lifecycle_rules=[
            *_housekeeping_rules(),
            s3.LifecycleRule(id="expire-logs", expiration=Duration.days(expire_days)),
        ],
        **baseline,
    )


def artifact_bucket(
    scope: Construct, id: str, *, name: str, key: kms.IKey, access_logs: s3.IBucket, retain: bool
) -> s3.Bucket:
    """The stage's artifact store (assets, pipeline artifacts, feature store, data capture), SSE-KMS."""
    return s3.Bucket(
        scope,
        id,
        bucket_name=name,
        encryption=s3.BucketEncryption.KMS,
        encryption_key=key,
        bucket_key_enabled=True,
        server_access_logs_bucket=access_logs,
        server_access_logs_prefix=f"s3/{name}/",
        lifecycle_rules=_housekeeping_rules(),
        **_baseline(retain),
    )


def _baseline(retain: bool) -> dict:
    return {
        "versioned": True,
        "block_public_access": s3.BlockPublicAccess.BLOCK_ALL,
        "enforce_ssl": True,
        "minimum_tls_version": 1.2,
        "object_ownership": s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        "removal_policy": RemovalPolicy.RETAIN if retain else RemovalPolicy.DESTROY,
    }


def _housekeeping_rules() -> list[s3.LifecycleRule]:
    return [
        s3.LifecycleRule(
            id="expire-noncurrent-versions",
            noncurrent_version_expiration=Duration.days(NONCURRENT_VERSION_DAYS),
        ),
        s3.LifecycleRule(
            id="abort-incomplete-multipart-uploads",
            abort_incomplete_multipart_upload_after=Duration.days(INCOMPLETE_UPLOAD_DAYS),
        ),
    ]
