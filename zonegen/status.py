"""``zonegen status``: where the zone is now, from the database alone.

One read of the store answers "where is the zone now?" as an operator asks it: the
current serial and when it was made, records per zone (each zone selected as ``export``
and ``serve`` select it), the event log's size and what is not projected yet, the newest
event per kind, the watch resume points, each source (cluster: its events, newest
arrival and whether a watch stored its initial lists), the oldest serial an IXFR or ``export
--serial`` can still start from, and, where ``serve --watch`` replicas share the database,
which replica writes. Never writes: pending events are counted, not projected.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from zonegen.export import current_zone_sizes, zone_size
from zonegen.model import ZoneConfig
from zonegen.projections import DEFAULT, ProjectionSpec
from zonegen.store import Store

LAG_COUNTED = 10_000  # events behind a checkpoint counted exactly, at most


@dataclass(frozen=True, slots=True)
class ZoneCount:
    zone: str
    records: int  # as ``export`` writes them: SOA, NS and glue included


@dataclass(frozen=True, slots=True)
class ResumePoint:
    source: str
    kind: str
    resource_version: str


@dataclass(frozen=True, slots=True)
class SourceStatus:
    """One source (cluster) as the log knows it. ``synced``: a watch stored its initial
    lists (it leaves resume points with them); False for a source only ever ingested,
    or whose first watch has not stored its lists yet."""

    name: str
    cluster_id: str
    events: int
    last_event: datetime | None
    resume_points: tuple[tuple[str | None, str, str], ...]  # (namespace, kind, rv)
    registered: bool = True  # False: only its events name it (``source remove``d)

    @property
    def synced(self) -> bool:
        return bool(self.resume_points)

    def text(self) -> str:
        last = _iso(self.last_event) if self.last_event is not None else "none"
        watch = (f"watch synced ({len(self.resume_points)} resume points)" if self.synced
                 else "no watch resume point")
        gone = "" if self.registered else " (not registered)"
        return (f"{self.name}: cluster id {self.cluster_id}, {self.events} events, "
                f"last {last}, {watch}{gone}")

    def to_json(self) -> dict[str, Any]:
        return {"cluster_id": self.cluster_id, "registered": self.registered,
                "events": self.events,
                "last_event": _iso(self.last_event), "synced": self.synced,
                "resume_points": [{"namespace": ns, "kind": kind, "resource_version": rv}
                                  for ns, kind, rv in self.resume_points]}


@dataclass(frozen=True, slots=True)
class ProjectionStatus:
    """One registered projection (a zone's record set): its newest serial, how far its
    checkpoint is behind the log (events of its own sources only; counted up to
    :data:`LAG_COUNTED`), and its records in the read model (apex records included)."""

    name: str  # stored name (``projection`` for source:default)
    target: str  # source:a, exports:a,b
    serial: int | None
    serial_time: datetime | None
    checkpoint: int  # last event seq folded
    lag: int  # events of its sources after the checkpoint
    records: int

    def text(self) -> str:
        serial = "no version yet" if self.serial is None else \
            f"serial {self.serial} ({_iso(self.serial_time)})"
        lag = f"{self.lag}+" if self.lag > LAG_COUNTED else str(self.lag)
        return (f"{self.target}: {serial}, {self.records} records, checkpoint seq "
                f"{self.checkpoint}, {lag} events behind")

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "serial": self.serial,
                "serial_time": _iso(self.serial_time), "checkpoint": self.checkpoint,
                "lag": self.lag, "lag_exact": self.lag <= LAG_COUNTED,
                "records": self.records}


@dataclass(frozen=True, slots=True)
class Writer:
    """The replica holding the writer lease (docs/DESIGN.md "Replicas")."""

    holder: str  # host/pid of the replica
    epoch: int  # grows by one at every takeover
    expires: datetime  # after this another replica may take over


@dataclass(frozen=True, slots=True)
class StatusReport:
    """What ``zonegen status`` shows; ``serial`` is None before the first version."""

    database: str  # where, without a password
    serial: int | None
    serial_time: datetime | None
    zones: tuple[ZoneCount, ...]
    events: int
    pending: int
    last_events: tuple[tuple[str, datetime], ...]  # (kind, newest arrival)
    resume_points: tuple[ResumePoint, ...]
    oldest_serial: int | None  # oldest an IXFR or ``export --serial`` can start from
    compacted_at: datetime | None
    writer: Writer | None = None  # None: no replica ever held the writer lease
    sources: tuple[SourceStatus, ...] = ()
    projection: str = DEFAULT.target  # the projection serial/zones/pending are of
    projections: tuple[ProjectionStatus, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "database": self.database,
            "serial": self.serial,
            "serial_time": _iso(self.serial_time),
            "zones": {z.zone: z.records for z in self.zones},
            "events": self.events,
            "events_pending": self.pending,
            "last_event": {kind: _iso(when) for kind, when in self.last_events},
            "resume_points": [{"source": p.source, "kind": p.kind,
                               "resource_version": p.resource_version}
                              for p in self.resume_points],
            "sources": {s.name: s.to_json() for s in self.sources},
            "projection": self.projection,
            "projections": {p.target: p.to_json() for p in self.projections},
            "oldest_serial": self.oldest_serial,
            "compacted_at": _iso(self.compacted_at),
            "writer": None if self.writer is None else {
                "holder": self.writer.holder, "epoch": self.writer.epoch,
                "lease_expires": _iso(self.writer.expires)},
        }

    def lines(self) -> list[str]:
        """The report as aligned ``label  value`` lines (a label once per group)."""
        rows: list[tuple[str, str]] = [("database", self.database)]
        if self.serial is None:
            rows.append(("serial", "none yet (no zone version stored)"))
        else:
            rows.append(("serial", f"{self.serial} ({_iso(self.serial_time)})"))
        rows += _group("records", [f"{z.zone} {z.records}" for z in self.zones])
        rows.append(("events stored", str(self.events)))
        rows.append(("events pending", str(self.pending)))
        rows += _group("last event", [f"{kind} {_iso(when)}"
                                      for kind, when in self.last_events])
        rows += _group("resume points", [f"{p.source} {p.kind} {p.resource_version}"
                                         for p in self.resume_points])
        rows += _group("sources", [s.text() for s in self.sources])
        if self.projections != () and [p.target for p in self.projections] != [
                DEFAULT.target]:
            rows += _group("projections", [p.text() for p in self.projections])
        if self.oldest_serial is None:
            rows.append(("oldest serial", "none"))
        else:
            compacted = (f" (compacted on {_iso(self.compacted_at)})"
                         if self.compacted_at is not None else "")
            rows.append(("oldest serial", f"{self.oldest_serial}{compacted}"))
        if self.writer is not None:
            rows.append(("writer", f"{self.writer.holder} (epoch {self.writer.epoch}, "
                                   f"lease until {_iso(self.writer.expires)})"))
        width = max(len(label) for label, _ in rows)
        return [f"{label.ljust(width)}  {value}".rstrip() for label, value in rows]


def status(store: Store, configs: Sequence[ZoneConfig],
           spec: ProjectionSpec = DEFAULT) -> StatusReport:
    """The state of ``store`` for the zones ``configs`` (the forward zone and any
    reverse zones, as given by the zone options) of projection ``spec``, and a line
    per registered projection and per source.

    :raises StoreError: the store cannot be read.
    """
    latest = store.latest_version(spec.name)
    zones: tuple[ZoneCount, ...] = ()
    if latest is not None:
        # the read model is written in each version's transaction: it is ``latest``'s
        version, sizes = current_zone_sizes(store, configs, spec)
        if version is None or version.version_id != latest.version_id:
            records = store.records_at(latest.version_id)
            sizes = [zone_size(records, c, latest.serial) for c in configs]
        zones = tuple(ZoneCount(c.zone, n) for c, n in zip(configs, sizes, strict=True))
    summary = store.log_summary(spec.name)
    start = store.history_start(spec.name)
    lease = store.current_lease()
    return StatusReport(
        database=store.where,
        serial=latest.serial if latest is not None else None,
        serial_time=latest.created_at if latest is not None else None,
        zones=zones,
        events=summary.events,
        pending=summary.pending,
        last_events=summary.last_event_at,
        resume_points=tuple(ResumePoint(*p) for p in summary.resume_points),
        oldest_serial=start.version.serial if start is not None else None,
        compacted_at=start.compacted_at if start is not None else None,
        writer=None if lease is None else Writer(
            lease.holder, lease.epoch, datetime.fromtimestamp(lease.expires_us / 1e6, UTC)),
        sources=source_list(store),
        projection=spec.target,
        projections=tuple(projection_status(store, p) for p in store.projections()),
    )


def source_list(store: Store) -> tuple[SourceStatus, ...]:
    """Every source the log knows (registered, or named by events: a removed source
    keeps its events), for ``status`` and ``source list``."""
    registered = {s.name for s in store.sources()}
    return tuple(SourceStatus(s.source.name, s.source.cluster_id, s.events,
                              s.last_event_at, s.resume_points, s.source.name in registered)
                 for s in store.source_states())


def projection_status(store: Store, spec: ProjectionSpec) -> ProjectionStatus:
    """One projection's line of ``status``."""
    latest = store.latest_version(spec.name)
    checkpoint = store.max_tracking_seq(spec.name)
    behind = store.select_events(gt=checkpoint, limit=LAG_COUNTED + 1, sources=spec.sources)
    return ProjectionStatus(spec.name, spec.target,
                            latest.serial if latest is not None else None,
                            latest.created_at if latest is not None else None,
                            checkpoint, len(behind), store.record_count(spec.name))


def _group(label: str, values: list[str]) -> list[tuple[str, str]]:
    if not values:
        return [(label, "none")]
    return [(label if i == 0 else "", value) for i, value in enumerate(values)]


def _iso(when: datetime | None) -> str | None:
    if when is None:
        return None
    return when.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
