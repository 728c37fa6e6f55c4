"""RFC 1035 master files from plain records: canonical rendering, atomic write, parsing.

Which records a zone holds is :func:`zonegen.selection.select` (shared with AXFR and
IXFR); ``render`` turns them into text with one f-string per type in DNSSEC canonical
order (docs/STYLE.md), and ``write`` is the only function here that touches the
filesystem. Imports no sqlalchemy, kubernetes, socket or click; dnspython only in
:func:`parse`.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from itertools import groupby
from operator import itemgetter
from typing import TYPE_CHECKING

from zonegen.errors import ZonegenError
from zonegen.model import AAAA, PTR, SRV, TXT, A, RData, Record, ZoneConfig
from zonegen.names import in_zone, relative_to
from zonegen.selection import (
    A_ROW,
    PUBLISHED_TYPES,
    RELATIVE_NAME,
    RELATIVE_ROW,
    NotInOrder,
    OwnerSelector,
    Selection,
    StoredRecord,
    ZoneRR,
    absolute_name,
    canonical_key,
    select,
    stored_rows,
    zone_records,
)
from zonegen.serial import MODULUS

if TYPE_CHECKING:
    import dns.zone

__all__ = [
    "PUBLISHED_TYPES",
    "ZoneRR",
    "count_rows",
    "ZoneWriteError",
    "absolute_name",
    "parse",
    "parse_zone",
    "render",
    "render_rows",
    "render_sorted",
    "txt_text",
    "write",
    "zone_records",
]


class ZoneWriteError(ZonegenError):
    """A zone file could not be written; the previous file, if any, is left intact."""


# --------------------------------------------------------------------------- rendering


def txt_text(text: str) -> str:
    """TXT rdata in master-file form: quoted character-strings of at most 255 octets
    (RFC 1035 §3.3.14), ``"`` and ``\\`` escaped with a backslash and every octet outside
    printable ASCII as ``\\DDD`` (RFC 1035 §5.1), the text encoded as UTF-8."""
    data = text.encode()
    if len(data) <= 255 and text.isascii() and text.isprintable() and '"' not in text \
            and "\\" not in text:
        return f'"{text}"'
    parts = []
    for start in range(0, max(len(data), 1), 255):
        chunk = data[start:start + 255]
        out = []
        for b in chunk:
            if b in (0x22, 0x5C):
                out.append("\\" + chr(b))
            elif 0x20 <= b < 0x7F:
                out.append(chr(b))
            else:
                out.append(f"\\{b:03d}")
        parts.append('"' + "".join(out) + '"')
    return " ".join(parts)


def _header(config: ZoneConfig, serial: int) -> list[str]:
    """$ORIGIN, $TTL, SOA, NS and in-zone glue (RFC 1035 §5.1, RFC 1034 §4.2.1)."""
    zone = config.zone
    mname = config.nameservers[0].name if config.nameservers else f"ns.dns.{zone}"
    lines = [
        f"$ORIGIN {zone}\n",
        f"$TTL {config.ttl}\n",
        f"@ IN SOA {mname} {config.hostmaster} {serial % MODULUS} {config.refresh} "
        f"{config.retry} {config.expire} {config.minimum}\n",
    ]
    lines += [f"@ IN NS {ns.name}\n" for ns in config.nameservers]
    for ns in config.nameservers:
        if ns.address and in_zone(ns.name, zone):
            rel = relative_to(ns.name, zone)
            kind = "AAAA" if ":" in ns.address else "A"
            lines.append(f"{rel} IN {kind} {ns.address}\n")
    return lines


def _typed_line(rel: str, rtype: int, rdata: RData, ttl: int | None, target: str,
                default_ttl: int) -> str:
    """One record's line, led by its type number as one character: the order of lines
    at one owner (type, then the line) is then a plain ``str`` sort. The TTL column
    appears only where it differs from ``$TTL``."""
    tc = "" if ttl is None or ttl == default_ttl else f" {ttl}"
    if rtype == A:
        return f"\x01{rel}{tc} IN A {rdata[0]}\n"
    if rtype == SRV:
        return f"\x21{rel}{tc} IN SRV {rdata[0]} {rdata[1]} {rdata[2]} {target}\n"
    if rtype == AAAA:
        return f"\x1c{rel}{tc} IN AAAA {rdata[0]}\n"
    if rtype == TXT:
        return f"\x10{rel}{tc} IN TXT {txt_text(str(rdata[0]))}\n"
    if rtype == PTR:
        return f"\x0c{rel}{tc} IN PTR {target}\n"
    return f"\x05{rel}{tc} IN CNAME {target}\n"


def _glue(header: list[str]) -> set[str]:
    """The glue lines of ``header``: a record repeating one must not appear twice."""
    return {line for line in header[3:] if not line.startswith("@ IN NS ")}


_BLOCK = 16384  # lines yielded at a time
_OWNERS = _BLOCK // 4  # owners' lines yielded at a time by render_rows (a few each)
_row_owner = itemgetter(0)


def render(records: Iterable[Record], config: ZoneConfig, serial: int,
           warnings: list[str] | None = None) -> Iterator[str]:
    """The zone as master-file text: ``$ORIGIN``, ``$TTL``, SOA, NS, glue, then every record
    of :func:`zone_records` in one canonical order.

    Order: owner names compared label by label from the right, as DNSSEC orders names
    (RFC 4034 §6.1, :func:`~zonegen.selection.canonical_key`), then type number, then the
    rest of the line (TTL column, rdata text), with exact duplicates dropped; equal content
    therefore gives identical bytes. Owners are written relative to ``$ORIGIN``; targets
    absolute. The TTL column appears only where a record's TTL differs from ``$TTL`` (the
    dns-version TXT's 28800). :func:`render_sorted` writes the same bytes from records
    already in owner order, holding one owner at a time.

    Each record is one ``str`` that holds its sort key and its line, so sorting is one
    ``list.sort`` of plain ``str`` (memcmp compares); the key ends in ``\\x00``, after
    which the line led by its type character starts. Yields text in blocks of whole lines.

    :param warnings: collects the reasons records were skipped (see :func:`zone_records`).
    """
    header = _header(config, serial)
    yield "".join(header)
    zone = config.zone
    default_ttl = config.ttl
    # absolute owner -> sort key + "\0" and owner relative to $ORIGIN
    prefixes: dict[str, tuple[str, str]] = {}
    pget = prefixes.get
    keys: list[str] = []
    add = keys.append
    for owner, rtype, rdata, ttl, target in select(records, config, warnings).records:
        p = pget(owner)
        if p is None:
            p = prefixes[owner] = (canonical_key(owner) + "\x00", relative_to(owner, zone))
        k, rel = p
        add(k + _typed_line(rel, rtype, rdata, ttl, target, default_ttl))
    prefixes.clear()
    glue = _glue(header)
    # Sorting the list as built is ~3x faster than sorting a set (it keeps the runs the
    # projector's order leaves); exact duplicates are then adjacent and dropped below.
    keys.sort()
    keys.append("")
    for start in range(0, len(keys) - 1, _BLOCK):
        chunk = keys[start:start + _BLOCK + 1]
        lines = [s[s.index("\x00") + 2:]
                 for s, after in zip(chunk, chunk[1:], strict=False) if s != after]
        if glue:
            lines = [line for line in lines if line not in glue]
        yield "".join(lines)


def render_sorted(records: Iterable[Record], config: ZoneConfig, serial: int,
                  warnings: list[str] | None = None) -> Iterator[str]:
    """:func:`render`'s bytes from ``records`` given in DNSSEC canonical owner order (as
    ``Store.current_records`` streams them; order within an owner does not matter):
    only each owner's few lines are sorted, so memory is one owner's records and one
    block of text, not the zone (issue #11). :func:`render_rows` on the records as
    stored.

    :raises zonegen.selection.NotInOrder: ``records`` were not in owner order for this
        zone (then nothing past the header and the owners before is right: the caller
        renders with :func:`render` instead).
    """
    return render_rows(stored_rows(records), config, serial, warnings)


def render_rows(rows: Iterable[StoredRecord], config: ZoneConfig, serial: int,
                warnings: list[str] | None = None) -> Iterator[str]:
    """:func:`render_sorted` from the rows of ``Store.current_rows`` (``(owner, rtype,
    rdata text, ttl)``, in canonical owner order): what ``export`` writes.

    One loop groups the rows by owner, checks the order and makes the lines of an
    owner whose rows are all plain A, SRV and PTR straight from the row text (each
    distinct rdata text rendered once, :class:`_Tails`): at 1M records the calls and
    objects per owner and per row were most of what ``export`` spent in Python
    (issue #11). Any other owner (another type, an unusual or invalid rdata, a TTL
    column, an owner that is not a plain relative name, one owner under two stored
    spellings side by side) goes through :class:`~zonegen.selection.OwnerSelector`'s
    general path, as :func:`render` would render it; the two agree byte for byte
    (tests/test_stored_rows.py).

    :raises zonegen.selection.NotInOrder: as :func:`render_sorted`.
    """
    header = _header(config, serial)
    yield "".join(header)
    zone = config.zone
    default_ttl = config.ttl
    glue = _glue(header)
    glue_rels = {line.split(" ", 1)[0] for line in glue}  # owners of glue lines
    selector = OwnerSelector(config, warnings)  # the general path
    tails = _Tails(selector)
    a_tails, srv_tails = tails.a, tails.srv
    a_get, srv_get, ptr_get = a_tails.get, srv_tails.get, tails.ptr.get
    a_row, srv_row, keep = A_ROW.match, RELATIVE_ROW.match, _Tails.KEEP
    longest = selector.longest_relative
    # a plain relative owner (valid labels, lowercase) is in this zone when the forward
    # zone is: its canonical key and its name relative to $ORIGIN are then made from it
    plain = RELATIVE_NAME.match if selector.relative else None
    forward = config.forward_zone
    key_prefix = canonical_key(forward) + "\x01" if forward != "." else ""
    rel_suffix = "" if forward == zone else "." + relative_to(forward, zone)
    suffix = selector.suffix
    out: list[str] = []
    add = out.append
    key = ""
    last_key: str | None = None  # the open owner's canonical key
    made: list[str] | None = None  # the open owner's line tails, when made here
    rel = ""  # the open owner relative to $ORIGIN, when its lines are made here
    last_stored = ""  # the open owner's stored spelling and rows, when made here
    last_run: list[StoredRecord] = []
    general = False  # the open owner is open in ``selector``
    # plain relative names met as SRV targets: most owners (a Service's pods) were one
    targets: set[str] = set()
    for stored, group in groupby(rows, _row_owner):
        run = list(group)
        owner = ""
        if plain is not None and (stored in targets or len(stored) <= longest
                                  and plain(stored) is not None):
            key = key_prefix + "\x01".join(stored.split(".")[::-1])  # canonical_key
        else:
            owner = selector.absolute(stored)
            if not owner:  # not in this zone (warned once when invalid)
                continue
            key = canonical_key(owner)
        if key == last_key:  # the open owner again, spelled another way: select both
            if made is not None:  # together on the general path
                selector.add_rows(last_stored, last_run)
                made = None
            selector.add_rows(stored, run)
            general = True
            continue
        if last_key is not None and key < last_key:
            raise NotInOrder(f"{owner or stored} after a name that sorts after it")
        # the open owner is finished
        if made is not None:
            if rel in glue_rels:
                out += _without_glue(rel, made, glue)
            elif len(made) == 1:
                add(rel + made[0])
            else:  # distinct, in order: the owner leads each line, so tails sort them
                add(rel + rel.join(sorted(set(made))))
        elif general:
            _general_lines(selector.close(), zone, default_ttl, glue, add)
            general = False
        if len(out) >= _OWNERS:
            yield "".join(out)
            out = []
            add = out.append
        last_key = key
        # its lines straight from the rows: plain A, SRV, PTR at the zone's TTL
        rel = (stored + rel_suffix) if not owner else relative_to(owner, zone)
        made = []
        make = made.append
        for _, rtype, text, ttl in run:
            if ttl is not None and ttl != default_ttl:
                break  # a TTL column: the general path writes it
            if rtype == A:
                tail = a_get(text)
                if tail is None:
                    m = a_row(text)  # the common shape, read and checked at once
                    if m is not None:
                        if len(a_tails) >= keep:
                            a_tails.clear()
                        tail = a_tails[text] = f" IN A {m[1]}\n"
                    else:
                        tail = tails.other(A, text)
                        if tail is None:
                            break
            elif rtype == SRV:
                tail = srv_get(text)
                if tail is None:
                    m = srv_row(text)  # :meth:`_Tails.other`'s common SRV, inlined
                    if m is not None and m[1] is not None and len(m[4]) <= longest:
                        if len(srv_tails) >= keep:
                            srv_tails.clear()
                            targets.clear()
                        tail = srv_tails[text] = \
                            f" IN SRV {m[1]} {m[2]} {m[3]} {m[4]}{suffix}\n"
                        targets.add(m[4])
                    else:
                        tail = tails.other(SRV, text)
                        if tail is None:
                            break
            elif rtype == PTR:
                tail = ptr_get(text)
                if tail is None:
                    tail = tails.other(PTR, text)
                    if tail is None:
                        break
            else:
                break
            make(tail)
        else:
            last_stored, last_run = stored, run
            continue
        made = None
        selector.add_rows(stored, run)
        general = True
    if made is not None:
        if rel in glue_rels:
            out += _without_glue(rel, made, glue)
        elif len(made) == 1:
            add(rel + made[0])
        else:
            add(rel + rel.join(sorted(set(made))))
    elif general:
        _general_lines(selector.close(), zone, default_ttl, glue, add)
    yield "".join(out)


def _without_glue(rel: str, tails: list[str], glue: set[str]) -> list[str]:
    """The lines of tails at ``rel``, in order, each once, none repeating a glue line."""
    lines = [rel + tail for tail in sorted(set(tails))]
    return [line for line in lines if line not in glue]


def _general_lines(done: tuple[str, Selection] | None, zone: str, default_ttl: int,
                   glue: set[str], add: Callable[[str], None]) -> None:
    """The lines of an owner selected on the general path, in order, each once, none
    repeating a glue line (:func:`render`'s rules on one owner)."""
    if done is None:
        return
    owner, selection = done
    rel = relative_to(owner, zone)
    group = [_typed_line(rel, rtype, rdata, ttl, target, default_ttl)
             for _, rtype, rdata, ttl, target in selection.records]
    previous = ""
    for typed in sorted(group):  # none when the CNAME rule dropped a CNAME beside the
        if typed != previous:  # SOA or glue
            previous = typed
            line = typed[1:]
            if line not in glue:
                add(line)


def count_rows(rows: Iterable[StoredRecord], config: ZoneConfig) -> int:
    """How many records :func:`render_rows` writes for ``rows`` (SOA, NS and glue
    included): ``export``'s count, for ``zonegen status``: the lines it writes, so the
    selection and the dropping of duplicates and glue are the same by construction.

    :raises zonegen.selection.NotInOrder: as :func:`render_rows`.
    """
    return sum(block.count("\n") for block in render_rows(rows, config, 0)) - 2


class _Tails:
    """What :func:`render_rows` writes after the owner of a plain A, SRV or PTR record
    (``" IN A 10.0.0.1\\n"``), per distinct stored rdata text: an address or a target
    is rendered once however many owners hold it."""

    __slots__ = ("a", "ptr", "selector", "srv")

    # texts kept per type at most, then the cache starts again: an address or target
    # recurs close by (a Service's owners, then its pods'), so a small one is enough
    KEEP = 1 << 12

    def __init__(self, selector: OwnerSelector) -> None:
        self.selector = selector
        self.a: dict[str, str] = {}
        self.srv: dict[str, str] = {}
        self.ptr: dict[str, str] = {}

    def other(self, rtype: int, text: str) -> str | None:
        """The tail of a valid plain record of any stored shape, kept; else None (the
        general path then selects it, and warns)."""
        selector = self.selector
        if rtype == A:
            address = selector.address(text)
            if address is None:
                return None
            cache, tail = self.a, f" IN A {address}\n"
        else:
            found = selector.target(text)
            if found is None:
                return None
            rdata, target = found
            if rtype == PTR:
                cache, tail = self.ptr, f" IN PTR {target}\n"
            elif len(rdata) == 4:
                cache, tail = self.srv, f" IN SRV {rdata[0]} {rdata[1]} {rdata[2]} {target}\n"
            else:
                return None
        if len(cache) >= self.KEEP:
            cache.clear()
        cache[text] = tail
        return tail


# --------------------------------------------------------------------------- writing


def write(path: str | os.PathLike[str], lines: Iterable[str]) -> None:
    """Write a zone file atomically: a temporary file in the same directory, flushed and
    fsynced, then ``os.replace`` and an fsync of the directory, so a reader (or a crash)
    sees the old file or the new one, never a part (unlike octodns-bind's plain open).

    Only a regular file's contents are ever replaced (issue #9 §3): a symlink is followed
    and its target replaced in the target's directory (the link stays); the replaced
    file keeps its owner, group and permission bits (a new file gets 0644), so a name
    server running as another user can still read it; a device, directory, FIFO or
    socket is refused and left as it is.

    :raises ZoneWriteError: ``path`` is not a regular file, the directory is not
        writable, the disk is full, the owner cannot be kept, or any other OS error; the
        temporary file is removed and the old zone file is untouched.
    """
    import stat  # here, so this function stays the whole of the change (issue #9 §3)

    shown = os.fspath(path)
    target = os.path.realpath(shown)
    directory = os.path.dirname(target)
    try:
        old: os.stat_result | None = os.stat(target)
    except FileNotFoundError:
        old = None
    except OSError as e:
        raise ZoneWriteError(f"cannot write zone file {shown}: {e.strerror or e}") from None
    if old is not None and not stat.S_ISREG(old.st_mode):
        kind = next((name for test, name in (
            (stat.S_ISDIR, "directory"), (stat.S_ISCHR, "character device"),
            (stat.S_ISBLK, "block device"), (stat.S_ISFIFO, "FIFO"),
            (stat.S_ISSOCK, "socket")) if test(old.st_mode)), "special file")
        raise ZoneWriteError(f"cannot write zone file {shown}: it is a {kind}, not a "
                             "regular file; left as it is")
    mode = old.st_mode & 0o7777 if old is not None else 0o644
    tmp: str | None = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(target)}.", suffix=".tmp",
                                   dir=directory)
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n", buffering=1 << 20) as f:
            f.writelines(lines)
            f.flush()
            if old is not None and (old.st_uid, old.st_gid) != (os.geteuid(), os.getegid()):
                os.fchown(f.fileno(), old.st_uid, old.st_gid)
            os.fchmod(f.fileno(), mode)  # after chown, which may clear set-id bits
            os.fsync(f.fileno())
        os.replace(tmp, target)
        tmp = None
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError as e:
        raise ZoneWriteError(f"cannot write zone file {shown}: "
                             f"{e.strerror or e}") from None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


# --------------------------------------------------------------------------- parsing


def parse_zone(text: str, zone: str) -> dns.zone.Zone:
    """Parse master-file text with dnspython (tests only: PERFORMANCE.md says never parse
    our own output to serve it). Names stay absolute."""
    import dns.zone

    return dns.zone.from_text(text, origin=zone, relativize=False, check_origin=True)


def parse(text: str, zone: str) -> set[tuple[str, str, int, str]]:
    """The records of a master file as ``(owner, type, ttl, rdata text)``, all names
    absolute, as dnspython reads them: the independent check of :func:`render`."""
    import dns.rdatatype

    out: set[tuple[str, str, int, str]] = set()
    for name, rdataset in parse_zone(text, zone).iterate_rdatasets():
        for rd in rdataset:
            out.add((name.to_text(), dns.rdatatype.to_text(rdataset.rdtype), rdataset.ttl,
                     rd.to_text()))
    return out
