"""The inputs of the issue #11 table (bench/bench_issue11.py): generated clusters, their
databases, and a log of many events, cached per scale so reruns are quick.

Every object is the Kubernetes-like shape of docs/PERFORMANCE.md's reference zone: Service
``svc-S`` in namespace ``nsS%50``, headless, one named port ``http``; its one
EndpointSlice ``svc-S-abcde`` holds ``pods`` ready endpoints ``svc-S-P`` at
``10.(S>>8).(S&255).(P+1)``. That gives 4 records per pod in ``cluster.local`` (Service A,
pod A, ``_http._tcp`` SRV and bare SRV), so 25,000 Services of 10 pods are the 1,000,000
record zone, with the same names ``bench/_zone.py`` and ``bench/bench_query.py`` use.

Databases are made through the real CLI (``cli.py ingest`` of the generated objects as
watch-event lines, then ``cli.py project``), except the bulk of the event log for the
``project --rebuild`` row: its slice updates go in through the store's append API
(``Store.append_events``, the call ``ingest`` and ``watch`` end in), because ``ingest``
checks every incoming event against the log one query at a time and would take many
minutes to store a million of them. The updates are then folded by ``cli.py project``.

The cache key covers the generator version, the sizes and the schema (``migrations/``):
a database of another schema is made again. Code changes that keep the schema reuse the
cached databases (building the full scale takes about 20 minutes of one core), as an
upgraded installation would; ``--clean`` forces a rebuild after a change to what is
stored in a column.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
GENERATOR_VERSION = "1"
PODS = 10


@dataclass(frozen=True)
class Scale:
    """Sizes of one run of the table."""

    name: str
    ingest_small: int  # Services (x PODS endpoints) of the one-change ingest reference
    ingest_large: int  # Services of the measured one-change ingest; also the burst's DB
    burst: int  # slice updates in the burst (x PODS endpoint updates)
    zone_services: int  # Services of the zone for export/serve/AXFR/dnsperf/RSS (x 4 x PODS)
    events: int  # events in the log replayed by project --rebuild
    dnsperf_seconds: int
    runs: int

    @property
    def zone_records(self) -> int:
        return self.zone_services * PODS * 4

    @property
    def update_rounds(self) -> int:
        """Updates of every slice in the rebuild's log, after the cluster's own events."""
        return max(1, (self.events - 2 * self.zone_services) // self.zone_services)

    @property
    def log_events(self) -> int:
        """Events in the rebuild's log: ``events``, rounded to whole update rounds."""
        return (2 + self.update_rounds) * self.zone_services


SCALES = {
    "full": Scale("full", 100, 10_000, 10_000, 25_000, 1_000_000, 10, 3),
    "small": Scale("small", 100, 1_000, 1_000, 2_500, 100_000, 3, 3),
}


# ----------------------------------------------------------------------------- objects


def ip(s: int, p: int) -> str:
    return f"10.{(s >> 8) & 255}.{s & 255}.{p + 1}"


def service(s: int) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": f"svc-{s}", "namespace": f"ns{s % 50}",
                         "uid": f"svc-uid-{s}", "resourceVersion": str(2 * s + 1)},
            "spec": {"type": "ClusterIP", "clusterIP": "None", "clusterIPs": ["None"],
                     "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}}


def endpoint_slice(s: int, rv: int, not_ready: int | None = None,
                   addresses: list[str] | None = None) -> dict[str, Any]:
    """Slice of Service ``s``; endpoint ``not_ready`` (if any) is not ready."""
    ns = f"ns{s % 50}"
    ips = addresses or [ip(s, p) for p in range(PODS)]
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"svc-{s}-abcde", "namespace": ns, "uid": f"eps-uid-{s}",
                         "resourceVersion": str(rv),
                         "labels": {"kubernetes.io/service-name": f"svc-{s}"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [a], "conditions": {"ready": p != not_ready},
                           "hostname": f"svc-{s}-{p}",
                           "targetRef": {"kind": "Pod", "name": f"svc-{s}-{p}",
                                         "namespace": ns}}
                          for p, a in enumerate(ips)],
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}


def cluster_objects(services: int) -> Iterator[dict[str, Any]]:
    """Service then slice, resourceVersions 1, 2, 3, ... in this order (the order
    tests/kubeapi.py's FakeKubeAPI numbers them when added in this order)."""
    for s in range(services):
        yield service(s)
        yield endpoint_slice(s, 2 * s + 2)


def write_events(path: Path, objects: Iterator[dict[str, Any]], typ: str = "ADDED") -> None:
    with path.open("w") as f:
        for obj in objects:
            f.write(json.dumps({"type": typ, "object": obj}, separators=(",", ":")) + "\n")


def burst_objects(services: int, count: int, first_rv: int) -> Iterator[dict[str, Any]]:
    """``count`` slice updates, round robin over the Services: every endpoint of the
    slice moves to a new address (PODS endpoint updates each)."""
    for i in range(count):
        s = i % services
        gen = 1 + i // services
        addresses = [f"10.{(s >> 8) & 255}.{s & 255}.{(p + gen * PODS) % 250 + 1}"
                     for p in range(PODS)]
        yield endpoint_slice(s, first_rv + i, addresses=addresses)


# ----------------------------------------------------------------------------- the CLI


def cli(db: Path, *args: str) -> str:
    """Run ``cli.py --db sqlite:///DB ARGS`` from the repository root; its stdout."""
    done = subprocess.run([sys.executable, "cli.py", "--db", f"sqlite:///{db}", *args],
                          cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"cli.py {' '.join(args)} failed ({done.returncode}):\n"
                         f"{done.stderr[-2000:]}")
    return done.stdout


def copy_db(src: Path, dst: Path) -> Path:
    for suffix in ("", "-wal", "-shm"):
        extra = Path(str(src) + suffix)
        if extra.exists():
            shutil.copyfile(extra, Path(str(dst) + suffix))
    return dst


# ----------------------------------------------------------------------------- cache


def code_key(scale: Scale) -> str:
    sizes = (scale.name, scale.ingest_small, scale.ingest_large, scale.burst,
             scale.zone_services, scale.events)
    h = hashlib.sha256(f"{GENERATOR_VERSION} {sizes}".encode())
    for folder in ("migrations",):
        for path in sorted((ROOT / folder).rglob("*.py")):
            h.update(str(path.relative_to(ROOT)).encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class Inputs:
    """Paths of the cached inputs of one scale (all made by :func:`prepare`)."""

    folder: Path

    def cluster(self, services: int) -> Path:
        return self.folder / f"cluster-{services}.jsonl"

    def db(self, services: int) -> Path:
        """Database holding the cluster of ``services`` Services, projected."""
        return self.folder / f"cluster-{services}.db"

    @property
    def burst(self) -> Path:
        return self.folder / "burst.jsonl"

    @property
    def events_db(self) -> Path:
        return self.folder / "events.db"


def _log(msg: str) -> None:
    print(f"  [setup] {msg}", file=sys.stderr, flush=True)


def _cluster_db(inputs: Inputs, services: int) -> Path:
    db = inputs.db(services)
    if db.exists():
        return db
    src = inputs.cluster(services)
    write_events(src, cluster_objects(services))
    tmp = db.with_suffix(".tmp.db")
    for suffix in ("", "-wal", "-shm"):
        Path(str(tmp) + suffix).unlink(missing_ok=True)
    t = time.perf_counter()
    cli(tmp, "ingest", "--no-project", str(src))
    t1 = time.perf_counter()
    cli(tmp, "project")
    _log(f"cluster of {services:,} Services: ingest --no-project {t1 - t:.1f} s, "
         f"project {time.perf_counter() - t1:.1f} s")
    for suffix in ("-wal", "-shm", ""):  # the main file last: its presence means done
        part = Path(str(tmp) + suffix)
        if part.exists():
            part.rename(Path(str(db) + suffix))
    return db


def _append_updates(db: Path, services: int, rounds: int) -> None:
    """``rounds`` updates of every slice through ``Store.append_events``: in round r,
    endpoint r % PODS is not ready (the last round: all ready, the zone as it began)."""
    from zonegen.model import Event
    from zonegen.store import Store

    store = Store.open(f"sqlite:///{db}")
    try:
        rv = 2 * services + 1
        batch: list[Event] = []
        now = datetime.now(UTC)
        for r in range(1, rounds + 1):
            for s in range(services):
                rv += 1
                obj = endpoint_slice(s, rv, not_ready=None if r == rounds else r % PODS)
                batch.append(Event(
                    seq=0, received_at=now, source="default", origin="bench", type="MODIFIED",
                    kind="EndpointSlice", namespace=obj["metadata"]["namespace"],
                    name=obj["metadata"]["name"], uid=obj["metadata"]["uid"],
                    resource_version=str(rv),
                    object_json=json.dumps(obj, separators=(",", ":"), sort_keys=True)))
                if len(batch) >= 5000:
                    store.append_events(batch)
                    batch = []
        if batch:
            store.append_events(batch)
    finally:
        store.close()


def _events_db(inputs: Inputs, scale: Scale) -> Path:
    db = inputs.events_db
    if db.exists():
        return db
    services = scale.zone_services
    rounds = scale.update_rounds
    tmp = db.with_suffix(".tmp.db")
    copy_db(_cluster_db(inputs, services), tmp)
    t = time.perf_counter()
    _append_updates(tmp, services, rounds)
    t1 = time.perf_counter()
    cli(tmp, "project")
    _log(f"event log: {2 * services + rounds * services:,} events; {rounds * services:,} "
         f"slice updates appended in {t1 - t:.1f} s, folded by `project` in "
         f"{time.perf_counter() - t1:.1f} s")
    for suffix in ("-wal", "-shm", ""):
        part = Path(str(tmp) + suffix)
        if part.exists():
            part.rename(Path(str(db) + suffix))
    return db


def prepare(cache: Path, scale: Scale, rows: set[str]) -> Inputs:
    """Make (or find) what the selected rows need."""
    folder = cache / f"{scale.name}-{code_key(scale)}"
    folder.mkdir(parents=True, exist_ok=True)
    inputs = Inputs(folder)
    if rows & {"ingest", "burst"}:
        _cluster_db(inputs, scale.ingest_small)
        _cluster_db(inputs, scale.ingest_large)
        if not inputs.burst.exists():
            write_events(inputs.burst, burst_objects(
                scale.ingest_large, scale.burst, 2 * scale.ingest_large + 1000),
                typ="MODIFIED")
    if rows & {"export", "serve", "dnsperf", "axfr", "rss"}:
        _cluster_db(inputs, scale.zone_services)
    if "rebuild" in rows:
        _events_db(inputs, scale)
    return inputs
