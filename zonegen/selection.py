"""Which records a zone holds: the one selection pass behind the zone file, AXFR and IXFR.

A record is published in ``config.zone`` when its owner, made absolute (relative names
are below ``config.forward_zone``), is a valid name at or below the zone; its type is one
records may carry; its target (SRV, CNAME, PTR) is a valid name, and a CNAME does not
point at its own owner. Then the CNAME rule (RFC 1034 §3.6.2, RFC 2181 §10.1: a CNAME is
alone at its name, or the zone does not load) keeps the other data at an owner and drops
its CNAMEs, or of several CNAMEs alone keeps the one with the smallest ``(target, TTL)``.
docs/RECORDS.md ("Names that cannot be published") says why records are skipped, not
refused.

:func:`select` is the pass; :class:`OwnerSelector` (and :func:`select_owners`) the same
pass over records already in canonical owner order, one owner at a time, for the streams
of the persisted read model; :func:`cname_alone` is the CNAME rule on one owner's records
in any form (the wire side keeps them as fragments). Pure: no I/O.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import groupby
from operator import attrgetter, itemgetter
from typing import Any, TypeVar

from zonegen.model import (
    AAAA,
    CNAME,
    PTR,
    SRV,
    TXT,
    TYPE_NAMES,
    A,
    RData,
    Record,
    ZoneConfig,
    encode_rdata,
)
from zonegen.names import in_zone

__all__ = [
    "PUBLISHED_TYPES",
    "A_ROW",
    "RELATIVE_NAME",
    "RELATIVE_ROW",
    "FastPath",
    "NotInOrder",
    "OwnerSelector",
    "Selected",
    "Selection",
    "StoredRecord",
    "ZoneRR",
    "absolute_name",
    "canonical_key",
    "decode_rdata",
    "cname_alone",
    "select",
    "select_owner_rows",
    "select_owners",
    "stored_rows",
    "zone_records",
]

Selected = tuple[str, int, RData, "int | None", str]
"""A record selected for one zone: ``(owner, rtype, rdata, ttl, target)``, owner and
``target`` (the last rdata field of SRV/CNAME/PTR made absolute, "" for other types)
absolute, rdata as given. Plain tuples: building 1M dataclass instances would cost more
than rendering them (docs/PERFORMANCE.md)."""

StoredRecord = tuple[str, int, str, "int | None"]
"""A record as the read model stores it: ``(owner, rtype, rdata as compact JSON, ttl)``
(``Store.current_rows``; the same alias as ``zonegen.store.readmodel.StoredRecord``)."""

ZoneRR = tuple[str, int, RData, "int | None"]
"""``(owner, rtype, rdata, ttl)`` with owner and rdata names absolute: field order of
:class:`~zonegen.model.Record`, so ``Record(*rr)`` gives one back."""

PUBLISHED_TYPES = frozenset((A, AAAA, CNAME, PTR, SRV, TXT))
"""Types a record may carry; SOA and NS come from :class:`ZoneConfig`, never from records."""

# A lowercase absolute name whose labels are 1-63 octets of characters that need no
# escaping in a master file (RFC 1035 §5.1): letters, digits, hyphen, underscore (SRV
# owners, RFC 2782). Anything else could not be written without escapes and Kubernetes
# never produces it; such records are skipped with a warning instead of breaking the zone.
_ABSOLUTE = re.compile(r"(?:[a-z0-9_-]{1,63}\.)+\Z")
_MAX_TEXT = 254  # an absolute name of 255 octets on the wire is 254 characters with its dot

_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}\Z")  # what ipaddress accepts, ~5x faster

T = TypeVar("T")


def absolute_name(name: str, forward_zone: str) -> str | None:
    """``name`` made absolute (relative names are below ``forward_zone``) and lowercased,
    or None when the result is not a publishable name: a label empty or over 63 octets, a
    name over 255 octets on the wire (RFC 1035 §2.3.4), or a character needing escapes."""
    if name.endswith("."):
        full = name.lower()
    elif name in ("", "@"):
        full = forward_zone
    else:
        full = f"{name.lower()}.{forward_zone}" if forward_zone != "." else f"{name.lower()}."
    if len(full) > _MAX_TEXT or _ABSOLUTE.match(full) is None:
        return None
    return full


@dataclass(frozen=True, slots=True)
class Selection:
    """The records of one zone (``records``) and those the CNAME rule set aside
    (``shadowed``): the wire side keeps the latter, so a CNAME comes back when the data
    beside it goes, exactly as a fresh selection would bring it back."""

    records: list[Selected]
    shadowed: list[Selected]
    ready: Sequence[Any] = ()
    """What an :class:`OwnerSelector`'s ``fast`` function already made of the owner's
    records (lines, fragments): then ``records`` and ``shadowed`` are empty."""


FastPath = Callable[[str, "list[StoredRecord]"], "list[Any] | None"]
"""``fast(owner, rows)``: what a consumer makes of one run of stored rows at an absolute
owner (zone-file lines, wire fragments) straight from their text, or None (having
warned about nothing) when some row needs the general path: a type other than A, SRV
and PTR, an invalid address or target, rdata that is not the common shape. It checks
rows with :meth:`OwnerSelector.address` and :meth:`OwnerSelector.target`, so the rules
stay here."""


class _Names:
    """Per-call caches of name conversions: a 1M-record zone with 300k distinct owners
    converts each once, and equal names share one ``str`` object afterwards."""

    __slots__ = ("addresses", "below", "forward", "names", "owners", "suffix", "warnings",
                 "zone")

    def __init__(self, config: ZoneConfig, warnings: list[str] | None) -> None:
        self.forward = config.forward_zone
        # what a relative name gets appended to be absolute (``absolute_name``)
        self.suffix = "." if config.forward_zone == "." else "." + config.forward_zone
        self.zone = config.zone
        # what every name below the zone ends with (in_zone's test, for lowercase names)
        self.below = "." if config.zone == "." else "." + config.zone
        self.warnings = warnings
        self.names: dict[str | int, str] = {}  # given -> absolute, "" when invalid
        self.owners: dict[str, str] = {}  # given -> absolute, "" when not in this zone
        self.addresses: dict[object, bool] = {}  # A text, (AAAA, text) -> valid

    def address(self, owner: str, rtype: int, text: object) -> bool:
        try:
            if rtype == A:
                if _IPV4.match(str(text)) is None:
                    raise ValueError(text)
            else:
                ipaddress.IPv6Address(str(text))
            valid = True
        except ValueError:
            self.warn(f"{owner}: {text!r} is not an IPv{4 if rtype == A else 6} address; "
                      "record skipped")
            valid = False
        self.addresses[text if rtype == A else (rtype, text)] = valid
        return valid

    def owner(self, name: str) -> str:
        full = self.names.get(name)
        if full is None:
            full = self.names[name] = absolute_name(name, self.forward) or ""
        if not full:
            self.warn(f"{name}: owner is not a valid DNS name (label over 63 octets, name "
                      "over 255, or a character needing escapes); skipped")
        elif full != self.zone and not full.endswith(self.below):  # in_zone: lowercase
            full = ""
        self.owners[name] = full
        return full

    def target(self, name: str | int) -> str:
        full = self.names[name] = absolute_name(str(name), self.forward) or ""
        return full

    def trim(self) -> None:
        """Forget every cached name and address except the invalid ones, whose warnings
        were given once and must not be given again (:class:`OwnerSelector`)."""
        self.names = {k: v for k, v in self.names.items() if not v}
        self.owners = {k: v for k, v in self.owners.items() if not v and k in self.names}
        self.addresses = {k: v for k, v in self.addresses.items() if not v}

    def warn(self, message: str) -> None:
        if self.warnings is not None:
            self.warnings.append(message)

    def skip(self, owner: str, rtype: int, target: str | int) -> None:
        """Warn about a record dropped for its type or target (docs/RECORDS.md)."""
        if rtype not in (SRV, CNAME, PTR):
            self.warn(f"{owner}: record type {TYPE_NAMES.get(rtype, rtype)} is not "
                      "published from records; skipped")
        elif rtype == CNAME and target == owner:
            self.warn(f"{owner}: CNAME to itself; skipped")
        else:
            self.warn(f"{owner}: {TYPE_NAMES[rtype]} target {target!r} is not a valid DNS "
                      "name; skipped")


def cname_alone(owner: str, items: Sequence[T], rtype: Callable[[T], int],
                order: Callable[[T], tuple[str, int]],
                warnings: list[str] | None) -> tuple[list[T], list[T]]:
    """``(kept, set aside)`` of one owner's distinct records under the CNAME rule: other
    data wins over CNAMEs; of several CNAMEs alone, the smallest ``order`` (target,
    TTL) stays. ``rtype`` and ``order`` read a record in whatever form it is kept."""
    cnames = [item for item in items if rtype(item) == CNAME]
    if not cnames or len(items) == 1:
        return list(items), []
    if len(cnames) < len(items):
        kept = [item for item in items if rtype(item) != CNAME]
        aside = cnames
        reason = "CNAME and other data at one name; CNAME skipped"
    else:
        first = min(cnames, key=order)
        kept = [first]
        aside = [item for item in cnames if item is not first]
        reason = f"several CNAMEs at one name; all but the one to {order(first)[0]} skipped"
    if warnings is not None:
        warnings.append(f"{owner}: {reason}")
    return kept, aside


def select(records: Iterable[Record], config: ZoneConfig, warnings: list[str] | None = None,
           *, alone: bool = True) -> Selection:
    """The records of ``config.zone`` among ``records`` (see the module docstring).

    ``alone=False`` skips the CNAME rule: for a change between two versions, which is no
    zone by itself (the wire side applies the rule to each changed owner's whole set).
    """
    out: list[Selected] = []
    cname_owners: set[str] = set()
    _select_into(records, _Names(config, warnings), out.append, cname_owners)
    if not alone or not cname_owners:
        return Selection(out, [])
    return _apply_cname_rule(out, cname_owners, config, warnings)


def _select_into(records: Iterable[Record], names: _Names, add: Callable[[Selected], None],
                 cname_owners: set[str]) -> None:
    """The per-record part of :func:`select`: each record of the zone, owner and target
    made absolute, to ``add``; owners holding a CNAME to ``cname_owners``."""
    owners_get = names.owners.get
    names_get = names.names.get
    addresses_get = names.addresses.get
    for r in records:
        owner = owners_get(r.owner)
        if owner is None:
            owner = names.owner(r.owner)
        if not owner:
            continue
        rtype = r.rtype
        rdata = r.rdata
        if rtype == A:  # the bulk of a Kubernetes zone, with SRV: tested first
            valid = addresses_get(rdata[0])
            if valid is None:
                valid = names.address(owner, A, rdata[0])
            if valid:
                add((owner, A, rdata, r.ttl, ""))
        elif rtype in (SRV, CNAME, PTR):
            given = rdata[-1]
            target = names_get(given)
            if target is None:
                target = names.target(given)
            if target and not (rtype == CNAME and target == owner):
                add((owner, rtype, rdata, r.ttl, target))
                if rtype == CNAME:
                    cname_owners.add(owner)
            else:
                names.skip(owner, rtype, target or given)
        elif rtype == AAAA:
            valid = addresses_get((AAAA, rdata[0]))
            if valid is None:
                valid = names.address(owner, AAAA, rdata[0])
            if valid:
                add((owner, AAAA, rdata, r.ttl, ""))
        elif rtype == TXT:
            add((owner, TXT, rdata, r.ttl, ""))
        else:
            names.skip(owner, rtype, "")


def canonical_key(name: str) -> str:
    """A ``str`` that sorts absolute names in DNSSEC canonical order (RFC 4034 §6.1):
    labels from the right, joined by ``\\x01``, which sorts below every character a
    published label may hold (see ``absolute_name``), so a label sorts before any label
    it is a prefix of, as octet-wise label comparison says."""
    return "\x01".join(reversed(name[:-1].split(".")))


class NotInOrder(Exception):  # noqa: N818 - a condition, handled by falling back
    """Records given to :class:`OwnerSelector` were not in canonical owner order (the
    store's order and this zone's disagree, e.g. one owner spelled two ways): the caller
    falls back to :func:`select` over the whole set, which needs no order."""


class OwnerSelector:
    """:func:`select` for records that arrive grouped by owner in DNSSEC canonical order
    (``Store.current_records``): one owner's records at a time, with the CNAME rule
    applied per owner (it is per owner), so a zone is selected, rendered or encoded
    holding one owner, not the whole zone (issue #11). Name caches are trimmed as it
    goes; what warned once (an invalid name or address) is remembered, so the warnings
    are those :func:`select` gives.

    :meth:`add` takes the next run of records with one stored owner; when that owner
    (made absolute) differs from the open one, the open owner is finished and returned.
    :meth:`close` finishes the last one.

    :raises NotInOrder: an owner arrived at or below the previous one in canonical order.
    """

    __slots__ = ("_closed", "_cnames", "_config", "_fast", "_key", "_names", "_open",
                 "_owner", "_rdata", "_ready", "_ready_rows", "_relative")

    # cached names kept at most (then only the invalid ones are kept): a name recurs
    # close by in the stream (a Service's pods are its SRV targets), and the cache is
    # most of what a load holds besides the zone
    _TRIM = 1 << 14
    _CHECK = 256  # owners closed between two looks at the caches' sizes

    def __init__(self, config: ZoneConfig, warnings: list[str] | None,
                 fast: FastPath | None = None) -> None:
        self._config = config
        self._fast = fast
        self._ready: list[Any] = []  # what ``fast`` made of the open owner
        self._ready_rows: list[list[StoredRecord]] = []  # the rows it made it from
        self._names = _Names(config, warnings)
        self._relative = in_zone(config.forward_zone, config.zone)  # relative owners are
        self._owner = ""
        self._key: str | None = None
        self._open: list[Selected] = []
        self._cnames: set[str] = set()
        self._rdata: dict[str, RData] = {}  # stored rdata text -> decoded (A, SRV, PTR)
        self._closed = 0

    def add(self, stored: str, records: Iterable[Record]) -> tuple[str, Selection] | None:
        """Select ``records`` (all with owner ``stored``, as stored)."""
        owner, done = self._enter(stored)
        if owner:
            _select_into(records, self._names, self._open.append, self._cnames)
        return done

    def add_rows(self, stored: str, rows: Iterable[StoredRecord]
                 ) -> tuple[str, Selection] | None:
        """:meth:`add` for rows as the read model stores them, ``(owner, rtype, rdata
        text, ttl)`` (``Store.current_rows``), all with owner ``stored``.

        With a ``fast`` function, the rows go to it first: what it makes is the owner's
        :attr:`Selection.ready`. Otherwise (it returned None, or the owner has records
        on the general path already) the rdata is decoded here (:func:`decode_rdata`),
        once per distinct text; A, SRV and PTR are selected in place, any other type
        through :func:`_select_into` as a :class:`Record` (the same rules)."""
        owner = self._absolute(stored)
        if not owner:
            return None
        done = None
        if owner != self._owner:
            done = self._next(owner)
        self._take(owner, rows)
        return done

    def select_rows(self, rows: Iterable[StoredRecord]) -> Iterator[tuple[str, Selection]]:
        """:meth:`add_rows` over every run of one stored owner in ``rows``, then
        :meth:`close`: each finished owner, in order. The same results as calling them
        one by one, with the common owner (a new one, relative, its rows all taken by
        ``fast``) handled in this one loop: at 1M records, the calls per owner were a
        third of what ``export`` and ``serve`` spent selecting.

        :raises NotInOrder: see the class.
        """
        names = self._names
        owners_get = names.owners.get
        suffix = names.suffix
        longest = _MAX_TEXT - len(suffix)
        relative = _RELATIVE_NAME.match if self._relative else None
        fast = self._fast
        join = "\x01".join
        check = self._CHECK - 1
        for stored, group in groupby(rows, _row_owner):
            owner = owners_get(stored)
            if owner is None:
                if relative is not None and len(stored) <= longest \
                        and relative(stored) is not None:
                    owner = stored + suffix
                else:
                    owner = names.owner(stored)
                if not owner:
                    continue
            elif not owner:
                continue
            if owner != self._owner:
                key = join(reversed(owner[:-1].split(".")))  # canonical_key
                if self._key is not None and key <= self._key:
                    raise NotInOrder(f"{owner} after {self._owner}")
                done: tuple[str, Selection] | None
                if self._ready and self._closed < check:  # :meth:`close`, inlined for
                    self._closed += 1  # the common finished owner (all made by ``fast``)
                    done = self._owner, Selection([], [], self._ready)
                    self._ready = []
                    self._ready_rows = []
                else:
                    done = self.close()
                self._owner, self._key = owner, key
                if done is not None:
                    yield done
                if fast is not None:  # a new owner: nothing open, nothing ready
                    run = list(group)
                    made = fast(owner, run)
                    if made is not None:
                        self._ready = made
                        self._ready_rows.append(run)
                        continue
                    self._general(owner, run)
                    continue
            self._take(owner, group)
        done = self.close()
        if done is not None:
            yield done

    @property
    def suffix(self) -> str:
        """What makes a relative name absolute: ``.`` and the forward zone."""
        return self._names.suffix

    @property
    def longest_relative(self) -> int:
        """The longest relative name that stays a valid absolute one with :attr:`suffix`."""
        return _MAX_TEXT - len(self._names.suffix)

    @property
    def relative(self) -> bool:
        """Whether relative names (below the forward zone) lie in this zone."""
        return self._relative

    def absolute(self, stored: str) -> str:
        """The absolute owner of stored owner ``stored`` in this zone, "" when it is not
        in it (an invalid name is warned about once)."""
        return self._absolute(stored)

    def _absolute(self, stored: str) -> str:
        """The absolute owner of ``stored`` in this zone, "" when it is not in it."""
        names = self._names
        owner = names.owners.get(stored)
        if owner is None:
            # the common owner: relative, valid labels, below a forward zone in this one
            if self._relative and _RELATIVE_NAME.match(stored) is not None \
                    and len(stored) + len(names.suffix) <= _MAX_TEXT:
                owner = stored + names.suffix
            else:
                owner = names.owner(stored)
        return owner

    def _take(self, owner: str, rows: Iterable[StoredRecord]) -> None:
        """Rows at the open ``owner``: to ``fast`` first, else the general path."""
        fast = self._fast
        if fast is not None:
            run = rows if isinstance(rows, list) else list(rows)
            if not self._open:
                made = fast(owner, run)
                if made is not None:
                    self._ready += made
                    self._ready_rows.append(run)
                    return
            if self._ready_rows:  # one owner in two spellings, the second not fast
                for earlier in self._ready_rows:
                    self._general(owner, earlier)
                self._ready = []
                self._ready_rows = []
            rows = run
        self._general(owner, rows)

    def _general(self, owner: str, rows: Iterable[StoredRecord]) -> None:
        """Select stored rows at ``owner`` into the open owner's records."""
        names = self._names
        add = self._open.append
        decoded = self._rdata
        decoded_get = decoded.get
        addresses_get = names.addresses.get
        names_get = names.names.get
        others: list[Record] = []
        for stored, rtype, text, ttl in rows:
            if rtype == A:
                rdata = decoded_get(text)
                if rdata is None:
                    rdata = decoded[text] = decode_rdata(text)
                valid = addresses_get(rdata[0])
                if valid is None:
                    valid = names.address(owner, A, rdata[0])
                if valid:
                    add((owner, A, rdata, ttl, ""))
            elif rtype in (SRV, PTR):
                rdata = decoded_get(text)
                if rdata is None:
                    rdata = decoded[text] = decode_rdata(text)
                given = rdata[-1]
                target = names_get(given)
                if target is None:
                    target = names.target(given)
                if target:
                    add((owner, rtype, rdata, ttl, target))
                else:
                    names.skip(owner, rtype, given)
            else:
                others.append(Record(stored, rtype, decode_rdata(text), ttl))
        if others:
            _select_into(others, names, add, self._cnames)

    def address(self, text: str) -> str | None:
        """The address of stored A rdata ``text`` when it is a valid one (what the
        general path publishes), else None; never warns (the general path will)."""
        m = _A_ROW.match(text)  # the common shape, read and checked at once
        if m is not None:
            return m[1]
        rdata = decode_rdata(text)  # once per text: the caller keeps what it makes of it
        if len(rdata) != 1 or type(rdata[0]) is not str:
            return None
        address = rdata[0]
        valid = self._names.addresses.get(address)
        if valid is None and _IPV4.match(address) is not None:
            valid = self._names.addresses[address] = True
        return address if valid else None

    def target(self, text: str) -> tuple[RData, str] | None:
        """Stored SRV or PTR rdata ``text`` decoded, and its target made absolute, when
        the target is a valid name (what the general path publishes), else None."""
        names = self._names
        m = _RELATIVE_ROW.match(text)  # the common shapes: a relative target needing
        if m is not None:  # no escapes, valid below the forward zone when short enough
            given = m[4]
            full = given + names.suffix
            if len(full) <= _MAX_TEXT:
                if m[1] is None:
                    return (given,), full
                return (int(m[1]), int(m[2]), int(m[3]), given), full
        rdata = decode_rdata(text)
        given = rdata[-1]
        target = names.names.get(given)
        if target is None:
            target = names.target(given)
        return (rdata, target) if target else None

    def _enter(self, stored: str) -> tuple[str, tuple[str, Selection] | None]:
        """The absolute owner of ``stored`` ("" when not in this zone), and the owner
        finished by entering it (when it differs from the open one)."""
        names = self._names
        owner = names.owners.get(stored)
        if owner is None:
            owner = names.owner(stored)
        if not owner or owner == self._owner:
            return owner, None
        return owner, self._next(owner)

    def _next(self, owner: str) -> tuple[str, Selection] | None:
        """Open ``owner`` (after the open one in canonical order); the one finished."""
        key = canonical_key(owner)
        if self._key is not None and key <= self._key:
            raise NotInOrder(f"{owner} after {self._owner}")
        done = self.close()
        self._owner, self._key = owner, key
        return done

    def close(self) -> tuple[str, Selection] | None:
        """The open owner's records, finished (None when it has none)."""
        self._closed += 1
        if self._closed >= self._CHECK:
            self._closed = 0
            if len(self._names.names) + len(self._names.owners) + len(self._rdata) \
                    > self._TRIM:
                self._names.trim()
                self._rdata.clear()
        if self._ready:
            ready, self._ready = self._ready, []
            self._ready_rows = []
            return self._owner, Selection([], [], ready)
        self._ready_rows = []
        if not self._open:
            return None
        out, self._open = self._open, []
        if not self._cnames:
            return self._owner, Selection(out, [])
        selection = _apply_cname_rule(out, self._cnames, self._config, self._names.warnings)
        self._cnames = set()
        return self._owner, selection


def select_owners(records: Iterable[Record], config: ZoneConfig,
                  warnings: list[str] | None = None) -> Iterator[tuple[str, Selection]]:
    """:class:`OwnerSelector` over records in canonical owner order: ``(owner,
    selection)`` per owner of ``config.zone``, in that order.

    :raises NotInOrder: see :class:`OwnerSelector`.
    """
    selector = OwnerSelector(config, warnings)
    for stored, group in groupby(records, _stored_owner):
        done = selector.add(stored, group)
        if done is not None:
            yield done
    done = selector.close()
    if done is not None:
        yield done


def select_owner_rows(rows: Iterable[StoredRecord], config: ZoneConfig,
                      warnings: list[str] | None = None, fast: FastPath | None = None
                      ) -> Iterator[tuple[str, Selection]]:
    """:func:`select_owners` over stored rows (:meth:`OwnerSelector.add_rows`, with
    ``fast``).

    :raises NotInOrder: see :class:`OwnerSelector`.
    """
    return OwnerSelector(config, warnings, fast).select_rows(rows)


def decode_rdata(text: str) -> RData:
    """Stored rdata (compact JSON, :func:`~zonegen.model.encode_rdata`) as the tuple
    ``json.loads`` gives. The two shapes of nearly every record, ``["text"]`` (A, AAAA,
    PTR, CNAME) and ``[int,int,int,"text"]`` (SRV), are matched whole by one regular
    expression when nothing in them needs JSON's escapes (what ``encode_rdata`` writes
    for names and addresses); anything else is parsed by ``json``."""
    m = _ONE_TEXT.match(text)
    if m is not None:
        return (m[1],)
    m = _SRV_TEXT.match(text)
    if m is not None:
        return int(m[1]), int(m[2]), int(m[3]), m[4]
    return tuple(_loads(text))


_JSON_TEXT = r'"([^"\\\x00-\x1f]*)"'  # a JSON string needing no escapes: taken as is
_JSON_INT = r"(0|[1-9][0-9]*)"  # a JSON integer >= 0 as json writes it
_ONE_TEXT = re.compile(rf"\[{_JSON_TEXT}\]\Z")
# Stored A rdata holding one valid IPv4 address, and SRV/PTR/CNAME rdata whose target is a
# relative name of valid labels (``absolute_name``'s, lowercase, no trailing dot): the
# shapes of nearly every record, matched, decoded and checked by one expression.
_RELATIVE_NAME = re.compile(r"(?:[a-z0-9_-]{1,63}\.)*[a-z0-9_-]{1,63}\Z")
RELATIVE_NAME = _RELATIVE_NAME
"""A plain relative name: labels of what ``absolute_name`` accepts, lowercase, no
trailing dot (absolute below the forward zone when not longer than
:attr:`OwnerSelector.longest_relative`)."""
_A_ROW = re.compile(rf'\["({_OCTET}(?:\.{_OCTET}){{3}})"\]\Z')
A_ROW = _A_ROW
"""Stored A rdata of the common shape, ``["<valid IPv4>"]``: group 1 the address, valid
as the general path checks it (consumers' fast paths read it at once)."""
_RELATIVE_ROW = re.compile(
    rf'\[(?:{_JSON_INT},{_JSON_INT},{_JSON_INT},)?"((?:[a-z0-9_-]{{1,63}}\.)*[a-z0-9_-]{{1,63}})"\]\Z')
RELATIVE_ROW = _RELATIVE_ROW
"""Stored SRV (groups 1-3 its numbers) or PTR rdata of the common shape: a relative
target (group 4) of valid labels, absolute below the forward zone when not longer than
:attr:`OwnerSelector.longest_relative` (what :meth:`OwnerSelector.target` reads)."""
_SRV_TEXT = re.compile(rf"\[{_JSON_INT},{_JSON_INT},{_JSON_INT},{_JSON_TEXT}\]\Z")


def stored_rows(records: Iterable[Record]) -> Iterator[StoredRecord]:
    """Records as the read model stores them (``Store.current_rows``' tuples)."""
    for r in records:
        yield r.owner, r.rtype, encode_rdata(r.rdata), r.ttl


_stored_owner = attrgetter("owner")
_row_owner = itemgetter(0)
_loads = json.loads


def _apply_cname_rule(out: list[Selected], cname_owners: set[str], config: ZoneConfig,
                      warnings: list[str] | None) -> Selection:
    """:func:`cname_alone` at every owner holding a CNAME; the rest left in order. Records
    equal once published (TTL resolved, target absolute) count as one."""

    def key(rr: Selected) -> tuple[int, RData, int]:
        rdata = (*rr[2][:-1], rr[4]) if rr[4] else rr[2]
        return rr[1], rdata, config.ttl if rr[3] is None else rr[3]

    at: dict[str, dict[tuple[int, RData, int], Selected]] = {o: {} for o in cname_owners}
    for owner, rr in _config_data(config):  # SOA, NS and glue: other data too
        if owner in at:
            at[owner][key(rr)] = rr
    for rr in out:
        group = at.get(rr[0])
        if group is not None:
            group.setdefault(key(rr), rr)
    shadowed: list[Selected] = []
    for owner in sorted(cname_owners):
        _, aside = cname_alone(owner, list(at[owner].values()), _rtype,
                               lambda rr: (rr[4], key(rr)[2]), warnings)
        shadowed.extend(rr for rr in aside if rr[1] == CNAME)
    if not shadowed:
        return Selection(out, [])
    dropped = {(rr[0], key(rr)) for rr in shadowed}
    return Selection([rr for rr in out if rr[0] not in cname_owners
                      or (rr[0], key(rr)) not in dropped], shadowed)


def _config_data(config: ZoneConfig) -> list[tuple[str, Selected]]:
    """Stand-ins for the records :class:`ZoneConfig` puts in the zone (SOA at the apex,
    glue A/AAAA at in-zone name servers): a CNAME there is beside other data."""
    out: list[tuple[str, Selected]] = [(config.zone, (config.zone, 6, ("",), None, ""))]
    out += [(ns.name, (ns.name, AAAA if ":" in ns.address else A, (ns.address,), None, ""))
            for ns in config.nameservers if ns.address and in_zone(ns.name, config.zone)]
    return out


def _rtype(rr: Selected) -> int:
    return rr[1]


def zone_records(records: Iterable[Record], config: ZoneConfig,
                 warnings: list[str] | None = None) -> list[ZoneRR]:
    """The records of ``config.zone`` as ``(owner, rtype, rdata, ttl)``, every name in
    them absolute (targets replace the given last rdata field)."""
    return [(owner, rtype, (*rdata[:-1], target) if target else rdata, ttl)
            for owner, rtype, rdata, ttl, target in select(records, config, warnings).records]
