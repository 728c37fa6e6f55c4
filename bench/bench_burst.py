"""Issue #11 burst row, side by side in one run (figures only, medians of RUNS).

A burst of BURST EndpointSlice updates of 10 endpoints each (BURST*10 endpoint updates)
over SERVICES headless Services already projected, folded as one batch:

  floor        json.loads of the same watch lines + executemany of them as rows into SQLite
  per-event    reduce + Projection.apply per event + net_change (the runner before #11)
  apply_many   reduce + Projection.apply_many over the batch (burst folding)
  journal rows  executemany of the resulting record_changes rows into SQLite

    python -m bench.bench_burst [BURST] [SERVICES] [RUNS]   (default 10000 2000 3)

Where the time of one whole ``ingest`` of a burst goes (the phases of the ingest and of
its catch-up, each timed around its function; nested rows are part of the row above):

    python -m bench.bench_burst split DB FILE   (DB is copied first, never changed)

e.g. with bench/bench_issue11.py's cached inputs: ``split CACHE/small-*/cluster-1000.db
CACHE/small-*/burst.jsonl``. The whole-process table of issue #11 is
bench/bench_issue11.py.
"""

from __future__ import annotations

import json
import sqlite3
import statistics
import sys
import time
from typing import Any

from tests.kubeapi import endpoint_slice, service
from zonegen.model import ENDPOINT_SLICE, SERVICE, Change, net_change, reduce
from zonegen.project import Projection


def _meta(obj: dict[str, Any], rv: int) -> dict[str, Any]:
    obj["metadata"].setdefault("uid", "u-" + obj["metadata"]["name"])
    obj["metadata"]["resourceVersion"] = str(rv)
    return obj


def _addresses(i: int, gen: int) -> list[str]:
    return [f"10.{(i >> 8) & 255}.{i & 255}.{(j + gen * 10) % 250 + 1}" for j in range(10)]


def _setup(services: int) -> tuple[Projection, list[Change]]:
    proj = Projection()
    base: list[Change] = []
    for s in range(services):
        svc = _meta(service(f"svc-{s}", cluster_ip=None), 1)
        base.append(Change(0, SERVICE, "default", f"svc-{s}", reduce(SERVICE, svc)))
        sl = _meta(endpoint_slice(f"svc-{s}", _addresses(s, 0), name=f"svc-{s}-x"), 1)
        base.append(Change(0, ENDPOINT_SLICE, "default", f"svc-{s}-x",
                           reduce(ENDPOINT_SLICE, sl)))
    for c in base:
        proj.apply(c)
    return proj, base


def _lines(burst: int, services: int) -> list[bytes]:
    out = []
    for i in range(burst):
        s = i % services
        obj = _meta(endpoint_slice(f"svc-{s}", _addresses(s, 1 + i // services),
                                    name=f"svc-{s}-x"), 2 + i)
        out.append(json.dumps({"type": "MODIFIED", "object": obj}).encode())
    return out


def _floor(lines: list[bytes]) -> float:
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE ev (seq INTEGER PRIMARY KEY, kind TEXT, ns TEXT, name TEXT, "
               "obj BLOB)")
    t = time.perf_counter()
    rows = []
    for line in lines:
        ev = json.loads(line)
        md = ev["object"]["metadata"]
        rows.append((ENDPOINT_SLICE, md.get("namespace", "default"), md["name"], line))
    db.executemany("INSERT INTO ev (kind, ns, name, obj) VALUES (?, ?, ?, ?)", rows)
    db.commit()
    return time.perf_counter() - t


def _changes(lines: list[bytes]) -> list[tuple[int, Change]]:
    out = []
    for seq, line in enumerate(lines, start=1):
        obj: Any = json.loads(line)["object"]
        md = obj["metadata"]
        out.append((seq, Change(seq, ENDPOINT_SLICE, md.get("namespace", "default"),
                                md["name"], reduce(ENDPOINT_SLICE, obj))))
    return out


def _per_event(proj: Projection, lines: list[bytes]) -> tuple[float, int]:
    t = time.perf_counter()
    steps = []
    for seq, c in _changes(lines):
        d = proj.apply(c)
        steps += [(False, r, seq) for r in d.removed] + [(True, r, seq) for r in d.added]
    added, removed = net_change(steps)
    return time.perf_counter() - t, len(added) + len(removed)


def _many(proj: Projection, lines: list[bytes]) -> tuple[float, int]:
    t = time.perf_counter()
    got = proj.apply_many(_changes(lines))
    return time.perf_counter() - t, len(got.added) + len(got.removed)


def _journal(rows: int) -> float:
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE rc (version_id INT, added INT, owner TEXT, rtype INT, "
               "rdata TEXT, cause INT)")
    data = [(1, i & 1, f"10-0-{i}.svc-1.default.svc", 1, f"10.0.{i}", i) for i in range(rows)]
    t = time.perf_counter()
    db.executemany("INSERT INTO rc VALUES (?, ?, ?, ?, ?, ?)", data)
    db.commit()
    return time.perf_counter() - t


# (module, attribute path, label, depth): the phases of one ingest and its catch-up.
PHASES = (
    ("zonegen.ingest", "_Ingester.drain", "reconcile (decode, reduce, look up the log)", 0),
    ("zonegen.ingest", "_Ingester.flush", "append events", 1),
    ("zonegen.runner", "ProjectionRunner._catch_up", "catch-up", 0),
    ("zonegen.store.events", "EventLog.select_events", "read the chunk's events", 1),
    ("zonegen.runner", "to_change", "reduce the chunk's events", 1),
    ("zonegen.partial", "PartialProjection.before", "load the touched Services", 1),
    ("zonegen.store.readmodel", "ReadModel.slice_services", "slices' old Services", 2),
    ("zonegen.store.readmodel", "ReadModel.objects_of", "their objects' rows", 2),
    ("zonegen.store.readmodel", "ReadModel.events_by_seq", "their objects' events", 2),
    ("zonegen.partial", "to_change", "reduce their objects", 2),
    ("zonegen.store.readmodel", "ReadModel.records_of", "their stored records", 2),
    ("zonegen.store.readmodel", "ReadModel.ptrs_at", "PTRs at their reverse names", 2),
    ("zonegen.project", "Projection.apply_many", "apply_many (recompute, causes)", 1),
    ("zonegen.partial", "PartialProjection.change", "read-model change", 1),
    ("zonegen.runner", "ProjectionRunner._commit", "commit", 1),
    ("zonegen.store.journal", "ZoneJournal.commit_version", "commit_version", 2),
    ("zonegen.store.journal", "_insert_many", "journal rows (record_changes)", 3),
    ("zonegen.store.readmodel", "write_change", "read-model rows", 3),
)


def split(db: str, path: str) -> None:
    """Time one whole ingest of ``path`` into a copy of ``db``, phase by phase."""
    import functools
    import importlib
    import shutil
    import tempfile
    from collections import defaultdict
    from pathlib import Path

    spent: defaultdict[str, float] = defaultdict(float)
    cpu: defaultdict[str, float] = defaultdict(float)  # this process's CPU (shared cores)
    for module_name, attr, label, _depth in PHASES:
        owner: Any = importlib.import_module(module_name)
        *parents, name = attr.split(".")
        for parent in parents:
            owner = getattr(owner, parent)
        f = getattr(owner, name)

        def timed(*a: Any, _f: Any = f, _label: str = label, **k: Any) -> Any:
            t, c = time.perf_counter(), time.process_time()
            try:
                return _f(*a, **k)
            finally:
                spent[_label] += time.perf_counter() - t
                cpu[_label] += time.process_time() - c

        setattr(owner, name, functools.wraps(f)(timed))
    from zonegen.ingest import ingest_files
    from zonegen.store import Store

    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "burst.db"
        for suffix in ("", "-wal", "-shm"):
            if Path(db + suffix).exists():
                shutil.copyfile(db + suffix, str(copy) + suffix)
        t0, c0 = time.perf_counter(), time.process_time()
        store = Store.open(f"sqlite:///{copy}")
        opened, opened_cpu = time.perf_counter() - t0, time.process_time() - c0
        report = ingest_files(store, [path])
        total, total_cpu = time.perf_counter() - t0, time.process_time() - c0
        store.close()
    print(f"ingest of {path}: {report.summary()}")
    print(f"  {'':46s} {'wall':>9s} {'CPU':>9s}")
    print(f"  {'open the store':46s} {opened:7.3f} s {opened_cpu:7.3f} s")
    for _m, _a, label, depth in PHASES:
        print(f"  {'  ' * depth + label:46s} {spent[label]:7.3f} s {cpu[label]:7.3f} s")
    print(f"  {'whole ingest (open to commit)':46s} {total:7.3f} s {total_cpu:7.3f} s")


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "split":
        split(sys.argv[2], sys.argv[3])
        return
    burst = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    services = int(sys.argv[2]) if len(sys.argv) > 2 else 2_000
    runs = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    lines = _lines(burst, services)
    floor, one, many, rows = [], [], [], 0
    for _ in range(runs):
        floor.append(_floor(lines))
        proj, _ = _setup(services)
        s, rows = _per_event(proj, lines)
        one.append(s)
        proj, _ = _setup(services)
        s, rows2 = _many(proj, lines)
        many.append(s)
        assert rows == rows2
    journal = statistics.median(_journal(rows) for _ in range(runs))
    eps = burst * 10
    f, o, m = (statistics.median(x) for x in (floor, one, many))
    print(f"burst: {burst} slice updates ({eps} endpoint updates) over {services} Services, "
          f"{rows} net record changes, median of {runs}")
    print(f"  floor (json.loads + SQLite rows)   {f:7.3f} s  {eps / f:9.0f} endpoint updates/s")
    print(f"  per-event apply  {o:7.3f} s  {eps / o:9.0f} /s  {o / f:5.1f}x floor")
    print(f"  apply_many       {m:7.3f} s  {eps / m:9.0f} /s  {m / f:5.1f}x floor")
    print(f"  journal rows executemany (SQLite)  {journal:7.3f} s  for {rows} rows")


if __name__ == "__main__":
    main()
