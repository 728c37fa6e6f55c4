"""The writer lease role: which ``serve --watch`` replica may watch and write.

One row per lease (``writer_leases``): the holder, an expiry, and an epoch that grows by
one at every takeover. The replica holding an unexpired lease is the only one that
writes; the others serve what it stores. Expiry alone cannot stop a leader that was
paused (GC, a frozen VM, a partition) past its expiry from writing when it wakes, so
every write transaction of a leader is *fenced*: :class:`Fence` is checked inside the
transaction (``Database._write``), reading the lease row ``FOR UPDATE`` and refusing
with :class:`LeaseLost` when the epoch is no longer the writer's. On PostgreSQL the row
lock orders a takeover strictly before or after each fenced transaction; on SQLite
``BEGIN IMMEDIATE`` serialises them anyway.

Expiry uses the replicas' clocks (as Kubernetes Leases do): they must be roughly in
step (NTP). A skewed clock can only make a takeover early or late, never two writers:
the epoch fences writes whatever the clocks say.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from zonegen.errors import StoreError
from zonegen.store.database import Database
from zonegen.store.schema import writer_leases

WATCH_LEASE = "watch"
"""The lease ``serve --watch`` replicas share: one writer per database."""


class LeaseLost(StoreError):
    """A write by a replica whose lease was taken over: refused, nothing written."""


@dataclass(frozen=True, slots=True)
class Lease:
    name: str
    holder: str
    epoch: int
    expires_us: int


@dataclass(frozen=True, slots=True)
class Fence:
    """Checked first in every write transaction of a fenced store: the lease must still
    be held at ``epoch`` by ``holder``."""

    where: str
    lease: Lease

    def __call__(self, conn: Connection) -> None:
        row = conn.execute(
            sa.select(writer_leases.c.holder, writer_leases.c.epoch)
            .where(writer_leases.c.name == self.lease.name).with_for_update()).first()
        if row is None or (row.holder, int(row.epoch)) != (self.lease.holder,
                                                           self.lease.epoch):
            now = "nobody" if row is None else f"{row.holder} (epoch {row.epoch})"
            raise LeaseLost(f"{self.where}: write refused: this replica ({self.lease.holder})"
                            f" lost the writer lease at epoch {self.lease.epoch}; it is now "
                            f"held by {now}")


def _now_us() -> int:
    return int(time.time() * 1_000_000)


class WriterLeases(Database):
    """Takes, renews, releases and reads writer leases (never fenced themselves)."""

    def take_lease(self, holder: str, seconds: float, name: str = WATCH_LEASE
                   ) -> Lease | None:
        """The lease for ``holder`` when it is free, expired or already ``holder``'s
        (renewed then); None while another holder's lease runs. A takeover increments
        the epoch, as a compare-and-set: of two replicas racing for an expired lease,
        one wins."""
        now = _now_us()
        expires = now + int(seconds * 1_000_000)
        with self._wrap("taking the writer lease"), self._write(fenced=False) as conn:
            row = conn.execute(sa.select(writer_leases)
                               .where(writer_leases.c.name == name)).first()
            if row is None:
                try:
                    with conn.begin_nested():
                        conn.execute(writer_leases.insert().values(
                            name=name, holder=holder, epoch=1, expires_us=expires))
                except IntegrityError:
                    return None  # another replica created it first
                return Lease(name, holder, 1, expires)
            if row.holder != holder and int(row.expires_us) > now:
                return None
            epoch = int(row.epoch) if row.holder == holder else int(row.epoch) + 1
            moved = conn.execute(
                writer_leases.update().where(writer_leases.c.name == name,
                                             writer_leases.c.epoch == row.epoch,
                                             writer_leases.c.holder == row.holder)
                .values(holder=holder, epoch=epoch, expires_us=expires)).rowcount
            return Lease(name, holder, epoch, expires) if moved else None

    def renew_lease(self, lease: Lease, seconds: float) -> Lease | None:
        """``lease`` extended by ``seconds`` from now; None when it was taken over."""
        expires = _now_us() + int(seconds * 1_000_000)
        with self._wrap("renewing the writer lease"), self._write(fenced=False) as conn:
            moved = conn.execute(
                writer_leases.update().where(writer_leases.c.name == lease.name,
                                             writer_leases.c.holder == lease.holder,
                                             writer_leases.c.epoch == lease.epoch)
                .values(expires_us=expires)).rowcount
        return Lease(lease.name, lease.holder, lease.epoch, expires) if moved else None

    def release_lease(self, lease: Lease) -> None:
        """Give ``lease`` up (a clean shutdown): expired now, so a follower takes over at
        its next try instead of after the lease time."""
        with self._wrap("releasing the writer lease"), self._write(fenced=False) as conn:
            conn.execute(writer_leases.update().where(
                writer_leases.c.name == lease.name, writer_leases.c.holder == lease.holder,
                writer_leases.c.epoch == lease.epoch).values(expires_us=0))

    def current_lease(self, name: str = WATCH_LEASE) -> Lease | None:
        with self._wrap("reading the writer lease"), self._read() as conn:
            row = conn.execute(sa.select(writer_leases)
                               .where(writer_leases.c.name == name)).first()
        if row is None:
            return None
        return Lease(row.name, row.holder, int(row.epoch), int(row.expires_us))

    def fence_writes(self, lease: Lease | None) -> None:
        """Fence every later write transaction of this store with ``lease`` (None: stop
        fencing, a replica that stepped down and writes nothing)."""
        self.fence = Fence(self.where, lease) if lease is not None else None
