"""NOTIFY out (RFC 1996): one task per zone and secondary, retried until answered."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Sequence
from typing import Any

import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdatatype
import dns.tsig

from zonegen import answer
from zonegen.logs import fields
from zonegen.metrics import Metrics
from zonegen.model import ZoneConfig
from zonegen.serve.options import HostPort
from zonegen.serve.zoneset import ZoneSet

log = logging.getLogger("zonegen")


class _NotifyProtocol(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.replies: asyncio.Queue[bytes | None] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.replies.put_nowait(data)

    def error_received(self, exc: Exception) -> None:
        self.replies.put_nowait(None)  # ICMP unreachable: this attempt failed


class Notifier:
    """NOTIFY (RFC 1996) to every target when a zone gets a new serial: retransmitted
    with doubling timeouts until answered, at most ``attempts`` times (§3.6); a newer
    serial for the same zone and target replaces a pending one. Signed with ``key``
    when given, and the answer's signature is checked then (RFC 8945 §5.3). Each
    outcome moves ``zonegen_notify_total{result}`` when ``metrics`` is given."""

    def __init__(self, targets: Sequence[HostPort], key: dns.tsig.Key | None,
                 attempts: int, timeout: float, metrics: Metrics | None = None) -> None:
        self.targets = tuple(targets)
        self.key = key
        self.metrics = metrics
        self.attempts = attempts
        self.timeout = timeout
        self.tasks: dict[tuple[str, HostPort], asyncio.Task[bool]] = {}
        self.acknowledged = 0
        self.sent = 0  # NOTIFY messages sent, retransmissions included

    def notify(self, zones: ZoneSet) -> None:
        for wz in zones.zones.values():
            for target in self.targets:
                slot = (wz.config.zone, target)
                old = self.tasks.get(slot)
                if old is not None and not old.done():
                    old.cancel()
                self.tasks[slot] = asyncio.get_running_loop().create_task(
                    self._send(wz.config, wz.serial, target))

    async def _send(self, config: ZoneConfig, serial: int, target: HostPort) -> bool:
        loop = asyncio.get_running_loop()
        host, port = target
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        where = f"{host}#{port}"
        timeout = self.timeout
        try:
            transport, proto = await loop.create_datagram_endpoint(
                _NotifyProtocol, remote_addr=(host, port), family=family)
        except OSError as e:
            log.warning("NOTIFY %s serial %d to %s: cannot send: %s", config.zone, serial,
                        where, e, extra=fields(zone=config.zone, serial=serial, peer=where,
                                               result="failed", error=str(e)))
            self._outcome("failed")
            return False
        qid = dns.message.make_query(config.zone, dns.rdatatype.SOA).id  # random id
        macs: list[bytes] = []  # request MAC of each copy sent: any may be answered
        rejected: list[str] = []  # unsigned TSIG errors seen: not trusted, but reported
        try:
            for attempt in range(1, self.attempts + 1):
                # the same id each time, so a late answer to an earlier copy still counts
                message = answer.notify_message(config, serial, id=qid)
                if self.key is not None:
                    message.use_tsig(self.key)
                wire = message.to_wire()
                macs.append(message.mac or b"")
                transport.sendto(wire)
                self.sent += 1
                deadline = loop.time() + timeout
                while (left := deadline - loop.time()) > 0:
                    try:
                        data = await asyncio.wait_for(proto.replies.get(), left)
                    except TimeoutError:
                        break
                    if data is None:
                        break
                    verdict = self._check_reply(data, qid, macs, rejected)
                    if verdict is None:
                        continue  # not our answer: keep waiting
                    if verdict == dns.rcode.NOERROR:
                        self.acknowledged += 1
                        self._outcome("acknowledged")
                        log.info("NOTIFY %s serial %d to %s acknowledged (attempt %d)",
                                 config.zone, serial, where, attempt,
                                 extra=fields(zone=config.zone, serial=serial, peer=where,
                                              result="acknowledged", attempts=attempt))
                        return True
                    rcode = dns.rcode.to_text(dns.rcode.Rcode(verdict))
                    self._outcome("refused")
                    log.warning("NOTIFY %s serial %d to %s answered %s; not retrying",
                                config.zone, serial, where, rcode,
                                extra=fields(zone=config.zone, serial=serial, peer=where,
                                             result="refused", rcode=rcode,
                                             attempts=attempt))
                    return False
                await asyncio.sleep(max(0.0, deadline - loop.time()))
                timeout *= 2
            given_up = fields(zone=config.zone, serial=serial, peer=where, result="timeout",
                              attempts=self.attempts)
            self._outcome("timeout")
            if rejected and self.key is not None:
                log.warning("NOTIFY %s serial %d to %s: no signed answer after %d attempts; "
                            "it answered TSIG error %s to key %s", config.zone, serial,
                            where, self.attempts, rejected[-1], self.key.name,
                            extra=given_up)
            else:
                log.warning("NOTIFY %s serial %d to %s: no answer after %d attempts",
                            config.zone, serial, where, self.attempts, extra=given_up)
            return False
        finally:
            transport.close()

    def _outcome(self, result: str) -> None:
        if self.metrics is not None:
            self.metrics.notify(result)

    def _check_reply(self, data: bytes, qid: int, macs: Sequence[bytes],
                     rejected: list[str] | None = None) -> int | None:
        """The answer's rcode, or None when it is not a valid answer to our NOTIFY (with
        a key: signed over the request MAC of one of the copies we sent). An answer to
        our id carrying a TSIG error (BADKEY, BADSIG, BADTIME: unsigned, RFC 8945 §5.3.2)
        is not trusted, but its error is added to ``rejected`` for the final warning."""
        reply = None
        for mac in reversed(macs) if self.key is not None else [b""]:
            try:
                reply = dns.message.from_wire(
                    data, keyring=self.key if self.key is not None else False,
                    request_mac=mac)
                break
            except Exception:  # noqa: BLE001, S112 - garbage or bad signature: not ours
                continue
        if reply is None:
            if rejected is not None and self.key is not None:
                with contextlib.suppress(Exception):
                    unverified = dns.message.from_wire(data, keyring=False)
                    error = unverified.tsig_error
                    if unverified.id == qid and error:
                        rejected.append("BADSIG" if error == dns.rcode.BADSIG else
                                        dns.rcode.to_text(dns.rcode.Rcode.make(error)))
            return None
        if reply.id != qid or not reply.flags & dns.flags.QR or \
                reply.opcode() != dns.opcode.NOTIFY:
            return None
        return int(reply.rcode())

    async def aclose(self) -> None:
        for task in self.tasks.values():
            task.cancel()
        for task in self.tasks.values():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


