"""RFC 1035 master files from plain records: zone selection, canonical rendering, atomic write.

``zone_records`` decides which records belong in a zone (shared with :mod:`zonegen.xfr`),
``render`` turns them into text with one f-string per type in DNSSEC canonical order
(STYLE.md #7), and ``write`` is the only function here that touches the filesystem.
Imports no sqlalchemy, kubernetes, socket or click; dnspython only in :func:`parse`.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from zonegen.errors import ZonegenError
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
)

if TYPE_CHECKING:
    import dns.zone

__all__ = [
    "ZoneRR",
    "ZoneWriteError",
    "absolute_name",
    "iter_zone_records",
    "parse",
    "parse_zone",
    "render",
    "txt_text",
    "write",
    "zone_records",
]

ZoneRR = tuple[str, int, RData, "int | None"]
"""A record selected for one zone: ``(owner, rtype, rdata, ttl)`` with owner and rdata
names absolute. The field order is :class:`~zonegen.model.Record`'s, so ``Record(*rr)``
gives one back; a plain tuple is used because building 1M dataclass instances would cost
more than rendering them (PERFORMANCE.md)."""

PUBLISHED_TYPES = frozenset((A, AAAA, CNAME, PTR, SRV, TXT))
"""Types a record may carry; SOA and NS come from :class:`ZoneConfig`, never from records."""

# A lowercase absolute name whose labels are 1-63 octets of characters that need no
# escaping in a master file (RFC 1035 §5.1): letters, digits, hyphen, underscore (SRV
# owners, RFC 2782). Anything else could not be written without escapes and Kubernetes
# never produces it; such records are skipped with a warning instead of breaking the zone.
_ABSOLUTE = re.compile(r"(?:[a-z0-9_-]{1,63}\.)+\Z")
_MAX_TEXT = 254  # an absolute name of 255 octets on the wire is 254 characters with its dot


class ZoneWriteError(ZonegenError):
    """A zone file could not be written; the previous file, if any, is left intact."""


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


def _in_zone_test(zone: str) -> tuple[str, int]:
    """The suffix an owner below ``zone`` ends with and the length to strip for its
    relative form."""
    if zone == ".":
        return "", 1
    return "." + zone, len(zone) + 1


def zone_records(
    records: Iterable[Record], config: ZoneConfig, warnings: list[str] | None = None
) -> list[ZoneRR]:
    """The records that belong in ``config.zone``, with absolute names.

    Relative names get ``config.forward_zone`` appended. A record belongs when its absolute
    owner is at or below the zone, so PTRs (absolute owners) land only in their reverse
    zone and forward records only in the forward zone. Skipped, with a warning naming the
    owner: names over 255 octets or with a label over 63 (RECORDS.md, "Names that cannot be
    published"), types other than A/AAAA/CNAME/PTR/SRV/TXT. A CNAME whose target is its own
    owner is skipped too (RECORDS.md: an ExternalName equal to the Service's own name in the
    zone being exported gives no record).

    Names are converted once per distinct string (a dict per call), so a 1M-record zone with
    300k distinct owners costs 300k conversions, and equal names share one ``str`` object.
    """
    out = [
        (owner, rtype, (*rdata[:-1], target) if target else rdata, ttl)
        for owner, rtype, rdata, ttl, target in iter_zone_records(records, config, warnings)
    ]
    cnames = {rr[0]: rr for rr in sorted(rr for rr in out if rr[1] == CNAME)[::-1]}
    if cnames:
        # CNAME and other data, or two CNAMEs, at one name: the zone would not load
        # (RFC 1034 §3.6.2, RFC 2181 §10.1); the other data wins, else the first CNAME.
        crowded = {rr[0] for rr in out if rr[1] != CNAME and rr[0] in cnames}
        if warnings is not None:
            warnings.extend(f"{rr[0]}: CNAME and other data at one name; CNAME skipped"
                            for rr in out if rr[1] == CNAME
                            and (rr[0] in crowded or rr != cnames[rr[0]]))
        out = [rr for rr in out if rr[1] != CNAME
               or (rr[0] not in crowded and rr == cnames[rr[0]])]
    return out


class _Names:
    """Per-call caches of name conversions (one per forward zone and zone, as a call has
    one config): a 1M-record zone with 300k distinct owners converts each once, and equal
    names share one ``str`` object afterwards. Misses go through the methods; hits are
    plain ``dict.get`` calls inlined by the hot loops."""

    __slots__ = ("forward", "names", "owners", "suffix", "warnings", "zone")

    def __init__(self, config: ZoneConfig, warnings: list[str] | None) -> None:
        self.forward = config.forward_zone
        self.zone = config.zone
        self.suffix, _ = _in_zone_test(config.zone)
        self.warnings = warnings
        self.names: dict[str | int, str] = {}  # given -> absolute, "" when invalid
        self.owners: dict[str, str] = {}  # given -> absolute, "" when not in this zone

    def owner(self, name: str) -> str:
        full = self.names.get(name)
        if full is None:
            full = self.names[name] = absolute_name(name, self.forward) or ""
        if not full:
            self.warn(f"{name}: owner is not a valid DNS name (label over 63 octets, name "
                      "over 255, or a character needing escapes); skipped")
        elif not (full == self.zone or full.endswith(self.suffix)):
            full = ""
        self.owners[name] = full
        return full

    def target(self, name: str | int) -> str:
        full = self.names[name] = absolute_name(str(name), self.forward) or ""
        return full

    def warn(self, message: str) -> None:
        if self.warnings is not None:
            self.warnings.append(message)

    def skip(self, owner: str, rtype: int, target: str | int) -> None:
        """Warn about a record dropped for its type or target (RECORDS.md)."""
        if rtype not in (SRV, CNAME, PTR):
            self.warn(f"{owner}: record type {TYPE_NAMES.get(rtype, rtype)} is not "
                      "published from records; skipped")
        elif rtype == CNAME and target == owner:
            self.warn(f"{owner}: CNAME to itself; skipped")
        else:
            self.warn(f"{owner}: {TYPE_NAMES[rtype]} target {target!r} is not a valid DNS "
                      "name; skipped")


def iter_zone_records(
    records: Iterable[Record], config: ZoneConfig, warnings: list[str] | None
) -> Iterator[tuple[str, int, RData, int | None, str]]:
    """Yield ``(owner, rtype, rdata, ttl, target)`` for the records in the zone: owner and
    ``target`` (the last rdata field of SRV/CNAME/PTR, "" for other types) absolute, rdata
    as given. The wire encoder uses ``target`` directly, which spares building a new rdata
    tuple per record; :func:`zone_records` builds them for its callers. :func:`render`
    inlines the same steps for speed; keep the two in step."""
    names = _Names(config, warnings)
    owners_get = names.owners.get
    names_get = names.names.get
    for r in records:
        owner = owners_get(r.owner)
        if owner is None:
            owner = names.owner(r.owner)
        if not owner:
            continue
        rtype = r.rtype
        if rtype in (A, AAAA, TXT):
            yield (owner, rtype, r.rdata, r.ttl, "")
            continue
        if rtype in (SRV, CNAME, PTR):
            given = r.rdata[-1]
            target = names_get(given)
            if target is None:
                target = names.target(given)
            if target and not (rtype == CNAME and target == owner):
                yield (owner, rtype, r.rdata, r.ttl, target)
                continue
            names.skip(owner, rtype, target or given)
        else:
            names.skip(owner, rtype, "")


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
    suffix, cut = _in_zone_test(zone)
    mname = config.nameservers[0].name if config.nameservers else f"ns.dns.{zone}"
    lines = [
        f"$ORIGIN {zone}\n",
        f"$TTL {config.ttl}\n",
        f"@ IN SOA {mname} {config.hostmaster} {serial % 2**32} {config.refresh} "
        f"{config.retry} {config.expire} {config.minimum}\n",
    ]
    lines += [f"@ IN NS {ns.name}\n" for ns in config.nameservers]
    for ns in config.nameservers:
        if ns.address and (ns.name == zone or ns.name.endswith(suffix)):
            rel = "@" if ns.name == zone else ns.name[:-cut]
            kind = "AAAA" if ":" in ns.address else "A"
            lines.append(f"{rel} IN {kind} {ns.address}\n")
    return lines


def render(records: Iterable[Record], config: ZoneConfig, serial: int,
           warnings: list[str] | None = None) -> Iterator[str]:
    """The zone as master-file text: ``$ORIGIN``, ``$TTL``, SOA, NS, glue, then every record
    of :func:`zone_records` in one canonical order.

    Order: owner names compared label by label from the right, as DNSSEC orders names
    (RFC 4034 §6.1), then type number, then the rest of the line (TTL column, rdata text),
    with exact duplicates dropped; equal content therefore gives identical bytes. Owners are
    written relative to ``$ORIGIN``; targets absolute. The TTL column appears only where a
    record's TTL differs from ``$TTL`` (the dns-version TXT's 28800).

    Each record is one f-string that holds its sort key and its line, so sorting is one
    ``list.sort`` of plain ``str`` (memcmp compares); the key ends in ``\\x00`` + the type
    character, after which the line starts. Yields text in blocks of whole lines.

    :param warnings: collects the reasons records were skipped (see :func:`zone_records`).
    """
    header = _header(config, serial)
    yield "".join(header)
    zone = config.zone
    default_ttl = config.ttl
    _, cut = _in_zone_test(zone)
    names = _Names(config, warnings)
    names_get = names.names.get
    # given owner -> (sort key + "\0", owner relative to $ORIGIN, absolute owner); the key
    # is "" for owners outside the zone or invalid.
    prefixes: dict[str, tuple[str, str, str]] = {}
    pget = prefixes.get
    skip = ("", "", "")
    keys: list[str] = []
    add = keys.append
    cnames: list[str] = []
    for r in records:
        p = pget(r.owner)
        if p is None:
            owner = names.owner(r.owner)
            if owner:
                rel = "@" if owner == zone else owner[:-cut]
                okey = "" if owner == zone else "\x01".join(reversed(rel.split(".")))
                p = prefixes[r.owner] = (okey + "\x00", rel, owner)
            else:
                p = prefixes[r.owner] = skip
        k, rel, owner = p
        if not k:
            continue
        rtype = r.rtype
        ttl = r.ttl
        tc = "" if ttl is None or ttl == default_ttl else f" {ttl}"
        rdata = r.rdata
        if rtype == A:
            add(f"{k}\x01{rel}{tc} IN A {rdata[0]}\n")
            continue
        if rtype == AAAA:
            add(f"{k}\x1c{rel}{tc} IN AAAA {rdata[0]}\n")
            continue
        if rtype == TXT:
            add(f"{k}\x10{rel}{tc} IN TXT {txt_text(str(rdata[0]))}\n")
            continue
        if rtype not in (SRV, CNAME, PTR):
            names.skip(owner, rtype, "")
            continue
        given = rdata[-1]
        target = names_get(given)
        if target is None:
            target = names.target(given)
        if not target or (rtype == CNAME and target == owner):
            names.skip(owner, rtype, target or given)
        elif rtype == SRV:
            add(f"{k}\x21{rel}{tc} IN SRV {rdata[0]} {rdata[1]} {rdata[2]} {target}\n")
        elif rtype == PTR:
            add(f"{k}\x0c{rel}{tc} IN PTR {target}\n")
        else:
            add(f"{k}\x05{rel}{tc} IN CNAME {target}\n")
            cnames.append(k)
    prefixes.clear()
    # Glue written above must not appear twice when a record repeats it.
    glue = {line for line in header[3:] if not line.startswith("@ IN NS ")}
    # Sorting the list as built is ~3x faster than sorting a set (it keeps the runs the
    # projector's order leaves); exact duplicates are then adjacent and dropped below.
    keys.sort()
    if cnames:
        keys = _cname_alone(keys, cnames, names)
    keys.append("")
    block = 16384
    for start in range(0, len(keys) - 1, block):
        chunk = keys[start:start + block + 1]
        lines = [s[s.index("\x00") + 2:]
                 for s, after in zip(chunk, chunk[1:], strict=False) if s != after]
        if glue:
            lines = [line for line in lines if line not in glue]
        yield "".join(lines)


def _cname_alone(keys: list[str], cnames: list[str], names: _Names) -> list[str]:
    """Drop CNAMEs that share their owner with other data, and all but the first of
    several CNAMEs at one owner: either makes the zone unloadable (RFC 1034 §3.6.2,
    RFC 2181 §10.1). The other data wins; only hand-made input can collide like this."""
    drop: set[int] = set()
    for k in set(cnames):
        lo = bisect_left(keys, k)
        hi = bisect_left(keys, k[:-1] + "\x01", lo)
        at = [i for i in range(lo, hi) if keys[i][len(k)] == "\x05"]
        others = (hi - lo) > len(at)
        for i in at if others else at[1:]:
            if keys[i] != keys[at[0]] or others:
                line = keys[i][len(k) + 1:].rstrip()
                names.warn(f"{line}: CNAME and other data at one name; CNAME skipped")
                drop.add(i)
    return [key for i, key in enumerate(keys) if i not in drop] if drop else keys


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
