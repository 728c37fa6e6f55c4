"""Authoritative answers to ordinary queries straight from a zone's wire fragments.

The hot path of ``zonegen serve`` (issue 11): parsing a query with dnspython, building
RRsets and rendering them costs hundreds of microseconds a query (over 1 ms of CPU for
an SRV answer with its additional records), so ``serve`` answered ~2,200 queries/s where
``named`` answers ~80,000. Here the header and question are read with ``struct`` and
slices, and the reply is joined from the records' pre-rendered fragments
(:class:`zonegen.wire.WireZone`): tens of microseconds for a new question, a few for a
repeated one (bench/bench_query.py). Pure, sans I/O: bytes in, bytes
out, or None for anything not plain, which the caller hands to the dnspython path
(:func:`zonegen.xfr.answer`, whose rules this module repeats and which the tests check
it against). Declined (None): responses, opcodes other than QUERY, not exactly one
question, any answer/authority record, any additional record but one OPT of version 0
without options (so TSIG, cookies, padding, ECS...), a compressed or over-long question
name, a label with characters no published name has, classes other than IN, meta query
types (AXFR, IXFR, ANY, OPT, TSIG...), and a CNAME met while answering another type.

Rendered replies are kept: per zone version, the body of the reply to each lowercase
name, type and size limit (what follows the question: it does not depend on the name's
case, the id or RD), and for the zones last served, each exact query seen (bytes after
the id); a repeated query then costs a dict lookup and a join. Both are bounded and
start over when full; a new zone version starts with empty ones.

The reply is what the dnspython path sends, name compression included: the same header,
question (echoed as the client sent it, 0x20 case kept), sections, RRset order, TTLs
(an RRset's TTL is the smallest of its records', as dnspython merges them) and therefore
the same size and the same truncation. One difference: dnspython shuffles the records
of each RRset it renders, this path rotates them, one step per answer (BIND's cyclic
order); the order of records inside an RRset carries no meaning (RFC 2181 §5).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping
from itertools import count
from typing import Any

from zonegen.wire import WireZone

__all__ = ["quick_answer"]

_HEADER = struct.Struct("!HHHHHH")
_QTAIL = struct.Struct("!HH")  # question type, class
_RR_HEAD = struct.Struct("!HHIH")  # type, class, TTL, rdlength
_SOA_INTS = 20  # serial, refresh, retry, expire, minimum

_QR, _AA, _TC, _RD = 0x8000, 0x0400, 0x0200, 0x0100
_QR_OPCODE = 0xF800  # QR and the opcode: zero in a QUERY
_NOERROR, _NXDOMAIN, _REFUSED = 0, 3, 5
_A, _NS, _CNAME, _SOA, _PTR, _AAAA, _SRV, _OPT = 1, 2, 5, 6, 12, 28, 33, 41
_IN = 1
_POINTER = b"\xc0\x0c"  # the question name

_COMPRESSED = frozenset((_NS, _CNAME, _PTR))  # one name as rdata, compressed (RFC 1035 §4.1.4)
_TARGETS = {_NS: 0, _SRV: 6}  # types whose targets get A/AAAA in additional: name offset

# After lowercasing, the characters a published name may hold (zonefile._ABSOLUTE): a
# label with any other character names nothing served, and its text form would need the
# escapes dnspython applies, so such queries take the dnspython path.
_NAME_CHARS = b"abcdefghijklmnopqrstuvwxyz0123456789-_"

_rotation = count()  # records of an RRset start one further each answer


def _data_type(qtype: int) -> bool:
    """Types answered here: data types (RFC 6895 §3.1), not OPT (a meta type in the
    data range) and not the query/meta types 128-255 (AXFR, IXFR, ANY, TSIG...)."""
    return (0 < qtype < 128 and qtype != _OPT) or 256 <= qtype < 0xF000


def quick_answer(wire: bytes, zones: Mapping[Any, WireZone] | Iterable[WireZone],
                 payload: int = 1232, *, tcp: bool = False) -> bytes | None:
    """The reply to ``wire`` built from pre-rendered fragments, or None when the query is
    not a plain one (see the module docstring) and the dnspython path must answer it.

    ``zones``: the served zones (a mapping's values, e.g. ``ZoneSet.zones``, or the zones
    themselves); the closest enclosing one answers, a name in none gets REFUSED.
    ``payload``: our EDNS payload, as ``xfr.answer``'s ``max_size``. Over UDP the reply is
    at most 512 octets without EDNS, else the smaller of ``payload`` and the client's
    (512 at least); ``tcp``: 65535.
    """
    size = len(wire)
    if size < 17:
        return None
    served, replies = _recent[0]
    key = (wire[2:], payload, tcp)
    if zones is served:
        hit = replies.get(key)
        if hit is not None:
            head, qend, records, tail = hit
            if len(records) > 1:
                k = next(_rotation) % len(records)
                return b"".join((wire[:2], head, wire[12:qend], *records[k:], *records[:k],
                                 tail))
            return b"".join((wire[:2], head, wire[12:qend], *records, tail))
    else:  # one assignment: a reply always lands in the dict of the zones it is for
        replies = {}
        _recent[0] = (zones, replies)
    qid, flags, qdcount, ancount, nscount, arcount = _HEADER.unpack_from(wire)
    if flags & _QR_OPCODE or qdcount != 1 or ancount or nscount or arcount > 1:
        return None
    # the question name: plain labels only (no pointer, RFC 1035 §4.1.4)
    labels: list[bytes] = []
    pos = 12
    while True:
        length = wire[pos]
        if not length:
            break
        if length > 63:
            return None
        label = wire[pos + 1:pos + 1 + length].lower()
        if label.translate(None, _NAME_CHARS) or len(label) != length:
            return None
        labels.append(label)
        pos += length + 1
        if pos >= size:
            return None
    qend = pos + 5  # past the root label, type and class
    if qend - 16 > 255 or qend > size:
        return None
    qtype, qclass = _QTAIL.unpack_from(wire, pos + 1)
    if qclass != _IN or not _data_type(qtype):
        return None
    edns = arcount == 1
    if edns:
        # one OPT: root owner, version 0, no options (RFC 6891 §6.1.2)
        if size != qend + 11 or wire[qend]:
            return None
        rtype, client_payload, ttl, rdlen = _RR_HEAD.unpack_from(wire, qend + 1)
        if rtype != _OPT or rdlen or ttl & 0x00FF0000:
            return None
        limit = 65535 if tcp else max(512, min(payload, client_payload))
        opt = b"\x00" + _RR_HEAD.pack(_OPT, payload, 0, 0)
    else:
        if size != qend:
            return None
        limit = 65535 if tcp else 512
        opt = b""
    owner = b".".join(labels).decode("ascii") + "." if labels else "."

    values = list(zones.values() if isinstance(zones, Mapping) else zones)
    if not values:  # nothing loaded yet: the caller decides
        return None
    wz = _closest(owner, values)
    question = wire[12:qend]
    rd = flags & _RD
    if wz is None:  # not ours, and we do not recurse (as Responder.respond)
        body: _Body = (_QR | _REFUSED, 0, 0, 0, (), b"")
    else:
        answers = _CACHE.get(wz)
        if answers is None:
            answers = _CACHE.answers_of(wz, values)
        name_key = (owner, qtype, limit, opt)
        found = answers.get(name_key)
        if found is None:
            found = _Reply(wz, owner, labels, question[:-4].lower(), qtype).render(
                len(opt), limit, answers)
            if found is None:
                return None
            if len(answers) >= _CACHE_ENTRIES:
                answers.clear()
            answers[name_key] = found
        body = found
    bits, an, ns, ar, records, tail = body
    head = _HEADER.pack(qid, bits | rd, 1, an, ns, ar + (1 if opt else 0))
    if len(replies) >= _CACHE_ENTRIES:
        replies.clear()
    replies[key] = (head[2:], qend, records, tail + opt)
    if len(records) > 1:
        k = next(_rotation) % len(records)
        return b"".join((head, question, *records[k:], *records[:k], tail, opt))
    return b"".join((head, question, *records, tail, opt))


_Replies = dict[tuple[bytes, int, bool], tuple[bytes, int, tuple[bytes, ...], bytes]]
_recent: list[tuple[object, _Replies]] = [(None, {})]
"""Replies by the exact query after its id (with our payload and the transport), for the
zones last asked about: a query seen before costs a dict lookup and a join. Every byte of
the key passed the checks above when the entry was made, so equal bytes get an equal
reply but for the id (and the rotation). Started over whenever ``zones`` is another
object (``ZoneSet.zones`` is a new mapping for every version; it is never changed in
place)."""


_Body = tuple[int, int, int, int, tuple[bytes, ...], bytes]
"""A reply without its header's id and RD, its question and OPT: flags (QR, AA, TC,
rcode), answer, authority and additional counts (OPT not counted), the answer's records
(each on its own when their order may rotate: they hold no compression target), then the
authority and additional sections joined. It depends on the question only through the
lowercase name (compression pointers and lengths do not see case), so one serves every
query for that name, type, size limit and OPT."""

_CACHE_ENTRIES = 20_000  # replies kept per cache (~10 MB at most each), then start over


class _Cache(dict[WireZone, dict[tuple[str, int, int, bytes], _Body]]):
    """Rendered bodies per zone version. A WireZone never changes, so its bodies stay
    right for its life; a new version (another object) starts empty, and bodies of
    versions no longer served are dropped when the first query meets a new one."""

    def answers_of(self, wz: WireZone, served: Iterable[WireZone]
                   ) -> dict[tuple[str, int, int, bytes], _Body]:
        keep = {id(z) for z in served}
        for old in [z for z in list(self) if id(z) not in keep]:
            self.pop(old, None)
        answers = self[wz] = {}
        return answers


_CACHE = _Cache()


def _closest(owner: str, zones: Iterable[WireZone]) -> WireZone | None:
    """The served zone with the longest apex at or above ``owner`` (ZoneSet.find)."""
    best: WireZone | None = None
    best_len = -1
    for wz in zones:
        zone = wz.config.zone
        n = len(zone)
        if n <= best_len:
            continue
        if zone == "." or owner == zone or (owner.endswith(zone) and owner[-n - 1] == "."):
            best, best_len = wz, n
    return best


def _labels_text(name: bytes, pos: int = 0) -> str:
    """Presentation form of an uncompressed wire name from ``pos`` (our names: no escapes)."""
    parts: list[bytes] = []
    while name[pos]:
        length = name[pos]
        parts.append(name[pos + 1:pos + 1 + length])
        pos += length + 1
    return b".".join(parts).decode("ascii").lower() + "." if parts else "."


def _labels_of(name: bytes, pos: int) -> list[bytes]:
    """The labels of an uncompressed wire name from ``pos``, lowercase."""
    out: list[bytes] = []
    while name[pos]:
        out.append(name[pos + 1:pos + 1 + name[pos]].lower())
        pos += name[pos] + 1
    return out


def _name_end(data: bytes | bytearray, pos: int) -> int:
    """Where an uncompressed wire name starting at ``pos`` ends (past its root label)."""
    while data[pos]:
        pos += data[pos] + 1
    return pos + 1


class _Reply:
    """One reply under construction: the output so far (header placeholder, question,
    then records) and dnspython's compression table, built as dnspython builds it."""

    __slots__ = ("ar", "labels", "out", "owner", "qname", "qtype", "table", "wz", "zoff",
                 "zone_wire")

    def __init__(self, wz: WireZone, owner: str, labels: list[bytes], qname: bytes,
                 qtype: int) -> None:
        """``qname``: the question name's wire form, lowercase (what compression and
        lengths see of it)."""
        self.wz = wz
        self.owner = owner
        self.labels = labels
        self.qtype = qtype
        zone = wz.config.zone
        # octets of the question name's labels below the zone (= its text length there)
        self.zoff = len(owner) if zone == "." else len(owner) - len(zone)
        if zone == "." and owner == ".":
            self.zoff = 0
        self.qname = qname
        self.zone_wire = qname[self.zoff:]
        self.table: dict[bytes, int] | None = None
        self.ar = 0
        self.out = bytearray(12 + len(qname) + 4)

    # ---------------------------------------------------------------- compression

    def _compress(self) -> dict[bytes, int]:
        """dnspython's table after the question: every suffix of the question name but
        the root, keyed lowercase (names compare case-insensitively), at its offset."""
        table = self.table
        if table is None:
            table = self.table = {}
            low = self.qname
            pos = 0
            while low[pos]:
                table[low[pos:]] = 12 + pos
                pos += low[pos] + 1
        return table

    def _put_name(self, name: bytes, start: int = 0) -> None:
        """Append the wire name at ``name[start:]`` compressed as dnspython's
        ``Name.to_wire`` does: the longest suffix already written becomes a pointer; each
        suffix written gets an entry if its offset fits in a pointer; the root never."""
        table = self._compress()
        out = self.out
        low = name[start:_name_end(name, start)].lower()
        pos = 0
        while low[pos]:
            key = low[pos:]
            ptr = table.get(key)
            if ptr is not None:
                out += (0xC000 | ptr).to_bytes(2, "big")
                return
            here = len(out)
            if here <= 0x3FFF:
                table[key] = here
            length = low[pos]
            out += name[start + pos:start + pos + length + 1]
            pos += length + 1
        out.append(0)

    # ---------------------------------------------------------------- records

    def _rrset(self, frags: bytes, plen: int, rtype: int, soa: bytes | None = None
               ) -> tuple[int, list[bytes]]:
        """The smallest TTL and the distinct rdatas, in zone order, of the ``rtype``
        records among an owner's joined fragments (prefix ``plen`` octets); ``soa``: the
        apex SOA fragment, which the zone keeps apart."""
        ttls: list[int] = []
        rdatas: list[bytes] = []
        if soa is not None and rtype == _SOA:
            _, _, ttl, rdlen = _RR_HEAD.unpack_from(soa, 2)
            ttls.append(ttl)
            rdatas.append(soa[12:12 + rdlen])
        head = _RR_HEAD.unpack_from
        pos = 0
        end = len(frags)
        while pos < end:
            t, _, ttl, rdlen = head(frags, pos + plen)
            pos += plen + 10
            if t == rtype:
                ttls.append(ttl)
                rdatas.append(frags[pos:pos + rdlen])
            pos += rdlen
        if len(rdatas) > 1:
            rdatas = list(dict.fromkeys(rdatas))
        return (min(ttls) if ttls else 0), rdatas

    def _write(self, owner_name: bytes | None, rtype: int, ttl: int, rdata: bytes) -> None:
        """One record: owner compressed (None: the question name itself), then rdata
        with its names compressed where dnspython compresses them (NS, CNAME, PTR and
        SOA; SRV targets never, RFC 2782)."""
        out = self.out
        if owner_name is None:
            if self.labels:
                out += _POINTER
            else:
                out.append(0)
        else:
            self._put_name(owner_name)
        if rtype in _COMPRESSED or rtype == _SOA:
            out += _RR_HEAD.pack(rtype, _IN, ttl, 0)
            at = len(out)
            self._put_name(rdata)
            if rtype == _SOA:
                rname = _name_end(rdata, 0)
                self._put_name(rdata, rname)
                out += rdata[-_SOA_INTS:]
            struct.pack_into("!H", out, at - 2, len(out) - at)
        else:
            out += _RR_HEAD.pack(rtype, _IN, ttl, len(rdata))
            out += rdata

    def _soa_parts(self) -> tuple[int, bytes]:
        soa = self.wz.soa
        _, _, ttl, rdlen = _RR_HEAD.unpack_from(soa, 2)
        return ttl, soa[12:12 + rdlen]

    # ---------------------------------------------------------------- the answer

    def render(self, optlen: int, limit: int,
               answers: dict[tuple[str, int, int, bytes], _Body]) -> _Body | None:
        """The body of the reply (see :data:`_Body`), or None to leave it to dnspython.
        ``optlen``: octets of our OPT record, 0 without; ``answers``: the zone version's
        cache (negative answers share their authority SOA through it)."""
        wz, qtype = self.wz, self.qtype
        apex = self.zoff == 0
        frags = wz.blob_of(self.owner)
        plen = self.zoff + 2
        ttl, rdatas = self._rrset(frags, plen, qtype, wz.soa if apex else None)
        rcode = _NOERROR
        out = self.out
        start = len(out)
        records: list[bytes] = []
        nscount = 0
        if rdatas:
            ends = []
            for rdata in rdatas:
                self._write(None, qtype, ttl, rdata)
                ends.append(len(out))
            an_end = len(out)
            if qtype in _TARGETS:
                self._additional(rdatas, _TARGETS[qtype])
            if qtype in _COMPRESSED or qtype == _SOA:  # later names may point into earlier
                records = [bytes(out[start:an_end])]
            else:
                records = [bytes(out[a:b]) for a, b in zip([start, *ends], ends, strict=False)]
        else:
            if frags and qtype != _CNAME and self._rrset(frags, plen, _CNAME)[1]:
                return None  # a CNAME to follow: the dnspython path does
            if not frags and not apex and not wz.exists(self.owner):
                rcode = _NXDOMAIN
            # RFC 2308 §3: the SOA, TTL min(SOA TTL, minimum), owner the zone apex
            out += self._negative(answers)
            nscount = 1
            an_end = len(out)
        bits = _QR | _AA | rcode
        ancount = len(rdatas)
        arcount = self.ar
        if len(out) + optlen > limit:
            # RFC 2181 §9: drop the additional section; if still too big, TC and empty
            del out[an_end:]
            arcount = 0
            if len(out) + optlen > limit:
                del out[start:]
                records = []
                ancount = nscount = 0
                bits |= _TC
        tail = bytes(out[start + sum(map(len, records)):])
        return bits, ancount, nscount, arcount, tuple(records), tail

    def _negative(self, answers: dict[tuple[str, int, int, bytes], _Body]) -> bytes:
        """The authority SOA of a negative answer. Its bytes depend on the question only
        through its length, where the zone starts in it, and how many of its last
        labels the SOA's two names share (what compression finds of them), so a flood
        of random names below one Service renders it once. Kept among ``answers`` under
        an owner no name has ("")."""
        soa_ttl, soa_rdata = self._soa_parts()
        shared = 0
        labels = self.labels
        for start in (0, _name_end(soa_rdata, 0)):
            name = _labels_of(soa_rdata, start)
            n = 0
            while n < len(name) and n < len(labels) and name[-1 - n] == labels[-1 - n]:
                n += 1
            shared = shared * 256 + n
        key = ("", self.zoff, shared, len(self.qname).to_bytes(2, "big"))
        found = answers.get(key)
        if found is not None:
            return found[5]
        out = self.out
        start = len(out)
        self._put_name(self.zone_wire)
        self._write_soa_rest(min(soa_ttl, self.wz.config.minimum), soa_rdata)
        block = bytes(out[start:])
        del out[start:]
        answers[key] = (0, 0, 1, 0, (), block)
        return block

    def _write_soa_rest(self, ttl: int, rdata: bytes) -> None:
        """Type onwards of an SOA record whose owner was just written."""
        out = self.out
        out += _RR_HEAD.pack(_SOA, _IN, ttl, 0)
        at = len(out)
        self._put_name(rdata)
        self._put_name(rdata, _name_end(rdata, 0))
        out += rdata[-_SOA_INTS:]
        struct.pack_into("!H", out, at - 2, len(out) - at)

    def _additional(self, rdatas: list[bytes], at: int) -> None:
        """A/AAAA of in-zone NS and SRV targets (RFC 1035 §3.3.11, RFC 2782), in the
        order of the answer's records as the zone holds them, each target once."""
        zone_wire = self.zone_wire
        zlen = len(zone_wire)
        seen: set[bytes] = set()
        for rdata in rdatas:
            target = rdata[at:]
            low = target.lower()
            if low in seen:
                continue
            seen.add(low)
            if not low.endswith(zone_wire):
                continue
            below = len(low) - zlen  # label-aligned? walk the labels to be sure
            pos = 0
            while pos < below:
                pos += low[pos] + 1
            if pos != below:
                continue
            frags = self.wz.blob_of(_labels_text(low))
            if not frags:
                continue
            for rtype in (_A, _AAAA):
                ttl, found = self._rrset(frags, below + 2, rtype)
                for rd in found:
                    self._put_name(target)
                    self.out += _RR_HEAD.pack(rtype, _IN, ttl, len(rd))
                    self.out += rd
                self.ar += len(found)


