"""Queries/s of ``zonegen serve`` against BIND ``named`` on the same zone, measured by
``dnsperf`` (issue 11: >= 0.25x named's queries/s). Prints figures only.

The zone is Kubernetes-like (bench/_zone.py:
per pod the Service A, the per-pod A, the ``_http._tcp`` SRV and the bare SRV). zonegen
serves it from memory with its real asyncio server (``Server``, as ``zonegen serve``
runs it, in a child process's main thread); named loads the same zone written by
``zonegen.zonefile``. Both listen on loopback high ports and get the same query file:
pod A (40%), Service A (20%), ``_http._tcp`` SRV (25%, additional A for each target)
and names that do not exist (15%, NXDOMAIN with the SOA), EDNS0 on (``dnsperf -e``).
Runs alternate between the servers; medians are printed, then the ratio.

``QUERIES`` distinct query lines (default 20,000) are drawn at random from the zone;
dnsperf loops over the file. zonegen keeps rendered answers per zone version (20,000 at
most, ``zonegen.quickanswer``): a file with more distinct lines than that measures the
path that renders every answer (``--cold`` uses 400,000 lines).

    python -m bench.bench_query [SERVICES] [PODS] [SECONDS] [RUNS] [QUERIES] [--cold]
"""

from __future__ import annotations

import asyncio
import gc
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.bench_serve import start_named, stop_pid, wait_file
from tests.integration.conftest import free_port, soa_serial

ZONE = "cluster.local"


def serve_child(port: int, services: int, pods: int, ready: str) -> None:
    """Child process: the zone in memory, zonegen's asyncio Server on the main thread
    (as ``zonegen serve`` runs it) until SIGTERM."""
    from bench._zone import k8s_records
    from zonegen.model import ZoneConfig
    from zonegen.serve import ServeOptions, Server, ZoneSet

    zones = ZoneSet.build([ZoneConfig()], k8s_records(services, pods), 1)
    gc.collect()
    gc.freeze()  # the zone's objects are never garbage: keep the collector off them

    async def main() -> None:
        server = Server(ServeOptions(listen=(("127.0.0.1", port),)), zones=zones)
        await server.start()
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        Path(ready).write_text(str(os.getpid()))
        await stop.wait()
        await server.aclose()
        print(f"zonegen: {server.report.summary()}", file=sys.stderr)

    asyncio.run(main())


def query_file(path: Path, services: int, pods: int, lines: int, seed: int = 11) -> None:
    rng = random.Random(seed)
    with path.open("w") as f:
        for _ in range(lines):
            s = rng.randrange(services)
            svc = f"svc-{s}.ns{s % 50}.svc.{ZONE}"
            x = rng.random()
            if x < 0.40:
                f.write(f"svc-{s}-{rng.randrange(pods)}.{svc} A\n")
            elif x < 0.60:
                f.write(f"{svc} A\n")
            elif x < 0.85:
                f.write(f"_http._tcp.{svc} SRV\n")
            else:
                f.write(f"missing-{rng.randrange(1 << 30)}.{svc} A\n")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def dnsperf(port: int, data: Path, seconds: int, pid: int) -> tuple[float, float, str]:
    """(queries/s, server CPU microseconds per query, the lines worth keeping) of one
    dnsperf run. CPU per query is steadier than queries/s on a shared machine."""
    before = cpu_seconds(pid)
    out = subprocess.run(
        ["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", str(data), "-l", str(seconds),
         "-e", "-c", "4", "-T", "1", "-q", "200", "-t", "2"],
        capture_output=True, text=True, check=True).stdout
    used = cpu_seconds(pid) - before
    qps = float(re.search(r"Queries per second:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    done = int(re.search(r"Queries completed:\s+(\d+)", out).group(1))  # type: ignore[union-attr]
    keep = " ".join(line.strip() for line in out.splitlines()
                    if re.search(r"Queries (completed|lost)|Response codes", line))
    return qps, used / max(done, 1) * 1e6, keep


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        serve_child(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
        return
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    cold = "--cold" in sys.argv
    services = int(args[0]) if len(args) > 0 else 2_500
    pods = int(args[1]) if len(args) > 1 else 10
    seconds = int(args[2]) if len(args) > 2 else 10
    runs = int(args[3]) if len(args) > 3 else 3
    lines = int(args[4]) if len(args) > 4 else (400_000 if cold else 20_000)
    from bench._zone import k8s_records
    from zonegen import zonefile
    from zonegen.model import ZoneConfig

    with tempfile.TemporaryDirectory(prefix="bench-query-") as d:
        tmp = Path(d)
        records = k8s_records(services, pods)
        zone_file = tmp / "zone.db"
        zonefile.write(str(zone_file), zonefile.render(records, ZoneConfig(), 1))
        del records
        data = tmp / "queries.txt"
        query_file(data, services, pods, lines)
        print(f"zone: {services * pods * 4:,} records ({services:,} Services x {pods} pods); "
              f"{lines:,} distinct query lines (40% pod A, 20% Service A, 25% SRV, "
              f"15% NXDOMAIN), EDNS0; dnsperf -c 4 -T 1 -q 200, {seconds} s per run, "
              f"{runs} runs each, alternating")
        zport, nport = free_port(), free_port()
        ready = tmp / "zonegen.ready"
        child = subprocess.Popen([sys.executable, "-m", "bench.bench_query", "--serve", str(zport),
                                  str(services), str(pods), str(ready)])
        named_dir = tmp / "named"
        named_dir.mkdir()
        named_pid = start_named(named_dir, f'zone "{ZONE}" {{ type primary; file '
                                f'"{zone_file}"; }};', nport)
        try:
            deadline = time.monotonic() + 600
            while soa_serial(nport, ZONE + ".") is None and time.monotonic() < deadline:
                time.sleep(0.05)
            wait_file(ready, 600)
            rates: dict[str, list[float]] = {"zonegen": [], "named": []}
            cpu: dict[str, list[float]] = {"zonegen": [], "named": []}
            notes: dict[str, str] = {}
            for _ in range(runs):
                for name, port, pid in (("zonegen", zport, child.pid),
                                        ("named", nport, named_pid)):
                    qps, us, note = dnsperf(port, data, seconds, pid)
                    rates[name].append(qps)
                    cpu[name].append(us)
                    notes[name] = note
            for name in ("zonegen", "named"):
                print(f"{name:7s}: median {statistics.median(rates[name]):,.0f} queries/s "
                      f"(runs {', '.join(f'{x:,.0f}' for x in rates[name])}), "
                      f"{statistics.median(cpu[name]):.1f} us CPU per query; last run: "
                      f"{notes[name]}")
            ratio = statistics.median(rates["zonegen"]) / statistics.median(rates["named"])
            cpu_ratio = statistics.median(cpu["named"]) / statistics.median(cpu["zonegen"])
            print(f"zonegen / named: {ratio:.2f}x queries/s (goal >= 0.25x); "
                  f"{cpu_ratio:.2f}x by CPU per query (named's threads summed)")
        finally:
            child.send_signal(signal.SIGTERM)
            child.wait(60)
            stop_pid(named_pid)


if __name__ == "__main__":
    main()
