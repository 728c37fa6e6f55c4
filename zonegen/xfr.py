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
from array import array
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
        if not cname or len(cname) == len(frags) == 1:
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


class _Packed:
    """Every owner's fragments in one ``bytes``, found through an open-addressing hash
    table over one ``bytes`` of owner names: a handful of large buffers instead of a
    dict, a list and a ``bytes`` object per owner and per record (33+ bytes of header
    each, ~170 MB for 1M records, and most of the rest lost to pymalloc fragmentation
    once the build's temporaries are freed). Immutable; shared by every version made
    from it with :meth:`WireZone.apply`.

    Entry ``i`` holds ``data[ends[i - 1]:ends[i]]`` (its records, each a fragment as
    :class:`_Encoder` makes them) and ``counts[i] - counts[i - 1]`` records; its name is
    ``names[name_ends[i - 1]:name_ends[i]]`` (ASCII, absolute); ``below[i]`` names with
    records lie strictly below it. The owners come first, in the order given, then the
    empty non-terminals (no records, something below: RFC 8020), so existence needs no
    per-name Python objects either. ``table`` maps ``hash(name)`` (stable within the
    process, which is all it must be) to ``i + 1``."""

    __slots__ = ("below", "counts", "data", "ends", "name_ends", "names", "table")

    def __init__(self, zone: str, names: list[str], data: bytes, sizes: Iterable[int],
                 counts: Iterable[int]) -> None:
        tree: dict[str, int] = {}
        for name in names:
            _count_ancestors(tree, name, zone, 1)
        owners = len(names)
        seen = set(names)
        names.extend(name for name in tree if name not in seen)
        del seen
        ents = len(names) - owners
        self.data = data
        self.ends = array("Q", accumulate(sizes))
        self.ends.extend([self.ends[-1] if owners else 0] * ents)
        self.counts = array("Q", accumulate(counts))
        self.counts.extend([self.counts[-1] if owners else 0] * ents)
        self.below = array("I", (tree.get(name, 0) for name in names))
        del tree
        self.names = "".join(names).encode("ascii")
        self.name_ends = array("Q", accumulate(map(len, names)))
        size = 8
        while size < 2 * len(names):
            size *= 2
        table = array("I", bytes(4 * size))
        mask = size - 1
        for i, name in enumerate(names, 1):
            slot = hash(name) & mask
            while table[slot]:
                slot = (slot + 1) & mask
            table[slot] = i
        self.table = table

    @classmethod
    def of_lists(cls, zone: str, owners: dict[str, list[bytes]]) -> _Packed:
        """From ``owner -> fragments``, in that order."""
        return cls(zone, list(owners), b"".join(chain.from_iterable(owners.values())),
                   (sum(map(len, frags)) for frags in owners.values()),
                   map(len, owners.values()))

    @classmethod
    def of_blobs(cls, zone: str, owners: Iterable[tuple[str, bytes, int]]) -> _Packed:
        """From ``(owner, fragments joined, count)``, in that order."""
        names: list[str] = []
        blobs: list[bytes] = []
        counts: list[int] = []
        for name, blob, count in owners:
            names.append(name)
            blobs.append(blob)
            counts.append(count)
        return cls(zone, names, b"".join(blobs), map(len, blobs), counts)

    def __len__(self) -> int:
        return len(self.ends)

    def find(self, owner: str) -> int:
        """The index of ``owner``, or -1."""
        table = self.table
        mask = len(table) - 1
        slot = hash(owner) & mask
        try:
            wanted = owner.encode("ascii")
        except UnicodeEncodeError:
            return -1
        names, name_ends = self.names, self.name_ends
        while i := table[slot]:
            start = name_ends[i - 2] if i > 1 else 0
            if name_ends[i - 1] - start == len(wanted) and \
                    names[start:name_ends[i - 1]] == wanted:
                return i - 1
            slot = (slot + 1) & mask
        return -1

    def name(self, i: int) -> str:
        return self.names[self.name_ends[i - 1] if i else 0:self.name_ends[i]].decode("ascii")

    def blob(self, i: int) -> bytes:
        return self.data[self.ends[i - 1] if i else 0:self.ends[i]]

    def count(self, i: int) -> int:
        return self.counts[i] - (self.counts[i - 1] if i else 0)

    def items(self) -> Iterator[tuple[str, int]]:
        """``(name, index)`` of every owner, in order."""
        text = self.names.decode("ascii")
        start = 0
        for i, end in enumerate(self.name_ends):
            yield text[start:end], i
            start = end


_Blob = tuple[bytes, int]  # an owner's fragments joined, and how many
_FOLD_MIN = 4096  # changed owners a WireZone's overlay may hold whatever the zone's size


class WireZone:
    """One serial of one zone, as wire fragments ready to be joined into messages.

    The records live in a :class:`_Packed` base (each owner's fragments contiguous; NS
    and glue included, the SOA kept apart because it changes with every serial) plus a
    small overlay of the owners changed since, ``owner -> (fragments joined, count)``
    (``(b"", 0)``: deleted), and of the names whose count of names below changed. None
    of these is mutated once built, so :meth:`apply` shares the base with the previous
    version and copies only the overlay: a one-pod change re-encodes only the changed
    records, and the previous WireZone stays valid for clients still reading it. Once
    the overlay outgrows a fraction of the base, apply folds it into a new base.

    An AXFR is the SOA, spans of the base (memoryview slices, no per-record work) and
    the overlay's blobs, and the SOA again: cheap enough to make per transfer, so no
    message cache holds a second copy of the zone.
    """

    __slots__ = ("_base", "_below", "_changed", "_soa", "config", "serial")

    def __init__(self, config: ZoneConfig, serial: int, base: _Packed,
                 changed: dict[str, _Blob] | None = None,
                 below: dict[str, int] | None = None) -> None:
        self.config = config
        self.serial = serial % 2**32
        self._base = base
        self._changed: dict[str, _Blob] = changed if changed is not None else {}
        self._below: dict[str, int] = below if below is not None else {}
        self._soa = _soa_fragment(config, self.serial)

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
        return cls(config, serial, _Packed.of_lists(config.zone, names))

    def _plen(self, owner: str) -> int:
        """Octets of ``owner``'s prefix in its fragments: labels below the zone + pointer."""
        zone = self.config.zone
        if owner == zone:
            return 2
        return len(owner) - (1 if zone == "." else len(zone) + 1) + 3

    def _blob(self, owner: str) -> _Blob:
        """``owner``'s fragments joined and their count; ``(b"", 0)`` when it has none."""
        blob = self._changed.get(owner)
        if blob is not None:
            return blob
        i = self._base.find(owner)
        if i < 0:
            return b"", 0
        return self._base.blob(i), self._base.count(i)

    def _names_below(self, name: str) -> int:
        count = self._below.get(name)
        if count is not None:
            return count
        i = self._base.find(name)
        return self._base.below[i] if i >= 0 else 0

    def _split(self, owner: str, blob: bytes) -> list[bytes]:
        plen = self._plen(owner)
        out: list[bytes] = []
        pos = 0
        while pos < len(blob):
            (rdlen,) = struct.unpack_from("!H", blob, pos + plen + 8)
            end = pos + plen + 10 + rdlen
            out.append(blob[pos:end])
            pos = end
        return out

    def apply(self, diff: Diff, serial: int, warnings: list[str] | None = None) -> WireZone:
        """The next version: this one with ``diff`` applied, at ``serial``.

        Costs a copy of the overlay plus the changed owners, not a re-encode."""
        enc = _Encoder(self.config, warnings)
        work: dict[str, list[bytes]] = {}  # owners touched here -> their fragments
        existed: dict[str, bool] = {}

        def frags_of(owner: str) -> list[bytes]:
            lst = work.get(owner)
            if lst is None:
                blob, _ = self._blob(owner)
                lst = work[owner] = self._split(owner, blob)
                existed[owner] = bool(lst)
            return lst

        for owner, frag in enc.fragments(diff.removed):
            lst = frags_of(owner)
            if frag in lst:
                lst.remove(frag)
        for owner, frag in enc.fragments(diff.added):
            lst = frags_of(owner)
            if frag not in lst:
                lst.append(frag)
                if len(lst) > 1:
                    work[owner] = enc.cname_alone(owner, lst)
        changed = dict(self._changed)
        below = self._below  # copied only when a name appears or goes
        zone = self.config.zone
        for owner, lst in work.items():
            changed[owner] = (b"".join(lst), len(lst))
            if existed[owner] != bool(lst):
                if below is self._below:
                    below = dict(below)
                for name in _ancestors(owner, zone):
                    below[name] = self._names_below(name) if name not in below else below[name]
                    below[name] += 1 if lst else -1
        applied = WireZone(self.config, serial, self._base, changed, below)
        if len(changed) + len(below) > max(_FOLD_MIN, len(self._base) // 16):
            return applied.folded()
        return applied

    def folded(self) -> WireZone:
        """The same version with the overlay folded into a new base: joins bytes, no
        re-encoding (~0.3 s per 1M records). :meth:`apply` folds once the overlay holds
        more than 1/16 of the names, so applies stay cheap and the base is rebuilt at
        most once per that many changed names."""
        return WireZone(self.config, self.serial,
                        _Packed.of_blobs(self.config.zone, self._merged()))

    def _merged(self) -> Iterator[tuple[str, bytes, int]]:
        """``(owner, fragments joined, count)`` of base and overlay, in AXFR order."""
        base, changed = self._base, self._changed
        for name, i in base.items():
            blob = changed.get(name)
            if blob is None:
                if base.count(i):
                    yield name, base.blob(i), base.count(i)
            elif blob[1]:
                yield name, blob[0], blob[1]
        for name, (blob_, count) in changed.items():
            if count and base.find(name) < 0:
                yield name, blob_, count

    def __len__(self) -> int:
        """Records in the zone, SOA counted once."""
        base = self._base
        total = base.counts[-1] if len(base) else 0
        for owner, (_, count) in self._changed.items():
            i = base.find(owner)
            total += count - (base.count(i) if i >= 0 else 0)
        return 1 + total

    @property
    def soa(self) -> bytes:
        return self._soa

    def fragments_of(self, owner: str) -> list[bytes]:
        """The fragments at an absolute lowercase owner, SOA first at the apex."""
        blob, _ = self._blob(owner)
        frags = self._split(owner, blob)
        return [self._soa, *frags] if owner == self.config.zone else frags

    def owners(self) -> Iterator[tuple[str, list[bytes]]]:
        """``(owner, fragments)`` of every owner with records, SOA excluded."""
        for owner, blob, _ in self._merged():
            yield owner, self._split(owner, blob)

    def exists(self, owner: str) -> bool:
        """Whether the name exists: it owns records, or is an empty non-terminal above
        some owner (RFC 8020: NXDOMAIN means nothing exists below either)."""
        return (owner == self.config.zone or self._blob(owner)[1] > 0
                or self._names_below(owner) > 0)

    def axfr_body(self, limit: int) -> list[tuple[int, list[bytes | memoryview]]]:
        """SOA, every record, SOA, as ``(answer count, pieces)`` chunks of at most
        ``limit`` bytes each (RFC 5936 §2.2). Pieces are slices of the packed base and
        overlay blobs; split points come from ``bisect`` over the base's cumulative
        sizes, so the cost is a few thousand slices, not one step per record."""
        base = self._base
        data = memoryview(base.data)
        ends, counts = base.ends, base.counts
        replaced: dict[int, _Blob] = {}
        extra: list[tuple[str, bytes, int]] = []
        for owner, (blob, count) in self._changed.items():
            i = base.find(owner)
            if i >= 0:
                replaced[i] = (blob, count)
            elif count:
                extra.append((owner, blob, count))
        out: list[tuple[int, list[bytes | memoryview]]] = []
        pieces: list[bytes | memoryview] = [self._soa]
        size = len(self._soa)
        n = 1

        def flush() -> None:
            nonlocal pieces, size, n
            if n:
                out.append((n, pieces))
            pieces, size, n = [], 0, 0

        def add(owner: str, blob: bytes | memoryview, count: int) -> None:
            nonlocal size, n
            if size + len(blob) > limit:
                flush()
                if len(blob) > limit:  # one owner over a whole message: per record
                    for frag in _chunk(self._split(owner, bytes(blob)), limit):
                        out.append((frag[0], [frag[1]]))
                    return
            pieces.append(blob)
            size += len(blob)
            n += count

        def span(lo: int, hi: int) -> None:
            """Owners ``lo`` to ``hi - 1`` of the base, unchanged."""
            nonlocal size, n
            while lo < hi:
                start = ends[lo - 1] if lo else 0
                k = bisect_right(ends, start + limit - size, lo, hi)
                if k == lo:  # the next owner does not fit here
                    if n:
                        flush()
                        continue
                    add(base.name(lo), data[start:ends[lo]], base.count(lo))
                    lo += 1
                    continue
                pieces.append(data[start:ends[k - 1]])
                size += ends[k - 1] - start
                n += counts[k - 1] - (counts[lo - 1] if lo else 0)
                lo = k

        lo = 0
        for i in sorted(replaced):
            span(lo, i)
            blob, count = replaced[i]
            if count:
                add(base.name(i), blob, count)
            lo = i + 1
        span(lo, len(base))
        for owner, blob, count in extra:
            add(owner, blob, count)
        add(self.config.zone, self._soa, 1)
        flush()
        return out

    def blob_of(self, owner: str) -> bytes:
        """The fragments at an absolute lowercase owner joined, SOA excluded; b"" when it
        has none. For :mod:`zonegen.quickanswer`, which walks them in place rather than
        splitting them into a list per query."""
        return self._blob(owner)[0]


def _ancestors(owner: str, zone: str) -> Iterator[str]:
    """Every name strictly between ``owner`` and ``zone``."""
    name = owner
    while True:
        dot = name.find(".")
        if dot < 0:
            return
        name = name[dot + 1:]
        if len(name) <= len(zone):
            return
        yield name


def _count_ancestors(tree: dict[str, int], owner: str, zone: str, delta: int) -> None:
    """Add ``delta`` to every name strictly between ``owner`` and ``zone``."""
    for name in _ancestors(owner, zone):
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


def _transfer_error(query: dns.message.Message, rcode: dns.rcode.Rcode) -> bytes:
    """:func:`error_response` left unsigned: transfer replies, errors included, are
    signed by :func:`sign_messages` (dnspython would sign a reply to a signed query
    itself, and a second TSIG record makes the message unparsable, RFC 8945 §5.1)."""
    response = dns.message.make_response(query)
    response.set_rcode(rcode)
    response.keyring = None
    response.tsig = None
    return response.to_wire()


def _question(query: dns.message.Message) -> bytes:
    q = query.question[0]
    return (q.name.to_wire() or b"") + struct.pack("!HH", q.rdtype, q.rdclass)


def _messages(query: dns.message.Message, question: bytes,
              body: Iterable[tuple[int, bytes | Sequence[bytes | memoryview]]]
              ) -> list[bytes]:
    """Header + question + body for each chunk (its bytes, or the pieces to join).
    Every message repeats the question (RFC 5936 §2.2.1 allows it) because fragments
    point at it; id copied, QR and AA set, RD copied, RA clear."""
    flags = _QR | _AA | (query.flags & _RD)
    head = _HEADER.pack
    return [b"".join((head(query.id, flags, 1, count, 0, 0), question, chunk))
            if isinstance(chunk, bytes) else
            b"".join((head(query.id, flags, 1, count, 0, 0), question, *chunk))
            for count, chunk in body]


def _check(query: dns.message.Message, wirezone: WireZone) -> bytes | None:
    """An error reply when the query is not a transfer of this zone, else None."""
    if len(query.question) != 1:
        return _transfer_error(query, dns.rcode.FORMERR)
    q = query.question[0]
    if q.rdclass != _IN or q.name != dns.name.from_text(wirezone.config.zone):
        # RFC 5936 §2.2.1: NotAuth for a zone the server is not authoritative for.
        return _transfer_error(query, dns.rcode.NOTAUTH)
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
            return [_transfer_error(query, dns.rcode.FORMERR)]  # RFC 1995 §3: SOA required
        client = soas[0][0].serial
    except ValueError:
        return [_transfer_error(query, dns.rcode.FORMERR)]
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
