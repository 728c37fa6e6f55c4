"""The event log and the zone versions, in SQLAlchemy Core, dialect-neutral.

Two high-water marks commit with what they follow (STYLE.md #5, after eventsourcing's
recorders): a watch resume point with the events it follows (``append_events``), and the
projection's last event with the zone version it produced (``commit_version``). So a
crash at any point loses nothing and doubles nothing. SQLite tuning (WAL, pragmas) lives
in :func:`_tune_sqlite` only; the rest runs unchanged on PostgreSQL. The schema is
created and changed only by the Alembic migrations in ``migrations/``. This module never
imports the projector.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event as sa_event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError
from sqlalchemy.pool import StaticPool

from zonegen.errors import StoreError, UnknownSerial
from zonegen.model import DELETED, Event, Record, RecordChange, ZoneVersion, encode_rdata

DEFAULT_URL = "sqlite:///zonegen.db"
PROJECTION = "projection"
"""Tracking name of the projector's high-water mark."""

T = TypeVar("T")

metadata = sa.MetaData()

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL wants BIGINT.
_SeqType = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

events = sa.Table(
    "events",
    metadata,
    sa.Column("seq", _SeqType, primary_key=True, autoincrement=True),
    sa.Column("received_us", sa.BigInteger, nullable=False),
    sa.Column("source", sa.String(255), nullable=False),
    sa.Column("type", sa.String(16), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("namespace", sa.String(253), nullable=False),
    sa.Column("name", sa.String(253), nullable=False),
    sa.Column("uid", sa.String(128), nullable=False),
    sa.Column("resource_version", sa.String(128), nullable=False),
    sa.Column("object", sa.Text, nullable=False),
    sa.UniqueConstraint("uid", "resource_version", "type", name="uq_events_idempotency"),
    sa.Index("ix_events_object", "kind", "namespace", "name", "seq"),
    sa.Index("ix_events_received", "received_us"),
)

object_heads = sa.Table(
    "object_heads",
    metadata,
    sa.Column("kind", sa.String(32), primary_key=True),
    sa.Column("namespace", sa.String(253), primary_key=True),
    sa.Column("name", sa.String(253), primary_key=True),
    sa.Column("uid", sa.String(128), nullable=False),
    sa.Column("resource_version", sa.String(128), nullable=False),
    sa.Column("last_seq", sa.BigInteger, nullable=False),
    sa.Column("deleted", sa.Boolean, nullable=False),
)
"""The newest event of every object ever seen: what the log says exists now. Kept in
the same transaction as ``events`` so snapshots and relists diff against it cheaply."""

resume_points = sa.Table(
    "resume_points",
    metadata,
    sa.Column("source", sa.String(255), primary_key=True),
    sa.Column("kind", sa.String(32), primary_key=True),
    sa.Column("resource_version", sa.String(128), nullable=False),
)

trackings = sa.Table(
    "trackings",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("last_seq", sa.BigInteger, nullable=False),
)

zone_versions = sa.Table(
    "zone_versions",
    metadata,
    sa.Column("id", _SeqType, primary_key=True, autoincrement=True),
    sa.Column("serial", sa.BigInteger, nullable=False),
    sa.Column("created_us", sa.BigInteger, nullable=False),
    sa.Column("last_event_seq", sa.BigInteger, nullable=False),
    sa.Index("ix_zone_versions_serial", "serial"),
    sa.Index("ix_zone_versions_created", "created_us"),
)

record_changes = sa.Table(
    "record_changes",
    metadata,
    sa.Column("id", _SeqType, primary_key=True, autoincrement=True),
    sa.Column(
        "version_id", sa.BigInteger,
        sa.ForeignKey("zone_versions.id", ondelete="CASCADE"), nullable=False,
    ),
    sa.Column("added", sa.Boolean, nullable=False),
    sa.Column("owner", sa.String(1024), nullable=False),
    sa.Column("rtype", sa.Integer, nullable=False),
    sa.Column("ttl", sa.Integer, nullable=True),
    sa.Column("rdata", sa.Text, nullable=False),
    sa.Column("cause_seq", sa.BigInteger, nullable=False),
    sa.Index("ix_record_changes_owner", "owner", "version_id"),
    sa.Index("ix_record_changes_version", "version_id"),
)

# ---- audit (tables of migration 0002; methods at the end of class Store)

record_snapshots = sa.Table(
    "record_snapshots",
    metadata,
    sa.Column("id", _SeqType, primary_key=True, autoincrement=True),
    sa.Column(
        "version_id", sa.BigInteger,
        sa.ForeignKey("zone_versions.id", ondelete="CASCADE"), nullable=False,
    ),
    sa.Column("owner", sa.String(1024), nullable=False),
    sa.Column("rtype", sa.Integer, nullable=False),
    sa.Column("ttl", sa.Integer, nullable=True),
    sa.Column("rdata", sa.Text, nullable=False),
    sa.Column("cause_seq", sa.BigInteger, nullable=False),
    sa.Index("ix_record_snapshots_version", "version_id"),
    sa.Index("ix_record_snapshots_owner", "owner", "version_id"),
)
"""The full record set of one zone version. ``compact`` writes one at the oldest version
it keeps (the base that later versions' changes apply to once older changes are gone);
``records_at`` starts from the nearest one instead of folding the whole journal."""

compactions = sa.Table(
    "compactions",
    metadata,
    sa.Column("id", _SeqType, primary_key=True, autoincrement=True),
    sa.Column("compacted_us", sa.BigInteger, nullable=False),
    sa.Column("base_serial", sa.BigInteger, nullable=False),
    sa.Column("base_created_us", sa.BigInteger, nullable=False),
    sa.Column("events_upto_seq", sa.BigInteger, nullable=False),
    sa.Column("versions_deleted", sa.BigInteger, nullable=False),
    sa.Column("changes_deleted", sa.BigInteger, nullable=False),
    sa.Column("events_deleted", sa.BigInteger, nullable=False),
)
"""One row per ``zonegen compact`` that removed something: where history now begins."""


@dataclass(frozen=True, slots=True)
class EventRef:
    """An event without its object: what an audit line names as a cause (the object JSON
    of an EndpointSlice can be 100 kB; history of one name must not read it)."""

    seq: int
    received_at: datetime
    type: str
    kind: str
    namespace: str
    name: str
    uid: str
    resource_version: str
    source: str


@dataclass(frozen=True, slots=True)
class NameChange:
    """One stored change of a record at a name, with its version and (unless compacted
    away, or 0 for the apex records) the event that caused it."""

    version: ZoneVersion
    added: bool
    record: Record
    cause_seq: int
    cause: EventRef | None


@dataclass(frozen=True, slots=True)
class HistoryStart:
    """Where kept history begins: the oldest kept version and, when ``compact`` removed
    older ones, when that happened."""

    version: ZoneVersion
    compacted_at: datetime | None
    snapshot: bool  # the oldest version has a record_snapshots base

    def note(self) -> str:
        if self.compacted_at is None:
            return f"history begins at serial {self.version.serial}"
        return (f"history begins at serial {self.version.serial} (compacted on "
                f"{self.compacted_at.strftime('%Y-%m-%dT%H:%M:%SZ')})")


@dataclass(frozen=True, slots=True)
class CompactionStats:
    base: ZoneVersion
    versions_deleted: int
    changes_deleted: int
    events_deleted: int
    snapshot_records: int


class CheckpointMoved(StoreError):
    """Another projector sharing this log published the same events first."""


@dataclass(frozen=True, slots=True)
class ObjectHead:
    """The newest stored event of one object."""

    kind: str
    namespace: str
    name: str
    uid: str
    resource_version: str
    last_seq: int
    deleted: bool


@dataclass(frozen=True, slots=True)
class AppendResult:
    stored: tuple[int, ...]  # sequence numbers of the new events
    duplicates: int  # events already in the log (idempotency key), skipped


@dataclass(frozen=True, slots=True)
class JournalVersion:
    """One zone version with its changes, for IXFR and history."""

    version: ZoneVersion
    previous_serial: int | None
    added: tuple[Record, ...]
    removed: tuple[Record, ...]


def to_us(when: datetime) -> int:
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1_000_000)


def from_us(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1_000_000, tz=UTC)


def _tune_sqlite(engine: Engine) -> None:
    """SQLite-only settings, in one place: WAL so readers (serve) never block the
    writer (watch), NORMAL sync (durable at checkpoints, safe against corruption under
    WAL), a busy timeout so two zonegen processes queue instead of failing, and
    foreign keys on."""

    @sa_event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # let SQLAlchemy's BEGIN below take over
        cur = dbapi_conn.cursor()
        try:
            if engine.url.database not in (None, "", ":memory:"):
                cur.execute("PRAGMA journal_mode=WAL")
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


def _lock_event_log(conn: Connection) -> None:
    """Make event sequence order equal commit order: call first in every transaction
    that appends events.

    A PostgreSQL sequence hands out numbers at INSERT, not at COMMIT, so a slow
    transaction can commit seq n after a fast one committed n+1, and a reader tailing
    ``seq > mark`` (the projector, serve) skips n for good. Holding ``EXCLUSIVE`` on
    ``events`` for the append transaction queues writers (readers are not blocked), as
    event stores on PostgreSQL do; it also makes the heads an appender reads current
    for its whole transaction. SQLite needs nothing: ``BEGIN IMMEDIATE`` (see
    :func:`_tune_sqlite`) already serialises writers."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"LOCK TABLE {events.name} IN EXCLUSIVE MODE")


def _number_like_sqlite(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """PostgreSQL: give new events ``max(seq) + 1, + 2, …`` explicitly, as SQLite's
    INTEGER PRIMARY KEY does, instead of taking numbers from the column's sequence.

    A sequence is not transactional: a rolled-back ingest would use numbers up, and
    every later ``log``/``history``/``why`` would print other seq= values than SQLite
    for the same input. Safe only under :func:`_lock_event_log` (no other appender can
    read the same maximum), which every append transaction takes first."""
    if conn.dialect.name != "postgresql" or not rows:
        return
    top = int(conn.execute(sa.select(sa.func.max(events.c.seq))).scalar() or 0)
    for offset, row in enumerate(rows, 1):
        row["seq"] = top + offset


def _describe(url: sa.URL) -> str:
    if url.get_backend_name() == "sqlite":
        return url.database or ":memory:"
    return url.render_as_string(hide_password=True)


class Store:
    """The recorder: appends events, records versions, answers reads. No projection."""

    def __init__(self, engine: Engine, where: str) -> None:
        self.engine = engine
        self.where = where
        self._memory_lock = threading.Lock() if isinstance(engine.pool, StaticPool) else None

    # ----------------------------------------------------------------- opening

    @classmethod
    def open(cls, url: str = DEFAULT_URL, upgrade: bool = True) -> Store:
        """Open (and by default migrate) the database at ``url``.

        :raises StoreError: the URL is unusable, the file is not a database, or the
            location cannot be written.
        """
        try:
            parsed = sa.make_url(url)
        except SQLAlchemyError:
            raise StoreError(f"database URL {url!r} is not valid") from None
        where = _describe(parsed)
        kwargs: dict[str, Any] = {}
        is_sqlite = parsed.get_backend_name() == "sqlite"
        if is_sqlite and parsed.database in (None, "", ":memory:"):
            kwargs = {"poolclass": StaticPool, "connect_args": {"check_same_thread": False}}
        elif is_sqlite and not (parsed.database or "").startswith("file:"):
            path = Path(parsed.database or "")
            if path.is_dir():
                raise StoreError(f"{where}: is a directory, not a database file")
            if not path.parent.exists():
                raise StoreError(f"{where}: directory {path.parent} does not exist")
            kwargs = {"connect_args": {"check_same_thread": False, "timeout": 30}}
        elif is_sqlite:  # a SQLite URI (file:…?mode=ro&uri=true)
            kwargs = {"connect_args": {"check_same_thread": False, "timeout": 30}}
        try:
            engine = sa.create_engine(parsed, **kwargs)
        except (SQLAlchemyError, ImportError) as e:
            raise StoreError(f"{where}: cannot open database: {e}") from None
        if is_sqlite:
            _tune_sqlite(engine)
        store = cls(engine, where)
        if upgrade:
            store.upgrade()
        return store

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
    def _write(self) -> Iterator[Connection]:
        with self._locked(), self.engine.connect() as conn:
            conn.info["write"] = True
            try:
                with conn.begin():
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

    # ----------------------------------------------------------------- events

    def append_events(
        self,
        new_events: Sequence[Event],
        resume: Iterable[tuple[str, str, str]] = (),
    ) -> AppendResult:
        """Append events (skipping those already stored) and, in the same transaction,
        set watch resume points ``(source, kind, resourceVersion)``.

        Idempotent on (uid, resourceVersion, type), so at-least-once delivery is safe.

        :raises StoreError: the database cannot be written; nothing is stored then.
        """
        resume = list(resume)
        with self._wrap("appending events"):
            for attempt in (1, 2):
                try:
                    with self._write() as conn:
                        _lock_event_log(conn)
                        result = self._append(conn, new_events)
                        for source, kind, rv in resume:
                            self._set_resume(conn, source, kind, rv)
                        return result
                except IntegrityError:
                    # Another writer appended one of these events between our check
                    # and our insert: run once more, and the check now skips it.
                    if attempt == 2:
                        raise
        raise AssertionError("unreachable")

    @contextlib.contextmanager
    def appending(self) -> Iterator[EventAppender]:
        """One write transaction for a whole input (``zonegen ingest``): every
        ``append`` inside it lands together or, on any error, not at all, while the
        input is still read and stored in bounded batches."""
        with self._wrap("appending events"), self._write() as conn:
            _lock_event_log(conn)
            yield EventAppender(self, conn)

    def _append(self, conn: Connection, new_events: Sequence[Event]) -> AppendResult:
        if not new_events:
            return AppendResult((), 0)
        # Look up exactly the idempotency keys of this batch (the unique index), not
        # every event of its objects: an object's history may be long.
        existing: set[tuple[str, str, str]] = set()
        keys = sorted({(e.uid, e.resource_version, e.type) for e in new_events})
        key_cols = sa.tuple_(events.c.uid, events.c.resource_version, events.c.type)
        for chunk in _batched(keys, 300):
            rows = conn.execute(
                sa.select(events.c.uid, events.c.resource_version, events.c.type)
                .where(key_cols.in_(chunk))
            )
            existing.update((r.uid, r.resource_version, r.type) for r in rows)
        fresh: list[Event] = []
        for e in new_events:
            k = (e.uid, e.resource_version, e.type)
            if k not in existing:
                existing.add(k)
                fresh.append(e)
        if not fresh:
            return AppendResult((), len(new_events))
        # RETURNING with executemany (SQLAlchemy 2 "insertmanyvalues"): our own rows'
        # sequence numbers, in input order, on SQLite and PostgreSQL alike.
        new_rows = [_event_row(e) for e in fresh]
        _number_like_sqlite(conn, new_rows)
        inserted = conn.execute(
            events.insert().returning(events.c.seq, sort_by_parameter_order=True), new_rows,
        ).all()
        seqs = [int(r.seq) for r in inserted]
        heads: dict[tuple[str, str, str], dict[str, Any]] = {}
        for seq, e in zip(seqs, fresh, strict=True):
            heads[e.key] = {
                "kind": e.kind, "namespace": e.namespace, "name": e.name, "uid": e.uid,
                "resource_version": e.resource_version, "last_seq": seq,
                "deleted": e.type == DELETED,
            }
        keys = list(heads)
        for chunk in _batched(keys, 300):
            conn.execute(object_heads.delete().where(
                sa.tuple_(object_heads.c.kind, object_heads.c.namespace, object_heads.c.name)
                .in_(chunk)))
        conn.execute(object_heads.insert(), list(heads.values()))
        return AppendResult(tuple(seqs), len(new_events) - len(fresh))

    def _set_resume(self, conn: Connection, source: str, kind: str, rv: str) -> None:
        updated = conn.execute(
            resume_points.update()
            .where(resume_points.c.source == source, resume_points.c.kind == kind)
            .values(resource_version=rv)
        ).rowcount
        if not updated:
            conn.execute(resume_points.insert().values(source=source, kind=kind,
                                                       resource_version=rv))

    def set_resume_point(self, source: str, kind: str, rv: str) -> None:
        """Advance a watch resume point alone (a BOOKMARK: no events to write)."""
        with self._wrap("saving resume point"), self._write() as conn:
            self._set_resume(conn, source, kind, rv)

    def resume_point(self, source: str, kind: str) -> str | None:
        with self._wrap("reading resume point"), self._read() as conn:
            return conn.execute(
                sa.select(resume_points.c.resource_version)
                .where(resume_points.c.source == source, resume_points.c.kind == kind)
            ).scalar()

    def select_events(self, gt: int = 0, limit: int | None = None,
                      lte: int | None = None) -> list[Event]:
        """Events with ``gt < seq (<= lte)``, in sequence order."""
        q = sa.select(events).where(events.c.seq > gt).order_by(events.c.seq)
        if lte is not None:
            q = q.where(events.c.seq <= lte)
        if limit is not None:
            q = q.limit(limit)
        with self._wrap("reading events"), self._read() as conn:
            return [_event_from_row(r) for r in conn.execute(q)]

    def get_event(self, seq: int) -> Event | None:
        with self._wrap("reading events"), self._read() as conn:
            return _select_event(conn, seq)

    def iter_latest_events(self, lte: int, batch: int = 2000) -> Iterator[Event]:
        """The newest event of every object with ``seq <= lte`` that is not a deletion:
        the cluster as the log knew it at that point, for loading a projection."""
        newest = (
            sa.select(sa.func.max(events.c.seq).label("seq"))
            .where(events.c.seq <= lte)
            .group_by(events.c.kind, events.c.namespace, events.c.name)
        ).subquery()
        q = (
            sa.select(events).join(newest, newest.c.seq == events.c.seq)
            .where(events.c.type != DELETED).order_by(events.c.seq)
        )
        with self._wrap("reading events"), self._read() as conn:
            result = conn.execute(q, execution_options={"yield_per": batch})
            for row in result:
                yield _event_from_row(row)

    def max_event_seq(self) -> int:
        with self._wrap("reading events"), self._read() as conn:
            return int(conn.execute(sa.select(sa.func.max(events.c.seq))).scalar() or 0)

    def heads(self, kinds: Iterable[str] | None = None,
              namespaces: Iterable[str] | None = None) -> dict[tuple[str, str, str], ObjectHead]:
        """The newest event of each object (deleted ones included), by (kind, ns, name)."""
        with self._wrap("reading objects"), self._read() as conn:
            return _select_heads(conn, kinds, namespaces)

    # ----------------------------------------------------------------- versions

    def max_tracking_seq(self, name: str = PROJECTION) -> int:
        with self._wrap("reading checkpoint"), self._read() as conn:
            return int(conn.execute(
                sa.select(trackings.c.last_seq).where(trackings.c.name == name)
            ).scalar() or 0)

    def commit_version(
        self,
        tracking: tuple[str, int, int],
        serial: int | None = None,
        created_at: datetime | None = None,
        changes: Sequence[RecordChange] = (),
    ) -> ZoneVersion | None:
        """Move tracking ``(name, from_seq, to_seq)`` and, when ``serial`` is given,
        record a zone version with its changes, all in one transaction.

        The tracking move is a compare-and-set from ``from_seq``: two projectors sharing
        one log cannot both publish the same events.

        :raises StoreError: another projector moved the checkpoint first, or the write
            failed; nothing is stored then.
        """
        name, from_seq, to_seq = tracking
        with self._wrap("committing zone version"), self._write() as conn:
            current = conn.execute(
                sa.select(trackings.c.last_seq).where(trackings.c.name == name)
            ).scalar()
            moved = CheckpointMoved(
                f"{self.where}: projection checkpoint moved from {from_seq} "
                f"{'' if (current or 0) == from_seq else f'to {current} '}"
                "under us (another zonegen projected these events)")
            if (current or 0) != from_seq:
                raise moved
            # The read above takes no lock (PostgreSQL's READ COMMITTED): the write
            # itself must be the compare-and-set, or two projectors both pass the check.
            if current is None:
                try:  # the whole transaction rolls back on the raise
                    conn.execute(trackings.insert().values(name=name, last_seq=to_seq))
                except IntegrityError:
                    raise moved from None
            elif not conn.execute(trackings.update().where(
                    trackings.c.name == name, trackings.c.last_seq == from_seq)
                    .values(last_seq=to_seq)).rowcount:
                raise moved
            if serial is None:
                return None
            created = created_at or datetime.now(UTC)
            version_id = conn.execute(
                zone_versions.insert().values(
                    serial=serial, created_us=to_us(created), last_event_seq=to_seq)
                .returning(zone_versions.c.id)
            ).scalar_one()
            _insert_many(conn, record_changes, RECORD_CHANGE_COLUMNS, (
                (version_id, ch.added, ch.record.owner, ch.record.rtype, ch.record.ttl,
                 encode_rdata(ch.record.rdata), ch.cause_seq)
                for ch in changes))
            return ZoneVersion(int(version_id), serial, created, to_seq)

    def latest_version(self) -> ZoneVersion | None:
        with self._wrap("reading zone versions"), self._read() as conn:
            row = conn.execute(
                sa.select(zone_versions).order_by(zone_versions.c.id.desc()).limit(1)
            ).first()
            return _version_from_row(row) if row is not None else None

    def versions(self, since_id: int = 0) -> list[ZoneVersion]:
        with self._wrap("reading zone versions"), self._read() as conn:
            return [_version_from_row(r) for r in conn.execute(
                sa.select(zone_versions).where(zone_versions.c.id > since_id)
                .order_by(zone_versions.c.id))]

    def get_version(self, serial: int) -> ZoneVersion | None:
        """The newest version published with ``serial`` (serials wrap, ids do not)."""
        with self._wrap("reading zone versions"), self._read() as conn:
            row = conn.execute(
                sa.select(zone_versions).where(zone_versions.c.serial == serial)
                .order_by(zone_versions.c.id.desc()).limit(1)
            ).first()
            return _version_from_row(row) if row is not None else None

    def find_version(self, serial: int) -> ZoneVersion:
        """:raises UnknownSerial: no version was published with ``serial``."""
        version = self.get_version(serial)
        if version is None:
            raise UnknownSerial(f"serial {serial} was never published"
                                f"{self.history_note(', or is older than kept history: ')}")
        return version

    def version_at(self, when: datetime) -> ZoneVersion | None:
        """The version that was current at ``when``: the newest created at or before it."""
        with self._wrap("reading zone versions"), self._read() as conn:
            row = conn.execute(
                sa.select(zone_versions).where(zone_versions.c.created_us <= to_us(when))
                .order_by(zone_versions.c.id.desc()).limit(1)
            ).first()
            return _version_from_row(row) if row is not None else None

    def journal(self, after_version_id: int, upto_version_id: int | None = None
                ) -> list[JournalVersion]:
        """Every version after ``after_version_id`` (up to ``upto_version_id``) with its
        added and removed records, oldest first: the IXFR journal (RFC 1995)."""
        with self._wrap("reading the journal"), self._read() as conn:
            prev = conn.execute(
                sa.select(zone_versions.c.serial).where(zone_versions.c.id == after_version_id)
            ).scalar()
            vq = sa.select(zone_versions).where(zone_versions.c.id > after_version_id)
            cq = sa.select(record_changes).where(record_changes.c.version_id > after_version_id)
            if upto_version_id is not None:
                vq = vq.where(zone_versions.c.id <= upto_version_id)
                cq = cq.where(record_changes.c.version_id <= upto_version_id)
            versions = [_version_from_row(r) for r in conn.execute(vq.order_by(zone_versions.c.id))]
            added: dict[int, list[Record]] = {v.version_id: [] for v in versions}
            removed: dict[int, list[Record]] = {v.version_id: [] for v in versions}
            for r in conn.execute(cq.order_by(record_changes.c.id)):
                rec = Record.from_row(r.owner, r.rtype, r.rdata, r.ttl)
                (added if r.added else removed)[r.version_id].append(rec)
        out: list[JournalVersion] = []
        for v in versions:
            out.append(JournalVersion(v, prev, tuple(added[v.version_id]),
                                      tuple(removed[v.version_id])))
            prev = v.serial
        return out

    def records_at(self, version_id: int) -> set[Record]:
        """The record set as published by version ``version_id``: the nearest snapshot at
        or before it (see ``record_snapshots``) plus every later change up to it, folded.
        Independent of the projector's code, so past zones stay as published."""
        with self._wrap("reading the journal"), self._read() as conn:
            return set(self._fold_records(conn, version_id))

    def record_changes_for(self, owners: Sequence[str]) -> list[tuple[ZoneVersion, RecordChange]]:
        """Every change of records at ``owners`` (stored form), oldest first."""
        with self._wrap("reading the journal"), self._read() as conn:
            q = (sa.select(record_changes, zone_versions.c.serial, zone_versions.c.created_us,
                           zone_versions.c.last_event_seq)
                 .join(zone_versions, zone_versions.c.id == record_changes.c.version_id)
                 .where(record_changes.c.owner.in_(list(owners)))
                 .order_by(record_changes.c.version_id, record_changes.c.id))
            out = []
            for r in conn.execute(q):
                v = ZoneVersion(r.version_id, r.serial, from_us(r.created_us), r.last_event_seq)
                rec = Record.from_row(r.owner, r.rtype, r.rdata, r.ttl)
                out.append((v, RecordChange(r.serial, bool(r.added), rec, r.cause_seq)))
            return out

    def reset_projection(self) -> None:
        """Forget every zone version and the projection checkpoint (``project --rebuild``
        with ``--reset``); the event log itself is never touched."""
        with self._wrap("resetting projection"), self._write() as conn:
            conn.execute(record_snapshots.delete())
            conn.execute(record_changes.delete())
            conn.execute(zone_versions.delete())
            conn.execute(trackings.delete().where(trackings.c.name == PROJECTION))

    # ---- audit: history, diff, log, why and retention (zonegen.history calls these)

    def _fold_records(self, conn: Connection, version_id: int) -> dict[Record, int]:
        """Record -> cause_seq as published by ``version_id``: the nearest snapshot at or
        before it, then every later change up to it, in commit order.

        Folds on the stored columns (rdata JSON is written canonically by
        ``Record.to_row``, so equal records have equal text) and builds ``Record``
        values only for the survivors: most of a long journal is records that came and
        went, and decoding their JSON was two thirds of the cost."""
        base = conn.execute(
            sa.select(sa.func.max(record_snapshots.c.version_id))
            .where(record_snapshots.c.version_id <= version_id)
        ).scalar() or 0
        current: dict[tuple[str, int, str, int | None], int] = {}
        if base:
            sq = (sa.select(record_snapshots.c.owner, record_snapshots.c.rtype,
                            record_snapshots.c.rdata, record_snapshots.c.ttl,
                            record_snapshots.c.cause_seq)
                  .where(record_snapshots.c.version_id == base))
            for owner, rtype, rdata, ttl, cause in \
                    conn.execute(sq, execution_options={"yield_per": 20000}):
                current[(owner, rtype, rdata, ttl)] = cause
        q = (sa.select(record_changes.c.added, record_changes.c.owner, record_changes.c.rtype,
                       record_changes.c.rdata, record_changes.c.ttl, record_changes.c.cause_seq)
             .where(record_changes.c.version_id > base,
                    record_changes.c.version_id <= version_id)
             .order_by(record_changes.c.version_id, record_changes.c.id))
        pop = current.pop
        for added, owner, rtype, rdata, ttl, cause in \
                conn.execute(q, execution_options={"yield_per": 20000}):
            if added:
                current[(owner, rtype, rdata, ttl)] = cause
            else:
                pop((owner, rtype, rdata, ttl), None)
        return {Record.from_row(o, t, r, ttl): int(c) for (o, t, r, ttl), c in current.items()}

    def oldest_version(self) -> ZoneVersion | None:
        """The oldest kept zone version. The IXFR journal starts here: a client whose
        serial is older (or unknown) gets AXFR (RFC 1995 §4)."""
        with self._wrap("reading zone versions"), self._read() as conn:
            row = conn.execute(
                sa.select(zone_versions).order_by(zone_versions.c.id).limit(1)).first()
            return _version_from_row(row) if row is not None else None

    def history_start(self) -> HistoryStart | None:
        """Where kept history begins (None before the first version)."""
        with self._wrap("reading zone versions"), self._read() as conn:
            row = conn.execute(
                sa.select(zone_versions).order_by(zone_versions.c.id).limit(1)).first()
            if row is None:
                return None
            version = _version_from_row(row)
            compacted = conn.execute(sa.select(sa.func.max(compactions.c.compacted_us))).scalar()
            snapshot = conn.execute(
                sa.select(record_snapshots.c.id)
                .where(record_snapshots.c.version_id == version.version_id).limit(1)
            ).first() is not None
        return HistoryStart(version, from_us(compacted) if compacted is not None else None,
                            snapshot)

    def history_note(self, prefix: str = "") -> str:
        """``prefix`` + "history begins at serial N (compacted on …)" when history was
        compacted, else "": error messages append it so users learn why a past serial or
        time is gone."""
        start = self.history_start()
        if start is None or start.compacted_at is None:
            return ""
        return prefix + start.note()

    def name_changes(self, owners: Sequence[str], rtype: int | None = None,
                     since: datetime | None = None, until: datetime | None = None,
                     ) -> list[NameChange]:
        """Every kept change of records at ``owners`` (stored form), oldest first, with
        the version and the causing event. Uses ``ix_record_changes_owner``, then primary
        keys: cost follows the name's own changes, not the size of the log."""
        rc, zv, ev = record_changes, zone_versions, events
        q = (sa.select(rc.c.version_id, rc.c.added, rc.c.owner, rc.c.rtype, rc.c.rdata,
                       rc.c.ttl, rc.c.cause_seq, zv.c.serial, zv.c.created_us,
                       zv.c.last_event_seq, *_event_ref_columns())
             .join(zv, zv.c.id == rc.c.version_id)
             .outerjoin(ev, ev.c.seq == rc.c.cause_seq)
             .where(rc.c.owner.in_(list(owners))))
        if rtype is not None:
            q = q.where(rc.c.rtype == rtype)
        if since is not None:
            q = q.where(zv.c.created_us >= to_us(since))
        if until is not None:
            q = q.where(zv.c.created_us <= to_us(until))
        q = q.order_by(rc.c.version_id, rc.c.id)
        with self._wrap("reading the journal"), self._read() as conn:
            return [
                NameChange(
                    ZoneVersion(int(r.version_id), int(r.serial), from_us(r.created_us),
                                int(r.last_event_seq)),
                    bool(r.added), Record.from_row(r.owner, r.rtype, r.rdata, r.ttl),
                    int(r.cause_seq), _event_ref(r),
                )
                for r in conn.execute(q)
            ]

    def snapshot_records(self, version_id: int, owners: Sequence[str] | None = None,
                         rtype: int | None = None) -> list[tuple[Record, int]]:
        """The snapshot stored at ``version_id`` (``(record, cause_seq)``), optionally
        only at ``owners``; empty when that version has none."""
        q = (sa.select(record_snapshots)
             .where(record_snapshots.c.version_id == version_id)
             .order_by(record_snapshots.c.id))
        if owners is not None:
            q = q.where(record_snapshots.c.owner.in_(list(owners)))
        if rtype is not None:
            q = q.where(record_snapshots.c.rtype == rtype)
        with self._wrap("reading snapshots"), self._read() as conn:
            return [(Record.from_row(r.owner, r.rtype, r.rdata, r.ttl), int(r.cause_seq))
                    for r in conn.execute(q)]

    def changes_between(self, after_version_id: int, upto_version_id: int
                        ) -> list[tuple[bool, Record]]:
        """``(added, record)`` for every change in versions ``(after, upto]``, in commit
        order: a diff of two versions costs the changes between them, not two folds."""
        q = (sa.select(record_changes.c.added, record_changes.c.owner, record_changes.c.rtype,
                       record_changes.c.rdata, record_changes.c.ttl)
             .where(record_changes.c.version_id > after_version_id,
                    record_changes.c.version_id <= upto_version_id)
             .order_by(record_changes.c.version_id, record_changes.c.id))
        with self._wrap("reading the journal"), self._read() as conn:
            return [(bool(r.added), Record.from_row(r.owner, r.rtype, r.rdata, r.ttl))
                    for r in conn.execute(q, execution_options={"yield_per": 5000})]

    def iter_events(self, since: datetime | None = None, until: datetime | None = None,
                    kinds: Sequence[str] | None = None, namespace: str | None = None,
                    name: str | None = None, batch: int = 1000) -> Iterator[Event]:
        """Events matching the filters, oldest first, read in pages by sequence number so
        no read transaction (or the in-memory lock) is held while the caller prints."""
        conds: list[Any] = []
        if since is not None:
            conds.append(events.c.received_us >= to_us(since))
        if until is not None:
            conds.append(events.c.received_us <= to_us(until))
        if kinds is not None:
            conds.append(events.c.kind.in_(list(kinds)))
        if namespace is not None:
            conds.append(events.c.namespace == namespace)
        if name is not None:
            conds.append(events.c.name == name)
        last = 0
        while True:
            q = (sa.select(events).where(events.c.seq > last, *conds)
                 .order_by(events.c.seq).limit(batch))
            with self._wrap("reading events"), self._read() as conn:
                page = [_event_from_row(r) for r in conn.execute(q)]
            yield from page
            if len(page) < batch:
                return
            last = page[-1].seq

    def last_events(self, count: int, since: datetime | None = None,
                    until: datetime | None = None, kinds: Sequence[str] | None = None,
                    namespace: str | None = None, name: str | None = None) -> list[Event]:
        """The newest ``count`` events matching the filters, oldest first."""
        q = sa.select(events).order_by(events.c.seq.desc()).limit(count)
        if since is not None:
            q = q.where(events.c.received_us >= to_us(since))
        if until is not None:
            q = q.where(events.c.received_us <= to_us(until))
        if kinds is not None:
            q = q.where(events.c.kind.in_(list(kinds)))
        if namespace is not None:
            q = q.where(events.c.namespace == namespace)
        if name is not None:
            q = q.where(events.c.name == name)
        with self._wrap("reading events"), self._read() as conn:
            return [_event_from_row(r) for r in conn.execute(q)][::-1]

    def event_refs(self, seqs: Iterable[int]) -> dict[int, EventRef]:
        """The events with these sequence numbers, without their objects (missing ones,
        compacted or 0, are absent from the result)."""
        wanted = sorted({s for s in seqs if s > 0})
        out: dict[int, EventRef] = {}
        with self._wrap("reading events"), self._read() as conn:
            for chunk in _batched(wanted, 500):
                for r in conn.execute(sa.select(*_event_ref_columns())
                                      .where(events.c.seq.in_(chunk))):
                    ref = _event_ref(r)
                    if ref is not None:
                        out[ref.seq] = ref
        return out

    def live_objects(self, kind: str, namespace: str) -> list[Event]:
        """The newest event of every live object of ``kind`` in ``namespace`` (for
        ``why``: which EndpointSlices point at a Service is in their labels)."""
        q = (sa.select(events)
             .join(object_heads, object_heads.c.last_seq == events.c.seq)
             .where(object_heads.c.kind == kind, object_heads.c.namespace == namespace,
                    object_heads.c.deleted == sa.false())
             .order_by(events.c.seq))
        with self._wrap("reading objects"), self._read() as conn:
            return [_event_from_row(r) for r in conn.execute(q)]

    def save_snapshot(self, version_id: int) -> int:
        """Store the full record set of ``version_id`` (replacing any snapshot there), so
        ``records_at`` of it and later versions starts here; returns its size."""
        with self._wrap("saving snapshot"), self._write() as conn:
            return self._save_snapshot(conn, version_id)

    def _save_snapshot(self, conn: Connection, version_id: int) -> int:
        folded = self._fold_records(conn, version_id)
        conn.execute(record_snapshots.delete().where(record_snapshots.c.version_id == version_id))
        _insert_many(conn, record_snapshots, SNAPSHOT_COLUMNS, (
            (version_id, rec.owner, rec.rtype, rec.ttl, encode_rdata(rec.rdata), cause)
            for rec, cause in folded.items()))
        return len(folded)

    def changes_since_snapshot(self) -> int:
        """Record changes stored after the newest snapshot: what ``records_at`` of the
        newest version must fold. The runner snapshots when this grows large."""
        with self._wrap("reading the journal"), self._read() as conn:
            base = conn.execute(sa.select(sa.func.max(record_snapshots.c.version_id))
                                ).scalar() or 0
            return int(conn.execute(
                sa.select(sa.func.count()).select_from(record_changes)
                .where(record_changes.c.version_id > base)).scalar() or 0)

    def compact(self, base_version_id: int, now: datetime) -> CompactionStats:
        """Make ``base_version_id`` the oldest kept version, in one transaction: snapshot
        its record set, delete older versions with their changes and snapshots, and
        delete the events they consumed, except any that is still the newest event of a
        live object up to the projection checkpoint (the projection loads those:
        ``iter_latest_events``). Logs the compaction.

        :raises UnknownSerial: the version does not exist.
        """
        with self._wrap("compacting history"), self._write() as conn:
            row = conn.execute(
                sa.select(zone_versions).where(zone_versions.c.id == base_version_id)).first()
            if row is None:
                raise UnknownSerial(f"zone version {base_version_id} does not exist")
            base = _version_from_row(row)
            upto = conn.execute(
                sa.select(sa.func.max(zone_versions.c.last_event_seq))
                .where(zone_versions.c.id < base_version_id)).scalar()
            if upto is None:
                return CompactionStats(base, 0, 0, 0, 0)
            snapshot = self._save_snapshot(conn, base_version_id)
            changes = conn.execute(record_changes.delete().where(
                record_changes.c.version_id < base_version_id)).rowcount
            conn.execute(record_snapshots.delete().where(
                record_snapshots.c.version_id < base_version_id))
            versions = conn.execute(zone_versions.delete().where(
                zone_versions.c.id < base_version_id)).rowcount
            # The projection loads the newest event <= its checkpoint of each live
            # object; an older event is only needed when it is that one.
            checkpoint = conn.execute(sa.select(trackings.c.last_seq).where(
                trackings.c.name == PROJECTION)).scalar() or 0
            newest = (
                sa.select(sa.func.max(events.c.seq).label("seq"))
                .where(events.c.seq <= max(int(upto), int(checkpoint)))
                .group_by(events.c.kind, events.c.namespace, events.c.name)
            ).subquery()
            keep = (sa.select(events.c.seq).join(newest, newest.c.seq == events.c.seq)
                    .where(events.c.type != DELETED))
            removed = conn.execute(events.delete().where(
                events.c.seq <= upto, events.c.seq.not_in(keep))).rowcount
            conn.execute(compactions.insert().values(
                compacted_us=to_us(now), base_serial=base.serial,
                base_created_us=to_us(base.created_at), events_upto_seq=int(upto),
                versions_deleted=versions, changes_deleted=changes, events_deleted=removed))
            return CompactionStats(base, versions, changes, removed, snapshot)


class EventAppender:
    """Appends inside :meth:`Store.appending`'s transaction."""

    def __init__(self, store: Store, conn: Connection) -> None:
        self._store = store
        self._conn = conn

    def append(self, new_events: Sequence[Event]) -> AppendResult:
        return self._store._append(self._conn, new_events)

    def set_resume_point(self, source: str, kind: str, rv: str) -> None:
        self._store._set_resume(self._conn, source, kind, rv)

    def heads(self) -> dict[tuple[str, str, str], ObjectHead]:
        """Every object head, read inside this transaction (so no other writer's
        events can slip between the read and our appends)."""
        return _select_heads(self._conn)

    def known_versions(self, pairs: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which ``(uid, resourceVersion)`` pairs the log already holds as an object
        version (ADDED or MODIFIED): re-reading an older version is not news."""
        found: set[tuple[str, str]] = set()
        cols = sa.tuple_(events.c.uid, events.c.resource_version)
        for chunk in _batched(sorted(set(pairs)), 300):
            rows = self._conn.execute(
                sa.select(events.c.uid, events.c.resource_version)
                .where(cols.in_(chunk), events.c.type != DELETED))
            found.update((r.uid, r.resource_version) for r in rows)
        return found

    def get_event(self, seq: int) -> Event | None:
        return _select_event(self._conn, seq)

    def heads_for(self, keys: Sequence[tuple[str, str, str]]
                  ) -> dict[tuple[str, str, str], ObjectHead]:
        out: dict[tuple[str, str, str], ObjectHead] = {}
        unique = sorted(set(keys))
        for chunk in _batched(unique, 300):
            rows = self._conn.execute(sa.select(object_heads).where(
                sa.tuple_(object_heads.c.kind, object_heads.c.namespace, object_heads.c.name)
                .in_(chunk)))
            for r in rows:
                out[(r.kind, r.namespace, r.name)] = _head_from_row(r)
        return out


SNAPSHOT_COLUMNS = ("version_id", "owner", "rtype", "ttl", "rdata", "cause_seq")
RECORD_CHANGE_COLUMNS = ("version_id", "added", "owner", "rtype", "ttl", "rdata", "cause_seq")


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


def _select_event(conn: Connection, seq: int) -> Event | None:
    row = conn.execute(sa.select(events).where(events.c.seq == seq)).first()
    return _event_from_row(row) if row is not None else None


def _select_heads(conn: Connection, kinds: Iterable[str] | None = None,
                  namespaces: Iterable[str] | None = None
                  ) -> dict[tuple[str, str, str], ObjectHead]:
    q = sa.select(object_heads)
    if kinds is not None:
        q = q.where(object_heads.c.kind.in_(list(kinds)))
    if namespaces is not None:
        q = q.where(object_heads.c.namespace.in_(list(namespaces)))
    return {(r.kind, r.namespace, r.name): _head_from_row(r) for r in conn.execute(q)}


def _batched(rows: Iterable[T], size: int) -> Iterator[list[T]]:
    """Bounded batches of any iterable (``IN`` lists, executemany chunks)."""
    batch: list[T] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _event_row(e: Event) -> dict[str, Any]:
    return {
        "received_us": to_us(e.received_at), "source": e.source, "type": e.type,
        "kind": e.kind, "namespace": e.namespace, "name": e.name, "uid": e.uid,
        "resource_version": e.resource_version, "object": e.object_json,
    }


def _event_from_row(r: Any) -> Event:
    return Event(
        seq=int(r.seq), received_at=from_us(r.received_us), source=r.source, type=r.type,
        kind=r.kind, namespace=r.namespace, name=r.name, uid=r.uid,
        resource_version=r.resource_version, object_json=r.object,
    )


def _head_from_row(r: Any) -> ObjectHead:
    return ObjectHead(r.kind, r.namespace, r.name, r.uid, r.resource_version, int(r.last_seq),
                      bool(r.deleted))


def _version_from_row(r: Any) -> ZoneVersion:
    return ZoneVersion(int(r.id), int(r.serial), from_us(r.created_us), int(r.last_event_seq))


def _event_ref_columns() -> list[Any]:
    c = events.c
    return [c.seq.label("ev_seq"), c.received_us.label("ev_received_us"),
            c.type.label("ev_type"), c.kind.label("ev_kind"),
            c.namespace.label("ev_namespace"), c.name.label("ev_name"),
            c.uid.label("ev_uid"), c.resource_version.label("ev_rv"),
            c.source.label("ev_source")]


def _event_ref(r: Any) -> EventRef | None:
    if r.ev_seq is None:
        return None
    return EventRef(int(r.ev_seq), from_us(r.ev_received_us), r.ev_type, r.ev_kind,
                    r.ev_namespace, r.ev_name, r.ev_uid, r.ev_rv, r.ev_source)
