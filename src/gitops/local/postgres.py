"""A throwaway PostgreSQL for the embedded target: a real server, in a temp dir, on a free loopback port.

Docker is not assumed: the server binaries (initdb, pg_ctl, psql) come from the machine, on PATH or
where Debian/Ubuntu put them (/usr/lib/postgresql/<version>/bin). `.ci/run` installs Debian's
`postgresql` package where they are missing. initdb refuses to run as root, so as root the cluster
runs as an unprivileged account (postgres, else nobody).
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitops.errors import GitopsError
from gitops.local.embedded import free_port

SEARCH_GLOBS = ("/usr/lib/postgresql/*/bin", "/usr/local/pgsql/bin", "/opt/homebrew/opt/postgresql@*/bin")
INSTALL_HINT = (
    "install PostgreSQL's server binaries: `apt-get install postgresql` (Debian/Ubuntu) or `brew install postgresql`"
)
TIMEOUT_S = 60


class PostgresError(GitopsError):
    hint = INSTALL_HINT


class PostgresMissing(PostgresError):
    """No initdb/pg_ctl on this machine."""


def _version_key(path: str) -> tuple[int, ...]:
    digits = "".join(c if c.isdigit() else " " for c in path).split()
    return tuple(int(d) for d in digits)


def find_postgres_bin() -> Path:
    """The directory holding initdb, pg_ctl and psql: PATH first, then the usual install places (newest)."""
    on_path = shutil.which("initdb")
    candidates = [str(Path(on_path).parent)] if on_path else []
    for pattern in SEARCH_GLOBS:
        candidates += sorted(glob.glob(pattern), key=_version_key, reverse=True)
    for directory in candidates:
        if all((Path(directory) / tool).is_file() for tool in ("initdb", "pg_ctl", "psql")):
            return Path(directory)
    raise PostgresMissing(
        f"no PostgreSQL server binaries (initdb, pg_ctl, psql) on PATH or in {', '.join(SEARCH_GLOBS)}"
    )


def _run_as() -> pwd.struct_passwd | None:
    """The account to run the server as: None (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise PostgresError("running as root and no unprivileged account (postgres, nobody) to run PostgreSQL as")


@dataclass(frozen=True)
class PostgresAccount:
    """An application login on the throwaway cluster, in the shape of an RDS secret."""

    username: str
    password: str
    host: str
    port: int
    dbname: str

    def secret(self) -> dict[str, Any]:
        return {
            "engine": "postgres",
            "username": self.username,
            "password": self.password,
            "host": self.host,
            "port": self.port,
            "dbname": self.dbname,
        }


class ThrowawayPostgres:
    """initdb + pg_ctl start in a temp dir; `stop()` (or leaving the `with`) removes every trace."""

    def __init__(self, bin_dir: Path | None = None) -> None:
        self.bin_dir = bin_dir or find_postgres_bin()
        self.port = 0
        self.root: Path | None = None
        self._superuser_password = secrets.token_urlsafe(18)
        self._user = _run_as()

    @property
    def data_dir(self) -> Path:
        assert self.root is not None, "start() first"
        return self.root / "data"

    def _tool(self, name: str, *args: str, as_server: bool = False, env: dict[str, str] | None = None) -> str:
        kwargs: dict[str, Any] = {}
        if as_server and self._user is not None:
            kwargs = {"user": self._user.pw_uid, "group": self._user.pw_gid, "extra_groups": []}
        try:
            done = subprocess.run(
                [str(self.bin_dir / name), *args],
                capture_output=True,
                text=True,
                timeout=TIMEOUT_S,
                cwd=self.root,
                env={**os.environ, **(env or {}), "LC_ALL": "C"},
                **kwargs,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            raise PostgresError(f"{name}: could not run: {exc}") from exc
        if done.returncode != 0:
            last = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()[-1]
            raise PostgresError(f"{name} failed: {last[:150]}")
        return done.stdout

    def start(self) -> ThrowawayPostgres:
        self.root = Path(tempfile.mkdtemp(prefix="gitops-pg-"))
        if self._user is not None:
            os.chown(self.root, self._user.pw_uid, self._user.pw_gid)
        pwfile = self.root / "pwfile"
        pwfile.write_text(self._superuser_password + "\n")
        if self._user is not None:
            os.chown(pwfile, self._user.pw_uid, self._user.pw_gid)
        self._tool(
            "initdb",
            "-D",
            str(self.data_dir),
            "-U",
            "postgres",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            f"--pwfile={pwfile}",
            "-E",
            "UTF8",
            "--no-instructions",
            as_server=True,
        )
        pwfile.unlink()
        for attempt in range(3):  # another process may take the free port between the probe and the bind
            self.port = free_port()
            options = (
                f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} -c fsync=off -c full_page_writes=off"
            )
            try:
                self._tool(
                    "pg_ctl",
                    "-D",
                    str(self.data_dir),
                    "-l",
                    str(self.root / "server.log"),
                    "-w",
                    "-t",
                    "30",
                    "-o",
                    options,
                    "start",
                    as_server=True,
                )
                return self
            except PostgresError:
                if attempt == 2:
                    log = (self.root / "server.log").read_text(errors="replace").strip().splitlines()[-1:]
                    self.stop()
                    raise PostgresError(f"pg_ctl start failed: {' '.join(log)[:150] or 'see its log'}") from None
        return self

    def psql(self, sql: str, *, dbname: str = "postgres", user: str = "postgres", password: str | None = None) -> str:
        """Run SQL over TCP as `user` (the superuser by default); unaligned, tuples-only output."""
        env = {"PGPASSWORD": password if password is not None else self._superuser_password}
        return self._tool(
            "psql",
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            user,
            "-d",
            dbname,
            "-v",
            "ON_ERROR_STOP=1",
            "-X",
            "-A",
            "-t",
            "-c",
            sql,
            env=env,
        )

    def create_account(self, username: str = "app", dbname: str = "predictions") -> PostgresAccount:
        """A login owning its own database, with a fresh random password (the app's, as RDS would make)."""
        password = secrets.token_urlsafe(18)
        self.psql(f"CREATE ROLE {username} LOGIN PASSWORD '{password}'")
        self.psql(f"CREATE DATABASE {dbname} OWNER {username}")
        return PostgresAccount(username, password, "127.0.0.1", self.port, dbname)

    def set_password(self, username: str) -> str:
        """Rotate a login's password (as Secrets Manager rotation does); returns the new one."""
        password = secrets.token_urlsafe(18)
        self.psql(f"ALTER ROLE {username} PASSWORD '{password}'")
        return password

    def stop(self) -> None:
        if self.root is None:
            return
        if (self.data_dir / "postmaster.pid").exists():
            try:
                self._tool("pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "stop", as_server=True)
            except PostgresError:
                pass  # already gone; the directory goes anyway
        shutil.rmtree(self.root, ignore_errors=True)
        self.root = None

    def __enter__(self) -> ThrowawayPostgres:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
