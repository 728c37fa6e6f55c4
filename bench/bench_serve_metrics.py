"""zonegen serve with metrics on vs off, side by side in one run. Prints figures only.

Two servers hold the same Kubernetes-like zone (bench/_zone.py), each in its own
process: one with a :class:`Metrics` (and its ``/metrics`` endpoint), one without. Then,
interleaved so that machine noise hits both alike:

1. AXFR of the zone, timed by a raw client counting messages (bench/bench_serve.py's
   ``raw_xfr``); median of RUNS each.
2. UDP query rate with dnsperf (/usr/bin/dnsperf, A queries for pod names), SECONDS per
   run; median of RUNS each. Which server goes first alternates from run to run.
3. CPU per UDP query inside the server, without sockets: ``Server.handle_datagram`` on a
   stored A query, and the accounting part of it alone (``Server._account``: the
   request counter lookup and its C ``next``), in this process; minimum of RUNS.

    python -m bench.bench_serve_metrics [SERVICES] [PODS] [RUNS] [SECONDS]
"""

from __future__ import annotations

import gc
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dns.message

from bench.bench_serve import raw_xfr, wait_file
from tests.integration.conftest import free_port

DNSPERF = shutil.which("dnsperf") or "/usr/bin/dnsperf"


def serve_child(port: int, services: int, pods: int, metrics_port: int, ready: str) -> None:
    """Child process: serve the synthetic zone from memory, with metrics when
    ``metrics_port`` is not 0, until SIGTERM."""
    from bench._zone import k8s_records
    from zonegen.health import MetricsServer, Readiness
    from zonegen.metrics import Metrics
    from zonegen.model import ZoneConfig
    from zonegen.serve import ServeOptions, ZoneSet
    from zonegen.testing import ServerThread

    zones = ZoneSet.build([ZoneConfig()], k8s_records(services, pods), 1)
    gc.collect()
    metrics = Metrics() if metrics_port else None
    endpoint = None
    if metrics is not None:
        endpoint = MetricsServer("127.0.0.1", metrics_port, metrics, Readiness()).start()
    st = ServerThread(ServeOptions(listen=(("127.0.0.1", port),)), zones=zones,
                      metrics=metrics).start()
    stopping: list[int] = []
    signal.signal(signal.SIGTERM, lambda sig, _frame: stopping.append(sig))
    Path(ready).write_text(str(os.getpid()))
    while not stopping:
        signal.pause()
    st.stop()
    if endpoint is not None:
        endpoint.stop()


def dnsperf(port: int, queries: Path, seconds: int) -> float:
    out = subprocess.run([DNSPERF, "-s", "127.0.0.1", "-p", str(port), "-d", str(queries),
                          "-l", str(seconds), "-c", "4", "-q", "64", "-t", "2"],
                         capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        if "Queries per second:" in line:
            return float(line.split(":")[1])
    raise SystemExit(f"dnsperf said:\n{out}")


def cpu_per_query(runs: int, calls: int = 100_000) -> dict[str, tuple[float, float]]:
    """Per stored A query, metrics off and on, in this process: (µs of the whole
    ``handle_datagram``, ns of ``_account``, the part that counts). Minimum of ``runs``
    (the least disturbed run, on a shared machine)."""
    from bench._zone import k8s_records
    from zonegen.metrics import Metrics
    from zonegen.model import ZoneConfig
    from zonegen.serve import ServeOptions, Server, ZoneSet

    zones = ZoneSet.build([ZoneConfig()], k8s_records(100, 10), 1)
    query = dns.message.make_query("svc-7-3.svc-7.ns7.svc.cluster.local.", "A").to_wire()
    addr = ("127.0.0.1", 40000)
    servers = {"off": Server(ServeOptions(), zones=zones),
               "on": Server(ServeOptions(), zones=zones, metrics=Metrics())}
    outcome = servers["off"].responder.respond(query, addr[0], zones, tcp=False)
    reply = outcome.messages[0]  # type: ignore[union-attr]
    whole: dict[str, list[float]] = {"off": [], "on": []}
    account: dict[str, list[float]] = {"off": [], "on": []}
    for _ in range(runs):
        for name, server in servers.items():
            handle = server.handle_datagram
            start = time.perf_counter()
            for _ in range(calls // 10):
                handle(query, addr)
            whole[name].append((time.perf_counter() - start) / (calls // 10) * 1e6)
            count = server._account  # noqa: SLF001 - the part metrics add to
            start = time.perf_counter()
            for _ in range(calls):
                count(outcome, addr, query, reply, "udp")  # type: ignore[arg-type]
            account[name].append((time.perf_counter() - start) / calls * 1e9)
    return {name: (min(whole[name]), min(account[name])) for name in whole}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        serve_child(*map(int, sys.argv[2:6]), sys.argv[6])  # type: ignore[call-arg]
        return
    services = int(sys.argv[1]) if len(sys.argv) > 1 else 25_000
    pods = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    runs = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    seconds = int(sys.argv[4]) if len(sys.argv) > 4 else 5
    expected = services * pods * 4 + 3 + 1  # records + NS + glue + SOA, SOA twice
    print(f"zone: {services:,} services x {pods} pods = {expected - 1:,} records")
    with tempfile.TemporaryDirectory(prefix="bench-serve-metrics-") as d:
        tmp = Path(d)
        ports = {"off": free_port(), "on": free_port()}
        children = {}
        for name, port in ports.items():
            mport = free_port() if name == "on" else 0
            children[name] = subprocess.Popen([
                sys.executable, "-m", "bench.bench_serve_metrics", "--child", str(port),
                str(services), str(pods), str(mport), str(tmp / f"{name}.ready")])
        try:
            for name in ports:
                wait_file(tmp / f"{name}.ready", 900)
            queries = tmp / "queries.txt"
            queries.write_text("".join(
                f"svc-{s}-{p}.svc-{s}.ns{s % 50}.svc.cluster.local. A\n"
                for s in range(0, services, max(1, services // 2000)) for p in range(pods)))

            axfr: dict[str, list[float]] = {"off": [], "on": []}
            qps: dict[str, list[float]] = {"off": [], "on": []}
            for run in range(runs):
                for name in ("off", "on") if run % 2 == 0 else ("on", "off"):
                    n, _msgs, _nbytes, secs = raw_xfr(ports[name], 252, expected)
                    assert n == expected, (name, n)
                    axfr[name].append(secs)
            if Path(DNSPERF).exists():
                for run in range(runs):  # alternate which goes first: drift hits both
                    for name in ("off", "on") if run % 2 == 0 else ("on", "off"):
                        qps[name].append(dnsperf(ports[name], queries, seconds))
            for name in ("off", "on"):
                print(f"AXFR, metrics {name:3s}: median {statistics.median(axfr[name]):.3f} s "
                      f"(runs {', '.join(f'{x:.3f}' for x in axfr[name])})")
            for name in ("off", "on"):
                if qps[name]:
                    print(f"UDP queries/s (dnsperf, {seconds} s x {runs}), metrics "
                          f"{name:3s}: median {statistics.median(qps[name]):,.0f} "
                          f"(runs {', '.join(f'{x:,.0f}' for x in qps[name])})")
        finally:
            for child in children.values():
                child.send_signal(signal.SIGTERM)
            for child in children.values():
                child.wait(60)
    cpu = cpu_per_query(runs)
    print(f"CPU per UDP A query, handle_datagram (min of {runs}): metrics off "
          f"{cpu['off'][0]:.1f} µs, on {cpu['on'][0]:.1f} µs")
    print(f"  of which accounting (_account): off {cpu['off'][1]:.0f} ns, on "
          f"{cpu['on'][1]:.0f} ns ({cpu['on'][1] - cpu['off'][1]:+.0f} ns per query)")


if __name__ == "__main__":
    main()
