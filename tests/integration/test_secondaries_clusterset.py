"""BIND as a real secondary of ``clusterset.local`` (issue #13): a hub cluster's
ServiceImports and MCS EndpointSlices ingested as the source ``hub``, one ``zonegen serve
--zone clusterset.local=imports:hub`` (a subprocess, as an operator runs it), and ``named``
loading the zone by AXFR, then answering the Multi-Cluster Services DNS specification's
queries (docs/multicluster.md); a cluster going away reaches BIND by NOTIFY and IXFR.
Answers are read from ``named`` with dnspython."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import dns.message
import dns.query
import dns.rcode
import pytest

from tests.cli_process import serve_process, stop_serve
from tests.helpers import wait_until
from tests.integration.conftest import Secondary, free_port, needs_named, start_named
from tests.integration.test_secondaries_projections import HOST, ask, ingest, soa_serial
from tests.test_clusterset import ep, mcs_slice, service_import

pytestmark = [pytest.mark.integration, needs_named]

ZONE = "clusterset.local"


def hub() -> list[dict[str, Any]]:
    return [
        service_import("web", ips=("10.42.0.1",), ports=({"name": "http", "port": 80},)),
        service_import("db", kind="Headless", ports=({"name": "pg", "port": 5432},)),
        service_import("idle", kind="Headless", ports=({"name": "pg", "port": 5432},)),
        # east.prod: a dotted cluster id; one endpoint without a hostname, one not ready
        mcs_slice("db-east", "db", "east.prod",
                  [ep("10.1.0.1", "db-0"), ep("10.1.0.2"), ep("10.1.0.3", "db-2", ready=False)]),
        mcs_slice("db-west", "db", "west", [ep("10.2.0.1", "db-0")]),
        mcs_slice("idle-east", "idle", "east.prod", [ep("10.1.0.9", ready=False)]),
    ]


def test_bind_serves_clusterset_local_as_the_mcs_dns_spec_answers(
        tmp_path: Path, secondaries: list[Secondary]) -> None:
    db = tmp_path / "zonegen.db"
    events = tmp_path / "events"
    events.mkdir()
    ingest(db, events, "hub", *hub())
    serve_port, named_port = free_port(), free_port()
    with serve_process(f"sqlite:///{db}", "--zone", f"{ZONE}=imports:hub",
                       "--listen", f"{HOST}:{serve_port}", "--notify", f"{HOST}:{named_port}",
                       "--poll", "0.1") as server:
        assert wait_until(lambda: soa_serial(serve_port, ZONE) is not None, 60), \
            server.poll()
        first = soa_serial(serve_port, ZONE)
        assert first is not None
        named = start_named(tmp_path / "named", ZONE, serve_port, port=named_port)
        secondaries.append(named)
        assert wait_until(lambda: soa_serial(named_port, ZONE) == first, 30), \
            named.describe()
        # The spec's queries, answered by BIND from what it transferred.
        assert ask(named_port, f"dns-version.{ZONE}.", "TXT") == (0, {'"1.0.0"'})
        assert ask(named_port, f"web.shop.svc.{ZONE}.", "A") == (0, {"10.42.0.1"})
        assert ask(named_port, f"_http._tcp.web.shop.svc.{ZONE}.", "SRV") == (
            0, {f"0 100 80 web.shop.svc.{ZONE}."})
        assert ask(named_port, f"db.shop.svc.{ZONE}.", "A") == (
            0, {"10.1.0.1", "10.1.0.2", "10.2.0.1"})
        assert ask(named_port, f"db-0.east.prod.db.shop.svc.{ZONE}.", "A") == (
            0, {"10.1.0.1"})
        assert ask(named_port, f"10-1-0-2.east.prod.db.shop.svc.{ZONE}.", "A") == (
            0, {"10.1.0.2"})
        assert ask(named_port, f"db-0.west.db.shop.svc.{ZONE}.", "A") == (0, {"10.2.0.1"})
        assert ask(named_port, f"_pg._tcp.db.shop.svc.{ZONE}.", "SRV") == (0, {
            f"0 100 5432 db-0.east.prod.db.shop.svc.{ZONE}.",
            f"0 100 5432 10-1-0-2.east.prod.db.shop.svc.{ZONE}.",
            f"0 100 5432 db-0.west.db.shop.svc.{ZONE}."})
        # Not ready: no name. No ready endpoint anywhere: NXDOMAIN.
        assert ask(named_port, f"db-2.east.prod.db.shop.svc.{ZONE}.", "A")[0] == \
            dns.rcode.NXDOMAIN
        assert ask(named_port, f"idle.shop.svc.{ZONE}.", "A")[0] == dns.rcode.NXDOMAIN
        # <clusterid>.<svc>.<ns>.svc is reserved: no data there (an empty non-terminal).
        assert ask(named_port, f"west.db.shop.svc.{ZONE}.", "A") == (0, set())

        # The west cluster goes away: its slice is deleted on the hub.
        ingest(db, events, "hub", *[o for o in hub() if o["metadata"]["name"] != "db-west"],
               snapshot=True)
        assert wait_until(lambda: (soa_serial(named_port, ZONE) or 0) > first, 30), \
            named.describe()
        assert ask(named_port, f"db.shop.svc.{ZONE}.", "A") == (0, {"10.1.0.1", "10.1.0.2"})
        assert ask(named_port, f"db-0.west.db.shop.svc.{ZONE}.", "A")[0] == \
            dns.rcode.NXDOMAIN
        assert ask(named_port, f"db-0.east.prod.db.shop.svc.{ZONE}.", "A") == (
            0, {"10.1.0.1"})
        log = named.log()
        assert f"zone {ZONE}/IN: notify from 127.0.0.1" in log, named.describe()
        completed = [int(n) for n in re.findall(
            rf"transfer of '{re.escape(ZONE)}/IN' from [^:]+: Transfer completed: "
            r"\d+ messages, (\d+) records", log)]
        # The change came by IXFR: SOA(new), SOA(old), the four removed records (west's
        # A at the service, its endpoint name and its two SRVs), SOA(new), SOA(new).
        assert completed[1:] == [8], named.describe()
        assert (named.directory / f"{ZONE}.db.jnl").exists(), named.describe()
        stop_serve(server)
