"""End-to-end figures for the core pipeline, through the real CLI.

Generates a kubectl-style List of SERVICES Services with PODS endpoints each (half
headless, half ClusterIP with two named ports; one EndpointSlice per Service), then
measures, each in its own process so peak RSS is that command's alone:

  ingest          events/s into SQLite
  project --rebuild   records/s replaying the whole log, peak RSS
  export          records/s rendering and writing the zone atomically, peak RSS
  ingest (one slice change) + export   the incremental path

Usage: python -m bench.bench_pipeline [SERVICES] [PODS] [RUNS]   (default 10000 10 3)
Prints figures only; compare ratios within one run (shared machines are noisy).
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def cluster(services: int, pods: int) -> dict[str, Any]:
    items: list[dict[str, Any]] = []
    for s in range(services):
        ns = f"ns{s % 50}"
        name = f"svc-{s}"
        headless = s % 2 == 0
        spec: dict[str, Any] = {
            "clusterIP": "None" if headless else f"10.96.{(s >> 8) & 255}.{s & 255}",
            "ports": [{"name": "http", "port": 80, "protocol": "TCP"},
                      {"name": "metrics", "port": 9090, "protocol": "TCP"}],
        }
        items.append({"apiVersion": "v1", "kind": "Service",
                      "metadata": {"name": name, "namespace": ns, "uid": f"svc-uid-{s}",
                                   "resourceVersion": str(10 * s + 1)},
                      "spec": spec})
        endpoints = [{
            "addresses": [_pod_ip(s * pods + p)],
            "conditions": {"ready": True, "serving": True, "terminating": False},
            **({"hostname": f"{name}-{p}"} if headless else {}),
            "nodeName": f"node-{p % 7}",
            "targetRef": {"kind": "Pod", "name": f"{name}-{p}", "namespace": ns},
        } for p in range(pods)]
        items.append({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                      "metadata": {"name": f"{name}-abcde", "namespace": ns,
                                   "uid": f"eps-uid-{s}", "resourceVersion": str(10 * s + 2),
                                   "labels": {"kubernetes.io/service-name": name}},
                      "addressType": "IPv4", "endpoints": endpoints,
                      "ports": [{"name": "http", "port": 8080, "protocol": "TCP"},
                                {"name": "metrics", "port": 9090, "protocol": "TCP"}]})
    return {"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""},
            "items": items}


def _pod_ip(i: int) -> str:
    return f"10.{64 + (i >> 16)}.{(i >> 8) & 255}.{i & 255}"


TIMED = (
    "import resource, subprocess, sys, time\n"
    "t = time.perf_counter()\n"
    "p = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)\n"
    "dt = time.perf_counter() - t\n"
    "rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
    "print(f'{dt} {rss} {p.returncode}')\n"
    "sys.stdout.write(p.stdout[-400:])\n"
    "sys.stderr.write(p.stderr[-400:])\n"
)


def timed(*args: str) -> tuple[float, float, str]:
    """Seconds, peak RSS (MB) and output of one zonegen command in a fresh process."""
    cmd = [sys.executable, "-c", TIMED, sys.executable, str(ROOT / "cli.py"), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    first, _, rest = proc.stdout.partition("\n")
    seconds, rss_kb, code = first.split()
    if code != "0":
        raise SystemExit(f"{' '.join(args)} failed: {proc.stderr}")
    return float(seconds), int(rss_kb) / 1024, rest


def main() -> None:
    services = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    pods = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    runs = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    with tempfile.TemporaryDirectory(prefix="zonegen-bench-") as tmp:
        src = Path(tmp) / "cluster.json"
        src.write_text(json.dumps(cluster(services, pods)))
        size = src.stat().st_size / 1e6
        db = f"sqlite:///{Path(tmp) / 'z.db'}"
        print(f"cluster: {services} Services, {services * pods} endpoints, "
              f"{2 * services} objects, {size:.1f} MB of JSON")

        secs, rss, out = timed("--db", db, "ingest", "--no-project", str(src))
        print(f"ingest --no-project: {secs:.2f}s, {2 * services / secs:,.0f} events/s, "
              f"peak RSS {rss:.0f} MB  [{out.strip()}]")
        secs, rss, out = timed("--db", db, "project")
        print(f"project (first fold): {secs:.2f}s, peak RSS {rss:.0f} MB  [{out.strip()}]")

        rebuild, rebuild_rss = [], []
        for _ in range(runs):
            secs, rss, out = timed("--db", db, "project", "--rebuild")
            rebuild.append(secs)
            rebuild_rss.append(rss)
        m = re.search(r"into (\d+) records in ([\d.]+)s", out)
        records = int(m.group(1)) if m else 0
        inner = float(m.group(2)) if m else float("nan")
        med = statistics.median(rebuild)
        print(f"project --rebuild: {records} records; whole command {med:.2f}s "
              f"({records / med:,.0f} records/s), replay alone {inner:.2f}s "
              f"({records / inner:,.0f} records/s); peak RSS {max(rebuild_rss):.0f} MB")

        exports, export_rss = [], []
        zone = Path(tmp) / "cluster.local.zone"
        for _ in range(runs):
            secs, rss, _ = timed("--db", db, "export", "-o", str(zone))
            exports.append(secs)
            export_rss.append(rss)
        lines = sum(1 for _ in zone.open())
        med = statistics.median(exports)
        print(f"export -o: {lines} lines, {zone.stat().st_size / 1e6:.1f} MB; "
              f"whole command {med:.2f}s ({lines / med:,.0f} records/s); "
              f"peak RSS {max(export_rss):.0f} MB")

        # One pod becomes not ready: the incremental path, event to file.
        doc = json.loads(src.read_text())
        sl = doc["items"][1]
        sl["metadata"]["resourceVersion"] = "999999999"
        sl["endpoints"][0]["conditions"]["ready"] = False
        change = Path(tmp) / "change.json"
        change.write_text(json.dumps(sl))
        t = time.perf_counter()
        secs, rss, out = timed("--db", db, "ingest", str(change))
        secs2, _, _ = timed("--db", db, "export", "-o", str(zone))
        print(f"one-pod change: ingest+project {secs:.2f}s, then export {secs2:.2f}s "
              f"(wall {time.perf_counter() - t:.2f}s)  [{out.strip()}]")
        print(f"database: {os.path.getsize(Path(tmp) / 'z.db') / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
