"""The audit reader role: what ``history``, ``diff``, ``log`` and ``why`` read. Every
query follows an index of its own (the owner of a record, a sequence number), so its
cost follows the answer, not the size of the log; events are named by reference
(:class:`EventRef`) without their objects where a line only cites them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from zonegen.model import Event, Record, ZoneVersion
from zonegen.store.database import Database, _batched
from zonegen.store.events import _event_from_row
from zonegen.store.journal import PROJECTION
from zonegen.store.schema import (
    events,
    from_us,
    object_heads,
    record_changes,
    record_snapshots,
    resume_points,
    to_us,
    trackings,
    zone_versions,
)


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
class LogSummary:
    """The event log at a glance (``zonegen status``)."""

    events: int  # stored (compaction removes consumed ones)
    pending: int  # after the projection checkpoint: not in any zone version yet
    last_event_at: tuple[tuple[str, datetime], ...]  # (kind, newest arrival), by kind
    resume_points: tuple[tuple[str, str, str], ...]  # (source, kind, resourceVersion)


class AuditLog(Database):
    """Reads the journal by name and the log by filter, for the audit commands."""

    def log_summary(self, tracking: str = "projection") -> LogSummary:
        """Counts, newest arrival per kind and resume points, in one read transaction
        (so the numbers agree with each other)."""
        with self._wrap("reading the event log"), self._read() as conn:
            checkpoint = int(conn.execute(
                sa.select(trackings.c.last_seq).where(trackings.c.name == tracking)
            ).scalar() or 0)
            total = int(conn.execute(sa.select(sa.func.count()).select_from(events)
                                     ).scalar() or 0)
            pending = int(conn.execute(sa.select(sa.func.count()).select_from(events)
                                       .where(events.c.seq > checkpoint)).scalar() or 0)
            last = conn.execute(sa.select(events.c.kind, sa.func.max(events.c.received_us))
                                .group_by(events.c.kind).order_by(events.c.kind)).all()
            points = conn.execute(sa.select(resume_points).order_by(
                resume_points.c.source, resume_points.c.kind)).all()
        return LogSummary(
            total, pending, tuple((str(k), from_us(us)) for k, us in last),
            tuple((str(r.source), str(r.kind), str(r.resource_version)) for r in points))

    def name_changes(self, owners: Sequence[str], rtype: int | None = None,
                     since: datetime | None = None, until: datetime | None = None,
                     projection: str = PROJECTION) -> list[NameChange]:
        """Every kept change of records at ``owners`` (stored form), oldest first, with
        the version and the causing event. Uses ``ix_record_changes_owner``, then primary
        keys: cost follows the name's own changes, not the size of the log."""
        rc, zv, ev = record_changes, zone_versions, events
        q = (sa.select(rc.c.version_id, rc.c.added, rc.c.owner, rc.c.rtype, rc.c.rdata,
                       rc.c.ttl, rc.c.cause_seq, zv.c.serial, zv.c.created_us,
                       zv.c.last_event_seq, *_event_ref_columns())
             .join(zv, zv.c.id == rc.c.version_id)
             .outerjoin(ev, ev.c.seq == rc.c.cause_seq)
             .where(rc.c.owner.in_(list(owners)), zv.c.projection == projection))
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

    def changes_between(self, after_version_id: int, upto_version_id: int,
                        projection: str = PROJECTION) -> list[tuple[bool, Record]]:
        """``(added, record)`` for every change of ``projection`` in versions
        ``(after, upto]``, in commit order: a diff of two versions costs the changes
        between them, not two folds."""
        mine = sa.select(zone_versions.c.id).where(zone_versions.c.projection == projection)
        q = (sa.select(record_changes.c.added, record_changes.c.owner, record_changes.c.rtype,
                       record_changes.c.rdata, record_changes.c.ttl)
             .where(record_changes.c.version_id > after_version_id,
                    record_changes.c.version_id <= upto_version_id,
                    record_changes.c.version_id.in_(mine))
             .order_by(record_changes.c.version_id, record_changes.c.id))
        with self._wrap("reading the journal"), self._read() as conn:
            return [(bool(r.added), Record.from_row(r.owner, r.rtype, r.rdata, r.ttl))
                    for r in conn.execute(q, execution_options={"yield_per": 5000})]

    def iter_events(self, since: datetime | None = None, until: datetime | None = None,
                    kinds: Sequence[str] | None = None, namespace: str | None = None,
                    name: str | None = None, batch: int = 1000,
                    sources: Sequence[str] | None = None) -> Iterator[Event]:
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
        if sources is not None:
            conds.append(events.c.source.in_(list(sources)))
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
                    namespace: str | None = None, name: str | None = None,
                    sources: Sequence[str] | None = None) -> list[Event]:
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
        if sources is not None:
            q = q.where(events.c.source.in_(list(sources)))
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

