"""``zonegen watch``: list, then watch, Kubernetes Services and EndpointSlices into the log.

One thread per (kind, namespace) lists and watches through the official client's
``ApiClient`` (its kubeconfig/in-cluster loading, auth and urllib3 transport) but reads the
raw HTTP response: chunked JSON lines decoded with stdlib ``json``, never the client's
generated model objects (measured in ``bench/bench_watch.py``: building models costs far
more than decoding the JSON). A single writer thread commits events in small transactions
(count- and time-bounded) together with each stream's resume point (STYLE.md #5), then runs
the projector. A 410 Gone relists and diffs against the log's object heads, so objects that
vanished while nobody watched get DELETED events (DESIGN.md, "The event log").

Imports ``kubernetes``, ``urllib3`` and the store; nothing downstream of the reducers sees a
raw API dict. The projector is imported lazily, only when projecting.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import random
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import FrameType
from typing import TYPE_CHECKING, Any

import urllib3

from zonegen.clock import Clock
from zonegen.cluster import (
    RESOURCES,
    Cluster,
    Gone,
    Resource,
    StreamFailed,
    connect,
    reason,
    status_message,
)
from zonegen.errors import InvalidObject, WatchError
from zonegen.model import (
    ADDED,
    DELETED,
    ENDPOINT_SLICE,
    ENDPOINTS,
    MODIFIED,
    SERVICE,
    Event,
    ZoneVersion,
    reduce,
)
from zonegen.store import ObjectHead, Store

if TYPE_CHECKING:
    from zonegen.runner import ProjectionRunner

log = logging.getLogger("zonegen")

# Moved to zonegen.cluster; importable from here as before.
__all__ = ["RESOURCES", "Backoff", "Cluster", "Commit", "Resource", "WatchOptions",
           "WatchReport", "Watcher", "connect", "iter_lines", "strip_managed_fields",
           "watch_command"]

CONNECT_TIMEOUT = 10.0
LIST_READ_TIMEOUT = 120.0

_Gone = Gone
_StreamFailed = StreamFailed


class _Halted(Exception):
    """Shutdown interrupted a list between pages."""


_reason = reason


# --------------------------------------------------------------------------- options


@dataclass(frozen=True, slots=True)
class WatchOptions:
    """How to watch. Defaults suit a real cluster; tests shrink the timings."""

    namespaces: tuple[str, ...] = ()  # empty: all namespaces
    legacy_endpoints: bool = False  # v1 Endpoints instead of EndpointSlices
    source: str | None = None  # default Cluster.default_source
    project: bool = True  # run the projector after commits
    batch_size: int = 500  # events per transaction, at most
    batch_interval: float = 0.1  # seconds a batch may wait to fill, at most
    linger: float = 0.005  # commit once the stream pauses this long
    queue_size: int = 5000  # events in flight between readers and the writer
    page_size: int = 500  # list page size (limit/continue)
    timeout_seconds: int = 300  # server-side watch timeout; then reconnect at once
    backoff_initial: float = 0.5
    backoff_max: float = 30.0

    @property
    def kinds(self) -> tuple[str, ...]:
        return (SERVICE, ENDPOINTS if self.legacy_endpoints else ENDPOINT_SLICE)


@dataclass(frozen=True, slots=True)
class Commit:
    """What one writer transaction did; passed to ``on_commit`` (``serve --watch`` uses
    ``versions`` to send NOTIFY and refresh its zones)."""

    stored: int  # new events stored
    duplicates: int  # events already in the log, skipped (idempotency key)
    last_seq: int  # highest sequence number stored by this commit (0: none)
    resume: tuple[tuple[str, str, str], ...]  # (source, kind, resourceVersion) moved
    versions: tuple[ZoneVersion, ...]  # zone versions projected after this commit


@dataclass
class WatchReport:
    """Totals for the command's final line."""

    stored: int = 0
    duplicates: int = 0
    skipped: int = 0  # malformed objects
    commits: int = 0
    relists: int = 0
    reconnects: int = 0
    versions: list[ZoneVersion] = field(default_factory=list)

    def summary(self) -> str:
        serial = f"; serial {self.versions[-1].serial}" if self.versions else ""
        return (f"{self.stored} events stored ({self.duplicates} already known, "
                f"{self.skipped} malformed skipped) in {self.commits} commits; "
                f"{self.relists} lists, {self.reconnects} reconnects; "
                f"{len(self.versions)} zone versions{serial}")


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


def strip_managed_fields(obj: dict[str, Any]) -> dict[str, Any]:
    """Drop ``metadata.managedFields``: server-side-apply bookkeeping, often most of an
    object's bytes, never DNS-relevant (DESIGN.md allows stripping it)."""
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        meta.pop("managedFields", None)
    return obj


def _dumps(obj: Mapping[str, Any]) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def _describe_obj(kind: str, obj: Any) -> str:
    """'Service shop/db' when the object says that much, for warnings."""
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    if isinstance(meta, dict):
        return f"{kind} {meta.get('namespace') or '?'}/{meta.get('name') or '?'}"
    return f"{kind} (no metadata)"


# --------------------------------------------------------------------------- the watcher


@dataclass(frozen=True, slots=True)
class _Put:
    """One queue item: an event and/or the resume point that follows it."""

    event: Event | None
    resume: tuple[str, str, str] | None


class _Barrier:
    """Queue item: the writer commits everything before it, then sets ``done``."""

    def __init__(self) -> None:
        self.done = threading.Event()


_STOP = object()


@dataclass(slots=True)
class _Cursor:
    """Where one stream resumes: the resourceVersion after the last event it queued."""

    rv: str | None


@dataclass(frozen=True, slots=True)
class _Unit:
    """One list/watch stream: a kind in one namespace (or all), with its own resume key.

    A resourceVersion from a namespaced list is only meaningful for that namespace's
    watch, so each namespace gets its own resume point (``<source>@<namespace>``)."""

    resource: Resource
    namespace: str | None
    resume_source: str

    @property
    def kind(self) -> str:
        return self.resource.kind

    @property
    def label(self) -> str:
        where = f"namespace {self.namespace}" if self.namespace else "all namespaces"
        return f"{self.kind} ({where})"


class Watcher:
    """Lists and watches every configured kind into ``store``.

    Library use (``serve --watch``)::

        watcher = Watcher(store, connect(), WatchOptions(), on_commit=notify)
        threading.Thread(target=watcher.run, args=(stop,)).start()

    :param on_commit: called from the writer thread after every commit, with what it
        stored and the zone versions projected after it.
    :param runner: the projection runner to use (default: a new one on ``store``).
    """

    def __init__(
        self,
        store: Store,
        cluster: Cluster,
        options: WatchOptions | None = None,
        clock: Clock = time.time,
        on_commit: Callable[[Commit], None] | None = None,
        runner: ProjectionRunner | None = None,
    ) -> None:
        self.store = store
        self.cluster = cluster
        self.options = options or WatchOptions()
        self.clock = clock
        self.on_commit = on_commit
        self.source = self.options.source or cluster.default_source
        self.report = WatchReport()
        self._runner = runner
        self._queue: queue.Queue[object] = queue.Queue(self.options.queue_size)
        self._halt = threading.Event()
        self._fatal: BaseException | None = None
        self._lock = threading.Lock()
        self._responses: set[Any] = set()
        self._writer_thread: threading.Thread | None = None
        self._last_commit = Commit(0, 0, 0, (), ())
        namespaces: Sequence[str | None] = self.options.namespaces or (None,)
        self.units = [
            _Unit(RESOURCES[kind], ns, self.source if ns is None else f"{self.source}@{ns}")
            for kind in self.options.kinds for ns in namespaces
        ]

    # ----------------------------------------------------------------- entry points

    def run(self, stop: threading.Event) -> WatchReport:
        """Watch until ``stop`` is set, then commit what was received and return.

        :raises StoreError: the log cannot be written (the watch stops then).
        """
        writer = self._start_writer()
        streams = [threading.Thread(target=self._stream, args=(u,), daemon=True,
                                    name=f"zonegen-watch-{u.kind}-{u.namespace or 'all'}")
                   for u in self.units]
        for t in streams:
            t.start()
        try:
            while not stop.wait(0.2):
                if self._fatal is not None:
                    break
        finally:
            self._shutdown(streams, writer)
        if self._fatal is not None:
            raise self._fatal
        return self.report

    def sync_once(self) -> WatchReport:
        """``--once``: list every kind, store the differences, project, return.

        :raises WatchError: the API server cannot be reached or refuses a list; the error
            names the server.
        :raises StoreError: the log cannot be written.
        """
        writer = self._start_writer()
        try:
            for unit in self.units:
                try:
                    try:
                        self._list_and_diff(unit)
                    except _Gone:
                        self._list_and_diff(unit)  # the continue token expired: once more
                except (_StreamFailed, _Gone) as e:
                    raise WatchError(
                        f"cannot list {unit.resource.plural} from the Kubernetes API server "
                        f"at {self.cluster.host}: {e}") from None
        finally:
            self._shutdown([], writer)
        if self._fatal is not None:
            raise self._fatal
        return self.report

    def _shutdown(self, streams: list[threading.Thread], writer: threading.Thread) -> None:
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
        with contextlib.suppress(WatchError):
            self._enqueue(_STOP)
        writer.join()

    # ----------------------------------------------------------------- one stream

    def _stream(self, unit: _Unit) -> None:
        """List (unless a resume point exists), then watch, forever: reconnect after
        timeouts and drops, relist after 410 Gone."""
        backoff = Backoff(self.options.backoff_initial, self.options.backoff_max)
        gone = Backoff(self.options.backoff_initial, self.options.backoff_max)
        cursor = _Cursor(self.store.resume_point(unit.resume_source, unit.kind))
        if cursor.rv is not None:
            log.info("%s: resuming watch from resourceVersion %s", unit.label, cursor.rv)
        while not self._halt.is_set():
            try:
                if cursor.rv is None:
                    cursor.rv = self._list_and_diff(unit)
                    backoff.reset()
                if self._halt.is_set():
                    return
                if self._watch(unit, cursor):
                    backoff.reset()
                    gone.reset()
                else:
                    self._pause(backoff.next())
            except _Gone as e:
                # Relist at once; only a 410 right after a relist backs off (never spin).
                delay = gone.next() if gone.failures else 0.0
                gone.failures += 1
                log.info("%s: %s; relisting", unit.label, e)
                cursor.rv = None
                self._pause(delay)
            except _Halted:
                return
            except _StreamFailed as e:
                if self._halt.is_set():
                    return
                delay = backoff.next()
                with self._lock:
                    self.report.reconnects += 1
                log.warning("%s: Kubernetes API server %s: %s; reconnecting in %.2f s",
                            unit.label, self.cluster.host, e, delay)
                self._pause(delay)
            except BaseException as e:  # a bug or a store failure: stop everything
                self._fatal = e
                self._halt.set()
                return

    def _pause(self, seconds: float) -> None:
        """Sleep, but wake at once on shutdown."""
        if seconds > 0:
            self._halt.wait(seconds)

    def _get(self, unit: _Unit, query: list[tuple[str, str]], read_timeout: float) -> Any:
        """GET through the client's ApiClient (auth, TLS, proxies as configured), returning
        the raw urllib3 response, unread.

        :raises _Gone: HTTP 410.
        :raises _StreamFailed: transport error or any other non-2xx status.
        """
        api = self.cluster.api
        try:
            method, url, headers, body, post = api.param_serialize(
                "GET", unit.resource.path(unit.namespace), query_params=query,
                header_params={"Accept": "application/json"}, auth_settings=["BearerToken"])
            rest = api.call_api(method, url, headers, body, post,
                                _request_timeout=(CONNECT_TIMEOUT, read_timeout))
        except (urllib3.exceptions.HTTPError, OSError) as e:
            raise _StreamFailed(_reason(e)) from None
        except Exception as e:  # kubernetes.client.ApiException (TLS), exec-plugin errors
            raise _StreamFailed(_reason(e)) from None
        resp = rest.response
        if 200 <= resp.status < 300:
            return resp
        try:
            data = resp.read()
        except (urllib3.exceptions.HTTPError, OSError):
            data = b""
        finally:
            resp.release_conn()
        if resp.status == 410:
            raise _Gone(status_message(data, 410))
        raise _StreamFailed(status_message(data, resp.status))

    # ----------------------------------------------------------------- list

    def _list_and_diff(self, unit: _Unit) -> str:
        """List ``unit`` page by page and queue, against the log's heads, ADDED for new
        objects, MODIFIED for changed ones and DELETED for those gone while unwatched,
        then the list's resourceVersion as the resume point (so it commits only after
        every difference). Memory stays at one page plus the heads.

        :returns: the list's resourceVersion, to watch from.
        """
        self._barrier()  # the heads must include every event already queued
        heads = self.store.heads([unit.kind],
                                 [unit.namespace] if unit.namespace is not None else None)
        with self._lock:
            self.report.relists += 1
        seen: set[tuple[str, str, str]] = set()
        cont: str | None = None
        list_rv = ""
        res = unit.resource
        while True:
            query = [("limit", str(self.options.page_size))]
            if cont:
                query.append(("continue", cont))
            resp = self._get(unit, query, LIST_READ_TIMEOUT)
            try:
                body = resp.read()
            except (urllib3.exceptions.HTTPError, OSError) as e:
                raise _StreamFailed(_reason(e)) from None
            finally:
                resp.release_conn()
            try:
                page = json.loads(body)
            except ValueError:
                raise _StreamFailed("list response is not JSON") from None
            del body
            if not isinstance(page, dict):
                raise _StreamFailed("list response is not a JSON object")
            meta = page.get("metadata") or {}
            if not cont:
                list_rv = str(meta.get("resourceVersion") or "")
            now = self._now()
            for item in page.get("items") or ():
                if not isinstance(item, dict):
                    continue
                key = _raw_key(unit.kind, item)
                if key is not None:
                    known = heads.get(key)
                    if (known is not None and not known.deleted
                            and (known.uid, known.resource_version) == _raw_version(item)):
                        seen.add(key)  # unchanged: skip the decode work of a relist
                        continue
                # List items omit kind/apiVersion; a stored object should say what it is.
                item.setdefault("kind", res.kind)
                item.setdefault("apiVersion", res.api_version)
                event = self._event(unit.kind, ADDED, item, now)
                if event is None:
                    if key is not None:
                        seen.add(key)  # malformed now, but it exists: keep its last state
                    continue
                seen.add(event.key)
                head = heads.get(event.key)
                if head is not None and not head.deleted:
                    if head.uid != event.uid:  # deleted and re-created while unwatched
                        self._put(self._vanished(head, now), None)
                    elif head.resource_version == event.resource_version:
                        continue
                    else:
                        event = _retype(event, MODIFIED)
                self._put(event, None)
            del page
            cont = meta.get("continue") or None
            if not cont:
                break
            if self._halt.is_set():
                raise _Halted  # no resume point: the next run lists again
        now = self._now()
        for key, head in heads.items():
            if key not in seen and not head.deleted:
                self._put(self._vanished(head, now), None)
        if list_rv:
            self._put(None, (unit.resume_source, unit.kind, list_rv))
        return list_rv

    def _vanished(self, head: ObjectHead, now: datetime) -> Event:
        """A DELETED event for an object the log has and the cluster no longer does: the
        last stored object, with the head's uid and resourceVersion."""
        last = self.store.get_event(head.last_seq)
        return Event(0, now, self.source, DELETED, head.kind, head.namespace, head.name,
                     head.uid, head.resource_version, last.object_json if last else "{}")

    # ----------------------------------------------------------------- watch

    def _watch(self, unit: _Unit, cursor: _Cursor) -> bool:
        """One watch request from ``cursor.rv`` until the server ends it or it breaks;
        ``cursor.rv`` follows every event queued, so a reconnect after a drop resumes
        exactly after the last event received.

        :returns: whether the stream was healthy (a normal end after events or after a
            while: reconnect at once, without backoff).
        :raises _Gone: 410 as HTTP status or as an ERROR event.
        :raises _StreamFailed: the request or the stream failed.
        """
        timeout = self.options.timeout_seconds
        query = [("watch", "true"), ("resourceVersion", cursor.rv or ""),
                 ("allowWatchBookmarks", "true"),
                 ("timeoutSeconds", str(timeout))]
        started = time.monotonic()
        resp = self._get(unit, query, timeout + 30.0)
        with self._lock:
            self._responses.add(resp)
        lines = 0
        complete = False
        try:
            if self._halt.is_set():
                return True
            for line in iter_lines(resp.stream(None, decode_content=True)):
                before = cursor.rv
                cursor.rv = self._on_line(unit, line, cursor.rv or "")
                # Only lines that moved the resume point count as a working stream: a
                # proxy answering garbage must back off, not reconnect in a tight loop.
                if cursor.rv != before:
                    lines += 1
                if self._halt.is_set():
                    return True
            complete = True
        except (urllib3.exceptions.HTTPError, OSError) as e:
            if self._halt.is_set():
                return True
            raise _StreamFailed(f"watch connection dropped ({_reason(e)})") from None
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

    def _on_line(self, unit: _Unit, line: bytes, rv: str) -> str:
        """Decode one watch event, queue it, return the new resume resourceVersion."""
        try:
            frame = json.loads(line)
        except ValueError:
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
                raise _Gone(f"watch expired: {message or 'too old resource version'}")
            raise _StreamFailed(f"watch error {code}: {message}")
        if not isinstance(obj, dict):
            log.warning("%s: skipping a %s event without an object", unit.label, typ)
            return rv
        meta = obj.get("metadata")
        new_rv = str(meta.get("resourceVersion") or "") if isinstance(meta, dict) else ""
        if typ == "BOOKMARK":
            if new_rv:
                self._put(None, (unit.resume_source, unit.kind, new_rv))
                return new_rv
            return rv
        if typ not in (ADDED, MODIFIED, DELETED):
            log.warning("%s: skipping a watch event of unknown type %r", unit.label, typ)
            return rv
        event = self._event(unit.kind, typ, obj, self._now())
        if not new_rv:
            return rv
        self._put(event, (unit.resume_source, unit.kind, new_rv))
        return new_rv

    # ----------------------------------------------------------------- events

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), tz=UTC)

    def _event(self, kind: str, typ: str, obj: dict[str, Any], now: datetime) -> Event | None:
        """The log event for ``obj``, or None (with a one-line warning naming the object)
        when the reducer rejects it: one malformed object must not stop the watch."""
        strip_managed_fields(obj)
        try:
            reduced = reduce(kind, obj)
        except (InvalidObject, ValueError, TypeError, AttributeError) as e:
            log.warning("skipping malformed %s event for %s: %s", typ,
                        _describe_obj(kind, obj), e)
            with self._lock:
                self.report.skipped += 1
            return None
        return Event(0, now, self.source, typ, kind, reduced.namespace, reduced.name,
                     reduced.uid, reduced.resource_version, _dumps(obj))

    def _put(self, event: Event | None, resume: tuple[str, str, str] | None) -> None:
        if event is not None or resume is not None:
            self._enqueue(_Put(event, resume))

    def _enqueue(self, item: object) -> None:
        """Put with backpressure (the queue is bounded), but never hang on a dead writer."""
        while True:
            try:
                self._queue.put(item, timeout=0.5)
                return
            except queue.Full:
                if not self._writer_alive():
                    raise WatchError("the event writer stopped") from None

    def _barrier(self) -> None:
        """Wait until the writer has committed everything queued so far."""
        barrier = _Barrier()
        self._enqueue(barrier)
        while not barrier.done.wait(0.5):
            if not self._writer_alive():
                raise WatchError("the event writer stopped")

    def _writer_alive(self) -> bool:
        t = self._writer_thread
        return t is not None and t.is_alive() and self._fatal is None

    def _start_writer(self) -> threading.Thread:
        writer = threading.Thread(target=self._writer, name="zonegen-writer", daemon=True)
        self._writer_thread = writer
        writer.start()
        return writer

    # ----------------------------------------------------------------- the writer

    def _writer(self) -> None:
        """The single writer: batches queue items into transactions bounded by count and
        time, commits events with the resume points that follow them, projects, and
        tells ``on_commit``. Exits after committing everything before ``_STOP``.

        A batch is committed when it holds ``batch_size`` events, when it is
        ``batch_interval`` old, or as soon as the stream pauses for ``linger``: an idle
        cluster gets low latency, a burst gets large transactions. The projector runs
        after a commit when the queue is idle, otherwise at most every ``batch_interval``,
        so a burst is not slowed by projecting every small batch."""
        opts = self.options
        events: list[Event] = []
        resume: dict[tuple[str, str], str] = {}
        barriers: list[_Barrier] = []
        deadline = 0.0
        last_project = 0.0
        dirty = False  # events committed but not yet projected
        try:
            while True:
                now = time.monotonic()
                if events or resume:
                    wait = max(0.0, min(opts.linger, deadline - now))
                elif dirty:
                    wait = max(0.0, last_project + opts.batch_interval - now)
                else:
                    wait = 1.0
                try:
                    item = self._queue.get(timeout=wait)
                except queue.Empty:
                    item = None
                if isinstance(item, _Put):
                    if not events and not resume:
                        deadline = time.monotonic() + opts.batch_interval
                    if item.event is not None:
                        events.append(item.event)
                    if item.resume is not None:
                        source, kind, rv = item.resume
                        resume[(source, kind)] = rv
                    if len(events) < opts.batch_size and time.monotonic() < deadline:
                        continue
                elif isinstance(item, _Barrier):
                    barriers.append(item)
                stop = item is _STOP
                stored = 0
                if events or resume:
                    stored = self._commit(events, resume)
                    events = []
                    resume = {}
                # Without projection nothing is ever pending: an always-dirty writer
                # would poll the queue with a zero timeout, spinning a CPU.
                dirty = opts.project and (dirty or stored > 0)
                if opts.project and dirty and (
                        stop or self._queue.empty()
                        or time.monotonic() - last_project >= opts.batch_interval):
                    self._project(stored)
                    last_project = time.monotonic()
                    dirty = False
                elif stored and self.on_commit is not None:
                    self.on_commit(self._last_commit)
                for b in barriers:
                    b.done.set()
                barriers.clear()
                if stop:
                    return
        except BaseException as e:
            self._fatal = e
            self._halt.set()
            for b in barriers:
                b.done.set()
            log.error("event writer stopped: %s", e)
            # Drain, so readers blocked on a full queue wake up and see the halt.
            with contextlib.suppress(queue.Empty):
                while True:
                    self._queue.get_nowait()

    def _commit(self, events: list[Event], resume: dict[tuple[str, str], str]) -> int:
        """One transaction: the events and the resume points that follow them."""
        points = tuple((s, k, rv) for (s, k), rv in resume.items())
        result = self.store.append_events(events, resume=points)
        with self._lock:
            self.report.stored += len(result.stored)
            self.report.duplicates += result.duplicates
            self.report.commits += 1
        self._last_commit = Commit(len(result.stored), result.duplicates,
                                   max(result.stored, default=0), points, ())
        return len(result.stored)

    def _project(self, stored: int) -> None:
        """Fold pending events into zone versions and tell ``on_commit`` about them."""
        versions = tuple(self._projection_runner().catch_up())
        with self._lock:
            self.report.versions.extend(versions)
        if self.on_commit is not None:
            last = self._last_commit if stored else Commit(0, 0, 0, (), ())
            self.on_commit(Commit(last.stored, last.duplicates, last.last_seq, last.resume,
                                  versions))

    def _projection_runner(self) -> ProjectionRunner:
        if self._runner is None:
            from zonegen.runner import ProjectionRunner

            self._runner = ProjectionRunner(self.store, self.clock)
        return self._runner


def _retype(event: Event, typ: str) -> Event:
    return Event(event.seq, event.received_at, event.source, typ, event.kind,
                 event.namespace, event.name, event.uid, event.resource_version,
                 event.object_json)


def _raw_version(obj: Mapping[str, Any]) -> tuple[str, str] | None:
    """(uid, resourceVersion) straight from metadata, before any validation."""
    meta = obj.get("metadata")
    if isinstance(meta, Mapping):
        return (str(meta.get("uid") or ""), str(meta.get("resourceVersion") or ""))
    return None


def _raw_key(kind: str, obj: Mapping[str, Any]) -> tuple[str, str, str] | None:
    meta = obj.get("metadata")
    if isinstance(meta, Mapping) and isinstance(meta.get("name"), str):
        return (kind, str(meta.get("namespace") or "default"), meta["name"])
    return None


# --------------------------------------------------------------------------- command


def watch_command(
    store: Store,
    kubeconfig: str | None = None,
    context: str | None = None,
    options: WatchOptions | None = None,
    once: bool = False,
    stop: threading.Event | None = None,
) -> WatchReport:
    """``zonegen watch``: connect, then sync once or watch until SIGINT/SIGTERM.

    Signals set ``stop``; the watcher then commits what it has received and returns, so
    the command exits 0 with nothing lost.

    :raises WatchError: configuration unusable, or (``once``) the server unreachable.
    :raises StoreError: the log cannot be written.
    """
    cluster = connect(kubeconfig, context)
    watcher = Watcher(store, cluster, options)
    try:
        if once:
            return watcher.sync_once()
        stop = stop or threading.Event()
        with _stop_on_signals(stop):
            log.info("watching %s as source %r", cluster.host, watcher.source)
            return watcher.run(stop)
    finally:
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
