"""``zonegen serve``: an authoritative DNS server for the projected zones.

Sockets, TCP framing, the transfer ACL, TSIG checks, NOTIFY out and the store poll live
here; every DNS message is built by :mod:`zonegen.xfr` (sans I/O, STYLE.md #6). Zones are
served from memory: a :class:`ZoneSet` is an immutable snapshot (one :class:`WireZone` per
served zone, all at one serial, plus a bounded IXFR journal), advanced by
``WireZone.apply`` as new zone versions appear in the store, never rebuilt for a change.

Why asyncio and not a thread per connection: transfers to slow or stalled secondaries
must not hold anything another client needs, and an event loop makes per-read/per-write
idle timeouts, connection and transfer caps and a clean shutdown simple and cheap. Work
that blocks (store reads, projecting, re-encoding, cold AXFR message joins) runs in a
small thread pool, so the loop keeps answering queries meanwhile.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import dataclasses
import ipaddress
import logging
import re
import signal
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TSIG
import dns.serial
import dns.tsig
import dns.xfr

from zonegen import xfr
from zonegen.clock import Clock
from zonegen.errors import InvalidInput, StoreError, ZonegenError
from zonegen.model import Diff, Record, ZoneConfig
from zonegen.xfr import JournalStep, WireZone

if TYPE_CHECKING:
    from zonegen.runner import ProjectionRunner
    from zonegen.store import JournalVersion, Store
    from zonegen.watch import WatchOptions

log = logging.getLogger("zonegen")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
HostPort = tuple[str, int]

LOOPBACK: tuple[Network, ...] = (ipaddress.ip_network("127.0.0.0/8"),
                                 ipaddress.ip_network("::1/128"))

ALGORITHMS: dict[str, dns.name.Name] = {
    "hmac-md5": dns.tsig.HMAC_MD5,
    "hmac-sha1": dns.tsig.HMAC_SHA1,
    "hmac-sha224": dns.tsig.HMAC_SHA224,
    "hmac-sha256": dns.tsig.HMAC_SHA256,
    "hmac-sha384": dns.tsig.HMAC_SHA384,
    "hmac-sha512": dns.tsig.HMAC_SHA512,
}
"""TSIG algorithms by their BIND names (RFC 8945 §6)."""

_HEADER = struct.Struct("!HHHHHH")
_QR = 0x8000
_TSIG_FUDGE = 300  # RFC 8945 §10: 300 seconds recommended
_TSIG_ROOM = 512  # octets kept free in a UDP answer for a TSIG record
_WRITE_BUFFER = 1 << 20  # bytes a TCP connection may have queued before we wait
_UDP_RECEIVE_BUFFER = 4 << 20  # SO_RCVBUF asked for: a burst of queries is queued, not lost
_SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)  # Linux: past rmem_max, if privileged


class ServeError(ZonegenError):
    """The DNS server cannot start."""


# --------------------------------------------------------------------------- options


def parse_hostport(text: str, what: str = "address") -> HostPort:
    """``HOST:PORT`` or ``[IPV6]:PORT`` with a literal IP address.

    :raises InvalidInput: not of that form, or the port is out of range.
    """
    match = re.fullmatch(r"\[([^\]]+)\]:(\d+)|([^:\[\]]+):(\d+)", text.strip())
    if match is None:
        raise InvalidInput(f"{what} {text!r}: expected HOST:PORT or [IPV6]:PORT")
    host = match.group(1) or match.group(3)
    port = int(match.group(2) or match.group(4))
    if host == "localhost":
        host = "127.0.0.1"
    try:
        host = str(ipaddress.ip_address(host))
    except ValueError:
        raise InvalidInput(f"{what} {text!r}: {host!r} is not an IP address") from None
    if not 0 <= port <= 65535:
        raise InvalidInput(f"{what} {text!r}: port {port} out of range")
    return host, port


def parse_network(text: str) -> Network:
    """A CIDR (``10.0.0.0/8``, ``::1``); host bits are allowed and ignored.

    :raises InvalidInput: not an address or network.
    """
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise InvalidInput(f"--allow-transfer {text!r} is not an IP network (CIDR)") from None


def make_key(name: str, algorithm: str, secret: str, where: str) -> dns.tsig.Key:
    """A TSIG key from its three parts, with errors naming ``where`` it came from.

    :raises InvalidInput: unknown algorithm, bad name, or a secret that is not base64.
    """
    alg = ALGORITHMS.get(algorithm.strip().lower().rstrip("."))
    if alg is None:
        raise InvalidInput(f"{where}: unknown TSIG algorithm {algorithm!r} (one of "
                           f"{', '.join(ALGORITHMS)})")
    try:
        key_name = dns.name.from_text(name.strip())
    except dns.exception.DNSException as e:
        raise InvalidInput(f"{where}: key name {name!r} is not a domain name: {e}") from None
    try:
        raw = base64.b64decode(secret.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput(f"{where}: secret of key {name!r} is not base64") from None
    if not raw:
        raise InvalidInput(f"{where}: secret of key {name!r} is empty")
    return dns.tsig.Key(key_name, raw, alg)


def parse_tsig_key(text: str) -> dns.tsig.Key:
    """``NAME:ALGORITHM:BASE64SECRET`` (``--tsig-key``).

    :raises InvalidInput: wrong shape, unknown algorithm or bad secret.
    """
    parts = text.split(":", 2)
    if len(parts) != 3 or not all(p.strip() for p in parts):
        raise InvalidInput(f"--tsig-key {parts[0]!r}...: expected NAME:ALGORITHM:BASE64SECRET")
    return make_key(parts[0], parts[1], parts[2], f"--tsig-key {parts[0]}")


_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<comment>\#[^\n]*|//[^\n]*|/\*.*?\*/)
  | (?P<string>"(?:[^"\\\n]|\\.)*")
  | (?P<punct>[{};])
  | (?P<word>[^\s{};"\#/]+(?:/(?![/*])[^\s{};"\#/]*)*)
""", re.VERBOSE | re.DOTALL)


def _tokens(text: str, path: str) -> Iterator[tuple[str, int, bool]]:
    """``(token, line, quoted)`` for BIND's configuration grammar: words, quoted strings,
    braces and semicolons; ``#``, ``//`` and ``/* */`` comments skipped."""
    pos = 0
    line = 1
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            snippet = text[pos:pos + 20].split("\n")[0]
            raise InvalidInput(f"{path}:{line}: unexpected {snippet!r}")
        kind = m.lastgroup
        value = m.group()
        if kind == "string":
            yield re.sub(r"\\(.)", r"\1", value[1:-1]), line, True
        elif kind in ("punct", "word"):
            yield value, line, False
        line += value.count("\n")
        pos = m.end()


def parse_keyfile(path: str | Path) -> list[dns.tsig.Key]:
    """The ``key`` clauses of a BIND-syntax file (``tsig-keygen`` output, rndc.key)::

        key "xfr-key" { algorithm hmac-sha256; secret "c2VjcmV0"; };

    Other top-level statements are skipped (a named.conf fragment may hold more).

    :raises InvalidInput: the file cannot be read, or a ``key`` clause is malformed; the
        message names the file and line.
    """
    name = str(path)
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise InvalidInput(f"{name}: cannot read TSIG key file: "
                           f"{getattr(e, 'strerror', None) or e}") from None
    toks = list(_tokens(text, name))
    keys: list[dns.tsig.Key] = []
    i = 0

    def want(what: str) -> tuple[str, int, bool]:
        nonlocal i
        if i >= len(toks):
            last = toks[-1][1] if toks else 1
            raise InvalidInput(f"{name}:{last}: unexpected end of file, expected {what}")
        tok = toks[i]
        i += 1
        return tok

    def skip_statement() -> None:
        depth = 0
        while True:
            tok, _, quoted = want("';'")
            if not quoted and tok == "{":
                depth += 1
            elif not quoted and tok == "}":
                depth -= 1
            elif not quoted and tok == ";" and depth <= 0:
                return

    while i < len(toks):
        tok, line, quoted = want("a statement")
        if quoted or tok != "key":
            if not quoted and tok == ";":
                continue
            skip_statement()
            continue
        key_name, line, _ = want("a key name")
        if key_name in "{};":
            raise InvalidInput(f"{name}:{line}: key without a name")
        brace, bline, bquoted = want("'{'")
        if bquoted or brace != "{":
            raise InvalidInput(f"{name}:{bline}: expected '{{' after key {key_name!r}")
        fields: dict[str, str] = {}
        while True:
            field_name, fline, fquoted = want("'}'")
            if not fquoted and field_name == "}":
                break
            value, vline, _ = want(f"a value for {field_name!r}")
            end, eline, equoted = want("';'")
            if equoted or end != ";":
                raise InvalidInput(f"{name}:{eline}: expected ';' after {field_name} "
                                   f"{value!r} in key {key_name!r}")
            if field_name not in ("algorithm", "secret"):
                raise InvalidInput(f"{name}:{fline}: unknown field {field_name!r} in key "
                                   f"{key_name!r} (expected algorithm and secret)")
            if field_name in fields:
                raise InvalidInput(f"{name}:{fline}: {field_name} given twice in key "
                                   f"{key_name!r}")
            fields[field_name] = value
        end, eline, equoted = want("';'")
        if equoted or end != ";":
            raise InvalidInput(f"{name}:{eline}: expected ';' after the '}}' of key "
                               f"{key_name!r}")
        for needed in ("algorithm", "secret"):
            if needed not in fields:
                raise InvalidInput(f"{name}:{line}: key {key_name!r} has no {needed}")
        keys.append(make_key(key_name, fields["algorithm"], fields["secret"],
                             f"{name}:{line}"))
    if not keys:
        raise InvalidInput(f"{name}: no key clause found")
    return keys


@dataclass(frozen=True, slots=True)
class ServeOptions:
    """How to serve. Defaults suit a cluster deployment; tests shrink the timings."""

    listen: tuple[HostPort, ...] = (("127.0.0.1", 5353),)
    allow_transfer: tuple[Network, ...] = LOOPBACK
    keys: tuple[dns.tsig.Key, ...] = ()
    notify: tuple[HostPort, ...] = ()
    poll: float = 1.0  # seconds between store polls
    idle_timeout: float = 10.0  # a TCP read or write may stall this long, then we hang up
    max_connections: int = 256  # open TCP connections, at most
    max_transfers: int = 16  # AXFR/IXFR being prepared or sent, at most
    journal_versions: int = 1000  # in-memory IXFR journal: newest versions kept
    journal_records: int = 500_000  # ... and records across them, at most
    udp_payload: int = 1232  # our EDNS payload (RFC 6891 §6.2.5; DNS flag day 2020)
    notify_attempts: int = 5  # RFC 1996 §3.6: retransmit until answered, bounded
    notify_timeout: float = 1.0  # first wait for a NOTIFY answer; doubles per attempt

    def __post_init__(self) -> None:
        names = [k.name for k in self.keys]
        if len(set(names)) != len(names):
            dup = next(n for n in names if names.count(n) > 1)
            raise InvalidInput(f"TSIG key {dup} is configured twice")

    def allowed(self, address: str) -> bool:
        """Whether ``address`` may transfer (IPv4-mapped IPv6 peers count as IPv4)."""
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in net for net in self.allow_transfer)


# --------------------------------------------------------------------------- zone set


@dataclass(frozen=True, slots=True)
class ZoneSet:
    """Every served zone at one serial, with the recent IXFR journal: immutable.

    A transfer takes a reference to the ZoneSet current when it starts and reads only
    from it, so it sends one consistent version however many are committed meanwhile
    (RFC 5936 §2.2: an AXFR is a snapshot of one serial). Journal steps hold plain
    records of the log (relative names), shared by all zones: each zone's encoder keeps
    only its own records (:class:`JournalStep`)."""

    version_id: int
    serial: int
    zones: Mapping[dns.name.Name, WireZone]
    journal: tuple[JournalStep, ...] = ()

    @classmethod
    def build(cls, configs: Sequence[ZoneConfig], records: Iterable[Record], serial: int,
              version_id: int = 0) -> ZoneSet:
        """Encode every zone once from the full record set."""
        recs = records if isinstance(records, (list, tuple, set, frozenset)) else list(records)
        warnings: list[str] = []
        zones = {dns.name.from_text(c.zone): WireZone.build(recs, c, serial, warnings)
                 for c in configs}
        for message in dict.fromkeys(warnings):
            log.warning("%s", message)
        return cls(version_id, serial % 2**32, zones)

    def advance(self, steps: Sequence[tuple[int, JournalStep]], max_versions: int,
                max_records: int) -> ZoneSet:
        """The next ZoneSet: each ``(version_id, step)`` applied in order to every zone
        with ``WireZone.apply`` (a copy of the owner dict plus the changed records), the
        journal extended and trimmed to the newest ``max_versions`` steps holding at most
        ``max_records`` records."""
        zones = dict(self.zones)
        version_id = self.version_id
        serial = self.serial
        journal = list(self.journal)
        for vid, step in steps:
            diff = Diff(frozenset(step.added), frozenset(step.removed))
            zones = {name: wz.apply(diff, step.to_serial) for name, wz in zones.items()}
            version_id = vid
            serial = step.to_serial % 2**32
            journal.append(step)
        kept: list[JournalStep] = []
        total = 0
        for step in reversed(journal):
            size = len(step.added) + len(step.removed)
            if len(kept) >= max_versions or total + size > max_records:
                break
            kept.append(step)
            total += size
        return ZoneSet(version_id, serial, zones, tuple(reversed(kept)))

    def find(self, qname: dns.name.Name) -> WireZone | None:
        """The served zone holding ``qname`` (the closest enclosing apex), or None."""
        name = qname
        while True:
            wz = self.zones.get(name)
            if wz is not None:
                return wz
            if len(name) <= 1:
                return None
            name = name.parent()

    @property
    def primary(self) -> WireZone:
        return next(iter(self.zones.values()))

    def covers(self, serial: int) -> bool:
        """Whether the in-memory journal starts at or before ``serial``."""
        return any(s.from_serial % 2**32 == serial for s in self.journal)


def steps_from(versions: Sequence[JournalVersion]) -> list[tuple[int, JournalStep]]:
    """``(version_id, JournalStep)`` for stored versions that have a predecessor."""
    return [(jv.version.version_id,
             JournalStep(jv.previous_serial, jv.version.serial, jv.removed, jv.added))
            for jv in versions if jv.previous_serial is not None]


# --------------------------------------------------------------------------- the feed


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
    """

    def __init__(self, store: Store, configs: Sequence[ZoneConfig], *, project: bool = True,
                 clock: Clock = time.time, max_versions: int = 1000,
                 max_records: int = 500_000) -> None:
        if not configs:
            raise InvalidInput("no zone to serve")
        self.store = store
        self.configs = tuple(configs)
        self.project = project
        self.clock = clock
        self.max_versions = max_versions
        self.max_records = max_records
        self._runner: ProjectionRunner | None = None
        self._stalled_at: int | None = None  # checkpoint seen with events pending

    def _catch_up(self) -> None:
        from zonegen.runner import ProjectionRunner

        if self._runner is None:
            self._runner = ProjectionRunner(self.store, clock=self.clock)
        # The runner reloads itself when another projector moved ahead, and starts from
        # the store again after any failed commit.
        self._runner.catch_up()

    def project_pending(self, force: bool = False) -> None:
        """Project events nobody else projected for one poll interval (or now, with
        ``force``)."""
        if not self.project and not force:
            return
        done = self.store.max_tracking_seq()
        if self.store.max_event_seq() <= done:
            self._stalled_at = None
            return
        if force or self._stalled_at == done:
            self._stalled_at = None
            self._catch_up()
        else:
            self._stalled_at = done

    def load(self) -> ZoneSet:
        """The zones as of the newest stored version (projecting pending events first).

        :raises StoreError: the store cannot be read.
        """
        started = time.perf_counter()
        if self.project or self.store.latest_version() is None:
            self.project_pending(force=True)
        version = self.store.latest_version()
        if version is None:  # nothing projected and nothing to project
            self._catch_up()
            version = self.store.latest_version()
            if version is None:
                raise StoreError(f"{self.store.where}: no zone version to serve")
        records = self.store.records_at(version.version_id)
        zones = ZoneSet.build(self.configs, records, version.serial, version.version_id)
        log.info("loaded %s serial %d: %d records in %.0f ms",
                 ", ".join(c.zone for c in self.configs), version.serial, len(records),
                 (time.perf_counter() - started) * 1000)
        return zones

    def refresh(self, current: ZoneSet) -> ZoneSet | None:
        """``current`` advanced to the newest stored version, or None when it is current.
        Falls back to :meth:`load` when the store's history no longer continues from
        ``current`` (projection reset, or compacted past it).

        :raises StoreError: the store cannot be read.
        """
        self.project_pending()
        latest = self.store.latest_version()
        if latest is None or latest.version_id == current.version_id:
            return None
        if latest.version_id > current.version_id:
            versions = self.store.journal(current.version_id, latest.version_id)
            if versions and versions[0].previous_serial == current.serial and all(
                    jv.previous_serial is not None for jv in versions):
                return current.advance(steps_from(versions), self.max_versions,
                                       self.max_records)
        log.warning("zone history does not continue from serial %d (reset or compacted); "
                    "reloading", current.serial)
        return self.load()

    def older_steps(self, serial: int, current: ZoneSet) -> list[JournalStep] | None:
        """The stored steps from ``serial`` to ``current``, for a client older than the
        in-memory journal; None when the store does not have them either, or they hold
        more records than the journal limit (then a full transfer is cheaper)."""
        version = self.store.get_version(serial)
        if version is None or version.version_id >= current.version_id:
            return None
        versions = self.store.journal(version.version_id, current.version_id)
        if sum(len(v.added) + len(v.removed) for v in versions) > self.max_records:
            return None
        steps = [step for _, step in steps_from(versions)]
        if not steps or steps[0].from_serial != serial or steps[-1].to_serial != current.serial:
            return None
        return steps


# --------------------------------------------------------------------------- responding


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
    """A TCP transfer to prepare off the loop: the query, its zone, and the key that
    signed it (every response message is then signed, RFC 8945 §5.3.1)."""

    query: dns.message.Message
    zones: ZoneSet
    wirezone: WireZone
    key: dns.tsig.Key | None


def _tsig_rdata(query: dns.message.Message) -> dns.rdtypes.ANY.TSIG.TSIG:
    rd = query.tsig[0] if query.tsig else None
    if not isinstance(rd, dns.rdtypes.ANY.TSIG.TSIG):
        raise ValueError("message has no TSIG")
    return rd


def _append_tsig(wire: bytes, owner: dns.name.Name, rdata: bytes) -> bytes:
    """``wire`` with one more additional record: a TSIG (class ANY, TTL 0)."""
    (arcount,) = struct.unpack_from("!H", wire, 10)
    return b"".join((wire[:10], struct.pack("!H", arcount + 1), wire[12:],
                     owner.to_wire() or b"",
                     struct.pack("!HHIH", dns.rdatatype.TSIG, dns.rdataclass.ANY, 0,
                                 len(rdata)), rdata))


def tsig_error_response(query: dns.message.Message, error: int, now: int,
                        key: dns.tsig.Key | None = None) -> bytes:
    """NOTAUTH with a TSIG error (RFC 8945 §5.2). BADKEY and BADSIG replies are unsigned,
    MAC empty (§5.3.2: the key or MAC is what failed); BADTIME is signed with the key,
    the request's Time Signed kept and our clock in Other Data so the client can see the
    skew (§5.2.3)."""
    request = _tsig_rdata(query)
    response = dns.message.make_response(query)  # unsigned: query.keyring is unset
    response.set_rcode(dns.rcode.NOTAUTH)
    wire = response.to_wire()
    keyname = query.keyname
    if keyname is None:
        raise ValueError("message has no TSIG")
    if error == dns.rcode.BADTIME and key is not None:
        other = struct.pack("!HI", (now >> 32) & 0xFFFF, now & 0xFFFFFFFF)
        template = dns.rdtypes.ANY.TSIG.TSIG(  # type: ignore[no-untyped-call]
            dns.rdataclass.ANY, dns.rdatatype.TSIG, key.algorithm, request.time_signed,
            request.fudge, b"", query.id, error, other)
        signed, _ = dns.tsig.sign(  # type: ignore[no-untyped-call]
            wire, key, template, request.time_signed, request.mac)
        return _append_tsig(wire, key.name, signed.to_wire() or b"")
    rdata = dns.rdtypes.ANY.TSIG.TSIG(  # type: ignore[no-untyped-call]
        dns.rdataclass.ANY, dns.rdatatype.TSIG, request.algorithm, now, _TSIG_FUDGE, b"",
        query.id, error, b"")
    return _append_tsig(wire, keyname, rdata.to_wire() or b"")


class Responder:
    """Turns one request into an :class:`Outcome` (or a :class:`Transfer` to prepare):
    parsing, TSIG verification, the transfer ACL, then :mod:`zonegen.xfr`. No sockets;
    the shell in :class:`Server` only moves bytes."""

    def __init__(self, options: ServeOptions, clock: Clock = time.time) -> None:
        self.options = options
        self.clock = clock
        self.keys = {k.name: k for k in options.keys}

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
        return Outcome([tsig_error_response(query, error, now, key)], "tsig",
                       reason=f"{reason} ({query.keyname})")

    def respond(self, wire: bytes, peer: str, zones: ZoneSet, *, tcp: bool
                ) -> Outcome | Transfer | None:
        """The reply to ``wire`` from ``peer``; a :class:`Transfer` for AXFR/IXFR over
        TCP that passed the ACL and TSIG checks."""
        parsed = self.parse(wire)
        if not isinstance(parsed, dns.message.Message):
            return parsed
        query = parsed
        if query.opcode() != dns.opcode.QUERY or len(query.question) != 1:
            reply = xfr.answer(query, zones.primary, self.options.udp_payload, tcp=tcp)
            return Outcome([reply] if reply else [])
        q = query.question[0]
        wz = zones.find(q.name)
        if q.rdtype in (dns.rdatatype.AXFR, dns.rdatatype.IXFR):
            return self._transfer(query, peer, zones, wz, tcp=tcp)
        if wz is None:
            response = dns.message.make_response(query, our_payload=self.options.udp_payload)
            response.set_rcode(dns.rcode.REFUSED)  # not ours, and we do not recurse
            return Outcome([response.to_wire()])
        payload = self.options.udp_payload - (_TSIG_ROOM if query.had_tsig else 0)
        reply = xfr.answer(query, wz, payload, tcp=tcp)
        return Outcome([reply] if reply else [], zone=wz.config.zone, serial=wz.serial)

    def _transfer(self, query: dns.message.Message, peer: str, zones: ZoneSet,
                  wz: WireZone | None, *, tcp: bool) -> Outcome | Transfer:
        q = query.question[0]
        kind = dns.rdatatype.to_text(q.rdtype)
        zone = q.name.to_text()
        if not self.options.allowed(peer):
            return self._refuse(query, kind, zone, "address not in --allow-transfer")
        if self.keys and not query.had_tsig:
            return self._refuse(query, kind, zone, "request not signed with a TSIG key")
        if wz is None or wz.config.zone != q.name.canonicalize().to_text():
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
            room = _tsig_size(key) if key is not None else 0
            if query.edns < 0:
                limit = 512
            else:
                limit = max(512, min(payload, query.payload))
                room += len(_OPT_ROOT) + 10
            messages = xfr.ixfr_response(query, wz, zones.journal, max_size=limit - room,
                                         udp=True)
            if query.edns >= 0:  # RFC 6891 §7: an OPT in the request, one in the reply
                messages = [_append_opt(m, payload) if _arcount(m) == 0 else m
                            for m in messages]
            if key is not None:
                messages = xfr.sign_messages(messages, key, query.mac or b"",
                                             int(self.clock()))
            return Outcome(messages, "IXFR/UDP", wz.config.zone, wz.serial)
        return Transfer(query, zones, wz, key)

    def _refuse(self, query: dns.message.Message, kind: str, zone: str, reason: str
                ) -> Outcome:
        return Outcome([xfr.error_response(query, dns.rcode.REFUSED)], "refused", zone,
                       reason=f"{kind} refused: {reason}")

    def prepare(self, transfer: Transfer,
                older: Callable[[int, ZoneSet], list[JournalStep] | None] | None = None
                ) -> tuple[str, list[bytes]]:
        """The messages of a TCP transfer, signed when the request was (blocking: may read
        the store through ``older`` and join a cold AXFR; run it off the loop).

        IXFR: the in-memory journal, else the store's (``older``), else AXFR (RFC 1995
        §4). Returns the kind actually sent: ``AXFR``, ``IXFR`` or ``IXFR->AXFR``."""
        query, zones, wz = transfer.query, transfer.zones, transfer.wirezone
        kind = "AXFR"
        if query.question[0].rdtype == dns.rdatatype.AXFR:
            messages = xfr.axfr_response(query, wz)
        else:
            kind = "IXFR"
            journal: Sequence[JournalStep] = zones.journal
            try:
                client = dns.xfr.extract_serial_from_query(query)
            except (KeyError, ValueError):
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
            messages = xfr.sign_messages(messages, transfer.key, query.mac or b"",
                                         int(self.clock()))
        return kind, messages


_OPT_ROOT = b"\x00"


def _tsig_size(key: dns.tsig.Key) -> int:
    """Octets of the TSIG record ``key`` adds to a reply (RFC 8945 §4.2), MAC at most
    64 octets (HMAC-SHA512)."""
    return (len(key.name.to_wire() or b"") + 10 + len(key.algorithm.to_wire() or b"")
            + 6 + 2 + 2 + 64 + 2 + 2 + 2)


def _append_opt(wire: bytes, payload: int) -> bytes:
    """``wire`` with an OPT record (RFC 6891 §6.1.2): version 0, no flags, no options."""
    (arcount,) = struct.unpack_from("!H", wire, 10)
    return b"".join((wire[:10], struct.pack("!H", arcount + 1), wire[12:], _OPT_ROOT,
                     struct.pack("!HHIH", dns.rdatatype.OPT, payload, 0, 0)))


def _arcount(wire: bytes) -> int:
    return int(struct.unpack_from("!H", wire, 10)[0])


def _ancount(wire: bytes) -> int:
    return int(struct.unpack_from("!H", wire, 6)[0])


def _rcode(wire: bytes) -> int:
    return int(struct.unpack_from("!H", wire, 2)[0]) & 0xF if len(wire) >= 4 else 0


# --------------------------------------------------------------------------- NOTIFY


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
    when given, and the answer's signature is checked then (RFC 8945 §5.3)."""

    def __init__(self, targets: Sequence[HostPort], key: dns.tsig.Key | None,
                 attempts: int, timeout: float) -> None:
        self.targets = tuple(targets)
        self.key = key
        self.attempts = attempts
        self.timeout = timeout
        self.tasks: dict[tuple[str, HostPort], asyncio.Task[bool]] = {}
        self.acknowledged = 0

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
                        where, e)
            return False
        qid = dns.message.make_query(config.zone, dns.rdatatype.SOA).id  # random id
        macs: list[bytes] = []  # request MAC of each copy sent: any may be answered
        rejected: list[str] = []  # unsigned TSIG errors seen: not trusted, but reported
        try:
            for attempt in range(1, self.attempts + 1):
                # the same id each time, so a late answer to an earlier copy still counts
                message = xfr.notify_message(config, serial, id=qid)
                if self.key is not None:
                    message.use_tsig(self.key)
                wire = message.to_wire()
                macs.append(message.mac or b"")
                transport.sendto(wire)
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
                        log.info("NOTIFY %s serial %d to %s acknowledged (attempt %d)",
                                 config.zone, serial, where, attempt)
                        return True
                    log.warning("NOTIFY %s serial %d to %s answered %s; not retrying",
                                config.zone, serial, where,
                                dns.rcode.to_text(dns.rcode.Rcode(verdict)))
                    return False
                await asyncio.sleep(max(0.0, deadline - loop.time()))
                timeout *= 2
            if rejected and self.key is not None:
                log.warning("NOTIFY %s serial %d to %s: no signed answer after %d attempts; "
                            "it answered TSIG error %s to key %s", config.zone, serial,
                            where, self.attempts, rejected[-1], self.key.name)
            else:
                log.warning("NOTIFY %s serial %d to %s: no answer after %d attempts",
                            config.zone, serial, where, self.attempts)
            return False
        finally:
            transport.close()

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


# --------------------------------------------------------------------------- the server


@dataclass
class ServeReport:
    """Totals for the command's last line."""

    queries: int = 0
    transfers: int = 0
    refused: int = 0
    dropped: int = 0
    versions: int = 0
    serial: int | None = None
    zones: tuple[str, ...] = ()
    addresses: list[HostPort] = field(default_factory=list)

    def summary(self) -> str:
        return (f"served {', '.join(self.zones)} up to serial {self.serial}: "
                f"{self.queries} queries, {self.transfers} transfers, {self.refused} "
                f"refused, {self.dropped} dropped; {self.versions} new versions")


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, server: Server) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # CPython's selector transport does not subclass DatagramTransport: cast.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        reply = self.server.handle_datagram(data, addr)
        if reply and self.transport is not None:
            self.transport.sendto(reply, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("UDP error: %s", exc)


class Server:
    """The asyncio server: UDP and TCP listeners on every address, the store poll, and
    NOTIFY. ``source`` (a :class:`StoreFeed`) loads and refreshes the zones; without
    one, pass ``zones`` and call :meth:`publish` (benchmarks)."""

    def __init__(self, options: ServeOptions, source: StoreFeed | None = None, *,
                 zones: ZoneSet | None = None, clock: Clock = time.time) -> None:
        if source is None and zones is None:
            raise ValueError("Server needs a source or zones")
        self.options = options
        self.source = source
        self.zones: ZoneSet | None = zones
        self.responder = Responder(options, clock)
        self.report = ServeReport()
        self.addresses: list[HostPort] = []
        self._notifier = Notifier(options.notify, options.keys[0] if options.keys else None,
                                  options.notify_attempts, options.notify_timeout)
        self._pool = ThreadPoolExecutor(max_workers=max(2, options.max_transfers + 1),
                                        thread_name_prefix="zonegen-serve")
        self._transfers = 0
        self._connections: set[asyncio.Task[None]] = set()
        self._servers: list[asyncio.Server] = []
        self._udp: list[asyncio.DatagramTransport] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.changed: asyncio.Condition | None = None

    # ----------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Load the zones, bind every address (UDP and TCP on the same port; port 0
        picks a free one), start polling, NOTIFY the current serial.

        :raises ServeError: an address cannot be bound.
        :raises StoreError: the store cannot be read.
        """
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self.changed = asyncio.Condition()
        if self.zones is None and self.source is not None:
            self.zones = await self._loop.run_in_executor(self._pool, self.source.load)
        zones = self.current
        self.report.zones = tuple(wz.config.zone for wz in zones.zones.values())
        self.report.serial = zones.serial
        try:
            for host, port in self.options.listen:
                self.addresses.append(await self._bind(host, port))
        except BaseException:
            await self.aclose()
            raise
        self.report.addresses = list(self.addresses)
        if self.source is not None:
            self._tasks.append(self._loop.create_task(self._poll()))
        self._notifier.notify(zones)
        log.info("serving %s serial %d on %s", ", ".join(self.report.zones), zones.serial,
                 ", ".join(_where(h, p) for h, p in self.addresses))

    async def _bind(self, host: str, port: int) -> HostPort:
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        last: OSError | None = None
        for _ in range(20 if port == 0 else 1):  # port 0: find one free for both
            tcp: asyncio.Server | None = None
            try:
                tcp = await asyncio.start_server(self._tcp_client, host, port, family=family,
                                                 backlog=128, reuse_address=True)
                bound = tcp.sockets[0].getsockname()[1]
                udp, _ = await loop.create_datagram_endpoint(
                    lambda: _Udp(self), local_addr=(host, bound), family=family)
            except OSError as e:
                last = e
                if tcp is not None:
                    tcp.close()
                    await tcp.wait_closed()
                continue
            _grow_receive_buffer(udp.get_extra_info("socket"), _UDP_RECEIVE_BUFFER)
            self._servers.append(tcp)
            self._udp.append(udp)
            return host, bound
        raise ServeError(f"cannot listen on {_where(host, port)}: "
                         f"{last.strerror if last is not None and last.strerror else last}")

    async def aclose(self) -> None:
        """Stop listening, cancel polls, NOTIFYs and transfers, release the pool."""
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
        await self._notifier.aclose()
        self._pool.shutdown(wait=False, cancel_futures=True)

    @property
    def current(self) -> ZoneSet:
        """The zones served now (after :meth:`start`)."""
        if self.zones is None:
            raise RuntimeError("server not started")
        return self.zones

    def wake(self) -> None:
        """Poll the store now (thread-safe): ``serve --watch`` calls it on each commit."""
        if self._loop is not None and self._wake is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    # ----------------------------------------------------------------- new versions

    async def _poll(self) -> None:
        loop = asyncio.get_running_loop()
        wake = self._wake or asyncio.Event()
        source = self.source
        if source is None:
            return
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), self.options.poll)
            wake.clear()
            current = self.current
            started = time.perf_counter()
            try:
                new = await loop.run_in_executor(self._pool, source.refresh, current)
            except ZonegenError as e:
                log.warning("cannot refresh the zone: %s", e)
                continue
            except Exception:
                log.exception("cannot refresh the zone")
                continue
            if new is not None:
                log.info("serial %d -> %d (%d versions) in %.1f ms", current.serial,
                         new.serial, max(0, new.version_id - current.version_id),
                         (time.perf_counter() - started) * 1000)
                await self.publish(new)

    async def publish(self, zones: ZoneSet) -> None:
        """Serve ``zones`` from now on (transfers under way keep theirs) and NOTIFY."""
        old = self.zones
        self.zones = zones
        self.report.serial = zones.serial
        if old is None or old.serial != zones.serial:
            self.report.versions += 1
            self._notifier.notify(zones)
        if self.changed is not None:
            async with self.changed:
                self.changed.notify_all()

    # ----------------------------------------------------------------- UDP

    def handle_datagram(self, data: bytes, addr: Any) -> bytes | None:
        """One UDP request; never raises (a bad packet must not stop the server)."""
        try:
            outcome = self.responder.respond(data, addr[0], self.current, tcp=False)
            if outcome is None or isinstance(outcome, Transfer):
                self.report.dropped += 1
                return None
            self._account(outcome, addr)
            return outcome.messages[0] if outcome.messages else None
        except Exception:  # noqa: BLE001
            log.debug("dropped a UDP packet from %s", addr[0], exc_info=True)
            self.report.dropped += 1
            return None

    def _account(self, outcome: Outcome, addr: Any) -> None:
        if outcome.kind in ("refused", "tsig"):
            self.report.refused += 1
            log.warning("%s: %s %s", _where(addr[0], addr[1]), outcome.zone, outcome.reason)
        elif outcome.kind == "IXFR/UDP":
            self.report.transfers += 1
            log.info("IXFR/UDP to %s: %s serial %d, %d records, %d bytes",
                     _where(addr[0], addr[1]), outcome.zone, outcome.serial or 0,
                     sum(map(_ancount, outcome.messages)), sum(map(len, outcome.messages)))
        else:
            self.report.queries += 1

    # ----------------------------------------------------------------- TCP

    async def _tcp_client(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is None:
            return
        peer = writer.get_extra_info("peername") or ("?", 0)
        if len(self._connections) >= self.options.max_connections:
            log.warning("%s: too many TCP connections (%d); closing", _where(*peer[:2]),
                        len(self._connections))
            writer.close()
            return
        self._connections.add(task)
        try:
            await self._tcp_session(reader, writer, peer)
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError, OSError) as e:
            log.debug("TCP session with %s ended: %r", _where(*peer[:2]), e, exc_info=True)
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("TCP session with %s failed", _where(*peer[:2]))
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
                outcome = self.responder.respond(wire, peer[0], self.current, tcp=True)
            except Exception:  # noqa: BLE001 - a query we cannot handle: drop the connection
                log.debug("failed on a TCP request from %s", peer[0], exc_info=True)
                self.report.dropped += 1
                return
            if outcome is None:
                self.report.dropped += 1
                continue
            if isinstance(outcome, Outcome):
                self._account(outcome, peer)
                await self._send(writer, outcome.messages)
                continue
            await self._transfer(writer, outcome, peer)

    async def _transfer(self, writer: asyncio.StreamWriter, transfer: Transfer,
                        peer: Any) -> None:
        loop = asyncio.get_running_loop()
        q = transfer.query.question[0]
        where = _where(peer[0], peer[1])
        if self._transfers >= self.options.max_transfers:
            log.warning("%s: %s of %s refused: %d transfers already running", where,
                        dns.rdatatype.to_text(q.rdtype), q.name, self._transfers)
            self.report.refused += 1
            await self._send(writer, [xfr.error_response(transfer.query, dns.rcode.SERVFAIL)])
            return
        self._transfers += 1
        try:
            started = time.perf_counter()
            older = self.source.older_steps if self.source is not None else None
            kind, messages = await loop.run_in_executor(
                self._pool, self.responder.prepare, transfer, older)
            await self._send(writer, messages)
            ms = (time.perf_counter() - started) * 1000
        finally:
            self._transfers -= 1
        self.report.transfers += 1
        records = sum(map(_ancount, messages))
        size = sum(map(len, messages)) + 2 * len(messages)
        rcode = _rcode(messages[0]) if messages else 0
        if rcode:
            log.warning("%s: %s of %s answered %s", where, kind, q.name,
                        dns.rcode.to_text(dns.rcode.Rcode(rcode)))
        signed = f", TSIG {transfer.key.name}" if transfer.key is not None else ""
        log.info("%s to %s: %s serial %d, %d records, %d messages, %d bytes, %.1f ms%s",
                 kind, where, transfer.wirezone.config.zone, transfer.wirezone.serial,
                 records, len(messages), size, ms, signed)

    async def _send(self, writer: asyncio.StreamWriter, messages: Sequence[bytes]) -> None:
        """Write length-framed messages (RFC 1035 §4.2.2), pausing whenever more than
        1 MB is buffered until the peer has read some. A peer that reads nothing for
        ``idle_timeout`` is hung up on: a stalled reader costs one buffer and one task,
        never a thread or another client's turn; a slow but steady one is served."""
        transport = writer.transport
        transport.set_write_buffer_limits(high=_WRITE_BUFFER)
        pack = struct.Struct("!H").pack
        for message in messages:
            writer.write(pack(len(message)) + message)
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


def _where(host: str, port: int) -> str:
    return f"{host}#{port}"


# --------------------------------------------------------------------------- running


@dataclass(frozen=True, slots=True)
class WatchConfig:
    """``serve --watch``: the watch command's connection options (see ``zonegen watch``)."""

    kubeconfig: str | None = None
    context: str | None = None
    options: WatchOptions | None = None


class ServerThread:
    """A :class:`Server` on its own event loop in a background thread: for tests, the
    benchmark and ``serve --watch``'s callers that already own the main thread.

    ``with ServerThread(options, feed) as st: st.port ...``"""

    def __init__(self, options: ServeOptions, source: StoreFeed | None = None, *,
                 zones: ZoneSet | None = None, clock: Clock = time.time) -> None:
        self.server = Server(options, source, zones=zones, clock=clock)
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


def serve(store: Store, configs: Sequence[ZoneConfig], options: ServeOptions, *,
          watch: WatchConfig | None = None, ready: Callable[[str], None] | None = None,
          stop: threading.Event | None = None) -> ServeReport:
    """``zonegen serve``: serve ``configs`` from ``store`` until SIGINT/SIGTERM (or
    ``stop``), then close every socket and return the totals.

    With ``watch``, the Kubernetes watcher runs in this process (a thread) and wakes the
    server after each commit, so new versions are served and NOTIFYed at once; it then
    projects its own events and the server only reads versions.

    :raises ServeError: an address cannot be bound.
    :raises StoreError: the store cannot be read.
    :raises WatchError: ``watch`` configuration unusable.
    """
    feed = StoreFeed(store, configs, project=watch is None and not store.read_only,
                     max_versions=options.journal_versions,
                     max_records=options.journal_records)
    return asyncio.run(_serve_main(feed, options, watch, ready, stop))


async def _serve_main(feed: StoreFeed, options: ServeOptions, watch: WatchConfig | None,
                      ready: Callable[[str], None] | None,
                      stop_flag: threading.Event | None) -> ServeReport:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    server = Server(options, feed)
    watcher_stop = threading.Event()
    watcher_thread: threading.Thread | None = None
    watcher_error: list[BaseException] = []
    installed: list[signal.Signals] = []
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
    if stop_flag is not None:
        threading.Thread(target=lambda: (stop_flag.wait(), loop.call_soon_threadsafe(stop.set)),
                         daemon=True).start()
    cluster = None
    try:
        await server.start()
        if watch is not None:
            from zonegen.watch import Commit, Watcher, WatchOptions, connect

            cluster = connect(watch.kubeconfig, watch.context)

            def on_commit(commit: Commit) -> None:
                if commit.versions:
                    server.wake()

            # the watcher projects its own commits (the feed does not, in this mode)
            watch_options = dataclasses.replace(watch.options or WatchOptions(), project=True)
            watcher = Watcher(feed.store, cluster, watch_options, on_commit=on_commit)

            def run_watcher() -> None:
                try:
                    watcher.run(watcher_stop)
                except BaseException as e:  # noqa: BLE001 - reported by serve()
                    watcher_error.append(e)
                    loop.call_soon_threadsafe(stop.set)

            watcher_thread = threading.Thread(target=run_watcher, name="zonegen-watch",
                                              daemon=True)
            watcher_thread.start()
        if ready is not None:
            ready(f"serving {', '.join(server.report.zones)} serial {server.current.serial} on "
                  + ", ".join(f"{_where(h, p)} (udp, tcp)" for h, p in server.addresses))
        await stop.wait()
        log.info("stopping")
    finally:
        watcher_stop.set()
        if watcher_thread is not None:
            await loop.run_in_executor(None, watcher_thread.join, 60)
        if cluster is not None:
            cluster.close()
        await server.aclose()
        for sig in installed:
            loop.remove_signal_handler(sig)
    if watcher_error:
        raise watcher_error[0]
    return server.report


def extra_zone_config(config: ZoneConfig, zone: str) -> ZoneConfig:
    """Another zone served beside ``config`` at the same serial (``--extra-zone``, e.g.
    ``10.in-addr.arpa`` for PTRs): same forward zone, timers and hostmaster; the same NS
    names, with addresses only where the NS lies inside the new zone (glue, RFC 1034
    §4.2.1; a reverse zone holds none).

    :raises InvalidZone: the zone name or a derived option is unusable.
    """
    from zonegen.model import NameServer
    from zonegen.names import in_zone, zone_config

    name = zone.lower().rstrip(".") + "."
    servers: list[str | NameServer] = [
        ns if ns.address and in_zone(ns.name, name) else NameServer(ns.name)
        for ns in config.nameservers]
    return zone_config(zone=zone, forward_zone=config.forward_zone, nameservers=servers,
                       hostmaster=config.hostmaster, ttl=config.ttl, refresh=config.refresh,
                       retry=config.retry, expire=config.expire, minimum=config.minimum)


def serve_options(*, listen: Sequence[str] = (), allow_transfer: Sequence[str] = (),
                  tsig_keys: Sequence[str] = (), tsig_keyfiles: Sequence[str] = (),
                  notify: Sequence[str] = (), poll: float = 1.0,
                  max_transfers: int = 16, idle_timeout: float = 10.0) -> ServeOptions:
    """:class:`ServeOptions` from command-line strings.

    :raises InvalidInput: an address, network or key is malformed (the message names it).
    """
    keys = [parse_tsig_key(k) for k in tsig_keys]
    for path in tsig_keyfiles:
        keys.extend(parse_keyfile(path))
    return ServeOptions(
        listen=tuple(parse_hostport(a, "--listen") for a in listen) or (("127.0.0.1", 5353),),
        allow_transfer=tuple(parse_network(n) for n in allow_transfer) or LOOPBACK,
        keys=tuple(keys),
        notify=tuple(parse_hostport(a, "--notify") for a in notify),
        poll=poll, max_transfers=max_transfers, idle_timeout=idle_timeout)


def serve_command(store: Store, config: ZoneConfig, *, extra_zones: Sequence[str] = (),
                  options: ServeOptions | None = None, watch: WatchConfig | None = None,
                  ready: Callable[[str], None] | None = None) -> ServeReport:
    """``zonegen serve``: ``config`` plus ``extra_zones``, until SIGINT/SIGTERM.

    :raises ZonegenError: bad options, an address in use, an unreadable store.
    """
    configs = [config, *(extra_zone_config(config, z) for z in extra_zones)]
    zones = [c.zone for c in configs]
    if len(set(zones)) != len(zones):
        raise InvalidInput(f"zone served twice: {', '.join(zones)}")
    return serve(store, configs, options or ServeOptions(), watch=watch, ready=ready)
