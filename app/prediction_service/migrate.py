"""Schema migrations (Alembic), all-or-nothing: one transaction, one migrator at a time.

PostgreSQL's DDL is transactional, so a failing revision rolls the whole run back: the schema
stays at the revision the running version serves, and the new version refuses to start.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prediction_service.credentials import DatabaseCredentials
from prediction_service.errors import MigrationError

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# pg_advisory_xact_lock key: tasks starting together migrate one after the other.
MIGRATION_LOCK = 716_110_001


def _engine(credentials: DatabaseCredentials) -> Any:
    import sqlalchemy as sa

    url = sa.engine.URL.create(
        "postgresql+psycopg",
        username=credentials.username,
        password=credentials.password,
        host=credentials.host,
        port=credentials.port,
        database=credentials.dbname,
    )
    return sa.create_engine(url, poolclass=sa.pool.NullPool)


def _config(script_location: Path) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(script_location))
    return config


def current_revision(credentials: DatabaseCredentials) -> str | None:
    from alembic.migration import MigrationContext

    engine = _engine(credentials)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    return (str(orig).strip().splitlines() or [type(orig).__name__])[0][:120]


def migrate(
    credentials: DatabaseCredentials,
    revision: str = "head",
    *,
    script_location: Path | None = None,
    down: bool = False,
) -> tuple[str | None, str | None]:
    """Upgrade (or with down=True, downgrade) to `revision`; (revision before, revision after).

    Raises MigrationError, with the database left at the revision before, if any step fails.
    """
    import sqlalchemy as sa
    from alembic import command

    config = _config(script_location or MIGRATIONS)
    applied: list[str] = []
    config.attributes["on_version_apply"] = lambda *, step, **_: applied.extend(step.up_revision_ids)
    engine = _engine(credentials)
    before: str | None = None
    try:
        connection = engine.connect()
    except Exception as exc:
        engine.dispose()
        where = f"{credentials.host}:{credentials.port}/{credentials.dbname}"
        raise MigrationError(f"{where}: cannot connect ({_first_line(exc)}); nothing was migrated") from exc
    try:
        with connection as conn, conn.begin():
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
            from alembic.migration import MigrationContext

            before = MigrationContext.configure(conn).get_current_revision()
            config.attributes["connection"] = conn
            (command.downgrade if down else command.upgrade)(config, revision)
    except MigrationError:
        raise
    except Exception as exc:
        after_ok = applied[-1] if applied else before
        raise MigrationError(
            f"migration after revision {after_ok or 'base'} failed ({_first_line(exc)}); rolled back, "
            f"the schema stays at {before or 'base'}"
        ) from exc
    finally:
        engine.dispose()
    return before, current_revision(credentials)
