"""The retention role: ``zonegen compact``, the only code that ever deletes history.

It keeps a snapshot of the oldest kept version's record set, so later exports, history,
diffs and IXFR stay exact, and logs each compaction (``compactions``) so answers can say
where history now begins.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from zonegen.errors import UnknownSerial
from zonegen.model import DELETED, ZoneVersion
from zonegen.store.journal import ZoneJournal, _version_from_row
from zonegen.store.schema import (
    compactions,
    events,
    projections,
    record_changes,
    record_snapshots,
    to_us,
    trackings,
    zone_versions,
)

COMPACT_STEPS = 5
"""Snapshot the base; delete older changes, snapshots, versions, consumed events."""


@dataclass(frozen=True, slots=True)
class CompactionStats:
    base: ZoneVersion
    versions_deleted: int
    changes_deleted: int
    events_deleted: int
    snapshot_records: int




class Retention(ZoneJournal):
    """Deletes what ``compact`` was told it may delete, in one transaction."""

    def compact(self, base_version_id: int, now: datetime,
                progress: Callable[[int], None] | None = None) -> CompactionStats:
        """Make ``base_version_id`` the oldest kept version, in one transaction: snapshot
        its record set, delete older versions with their changes and snapshots, and
        delete the events they consumed, except any that is still the newest event of a
        live object up to the projection checkpoint (the read model's
        ``projected_objects`` points at exactly those, and the runner loads a touched
        Service's objects from them: docs/DESIGN.md "Read model"). The read model
        itself describes the newest version, which is always kept, so it is untouched.
        Logs the compaction. ``progress(1)`` is told as each of its
        :data:`COMPACT_STEPS` steps is done.

        :raises UnknownSerial: the version does not exist.
        """
        with self._wrap("compacting history"), self._write() as conn:
            row = conn.execute(
                sa.select(zone_versions).where(zone_versions.c.id == base_version_id)).first()
            if row is None:
                raise UnknownSerial(f"zone version {base_version_id} does not exist")
            base = _version_from_row(row)
            # Versions of the base's projection only: other zones keep their history.
            mine = zone_versions.c.projection == row.projection
            older = sa.select(zone_versions.c.id).where(
                mine, zone_versions.c.id < base_version_id)
            upto = conn.execute(
                sa.select(sa.func.max(zone_versions.c.last_event_seq))
                .where(mine, zone_versions.c.id < base_version_id)).scalar()
            if upto is None:
                return CompactionStats(base, 0, 0, 0, 0)
            step = progress or (lambda _n: None)
            snapshot = self._save_snapshot(conn, base_version_id)
            step(1)
            changes = conn.execute(record_changes.delete().where(
                record_changes.c.version_id.in_(older))).rowcount
            step(1)
            conn.execute(record_snapshots.delete().where(
                record_snapshots.c.version_id.in_(older)))
            step(1)
            versions = conn.execute(zone_versions.delete().where(
                mine, zone_versions.c.id < base_version_id)).rowcount
            step(1)
            # Events go only up to what EVERY projection has folded (another zone may
            # still need them). Each projection's projected_objects names the newest
            # event <= its checkpoint of each live object: when that is <= the lowest
            # checkpoint it is the newest <= that one, so those are kept; when it is
            # later, it is past the bound and stays anyway.
            folded = conn.execute(
                sa.select(sa.func.min(trackings.c.last_seq))
                .where(trackings.c.name.in_(sa.select(projections.c.name)))).scalar()
            lowest = int(folded) if folded is not None else int(upto)
            bound = min(int(upto), lowest)
            newest = (
                sa.select(sa.func.max(events.c.seq).label("seq"))
                .where(events.c.seq <= lowest)
                .group_by(events.c.kind, events.c.namespace, events.c.name, events.c.source)
            ).subquery()
            keep = (sa.select(events.c.seq).join(newest, newest.c.seq == events.c.seq)
                    .where(events.c.type != DELETED))
            removed = conn.execute(events.delete().where(
                events.c.seq <= bound, events.c.seq.not_in(keep))).rowcount
            step(1)
            conn.execute(compactions.insert().values(
                compacted_us=to_us(now), base_serial=base.serial,
                base_created_us=to_us(base.created_at), events_upto_seq=int(upto),
                versions_deleted=versions, changes_deleted=changes, events_deleted=removed))
            return CompactionStats(base, versions, changes, removed, snapshot)


