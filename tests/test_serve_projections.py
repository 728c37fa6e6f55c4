"""serve: several projections from one log (issue #13): ``--zone a.k8s.example.org=source:a
--zone b.k8s.example.org=source:b``, each zone with its own serial, journal and NOTIFY.

Real servers on loopback ports, queried with dnspython; events of two sources ingested
into one SQLite log. Nothing is mocked; waits poll with deadlines."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.versioned
import dns.xfr
import dns.zone
import pytest

from tests.background import in_background
from tests.helpers import cli, http_get, wait_until
from tests.kubeapi import FakeKubeAPI
from tests.notify_listener import NotifyListener
from zonegen.errors import InvalidOption
from zonegen.health import Readiness
from zonegen.ingest import ingest_files
from zonegen.metrics import Metrics
from zonegen.names import zone_config
from zonegen.projections import DEFAULT, parse_target
from zonegen.serve import (
    ServeOptions,
    ServeReport,
    StoreFeed,
    projection_zones,
    serve,
)
from zonegen.store import Store
from zonegen.testing import ServerThread

HOST = "127.0.0.1"
A = zone_config(zone="a.k8s.example.org")
B = zone_config(zone="b.k8s.example.org")
C = zone_config(zone="c.k8s.example.org")
SPEC_A, SPEC_B, SPEC_C = parse_target("source:a"), parse_target("source:b"), parse_target(
    "source:c")


def service(name: str, ip: str, rv: str = "1") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "shop", "uid": f"uid-{name}",
                         "resourceVersion": rv},
            "spec": {"type": "ClusterIP", "clusterIP": ip, "clusterIPs": [ip],
                     "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}}


def ingest(store: Store, tmp_path: Path, source: str, *items: dict[str, Any]) -> None:
    """``ingest --source SOURCE --no-project`` of a Service list: serve projects it."""
    path = tmp_path / f"{source}-{len(list(tmp_path.iterdir()))}.json"
    path.write_text(json.dumps({"kind": "List", "items": list(items)}))
    ingest_files(store, [str(path)], source=source, project=False)


def records(zone: dns.zone.Zone) -> set[tuple[str, str, str]]:
    """Every record but the SOA (whose serial and timers tests check apart)."""
    return {(name.to_text(), dns.rdatatype.to_text(rds.rdtype), rd.to_text())
            for name, node in zone.nodes.items() for rds in node.rdatasets
            for rd in rds if rds.rdtype != dns.rdatatype.SOA}


def expected(*services: tuple[str, str]) -> set[tuple[str, str, str]]:
    """The records (names relative to the zone) of ClusterIP Services ``(name, ip)`` with
    port http/80 in namespace ``shop``."""
    recs = {("@", "NS", "ns.dns"), ("ns.dns", "A", "127.0.0.1"),
            ("dns-version", "TXT", '"1.1.0"')}
    for name, ip in services:
        recs |= {(f"{name}.shop.svc", "A", ip),
                 (f"{name}.shop.svc", "SRV", f"0 100 80 {name}.shop.svc"),
                 (f"_http._tcp.{name}.shop.svc", "SRV", f"0 100 80 {name}.shop.svc")}
    return recs


def axfr(port: int, origin: str) -> dns.versioned.Zone:
    zone = dns.versioned.Zone(origin)
    query, _ = dns.xfr.make_query(zone)
    dns.query.inbound_xfr(HOST, zone, query, port=port, timeout=10, lifetime=30)
    return zone


def soa_serial(port: int, origin: str) -> int | None:
    """The SOA serial answered for ``origin``, or None for SERVFAIL."""
    r = dns.query.udp(dns.message.make_query(origin, "SOA"), HOST, port=port, timeout=5)
    if r.rcode() == dns.rcode.SERVFAIL:
        return None
    assert r.rcode() == dns.rcode.NOERROR, r
    return int(r.answer[0][0].serial)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    st = Store.open(f"sqlite:///{tmp_path / 'zonegen.db'}")
    events = tmp_path / "events"
    events.mkdir()
    ingest(st, events, "a", service("web", "10.1.0.1"))
    ingest(st, events, "b", service("web", "10.2.0.1"), service("db", "10.2.0.2"))
    yield st
    st.close()


@pytest.fixture
def notified() -> Iterator[NotifyListener]:
    listener = NotifyListener()
    yield listener
    listener.close()


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
def running(store: Store, notified: NotifyListener,
            metrics: Metrics) -> Iterator[tuple[ServerThread, Readiness]]:
    """One server publishing source a, source b and source c (no event yet)."""
    readiness = Readiness()
    feeds = [StoreFeed(store, [config], spec=spec)
             for config, spec in ((A, SPEC_A), (B, SPEC_B), (C, SPEC_C))]
    options = ServeOptions(listen=((HOST, 0),), poll=0.05, notify=((HOST, notified.port),))
    server = ServerThread(options, feeds, readiness=readiness, metrics=metrics).start()
    yield server, readiness
    server.stop()


def gauge(metrics: Metrics, name: str, zone: str) -> float | None:
    return metrics.registry.get_sample_value(name, {"zone": zone})


def test_each_projection_is_its_own_zone_with_exact_records(
        running: tuple[ServerThread, Readiness], store: Store) -> None:
    server, _ = running
    a, b = axfr(server.port, A.zone), axfr(server.port, B.zone)
    assert records(a) == expected(("web", "10.1.0.1"))
    assert records(b) == expected(("web", "10.2.0.1"), ("db", "10.2.0.2"))
    # each zone at its own projection's stored serial
    va, vb = store.latest_version(SPEC_A.name), store.latest_version(SPEC_B.name)
    assert va is not None
    assert vb is not None
    assert va.version_id != vb.version_id
    assert soa_serial(server.port, A.zone) == va.serial
    assert soa_serial(server.port, B.zone) == vb.serial
    assert store.latest_version(DEFAULT.name) is None  # no default zone made up
    # queries find their zone across projections
    r = dns.query.udp(dns.message.make_query("db.shop.svc.b.k8s.example.org.", "A"), HOST,
                      port=server.port, timeout=5)
    assert [rd.address for rd in r.answer[0]] == ["10.2.0.2"]
    r = dns.query.udp(dns.message.make_query("db.shop.svc.a.k8s.example.org.", "A"), HOST,
                      port=server.port, timeout=5)
    assert r.rcode() == dns.rcode.NXDOMAIN  # source b's Service is not in a's zone
    r = dns.query.udp(dns.message.make_query("example.org.", "SOA"), HOST, port=server.port,
                      timeout=5)
    assert r.rcode() == dns.rcode.REFUSED


def test_a_projection_without_version_is_servfail_while_others_answer(
        running: tuple[ServerThread, Readiness], store: Store, tmp_path: Path) -> None:
    server, readiness = running
    assert soa_serial(server.port, C.zone) is None  # SERVFAIL: the initial sync gate
    r = dns.query.udp(dns.message.make_query("web.shop.svc.c.k8s.example.org.", "A"), HOST,
                      port=server.port, timeout=5)
    assert r.rcode() == dns.rcode.SERVFAIL
    query, _ = dns.xfr.make_query(dns.versioned.Zone(C.zone))
    assert dns.query.tcp(query, HOST, port=server.port, timeout=5).rcode() == \
        dns.rcode.SERVFAIL
    assert soa_serial(server.port, A.zone) is not None  # a and b answer meanwhile
    assert readiness.reasons() == [
        "serve: no zone version loaded for c.k8s.example.org. (source:c)"]
    assert server.server.report.serials[C.zone] is None
    # c's first event: its first version is served, and the process is ready
    ingest(store, tmp_path, "c", service("web", "10.3.0.1"))
    server.wake()
    assert wait_until(lambda: soa_serial(server.port, C.zone) is not None)
    assert records(axfr(server.port, C.zone)) == expected(("web", "10.3.0.1"))
    assert wait_until(lambda: readiness.ready)


def test_a_change_in_one_source_moves_only_its_zone(
        running: tuple[ServerThread, Readiness], store: Store, tmp_path: Path,
        notified: NotifyListener, metrics: Metrics, caplog: pytest.LogCaptureFixture
        ) -> None:
    server, _ = running
    port = server.port
    serial_a, serial_b = soa_serial(port, A.zone), soa_serial(port, B.zone)
    assert serial_a is not None
    assert serial_b is not None
    # NOTIFY at start, for the loaded zones only
    assert wait_until(lambda: sorted(notified.received) == sorted(
        [(A.zone, serial_a), (B.zone, serial_b)]))
    before_b = axfr(port, B.zone)
    mark = len(notified.received)

    ingest(store, tmp_path, "b", service("db", "10.2.0.3", rv="2"))
    server.wake()
    assert wait_until(lambda: soa_serial(port, B.zone) != serial_b)
    new_b = soa_serial(port, B.zone)
    assert new_b is not None
    assert soa_serial(port, A.zone) == serial_a  # a's zone did not move
    # the per-zone gauges: b's serial moved, a's did not; c has none before its version
    assert wait_until(lambda: gauge(metrics, "zonegen_zone_serial", B.zone) == new_b)
    assert gauge(metrics, "zonegen_zone_serial", A.zone) == serial_a
    assert gauge(metrics, "zonegen_zone_records", B.zone) == len(expected(
        ("web", "10.2.0.1"), ("db", "10.2.0.3"))) + 1  # and the SOA
    assert gauge(metrics, "zonegen_zone_serial", C.zone) is None
    # IXFR of b from its old serial: incremental (old SOA second), the one change
    query, _ = dns.xfr.make_query(before_b, serial=serial_b)
    answer = dns.query.tcp(query, HOST, port=port, timeout=5, one_rr_per_rrset=True).answer
    assert [rrset[0].serial for rrset in answer if rrset.rdtype == dns.rdatatype.SOA] == [
        new_b, serial_b, new_b, new_b]
    assert [(rrset.name.to_text(), rrset[0].to_text()) for rrset in answer
            if rrset.rdtype == dns.rdatatype.A] == [
        (f"db.shop.svc.{B.zone}", "10.2.0.2"), (f"db.shop.svc.{B.zone}", "10.2.0.3")]
    # applied by dnspython onto the old zone, it gives b's new AXFR
    ixfr_query, _ = dns.xfr.make_query(before_b, serial=serial_b)
    dns.query.inbound_xfr(HOST, before_b, ixfr_query, port=port, timeout=10)
    assert records(before_b) == records(axfr(port, B.zone)) == expected(
        ("web", "10.2.0.1"), ("db", "10.2.0.3"))
    # NOTIFY names b only: a's first NOTIFY after the mark is for a's own change
    assert wait_until(lambda: (B.zone, new_b) in notified.received[mark:])
    with caplog.at_level("INFO", logger="zonegen"):
        ingest(store, tmp_path, "a", service("web", "10.1.0.9", rv="2"))
        server.wake()
        assert wait_until(lambda: any(z == A.zone for z, _ in notified.received[mark:]))
    new_a = soa_serial(port, A.zone)
    # one version of a's, though b's versions took the ids between (ids are shared)
    assert f"{A.zone}: serial {serial_a} -> {new_a} (1 versions)" in caplog.text
    assert notified.received[mark:] == [(B.zone, new_b), (A.zone, new_a)]
    assert soa_serial(port, B.zone) == new_b


def test_projection_zones_from_options() -> None:
    plan = projection_zones(["a.k8s.example.org=source:a", "b.k8s.example.org=source:b",
                             "cluster.local"],
                            ["1.10.in-addr.arpa", "2.10.in-addr.arpa=source:b"])
    # an extra zone without a target joins the first --zone's projection
    assert [(p.spec.target, [c.zone for c in p.configs]) for p in plan] == [
        ("source:a", ["a.k8s.example.org.", "1.10.in-addr.arpa."]),
        ("source:b", ["b.k8s.example.org.", "2.10.in-addr.arpa."]),
        ("source:default", ["cluster.local."]),
    ]
    # further zones of a projection take its first zone's forward zone (PTRs point
    # into a's zone)
    (only,) = projection_zones(["a.k8s.example.org=source:a"], ["10.in-addr.arpa"])
    assert only.configs[1].forward_zone == "a.k8s.example.org."
    assert projection_zones([])[0].configs[0].zone == "cluster.local."
    assert projection_zones(["=exports:b,a"])[0].configs[0].zone == "clusterset.local."
    with pytest.raises(InvalidOption, match="zone a.k8s.example.org. is served twice "
                                            r"\(source:a and source:b\)"):
        projection_zones(["a.k8s.example.org=source:a", "A.k8s.example.org.=source:b"])
    with pytest.raises(InvalidOption, match="--forward-zone"):
        projection_zones(["a.k8s.example.org=source:a", "b.k8s.example.org=source:b"],
                         forward_zone="cluster.local")
    with pytest.raises(InvalidOption, match="is not source:NAME"):
        projection_zones(["a.k8s.example.org=cluster:a"])


@pytest.mark.parametrize(("args", "message"), [
    (["--zone", "a.example.org=source:a", "--zone", "a.example.org=source:b"],
     "zone a.example.org. is served twice"),
    (["--zone", "a.example.org=source:a", "--extra-zone", "a.example.org"],
     "zone a.example.org. is served twice"),
    (["--zone", "a.example.org=nope:a"], "is not source:NAME"),
    (["--zone", "a.example.org=source:A"], "source name"),
])
def test_serve_zone_options_are_usage_errors(tmp_path: Path, args: list[str],
                                             message: str) -> None:
    result = cli("serve", *args, db=tmp_path / "z.db")
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_serve_registers_and_serves_every_projection(store: Store, tmp_path: Path) -> None:
    """``serve()`` as the command runs it: the projections are registered, each zone is
    named with its serial in the ready line, /readyz names the projection without a
    version until it has one, and the summary gives each zone's serial."""
    ready: list[str] = []
    plan = projection_zones(["a.k8s.example.org=source:a", "b.k8s.example.org=source:b",
                             "c.k8s.example.org=source:c"])
    options = ServeOptions(listen=((HOST, 0),), poll=0.05, metrics_listen=(HOST, 0))

    def run(stop: threading.Event) -> ServeReport:
        return serve(store, (), options, ready=ready.append, stop=stop, projections=plan,
                     metrics=Metrics(), readiness=Readiness())

    with in_background(run, "serve", 60) as served:
        assert wait_until(lambda: bool(ready or served.done), 60), served
        va, vb = store.latest_version(SPEC_A.name), store.latest_version(SPEC_B.name)
        assert va is not None
        assert vb is not None
        assert re.fullmatch(
            rf"serving a\.k8s\.example\.org\. serial {va.serial}, b\.k8s\.example\.org\. "
            rf"serial {vb.serial}, c\.k8s\.example\.org\. \(no version yet: SERVFAIL\) "
            r"on 127\.0\.0\.1#\d+ \(udp, tcp\); metrics on http://127\.0\.0\.1:\d+/metrics",
            ready[0]), ready
        metrics_port = int(ready[0].rsplit(":", 1)[1].split("/")[0])
        assert http_get(metrics_port, "/readyz") == (
            503, "serve: no zone version loaded for c.k8s.example.org. (source:c)\n")
        ingest(store, tmp_path, "c", service("web", "10.3.0.1"))
        assert wait_until(lambda: http_get(metrics_port, "/readyz") == (200, "ok\n"))
        assert {s.target for s in store.projections()} >= {
            "source:a", "source:b", "source:c"}
    summary = served.value.summary()
    assert re.match(r"served a\.k8s\.example\.org\. up to serial \d+, b\.k8s\.example\.org\. up "
                    r"to serial \d+, c\.k8s\.example\.org\. up to serial \d+: ", summary) or \
        re.match(r"served a\.k8s\.example\.org\., b\.k8s\.example\.org\., c\.k8s\.example\."
                 r"org\. up to serial \d+: ", summary), summary


def test_one_feed_per_projection(store: Store) -> None:
    from zonegen.serve import Server

    feeds = [StoreFeed(store, [A], spec=SPEC_A), StoreFeed(store, [A], spec=SPEC_B)]
    with pytest.raises(InvalidOption, match="zone served twice: a.k8s.example.org."):
        Server(ServeOptions(), feeds)



def test_serve_watch_folds_every_served_projection(
        tmp_path: Path, kube: FakeKubeAPI, kubeconfig: Path) -> None:
    """``serve --watch`` watching cluster a, serving a's and b's zones: a's changes are
    folded into a's zone in this process (the watcher projects only the default
    projection), b's events stored by another command into b's, each at its serial."""
    from tests.helpers import fast
    from tests.test_watch import add_ready
    from zonegen.serve import WatchConfig

    st = Store.open(f"sqlite:///{tmp_path / 'w.db'}")
    ready: list[str] = []
    plan = projection_zones([f"{A.zone}=source:a", f"{B.zone}=source:b"])
    options = ServeOptions(listen=((HOST, 0),), poll=0.1)
    watch = WatchConfig(str(kubeconfig), None, fast(source="a"))
    add_ready(kube, "web", ["10.1.0.1"])

    def run(stop: threading.Event) -> ServeReport:
        return serve(st, (), options, watch=watch, ready=ready.append, stop=stop,
                     projections=plan)

    def port() -> int:
        bound = re.search(r"#(\d+) \(udp, tcp\)", ready[0])
        assert bound is not None, ready
        return int(bound.group(1))

    def answer(name: str) -> set[str]:
        if not ready:
            assert not served.done, served
            return set()
        r = dns.query.udp(dns.message.make_query(name, "A"), HOST, port=port(), timeout=5)
        return {rd.address for rr in r.answer for rd in rr}

    try:
        with in_background(run, "serve --watch", 60) as served:
            assert wait_until(lambda: answer(f"web.default.svc.{A.zone}") == {"10.1.0.1"}, 60)
            assert soa_serial(port(), B.zone) is None  # no event of b yet
            add_ready(kube, "api", ["10.1.0.2"])
            assert wait_until(lambda: answer(f"api.default.svc.{A.zone}") == {"10.1.0.2"}, 60)
            events = tmp_path / "events"
            events.mkdir()
            ingest(st, events, "b", service("web", "10.2.0.1"))
            assert wait_until(lambda: answer(f"web.shop.svc.{B.zone}") == {"10.2.0.1"}, 60)
            assert answer(f"web.shop.svc.{A.zone}") == set()  # b's Service stays in b's zone
            va, vb = st.latest_version(SPEC_A.name), st.latest_version(SPEC_B.name)
            assert va is not None
            assert vb is not None
            assert soa_serial(port(), A.zone) == va.serial
            assert soa_serial(port(), B.zone) == vb.serial
    finally:
        st.close()


def test_one_projection_is_one_feed(store: Store) -> None:
    from zonegen.serve import Server

    feeds = [StoreFeed(store, [A], spec=SPEC_A), StoreFeed(store, [B], spec=SPEC_A)]
    with pytest.raises(InvalidOption, match="projection served by two feeds: source:a"):
        Server(ServeOptions(), feeds)


def test_a_projection_without_events_of_its_sources_makes_no_version(store: Store) -> None:
    """The log holds events of a and b only: the default projection's feed (and c's)
    load nothing, rather than a first version with an empty zone (SERVFAIL until the
    cluster's events arrive, as for an empty log)."""
    for spec in (DEFAULT, SPEC_C):
        assert StoreFeed(store, [zone_config()], spec=spec).load() is None
        assert store.latest_version(spec.name) is None
    loaded = StoreFeed(store, [A], spec=SPEC_A).load()
    assert loaded is not None
    assert len(loaded.primary) == len(expected(("web", "10.1.0.1"))) + 1


def test_a_zone_inside_another_projections_zone_is_servfail_until_loaded(
        store: Store, tmp_path: Path) -> None:
    """``k8s.example.org`` from source a encloses ``c.k8s.example.org`` from source c:
    before c's first version a name in c's zone is SERVFAIL (not an answer or NXDOMAIN
    from a's zone, the closest zone that is loaded); then c's zone answers."""
    outer = zone_config(zone="k8s.example.org")
    feeds = [StoreFeed(store, [outer], spec=SPEC_A), StoreFeed(store, [C], spec=SPEC_C)]
    with ServerThread(ServeOptions(listen=((HOST, 0),), poll=0.05), feeds) as server:
        def rcode(name: str) -> int:
            r = dns.query.udp(dns.message.make_query(name, "A"), HOST, port=server.port,
                              timeout=5)
            return int(r.rcode())

        assert rcode("web.shop.svc.k8s.example.org.") == dns.rcode.NOERROR
        assert rcode("web.shop.svc.c.k8s.example.org.") == dns.rcode.SERVFAIL
        assert rcode("c.k8s.example.org.") == dns.rcode.SERVFAIL
        ingest(store, tmp_path, "c", service("web", "10.3.0.1"))
        server.wake()
        assert wait_until(lambda: rcode("web.shop.svc.c.k8s.example.org.") == 0)
        assert rcode("db.shop.svc.c.k8s.example.org.") == dns.rcode.NXDOMAIN
        assert rcode("web.shop.svc.k8s.example.org.") == dns.rcode.NOERROR
