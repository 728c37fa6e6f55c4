"""``zonegen serve``: an authoritative DNS server for the projected zones.

The package holds the I/O side; every DNS message is built sans I/O by
:mod:`zonegen.wire` (packed zones), :mod:`zonegen.xfr` (AXFR/IXFR),
:mod:`zonegen.answer` (queries, NOTIFY) and :mod:`zonegen.tsig`. Here:

- :mod:`~zonegen.serve.keyfile`: TSIG keys from options and BIND key files;
- :mod:`~zonegen.serve.options`: :class:`ServeOptions` from command-line strings;
- :mod:`~zonegen.serve.zoneset`: the immutable :class:`ZoneSet` served at one moment;
- :mod:`~zonegen.serve.served`: :class:`ServedZones`, every projection's ZoneSet at once;
- :mod:`~zonegen.serve.feed`: :class:`StoreFeed`, keeping a ZoneSet level with the store;
- :mod:`~zonegen.serve.responder`: one request to its reply (ACL, TSIG checks);
- :mod:`~zonegen.serve.notify`: NOTIFY out;
- :mod:`~zonegen.serve.server`: the asyncio listeners;
- :mod:`~zonegen.serve.command`: the process (signals, ``--watch``).

The test harness running a server on a thread is :class:`zonegen.testing.ServerThread`.
"""

from zonegen.serve.command import serve, serve_command
from zonegen.serve.feed import StoreFeed
from zonegen.serve.keyfile import parse_keyfile, parse_tsig_key
from zonegen.serve.options import (
    ProjectionZones,
    ServeOptions,
    WatchConfig,
    extra_zone_config,
    parse_hostport,
    parse_network,
    projection_zones,
    serve_options,
    watch_config,
)
from zonegen.serve.responder import Responder, Transfer
from zonegen.serve.served import ServedZones
from zonegen.serve.server import ServeError, Server, ServeReport
from zonegen.serve.zoneset import ZoneSet

__all__ = [
    "ProjectionZones",
    "Responder",
    "ServeError",
    "ServeOptions",
    "ServeReport",
    "ServedZones",
    "Server",
    "StoreFeed",
    "Transfer",
    "WatchConfig",
    "ZoneSet",
    "extra_zone_config",
    "parse_hostport",
    "parse_keyfile",
    "parse_network",
    "parse_tsig_key",
    "projection_zones",
    "serve",
    "serve_command",
    "serve_options",
    "watch_config",
]
