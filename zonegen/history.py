"""Audit: the history of a name, diffs of past zones, the raw event log, why a record
exists, and retention (``compact``).

Every answer comes from what was stored when it happened (record changes with their
causing events, snapshots at the compaction point), never from re-running today's
projector, so it stays what was published. Functions return plain values; the
``format_*`` helpers turn them into the CLI's text. Imports store, zonefile, model, names.
"""

from __future__ import annotations

import itertools
import json
import re
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from zonegen.clock import Clock, parse_time
from zonegen.errors import InvalidObject, ZonegenError
from zonegen.model import (
    AAAA,
    CNAME,
    ENDPOINT_SLICE,
    ENDPOINTS,
    KINDS,
    PTR,
    SERVICE,
    SRV,
    TXT,
    TYPE_NAMES,
    A,
    EndpointSlice,
    Event,
    Record,
    ZoneConfig,
    canonical_ip,
    fold,
    net_change,
)
from zonegen.names import qualify
from zonegen.progress import Progress
from zonegen.projections import CLUSTER_LOCAL, DEFAULT, ProjectionSpec
from zonegen.runner import ensure_projected
from zonegen.sources import DEFAULT_SOURCE
from zonegen.store import EventRef, HistoryStart, NameChange, Store
from zonegen.store.retention import COMPACT_STEPS
from zonegen.zonefile import absolute_name, txt_text, zone_records

__all__ = [
    "CompactionReport",
    "DiffLine",
    "HistoryEntry",
    "InvalidQuery",
    "ObjectState",
    "VersionDiff",
    "WhyReport",
    "compact",
    "diff_versions",
    "event_log",
    "format_diff",
    "format_history",
    "format_log",
    "format_why",
    "name_history",
    "resolve_version",
    "why",
]

PUBLISHED = (A, AAAA, CNAME, PTR, SRV, TXT)
"""Types records can have; SOA and NS come from the zone options and have no history."""


class InvalidQuery(ZonegenError):
    """An audit query names something that cannot exist (bad name, type or version)."""


Change = Literal["added", "removed", "present"]


# --------------------------------------------------------------------------- values


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One change of one record at a name.

    ``change`` is "added" or "removed" at ``serial``; "present" marks a record that was
    already there when kept history begins (after ``compact``), stamped with the oldest
    kept version. ``cause`` is the event whose projection made the change; None when the
    record is an apex record of zonegen itself (``cause_seq`` 0) or the event was
    compacted away (``cause_seq`` still says which one it was; -1 when even that is
    gone: a "present" record that the oldest kept version removed).
    """

    time: datetime
    serial: int
    change: Change
    name: str  # absolute, trailing dot
    type: str
    ttl: int
    rdata: str  # master-file text, names absolute
    cause_seq: int
    cause: EventRef | None

    def to_json(self) -> dict[str, Any]:
        return {
            "time": _iso(self.time), "serial": self.serial, "change": self.change,
            "name": self.name, "type": self.type, "ttl": self.ttl, "rdata": self.rdata,
            "cause": _ref_json(self.cause, self.cause_seq),
        }


@dataclass(frozen=True, slots=True)
class VersionRef:
    serial: int
    time: datetime
    version_id: int


@dataclass(frozen=True, slots=True)
class DiffLine:
    change: Literal["+", "-"]
    name: str
    ttl: int
    type: str
    rdata: str

    def text(self) -> str:
        return f"{self.change}{self.name} {self.ttl} IN {self.type} {self.rdata}"

    def to_json(self) -> dict[str, Any]:
        return {"change": "added" if self.change == "+" else "removed", "name": self.name,
                "ttl": self.ttl, "type": self.type, "rdata": self.rdata}


@dataclass(frozen=True, slots=True)
class VersionDiff:
    """The records of ``zone`` that differ between two versions, in canonical order."""

    zone: str
    old: VersionRef
    new: VersionRef
    lines: tuple[DiffLine, ...]


@dataclass(frozen=True, slots=True)
class ObjectState:
    """A Kubernetes object as the log knows it now: its newest event."""

    kind: str
    namespace: str
    name: str
    resource_version: str
    seq: int
    received_at: datetime
    type: str  # of the newest event (ADDED / MODIFIED / DELETED)
    deleted: bool

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "namespace": self.namespace, "name": self.name,
                "resourceVersion": self.resource_version, "seq": self.seq,
                "received": _iso(self.received_at), "event": self.type,
                "deleted": self.deleted}


@dataclass(frozen=True, slots=True)
class WhyReport:
    """Why a record is in the current zone: the change that added it, its causing event,
    and the current objects of the Service that the record is projected from."""

    record: str  # master-file line, names absolute
    serial: int  # version that added it (or the oldest kept one, when it predates it)
    added_at: datetime
    present_since_start: bool  # added before kept history begins
    cause_seq: int
    cause: EventRef | None
    service: tuple[str, str] | None  # (namespace, name); None for zonegen's own records
    objects: tuple[ObjectState, ...]
    current_serial: int

    def to_json(self) -> dict[str, Any]:
        return {
            "record": self.record, "serial": self.serial, "added": _iso(self.added_at),
            "present_since_history_start": self.present_since_start,
            "cause": _ref_json(self.cause, self.cause_seq),
            "service": f"{self.service[0]}/{self.service[1]}" if self.service else None,
            "objects": [o.to_json() for o in self.objects],
            "current_serial": self.current_serial,
        }


@dataclass(frozen=True, slots=True)
class CompactionReport:
    removed_anything: bool
    start: HistoryStart | None
    versions_deleted: int
    changes_deleted: int
    events_deleted: int
    snapshot_records: int

    def summary(self) -> str:
        if not self.removed_anything:
            where = f"; {self.start.note()}" if self.start else ""
            return f"nothing to compact{where}"
        note = self.start.note() if self.start else ""
        return (f"removed {self.versions_deleted} zone versions, {self.changes_deleted} "
                f"record changes and {self.events_deleted} events; snapshot of "
                f"{self.snapshot_records} records kept; {note}")


# --------------------------------------------------------------------------- parsing


def record_type(text: str) -> int:
    """The type code of a published record type name.

    :raises InvalidQuery: unknown, or SOA/NS (zone options, not records).
    """
    code = {TYPE_NAMES[t]: t for t in PUBLISHED}.get(text.strip().upper())
    if code is None:
        names = ", ".join(sorted(TYPE_NAMES[t] for t in PUBLISHED))
        raise InvalidQuery(f"record type {text!r} is not one zonegen publishes ({names})")
    return code


def owner_names(name: str, config: ZoneConfig) -> tuple[str, list[str]]:
    """The absolute name and the owner spellings it may be stored under.

    ``name`` follows the one rule of :func:`zonegen.names.qualify`: absolute with a
    trailing dot or when it ends with ``config.zone``, else relative to it (a PTR
    owner under a reverse zone). Stored owners are relative to the forward zone, or
    absolute (PTRs, see :class:`~zonegen.model.Record`).

    :raises InvalidQuery: not a valid DNS name.
    """
    text = name.strip()
    if not text or text.endswith(".."):
        raise InvalidQuery(f"name {name!r} is not a valid DNS name")
    full = absolute_name(qualify(text, config.zone), config.zone)
    if full is None:
        raise InvalidQuery(f"name {name!r} is not a valid DNS name (labels of letters, "
                           "digits, '-' or '_', at most 63 octets each)")
    owners = [full]
    forward = config.forward_zone
    if full.endswith("." + forward):
        owners.append(full[: -len(forward) - 1])
    elif forward == ".":
        owners.append(full[:-1])
    return full, owners


def resolve_version(store: Store, selector: str | int | datetime,
                    spec: ProjectionSpec = DEFAULT) -> VersionRef:
    """The version a user means by a serial (all digits) or a time (ISO 8601, UTC when
    no offset): a time selects the version that was current then.

    :raises UnknownSerial: no such serial, or nothing was published by that time.
    :raises InvalidTime: the text is neither a serial nor a time.
    """
    if isinstance(selector, int) or (isinstance(selector, str) and selector.strip().isdigit()):
        version = store.find_version(int(selector), projection=spec.name)
    else:
        when = selector if isinstance(selector, datetime) else parse_time(selector)
        version = store.find_version_at(when, projection=spec.name)
    return VersionRef(version.serial, version.created_at, version.version_id)


# --------------------------------------------------------------------------- history


def name_history(
    store: Store,
    name: str,
    zone_config: ZoneConfig,
    type: str | int | None = None,  # noqa: A002 - the CLI option's name
    since: datetime | None = None,
    until: datetime | None = None,
    spec: ProjectionSpec = DEFAULT,
) -> list[HistoryEntry]:
    """Every kept change of the records at ``name`` in projection ``spec``, oldest
    first; each names its cause's source when it is not ``default``.

    Within one serial, removals come before additions (the order they were committed).
    After ``compact``, records already present at the oldest kept version come first as
    "present" entries, so the history still tells what the name resolved to throughout.

    :raises InvalidQuery: bad name or type.
    """
    full, owners = owner_names(name, zone_config)
    rtype = record_type(type) if isinstance(type, str) else type
    ensure_projected(store, spec=spec)
    changes = store.name_changes(owners, rtype, since, until, projection=spec.name)
    entries: list[HistoryEntry] = []
    start = store.history_start(spec.name)
    if start is not None and start.compacted_at is not None and start.snapshot and (
            since is None or since <= start.version.created_at) and (
            until is None or until >= start.version.created_at):
        entries.extend(_present_at_start(store, start, owners, rtype, zone_config, full,
                                         spec))
    for ch in changes:
        entries.append(_entry(ch.version.created_at, ch.version.serial,
                              "added" if ch.added else "removed", full, ch.record,
                              zone_config, ch.cause_seq, ch.cause))
    return entries


def _present_at_start(store: Store, start: HistoryStart, owners: list[str],
                      rtype: int | None, config: ZoneConfig, full: str,
                      spec: ProjectionSpec) -> list[HistoryEntry]:
    """Records at the name just before the oldest kept version's own changes: its
    snapshot with those changes undone (they are listed as changes after this)."""
    own = itertools.takewhile(lambda ch: ch.version.version_id == start.version.version_id,
                              store.name_changes(owners, rtype, projection=spec.name))
    # Undo them: an addition goes, a removal comes back (-1: its adding change was
    # compacted away with its event).
    snap = fold(((not ch.added, ch.record, -1) for ch in own),
                dict(store.snapshot_records(start.version.version_id, owners, rtype)))
    refs = store.event_refs(snap.values())
    v = start.version
    return [_entry(v.created_at, v.serial, "present", full, rec, config, cause,
                   refs.get(cause))
            for rec, cause in sorted(snap.items(), key=lambda item: _record_key(item[0]))]


def _entry(when: datetime, serial: int, change: Change, full: str, rec: Record,
           config: ZoneConfig, cause_seq: int, cause: EventRef | None) -> HistoryEntry:
    return HistoryEntry(when, serial, change, full, TYPE_NAMES.get(rec.rtype, str(rec.rtype)),
                        config.ttl if rec.ttl is None else rec.ttl,
                        rdata_text(rec.rtype, rec.rdata, config.forward_zone),
                        cause_seq, cause)


def rdata_text(rtype: int, rdata: Sequence[str | int], forward_zone: str) -> str:
    """Master-file rdata with names absolute (relative names are below ``forward_zone``),
    as :func:`zonegen.zonefile.render` writes it."""

    def target(value: str | int) -> str:
        return absolute_name(str(value), forward_zone) or str(value)

    if rtype == SRV:
        return f"{rdata[0]} {rdata[1]} {rdata[2]} {target(rdata[3])}"
    if rtype in (CNAME, PTR):
        return target(rdata[0])
    if rtype == TXT:
        return txt_text(str(rdata[0]))
    return " ".join(str(x) for x in rdata)


# --------------------------------------------------------------------------- diff


def diff_versions(store: Store, a: str | int | datetime, b: str | int | datetime,
                  zone_config: ZoneConfig, spec: ProjectionSpec = DEFAULT) -> VersionDiff:
    """Records of the zone added and removed going from version ``a`` to ``b`` (either
    may be the later one; the diff then reads backwards).

    Folds only the changes between the two versions (``store.changes_between``), so
    comparing neighbours in a long history is as cheap as the change itself.

    :raises UnknownSerial: a version does not exist (or was compacted).
    """
    ensure_projected(store, spec=spec)
    old, new = resolve_version(store, a, spec), resolve_version(store, b, spec)
    lo, hi = sorted((old.version_id, new.version_id))
    added, removed = net_change((was_added, rec, None)
                                for was_added, rec in store.changes_between(
                                    lo, hi, projection=spec.name))
    if old.version_id > new.version_id:
        added, removed = removed, added
    lines: list[tuple[tuple[tuple[str, ...], int, int, str], DiffLine]] = []
    for sign, records in (("-", removed), ("+", added)):
        for owner, rtype, rdata, ttl in zone_records(records, zone_config):
            text = rdata_text(rtype, rdata, zone_config.forward_zone)
            line = DiffLine("+" if sign == "+" else "-", owner,
                            zone_config.ttl if ttl is None else ttl, TYPE_NAMES[rtype], text)
            lines.append(((_name_key(owner), rtype, 0 if sign == "-" else 1, text), line))
    lines.sort(key=lambda item: item[0])
    return VersionDiff(zone_config.zone, old, new, tuple(line for _, line in lines))


# --------------------------------------------------------------------------- log


def event_log(
    store: Store,
    since: datetime | None = None,
    until: datetime | None = None,
    kind: str | None = None,
    namespace: str | None = None,
    name: str | None = None,
    last: int | None = None,
    sources: Sequence[str] | None = None,
) -> Iterator[Event]:
    """The raw event log, oldest first (newest last), filtered; ``last`` keeps only the
    newest N matches. Streams, so a 10M-event log prints in constant memory.

    :raises InvalidQuery: ``kind`` is not Service, EndpointSlice or Endpoints.
    """
    kinds = None
    if kind is not None:
        match = [k for k in KINDS if k.lower() == kind.strip().lower()]
        if not match:
            raise InvalidQuery(f"kind {kind!r} is not one of {', '.join(KINDS)}")
        kinds = match
    if last is not None:
        if last < 1:
            raise InvalidQuery(f"--last {last}: must be at least 1")
        return iter(store.last_events(last, since, until, kinds, namespace, name,
                                      sources=sources))
    return store.iter_events(since, until, kinds, namespace, name, sources=sources)


def event_json(event: Event) -> dict[str, Any]:
    """An event for ``log --json``: every stored field and the object as received."""
    try:
        obj: Any = event.object()
    except (InvalidObject, ValueError):
        obj = event.object_json
    return {"seq": event.seq, "received": _iso(event.received_at), "source": event.source,
            "origin": event.origin, "type": event.type, "kind": event.kind,
            "namespace": event.namespace,
            "name": event.name, "uid": event.uid, "resourceVersion": event.resource_version,
            "object": obj}


# --------------------------------------------------------------------------- why


def why(store: Store, name: str, type: str, rdata: str,  # noqa: A002
        zone_config: ZoneConfig, spec: ProjectionSpec = DEFAULT) -> WhyReport:
    """The chain from a current record back to the events that justify it: the change
    that added it (serial, time, causing event) and the current Service, EndpointSlices
    and Endpoints of the Service it belongs to, with resourceVersions and event seqs.

    ``rdata`` is master-file text; names in it may be absolute or relative to the zone.

    :raises InvalidQuery: bad name, type or rdata, or the record is not in the current zone.
    """
    full, owners = owner_names(name, zone_config)
    rtype = record_type(type)
    wanted = _normal_rdata(rtype, rdata, zone_config)
    ensure_projected(store, spec=spec)
    start = store.history_start(spec.name)
    if start is None:
        raise InvalidQuery("no zone version exists yet")
    base: dict[Record, tuple[NameChange | None, int]] = {}
    if start.snapshot and start.compacted_at is not None:
        base = {rec: (None, seq) for rec, seq in
                store.snapshot_records(start.version.version_id, owners, rtype)}
    # The oldest kept version's own removals are already in its snapshot; its additions
    # still say when the record was added.
    current = fold(((ch.added, ch.record, (ch, ch.cause_seq))
                    for ch in store.name_changes(owners, rtype, projection=spec.name)
                    if ch.added or not (start.compacted_at and
                                        ch.version.version_id == start.version.version_id)),
                   base)
    match = [(rec, how) for rec, how in current.items()
             if rdata_text(rec.rtype, rec.rdata, zone_config.forward_zone) == wanted]
    line = f"{full} IN {TYPE_NAMES[rtype]} {wanted}"
    if not match:
        have = sorted(rdata_text(r.rtype, r.rdata, zone_config.forward_zone) for r in current)
        hint = f" (it has: {'; '.join(have)})" if have else " (no such records now)"
        raise InvalidQuery(f"{line} is not in the current zone{hint}; see "
                           "`zonegen history` for its past")
    rec, (change, cause_seq) = match[0]
    latest = store.latest_version(spec.name)
    assert latest is not None  # noqa: S101 - start exists, so a latest version does
    cause: EventRef | None
    if change is None:
        serial, added_at = start.version.serial, start.version.created_at
        cause = store.event_refs([cause_seq]).get(cause_seq)
    else:
        serial, added_at, cause = change.version.serial, change.version.created_at, \
            change.cause
    service = _service_of(rec)
    # A cluster-local zone has one source: its objects are that source's. (A
    # clusterset's record is explained by its cause; its objects span sources.)
    source = spec.sources[0] if spec.kind == CLUSTER_LOCAL else None
    objects = _service_objects(store, service, source) \
        if service is not None and source is not None else ()
    return WhyReport(
        record=f"{full} {zone_config.ttl if rec.ttl is None else rec.ttl} IN "
               f"{TYPE_NAMES[rtype]} {wanted}",
        serial=serial, added_at=added_at, present_since_start=change is None,
        cause_seq=cause_seq, cause=cause, service=service, objects=tuple(objects),
        current_serial=latest.serial,
    )


def _normal_rdata(rtype: int, text: str, config: ZoneConfig) -> str:
    """User rdata in the form :func:`rdata_text` writes (names absolute, IPs canonical).

    :raises InvalidQuery: the rdata does not parse for the type.
    """
    fields = text.split()
    bad = InvalidQuery(f"rdata {text!r} is not valid {TYPE_NAMES[rtype]} rdata")

    def name(value: str) -> str:
        # Names in rdata (SRV, CNAME and PTR targets) live in the forward zone, also
        # when the record is a PTR of a reverse zone (as rdata_text writes them).
        full = absolute_name(qualify(value, config.forward_zone), config.forward_zone)
        if full is None:
            raise bad
        return full

    if rtype in (A, AAAA):
        ip = canonical_ip(fields[0]) if len(fields) == 1 else None
        if ip is None or (":" in ip) != (rtype == AAAA):
            raise bad
        return ip
    if rtype == SRV:
        if len(fields) != 4 or not all(f.isdigit() for f in fields[:3]):
            raise bad
        return f"{int(fields[0])} {int(fields[1])} {int(fields[2])} {name(fields[3])}"
    if rtype in (CNAME, PTR):
        if len(fields) != 1:
            raise bad
        return name(fields[0])
    stripped = text.strip()
    if len(stripped) >= 2 and stripped[0] == stripped[-1] == '"':
        stripped = stripped[1:-1]
    return txt_text(stripped)


_SVC = re.compile(r"(?:^|\.)([^.]+)\.([^.]+)\.svc$")


def _service_of(rec: Record) -> tuple[str, str] | None:
    """(namespace, service) a record belongs to, from its name: every owner the projector
    writes ends in ``S.N.svc`` and a PTR's target does (RECORDS.md); None for zonegen's
    own records (``dns-version``)."""
    name = str(rec.rdata[0]) if rec.rtype == PTR else rec.owner
    m = _SVC.search(name)
    return (m.group(2), m.group(1)) if m else None


def _service_objects(store: Store, service: tuple[str, str],
                     source: str = DEFAULT_SOURCE) -> list[ObjectState]:
    namespace, svc = service
    heads = store.heads(kinds=[SERVICE, ENDPOINTS], namespaces=[namespace], source=source)
    states: list[ObjectState] = []
    refs = store.event_refs(h.last_seq for (k, ns, n), h in heads.items() if n == svc)
    for kind in (SERVICE, ENDPOINTS):
        head = heads.get((kind, namespace, svc))
        if head is None:
            continue
        ref = refs.get(head.last_seq)
        states.append(ObjectState(
            kind, namespace, svc, head.resource_version, head.last_seq,
            ref.received_at if ref else datetime.fromtimestamp(0, UTC),
            ref.type if ref else "?", head.deleted))
    for event in store.live_objects(ENDPOINT_SLICE, namespace):
        if event.source != source:  # the zone is this source's
            continue
        try:
            owner = EndpointSlice.from_api(event.object()).service_name
        except (InvalidObject, ValueError):
            continue
        if owner == svc:
            states.append(ObjectState(event.kind, event.namespace, event.name,
                                      event.resource_version, event.seq, event.received_at,
                                      event.type, False))
    return states


# --------------------------------------------------------------------------- retention


def compact(store: Store, keep_days: float | None = None, keep_versions: int | None = None,
            clock: Clock = time.time, progress: Progress | None = None) -> CompactionReport:
    """Delete zone versions (and the events they consumed) older than what is kept.

    ``keep_days`` keeps every version needed to answer ``export --at`` for any time in
    the last D days (so the version current D days ago is the oldest kept);
    ``keep_versions`` keeps the newest K. The oldest kept version gets a snapshot of
    its full record set, so later exports, history, diffs and IXFR stay exact; the
    newest event of every live object is kept, so the projection still loads. Nothing
    is ever deleted unless this is called. ``progress`` (default: a bar on stderr when
    it is a terminal) counts its steps.

    :raises InvalidQuery: neither or both limits given, or a limit below 1 (or negative).
    """
    if (keep_days is None) == (keep_versions is None):
        raise InvalidQuery("say how much history to keep: --keep-days D or --keep-versions K")
    now = datetime.fromtimestamp(clock(), UTC)
    ensure_projected(store)
    base = None
    if keep_versions is not None:
        if keep_versions < 1:
            raise InvalidQuery(f"--keep-versions {keep_versions}: keep at least 1")
        kept = store.versions(0)[-keep_versions:]  # ids only would do; versions are small
        base = kept[0] if kept else None
    else:
        assert keep_days is not None  # noqa: S101 - checked above
        if not 0 <= keep_days <= 3_650_000:  # also refuses nan; timedelta's range
            raise InvalidQuery(f"--keep-days {keep_days}: must be a number of days "
                               "from 0 to 3650000")
        base = store.version_at(now - timedelta(days=keep_days))
    if base is None:
        return CompactionReport(False, store.history_start(), 0, 0, 0, 0)
    bar = progress if progress is not None else Progress(description="compacting",
                                                         unit="step")
    with bar:
        bar.set_total(COMPACT_STEPS)
        stats = store.compact(base.version_id, now, bar.update)
    return CompactionReport(stats.versions_deleted > 0, store.history_start(),
                            stats.versions_deleted, stats.changes_deleted, stats.events_deleted,
                            stats.snapshot_records)


# --------------------------------------------------------------------------- text


def format_history(entries: Sequence[HistoryEntry]) -> list[str]:
    """An aligned table, one change a line."""
    header = ("TIME", "SERIAL", "CHANGE", "TYPE", "TTL", "RDATA", "CAUSE")
    rows = [(_iso(e.time), str(e.serial), e.change, e.type, str(e.ttl), e.rdata,
             _ref_text(e.cause, e.cause_seq)) for e in entries]
    lines = _table(header, rows)
    first = next((e for e in entries if e.change == "present"), None)
    if first is not None:
        lines.append(f"; present: at the name when kept history begins, before serial "
                     f"{first.serial}'s own changes")
    return lines


def format_diff(diff: VersionDiff) -> list[str]:
    head = (f"; {diff.zone} serial {diff.old.serial} ({_iso(diff.old.time)}) -> serial "
            f"{diff.new.serial} ({_iso(diff.new.time)}): "
            f"{sum(1 for x in diff.lines if x.change == '+')} added, "
            f"{sum(1 for x in diff.lines if x.change == '-')} removed")
    return [head, *(line.text() for line in diff.lines)]


def format_log(events: Iterable[Event]) -> Iterator[str]:
    """Aligned in pages of 1000 lines, so a long log streams."""
    header = ("SEQ", "RECEIVED", "TYPE", "KIND", "OBJECT", "RV", "SOURCE", "ORIGIN")
    page: list[tuple[str, ...]] = []
    first = True
    for e in events:
        page.append((str(e.seq), _iso(e.received_at), e.type, e.kind,
                     f"{e.namespace}/{e.name}", e.resource_version, e.source, e.origin))
        if len(page) == 1000:
            yield from _table(header, page)[0 if first else 1:]
            page, first = [], False
    if page or first:
        yield from _table(header, page)[0 if first else 1:]


def format_why(report: WhyReport) -> list[str]:
    lines = [report.record]
    when = "present since kept history began at" if report.present_since_start else \
        "added at"
    lines.append(f"  {when} serial {report.serial} ({_iso(report.added_at)}); current "
                  f"serial {report.current_serial}")
    lines.append(f"  caused by {_ref_text(report.cause, report.cause_seq)}")
    if report.service is None:
        lines.append("  published by zonegen itself (no Kubernetes object)")
        return lines
    ns, svc = report.service
    lines.append(f"  projected from Service {ns}/{svc}; its objects now:")
    rows = [(o.kind, f"{o.namespace}/{o.name}", f"rv={o.resource_version}", f"seq={o.seq}",
             o.type + (" (deleted)" if o.deleted else ""), _iso(o.received_at))
            for o in report.objects]
    if not rows:
        lines.append("    (none: the log holds no live object of that Service)")
    lines.extend("    " + line for line in _table(None, rows))
    return lines


def to_json_line(value: dict[str, Any]) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=False)


def _table(header: tuple[str, ...] | None, rows: Sequence[tuple[str, ...]]) -> list[str]:
    all_rows = ([header] if header else []) + list(rows)
    if not all_rows:
        return []
    widths = [max(len(r[i]) for r in all_rows) for i in range(len(all_rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
            for r in all_rows]


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _ref_text(ref: EventRef | None, seq: int) -> str:
    if ref is None:
        if seq < 0:
            return "unknown (added before kept history)"
        return "zonegen (apex record)" if seq == 0 else f"event {seq} (compacted)"
    # The source (cluster) is named when it is not the default one, so a one-cluster
    # zonegen's history reads as before and a multi-cluster one says whose object it was.
    of = "" if ref.source == DEFAULT_SOURCE else f" source={ref.source}"
    return (f"{ref.kind} {ref.namespace}/{ref.name} rv={ref.resource_version} "
            f"{ref.type} seq={ref.seq}{of}")


def _ref_json(ref: EventRef | None, seq: int) -> dict[str, Any] | None:
    if ref is None:
        return None if seq == 0 else {"seq": seq if seq > 0 else None, "compacted": True}
    return {"seq": ref.seq, "kind": ref.kind, "namespace": ref.namespace, "name": ref.name,
            "uid": ref.uid, "resourceVersion": ref.resource_version, "event": ref.type,
            "received": _iso(ref.received_at), "source": ref.source}


def _name_key(absolute: str) -> tuple[str, ...]:
    """DNSSEC canonical name order (RFC 4034 §6.1): labels compared from the right."""
    return tuple(reversed(absolute.rstrip(".").split(".")))


def _record_key(rec: Record) -> tuple[str, int, str]:
    return (rec.owner, rec.rtype, str(rec.rdata))
