"""DNS responses as wire bytes, sans I/O: AXFR, IXFR, small authoritative answers, NOTIFY.

The bulk of a transfer never goes through dnspython's renderer (~28k RR/s): every record
is encoded once, when it enters the zone, as a wire fragment whose owner ends in a
compression pointer to the question name at offset 12 (PERFORMANCE.md), and messages are
joins of those bytes. dnspython builds the small answers, signs with TSIG and, in tests,
parses everything made here. Pure: no sockets, no store; ``serve.py`` owns the I/O.
"""

from __future__ import annotations

import ipaddress
import struct
from bisect import bisect_right
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import accumulate, chain

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TSIG
import dns.rrset
import dns.serial
import dns.tsig
import dns.xfr

from zonegen.model import AAAA, CNAME, NS, SOA, SRV, TXT, A, Diff, Record, ZoneConfig
from zonegen.zonefile import _Names, iter_zone_records

__all__ = [
    "XFR_MESSAGE_SIZE",
    "JournalStep",
    "WireZone",
    "answer",
    "axfr_response",
    "error_response",
    "ixfr_response",
    "name_wire",
    "notify_message",
    "sign_messages",
]

XFR_MESSAGE_SIZE = 65535 - 1024
"""Default size limit of one transfer message: the TCP maximum less room for a TSIG
record (key name up to 255 octets, HMAC-SHA512 MAC) that the socket layer may append."""

_QR, _AA, _TC, _RD = 0x8000, 0x0400, 0x0200, 0x0100
_HEADER = struct.Struct("!HHHHHH")
_RR_HEAD = struct.Struct("!HHIH")  # type, class, TTL, rdlength
_SRV_HEAD = struct.Struct("!HHIHHHH")  # the above + priority, weight, port
_SOA_TAIL = struct.Struct("!IIIII")
_IN = dns.rdataclass.IN
_POINTER = b"\xc0\x0c"  # the question name, which every message we build starts with


def name_wire(name: str) -> bytes:
    """Uncompressed wire form of an absolute presentation name without escapes (the only
    kind :func:`zonegen.zonefile.absolute_name` lets through), RFC 1035 §3.1."""
    if name == ".":
        return b"\x00"
    return b"".join(bytes((len(label),)) + label.encode("ascii")
                    for label in name[:-1].split(".")) + b"\x00"


def _soa_fragment(config: ZoneConfig, serial: int) -> bytes:
    """The apex SOA (RFC 1035 §3.3.13), TTL ``config.ttl`` as in the rendered file."""
    mname = config.nameservers[0].name if config.nameservers else f"ns.dns.{config.zone}"
    rdata = (name_wire(mname) + name_wire(config.hostmaster)
             + _SOA_TAIL.pack(serial % 2**32, config.refresh, config.retry, config.expire,
                              config.minimum))
    return _POINTER + _RR_HEAD.pack(SOA, _IN, config.ttl, len(rdata)) + rdata


class _Encoder:
    """Per-record wire fragments for one zone, with caches per owner, target and address
    so a 1M-record zone encodes each distinct name once."""

    def __init__(self, config: ZoneConfig, warnings: list[str] | None) -> None:
        self.config = config
        self.warnings = warnings
        self.zone = config.zone
        self.cut = 1 if config.zone == "." else len(config.zone) + 1
        self.owners: dict[str, bytes] = {}
        self.targets: dict[str, bytes] = {}
        self.addresses: dict[str | int, bytes] = {}

    def owner_prefix(self, owner: str) -> bytes:
        """Owner as its labels below the zone, then a pointer to the zone name at 12.
        Built from the parent's prefix (cached too), so each label is encoded once."""
        prefix = self.owners.get(owner)
        if prefix is None:
            if owner == self.zone:
                prefix = _POINTER
            else:
                dot = owner.index(".")
                prefix = (bytes((dot,)) + owner[:dot].encode("ascii")
                          + self.owner_prefix(owner[dot + 1:]))
            self.owners[owner] = prefix
        return prefix

    def target(self, name: str) -> bytes:
        """Uncompressed wire of an absolute name, built from its parent's (cached): the
        250k SRV targets of a 1M-record zone share a few thousand parents."""
        wire = self.targets.get(name)
        if wire is None:
            if name in (".", ""):  # "" is what is left after the last label's dot
                wire = b"\x00"
            else:
                dot = name.index(".")
                wire = bytes((dot,)) + name[:dot].encode("ascii") + self.target(name[dot + 1:])
            self.targets[name] = wire
        return wire

    def address(self, rtype: int, text: str | int) -> bytes | None:
        packed = self.addresses.get(text)
        if packed is None:
            try:
                if rtype == A:
                    packed = bytes(map(int, str(text).split(".")))
                    if len(packed) != 4:
                        raise ValueError(text)
                else:
                    packed = ipaddress.IPv6Address(str(text)).packed
            except ValueError:
                if self.warnings is not None:
                    self.warnings.append(f"{text!r} is not an IPv{4 if rtype == A else 6} "
                                         "address; record skipped")
                return None
            self.addresses[text] = packed
        return packed

    def fragments(self, records: Iterable[Record]) -> Iterator[tuple[str, bytes]]:
        """``(absolute owner, fragment)`` for the records of :func:`iter_zone_records`.

        Targets of SRV (RFC 2782: "name compression is not to be used for this field"),
        CNAME and PTR are written uncompressed: the simplest correct form, and it keeps
        fragments independent of where they land in a message."""
        default_ttl = self.config.ttl
        owner_get = self.owners.get
        target_get = self.targets.get
        addr_get = self.addresses.get
        a_head = _RR_HEAD.pack(A, _IN, default_ttl, 4)
        for owner, rtype, rdata, ttl, target in iter_zone_records(
                records, self.config, self.warnings):
            prefix = owner_get(owner)
            if prefix is None:
                prefix = self.owner_prefix(owner)
            if ttl is None:
                ttl = default_ttl
            if rtype in (A, AAAA):
                packed = addr_get(rdata[0])
                if packed is None:
                    packed = self.address(rtype, rdata[0])
                    if packed is None:
                        continue
                if rtype == A and ttl == default_ttl:
                    yield owner, prefix + a_head + packed
                else:
                    yield owner, prefix + _RR_HEAD.pack(rtype, _IN, ttl, len(packed)) + packed
            elif rtype == SRV:
                wire = target_get(target)
                if wire is None:
                    wire = self.target(target)
                yield owner, prefix + _SRV_HEAD.pack(SRV, _IN, ttl, 6 + len(wire), int(rdata[0]),
                                                     int(rdata[1]), int(rdata[2])) + wire
            elif rtype == TXT:
                data = str(rdata[0]).encode()
                wire = b"".join(bytes((len(data[i:i + 255]),)) + data[i:i + 255]
                                for i in range(0, max(len(data), 1), 255))
                yield owner, prefix + _RR_HEAD.pack(TXT, _IN, ttl, len(wire)) + wire
            else:  # CNAME, PTR
                wire = target_get(target)
                if wire is None:
                    wire = self.target(target)
                yield owner, prefix + _RR_HEAD.pack(rtype, _IN, ttl, len(wire)) + wire

    def index(self, records: Iterable[Record]) -> dict[str, list[bytes]]:
        """Fragments of all records grouped by absolute owner: :meth:`fragments` with the
        A and SRV records (the bulk of a Kubernetes zone) encoded inline, one cache lookup
        per owner and per target instead of four (PERFORMANCE.md: ~1 s saved per 1M RRs).
        Selection rules stay in :class:`zonegen.zonefile._Names`; other types go through
        :meth:`fragments`, whose results are identical."""
        names = _Names(self.config, self.warnings)
        # given owner -> (absolute owner, prefix, its fragment list in ``out``): holding the
        # list here saves a second lookup per record in a table too big for the CPU cache.
        entries: dict[str, tuple[str, bytes, list[bytes]]] = {}
        targets: dict[str | int, bytes] = {}  # given SRV target -> wire, b"" if invalid
        entry_get = entries.get
        target_get = targets.get
        addr_get = self.addresses.get
        default_ttl = self.config.ttl
        a_head = _RR_HEAD.pack(A, _IN, default_ttl, 4)
        srv_pack = _SRV_HEAD.pack
        skip: tuple[str, bytes, list[bytes]] = ("", b"", [])
        out: dict[str, list[bytes]] = {}
        others: list[Record] = []
        for r in records:
            entry = entry_get(r.owner)
            if entry is None:
                owner = names.owners.get(r.owner)
                if owner is None:
                    owner = names.owner(r.owner)
                if owner:
                    entry = (owner, self.owner_prefix(owner), out.setdefault(owner, []))
                else:
                    entry = skip
                entries[r.owner] = entry
            owner, prefix, lst = entry
            if not owner:
                continue
            rtype = r.rtype
            if rtype == A:
                rdata = r.rdata
                packed = addr_get(rdata[0])
                if packed is None:
                    packed = self.address(A, rdata[0])
                    if packed is None:
                        continue
                ttl = r.ttl
                if ttl is None or ttl == default_ttl:
                    frag = prefix + a_head + packed
                else:
                    frag = prefix + _RR_HEAD.pack(A, _IN, ttl, 4) + packed
            elif rtype == SRV:
                rdata = r.rdata
                wire = target_get(rdata[3])
                if wire is None:
                    given = rdata[3]
                    full = names.names.get(given)
                    if full is None:
                        full = names.target(given)
                    wire = targets[given] = self.target(full) if full else b""
                if not wire:
                    names.skip(owner, SRV, rdata[3])
                    continue
                ttl = r.ttl
                frag = prefix + srv_pack(SRV, _IN, default_ttl if ttl is None else ttl,
                                         6 + len(wire), rdata[0], rdata[1], rdata[2]) + wire
            else:
                others.append(r)
                continue
            lst.append(frag)
        cnames: set[str] = set()
        for owner, frag in self.fragments(others):
            out.setdefault(owner, []).append(frag)
            if self.rtype(owner, frag) == CNAME:
                cnames.add(owner)
        for owner in cnames:
            out[owner] = self.cname_alone(owner, out[owner])
        return out

    def rtype(self, owner: str, frag: bytes) -> int:
        """The type of a fragment at ``owner``."""
        at = len(self.owner_prefix(owner))
        return int.from_bytes(frag[at:at + 2], "big")

    def cname_alone(self, owner: str, frags: list[bytes]) -> list[bytes]:
        """CNAME and other data, or two CNAMEs, make a zone secondaries refuse (RFC 1034
        §3.6.2, RFC 2181 §10.1): the other data wins, else the smallest CNAME, as in
        :func:`zonegen.zonefile.zone_records`."""
        cname = [f for f in frags if self.rtype(owner, f) == CNAME]
        if len(cname) == len(frags) == 1:
            return frags
        kept = [f for f in frags if f not in cname] or [min(cname)]
        if self.warnings is not None:
            self.warnings.append(f"{owner}: CNAME and other data at one name; CNAME skipped")
        return kept

    def apex(self) -> Iterator[tuple[str, bytes]]:
        """NS records and in-zone glue (RFC 1034 §4.2.1), from the config."""
        zone = self.zone
        suffix = "." + zone if zone != "." else ""
        for ns in self.config.nameservers:
            wire = name_wire(ns.name)
            yield zone, _POINTER + _RR_HEAD.pack(NS, _IN, self.config.ttl, len(wire)) + wire
        for ns in self.config.nameservers:
            if ns.address and (ns.name == zone or ns.name.endswith(suffix)):
                rtype = AAAA if ":" in ns.address else A
                packed = self.address(rtype, ns.address)
                if packed is not None:
                    yield ns.name, (self.owner_prefix(ns.name)
                                    + _RR_HEAD.pack(rtype, _IN, self.config.ttl, len(packed))
                                    + packed)


def _chunk(fragments: Sequence[bytes], limit: int) -> list[tuple[int, bytes]]:
    """Split fragments into ``(count, joined bytes)`` of at most ``limit`` bytes each.

    Cumulative lengths come from ``itertools.accumulate`` and split points from
    ``bisect``, so the per-record work happens in C: joining 1M fragments costs about as
    much as copying their bytes."""
    ends = list(accumulate(map(len, fragments)))
    out: list[tuple[int, bytes]] = []
    start = 0
    base = 0
    n = len(fragments)
    while start < n:
        end = bisect_right(ends, base + limit, start)
        if end == start:  # one fragment over the limit: cannot happen below 65 KB
            end = start + 1
        out.append((end - start, b"".join(fragments[start:end])))
        base = ends[end - 1]
        start = end
    return out


class WireZone:
    """One serial of one zone, as wire fragments ready to be joined into messages.

    ``names`` maps each absolute owner to its fragments (NS and glue included, the SOA
    kept apart because it changes with every serial); it is both the AXFR source and the
    name index of :func:`answer`. Fragment lists are never mutated once built, so
    :meth:`apply` can share them with the previous version: a one-pod change copies the
    owner dict (pointers only) and re-encodes only the changed records, and the previous
    WireZone stays valid for clients still reading it. AXFR bodies are cached per message
    size on the instance, i.e. per serial.
    """

    __slots__ = ("_axfr", "_soa", "_tree", "config", "names", "serial")

    def __init__(self, config: ZoneConfig, serial: int, names: dict[str, list[bytes]],
                 tree: dict[str, int] | None = None) -> None:
        self.config = config
        self.serial = serial % 2**32
        self.names = names
        self._soa = _soa_fragment(config, self.serial)
        self._tree = tree
        self._axfr: dict[int, list[tuple[int, bytes]]] = {}

    @classmethod
    def build(cls, records: Iterable[Record], config: ZoneConfig, serial: int,
              warnings: list[str] | None = None) -> WireZone:
        """Encode every record of the zone once.

        :param warnings: collects the reasons records were skipped (see
            :func:`zonegen.zonefile.zone_records`).
        """
        enc = _Encoder(config, warnings)
        names = enc.index(records)
        for owner, frag in enc.apex():  # NS and glue lead the zone (RFC 1034 §4.2.1)
            names.setdefault(owner, []).insert(0, frag)
        for owner, lst in names.items():
            if len(lst) > 1:
                names[owner] = list(dict.fromkeys(lst))  # equal records collapse to one
        return cls(config, serial, names)

    def apply(self, diff: Diff, serial: int, warnings: list[str] | None = None) -> WireZone:
        """The next version: this one with ``diff`` applied, at ``serial``.

        Costs a copy of the owner dict plus the changed records, not a re-encode."""
        enc = _Encoder(self.config, warnings)
        names = dict(self.names)
        tree = dict(self._tree) if self._tree is not None else None
        zone = self.config.zone
        for owner, frag in enc.fragments(diff.removed):
            lst = names.get(owner)
            if lst is None or frag not in lst:
                continue
            if len(lst) == 1:
                del names[owner]
                if tree is not None:
                    _count_ancestors(tree, owner, zone, -1)
            else:
                names[owner] = [f for f in lst if f != frag]
        for owner, frag in enc.fragments(diff.added):
            lst = names.get(owner)
            if lst is None:
                names[owner] = [frag]
                if tree is not None:
                    _count_ancestors(tree, owner, zone, 1)
            elif frag not in lst:
                names[owner] = enc.cname_alone(owner, [*lst, frag])
        return WireZone(self.config, serial, names, tree)

    def __len__(self) -> int:
        """Records in the zone, SOA counted once."""
        return 1 + sum(map(len, self.names.values()))

    @property
    def soa(self) -> bytes:
        return self._soa

    def fragments_of(self, owner: str) -> list[bytes]:
        """The fragments at an absolute lowercase owner, SOA first at the apex."""
        frags = self.names.get(owner, [])
        return [self._soa, *frags] if owner == self.config.zone else frags

    def exists(self, owner: str) -> bool:
        """Whether the name exists: it owns records, or is an empty non-terminal above
        some owner (RFC 8020: NXDOMAIN means nothing exists below either)."""
        if owner in self.names or owner == self.config.zone:
            return True
        if self._tree is None:
            tree: dict[str, int] = {}
            for name in self.names:
                _count_ancestors(tree, name, self.config.zone, 1)
            self._tree = tree
        return self._tree.get(owner, 0) > 0

    def axfr_body(self, limit: int) -> list[tuple[int, bytes]]:
        """SOA, every record, SOA, as ``(answer count, bytes)`` chunks of at most
        ``limit`` bytes; cached per limit (RFC 5936 §2.2)."""
        body = self._axfr.get(limit)
        if body is None:
            frags = [self._soa]
            frags.extend(chain.from_iterable(self.names.values()))
            frags.append(self._soa)
            body = self._axfr[limit] = _chunk(frags, limit)
        return body


def _count_ancestors(tree: dict[str, int], owner: str, zone: str, delta: int) -> None:
    """Add ``delta`` to every name strictly between ``owner`` and ``zone``."""
    name = owner
    while True:
        dot = name.find(".")
        if dot < 0:
            return
        name = name[dot + 1:]
        if len(name) <= len(zone):
            return
        count = tree.get(name, 0) + delta
        if count:
            tree[name] = count
        else:
            tree.pop(name, None)


# --------------------------------------------------------------------------- transfers


def _parse(query: dns.message.Message | bytes) -> dns.message.Message:
    return query if isinstance(query, dns.message.Message) else dns.message.from_wire(query)


def error_response(query: dns.message.Message | bytes, rcode: dns.rcode.Rcode) -> bytes:
    """A reply carrying only ``rcode`` (FORMERR, REFUSED, NOTAUTH, NOTIMP...), id and
    question copied. For wire that does not parse, a bare header with the query's id and
    opcode (RFC 1035 §4.1.1); b"" when even the header is missing."""
    if isinstance(query, bytes):
        wire = query
        try:
            query = dns.message.from_wire(wire)
        except Exception:  # noqa: BLE001 - any parse failure: answer from the header
            if len(wire) < 12:
                return b""
            (qid, flags) = struct.unpack_from("!HH", wire)
            return _HEADER.pack(qid, _QR | (flags & 0x7800) | (rcode & 0xF), 0, 0, 0, 0)
    response = dns.message.make_response(query)
    response.set_rcode(rcode)
    return response.to_wire()


def _question(query: dns.message.Message) -> bytes:
    q = query.question[0]
    return (q.name.to_wire() or b"") + struct.pack("!HH", q.rdtype, q.rdclass)


def _messages(query: dns.message.Message, question: bytes,
              body: Iterable[tuple[int, bytes]]) -> list[bytes]:
    """Header + question + body for each chunk. Every message repeats the question
    (RFC 5936 §2.2.1 allows it) because fragments point at it; id copied, QR and AA set,
    RD copied, RA clear."""
    flags = _QR | _AA | (query.flags & _RD)
    head = _HEADER.pack
    return [b"".join((head(query.id, flags, 1, count, 0, 0), question, chunk))
            for count, chunk in body]


def _check(query: dns.message.Message, wirezone: WireZone) -> bytes | None:
    """An error reply when the query is not a transfer of this zone, else None."""
    if len(query.question) != 1:
        return error_response(query, dns.rcode.FORMERR)
    q = query.question[0]
    if q.rdclass != _IN or q.name != dns.name.from_text(wirezone.config.zone):
        # RFC 5936 §2.2.1: NotAuth for a zone the server is not authoritative for.
        return error_response(query, dns.rcode.NOTAUTH)
    return None


def axfr_response(query: dns.message.Message | bytes, wirezone: WireZone, *,
                  max_size: int = XFR_MESSAGE_SIZE) -> list[bytes]:
    """The AXFR response messages (RFC 5936 §2.2): SOA first and last, id copied, AA set,
    the question in every message; each at most ``max_size`` bytes before any TSIG.

    Also serves an IXFR that falls back to a full transfer (RFC 1995 §4): the question is
    copied as asked, so the type there stays IXFR.
    """
    query = _parse(query)
    error = _check(query, wirezone)
    if error is not None:
        return [error]
    question = _question(query)
    return _messages(query, question,
                     wirezone.axfr_body(max_size - _HEADER.size - len(question)))


@dataclass(frozen=True, slots=True)
class JournalStep:
    """One zone version's change: ``from_serial`` became ``to_serial`` by removing and
    adding records (plain :class:`Record` values, relative names allowed; records of other
    zones are ignored, as in :func:`zonegen.zonefile.zone_records`).

    Steps are sent as given: the CNAME-alone rule that :class:`WireZone` and the zone
    file apply is not re-checked here, so a step must not add a CNAME beside other data
    (the projector cannot produce one: Service names and endpoint names never meet)."""

    from_serial: int
    to_serial: int
    removed: Collection[Record]
    added: Collection[Record]

    @classmethod
    def from_diff(cls, from_serial: int, to_serial: int, diff: Diff) -> JournalStep:
        return cls(from_serial, to_serial, diff.removed, diff.added)


def _journal_chain(journal: Iterable[JournalStep], start: int,
                   end: int) -> list[JournalStep] | None:
    """The steps leading from serial ``start`` to ``end``, or None when the journal does
    not reach back that far or has a gap."""
    by_from = {step.from_serial % 2**32: step for step in journal}
    steps: list[JournalStep] = []
    serial = start % 2**32
    while serial != end:
        step = by_from.get(serial)
        if step is None or len(steps) > len(by_from):
            return None
        steps.append(step)
        serial = step.to_serial % 2**32
    return steps


def ixfr_response(query: dns.message.Message | bytes, wirezone: WireZone,
                  journal: Iterable[JournalStep], *, max_size: int = XFR_MESSAGE_SIZE,
                  udp: bool = False, condense: bool = False) -> list[bytes]:
    """The IXFR response messages (RFC 1995).

    - The client's serial (from the query's authority SOA, via
      ``dns.xfr.extract_serial_from_query``) is the current one or newer (RFC 1982): a
      single SOA (RFC 1995 §2).
    - The journal reaches back to it: SOA(new), then per version SOA(old), removed
      records, SOA(version), added records, and SOA(new) last (RFC 1995 §4). With
      ``condense`` the versions are merged into one difference first (RFC 1995 §5).
    - Otherwise the full zone, AXFR-style, question type IXFR (RFC 1995 §4).
    - ``udp``: when the answer does not fit in one ``max_size`` message, a single SOA
      telling the client to retry over TCP (RFC 1995 §2).

    :raises: nothing for bad queries; they get FORMERR or NOTAUTH replies.
    """
    query = _parse(query)
    error = _check(query, wirezone)
    if error is not None:
        return [error]
    try:
        client = dns.xfr.extract_serial_from_query(query)
    except KeyError:
        # find_rrset misses an RRset appended to .authority by hand (no index entry)
        q = query.question[0]
        soas = [rrset for rrset in query.authority
                if rrset.rdtype == dns.rdatatype.SOA and rrset.name == q.name and rrset]
        if not soas:
            return [error_response(query, dns.rcode.FORMERR)]  # RFC 1995 §3: SOA required
        client = soas[0][0].serial
    except ValueError:
        return [error_response(query, dns.rcode.FORMERR)]
    question = _question(query)
    limit = max_size - _HEADER.size - len(question)
    single = [(1, wirezone.soa)]
    if client is None:  # an AXFR query sent here
        return axfr_response(query, wirezone, max_size=max_size)
    if dns.serial.Serial(client) >= dns.serial.Serial(wirezone.serial):
        return _messages(query, question, single)
    steps = _journal_chain(journal, client, wirezone.serial)
    if steps is None:
        if udp:
            return _messages(query, question, single)
        return _messages(query, question, wirezone.axfr_body(limit))
    if condense and len(steps) > 1:
        merged = Diff(frozenset(steps[0].added), frozenset(steps[0].removed))
        for step in steps[1:]:
            merged = merged.then(Diff(frozenset(step.added), frozenset(step.removed)))
        steps = [JournalStep.from_diff(steps[0].from_serial, steps[-1].to_serial, merged)]
    enc = _Encoder(wirezone.config, None)
    config = wirezone.config
    frags = [wirezone.soa]
    for step in steps:
        frags.append(_soa_fragment(config, step.from_serial))
        frags.extend(frag for _, frag in enc.fragments(step.removed))
        frags.append(_soa_fragment(config, step.to_serial))
        frags.extend(frag for _, frag in enc.fragments(step.added))
    frags.append(wirezone.soa)
    body = _chunk(frags, limit)
    if udp and len(body) > 1:
        body = single
    return _messages(query, question, body)


def sign_messages(messages: Sequence[bytes], key: dns.tsig.Key, request_mac: bytes,
                  now: int, *, fudge: int = 300) -> list[bytes]:
    """TSIG-sign a response of one or more pre-rendered messages (RFC 8945 §5.3.1).

    Each message's digest covers the previous MAC, the message as built (ARCOUNT without
    the TSIG) and the timers; the first also covers the request MAC and the key and
    algorithm names. ``dns.tsig.sign`` with ``multi=True`` carries that context, exactly
    as ``dns.renderer.Renderer.add_multi_tsig`` does; the TSIG RR is then appended and
    ARCOUNT incremented. ``now`` is passed in, so tests need no clock patching.
    """
    out: list[bytes] = []
    ctx = None
    owner = key.name.to_wire() or b""
    for wire in messages:
        (original_id,) = struct.unpack_from("!H", wire)
        template = dns.rdtypes.ANY.TSIG.TSIG(  # type: ignore[no-untyped-call]
            dns.rdataclass.ANY, dns.rdatatype.TSIG, key.algorithm, now, fudge, b"",
            original_id, 0, b"")
        tsig, ctx = dns.tsig.sign(  # type: ignore[no-untyped-call]
            wire, key, template, now, request_mac, ctx, True)
        rdata = tsig.to_wire() or b""
        (arcount,) = struct.unpack_from("!H", wire, 10)
        out.append(b"".join((wire[:10], struct.pack("!H", arcount + 1), wire[12:], owner,
                             _RR_HEAD.pack(dns.rdatatype.TSIG, dns.rdataclass.ANY, 0,
                                           len(rdata)), rdata)))
    return out


# --------------------------------------------------------------------------- answers


def _decode(wirezone: WireZone, owner: str, name: dns.name.Name
            ) -> dict[int, dns.rrset.RRset]:
    """The RRsets at ``owner``, parsed back from its fragments (a handful per query)."""
    zone = wirezone.config.zone
    cut = 1 if zone == "." else len(zone) + 1
    plen = 2 if owner == zone else len(owner) - cut + 3  # labels below the zone + pointer
    out: dict[int, dns.rrset.RRset] = {}
    for frag in wirezone.fragments_of(owner):
        rtype, _, ttl, rdlen = _RR_HEAD.unpack_from(frag, plen)
        rd = dns.rdata.from_wire(_IN, rtype, frag, plen + 10, rdlen)
        rrset = out.get(rtype)
        if rrset is None:
            rrset = out[rtype] = dns.rrset.RRset(name, _IN, rd.rdtype)
        rrset.add(rd, ttl)
    return out


def _additional(response: dns.message.Message, wirezone: WireZone,
                targets: Iterable[dns.name.Name], zone: dns.name.Name) -> None:
    """A/AAAA of in-zone NS and SRV targets (RFC 1035 §3.3.11, RFC 2782)."""
    for target in targets:
        if not target.is_subdomain(zone):
            continue
        sets = _decode(wirezone, target.to_text().lower(), target)
        for rtype in (A, AAAA):
            if rtype in sets and sets[rtype] not in response.additional:
                response.additional.append(sets[rtype])


def answer(query: dns.message.Message | bytes, wirezone: WireZone, max_size: int = 1232, *,
           tcp: bool = False) -> bytes | None:
    """An authoritative answer to an ordinary query (RFC 1034 §4.3.2), as wire.

    AA set, RA clear, RD and id copied, EDNS echoed with our payload (RFC 6891 §7).
    NXDOMAIN or NODATA carry the SOA in authority, TTL min(SOA TTL, minimum) (RFC 2308
    §3); a name above existing names is an empty non-terminal, NODATA (RFC 8020). A CNAME
    answers other types and is followed inside the zone. Names outside the zone get
    REFUSED (we are not a resolver); other opcodes NOTIMP; EDNS versions above 0 BADVERS
    (RFC 6891 §6.1.3); AXFR/IXFR here FORMERR (they belong to :func:`axfr_response` over
    TCP, RFC 5936 §4.2). Over UDP the limit is ``max_size`` capped by the client's EDNS
    payload, 512 without EDNS (RFC 1035 §4.2.1); a reply that does not fit first loses
    its additional section (RFC 2181 §9), then is sent empty with TC set.

    :returns: the reply, or None when the query is too broken to answer.
    """
    if isinstance(query, bytes):
        try:
            query = dns.message.from_wire(query)
        except dns.exception.DNSException:
            return error_response(query, dns.rcode.FORMERR) or None
    response = dns.message.make_response(query, our_payload=max_size)
    if query.opcode() != dns.opcode.QUERY:
        response.set_rcode(dns.rcode.NOTIMP)
        return response.to_wire()
    if query.edns > 0:
        response.set_rcode(dns.rcode.BADVERS)
        return response.to_wire()
    if len(query.question) != 1:
        response.set_rcode(dns.rcode.FORMERR)
        return response.to_wire()
    q = query.question[0]
    zone = dns.name.from_text(wirezone.config.zone)
    if q.rdtype in (dns.rdatatype.AXFR, dns.rdatatype.IXFR):
        response.set_rcode(dns.rcode.FORMERR)
        return response.to_wire()
    if q.rdclass != _IN or not q.name.is_subdomain(zone):
        response.set_rcode(dns.rcode.REFUSED)
        return response.to_wire()
    response.flags |= dns.flags.AA
    _resolve(response, wirezone, q.name, q.rdtype, zone)
    limit = 65535 if tcp else 512 if query.edns < 0 else max(512, min(max_size, query.payload))
    try:
        return response.to_wire(max_size=limit)
    except dns.exception.TooBig:
        pass
    response.additional = []
    try:
        return response.to_wire(max_size=limit)
    except dns.exception.TooBig:
        pass
    response.answer = []
    response.authority = []
    response.flags |= dns.flags.TC
    return response.to_wire(max_size=limit)


def _resolve(response: dns.message.Message, wirezone: WireZone, qname: dns.name.Name,
             qtype: int, zone: dns.name.Name) -> None:
    name = qname
    for _ in range(8):  # CNAME chain bound inside the zone
        owner = name.canonicalize().to_text()
        sets = _decode(wirezone, owner, name)
        if not sets:
            if not wirezone.exists(owner):
                response.set_rcode(dns.rcode.NXDOMAIN)
            _negative(response, wirezone, zone)
            return
        if qtype == dns.rdatatype.ANY:
            response.answer.extend(sets.values())
            return
        if qtype in sets:
            response.answer.append(sets[qtype])
            if qtype == NS:
                _additional(response, wirezone, (rd.target for rd in sets[NS]), zone)
            elif qtype == SRV:
                _additional(response, wirezone, (rd.target for rd in sets[SRV]), zone)
            return
        if CNAME not in sets:
            _negative(response, wirezone, zone)
            return
        response.answer.append(sets[CNAME])
        name = sets[CNAME][0].target
        if not name.is_subdomain(zone):
            return


def _negative(response: dns.message.Message, wirezone: WireZone, zone: dns.name.Name) -> None:
    soa = _decode(wirezone, wirezone.config.zone, zone)[SOA]
    soa.update_ttl(min(soa.ttl, wirezone.config.minimum))
    response.authority.append(soa)


def notify_message(config: ZoneConfig, serial: int, *, id: int | None = None  # noqa: A002
                   ) -> dns.message.Message:
    """A NOTIFY for ``config.zone`` at ``serial`` (RFC 1996 §3): opcode NOTIFY, AA set, RD
    clear, question ``<zone> IN SOA``, and the new SOA in the answer section as the hint
    secondaries may use (§3.7)."""
    zone = dns.name.from_text(config.zone)
    message = dns.message.make_query(zone, dns.rdatatype.SOA, id=id)
    message.set_opcode(dns.opcode.NOTIFY)
    message.flags = (message.flags & ~dns.flags.RD) | dns.flags.AA
    message.answer.append(_decode_soa(config, serial, zone))
    return message


def _decode_soa(config: ZoneConfig, serial: int, zone: dns.name.Name) -> dns.rrset.RRset:
    frag = _soa_fragment(config, serial)
    _, _, ttl, rdlen = _RR_HEAD.unpack_from(frag, 2)
    rrset = dns.rrset.RRset(zone, _IN, dns.rdatatype.SOA)
    rrset.add(dns.rdata.from_wire(_IN, dns.rdatatype.SOA, frag, 12, rdlen), ttl)
    return rrset
