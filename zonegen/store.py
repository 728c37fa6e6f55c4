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
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event as sa_event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError
from sqlalchemy.pool import StaticPool

from zonegen.errors import StoreError, UnknownSerial
from zonegen.model import DELETED, Event, Record, RecordChange, ZoneVersion

DEFAULT_URL = "sqlite:///zonegen.db"
PROJECTION = "projection"
"""Tracking name of the projector's high-water mark."""

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
        elif is_sqlite:
            path = Path(parsed.database or "")
            if path.is_dir():
                raise StoreError(f"{where}: is a directory, not a database file")
            if not path.parent.exists():
                raise StoreError(f"{where}: directory {path.parent} does not exist")
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
            migrate.upgrade(self.engine)

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
            yield EventAppender(self, conn)

    def _append(self, conn: Connection, new_events: Sequence[Event]) -> AppendResult:
        if not new_events:
            return AppendResult((), 0)
        existing: set[tuple[str, str, str]] = set()
        uids = sorted({e.uid for e in new_events})
        for chunk in _chunks(uids, 500):
            rows = conn.execute(
                sa.select(events.c.uid, events.c.resource_version, events.c.type)
                .where(events.c.uid.in_(chunk))
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
        inserted = conn.execute(
            events.insert().returning(events.c.seq, sort_by_parameter_order=True),
            [_event_row(e) for e in fresh],
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
        for chunk in _chunks(keys, 300):
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
            row = conn.execute(sa.select(events).where(events.c.seq == seq)).first()
            return _event_from_row(row) if row is not None else None

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
            result = conn.execution_options(yield_per=batch).execute(q)
            for row in result:
                yield _event_from_row(row)

    def max_event_seq(self) -> int:
        with self._wrap("reading events"), self._read() as conn:
            return int(conn.execute(sa.select(sa.func.max(events.c.seq))).scalar() or 0)

    def heads(self, kinds: Iterable[str] | None = None,
              namespaces: Iterable[str] | None = None) -> dict[tuple[str, str, str], ObjectHead]:
        """The newest event of each object (deleted ones included), by (kind, ns, name)."""
        q = sa.select(object_heads)
        if kinds is not None:
            q = q.where(object_heads.c.kind.in_(list(kinds)))
        if namespaces is not None:
            q = q.where(object_heads.c.namespace.in_(list(namespaces)))
        with self._wrap("reading objects"), self._read() as conn:
            return {(r.kind, r.namespace, r.name): _head_from_row(r) for r in conn.execute(q)}

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
            if (current or 0) != from_seq:
                raise StoreError(
                    f"{self.where}: projection checkpoint moved from {from_seq} to {current} "
                    "under us (another zonegen projected these events)")
            if current is None:
                conn.execute(trackings.insert().values(name=name, last_seq=to_seq))
            else:
                conn.execute(trackings.update().where(trackings.c.name == name)
                             .values(last_seq=to_seq))
            if serial is None:
                return None
            created = created_at or datetime.now(UTC)
            version_id = conn.execute(
                zone_versions.insert().values(
                    serial=serial, created_us=to_us(created), last_event_seq=to_seq)
                .returning(zone_versions.c.id)
            ).scalar_one()
            rows = []
            for ch in changes:
                row = ch.record.to_row()
                row.update(version_id=version_id, added=ch.added, cause_seq=ch.cause_seq)
                rows.append(row)
            if rows:
                conn.execute(record_changes.insert(), rows)
            return ZoneVersion(int(version_id), serial, created, to_seq, tuple(changes))

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
            raise UnknownSerial(f"serial {serial} was never published (or was compacted)")
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
        """The record set as published by version ``version_id``: every change up to it,
        folded. Independent of the projector's code, so past zones stay as published."""
        current: set[Record] = set()
        with self._wrap("reading the journal"), self._read() as conn:
            q = (sa.select(record_changes.c.added, record_changes.c.owner,
                           record_changes.c.rtype, record_changes.c.rdata, record_changes.c.ttl)
                 .where(record_changes.c.version_id <= version_id)
                 .order_by(record_changes.c.version_id, record_changes.c.id))
            for r in conn.execution_options(yield_per=5000).execute(q):
                rec = Record.from_row(r.owner, r.rtype, r.rdata, r.ttl)
                if r.added:
                    current.add(rec)
                else:
                    current.discard(rec)
        return current

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
            conn.execute(record_changes.delete())
            conn.execute(zone_versions.delete())
            conn.execute(trackings.delete().where(trackings.c.name == PROJECTION))


class EventAppender:
    """Appends inside :meth:`Store.appending`'s transaction."""

    def __init__(self, store: Store, conn: Connection) -> None:
        self._store = store
        self._conn = conn

    def append(self, new_events: Sequence[Event]) -> AppendResult:
        return self._store._append(self._conn, new_events)

    def set_resume_point(self, source: str, kind: str, rv: str) -> None:
        self._store._set_resume(self._conn, source, kind, rv)

    def get_event(self, seq: int) -> Event | None:
        row = self._conn.execute(sa.select(events).where(events.c.seq == seq)).first()
        return _event_from_row(row) if row is not None else None

    def heads_for(self, keys: Sequence[tuple[str, str, str]]
                  ) -> dict[tuple[str, str, str], ObjectHead]:
        out: dict[tuple[str, str, str], ObjectHead] = {}
        unique = sorted(set(keys))
        for chunk in _chunks(unique, 300):
            rows = self._conn.execute(sa.select(object_heads).where(
                sa.tuple_(object_heads.c.kind, object_heads.c.namespace, object_heads.c.name)
                .in_(chunk)))
            for r in rows:
                out[(r.kind, r.namespace, r.name)] = _head_from_row(r)
        return out


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


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
