"""The stage's Secrets Manager secrets: names and shapes kept, values never; restored by regenerating them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from gitops.deploy.aws import error_code
from gitops.files import atomic_write
from gitops.recovery.inventory import Difference, RestoreOutcome, Skipped, StageContext
from gitops.recovery.manifest import ManifestEntry, entry_for

# Fields of an RDS-shaped secret that are not secret: kept so the regenerated one has the same shape.
PUBLIC_FIELDS = ("engine", "username", "host", "port", "dbname")


def app_db_secret_name(ctx: StageContext) -> str:
    """The app's database secret (the App stack's, and the embedded smoke check's: gitops.local.app_process)."""
    return f"{ctx.stage.prefix}-app-db"


def describe(sm: Any, name: str) -> dict | None:
    try:
        return dict(sm.describe_secret(SecretId=name))
    except ClientError as exc:
        if error_code(exc) == "ResourceNotFoundException":
            return None
        raise


def read_secret(sm: Any, name: str) -> dict | None:
    """The secret's current JSON value; None if it does not exist."""
    try:
        return dict(json.loads(sm.get_secret_value(SecretId=name)["SecretString"]))
    except ClientError as exc:
        if error_code(exc) == "ResourceNotFoundException":
            return None
        raise


class Secrets:
    name = "secrets"
    holds = "Secrets Manager secrets of the stage (their names, tags and non-secret fields; never their values)"
    comes_back = (
        "regenerated: the app's database secret gets a fresh password set on the restored database;"
        " any other secret is listed to be re-created by hand (a backup is never a second copy of a credential)"
    )

    def backup(self, ctx: StageContext, objects: Path) -> list[ManifestEntry] | Skipped:
        sm = ctx.client("secretsmanager")
        found: list[dict] = []
        for page in sm.get_paginator("list_secrets").paginate(Filters=[{"Key": "name", "Values": [ctx.stage.prefix]}]):
            found += [s for s in page["SecretList"] if s["Name"].startswith(ctx.stage.prefix + "-")]
        if not found:
            return Skipped(f"no secret named {ctx.stage.prefix}-*")
        entries = []
        for secret in sorted(found, key=lambda s: s["Name"]):
            regenerated = secret["Name"] == app_db_secret_name(ctx)
            value = read_secret(sm, secret["Name"]) if regenerated else None
            shape = {
                "Name": secret["Name"],
                "Description": secret.get("Description", ""),
                "Tags": secret.get("Tags", []),
                "public_fields": {k: value[k] for k in PUBLIC_FIELDS if value and k in value},
            }
            path = objects / self.name / f"{secret['Name']}.json"
            atomic_write(path, json.dumps(shape, indent=2, sort_keys=True))
            entries.append(
                entry_for(
                    objects,
                    path,
                    kind=self.name,
                    name=secret["Name"],
                    source_arn=secret["ARN"],
                    policy="regenerated" if regenerated else "re-create by hand",
                )
            )
        return entries

    def restore(self, ctx: StageContext, objects: Path, entries: list[ManifestEntry]) -> RestoreOutcome:
        sm = ctx.client("secretsmanager")
        outcome = RestoreOutcome()
        for entry in entries:
            if describe(sm, entry.name) is not None:
                outcome.unchanged += 1
                continue
            shape = json.loads((objects / entry.path).read_text(encoding="utf-8"))
            username = shape["public_fields"].get("username")
            if entry.detail.get("policy") != "regenerated" or ctx.reset_database_password is None or not username:
                outcome.not_restored.append(f"secret {entry.name}: values are never backed up; re-create it by hand")
                continue
            value = ctx.reset_database_password(username)
            sm.create_secret(
                Name=entry.name,
                Description=shape["Description"],
                SecretString=json.dumps(value),
                **({"Tags": shape["Tags"]} if shape["Tags"] else {}),
            )
            outcome.changed.append(f"secret {entry.name} regenerated (new password for {username})")
        return outcome

    def compare(self, ctx: StageContext, objects: Path, entries: list[ManifestEntry]) -> list[Difference]:
        sm = ctx.client("secretsmanager")
        found = []
        for entry in entries:
            if entry.detail.get("policy") != "regenerated":
                continue  # listed as not restored; nothing to compare
            value = read_secret(sm, entry.name)
            shape = json.loads((objects / entry.path).read_text(encoding="utf-8"))
            if value is None:
                found.append(Difference(self.name, entry.name, "missing"))
            elif any(value.get(k) != v for k, v in shape["public_fields"].items() if k not in ("host", "port")):
                found.append(Difference(self.name, entry.name, "username/dbname/engine differ from the backup"))
        return found
