"""DNS naming rules: which labels and names zonegen may publish, and how owners are spelled.

Checks *return reasons* (``list[str]``, empty when fine) instead of raising, so the
projector can skip one bad name with a warning and still publish the rest (RECORDS.md,
"Names that cannot be published"). Hot-path checks are plain string work; dnspython
(``dns.name``) is used only where a name enters from outside (ExternalName, zone options).
Pure: imports only the stdlib, dnspython value modules, ``zonegen.model`` and ``zonegen.errors``.
"""

from __future__ import annotations

import ipaddress
import re

import dns.exception
import dns.name

from zonegen.errors import InvalidZone
from zonegen.model import NameServer, ZoneConfig

DEFAULT_FORWARD_ZONE = "cluster.local."
MAX_LABEL = 63  # RFC 1035 §2.3.4
MAX_NAME = 255  # RFC 1035 §2.3.4, octets on the wire including the root label

# RFC 1123 §2.1 host label: letters, digits, hyphens; not starting or ending with a hyphen.
_HOST_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", re.ASCII)
# Any label zonegen writes: host labels plus "_" (RFC 2782 SRV owners). Dots separate.
_NAME = re.compile(r"([a-z0-9_-]{1,63}\.)*[a-z0-9_-]{1,63}\.?", re.ASCII)
_NAME_CHARS = re.compile(r"[a-z0-9_-]*", re.ASCII)
# A decimal IPv4 octet as canonical text writes it (0-255, no leading zero).
_OCTET = re.compile(r"25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9]", re.ASCII)
_IPV4 = re.compile(rf"(?:(?:{_OCTET.pattern})\.){{3}}(?:{_OCTET.pattern})", re.ASCII)
_HOST_CHARS = re.compile(r"[a-z0-9-]*", re.ASCII)


# --------------------------------------------------------------------------- labels


def check_label(label: str) -> list[str]:
    """Reasons why ``label`` is not an RFC 1123 host label (empty list when it is one).

    Uppercase is accepted: DNS is case-insensitive and callers lowercase first
    (RECORDS.md, "uppercase is lowercased first").
    """
    low = label.lower()
    if _HOST_LABEL.fullmatch(low):
        return []
    reasons: list[str] = []
    if not low:
        return [f"label {label!r} is empty"]
    if len(low.encode()) > MAX_LABEL:
        reasons.append(f"label {label!r} is longer than {MAX_LABEL} octets")
    if not _HOST_CHARS.fullmatch(low):
        reasons.append(f"label {label!r} has characters other than letters, digits and '-'")
    if low.startswith("-") or low.endswith("-"):
        reasons.append(f"label {label!r} starts or ends with '-'")
    return reasons or [f"label {label!r} is not a valid host label"]


def address_label(address: str) -> str:
    """The dashed label of an address: ``10.244.0.6`` -> ``10-244-0-6``, ``fd00::1`` ->
    ``fd00--1``.

    A label that would start or end with ``-`` (``::1``, ``fd00::``) gets a ``0`` on that
    side, so it stays a valid host label (RECORDS.md; CoreDNS repairs only the trailing side
    and serves ``--1``, which no secondary can load). ``address`` must already be canonical
    (the reducers in ``model`` make it so, RFC 5952).
    """
    label = address.lower().replace(".", "-").replace(":", "-")
    if label.startswith("-"):
        label = "0" + label
    if label.endswith("-"):
        label += "0"
    return label


def endpoint_label(address: str, hostname: str | None) -> tuple[str, list[str]]:
    """The per-address label ``H`` and the reasons the hostname was not usable.

    The endpoint's hostname, lowercased, when it is a valid RFC 1123 label; otherwise
    (absent or invalid) the dashed address. A non-empty reasons list means an invalid
    hostname was replaced and the caller should warn (RECORDS.md: "treated as absent,
    with a warning").
    """
    if hostname:
        reasons = check_label(hostname)
        if not reasons:
            return hostname.lower(), []
        return address_label(address), [f"hostname {hostname!r} ignored: " + "; ".join(reasons)]
    return address_label(address), []


# --------------------------------------------------------------------------- owners


def service_owner(namespace: str, service: str) -> str:
    """``S.N.svc``, relative to the forward zone (Kubernetes DNS spec §2.3.1/§2.4.1)."""
    return f"{service}.{namespace}.svc".lower()


def endpoint_owner(label: str, namespace: str, service: str) -> str:
    """``H.S.N.svc`` (spec §2.4.1 "A/AAAA records" for hostnames of endpoints)."""
    return f"{label}.{service}.{namespace}.svc".lower()


def srv_owner(port_name: str, protocol: str, namespace: str, service: str) -> str:
    """``_port._proto.S.N.svc`` (spec §2.3.2 / §2.4.2, RFC 2782 underscore labels)."""
    return f"_{port_name}._{protocol}.{service}.{namespace}.svc".lower()


def ptr_owner(address: str) -> str:
    """The absolute reverse name of an address, lowercase with a trailing dot (RFC 1035
    §3.5 ``in-addr.arpa``, RFC 3596 §2.5 ``ip6.arpa`` nibbles).

    Same result as ``dns.reversename.from_address(address).to_text()`` (a test proves it
    on random addresses) at a fraction of the cost, except that an IPv4-mapped IPv6
    address (``::ffff:a.b.c.d``, from an IPv6 slice, published as AAAA) stays in
    ``ip6.arpa`` as RFC 3596 says, where dnspython moves it to ``in-addr.arpa``.
    dnspython takes ~13 µs a name, 1.3 s for 100k endpoints (PERFORMANCE.md).

    :raises ValueError: ``address`` is not an IP address.
    """
    if ":" not in address:
        if _IPV4.fullmatch(address):
            a, b, c, d = address.split(".")
            return f"{d}.{c}.{b}.{a}.in-addr.arpa."
        raise ValueError(f"{address!r} is not an IP address")
    try:
        nibbles = ipaddress.IPv6Address(address).exploded.replace(":", "")
    except ValueError:
        raise ValueError(f"{address!r} is not an IP address") from None
    return ".".join(reversed(nibbles)) + ".ip6.arpa."


# --------------------------------------------------------------------------- names


def absolute(name: str, forward_zone: str = DEFAULT_FORWARD_ZONE) -> str:
    """``name`` made absolute: relative names get ``forward_zone`` appended (Record naming
    convention in ``model``); absolute names (trailing dot) are returned unchanged."""
    if name.endswith("."):
        return name
    if not forward_zone.endswith("."):
        forward_zone += "."
    if forward_zone == ".":
        return name + "."
    if not name or name == "@":
        return forward_zone
    return f"{name}.{forward_zone}"


def qualify(text: str, zone: str) -> str:
    """The name a user means by ``text`` typed for ``zone`` (``history``, ``why``, any
    owner name on the command line), made absolute with a trailing dot.

    The one rule (README, "Names on the command line"): a name with a trailing dot, or
    one that ends with the zone (``web.shop.svc.cluster.local`` in ``cluster.local``), is
    absolute; any other name is relative to the zone, as in a zone file. Case does not
    matter. Not validated: the caller checks the result as it needs to.
    """
    text = text.strip()
    if text.endswith(".") or in_zone(text + ".", zone):
        return text if text.endswith(".") else text + "."
    return absolute(text, zone)


def qualify_server(text: str, zone: str) -> str:
    """The name a user means by an NS or hostmaster name ``text`` for ``zone``: as
    :func:`qualify`, and also absolute when it has a dot in it (``ns1.example.org`` is
    a host somewhere, not ``ns1.example.org.<zone>``); a single label (``ns1``) is
    relative to the zone."""
    text = text.strip()
    if "." in text.rstrip("."):
        return text if text.endswith(".") else text + "."
    return qualify(text, zone)


def in_zone(absolute_name: str, zone: str) -> bool:
    """Whether ``absolute_name`` is ``zone`` or below it (case-insensitive)."""
    name = absolute_name.lower()
    zone = zone.lower()
    if not zone.endswith("."):
        zone += "."
    return zone == "." or name == zone or name.endswith("." + zone)


def relative_to(absolute_name: str, zone: str) -> str:
    """``absolute_name`` (lowercase, at or below the lowercase absolute ``zone``) relative
    to ``zone``: ``@`` for the apex, else the labels below it."""
    if absolute_name == zone:
        return "@"
    return absolute_name[:-1] if zone == "." else absolute_name[:-len(zone) - 1]


def wire_length(absolute_name: str) -> int:
    """Octets of an absolute, unescaped text name on the wire: one length octet per label
    plus the root octet, i.e. ``len(text) + 1`` (``"a.b."`` is ``1a1b0``, 5 octets)."""
    return 1 if absolute_name == "." else len(absolute_name.encode()) + 1


def check_name(name: str, forward_zone: str = DEFAULT_FORWARD_ZONE) -> list[str]:
    """Reasons why ``name`` (relative to ``forward_zone``, or absolute) cannot be written:
    an empty label, a label over 63 octets, a character outside letters, digits, ``-``
    and ``_``, or over 255 octets on the wire once absolute (RFC 1035 §2.3.4).

    The projector checks with the default ``cluster.local.``; renderers of a longer zone
    check again (RECORDS.md).
    """
    full = absolute(name, forward_zone).lower()
    if _NAME.fullmatch(full) and wire_length(full) <= MAX_NAME:
        return []
    reasons: list[str] = []
    labels = name.lower().rstrip(".").split(".") if name not in (".", "") else []
    if name.endswith("..") or "" in labels:
        reasons.append(f"name {name!r} has an empty label")
    for label in labels:
        if len(label.encode()) > MAX_LABEL:
            reasons.append(f"label {label!r} of {name!r} is longer than {MAX_LABEL} octets")
        if not _NAME_CHARS.fullmatch(label):
            reasons.append(f"label {label!r} of {name!r} has characters other than "
                           "letters, digits, '-' and '_'")
    if wire_length(full) > MAX_NAME:
        reasons.append(f"name {full!r} is longer than {MAX_NAME} octets")
    return reasons or [f"name {name!r} is not a valid domain name"]


def _parse_name(text: str, what: str) -> dns.name.Name:
    """An absolute ``dns.name.Name`` from text with at most one trailing dot, or the
    reasons it is not one (raised as ValueError carrying one line)."""
    if not text or text.endswith(".."):
        raise ValueError(f"{what} {text!r} has an empty label")
    try:
        name = dns.name.from_text(text, origin=dns.name.root)
    except dns.exception.DNSException as e:
        raise ValueError(f"{what} {text!r} is not a valid domain name: {e}") from None
    if name == dns.name.root:
        raise ValueError(f"{what} {text!r} is the root name")
    if "\\" in name.to_text():
        # Escapes would survive a zone file but not every renderer; refuse rather than
        # risk a broken zone (DESIGN.md: never a broken zone).
        raise ValueError(f"{what} {text!r} has characters that need escaping")
    return name


def external_target(value: str) -> tuple[str | None, list[str]]:
    """The absolute CNAME target of an ExternalName Service, or None with the reasons.

    Rules (RECORDS.md "ExternalName"): a value that parses as an IP address gives no
    record (CoreDNS does the same); one trailing dot is accepted; a value that is not a
    valid domain name (empty label, label over 63 octets, over 255 octets) gives none.
    """
    text = value.strip()
    try:
        ipaddress.ip_address(text)
    except ValueError:
        pass
    else:
        return None, [f"externalName {value!r} is an IP address, not a name"]
    try:
        name = _parse_name(text, "externalName")
    except ValueError as e:
        return None, [str(e)]
    return name.to_text().lower(), []


# --------------------------------------------------------------------------- zone options


def _is_reverse(zone: str) -> bool:
    return in_zone(zone, "in-addr.arpa.") or in_zone(zone, "ip6.arpa.")


_NIBBLE = re.compile(r"[0-9a-f]", re.ASCII)


def _check_reverse(zone: str) -> None:
    """Refuse a reverse zone that names no address prefix: below ``in-addr.arpa.`` at
    most four decimal octets 0-255 as :func:`ptr_owner` writes them (RFC 1035 §3.5),
    below ``ip6.arpa.`` at most 32 single hex nibbles (RFC 3596 §2.5). Such a zone
    (``300.in-addr.arpa``) could never hold a PTR, so it is a mistake, not a choice.

    :raises InvalidZone: naming the zone and the label at fault.
    """
    if in_zone(zone, "in-addr.arpa."):
        labels, rule, most = zone[: -len("in-addr.arpa.")], _OCTET, 4
        what = "a decimal octet 0-255"
    else:
        labels, rule, most = zone[: -len("ip6.arpa.")], _NIBBLE, 32
        what = "one hex digit"
    parts = labels.rstrip(".").split(".") if labels else []
    if len(parts) > most:
        raise InvalidZone(f"reverse zone {zone} has more than {most} labels below "
                          f"{zone[len(labels):]}")
    for part in parts:
        if not rule.fullmatch(part):
            raise InvalidZone(f"reverse zone {zone} is not a valid reverse zone: label "
                              f"{part!r} is not {what}")


def _zone_name(text: str, what: str) -> str:
    try:
        return _parse_name(text.strip(), what).to_text().lower()
    except ValueError as e:
        raise InvalidZone(str(e)) from None


def _server_name(text: str, zone: str, what: str) -> str:
    """An NS or hostmaster name, absolute by :func:`qualify_server`, validated."""
    if not text.strip():
        raise InvalidZone(f"{what} is empty")
    return _zone_name(qualify_server(text, zone), what)


def parse_nameserver(text: str, zone: str) -> NameServer:
    """A nameserver from ``NAME`` or ``NAME=ADDRESS``; NAME is absolute when it has a
    dot in it, else relative to ``zone`` (:func:`qualify_server`). The address is made
    canonical (RFC 5952).

    :raises InvalidZone: the name is not a domain name or the address is not an IP address.
    """
    zone = _zone_name(zone, "zone")
    name_text, sep, addr_text = text.partition("=")
    name = _server_name(name_text, zone, "nameserver")
    if not sep:
        return NameServer(name)
    try:
        address = str(ipaddress.ip_address(addr_text.strip()))
    except ValueError:
        raise InvalidZone(f"nameserver {name_text.strip()!r}: address {addr_text.strip()!r} "
                          "is not an IP address") from None
    return NameServer(name, address)


def _hostmaster(text: str, zone: str) -> str:
    """The SOA RNAME: ``hostmaster.example.org.`` or ``admin@example.org`` (RFC 1035 §3.3.13
    spells the mailbox's ``@`` as a dot)."""
    local, at, domain = text.strip().partition("@")
    if at:
        if not local or "." in local:
            raise InvalidZone(f"hostmaster {text!r}: the mailbox's local part must be one "
                              "label without dots")
        return _zone_name(f"{local}.{domain}", "hostmaster")
    return _server_name(text, zone, "hostmaster")


def _seconds(value: int, what: str) -> int:
    # RFC 2181 §8: TTLs are unsigned 31-bit; SOA timers are used the same way.
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 2**31 - 1:
        raise InvalidZone(f"{what} {value!r} is not a number of seconds from 0 to 2147483647")
    return value


def zone_config(
    zone: str = "cluster.local",
    forward_zone: str | None = None,
    nameservers: tuple[str | NameServer, ...] | list[str | NameServer] = (),
    hostmaster: str | None = None,
    ttl: int = 5,
    refresh: int = 7200,
    retry: int = 1800,
    expire: int = 86400,
    minimum: int = 5,
) -> ZoneConfig:
    """A validated :class:`~zonegen.model.ZoneConfig`, names lowercase and absolute.

    Defaults follow CoreDNS: NS ``ns.dns.<zone>.`` at 127.0.0.1 for a forward zone. A
    reverse zone (``…in-addr.arpa``/``…ip6.arpa``) holds only SOA, NS and PTR
    (RECORDS.md), so its default NS is ``ns.dns.<forward zone>.`` without an address and
    its forward zone defaults to ``cluster.local.``. A nameserver inside the zone needs
    an address (glue; named-checkzone refuses a zone whose in-zone NS has none) and a
    reverse zone cannot hold one; an address for a nameserver outside the zone would
    never be published, so it is refused rather than silently dropped.

    :raises InvalidZone: a name is invalid, an address is not an IP, a number is out of range.
    """
    zone_name = _zone_name(zone, "zone")
    reverse = _is_reverse(zone_name)
    if reverse:
        _check_reverse(zone_name)
    if forward_zone is None:
        forward = DEFAULT_FORWARD_ZONE if reverse else zone_name
    else:
        forward = _zone_name(forward_zone, "forward zone")
        if _is_reverse(forward):
            raise InvalidZone(f"forward zone {forward_zone!r} is a reverse zone")
    servers: list[NameServer] = []
    for ns in nameservers:
        servers.append(ns if isinstance(ns, NameServer) else parse_nameserver(ns, zone_name))
    if not servers:
        servers = [NameServer(f"ns.dns.{forward}")] if reverse else [
            NameServer(f"ns.dns.{zone_name}", "127.0.0.1")]
    for ns in servers:
        inside = in_zone(ns.name, zone_name)
        if inside and reverse:
            raise InvalidZone(f"nameserver {ns.name} lies in reverse zone {zone_name}, which "
                              "cannot hold its address; use a name outside the zone")
        if inside and ns.address is None:
            raise InvalidZone(f"nameserver {ns.name} lies in zone {zone_name} and needs an "
                              "address (NAME=ADDRESS)")
        if not inside and ns.address is not None:
            raise InvalidZone(f"nameserver {ns.name} lies outside zone {zone_name}; its "
                              "address would not be published")
    return ZoneConfig(
        zone=zone_name,
        forward_zone=forward,
        nameservers=tuple(dict.fromkeys(servers)),
        # A reverse zone's mail goes to the cluster domain's hostmaster, not to a
        # mailbox under in-addr.arpa that nobody can have.
        hostmaster=_hostmaster(hostmaster, zone_name) if hostmaster
        else f"hostmaster.{forward if reverse else zone_name}",
        ttl=_seconds(ttl, "TTL"),
        refresh=_seconds(refresh, "refresh"),
        retry=_seconds(retry, "retry"),
        expire=_seconds(expire, "expire"),
        minimum=_seconds(minimum, "minimum"),
    )
