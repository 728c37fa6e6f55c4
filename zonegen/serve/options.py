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
from zonegen.model import ZoneConfig
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


