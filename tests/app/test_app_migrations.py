"""Schema migrations on a real PostgreSQL: up, down, and a failing one refused with the old version still serving."""

from __future__ import annotations

import json
import logging
import shutil

import prediction_service.__main__ as entry
import prediction_service.migrate as migrate_module
import pytest
from conftest import FEATURES, REGION, AppDatabase, ScriptedInvoker, app_settings
from fastapi.testclient import TestClient
from prediction_service.api import create_app
from prediction_service.database import Database
from prediction_service.errors import MigrationError
from prediction_service.migrate import MIGRATIONS, current_revision, migrate

TABLES = "SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_tables WHERE schemaname = 'public'"

BROKEN = '''"""A revision that fails half-way: its first statement works, its second cannot.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("model_versions", sa.Column("id", sa.Integer(), primary_key=True))
    op.add_column("predictions", sa.Column("segment", sa.Text()))
    op.execute("ALTER TABLE predictions ALTER COLUMN churned TYPE no_such_type")


def downgrade() -> None:
    op.drop_table("model_versions")
'''


@pytest.fixture(autouse=True)
def _restore_logging():
    """The entry point configures the process's logging (JSON on stdout); put pytest's back after."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    yield
    root.handlers[:], _ = saved[0], root.setLevel(saved[1])


def test_up_to_head_down_to_base_and_up_again(app_db: AppDatabase):
    credentials = app_db.credentials().current()
    assert migrate(credentials) == (None, "0002")
    assert app_db.sql(TABLES) == "alembic_version,feedback,predictions"
    assert migrate(credentials, "0001", down=True) == ("0002", "0001")
    assert app_db.sql(TABLES) == "alembic_version,predictions"
    assert migrate(credentials, "base", down=True) == ("0001", None)
    assert app_db.sql(TABLES) == "alembic_version"
    assert migrate(credentials) == (None, "0002")
    assert migrate(credentials) == ("0002", "0002")  # idempotent: nothing to do at head


@pytest.fixture
def broken_migrations(tmp_path):
    scripts = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, scripts, ignore=shutil.ignore_patterns("__pycache__"))
    (scripts / "versions" / "0003_broken.py").write_text(BROKEN)
    return scripts


def test_a_failing_migration_is_refused_and_the_previous_schema_and_service_keep_working(
    app_db: AppDatabase, tmp_path, broken_migrations
):
    credentials = app_db.credentials().current()
    migrate(credentials)
    settings = app_settings(app_db, tmp_path)
    serving = create_app(settings, invoker=ScriptedInvoker(), database=Database(app_db.credentials(), max_size=2))
    with TestClient(serving) as old_version:
        assert old_version.post("/predict", json={"features": FEATURES}).status_code == 200
        with pytest.raises(MigrationError) as refused:
            migrate(credentials, script_location=broken_migrations)
        line = str(refused.value)
        assert "\n" not in line and len(line) < 200
        assert line.startswith("migration after revision 0002 failed (")
        assert 'type "no_such_type" does not exist' in line and line.endswith("the schema stays at 0002")
        # Nothing of 0003 is left: not its table, not its column, not its version.
        assert current_revision(credentials) == "0002"
        assert app_db.sql(TABLES) == "alembic_version,feedback,predictions"
        assert app_db.sql("SELECT count(*) FROM information_schema.columns WHERE column_name = 'segment'") == "0"
        # The running (old) version keeps serving on the schema it knows.
        again = old_version.post("/predict", json={"features": FEATURES})
        assert again.status_code == 200
        assert old_version.get("/health").json()["checks"]["database"]["detail"] == "schema 0002"
    assert app_db.sql("SELECT count(*) FROM predictions") == "2"


def test_the_entry_point_refuses_to_serve_after_a_failing_migration_with_one_line(
    app_db: AppDatabase, tmp_path, broken_migrations, monkeypatch, capsys
):
    migrate(app_db.credentials().current())
    monkeypatch.setattr(migrate_module, "MIGRATIONS", broken_migrations)
    for key, value in {
        "APP_STAGE": "test",
        "APP_ENDPOINT_NAME": "e",
        "APP_DB_SECRET_ARN": app_db.secret_arn,
        "APP_TRACE_EXPORTER": "none",
    }.items():
        monkeypatch.setenv(key, value)
    assert entry.main(["serve"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: migration after revision 0002 failed")
    assert current_revision(app_db.credentials().current()) == "0002"


def test_an_unreachable_database_is_one_line_and_nothing_migrated(app_db: AppDatabase, monkeypatch, capsys):
    import boto3

    away = {**app_db.account.secret(), "port": 1}  # nothing listens there
    boto3.client("secretsmanager", region_name=REGION).put_secret_value(
        SecretId=app_db.secret_arn, SecretString=json.dumps(away)
    )
    for key, value in {
        "APP_STAGE": "test",
        "APP_ENDPOINT_NAME": "e",
        "APP_DB_SECRET_ARN": app_db.secret_arn,
        "APP_TRACE_EXPORTER": "none",
    }.items():
        monkeypatch.setenv(key, value)
    assert entry.main(["migrate"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: 127.0.0.1:1/{app_db.account.dbname}: cannot connect (")
    assert err[0].endswith("; nothing was migrated") and len(err[0]) < 200
    assert app_db.sql(TABLES) == ""


def test_a_missing_secret_is_refused_with_one_line(moto_url, monkeypatch, capsys):
    arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:no-such-secret-AbCdEf"
    for key, value in {
        "APP_STAGE": "test",
        "APP_ENDPOINT_NAME": "e",
        "APP_DB_SECRET_ARN": arn,
        "APP_TRACE_EXPORTER": "none",
    }.items():
        monkeypatch.setenv(key, value)
    assert entry.main(["serve"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {arn}: no such secret in Secrets Manager; check APP_DB_SECRET_ARN"]
