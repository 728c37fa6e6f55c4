"""The single writer between the watch streams and the event log.

Readers (one thread per watched kind and namespace) queue events; this thread commits
them in transactions bounded by count and time, each with the resume points that follow
its events (STYLE.md #5), then runs the projector and tells ``on_commit``. A *group* (a
whole list: the initial sync, a relist after 410 Gone) is always one transaction of its
own, so no reader of the log (this process's projector or another zonegen polling the
database) ever sees half a list.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from zonegen.clock import Clock
from zonegen.errors import WatchError
from zonegen.logs import fields
from zonegen.metrics import Metrics, process_metrics
from zonegen.model import Event, ZoneVersion
from zonegen.store import Store

if TYPE_CHECKING:
    from zonegen.projections import ProjectionSpec
    from zonegen.runner import ProjectionRunner, Runner

log = logging.getLogger("zonegen")

Resume = tuple[str, str, str]
"""(source, kind, resourceVersion): where a stream resumes after the events before it."""


@dataclass(frozen=True, slots=True)
class Commit:
    """What one writer transaction did; passed to ``on_commit`` (``serve --watch`` uses
    ``versions`` to send NOTIFY and refresh its zones)."""

    stored: int  # new events stored
    duplicates: int  # events already in the log, skipped (idempotency key)
    last_seq: int  # highest sequence number stored by this commit (0: none)
    resume: tuple[Resume, ...]  # (source, kind, resourceVersion) moved
    versions: tuple[ZoneVersion, ...]  # default projection's versions after this commit
    # every projection that made versions after this commit: (name, versions)
    projected: tuple[tuple[str, tuple[ZoneVersion, ...]], ...] = ()


@dataclass
class WriteTotals:
    """What the writer did so far (the watcher's report extends it)."""

    stored: int = 0
    duplicates: int = 0
    commits: int = 0
    versions: list[ZoneVersion] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class WriterOptions:
    batch_size: int = 500  # events per transaction, at most (groups excepted)
    batch_interval: float = 0.1  # seconds a batch may wait to fill, at most
    linger: float = 0.005  # commit once the stream pauses this long
    queue_size: int = 5000  # items in flight between readers and the writer
    project: bool = True  # run the projector after commits


@dataclass(frozen=True, slots=True)
class _Put:
    """One queue item: an event and/or the resume point that follows it."""

    event: Event | None
    resume: Resume | None


@dataclass(frozen=True, slots=True)
class _Group:
    """A whole list: its events and resume points, committed as one transaction."""

    events: tuple[Event, ...]
    resume: tuple[Resume, ...]
    stored: Callable[[], None] | None = None  # called once committed, before projecting


class _Barrier:
    """Queue item: the writer commits everything before it, then sets ``done``."""

    def __init__(self) -> None:
        self.done = threading.Event()


_STOP = object()


class EventWriter:
    """Commits queued events in batches; one thread, started by :meth:`start`.

    A batch is committed when it holds ``batch_size`` events, when it is
    ``batch_interval`` old, or as soon as the queue pauses for ``linger``: an idle cluster
    gets low latency, a burst gets large transactions. The projector runs after a commit
    when the queue is idle, otherwise at most every ``batch_interval``, so a burst is not
    slowed by projecting every small batch; after a group it always runs, so the first
    list of an empty cluster still makes the zone's first version.
    """

    def __init__(self, store: Store, options: WriterOptions, clock: Clock,
                 totals: WriteTotals, lock: threading.Lock,
                 on_commit: Callable[[Commit], None] | None = None,
                 runner: ProjectionRunner | None = None,
                 metrics: Metrics | None = None,
                 hold: Callable[[], bool] | None = None) -> None:
        self.store = store
        # While ``hold()`` is true nothing is projected (events are still committed):
        # several sources in one process make no version before all finished their
        # initial lists. Called in this thread only.
        self._hold = hold
        self.metrics = metrics if metrics is not None else process_metrics()
        self.options = options
        self.clock = clock
        self.totals = totals
        self.on_commit = on_commit
        self.fatal: BaseException | None = None
        self._lock = lock  # guards ``totals`` (readers count there too)
        self._runner = runner
        self._queue: queue.Queue[object] = queue.Queue(options.queue_size)
        self._thread: threading.Thread | None = None
        self._halt: threading.Event | None = None
        self._last_commit = Commit(0, 0, 0, (), ())
        self._wakeups = 0

    @property
    def pending(self) -> int:
        """Items readers have queued that the writer thread has not taken yet."""
        return self._queue.qsize()

    @property
    def wakeups(self) -> int:
        """Times the writer thread woke to read its queue: an idle writer wakes about
        once a second, a spinning one thousands of times."""
        return self._wakeups

    # ----------------------------------------------------------------- readers' side

    def start(self, halt: threading.Event) -> None:
        """Start the thread; a failure sets ``halt`` (and :attr:`fatal`)."""
        self._halt = halt
        self._thread = threading.Thread(target=self._run, name="zonegen-writer", daemon=True)
        self._thread.start()

    def put(self, event: Event | None, resume: Resume | None) -> None:
        if event is not None or resume is not None:
            self._enqueue(_Put(event, resume))

    def put_group(self, events: Sequence[Event], resume: Sequence[Resume],
                  stored: Callable[[], None] | None = None) -> None:
        """Queue a whole list to be committed as one transaction; ``stored`` is called
        (in the writer thread) once it is committed, before the projector runs, so
        "synced" is said before the serial it makes."""
        self._enqueue(_Group(tuple(events), tuple(resume), stored))

    def barrier(self) -> None:
        """Wait until everything queued so far is committed.

        :raises WatchError: the writer stopped.
        """
        barrier = _Barrier()
        self._enqueue(barrier)
        while not barrier.done.wait(0.5):
            if not self.alive:
                raise WatchError("the event writer stopped")
        if self.fatal is not None:
            raise WatchError("the event writer stopped")

    def stop(self) -> None:
        """Commit everything queued, project, and end the thread."""
        with contextlib.suppress(WatchError):
            self._enqueue(_STOP)
        if self._thread is not None:
            self._thread.join()

    @property
    def alive(self) -> bool:
        t = self._thread
        return t is not None and t.is_alive() and self.fatal is None

    def _enqueue(self, item: object) -> None:
        """Put with backpressure (the queue is bounded), but never hang on a dead writer."""
        while True:
            try:
                self._queue.put(item, timeout=0.5)
                return
            except queue.Full:
                if not self.alive:
                    raise WatchError("the event writer stopped") from None

    # ----------------------------------------------------------------- the thread

    def _run(self) -> None:
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
                held = self._hold is not None and self._hold()
                if events or resume:
                    wait = max(0.0, min(opts.linger, deadline - now))
                elif dirty and not held:
                    wait = max(0.0, last_project + opts.batch_interval - now)
                else:
                    wait = 1.0
                self._wakeups += 1
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
                if isinstance(item, _Group):  # after the batch before it, on its own
                    stored = self._commit(list(item.events),
                                          {(s, k): rv for s, k, rv in item.resume})
                    if item.stored is not None:
                        item.stored()
                    item = None  # a whole list's events: stored, so not held while folding
                    dirty = opts.project
                    last_project = 0.0  # project it now, as one version
                if opts.project and dirty and not (self._hold is not None and self._hold()) and (
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
            self.fatal = e
            if self._halt is not None:
                self._halt.set()
            for b in barriers:
                b.done.set()
            log.error("event writer stopped: %s", e)
            # Drain, so readers blocked on a full queue wake up and see the halt.
            with contextlib.suppress(queue.Empty):
                while True:
                    item = self._queue.get_nowait()
                    if isinstance(item, _Barrier):
                        item.done.set()

    def _commit(self, events: list[Event], resume: dict[tuple[str, str], str]) -> int:
        """One transaction: the events and the resume points that follow them."""
        points = tuple((s, k, rv) for (s, k), rv in resume.items())
        result = self.store.append_events(events, resume=points)
        with self._lock:
            self.totals.stored += len(result.stored)
            self.totals.duplicates += result.duplicates
            self.totals.commits += 1
        self._last_commit = Commit(len(result.stored), result.duplicates,
                                   max(result.stored, default=0), points, ())
        if result.stored:
            self._count_stored(events, result.stored, result.duplicates)
        log.debug("committed %d events (%d already known)", len(result.stored),
                  result.duplicates, extra=fields(stored=len(result.stored),
                                                  duplicates=result.duplicates))
        return len(result.stored)

    def _count_stored(self, events: list[Event], stored: tuple[int, ...],
                      duplicates: int) -> None:
        """``zonegen_events_stored_total{source,kind,type}`` for the events just committed.
        Without duplicates that is every event of the batch; with some (a restart
        replaying its last events), the stored ones are read back by sequence number."""
        if duplicates:
            seqs = set(stored)
            events = [e for e in self.store.select_events(gt=min(stored) - 1,
                                                          lte=max(stored))
                      if e.seq in seqs]
        for (source, kind, typ), n in Counter((e.source, e.kind, e.type)
                                              for e in events).items():
            self.metrics.event_stored(kind, typ, n, source)

    # Sources whose initial lists this process has not stored yet (set by the watcher
    # that owns this writer: ``zonegen.watch``); the log tells the rest.
    unlisted: Callable[[ProjectionSpec], frozenset[str]] | None = None
    _runners: dict[str, Runner]

    def _project(self, stored: int) -> None:
        """Fold pending events into every registered projection (one runner each, kept
        between calls) and tell ``on_commit``: ``versions`` are the default projection's,
        ``projected`` every projection's that moved. A projection without a version yet
        waits until every source it folds has stored its initial list
        (:func:`zonegen.runner.waiting_sources`), so no first version is made from some
        clusters only; events of sources a projection does not fold only move its
        checkpoint."""
        from zonegen.projections import DEFAULT_NAME
        from zonegen.runner import ensure_projected, waiting_sources

        # The runner logs each new serial (it holds the diff) and observes the
        # event-to-version latency: these events arrive live.
        made: dict[str, tuple[ZoneVersion, ...]] = {}
        for runner in self._projection_runners():
            unlisted = self.unlisted(runner.spec) if self.unlisted is not None else ()
            if waiting_sources(self.store, runner.spec, unlisted):
                continue
            versions = ensure_projected(self.store, self.clock, runner=runner).made
            if versions:
                made[runner.name] = versions
        default = made.get(DEFAULT_NAME, ())
        with self._lock:
            self.totals.versions.extend(default)
        if self.on_commit is not None:
            last = self._last_commit if stored else Commit(0, 0, 0, (), ())
            self.on_commit(Commit(last.stored, last.duplicates, last.last_seq, last.resume,
                                  default, tuple(made.items())))

    def _projection_runners(self) -> list[Runner]:
        """One runner per registered projection (``store.projections()``: one small
        query, so a projection ``export --zone`` registered meanwhile is folded from the
        next commit on); the default one is ``runner`` when one was handed over."""
        from zonegen.runner import runner_for

        specs = self.store.projections()
        runners = dict(getattr(self, "_runners", {}))
        if self._runner is not None:
            runners.setdefault(self._runner.name, self._runner)
        kept: dict[str, Runner] = {}
        for spec in specs:
            runner = runners.get(spec.name)
            if runner is None or runner.spec != spec:
                runner = runner_for(self.store, spec, self.clock, live=True,
                                    metrics=self.metrics)
            kept[spec.name] = runner
        self._runners = kept
        return list(kept.values())

    def _projection_runner(self) -> ProjectionRunner:
        """The default projection's runner (kept for callers from before projections)."""
        if self._runner is None:
            from zonegen.runner import ProjectionRunner

            self._runner = ProjectionRunner(self.store, self.clock, live=True,
                                            metrics=self.metrics)
        return self._runner
