"""Watcher figures against the loopback fake API server (tests/kubeapi.py). Figures only.

1. decode: one EndpointSlice watch line (10 endpoints) as the client's ``Watch`` decodes
   it (JSON -> generated model objects) against stdlib ``json.loads`` (the path
   ``zonegen.watch`` takes), and orjson for reference when installed;
2. burst: events/s the watcher sustains into SQLite for a burst of 50,000 EndpointSlice
   events streamed by the server (no projection, then with projection);
3. latency: server event -> new zone serial (median and worst), 1,000 Services live;
4. memory: peak RSS of ``zonegen watch --once --no-project`` (a subprocess, so the fake
   server's own memory is not counted) listing 10,000 Services and 10,000 EndpointSlices
   of 10 endpoints (100,000 endpoints) into an empty log, again with nothing changed,
   and again after every object changed, against the same command listing an empty
   cluster.
   A list holds one page and the names listed, plus the changes it will store (one
   transaction): so "nothing changed" stays near idle whatever the cluster's size.

    python -m bench.bench_watch [BURST] [SERVICES]
    python -m bench.bench_watch --memory [SERVICES]   # the memory figures only
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from tests.kubeapi import (
    ENDPOINTSLICES,
    SERVICES,
    FakeKubeAPI,
    endpoint_slice,
    service,
)
from zonegen.store import Store
from zonegen.watch import Commit, Watcher, WatchOptions, connect

ROOT = Path(__file__).resolve().parent.parent


def addresses(i: int, n: int = 10) -> list[str]:
    return [f"10.{(i >> 8) & 255}.{i & 255}.{j + 1}" for j in range(n)]


def bench_decode(n: int = 5000) -> None:
    from kubernetes import client, watch

    obj = endpoint_slice("svc", addresses(7))
    obj["metadata"].update(uid="0f0e", resourceVersion="123",
                           managedFields=[{"manager": "kube-controller-manager"}])
    line = json.dumps({"type": "MODIFIED", "object": obj}).encode()
    w = watch.Watch()
    w._api_client = client.ApiClient()
    rates = {}
    t = time.perf_counter()
    for _ in range(n):
        w.unmarshal_event(line.decode(), "V1EndpointSlice")
    rates["client Watch (models)"] = n / (time.perf_counter() - t)
    t = time.perf_counter()
    for _ in range(n):
        json.loads(line)
    rates["stdlib json.loads (chosen)"] = n / (time.perf_counter() - t)
    try:
        import orjson

        t = time.perf_counter()
        for _ in range(n):
            orjson.loads(line)
        rates["orjson.loads (reference)"] = n / (time.perf_counter() - t)
    except ImportError:
        pass
    print(f"decode, EndpointSlice watch line of 10 endpoints ({len(line)} bytes):")
    for name, rate in rates.items():
        print(f"  {name:30s} {rate:>10,.0f} events/s  ({rate * 10:,.0f} endpoints/s)")


def bench_burst(count: int, project: bool, tmp: Path) -> None:
    api = FakeKubeAPI().start()
    try:
        kubeconfig = api.write_kubeconfig(tmp / f"kc-{project}")
        store = Store.open(f"sqlite:///{tmp / f'burst-{project}.db'}")
        for i in range(1000):
            api.add(SERVICES, service(f"s{i}", cluster_ip=None))
            api.add(ENDPOINTSLICES, endpoint_slice(f"s{i}", addresses(i)))
        cluster = connect(str(kubeconfig))
        options = WatchOptions(project=project)
        Watcher(store, cluster, options).sync_once()
        base = store.max_event_seq()
        # The burst happens while the watcher is away, so the figure is the watcher's
        # consumption rate, not how fast this process can generate events.
        for k in range(count):
            i = k % 1000
            api.modify(ENDPOINTSLICES, "default", f"s{i}-abcde",
                       lambda o, k=k: o["endpoints"][0].update(
                           addresses=[f"10.200.{(k >> 8) & 255}.{k & 255}"]))
        stop = threading.Event()
        watcher = Watcher(store, cluster, options)
        t0 = time.perf_counter()
        th = threading.Thread(target=watcher.run, args=(stop,))
        th.start()
        while store.max_event_seq() - base < count:
            time.sleep(0.01)
        if project:
            while store.max_tracking_seq() < store.max_event_seq():
                time.sleep(0.01)
        elapsed = time.perf_counter() - t0
        stop.set()
        th.join()
        cluster.close()
        what = "stored and projected" if project else "stored"
        print(f"burst: {count:,} EndpointSlice events {what} in {elapsed:.2f} s = "
              f"{count / elapsed:,.0f} events/s ({watcher.report.commits} commits, "
              f"{len(watcher.report.versions)} zone versions)")
        store.close()
    finally:
        api.stop()


def bench_latency(rounds: int, tmp: Path) -> None:
    api = FakeKubeAPI().start()
    try:
        kubeconfig = api.write_kubeconfig(tmp / "kc-latency")
        store = Store.open(f"sqlite:///{tmp / 'latency.db'}")
        for i in range(1000):
            api.add(SERVICES, service(f"s{i}", cluster_ip=None))
            api.add(ENDPOINTSLICES, endpoint_slice(f"s{i}", addresses(i, 3)))
        got = threading.Event()
        seen: list[float] = []

        def on_commit(c: Commit) -> None:
            if c.versions:
                seen.append(time.perf_counter())
                got.set()

        cluster = connect(str(kubeconfig))
        watcher = Watcher(store, cluster, WatchOptions(), on_commit=on_commit)
        stop = threading.Event()
        th = threading.Thread(target=watcher.run, args=(stop,))
        th.start()
        # Measure from a settled state: the initial list stored and projected, both
        # watches open (else round one would include the initial sync).
        while (store.max_event_seq() < 2000 or len(api.watches()) < 2
               or store.max_tracking_seq() < store.max_event_seq()):
            time.sleep(0.01)
        delays = []
        for k in range(rounds):
            got.clear()
            t0 = time.perf_counter()
            api.modify(ENDPOINTSLICES, "default", f"s{k % 1000}-abcde",
                       lambda o, k=k: o["endpoints"][0].update(
                           addresses=[f"10.201.{(k >> 8) & 255}.{k & 255}"]))
            got.wait(30)
            delays.append(seen[-1] - t0)
        stop.set()
        th.join()
        cluster.close()
        delays.sort()
        print(f"latency, server event -> new serial ({rounds} single changes, 1,000 Services): "
              f"median {statistics.median(delays) * 1000:.1f} ms, "
              f"worst {delays[-1] * 1000:.1f} ms")
        store.close()
    finally:
        api.stop()


# VmHWM, not ru_maxrss: Linux carries ru_maxrss over fork+exec from this (large) process.
_RSS = ("import runpy, sys\n"
        "sys.argv = ['zonegen'] + sys.argv[1:]\n"
        "try:\n    runpy.run_module('cli', run_name='__main__')\n"
        "finally:\n"
        "    hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0]\n"
        "    print('RSS', hwm.split()[1], file=sys.stderr)\n")


def _child_rss(args: list[str]) -> tuple[float, float, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    t = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _RSS, *args], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    elapsed = time.perf_counter() - t
    rss = next(int(line.split()[1]) for line in done.stderr.splitlines()
               if line.startswith("RSS "))
    return rss / 1024, elapsed, done.stdout.strip()


def bench_memory(services: int, tmp: Path) -> None:
    """Peak RSS of three ``watch --once --no-project`` lists of the same cluster: into an
    empty log (every object ADDED), again with nothing changed (the restart of a
    watcher: every object compared, nothing stored), and again after every object
    changed (every object MODIFIED, all of it one transaction)."""
    api = FakeKubeAPI().start()
    try:
        for i in range(services):
            api.add(SERVICES, service(f"s{i}", cluster_ip=None))
            api.add(ENDPOINTSLICES, endpoint_slice(f"s{i}", addresses(i)))
        kubeconfig = api.write_kubeconfig(tmp / "kc-memory")
        db = f"sqlite:///{tmp / 'memory.db'}"
        # the floor: the same command listing an empty cluster (interpreter, zonegen,
        # the kubernetes client, SQLite)
        empty = FakeKubeAPI().start()
        try:
            idle, _, _ = _child_rss(["--db", f"sqlite:///{tmp / 'empty.db'}", "watch",
                                     "--kubeconfig",
                                     str(empty.write_kubeconfig(tmp / "kc-empty")),
                                     "--once", "--no-project"])
        finally:
            empty.stop()
        once = ["--db", db, "watch", "--kubeconfig", str(kubeconfig), "--once", "--no-project"]
        print(f"initial list, {services:,} Services + {services:,} EndpointSlices "
              f"({services * 10:,} endpoints), pages of 500; the same command listing an "
              f"empty cluster: {idle:.0f} MB:")
        for what in ("into an empty log", "nothing changed", "every object changed"):
            if what == "every object changed":
                for i in range(services):
                    api.modify(SERVICES, "default", f"s{i}", lambda o: None)
                    api.modify(ENDPOINTSLICES, "default", f"s{i}-abcde", lambda o: None)
            peak, elapsed, out = _child_rss(once)
            print(f"  {what:22s} peak RSS {peak:4.0f} MB (+{peak - idle:.0f} MB) in "
                  f"{elapsed:5.1f} s; {out}")
    finally:
        api.stop()


def main() -> None:
    if sys.argv[1:2] == ["--memory"]:
        with tempfile.TemporaryDirectory() as d:
            bench_memory(int(sys.argv[2]) if len(sys.argv) > 2 else 10_000, Path(d))
        return
    burst = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
    services = int(sys.argv[2]) if len(sys.argv) > 2 else 10_000
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        bench_decode()
        bench_burst(burst, project=False, tmp=tmp)
        bench_burst(burst, project=True, tmp=tmp)
        bench_latency(50, tmp)
        bench_memory(services, tmp)


if __name__ == "__main__":
    main()
