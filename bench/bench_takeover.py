"""Takeover time after kill -9 of the writing ``serve --watch`` replica (issue 12).

Two replicas on one PostgreSQL database (own server, as tests/postgres.py starts it)
and the fake Kubernetes API (tests/kubeapi.py). Each round: kill -9 the writer, add a
Service at once, and time (a) until the other replica holds the lease (the epoch in
``writer_leases`` moved) and (b) until it serves the new Service's record; then start a
fresh replica so two run again. Median of ROUNDS. Figures only.

    python -m bench.bench_takeover [ROUNDS] [LEASE_SECONDS]     # default: 5 15
"""

from __future__ import annotations

import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

import tests.integration.test_replicas as replicas
from tests.kubeapi import FakeKubeAPI
from tests.postgres import TEMPLATE, find_bindir, start_server, stop_server
from tests.test_watch import add_ready
from zonegen.store import Store


def _epoch(store: Store) -> int:
    lease = store.current_lease()
    return lease.epoch if lease is not None else 0


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    lease = sys.argv[2] if len(sys.argv) > 2 else "15"
    replicas.LEASE = lease
    bindir = find_bindir()
    if bindir is None:
        sys.exit("no PostgreSQL server binaries (apt-get install postgresql)")
    server = start_server(bindir)
    api = FakeKubeAPI().start()
    running: list[replicas.Replica] = []
    lease_s: list[float] = []
    served_s: list[float] = []
    try:
        with server.admin() as conn:
            conn.execute(f'CREATE DATABASE "{TEMPLATE}" TEMPLATE template0')
        url = server.url(TEMPLATE)
        watcher = Store.open(url)  # reads the lease row
        with tempfile.TemporaryDirectory() as d:
            kubeconfig = api.write_kubeconfig(Path(d) / "kubeconfig")
            add_ready(api, "web", ["10.1.0.1"])
            running = [replicas.start_replica(url, kubeconfig) for _ in range(2)]
            for n in range(rounds):
                if not replicas.wait_for(lambda r=running: len(replicas._writers(r)) == 1, 120):
                    sys.exit("no writer: " + " | ".join(r.log() for r in running))
                writer = replicas._writers(running)[0]
                other = next(r for r in running if r is not writer)
                epoch = _epoch(watcher)
                name, address = f"after{n}", f"10.5.0.{n + 1}"
                killed = time.monotonic()
                os.kill(writer.proc.pid, signal.SIGKILL)
                writer.proc.wait()
                add_ready(api, name, [address])
                replicas.wait_for(lambda e=epoch: _epoch(watcher) > e, 120)
                lease_s.append(time.monotonic() - killed)
                fqdn = f"{name}.default.svc.cluster.local."
                replicas.wait_for(lambda o=other, f=fqdn, a=address: o.addresses(f) == {a}, 120)
                served_s.append(time.monotonic() - killed)
                print(f"round {n + 1}: lease taken after {lease_s[-1]:.2f} s, change served "
                      f"after {served_s[-1]:.2f} s", flush=True)
                replicas.stop_replica(writer)
                running = [other, replicas.start_replica(url, kubeconfig)]
        watcher.close()
    finally:
        for r in running:
            replicas.stop_replica(r)
        api.stop()
        stop_server(server)
    print(f"--lease-seconds {lease}, {rounds} rounds: takeover median "
          f"{statistics.median(lease_s):.2f} s (lease taken), "
          f"{statistics.median(served_s):.2f} s (first change served)")


if __name__ == "__main__":
    main()
