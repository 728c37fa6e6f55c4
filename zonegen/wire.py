"""Zones as wire fragments, sans I/O: the record encoder and the packed :class:`WireZone`.

The bulk of a transfer never goes through dnspython's renderer (~28k RR/s): every record
is encoded once, when it enters the zone, as a wire fragment whose owner ends in a
compression pointer to the question name at offset 12 (docs/PERFORMANCE.md), and messages
are joins of those bytes. Also the header surgery done on such pre-rendered messages
(appending an OPT or TSIG record, reading counts). Which records a zone holds is decided
by :mod:`zonegen.selection`, never here.
"""

from __future__ import annotations

import ipaddress
import struct
from array import array
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import accumulate, chain, groupby
from operator import itemgetter
from socket import inet_aton

import dns.rdataclass
import dns.rdatatype

from zonegen.model import AAAA, NS, PTR, SOA, SRV, TXT, A, Diff, Record, ZoneConfig
from zonegen.names import in_zone, relative_to
from zonegen.selection import (
    A_ROW,
    RELATIVE_ROW,
    OwnerSelector,
    Selected,
    Selection,
    StoredRecord,
    canonical_key,
    cname_alone,
    select,
)
from zonegen.serial import MODULUS

HEADER = struct.Struct("!HHHHHH")
RR_HEAD = struct.Struct("!HHIH")  # type, class, TTL, rdlength
_SRV_HEAD = struct.Struct("!HHIHHHH")  # the above + priority, weight, port
_SOA_TAIL = struct.Struct("!IIIII")
_TYPE_HEAD = struct.Struct("!HHI")  # type, class, TTL: RR_HEAD without the rdlength
_SRV_FIELDS = struct.Struct("!HHH")  # priority, weight, port
_IN = dns.rdataclass.IN
_POINTER = b"\xc0\x0c"  # the question name, which every message we build starts with


def name_wire(name: str) -> bytes:
    """Uncompressed wire form of an absolute presentation name without escapes (the only
    kind :func:`zonegen.zonefile.absolute_name` lets through), RFC 1035 §3.1."""
    if name == ".":
        return b"\x00"
    return b"".join(bytes((len(label),)) + label.encode("ascii")
                    for label in name[:-1].split(".")) + b"\x00"


def _name_text(wire: bytes, at: int) -> str:
    """The presentation form of the uncompressed name at ``at`` (as :func:`name_wire`
    writes it)."""
    labels = []
    while wire[at]:
        labels.append(wire[at + 1:at + 1 + wire[at]].decode("ascii"))
        at += 1 + wire[at]
    return ".".join(labels) + "." if labels else "."


def soa_fragment(config: ZoneConfig, serial: int) -> bytes:
    """The apex SOA (RFC 1035 §3.3.13), TTL ``config.ttl`` as in the rendered file."""
    mname = config.nameservers[0].name if config.nameservers else f"ns.dns.{config.zone}"
    rdata = (name_wire(mname) + name_wire(config.hostmaster)
             + _SOA_TAIL.pack(serial % MODULUS, config.refresh, config.retry, config.expire,
                              config.minimum))
    return _POINTER + RR_HEAD.pack(SOA, _IN, config.ttl, len(rdata)) + rdata


class Encoder:
    """Per-record wire fragments for one zone, with caches per owner, target and address
    so a 1M-record zone encodes each distinct name once."""

    def __init__(self, config: ZoneConfig, warnings: list[str] | None) -> None:
        self.config = config
        self.warnings = warnings
        self.zone = config.zone
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

    def fragments(self, selected: Iterable[Selected]) -> Iterator[tuple[str, bytes]]:
        """``(owner, fragment)`` for records of :func:`zonegen.selection.select`, in any
        order (each run of one owner is encoded by :meth:`owner_fragments`)."""
        for owner, run in groupby(selected, _owner_of):
            for frag in self.owner_fragments(owner, run):
                yield owner, frag

    def owner_fragments(self, owner: str, selected: Iterable[Selected]) -> list[bytes]:
        """The fragments of ``selected``, records of :func:`zonegen.selection.select` all
        at ``owner``.

        Targets of SRV (RFC 2782: "name compression is not to be used for this field"),
        CNAME and PTR are written uncompressed: the simplest correct form, and it keeps
        fragments independent of where they land in a message. The owner's prefix is
        found once; caches per target and address keep the per-record work to a few
        dict lookups (docs/PERFORMANCE.md)."""
        default_ttl = self.config.ttl
        target_get = self.targets.get
        addr_get = self.addresses.get
        srv_pack = _SRV_HEAD.pack
        prefix = self.owners.get(owner)
        if prefix is None:
            prefix = self.owner_prefix(owner)
        a_lead = prefix + RR_HEAD.pack(A, _IN, default_ttl, 4)
        out: list[bytes] = []
        add = out.append
        for _, rtype, rdata, ttl, target in selected:
            if rtype == A:
                packed = addr_get(rdata[0])
                if packed is None:
                    packed = self.address(A, rdata[0])
                    if packed is None:
                        continue
                if ttl is None or ttl == default_ttl:
                    add(a_lead + packed)
                else:
                    add(prefix + RR_HEAD.pack(A, _IN, ttl, 4) + packed)
                continue
            if ttl is None:
                ttl = default_ttl
            if rtype == SRV:
                wire = target_get(target)
                if wire is None:
                    wire = self.target(target)
                add(prefix + srv_pack(SRV, _IN, ttl, 6 + len(wire), int(rdata[0]),
                                      int(rdata[1]), int(rdata[2])) + wire)
            elif rtype == AAAA:
                packed = addr_get(rdata[0]) or self.address(AAAA, rdata[0])  # never b""
                if packed is None:
                    continue
                add(prefix + RR_HEAD.pack(AAAA, _IN, ttl, len(packed)) + packed)
            elif rtype == TXT:
                data = str(rdata[0]).encode()
                wire = b"".join(bytes((len(data[i:i + 255]),)) + data[i:i + 255]
                                for i in range(0, max(len(data), 1), 255))
                add(prefix + RR_HEAD.pack(TXT, _IN, ttl, len(wire)) + wire)
            else:  # CNAME, PTR
                wire = target_get(target)
                if wire is None:
                    wire = self.target(target)
                add(prefix + RR_HEAD.pack(rtype, _IN, ttl, len(wire)) + wire)
        return out

    def grouped(self, selected: Iterable[Selected]) -> dict[str, list[bytes]]:
        """Fragments grouped by owner, in order of first appearance."""
        out: dict[str, list[bytes]] = {}
        get = out.get
        for owner, frag in self.fragments(selected):
            lst = get(owner)
            if lst is None:
                lst = out[owner] = []
            lst.append(frag)
        return out

    def alone(self, owner: str, frags: Sequence[bytes], warnings: list[str] | None = None
              ) -> tuple[list[bytes], list[bytes]]:
        """:func:`zonegen.selection.cname_alone` on one owner's fragments."""
        at = len(self.owner_prefix(owner))

        def rtype(frag: bytes) -> int:
            return int.from_bytes(frag[at:at + 2], "big")

        def order(frag: bytes) -> tuple[str, int]:
            _, _, ttl, _ = RR_HEAD.unpack_from(frag, at)
            return _name_text(frag, at + 10), ttl

        return cname_alone(owner, frags, rtype, order, warnings)

    def apex(self) -> Iterator[tuple[str, bytes]]:
        """NS records and in-zone glue (RFC 1034 §4.2.1), from the config."""
        zone = self.zone
        for ns in self.config.nameservers:
            wire = name_wire(ns.name)
            yield zone, _POINTER + RR_HEAD.pack(NS, _IN, self.config.ttl, len(wire)) + wire
        for ns in self.config.nameservers:
            if ns.address and in_zone(ns.name, zone):
                rtype = AAAA if ":" in ns.address else A
                packed = self.address(rtype, ns.address)
                if packed is not None:
                    yield ns.name, (self.owner_prefix(ns.name)
                                    + RR_HEAD.pack(rtype, _IN, self.config.ttl, len(packed))
                                    + packed)


def chunk_fragments(fragments: Sequence[bytes], limit: int) -> list[tuple[int, bytes]]:
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
    :class:`Encoder` makes them) and ``counts[i] - counts[i - 1]`` records; its name is
    ``names[name_ends[i - 1]:name_ends[i]]`` (ASCII, absolute); ``below[i]`` names with
    records lie strictly below it. The owners come first, in the order given, then the
    empty non-terminals (no records, something below: RFC 8020), so existence needs no
    per-name Python objects either. ``table`` maps ``hash(name)`` (stable within the
    process, which is all it must be) to ``i + 1``."""

    __slots__ = ("below", "counts", "data", "ends", "name_ends", "names", "table")

    def __init__(self, zone: str, names: list[str], data: bytes, sizes: Iterable[int],
                 counts: Iterable[int], tree: dict[str, int] | None = None) -> None:
        """``tree``: :func:`_names_below` of ``names`` when the caller has it already
        (:meth:`WireZone.joined` adds up those of the parts, made in parallel)."""
        if tree is None:
            tree = _names_below(names, zone)
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


class WireZoneBuilder:
    """A :class:`WireZone` packed from owners in canonical order, one at a time
    (:class:`zonegen.selection.OwnerSelector` over ``Store.current_records``): each
    owner's records are encoded and appended to one growing buffer, so building holds
    the wire zone and one owner, never a list of the zone's records or fragments
    (issue #11). NS and glue from the config join their owners in order.

    The CNAME rule's set-aside records and those equal once published (equal
    fragments) go to the zone's ``extra``, as :meth:`WireZone.apply` needs them."""

    __slots__ = ("_a", "_added", "_config", "_counts", "_data", "_enc", "_extra", "_heads",
                 "_names", "_pending", "_ptr", "_selector", "_serial", "_sizes", "_srv",
                 "_warnings")

    _TRIM = 1 << 14  # cached names the encoder keeps at most (they recur close by)
    _CHECK = 1024  # owners added between two looks at the encoder's caches

    def __init__(self, config: ZoneConfig, serial: int, warnings: list[str] | None, *,
                 keys: tuple[str | None, str | None] = (None, None)) -> None:
        """``keys``: the canonical keys (:func:`canonical_key`) ``[since, until)`` of the
        owners this builder packs when it builds one part of a zone
        (:meth:`WireZone.joined`): only the NS and glue owners in that range are its
        to place."""
        self._config = config
        self._serial = serial
        self._enc = Encoder(config, warnings)
        self._names: list[str] = []
        self._data = bytearray()
        self._sizes = array("Q")
        self._counts = array("Q")
        self._extra: dict[str, dict[bytes, int]] = {}
        self._added = 0
        self._warnings = warnings
        self._selector: OwnerSelector | None = None
        # the fast path's fragment tails (type to rdata, default TTL) per rdata text
        self._a: dict[str, bytes] = {}
        self._srv: dict[str, bytes] = {}
        self._ptr: dict[str, bytes] = {}
        self._heads = {t: _TYPE_HEAD.pack(t, _IN, config.ttl) for t in (A, SRV, PTR)}
        apex: dict[str, list[bytes]] = {}
        for owner, frag in self._enc.apex():  # NS and glue lead their owners' records
            apex.setdefault(owner, []).append(frag)
        since, until = keys
        # (key, owner, fragments) still to place, the smallest last
        placed = [(canonical_key(o), o, f) for o, f in apex.items()]
        self._pending = sorted((p for p in placed if (since is None or p[0] >= since)
                                and (until is None or p[0] < until)), reverse=True)

    def owner_selector(self) -> OwnerSelector:
        """An :class:`~zonegen.selection.OwnerSelector` for this zone whose fast path
        (:meth:`fast`) encodes plain A, SRV and PTR rows straight from their text: what
        :meth:`ZoneSet.from_rows <zonegen.serve.zoneset.ZoneSet.from_rows>` feeds."""
        self._selector = OwnerSelector(self._config, self._warnings, self.fast)
        return self._selector

    def fast(self, owner: str, rows: list[StoredRecord]) -> list[bytes] | None:
        """The fragments :meth:`Encoder.owner_fragments` makes of ``rows`` (stored rows
        at ``owner``) when all are plain A, SRV and PTR of this zone, else None (a
        :data:`~zonegen.selection.FastPath`): the common A and SRV texts are matched and
        encoded in place (each names one pod, so keeping them never paid), any other
        text's tail (type to rdata at the default TTL) is made once and kept; each row
        then costs one join with the owner's prefix."""
        enc = self._enc
        prefix = enc.owner_prefix(owner)  # a new owner: its own cache lookup only
        default_ttl = self._config.ttl
        selector = self._selector
        if selector is None:
            raise RuntimeError("WireZoneBuilder.fast used without owner_selector()")
        a_get, srv_get, ptr_get = self._a.get, self._srv.get, self._ptr.get
        a_row, srv_row = A_ROW.match, RELATIVE_ROW.match
        a_head, srv_head = self._heads[A] + b"\x00\x04", self._heads[SRV]
        suffix, longest = selector.suffix, selector.longest_relative
        out: list[bytes] = []
        add = out.append
        for _, rtype, text, ttl in rows:
            if rtype == A:
                # :meth:`_tail`'s common case, inlined and not kept: an address is at one
                # owner (a pod's), so looking it up first cost more than it found
                m = a_row(text)
                # a dotted quad the selection finds valid: inet_aton reads it exactly
                tail = a_head + inet_aton(m[1]) if m is not None else a_get(text)
            elif rtype == SRV:
                # :meth:`_tail`'s common SRV, inlined and not kept: its text names one
                # pod and one port, so it recurs no more than an address does
                m = srv_row(text)
                if m is not None and m[1] is not None and len(m[4]) <= longest:
                    data = (_SRV_FIELDS.pack(int(m[1]), int(m[2]), int(m[3]))
                            + enc.target(m[4] + suffix))
                    tail = srv_head + len(data).to_bytes(2, "big") + data
                else:
                    tail = srv_get(text)
            elif rtype == PTR:
                tail = ptr_get(text)
            else:
                return None
            if tail is None:
                tail = self._tail(rtype, text)
                if tail is None:
                    return None
            if ttl is None or ttl == default_ttl:
                add(prefix + tail)
            else:
                add(prefix + _TYPE_HEAD.pack(rtype, _IN, ttl) + tail[8:])
        return out

    def _tail(self, rtype: int, text: str) -> bytes | None:
        """The fragment after the owner of a valid plain record at the default TTL,
        kept; else None."""
        selector = self._selector
        if selector is None:
            raise RuntimeError("WireZoneBuilder.fast used without owner_selector()")
        enc = self._enc
        if rtype == A:
            address = selector.address(text)
            if address is None:
                return None
            # a dotted quad the selection found valid: what inet_aton reads exactly
            cache, data = self._a, inet_aton(address)
        else:
            found = selector.target(text)
            if found is None:
                return None
            rdata, target = found
            wire = enc.target(target)
            if rtype == PTR:
                cache, data = self._ptr, wire
            elif len(rdata) == 4 and type(rdata[0]) is int and type(rdata[1]) is int \
                    and type(rdata[2]) is int:
                cache, data = self._srv, _SRV_FIELDS.pack(*rdata[:3]) + wire
            else:
                return None
        tail = self._heads[rtype] + len(data).to_bytes(2, "big") + data
        if len(cache) >= self._KEEP:
            cache.clear()
        cache[text] = tail
        return tail

    _KEEP = 1 << 12  # tails kept per type (an address or target recurs close by)

    def add(self, owner: str, selection: Selection) -> None:
        """``owner``'s records (kept and set aside), after every owner added before it
        in canonical order. Equal fragments (records equal once published) are served
        once; the rest go to ``extra``, with the set-aside ones."""
        pending = self._pending
        first: list[bytes] = []
        if pending:  # NS and glue owners not placed yet: only then is the key needed
            key = canonical_key(owner)
            while pending and pending[-1][0] <= key:
                at_key, at, at_frags = pending.pop()
                if at_key == key:
                    first = at_frags
                else:
                    self._pack(at, at_frags)
        enc = self._enc
        ready = selection.ready
        if ready:  # the fast path's own list: never changed in place below
            frags = ready if isinstance(ready, list) else list(ready)
        else:
            frags = enc.owner_fragments(owner, selection.records)
        if first:
            frags = first + frags
        if selection.shadowed:
            aside = enc.owner_fragments(owner, selection.shadowed)
            raw = _counted(frags + aside)
            frags = [f for f in raw if f not in aside]
            left = _minus(raw, frags)
            if left:
                self._extra[owner] = left
        elif len(frags) > 1:
            unique = list(dict.fromkeys(frags))
            if len(unique) < len(frags):
                self._extra[owner] = _minus(_counted(frags), unique)
                frags = unique
        if frags:
            blob = b"".join(frags)
            self._names.append(owner)
            self._data += blob
            self._sizes.append(len(blob))
            self._counts.append(len(frags))
        self._added += 1
        if self._added >= self._CHECK:
            self._added = 0
            if len(enc.owners) + len(enc.targets) + len(enc.addresses) > self._TRIM:
                enc.owners.clear()
                enc.targets.clear()
                enc.addresses.clear()

    def _pack(self, owner: str, frags: list[bytes]) -> None:
        blob = b"".join(frags)
        self._names.append(owner)
        self._data += blob
        self._sizes.append(len(blob))
        self._counts.append(len(frags))

    def finish(self) -> WireZone:
        """The zone: every owner added, and whatever NS and glue owners came last."""
        span = self.span()
        data = bytes(span.data)
        self._data = span.data = bytearray()
        packed = _Packed(self._config.zone, span.names, data, span.sizes, span.counts)
        return WireZone(self._config, self._serial, packed, extra=span.extra)

    def span(self, below: bool = False) -> WireSpan:
        """What :meth:`finish` packs: every owner added, then whatever NS and glue
        owners of its range came last; one part of a zone for :meth:`WireZone.joined`
        (with ``below``, the names below each name counted, as :class:`_Packed` needs
        them). The builder is done with afterwards."""
        while self._pending:
            _, owner, frags = self._pending.pop()
            self._pack(owner, frags)
        return WireSpan(self._names, self._data, self._sizes, self._counts, self._extra,
                        _names_below(self._names, self._config.zone) if below else None)


@dataclass(slots=True)
class WireSpan:
    """Owners of one zone in canonical order, packed as :class:`_Packed` holds them
    (``data`` their fragments back to back; ``sizes``, ``counts`` per owner), and the
    ``extra`` records of those owners (see :class:`WireZone`): a whole zone, or a run
    of its owners built apart (another process) and joined with :meth:`WireZone.joined`.
    Plain values, so it pickles."""

    names: list[str]
    data: bytes | bytearray
    sizes: array[int]
    counts: array[int]
    extra: dict[str, dict[bytes, int]]
    below: dict[str, int] | None = None
    """:func:`_names_below` of ``names`` when made with the span (in parallel)."""


_owner_of = itemgetter(0)


def _by_owner(selected: Iterable[Selected]) -> dict[str, list[Selected]]:
    out: dict[str, list[Selected]] = {}
    for rr in selected:
        lst = out.get(rr[0])
        if lst is None:
            lst = out[rr[0]] = []
        lst.append(rr)
    return out


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

    __slots__ = ("_base", "_below", "_changed", "_extra", "_soa", "config", "serial")

    def __init__(self, config: ZoneConfig, serial: int, base: _Packed,
                 changed: dict[str, _Blob] | None = None,
                 below: dict[str, int] | None = None,
                 extra: dict[str, dict[bytes, int]] | None = None) -> None:
        self.config = config
        self.serial = serial % MODULUS
        self._base = base
        self._changed: dict[str, _Blob] = changed if changed is not None else {}
        self._below: dict[str, int] = below if below is not None else {}
        # owner -> records beyond those served, as fragment -> count: CNAMEs the CNAME
        # rule set aside (zonegen.selection.Selection) and records equal once published
        # (a name in two spellings, a TTL left out or given as the default). Rare; kept so
        # that a change removing one of them leaves what a fresh build would serve.
        self._extra: dict[str, dict[bytes, int]] = extra if extra is not None else {}
        self._soa = soa_fragment(config, self.serial)

    @classmethod
    def joined(cls, config: ZoneConfig, serial: int, spans: Sequence[WireSpan]
               ) -> WireZone | None:
        """The zone packed from ``spans`` (runs of its owners, each in canonical order,
        e.g. the halves of a split load), in the order given; None when they are not in
        canonical order where they meet (an owner in two of them, or out of order):
        then the caller builds the zone in one piece, which needs no such luck."""
        last: str | None = None
        for span in spans:
            if not span.names:
                continue
            if last is not None and canonical_key(span.names[0]) <= last:
                return None
            last = canonical_key(span.names[-1])
        names = [name for span in spans for name in span.names]
        data = b"".join(span.data for span in spans)
        for span in spans:
            span.data = b""  # freed as soon as joined: the zone is all that stays
        packed = _Packed(config.zone, names, data,
                         chain.from_iterable(span.sizes for span in spans),
                         chain.from_iterable(span.counts for span in spans),
                         cls._joined_below(spans))
        extra: dict[str, dict[bytes, int]] = {}
        for span in spans:
            extra.update(span.extra)
        return cls(config, serial, packed, extra=extra)

    @staticmethod
    def _joined_below(spans: Sequence[WireSpan]) -> dict[str, int] | None:
        """The names below each name of all ``spans``, added up from theirs (None
        unless every span has its own)."""
        trees = [span.below for span in spans]
        if any(tree is None for tree in trees):
            return None
        out: dict[str, int] = {}
        for tree in trees:
            if not out:
                out = dict(tree or {})
                continue
            get = out.get
            for name, count in (tree or {}).items():
                out[name] = get(name, 0) + count
        return out

    @classmethod
    def build(cls, records: Iterable[Record], config: ZoneConfig, serial: int,
              warnings: list[str] | None = None) -> WireZone:
        """Encode every record of the zone (:func:`zonegen.selection.select`) once, in
        any order: the owners are sorted here, then packed as :class:`WireZoneBuilder`
        packs a stream in canonical order.

        :param warnings: collects the reasons records were skipped.
        """
        selection = select(records, config, warnings)
        kept = _by_owner(selection.records)
        aside = _by_owner(selection.shadowed)
        builder = WireZoneBuilder(config, serial, warnings)
        for owner in sorted(kept.keys() | aside.keys(), key=canonical_key):
            builder.add(owner, Selection(kept.get(owner, []), aside.get(owner, [])))
        return builder.finish()

    def prefix_length(self, owner: str) -> int:
        """Octets of ``owner``'s prefix in its fragments: labels below the zone + pointer."""
        if owner == self.config.zone:
            return 2
        return len(relative_to(owner, self.config.zone)) + 3

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
        plen = self.prefix_length(owner)
        out: list[bytes] = []
        pos = 0
        while pos < len(blob):
            (rdlen,) = struct.unpack_from("!H", blob, pos + plen + 8)
            end = pos + plen + 10 + rdlen
            out.append(blob[pos:end])
            pos = end
        return out

    def _raw(self, owner: str) -> dict[bytes, int]:
        """``owner``'s records before the CNAME rule, as fragment -> count: those served
        and the extra ones."""
        blob, _ = self._blob(owner)
        raw = dict.fromkeys(self._split(owner, blob), 1)
        for frag, count in self._extra.get(owner, {}).items():
            raw[frag] = raw.get(frag, 0) + count
        return raw

    def _changes(self, diff: Diff, enc: Encoder, warnings: list[str] | None
                 ) -> tuple[dict[str, list[bytes]], dict[str, list[bytes]]]:
        """``diff``'s records of this zone as fragments by owner: (removed, added)."""
        config = self.config
        return (enc.grouped(select(diff.removed, config, None, alone=False).records),
                enc.grouped(select(diff.added, config, warnings, alone=False).records))

    def apply(self, diff: Diff, serial: int, warnings: list[str] | None = None) -> WireZone:
        """The next version: this one with ``diff`` applied, at ``serial``; the CNAME rule
        applied again to each changed owner's whole set, so the result equals a fresh
        :meth:`build` of the new records.

        Costs a copy of the overlay plus the changed owners, not a re-encode."""
        enc = Encoder(self.config, warnings)
        removed, added = self._changes(diff, enc, warnings)
        changed = dict(self._changed)
        extra = self._extra  # copied only when it changes
        below = self._below  # copied only when a name appears or goes
        zone = self.config.zone
        for owner in dict.fromkeys((*removed, *added)):
            before = self._raw(owner)
            raw = _patched(before, removed.get(owner, ()), added.get(owner, ()))
            if raw == before:
                continue
            existed = self._blob(owner)[1] > 0
            lst, _ = enc.alone(owner, list(raw), warnings)
            changed[owner] = (b"".join(lst), len(lst))
            left = _minus(raw, lst)
            if left != self._extra.get(owner, {}):
                if extra is self._extra:
                    extra = dict(extra)
                if left:
                    extra[owner] = left
                else:
                    extra.pop(owner, None)
            if existed != bool(lst):
                if below is self._below:
                    below = dict(below)
                for name in _ancestors(owner, zone):
                    below[name] = self._names_below(name) if name not in below else below[name]
                    below[name] += 1 if lst else -1
        applied = WireZone(self.config, serial, self._base, changed, below, extra)
        if len(changed) + len(below) > max(_FOLD_MIN, len(self._base) // 16):
            return applied.folded()
        return applied

    def published_changes(self, steps: Sequence[Diff]) -> list[tuple[list[bytes], list[bytes]]]:
        """``(removed, added)`` fragments of the zone as published, one pair per step of
        ``steps`` (raw record changes leading, in order, to this version): what IXFR sends
        (RFC 1995 §4). The owners the steps touch are rolled back from this version and the
        CNAME rule applied at each step, so every intermediate version a client passes
        through is one :meth:`build` would make."""
        enc = Encoder(self.config, None)
        changes = [self._changes(diff, enc, None) for diff in steps]
        raw: dict[str, dict[bytes, int]] = {}
        for removed, added in changes:
            for owner in (*removed, *added):
                if owner not in raw:
                    raw[owner] = self._raw(owner)
        out: list[tuple[list[bytes], list[bytes]]] = []
        for removed, added in reversed(changes):
            gone: list[bytes] = []
            came: list[bytes] = []
            for owner in dict.fromkeys((*removed, *added)):
                after = raw[owner]
                before = _patched(after, added.get(owner, ()), removed.get(owner, ()))
                was, _ = enc.alone(owner, list(before))
                now, _ = enc.alone(owner, list(after))
                gone += [f for f in was if f not in now]
                came += [f for f in now if f not in was]
                raw[owner] = before
            out.append((gone, came))
        out.reverse()
        return out

    def folded(self) -> WireZone:
        """The same version with the overlay folded into a new base: joins bytes, no
        re-encoding (~0.3 s per 1M records). :meth:`apply` folds once the overlay holds
        more than 1/16 of the names, so applies stay cheap and the base is rebuilt at
        most once per that many changed names."""
        return WireZone(self.config, self.serial,
                        _Packed.of_blobs(self.config.zone, self._merged()), extra=self._extra)

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
                    for frag in chunk_fragments(self._split(owner, bytes(blob)), limit):
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


def _counted(frags: Iterable[bytes]) -> dict[bytes, int]:
    """fragment -> how many times it occurs, in order of first occurrence."""
    out: dict[bytes, int] = {}
    for frag in frags:
        out[frag] = out.get(frag, 0) + 1
    return out


def _minus(raw: dict[bytes, int], served: Iterable[bytes]) -> dict[bytes, int]:
    """The counts of ``raw`` beyond one of each ``served`` fragment."""
    left = dict(raw)
    for frag in served:
        left[frag] -= 1
    return {frag: count for frag, count in left.items() if count > 0}


def _patched(raw: dict[bytes, int], removed: Iterable[bytes], added: Iterable[bytes]
             ) -> dict[bytes, int]:
    """``raw`` less one count per ``removed`` fragment, plus one per ``added``."""
    out = dict(raw)
    for frag in removed:
        count = out.get(frag, 0) - 1
        if count > 0:
            out[frag] = count
        else:
            out.pop(frag, None)
    for frag in added:
        out[frag] = out.get(frag, 0) + 1
    return out


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


def _names_below(owners: Iterable[str], zone: str) -> dict[str, int]:
    """Every name strictly between an owner and ``zone`` -> how many ``owners`` lie
    below it. Counted per parent first (the owners of a zone share few parents: a
    Service's pods, its ports), then each parent's count added up its ancestors, so
    the walk up is per parent, not per owner."""
    direct: dict[str, int] = {}
    get = direct.get
    shortest = len(zone)
    for owner in owners:
        parent = owner[owner.find(".") + 1:]
        if len(parent) > shortest:
            direct[parent] = get(parent, 0) + 1
    tree: dict[str, int] = {}
    for parent, count in direct.items():
        tree[parent] = tree.get(parent, 0) + count
        _count_ancestors(tree, parent, zone, count)
    return tree


def _count_ancestors(tree: dict[str, int], owner: str, zone: str, delta: int) -> None:
    """Add ``delta`` to every name strictly between ``owner`` and ``zone``."""
    for name in _ancestors(owner, zone):
        count = tree.get(name, 0) + delta
        if count:
            tree[name] = count
        else:
            tree.pop(name, None)




# --------------------------------------------------------------------------- header surgery


def append_record(wire: bytes, owner: bytes, rtype: int, rclass: int, ttl: int,
                  rdata: bytes) -> bytes:
    """``wire`` with one more additional record (ARCOUNT + 1): how an OPT or a TSIG is
    added to a message rendered here without parsing it again."""
    return b"".join((wire[:10], struct.pack("!H", arcount(wire) + 1), wire[12:], owner,
                     RR_HEAD.pack(rtype, rclass, ttl, len(rdata)), rdata))


OPT_ROOT = b"\x00"


def append_opt(wire: bytes, payload: int) -> bytes:
    """``wire`` with an OPT record (RFC 6891 §6.1.2): version 0, no flags, no options."""
    return append_record(wire, OPT_ROOT, dns.rdatatype.OPT, payload, 0, b"")


def arcount(wire: bytes) -> int:
    return int(struct.unpack_from("!H", wire, 10)[0])


def ancount(wire: bytes) -> int:
    return int(struct.unpack_from("!H", wire, 6)[0])


def rcode(wire: bytes) -> int:
    return int(struct.unpack_from("!H", wire, 2)[0]) & 0xF if len(wire) >= 4 else 0
