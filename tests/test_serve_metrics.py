"""serve's metrics, probes and lifecycle logs (#10): a real server, scraped over HTTP.

Each test runs a server with its own :class:`Metrics` and :class:`Readiness` (the
process-wide ones would carry other tests' counts) behind a real
:class:`MetricsServer` on a free loopback port, sends real DNS requests with dnspython
and asserts the exact values scraped. The command-line test uses the process-wide ones
in a subprocess, as an operator would."""

from __future__ import annotations

import json
import logging
import re
import socket
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.background import in_background
from tests.cli_process import dns_port, run_cli, serve_process, serving_line, stop_serve
from tests.helpers import http_get, wait_until
from tests.kubeapi import FakeKubeAPI
from tests.notify_listener import NotifyListener
from tests.test_serve import (
    CONFIG,
    DEMO,
    HOST,
    POD2,
    REVERSE,
    moved_pod,
    q,
    tcp,
    udp,
)
from zonegen.health import MetricsServer, Readiness
from zonegen.ingest import ingest_files
from zonegen.logs import JsonFormatter
from zonegen.metrics import Metrics
from zonegen.serve import ServeOptions, StoreFeed
from zonegen.serve.server import question_type
from zonegen.store import Store
from zonegen.testing import ServerThread

ROOT = Path(__file__).resolve().parent.parent
Labels = tuple[tuple[str, str], ...]
Samples = dict[tuple[str, Labels], float]


# --------------------------------------------------------------------------- helpers


def get(port: int, path: str) -> tuple[int, str]:
    return http_get(port, path, HOST)


def scrape(port: int) -> Samples:
    """Every sample of /metrics as {(name, sorted labels): value}."""
    status, text = get(port, "/metrics")
    assert status == 200
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """A sample's value; 0 for a labelled counter not created yet."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def requests(samples: Samples, proto: str, qtype: str, rcode: str) -> float:
    return value(samples, "zonegen_dns_requests_total", proto=proto, qtype=qtype, rcode=rcode)


def raw_tcp(port: int, message: dns.message.Message) -> tuple[dns.message.Message, int]:
    """One request over TCP and its one-message answer, with the octets it took on the
    wire (2-octet length included): what ``zonegen_transfer_bytes_total`` must count."""
    wire = message.to_wire()
    with socket.create_connection((HOST, port), timeout=10) as s:
        s.sendall(struct.pack("!H", len(wire)) + wire)
        f = s.makefile("rb")
        (length,) = struct.unpack("!H", f.read(2))
        data = f.read(length)
    return dns.message.from_wire(data, xfr=True, one_rr_per_rrset=True), length + 2


def soa(serial: int) -> dns.rrset.RRset:
    return dns.rrset.from_text("cluster.local.", 0, "IN", "SOA",
                               f". . {serial} 0 0 0 0")


class Running:
    """A ServerThread with its metrics endpoint."""

    def __init__(self, thread: ServerThread, endpoint: MetricsServer, metrics: Metrics,
                 readiness: Readiness) -> None:
        self.thread = thread
        self.endpoint = endpoint
        self.metrics = metrics
        self.readiness = readiness

    @property
    def port(self) -> int:
        return self.thread.port

    def scrape(self) -> Samples:
        return scrape(self.endpoint.port)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    st = Store.open(f"sqlite:///{tmp_path / 'zonegen.db'}")
    yield st
    st.close()


@pytest.fixture
def run(store: Store) -> Iterator[Callable[..., Running]]:
    started: list[Running] = []

    def _run(**options: Any) -> Running:
        options.setdefault("listen", ((HOST, 0),))
        options.setdefault("poll", 0.05)
        metrics, readiness = Metrics(), Readiness()
        endpoint = MetricsServer(HOST, 0, metrics, readiness).start()
        thread = ServerThread(ServeOptions(**options),
                              StoreFeed(store, (CONFIG, REVERSE), metrics=metrics),
                              metrics=metrics, readiness=readiness)
        running = Running(thread, endpoint, metrics, readiness)
        started.append(running)
        thread.start()
        return running

    yield _run
    for running in started:
        running.thread.stop()
        running.endpoint.stop()


class Lines(logging.Handler):
    """The zonegen logger's records as zonegen.logs' JSON lines, parsed back."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.setFormatter(JsonFormatter())
        self.lines: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


@pytest.fixture
def json_lines() -> Iterator[Lines]:
    logger = logging.getLogger("zonegen")
    handler = Lines()
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


# --------------------------------------------------------------------------- tests


def test_readyz_is_503_with_the_reason_until_the_first_version_is_served(
        run: Callable[..., Running], store: Store) -> None:
    """An empty log: SERVFAIL and not ready ("serve: no zone version loaded"); the first
    stored version is loaded, served and makes /readyz 200. /healthz is 200 throughout."""
    server = run(poll=3600)
    port = server.endpoint.port
    assert get(port, "/readyz") == (503, "serve: no zone version loaded\n")
    assert get(port, "/healthz") == (200, "ok\n")
    assert udp(server.port, q("cluster.local.", "SOA")).rcode() == dns.rcode.SERVFAIL
    assert tcp(server.port, q("cluster.local.", "AXFR")).rcode() == dns.rcode.SERVFAIL
    samples = server.scrape()
    assert requests(samples, "udp", "SOA", "SERVFAIL") == 1
    assert requests(samples, "tcp", "AXFR", "SERVFAIL") == 1
    assert value(samples, "zonegen_transfers_total", type="AXFR", result="failed") == 1
    assert ("zonegen_zone_serial", (("zone", "cluster.local."),)) not in samples

    ingest_files(store, [str(DEMO)])
    server.thread.wake()
    assert wait_until(lambda: get(port, "/readyz")[0] == 200), get(port, "/readyz")
    assert get(port, "/readyz") == (200, "ok\n")
    assert get(port, "/healthz") == (200, "ok\n")
    latest = store.latest_version()
    assert latest is not None
    reply = udp(server.port, q("cluster.local.", "SOA"))
    assert reply.answer[0][0].serial == latest.serial
    samples = server.scrape()
    assert value(samples, "zonegen_zone_serial", zone="cluster.local.") == latest.serial
    assert value(samples, "zonegen_zone_serial", zone="10.in-addr.arpa.") == latest.serial
    assert requests(samples, "udp", "SOA", "NOERROR") == 1


def test_requests_transfers_serials_and_versions_move_exactly(
        run: Callable[..., Running], store: Store, tmp_path: Path) -> None:
    ingest_files(store, [str(DEMO)])
    server = run()
    first = store.latest_version()
    assert first is not None
    assert get(server.endpoint.port, "/readyz") == (200, "ok\n")

    # A label holding zero octets that read like "A, IN", sent first: counted as what
    # it asks (AAAA), and the A queries after it still as A. (Once "A, IN" with that
    # rcode is cached, such a crafted request would count as A: only itself, wrongly.)
    tricky = (struct.pack("!HHHHHH", 7, 0, 1, 0, 0, 0) + b"\x06a\x00\x00\x01\x00\x01\x00"
              + struct.pack("!HH", 28, 1))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(10)
        sock.sendto(tricky, (HOST, server.port))
        assert dns.message.from_wire(sock.recv(65535)).rcode() == dns.rcode.REFUSED

    # queries, over both transports, counted by proto, qtype and rcode
    for _ in range(3):
        assert udp(server.port, q(POD2, "A")).rcode() == dns.rcode.NOERROR
    for _ in range(2):
        assert tcp(server.port, q(POD2, "A")).rcode() == dns.rcode.NOERROR
    assert udp(server.port, q("nothing.cluster.local.", "AAAA")).rcode() == dns.rcode.NXDOMAIN
    assert udp(server.port, q("example.org.", "A")).rcode() == dns.rcode.REFUSED
    assert udp(server.port, q(POD2, "TYPE4000")).rcode() == dns.rcode.NOERROR
    samples = server.scrape()
    assert requests(samples, "udp", "A", "NOERROR") == 3
    assert requests(samples, "tcp", "A", "NOERROR") == 2
    assert requests(samples, "udp", "AAAA", "NXDOMAIN") == 1
    assert requests(samples, "udp", "A", "REFUSED") == 1
    assert requests(samples, "udp", "other", "NOERROR") == 1  # rare qtypes pooled
    assert requests(samples, "udp", "AAAA", "REFUSED") == 1  # the crafted one


    # the published version
    axfr, axfr_bytes = raw_tcp(server.port, q("cluster.local.", "AXFR"))
    assert axfr.answer[0].rdtype == axfr.answer[-1].rdtype == dns.rdatatype.SOA
    records = len(axfr.answer) - 1  # the SOA is sent twice
    # a TCP transfer is counted once its last octet is written: the client may read it
    # a moment before that
    assert wait_until(lambda: value(server.scrape(), "zonegen_transfers_total", type="AXFR",
                                  result="ok") == 1)
    samples = server.scrape()
    assert value(samples, "zonegen_zone_serial", zone="cluster.local.") == first.serial
    assert value(samples, "zonegen_zone_records", zone="cluster.local.") == records
    assert value(samples, "zonegen_transfers_total", type="AXFR", result="ok") == 1
    assert value(samples, "zonegen_transfer_bytes_total", type="AXFR") == axfr_bytes
    assert requests(samples, "tcp", "AXFR", "NOERROR") == 1
    assert value(samples, "zonegen_zone_versions_total") == 0  # ingest projected

    # refused transfers: a zone not served here (NOTAUTH), AXFR over UDP (FORMERR)
    assert tcp(server.port, q("example.org.", "AXFR")).rcode() == dns.rcode.NOTAUTH
    assert udp(server.port, q("cluster.local.", "AXFR")).rcode() == dns.rcode.FORMERR
    samples = server.scrape()
    assert value(samples, "zonegen_transfers_total", type="AXFR", result="refused") == 2
    assert value(samples, "zonegen_transfers_total", type="AXFR", result="ok") == 1

    # a new version stored without projection: serve projects it (a version counted),
    # serves it (serial and records move) and sends it by IXFR
    ingest_files(store, [str(moved_pod(tmp_path, "10.244.2.60", "7001"))], project=False)
    assert wait_until(lambda: server.thread.zones.serial != first.serial)
    second = store.latest_version()
    assert second is not None
    ixfr = q("cluster.local.", "IXFR")
    ixfr.authority.append(soa(first.serial))
    diff, ixfr_bytes = raw_tcp(server.port, ixfr)
    soas = [i for i, rr in enumerate(diff.answer) if rr.rdtype == dns.rdatatype.SOA]
    assert len(soas) == 4  # one step: SOA new, SOA old, removed, SOA new, added, SOA new
    assert soas[0] == 0
    assert soas[-1] == len(diff.answer) - 1
    assert wait_until(lambda: value(server.scrape(), "zonegen_transfers_total", type="IXFR",
                                  result="ok") == 1)
    samples = server.scrape()
    assert value(samples, "zonegen_zone_versions_total") == 1
    assert value(samples, "zonegen_zone_serial", zone="cluster.local.") == second.serial
    assert value(samples, "zonegen_zone_records", zone="cluster.local.") == records
    assert value(samples, "zonegen_transfers_total", type="IXFR", result="ok") == 1
    assert value(samples, "zonegen_transfer_bytes_total", type="IXFR") == ixfr_bytes
    assert value(samples, "zonegen_transfer_bytes_total", type="AXFR") == axfr_bytes

    # IXFR over UDP counts as a transfer too (its bytes: the datagram)
    ixfr_udp = q("cluster.local.", "IXFR", use_edns=0, payload=1232)
    ixfr_udp.authority.append(soa(first.serial))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(10)
        sock.sendto(ixfr_udp.to_wire(), (HOST, server.port))
        datagram = sock.recv(65535)
    reply = dns.message.from_wire(datagram, xfr=True, one_rr_per_rrset=True)
    assert len(reply.answer) == len(diff.answer)
    samples = server.scrape()
    assert value(samples, "zonegen_transfers_total", type="IXFR", result="ok") == 2
    assert value(samples, "zonegen_transfer_bytes_total", type="IXFR") == \
        ixfr_bytes + len(datagram)
    assert requests(samples, "udp", "IXFR", "NOERROR") == 1
    assert requests(samples, "tcp", "IXFR", "NOERROR") == 1


def test_transfer_refused_by_the_acl_is_counted(run: Callable[..., Running],
                                                store: Store) -> None:
    ingest_files(store, [str(DEMO)])
    server = run(allow_transfer=())
    assert tcp(server.port, q("cluster.local.", "AXFR")).rcode() == dns.rcode.REFUSED
    ixfr = q("cluster.local.", "IXFR")
    ixfr.authority.append(soa(1))
    assert tcp(server.port, ixfr).rcode() == dns.rcode.REFUSED
    samples = server.scrape()
    assert value(samples, "zonegen_transfers_total", type="AXFR", result="refused") == 1
    assert value(samples, "zonegen_transfers_total", type="IXFR", result="refused") == 1
    assert value(samples, "zonegen_transfers_total", type="AXFR", result="ok") == 0
    assert value(samples, "zonegen_transfer_bytes_total", type="AXFR") == 0
    assert requests(samples, "tcp", "AXFR", "REFUSED") == 1


def test_notify_outcomes_are_counted_and_logged(run: Callable[..., Running], store: Store,
                                                json_lines: Lines) -> None:
    ingest_files(store, [str(DEMO)])
    answering = NotifyListener(HOST)  # acknowledges every NOTIFY
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # a secondary that never answers
    silent.bind((HOST, 0))
    answering_at = f"{HOST}#{answering.port}"
    silent_at = f"{HOST}#{silent.getsockname()[1]}"
    try:
        server = run(notify=((HOST, answering.port), (HOST, silent.getsockname()[1])),
                     notify_attempts=2, notify_timeout=0.05)

        def counted() -> bool:
            samples = server.scrape()
            return value(samples, "zonegen_notify_total", result="timeout") == 2 and \
                value(samples, "zonegen_notify_total", result="acknowledged") == 2
        # two zones (cluster.local. and 10.in-addr.arpa.) to each secondary
        assert wait_until(counted), server.scrape()
    finally:
        answering.close()
        silent.close()
    latest = store.latest_version()
    assert latest is not None
    notified = [line for line in json_lines.lines if line["message"].startswith("NOTIFY")]
    acknowledged = [line for line in notified if line.get("result") == "acknowledged"]
    given_up = [line for line in notified if line.get("result") == "timeout"]
    assert sorted(line["zone"] for line in acknowledged) == ["10.in-addr.arpa.",
                                                             "cluster.local."]
    assert {line["peer"] for line in acknowledged} == {answering_at}
    assert {line["peer"] for line in given_up} == {silent_at}
    assert all(line["serial"] == latest.serial for line in notified)
    assert all(line["level"] == "warning" for line in given_up)
    assert {line["attempts"] for line in given_up} == {2}


def test_transfer_and_new_serial_log_lines_carry_fields(run: Callable[..., Running],
                                                        store: Store, tmp_path: Path,
                                                        json_lines: Lines) -> None:
    ingest_files(store, [str(DEMO)])
    server = run()
    first = store.latest_version()
    assert first is not None
    started = [line for line in json_lines.lines if line["message"].startswith("serving ")]
    assert len(started) == 1
    assert started[0]["listeners"] == [f"{HOST}#{server.port}"]
    assert started[0]["zones"] == ["cluster.local.", "10.in-addr.arpa."]
    assert started[0]["database"] == str(tmp_path / "zonegen.db")
    assert started[0]["serial"] == first.serial

    ingest_files(store, [str(moved_pod(tmp_path, "10.244.2.60", "7001"))])
    assert wait_until(lambda: server.thread.zones.serial != first.serial)
    second = store.latest_version()
    assert second is not None
    axfr, size = raw_tcp(server.port, q("cluster.local.", "AXFR"))
    assert wait_until(lambda: any(line.get("type") == "AXFR" for line in json_lines.lines))

    new = [line for line in json_lines.lines
           if line.get("serial") == second.serial and "added" in line and "zone" in line]
    by_zone = {line["zone"]: line for line in new}
    assert set(by_zone) == {"cluster.local.", "10.in-addr.arpa."}
    forward = by_zone["cluster.local."]
    assert forward["level"] == "info"
    assert forward["previous_serial"] == first.serial
    # the pod's A moved, and the same address under the headless Service name
    assert (forward["added"], forward["removed"]) == (2, 2)
    assert forward["records"] == len(axfr.answer) - 1
    reverse = by_zone["10.in-addr.arpa."]
    assert (reverse["added"], reverse["removed"]) == (1, 1)  # and its PTR

    transfer = next(line for line in json_lines.lines if line.get("type") == "AXFR")
    assert transfer["level"] == "info"
    assert transfer["zone"] == "cluster.local."
    assert transfer["serial"] == second.serial
    assert transfer["peer"].startswith(f"{HOST}#")
    assert transfer["records"] == len(axfr.answer)
    assert transfer["bytes"] == size
    assert transfer["messages"] == 1
    assert isinstance(transfer["seconds"], float)

    # nothing per query at INFO
    before = len(json_lines.lines)
    for _ in range(5):
        udp(server.port, q(POD2, "A"))
        udp(server.port, q("example.org.", "A"))
    assert len(json_lines.lines) == before


def test_a_store_that_cannot_be_read_makes_serve_not_ready(run: Callable[..., Running],
                                                           store: Store) -> None:
    """The store goes away under a running serve: it keeps answering from what it has,
    counts the store error, and /readyz says why until the store answers again."""
    ingest_files(store, [str(DEMO)])
    server = run()
    with store.engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE zone_versions RENAME TO zone_versions_away")
    port = server.endpoint.port
    assert wait_until(lambda: get(port, "/readyz")[0] == 503)
    status, body = get(port, "/readyz")
    assert body.startswith("serve: cannot read the store: ")
    assert value(server.scrape(), "zonegen_store_errors_total", operation="refresh") >= 1
    assert udp(server.port, q(POD2, "A")).rcode() == dns.rcode.NOERROR
    with store.engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE zone_versions_away RENAME TO zone_versions")
    assert wait_until(lambda: get(port, "/readyz") == (200, "ok\n"))


def test_question_type_reads_the_wire() -> None:
    for rtype in ("A", "AAAA", "SRV", "AXFR", "IXFR", "TYPE4000"):
        wire = q("a.b.cluster.local.", rtype).to_wire()
        assert question_type(wire) == dns.rdatatype.from_text(rtype)
    wire = q("cluster.local.", "SOA").to_wire()
    assert question_type(wire[:12]) == 0  # cut after the header
    assert question_type(wire[:-3]) == 0  # cut inside the type
    assert question_type(wire[:4] + b"\0\0" + wire[6:]) == 0  # no question
    assert question_type(b"") == 0
    pointer = wire[:12] + b"\xc0\x0c" + wire[-4:]
    assert question_type(pointer) == dns.rdatatype.SOA
    chaos = q("version.bind.", "TXT", rdclass="CH").to_wire()
    assert question_type(chaos) == dns.rdatatype.TXT
    # a label holding a zero octet: the find stops inside it, the walk does not
    binary = wire[:12] + b"\x03a\x00b\x00" + b"\x00\x1c\x00\x01"
    assert question_type(binary) == dns.rdatatype.AAAA
    assert question_type(q(".", "NS").to_wire()) == dns.rdatatype.NS  # the root


# --------------------------------------------------------------------------- command line


def test_cli_serve_metrics_listen(tmp_path: Path) -> None:
    """``serve --metrics-listen 127.0.0.1:0`` on an empty database: the port bound is in
    the serving line; /readyz is 503 until ``ingest`` stores a version, then 200; the
    counters move with the queries sent."""
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    Store.open(db).close()
    with serve_process(db, "--listen", f"{HOST}:0", "--metrics-listen", f"{HOST}:0",
                       "--poll", "0.1") as proc:
        line = serving_line(proc)
        metrics_port = re.search(r"metrics on http://127\.0\.0\.1:(\d+)/metrics", line)
        assert metrics_port is not None, line
        port, mport = dns_port(line), int(metrics_port.group(1))
        assert get(mport, "/readyz") == (503, "serve: no zone version loaded\n")
        assert get(mport, "/healthz") == (200, "ok\n")
        assert udp(port, q("cluster.local.", "SOA")).rcode() == dns.rcode.SERVFAIL
        assert run_cli(db, "ingest", str(DEMO)).returncode == 0
        assert wait_until(lambda: get(mport, "/readyz")[0] == 200, 60)
        for _ in range(4):
            assert udp(port, q(POD2, "A")).rcode() == dns.rcode.NOERROR
        samples = scrape(mport)
        assert requests(samples, "udp", "A", "NOERROR") == 4
        assert requests(samples, "udp", "SOA", "SERVFAIL") == 1
        reply = udp(port, q("cluster.local.", "SOA"))
        assert value(samples, "zonegen_zone_serial", zone="cluster.local.") == \
            reply.answer[0][0].serial
        assert "served cluster.local. up to serial" in stop_serve(proc)


def test_cli_metrics_listen_errors_are_one_line(tmp_path: Path) -> None:
    from click.testing import CliRunner

    import cli

    db = f"sqlite:///{tmp_path / 'e.db'}"
    Store.open(db).close()
    result = CliRunner().invoke(cli.main, ["--db", db, "serve", "--listen", f"{HOST}:0",
                                           "--metrics-listen", "nowhere:99"])
    assert result.exit_code != 0
    assert "--metrics-listen 'nowhere:99'" in result.output
    assert "Traceback" not in result.output
    with socket.socket() as taken:
        taken.bind((HOST, 0))
        taken.listen()
        busy = taken.getsockname()[1]
        result = CliRunner().invoke(cli.main, [
            "--db", db, "serve", "--listen", f"{HOST}:0", "--metrics-listen",
            f"{HOST}:{busy}"])
    assert result.exit_code != 0
    assert f"metrics endpoint {HOST}:{busy}: cannot listen" in result.output
    assert "Traceback" not in result.output


def test_serve_watch_is_ready_once_the_first_version_is_served(
        tmp_path: Path, kube: FakeKubeAPI, kubeconfig: Path) -> None:
    """``serve --watch --metrics-listen``: not ready before the watcher's first version,
    ready once it is served; each new version moves the serial gauge at once."""
    import threading

    from tests.helpers import fast
    from tests.test_watch import add_ready
    from zonegen.serve import ServeReport, WatchConfig, serve

    st = Store.open(f"sqlite:///{tmp_path / 'w.db'}")
    ready: list[str] = []
    metrics, readiness = Metrics(), Readiness()
    watch = WatchConfig(str(kubeconfig), None, fast())
    add_ready(kube, "web", ["10.1.0.1"])

    def run(stop: threading.Event) -> ServeReport:
        options = ServeOptions(listen=((HOST, 0),), poll=3600, metrics_listen=(HOST, 0))
        return serve(st, [CONFIG], options, watch=watch, ready=ready.append, stop=stop,
                     metrics=metrics, readiness=readiness)

    try:
        with in_background(run, "serve --watch", 60) as served:
            assert wait_until(lambda: bool(ready or served.done), 60), served
            found = re.search(r"metrics on http://127\.0\.0\.1:(\d+)/metrics", ready[0])
            assert found is not None, ready
            mport = int(found.group(1))
            assert get(mport, "/healthz") == (200, "ok\n")
            assert wait_until(lambda: get(mport, "/readyz")[0] == 200, 60), get(mport, "/readyz")
            first = st.latest_version()
            assert first is not None
            assert value(scrape(mport), "zonegen_zone_serial", zone="cluster.local.") == \
                first.serial
            add_ready(kube, "api", ["10.1.0.2"])

            def moved() -> bool:
                latest = st.latest_version()
                return latest is not None and latest.serial != first.serial and value(
                    scrape(mport), "zonegen_zone_serial", zone="cluster.local.") == latest.serial
            assert wait_until(moved, 60)
    finally:
        st.close()


def test_the_deployments_serve_arguments_parse() -> None:
    """deploy/base runs ``serve --watch ... --metrics-listen=0.0.0.0:9153`` and probes that
    port: the command line must accept it, and bind what the probes ask."""
    import yaml

    import cli
    from zonegen.serve import serve_options

    docs = list(yaml.safe_load_all((ROOT / "deploy" / "base" / "deployment.yaml").read_text()))
    (deployment,) = [d for d in docs if d and d["kind"] == "Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    args = container["args"]
    ctx = cli.serve.make_context("serve", list(args[args.index("serve") + 1:]))
    assert ctx.params["metrics_listen"] == "0.0.0.0:9153"
    options = serve_options(listen=ctx.params["listen"],
                            metrics_listen=ctx.params["metrics_listen"])
    assert options.metrics_listen == ("0.0.0.0", 9153)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["metrics"] == 9153
