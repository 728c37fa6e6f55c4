"""The asyncio shell of ``zonegen serve``: UDP and TCP listeners, TCP framing, idle
timeouts, connection and transfer caps, the store poll and NOTIFY. Every reply comes from
:class:`~zonegen.serve.responder.Responder`; this module only moves bytes.

Why asyncio and not a thread per connection: transfers to slow or stalled secondaries
must not hold anything another client needs, and an event loop makes per-read/per-write
idle timeouts, connection and transfer caps and a clean shutdown simple and cheap. Work
that blocks (store reads, projecting, re-encoding, cold AXFR message joins) runs in a
small thread pool, so the loop keeps answering queries meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import dns.rcode
import dns.rdatatype

from zonegen import pgnotify, wire, xfr
from zonegen.clock import Clock
from zonegen.errors import InvalidOption, StoreError, ZonegenError
from zonegen.health import Readiness
from zonegen.logs import fields
from zonegen.metrics import Metrics
from zonegen.serve.feed import StoreFeed
from zonegen.serve.notify import Notifier
from zonegen.serve.options import HostPort, ServeOptions
from zonegen.serve.responder import Outcome, Responder, Transfer
from zonegen.serve.served import ServedZones
from zonegen.serve.zoneset import ZoneSet, zone_changes

log = logging.getLogger("zonegen")

_WRITE_BUFFER = 1 << 20  # bytes a TCP connection may have queued before we wait
_UDP_RECEIVE_BUFFER = 4 << 20  # SO_RCVBUF asked for: a burst of queries is queued, not lost
_SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)  # Linux: past rmem_max, if privileged
_UDP_BATCH = 64  # datagrams read per readiness event, at most (other work waits meanwhile)
_UDP_PENDING = 1024  # replies waiting for room in the send buffer, at most


class ServeError(ZonegenError):
    """The DNS server cannot start."""


_AXFR, _IXFR = int(dns.rdatatype.AXFR), int(dns.rdatatype.IXFR)

#: The readiness conditions serve holds (zonegen.health.Readiness keys): one
#: ``serve:loaded:<projection>`` per projection without a loaded version, and the store.
NOT_LOADED = "serve:loaded"
STORE_UNREADABLE = "serve:store"



@dataclass
class ServeReport:
    """Totals for the command's last line."""

    queries: int = 0
    transfers: int = 0
    refused: int = 0
    dropped: int = 0
    unloaded: int = 0  # SERVFAIL answers given before the first stored version
    versions: int = 0
    serial: int | None = None  # the first projection's
    zones: tuple[str, ...] = ()
    addresses: list[HostPort] = field(default_factory=list)
    serials: dict[str, int | None] = field(default_factory=dict)  # per zone served

    def summary(self) -> str:
        early = (f", {self.unloaded} SERVFAIL before the first version"
                 if self.unloaded else "")
        return (f"served {self.where()}: "
                f"{self.queries} queries, {self.transfers} transfers, {self.refused} "
                f"refused, {self.dropped} dropped{early}; {self.versions} new versions")

    def where(self, *, upto: str = "up to serial ",
              never: str = "(no zone version was ever stored)") -> str:
        """The zones with their serials: ``a., b. up to serial 7``, or per zone when
        the zones' projections are at different serials."""
        serials = [self.serials.get(z, self.serial) for z in self.zones]
        if len(set(serials)) <= 1:
            serial = serials[0] if serials else self.serial
            at = f"{upto}{serial}" if serial is not None else never
            return f"{', '.join(self.zones)} {at}"
        return ", ".join(f"{z} {upto}{s}" if s is not None else f"{z} {never}"
                         for z, s in zip(self.zones, serials, strict=True))


class _Udp:
    """One UDP listener: its socket read straight from the event loop, up to
    ``_UDP_BATCH`` queued datagrams per readiness event. An asyncio datagram transport
    reads one per event, and that loop turn cost ~20 us CPU per query, several times
    the quick answer itself (bench/bench_query.py). A reply the socket cannot take now
    (send buffer full) is sent by a task once it can, as a transport would buffer it;
    past ``_UDP_PENDING`` such replies, they are dropped (counted)."""

    def __init__(self, server: Server, sock: socket.socket) -> None:
        self.server = server
        self.sock = sock
        self.pending: set[asyncio.Task[int]] = set()
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(sock, self.readable)

    def readable(self) -> None:
        recv, send, handle = self.sock.recvfrom, self.sock.sendto, self.server.handle_datagram
        for _ in range(_UDP_BATCH):
            try:
                data, addr = recv(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.debug("UDP error: %s", exc)
                return
            reply = handle(data, addr)
            if not reply:
                continue
            try:
                send(reply, addr)
            except (BlockingIOError, InterruptedError):
                self._send_later(reply, addr)
            except OSError as exc:
                log.debug("UDP error sending to %s: %s", addr[0], exc)

    def _send_later(self, reply: bytes, addr: Any) -> None:
        if len(self.pending) >= _UDP_PENDING:
            self.server.report.dropped += 1
            return
        task = self._loop.create_task(self._loop.sock_sendto(self.sock, reply, addr))
        self.pending.add(task)
        task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Task[int]) -> None:
        self.pending.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.debug("UDP error: %s", task.exception())

    def close(self) -> None:
        self._loop.remove_reader(self.sock)
        for task in self.pending:
            task.cancel()
        self.sock.close()


class Server:
    """The asyncio server: UDP and TCP listeners on every address, the store poll, and
    NOTIFY. ``source`` (a :class:`StoreFeed`, or one per projection served: each
    projection's zones have their own serial, journal and NOTIFY) loads and refreshes
    the zones; without one, pass ``zones`` and call :meth:`publish` (benchmarks).

    With ``metrics``, every answered request, transfer, NOTIFY outcome and published
    serial moves its ``zonegen_*`` family; with ``readiness``, the server holds a
    condition per projection until its newest stored version is loaded and served (and
    while the store cannot be read, as it cannot tell then whether it serves the
    newest).

    :raises InvalidOption: two feeds serve the same zone, or the same projection.
    """

    def __init__(self, options: ServeOptions,
                 source: StoreFeed | Sequence[StoreFeed] | None = None, *,
                 zones: ZoneSet | None = None, clock: Clock = time.time,
                 metrics: Metrics | None = None, readiness: Readiness | None = None) -> None:
        feeds = (source,) if isinstance(source, StoreFeed) else tuple(source or ())
        if not feeds and zones is None:
            raise ValueError("Server needs a source or zones")
        self.options = options
        self.feeds = {feed.name: feed for feed in feeds}
        if len(self.feeds) != len(feeds):
            names = [feed.spec.target for feed in feeds]
            raise InvalidOption("projection served by two feeds: " + ", ".join(
                dict.fromkeys(n for n in names if names.count(n) > 1)))
        self.source = feeds[0] if feeds else None
        self.served = ServedZones.of(zones) if zones is not None else ServedZones.waiting(
            [(feed.name, [c.zone for c in feed.configs]) for feed in feeds])
        zone_names = [z.to_text() for z in self.served.apexes]
        if feeds and len(self.served.apexes) != sum(len(feed.configs) for feed in feeds):
            names = [c.zone for feed in feeds for c in feed.configs]
            raise InvalidOption("zone served twice: " + ", ".join(
                dict.fromkeys(n for n in names if names.count(n) > 1)))
        self.metrics = metrics
        self.readiness = readiness
        # proto -> QTYPE and QCLASS octets -> header octet 3 (RCODE and flags) -> the
        # pre-bound inc() of its zonegen_dns_requests_total (see _account)
        self._requests: dict[str, dict[bytes, list[Callable[[], int] | None]]] = {
            "udp": {}, "tcp": {}}
        if readiness is not None:
            for feed in feeds:
                readiness.block(self._not_loaded(feed.name), self._not_loaded_reason(feed))
        self.responder = Responder(options, clock, zone_names)
        self.report = ServeReport()
        self.addresses: list[HostPort] = []
        self.notifier = Notifier(options.notify, options.keys[0] if options.keys else None,
                                  options.notify_attempts, options.notify_timeout, metrics)
        self._pool = ThreadPoolExecutor(max_workers=max(2, options.max_transfers + 1),
                                        thread_name_prefix="zonegen-serve")
        self._transfers = 0
        self._connections: set[asyncio.Task[None]] = set()
        self._servers: list[asyncio.Server] = []
        self._udp: list[_Udp] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waker: pgnotify.VersionWaker | None = None  # PostgreSQL: LISTEN wakes the poll

    # ----------------------------------------------------------------- lifecycle

    @staticmethod
    def _not_loaded(projection: str) -> str:
        """The readiness key held while ``projection`` has no version loaded."""
        return f"{NOT_LOADED}:{projection}"

    def _not_loaded_reason(self, feed: StoreFeed) -> str:
        if len(self.feeds) == 1:
            return "serve: no zone version loaded"
        return (f"serve: no zone version loaded for {', '.join(c.zone for c in feed.configs)}"
                f" ({feed.spec.target})")

    def _zones_of(self, projection: str) -> str:
        return ", ".join(z.to_text() for z, name in self.served.apexes.items()
                         if name == projection)

    @property
    def zones(self) -> ZoneSet | None:
        """The first projection's zones (a single-projection server's only ones), or
        None before its first version; :attr:`served` holds every projection's."""
        return self.served.first

    async def start(self) -> None:
        """Load every projection's zones, bind every address (UDP and TCP on the same
        port; port 0 picks a free one), start polling, NOTIFY the current serials.

        :raises ServeError: an address cannot be bound.
        :raises StoreError: the store cannot be read.
        """
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        if self.source is not None:  # listen first, then read: no version falls between
            self._waker = await self._loop.run_in_executor(
                self._pool, pgnotify.waker_for, self.source.store.engine.url, self.wake)
        for name, feed in self.feeds.items():
            loaded = await self._loop.run_in_executor(self._pool, feed.load)
            if loaded is not None:
                self.served = self.served.with_set(name, loaded)
        for name, loaded in self.served.loaded():
            self._published(name, None, loaded, await self._loop.run_in_executor(
                self._pool, _records_per_zone, loaded))
        zones = self.zones
        self.report.zones = tuple(str(z) for z in self.responder.served)
        self.report.serial = zones.serial if zones is not None else None
        self.report.serials = {z: self.report.serials.get(z) for z in self.report.zones}
        try:
            for host, port in self.options.listen:
                self.addresses.append(await self._bind(host, port))
        except BaseException:
            await self.aclose()
            raise
        self.report.addresses = list(self.addresses)
        if self.source is not None:
            self._tasks.append(self._loop.create_task(self._poll()))
        listening = ", ".join(where(h, p) for h, p in self.addresses)
        started = fields(listeners=[where(h, p) for h, p in self.addresses],
                         zones=list(self.report.zones),
                         serial=zones.serial if zones is not None else None,
                         serials=[self.report.serials[z] for z in self.report.zones]
                         if len(self.feeds) > 1 else None,  # each zone's, as zones
                         database=self.source.store.where if self.source is not None
                         else None)
        waiting = [name for name, s in self.served.sets.items() if s is None]
        for name in waiting:
            log.warning("no zone version stored yet: answering SERVFAIL for %s on %s "
                        "until the first one", self._zones_of(name), listening,
                        extra=started)
        if len(waiting) == len(self.served.sets):
            return
        for _name, loaded in self.served.loaded():
            self.notifier.notify(loaded)
        if len(self.served.sets) == 1 and zones is not None:
            log.info("serving %s serial %d on %s", ", ".join(self.report.zones),
                     zones.serial, listening, extra=started)
        else:
            log.info("serving %s on %s", self.report.where(upto="serial ",
                                                            never="(no version yet)"),
                     listening, extra=started)

    async def _bind(self, host: str, port: int) -> HostPort:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        last: OSError | None = None
        for _ in range(20 if port == 0 else 1):  # port 0: find one free for both
            tcp: asyncio.Server | None = None
            try:
                tcp = await asyncio.start_server(self._tcp_client, host, port, family=family,
                                                 backlog=128, reuse_address=True)
                bound = tcp.sockets[0].getsockname()[1]
                sock = socket.socket(family, socket.SOCK_DGRAM)
                try:
                    sock.setblocking(False)
                    sock.bind((host, bound))
                except OSError:
                    sock.close()
                    raise
            except OSError as e:
                last = e
                if tcp is not None:
                    tcp.close()
                    await tcp.wait_closed()
                continue
            udp = _Udp(self, sock)
            _grow_receive_buffer(sock, _UDP_RECEIVE_BUFFER)
            self._servers.append(tcp)
            self._udp.append(udp)
            return host, bound
        raise ServeError(f"cannot listen on {where(host, port)}: "
                         f"{last.strerror if last is not None and last.strerror else last}")

    async def aclose(self) -> None:
        """Stop listening, cancel polls, NOTIFYs and transfers, release the pool."""
        if self._waker is not None:
            self._waker.close()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for srv in self._servers:
            srv.close()
        for udp in self._udp:
            udp.close()
        for conn in list(self._connections):
            conn.cancel()
        for conn in list(self._connections):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await conn
        for srv in self._servers:
            with contextlib.suppress(Exception):
                await srv.wait_closed()
        await self.notifier.aclose()
        self._pool.shutdown(wait=False, cancel_futures=True)

    @property
    def current(self) -> ZoneSet:
        """The first projection's zones served now (after :meth:`start`, once a version
        is stored)."""
        zones = self.zones
        if zones is None:
            raise RuntimeError("no zones loaded")
        return zones

    def wake(self) -> None:
        """Poll the store now (thread-safe): ``serve --watch`` calls it on each commit."""
        if self._loop is not None and self._wake is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    # ----------------------------------------------------------------- new versions

    async def _poll(self) -> None:
        wake = self._wake or asyncio.Event()
        if not self.feeds:
            return
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), self.options.poll)
            wake.clear()
            failed: BaseException | None = None
            for name, feed in self.feeds.items():
                try:
                    await self._refresh(name, feed)
                except ZonegenError as e:
                    failed = e
                except Exception as e:
                    log.exception("cannot refresh the zone")
                    failed = e
            if failed is not None:
                self._refresh_failed(failed)
            elif self.readiness is not None:
                self.readiness.unblock(STORE_UNREADABLE)

    async def _refresh(self, name: str, feed: StoreFeed) -> None:
        """Serve projection ``name``'s newest stored version, if it has a new one."""
        loop = asyncio.get_running_loop()
        current = self.served.sets.get(name)
        started = time.perf_counter()
        refreshed = await loop.run_in_executor(self._pool, _refreshed, feed, current)
        if refreshed is None:
            return
        new, counts = refreshed
        ms = (time.perf_counter() - started) * 1000
        of = f"{self._zones_of(name)}: " if len(self.feeds) > 1 else ""
        if current is None:
            log.info("%sfirst zone version: serial %d", of, new.serial,
                     extra=fields(serial=new.serial, ms=round(ms, 1), projection=name))
        else:
            # version ids are shared by every projection: count this one's journal steps
            steps = new.steps_since(current.serial)
            versions = len(steps) if steps is not None else max(
                0, new.version_id - current.version_id)
            log.info("%sserial %d -> %d (%d versions) in %.1f ms", of, current.serial,
                     new.serial, versions, ms,
                     extra=fields(serial=new.serial, previous_serial=current.serial,
                                  versions=versions, ms=round(ms, 1), projection=name))
        await self.publish(new, counts, projection=name)

    def _refresh_failed(self, error: BaseException) -> None:
        if isinstance(error, ZonegenError):
            log.warning("cannot refresh the zone: %s", error, extra=fields(error=str(error)))
        if isinstance(error, StoreError) and self.metrics is not None:
            self.metrics.store_error("refresh")
        if self.readiness is not None:
            self.readiness.block(STORE_UNREADABLE, f"serve: cannot read the store: {error}")

    async def publish(self, zones: ZoneSet, counts: ZoneCounts | None = None, *,
                      projection: str | None = None) -> None:
        """Serve ``zones`` as ``projection``'s (default: the first projection's) from
        now on (transfers under way keep theirs) and NOTIFY its zones, only theirs, when
        its serial moved. ``counts``: per zone, its records and those added and removed
        since the zones served before (computed off the loop; :func:`_refreshed`)."""
        name = projection if projection is not None else next(iter(self.served.sets))
        old = self.served.sets.get(name)
        self.served = self.served.with_set(name, zones)
        if old is None or old.serial != zones.serial:
            self.report.versions += 1
            self._published(name, old, zones, counts)
            self.notifier.notify(zones)

    def _published(self, projection: str, old: ZoneSet | None, zones: ZoneSet,
                   counts: ZoneCounts | None) -> None:
        """Log each zone's new serial and move its gauges; that projection is ready
        from now on."""
        if self.readiness is not None:
            self.readiness.unblock(self._not_loaded(projection))
        first = self.zones
        self.report.serial = first.serial if first is not None else None
        for wz in zones.zones.values():
            zone = wz.config.zone
            self.report.serials[zone] = wz.serial
            records, added, removed = counts[zone] if counts and zone in counts else (
                len(wz), None, None)
            if self.metrics is not None:
                self.metrics.zone_published(zone, wz.serial, records)
            change = f"+{added} -{removed}" if added is not None and removed is not None \
                else "loaded"
            log.info("%s serial %d: %d records (%s)", zone, wz.serial, records, change,
                     extra=fields(zone=zone, serial=wz.serial,
                                  previous_serial=old.serial if old is not None else None,
                                  records=records, added=added, removed=removed,
                                  projection=projection))

    # ----------------------------------------------------------------- UDP

    def handle_datagram(self, data: bytes, addr: Any) -> bytes | None:
        """One UDP request; never raises (a bad packet must not stop the server)."""
        try:
            outcome = self.responder.respond(data, addr[0], self.served, tcp=False)
            if outcome is None or isinstance(outcome, Transfer):
                self.report.dropped += 1
                return None
            reply = outcome.messages[0] if outcome.messages else None
            self._account(outcome, addr, data, reply, "udp")
            return reply
        except Exception:  # noqa: BLE001
            log.debug("dropped a UDP packet from %s", addr[0], exc_info=True)
            self.report.dropped += 1
            return None

    def _account(self, outcome: Outcome, addr: Any, request: bytes, reply: bytes | None,
                 proto: str) -> None:
        qtype = -1
        if reply is not None and self.metrics is not None:
            # The hot path, beside a ~1.6 us cached quick answer: no parse, no tuple, no
            # label text. The QNAME of a plain request ends at its first zero octet; the
            # four octets after it (QTYPE, QCLASS) and the reply's RCODE octet find the
            # counter. A request this misreads (zero octets inside a label) is counted
            # by its parsed question (_request_counter), unless its octets there mimic
            # a QTYPE and class IN already counted with its rcode: then only that
            # crafted request counts under the type it mimics.
            end = request.find(0, 12)
            by_reply = self._requests[proto].get(request[end + 1:end + 5])
            inc = by_reply[reply[3]] if by_reply is not None else None
            if inc is None:
                inc = self._request_counter(proto, request, reply)
            inc()
        if outcome.kind == "query":  # the hot path: nothing more
            self.report.queries += 1
        elif outcome.kind == "unloaded":
            self.report.unloaded += 1
            self._transfer_counted(request, qtype, "failed")
        elif outcome.kind in ("refused", "tsig"):
            self.report.refused += 1
            log.warning("%s: %s %s", where(addr[0], addr[1]), outcome.zone, outcome.reason,
                        extra=fields(peer=where(addr[0], addr[1]), zone=outcome.zone,
                                     reason=outcome.reason))
            self._transfer_counted(request, qtype, "refused")
        elif outcome.kind == "formerr":
            self.report.queries += 1
            self._transfer_counted(request, qtype, "refused")  # AXFR over UDP
        elif outcome.kind == "IXFR/UDP":
            self.report.transfers += 1
            records = sum(map(wire.ancount, outcome.messages))
            size = sum(map(len, outcome.messages))
            if self.metrics is not None:
                self.metrics.transfer("IXFR", "ok", size)
            log.info("IXFR/UDP to %s: %s serial %d, %d records, %d bytes",
                     where(addr[0], addr[1]), outcome.zone, outcome.serial or 0, records, size,
                     extra=fields(type="IXFR", proto="udp", peer=where(addr[0], addr[1]),
                                  zone=outcome.zone, serial=outcome.serial, records=records,
                                  bytes=size))
        else:
            self.report.queries += 1

    def _request_counter(self, proto: str, request: bytes, reply: bytes
                         ) -> Callable[[], int]:
        """The counter of a request :meth:`_account` has none for: from its question
        read properly (:func:`question_type`), kept for the next requests when the quick
        read of the octets after the first zero agrees with it (class IN)."""
        qtype = question_type(request)
        if self.metrics is None:
            return _nothing
        inc = self.metrics.dns_request_counter(proto, qtype, reply[3] & 0x0F)
        end = request.find(0, 12)
        key = request[end + 1:end + 5]
        counts = self._requests[proto]
        if key == struct.pack("!HH", qtype, 1) and (key in counts or len(counts) < 4096):
            counts.setdefault(key, [None] * 256)[reply[3]] = inc
        return inc

    def _count(self, proto: str, qtype: int, rcode: int) -> None:
        """One transfer request in ``zonegen_dns_requests_total`` (rare: no cache)."""
        if self.metrics is not None:
            self.metrics.dns_request(proto, qtype, rcode)

    def _transfer_counted(self, request: bytes, qtype: int, result: str) -> None:
        """A transfer request answered with an error: ``zonegen_transfers_total``."""
        if self.metrics is None:
            return
        if qtype < 0:
            qtype = question_type(request)
        if qtype in (_AXFR, _IXFR):
            self.metrics.transfer("AXFR" if qtype == _AXFR else "IXFR", result)

    # ----------------------------------------------------------------- TCP

    async def _tcp_client(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is None:
            return
        peer = writer.get_extra_info("peername") or ("?", 0)
        if len(self._connections) >= self.options.max_connections:
            log.warning("%s: too many TCP connections (%d); closing", where(*peer[:2]),
                        len(self._connections))
            writer.close()
            return
        self._connections.add(task)
        try:
            await self._tcp_session(reader, writer, peer)
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError, OSError) as e:
            log.debug("TCP session with %s ended: %r", where(*peer[:2]), e, exc_info=True)
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("TCP session with %s failed", where(*peer[:2]))
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1.0)

    async def _tcp_session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                           peer: Any) -> None:
        """Requests in turn on one connection (RFC 7766 §6.2.1), each 2-octet length
        framed (RFC 1035 §4.2.2); every read and write bounded by ``idle_timeout``."""
        idle = self.options.idle_timeout
        while True:
            try:
                head = await asyncio.wait_for(reader.readexactly(2), idle)
            except asyncio.IncompleteReadError:
                return
            (length,) = struct.unpack("!H", head)
            wire = await asyncio.wait_for(reader.readexactly(length), idle)
            try:
                outcome = self.responder.respond(wire, peer[0], self.served, tcp=True)
            except Exception:  # noqa: BLE001 - a query we cannot handle: drop the connection
                log.debug("failed on a TCP request from %s", peer[0], exc_info=True)
                self.report.dropped += 1
                return
            if outcome is None:
                self.report.dropped += 1
                continue
            if isinstance(outcome, Outcome):
                self._account(outcome, peer, wire,
                              outcome.messages[0] if outcome.messages else None, "tcp")
                await self._send(writer, outcome.messages)
                continue
            await self._transfer(writer, outcome, peer)

    async def _transfer(self, writer: asyncio.StreamWriter, transfer: Transfer,
                        peer: Any) -> None:
        loop = asyncio.get_running_loop()
        q = transfer.query.question[0]
        peer_at = where(peer[0], peer[1])
        asked = "AXFR" if q.rdtype == dns.rdatatype.AXFR else "IXFR"
        if self._transfers >= self.options.max_transfers:
            log.warning("%s: %s of %s refused: %d transfers already running", peer_at,
                        dns.rdatatype.to_text(q.rdtype), q.name, self._transfers,
                        extra=fields(type=asked, peer=peer_at, zone=q.name.to_text(),
                                     running=self._transfers))
            self.report.refused += 1
            refusal = xfr.error_response(transfer.query, dns.rcode.SERVFAIL)
            if self.metrics is not None:
                self._count("tcp", int(q.rdtype), dns.rcode.SERVFAIL)
                self.metrics.transfer(asked, "refused")
            await self._send(writer, [refusal])
            return
        self._transfers += 1
        sent = False
        messages: Sequence[xfr.Message] = []
        try:
            started = time.perf_counter()
            feed = self.feeds.get(transfer.projection)
            older = feed.older_steps if feed is not None else None
            kind, messages = await loop.run_in_executor(
                self._pool, self.responder.prepare, transfer, older)
            await self._send(writer, messages)
            sent = True
            ms = (time.perf_counter() - started) * 1000
        finally:
            self._transfers -= 1
            if not sent and self.metrics is not None:
                # the peer hung up or stalled, or preparing failed: bytes written unknown
                self.metrics.transfer(asked, "failed")
        self.report.transfers += 1
        records = sum(wire.ancount(xfr.header_of(m)) for m in messages)
        size = sum(map(len, messages)) + 2 * len(messages)
        rcode = wire.rcode(xfr.header_of(messages[0])) if messages else 0
        if self.metrics is not None:
            self._count("tcp", int(q.rdtype), rcode)
            self.metrics.transfer(asked, "ok" if rcode == 0 else "failed", size)
        if rcode:
            log.warning("%s: %s of %s answered %s", peer_at, kind, q.name,
                        dns.rcode.to_text(dns.rcode.Rcode(rcode)),
                        extra=fields(type=asked, peer=peer_at, zone=q.name.to_text(),
                                     rcode=dns.rcode.to_text(dns.rcode.Rcode(rcode))))
        signed = f", TSIG {transfer.key.name}" if transfer.key is not None else ""
        zone = transfer.wirezone.config.zone
        log.info("%s to %s: %s serial %d, %d records, %d messages, %d bytes, %.1f ms%s",
                 kind, peer_at, zone, transfer.wirezone.serial,
                 records, len(messages), size, ms, signed,
                 extra=fields(type=asked, sent=kind, peer=peer_at, zone=zone,
                              serial=transfer.wirezone.serial, records=records,
                              messages=len(messages), bytes=size,
                              seconds=round(ms / 1000, 4),
                              key=transfer.key.name.to_text() if transfer.key else None))

    async def _send(self, writer: asyncio.StreamWriter,
                    messages: Sequence[xfr.Message]) -> None:
        """Write length-framed messages (RFC 1035 §4.2.2), pausing whenever more than
        1 MB is buffered until the peer has read some. A peer that reads nothing for
        ``idle_timeout`` is hung up on: a stalled reader costs one buffer and one task,
        never a thread or another client's turn; a slow but steady one is served.
        Messages in parts (:class:`xfr.Unjoined`) are written part by part: the socket
        takes the zone's own buffers, only what it cannot take at once is copied."""
        transport = writer.transport
        transport.set_write_buffer_limits(high=_WRITE_BUFFER)
        write = writer.write
        for message in messages:
            for part in xfr.framed(message):
                write(part)
            if transport.get_write_buffer_size() > _WRITE_BUFFER:
                await self._drain(writer)
        await self._drain(writer)

    async def _drain(self, writer: asyncio.StreamWriter) -> None:
        transport = writer.transport
        while True:
            before = transport.get_write_buffer_size()
            try:
                await asyncio.wait_for(writer.drain(), self.options.idle_timeout)
                return
            except TimeoutError:
                if transport.get_write_buffer_size() >= before:
                    raise  # no progress for a whole idle period


def _grow_receive_buffer(sock: Any, size: int) -> None:
    """Ask for a ``size`` receive buffer on a UDP socket. The kernel default (Linux:
    ``net.core.rmem_default``, ~208 KB) holds only a few hundred small datagrams (each
    is charged its whole buffer, ~1 KB), and the kernel silently drops whatever arrives
    while it is full: one burst of queries arriving faster than we answer them then
    costs every client whose query lands in that window its first try, though we would
    have answered it a moment later. ``SO_RCVBUFFORCE`` goes past ``net.core.rmem_max``
    when we may (CAP_NET_ADMIN); otherwise the kernel caps ``SO_RCVBUF`` there."""
    if sock is None:
        return
    for option in (_SO_RCVBUFFORCE, socket.SO_RCVBUF):
        try:
            sock.setsockopt(socket.SOL_SOCKET, option, size)
            break
        except OSError:
            continue
    with contextlib.suppress(OSError):
        log.debug("UDP receive buffer on %s: %d bytes", sock.getsockname(),
                  sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))


def where(host: str, port: int) -> str:
    return f"{host}#{port}"


def _nothing() -> int:
    return 0


def question_type(message: bytes) -> int:
    """The QTYPE of ``message``'s first question, or 0 when it has none or is cut short
    (counted as ``other``): its QNAME's labels walked on the wire, the same for requests
    the quick path answers without dnspython."""
    end = len(message)
    if end < 12 or not (message[4] or message[5]):
        return 0
    at = 12
    while at < end:
        length = message[at]
        if length == 0:
            at += 1
            break
        if length >= 0xC0:  # a pointer ends the name
            at += 2
            break
        at += length + 1
    else:
        return 0
    return (message[at] << 8) | message[at + 1] if at + 2 <= end else 0


#: Per zone: its records, and those added and removed since the previous serial (None:
#: not known, the zones were loaded afresh).
ZoneCounts = dict[str, tuple[int, int | None, int | None]]


def _records_per_zone(zones: ZoneSet) -> ZoneCounts:
    """Per zone: its records (a first load: nothing added or removed to tell)."""
    return {wz.config.zone: (len(wz), None, None) for wz in zones.zones.values()}


def _refreshed(source: StoreFeed, current: ZoneSet | None) -> tuple[ZoneSet, ZoneCounts] | None:
    """:meth:`StoreFeed.refresh` and, when there is a new version, per zone its records
    and those added and removed since ``current``: counted here in the worker thread
    (records cost a walk of the zone's overlay; the loop must keep answering)."""
    new = source.refresh(current)
    if new is None:
        return None
    steps = new.steps_since(current.serial) if current is not None else None
    if steps is None:
        return new, _records_per_zone(new)
    changes = zone_changes([wz.config for wz in new.zones.values()], steps)
    return new, {wz.config.zone: (len(wz), *changes[wz.config.zone])
                 for wz in new.zones.values()}
