"""How ``zonegen serve`` serves: addresses, the transfer ACL, keys, timings, extra zones.

Built from command-line strings by :func:`serve_options`; every malformed value is an
:class:`~zonegen.errors.InvalidInput` naming the option.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import dns.tsig

from zonegen.errors import InvalidInput, InvalidOption
from zonegen.model import NameServer, ZoneConfig
from zonegen.projections import DEFAULT, ProjectionSpec, parse_zone_option
from zonegen.serve.keyfile import parse_keyfile, parse_tsig_key

if TYPE_CHECKING:
    from zonegen.watch import WatchOptions

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
HostPort = tuple[str, int]

LOOPBACK: tuple[Network, ...] = (ipaddress.ip_network("127.0.0.0/8"),
                                 ipaddress.ip_network("::1/128"))


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



MAX_POLL = 86400.0
"""Seconds between store polls, at most: a day (a longer wait serves nothing new)."""


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
    metrics_listen: HostPort | None = None  # /metrics, /healthz, /readyz (zonegen.health)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.poll) and 0 < self.poll <= MAX_POLL):
            # nan made every wait return at once: a core spun at 100 %
            raise InvalidOption(f"--poll {self.poll}: expected seconds above 0, at most "
                                f"{MAX_POLL:g}")
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



@dataclass(frozen=True, slots=True)
class WatchConfig:
    """``serve --watch``: the watch command's connection options (see ``zonegen watch``)."""

    kubeconfig: str | None = None
    context: str | None = None
    options: WatchOptions | None = None
    lease_seconds: float | None = 15.0  # replicas on PostgreSQL: the writer lease


def watch_config(watch: bool, kubeconfig: str | None = None, context: str | None = None,
                 options: WatchOptions | None = None, lease_seconds: float | None = 15.0
                 ) -> WatchConfig | None:
    """``serve --watch``'s configuration, or None without ``--watch``.

    :raises InvalidOption: a watch option given without ``--watch`` (it would be ignored
        silently, and the operator believes the cluster is watched).
    """
    if watch:
        return WatchConfig(kubeconfig, context, options, lease_seconds)
    from zonegen.watch import WatchOptions

    given = [name for name, value in (("--kubeconfig", kubeconfig), ("--context", context))
             if value is not None]
    if options is not None:
        default = WatchOptions()
        given += [flag for flag, field in (("--namespace", "namespaces"), ("--source", "source"),
                                           ("--endpoints", "legacy_endpoints"),
                                           ("--request-timeout", "request_timeout"))
                  if getattr(options, field) != getattr(default, field)]
    if given:
        verb = "applies" if len(given) == 1 else "apply"
        raise InvalidOption(f"{', '.join(given)} only {verb} with --watch")
    return None


def extra_zone_config(config: ZoneConfig, zone: str) -> ZoneConfig:
    """Another zone served beside ``config`` at the same serial (``--extra-zone``, e.g.
    ``10.in-addr.arpa`` for PTRs): same forward zone, timers and hostmaster; the same NS
    names, with addresses only where the NS lies inside the new zone (glue, RFC 1034
    §4.2.1; a reverse zone holds none).

    :raises InvalidZone: the zone name or a derived option is unusable.
    """
    from zonegen.names import in_zone, zone_config

    name = zone.lower().rstrip(".") + "."
    servers: list[str | NameServer] = [
        ns if ns.address and in_zone(ns.name, name) else NameServer(ns.name)
        for ns in config.nameservers]
    return zone_config(zone=zone, forward_zone=config.forward_zone, nameservers=servers,
                       hostmaster=config.hostmaster, ttl=config.ttl, refresh=config.refresh,
                       retry=config.retry, expire=config.expire, minimum=config.minimum)


@dataclass(frozen=True, slots=True)
class ProjectionZones:
    """The zones ``serve`` publishes from one projection, all at its serial."""

    spec: ProjectionSpec
    configs: tuple[ZoneConfig, ...]


def projection_zones(zones: Sequence[str], extra_zones: Sequence[str] = (), *,
                     forward_zone: str | None = None,
                     nameservers: Sequence[str | NameServer] = (),
                     hostmaster: str | None = None, ttl: int = 5, refresh: int = 7200,
                     retry: int = 1800, expire: int = 86400, minimum: int = 5
                     ) -> list[ProjectionZones]:
    """``serve --zone ZONE[=TARGET]`` (repeatable) and ``--extra-zone ZONE[=TARGET]`` as
    the zones of each projection, in the order the projections are first named.

    A zone without ``=TARGET`` is the default projection's (``source:default``); an
    ``--extra-zone`` without one joins the first ``--zone``'s projection (what it always
    did: another zone at the same serial, e.g. a reverse zone). Each projection's first
    zone gets the SOA/NS options as a single ``--zone`` does; its further zones are
    :func:`extra_zone_config` of that one (same forward zone, NS names, hostmaster).
    ``--forward-zone`` names one projection's forward zone, so it is refused when
    several are served (each one's forward zone is then its first zone).

    :raises InvalidOption: a malformed target, a zone named twice, ``--forward-zone``
        with several projections.
    :raises InvalidZone: a zone name or a derived option is unusable.
    """
    from zonegen.names import zone_config

    named = [parse_zone_option(z) for z in zones] or [("cluster.local", DEFAULT)]
    first = named[0][1]
    for text in extra_zones:
        zone, spec = parse_zone_option(text)
        named.append((zone, spec if "=" in text else first))
    groups: dict[ProjectionSpec, list[str]] = {}
    for zone, spec in named:
        groups.setdefault(spec, []).append(zone)
    if forward_zone is not None and len(groups) > 1:
        raise InvalidOption("--forward-zone applies to one projection; with several, "
                            "each projection's first --zone is its forward zone")
    plan: list[ProjectionZones] = []
    seen: dict[str, str] = {}
    for spec, texts in groups.items():
        main = zone_config(zone=texts[0], forward_zone=forward_zone,
                           nameservers=list(nameservers), hostmaster=hostmaster, ttl=ttl,
                           refresh=refresh, retry=retry, expire=expire, minimum=minimum)
        configs = (main, *(extra_zone_config(main, z) for z in texts[1:]))
        for config in configs:
            if config.zone in seen:
                raise InvalidOption(f"zone {config.zone} is served twice "
                                    f"({seen[config.zone]} and {spec.target})")
            seen[config.zone] = spec.target
        plan.append(ProjectionZones(spec, configs))
    return plan


def serve_options(*, listen: Sequence[str] = (), allow_transfer: Sequence[str] = (),
                  tsig_keys: Sequence[str] = (), tsig_keyfiles: Sequence[str] = (),
                  notify: Sequence[str] = (), poll: float = 1.0,
                  max_transfers: int = 16, idle_timeout: float = 10.0,
                  metrics_listen: str | None = None) -> ServeOptions:
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
        poll=poll, max_transfers=max_transfers, idle_timeout=idle_timeout,
        metrics_listen=parse_hostport(metrics_listen, "--metrics-listen")
        if metrics_listen else None)


