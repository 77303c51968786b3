"""The model registry: every package of the stage's group (metrics, approval status) and the bytes it points at."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gitops.deploy.sagemaker_pipelines import describe_model_package_group
from gitops.files import atomic_write
from gitops.recovery.inventory import Difference, RestoreOutcome, Skipped, StageContext
from gitops.recovery.kinds.s3_objects import back_up_object, object_difference, restore_object
from gitops.recovery.manifest import ManifestEntry, entry_for

# What CreateModelPackage takes back from a DescribeModelPackage answer (the rest is SageMaker's own).
RECREATED = (
    "ModelPackageDescription",
    "InferenceSpecification",
    "ModelMetrics",
    "ModelApprovalStatus",
    "MetadataProperties",
    "CustomerMetadataProperties",
    "Domain",
    "Task",
)


def _s3_uris(node: Any) -> list[str]:
    """Every s3:// URI in a package description (ModelDataUrl, metrics reports)."""
    if isinstance(node, dict):
        return [uri for value in node.values() for uri in _s3_uris(value)]
    if isinstance(node, list):
        return [uri for value in node for uri in _s3_uris(value)]
    return [node] if isinstance(node, str) and node.startswith("s3://") else []


def _packages(sm: Any, group: str) -> list[dict]:
    """The group's packages, described, in version order."""
    summaries: list[dict] = []
    for page in sm.get_paginator("list_model_packages").paginate(ModelPackageGroupName=group):
        summaries += page["ModelPackageSummaryList"]
    described = [sm.describe_model_package(ModelPackageName=s["ModelPackageArn"]) for s in summaries]
    return sorted(described, key=lambda d: int(d.get("ModelPackageVersion") or 0))


def _essence(package: dict) -> dict:
    return {key: package[key] for key in RECREATED if key in package}


class ModelRegistry:
    name = "model-registry"
    holds = "model packages (metrics, approval status, inference spec) and the artifacts and reports they point at"
    comes_back = (
        "restored: packages re-registered in version order with the same metrics and approval; artifacts put back"
    )

    def backup(self, ctx: StageContext, objects: Path) -> list[ManifestEntry] | Skipped:
        sm, s3 = ctx.client("sagemaker"), ctx.client("s3")
        group = ctx.stage.model_package_group_name
        if describe_model_package_group(sm, group) is None:
            return Skipped(f"model package group {group} does not exist")
        packages = _packages(sm, group)
        if not packages:
            return Skipped(f"model package group {group} holds no packages")
        entries: list[ManifestEntry] = []
        for package in packages:
            version = int(package["ModelPackageVersion"])
            path = objects / self.name / f"v{version:05d}.json"
            atomic_write(path, json.dumps(_essence(package), indent=2, sort_keys=True, default=str))
            entries.append(
                entry_for(
                    objects,
                    path,
                    kind=self.name,
                    name=f"{group} v{version}",
                    source_arn=package["ModelPackageArn"],
                    version=version,
                    approval=package.get("ModelApprovalStatus", ""),
                )
            )
            for uri in sorted(set(_s3_uris(_essence(package)))):
                bucket, _, key = uri.removeprefix("s3://").partition("/")
                entries.append(back_up_object(s3, bucket, key, objects, self.name, "artifacts", artifact_of=version))
        return entries

    def restore(self, ctx: StageContext, objects: Path, entries: list[ManifestEntry]) -> RestoreOutcome:
        sm, s3 = ctx.client("sagemaker"), ctx.client("s3")
        group = ctx.stage.model_package_group_name
        outcome = RestoreOutcome()
        # The bytes first: a package is never registered pointing at an artifact that is not there.
        for entry in entries:
            if entry.detail.get("bucket") is not None:
                if restore_object(s3, objects, entry):
                    outcome.changed.append(entry.name)
                else:
                    outcome.unchanged += 1
        live = {int(p["ModelPackageVersion"]): p for p in _packages(sm, group)}
        for entry in sorted((e for e in entries if "bucket" not in e.detail), key=_version):
            wanted = json.loads((objects / entry.path).read_text(encoding="utf-8"))
            version = _version(entry)
            found = live.get(version)
            if found is None:
                if version != len(live) + 1:
                    outcome.not_restored.append(
                        f"{entry.name}: the group holds {len(live)} versions, so it would be registered as"
                        f" v{len(live) + 1}; re-registered under that number"
                    )
                arn = sm.create_model_package(ModelPackageGroupName=group, **wanted)["ModelPackageArn"]
                live[version] = sm.describe_model_package(ModelPackageName=arn)
                outcome.changed.append(f"{entry.name} registered ({wanted.get('ModelApprovalStatus', '')})")
            elif found.get("ModelApprovalStatus") != wanted.get("ModelApprovalStatus"):
                sm.update_model_package(
                    ModelPackageArn=found["ModelPackageArn"], ModelApprovalStatus=wanted["ModelApprovalStatus"]
                )
                outcome.changed.append(f"{entry.name} approval set to {wanted['ModelApprovalStatus']}")
            else:
                outcome.unchanged += 1
        return outcome

    def compare(self, ctx: StageContext, objects: Path, entries: list[ManifestEntry]) -> list[Difference]:
        sm, s3 = ctx.client("sagemaker"), ctx.client("s3")
        live = {int(p["ModelPackageVersion"]): p for p in _packages(sm, ctx.stage.model_package_group_name)}
        found = []
        for entry in entries:
            if "bucket" in entry.detail:
                why = object_difference(s3, entry)
                if why:
                    found.append(Difference(self.name, entry.name, why))
                continue
            wanted = json.loads((objects / entry.path).read_text(encoding="utf-8"))
            package = live.get(_version(entry))
            if package is None:
                found.append(Difference(self.name, entry.name, "not registered"))
                continue
            for key, value in wanted.items():
                if json.loads(json.dumps(package.get(key), default=str)) != value:
                    found.append(Difference(self.name, entry.name, f"{key} differs"))
        return found


def _version(entry: ManifestEntry) -> int:
    return int(entry.detail["version"])
