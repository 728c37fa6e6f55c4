"""Which of several ``serve --watch`` replicas on one database watches and writes.

Each replica runs a :class:`WriterElection`: it tries to take the database's writer
lease (:mod:`zonegen.store.lease`) every third of the lease time. The holder fences its
store with the lease (every write transaction checks the epoch), starts the watch, and
renews the lease every third of the lease time; the others only serve, woken by the
versions the writer commits. A holder whose renewal finds the lease taken over, or
whose write is refused by the fence, stops its watch and serves on as a follower
(steps down); on a clean shutdown it releases the lease so a follower takes over at
once. After a kill -9 the lease expires and a follower takes over within the lease
time plus a third of it; the new watch resumes from the stored resume points.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from zonegen.errors import StoreError
from zonegen.store.lease import Lease, LeaseLost

if TYPE_CHECKING:
    from zonegen.store import Store

log = logging.getLogger("zonegen")

DEFAULT_LEASE_SECONDS = 15.0


def replica_name() -> str:
    """This process as logs and the lease name it: host and process id."""
    return f"{socket.gethostname()}/{os.getpid()}"


class WriterElection:
    """Runs ``lead(deposed)`` while this replica holds the writer lease.

    ``lead`` must return soon after ``deposed`` is set; a :class:`LeaseLost` from it
    means the fence refused a write (stepping down), any other exception ends
    :meth:`run` with it (as a watch failure ends a single ``serve --watch``).
    ``changed(leader, epoch)`` is told every change of role (metrics).
    """

    def __init__(self, store: Store, lead: Callable[[threading.Event], None],
                 seconds: float = DEFAULT_LEASE_SECONDS, holder: str | None = None,
                 changed: Callable[[bool, int], None] | None = None) -> None:
        self.store = store
        self.lead = lead
        self.seconds = seconds
        self.holder = holder or replica_name()
        self.changed = changed
        self.lease: Lease | None = None
        self._seen: tuple[str, int] | None = None

    def run(self, stop: threading.Event) -> None:
        """Take, hold and give back the lease until ``stop`` is set."""
        every = self.seconds / 3
        while not stop.is_set():
            try:
                self.lease = self.store.take_lease(self.holder, self.seconds)
            except StoreError as e:
                log.warning("cannot take the writer lease: %s", e)
                self.lease = None
            if self.lease is None:
                self._follow()
                stop.wait(every)
                continue
            self._hold(self.lease, stop, every)

    def _follow(self) -> None:
        try:
            current = self.store.current_lease()
        except StoreError:
            return
        seen = (current.holder, current.epoch) if current is not None else None
        if seen != self._seen and current is not None:
            log.info("replica %s serves; %s writes (lease epoch %d)", self.holder,
                     current.holder, current.epoch)
            if self.changed is not None:
                self.changed(False, current.epoch)
        self._seen = seen

    def _hold(self, lease: Lease, stop: threading.Event, every: float) -> None:
        log.info("replica %s writes: took the writer lease at epoch %d", self.holder,
                 lease.epoch)
        self._seen = (lease.holder, lease.epoch)
        if self.changed is not None:
            self.changed(True, lease.epoch)
        self.store.fence_writes(lease)
        deposed = threading.Event()
        failure: list[BaseException] = []

        def lead() -> None:
            try:
                self.lead(deposed)
            except BaseException as e:  # noqa: BLE001 - judged below
                failure.append(e)

        worker = threading.Thread(target=lead, name="zonegen-writer", daemon=True)
        worker.start()
        why = "stopping"
        try:
            while not stop.wait(every):
                if not worker.is_alive():
                    break
                try:
                    renewed = self.store.renew_lease(lease, self.seconds)
                except StoreError as e:  # the fence keeps writes safe meanwhile
                    log.warning("cannot renew the writer lease: %s", e)
                    continue
                if renewed is None:
                    why = "the writer lease was taken over"
                    break
                lease = self.lease = renewed
        finally:
            deposed.set()
            worker.join()
            self.store.fence_writes(None)
        lost = [e for e in failure if isinstance(e, LeaseLost)]
        if lost:
            why = str(lost[0])
        elif failure:
            raise failure[0]
        if stop.is_set() and not lost:
            try:
                self.store.release_lease(lease)
            except StoreError as e:
                log.warning("cannot release the writer lease: %s", e)
            log.info("replica %s released the writer lease (epoch %d)", self.holder,
                     lease.epoch)
        else:
            log.warning("replica %s stepped down: %s; serving only", self.holder, why)
        if self.changed is not None:
            self.changed(False, lease.epoch)
        self.lease = None


def watch_as_elected(store: Store, lead: Callable[[threading.Event], None],
                     lease_seconds: float | None, stop: threading.Event) -> None:
    """``serve --watch``: on a server database (PostgreSQL, where replicas share one
    database) watch only while holding the writer lease; on SQLite (one machine, one
    replica) or with ``lease_seconds`` None, watch at once, as before."""
    if lease_seconds is None or store.engine.dialect.name == "sqlite":
        lead(stop)
        return
    from zonegen.metrics import process_metrics

    WriterElection(store, lead, lease_seconds,
                   changed=process_metrics().lease_changed).run(stop)
