"""The event log role: append Kubernetes events exactly once, with the watch resume
points that follow them, and read them back for the projection.

A resume point commits with the events it follows (``append_events``), so a crash at any
point loses nothing and doubles nothing. ``object_heads`` (the newest event of every
object) is kept in the same transaction, so snapshots and relists diff against it
cheaply.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from zonegen.errors import InvalidOption
from zonegen.model import DELETED, Event
from zonegen.reconcile import ObjectHead as ObjectHead  # re-exported: its home is the reconcile
from zonegen.sources import DEFAULT_SOURCE, Source, split_resume_key
from zonegen.store.database import Database, _batched, _insert_many
from zonegen.store.schema import (
    events,
    from_us,
    object_heads,
    resume_points,
    sources,
    to_us,
    unindexed,
)

ReplayRow = tuple[int, int, str, str, str, str, "str | None"]
"""seq, events of its object up to it, type, kind, namespace, name, stored object (None
for a deletion): the newest event of one object, as a replay reads it."""


@dataclass(frozen=True, slots=True)
class AppendResult:
    stored: tuple[int, ...]  # sequence numbers of the new events
    duplicates: int  # events already in the log (idempotency key), skipped
    kept: tuple[int, ...] = ()  # beside stored: each one's index in the events given


@dataclass(frozen=True, slots=True)
class SourceState:
    """What the log holds of one source, for ``zonegen status``."""

    source: Source
    events: int
    last_event_at: datetime | None
    resume_points: tuple[tuple[str | None, str, str], ...]  # (namespace, kind, rv)


class EventLog(Database):
    """Appends events and resume points; reads events and object heads."""

    def append_events(
        self,
        new_events: Sequence[Event],
        resume: Iterable[tuple[str, str, str]] = (),
    ) -> AppendResult:
        """Append events (skipping those already stored) and, in the same transaction,
        set watch resume points ``(source, kind, resourceVersion)``.

        Idempotent on (source, uid, resourceVersion, type), so at-least-once delivery
        is safe.

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
        keys = sorted({(e.source, e.uid, e.resource_version, e.type) for e in new_events})
        idempotency = ("source", "uid", "resource_version", "type")
        existing: set[tuple[str, str, str, str]] = {
            (str(r[0]), str(r[1]), str(r[2]), str(r[3]))
            for r in _select_keys(conn, events, idempotency, idempotency, keys)}
        fresh: list[Event] = []
        kept: list[int] = []
        for i, e in enumerate(new_events):
            k = (e.source, e.uid, e.resource_version, e.type)
            if k not in existing:
                existing.add(k)
                fresh.append(e)
                kept.append(i)
        if not fresh:
            return AppendResult((), len(new_events))
        # Numbered here, then one driver executemany: SQLAlchemy sends an INSERT ...
        # RETURNING with its parameters' order kept one row at a time on SQLite.
        seqs = _next_seqs(conn, len(fresh))
        _insert_many(conn, events, EVENT_COLUMNS, (
            (seq, *_event_values(e)) for seq, e in zip(seqs, fresh, strict=True)))
        heads: dict[tuple[str, str, str, str], dict[str, Any]] = {}
        for seq, e in zip(seqs, fresh, strict=True):
            heads[(e.source, *e.key)] = {
                "source": e.source, "kind": e.kind, "namespace": e.namespace,
                "name": e.name, "uid": e.uid,
                "resource_version": e.resource_version, "last_seq": seq,
                "deleted": e.type == DELETED,
            }
        # By primary key, one statement per head (executemany): a list of row values
        # in one DELETE made SQLite scan the whole table for every chunk.
        _execute_many(conn, "DELETE FROM object_heads WHERE source = ? AND kind = ? "
                            "AND namespace = ? AND name = ?", list(heads))
        _insert_many(conn, object_heads, _HEAD_COLUMNS,
                     [tuple(h[c] for c in _HEAD_COLUMNS) for h in heads.values()])
        return AppendResult(tuple(seqs), len(new_events) - len(fresh), tuple(kept))

    def _set_resume(self, conn: Connection, source: str, kind: str, rv: str) -> None:
        updated = conn.execute(
            resume_points.update()
            .where(resume_points.c.source == source, resume_points.c.kind == kind)
            .values(resource_version=rv)
        ).rowcount
        if not updated:
            conn.execute(resume_points.insert().values(source=source, kind=kind,
                                                       resource_version=rv))

    def resume_point(self, source: str, kind: str) -> str | None:
        with self._wrap("reading resume point"), self._read() as conn:
            return conn.execute(
                sa.select(resume_points.c.resource_version)
                .where(resume_points.c.source == source, resume_points.c.kind == kind)
            ).scalar()

    def select_events(self, gt: int = 0, limit: int | None = None,
                      lte: int | None = None,
                      sources: Collection[str] | None = None) -> list[Event]:
        """Events with ``gt < seq (<= lte)``, in sequence order; only those of
        ``sources`` when given (None: every source)."""
        q = sa.select(events).where(events.c.seq > gt).order_by(events.c.seq)
        if lte is not None:
            q = q.where(events.c.seq <= lte)
        if sources is not None:
            q = q.where(events.c.source.in_(sorted(sources)))
        if limit is not None:
            q = q.limit(limit)
        with self._wrap("reading events"), self._read() as conn:
            return [_event_from_row(r) for r in conn.execute(q)]

    def get_event(self, seq: int) -> Event | None:
        with self._wrap("reading events"), self._read() as conn:
            return _select_event(conn, seq)

    def iter_latest_events(self, lte: int, batch: int = 2000,
                           sources: Collection[str] | None = None) -> Iterator[Event]:
        """The newest event of every object with ``seq <= lte`` that is not a deletion:
        the cluster as the log knew it at that point, for loading a projection. An
        object is (source, kind, namespace, name); only ``sources`` when given."""
        where = [events.c.seq <= lte]
        if sources is not None:
            where.append(unindexed(events.c.source).in_(sorted(sources)))
        newest = (
            sa.select(sa.func.max(events.c.seq).label("seq"))
            .where(*where)
            .group_by(events.c.kind, events.c.namespace, events.c.name, events.c.source)
        ).subquery()
        q = (
            sa.select(events).join(newest, newest.c.seq == events.c.seq)
            .where(events.c.type != DELETED).order_by(events.c.seq)
        )
        with self._wrap("reading events"), self._read() as conn:
            result = conn.execute(q, execution_options={"yield_per": batch})
            for row in result:
                yield _event_from_row(row)

    def replay_rows(self, lte: int, sources: Collection[str] | None = None,
                    batch: int = 5000, total: Callable[[int], object] | None = None
                    ) -> Iterator[ReplayRow]:
        """The newest event of every object with events up to ``lte`` (of ``sources``
        when given), in sequence order, as :data:`ReplayRow`: what ``project --rebuild``
        replays (a state is a function of each object's newest event), with the number
        of events of that object it stands for. One query: the object index
        (``ix_events_object``) groups and counts, and only the newest rows are read; a
        deletion's stored object is not (it decides nothing). No
        :class:`~zonegen.model.Event` is made (its arrival time costs a ``datetime``).
        ``total`` is called with the number of events of all the rows before the first
        one is yielded (a progress bar's total; the same query sums them)."""
        where = [events.c.seq <= lte]
        if sources is not None:
            where.append(unindexed(events.c.source).in_(sorted(sources)))
        newest = (
            sa.select(sa.func.max(events.c.seq).label("seq"), sa.func.count().label("n"))
            .where(*where)
            .group_by(events.c.kind, events.c.namespace, events.c.name, events.c.source)
        ).subquery()
        e = events.c
        q = (
            sa.select(e.seq, newest.c.n, e.type, e.kind, e.namespace, e.name,
                      sa.case((e.type == DELETED, sa.null()), else_=e.object),
                      sa.func.sum(newest.c.n).over())
            .select_from(events.join(newest, newest.c.seq == e.seq))
            .order_by(e.seq)
        )
        with self._wrap("reading events"), self._read() as conn:
            first = True
            for row in conn.execute(q, execution_options={"yield_per": batch}):
                if first and total is not None:
                    total(int(row[7]))
                first = False
                yield (int(row[0]), int(row[1]), row[2], row[3], row[4], row[5], row[6])

    def stored_row_keys(self, projection: str) -> set[str] | None:
        """Every visible read-model row of ``projection`` (what ``current_rows`` reads)
        as its :func:`~zonegen.model.row_key` text, for ``project --rebuild`` to compare
        a replay's :func:`~zonegen.model.record_keys` with; None where they cannot be
        read so: not SQLite, a row holding a tab or a line break, or one that is not
        plain (rdata JSON escapes something: a backslash, more than two quotes), which
        ``record_keys`` does not spell as stored. The caller then compares the rows
        themselves.

        SQLite joins the texts itself (one aggregate, no Python object per row), and
        the count it reports proves the split: a row with a line break in it would make
        more parts than rows, one with a tab more tabs; every text ``record_keys``
        spells has two quotes at least, so when the two sets are equal, two per row in
        all means two in each."""
        with self._wrap("reading current records"), self._read() as conn:
            if conn.dialect.name != "sqlite":
                return None
            n, text = conn.exec_driver_sql(_ROW_KEYS_SQL, (projection,)).one()
        if not n:
            return set()
        parts = text.split("\n")
        if (len(parts) != n or text.count("\t") != n or text.count('"') != 2 * n
                or "\\" in text):
            return None
        return set(parts)

    def max_event_seq(self) -> int:
        with self._wrap("reading events"), self._read() as conn:
            return int(conn.execute(sa.select(sa.func.max(events.c.seq))).scalar() or 0)

    def heads_for(self, keys: Sequence[tuple[str, str, str]], source: str = DEFAULT_SOURCE,
                  ) -> dict[tuple[str, str, str], ObjectHead]:
        """The heads of just ``keys`` (kind, ns, name) of ``source``, deleted ones
        included: what one list page is compared with, so a list never holds every
        head of a kind."""
        with self._wrap("reading objects"), self._read() as conn:
            return _heads_for(conn, keys, source)

    def live_heads(self, kind: str, namespace: str | None, source: str,
                   after: tuple[str, str] | None = None, limit: int = 2000,
                   ) -> list[tuple[str, str, str, str, int]]:
        """One page of the live (not deleted) objects of ``kind`` of ``source`` (in
        ``namespace``, or all), as ``(namespace, name, uid, resourceVersion, last_seq)``
        tuples in (namespace, name) order, after ``after`` (the last of the previous
        page): a relist walks them page by page to find what vanished, holding no more
        than a page."""
        h = object_heads.c
        q = sa.select(h.namespace, h.name, h.uid, h.resource_version, h.last_seq).where(
            h.source == source, h.kind == kind, h.deleted == sa.false())
        if namespace is not None:
            q = q.where(h.namespace == namespace)
        if after is not None:
            q = q.where(sa.or_(h.namespace > after[0],
                               sa.and_(h.namespace == after[0], h.name > after[1])))
        q = q.order_by(h.namespace, h.name).limit(limit)
        with self._wrap("reading objects"), self._read() as conn:
            return [(str(r[0]), str(r[1]), str(r[2]), str(r[3]), int(r[4]))
                    for r in conn.execute(q)]

    def heads(self, kinds: Iterable[str] | None = None,
              namespaces: Iterable[str] | None = None,
              source: str = DEFAULT_SOURCE) -> dict[tuple[str, str, str], ObjectHead]:
        """The newest event of each object of ``source`` (deleted ones included), by
        (kind, ns, name)."""
        with self._wrap("reading objects"), self._read() as conn:
            return _select_heads(conn, source, kinds, namespaces)

    # ----------------------------------------------------------------- sources

    def register_source(self, name: str, cluster_id: str | None = None,
                        now: datetime | None = None) -> Source:
        """The ``sources`` row of ``name``, created when missing (cluster id
        ``cluster_id`` or the name); an explicit ``cluster_id`` replaces a stored one.

        :raises InvalidOption: another source already has that cluster id.
        :raises StoreError: the database cannot be written.
        """
        created = int((now.timestamp() if now else time.time()) * 1_000_000)
        wanted = cluster_id or name
        with self._wrap("registering the source"):
            for attempt in (1, 2):
                try:
                    with self._write() as conn:
                        row = conn.execute(sa.select(sources).where(sources.c.name == name)
                                           ).first()
                        if row is None:
                            conn.execute(sources.insert().values(
                                name=name, cluster_id=wanted, created_us=created))
                        elif cluster_id is not None and row.cluster_id != cluster_id:
                            conn.execute(sources.update().where(sources.c.name == name)
                                         .values(cluster_id=cluster_id))
                        row = conn.execute(sa.select(sources).where(sources.c.name == name)
                                           ).one()
                        return _source_from_row(row)
                except IntegrityError:
                    # Either another source holds the cluster id, or another process
                    # registered this source just now (then the second try finds it).
                    with self._read() as conn:
                        holder = conn.execute(sa.select(sources.c.name).where(
                            sources.c.cluster_id == wanted)).scalar()
                    if (holder is not None and holder != name) or attempt == 2:
                        raise InvalidOption(f"source {name}: cluster id {wanted!r} is "
                                            f"already the cluster id of source "
                                            f"{holder or '?'}") from None
        raise AssertionError("unreachable")

    def sources(self) -> list[Source]:
        """Every registered source, by name."""
        with self._wrap("reading sources"), self._read() as conn:
            return [_source_from_row(r)
                    for r in conn.execute(sa.select(sources).order_by(sources.c.name))]

    def resume_sources(self, kind: str | None = None) -> set[str]:
        """The sources with a resume point (of ``kind``), in any namespace: whose
        watch stored that kind's initial list. The resume-point table is small."""
        q = sa.select(resume_points.c.source).distinct()
        if kind is not None:
            q = q.where(resume_points.c.kind == kind)
        with self._wrap("reading resume points"), self._read() as conn:
            return {split_resume_key(str(key))[0] for key in conn.execute(q).scalars()}

    def source_states(self) -> list[SourceState]:
        """Per source (registered, or only named by events): events stored, the newest
        arrival, and its watch resume points."""
        with self._wrap("reading sources"), self._read() as conn:
            known = {r.name: _source_from_row(r) for r in conn.execute(sa.select(sources))}
            counts = {r.source: (int(r.n), r.last) for r in conn.execute(
                sa.select(events.c.source, sa.func.count().label("n"),
                          sa.func.max(events.c.received_us).label("last"))
                .group_by(events.c.source))}
            points: dict[str, list[tuple[str | None, str, str]]] = {}
            for r in conn.execute(sa.select(resume_points).order_by(
                    resume_points.c.source, resume_points.c.kind)):
                name, namespace = split_resume_key(str(r.source))
                points.setdefault(name, []).append((namespace, str(r.kind),
                                                    str(r.resource_version)))
        out: list[SourceState] = []
        for name in sorted(set(known) | set(counts) | set(points)):
            source = known.get(name) or Source(name, name, from_us(0))
            n, last = counts.get(name, (0, None))
            out.append(SourceState(source, n, from_us(int(last)) if last is not None
                                   else None, tuple(points.get(name, ()))))
        return out


class EventAppender:
    """Appends inside :meth:`EventLog.appending`'s transaction."""

    def __init__(self, store: EventLog, conn: Connection) -> None:
        self._store = store
        self._conn = conn

    def append(self, new_events: Sequence[Event]) -> AppendResult:
        return self._store._append(self._conn, new_events)

    def heads(self, source: str = DEFAULT_SOURCE) -> dict[tuple[str, str, str], ObjectHead]:
        """Every object head of ``source``, read inside this transaction (so no other
        writer's events can slip between the read and our appends)."""
        return _select_heads(self._conn, source)

    def known_versions(self, pairs: Sequence[tuple[str, str]],
                       source: str = DEFAULT_SOURCE) -> set[tuple[str, str]]:
        """Which ``(uid, resourceVersion)`` pairs the log already holds as an object
        version (ADDED or MODIFIED) of ``source``: re-reading an older version is not
        news."""
        keys = sorted({(source, uid, rv) for uid, rv in pairs})
        return {(str(r[0]), str(r[1])) for r in _select_keys(
            self._conn, events, ("uid", "resource_version", "type"),
            ("source", "uid", "resource_version"), keys) if r[2] != DELETED}

    def get_event(self, seq: int) -> Event | None:
        return _select_event(self._conn, seq)

    def forget_source(self, name: str) -> int:
        """Drop ``name``'s resume points (every namespace) and its ``sources`` row, in
        this transaction (``zonegen source remove``); the number of resume points."""
        keys = resume_points.c.source
        dropped = self._conn.execute(resume_points.delete().where(
            sa.or_(keys == name, keys.like(f"{name}@%")))).rowcount
        self._conn.execute(sources.delete().where(sources.c.name == name))
        return int(dropped or 0)

    def heads_for(self, keys: Sequence[tuple[str, str, str]], source: str = DEFAULT_SOURCE,
                  ) -> dict[tuple[str, str, str], ObjectHead]:
        return _heads_for(self._conn, keys, source)


SNAPSHOT_COLUMNS = ("version_id", "owner", "rtype", "ttl", "rdata", "cause_seq")
RECORD_CHANGE_COLUMNS = ("version_id", "added", "owner", "rtype", "ttl", "rdata", "cause_seq")


def _select_event(conn: Connection, seq: int) -> Event | None:
    row = conn.execute(sa.select(events).where(events.c.seq == seq)).first()
    return _event_from_row(row) if row is not None else None


def _select_heads(conn: Connection, source: str, kinds: Iterable[str] | None = None,
                  namespaces: Iterable[str] | None = None
                  ) -> dict[tuple[str, str, str], ObjectHead]:
    q = sa.select(object_heads).where(object_heads.c.source == source)
    if kinds is not None:
        q = q.where(object_heads.c.kind.in_(list(kinds)))
    if namespaces is not None:
        q = q.where(object_heads.c.namespace.in_(list(namespaces)))
    return {(r.kind, r.namespace, r.name): _head_from_row(r) for r in conn.execute(q)}



def _heads_for(conn: Connection, keys: Sequence[tuple[str, str, str]], source: str,
               ) -> dict[tuple[str, str, str], ObjectHead]:
    out: dict[tuple[str, str, str], ObjectHead] = {}
    names: dict[tuple[str, str], set[str]] = {}
    for kind, namespace, name in keys:
        names.setdefault((kind, namespace), set()).add(name)
    # Per (kind, namespace), the names in one IN list: an index range each. Plain SQL
    # text through the driver: an ingest asks this once per namespace per batch of
    # input, and building and compiling a Core statement each time cost a burst of
    # 10,000 slices over 50 namespaces half a second.
    head = ("SELECT kind, namespace, name, uid, resource_version, last_seq, deleted "
            "FROM object_heads WHERE source = ? AND kind = ? AND namespace = ? AND name IN ")
    for (kind, namespace), group in sorted(names.items()):
        for chunk in _batched(sorted(group), 500):
            sql = _marks(conn, head + "(" + ", ".join("?" * len(chunk)) + ")")
            for k, ns, name, uid, rv, last_seq, deleted in conn.exec_driver_sql(
                    sql, (source, kind, namespace, *chunk)):
                out[(k, ns, name)] = ObjectHead(k, ns, name, uid, rv, int(last_seq),
                                                bool(deleted))
    return out


KEYS_PER_QUERY = 200
"""Keys per ``OR`` list of :func:`_select_keys`."""


def _select_keys(conn: Connection, table: sa.Table, columns: Sequence[str],
                 key_columns: Sequence[str], keys: Iterable[Sequence[Any]]
                 ) -> list[Sequence[Any]]:
    """``columns`` of the rows of ``table`` whose ``key_columns`` equal one of ``keys``.

    Written as ``(a = ? AND b = ?) OR ...``, which SQLite answers with one index
    look-up per key and PostgreSQL with a bitmap OR: SQLite (3.40) answers a list of
    row values, ``(a, b) IN (VALUES ...)``, by scanning every row that matches the
    leading equality, so the cost grew with the table, not with the keys. Only our own
    table and column names go into the text, quoted; values are bound."""
    quote = conn.dialect.identifier_preparer.quote
    one = "(" + " AND ".join(f"{quote(c)} = ?" for c in key_columns) + ")"
    head = (f"SELECT {', '.join(quote(c) for c in columns)} "  # noqa: S608
            f"FROM {quote(table.name)} WHERE ")
    out: list[Sequence[Any]] = []
    for batch in _batched(keys, KEYS_PER_QUERY):
        sql = _marks(conn, head + " OR ".join([one] * len(batch)))
        out.extend(conn.exec_driver_sql(sql, tuple(v for key in batch for v in key)).all())
    return out


def _execute_many(conn: Connection, sql: str, rows: Sequence[Sequence[Any]]) -> None:
    """``sql`` (our own fixed text, with ``?`` marks) through the driver's executemany."""
    if rows:
        conn.exec_driver_sql(_marks(conn, sql), [tuple(r) for r in rows])


def _marks(conn: Connection, sql: str) -> str:
    """``sql`` written with ``?`` marks in the driver's paramstyle."""
    style = conn.dialect.paramstyle
    if style in ("format", "pyformat"):
        return sql.replace("?", "%s")
    if style != "qmark":
        raise ValueError(f"unsupported paramstyle {style}")
    return sql


def _lock_event_log(conn: Connection) -> None:
    """Make event sequence order equal commit order: call first in every transaction
    that appends events.

    A PostgreSQL sequence hands out numbers at INSERT, not at COMMIT, so a slow
    transaction can commit seq n after a fast one committed n+1, and a reader tailing
    ``seq > mark`` (the projector, serve) skips n for good. Holding ``EXCLUSIVE`` on
    ``events`` for the append transaction queues writers (readers are not blocked), as
    event stores on PostgreSQL do; it also makes the heads an appender reads current
    for its whole transaction. SQLite needs nothing: ``BEGIN IMMEDIATE`` (see
    :func:`zonegen.store.database._tune_sqlite`) already serialises writers."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"LOCK TABLE {events.name} IN EXCLUSIVE MODE")


def _next_seqs(conn: Connection, n: int) -> list[int]:
    """The sequence numbers of ``n`` new events: ``max(seq) + 1, + 2, …``, given
    explicitly, which is what SQLite's INTEGER PRIMARY KEY would choose, and on
    PostgreSQL instead of numbers from the column's sequence.

    A sequence is not transactional: a rolled-back ingest would use numbers up, and
    every later ``log``/``history``/``why`` would print other seq= values than SQLite
    for the same input. Safe only while no other appender can read the same maximum:
    under :func:`_lock_event_log` on PostgreSQL, which every append transaction takes
    first, and SQLite's write lock (``BEGIN IMMEDIATE``)."""
    top = int(conn.execute(sa.select(sa.func.max(events.c.seq))).scalar() or 0)
    return list(range(top + 1, top + 1 + n))


_ROW_KEYS_SQL = (
    # zonegen.model.row_key, spelled in SQL: "<rtype> <ttl or None> <rdata>\t<owner>".
    "SELECT count(*), group_concat(rtype || ' ' || ifnull(ttl, 'None') || ' ' || rdata "
    "|| char(9) || owner, char(10)) FROM current_records NOT INDEXED "
    "WHERE projection = ? AND visible = 1")


EVENT_COLUMNS = ("seq", "received_us", "source", "type", "kind", "namespace", "name", "uid",
                 "resource_version", "object", "origin")


def _event_values(e: Event) -> tuple[Any, ...]:
    """An event's columns after ``seq``, in the order of :data:`EVENT_COLUMNS`."""
    return (to_us(e.received_at), e.source, e.type, e.kind, e.namespace, e.name, e.uid,
            e.resource_version, e.object_json, e.origin)


def _event_from_row(r: Any) -> Event:
    return Event(
        seq=int(r.seq), received_at=from_us(r.received_us), source=r.source, type=r.type,
        kind=r.kind, namespace=r.namespace, name=r.name, uid=r.uid,
        resource_version=r.resource_version, object_json=r.object, origin=r.origin,
    )


def _source_from_row(r: Any) -> Source:
    return Source(str(r.name), str(r.cluster_id), from_us(int(r.created_us)))



_HEAD_COLUMNS = ("source", "kind", "namespace", "name", "uid", "resource_version", "last_seq",
                 "deleted")
"""The ``object_heads`` columns ``EventLog._append`` writes, in its row order."""


def _head_from_row(r: Any) -> ObjectHead:
    return ObjectHead(r.kind, r.namespace, r.name, r.uid, r.resource_version, int(r.last_seq),
                      bool(r.deleted))


