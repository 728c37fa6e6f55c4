"""A zonegen DNS server on a background thread, for tests and benchmarks."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from typing import Any

from zonegen.clock import Clock
from zonegen.health import Readiness
from zonegen.metrics import Metrics
from zonegen.serve.feed import StoreFeed
from zonegen.serve.options import ServeOptions
from zonegen.serve.server import ServeError, Server
from zonegen.serve.zoneset import ZoneSet


class ServerThread:
    """A :class:`Server` on its own event loop in a background thread: for tests, the
    benchmark and ``serve --watch``'s callers that already own the main thread.

    ``with ServerThread(options, feed) as st: st.port ...``"""

    def __init__(self, options: ServeOptions,
                 source: StoreFeed | Sequence[StoreFeed] | None = None, *,
                 zones: ZoneSet | None = None, clock: Clock = time.time,
                 metrics: Metrics | None = None, readiness: Readiness | None = None) -> None:
        self.server = Server(options, source, zones=zones, clock=clock, metrics=metrics,
                             readiness=readiness)
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="zonegen-serve-loop",
                                        daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._main())
        finally:
            self._loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        try:
            await self.server.start()
        except BaseException as e:
            self._error = e
            self._ready.set()
            return
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await self.server.aclose()

    def start(self, timeout: float = 120.0) -> ServerThread:
        """Start and wait until the zones are loaded and every address is bound.

        :raises ServeError, StoreError: as :meth:`Server.start`.
        """
        self._thread.start()
        if not self._ready.wait(timeout):
            raise ServeError("server did not start in time")
        if self._error is not None:
            self._thread.join()
            raise self._error
        return self

    @property
    def port(self) -> int:
        return self.server.addresses[0][1]

    @property
    def zones(self) -> ZoneSet:
        return self.server.current

    def call(self, coro: Any, timeout: float = 60.0) -> Any:
        """Run a coroutine on the server's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def wake(self) -> None:
        self.server.wake()

    def stop(self) -> None:
        if self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


