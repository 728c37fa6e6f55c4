"""One database connection shared by every role of the store, and the rules for opening
one (issue #9 §2: never create, migrate or alter a database by accident).

Open modes, decided here only:

- ``write`` (ingest, watch, serve --watch, project, compact, db upgrade): a missing
  SQLite file is created, the schema is migrated to head.
- ``read`` (export, history, diff, log, why, serve): the database must exist and hold
  the zonegen schema at this code's head; nothing is ever created or migrated. A file
  or directory zonegen may not write (an auditor's read-only backup) is opened
  read-only, and :attr:`Database.read_only` tells callers not to project. On
  PostgreSQL the same holds for a read-only session or a role without the privileges
  projecting needs (:func:`_server_read_only`).
- ``inspect`` (db current): like ``read``, but any known schema revision is fine.

In every mode a database holding another application's tables and no zonegen schema
is refused before anything is written to it, and ``sqlite:///:memory:`` is refused
unless the caller asks for a scratch database (``demo``, tests).

SQLite tuning (WAL, pragmas) lives in :func:`_tune_sqlite` only; the rest runs
unchanged on PostgreSQL.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import quote

import sqlalchemy as sa
from sqlalchemy import event as sa_event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.pool import StaticPool

from zonegen.errors import StoreError

DEFAULT_URL = "sqlite:///zonegen.db"
HOW_TO_CREATE = "create one with `zonegen ingest`, `zonegen watch` or `zonegen db upgrade`"

Mode = Literal["read", "inspect", "write"]
T = TypeVar("T")


class Database:
    """The engine, its name for messages, and the connection discipline every role
    uses: driver errors become one-line :class:`StoreError`\\ s naming the database."""

    def __init__(self, engine: Engine, where: str, read_only: bool = False,
                 created: bool = False) -> None:
        self.engine = engine
        self.where = where
        self.read_only = read_only
        """Opened read-only: the file or its directory cannot be written."""
        self.created = created
        """This open created the database file."""
        self._memory_lock = threading.Lock() if isinstance(engine.pool, StaticPool) else None
        self.fence: Callable[[Connection], None] | None = None
        """Checked first in every write transaction (a replica's writer lease, see
        :mod:`zonegen.store.lease`); raising there writes nothing."""

    def close(self) -> None:
        self.engine.dispose()

    def upgrade(self) -> None:
        """Apply the Alembic migrations up to head (from empty, or from any older head)."""
        from zonegen import migrate

        with self._wrap("migrating"):
            try:
                migrate.upgrade(self.engine)
            except migrate.UnknownRevision as e:
                raise StoreError(f"{self.where}: {e}") from None

    def current_revision(self) -> str | None:
        from zonegen import migrate

        with self._wrap("reading schema revision"):
            return migrate.current(self.engine)

    def is_empty(self) -> bool:
        """No event and no zone version stored (a database only just created)."""
        from zonegen.store.schema import events, zone_versions

        with self._wrap("reading events"), self._read() as conn:
            return all(conn.execute(sa.select(t.c[0]).limit(1)).first() is None
                       for t in (events, zone_versions))

    @contextlib.contextmanager
    def _wrap(self, doing: str) -> Iterator[None]:
        """Turn driver errors into one-line StoreErrors naming the database."""
        try:
            yield
        except StoreError:
            raise
        except DBAPIError as e:
            msg = str(e.orig).strip().splitlines()[0] if e.orig is not None else str(e)
            low = msg.lower()
            if "file is not a database" in low or "not a database" in low:
                msg = "not a SQLite database"
            elif "readonly" in low or "read-only" in low:
                msg = "database is read-only"
            elif "unable to open" in low:
                msg = "cannot open the database file (missing or unwritable location)"
            elif "disk" in low and "full" in low:
                msg = "disk is full"
            raise StoreError(f"{self.where}: {doing} failed: {msg}") from None
        except SQLAlchemyError as e:
            first = str(e).strip().splitlines()[0]
            raise StoreError(f"{self.where}: {doing} failed: {first}") from None
        except OSError as e:
            raise StoreError(f"{self.where}: {doing} failed: {e.strerror or e}") from None

    @contextlib.contextmanager
    def _read(self) -> Iterator[Connection]:
        with self._locked(), self.engine.connect() as conn:
            yield conn

    @contextlib.contextmanager
    def _write(self, fenced: bool = True) -> Iterator[Connection]:
        with self._locked(), self.engine.connect() as conn:
            conn.info["write"] = True
            try:
                with conn.begin():
                    if fenced and self.fence is not None:
                        self.fence(conn)
                    yield conn
            finally:
                conn.info.pop("write", None)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        # One shared in-memory connection (StaticPool) must not be used by two threads
        # at once; file databases get their locking from SQLite itself.
        if self._memory_lock is None:
            yield
        else:
            with self._memory_lock:
                yield



@dataclass(frozen=True, slots=True)
class Opened:
    engine: Engine
    where: str
    read_only: bool
    created: bool


def connect(url: str, mode: Mode, memory: bool = False, migrate: bool = True) -> Opened:
    """Open ``url`` by the rules of ``mode`` (module docstring); ``memory`` allows an
    in-memory database, ``migrate=False`` skips the migration of ``write``.

    :raises StoreError: the URL is unusable, the database is missing (read modes),
        foreign, of another schema revision than the mode allows, or cannot be opened.
    """
    try:
        parsed = sa.make_url(url)
    except SQLAlchemyError:
        raise StoreError(f"database URL {url!r} is not valid") from None
    where = _describe(parsed)
    kwargs: dict[str, Any] = {}
    is_sqlite = parsed.get_backend_name() == "sqlite"
    read_only = created = False
    if is_sqlite and parsed.database in (None, "", ":memory:"):
        if not memory:
            raise StoreError(f"{url}: an in-memory database is lost when the command ends; "
                             "give a file (sqlite:///zonegen.db) or a server URL")
        kwargs = {"poolclass": StaticPool, "connect_args": {"check_same_thread": False}}
    elif is_sqlite and not (parsed.database or "").startswith("file:"):
        path = Path(parsed.database or "")
        if path.is_dir():
            raise StoreError(f"{where}: is a directory, not a database file")
        if not path.exists():
            if mode != "write":
                raise StoreError(f"{where}: no such database; {HOW_TO_CREATE}")
            if not path.parent.exists():
                raise StoreError(f"{where}: directory {path.parent} does not exist")
            created = True
        elif mode != "write" and not _writable(path):
            read_only = True
            parsed = _read_only_uri(parsed, path)
        kwargs = {"connect_args": {"check_same_thread": False, "timeout": 30}}
    elif is_sqlite:  # a SQLite URI (file:…?mode=ro&uri=true)
        read_only = "mode=ro" in (parsed.database or "") or \
            parsed.query.get("mode") == "ro" or "immutable=1" in (parsed.database or "")
        kwargs = {"connect_args": {"check_same_thread": False, "timeout": 30}}
    try:
        engine = sa.create_engine(parsed, **kwargs)
    except (SQLAlchemyError, ImportError) as e:
        raise StoreError(f"{where}: cannot open database: {e}") from None
    if is_sqlite:
        _tune_sqlite(engine)
    db = Database(engine, where, read_only, created)
    try:
        _check_schema(db, mode, migrate)
        if mode != "write" and not is_sqlite:
            read_only = _server_read_only(db)
    except BaseException:
        engine.dispose()
        if created:
            _remove_sqlite_file(Path(parsed.database or ""))
        raise
    return Opened(engine, where, read_only, created)


def _check_schema(db: Database, mode: Mode, migrate: bool) -> None:
    """Refuse a foreign database before anything touches it; then migrate (``write``)
    or check the revision (``read``)."""
    from zonegen import migrate as migrations

    with db._wrap("opening"):
        tables = set(sa.inspect(db.engine).get_table_names())
    if tables and "alembic_version" not in tables:
        shown = ", ".join(sorted(tables)[:3]) + (", …" if len(tables) > 3 else "")
        raise StoreError(f"{db.where}: holds another application's tables ({shown}) and no "
                         "zonegen schema; refusing to use it")
    if mode == "write":
        if migrate:
            _start_wal(db)
            db.upgrade()  # refuses a revision of a newer zonegen, touching nothing
        return
    if mode == "read":
        revision = db.current_revision()
        if revision is not None and revision == migrations.shipped_head():
            return  # at head, told without importing Alembic
        head = migrations.head()
        if revision is None:
            raise StoreError(f"{db.where}: holds no zonegen schema yet; {HOW_TO_CREATE}")
        if not migrations.known(revision):
            raise StoreError(f"{db.where}: {migrations.unknown_revision_message(revision)}")
        if revision != head:
            raise StoreError(f"{db.where}: schema revision {revision} is older than this "
                             f"zonegen's {head}; run `zonegen db upgrade` first (reading "
                             "never migrates)")


PROJECTION_WRITES = (("trackings", "INSERT"), ("trackings", "UPDATE"),
                     ("zone_versions", "INSERT"), ("record_changes", "INSERT"),
                     ("record_snapshots", "INSERT"), ("record_snapshots", "DELETE"),
                     ("current_records", "INSERT"), ("current_records", "UPDATE"),
                     ("current_records", "DELETE"), ("projected_objects", "INSERT"),
                     ("projected_objects", "DELETE"), ("read_models", "INSERT"),
                     ("read_models", "UPDATE"))
"""What projecting pending events writes: a reading command projects only when the
server role may do all of it."""


def _server_read_only(db: Database) -> bool:
    """A server database (PostgreSQL) a reading command must not write: a read-only
    session (a hot standby, ``default_transaction_read_only``) or a role without the
    privileges projecting needs (an auditor's SELECT-only role). The same answer SQLite
    gets from file permissions; then reading commands answer from the newest stored
    version and never fail on a permission they were not meant to use."""
    if db.engine.dialect.name != "postgresql":
        return False
    checks = " AND ".join(f"has_table_privilege('{table}', '{privilege}')"
                          for table, privilege in PROJECTION_WRITES)
    with db._wrap("opening"), db._read() as conn:
        row = conn.exec_driver_sql(
            f"SELECT current_setting('transaction_read_only') = 'on', {checks}").one()
    return bool(row[0]) or not bool(row[1])


def remove_created(db: Database) -> bool:
    """Delete the SQLite file that opening ``db`` created, when nothing was stored in it
    (a failed command then leaves no database behind). Returns whether it did."""
    url = db.engine.url
    if not db.created or url.get_backend_name() != "sqlite" or not url.database:
        return False
    try:
        if not db.is_empty():
            return False
    except StoreError:
        return False  # cannot tell what it holds: keep it
    db.close()
    _remove_sqlite_file(Path(url.database))
    return True


def _remove_sqlite_file(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{path}{suffix}")


def _writable(path: Path) -> bool:
    """Whether SQLite may write ``path`` and its directory (its -wal and -shm files)."""
    return os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)


def _read_only_uri(url: sa.URL, path: Path) -> sa.URL:
    """A SQLite URI that opens ``path`` read-only. In a directory nobody may write, a
    WAL database cannot create its -shm file: there it is opened ``immutable`` (no one
    can change it under us then), unless a -wal file holds commits to read."""
    options = "mode=ro"
    if not os.access(path.parent, os.W_OK) and not Path(f"{path}-wal").exists():
        options += "&immutable=1"
    return url.set(database=f"file:{quote(str(path.resolve()))}?{options}",
                   query={"uri": "true"})


def _start_wal(db: Database) -> None:
    """WAL mode, set once by a writer (it is stored in the file): readers (serve) never
    block the writer (watch). Reading commands never set it, so they never write."""
    url = db.engine.url
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return
    with db._wrap("opening"):
        raw = db.engine.raw_connection()  # outside a transaction, as SQLite requires
        try:
            raw.cursor().execute("PRAGMA journal_mode=WAL")
        finally:
            raw.close()


def _tune_sqlite(engine: Engine) -> None:
    """SQLite-only per-connection settings, in one place: NORMAL sync (durable at
    checkpoints, safe against corruption under WAL), a busy timeout so two zonegen
    processes queue instead of failing, and foreign keys on. None of them writes the
    file."""

    @sa_event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # let SQLAlchemy's BEGIN below take over
        cur = dbapi_conn.cursor()
        try:
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
        finally:
            cur.close()

    @sa_event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # IMMEDIATE: take the write lock at BEGIN so two writers queue on busy_timeout
        # rather than failing later with "database is locked" on lock upgrade.
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.info.get("write") else "BEGIN")


def _describe(url: sa.URL) -> str:
    if url.get_backend_name() == "sqlite":
        return url.database or ":memory:"
    return url.render_as_string(hide_password=True)


def _insert_many(conn: Connection, table: sa.Table, columns: Sequence[str],
                 rows: Iterable[tuple[Any, ...]], chunk: int = 20_000) -> None:
    """Bulk insert through the driver's ``executemany``, in bounded chunks.

    The first zone version of a large cluster holds every record (480k rows for 100k
    endpoints); SQLAlchemy's per-row parameter processing cost ~8 us a row there, the
    driver's own executemany a fraction of it. The statement is plain SQL in the
    driver's declared paramstyle, so this works on SQLite and PostgreSQL alike."""
    style = conn.dialect.paramstyle
    marks = {"qmark": ["?"] * len(columns), "format": ["%s"] * len(columns),
             "pyformat": ["%s"] * len(columns),
             "numeric": [f":{i + 1}" for i in range(len(columns))]}.get(style)
    if marks is None:  # named styles: let SQLAlchemy do it
        for batch in _batched(rows, chunk):
            conn.execute(table.insert(), [dict(zip(columns, r, strict=True)) for r in batch])
        return
    quote = conn.dialect.identifier_preparer.quote
    # Only our own table and column names go into the text, quoted; values are bound.
    sql = (f"INSERT INTO {quote(table.name)} ({', '.join(quote(c) for c in columns)}) "  # noqa: S608
           f"VALUES ({', '.join(marks)})")
    for batch in _batched(rows, chunk):
        conn.exec_driver_sql(sql, batch)



def _batched(rows: Iterable[T], size: int) -> Iterator[list[T]]:
    """Bounded batches of any iterable (``IN`` lists, executemany chunks); ``islice``
    fills each in C (a burst's 600,000 journal rows paid a second for a Python loop)."""
    it = iter(rows)
    while batch := list(islice(it, size)):
        yield batch


