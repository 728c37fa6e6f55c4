"""How ``zonegen history NAME`` (and past exports and diffs) scale with the event log.

Builds logs of 10k, 100k and 1M events directly through the store's tables (bulk, via the
driver's executemany): S Services with P pods each; every event is an EndpointSlice
update that replaces one pod's address, and is projected as 4 record changes (Service A
out/in, per-pod A out/in), committed as one zone version per 100 events. Then prints
the median ``history`` latency over several names, the query plan, and the cost of
``export --serial`` (records_at) with and without a snapshot. Figures only.

    python -m bench.bench_history [SIZES...]        # default: 10000 100000 1000000
"""

from __future__ import annotations

import json
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from zonegen import history
from zonegen.model import A, Record
from zonegen.names import zone_config
from zonegen.store import PROJECTION, Store, to_us

PODS = 4
PER_VERSION = 100
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def build(store: Store, events_n: int) -> int:
    """Fill the log; returns the number of Services."""
    services = max(10, events_n // 50)  # ~50 changes per Service over the log
    ips = {(s, p): f"10.{(s >> 8) & 255}.{s & 255}.{p + 1}" for s in range(services)
           for p in range(PODS)}
    gen = {(s, p): 0 for s in range(services) for p in range(PODS)}
    rnd = random.Random(7)
    raw = store.engine.raw_connection()
    cur = raw.cursor()
    cur.execute("BEGIN")
    ev_rows, ver_rows, ch_rows = [], [], []
    version_id = 0
    serial = 1_000_000

    def owner(s: int) -> str:
        return f"svc-{s}.ns{s % 50}.svc"

    def add_change(vid: int, added: bool, rec: Record, cause: int) -> None:
        row = rec.to_row()
        ch_rows.append((vid, added, row["owner"], row["rtype"], row["ttl"], row["rdata"],
                        cause))

    # Version 1: every Service and pod published by the first events.
    version_id += 1
    for s in range(services):
        for p in range(PODS):
            add_change(version_id, True, Record(owner(s), A, (ips[s, p],)), s + 1)
            add_change(version_id, True, Record(f"pod-{p}.{owner(s)}", A, (ips[s, p],)), s + 1)
    seq = 0
    for s in range(services):
        seq += 1
        ev_rows.append((seq, to_us(T0), "bench", "ADDED", "EndpointSlice", f"ns{s % 50}",
                        f"svc-{s}-abc", f"uid-{s}", "1", json.dumps({"kind": "EndpointSlice"})))
    ver_rows.append((version_id, serial, to_us(T0), seq))
    while seq < events_n:
        version_id += 1
        serial += 1
        when = T0 + timedelta(seconds=version_id)
        for _ in range(min(PER_VERSION, events_n - seq)):
            seq += 1
            s, p = rnd.randrange(services), rnd.randrange(PODS)
            gen[s, p] += 1
            old = ips[s, p]
            new = f"10.{128 + (gen[s, p] & 127)}.{s & 255}.{(s >> 8) & 255}"
            if new in (ips[s, q] for q in range(PODS)):
                new = f"10.255.{seq & 255}.{(seq >> 8) & 255}"
            ips[s, p] = new
            for o in (owner(s), f"pod-{p}.{owner(s)}"):
                add_change(version_id, False, Record(o, A, (old,)), seq)
                add_change(version_id, True, Record(o, A, (new,)), seq)
            ev_rows.append((seq, to_us(when), "bench", "MODIFIED", "EndpointSlice",
                            f"ns{s % 50}", f"svc-{s}-abc", f"uid-{s}", str(seq + 1),
                            json.dumps({"kind": "EndpointSlice"})))
        ver_rows.append((version_id, serial, to_us(when), seq))
        if len(ch_rows) > 200_000:
            _flush(cur, ev_rows, ver_rows, ch_rows)
    _flush(cur, ev_rows, ver_rows, ch_rows)
    cur.execute("INSERT INTO trackings (name, last_seq) VALUES (?, ?)", (PROJECTION, seq))
    cur.execute("COMMIT")
    cur.execute("ANALYZE")
    raw.close()
    return services


def _flush(cur: object, ev_rows: list, ver_rows: list, ch_rows: list) -> None:  # type: ignore[type-arg]
    c = cur  # sqlite3 cursor
    c.executemany(  # type: ignore[attr-defined]
        "INSERT INTO events (seq, received_us, source, type, kind, namespace, name, uid, "
        "resource_version, object) VALUES (?,?,?,?,?,?,?,?,?,?)", ev_rows)
    c.executemany(  # type: ignore[attr-defined]
        "INSERT INTO zone_versions (id, serial, created_us, last_event_seq) VALUES (?,?,?,?)",
        ver_rows)
    c.executemany(  # type: ignore[attr-defined]
        "INSERT INTO record_changes (version_id, added, owner, rtype, ttl, rdata, cause_seq) "
        "VALUES (?,?,?,?,?,?,?)", ch_rows)
    ev_rows.clear()
    ver_rows.clear()
    ch_rows.clear()


def timed(fn: object, *args: object, **kw: object) -> tuple[float, object]:
    t = time.perf_counter()
    out = fn(*args, **kw)  # type: ignore[operator]
    return time.perf_counter() - t, out


def run(events_n: int, tmp: str) -> None:
    path = os.path.join(tmp, f"h{events_n}.db")
    store = Store.open(f"sqlite:///{path}")
    t, services = timed(build, store, events_n)
    changes = _count(store, "record_changes")
    size = os.path.getsize(path) / 1e6
    print(f"\n{events_n:>9,} events, {services:,} Services, {changes:,} record changes, "
          f"{size:.0f} MB: built in {t:.1f} s")
    cfg = zone_config()
    rnd = random.Random(1)
    names = [f"svc-{rnd.randrange(services)}.ns0.svc" for _ in range(15)]
    names = [f"svc-{s}.ns{s % 50}.svc" for s in (rnd.randrange(services) for _ in range(15))]
    history.name_history(store, names[0], cfg)  # warm the cache
    lat, sizes = [], []
    for n in names:
        dt, entries = timed(history.name_history, store, n, cfg)
        lat.append(dt)
        sizes.append(len(entries))  # type: ignore[arg-type]
    print(f"  history NAME: median {statistics.median(lat) * 1000:.1f} ms, max "
          f"{max(lat) * 1000:.1f} ms ({statistics.median(sizes):.0f} changes per name)")
    lat_t = [timed(history.name_history, store, n, cfg, type="A",
                   since=T0 + timedelta(hours=1))[0] for n in names]
    print(f"  history NAME --type A --since: median {statistics.median(lat_t) * 1000:.1f} ms")
    latest = store.latest_version()
    assert latest is not None
    mid = store.versions()[len(store.versions()) // 2]
    dt, recs = timed(store.records_at, latest.version_id)
    print(f"  export --serial (newest), fold from the start: {dt:.2f} s "
          f"({len(recs):,} records)")  # type: ignore[arg-type]
    dt_d, d = timed(history.diff_versions, store, mid.serial, mid.serial + 10, cfg)
    print(f"  diff of 10 neighbouring versions: {dt_d * 1000:.1f} ms "
          f"({len(d.lines)} lines)")  # type: ignore[attr-defined]
    t_snap, _ = timed(store.save_snapshot, mid.version_id)
    dt2, recs2 = timed(store.records_at, latest.version_id)
    assert recs2 == recs
    print(f"  export --serial (newest) from a mid-history snapshot: {dt2:.2f} s "
          f"(snapshot written in {t_snap:.2f} s)")
    with store.engine.connect() as conn:
        plan = conn.exec_driver_sql(
            "EXPLAIN QUERY PLAN SELECT record_changes.id FROM record_changes JOIN "
            "zone_versions ON zone_versions.id = record_changes.version_id LEFT OUTER JOIN "
            "events ON events.seq = record_changes.cause_seq WHERE record_changes.owner "
            "IN (?, ?) ORDER BY record_changes.version_id, record_changes.id",
            (names[0], names[0] + ".cluster.local.")).all()
    if events_n == max(SIZES):
        print("  plan: " + " | ".join(str(r[-1]) for r in plan))
    store.close()


def _count(store: Store, table: str) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar() or 0)


SIZES = [int(a) for a in sys.argv[1:]] or [10_000, 100_000, 1_000_000]

if __name__ == "__main__":
    with tempfile.TemporaryDirectory(prefix="zonegen-bench-") as tmp:
        for size in SIZES:
            run(size, tmp)
