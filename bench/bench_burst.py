"""Issue #11 burst row, side by side in one run (figures only, medians of RUNS).

A burst of BURST EndpointSlice updates of 10 endpoints each (BURST*10 endpoint updates)
over SERVICES headless Services already projected, folded as one batch:

  floor        json.loads of the same watch lines + executemany of them as rows into SQLite
  per-event    reduce + Projection.apply per event + net_change (the runner before #11)
  apply_many   reduce + Projection.apply_many over the batch (burst folding)
  journal rows  executemany of the resulting record_changes rows into SQLite

    python -m bench.bench_burst [BURST] [SERVICES] [RUNS]   (default 10000 2000 3)

The whole-process table of issue #11 is bench/bench_issue11.py.
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


def main() -> None:
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
