"""The zone journal role: every published zone version with its record changes, the
projection's high-water mark that commits with them, and snapshots of whole record sets.

The projection's last event commits with the zone version it produced
(``commit_version``), as eventsourcing's process recorders do, so a crash loses nothing
and doubles nothing; the move is a compare-and-set, so two projectors sharing one log
cannot both publish the same events. Past record sets are folded from what was stored
(:func:`zonegen.model.fold`), never from today's projector.
"""

from __future__ import annotations

import contextlib
import itertools
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from zonegen.errors import StoreError, UnknownSerial
from zonegen.journal_step import JournalStep
from zonegen.model import Record, RecordChange, ZoneVersion, encode_rdata, fold
from zonegen.pgnotify import notify_new_version
from zonegen.projections import DEFAULT_NAME, ProjectionSpec
from zonegen.store.database import Database, _insert_many
from zonegen.store.schema import (
    compactions,
    current_records,
    from_us,
    projections,
    read_models,
    record_changes,
    record_snapshots,
    to_us,
    trackings,
    zone_versions,
)

if TYPE_CHECKING:
    from zonegen.store.readmodel import ReadModelChange

PROJECTION = DEFAULT_NAME
"""Name of the default projection (``source:default``): its tracking row, its versions'
``zone_versions.projection`` and its read-model key. Every other projection is named by
:attr:`zonegen.projections.ProjectionSpec.name` the same way."""

SNAPSHOT_COLUMNS = ("version_id", "owner", "rtype", "ttl", "rdata", "cause_seq")
RECORD_CHANGE_COLUMNS = ("version_id", "added", "owner", "rtype", "ttl", "rdata", "cause_seq")


@contextlib.contextmanager
def _large_cache(conn: Connection) -> Iterator[None]:
    """SQLite's page cache at ``COMMIT_CACHE_KIB`` for one commit, then back to what it
    was. A burst's commit inserts hundreds of thousands of journal rows into the
    ``(owner, version_id)`` index and rewrites as many read-model rows by id, all over
    the file: with the default 2 MB cache, each lands on a page read again from the
    file (about 40% of its time). The cache only holds pages a commit touched, and
    shrinks back afterwards, so a small commit (and ``serve --watch``) keeps its size."""
    if conn.dialect.name != "sqlite":
        yield
        return
    before = conn.exec_driver_sql("PRAGMA cache_size").scalar()
    conn.exec_driver_sql(f"PRAGMA cache_size=-{COMMIT_CACHE_KIB}")
    try:
        yield
    finally:
        conn.exec_driver_sql(f"PRAGMA cache_size={int(before or -2000)}")


COMMIT_CACHE_KIB = 65536
"""SQLite page cache (KiB) while a zone version is committed (:func:`_large_cache`)."""


class CheckpointMoved(StoreError):
    """Another projector sharing this log published the same events first."""


@dataclass(frozen=True, slots=True)
class JournalVersion:
    """One stored zone version with its change (``step``, as IXFR sends it; its
    ``from_serial`` is None when the version before is not stored)."""

    version: ZoneVersion
    step: JournalStep




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




class ZoneJournal(Database):
    """Commits zone versions with the checkpoint; reads versions, the IXFR journal and
    past record sets."""

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
        read_model: ReadModelChange | None = None,
        rows: Iterable[tuple[bool, Record, int]] = (),
    ) -> ZoneVersion | None:
        """Move tracking ``(name, from_seq, to_seq)`` and, when ``serial`` is given,
        record a zone version of projection ``name`` with its changes (``changes``, then
        ``rows``: the same as ``(added, record, cause_seq)`` tuples, which a burst's
        hundreds of thousands make cheaper), all in one transaction; with
        ``read_model``, apply that change to the persisted read model in the same
        transaction (docs/DESIGN.md "Read model"), pointing it at the new version.

        The tracking move is a compare-and-set from ``from_seq``: two projectors sharing
        one log cannot both publish the same events.

        :raises StoreError: another projector moved the checkpoint first, or the write
            failed; nothing is stored then.
        """
        # readmodel imports this module (PROJECTION, versions); import it when used.
        from zonegen.store.readmodel import write_change

        name, from_seq, to_seq = tracking
        with (self._wrap("committing zone version"), self._write() as conn,
              _large_cache(conn)):
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
                if read_model is not None:
                    write_change(conn, read_model, None)
                return None
            created = created_at or datetime.now(UTC)
            version_id = conn.execute(
                zone_versions.insert().values(
                    serial=serial, created_us=to_us(created), last_event_seq=to_seq,
                    projection=name)
                .returning(zone_versions.c.id)
            ).scalar_one()
            encode = encode_rdata
            _insert_many(conn, record_changes, RECORD_CHANGE_COLUMNS, itertools.chain(
                ((version_id, ch.added, ch.record.owner, ch.record.rtype, ch.record.ttl,
                  encode(ch.record.rdata), ch.cause_seq) for ch in changes),
                ((version_id, added, r.owner, r.rtype, r.ttl, encode(r.rdata), cause)
                 for added, r, cause in rows)))
            if read_model is not None:
                write_change(conn, read_model, int(version_id))
            notify_new_version(conn, int(version_id), serial)  # delivered at commit
            return ZoneVersion(int(version_id), serial, created, to_seq)

    def register_projection(self, spec: ProjectionSpec) -> bool:
        """Add ``spec`` to the projections every writer keeps folding; True when it was
        not there. Idempotent, also when two processes register it at once."""
        with self._wrap("registering projection"), self._write() as conn:
            if conn.execute(sa.select(projections.c.name)
                            .where(projections.c.name == spec.name)).first() is not None:
                return False
            try:
                with conn.begin_nested():
                    conn.execute(projections.insert().values(
                        name=spec.name, kind=spec.kind, sources=json.dumps(list(spec.sources)),
                        created_us=to_us(datetime.now(UTC))))
            except IntegrityError:
                return False
            return True

    def projections(self) -> list[ProjectionSpec]:
        """Every registered projection, the default first."""
        with self._wrap("reading projections"), self._read() as conn:
            rows = conn.execute(sa.select(projections).order_by(projections.c.created_us,
                                                                projections.c.name)).all()
        specs = [ProjectionSpec(str(r.kind), tuple(json.loads(r.sources))) for r in rows]
        return sorted(specs, key=lambda spec: spec.name != DEFAULT_NAME)

    def latest_version(self, projection: str = PROJECTION) -> ZoneVersion | None:
        with self._wrap("reading zone versions"), self._read() as conn:
            row = conn.execute(
                sa.select(zone_versions).where(zone_versions.c.projection == projection)
                .order_by(zone_versions.c.id.desc()).limit(1)
            ).first()
            return _version_from_row(row) if row is not None else None

    def versions(self, since_id: int = 0, projection: str = PROJECTION
                 ) -> list[ZoneVersion]:
        with self._wrap("reading zone versions"), self._read() as conn:
            return [_version_from_row(r) for r in conn.execute(
                sa.select(zone_versions).where(zone_versions.c.projection == projection,
                                               zone_versions.c.id > since_id)
                .order_by(zone_versions.c.id))]

    def get_version(self, serial: int, projection: str = PROJECTION) -> ZoneVersion | None:
        """The newest version published with ``serial`` (serials wrap, ids do not)."""
        with self._wrap("reading zone versions"), self._read() as conn:
            row = conn.execute(
                sa.select(zone_versions).where(zone_versions.c.projection == projection,
                                               zone_versions.c.serial == serial)
                .order_by(zone_versions.c.id.desc()).limit(1)
            ).first()
            return _version_from_row(row) if row is not None else None

    def find_version(self, serial: int, projection: str = PROJECTION) -> ZoneVersion:
        """:raises UnknownSerial: no version was published with ``serial``."""
        version = self.get_version(serial, projection)
        if version is None:
            note = self.history_note(', or is older than kept history: ', projection)
            raise UnknownSerial(f"serial {serial} was never published{note}")
        return version

    def find_version_at(self, when: datetime, projection: str = PROJECTION) -> ZoneVersion:
        """The version current at ``when``.

        :raises UnknownSerial: nothing was published at or before ``when``.
        """
        found = self.version_at(when, projection)
        if found is None:
            stamp = when.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
            raise UnknownSerial(f"no zone version was published at or before {stamp}"
                                f"{self.history_note('; ', projection)}")
        return found

    def version_at(self, when: datetime, projection: str = PROJECTION) -> ZoneVersion | None:
        """The version that was current at ``when``: the newest created at or before it."""
        with self._wrap("reading zone versions"), self._read() as conn:
            row = conn.execute(
                sa.select(zone_versions).where(zone_versions.c.projection == projection,
                                               zone_versions.c.created_us <= to_us(when))
                .order_by(zone_versions.c.id.desc()).limit(1)
            ).first()
            return _version_from_row(row) if row is not None else None

    def journal(self, after_version_id: int, upto_version_id: int | None = None,
                projection: str = PROJECTION) -> list[JournalVersion]:
        """Every version of ``projection`` after ``after_version_id`` (up to
        ``upto_version_id``) with its added and removed records, oldest first: the IXFR
        journal (RFC 1995)."""
        with self._wrap("reading the journal"), self._read() as conn:
            prev = conn.execute(
                sa.select(zone_versions.c.serial).where(zone_versions.c.id == after_version_id)
            ).scalar()
            mine = zone_versions.c.projection == projection
            vq = sa.select(zone_versions).where(mine, zone_versions.c.id > after_version_id)
            cq = (sa.select(record_changes)
                  .join(zone_versions, zone_versions.c.id == record_changes.c.version_id)
                  .where(mine, record_changes.c.version_id > after_version_id))
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
            out.append(JournalVersion(v, JournalStep(prev, v.serial, tuple(removed[v.version_id]),
                                                     tuple(added[v.version_id]))))
            prev = v.serial
        return out

    def records_at(self, version_id: int, progress: Callable[[int], None] | None = None
                   ) -> set[Record]:
        """The record set as published by version ``version_id``. The version the read
        model describes is its visible rows (written in that version's transaction);
        any other is the nearest snapshot at or before it (see ``record_snapshots``)
        plus every later change up to it, folded, independent of the projector's code,
        so past zones stay as published. Writers do not snapshot the newest version
        (#11: a snapshot is the whole zone), so this is what keeps the newest one
        cheap. ``progress(n)`` is told of every ``n`` stored rows read."""
        with self._wrap("reading the journal"), self._read() as conn:
            if conn.dialect.name == "postgresql":  # one snapshot for both statements
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():  # the read model cannot move between check and rows
                current = _read_model_rows(conn, version_id)
                if current is None:
                    return set(self._fold_records(conn, version_id, progress))
                out = {Record.from_row(o, t, d, ttl) for o, t, d, ttl in current}
                if progress is not None:
                    progress(len(out))
                return out

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

    def changes_since_snapshot(self, projection: str = PROJECTION) -> int:
        """Record changes of ``projection`` stored after its newest snapshot: what
        ``records_at`` of its newest version must fold. The runner snapshots when this
        grows large."""
        mine = sa.select(zone_versions.c.id).where(zone_versions.c.projection == projection)
        with self._wrap("reading the journal"), self._read() as conn:
            base = conn.execute(sa.select(sa.func.max(record_snapshots.c.version_id))
                                .where(record_snapshots.c.version_id.in_(mine))).scalar() or 0
            return int(conn.execute(
                sa.select(sa.func.count()).select_from(record_changes)
                .where(record_changes.c.version_id > base,
                       record_changes.c.version_id.in_(mine))).scalar() or 0)


    def _fold_records(self, conn: Connection, version_id: int,
                      progress: Callable[[int], None] | None = None) -> dict[Record, int]:
        """Record -> cause_seq as published by ``version_id``: the nearest snapshot at or
        before it, then every later change up to it, in commit order.

        Folds on the stored columns (rdata JSON is written canonically by
        ``Record.to_row``, so equal records have equal text) and builds ``Record``
        values only for the survivors: most of a long journal is records that came and
        went, and decoding their JSON was two thirds of the cost."""
        # Only this version's projection: other zones' versions interleave by id.
        projection = conn.execute(sa.select(zone_versions.c.projection)
                                  .where(zone_versions.c.id == version_id)).scalar()
        mine = sa.select(zone_versions.c.id).where(zone_versions.c.projection == projection)
        base = conn.execute(
            sa.select(sa.func.max(record_snapshots.c.version_id))
            .where(record_snapshots.c.version_id <= version_id,
                   record_snapshots.c.version_id.in_(mine))
        ).scalar() or 0
        sq = (sa.select(sa.true(), record_snapshots.c.owner, record_snapshots.c.rtype,
                        record_snapshots.c.rdata, record_snapshots.c.ttl,
                        record_snapshots.c.cause_seq)
              .where(record_snapshots.c.version_id == base))
        q = (sa.select(record_changes.c.added, record_changes.c.owner, record_changes.c.rtype,
                       record_changes.c.rdata, record_changes.c.ttl, record_changes.c.cause_seq)
             .where(record_changes.c.version_id > base,
                    record_changes.c.version_id <= version_id,
                    record_changes.c.version_id.in_(mine))
             .order_by(record_changes.c.version_id, record_changes.c.id))
        stream = {"yield_per": 20000}  # per statement: PostgreSQL's server-side cursors
        # The snapshot (when there is one) as additions, then the changes after it.
        rows: Iterator[Any] = itertools.chain(
            conn.execute(sq, execution_options=stream) if base else (),
            conn.execute(q, execution_options=stream))
        if progress is not None:
            rows = _told(rows, progress)
        current = fold((added, (owner, rtype, rdata, ttl), cause)
                       for added, owner, rtype, rdata, ttl, cause in rows)
        return {Record.from_row(o, t, r, ttl): int(c) for (o, t, r, ttl), c in current.items()}

    # ---- where kept history begins (``compact`` moves it)

    def history_start(self, projection: str = PROJECTION) -> HistoryStart | None:
        """Where kept history of ``projection`` begins (None before its first version)."""
        with self._wrap("reading zone versions"), self._read() as conn:
            row = conn.execute(
                sa.select(zone_versions).where(zone_versions.c.projection == projection)
                .order_by(zone_versions.c.id).limit(1)).first()
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

    def history_note(self, prefix: str = "", projection: str = PROJECTION) -> str:
        """``prefix`` + "history begins at serial N (compacted on …)" when history was
        compacted, else "": error messages append it so users learn why a past serial or
        time is gone."""
        start = self.history_start(projection)
        if start is None or start.compacted_at is None:
            return ""
        return prefix + start.note()



def _read_model_rows(conn: Connection, version_id: int) -> Iterable[Any] | None:
    """The visible ``current_records`` rows ``(owner, rtype, rdata, ttl)`` when the
    read model of ``version_id``'s projection describes exactly that version, else
    None (a past version: fold the journal)."""
    projection = conn.execute(sa.select(read_models.c.projection)
                              .where(read_models.c.version_id == version_id)).scalar()
    if projection is None:
        return None
    c = current_records.c
    return conn.execute(sa.select(c.owner, c.rtype, c.rdata, c.ttl)
                        .where(c.projection == projection, c.visible.is_(True)),
                        execution_options={"yield_per": 20_000})


def _told(rows: Iterable[Any], progress: Callable[[int], None], every: int = 10_000
          ) -> Iterator[Any]:
    """``rows``, telling ``progress`` of each ``every`` rows passed (and of the rest)."""
    n = 0
    for n, row in enumerate(rows, 1):
        if n % every == 0:
            progress(every)
        yield row
    progress(n % every)


def _version_from_row(r: Any) -> ZoneVersion:
    return ZoneVersion(int(r.id), int(r.serial), from_us(r.created_us), int(r.last_event_seq))


