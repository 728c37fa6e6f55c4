"""One request in, the reply out: parsing, TSIG verification, the transfer ACL, then
:mod:`zonegen.xfr` and :mod:`zonegen.answer`. No sockets (the shell is
:class:`zonegen.serve.server.Server`)."""

from __future__ import annotations

import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdatatype
import dns.serial
import dns.tsig
import dns.xfr

from zonegen import answer, tsig, wire, xfr
from zonegen.clock import Clock
from zonegen.journal_step import JournalStep
from zonegen.projections import DEFAULT_NAME
from zonegen.quickanswer import quick_answer
from zonegen.serve.options import ServeOptions
from zonegen.serve.served import ServedZones
from zonegen.serve.zoneset import ZoneSet
from zonegen.wire import WireZone

_QR = 0x8000
_TSIG_ROOM = 512  # octets kept free in a UDP answer for a TSIG record


@dataclass(slots=True)
class Outcome:
    """What to send back for one request, and what to log about it."""

    messages: list[bytes]
    kind: str = "query"  # query, AXFR, IXFR, refused, tsig, formerr
    zone: str = ""
    serial: int | None = None
    reason: str = ""


@dataclass(slots=True)
class Transfer:
    """A TCP transfer to prepare off the loop: the query, its zone (with its
    projection's zones, whose journal an IXFR reads), and the key that signed it (every
    response message is then signed, RFC 8945 §5.3.1)."""

    query: dns.message.Message
    zones: ZoneSet
    wirezone: WireZone
    key: dns.tsig.Key | None
    projection: str = DEFAULT_NAME




class Responder:
    """Turns one request into an :class:`Outcome` (or a :class:`Transfer` to prepare):
    parsing, TSIG verification, the transfer ACL, then :mod:`zonegen.xfr`. No sockets;
    the shell in :class:`Server` only moves bytes."""

    def __init__(self, options: ServeOptions, clock: Clock = time.time,
                 served: Sequence[str] = ()) -> None:
        self.options = options
        self.clock = clock
        self.keys = {k.name: k for k in options.keys}
        self.served = tuple(dns.name.from_text(zone) for zone in served)

    def _keyring(self, _message: dns.message.Message, name: dns.name.Name
                 ) -> dns.tsig.Key | None:
        return self.keys.get(name)

    def parse(self, wire: bytes) -> dns.message.Message | Outcome | None:
        """The query, TSIG verified when present; or the error reply; or None to drop
        (no header, or a response: answering responses invites loops)."""
        if len(wire) < 12:
            return None
        (flags,) = struct.unpack_from("!H", wire, 2)
        if flags & _QR:
            return None
        try:
            return dns.message.from_wire(wire, keyring=self._keyring)
        except (dns.message.UnknownTSIGKey, dns.tsig.BadAlgorithm, dns.tsig.BadKey):
            return self._tsig_error(wire, dns.rcode.BADKEY, "unknown TSIG key or algorithm")
        except dns.tsig.BadSignature:
            return self._tsig_error(wire, dns.rcode.BADSIG, "bad TSIG signature")
        except dns.tsig.BadTime:
            return self._tsig_error(wire, dns.rcode.BADTIME, "TSIG time outside the fudge")
        except Exception:  # noqa: BLE001 - anything unparsable: FORMERR from the header
            reply = xfr.error_response(wire, dns.rcode.FORMERR)
            return Outcome([reply] if reply else [], "formerr", reason="malformed")

    def _tsig_error(self, wire: bytes, error: int, reason: str) -> Outcome | None:
        try:
            query = dns.message.from_wire(wire, keyring=False)
        except Exception:  # noqa: BLE001
            reply = xfr.error_response(wire, dns.rcode.FORMERR)
            return Outcome([reply] if reply else [], "formerr", reason="malformed")
        if query.tsig is None:
            return None
        key = self.keys.get(query.keyname) if query.keyname is not None else None
        now = int(self.clock())
        return Outcome([tsig.tsig_error_response(query, error, now, key)], "tsig",
                       reason=f"{reason} ({query.keyname})")

    def respond(self, wire: bytes, peer: str, zones: ServedZones | ZoneSet | None, *,
                tcp: bool) -> Outcome | Transfer | None:
        """The reply to ``wire`` from ``peer``; a :class:`Transfer` for AXFR/IXFR over
        TCP that passed the ACL and TSIG checks. A zone whose projection has no version
        stored yet (``zones`` None: none has) answers as :meth:`_unloaded` says."""
        if isinstance(zones, ZoneSet):
            zones = ServedZones.of(zones)
        if zones is not None and zones.complete:
            # plain queries (no TSIG, no EDNS option) from the zones' wire fragments;
            # while a projection is not loaded, a name in its zone must not be answered
            # by an enclosing zone of another, so every query takes the parsed path
            reply = quick_answer(wire, zones.zones, self.options.udp_payload, tcp=tcp)
            if reply is not None:
                return Outcome([reply])
        parsed = self.parse(wire)
        if not isinstance(parsed, dns.message.Message):
            return parsed
        query = parsed
        primary = zones.primary if zones is not None else None
        if zones is None or primary is None:
            return self._unloaded(query)
        if query.opcode() != dns.opcode.QUERY or len(query.question) != 1:
            reply = answer.answer(query, primary, self.options.udp_payload, tcp=tcp)
            return Outcome([reply] if reply else [])
        q = query.question[0]
        found = zones.find(q.name)
        if found is not None and found.zones is None:
            return self._unloaded(query)
        wz = found.wirezone if found is not None else None
        if q.rdtype in (dns.rdatatype.AXFR, dns.rdatatype.IXFR):
            if found is None or found.zones is None or wz is None:
                return self._transfer(query, peer, None, None, tcp=tcp)
            return self._transfer(query, peer, found.zones, wz, tcp=tcp,
                                  projection=found.projection)
        if wz is None:
            response = dns.message.make_response(query, our_payload=self.options.udp_payload)
            response.set_rcode(dns.rcode.REFUSED)  # not ours, and we do not recurse
            return Outcome([response.to_wire()])
        payload = self.options.udp_payload - (_TSIG_ROOM if query.had_tsig else 0)
        reply = answer.answer(query, wz, payload, tcp=tcp)
        return Outcome([reply] if reply else [], zone=wz.config.zone, serial=wz.serial)

    def _unloaded(self, query: dns.message.Message) -> Outcome:
        """Before the first stored version the zones are not loaded: SERVFAIL for
        anything about them, queries and transfers alike, as BIND and Knot answer for a
        zone they could not load (docs/DESIGN.md: never publish an empty or partial
        zone; secondaries keep what they have). Other names stay REFUSED."""
        name = query.question[0].name if len(query.question) == 1 else None
        if name is not None and not any(name.is_subdomain(z) for z in self.served):
            # answered as once loaded: one REFUSED query, nothing logged per query
            return Outcome([xfr.error_response(query, dns.rcode.REFUSED)], "query",
                           name.to_text(), reason="not a zone served here")
        zone = name.to_text() if name is not None else ""
        return Outcome([xfr.error_response(query, dns.rcode.SERVFAIL)], "unloaded", zone,
                       reason="no zone version stored yet")

    def _transfer(self, query: dns.message.Message, peer: str, zones: ZoneSet | None,
                  wz: WireZone | None, *, tcp: bool,
                  projection: str = DEFAULT_NAME) -> Outcome | Transfer:
        q = query.question[0]
        kind = dns.rdatatype.to_text(q.rdtype)
        zone = q.name.to_text()
        if not self.options.allowed(peer):
            return self._refuse(query, kind, zone, "address not in --allow-transfer")
        if self.keys and not query.had_tsig:
            return self._refuse(query, kind, zone, "request not signed with a TSIG key")
        if zones is None or wz is None or wz.config.zone != q.name.canonicalize().to_text():
            # RFC 5936 §2.2.1: not authoritative for that zone
            return Outcome([xfr.error_response(query, dns.rcode.NOTAUTH)], "refused", zone,
                           reason="not a zone served here")
        key = query.keyring if isinstance(query.keyring, dns.tsig.Key) else None
        if not tcp:
            if q.rdtype == dns.rdatatype.AXFR:  # RFC 5936 §4.2: TCP only
                return Outcome([xfr.error_response(query, dns.rcode.FORMERR)], "formerr",
                               zone, reason="AXFR over UDP")
            # RFC 1995 §2: IXFR over UDP, from the in-memory journal only; a single SOA
            # (retry over TCP) when the answer is an AXFR or does not fit in what the
            # client can take: 512 octets without EDNS (RFC 1035 §4.2.1), else its
            # payload (RFC 6891 §6.2.3), less our OPT record and any TSIG.
            payload = self.options.udp_payload
            room = tsig.tsig_size(key) if key is not None else 0
            if query.edns < 0:
                limit = 512
            else:
                limit = max(512, min(payload, query.payload))
                room += len(wire.OPT_ROOT) + 10
            messages = xfr.ixfr_response(query, wz, zones.journal, max_size=limit - room,
                                         udp=True)
            if query.edns >= 0:  # RFC 6891 §7: an OPT in the request, one in the reply
                messages = [wire.append_opt(m, payload) if wire.arcount(m) == 0 else m
                            for m in messages]
            if key is not None:
                messages = tsig.sign_messages(messages, key, query.mac or b"",
                                             int(self.clock()))
            return Outcome(messages, "IXFR/UDP", wz.config.zone, wz.serial)
        return Transfer(query, zones, wz, key, projection)

    def _refuse(self, query: dns.message.Message, kind: str, zone: str, reason: str
                ) -> Outcome:
        return Outcome([xfr.error_response(query, dns.rcode.REFUSED)], "refused", zone,
                       reason=f"{kind} refused: {reason}")

    def prepare(self, transfer: Transfer,
                older: Callable[[int, ZoneSet], list[JournalStep] | None] | None = None
                ) -> tuple[str, Sequence[xfr.Message]]:
        """The messages of a TCP transfer, signed when the request was (blocking: may read
        the store through ``older`` and join a cold AXFR; run it off the loop).

        IXFR: the in-memory journal, else the store's (``older``), else AXFR (RFC 1995
        §4). Returns the kind actually sent: ``AXFR``, ``IXFR`` or ``IXFR->AXFR``."""
        query, zones, wz = transfer.query, transfer.zones, transfer.wirezone
        kind = "AXFR"
        if query.question[0].rdtype == dns.rdatatype.AXFR:
            if transfer.key is None:  # sent in parts, no message joined
                return kind, xfr.axfr_parts(query, wz)
            messages = xfr.axfr_response(query, wz)
        else:
            kind = "IXFR"
            journal: Sequence[JournalStep] = zones.journal
            try:
                client = xfr.client_serial(query)
            except ValueError:
                client = None
            current = client is not None and dns.serial.Serial(client) >= dns.serial.Serial(
                wz.serial)
            if client is not None and not current and not zones.covers(client):
                stored = older(client, zones) if older is not None else None
                if stored is None:
                    kind = "IXFR->AXFR"
                else:
                    journal = stored
            messages = xfr.ixfr_response(query, wz, journal)
        if transfer.key is not None:
            messages = tsig.sign_messages(messages, transfer.key, query.mac or b"",
                                         int(self.clock()))
        return kind, messages


