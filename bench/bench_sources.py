"""Issue #13's figures: three sources of N Services each beside one source of 3N, ingested
and projected into per-source zones and the ``clusterset.local`` zone derived from their
ServiceExports.

    python bench/bench_sources.py --scale full     # 3 x 10,000 beside 1 x 30,000
    python bench/bench_sources.py --scale small    # 3 x 1,000 beside 1 x 3,000
    python bench/bench_sources.py --services 3     # any N (tests/test_bench.py: tiny)
    options: --workdir DIR (kept; default a temporary folder, removed)

Objects have bench/_issue11_data.py's shapes: Service ``svc-S`` in ``nsS%50``, headless,
one named port; its one EndpointSlice of 10 ready pods; plus a ServiceExport of every
Service. The three sources ``a``, ``b``, ``c`` (cluster ids ``a.prod``...) hold the same
Service names (namespace sameness: each clusterset Service has three members) with distinct
pod addresses; the single source ``big`` holds 3N distinct Services. Each side has its own
SQLite database.

Rows:

- ingest: ``cli.py ingest --no-project --source X --cluster-id X.prod FILE``, whole
  processes from spawn to exit (the three sources one after another, summed, and each).
- per-source zones: ``ProjectionRunner(spec=source:X).catch_up()`` of each source's first
  version in this process (store + runner: the CLI's ``project`` folds ``source:default``),
  summed, beside ``source:big``.
- clusterset (exports): ``ClustersetRunner(spec=exports:a,b,c).catch_up()``, the first
  version, beside ``exports:big``; records in the zone.
- one changed slice (one pod not ready) in source ``a`` / ``big``, stored through the
  store, then: the per-source zone's catch-up; the clusterset's catch-up by the runner kept
  from the row above (state in memory); by a new runner (state loaded from the sources'
  newest events: what a restarted process pays once).
- rebuild check: ``ClustersetRunner.rebuild()`` is identical (the replay's time).

One run, seconds, on a shared machine: compare the columns, not absolute values.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._issue11_data import PODS, ROOT, endpoint_slice, ip, service  # noqa: E402
from zonegen.clusterset_runner import ClustersetRunner  # noqa: E402
from zonegen.model import MODIFIED, Event  # noqa: E402
from zonegen.projections import parse_target  # noqa: E402
from zonegen.runner import ProjectionRunner  # noqa: E402
from zonegen.store import Store  # noqa: E402

SCALES = {"full": 10_000, "small": 1_000}
MEMBERS = ("a", "b", "c")
BIG = "big"


def service_export(s: int) -> dict[str, Any]:
    return {"apiVersion": "multicluster.x-k8s.io/v1beta1", "kind": "ServiceExport",
            "metadata": {"name": f"svc-{s}", "namespace": f"ns{s % 50}",
                         "uid": f"se-uid-{s}", "resourceVersion": str(9_000_000 + s)}}


def source_objects(services: int, offset: int) -> Iterator[dict[str, Any]]:
    """Services 0..services-1 with pod addresses of Service ``s + offset`` (distinct
    per member), each with its slice and its ServiceExport."""
    for s in range(services):
        yield service(s)
        yield endpoint_slice(s, 2 * s + 2, addresses=[ip(s + offset, p) for p in range(PODS)])
        yield service_export(s)


def write_lines(path: Path, objects: Iterator[dict[str, Any]]) -> int:
    n = 0
    with path.open("w") as f:
        for obj in objects:
            f.write(json.dumps({"type": "ADDED", "object": obj}, separators=(",", ":")) + "\n")
            n += 1
    return n


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    value = fn()
    return time.perf_counter() - started, value


def ingest(db: Path, source: str, path: Path) -> float:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "cli.py", "--db", f"sqlite:///{db}", "ingest",
                           "--no-project", "--source", source, "--cluster-id",
                           f"{source}.prod", str(path)],
                          cwd=ROOT, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"ingest --source {source} failed: {done.stderr[-2000:]}")
    return seconds


def change_one_slice(store: Store, source: str, s: int, offset: int) -> None:
    obj = endpoint_slice(s, 8_000_000, not_ready=0,
                         addresses=[ip(s + offset, p) for p in range(PODS)])
    meta = obj["metadata"]
    store.append_events([Event(0, datetime.now(UTC), source, MODIFIED, "EndpointSlice",
                               meta["namespace"], meta["name"], meta["uid"],
                               meta["resourceVersion"], json.dumps(obj), "bench")])


@dataclass
class Side:
    """The figures of one column."""

    label: str
    figures: dict[str, str] = field(default_factory=dict)


def run_side(folder: Path, services: int, sources: tuple[str, ...]) -> Side:
    """Ingest and project ``sources`` (each ``services`` Services) into one database."""
    side = Side(f"{len(sources)} x {services:,} Services")
    db = folder / f"{'-'.join(sources)}.db"
    db.unlink(missing_ok=True)
    events = 0
    ingests: list[float] = []
    for k, source in enumerate(sources):
        path = folder / f"{source}-{services}.jsonl"
        events += write_lines(path, source_objects(services, k * services))
        ingests.append(ingest(db, source, path))
    each = " + ".join(f"{t:.1f}" for t in ingests) if len(ingests) > 1 else ""
    side.figures["ingest"] = (f"{sum(ingests):.1f} s" + (f" ({each})" if each else "")
                              + f", {events:,} events")
    store = Store.open(f"sqlite:///{db}")
    try:
        local: list[float] = []
        records = 0
        for source in sources:
            runner = ProjectionRunner(store, spec=parse_target(f"source:{source}"))
            seconds, _ = timed(runner.catch_up)
            local.append(seconds)
            state = store.read_model_state(runner.name)
            records += state.records if state is not None else 0
        each = " + ".join(f"{t:.1f}" for t in local) if len(local) > 1 else ""
        side.figures["per-source zones"] = (f"{sum(local):.1f} s" + (f" ({each})" if each
                                                                     else "")
                                            + f", {records:,} records")
        spec = parse_target("exports:" + ",".join(sources))
        kept = ClustersetRunner(store, spec=spec)
        seconds, _ = timed(kept.catch_up)
        state = store.read_model_state(kept.name)
        side.figures["clusterset (exports)"] = (
            f"{seconds:.1f} s, {state.records if state else 0:,} records")
        change_one_slice(store, sources[0], services // 2, 0)
        local_runner = ProjectionRunner(store, spec=parse_target(f"source:{sources[0]}"))
        seconds, made = timed(local_runner.catch_up)
        side.figures["change: per-source zone"] = f"{seconds * 1000:.0f} ms ({len(made)} version)"
        seconds, made = timed(kept.catch_up)
        side.figures["change: clusterset, kept runner"] = (
            f"{seconds * 1000:.0f} ms ({len(made)} version)")
        change_one_slice(store, sources[0], services // 2 + 1, 0)
        fresh = ClustersetRunner(store, spec=spec)
        seconds, made = timed(fresh.catch_up)
        side.figures["change: clusterset, new runner (full load)"] = (
            f"{seconds * 1000:.0f} ms ({len(made)} version)")
        report = fresh.rebuild()
        side.figures["clusterset rebuild check"] = (
            f"{report.seconds:.1f} s, {'identical' if report.identical else 'DIFFERS'}")
    finally:
        store.close()
    return side


ROWS = ("ingest", "per-source zones", "clusterset (exports)", "change: per-source zone",
        "change: clusterset, kept runner", "change: clusterset, new runner (full load)",
        "clusterset rebuild check")


def run(folder: Path, services: int) -> list[Side]:
    return [run_side(folder, services, MEMBERS), run_side(folder, 3 * services, (BIG,))]


def markdown(sides: list[Side]) -> str:
    lines = ["| | " + " | ".join(s.label for s in sides) + " |",
             "|---|" + "---|" * len(sides)]
    lines += [f"| {row} | " + " | ".join(s.figures.get(row, "-") for s in sides) + " |"
              for row in ROWS]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", choices=sorted(SCALES), default="small")
    parser.add_argument("--services", type=int, help="Services per member source")
    parser.add_argument("--workdir", type=Path, help="keep the inputs and databases here")
    args = parser.parse_args(argv)
    services = args.services or SCALES[args.scale]
    folder = args.workdir or Path(tempfile.mkdtemp(prefix="zonegen-bench-sources-"))
    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    try:
        sides = run(folder, services)
    finally:
        if args.workdir is None:
            shutil.rmtree(folder, ignore_errors=True)
    text = (f"## Issue #13: 3 sources x {services:,} Services beside 1 x {3 * services:,} "
            f"({time.perf_counter() - started:.0f} s in all)\n\n" + markdown(sides))
    print(text)
    return text


if __name__ == "__main__":
    main()
