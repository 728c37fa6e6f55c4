"""``zonegen watch``: list, then watch, Kubernetes Services and EndpointSlices into the log.

One thread per (kind, namespace) lists and watches through ``zonegen.cluster`` (the
official client's kubeconfig loading, auth and urllib3 transport) but reads the raw HTTP
response: chunked JSON lines decoded with stdlib ``json``, never the client's generated
model objects (measured in ``bench/bench_watch.py``: building models costs far more than
decoding the JSON). Readers hand events to the single writer (``zonegen.writer``), which
commits them with each stream's resume point (STYLE.md #5) and runs the projector.

Lists are read in pages (``limit``/``continue``; an expired continue token lists again
from the first page), each page compared with the log's heads of just its objects and
then dropped, so a list holds a page, the names it listed and its changes, never the
cluster; vanished objects are found by walking the log's live heads a page at a time.
They are reconciled with the log by ``zonegen.reconcile`` and always land as one
transaction: the *initial sync* (every watched kind in every watched namespace, when the
log has no resume point for them) is one transaction, and no stream watches before it is
stored, so the first zone version holds Services and their endpoints together. A 410 Gone
on any watch makes every stream relist (a compaction ends them all), again as one
transaction, recording DELETED events for objects that vanished while nobody watched
(DESIGN.md, "The event log").

Readiness and metrics: the watcher holds a readiness condition per kind until that
kind's initial list is stored, and one per stream while the API server refuses it
(401/403), on the :class:`~zonegen.health.Readiness` it is given (``/readyz``); it moves
``zonegen_watch_*`` and, through the writer, ``zonegen_events_stored_total`` on the
:class:`~zonegen.metrics.Metrics` it is given. Both default to the process-wide ones.
:attr:`Watcher.synced`, :meth:`Watcher.status` and :attr:`Watcher.report` tell the same.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import random
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import FrameType
from typing import TYPE_CHECKING, Any

import urllib3

from zonegen.clock import Clock
from zonegen.cluster import (
    MCS_KINDS,
    RESOURCES,
    Cluster,
    Gone,
    Refused,
    Resource,
    StreamFailed,
    connect,
    reason,
)
from zonegen.errors import InvalidObject, WatchError
from zonegen.health import MetricsServer, Readiness, process_readiness
from zonegen.logs import fields
from zonegen.metrics import Metrics, process_metrics
from zonegen.model import (
    ADDED,
    DELETED,
    ENDPOINT_SLICE,
    ENDPOINTS,
    MODIFIED,
    SERVICE,
    Event,
    ObjectKey,
)
from zonegen.projections import CLUSTER_LOCAL, ProjectionSpec
from zonegen.reconcile import ObjectHead, Reconciler, Vanished, decode
from zonegen.sources import DEFAULT_SOURCE, resume_key
from zonegen.store import Store
from zonegen.writer import Commit, EventWriter, Resume, WriterOptions, WriteTotals

if TYPE_CHECKING:
    from zonegen.runner import ProjectionRunner

log = logging.getLogger("zonegen")

# Moved to zonegen.cluster and zonegen.writer; importable from here as before.
__all__ = ["RESOURCES", "Backoff", "Cluster", "Commit", "Resource", "SourceConfig",
           "SourceWatchers", "StreamStatus", "WatchOptions", "WatchReport", "Watcher",
           "connect", "iter_lines", "watch_command"]


class _Halted(Exception):
    """Shutdown interrupted a list between pages."""


# --------------------------------------------------------------------------- options


@dataclass(frozen=True, slots=True)
class WatchOptions:
    """How to watch. Defaults suit a real cluster; tests shrink the timings."""

    namespaces: tuple[str, ...] = ()  # empty: all namespaces
    legacy_endpoints: bool = False  # v1 Endpoints instead of EndpointSlices
    source: str | None = None  # the cluster's source name; None: DEFAULT_SOURCE
    origin: str | None = None  # how events arrive; None: Cluster.default_source
    cluster_id: str | None = None  # stored in ``sources``; None: keep, or the name
    mcs: bool = True  # also ServiceImports/ServiceExports, where discovery finds them
    project: bool = True  # run the projector after commits
    batch_size: int = 500  # events per transaction, at most (lists excepted)
    batch_interval: float = 0.1  # seconds a batch may wait to fill, at most
    linger: float = 0.005  # commit once the stream pauses this long
    queue_size: int = 5000  # events in flight between readers and the writer
    page_size: int = 500  # list page size (limit/continue)
    timeout_seconds: int = 300  # server-side watch timeout; then reconnect at once
    request_timeout: float = 10.0  # connect, and each wait for a list's bytes (seconds)
    backoff_initial: float = 0.5
    backoff_max: float = 30.0

    @property
    def kinds(self) -> tuple[str, ...]:
        """The core kinds, always watched (MCS kinds join by discovery)."""
        return (SERVICE, ENDPOINTS if self.legacy_endpoints else ENDPOINT_SLICE)

    @property
    def source_name(self) -> str:
        return self.source or DEFAULT_SOURCE

    @property
    def writer(self) -> WriterOptions:
        return WriterOptions(batch_size=self.batch_size, batch_interval=self.batch_interval,
                             linger=self.linger, queue_size=self.queue_size,
                             project=self.project)


@dataclass
class WatchReport(WriteTotals):
    """Totals for the command's final line (and for metrics)."""

    skipped: int = 0  # malformed objects
    relists: int = 0
    reconnects: int = 0

    def summary(self) -> str:
        serial = f"; serial {self.versions[-1].serial}" if self.versions else ""
        return (f"{self.stored} events stored ({self.duplicates} already known, "
                f"{self.skipped} malformed skipped) in {self.commits} commits; "
                f"{self.relists} lists, {self.reconnects} reconnects; "
                f"{len(self.versions)} zone versions{serial}")


    def to_json(self) -> dict[str, Any]:
        """The facts of :meth:`summary` (``watch --once --json``)."""
        return {"stored": self.stored, "duplicates": self.duplicates,
                "malformed": self.skipped, "commits": self.commits, "lists": self.relists,
                "reconnects": self.reconnects, "versions": len(self.versions),
                "serial": self.versions[-1].serial if self.versions else None}


@dataclass(frozen=True, slots=True)
class StreamStatus:
    """One stream's state, for readiness and metrics (:meth:`Watcher.status`)."""

    kind: str
    namespace: str | None  # None: all namespaces
    listed: bool  # a list of it arrived in this run (stored, or held for the sync)
    synced: bool  # its initial list is stored (or a previous run stored it)
    error: str | None  # the last failure, until a request succeeds again
    refused: bool  # that failure was a 401/403 (credentials or RBAC), not the network


# --------------------------------------------------------------------------- backoff


class Backoff:
    """Capped exponential backoff with full jitter in [d/2, d], so many zonegens
    reconnecting to one API server do not arrive in step."""

    def __init__(self, initial: float, cap: float, rng: random.Random | None = None) -> None:
        self.initial = initial
        self.cap = cap
        self.failures = 0
        self._rng = rng or random.Random()  # noqa: S311 (jitter, not secrets)

    def next(self) -> float:
        delay = min(self.cap, self.initial * (2 ** min(self.failures, 30)))
        self.failures += 1
        return float(delay * self._rng.uniform(0.5, 1.0))

    def reset(self) -> None:
        self.failures = 0


# --------------------------------------------------------------------------- decoding


def iter_lines(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Split a chunked body into JSON lines. Chunk and line boundaries need not agree:
    a line may span chunks, a chunk may hold many lines. Parts are joined only once a
    newline arrives, so a long line over many small chunks stays linear."""
    parts: list[bytes] = []
    for chunk in chunks:
        start = 0
        while True:
            nl = chunk.find(b"\n", start)
            if nl < 0:
                if start < len(chunk):
                    parts.append(chunk[start:])
                break
            piece = chunk[start:nl]
            if parts:
                parts.append(piece)
                piece = b"".join(parts)
                parts.clear()
            if piece.strip():
                yield piece
            start = nl + 1
    if parts:
        tail = b"".join(parts)
        if tail.strip():
            yield tail


def _describe_obj(kind: str, obj: Any) -> str:
    """'Service shop/db' when the object says that much, for warnings."""
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    if isinstance(meta, dict):
        return f"{kind} {meta.get('namespace') or '?'}/{meta.get('name') or '?'}"
    return f"{kind} (no metadata)"


# --------------------------------------------------------------------------- the watcher


@dataclass(slots=True)
class _Cursor:
    """Where one stream resumes: the resourceVersion after the last event it queued."""

    rv: str | None


@dataclass(slots=True)
class _Unit:
    """One list/watch stream: a kind in one namespace (or all), with its own resume key,
    and its state for :meth:`Watcher.status`.

    A resourceVersion from a namespaced list is only meaningful for that namespace's
    watch, so each namespace gets its own resume point (``<source>@<namespace>``)."""

    resource: Resource
    namespace: str | None
    resume_source: str
    event_seen: Callable[[float], None]  # zonegen_watch_last_event_timestamp_seconds
    listed: bool = False
    synced: bool = False
    error: str | None = None
    refused: bool = False

    @property
    def kind(self) -> str:
        return self.resource.kind

    @property
    def refused_key(self) -> str:
        """Its readiness condition while the API server refuses it."""
        return f"watch:refused:{self.resume_source}:{self.kind}"

    @property
    def label(self) -> str:
        where = f"namespace {self.namespace}" if self.namespace else "all namespaces"
        return f"{self.kind} ({where})"


@dataclass(frozen=True, slots=True)
class _Listing:
    """A whole list of one unit, reconciled: the events and the resume point after them."""

    events: tuple[Event, ...]
    resume: Resume | None
    objects: int = 0  # objects the API server listed

    @property
    def counts(self) -> tuple[int, int]:
        """(objects listed, changes stored), for the "synced" line: what is kept of a
        listing once it is handed to the writer, not its events."""
        return self.objects, len(self.events)


LIST_RESTARTS = 3
"""Lists started again from the first page after an expired continue token, in a row,
before the 410 is the stream's (which backs off) or ``--once``'s (one line)."""

HEADS_PER_READ = 2000
"""Live object heads read per query by a list's vanished check."""


class _Seen:
    """The objects one list named: per namespace, the set of names. Only what the
    vanished check asks (was this live head listed?), kept as the names themselves, not
    one (kind, namespace, name) key and head per object."""

    __slots__ = ("_names",)

    def __init__(self) -> None:
        self._names: dict[str, set[str]] = {}

    def update(self, keys: Iterable[ObjectKey]) -> None:
        for _kind, namespace, name in keys:
            names = self._names.get(namespace)
            if names is None:
                names = self._names[namespace] = set()
            names.add(name)

    def named(self, namespace: str, name: str) -> bool:
        names = self._names.get(namespace)
        return names is not None and name in names


def _keys(kind: str, items: Iterable[dict[str, Any]]) -> list[ObjectKey]:
    """The keys a page's objects claim (``metadata.namespace``, ``default`` when absent,
    and ``metadata.name``): whose heads the page is compared with."""
    out: list[ObjectKey] = []
    for item in items:
        meta = item.get("metadata")
        if isinstance(meta, dict) and isinstance(meta.get("name"), str):
            out.append((kind, str(meta.get("namespace") or "default"), meta["name"]))
    return out


class Watcher:
    """Lists and watches every configured kind into ``store``.

    Library use (``serve --watch``)::

        watcher = Watcher(store, connect(), WatchOptions(), on_commit=notify)
        threading.Thread(target=watcher.run, args=(stop,)).start()

    Streams without a stored resume point first take part in the initial sync: their
    lists are stored together, as one transaction, once every one of them has arrived;
    until then nothing of theirs is stored and no stream watches. A 410 Gone opens the
    same kind of round for every stream.

    :param on_commit: called from the writer thread after every commit, with what it
        stored and the zone versions projected after it.
    :param runner: the projection runner to use (default: a new one on ``store``).
    :param metrics: where ``zonegen_watch_*`` and ``zonegen_events_stored_total`` move
        (default: the process-wide :func:`~zonegen.metrics.process_metrics`).
    :param readiness: where the watcher holds its conditions (default: the process-wide
        :func:`~zonegen.health.process_readiness`).
    """

    def __init__(
        self,
        store: Store,
        cluster: Cluster,
        options: WatchOptions | None = None,
        clock: Clock = time.time,
        on_commit: Callable[[Commit], None] | None = None,
        runner: ProjectionRunner | None = None,
        metrics: Metrics | None = None,
        readiness: Readiness | None = None,
        writer: EventWriter | None = None,
    ) -> None:
        self.store = store
        self.metrics = metrics if metrics is not None else process_metrics()
        self.readiness = readiness if readiness is not None else process_readiness()
        self.cluster = cluster
        self.options = options or WatchOptions()
        self.clock = clock
        self.source = self.options.source_name
        self.origin = self.options.origin or cluster.default_source
        self.report = WatchReport()
        self._halt = threading.Event()
        self._pauses: deque[float] = deque(maxlen=16)
        self._fatal: BaseException | None = None
        self._lock = threading.Lock()
        self._responses: set[Any] = set()
        # A writer handed over is shared with other sources' watchers (SourceWatchers):
        # its owner starts and stops it, and its totals are the process's.
        self._owns_writer = writer is None
        self.writer = writer if writer is not None else EventWriter(
            store, self.options.writer, clock, self.report, self._lock, on_commit, runner,
            self.metrics)
        if self._owns_writer:
            self.writer.unlisted = self.unlisted
        self._discovered = not self.options.mcs  # MCS kinds looked up (or not wanted)
        self.units = [self._unit(RESOURCES[kind], ns) for kind in self.options.kinds
                      for ns in self._namespaces]
        # A sync round: lists held until every pending unit has listed, then stored as
        # one transaction. Round 0 is the initial sync (units without a resume point);
        # a 410 Gone on any watch opens the next, in which every unit relists.
        self._round = 0
        self._pending: set[int] = set()  # unit indexes the open round waits for
        self._listings: dict[int, _Listing] = {}  # unit index -> its list in this round
        self._round_stored = threading.Event()  # set: no round open, streams may watch
        self._streams: list[threading.Thread] = []  # started after run() began
        self._publish_state()  # nothing is stored yet: not ready, every kind unsynced

    @property
    def _namespaces(self) -> Sequence[str | None]:
        return self.options.namespaces or (None,)

    def _unit(self, resource: Resource, namespace: str | None) -> _Unit:
        return _Unit(resource, namespace, resume_key(self.source, namespace),
                     self.metrics.watch_event_setter(resource.kind, self.source))

    @property
    def kinds(self) -> tuple[str, ...]:
        """The kinds watched: the core ones, and the MCS kinds discovery found."""
        return tuple(dict.fromkeys(u.kind for u in self.units))

    @property
    def initial_synced(self) -> bool:
        """Whether every stream's initial list is stored (or was, in an earlier run)."""
        with self._lock:
            return self._discovered and all(u.synced for u in self.units)

    def unlisted(self, spec: ProjectionSpec) -> frozenset[str]:
        """This watcher's source while the initial lists ``spec`` reads are not all
        stored: the writer makes no first version of a projection that folds it
        (:func:`zonegen.runner.waiting_sources`). A cluster-local projection reads the
        core kinds only (a slow MCS discovery must not hold the cluster's zone); a
        clusterset one also waits for discovery and the MCS lists."""
        if spec.sources and self.source not in spec.sources:
            return frozenset()
        with self._lock:
            if spec.kind == CLUSTER_LOCAL:
                done = all(u.synced for u in self.units if u.kind not in MCS_KINDS)
            else:
                done = self._discovered and all(u.synced for u in self.units)
        return frozenset() if done else frozenset((self.source,))

    def _discover(self) -> list[int]:
        """Add the MCS kinds this API server serves (``multicluster.x-k8s.io``, by
        discovery; v1beta1 preferred), one stream per watched namespace; return the new
        units' indexes. A kind it does not serve (CRD not installed) is not watched by
        this source: one info line. Objects of it logged earlier stay as logged.

        :raises StreamFailed: discovery failed (unreachable, refused, ...).
        """
        if self._discovered:
            return []
        found = self.cluster.mcs_resources(self.options.request_timeout)
        missing = [k for k in MCS_KINDS if k not in found]
        if missing:
            log.info("source %s: %s not served by the Kubernetes API server at %s "
                     "(multicluster.x-k8s.io CRD not installed); not watched",
                     self.source, " and ".join(missing), self.cluster.host,
                     extra=fields(source=self.source, kinds=missing,
                                  api_server=self.cluster.host))
        with self._lock:
            first = len(self.units)
            self.units += [self._unit(found[k], ns) for k in MCS_KINDS if k in found
                           for ns in self._namespaces]
            self._discovered = True
            added = list(range(first, len(self.units)))
        self._publish_state()
        return added

    def _discover_and_stream(self) -> None:
        """The discovery thread of :meth:`run`: :meth:`_discover`, retried with backoff
        until it answers, then one stream per MCS unit found. It runs beside the core
        streams (a slow discovery never delays Services): a new unit lists on its own,
        outside the initial sync round, and takes part in later rounds (410 Gone)."""
        backoff = Backoff(self.options.backoff_initial, self.options.backoff_max)
        while not self._halt.is_set():
            try:
                added = self._discover()
            except StreamFailed as e:
                delay = backoff.next()
                log.warning("source %s: cannot discover multicluster.x-k8s.io from the "
                            "Kubernetes API server at %s: %s; retrying in %.2f s",
                            self.source, self.cluster.host, e, delay,
                            extra=fields(source=self.source, api_server=self.cluster.host))
                self._pause(delay)
                continue
            except BaseException as e:  # a bug or a store failure: stop everything
                self._fatal = e
                self._halt.set()
                return
            resume = {i: self.store.resume_point(self.units[i].resume_source,
                                                 self.units[i].kind) for i in added}
            with self._lock:
                for i in added:
                    self.units[i].synced = resume[i] is not None
                threads = [self._thread(i, resume[i]) for i in added]
                self._streams += threads
            self._publish_state()
            for t in threads:
                t.start()
            return

    def _thread(self, index: int, rv: str | None) -> threading.Thread:
        unit = self.units[index]
        return threading.Thread(target=self._stream, args=(index, rv), daemon=True,
                                name=f"zonegen-watch-{self.source}-{unit.kind}-"
                                     f"{unit.namespace or 'all'}")

    def _not_ready(self, what: str) -> str:
        """A readiness reason: ``watch: <what>``, naming the source when it is not the
        default one (a single-cluster zonegen reads as before)."""
        of = "" if self.source == DEFAULT_SOURCE else f" (source {self.source})"
        return f"watch{of}: {what}"

    # ----------------------------------------------------------------- state

    @property
    def synced(self) -> dict[str, bool]:
        """Per watched kind: whether its initial list, in every watched namespace, is
        stored (readiness: no zone before this is true for every kind)."""
        with self._lock:
            out: dict[str, bool] = {}
            for u in self.units:
                out[u.kind] = out.get(u.kind, True) and u.synced
            return out

    def status(self) -> tuple[StreamStatus, ...]:
        """Every stream's state: synced, and its last failure (a refusal apart)."""
        with self._lock:
            return tuple(StreamStatus(u.kind, u.namespace, u.listed, u.synced, u.error,
                                      u.refused) for u in self.units)

    def _failed(self, unit: _Unit, error: str | None, refused: int | None = None,
                verb: str = "list") -> None:
        """Record a stream's failure (``error`` None: its last request succeeded);
        ``refused`` is the HTTP status of a 401/403, which holds readiness."""
        with self._lock:
            changed = unit.error != error or unit.refused != (refused is not None)
            unit.error = error
            unit.refused = refused is not None
        if refused is not None:
            where = f" in namespace {unit.namespace}" if unit.namespace else ""
            self.readiness.block(unit.refused_key, self._not_ready(
                f"API server refused {verb} {unit.resource.plural}{where} ({refused})"))
        else:
            self.readiness.unblock(unit.refused_key)
        if changed:
            self._publish_state()

    def _publish_state(self) -> None:
        """Readiness and ``zonegen_watch_synced`` from the streams' state: a kind is
        synced once its initial list is stored in every watched namespace and none of
        its streams is refused."""
        with self._lock:
            stored: dict[str, bool] = {}
            answering: dict[str, bool] = {}
            for u in self.units:
                stored[u.kind] = stored.get(u.kind, True) and u.synced
                answering[u.kind] = answering.get(u.kind, True) and not u.refused
        for kind, done in stored.items():
            key = f"watch:{self.source}:{kind}"
            if done:
                self.readiness.unblock(key)
            else:
                self.readiness.block(key, self._not_ready(f"initial list of {kind} not stored"))
            self.metrics.watch_synced(kind, done and answering[kind], self.source)

    # ----------------------------------------------------------------- entry points

    def run(self, stop: threading.Event) -> WatchReport:
        """Watch until ``stop`` is set, then commit what was received and return.

        :raises StoreError: the log cannot be written (the watch stops then).
        """
        self.store.register_source(self.source, self.options.cluster_id)
        resume = {i: self.store.resume_point(u.resume_source, u.kind)
                  for i, u in enumerate(self.units)}
        with self._lock:
            for i, u in enumerate(self.units):
                u.synced = resume[i] is not None
        self._publish_state()
        self._pending = {i for i, rv in resume.items() if rv is None}
        if not self._pending:
            self._round_stored.set()
        if self._owns_writer:
            self.writer.start(self._halt)
        streams = [self._thread(i, resume[i]) for i in range(len(self.units))]
        if not self._discovered:
            streams.append(threading.Thread(target=self._discover_and_stream, daemon=True,
                                            name=f"zonegen-discover-{self.source}"))
        for t in streams:
            t.start()
        try:
            while not stop.wait(0.2):
                if self._fatal is not None or self.writer.fatal is not None:
                    break
        finally:
            self._shutdown(streams)
        fatal = self._fatal or self.writer.fatal
        if fatal is not None:
            # A process that keeps running (serve --watch) must not stay ready on a
            # zone nobody updates any more.
            self.readiness.block(f"watch:stopped:{self.source}",
                                 self._not_ready(f"stopped: {fatal}"))
            for kind in self.kinds:
                self.metrics.watch_synced(kind, False, self.source)
            raise fatal
        return self.report

    def sync_once(self) -> WatchReport:
        """``--once``: list every kind, store the differences as one transaction,
        project, return. A list that fails stores nothing at all.

        :raises WatchError: the API server cannot be reached, stalls, or refuses a list;
            the error names the server and the resource.
        :raises StoreError: the log cannot be written.
        """
        self.store.register_source(self.source, self.options.cluster_id)
        if self._owns_writer:
            self.writer.start(self._halt)
        try:
            try:
                self._discover()
            except StreamFailed as e:
                raise WatchError(f"cannot discover multicluster.x-k8s.io from the "
                                 f"Kubernetes API server at {self.cluster.host}: {e}"
                                 ) from None
            listings: list[_Listing] = []
            for unit in self.units:
                try:
                    listings.append(self._list(unit))
                except (StreamFailed, Gone) as e:
                    refused = e.status if isinstance(e, Refused) else None
                    self._failed(unit, self._describe_failure(unit, "list", e), refused)
                    raise WatchError(self._describe_failure(unit, "list", e)) from None
            everything = range(len(self.units))
            counts = {i: listing.counts for i, listing in enumerate(listings)}
            self.writer.put_group(
                [e for listing in listings for e in listing.events],
                [r for listing in listings if (r := listing.resume)],
                stored=lambda: self._synced(everything, counts))
            del listings  # the writer holds the events until they are stored
        finally:
            self._shutdown([])
        if self.writer.fatal is not None:
            raise self.writer.fatal
        return self.report

    def _synced(self, indexes: Iterable[int], counts: dict[int, tuple[int, int]],
                relist: bool = False) -> None:
        """The lists of ``indexes`` are committed (called by the writer): those units
        are synced; readiness, metrics and the lifecycle log say so."""
        indexes = list(indexes)
        with self._lock:
            for i in indexes:
                self.units[i].listed = self.units[i].synced = True
        self._publish_state()
        self._log_synced(indexes, counts, relist)

    def _log_synced(self, indexes: Iterable[int], counts: dict[int, tuple[int, int]],
                    relist: bool = False) -> None:
        """One lifecycle line per kind whose lists were just stored, with the counts
        ((objects listed, changes stored) per unit index)."""
        per_kind: dict[str, list[int]] = {}
        for i in indexes:
            total = per_kind.setdefault(self.units[i].kind, [0, 0])
            objects, changes = counts.get(i, (0, 0))
            total[0] += objects
            total[1] += changes
        of = "" if self.source == DEFAULT_SOURCE else f"source {self.source}: "
        for kind, (objects, changes) in sorted(per_kind.items()):
            log.info("%s%s %s: %d objects listed, %d changes stored",
                     of, kind, "relisted" if relist else "synced", objects, changes,
                     extra=fields(kind=kind, objects=objects, changes=changes,
                                  relist=relist, source=self.source))

    def _describe_failure(self, unit: _Unit, verb: str, e: BaseException) -> str:
        """One line naming the server, the verb and the resource."""
        where = f" in namespace {unit.namespace}" if unit.namespace else ""
        if isinstance(e, Refused):
            return (f"the Kubernetes API server at {self.cluster.host} refused to {verb} "
                    f"{unit.resource.plural}{where}: {e}")
        return (f"cannot {verb} {unit.resource.plural}{where} from the Kubernetes API "
                f"server at {self.cluster.host}: {e}")

    def _shutdown(self, streams: list[threading.Thread]) -> None:
        """Stop readers (interrupting blocked socket reads), then let the writer commit
        everything they queued and exit."""
        self._halt.set()
        with self._lock:
            responses = list(self._responses)
        for resp in responses:
            with contextlib.suppress(Exception):
                resp.shutdown()
        for t in streams:
            t.join()
        with self._lock:
            more = list(self._streams)
        for t in more:
            t.join()
        if self._owns_writer:
            self.writer.stop()
        else:  # the owner stops it; ours must be committed before we return
            with contextlib.suppress(WatchError):
                self.writer.barrier()

    # ----------------------------------------------------------------- one stream

    def _stream(self, index: int, rv: str | None) -> None:
        """List (unless a resume point exists), then watch, forever: reconnect after
        timeouts and drops, relist after 410 Gone."""
        unit = self.units[index]
        backoff = Backoff(self.options.backoff_initial, self.options.backoff_max)
        gone = Backoff(self.options.backoff_initial, self.options.backoff_max)
        cursor = _Cursor(rv)
        if cursor.rv is not None:
            log.info("%s: resuming watch from resourceVersion %s", unit.label, cursor.rv)
        verb = "list"
        my_round = 0  # what it holds (a resume point, or nothing) predates any relist
        while not self._halt.is_set():
            try:
                with self._lock:
                    if self._round != my_round:  # a joint relist is open: take part
                        my_round = self._round
                        cursor.rv = None
                if cursor.rv is None:
                    verb = "list"
                    cursor.rv = self._relist(index)
                    backoff.reset()
                    self._failed(unit, None)
                if not self._wait_round_stored(my_round):
                    return
                if self._round != my_round:
                    continue  # a joint relist opened meanwhile: take part first
                verb = "watch"
                if self._watch(unit, cursor, my_round):
                    backoff.reset()
                    gone.reset()
                    self._failed(unit, None)
                else:
                    self._pause(backoff.next())
            except Gone as e:
                # Relist at once; only a 410 right after a relist backs off (never spin).
                delay = gone.next() if gone.failures else 0.0
                gone.failures += 1
                if verb == "watch":
                    log.info("%s: %s; relisting every stream", unit.label, e)
                    my_round = self._open_round()
                else:  # the list's continue token expired: list again
                    log.info("%s: %s; relisting", unit.label, e)
                cursor.rv = None
                self._pause(delay)
            except _Halted:
                return
            except StreamFailed as e:
                if self._halt.is_set():
                    return
                delay = backoff.next()
                with self._lock:
                    self.report.reconnects += 1
                self.metrics.watch_reconnect(unit.kind, self.source)
                message = self._describe_failure(unit, verb, e)
                refused = e.status if isinstance(e, Refused) else None
                self._failed(unit, message, refused, verb)
                context = fields(kind=unit.kind, namespace=unit.namespace,
                                 api_server=self.cluster.host, verb=verb, status=refused,
                                 retry_seconds=round(delay, 3))
                if isinstance(e, Refused):
                    log.error("%s: %s; retrying in %.2f s", unit.label, message, delay,
                              extra=context)
                else:
                    log.warning("%s: Kubernetes API server %s: %s; reconnecting in %.2f s",
                                unit.label, self.cluster.host, e, delay, extra=context)
                self._pause(delay)
            except BaseException as e:  # a bug or a store failure: stop everything
                self._fatal = e
                self._halt.set()
                return

    def _wait_round_stored(self, my_round: int) -> bool:
        """Before watching: wait until no sync round is open, or a new one opened that
        this stream must join (False: shutdown)."""
        while not self._round_stored.wait(0.2):
            if self._halt.is_set():
                return False
            if self._round != my_round:
                return True
        return not self._halt.is_set()

    def _open_round(self) -> int:
        """After a 410 Gone: every unit relists, and all the lists land as one
        transaction (a compaction ends every watch; relisting kinds one by one would
        publish a zone with one kind relisted and the other not). Joins the round
        already open, if any. Interrupts the other streams' watches."""
        with self._lock:
            responses: list[Any] = []
            if self._round_stored.is_set():
                self._round += 1
                self._pending = set(range(len(self.units)))
                self._listings = {}
                self._round_stored.clear()
                responses = list(self._responses)
            current = self._round
        for resp in responses:
            with contextlib.suppress(Exception):
                resp.shutdown()
        return current

    def _relist(self, index: int) -> str:
        """List one unit and hand the list to the writer: held while a sync round is
        open until every pending unit has listed (then all of it as one group), else as
        a group of its own. Returns the resourceVersion to watch from."""
        unit = self.units[index]
        with self._lock:
            # A unit discovery added after the round opened is not part of it.
            in_round = not self._round_stored.is_set() and index in self._pending
        if in_round:
            listing = self._list(unit)
            rv = listing.resume[2] if listing.resume else ""
            with self._lock:
                unit.listed = True
                self._listings[index] = listing
                complete = set(self._listings) >= self._pending
                group = [self._listings[i] for i in sorted(self._listings)] if complete else []
            del listing
            if complete and not self._round_stored.is_set():
                with self._lock:
                    counts = {i: one.counts for i, one in self._listings.items()}
                    self._listings = {}
                    pending = sorted(self._pending)
                relist = self._round != 0
                self.writer.put_group(
                    [e for g in group for e in g.events],
                    [r for g in group if (r := g.resume)],
                    stored=lambda: self._synced(pending, counts, relist))
                # Only the writer holds the events now: they go once stored, before
                # the projector folds them.
                del group
                self.writer.barrier()
                self._round_stored.set()
            return rv
        listing = self._list(unit)
        rv = listing.resume[2] if listing.resume else ""
        with self._lock:
            unit.listed = True
            first = not unit.synced
        counts = {index: listing.counts}
        self.writer.put_group(listing.events, [listing.resume] if listing.resume else [],
                              stored=(lambda: self._synced([index], counts))
                              if first else None)
        return rv

    @property
    def recent_pauses(self) -> tuple[float, ...]:
        """The last 16 waits between reconnects and retries, in seconds: a watch that
        loops without backing off shows zeros here."""
        return tuple(self._pauses)

    def _pause(self, seconds: float) -> None:
        """Sleep, but wake at once on shutdown."""
        self._pauses.append(seconds)
        if seconds > 0:
            self._halt.wait(seconds)

    # ----------------------------------------------------------------- list

    def _list(self, unit: _Unit) -> _Listing:
        """List ``unit`` and reconcile it with the log (:meth:`_list_pages`). An
        expired continue token (410 Gone between pages: the API server compacted the
        snapshot the pages come from) lists again from the first page, as the API
        server asks; after :data:`LIST_RESTARTS` of those in a row the Gone is the
        caller's (a stream backs off and lists again, ``--once`` fails in one line).

        First waits until the writer has committed everything queued, so the heads
        include this unit's own watch events.
        """
        self.writer.barrier()
        restarts = 0
        while True:
            try:
                return self._list_pages(unit)
            except Gone as e:
                restarts += 1
                if restarts > LIST_RESTARTS:
                    raise
                log.info("%s: %s; listing again from the first page", unit.label, e,
                         extra=fields(kind=unit.kind, namespace=unit.namespace,
                                      source=self.source, api_server=self.cluster.host))

    def _list_pages(self, unit: _Unit) -> _Listing:
        """List ``unit`` page by page (``limit``/``continue``) and reconcile it with
        the log: ADDED for new objects, MODIFIED for changed ones, DELETED for those
        gone while unwatched, and the list's resourceVersion as the resume point.
        Nothing is queued: the caller stores the whole listing as one transaction.

        Memory follows a page, not the cluster: each page is compared with the heads
        of just its objects and then dropped. What a list keeps is its changes (the
        events to store) and the names it listed (:class:`_Seen`), which the vanished
        check at the end compares with the log's live heads, read page by page.

        :raises Gone: the continue token expired (HTTP 410) between pages.
        """
        with self._lock:
            self.report.relists += 1
        res = unit.resource
        timeout = self.options.request_timeout
        heads: dict[ObjectKey, ObjectHead] = {}  # the current page's, refilled per page
        reconciler = Reconciler(heads, self.source, self._now(), origin=self.origin)
        seen = _Seen()
        events: list[Event] = []
        cont: str | None = None
        list_rv = ""
        objects = 0
        while True:
            query = [("limit", str(self.options.page_size))]
            if cont:
                query.append(("continue", cont))
            page = self.cluster.get_json(res.path(unit.namespace), query, (timeout, timeout))
            meta = page.get("metadata")
            meta = meta if isinstance(meta, dict) else {}
            if not cont:
                list_rv = str(meta.get("resourceVersion") or "")
            cont = str(meta.get("continue") or "") or None
            found = page.get("items")
            items = [i for i in found if isinstance(i, dict)] if isinstance(found, list) else []
            del page, found
            objects += len(items)
            heads.clear()
            heads.update(self.store.heads_for(_keys(res.kind, items), source=self.source))
            for item in items:
                if res.kind in MCS_KINDS:  # stored with the version it was listed at
                    item.setdefault("apiVersion", res.api_version)
                try:
                    outcomes = reconciler.listed(res.kind, item)
                except InvalidObject as e:
                    self._skip(ADDED, res.kind, item, e)
                    continue
                events.extend(self._resolve(o, events) for o in outcomes)
            del items
            seen.update(reconciler.seen)
            reconciler.seen.clear()
            if not cont:
                break
            if self._halt.is_set():
                raise _Halted  # no resume point: the next run lists again
        heads.clear()
        events.extend(self._resolve(o, events) for o in self._vanished(unit, seen))
        resume = (unit.resume_source, unit.kind, list_rv) if list_rv else None
        return _Listing(tuple(events), resume, objects)

    def _vanished(self, unit: _Unit, seen: _Seen) -> list[Vanished]:
        """The objects of ``unit`` the log holds as live that a complete list did not
        name, in key order: the log's live heads are read a page at a time."""
        out: list[Vanished] = []
        after: tuple[str, str] | None = None
        while True:
            page = self.store.live_heads(unit.kind, unit.namespace, self.source, after,
                                         HEADS_PER_READ)
            out.extend(Vanished(unit.kind, *head) for head in page
                       if not seen.named(head[0], head[1]))
            if len(page) < HEADS_PER_READ:
                break
            after = (page[-1][0], page[-1][1])
        # The database's collation may order names otherwise: the log keeps key order.
        out.sort(key=lambda v: v.key)
        return out

    def _resolve(self, outcome: Event | Vanished, pending: list[Event]) -> Event:
        """A Vanished becomes a DELETED event repeating the last stored object."""
        if isinstance(outcome, Event):
            return outcome
        last: Event | None = None
        if outcome.last_seq:
            last = self.store.get_event(outcome.last_seq)
        else:  # decided within this list (the same name twice): the pending event
            last = next((e for e in reversed(pending) if e.key == outcome.key), None)
        return outcome.event(last.object_json if last else "{}", self.source, self._now(),
                             self.origin)

    # ----------------------------------------------------------------- watch

    def _watch(self, unit: _Unit, cursor: _Cursor, my_round: int) -> bool:
        """One watch request from ``cursor.rv`` until the server ends it or it breaks;
        ``cursor.rv`` follows every event queued, so a reconnect after a drop resumes
        exactly after the last event received.

        :returns: whether the stream was healthy (a normal end after events or after a
            while: reconnect at once, without backoff), or was interrupted (shutdown, a
            joint relist opened by another stream).
        :raises Gone: 410 as HTTP status or as an ERROR event.
        :raises StreamFailed: the request or the stream failed.
        """
        timeout = self.options.timeout_seconds
        query = [("watch", "true"), ("resourceVersion", cursor.rv or ""),
                 ("allowWatchBookmarks", "true"),
                 ("timeoutSeconds", str(timeout))]
        started = time.monotonic()
        resp = self.cluster.get(unit.resource.path(unit.namespace), query,
                                (self.options.request_timeout, timeout + 30.0))
        with self._lock:
            self._responses.add(resp)
            failed = unit.error is not None
        if failed:  # answering again (a refusal lifted): ready, without waiting for events
            self._failed(unit, None)
        lines = 0
        complete = False
        try:
            if self._interrupted(my_round):
                return True
            for line in iter_lines(resp.stream(None, decode_content=True)):
                before = cursor.rv
                cursor.rv = self._on_line(unit, line, cursor.rv or "")
                # Only lines that moved the resume point count as a working stream: a
                # proxy answering garbage must back off, not reconnect in a tight loop.
                if cursor.rv != before:
                    lines += 1
                if self._interrupted(my_round):
                    return True
            complete = True
        except (urllib3.exceptions.HTTPError, OSError) as e:
            if self._interrupted(my_round):
                return True
            raise StreamFailed(f"watch connection dropped ({reason(e)})") from None
        finally:
            with self._lock:
                self._responses.discard(resp)
            with contextlib.suppress(Exception):
                # A fully read stream may keep its connection; one left mid-body (410,
                # shutdown, error) must not go back to the pool with unread bytes.
                if complete:
                    resp.release_conn()
                else:
                    resp.close()
        log.debug("%s: watch ended after %d events; reconnecting", unit.label, lines)
        return lines > 0 or time.monotonic() - started >= 1.0

    def _interrupted(self, my_round: int) -> bool:
        """Shutdown, or another stream opened a sync round this one must join."""
        return self._halt.is_set() or self._round != my_round

    def _on_line(self, unit: _Unit, line: bytes, rv: str) -> str:
        """Decode one watch event, queue it, return the new resume resourceVersion."""
        try:
            frame = json.loads(line)
        except (ValueError, RecursionError):
            log.warning("%s: skipping a watch line that is not JSON (%d bytes)",
                        unit.label, len(line))
            return rv
        if not isinstance(frame, dict):
            return rv
        typ = frame.get("type")
        obj = frame.get("object")
        if typ == "ERROR":
            code = obj.get("code") if isinstance(obj, dict) else None
            message = obj.get("message") if isinstance(obj, dict) else None
            if code == 410:
                raise Gone(f"watch expired: {message or 'too old resource version'}")
            raise StreamFailed(f"watch error {code}: {message}")
        if not isinstance(obj, dict):
            log.warning("%s: skipping a %s event without an object", unit.label, typ)
            return rv
        meta = obj.get("metadata")
        new_rv = str(meta.get("resourceVersion") or "") if isinstance(meta, dict) else ""
        unit.event_seen(self.clock())
        if typ == "BOOKMARK":
            if new_rv:
                self.writer.put(None, (unit.resume_source, unit.kind, new_rv))
                return new_rv
            return rv
        if typ not in (ADDED, MODIFIED, DELETED):
            log.warning("%s: skipping a watch event of unknown type %r", unit.label, typ)
            return rv
        event = self._event(unit.kind, typ, obj)
        if not new_rv:
            return rv
        self.writer.put(event, (unit.resume_source, unit.kind, new_rv))
        return new_rv

    # ----------------------------------------------------------------- events

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), tz=UTC)

    def _event(self, kind: str, typ: str, obj: dict[str, Any]) -> Event | None:
        """The log event for a watch event, or None (with a one-line warning naming the
        object) when the reducer rejects it: one malformed object must not stop the
        watch."""
        try:
            reduced, object_json = decode(kind, obj)
        except InvalidObject as e:
            self._skip(typ, kind, obj, e)
            return None
        return Event(0, self._now(), self.source, typ, kind, reduced.namespace,
                     reduced.name, reduced.uid, reduced.resource_version, object_json,
                     self.origin)

    def _skip(self, typ: str, kind: str, obj: Any, e: InvalidObject) -> None:
        log.warning("skipping malformed %s event for %s: %s", typ, _describe_obj(kind, obj), e)
        with self._lock:
            self.report.skipped += 1


# --------------------------------------------------------------------------- sources


@dataclass(frozen=True, slots=True)
class SourceConfig:
    """One cluster to watch: its source name and how to reach it (``watch --source NAME
    --kubeconfig F --context C --cluster-id ID``, repeatable)."""

    name: str = DEFAULT_SOURCE
    kubeconfig: str | None = None
    context: str | None = None
    cluster_id: str | None = None


class SourceWatchers:
    """Several sources watched by one process: one :class:`Watcher` per source (its own
    API server, streams, resume points, object heads, readiness and metrics), all
    sharing one :class:`~zonegen.writer.EventWriter`, so the process has one writer
    transaction at a time and one projector.

    The initial sync gate is per projection: each source's initial lists are one
    transaction of their own, and the writer makes no first version of a projection
    until every source *it folds* has stored its initial lists (or resumed from resume
    points; :func:`zonegen.runner.waiting_sources`, which also asks the log, so a
    ``watch --source b`` in another process gates the same way). ``source:a`` publishes
    as soon as ``a`` is listed; a clusterset over ``a`` and ``b`` waits for both. A source
    whose API server never answers holds back the projections that fold it; that is
    readiness's job to show (``/readyz`` names the source).
    """

    def __init__(self, store: Store, clusters: Sequence[tuple[Cluster, WatchOptions]],
                 clock: Clock = time.time, metrics: Metrics | None = None,
                 readiness: Readiness | None = None) -> None:
        if not clusters:
            raise WatchError("no source to watch")
        self.metrics = metrics if metrics is not None else process_metrics()
        self.report = WatchReport()
        self._lock = threading.Lock()
        first = clusters[0][1]
        self.writer = EventWriter(store, first.writer, clock, self.report, self._lock,
                                  None, None, self.metrics)
        self.watchers = [Watcher(store, cluster, options, clock, metrics=self.metrics,
                                 readiness=readiness, writer=self.writer)
                         for cluster, options in clusters]
        self.writer.unlisted = self.unlisted

    def unlisted(self, spec: ProjectionSpec) -> frozenset[str]:
        """The sources of this process whose initial lists ``spec`` reads are not all
        stored."""
        return frozenset().union(*(w.unlisted(spec) for w in self.watchers))

    def summary_report(self) -> WatchReport:
        """The process's totals: the writer's, with every watcher's lists,
        reconnects and malformed objects added."""
        out = WatchReport(self.report.stored, self.report.duplicates, self.report.commits,
                          list(self.report.versions))
        for w in self.watchers:
            out.skipped += w.report.skipped
            out.relists += w.report.relists
            out.reconnects += w.report.reconnects
        return out

    def sync_once(self) -> WatchReport:
        """Every source's ``--once``, each its own transaction; one projection after
        all of them (none when one failed: :class:`WatchError` naming its server)."""
        halt = threading.Event()
        self.writer.start(halt)
        try:
            for w in self.watchers:
                w.sync_once()
        finally:
            self.writer.stop()
        if self.writer.fatal is not None:
            raise self.writer.fatal
        return self.summary_report()

    def run(self, stop: threading.Event) -> WatchReport:
        """Watch every source until ``stop`` is set (or one fails: its error is raised
        after the others stopped and everything received is committed)."""
        halt = threading.Event()
        self.writer.start(halt)
        failures: list[BaseException] = []

        def one(w: Watcher) -> None:
            try:
                w.run(stop)
            except BaseException as e:
                failures.append(e)
                stop.set()

        threads = [threading.Thread(target=one, args=(w,), daemon=True,
                                    name=f"zonegen-source-{w.source}") for w in self.watchers]
        for t in threads:
            t.start()
        try:
            while any(t.is_alive() for t in threads):
                if self.writer.fatal is not None:
                    stop.set()
                for t in threads:
                    t.join(0.2)
        finally:
            stop.set()
            for t in threads:
                t.join()
            self.writer.stop()
        fatal = self.writer.fatal or (failures[0] if failures else None)
        if fatal is not None:
            raise fatal
        return self.summary_report()


# --------------------------------------------------------------------------- command


def watch_command(
    store: Store,
    kubeconfig: str | None = None,
    context: str | None = None,
    options: WatchOptions | None = None,
    once: bool = False,
    stop: threading.Event | None = None,
    metrics_listen: tuple[str, int] | None = None,
    metrics: Metrics | None = None,
    readiness: Readiness | None = None,
    sources: Sequence[SourceConfig] | None = None,
) -> WatchReport:
    """``zonegen watch``: connect, then sync once or watch until SIGINT/SIGTERM.

    ``sources`` (default: one, from ``kubeconfig``/``context`` and ``options.source``)
    are watched by one process (:class:`SourceWatchers` when more than one), each with
    ``options`` and its own name, kubeconfig, context and cluster id.

    Signals set ``stop``; the watcher then commits what it has received and returns, so
    the command exits 0 with nothing lost. With ``metrics_listen`` (host, port; port 0
    picks one, named in the "watch started" line) ``/metrics``, ``/healthz`` and
    ``/readyz`` are served while it watches.

    :raises WatchError: configuration unusable, or (``once``) the server unreachable.
    :raises MetricsListenError: the metrics address cannot be bound.
    :raises StoreError: the log cannot be written.
    """
    options = options or WatchOptions()
    if not sources:
        sources = [SourceConfig(options.source_name, kubeconfig, context, options.cluster_id)]
    names = [s.name for s in sources]
    if len(set(names)) != len(names):
        raise WatchError(f"source {next(n for n in names if names.count(n) > 1)} is "
                         "given twice")
    clusters: list[tuple[Cluster, WatchOptions]] = []
    try:
        for spec in sources:
            cluster = connect(spec.kubeconfig, spec.context)
            clusters.append((cluster, dataclasses.replace(
                options, source=spec.name, cluster_id=spec.cluster_id)))
        metrics = metrics if metrics is not None else process_metrics()
        readiness = readiness if readiness is not None else process_readiness()
        runner: Watcher | SourceWatchers
        if len(clusters) == 1:
            cluster, opts = clusters[0]
            runner = Watcher(store, cluster, opts, metrics=metrics, readiness=readiness)
        else:
            runner = SourceWatchers(store, clusters, metrics=metrics, readiness=readiness)
        if once:
            return runner.sync_once()
        stop = stop or threading.Event()
        with contextlib.ExitStack() as running:
            where = None
            if metrics_listen is not None:
                server = running.enter_context(MetricsServer(
                    metrics_listen[0], metrics_listen[1], metrics, readiness))
                where = f"[{server.host}]:{server.port}" if ":" in server.host else \
                    f"{server.host}:{server.port}"
            running.enter_context(_stop_on_signals(stop))
            namespaces = list(options.namespaces) or ["*"]
            for cluster, opts in clusters:
                log.info("watch started: source %s, API server %s, %s in %s, database %s",
                         opts.source_name, cluster.host, ", ".join(options.kinds),
                         "all namespaces" if namespaces == ["*"] else ", ".join(namespaces),
                         store.where, extra=fields(
                             api_server=cluster.host, context=cluster.context,
                             source=opts.source_name, origin=cluster.default_source,
                             kinds=list(options.kinds), namespaces=namespaces,
                             database=store.where, metrics=where, project=options.project))
            report = runner.run(stop)
            log.info("watch stopped: %s", report.summary(), extra=fields(**report.to_json()))
            return report
    finally:
        for cluster, _ in clusters:
            cluster.close()


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGINT/SIGTERM set ``stop`` instead of raising in the middle of a commit."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: FrameType | None) -> None:
        log.info("%s: committing and stopping", signal.Signals(signum).name)
        stop.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
