"""Backup sets and restores on the embedded target: tampering, interruption, convergence, idempotence."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from conftest import BackedUpStage

from gitops.cli import main
from gitops.recovery import restore as restore_module
from gitops.recovery.backup import backup_stage
from gitops.recovery.destination import backup_account_s3, download_set, upload_set
from gitops.recovery.inventory import all_kinds
from gitops.recovery.kinds.feature_offline import FeatureStoreOffline
from gitops.recovery.kinds.model_registry import ModelRegistry
from gitops.recovery.manifest import (
    MANIFEST_NAME,
    BackupError,
    BackupIncomplete,
    BackupTampered,
    check_objects,
    complete_backups,
    read_manifest,
)
from gitops.recovery.restore import compare_stage, restore_stage

pytestmark = pytest.mark.integration


def _model_packages(stage: BackedUpStage) -> list[dict]:
    sm = stage.ctx.client("sagemaker")
    return sm.list_model_packages(ModelPackageGroupName=stage.ctx.stage.model_package_group_name)[
        "ModelPackageSummaryList"
    ]


def test_the_backup_holds_every_kind_with_digests_and_the_release(backed_up: BackedUpStage):
    manifest = read_manifest(backed_up.backup.path)
    assert manifest.release_id and manifest.seconds > 0
    # A kind list, not a {"secrets": "..."} literal, which the secrets scan rightly reads as a keyword.
    backed_up_kinds = ["env-repo", "secrets", "app-database", "model-registry", "feature-offline"]
    assert {k: v.status for k, v in manifest.kinds.items()} == {
        **dict.fromkeys(backed_up_kinds, "backed-up"),
        "feature-online": "skipped",
    }
    database = manifest.entries_of("app-database")[0]
    assert database.detail["tables"]["predictions"]["rows"] == 25
    assert database.detail["tables"]["feedback"]["rows"] == 10
    packages = [e for e in manifest.entries_of("model-registry") if "bucket" not in e.detail]
    assert [(e.detail["version"], e.detail["approval"]) for e in packages] == [
        (1, "Approved"),
        (2, "PendingManualApproval"),
    ]
    assert all(e.source_arn.startswith("arn:aws:") or e.kind == "app-database" for e in manifest.entries)
    secret = json.loads((backed_up.backup.path / "objects" / manifest.entries_of("secrets")[0].path).read_text())
    assert "password" not in json.dumps(secret)  # a backup is never a second copy of a credential
    assert compare_stage(backed_up.ctx, backed_up.backup.path, manifest) == []


def test_an_interrupted_backup_is_never_taken_for_a_complete_one(backed_up: BackedUpStage, tmp_path: Path):
    class DiesHalfWay(FeatureStoreOffline):
        def backup(self, ctx, objects):
            super().backup(ctx, objects)  # its objects are on disk...
            raise KeyboardInterrupt  # ...and the process dies before the manifest

    kinds = [k for k in all_kinds() if k.name != "feature-offline"] + [DiesHalfWay()]
    with pytest.raises(KeyboardInterrupt):
        backup_stage(backed_up.ctx, tmp_path, kinds=kinds)
    (partial,) = tmp_path.iterdir()
    assert any((partial / "objects" / "feature-offline").rglob("*.csv.gz"))
    assert not (partial / MANIFEST_NAME).exists()
    assert complete_backups(tmp_path, "dev") == []
    with pytest.raises(BackupIncomplete, match="interrupted"):
        restore_stage(backed_up.ctx, partial)
    # A manifest cut short (a copy that stopped mid-file) is refused the same way.
    whole = backed_up.copy_of_backup(tmp_path / "copy")
    text = (whole / MANIFEST_NAME).read_text()
    (whole / MANIFEST_NAME).write_text(text[: len(text) // 2])
    with pytest.raises(BackupIncomplete, match="not a readable backup manifest"):
        read_manifest(whole)


def test_one_changed_byte_refuses_the_backup_naming_the_object(
    backed_up: BackedUpStage, tmp_path: Path, monkeypatch, capsys
):
    tampered = backed_up.copy_of_backup(tmp_path)
    manifest = read_manifest(tampered)
    artifact = next(e for e in manifest.entries_of("model-registry") if e.detail.get("key", "").endswith(".tar.gz"))
    path = tampered / "objects" / artifact.path
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0x01
    path.write_bytes(bytes(blob))

    def no_deploy(*_a: Any, **_k: Any) -> None:
        raise AssertionError("a tampered backup must be refused before anything is deployed")

    monkeypatch.setattr(restore_module, "deploy_stage", no_deploy)
    with pytest.raises(BackupTampered) as refused:
        restore_stage(backed_up.ctx, tampered)
    assert artifact.name in str(refused.value)  # s3://<bucket>/models/dev/v1/model.tar.gz
    assert len(_model_packages(backed_up)) == 2  # nothing was touched

    monkeypatch.setenv("GITOPS_TARGET", "local")
    monkeypatch.setenv("GITOPS_LOCAL_DIR", str(backed_up.ctx.target.local_dir))
    with pytest.raises(SystemExit) as exited:
        main(["restore", "--stage", "dev", "--from", str(tampered)])
    assert exited.value.code == 1
    (line,) = [text for text in capsys.readouterr().err.splitlines() if text.startswith("error: ")]
    assert "model.tar.gz" in line and "refusing" in line and len(line) < 260


def test_a_set_goes_to_the_backup_bucket_locked_manifest_last_and_comes_back_whole(
    backed_up: BackedUpStage, tmp_path: Path
):
    s3 = backup_account_s3(backed_up.ctx.target.endpoint_url, backed_up.ctx.stage.region)
    s3.create_bucket(
        Bucket="unlocked-backups", CreateBucketConfiguration={"LocationConstraint": backed_up.ctx.stage.region}
    )
    with pytest.raises(BackupError, match="no Object Lock"):
        upload_set(s3, backed_up.backup.path, "s3://unlocked-backups/dev")
    s3.create_bucket(
        Bucket="mlops-backups",
        CreateBucketConfiguration={"LocationConstraint": backed_up.ctx.stage.region},
        ObjectLockEnabledForBucket=True,
    )
    s3.put_object_lock_configuration(
        Bucket="mlops-backups",
        ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 35}},
        },
    )
    url = upload_set(s3, backed_up.backup.path, "s3://mlops-backups/dev")
    bucket, key = url.removeprefix("s3://").split("/", 1)
    manifest_key = f"{key}/{MANIFEST_NAME}"
    head = s3.head_object(Bucket=bucket, Key=manifest_key)
    assert head["ObjectLockMode"] == "COMPLIANCE" and head["ServerSideEncryption"] == "aws:kms"
    version = head["VersionId"]
    with pytest.raises(ClientError):  # locked: not even the backup account deletes it within the window
        s3.delete_object(Bucket=bucket, Key=manifest_key, VersionId=version)
    copy = download_set(s3, url, tmp_path)
    assert check_objects(copy, read_manifest(copy)) == sum(e.size for e in backed_up.backup.manifest.entries)
    with pytest.raises(BackupIncomplete, match="interrupted"):
        download_set(s3, "s3://mlops-backups/dev/dev-never-finished", tmp_path)


def test_an_interrupted_restore_converges_and_a_second_restore_changes_nothing(backed_up: BackedUpStage):
    backed_up.wipe()
    assert len(compare_stage(backed_up.ctx, backed_up.backup.path, backed_up.backup.manifest)) >= 10

    class DiesAfterOnePackage(ModelRegistry):
        def restore(self, ctx, objects, entries):
            real = ctx.client

            def client(service):
                found = real(service)
                if service == "sagemaker":
                    create = found.create_model_package
                    calls = []

                    def create_once(**kwargs):
                        calls.append(1)
                        if len(calls) > 1:
                            raise KeyboardInterrupt
                        return create(**kwargs)

                    found.create_model_package = create_once
                return found

            ctx.client = client
            try:
                return super().restore(ctx, objects, entries)
            finally:
                del ctx.client

    kinds = [DiesAfterOnePackage() if k.name == "model-registry" else k for k in all_kinds()]
    with pytest.raises(KeyboardInterrupt):
        restore_stage(backed_up.ctx, backed_up.backup.path, kinds=kinds)
    assert len(_model_packages(backed_up)) == 1  # half-way: v1 registered, v2 not

    again = restore_stage(backed_up.ctx, backed_up.backup.path)
    assert again.ok, again.to_dict()
    assert again.differences == [] and again.verify_problems == []
    assert again.env_head_release_id == backed_up.backup.manifest.release_id
    registry = next(k for k in again.kinds if k.kind == "model-registry")
    assert registry.changed == ["mlops-dev-models v2 registered (PendingManualApproval)"]
    statuses = [
        backed_up.ctx.client("sagemaker").describe_model_package(ModelPackageName=p["ModelPackageArn"])
        for p in _model_packages(backed_up)
    ]
    assert [(p["ModelPackageVersion"], p["ModelApprovalStatus"]) for p in statuses] == [
        (1, "Approved"),
        (2, "PendingManualApproval"),
    ]
    assert all(p["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"].startswith("s3://") for p in statuses)

    third = restore_stage(backed_up.ctx, backed_up.backup.path)
    assert third.ok and third.changes == []  # idempotent: nothing written the second time
    assert all(not k.changed for k in third.kinds)

    # And the comparison does notice an object that did not come back.
    offline = backed_up.backup.manifest.entries_of("feature-offline")[0]
    backed_up.ctx.client("s3").delete_object(Bucket=offline.detail["bucket"], Key=offline.detail["key"])
    lost = compare_stage(backed_up.ctx, backed_up.backup.path, backed_up.backup.manifest)
    assert [(d.kind, d.name, d.detail) for d in lost] == [("feature-offline", offline.name, "missing")]
