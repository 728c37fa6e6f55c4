"""zonegen.metrics and zonegen.health: scrape a running endpoint and assert exact values."""

from __future__ import annotations

import http.client
import socket
import threading
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families

from zonegen.health import MetricsListenError, MetricsServer, Readiness, process_readiness
from zonegen.metrics import FAMILIES, LATENCY_BUCKETS, Metrics, process_metrics

Labels = tuple[tuple[str, str], ...]


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
def readiness() -> Readiness:
    return Readiness()


@pytest.fixture
def server(metrics: Metrics, readiness: Readiness):
    with MetricsServer("127.0.0.1", 0, metrics, readiness) as running:
        yield running


def get(server: MetricsServer, path: str, method: str = "GET",
        headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
    try:
        conn.request(method, path, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def scrape(server: MetricsServer) -> dict[tuple[str, Labels], float]:
    """Every sample of /metrics, as {(sample name, sorted labels): value}."""
    url = f"http://{server.host}:{server.port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - loopback
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=")
        text = response.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


PER_SOURCE = ("zonegen_events_stored_total", "zonegen_watch_synced",
              "zonegen_watch_reconnects_total", "zonegen_watch_last_event_timestamp_seconds")


ADDED_SERVICES = {"source": "default", "kind": "Service", "type": "ADDED"}


def value(samples: dict[tuple[str, Labels], float], name: str, **labels: str) -> float:
    if name in PER_SOURCE:  # one cluster: the default source
        labels.setdefault("source", "default")
    return samples[(name, tuple(sorted(labels.items())))]


def test_hooks_move_the_scraped_values(server: MetricsServer, metrics: Metrics) -> None:
    before = scrape(server)
    assert ("zonegen_events_stored_total",
            (("kind", "Service"), ("source", "default"), ("type", "ADDED"))) not in before
    assert value(before, "zonegen_zone_versions_total") == 0
    assert value(before, "zonegen_transfers_total", type="IXFR", result="refused") == 0
    assert value(before, "zonegen_notify_total", result="timeout") == 0
    assert value(before, "zonegen_build_info", version="0.1.0") == 1

    metrics.event_stored("Service", "ADDED", 3)
    metrics.event_stored("Service", "ADDED")
    metrics.event_stored("EndpointSlice", "DELETED", 2)
    metrics.zone_published("cluster.local", 2026120301, 117)
    metrics.zone_published("10.in-addr.arpa", 7, 12)
    metrics.zone_published("cluster.local", 2026120302, 119)
    metrics.watch_synced("Service", False)
    metrics.watch_synced("EndpointSlice", True)
    metrics.watch_reconnect("Service")
    metrics.watch_reconnect("Service")
    metrics.watch_event_seen("Service", datetime(2026, 12, 3, 7, 0, tzinfo=UTC))
    metrics.watch_event_seen("EndpointSlice", 1764745200.5)
    metrics.transfer("AXFR", "ok", 65_000)
    metrics.transfer("AXFR", "ok", 1_000)
    metrics.transfer("IXFR", "refused")
    metrics.notify("acknowledged")
    metrics.notify("timeout")
    metrics.notify("timeout")
    metrics.dns_request("udp", 1, 0)
    metrics.dns_request("udp", "A", "NOERROR")  # the same series, by name
    metrics.dns_request("tcp", 252, 0)
    metrics.dns_request("udp", 65280, 5)  # a private-use qtype: counted as "other"
    metrics.store_error("append")

    after = scrape(server)
    assert value(after, "zonegen_events_stored_total", kind="Service", type="ADDED") == 4
    assert value(after, "zonegen_events_stored_total", kind="EndpointSlice",
                 type="DELETED") == 2
    assert value(after, "zonegen_zone_serial", zone="cluster.local") == 2026120302
    assert value(after, "zonegen_zone_records", zone="cluster.local") == 119
    assert value(after, "zonegen_zone_serial", zone="10.in-addr.arpa") == 7
    assert value(after, "zonegen_watch_synced", kind="Service") == 0
    assert value(after, "zonegen_watch_synced", kind="EndpointSlice") == 1
    assert value(after, "zonegen_watch_reconnects_total", kind="Service") == 2
    assert value(after, "zonegen_watch_reconnects_total", kind="EndpointSlice") == 0
    assert value(after, "zonegen_watch_last_event_timestamp_seconds",
                 kind="Service") == datetime(2026, 12, 3, 7, 0, tzinfo=UTC).timestamp()
    assert value(after, "zonegen_watch_last_event_timestamp_seconds",
                 kind="EndpointSlice") == 1764745200.5
    assert value(after, "zonegen_transfers_total", type="AXFR", result="ok") == 2
    assert value(after, "zonegen_transfers_total", type="IXFR", result="refused") == 1
    assert value(after, "zonegen_transfer_bytes_total", type="AXFR") == 66_000
    assert value(after, "zonegen_transfer_bytes_total", type="IXFR") == 0
    assert value(after, "zonegen_notify_total", result="acknowledged") == 1
    assert value(after, "zonegen_notify_total", result="timeout") == 2
    assert value(after, "zonegen_dns_requests_total", proto="udp", qtype="A",
                 rcode="NOERROR") == 2
    assert value(after, "zonegen_dns_requests_total", proto="tcp", qtype="AXFR",
                 rcode="NOERROR") == 1
    assert value(after, "zonegen_dns_requests_total", proto="udp", qtype="other",
                 rcode="REFUSED") == 1
    assert value(after, "zonegen_store_errors_total", operation="append") == 1
    assert ("zonegen_leader", ()) not in after  # no lease: no leader gauge

    metrics.lease_changed(True, 4)
    leased = scrape(server)
    assert value(leased, "zonegen_leader") == 1
    assert value(leased, "zonegen_lease_epoch") == 4
    metrics.lease_changed(False, 5)
    assert value(scrape(server), "zonegen_leader") == 0


def test_event_to_version_histogram_counts_each_event(server: MetricsServer,
                                                      metrics: Metrics) -> None:
    now = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
    metrics.version_committed([now - timedelta(milliseconds=3),
                               now - timedelta(milliseconds=200),
                               (now - timedelta(seconds=7)).timestamp()], now=now)
    metrics.version_committed([now + timedelta(seconds=1)], now=now)  # clock skew: 0
    samples = scrape(server)
    assert value(samples, "zonegen_zone_versions_total") == 2
    assert value(samples, "zonegen_event_to_version_seconds_count") == 4
    assert value(samples, "zonegen_event_to_version_seconds_sum") == pytest.approx(7.203)
    expected = {0.005: 2, 0.1: 2, 0.25: 3, 5.0: 3, 10.0: 4, 300.0: 4}
    for bound, count in expected.items():
        assert value(samples, "zonegen_event_to_version_seconds_bucket",
                     le=str(bound)) == count
    assert value(samples, "zonegen_event_to_version_seconds_bucket", le="+Inf") == 4
    assert len(LATENCY_BUCKETS) == len({b for b in LATENCY_BUCKETS})


def test_every_family_is_exported_under_its_listed_name(server: MetricsServer,
                                                        metrics: Metrics) -> None:
    metrics.event_stored("Service", "ADDED")
    metrics.zone_published("cluster.local", 1, 1)
    metrics.version_committed([], now=0.0)
    metrics.watch_synced("Service", True)
    metrics.watch_event_seen("Service", 1.0)
    metrics.store_error("read")
    metrics.dns_request("udp", 1, 0)
    metrics.lease_changed(True, 1)
    names = {name for name, _labels in scrape(server)}
    families = {n.removesuffix("_bucket").removesuffix("_count").removesuffix("_sum")
                for n in names if not n.endswith("_created")}
    assert families == set(FAMILIES)


def test_dns_request_counts_exactly_from_many_threads(metrics: Metrics) -> None:
    def hammer() -> None:
        for _ in range(20_000):
            metrics.dns_request("udp", 28, 3)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    inc = metrics.dns_request_counter("udp", "AAAA", "NXDOMAIN")
    inc()
    assert metrics.dns_requests.value("udp", "AAAA", "NXDOMAIN") == 80_001


def test_two_instances_do_not_share_values() -> None:
    first, second = Metrics(), Metrics()
    first.event_stored("Service", "ADDED", 5)
    first.dns_request("udp", 1, 0)
    assert second.registry.get_sample_value(
        "zonegen_events_stored_total", ADDED_SERVICES) is None
    assert first.registry.get_sample_value(
        "zonegen_events_stored_total", ADDED_SERVICES) == 5
    assert second.dns_requests.value("udp", "A", "NOERROR") == 0
    assert process_metrics() is process_metrics()
    assert process_readiness() is process_readiness()


def test_readyz_lists_reasons_until_every_condition_clears(
        server: MetricsServer, readiness: Readiness) -> None:
    assert get(server, "/readyz")[0] == 200
    readiness.block("watch:Service", "watch: initial list of Service not stored")
    readiness.block("watch:EndpointSlice",
                    "watch: initial list of EndpointSlice not stored")
    readiness.block("serve", "serve: no zone version loaded")
    readiness.block("watch:Service", "watch: API server refused list services (403)")
    status, headers, body = get(server, "/readyz")
    assert status == 503
    assert headers["Content-Type"] == "text/plain; charset=utf-8"
    assert body.decode() == ("watch: API server refused list services (403)\n"
                             "watch: initial list of EndpointSlice not stored\n"
                             "serve: no zone version loaded\n")
    readiness.unblock("watch:Service")
    readiness.unblock("serve")
    readiness.unblock("serve")  # idempotent
    assert get(server, "/readyz")[0::2] == (
        503, b"watch: initial list of EndpointSlice not stored\n")
    assert not readiness.ready
    readiness.unblock("watch:EndpointSlice")
    assert readiness.ready
    assert get(server, "/readyz")[0::2] == (200, b"ok\n")


def test_healthz_head_unknown_paths_and_methods(server: MetricsServer,
                                                readiness: Readiness) -> None:
    readiness.block("serve", "serve: no zone version loaded")
    assert get(server, "/healthz")[0::2] == (200, b"ok\n")  # alive though not ready
    status, headers, body = get(server, "/healthz", method="HEAD")
    assert (status, body, headers["Content-Length"]) == (200, b"", "3")
    status, headers, body = get(server, "/metrics", method="HEAD")
    assert (status, body) == (200, b"")
    assert int(headers["Content-Length"]) == len(get(server, "/metrics")[2])
    assert get(server, "/readyz", method="HEAD")[0::2] == (503, b"")
    assert get(server, "/")[0] == 404
    assert get(server, "/metrics/extra")[0] == 404
    assert get(server, "/healthz?verbose=1")[0] == 200
    status, headers, _ = get(server, "/metrics", method="POST")
    assert (status, headers["Allow"]) == (405, "GET, HEAD")
    # OpenMetrics when asked, as Prometheus asks
    status, headers, body = get(
        server, "/metrics",
        headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert headers["Content-Type"].startswith("application/openmetrics-text")
    assert body.endswith(b"# EOF\n")
    # ?name[]= restricts the answer, as prometheus_client's own handler does
    _, _, body = get(server, "/metrics?name[]=zonegen_zone_versions_total")
    lines = [line for line in body.decode().splitlines() if not line.startswith("#")]
    assert lines == ["zonegen_zone_versions_total 0.0"]


def test_a_malformed_request_gets_400_and_the_server_keeps_serving(
        server: MetricsServer) -> None:
    with socket.create_connection((server.host, server.port), timeout=10) as raw:
        raw.sendall(b"\x16\x03\x01 garbage not http\r\n\r\n")
        reply = raw.recv(4096)
    # http.server answers an unparseable request line HTTP/0.9-style: a bare error body
    assert reply.startswith(b"400 Bad request")
    with socket.create_connection((server.host, server.port), timeout=10) as raw:
        raw.sendall(b"GET /healthz HTTP/2.0\r\n\r\n")
        assert raw.recv(4096) == b"505 Invalid HTTP version (2.0)\n"
    with socket.create_connection((server.host, server.port), timeout=10) as raw:
        raw.sendall(b"GET /healthz HTTP/1.1\r\n")  # then hang up mid-request
    assert get(server, "/healthz")[0] == 200


def test_ipv6_loopback(metrics: Metrics, readiness: Readiness) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        server = MetricsServer("::1", 0, metrics, readiness)
    except MetricsListenError:
        pytest.skip("::1 not configured")
    with server:
        url = f"http://[::1]:{server.port}/healthz"
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310
            assert response.read() == b"ok\n"


def test_stop_closes_the_port_and_a_busy_port_is_one_line(
        metrics: Metrics, readiness: Readiness) -> None:
    server = MetricsServer("127.0.0.1", 0, metrics, readiness).start()
    port = server.port
    with pytest.raises(MetricsListenError) as failed:
        MetricsServer("127.0.0.1", port, metrics, readiness)
    assert str(failed.value) == \
        f"metrics endpoint 127.0.0.1:{port}: cannot listen: Address already in use"
    server.stop()
    server.stop()  # idempotent
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5)  # noqa: S310
    MetricsServer("127.0.0.1", port, metrics, readiness).stop()  # the port is free again
