"""BIND and Knot as real secondaries of ``zonegen serve``: AXFR, NOTIFY + IXFR after a
change ingested by another process, TSIG, and the transfer ACL.

zonegen serves in-process (a :class:`ServerThread` on a file database); the change comes
from ``python cli.py ingest`` in a subprocess, as in production where ``zonegen watch``
writes and ``zonegen serve`` reads."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from pathlib import Path

import dns.rdatatype
import dns.tsig
import dns.zone
import pytest

from tests.helpers import exported as exported_zone
from tests.helpers import ingested, wait_until, zonegen
from tests.integration.conftest import (
    KEY_NAME,
    SECRET,
    Secondary,
    dig,
    free_port,
    needs_knotd,
    needs_named,
    start_knotd,
    start_named,
)
from zonegen.model import ZoneConfig
from zonegen.serve import ServeOptions, StoreFeed, parse_network
from zonegen.store import Store
from zonegen.testing import ServerThread

pytestmark = [pytest.mark.integration, needs_named, needs_knotd]

ROOT = Path(__file__).resolve().parents[2]
CONSUL = ROOT / "tests" / "data" / "consul.json"
ZONE = "cluster.local"
CONFIG = ZoneConfig()
KEY = dns.tsig.Key(KEY_NAME, SECRET, dns.tsig.HMAC_SHA256)


def moved_pod(tmp_path: Path) -> Path:
    """consul.json with pod consul-server-2 at a new address (a newer resourceVersion):
    four records change (service A and per-pod A, old and new); the SRVs stay."""
    doc = json.loads(CONSUL.read_text())
    slice_ = copy.deepcopy(next(i for i in doc["items"] if i["kind"] == "EndpointSlice"))
    slice_["metadata"]["resourceVersion"] = "99999"
    for ep in slice_["endpoints"]:
        if ep.get("hostname") == "consul-server-2":
            ep["addresses"] = ["10.244.2.99"]
    path = tmp_path / "moved.json"
    path.write_text(json.dumps(slice_))
    return path


def exported(store: Store) -> dict[tuple[str, str], set[str]]:
    """``(name, type) -> {rdata text}`` for every A and SRV RRset ``zonegen export``
    writes (service names, per-pod names, SRV owners)."""
    zone = exported_zone(store, CONFIG, relativize=False)
    sets: dict[tuple[str, str], set[str]] = {}
    for name, node in zone.nodes.items():
        for rds in node.rdatasets:
            if rds.rdtype in (dns.rdatatype.A, dns.rdatatype.SRV):
                sets[(name.to_text(), dns.rdatatype.to_text(rds.rdtype))] = {
                    rd.to_text() for rd in rds}
    return sets


def assert_answers(sec: Secondary, expected: dict[tuple[str, str], set[str]]) -> None:
    assert any(t == "SRV" for _, t in expected)
    assert any(
        n.startswith("consul-server-0.") for n, _ in expected)
    for (name, rtype), want in expected.items():
        got = dig(sec.port, name, rtype)
        assert got == want, f"{sec.kind}: {name} {rtype}: {got} != {want}\n{sec.describe()}"


def ingest_elsewhere(path: Path, db: Path) -> None:
    """``zonegen ingest PATH`` into ``db`` by another process, as ``zonegen watch``
    commits in production: serve learns of the change only from the database."""
    done = zonegen(["--db", f"sqlite:///{db}", "ingest", str(path)])
    assert done.returncode == 0, done.stderr


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with ingested(f"sqlite:///{tmp_path / 'zonegen.db'}", CONSUL) as st:
        yield st


def serve(store: Store, **options: object) -> ServerThread:
    opts = ServeOptions(listen=(("127.0.0.1", 0),), poll=0.05, **options)  # type: ignore[arg-type]
    return ServerThread(opts, StoreFeed(store, [CONFIG])).start()


def test_axfr_then_notify_and_ixfr(store: Store, tmp_path: Path,
                                   secondaries: list[Secondary]) -> None:
    named_port, knot_port = free_port(), free_port()
    server = serve(store, notify=(("127.0.0.1", named_port), ("127.0.0.1", knot_port)))
    try:
        port = server.port
        named = start_named(tmp_path / "named", ZONE, port, port=named_port)
        secondaries.append(named)
        knot = start_knotd(tmp_path / "knot", ZONE, port, port=knot_port)
        secondaries.append(knot)
        first = server.zones.serial
        named.wait_serial(first)
        knot.wait_serial(first)
        named.wait_log("Transfer completed")
        expected = exported(store)
        assert_answers(named, expected)
        assert_answers(knot, expected)

        # A change committed by another process: serve notices it, NOTIFYs, and both
        # secondaries fetch it by IXFR.
        before = store.latest_version()
        assert before is not None
        ingest_elsewhere(moved_pod(tmp_path), tmp_path / "zonegen.db")
        after = store.latest_version()
        assert after is not None
        assert after.serial != first
        change = store.journal(before.version_id)
        # records of this zone (relative owners); the PTRs belong to the reverse zone
        size = sum(1 for v in change for r in (*v.step.added, *v.step.removed)
                   if not r.owner.endswith("."))
        assert size == 4
        named.wait_serial(after.serial)
        knot.wait_serial(after.serial)

        named.wait_log("received notify for zone")
        completed = re.findall(r"Transfer completed: (\d+) messages, (\d+) records",
                               named.log())
        assert len(completed) == 2, named.describe()
        # an IXFR of one version: SOA(new), SOA(old), removed, SOA(new), added, SOA(new)
        assert int(completed[-1][1]) == size + 4, named.describe()
        assert (named.directory / f"{ZONE}.db.jnl").exists(), named.describe()
        knot.wait_log("IXFR, incoming")
        assert "notify, incoming" in knot.log(), knot.describe()

        expected = exported(store)
        pod = ("consul-server-2.consul-server.default.svc.cluster.local.", "A")
        assert expected[pod] == {"10.244.2.99"}
        assert_answers(named, expected)
        assert_answers(knot, expected)
    finally:
        server.stop()


def test_tsig_signed_secondaries_transfer_unsigned_are_refused(
        store: Store, tmp_path: Path, secondaries: list[Secondary]) -> None:
    server = serve(store, keys=(KEY,))
    try:
        port = server.port
        serial = server.zones.serial
        signed = [start_named(tmp_path / "named-key", ZONE, port, key=True),
                  start_knotd(tmp_path / "knot-key", ZONE, port, key=True)]
        unsigned = [start_named(tmp_path / "named-nokey", ZONE, port),
                    start_knotd(tmp_path / "knot-nokey", ZONE, port)]
        secondaries.extend(signed + unsigned)
        for sec in signed:
            sec.wait_serial(serial)
        unsigned[0].wait_log("REFUSED")
        unsigned[1].wait_log("REFUSED")
        for sec in unsigned:
            assert sec.serial() is None, sec.describe()
        assert wait_until(lambda: server.server.report.refused >= 2, 10)
    finally:
        server.stop()


def test_transfer_from_disallowed_address_is_refused(
        store: Store, tmp_path: Path, secondaries: list[Secondary]) -> None:
    server = serve(store, allow_transfer=(parse_network("10.255.255.0/24"),))
    try:
        named = start_named(tmp_path / "named", ZONE, server.port)
        knot = start_knotd(tmp_path / "knot", ZONE, server.port)
        secondaries.extend([named, knot])
        named.wait_log("REFUSED")
        knot.wait_log("REFUSED")
        assert named.serial() is None
        assert knot.serial() is None
    finally:
        server.stop()


def test_metrics_follow_real_secondaries(store: Store, tmp_path: Path,
                                         secondaries: list[Secondary]) -> None:
    """BIND and Knot transfer the zone, then an IXFR after a change: the scraped
    ``zonegen_transfers_total`` counts one AXFR and one IXFR per secondary, their bytes,
    the NOTIFYs they acknowledged, and the serial gauge follows."""
    from tests.test_serve_metrics import scrape, value
    from zonegen.health import MetricsServer, Readiness
    from zonegen.metrics import Metrics

    metrics, readiness = Metrics(), Readiness()
    named_port, knot_port = free_port(), free_port()
    opts = ServeOptions(listen=(("127.0.0.1", 0),), poll=0.05,
                        notify=(("127.0.0.1", named_port), ("127.0.0.1", knot_port)))
    endpoint = MetricsServer("127.0.0.1", 0, metrics, readiness).start()
    server = ServerThread(opts, StoreFeed(store, [CONFIG], metrics=metrics),
                          metrics=metrics, readiness=readiness).start()
    try:
        named = start_named(tmp_path / "named", ZONE, server.port, port=named_port)
        knot = start_knotd(tmp_path / "knot", ZONE, server.port, port=knot_port)
        secondaries.extend([named, knot])
        first = server.zones.serial
        named.wait_serial(first)
        knot.wait_serial(first)
        assert wait_until(lambda: value(scrape(endpoint.port), "zonegen_transfers_total",
                                        type="AXFR", result="ok") == 2, 30)
        samples = scrape(endpoint.port)
        assert value(samples, "zonegen_zone_serial", zone="cluster.local.") == first
        assert value(samples, "zonegen_transfer_bytes_total", type="AXFR") > 0
        acknowledged = value(samples, "zonegen_notify_total", result="acknowledged")

        ingest_elsewhere(moved_pod(tmp_path), tmp_path / "zonegen.db")
        after = store.latest_version()
        assert after is not None
        named.wait_serial(after.serial)
        knot.wait_serial(after.serial)
        assert wait_until(lambda: value(scrape(endpoint.port), "zonegen_transfers_total",
                                        type="IXFR", result="ok") == 2, 30)
        assert wait_until(lambda: value(scrape(endpoint.port), "zonegen_notify_total",
                                        result="acknowledged") >= acknowledged + 2, 30)
        samples = scrape(endpoint.port)
        assert value(samples, "zonegen_zone_serial", zone="cluster.local.") == after.serial
        assert value(samples, "zonegen_transfers_total", type="AXFR", result="ok") == 2
        assert value(samples, "zonegen_transfers_total", type="IXFR", result="refused") == 0
        assert 0 < value(samples, "zonegen_transfer_bytes_total", type="IXFR") < \
            value(samples, "zonegen_transfer_bytes_total", type="AXFR")
    finally:
        server.stop()
        endpoint.stop()
