"""The app's PostgreSQL database: a pg_dump snapshot through the app's secret, restored with pg_restore.

One path on both targets: the dump is taken over the network with the credentials the app's secret
holds (on AWS, from a build inside the stage's VPC), so it lands in the backup set and is encrypted
under the destination's key like every other object, never under a key the wiped account owned.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

from gitops.errors import GitopsError
from gitops.local.postgres import find_postgres_bin
from gitops.recovery.inventory import Difference, RestoreOutcome, Skipped, StageContext
from gitops.recovery.kinds.secrets import app_db_secret_name, read_secret
from gitops.recovery.manifest import ManifestEntry, entry_for

TIMEOUT_S = 300
_TABLES = (
    "SELECT table_name FROM information_schema.tables"
    " WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY 1"
)


class DatabaseUnreachable(GitopsError):
    hint = "check the app's database secret and that this machine reaches the database (on AWS: run inside the VPC)"


def _run(tool: str, creds: dict[str, Any], *args: str) -> str:
    env = {**os.environ, "PGPASSWORD": str(creds["password"]), "LC_ALL": "C"}
    base = ["-h", str(creds["host"]), "-p", str(creds["port"]), "-U", str(creds["username"])]
    try:
        done = subprocess.run(
            [str(find_postgres_bin() / tool), *base, *args], capture_output=True, text=True, timeout=TIMEOUT_S, env=env
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise DatabaseUnreachable(f"{tool}: could not run: {exc}") from exc
    if done.returncode != 0:
        last = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()[-1]
        raise DatabaseUnreachable(f"{tool} on {creds['host']}:{creds['port']}/{creds['dbname']}: {last[:140]}")
    return done.stdout


def _psql(creds: dict[str, Any], sql: str) -> str:
    return _run("psql", creds, "-d", str(creds["dbname"]), "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql)


def table_digests(creds: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per table of the public schema: its row count and an md5 of its rows in a stable order."""
    found = {}
    for table in _psql(creds, _TABLES).split():
        line = _psql(
            creds,
            "SELECT count(*), coalesce(md5(string_agg(t::text, E'\\n' ORDER BY t::text)), '')"
            f' FROM public."{table}" t',
        ).strip()
        rows, _, digest = line.partition("|")
        found[table] = {"rows": int(rows), "md5": digest}
    return found


class AppDatabase:
    name = "app-database"
    holds = "the serving app's PostgreSQL database (predictions, feedback, its schema revision)"
    comes_back = "restored: pg_restore of the dump into the database the release re-creates, if its tables differ"

    def _credentials(self, ctx: StageContext) -> dict[str, Any] | None:
        return read_secret(ctx.client("secretsmanager"), app_db_secret_name(ctx))

    def backup(self, ctx: StageContext, objects: Path) -> list[ManifestEntry] | Skipped:
        creds = self._credentials(ctx)
        if creds is None:
            return Skipped(f"no secret {app_db_secret_name(ctx)}: the app's database is not deployed to this stage")
        tables = table_digests(creds)
        path = objects / self.name / f"{creds['dbname']}.dump"
        path.parent.mkdir(parents=True, exist_ok=True)
        _run("pg_dump", creds, "-d", str(creds["dbname"]), "-Fc", "--no-owner", "--no-privileges", "-f", str(path))
        rows = sum(t["rows"] for t in tables.values())
        return [
            entry_for(
                objects,
                path,
                kind=self.name,
                name=f"database {creds['dbname']} ({len(tables)} tables, {rows} rows)",
                source_arn=f"postgresql://{creds['host']}:{creds['port']}/{creds['dbname']}",
                tables=tables,
            )
        ]

    def restore(self, ctx: StageContext, objects: Path, entries: list[ManifestEntry]) -> RestoreOutcome:
        outcome = RestoreOutcome()
        creds = self._credentials(ctx)
        for entry in entries:
            if creds is None:
                outcome.not_restored.append(f"{entry.name}: no {app_db_secret_name(ctx)} secret to reach the database")
                continue
            if table_digests(creds) == entry.detail["tables"]:
                outcome.unchanged += 1
                continue
            _run(
                "pg_restore",
                creds,
                "-d",
                str(creds["dbname"]),
                "--clean",
                "--if-exists",
                "--no-owner",
                "--no-privileges",
                "--single-transaction",
                str(objects / entry.path),
            )
            outcome.changed.append(f"{entry.name} restored")
        return outcome

    def compare(self, ctx: StageContext, objects: Path, entries: list[ManifestEntry]) -> list[Difference]:
        creds = self._credentials(ctx)
        found = []
        for entry in entries:
            if creds is None:
                found.append(Difference(self.name, entry.name, "no database secret"))
                continue
            live = table_digests(creds)
            for table, wanted in entry.detail["tables"].items():
                got = live.get(table)
                if got != wanted:
                    rows = got["rows"] if got else "missing"
                    found.append(Difference(self.name, f"table {table}", f"rows {rows}, backed up {wanted['rows']}"))
        return found
