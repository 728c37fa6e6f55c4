"""New zone versions announced by PostgreSQL LISTEN/NOTIFY: a wake-up, not a message.

The writer calls :func:`notify_new_version` inside the transaction that commits the
version; PostgreSQL delivers the notification at commit and drops it on rollback, so a
wake-up never announces a version a reader cannot see yet. A reader holds one
:class:`VersionListener` (a dedicated connection: LISTEN belongs to a session, and a
pooled connection would lose it), and after each wake-up reads the store from its last
position, exactly as a poll would: notifications may be coalesced or, across a
reconnect, lost, so the payload is a hint, the store is the truth. Listen first, then
read the current position, so no version falls between the two.

SQLite has no such channel; there the reader keeps polling (``serve --poll``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from zonegen.errors import StoreError

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger("zonegen")

CHANNEL = "zonegen_versions"
"""The one channel zonegen announces versions on (payload ``"<version_id> <serial>"``)."""


@dataclass(frozen=True, slots=True)
class Wakeup:
    """One announced version (a hint: read the store from your last position)."""

    version_id: int
    serial: int


def supported(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql"


def notify_new_version(conn: Connection, version_id: int, serial: int) -> None:
    """Announce a version from inside the transaction that commits it (delivered at
    commit, never for a rolled-back version). A no-op on databases without NOTIFY."""
    if not supported(conn):
        return
    conn.execute(sa.text("SELECT pg_notify(:channel, :payload)"),
                 {"channel": CHANNEL, "payload": f"{version_id} {serial}"})


def libpq_url(url: str) -> str:
    """The SQLAlchemy URL (``postgresql+psycopg://…``) as libpq takes it, password kept."""
    return sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class VersionListener:
    """LISTEN on a dedicated autocommit psycopg connection; :meth:`wait` blocks until
    versions are announced or the timeout passes.

    :raises StoreError: the server cannot be reached (one line naming it); the caller
        falls back to polling or opens a new listener.
    """

    def __init__(self, url: str) -> None:
        import psycopg

        self.where = sa.make_url(url).render_as_string(hide_password=True)
        try:
            self._conn: psycopg.Connection[tuple[object, ...]] = psycopg.connect(
                libpq_url(url), autocommit=True)
            self._conn.execute(f"LISTEN {CHANNEL}")
        except psycopg.Error as e:
            raise StoreError(f"{self.where}: cannot listen for new versions: "
                             f"{str(e).strip().splitlines()[0] if str(e).strip() else e}"
                             ) from None

    def wait(self, timeout: float) -> list[Wakeup]:
        """Every version announced until ``timeout`` seconds pass without one more
        (at least one wake-up ends the wait early); ``[]`` on timeout."""
        return list(self._wakeups(timeout))

    def _wakeups(self, timeout: float) -> Iterator[Wakeup]:
        import psycopg

        first = True
        try:
            while True:
                got = False
                # After the first wake-up, only drain what is already queued.
                for note in self._conn.notifies(timeout=timeout if first else 0,
                                                stop_after=1):
                    got = True
                    wake = _parse(note.payload)
                    if wake is not None:
                        yield wake
                if not got:
                    return
                first = False
        except psycopg.Error as e:
            raise StoreError(f"{self.where}: listening for new versions failed: "
                             f"{str(e).strip().splitlines()[0] if str(e).strip() else e}"
                             ) from None

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> VersionListener:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _parse(payload: str) -> Wakeup | None:
    parts = payload.split()
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        return None  # not ours: another client on the channel; ignored
    return Wakeup(int(parts[0]), int(parts[1]))


class VersionWaker:
    """Calls ``wake`` whenever a version is announced, from a daemon thread holding one
    :class:`VersionListener` (``serve`` on PostgreSQL: its poll then reads the store at
    once instead of at the next ``--poll``). A lost connection is logged and reopened
    after ``retry`` seconds, with one ``wake`` after each reconnect, since announcements
    made meanwhile are lost; the poll stays as the backstop. Start it before reading the
    current position, so no version falls between the two."""

    def __init__(self, url: str, wake: Callable[[], None], retry: float = 1.0) -> None:
        self.url = url
        self.wake = wake
        self.retry = retry
        self._stop = threading.Event()
        self._listener: VersionListener | None = VersionListener(url)  # fails loudly once
        self._thread = threading.Thread(target=self._run, name="zonegen-listen", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if self._listener is None:
                    self._listener = VersionListener(self.url)
                    self.wake()  # announcements while disconnected are lost: re-read
                if self._listener.wait(0.5):
                    self.wake()
            except StoreError as e:
                log.warning("%s; polling until it is back", e)
                self._drop()
                self._stop.wait(self.retry)
        self._drop()

    def _drop(self) -> None:
        if self._listener is not None:
            try:
                self._listener.close()
            except Exception:  # noqa: BLE001 - a broken connection may fail to close
                log.debug("closing the listener failed", exc_info=True)
            self._listener = None

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)


def waker_for(engine_url: sa.URL, wake: Callable[[], None]) -> VersionWaker | None:
    """A :class:`VersionWaker` when the database announces versions (PostgreSQL), else
    None (SQLite: the reader polls)."""
    if engine_url.get_backend_name() != "postgresql":
        return None
    return VersionWaker(engine_url.render_as_string(hide_password=False), wake)
