"""PostgreSQL vs SQLite, side by side in one run: ingest events/s and ``history NAME``
latency, through the same code the commands run.

Starts its own PostgreSQL server (as tests/postgres.py does: a temporary directory,
127.0.0.1, a free port, ``fsync=off`` like the tests; run as root it uses the ``postgres``
user) and a SQLite file (WAL, ``synchronous=NORMAL``: the shipped settings). Per backend:

1. bulk ingest: one ``ingest_files`` of S Services + S EndpointSlices (a kubectl List),
   without and then with projection of the result;
2. watch-like appends: B transactions of 10 events each (``append_events`` with a resume
   point, as the watcher commits), each then projected (``ProjectionRunner.catch_up``);
3. ``history NAME`` of a Service whose slice changed in every one of those transactions:
   median of 20 calls of ``name_history`` (what ``zonegen history`` prints).

Figures only: nothing asserts a time.

    python -m bench.bench_postgres [SERVICES] [BATCHES]     # default: 2000 200
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.postgres import TEMPLATE, find_bindir, start_server, stop_server
from zonegen.history import name_history
from zonegen.ingest import ingest_files
from zonegen.model import ENDPOINT_SLICE, MODIFIED, Event
from zonegen.names import zone_config
from zonegen.runner import ProjectionRunner
from zonegen.store import Store

T0 = datetime(2026, 1, 1, tzinfo=UTC)
CFG = zone_config("cluster.local")


def service(i: int) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": f"svc-{i}", "namespace": f"ns{i % 20}", "uid": f"u-svc-{i}",
                         "resourceVersion": str(10 + i)},
            "spec": {"clusterIP": "None", "clusterIPs": ["None"], "type": "ClusterIP",
                     "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}}


def endpoint_slice(i: int, rv: int, gen: int = 0) -> dict[str, Any]:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"svc-{i}-x", "namespace": f"ns{i % 20}",
                         "uid": f"u-eps-{i}", "resourceVersion": str(rv),
                         "labels": {"kubernetes.io/service-name": f"svc-{i}"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [f"10.{(gen + p) % 250}.{i // 250 % 250}.{i % 250}"],
                           "conditions": {"ready": True}, "hostname": f"p{p}"}
                          for p in range(3)],
            "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}


def run(url: str, services: int, batches: int, tmp: Path) -> dict[str, float]:
    out: dict[str, float] = {}
    store = Store.open(url)
    try:
        listing = tmp / "list.json"
        items = [service(i) for i in range(services)]
        items += [endpoint_slice(i, 100_000 + i) for i in range(services)]
        listing.write_text(json.dumps({"kind": "List", "items": items}))
        t = time.perf_counter()
        ingest_files(store, [str(listing)], when=T0, project=False)
        out["bulk ingest, events/s"] = len(items) / (time.perf_counter() - t)
        runner = ProjectionRunner(store, clock=lambda: T0.timestamp())
        t = time.perf_counter()
        runner.catch_up()
        out["project the bulk, events/s"] = len(items) / (time.perf_counter() - t)

        # Watch-like: 10 events a transaction (slice updates), then a projection.
        hot = 0  # svc-0 changes in every batch: its history grows to `batches` versions
        rv = 1_000_000
        append_s = project_s = 0.0
        for b in range(batches):
            evs = []
            for k in range(10):
                i = hot if k == 0 else (b * 9 + k) % services
                rv += 1
                obj = endpoint_slice(i, rv, gen=b + 1)
                evs.append(Event(0, T0 + timedelta(seconds=b + 1), "default", MODIFIED,
                                 ENDPOINT_SLICE, obj["metadata"]["namespace"],
                                 obj["metadata"]["name"], obj["metadata"]["uid"], str(rv),
                                 json.dumps(obj, separators=(",", ":"))))
            t = time.perf_counter()
            store.append_events(evs, resume=[("bench", ENDPOINT_SLICE, str(rv))])
            append_s += time.perf_counter() - t
            runner.clock = lambda b=b: T0.timestamp() + b + 1  # type: ignore[misc]
            t = time.perf_counter()
            runner.catch_up()
            project_s += time.perf_counter() - t
        out["watch appends (10/txn), events/s"] = batches * 10 / append_s
        out["watch appends + projection, events/s"] = batches * 10 / (append_s + project_s)

        name_history(store, "svc-0.ns0.svc", CFG)  # warm
        times = []
        for _ in range(20):
            t = time.perf_counter()
            entries = name_history(store, "svc-0.ns0.svc", CFG)
            times.append(time.perf_counter() - t)
        out["history NAME, ms (median of 20)"] = statistics.median(times) * 1000
        out["history NAME, entries"] = len(entries)
        out["events in the log"] = store.max_event_seq()
    finally:
        store.close()
    return out


def main() -> None:
    services = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    batches = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    bindir = find_bindir()
    if bindir is None:
        sys.exit("no PostgreSQL server binaries (apt-get install postgresql)")
    server = start_server(bindir)
    results: dict[str, dict[str, float]] = {}
    try:
        with server.admin() as conn:
            conn.execute(f'CREATE DATABASE "{TEMPLATE}" TEMPLATE template0')
        with tempfile.TemporaryDirectory() as d:
            tmp = Path(d)
            results["SQLite"] = run(f"sqlite:///{tmp / 'z.db'}", services, batches, tmp)
            results["PostgreSQL"] = run(server.url(TEMPLATE), services, batches, tmp)
    finally:
        stop_server(server)
    print(f"{services} Services + {services} EndpointSlices, then {batches} watch batches "
          f"of 10 events")
    width = max(len(k) for k in results["SQLite"])
    print(f"{'':{width}}  {'SQLite':>12}  {'PostgreSQL':>12}")
    for key in results["SQLite"]:
        a, b = results["SQLite"][key], results["PostgreSQL"][key]
        print(f"{key:{width}}  {a:>12,.1f}  {b:>12,.1f}")


if __name__ == "__main__":
    main()
