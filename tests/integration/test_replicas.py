"""Several ``serve --watch`` replicas on one PostgreSQL database (issue 12, Replicas):
one writer at a time by a lease in the database, takeover after kill -9 resuming from
the stored resume points, every replica serving the same serials. Real processes, the
fake Kubernetes API (tests/kubeapi.py), a real PostgreSQL server (tests/postgres.py)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import dns.query
import dns.rcode
import dns.zone
import pytest
import sqlalchemy as sa

from tests.helpers import wait_until
from tests.integration.conftest import Secondary, free_port, soa_serial, start_named
from tests.kubeapi import FakeKubeAPI
from tests.test_serve import HOST, ROOT, q, udp
from tests.test_watch import add_ready
from zonegen.store import Store, events, writer_leases

pytest_plugins = ["tests.postgres"]

LEASE = "2"  # seconds: takeover within ~3 s after a kill -9


@dataclass
class Replica:
    proc: subprocess.Popen[str]
    port: int = 0
    lines: list[str] = field(default_factory=list)
    reader: threading.Thread = field(default_factory=threading.Thread)

    @property
    def holder(self) -> str:
        return f"/{self.proc.pid}"

    def log(self) -> str:
        return "".join(self.lines)

    def writes(self) -> bool:
        return self.proc.poll() is None and f"{self.holder} writes" in self.log()

    def stepped_down(self) -> bool:
        return "stepped down" in self.log()

    def serial(self) -> int | None:
        try:
            r = udp(self.port, q("cluster.local.", "SOA"))
        except Exception:  # noqa: BLE001 - not answering yet
            return None
        if r.rcode() != dns.rcode.NOERROR or not r.answer:
            return None
        return int(r.answer[0][0].serial)

    def addresses(self, name: str) -> set[str]:
        try:
            r = udp(self.port, q(name, "A"))
        except Exception:  # noqa: BLE001
            return set()
        return {rd.address for rr in r.answer for rd in rr}


def start_replica(url: str, kubeconfig: Path, *extra: str) -> Replica:
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "cli.py"), "--db", url, "-v", "serve", "--watch",
         "--kubeconfig", str(kubeconfig), "--listen", f"{HOST}:0", "--poll", "3600",
         "--lease-seconds", LEASE, *extra],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    replica = Replica(proc)
    bound = threading.Event()

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            replica.lines.append(line)
            found = re.search(r"serving \S+ .* on 127\.0\.0\.1#(\d+) \(udp, tcp\)", line)
            if found and not replica.port:
                replica.port = int(found.group(1))
                bound.set()
        bound.set()

    replica.reader = threading.Thread(target=read, daemon=True)
    replica.reader.start()
    bound.wait(120)
    assert replica.port, replica.log()
    return replica


def stop_replica(replica: Replica) -> None:
    if replica.proc.poll() is None:
        replica.proc.send_signal(signal.SIGTERM)
        try:
            replica.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.kill(replica.proc.pid, signal.SIGKILL)
            replica.proc.wait()
    replica.reader.join(10)
    if replica.proc.stderr is not None:
        replica.proc.stderr.close()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[FakeKubeAPI, Path]]:
    api = FakeKubeAPI().start()
    yield api, api.write_kubeconfig(tmp_path / "kubeconfig")
    api.stop()


def _writers(replicas: list[Replica]) -> list[Replica]:
    return [r for r in replicas if r.writes() and not r.stepped_down()]


def _lease_holder(url: str) -> tuple[str, int]:
    st = Store.open(url)
    try:
        with st.engine.connect() as conn:
            row = conn.execute(sa.select(writer_leases.c.holder, writer_leases.c.epoch)).one()
        return str(row.holder), int(row.epoch)
    finally:
        st.close()


def _duplicates(url: str) -> list[tuple[str, str, str]]:
    st = Store.open(url)
    try:
        with st.engine.connect() as conn:
            key = (events.c.uid, events.c.resource_version, events.c.type)
            return [tuple(r[:3]) for r in conn.execute(
                sa.select(*key, sa.func.count()).group_by(*key)
                .having(sa.func.count() > 1))]
    finally:
        st.close()


def test_one_writer_takes_over_after_kill_9_and_every_replica_serves_the_same(
        postgres_url: str, cluster: tuple[FakeKubeAPI, Path]) -> None:
    api, kubeconfig = cluster
    add_ready(api, "web", ["10.1.0.1"])
    replicas = [start_replica(postgres_url, kubeconfig) for _ in range(3)]
    try:
        assert wait_until(lambda: len(_writers(replicas)) == 1, 60), \
            [r.log() for r in replicas]
        leader = _writers(replicas)[0]
        holder, epoch = _lease_holder(postgres_url)
        assert holder.endswith(leader.holder)
        assert all(wait_until(lambda r=r: r.addresses("web.default.svc.cluster.local.")
                            == {"10.1.0.1"}, 60) for r in replicas)
        assert len(_writers(replicas)) == 1  # the followers never took the lease
        lists_before = len(api.lists())

        # a burst, the writer killed in its middle
        for i in range(20):
            add_ready(api, f"burst{i}", [f"10.3.0.{i + 1}"])
            if i == 10:
                os.kill(leader.proc.pid, signal.SIGKILL)
                leader.proc.wait()
        followers = [r for r in replicas if r is not leader]
        assert wait_until(lambda: len(_writers(followers)) == 1, 60), \
            [r.log() for r in followers]
        new_holder, new_epoch = _lease_holder(postgres_url)
        assert new_epoch == epoch + 1
        assert new_holder.endswith(_writers(followers)[0].holder)
        add_ready(api, "late", ["10.2.0.99"])

        def level() -> bool:
            if not all(r.addresses("late.default.svc.cluster.local.") == {"10.2.0.99"}
                       for r in followers):
                return False
            return len({r.serial() for r in followers}) == 1

        assert wait_until(level, 60), [r.log() for r in followers]
        for r in followers:  # nothing of the burst was lost
            for i in range(20):
                assert r.addresses(f"burst{i}.default.svc.cluster.local.") == \
                    {f"10.3.0.{i + 1}"}, i
        assert len(api.lists()) == lists_before  # resumed the watch: no relist
        assert _duplicates(postgres_url) == []
    finally:
        for r in replicas:
            stop_replica(r)


def test_a_paused_writer_steps_down_when_it_wakes_and_keeps_serving(
        postgres_url: str, cluster: tuple[FakeKubeAPI, Path]) -> None:
    """SIGSTOP the writer past its lease (a GC pause, a frozen VM): a follower takes
    over; on SIGCONT the old writer finds the lease taken over (or its write fenced),
    stops watching and serves on, and only the new writer writes."""
    api, kubeconfig = cluster
    add_ready(api, "web", ["10.1.0.1"])
    replicas = [start_replica(postgres_url, kubeconfig) for _ in range(2)]
    try:
        assert wait_until(lambda: len(_writers(replicas)) == 1, 60)
        old = _writers(replicas)[0]
        other = next(r for r in replicas if r is not old)
        os.kill(old.proc.pid, signal.SIGSTOP)
        try:
            assert wait_until(lambda: other.writes(), 60), other.log()
            add_ready(api, "during", ["10.4.0.1"])  # the old writer's watch sees it too
            assert wait_until(lambda: other.addresses("during.default.svc.cluster.local.")
                            == {"10.4.0.1"}, 60)
        finally:
            os.kill(old.proc.pid, signal.SIGCONT)
        assert wait_until(old.stepped_down, 60), old.log()
        add_ready(api, "after", ["10.4.0.2"])
        assert all(wait_until(lambda r=r: r.addresses("after.default.svc.cluster.local.")
                            == {"10.4.0.2"}, 60) for r in replicas)
        assert wait_until(lambda: old.serial() == other.serial(), 60)
        assert old.proc.poll() is None  # still serving
        assert _writers(replicas) == [other]
        assert _duplicates(postgres_url) == []
    finally:
        for r in replicas:
            stop_replica(r)


def test_a_bind_secondary_of_every_replica_stays_monotonic_and_ends_as_exported(
        tmp_path: Path, postgres_url: str, cluster: tuple[FakeKubeAPI, Path],
        secondaries: list[Secondary]) -> None:
    """BIND ``named`` lists all three replicas as primaries (each NOTIFYs it) and keeps
    transferring through a writer's kill -9: the serial it serves never goes back, and
    at the end its zone is exactly ``zonegen export``'s."""
    api, kubeconfig = cluster
    add_ready(api, "web", ["10.1.0.1"])
    named_port = free_port()
    replicas = [start_replica(postgres_url, kubeconfig, "--notify", f"{HOST}:{named_port}")
                for _ in range(3)]
    seen: list[int] = []
    sampling = threading.Event()

    def sample() -> None:
        while not sampling.is_set():
            serial = soa_serial(named_port, "cluster.local")
            if serial is not None and (not seen or seen[-1] != serial):
                seen.append(serial)
            sampling.wait(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    try:
        assert wait_until(lambda: len(_writers(replicas)) == 1, 60)
        named = start_named(tmp_path / "named", "cluster.local",
                            [r.port for r in replicas], port=named_port)
        secondaries.append(named)
        sampler.start()
        for i in range(6):
            add_ready(api, f"before{i}", [f"10.6.0.{i + 1}"])
        leader = _writers(replicas)[0]
        assert wait_until(lambda: leader.addresses("before5.default.svc.cluster.local.")
                        == {"10.6.0.6"}, 60)
        os.kill(leader.proc.pid, signal.SIGKILL)
        leader.proc.wait()
        for i in range(6):
            add_ready(api, f"after{i}", [f"10.7.0.{i + 1}"])
        followers = [r for r in replicas if r is not leader]
        assert wait_until(lambda: len(_writers(followers)) == 1, 60)
        assert wait_until(lambda: all(r.addresses("after5.default.svc.cluster.local.")
                                    == {"10.7.0.6"} for r in followers), 60)
        final = followers[0].serial()
        assert final is not None
        named.wait_serial(final, 60)
    finally:
        sampling.set()
        if sampler.is_alive():
            sampler.join(5)
        for r in replicas:
            stop_replica(r)
    assert len(seen) >= 2, seen  # it followed the zone through the takeover
    assert seen == sorted(seen), seen  # never went back (no serial wrap here)
    exported = subprocess.run([sys.executable, str(ROOT / "cli.py"), "--db", postgres_url,
                               "export"], cwd=ROOT, capture_output=True, text=True,
                              check=True, timeout=60).stdout
    want = dns.zone.from_text(exported, "cluster.local.", relativize=False)
    got = dns.zone.Zone("cluster.local.", relativize=False)
    dns.query.inbound_xfr("127.0.0.1", got, port=named_port, timeout=10, lifetime=30)
    assert sorted(got.to_text().splitlines()) == sorted(want.to_text().splitlines())
