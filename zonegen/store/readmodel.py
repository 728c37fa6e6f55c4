"""The read model role: the projection's current state, persisted (docs/DESIGN.md "Read
model").

Three tables (migration 0004), each keyed by a projection name (today only
:data:`~zonegen.store.journal.PROJECTION`):

- ``current_records``: every record of every Service as the projector made it, with the
  Service it belongs to, a ``sort_key`` (bytes) that orders rows in DNSSEC canonical
  order from an index, and ``visible``: false for an endpoint PTR hidden by another
  Service's cluster-IP PTR (RECORDS.md "Reverse zones"). The zone is the visible rows.
- ``projected_objects``: the objects the projection holds at its checkpoint, each with
  the event its state comes from and the Service it feeds.
- ``read_models``: per projection, the newest zone version and the visible count.

They are written only by :meth:`ZoneJournal.commit_version
<zonegen.store.journal.ZoneJournal.commit_version>` (a :class:`ReadModelChange`), in the
transaction that stores the zone version and moves the checkpoint, so the model can never
disagree with the versions and the journal. The runner reads only the rows of the
Services a batch touches (the ``*_of`` methods, one query per table per chunk).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import chain
from operator import itemgetter
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from zonegen.errors import StoreError
from zonegen.model import (
    PTR,
    Event,
    Record,
    ZoneConfig,
    ZoneVersion,
    decode_rdata,
    encode_rdata,
    record_of,
)
from zonegen.names import in_zone
from zonegen.project import NO_SERVICE as NO_SERVICE
from zonegen.project import ObjectRow, ServiceKey
from zonegen.store.database import Database, _batched, _insert_many
from zonegen.store.events import _event_from_row
from zonegen.store.journal import PROJECTION, _version_from_row
from zonegen.store.schema import (
    current_records,
    events,
    projected_objects,
    read_models,
    unindexed,
    zone_versions,
)

StoredRecord = tuple[str, int, str, "int | None"]
"""A visible record as stored: ``(owner, rtype, rdata, ttl)``, rdata compact JSON."""

StoredRow = tuple[int, bool]
"""A stored record's row id and visibility (rows are deleted and updated by id)."""

IN_CHUNK = 2000
"""Keys per ``IN`` list: one query per table per chunk of this many."""

_RECORD_COLUMNS = ("projection", "service_namespace", "service_name", "owner", "rtype",
                   "ttl", "rdata", "sort_key", "visible")
_OBJECT_COLUMNS = ("projection", "kind", "namespace", "name", "seq", "service_namespace",
                   "service_name")


def sort_key(owner: str) -> bytes:
    """The owner's labels reversed, joined by ``\\x01``, as bytes.

    Compared bytewise (``bytea``/``BLOB``, never a collated text column), keys order
    owners as DNSSEC does (RFC 4034 §6.1: label by label from the right, a label that is
    a prefix of another first) among names that share their zone's suffix: forward
    owners are stored relative to the cluster domain and PTR owners absolute, so the
    names of one zone always do. ``\\x01`` sorts below every octet a valid name label
    holds, so a shorter label ends before a longer one that extends it, as in
    ``zonefile.render``'s key. Owners are lowercase (zonegen.names), as canonical
    order wants."""
    name = owner[:-1] if owner.endswith(".") else owner
    return "\x01".join(reversed(name.split("."))).encode()


@dataclass(frozen=True, slots=True)
class ReadModelChange:
    """What one commit does to the read model of ``projection``.

    ``removed`` are ids of stored rows and ``added`` new rows of Services' raw record
    sets (with their visibility), ``shown``/``hidden`` ids of rows that stay but change
    visibility (shadowing toggled), ``objects`` upserted and ``dropped`` object keys of
    ``projected_objects``, and ``records`` the visible count afterwards. ``replaced``
    is a removal and an addition of the same Service in one: the stored row (id) takes
    the new record and visibility, updated in place, which costs the database about
    half of a delete and an insert (the Service index does not move). ``rewritten``:
    the same where the record keeps the row's owner and rtype, so only rdata, ttl and
    visibility are written and no index entry moves at all."""

    projection: str = PROJECTION
    removed: Sequence[int] = ()
    added: Sequence[tuple[ServiceKey, Record, bool]] = ()
    shown: Sequence[int] = ()
    hidden: Sequence[int] = ()
    objects: Sequence[ObjectRow] = ()
    dropped: Sequence[tuple[str, str, str]] = ()
    records: int = 0
    replaced: Sequence[tuple[int, Record, bool]] = ()
    rewritten: Sequence[tuple[int, Record, bool]] = ()

    def rows(self) -> int:
        return (len(self.removed) + len(self.added) + len(self.shown) + len(self.hidden)
                + len(self.objects) + len(self.dropped) + len(self.replaced)
                + len(self.rewritten))


@dataclass(slots=True)
class ReadModelState:
    """A projection's stored read-model row (None before its first version)."""

    version_id: int | None
    records: int


class ReadModel(Database):
    """Reads the persisted read model; writes it inside ``commit_version``."""

    # ---------------------------------------------------------------- consumers

    @contextlib.contextmanager
    def current_records(self, projection: str = PROJECTION
                        ) -> Iterator[tuple[ZoneVersion | None, Iterator[Record]]]:
        """The newest zone version and its VISIBLE records (what
        ``Projection.records()`` gives), read in one transaction (one snapshot),
        streamed in order of (sort_key, rtype): DNSSEC canonical owner order (see
        :func:`sort_key`); order within one (owner, rtype) is unspecified.

        The iterator is valid only inside the ``with`` block, which holds a connection
        (on an in-memory database, the only one: call no other store method inside
        it). Before the first version the answer is ``(None, <empty>)``."""
        with self._wrap("reading current records"), self._snapshot() as conn:
            version = _model_version(conn, projection)
            if version is None:
                yield None, iter(())
                return
            q = (sa.select(current_records.c.owner, current_records.c.rtype,
                           current_records.c.rdata, current_records.c.ttl)
                 .where(current_records.c.projection == projection,
                        current_records.c.visible.is_(True))
                 .order_by(current_records.c.sort_key, current_records.c.rtype))
            rows = conn.execute(q, execution_options={"yield_per": 20_000})
            yield version, _records(rows)

    @contextlib.contextmanager
    def current_rows(self, projection: str = PROJECTION,
                     zones: Collection[ZoneConfig] | None = None, *,
                     since: bytes | None = None, until: bytes | None = None
                     ) -> Iterator[tuple[ZoneVersion | None, Iterator[StoredRecord]]]:
        """:meth:`current_records` as the stored columns, ``(owner, rtype, rdata as
        stored (compact JSON, :func:`~zonegen.model.encode_rdata`), ttl)``, in the same
        order: what ``export``, ``serve`` and ``status`` read, so that no ``Record`` and
        no decoded rdata is made for a record whose stored text is all its rendering
        needs (issue #11: building 1M ``Record`` values cost more than rendering them).

        ``zones``: only rows whose owner may lie in one of them (:func:`zone_rows`, a
        superset the selection then narrows), so the reverse zones' PTR rows are never
        read for a forward zone (a quarter of a 1M-record cluster's rows).

        ``since``/``until``: only rows whose ``sort_key`` is at least ``since`` and
        below ``until`` (a range of the order index): one part of the stream, for a
        load split across processes (:mod:`zonegen.serve.halves`).

        On SQLite the rows come straight from the driver's cursor (SQLAlchemy's row
        objects cost about a microsecond a row more), in chunks of ``_CHUNK``; elsewhere
        through SQLAlchemy with ``yield_per`` (a server-side cursor). Same validity rule
        as :meth:`current_records`: inside the ``with`` block only."""
        with self._wrap("reading current records"), self._snapshot() as conn:
            version = _model_version(conn, projection)
            if version is None:
                yield None, iter(())
                return
            c = current_records.c
            q = (sa.select(c.owner, c.rtype, c.rdata, c.ttl)
                 .where(c.projection == projection, c.visible.is_(True)))
            if zones is not None:
                q = q.where(zone_rows(zones))
            if since is not None:
                q = q.where(c.sort_key >= since)
            if until is not None:
                q = q.where(c.sort_key < until)
            q = q.order_by(c.sort_key, c.rtype)
            if conn.dialect.name == "sqlite":
                compiled = q.compile(dialect=conn.dialect)
                params = tuple(compiled.params[name] for name in compiled.positiontup or ())
                cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
                try:
                    cursor.execute(str(compiled), params)
                    yield version, chain.from_iterable(_chunks(cursor, self.where))
                finally:
                    cursor.close()
                return
            yield version, iter(conn.execute(q, execution_options={"yield_per": _CHUNK}))

    def sample_keys(self, projection: str = PROJECTION, samples: int = 257
                    ) -> list[tuple[bytes, str]]:
        """``(sort_key, owner)`` of up to ``samples`` of ``projection``'s rows picked
        evenly by row id (each a primary-key lookup), sorted: where to split a load in
        parts of about equal size (:mod:`zonegen.serve.halves`) for milliseconds, where
        ranking the order index would scan it. Any key splits correctly."""
        c = current_records.c
        keys: list[tuple[bytes, str]] = []
        with self._wrap("reading current records"), self._read() as conn:
            # two queries: SQLite answers min() or max() alone from the row ids' b-tree,
            # both in one query by scanning an index
            low = conn.execute(sa.select(sa.func.min(c.id))).scalar()
            high = conn.execute(sa.select(sa.func.max(c.id))).scalar()
            if low is None or high is None:
                return keys
            # by row id alone: with the projection in the WHERE clause too, SQLite walks
            # the order index instead (seconds); another projection's row is skipped
            q = (sa.select(c.sort_key, c.owner, c.projection)
                 .where(c.id >= sa.bindparam("at")).order_by(c.id).limit(1))
            for i in range(samples):
                at = low + (high - low) * i // max(samples - 1, 1)
                row = conn.execute(q, {"at": at}).first()
                if row is not None and row[2] == projection:
                    keys.append((bytes(row[0]), str(row[1])))
        keys.sort()
        return keys

    def record_count(self, projection: str = PROJECTION) -> int:
        """How many records the current version holds (visible, apex included); 0
        before the first version. One row read, no scan."""
        with self._wrap("reading current records"), self._read() as conn:
            return int(conn.execute(sa.select(read_models.c.records).where(
                read_models.c.projection == projection)).scalar() or 0)

    def read_model_state(self, projection: str = PROJECTION) -> ReadModelState | None:
        with self._wrap("reading current records"), self._read() as conn:
            row = conn.execute(sa.select(read_models).where(
                read_models.c.projection == projection)).first()
        if row is None:
            return None
        return ReadModelState(None if row.version_id is None else int(row.version_id),
                              int(row.records))

    # ---------------------------------------------------------------- the runner

    def objects_of(self, services: Iterable[ServiceKey], projection: str = PROJECTION
                   ) -> list[ObjectRow]:
        """The ``projected_objects`` rows feeding ``services``."""
        c = projected_objects.c
        out: list[ObjectRow] = []
        with self._wrap("reading projected objects"), self._read() as conn:
            for ns, names in _by_namespace(services):
                out.extend(_object_row(r) for r in conn.execute(
                    sa.select(projected_objects).where(
                        c.projection == projection, c.service_namespace == ns,
                        c.service_name.in_(names))))
        return out

    def slice_services(self, slices: Iterable[tuple[str, str]],
                       projection: str = PROJECTION) -> dict[tuple[str, str], ServiceKey]:
        """(namespace, name) of EndpointSlices -> the Service each fed at the checkpoint
        (slices the projection does not hold are absent)."""
        c = projected_objects.c
        out: dict[tuple[str, str], ServiceKey] = {}
        with self._wrap("reading projected objects"), self._read() as conn:
            for ns, names in _by_namespace(slices):
                for name, service_ns, service_name in conn.execute(
                        sa.select(c.name, c.service_namespace, c.service_name).where(
                            c.projection == projection, c.kind == "EndpointSlice",
                            c.namespace == ns, c.name.in_(names))):
                    out[(ns, name)] = (service_ns, service_name)
        return out

    def events_by_seq(self, seqs: Iterable[int]) -> list[Event]:
        """The events with these sequence numbers, in sequence order."""
        out: list[Event] = []
        with self._wrap("reading events"), self._read() as conn:
            for chunk in _batched(sorted(set(seqs)), IN_CHUNK):
                out.extend(_event_from_row(r) for r in conn.execute(
                    sa.select(events).where(events.c.seq.in_(chunk))))
        out.sort(key=lambda e: e.seq)
        return out

    def newest_events(self, lte: int, batch: int = 50_000,
                      sources: Collection[str] | None = None) -> Iterator[tuple[int, int]]:
        """(seq of its newest event, its number of events) for every object with events
        up to ``lte``: what ``project --rebuild`` scans to find the event that decides
        each object's state. Read from ``ix_events_object`` alone (a covering index),
        never the stored objects."""
        q = (sa.select(sa.func.max(events.c.seq), sa.func.count())
             .where(events.c.seq <= lte)
             .group_by(events.c.kind, events.c.namespace, events.c.name, events.c.source))
        if sources is not None:
            q = q.where(unindexed(events.c.source).in_(sorted(sources)))
        with self._wrap("reading events"), self._read() as conn:
            for seq, n in conn.execute(q, execution_options={"yield_per": batch}):
                yield int(seq), int(n)

    def records_of(self, services: Iterable[ServiceKey], projection: str = PROJECTION
                   ) -> dict[ServiceKey, dict[Record, StoredRow]]:
        """Every stored record (shadowed ones too) of ``services``, with its row.

        Asked per namespace with the names in one ``IN`` list (an index range per name):
        a list of (namespace, name) row values cost SQLite several times more. The rows
        come from the driver's cursor (:func:`_driver_rows`): a burst loads hundreds of
        thousands, and SQLAlchemy's row objects cost more than the query."""
        out: dict[ServiceKey, dict[Record, StoredRow]] = {}
        new, decode = record_of, decode_rdata
        with self._wrap("reading current records"), self._read() as conn:
            for ns, names in _by_namespace(services):
                sql = ("SELECT service_name, id, owner, rtype, rdata, ttl, visible "  # noqa: S608
                       "FROM current_records WHERE projection = ? AND service_namespace = ? "
                       f"AND service_name IN ({_marks(len(names))})")
                key: ServiceKey | None = None
                rows: dict[Record, StoredRow] = {}
                for name, row_id, owner, rtype, text, ttl, visible in _driver_rows(
                        conn, sql, (projection, ns, *names)):
                    if key is None or key[1] != name:
                        key = (ns, name)
                        got = out.get(key)
                        rows = out[key] = {} if got is None else got
                    rows[new((owner, rtype, decode(text), ttl))] = (row_id, visible == 1)
        return out

    def ptrs_at(self, owners: Iterable[str], projection: str = PROJECTION,
                known: Mapping[int, tuple[ServiceKey, Record, StoredRow]] | None = None
                ) -> list[tuple[ServiceKey, Record, StoredRow]]:
        """Every stored PTR (shadowed ones too) at these reverse owners, with its Service
        and row: what the cross-Service PTR rule needs there. ``known``: rows already
        read, by row id (the caller's loaded Services', as this returns them), taken
        instead of read again. Read through the driver's cursor, as :meth:`records_of`:
        first the ids alone, from ``ix_current_records_order`` (it holds the row id, so
        SQLite never visits the table), then the rows of the ids not ``known``: a burst
        asks about every address it moves, whose PTRs are nearly all its own."""
        known = known or {}
        out: list[tuple[ServiceKey, Record, StoredRow]] = []
        new, decode, get = record_of, decode_rdata, known.get
        unknown: list[int] = []
        with self._wrap("reading current records"), self._read() as conn:
            for chunk in _batched(sorted({sort_key(o) for o in owners}), IN_CHUNK):
                sql = ("SELECT id FROM current_records WHERE projection = ? "  # noqa: S608
                       f"AND sort_key IN ({_marks(len(chunk))}) AND rtype = ?")
                for (row_id,) in _driver_rows(conn, sql, (projection, *chunk, PTR)):
                    row = get(row_id)
                    if row is None:
                        unknown.append(row_id)
                    else:
                        out.append(row)
            for ids in _batched(sorted(unknown), IN_CHUNK):
                sql = ("SELECT service_namespace, service_name, id, owner, rtype, rdata, "  # noqa: S608
                       f"ttl, visible FROM current_records WHERE id IN ({_marks(len(ids))})")
                for ns, name, row_id, owner, rtype, rdata, ttl, visible in _driver_rows(
                        conn, sql, ids):
                    out.append(((ns, name), new((owner, rtype, decode(rdata), ttl)),
                                (row_id, visible == 1)))
        return out

    def iter_model(self, projection: str = PROJECTION
                   ) -> Iterator[tuple[ServiceKey, Record, bool]]:
        """Every stored row, (Service, record, visible): for checks and tests."""
        with self._wrap("reading current records"), self._read() as conn:
            for r in conn.execute(_row_query().where(
                    current_records.c.projection == projection),
                    execution_options={"yield_per": 20_000}):
                yield ((r.service_namespace, r.service_name),
                       Record.from_row(r.owner, r.rtype, r.rdata, r.ttl), bool(r.visible))

    def projected(self, projection: str = PROJECTION) -> list[ObjectRow]:
        """Every ``projected_objects`` row: for checks and tests."""
        with self._wrap("reading projected objects"), self._read() as conn:
            return sorted(_object_row(r) for r in conn.execute(
                sa.select(projected_objects).where(
                    projected_objects.c.projection == projection)))

    @contextlib.contextmanager
    def _snapshot(self) -> Iterator[Connection]:
        """A read transaction whose statements all see one snapshot: PostgreSQL's
        default READ COMMITTED gives each statement its own, so ask for REPEATABLE
        READ; a SQLite read transaction (WAL) already is one snapshot."""
        with self._read() as conn:
            if conn.dialect.name == "postgresql":
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                yield conn


def write_change(conn: Connection, change: ReadModelChange, version_id: int | None) -> None:
    """Apply ``change`` inside the caller's transaction (``commit_version``'s), and set
    the projection's version (when ``version_id`` is given) and visible count."""
    name = change.projection
    # Rows by id, in id order: each statement then walks the table's B-tree forward
    # (a burst rewrites hundreds of thousands; a Service's rows were stored together,
    # but its changed records come in set order).
    _execute_many(conn, "DELETE FROM current_records WHERE id = ?",
                  ((row_id,) for row_id in sorted(change.removed)))
    _execute_many(conn, "UPDATE current_records SET owner = ?, rtype = ?, ttl = ?, "
                        "rdata = ?, sort_key = ?, visible = ? WHERE id = ?",
                  ((r.owner, r.rtype, r.ttl, encode_rdata(r.rdata), sort_key(r.owner),
                    visible, row_id)
                   for row_id, r, visible in sorted(change.replaced, key=_first)))
    # No indexed column in the SET list: SQLite then leaves every index alone.
    _execute_many(conn, "UPDATE current_records SET ttl = ?, rdata = ?, visible = ? "
                        "WHERE id = ?",
                  ((r.ttl, encode_rdata(r.rdata), visible, row_id)
                   for row_id, r, visible in sorted(change.rewritten, key=_first)))
    for visible, ids in ((True, change.shown), (False, change.hidden)):
        _execute_many(conn, "UPDATE current_records SET visible = ? WHERE id = ?",
                      ((visible, row_id) for row_id in ids))
    _insert_many(conn, current_records, _RECORD_COLUMNS, (
        record_row(name, key, r, visible) for key, r, visible in change.added))
    _execute_many(conn, "DELETE FROM projected_objects WHERE projection = ? AND kind = ? "
                        "AND namespace = ? AND name = ?",
                  ((name, *key) for key in change.dropped))
    # One upsert per object (SQLite >= 3.24 and PostgreSQL spell it alike), not a
    # delete and an insert: a burst updates every slice it touches.
    _execute_many(conn, "INSERT INTO projected_objects (projection, kind, namespace, name, "
                        "seq, service_namespace, service_name) VALUES (?, ?, ?, ?, ?, ?, ?) "
                        "ON CONFLICT (projection, kind, namespace, name) DO UPDATE SET "
                        "seq = excluded.seq, service_namespace = excluded.service_namespace, "
                        "service_name = excluded.service_name",
                  ((name, *row) for row in change.objects))
    set_state(conn, name, version_id, change.records)


_first = itemgetter(0)


def set_state(conn: Connection, projection: str, version_id: int | None, records: int
              ) -> None:
    """Upsert the ``read_models`` row (``version_id`` None keeps the stored one)."""
    values: dict[str, Any] = {"records": records}
    if version_id is not None:
        values["version_id"] = version_id
    if not conn.execute(read_models.update().where(read_models.c.projection == projection)
                        .values(**values)).rowcount:
        conn.execute(read_models.insert().values(projection=projection,
                                                 version_id=version_id, records=records))


def record_row(projection: str, service: ServiceKey, r: Record, visible: bool
               ) -> tuple[Any, ...]:
    """A ``current_records`` row in the column order of ``_RECORD_COLUMNS``."""
    return (projection, service[0], service[1], r.owner, r.rtype, r.ttl,
            encode_rdata(r.rdata), sort_key(r.owner), visible)


def insert_records(conn: Connection, rows: Iterable[tuple[Any, ...]]) -> None:
    """Bulk insert ``record_row`` tuples (the migration's initial build)."""
    _insert_many(conn, current_records, _RECORD_COLUMNS, rows)


def insert_objects(conn: Connection, projection: str, rows: Iterable[ObjectRow]) -> None:
    """Bulk insert ``projected_objects`` rows (the migration's initial build)."""
    _insert_many(conn, projected_objects, _OBJECT_COLUMNS, ((projection, *r) for r in rows))


def _execute_many(conn: Connection, sql: str, rows: Iterable[tuple[Any, ...]],
                  chunk: int = 20_000) -> None:
    """``sql`` (written with ``?`` marks, only our own fixed text) run through the
    driver's ``executemany`` in bounded chunks, as ``_insert_many`` does for inserts."""
    style = conn.dialect.paramstyle
    if style in ("format", "pyformat"):
        sql = sql.replace("?", "%s")
    elif style != "qmark":
        raise ValueError(f"unsupported paramstyle {style}")
    for batch in _batched(rows, chunk):
        conn.exec_driver_sql(sql, batch)


def _marks(n: int) -> str:
    """``n`` bound-parameter marks for an ``IN`` list of :func:`_driver_rows` SQL."""
    return ", ".join("?" * n)


def _driver_rows(conn: Connection, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    """Every row of ``sql`` (our own fixed text, written with ``?`` marks; values are
    bound) from the driver's own cursor on ``conn``: SQLAlchemy's row objects cost
    about a microsecond a row more, which a burst's hundreds of thousands of loaded
    records felt. sqlite3 and psycopg alike (``%s`` marks for the latter)."""
    style = conn.dialect.paramstyle
    if style in ("format", "pyformat"):
        sql = sql.replace("?", "%s")
    elif style != "qmark":
        raise ValueError(f"unsupported paramstyle {style}")
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(sql, tuple(params))
        return list(cursor.fetchall())
    finally:
        cursor.close()


def _by_namespace(keys: Iterable[tuple[str, str]]) -> Iterator[tuple[str, list[str]]]:
    """(namespace, name) ``keys`` as (namespace, up to IN_CHUNK names), each name once,
    sorted: asked as ``namespace = ? AND name IN (...)``, an index range per name. SQLite
    (3.40) answers a list of row values, ``(a, b) IN (VALUES ...)``, by scanning every
    row of the projection instead, so a one-change catch-up cost the cluster's size."""
    names: dict[str, set[str]] = {}
    for ns, name in keys:
        names.setdefault(ns, set()).add(name)
    for ns in sorted(names):
        for chunk in _batched(sorted(names[ns]), IN_CHUNK):
            yield ns, chunk


def _row_query() -> sa.Select[Any]:
    c = current_records.c
    return sa.select(c.id, c.service_namespace, c.service_name, c.owner, c.rtype, c.rdata, c.ttl,
                     c.visible)


_CHUNK = 20_000


def zone_rows(zones: Collection[ZoneConfig]) -> sa.ColumnElement[bool]:
    """``current_records`` rows whose owner may lie in one of ``zones`` as
    :mod:`zonegen.selection` reads owners: a relative owner is below its zone's forward
    zone, an absolute one (ending in a dot) is itself, compared lowercase. A superset
    (validity is the selection's to decide), never a subset: every row the selection
    would publish in one of ``zones`` passes."""
    c = current_records.c
    if any(z.zone == "." for z in zones):
        return sa.true()
    low = sa.func.lower(c.owner)
    parts: list[sa.ColumnElement[bool]] = []
    if any(in_zone(z.forward_zone, z.zone) for z in zones):
        parts.append(sa.not_(c.owner.endswith(".")))
    for zone in sorted({z.zone for z in zones}):
        parts += [low == zone, low.endswith("." + zone, autoescape=True)]
    return sa.or_(*parts)


def _chunks(cursor: Any, where: str) -> Iterator[list[StoredRecord]]:
    """The rows of a DB-API cursor, ``_CHUNK`` at a time; a driver error mid-stream is
    the one-line :class:`StoreError` the store raises everywhere else (the caller's
    ``_wrap`` never sees it: the error is raised where the rows are consumed)."""
    while True:
        try:
            rows = cursor.fetchmany(_CHUNK)
        except Exception as e:  # noqa: BLE001 - the driver's own error class (sqlite3.Error)
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise StoreError(f"{where}: reading current records failed: {first}") from None
        if not rows:
            return
        yield rows


def _records(rows: Iterable[Any]) -> Iterator[Record]:
    loads = json.loads
    for owner, rtype, rdata, ttl in rows:
        yield Record(owner, rtype, tuple(loads(rdata)), ttl)


def _object_row(r: Any) -> ObjectRow:
    return (r.kind, r.namespace, r.name, int(r.seq), r.service_namespace, r.service_name)


def _model_version(conn: Connection, projection: str) -> ZoneVersion | None:
    row = conn.execute(
        sa.select(zone_versions).join(read_models, read_models.c.version_id == zone_versions.c.id)
        .where(read_models.c.projection == projection)).first()
    return _version_from_row(row) if row is not None else None
