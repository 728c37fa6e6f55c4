"""A real PostgreSQL server for the tests, started and stopped by them (no mocks).

``initdb`` and ``pg_ctl`` refuse to run as root, and CI runs as root: the server lives in
a temporary directory owned by the ``postgres`` user (Debian's package creates it) and its
commands run as that user through ``runuser``. It listens on 127.0.0.1 on a free high
port only, with its socket in the same directory, ``fsync=off`` (a test database need not
survive a power cut), and is stopped (``pg_ctl stop -m fast``) and removed at the end of
the session, also when tests fail.

Fixtures (import them into a test module: ``from tests.postgres import postgres_url``):

- ``postgres_server`` (session): the running :class:`PostgresServer`.
- ``postgres_url``: a fresh, migrated database per test, as
  ``postgresql+psycopg://postgres@127.0.0.1:PORT/DB``.
- ``postgres_empty_url``: a fresh database with no tables (for migration tests).
- ``backend_url`` (params ``sqlite``, ``postgresql``): the same test on both backends.
- ``empty_backend_url`` (the same params): an empty database on both backends.

Without the server binaries or psycopg the PostgreSQL tests skip with the reason, except
under ``CI=true``, where a missing PostgreSQL is a failure (CI must test it).
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import pwd
import shlex
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

SERVER_USER = "postgres"
TEMPLATE = "zonegen_template"
"""A database migrated to head once per session; every test's database is a copy of it
(``CREATE DATABASE … TEMPLATE``), which is far cheaper than running the migrations."""

_INSTALL_HINT = "apt-get install postgresql; pip install 'zonegen[postgres]'"


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def unavailable(reason: str) -> None:
    """Skip (developer machine) or fail (CI) because PostgreSQL cannot be tested."""
    if _in_ci():
        pytest.fail(f"CI=true but PostgreSQL cannot be tested: {reason}", pytrace=False)
    pytest.skip(f"PostgreSQL not available: {reason} ({_INSTALL_HINT})")


def find_bindir() -> Path | None:
    """The directory holding ``initdb``, ``pg_ctl`` and ``postgres``: ``$PG_BINDIR``,
    then ``pg_config --bindir``, then Debian's ``/usr/lib/postgresql/<newest>/bin``,
    then wherever ``initdb`` is on PATH (Debian does not put it there)."""
    candidates: list[Path] = []
    if os.environ.get("PG_BINDIR"):
        candidates.append(Path(os.environ["PG_BINDIR"]))
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True,
                                 timeout=10, check=True).stdout.strip()
            if out:
                candidates.append(Path(out))

    def version(path: str) -> tuple[int, ...]:
        name = Path(path).parent.name
        return tuple(int(p) for p in name.split(".") if p.isdigit())

    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                                           key=version, reverse=True)]
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    for directory in candidates:
        if all((directory / exe).is_file() for exe in ("initdb", "pg_ctl", "postgres")):
            return directory
    return None


def _free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PostgresServer:
    """One running server: ``url(db)`` names a database on it; ``admin()`` connects to
    the ``postgres`` maintenance database in autocommit mode."""

    bindir: Path
    directory: Path
    port: int
    host: str = "127.0.0.1"
    user: str = SERVER_USER
    _names: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def data(self) -> Path:
        return self.directory / "data"

    @property
    def logfile(self) -> Path:
        return self.directory / "server.log"

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{database}"

    def admin(self, database: str = "postgres") -> Any:
        import psycopg

        return psycopg.connect(host=self.host, port=self.port, user=self.user,
                               dbname=database, autocommit=True)

    def create_database(self, template: str | None = TEMPLATE, prefix: str = "t",
                        collation: str | None = None) -> str:
        """A new database (a copy of ``template``, or empty); returns its name.

        ``collation`` (an ICU locale such as ``en-US``) makes text sort as on a typical
        production server rather than by code point as in the server's C locale; it
        is ignored where the server has no ICU."""
        name = f"{prefix}_{next(self._names)}"
        source = f" TEMPLATE {template}" if template else " TEMPLATE template0"
        with self.admin() as conn:
            if collation and conn.execute(
                    "SELECT 1 FROM pg_collation WHERE collprovider = 'i' LIMIT 1").fetchone():
                source = (f" TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE '{collation}'"
                          " LOCALE 'C'")
                conn.execute(f'CREATE DATABASE "{name}"{source}')
                return name
            conn.execute(f'CREATE DATABASE "{name}"{source}')
        return name

    def drop_database(self, name: str) -> None:
        with self.admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def log(self) -> str:
        try:
            return self.logfile.read_text(errors="replace")
        except OSError:
            return "(no server log)"


def _as_server_user() -> list[str]:
    """The prefix that runs a command as the server's owner: ``runuser`` (or ``su``)
    when we are root, nothing when we already are an ordinary user."""
    if os.geteuid() != 0:
        return []
    runuser = shutil.which("runuser")
    if runuser:
        return [runuser, "-u", SERVER_USER, "--"]
    return []  # handled by _run through su -c


def _run(argv: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    prefix = _as_server_user()
    if os.geteuid() == 0 and not prefix:
        argv = ["su", SERVER_USER, "-s", "/bin/sh", "-c", shlex.join(argv)]
    return subprocess.run(prefix + argv, capture_output=True, text=True, timeout=timeout,
                          check=False, cwd="/")


def start_server(bindir: Path) -> PostgresServer:
    """initdb + pg_ctl start in a fresh temporary directory; the caller must call
    :func:`stop_server` (also on failure)."""
    directory = Path(tempfile.mkdtemp(prefix="zonegen-pg-"))
    if os.geteuid() == 0:
        try:
            pw = pwd.getpwnam(SERVER_USER)
        except KeyError:
            shutil.rmtree(directory)
            unavailable(f"no {SERVER_USER!r} user to run the server as (root may not)")
            raise
        os.chown(directory, pw.pw_uid, pw.pw_gid)
    server = PostgresServer(bindir, directory, 0)
    init = _run([str(bindir / "initdb"), "-D", str(server.data), "-U", SERVER_USER,
                 "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"])
    if init.returncode != 0:
        shutil.rmtree(directory, ignore_errors=True)
        raise RuntimeError(f"initdb failed: {init.stdout}{init.stderr}")
    last = ""
    for _ in range(5):  # a free port can be taken before the server binds it
        server.port = _free_tcp_port()
        options = (f"-c listen_addresses=127.0.0.1 -p {server.port} "
                   f"-c unix_socket_directories={directory} -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off "
                   "-c max_connections=200")
        start = _run([str(bindir / "pg_ctl"), "-D", str(server.data), "-l",
                      str(server.logfile), "-w", "-t", "60", "-o", options, "start"])
        if start.returncode == 0:
            return server
        last = f"{start.stdout}{start.stderr}\n{server.log()}"
    stop_server(server)
    raise RuntimeError(f"pg_ctl start failed: {last}")


def stop_server(server: PostgresServer) -> None:
    """Stop the server (fast: roll back open transactions) and remove its directory."""
    try:
        if (server.data / "postmaster.pid").exists():
            _run([str(server.bindir / "pg_ctl"), "-D", str(server.data), "-m", "fast",
                  "-w", "-t", "60", "stop"])
    finally:
        shutil.rmtree(server.directory, ignore_errors=True)


def _prepare_template(server: PostgresServer) -> None:
    from zonegen.store import Store

    with server.admin() as conn:
        conn.execute(f'CREATE DATABASE "{TEMPLATE}" TEMPLATE template0')
    Store.open(server.url(TEMPLATE)).close()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """The session's PostgreSQL server (started on first use)."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        unavailable("psycopg is not installed")
    bindir = find_bindir()
    if bindir is None:
        unavailable("no initdb/pg_ctl/postgres found (pg_config --bindir, "
                    "/usr/lib/postgresql/*/bin, PATH)")
        return
    server = start_server(bindir)
    try:
        _prepare_template(server)
        yield server
    finally:
        stop_server(server)


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh database migrated to head, for this test only."""
    name = postgres_server.create_database()
    yield postgres_server.url(name)
    postgres_server.drop_database(name)


@pytest.fixture
def postgres_empty_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh database with no tables, for this test only."""
    name = postgres_server.create_database(template=None, prefix="empty")
    yield postgres_server.url(name)
    postgres_server.drop_database(name)


def _sqlite_or_postgres(request: pytest.FixtureRequest, sqlite_file: Path,
                        postgres_fixture: str) -> str:
    """The URL of ``sqlite_file`` for the ``sqlite`` param, else of the PostgreSQL
    database the fixture ``postgres_fixture`` gives this test."""
    if request.param == "sqlite":
        return f"sqlite:///{sqlite_file}"
    url: str = request.getfixturevalue(postgres_fixture)
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same test on a SQLite file and on a PostgreSQL database."""
    return _sqlite_or_postgres(request, tmp_path / "z.db", "postgres_url")


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same test on an empty database: a SQLite file not yet created, or a
    PostgreSQL database with no tables (for migration tests)."""
    return _sqlite_or_postgres(request, tmp_path / "old.db", "postgres_empty_url")
