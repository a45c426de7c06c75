"""A throwaway PostgreSQL cluster for the tests: ``initdb`` into a temporary folder, a server
on a free port of 127.0.0.1 (and a Unix socket in the same folder), databases on demand,
stopped and removed at the end.

The ``postgres`` fixture (session scope, registered in tests/conftest.py) starts one cluster
for the whole test session. It never skips on its own: when the binaries, psycopg or the
server are missing, the test FAILS with what to install, so CI cannot pass without running
the PostgreSQL tests. ``MLPX_SKIP_POSTGRES=1`` skips them instead (a machine without
PostgreSQL, on purpose).

Root: ``initdb`` and ``postgres`` refuse to run as root ("cannot be run as root"), since the
server would then own every file it can reach. As root (CI containers, this sandbox) the
cluster is therefore created and run by an unprivileged user, ``postgres`` when it exists
(Debian's package creates it) else ``nobody``, through ``runuser -u USER --``; its folder is
made with ``tempfile.mkdtemp`` directly in /tmp and chowned to that user (pytest's
``tmp_path`` lives under a 0700 folder of root's that the user cannot enter).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli_helpers import free_port

#: Set to 1 to skip the PostgreSQL tests (otherwise a missing server makes them fail).
SKIP_ENV = "MLPX_SKIP_POSTGRES"
HINT = (
    "install PostgreSQL (apt-get install postgresql) and psycopg (pip install -e '.[postgres]'),"
    f" or set {SKIP_ENV}=1 to skip the PostgreSQL tests"
)


def find_binary(name: str) -> str | None:
    """``name`` (initdb, pg_ctl) on PATH, else in the newest /usr/lib/postgresql/<v>/bin."""
    found = shutil.which(name)
    if found:
        return found
    candidates = glob.glob(f"/usr/lib/postgresql/*/bin/{name}")
    candidates.sort(key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    return candidates[-1] if candidates else None


class PostgresError(RuntimeError):
    """The cluster could not be created or started (the message says which command)."""


class PostgresCluster:
    """One PostgreSQL server owned by the tests.

    ``start()`` runs ``initdb`` (superuser ``postgres``, trust authentication, UTF-8, no
    fsync: the data is thrown away) and ``pg_ctl start`` on ``port`` of 127.0.0.1 and a
    socket in ``<base>/socket``; ``create_database(name)`` returns a SQLAlchemy URL
    ``postgresql+psycopg://postgres@127.0.0.1:<port>/<name>``; ``stop()`` stops the server
    and removes the folder.
    """

    def __init__(self, base: Path | None = None, user: str | None = None) -> None:
        self.initdb = find_binary("initdb")
        self.pg_ctl = find_binary("pg_ctl")
        if not self.initdb or not self.pg_ctl:
            raise PostgresError(f"no initdb/pg_ctl on PATH or in /usr/lib/postgresql: {HINT}")
        self.as_root = os.geteuid() == 0
        self.user = user or (self.pick_user() if self.as_root else None)
        # /tmp rather than $TMPDIR: a short path (the socket's path is limited to 107 bytes)
        # that the unprivileged user can enter.
        tmp = "/tmp" if os.access("/tmp", os.W_OK | os.X_OK) else None
        self.base = Path(base or tempfile.mkdtemp(prefix="mlpx-pg-", dir=tmp))
        self.data = self.base / "data"
        self.socket_dir = self.base / "socket"
        self.log = self.base / "server.log"
        self.port = 0
        self.running = False

    def __repr__(self) -> str:
        state = f"port {self.port}" if self.running else "stopped"
        return f"PostgresCluster({str(self.base)!r}, {state}, user={self.user!r})"

    @staticmethod
    def pick_user() -> str:
        for name in ("postgres", "nobody"):
            try:
                pwd.getpwnam(name)
                return name
            except KeyError:
                continue
        raise PostgresError("running as root and neither user 'postgres' nor 'nobody' exists")

    def run(self, *cmd: str, timeout: float = 120) -> subprocess.CompletedProcess:
        """Run a PostgreSQL binary, as the unprivileged user when we are root."""
        full = ["runuser", "-u", self.user, "--", *cmd] if self.user else list(cmd)
        proc = subprocess.run(full, capture_output=True, text=True, timeout=timeout, check=False)
        if proc.returncode != 0:
            tail = self.log.read_text()[-2000:] if self.log.exists() else ""
            raise PostgresError(
                f"`{' '.join(full)}` failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}{tail}"
            )
        return proc

    def start(self, attempts: int = 3) -> PostgresCluster:
        """initdb, then the server on a free port (another port if that one was taken)."""
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        if self.user:
            info = pwd.getpwnam(self.user)
            for path in (self.base, self.socket_dir):
                os.chown(path, info.pw_uid, info.pw_gid)
        os.chmod(self.base, 0o700)
        self.run(
            self.initdb,
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-sync",
            "--no-instructions",
        )
        for attempt in range(attempts):
            self.port = free_port()
            options = (
                f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1"
                " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
                " -c max_connections=200"
            )
            try:
                self.run(self.pg_ctl, "-D", str(self.data), "-l", str(self.log), "-o", options,
                         "-w", "-t", "60", "start")  # fmt: skip
                self.running = True
                break
            except PostgresError:
                if attempt == attempts - 1:
                    raise
                time.sleep(1)
        return self

    def url(self, database: str = "postgres", driver: str = "postgresql+psycopg") -> str:
        """A SQLAlchemy URL (MLflow, Optuna): ``postgresql+psycopg://postgres@127.0.0.1:P/db``."""
        return f"{driver}://postgres@127.0.0.1:{self.port}/{database}"

    def connect(self, database: str = "postgres"):  # -> psycopg.Connection
        """A psycopg connection (autocommit) to ``database`` over TCP."""
        import psycopg

        return psycopg.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname=database, autocommit=True
        )

    def query(self, database: str, sql: str, *params: object) -> list[tuple]:
        """The rows of one SQL statement run in ``database``."""
        with self.connect(database) as conn:
            return conn.execute(sql, params or None).fetchall()

    def create_database(self, name: str) -> str:
        """A new, empty database ``name``; returns its SQLAlchemy URL."""
        if not name.isidentifier():
            raise ValueError(f"database name must be an identifier, got {name!r}")
        with self.connect() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        """Stop the server (fast shutdown: open connections are closed) and remove the folder."""
        if self.running:
            try:
                self.run(self.pg_ctl, "-D", str(self.data), "-m", "fast", "-w", "stop", timeout=60)
            except PostgresError:
                self.run(self.pg_ctl, "-D", str(self.data), "-m", "immediate", "stop", timeout=60)
            self.running = False
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    """A running throwaway PostgreSQL cluster for the session (see the module docstring).
    Fails (does not skip) when it cannot start, unless MLPX_SKIP_POSTGRES=1."""
    if os.environ.get(SKIP_ENV, "") not in ("", "0"):
        pytest.skip(f"{SKIP_ENV} is set")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.fail(f"psycopg is not installed: {HINT}", pytrace=False)
    cluster = None
    try:
        cluster = PostgresCluster()
        cluster.start()
    except (PostgresError, OSError, subprocess.TimeoutExpired) as e:
        if cluster is not None:
            cluster.stop()
        pytest.fail(f"could not start a PostgreSQL server: {e}\n{HINT}", pytrace=False)
    try:
        yield cluster
    finally:
        cluster.stop()
