"""The store side of ``zonegen serve``: keeps a :class:`ZoneSet` level with the stored
zone versions (blocking; runs in worker threads, never on the event loop)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Sequence
from itertools import count
from operator import itemgetter
from typing import TYPE_CHECKING

from zonegen.clock import Clock
from zonegen.errors import InvalidInput
from zonegen.journal_step import JournalStep
from zonegen.logs import fields
from zonegen.metrics import Metrics
from zonegen.model import ZoneConfig
from zonegen.projections import DEFAULT, ProjectionSpec
from zonegen.selection import NotInOrder, StoredRecord
from zonegen.serve.halves import MIN_RECORDS, load_halves
from zonegen.serve.zoneset import ZoneSet

if TYPE_CHECKING:
    from zonegen.runner import Runner
    from zonegen.store import Store

log = logging.getLogger("zonegen")


class StoreFeed:
    """Keeps a :class:`ZoneSet` level with the zone versions in the store. Blocking:
    called from a worker thread, never from the event loop.

    Another process (``zonegen watch``, ``ingest``) commits versions; :meth:`refresh`
    notices them with two cheap reads (newest version, and newest event against the
    projection checkpoint) and applies their stored differences. Events nobody has
    projected for a whole poll interval (``ingest --no-project``) are projected here;
    waiting one interval first lets a running ``zonegen watch`` project its own events
    without two projectors racing for the checkpoint (``commit_version`` is a
    compare-and-set; the loser reloads its projection, which is costly for big zones).

    With ``metrics``, each version it commits counts in ``zonegen_zone_versions_total``
    (no latency: those events were stored by a command that chose not to project); the
    server counts the store errors its calls raise.

    ``spec``: the projection whose versions it serves (default ``source:default``); each
    projection a ``serve`` publishes has its own feed (``zonegen.serve.served``).

    ``split_records``: a zone of at least this many records is loaded in two halves at
    once, one in a helper process (:mod:`zonegen.serve.halves`); None never splits.
    """

    def __init__(self, store: Store, configs: Sequence[ZoneConfig], *, project: bool = True,
                 clock: Clock = time.time, max_versions: int = 1000,
                 max_records: int = 500_000, metrics: Metrics | None = None,
                 spec: ProjectionSpec = DEFAULT, split_records: int | None = MIN_RECORDS
                 ) -> None:
        if not configs:
            raise InvalidInput("no zone to serve")
        self.store = store
        self.configs = tuple(configs)
        self.project = project
        self.clock = clock
        self.max_versions = max_versions
        self.max_records = max_records
        self.metrics = metrics
        self.spec = spec
        self.name = spec.name
        self.split_records = split_records
        self._runner: Runner | None = None
        self._stalled_at: int | None = None  # checkpoint seen with events pending

    def _catch_up(self) -> None:
        from zonegen.runner import ensure_projected, runner_for

        if self.store.latest_version(self.name) is None and not self.store.select_events(
                limit=1, sources=self.spec.sources):
            return  # its first version waits for an event of its sources: no empty zone
        if self._runner is None:
            # Events nobody projected (ingest --no-project): not live, so the runner
            # counts the version but records no event-to-version latency; it logs the
            # serial. It reloads itself when another projector moved ahead, and starts
            # from the store again after any failed commit.
            self._runner = runner_for(self.store, self.spec, clock=self.clock,
                                      metrics=self.metrics)
        ensure_projected(self.store, self.clock, runner=self._runner)

    def project_pending(self, force: bool = False) -> None:
        """Project events nobody else projected for one poll interval (or now, with
        ``force``)."""
        if not self.project and not force:
            return
        done = self.store.max_tracking_seq(self.name)
        if self.store.max_event_seq() <= done:
            self._stalled_at = None
            return
        if force or self._stalled_at == done:
            self._stalled_at = None
            self._catch_up()
        else:
            self._stalled_at = done

    def load(self) -> ZoneSet | None:
        """The zones as of the newest stored version (projecting pending events first,
        unless a watcher projects them); None while no version is stored: then nothing is
        served (no zone made up from an empty or half-listed log, docs/DESIGN.md).

        Built from the persisted read model streamed in canonical order with its
        version in one snapshot, as stored rows (``Store.current_rows``,
        :meth:`ZoneSet.from_rows`): no projection, no journal fold and no ``Record`` per
        row is made to start serving (issue #11). The records logged are the rows
        streamed (the stored visible count, without a second query). A big zone is
        built in two processes at once (:mod:`zonegen.serve.halves`) when it can be.

        :raises StoreError: the store cannot be read.
        """
        started = time.perf_counter()
        if self.project:
            self.project_pending(force=True)
        zones: ZoneSet | None = None
        loaded = 0
        if self.split_records is not None and len(self.configs) == 1:
            split = load_halves(self.store, self.name, self.configs[0], self.split_records)
            if split is not None:
                zones, loaded = split
        if zones is None:
            zones, loaded = self._load_whole()
            if zones is None:
                return None
        ms = (time.perf_counter() - started) * 1000
        log.info("loaded %s serial %d: %d records in %.0f ms",
                 ", ".join(c.zone for c in self.configs), zones.serial, loaded, ms,
                 extra=fields(zones=[c.zone for c in self.configs], serial=zones.serial,
                              records=loaded, ms=round(ms)))
        return zones

    def _load_whole(self) -> tuple[ZoneSet | None, int]:
        """:meth:`load` in this process alone, and the rows it was built from."""
        zones: ZoneSet | None = None
        counted = _Counted()
        loaded = 0
        with self.store.current_rows(self.name, self.configs) as (version, rows):
            if version is None:
                return None, 0
            try:
                zones = ZoneSet.from_rows(self.configs, counted.through(rows),
                                          version.serial, version.version_id)
                loaded = counted.finish()
            except NotInOrder as e:
                log.debug("stored order is not a served zone's (%s); building from the "
                          "whole record set", e)
        if zones is None:  # outside the block: it holds the only connection of sqlite://
            records = self.store.records_at(version.version_id)
            loaded = len(records)
            zones = ZoneSet.build(self.configs, records, version.serial, version.version_id)
        return zones, loaded

    def refresh(self, current: ZoneSet | None) -> ZoneSet | None:
        """``current`` advanced to the newest stored version, or None when it is current
        (or nothing is stored yet). Falls back to :meth:`load` when ``current`` is None
        (the first version) or the store's history no longer continues from it
        (projection reset, or compacted past it).

        :raises StoreError: the store cannot be read.
        """
        self.project_pending()
        latest = self.store.latest_version(self.name)
        if latest is None or (current is not None and latest.version_id == current.version_id):
            return None
        if current is None:
            return self.load()
        if latest.version_id > current.version_id:
            versions = self.store.journal(current.version_id, latest.version_id, self.name)
            if versions and versions[0].step.from_serial == current.serial and all(
                    jv.step.from_serial is not None for jv in versions):
                return current.advance([(jv.version.version_id, jv.step) for jv in versions],
                                       self.max_versions, self.max_records)
        log.warning("zone history does not continue from serial %d (reset or compacted); "
                    "reloading", current.serial, extra=fields(serial=current.serial))
        return self.load()

    def older_steps(self, serial: int, current: ZoneSet) -> list[JournalStep] | None:
        """The stored steps from ``serial`` to ``current``, for a client older than the
        in-memory journal; None when the store does not have them either, or they hold
        more records than the journal limit (then a full transfer is cheaper)."""
        version = self.store.get_version(serial, self.name)
        if version is None or version.version_id >= current.version_id:
            return None
        versions = self.store.journal(version.version_id, current.version_id, self.name)
        steps = [jv.step for jv in versions]
        if sum(len(s.added) + len(s.removed) for s in steps) > self.max_records:
            return None
        if not steps or steps[0].from_serial != serial or steps[-1].to_serial != current.serial:
            return None
        return steps




class _Counted:
    """Counts the rows passing through to the builder (the loaded-records log field),
    in C: ``zip`` with a counter, the counter dropped again by ``map``; a generator here
    cost a Python frame resume per row (~0.3 s at 1M rows)."""

    __slots__ = ("_counter",)

    def __init__(self) -> None:
        self._counter = count()

    def through(self, rows: Iterable[StoredRecord]) -> Iterator[StoredRecord]:
        return map(_first, zip(rows, self._counter, strict=False))

    def finish(self) -> int:
        """The rows passed through, once ``rows`` ran out (``zip`` asks ``rows`` before
        the counter, so the counter's next value is their number)."""
        return next(self._counter)


_first = itemgetter(0)
