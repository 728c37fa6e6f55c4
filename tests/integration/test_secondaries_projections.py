"""BIND as a real secondary of one ``zonegen serve`` publishing two clusters' zones
(issue #13): ``serve --zone a.k8s.example.org=source:a --zone b.k8s.example.org=source:b``
as an operator runs it (a subprocess), two events sources ingested by ``zonegen ingest
--source``, and one ``named`` loading both zones by AXFR, then b's change by NOTIFY and
IXFR while a's zone keeps its serial. Answers are read from ``named`` with dnspython."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import dns.message
import dns.query
import dns.rcode
import pytest

from tests.cli_process import run_cli, serve_process, stop_serve
from tests.helpers import wait_until
from tests.integration.conftest import (
    Secondary,
    free_port,
    needs_named,
    start_named,
)
from tests.test_serve_projections import service

pytestmark = [pytest.mark.integration, needs_named]

HOST = "127.0.0.1"
ZONE_A, ZONE_B = "a.k8s.example.org", "b.k8s.example.org"


def ingest(db: Path, tmp_path: Path, source: str, *items: dict[str, Any],
           snapshot: bool = False) -> None:
    """``zonegen ingest --source SOURCE --no-project`` of ``items`` by its own process
    (with ``--snapshot``: every object of the source not among them was deleted)."""
    path = tmp_path / f"{source}-{len(list(tmp_path.glob('*.json')))}.json"
    path.write_text(json.dumps({"kind": "List", "items": list(items)}))
    done = run_cli(f"sqlite:///{db}", "ingest", "--source", source, "--no-project",
                   *(["--snapshot"] if snapshot else []), str(path))
    assert done.returncode == 0, done.stderr


def ask(port: int, name: str, rtype: str) -> tuple[int, set[str]]:
    """(rcode, {rdata text}) of ``name``/``rtype`` asked of 127.0.0.1#port."""
    r = dns.query.udp(dns.message.make_query(name, rtype), HOST, port=port, timeout=5)
    return r.rcode(), {rd.to_text() for rrset in r.answer for rd in rrset}


def soa_serial(port: int, zone: str) -> int | None:
    try:
        rcode, answer = ask(port, f"{zone}.", "SOA")
    except dns.exception.Timeout:
        return None
    if rcode != dns.rcode.NOERROR or not answer:
        return None
    return int(next(iter(answer)).split()[2])


def test_bind_loads_two_clusters_zones_from_one_serve(
        tmp_path: Path, secondaries: list[Secondary]) -> None:
    db = tmp_path / "zonegen.db"
    events = tmp_path / "events"
    events.mkdir()
    ingest(db, events, "a", service("web", "10.1.0.1"))
    ingest(db, events, "b", service("web", "10.2.0.1"), service("db", "10.2.0.2"))
    serve_port, named_port = free_port(), free_port()
    with serve_process(f"sqlite:///{db}", "--zone", f"{ZONE_A}=source:a",
                       "--zone", f"{ZONE_B}=source:b", "--listen", f"{HOST}:{serve_port}",
                       "--notify", f"{HOST}:{named_port}", "--poll", "0.1") as server:
        assert wait_until(lambda: soa_serial(serve_port, ZONE_B) is not None, 60), \
            server.poll()
        first_a, first_b = soa_serial(serve_port, ZONE_A), soa_serial(serve_port, ZONE_B)
        assert first_a is not None
        assert first_b is not None
        named = start_named(tmp_path / "named", [ZONE_A, ZONE_B], serve_port, port=named_port)
        secondaries.append(named)
        assert wait_until(lambda: soa_serial(named_port, ZONE_A) == first_a, 30), \
            named.describe()
        assert wait_until(lambda: soa_serial(named_port, ZONE_B) == first_b, 30), \
            named.describe()
        # each cluster's records from its own zone, as BIND answers them
        assert ask(named_port, f"web.shop.svc.{ZONE_A}.", "A") == (0, {"10.1.0.1"})
        assert ask(named_port, f"web.shop.svc.{ZONE_B}.", "A") == (0, {"10.2.0.1"})
        assert ask(named_port, f"db.shop.svc.{ZONE_B}.", "A") == (0, {"10.2.0.2"})
        assert ask(named_port, f"_http._tcp.db.shop.svc.{ZONE_B}.", "SRV") == (
            0, {f"0 100 80 db.shop.svc.{ZONE_B}."})
        assert ask(named_port, f"db.shop.svc.{ZONE_A}.", "A")[0] == dns.rcode.NXDOMAIN

        # a change in cluster b: serve projects it, NOTIFYs b, named fetches it by IXFR
        ingest(db, events, "b", service("db", "10.2.0.3", rv="2"))
        assert wait_until(lambda: soa_serial(serve_port, ZONE_B) != first_b, 60)
        second_b = soa_serial(serve_port, ZONE_B)
        assert wait_until(lambda: soa_serial(named_port, ZONE_B) == second_b, 30), \
            named.describe()
        assert ask(named_port, f"db.shop.svc.{ZONE_B}.", "A") == (0, {"10.2.0.3"})
        log = named.log()
        assert f"zone {ZONE_B}/IN: notify from 127.0.0.1" in log, named.describe()
        completed = {zone: [int(n) for n in re.findall(
            rf"transfer of '{re.escape(zone)}/IN' from [^:]+: Transfer completed: "
            r"\d+ messages, (\d+) records", log)] for zone in (ZONE_A, ZONE_B)}
        # b: an AXFR (SOA, NS, glue, TXT, two Services' A and two SRVs each, SOA), then
        # an IXFR of one version: SOA(new), SOA(old), removed A, SOA(new), added A, SOA(new)
        assert completed[ZONE_B] == [11, 6], named.describe()
        assert (named.directory / f"{ZONE_B}.db.jnl").exists(), named.describe()
        assert completed[ZONE_A] == [8], named.describe()  # a was fetched once
        # cluster a's zone did not move, at zonegen or at BIND
        assert soa_serial(serve_port, ZONE_A) == first_a
        assert soa_serial(named_port, ZONE_A) == first_a
        assert ask(named_port, f"web.shop.svc.{ZONE_A}.", "A") == (0, {"10.1.0.1"})
        out = stop_serve(server)
    assert f"served {ZONE_A}. up to serial {first_a}, {ZONE_B}. up to serial {second_b}: " \
        in out, out
