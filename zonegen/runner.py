"""The projection runner: folds new events into zone versions, exactly once.

It reads the events after the projection's high-water mark, applies them to the pure
:class:`zonegen.project.Projection`, and commits the resulting zone version together with
the new high-water mark (``Store.commit_version``), so it can stop anywhere and resume
without skipping or repeating an event. Every command that reads the zone calls
:func:`ensure_projected` first, so users never have to remember ``project``. Warnings
go to one channel: the ``zonegen.runner`` logger, each naming the event or object.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import logging
import time
from collections import Counter
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from zonegen import project
from zonegen.changes import to_change
from zonegen.clock import Clock
from zonegen.errors import InvalidInput, InvalidName
from zonegen.logs import fields
from zonegen.metrics import Metrics, process_metrics
from zonegen.model import (
    DELETED,
    ENDPOINT_SLICE,
    ENDPOINTS,
    SERVICE,
    Change,
    Endpoints,
    EndpointSlice,
    Event,
    KubeObject,
    Record,
    Service,
    ZoneVersion,
)
from zonegen.partial import PartialProjection
from zonegen.progress import Progress
from zonegen.projections import CLUSTER_LOCAL, DEFAULT, ProjectionSpec
from zonegen.serial import next_serial
from zonegen.store import CheckpointMoved, ReadModelChange, Store

log = logging.getLogger("zonegen.runner")


@dataclass(frozen=True, slots=True)
class Projected:
    """What :func:`ensure_projected` found or made."""

    version: ZoneVersion | None  # the newest zone version
    made: tuple[ZoneVersion, ...]  # versions this call committed
    pending: bool  # events are left unprojected (a read-only database)


class Runner(Protocol):
    """What every projection runner offers (cluster-local here; the clusterset ones in
    ``zonegen.clusterset_runner``): writers, ``export`` and ``project`` use only this."""

    spec: ProjectionSpec
    name: str

    @property
    def version(self) -> ZoneVersion | None: ...

    def catch_up(self) -> list[ZoneVersion]: ...

    def records(self) -> frozenset[Record]: ...

    def rebuild(self, progress: Progress | None = None) -> RebuildReport: ...


def runner_for(store: Store, spec: ProjectionSpec = DEFAULT, clock: Clock = time.time, *,
               live: bool = False, metrics: Metrics | None = None,
               reduced: Mapping[int, KubeObject] | None = None) -> Runner:
    """The runner that folds ``spec``: :class:`ProjectionRunner` for a cluster-local
    projection, ``zonegen.clusterset_runner.ClustersetRunner`` for the clusterset kinds.
    The one place that maps a projection kind to its runner. ``reduced``: see
    :class:`ProjectionRunner` (the clusterset runners reduce what they read).

    :raises InvalidInput: this build cannot fold that kind (names the projection).
    """
    if spec.kind == CLUSTER_LOCAL:
        return ProjectionRunner(store, clock, live=live, metrics=metrics, spec=spec,
                                reduced=reduced)
    try:
        # By name: the clusterset runner is its own module (and may be absent).
        module = importlib.import_module("zonegen.clusterset_runner")
    except ImportError:
        raise InvalidInput(f"projection {spec.target}: {spec.kind} projections are not "
                           "available in this build") from None
    runner: Runner = module.ClustersetRunner(store, clock, live=live, metrics=metrics,
                                             spec=spec)
    return runner


def waiting_sources(store: Store, spec: ProjectionSpec,
                    unlisted: Collection[str] = ()) -> tuple[str, ...]:
    """The sources ``spec`` still waits for before its FIRST version (none once it has
    one): those in ``unlisted`` (the caller's own watchers have not stored the initial
    lists ``spec`` reads) and those whose initial list the log does not hold: no
    Service resume point (a watch stores its core kinds' lists and their resume points
    in one transaction; MCS kinds list apart, so their points do not count) and, for a
    source without any resume point, no event either (``ingest`` stores an input whole,
    in one transaction). So a ``watch --source b`` process elsewhere gates too, and a
    clusterset over a, b, c never publishes a first version while b is half listed.
    The writers of ``watch`` apply it; one-shot commands (``export``, ``project``)
    publish what the log holds."""
    if store.latest_version(spec.name) is not None:
        return ()
    waiting = {s for s in spec.sources if s in unlisted}
    rest = [s for s in spec.sources if s not in waiting]
    if rest:
        listed = store.resume_sources(SERVICE)
        watched = store.resume_sources() - listed
        waiting.update(s for s in rest if s not in listed and (
            s in watched or not store.select_events(limit=1, sources=[s])))
    return tuple(sorted(waiting))


def ensure_projected(store: Store, clock: Clock = time.time, *,
                     runner: Runner | None = None,
                     spec: ProjectionSpec = DEFAULT,
                     reduced: Mapping[int, KubeObject] | None = None) -> Projected:
    """The single entry for "pending events? then project": the newest zone version,
    after projecting whatever events are pending (or making the first version).

    A quiet log costs two small queries, not a projection load. On a read-only store
    (``store.read_only``) nothing is written: the newest stored version is the answer,
    and a warning says that events are pending. A long-running process (the watcher's
    writer, ``serve``'s feed) passes the ``runner`` it keeps, so its projection stays
    loaded between calls (and its ``live`` metrics apply); a one-shot command passes
    none and gets a fresh one on ``store`` with ``clock``.

    ``spec``: the projection (default ``source:default``; ignored when ``runner`` is
    given: the runner's own). ``reduced``: for a fresh runner (:class:`ProjectionRunner`).

    :raises StoreError: the store cannot be read or written.
    """
    if runner is not None:
        spec = runner.spec
    checkpoint = store.max_tracking_seq(spec.name)
    newest = store.max_event_seq()
    latest = store.latest_version(spec.name)
    if newest <= checkpoint and latest is not None:
        return Projected(latest, (), False)
    if store.read_only:
        if newest > checkpoint:
            log.warning("%s: events after seq %d are not projected yet and the database "
                        "is read-only; answering from %s", store.where, checkpoint,
                        f"serial {latest.serial}" if latest else "no zone version")
        return Projected(latest, (), newest > checkpoint)
    if runner is None:
        runner = runner_for(store, spec, clock=clock, reduced=reduced)
    made = runner.catch_up()
    return Projected(runner.version, tuple(made), False)


def adopt_projection(store: Store, spec: ProjectionSpec) -> None:
    """Make sure ``spec`` is registered, so every writer (``watch``, ``ingest``, ``source
    remove``) keeps folding it: the first command that names a projection (``export
    --zone ZONE=TARGET``, ``--source NAME``) registers it. Its sources must be known
    to the log (registered by ``watch``/``ingest``, or named by events).

    :raises InvalidInput: a source is unknown, the kind cannot be folded by this build,
        or the database is read-only and the projection not registered (one line each).
    """
    if any(known.name == spec.name for known in store.projections()):
        return
    known = {state.source.name for state in store.source_states()}
    missing = [s for s in spec.sources if s not in known]
    if missing:
        raise InvalidInput(f"projection {spec.target}: no such source {missing[0]} in "
                           f"{store.where} (known: {', '.join(sorted(known)) or 'none'})")
    if store.read_only:
        raise InvalidInput(f"projection {spec.target} is not registered in {store.where}, "
                           "which is read-only: name it once with write access first "
                           f"(zonegen export --zone ZONE={spec.target})")
    runner_for(store, spec)  # refuses a kind this build cannot fold, before registering
    if store.register_projection(spec):
        log.info("projection %s registered: writers fold it from now on", spec.target,
                 extra=fields(projection=spec.name, sources=list(spec.sources)))


def project_all(store: Store, clock: Clock = time.time, *,
                reduced: Mapping[int, KubeObject] | None = None) -> dict[str, Projected]:
    """:func:`ensure_projected` for every registered projection (``store.projections()``,
    the default first), as one-shot writers (``ingest``, ``project``) call it, so a
    zone ``export --zone ZONE=TARGET`` registered once keeps up with every write.
    ``reduced``: objects the caller reduced, by the seq of their stored event
    (:class:`ProjectionRunner`)."""
    return {spec.name: ensure_projected(store, clock, spec=spec, reduced=reduced)
            for spec in store.projections()}


@dataclass(frozen=True, slots=True)
class RebuildReport:
    """What ``project --rebuild`` found: the replayed record set against the current one."""

    events: int
    records: int
    identical: bool
    missing: frozenset[Record]  # in the current projection, not in the rebuild
    extra: frozenset[Record]  # in the rebuild, not in the current projection
    seconds: float

    def summary(self) -> str:
        rate = self.records / self.seconds if self.seconds else 0.0
        head = (f"replayed {self.events} events into {self.records} records in "
                f"{self.seconds:.2f}s ({rate:,.0f} records/s): ")
        if self.identical:
            return head + "identical to the current projection"
        return head + (f"DIFFERS from the current projection ({len(self.missing)} missing, "
                       f"{len(self.extra)} extra)")


class StoredZone:
    """What every runner reads back the same way: its projection's newest version (the
    one its last catch-up made or found) and its current records from the read model."""

    store: Store
    name: str
    clock: Clock
    metrics: Metrics
    _log_prefix = ""  # before "new serial …" (a clusterset runner names its projection)
    _version: ZoneVersion | None
    _known: bool  # _version was read or made by this runner

    @property
    def version(self) -> ZoneVersion | None:
        """The newest zone version (after :meth:`catch_up`, the one it made or found)."""
        if not self._known:
            return self.store.latest_version(self.name)
        return self._version

    def records(self) -> frozenset[Record]:
        """The current zone as the read model holds it."""
        with self.store.current_records(self.name) as (_version, records):
            return frozenset(records)

    def _publish(self, from_seq: int, to_seq: int, rows: list[tuple[bool, Record, int]],
                 change: ReadModelChange, arrivals: Counter[float], added: int,
                 removed: int) -> ZoneVersion | None:
        """Commit ``rows`` (journal rows ``(added, record, cause_seq)``) and ``change``
        with the checkpoint's move to ``to_seq``, under a new serial when anything
        changed or there is no version yet; then count the version's arrival latencies
        and log it. The one way every runner publishes.

        No record snapshot here (#11): a snapshot is the whole zone, so taking one when
        the changes since the last outgrew the zone made a burst (or the unlucky
        one-change catch-up after many) pay O(zone). The newest version's records come
        from the read model (``records_at``), and ``compact`` snapshots the oldest
        version it keeps, which bounds a past fold."""
        now = self.clock()
        serial: int | None = None
        if added or removed or self._version is None:
            previous = self._version.serial if self._version is not None else None
            # A clock before 1970 (ingest --time 0001-01-01) counts as 0, not negative.
            serial = next_serial(previous, max(int(now), 0))
        version = self.store.commit_version(
            (self.name, from_seq, to_seq),
            serial=serial,
            created_at=datetime.fromtimestamp(now, tz=UTC),
            rows=rows,
            read_model=change,
        )
        if version is not None:
            self._version = version
            self.metrics.version_committed(
                (t for t, n in arrivals.items() for _ in range(n)), now=max(now, 0.0))
            log.info("%snew serial %d: %d records added, %d removed", self._log_prefix,
                     version.serial, added, removed,
                     extra=fields(serial=version.serial, version=version.version_id,
                                  last_event_seq=version.last_event_seq,
                                  added=added, removed=removed, records=change.records))
        return version


class ProjectionRunner(StoredZone):
    """Folds pending events on the persisted read model (docs/DESIGN.md "Read model").

    Holds nothing between calls but the newest version: each :meth:`catch_up` loads
    only what its events touch (:class:`~zonegen.partial.PartialProjection`) and commits
    the version, its record changes, the read-model rows and the checkpoint in one
    transaction."""

    def __init__(
        self,
        store: Store,
        clock: Clock = time.time,
        batch_size: int = 20_000,
        *,
        live: bool = False,
        metrics: Metrics | None = None,
        spec: ProjectionSpec = DEFAULT,
        reduced: Mapping[int, KubeObject] | None = None,
    ) -> None:
        """``live``: the events arrive now (watch, serve --watch), so each committed
        version observes their arrival-to-version latency in ``metrics`` (default: the
        process's); a rebuild or an ingest of old files would record their age instead,
        so only the version count moves then. ``spec``: the projection (its name keys
        its checkpoint, versions and read model; its sources are the only events it
        folds, so another cluster's objects with the same names never reach it).
        ``reduced``: objects already reduced by this process from the input it just
        stored (``ingest``), by the seq of their event, taken instead of reducing the
        stored form again (:meth:`_change`)."""
        self.store = store
        self._reduced: Mapping[int, KubeObject] = reduced if reduced is not None else {}
        self.live = live
        self.metrics = metrics if metrics is not None else process_metrics()
        self.clock = clock
        self.batch_size = batch_size
        if spec.kind != CLUSTER_LOCAL:
            raise InvalidInput(f"projection {spec.target}: this runner folds cluster-local "
                               "projections only")
        self.spec = spec
        self.name = spec.name
        self.sources: tuple[str, ...] = spec.sources
        self._version: ZoneVersion | None = None
        self._known = False  # _version was read or made by this runner

    # ----------------------------------------------------------------- state

    @property
    def projection(self) -> project.Projection:
        """The whole projection as of the stored checkpoint, replayed from the newest
        event of each live object (for checks and tests; folding never loads it)."""
        return self._load()

    def _load(self) -> project.Projection:
        """The in-memory projection as of the stored checkpoint: the newest event of
        each live object up to it. Warnings were reported when those events were first
        projected, so they are not repeated here."""
        checkpoint = self.store.max_tracking_seq(self.name)
        latest = self.store.iter_latest_events(checkpoint, sources=self.sources)
        changes = (to_change(e) for e in latest)
        return project.rebuild(changes)

    # ----------------------------------------------------------------- folding

    def catch_up(self) -> list[ZoneVersion]:
        """Project every event pending at the start; return the zone versions made:
        one for all of them, none when nothing DNS-visible changed. The cyclic garbage
        collector is off meanwhile (:func:`gc_paused`): ``watch``, ``project`` and
        ``export`` fold bursts too, not only ``ingest``.

        :raises StoreError: the store cannot be read or written.
        """
        with gc_paused():
            return self._retried()

    def _retried(self) -> list[ZoneVersion]:
        for attempt in range(5):
            try:
                return self._catch_up()
            except CheckpointMoved:
                # Another zonegen sharing this log (export, project, a second watcher)
                # projected these events first: its versions are as good as ours.
                # Load again from the store and fold whatever is still pending.
                if attempt == 4:
                    raise
                log.info("projection checkpoint moved by another zonegen; reloading")
            except BaseException:
                # Nothing of a failed commit is kept: the next call starts from the store.
                self._known = False
                raise
        raise AssertionError("unreachable")

    def _catch_up(self) -> list[ZoneVersion]:
        """Fold everything pending now into ONE version (or none when nothing DNS-visible
        changed). The events are read in chunks of ``batch_size``; before each chunk is
        folded, the Services it touches are loaded from the read model (with their
        objects and the PTR rule's context), so the work follows the change, not the
        cluster. The end is the newest event seq seen at the start, so a busy writer
        cannot starve the commit. One stored transaction (an initial sync, a relist) is
        therefore never published as partial zones, however large it is."""
        checkpoint = self.store.max_tracking_seq(self.name)
        upto = self.store.max_event_seq()
        version = self.store.latest_version(self.name)
        self._version, self._known = version, True
        if upto <= checkpoint and version is not None:
            return []
        state = self.store.read_model_state(self.name)
        load = PartialProjection(self.store, self.name, empty=state is None)
        name_warnings: list[InvalidName] = []
        arrivals: Counter[float] = Counter()
        total = project.BatchDiff()  # every chunk folds into it: exact causes (#11)
        added, removed = total.added, total.removed
        last_seq = checkpoint
        while last_seq < upto:
            chunk = self.store.select_events(gt=last_seq, lte=upto, limit=self.batch_size,
                                             sources=self.sources)
            if not chunk:
                # Only other sources' events are left: the checkpoint still passes them,
                # so a quiet source is not rescanned on every catch-up.
                last_seq = upto
                break
            changes = [(event.seq, self._change(event)) for event in chunk]
            if self.live:
                arrivals.update(round(e.received_at.timestamp(), 3) for e in chunk)
            load.before(changes)
            # Burst folding (#11): each Service is recomputed once unless touched again,
            # and the causes are exactly what apply() per event and net_change give.
            load.projection.apply_many(changes, name_warnings, into=total)
            last_seq = chunk[-1].seq
        for warning in name_warnings:
            log.warning("%s", warning)
        change = load.change(state.records if state is not None else 0)
        made = self._commit(load.projection, checkpoint, last_seq, added, removed, arrivals,
                            change)
        return [made] if made is not None else []

    def _change(self, event: Event) -> Change:
        """``to_change(event, report=True)``, from the object the writer reduced when it
        stored ``event`` when there is one (the same value: see ``zonegen.ingest``) and
        it is the object this event holds (same kind, name, uid and version)."""
        obj = self._reduced.get(event.seq)
        if (obj is not None and event.type != DELETED and type(obj) is _REDUCED_AS.get(event.kind)
                and obj.uid == event.uid and obj.resource_version == event.resource_version
                and obj.name == event.name and obj.namespace == event.namespace):
            return Change(event.seq, event.kind, event.namespace, event.name, obj)
        return to_change(event, report=True)

    def _commit(self, projection: project.Projection, from_seq: int, to_seq: int,
                added: dict[Record, int], removed: dict[Record, int],
                arrivals: Counter[float], change: ReadModelChange) -> ZoneVersion | None:
        """Commit the net change up to ``to_seq`` with the checkpoint move and the
        read-model change; record the new serial in the metrics and the log."""
        # Journal rows as plain (added, record, cause) tuples: a burst writes hundreds
        # of thousands, and a frozen RecordChange per row cost more than its sort.
        rows: list[tuple[bool, Record, int]]
        if self._version is None:
            # The first version publishes everything, the apex records included.
            records = _sorted(projection.records())
            rows = [(True, r, added.get(r, 0)) for r in records]
            n_added, n_removed = len(records), 0
        else:
            rows = [(False, r, seq) for r, seq in _ordered(removed)]
            rows += [(True, r, seq) for r, seq in _ordered(added)]
            n_added, n_removed = len(added), len(removed)
        return self._publish(from_seq, to_seq, rows, change, arrivals, n_added, n_removed)

    # ----------------------------------------------------------------- checking

    def rebuild(self, progress: Progress | None = None) -> RebuildReport:
        """Replay the whole log from nothing and compare with the persisted read model
        at its checkpoint: DESIGN.md requires the two to be identical. Stores nothing.
        ``progress`` (default: a bar on stderr when it is a terminal) counts the events
        replayed. The replay and the comparison are :mod:`zonegen.rebuild`'s."""
        from zonegen.rebuild import rebuild_projection  # it builds on this module

        self.catch_up()
        return rebuild_projection(self.store, self.name, self.sources, progress)


_ABSENT: object = object()
_REDUCED_AS: dict[str, type] = {SERVICE: Service, ENDPOINT_SLICE: EndpointSlice,
                                ENDPOINTS: Endpoints}


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off for one ingest, catch-up or replay
    (``project --rebuild``): they make millions of small acyclic values (records, rows,
    reduced objects), and the collector's full passes over them cost a 100,000-endpoint
    burst more than a third of its time, freeing nothing. Nothing here builds reference
    cycles to leak; whatever garbage there is waits until the work ends. Nested uses
    leave it to the outermost."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _sorted(records: Iterable[Record]) -> list[Record]:
    # One rtype always has one rdata shape, so the tuples compare field by field.
    return sorted(records, key=lambda r: (r.owner, r.rtype, r.rdata))


def _ordered(causes: dict[Record, int]) -> list[tuple[Record, int]]:
    return sorted(causes.items(), key=_change_order)


def _change_order(item: tuple[Record, int]) -> tuple[int, str, int, tuple[str | int, ...]]:
    # Journal order within a version: by cause, then record (deterministic rows).
    r = item[0]
    return item[1], r.owner, r.rtype, r.rdata
