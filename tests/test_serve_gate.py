"""The initial sync gate of ``zonegen serve --watch`` as an operator runs it (#9): a real
process against the fake API server (tests/kubeapi.py) holding back the EndpointSlice
list. Until the initial list of every kind is stored, queries and transfers get
SERVFAIL, no NOTIFY goes out and no version is stored; then ONE version holds the
Services and their endpoints. A restart on the kept database answers at once."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.zone
import pytest

from tests.helpers import ROOT, wait_for
from tests.kubeapi import ENDPOINTSLICES, SERVICES, FakeKubeAPI, endpoint_slice, service
from tests.notify_listener import NotifyListener
from zonegen import store as zstore

ZONE = "cluster.local."
STARTUP = 120.0  # seconds a loaded machine may take to start a Python process


class ServeProcess:
    """``python cli.py --db URL serve --watch …`` with stderr read by a thread (so the
    pipe never fills); :attr:`port` is the DNS port from its ready line."""

    def __init__(self, db: str, kubeconfig: Path, notify: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "cli.py"), "--db", db, "serve", "--watch",
             "--kubeconfig", str(kubeconfig), "--listen", "127.0.0.1:0",
             "--notify", f"127.0.0.1:{notify}", "--poll", "0.05"],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        ready = wait_for(lambda: next((ln for ln in self.lines if ln.startswith("serving ")),
                                      None) or self.proc.poll() is not None, "ready line",
                         STARTUP)
        assert isinstance(ready, str), self.lines
        self.ready = ready
        found = re.search(r"#(\d+) \(udp, tcp\)", ready)
        assert found is not None, ready
        self.port = int(found.group(1))

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._reader.join(10)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()

    def query(self, name: str, rtype: str) -> dns.message.Message:
        return dns.query.udp(dns.message.make_query(name, rtype), "127.0.0.1", port=self.port,
                             timeout=5)

    def axfr_rcode(self) -> int:
        response = dns.query.tcp(dns.message.make_query(ZONE, "AXFR"), "127.0.0.1",
                                 port=self.port, timeout=5)
        return int(response.rcode())

    def axfr(self) -> dns.zone.Zone:
        return dns.zone.from_xfr(dns.query.xfr("127.0.0.1", ZONE, port=self.port, timeout=5,
                                               relativize=False), relativize=False)


@pytest.fixture
def listener() -> Iterator[NotifyListener]:
    n = NotifyListener()
    yield n
    n.close()


def stored_versions(db: str) -> list[int]:
    with zstore.opened(db, "read") as st:
        return [v.serial for v in st.versions()]


EXPECTED = {
    # the apex
    f"{ZONE} 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. SERIAL 7200 1800 86400 5",
    f"{ZONE} 5 IN NS ns.dns.cluster.local.",
    "ns.dns.cluster.local. 5 IN A 127.0.0.1",
    'dns-version.cluster.local. 28800 IN TXT "1.1.0"',
    # the ClusterIP Service
    "web.default.svc.cluster.local. 5 IN A 10.96.0.10",
    "web.default.svc.cluster.local. 5 IN SRV 0 100 80 web.default.svc.cluster.local.",
    "_http._tcp.web.default.svc.cluster.local. 5 IN SRV 0 100 80 "
    "web.default.svc.cluster.local.",
    # the headless Service: its endpoints, from the held-back EndpointSlice list
    "db.default.svc.cluster.local. 5 IN A 10.1.0.1",
    "db.default.svc.cluster.local. 5 IN A 10.1.0.2",
    "10-1-0-1.db.default.svc.cluster.local. 5 IN A 10.1.0.1",
    "10-1-0-2.db.default.svc.cluster.local. 5 IN A 10.1.0.2",
    "db.default.svc.cluster.local. 5 IN SRV 0 50 5432 10-1-0-1.db.default.svc.cluster.local.",
    "db.default.svc.cluster.local. 5 IN SRV 0 50 5432 10-1-0-2.db.default.svc.cluster.local.",
    "_pg._tcp.db.default.svc.cluster.local. 5 IN SRV 0 50 5432 "
    "10-1-0-1.db.default.svc.cluster.local.",
    "_pg._tcp.db.default.svc.cluster.local. 5 IN SRV 0 50 5432 "
    "10-1-0-2.db.default.svc.cluster.local.",
}


def zone_lines(zone: dns.zone.Zone) -> set[str]:
    return {f"{name} {rdataset.ttl} IN {dns.rdatatype.to_text(rdataset.rdtype)} {rd}"
            for name, node in zone.nodes.items() for rdataset in node.rdatasets
            for rd in rdataset}


def test_serve_watch_serves_nothing_until_the_initial_sync_then_one_whole_version(
        tmp_path: Path, kube: FakeKubeAPI, kubeconfig: Path,
        listener: NotifyListener) -> None:
    db = f"sqlite:///{tmp_path / 'z.db'}"
    kube.add(SERVICES, service("web"))
    kube.add(SERVICES, service("db", cluster_ip=None, ports=(("pg", 5432),)))
    kube.add(ENDPOINTSLICES, endpoint_slice("db", ["10.1.0.1", "10.1.0.2"],
                                           ports=(("pg", 5432),)))
    kube.hold(ENDPOINTSLICES)
    server = ServeProcess(db, kubeconfig, listener.port)
    try:
        assert "(no version yet: SERVFAIL)" in server.ready
        wait_for(lambda: kube.lists(ENDPOINTSLICES), "the EndpointSlice list request")
        wait_for(lambda: kube.lists(SERVICES), "the Service list request")
        # The Service list is answered, the EndpointSlice list is not: nothing is served.
        for name, rtype in ((ZONE, "SOA"), ("web.default.svc.cluster.local.", "A"),
                            ("db.default.svc.cluster.local.", "A")):
            assert server.query(name, rtype).rcode() == dns.rcode.SERVFAIL
        assert server.axfr_rcode() == dns.rcode.SERVFAIL
        assert stored_versions(db) == []
        assert listener.received == []

        kube.release(ENDPOINTSLICES)
        wait_for(lambda: server.query(ZONE, "SOA").rcode() == dns.rcode.NOERROR,
                 "the first version to be served", STARTUP)
        [serial] = stored_versions(db)
        assert zone_lines(server.axfr()) == {
            line.replace("SERIAL", str(serial)) for line in EXPECTED}
        wait_for(lambda: listener.received, "a NOTIFY")
        assert set(listener.received) == {(ZONE, serial)}
        assert stored_versions(db) == [serial]
    finally:
        server.stop()

    # A restart on the kept database answers from the stored version at once, even
    # while the API server holds every list back.
    kube.hold(SERVICES)
    kube.hold(ENDPOINTSLICES)
    again = ServeProcess(db, kubeconfig, listener.port)
    try:
        assert f"serial {serial}" in again.ready
        soa = again.query(ZONE, "SOA")
        assert soa.rcode() == dns.rcode.NOERROR
        assert [rd.serial for rr in soa.answer for rd in rr] == [serial]
        assert zone_lines(again.axfr()) == {
            line.replace("SERIAL", str(serial)) for line in EXPECTED}
    finally:
        again.stop()
        kube.release(SERVICES)
        kube.release(ENDPOINTSLICES)
