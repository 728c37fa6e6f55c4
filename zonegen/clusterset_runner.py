"""The clusterset runner: folds the events of a clusterset projection's sources into
``clusterset.local`` zone versions, exactly once (docs/multicluster.md, wiring steps 4-5).

Two kinds (``zonegen.projections``):

- ``clusterset-imports`` (``imports:hub``): one source's ServiceImports and the
  EndpointSlices carrying both MCS labels, folded by
  :class:`~zonegen.clusterset.ClustersetProjection`;
- ``clusterset-exports`` (``exports:a,b,c``): every listed source's Services,
  EndpointSlices, legacy Endpoints and ServiceExports, each source with its configured
  cluster id (``store.sources()``), folded by :class:`~zonegen.clusterset.ExportsProjection`.

Same surface and transaction as :class:`zonegen.runner.ProjectionRunner`: each
:meth:`ClustersetRunner.catch_up` commits the zone version, its record changes (each with
the event that caused it), the read-model rows and the checkpoint in one
``commit_version``. The pure projections hold a whole clusterset zone's objects (exported
or imported Services only, so small next to a cluster), so the state is loaded whole: from
the newest event of every object of the sources at the checkpoint when the runner has none
yet, then kept in memory between catch-ups while the checkpoint, the newest version and
the sources' cluster ids are still the ones it made or saw. Every full load is compared
with the stored read model, and a key that differs (a source's cluster id was changed
since) is repaired in the next version. Owners are relative to the clusterset zone, as
cluster-local owners are relative to the cluster domain; names are checked against
``clusterset.local.`` (renderers re-check other zones).
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Iterable, Iterator

from zonegen.changes import to_change
from zonegen.clock import Clock
from zonegen.clusterset import (
    APEX_RECORDS,
    ClustersetProjection,
    ExportsProjection,
)
from zonegen.errors import InvalidInput, InvalidName, InvalidObject
from zonegen.mcs import (
    MCS_SERVICE_NAME_LABEL,
    SERVICE_EXPORT,
    SERVICE_IMPORT,
    SOURCE_CLUSTER_LABEL,
    McsEndpointSlice,
    ServiceExport,
    ServiceImport,
    check_cluster_id,
)
from zonegen.metrics import Metrics, process_metrics
from zonegen.model import (
    DELETED,
    ENDPOINT_SLICE,
    ENDPOINTS,
    SERVICE,
    TXT,
    Diff,
    Endpoints,
    EndpointSlice,
    Event,
    Record,
    RecordSet,
    Service,
    ZoneVersion,
)
from zonegen.progress import Progress
from zonegen.project import NO_SERVICE, ServiceKey
from zonegen.projections import CLUSTERSET_EXPORTS, CLUSTERSET_IMPORTS, ProjectionSpec
from zonegen.runner import RebuildReport, StoredZone, gc_paused
from zonegen.store import CheckpointMoved, ReadModelChange, Store

log = logging.getLogger("zonegen.runner")  # the projections' one warning channel

IDS_KEY: ServiceKey = ("", "#cluster-ids")
IDS_OWNER = "#cluster-ids"
"""Where an exports projection's read model keeps the cluster ids its rows were made
with: one invisible row (not a name any Service can have), so a restarted runner knows
without reading every row whether a source's ``--cluster-id`` changed since."""

EXPORT_KINDS = (SERVICE, ENDPOINT_SLICE, ENDPOINTS, SERVICE_EXPORT)
"""The kinds an exports projection reads of each source."""


class ClustersetState:
    """One clusterset projection's pure state and the rule that turns a stored event into
    a fold: which events it reads and how they are reduced (the runner's only rule)."""

    def __init__(self, kind: str, cluster_ids: dict[str, str]) -> None:
        self.kind = kind
        self.cluster_ids = cluster_ids
        self.projection: ClustersetProjection | ExportsProjection = (
            ClustersetProjection() if kind == CLUSTERSET_IMPORTS else ExportsProjection())

    def fold(self, event: Event, warnings: list[InvalidName] | None,
             report: bool = False) -> Diff:
        """Fold one stored event; what it did to the zone. Events of kinds the projection
        does not read change nothing. ``report``: log the problems of the objects (the
        first time the event is projected)."""
        proj = self.projection
        if isinstance(proj, ClustersetProjection):
            imported = self._imported(event, report)
            return proj.apply(*imported, warnings) if imported is not None else Diff()
        exported = self._exported(event, report)
        return proj.apply(*exported, warnings) if exported is not None else Diff()

    def load(self, events: Iterable[Event]) -> None:
        """Fold many events (a state's newest events), each key recomputed once, without
        diffs or warnings (they were reported when the events were first projected)."""
        proj = self.projection
        if isinstance(proj, ClustersetProjection):
            proj.load(i for e in events if (i := self._imported(e, False)) is not None)
        else:
            proj.load(x for e in events if (x := self._exported(e, False)) is not None)

    def _imported(self, event: Event, report: bool) -> tuple[
            str, str, str, ServiceImport | McsEndpointSlice | None] | None:
        if event.kind == SERVICE_IMPORT:
            imp = to_change(event, report=report).obj
            return (SERVICE_IMPORT, event.namespace, event.name,
                    imp if isinstance(imp, ServiceImport) else None)
        if event.kind == ENDPOINT_SLICE:
            return (ENDPOINT_SLICE, event.namespace, event.name, _mcs_slice(event, report))
        return None

    def _exported(self, event: Event, report: bool) -> tuple[
            str, str, str, str,
            Service | EndpointSlice | Endpoints | ServiceExport | None] | None:
        if event.kind not in EXPORT_KINDS:
            return None
        obj = to_change(event, report=report).obj
        if not isinstance(obj, Service | EndpointSlice | Endpoints | ServiceExport):
            obj = None
        return (self.cluster_ids[event.source], event.kind, event.namespace, event.name, obj)


def _mcs_slice(event: Event, report: bool) -> McsEndpointSlice | None:
    """The MCS reduction of an EndpointSlice event: None when it is deleted or does not
    carry both MCS labels (a slice that loses them leaves its import), or is invalid
    (then, with ``report``, one warning naming the event)."""
    if event.type == DELETED:
        return None
    warnings: list[str] | None = [] if report else None
    try:
        raw = event.object()
        meta = raw.get("metadata")
        labels = meta.get("labels") if isinstance(meta, dict) else None
        if not isinstance(labels, dict) or not (
                labels.get(MCS_SERVICE_NAME_LABEL) and labels.get(SOURCE_CLUSTER_LABEL)):
            return None
        return McsEndpointSlice.from_api(raw, warnings)
    except (InvalidObject, ValueError) as e:
        if report:
            log.warning("event %d (%s %s/%s): %s; treated as deleted", event.seq,
                        event.kind, event.namespace, event.name, e)
        return None
    finally:
        for message in warnings or ():
            log.warning("%s", message)


class ClustersetRunner(StoredZone):
    """Folds pending events of a clusterset projection's sources into ONE zone version
    per catch-up (none when nothing DNS-visible changed), as
    :class:`zonegen.runner.ProjectionRunner` does for cluster-local zones."""

    def __init__(
        self,
        store: Store,
        clock: Clock = time.time,
        batch_size: int = 20_000,
        *,
        live: bool = False,
        metrics: Metrics | None = None,
        spec: ProjectionSpec,
    ) -> None:
        """``live``: the events arrive now, so each version observes their arrival
        latency in ``metrics`` (default: the process's). ``spec``: a
        ``clusterset-imports`` or ``clusterset-exports`` projection.

        :raises InvalidInput: ``spec`` is another kind.
        """
        if spec.kind not in (CLUSTERSET_IMPORTS, CLUSTERSET_EXPORTS):
            raise InvalidInput(f"projection {spec.target}: this runner folds clusterset "
                               "projections only")
        self.store = store
        self.clock = clock
        self.batch_size = batch_size
        self.live = live
        self.metrics = metrics if metrics is not None else process_metrics()
        self.spec = spec
        self.name = spec.name
        self._log_prefix = f"{spec.name}: "
        self.sources: tuple[str, ...] = spec.sources
        self._version: ZoneVersion | None = None
        self._known = False
        # The in-memory state and what it is valid for: (checkpoint, version id).
        self._state: ClustersetState | None = None
        self._state_at: tuple[int, int | None] | None = None
        self.full_loads = 0  # how many catch-ups loaded the state from the log (metrics)

    # ----------------------------------------------------------------- state

    def cluster_ids(self) -> dict[str, str]:
        """Source name -> cluster id for this projection's sources (an unregistered
        source's id is its name, as ``register_source`` would make it).

        :raises InvalidInput: an id is not an RFC 1123 subdomain, or two sources share one.
        """
        stored = {s.name: s.cluster_id for s in self.store.sources()}
        ids = {name: stored.get(name, name) for name in self.sources}
        seen: dict[str, str] = {}
        for name, cid in ids.items():
            reasons = check_cluster_id(cid)
            if reasons:
                raise InvalidInput(f"projection {self.spec.target}: source {name}: "
                                   f"{'; '.join(reasons)}")
            if cid in seen:
                raise InvalidInput(f"projection {self.spec.target}: sources {seen[cid]} and "
                                   f"{name} share cluster id {cid!r}")
            seen[cid] = name
        return ids

    def _load(self, checkpoint: int, ids: dict[str, str]) -> ClustersetState:
        """The state at ``checkpoint``: the newest event of each live object of the
        sources up to it, folded without warnings (reported when first projected)."""
        state = ClustersetState(self.spec.kind, ids)
        state.load(self.store.iter_latest_events(checkpoint, sources=self.sources))
        self.full_loads += 1
        return state

    # ----------------------------------------------------------------- folding

    def catch_up(self) -> list[ZoneVersion]:
        """Project every event of the sources pending at the start; return the zone
        versions made: one for all of them, none when nothing DNS-visible changed.

        :raises StoreError: the store cannot be read or written.
        :raises InvalidInput: the sources' cluster ids are not usable.
        """
        for attempt in range(5):
            try:
                return self._catch_up()
            except CheckpointMoved:
                self._state = self._state_at = None
                if attempt == 4:
                    raise
                log.info("projection %s: checkpoint moved by another zonegen; reloading",
                         self.name)
            except BaseException:
                self._known = False
                self._state = self._state_at = None
                raise
        raise AssertionError("unreachable")

    def _catch_up(self) -> list[ZoneVersion]:
        checkpoint = self.store.max_tracking_seq(self.name)
        upto = self.store.max_event_seq()
        version = self.store.latest_version(self.name)
        self._version, self._known = version, True
        if upto <= checkpoint and version is not None:
            return []
        ids = self.cluster_ids()
        at = (checkpoint, version.version_id if version is not None else None)
        state = self._state
        touched: set[ServiceKey] = set()
        added: dict[Record, int] = {}
        removed: dict[Record, int] = {}
        first = self.store.read_model_state(self.name) is None
        ids_row: tuple[list[int], Record] | None = None
        if state is None or self._state_at != at or state.cluster_ids != ids:
            state = self._load(checkpoint, ids)
            if self.spec.kind == CLUSTERSET_EXPORTS:
                ids_row = self._ids_row(ids, first)
                if ids_row is not None and not first:
                    touched |= self._differing(state)
        self._state = self._state_at = None  # mutated below: valid again once committed
        name_warnings: list[InvalidName] = []
        arrivals: Counter[float] = Counter()
        last_seq = checkpoint
        while last_seq < upto:
            chunk = self.store.select_events(gt=last_seq, lte=upto, limit=self.batch_size,
                                             sources=self.sources)
            if not chunk:
                last_seq = upto  # only other sources' events are left: pass them
                break
            if self.live:
                arrivals.update(round(e.received_at.timestamp(), 3) for e in chunk)
            for event in chunk:
                diff = state.fold(event, name_warnings, report=True)
                for r in diff.removed:
                    if added.pop(r, _ABSENT) is _ABSENT:
                        removed[r] = event.seq
                    touched.add(_key_of(r))
                for r in diff.added:
                    if removed.pop(r, _ABSENT) is _ABSENT:
                        added[r] = event.seq
                    touched.add(_key_of(r))
            last_seq = chunk[-1].seq
        for warning in name_warnings:
            log.warning("%s", warning)
        made = self._commit(state, first, checkpoint, last_seq, touched, added, removed,
                            arrivals, ids_row)
        committed = self._version
        self._state = state
        self._state_at = (last_seq, committed.version_id if committed is not None else None)
        return [made] if made is not None else []

    def _ids_row(self, ids: dict[str, str], first: bool) -> tuple[list[int], Record] | None:
        """The read model's record of the cluster ids its rows were made with (an
        invisible row under :data:`IDS_KEY`, never in the zone or its journal), when it
        must be (re)written: (stored row ids to delete, the new row); None when the
        stored ids are these."""
        record = Record(IDS_OWNER, TXT, (json.dumps(ids, sort_keys=True),))
        stored = {} if first else self.store.records_of([IDS_KEY], self.name).get(IDS_KEY, {})
        if set(stored) == {record}:
            return None
        return [row_id for row_id, _visible in stored.values()], record

    def _differing(self, state: ClustersetState) -> set[ServiceKey]:
        """Keys whose stored records differ from the freshly loaded state's (normally
        none; a source's cluster id changed since the last version, or the read model
        was written by another rule): repaired in the next version."""
        stored: dict[ServiceKey, set[Record]] = {}
        for key, r, _visible in self.store.iter_model(self.name):
            if key not in (NO_SERVICE, IDS_KEY):
                stored.setdefault(key, set()).add(r)
        proj = state.projection
        keys = set(stored) | set(proj.keys())
        out = {k for k in keys if stored.get(k, set()) != proj.records_of(k)}
        if out:
            log.warning("projection %s: %d services differ from the stored zone (a "
                        "source's cluster id changed?); republished", self.name, len(out))
        return out

    def _commit(self, state: ClustersetState, first: bool, from_seq: int, to_seq: int,
                touched: set[ServiceKey], added: dict[Record, int],
                removed: dict[Record, int], arrivals: Counter[float],
                ids_row: tuple[list[int], Record] | None) -> ZoneVersion | None:
        """Commit stored -> ``state`` for the ``touched`` keys (the version's record
        changes ARE the read-model difference, each with the event that caused it: 0 for
        a repair) with the checkpoint move, in one transaction."""
        proj = state.projection
        stored = {} if first else self.store.records_of(sorted(touched), self.name)
        state_before = self.store.read_model_state(self.name)
        count = state_before.records if state_before is not None else 0
        rm_removed: list[int] = []
        rm_added: list[tuple[ServiceKey, Record, bool]] = []
        gone: list[Record] = []
        new_records: list[Record] = []
        if first:
            rm_added.extend((NO_SERVICE, r, True) for r in APEX_RECORDS)
            new_records.extend(APEX_RECORDS)
        for key in sorted(touched):
            old = stored.get(key, {})
            new: RecordSet = proj.records_of(key)
            for r, (row_id, _visible) in old.items():
                if r not in new:
                    rm_removed.append(row_id)
                    gone.append(r)
            for r in new:
                if r not in old:
                    rm_added.append((key, r, True))
                    new_records.append(r)
        if first:
            # The first version publishes everything (the apex included), each record
            # with the event that made it (0: it was there before this runner's events).
            keys = set(proj.keys()) - touched
            for key in sorted(keys):
                for r in proj.records_of(key):
                    rm_added.append((key, r, True))
                    new_records.append(r)
        count += len(new_records) - len(gone)
        if ids_row is not None:
            rm_removed.extend(ids_row[0])
            rm_added.append((IDS_KEY, ids_row[1], False))
        rows = [(False, r, removed.get(r, 0)) for r in _sorted(gone)] + \
            [(True, r, added.get(r, 0)) for r in _sorted(new_records)]
        change = ReadModelChange(self.name, rm_removed, rm_added, (), (), (), (), count)
        return self._publish(from_seq, to_seq, rows, change, arrivals, len(new_records),
                             len(gone))

    # ----------------------------------------------------------------- checking

    def replay(self, progress: Progress | None = None) -> tuple[int, RecordSet]:
        """Every event of the sources up to the checkpoint counted, each object's newest
        folded into a fresh state: (events, records). Stores nothing."""
        checkpoint = self.store.max_tracking_seq(self.name)
        state = ClustersetState(self.spec.kind, self.cluster_ids())
        seqs: list[int] = []
        count = 0
        bar = progress if progress is not None else Progress(
            description="replaying events", unit="event")
        with bar:
            for seq, n in self.store.newest_events(checkpoint, sources=self.sources):
                seqs.append(seq)
                count += n
                bar.update(n)
            seqs.sort()
            state.load(_events(self.store, seqs))
        return count, state.projection.records()

    def rebuild(self, progress: Progress | None = None) -> RebuildReport:
        """Replay the sources' log from nothing and compare with the persisted read model
        at its checkpoint (they must be identical, as for cluster-local zones)."""

        self.catch_up()
        with gc_paused():
            started = time.perf_counter()
            count, replayed = self.replay(progress)
            seconds = time.perf_counter() - started
            current = self.records()
            return RebuildReport(events=count, records=len(replayed),
                                 identical=replayed == current, missing=current - replayed,
                                 extra=replayed - current, seconds=seconds)


_ABSENT: object = object()


def _key_of(r: Record) -> ServiceKey:
    """The ``(namespace, name)`` key a clusterset record belongs to: every owner ends in
    ``S.N.svc`` (``clusterset.records_for_import``)."""
    labels = r.owner.split(".")
    return (labels[-2], labels[-3])


def _events(store: Store, seqs: list[int]) -> Iterator[Event]:
    for start in range(0, len(seqs), 5000):
        yield from store.events_by_seq(seqs[start:start + 5000])


def _sorted(records: Iterable[Record]) -> list[Record]:
    return sorted(records, key=lambda r: (r.owner, r.rtype, r.rdata))
