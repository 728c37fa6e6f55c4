"""Projector throughput: rebuild 10,000 Services x 10 endpoints from reduced values.

Half the Services are headless (A, per-pod A, PTR, two named-port SRVs and the bare SRV
per pod), half ClusterIP with endpoint names. Prints figures only (medians of --runs);
no thresholds. Run from the repository root (or with zonegen installed):
``python -m bench.bench_project [--services N] [--pods N] [--runs N]``.

``--db URL`` instead times the phases of ``project --rebuild`` (zonegen.rebuild) on a
stored log, one after the other in this process (the command overlaps the stored rows'
read with the replay in a second thread): the newest events read, reduced, folded and
computed, the replay's row keys, the read model's row keys, their comparison. It only
reads the database.
"""

from __future__ import annotations

import argparse
import gc
import resource
import statistics
import time
import tracemalloc
from dataclasses import replace

from zonegen.model import ENDPOINT_SLICE, SERVICE, Change, Endpoint, EndpointSlice, Port, Service
from zonegen.project import Projection, rebuild


def generate(services: int, pods: int) -> list[Change]:
    """Reduced Services and one EndpointSlice each, as the log would replay them."""
    ports = (Port("http", 8080, "TCP"), Port("metrics", 9090, "TCP"))
    changes: list[Change] = []
    seq = 0
    for i in range(services):
        ns = f"ns-{i % 100}"
        name = f"svc-{i}"
        headless = i % 2 == 0
        ip = f"10.96.{i // 256 % 256}.{i % 256}"
        svc = Service(namespace=ns, name=name, uid=f"u{i}", resource_version="1",
                      type="ClusterIP", headless=headless, cluster_ips=() if headless else (ip,),
                      external_name="", ports=ports, publish_not_ready=False)
        endpoints = tuple(
            Endpoint(addresses=(f"10.{100 + (i * pods + p) // 65536 % 100}."
                                f"{(i * pods + p) // 256 % 256}.{(i * pods + p) % 256}",),
                     hostname=f"{name}-{p}" if headless else None, ready=p % 10 != 9)
            for p in range(pods))
        sl = EndpointSlice(namespace=ns, name=f"{name}-abcde", uid=f"s{i}",
                           resource_version="1", service_name=name, address_type="IPv4",
                           endpoints=endpoints, ports=ports)
        seq += 1
        changes.append(Change(seq, SERVICE, ns, name, svc))
        seq += 1
        changes.append(Change(seq, ENDPOINT_SLICE, ns, sl.name, sl))
    return changes


def rebuild_phases(url: str) -> None:
    """Wall and CPU seconds of each phase of ``project --rebuild`` on the log at ``url``
    (its default projection), with the cyclic GC paused as the command pauses it."""
    from zonegen import rebuild as replay
    from zonegen import store as stores
    from zonegen.changes import stored_change
    from zonegen.store import PROJECTION

    store = stores.open(url, mode="read")
    clock = [time.perf_counter(), time.process_time()]

    def phase(what: str) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        print(f"  {what}: {wall - clock[0]:.2f} s ({cpu - clock[1]:.2f} s CPU)", flush=True)
        clock[:] = [wall, cpu]

    with replay.gc_paused():
        checkpoint = store.max_tracking_seq(PROJECTION)
        rows = list(store.replay_rows(checkpoint))
        phase(f"newest event of {len(rows):,} objects read ({sum(r[1] for r in rows):,} "
              "events)")
        changes = [stored_change(seq, t, kind, ns, name, text)
                   for seq, _n, t, kind, ns, name, text in rows]
        phase("decoded and reduced")
        proj = rebuild(changes)
        phase(f"folded, {len(proj):,} records computed")
        keys = replay.row_keys(proj.visible_records())
        phase("the replay's row keys")
        stored = store.stored_row_keys(PROJECTION)
        phase("the read model's row keys (SQLite)")
        same = stored == keys
        phase(f"compared: {'identical' if same else 'DIFFERENT'}")
        del rows, changes, proj, keys, stored
        phase("freed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--services", type=int, default=10_000)
    parser.add_argument("--pods", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--db", help="time project --rebuild's phases on this database")
    args = parser.parse_args()
    if args.db:
        print(f"project --rebuild phases on {args.db}")
        rebuild_phases(args.db)
        return

    changes = generate(args.services, args.pods)
    endpoints = args.services * args.pods
    print(f"{args.services} Services x {args.pods} endpoints = {endpoints} endpoints, "
          f"{len(changes)} changes")

    times: list[float] = []
    proj = Projection()
    for _ in range(args.runs):
        gc.collect()
        start = time.perf_counter()
        proj = rebuild(changes)
        times.append(time.perf_counter() - start)
    records = len(proj)
    best = statistics.median(times)
    print(f"rebuild: median {best:.2f} s of {args.runs} "
          f"({min(times):.2f}..{max(times):.2f}), {records} records, "
          f"{records / best:,.0f} records/s, {endpoints / best:,.0f} endpoints/s")

    # Incremental: fold every change one at a time with its Diff (the runner's path).
    gc.collect()
    start = time.perf_counter()
    inc = Projection()
    for c in changes:
        inc.apply(c)
    elapsed = time.perf_counter() - start
    print(f"apply one by one: {elapsed:.2f} s, {len(changes) / elapsed:,.0f} changes/s")

    # One pod flips readiness in a big zone: the cost of a typical event.
    sl = changes[1].obj
    assert isinstance(sl, EndpointSlice)
    flipped = replace(sl, endpoints=(sl.endpoints[0]._replace(ready=False), *sl.endpoints[1:]))
    n = 2000
    start = time.perf_counter()
    for k in range(n):
        diff = inc.apply(Change(0, ENDPOINT_SLICE, sl.namespace, sl.name,
                                flipped if k % 2 == 0 else sl))
    per = (time.perf_counter() - start) / n
    print(f"one-pod readiness flip: {per * 1e6:.0f} µs per change, "
          f"diff of {len(diff.added) + len(diff.removed)} records")

    gc.collect()
    tracemalloc.start()
    proj = rebuild(changes)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"rebuild peak traced memory: {peak / 2**20:.0f} MiB "
          f"({peak / len(proj):.0f} B per record); process max RSS {maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
