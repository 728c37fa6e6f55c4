"""Issue #11's whole table in one run: every zonegen figure beside its reference measured
in the same run (named, named-compilezone, knotd, dnsperf, SQLite), the ratio, the goal.

    python -m bench.bench_issue11 --scale full     # the issue's sizes (long: see below)
    python -m bench.bench_issue11 --scale small    # 1/10 sizes, a quick check
    python bench/bench_issue11.py --scale small    # the same, run as a file
    options: --runs N  --only ROW[,ROW]  --cache DIR  --clean  --keep-going

Rows (``--only`` names): ingest, export, serve, burst, rebuild, dnsperf, axfr, rss.
Every zonegen figure is a whole ``sys.executable cli.py ...`` process from the repository
root, timed from spawn to exit (peak RSS from the kernel's count for that child); servers
are timed from spawn until a UDP query for a known name gets the right answer. Medians of
``--runs`` (zonegen and reference runs alternate), so compare ratios, not seconds: the
machine (2 cores) is shared and absolute times drift.

- ingest: one changed EndpointSlice (one pod not ready) ingested into the cluster of
  ``ingest_large`` Services x 10 endpoints, against the same into ``ingest_small``.
- export: ``export -o`` of the 1M-record zone (25,000 headless Services x 10 pods, the
  zone of docs/PERFORMANCE.md) against ``named-compilezone`` of the exported file.
- serve: ``serve`` start to first answer, against ``named -f`` loading the exported file.
- burst: ``ingest`` of 10,000 EndpointSlice watch lines (100,000 endpoint updates; every
  slice of the 10,000-Service cluster, all its endpoints moved), stored and projected,
  against a process that ``json.loads`` the same lines and inserts them as rows into a
  SQLite file (WAL, synchronous=NORMAL, as zonegen sets it) in one transaction.
- rebuild: ``project --rebuild`` of a log of 1M events (the 1M-record cluster, then 38
  updates of every slice); no reference, the goal is absolute.
- dnsperf: queries/s of the ``serve`` process of the serve row against that ``named``
  (bench/bench_query.py's query mix and dnsperf settings).
- axfr: AXFR of the zone from ``serve`` against ``knotd`` serving the exported file,
  counted by a client that only reads headers (bench/bench_serve.py's way).
- rss: peak RSS (VmHWM) of ``serve --watch`` on the 1M-record database, watching the
  loopback fake API server (tests/kubeapi.py) that holds the same objects, after its
  first answer and one watched change answered; against the VmHWM of that ``named`` after
  the dnsperf and AXFR runs.

Inputs (clusters, databases, the event log) are made once per scale and code version
(bench/_issue11_data.py) in ``--cache`` (default: TMPDIR/zonegen-bench-issue11);
``--clean`` deletes that folder and exits. Making the full-scale inputs takes many minutes
on a slow tree; the timed rows then run in about 10-20 minutes. Ports are free high ports
on 127.0.0.1; only processes this script starts are stopped, also on failure.

The in-process breakdown of the burst (per-event apply against apply_many) is
bench/bench_burst.py.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import dns.exception  # noqa: E402
import dns.message  # noqa: E402
import dns.query  # noqa: E402
import dns.rcode  # noqa: E402

from bench._issue11_data import (  # noqa: E402
    PODS,
    ROOT,
    SCALES,
    Inputs,
    Scale,
    cluster_objects,
    copy_db,
    endpoint_slice,
    ip,
    prepare,
)
from bench._zone import named_conf  # noqa: E402
from tests.integration.conftest import free_port  # noqa: E402

ZONE = "cluster.local"
ROWS = ("ingest", "export", "serve", "burst", "rebuild", "dnsperf", "axfr", "rss")


# ----------------------------------------------------------------------------- results


@dataclass
class Row:
    work: str
    zonegen: str
    reference: str
    ratio: str
    goal: str


@dataclass
class Table:
    scale: Scale
    rows: dict[str, Row] = field(default_factory=dict)

    def add(self, key: str, row: Row) -> None:
        self.rows[key] = row
        print(f"  {row.work}: zonegen {row.zonegen}; reference {row.reference}; "
              f"ratio {row.ratio} (goal {row.goal})", flush=True)

    def markdown(self) -> str:
        out = ["| work | zonegen | reference (same run) | ratio | goal |",
               "|---|---|---|---|---|"]
        for key in ROWS:
            if key in self.rows:
                r = self.rows[key]
                out.append(f"| {r.work} | {r.zonegen} | {r.reference} | {r.ratio} | {r.goal} |")
        return "\n".join(out)


def med(xs: list[float]) -> float:
    return statistics.median(xs)


def runs_text(xs: list[float], fmt: str = "{:.2f}") -> str:
    return ", ".join(fmt.format(x) for x in xs)


def count(n: int) -> str:
    return f"{n // 1_000_000}M" if n >= 1_000_000 and n % 1_000_000 == 0 else (
        f"{n // 1000}k" if n >= 1000 and n % 1000 == 0 else str(n))


# ----------------------------------------------------------------------------- processes

# Time and peak RSS of one command, measured by a small parent of it: ru_maxrss of a child
# is carried over fork+exec from its parent, so the parent must be small, not this script.
_TIMED = (
    "import resource, subprocess, sys, time\n"
    "t = time.perf_counter()\n"
    "p = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.PIPE)\n"
    "dt = time.perf_counter() - t\n"
    "rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
    "sys.stderr.buffer.write(p.stderr[-3000:])\n"
    "sys.stdout.buffer.write(f'{dt} {rss} {p.returncode}\\n'.encode() + p.stdout[-3000:])\n"
)


@dataclass(frozen=True)
class Timed:
    seconds: float
    rss_mb: float
    out: str


def timed(*cmd: str) -> Timed:
    """Run ``cmd`` from the repository root in a fresh process: wall seconds from spawn
    to exit, peak RSS, the tail of its stdout. Fails loudly on a non-zero exit."""
    done = subprocess.run([sys.executable, "-c", _TIMED, *cmd], cwd=ROOT,
                          capture_output=True, text=True)
    first, _, rest = done.stdout.partition("\n")
    seconds, rss_kb, code = first.split()
    if code != "0":
        raise RuntimeError(f"{' '.join(cmd)} exited {code}:\n{done.stderr[-2000:]}")
    return Timed(float(seconds), int(rss_kb) / 1024, rest.strip())


def zonegen_cmd(db: Path, *args: str) -> list[str]:
    return [sys.executable, "cli.py", "--db", f"sqlite:///{db}", *args]


class Processes:
    """The daemons this run started: each is stopped by its own PID, also on failure."""

    def __init__(self) -> None:
        self.live: list[subprocess.Popen[bytes]] = []

    def start(self, cmd: list[str], log: Path) -> subprocess.Popen[bytes]:
        with log.open("wb") as f:
            proc = subprocess.Popen(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT)
        self.live.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        if proc in self.live:
            self.live.remove(proc)

    def stop_all(self) -> None:
        for proc in list(self.live):
            self.stop(proc)


def vm_hwm_mb(pid: int) -> float:
    """Peak resident memory of a live process so far (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def answers(port: int, name: str, address: str, timeout: float = 0.2) -> bool:
    try:
        r = dns.query.udp(dns.message.make_query(name, "A"), "127.0.0.1", port=port,
                          timeout=timeout)
    except (dns.exception.DNSException, OSError):
        return False
    return r.rcode() == dns.rcode.NOERROR and any(
        rd.to_text() == address for rrset in r.answer for rd in rrset)


def first_answer(proc: subprocess.Popen[bytes], started: float, port: int, name: str,
                 address: str, log: Path, limit: float = 1800) -> float:
    """Seconds from ``started`` until ``name`` A answers ``address`` on ``port``."""
    while not answers(port, name, address):
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited {proc.returncode}:\n"
                               f"{log.read_text(errors='replace')[-2000:]}")
        if time.perf_counter() - started > limit:
            raise RuntimeError(f"no answer from {proc.args!r} within {limit} s")
        time.sleep(0.01)
    return time.perf_counter() - started


def knot_conf(directory: Path, zone_file: Path, port: int) -> Path:
    conf = directory / "knot.conf"
    conf.write_text(f"""server:
    listen: 127.0.0.1@{port}
    rundir: {directory}
    user: root
database:
    storage: {directory}
acl:
  - id: local-transfer
    address: 127.0.0.1
    action: transfer
template:
  - id: default
    storage: {directory}
    zonefile-sync: -1
    journal-content: none
    semantic-checks: off
zone:
  - domain: {ZONE}
    file: {zone_file}
    acl: local-transfer
log:
  - target: {directory}/knot.log
    any: info
""")
    return conf


def rr_count(zone_file: Path) -> int:
    """Resource records in a zone file as zonegen writes it (one per line)."""
    with zone_file.open() as f:
        return sum(1 for line in f if not line.startswith("$"))


def qname_wire(zone: str) -> bytes:
    return b"".join(bytes([len(x)]) + x.encode() for x in zone.split(".") if x) + b"\0"


def raw_axfr(port: int, expected: int, timeout: float = 300) -> tuple[float, int]:
    """(seconds, records) of one AXFR, reading message headers only, until ``expected``
    records have arrived (so the client is not the bottleneck)."""
    q = struct.pack("!HHHHHH", 0x1111, 0, 1, 0, 0, 0) + qname_wire(ZONE) + struct.pack(
        "!HH", 252, 1)
    t0 = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(struct.pack("!H", len(q)) + q)
        f = s.makefile("rb", buffering=1 << 20)
        n = 0
        while n < expected:
            head = f.read(2)
            if len(head) < 2:
                raise RuntimeError(f"AXFR from port {port} ended after {n} of {expected} RRs")
            m = f.read(struct.unpack("!H", head)[0])
            if m[3] & 0x0F:
                raise RuntimeError(f"AXFR from port {port}: rcode {m[3] & 0x0F}")
            n += struct.unpack("!H", m[6:8])[0]
    return time.perf_counter() - t0, n


# ----------------------------------------------------------------------------- rows


def row_ingest(t: Table, inputs: Inputs, tmp: Path, runs: int) -> None:
    sc = t.scale
    dbs = {n: copy_db(inputs.db(n), tmp / f"ingest-{n}.db")
           for n in (sc.ingest_small, sc.ingest_large)}
    times: dict[int, list[float]] = {n: [] for n in dbs}
    rss: dict[int, list[float]] = {n: [] for n in dbs}
    for i in range(runs + 1):  # run 0 warms the page cache and is not counted
        change = tmp / f"change-{i}.json"
        change.write_text(json.dumps(endpoint_slice(0, 10**9 + i, not_ready=i % PODS)))
        for n, db in dbs.items():
            r = timed(*zonegen_cmd(db, "ingest", "--json", str(change)))
            if json.loads(r.out.splitlines()[-1])["new_events"] != 1:
                raise RuntimeError(f"one-change ingest did not store one event: {r.out}")
            if i:
                times[n].append(r.seconds)
                rss[n].append(r.rss_mb)
    big, small = sc.ingest_large, sc.ingest_small
    t.add("ingest", Row(
        f"one-change `ingest`, {count(big * PODS)} endpoints vs {count(small * PODS)} "
        f"endpoints (whole process)",
        f"{med(times[big]):.2f} s, {max(rss[big]):.0f} MB (runs {runs_text(times[big])})",
        f"{med(times[small]):.2f} s, {max(rss[small]):.0f} MB at {count(small * PODS)} "
        f"endpoints", f"{med(times[big]) / med(times[small]):.2f}x", "≤ 1.5x"))


def row_export(t: Table, inputs: Inputs, tmp: Path, runs: int) -> Path:
    sc = t.scale
    db = copy_db(inputs.db(sc.zone_services), tmp / "zone.db")
    zone_file = tmp / "exported.zone"
    ours: list[float] = []
    ref: list[float] = []
    rss = ref_rss = 0.0
    for _ in range(runs):
        r = timed(*zonegen_cmd(db, "export", "-o", str(zone_file)))
        ours.append(r.seconds)
        rss = max(rss, r.rss_mb)
        c = timed("named-compilezone", "-o", str(tmp / "compiled.zone"), ZONE,
                  str(zone_file))
        ref.append(c.seconds)
        ref_rss = max(ref_rss, c.rss_mb)
    lines = rr_count(zone_file)
    t.add("export", Row(
        f"`export` {count(sc.zone_records)} records ({lines:,} RRs) vs `named-compilezone` "
        f"on the same file",
        f"{med(ours):.2f} s, {rss:.0f} MB (runs {runs_text(ours)})",
        f"{med(ref):.2f} s, {ref_rss:.0f} MB (runs {runs_text(ref)})",
        f"{med(ours) / med(ref):.2f}x", "≤ 1.0x (stretch 0.3x)"))
    return zone_file


@dataclass
class Servers:
    """The serve row's last zonegen ``serve`` and ``named``, kept for dnsperf/AXFR/RSS."""

    zonegen: subprocess.Popen[bytes] | None = None
    zonegen_port: int = 0
    named: subprocess.Popen[bytes] | None = None
    named_port: int = 0


def probe(sc: Scale) -> tuple[str, str]:
    """A known name of the zone (the last Service's first pod) and its address."""
    s = sc.zone_services - 1
    return f"svc-{s}-0.svc-{s}.ns{s % 50}.svc.{ZONE}", ip(s, 0)


def row_serve(t: Table, inputs: Inputs, tmp: Path, runs: int, zone_file: Path,
              procs: Processes, keep: Servers) -> None:
    sc = t.scale
    db = copy_db(inputs.db(sc.zone_services), tmp / "serve.db")
    name, address = probe(sc)
    ours: list[float] = []
    ref: list[float] = []
    for i in range(runs):
        last = i == runs - 1
        port = free_port()
        log = tmp / f"serve-{i}.log"
        t0 = time.perf_counter()
        proc = procs.start(zonegen_cmd(db, "serve", "--listen", f"127.0.0.1:{port}"), log)
        ours.append(first_answer(proc, t0, port, name, address, log))
        if last:
            keep.zonegen, keep.zonegen_port = proc, port
        else:
            procs.stop(proc)
        d = tmp / f"named-{i}"
        d.mkdir()
        nport = free_port()
        conf = named_conf(d, nport, f'zone "{ZONE}" {{ type primary; file "{zone_file}"; }};')
        t0 = time.perf_counter()
        named = procs.start(["named", "-f", "-c", str(conf), "-u", "root"], d / "stderr")
        ref.append(first_answer(named, t0, nport, name, address, d / "named.log"))
        if last:
            keep.named, keep.named_port = named, nport
        else:
            procs.stop(named)
    t.add("serve", Row(
        f"`serve` start to first answer at {count(sc.zone_records)} records vs `named` "
        f"loading the same file",
        f"{med(ours):.2f} s (runs {runs_text(ours)})",
        f"{med(ref):.2f} s (runs {runs_text(ref)})",
        f"{med(ours) / med(ref):.2f}x", "≤ 1.0x"))


_FLOOR = (
    "import json, sqlite3, sys\n"
    "db = sqlite3.connect(sys.argv[2], isolation_level=None)\n"
    "db.execute('PRAGMA journal_mode=WAL'); db.execute('PRAGMA synchronous=NORMAL')\n"
    "db.execute('CREATE TABLE ev (seq INTEGER PRIMARY KEY, type TEXT, kind TEXT, ns TEXT,"
    " name TEXT, uid TEXT, rv TEXT, obj TEXT)')\n"
    "rows = []\n"
    "with open(sys.argv[1], 'rb') as f:\n"
    "    for line in f:\n"
    "        ev = json.loads(line); o = ev['object']; md = o['metadata']\n"
    "        rows.append((ev['type'], o['kind'], md['namespace'], md['name'], md['uid'],\n"
    "                     md['resourceVersion'], line.decode()))\n"
    "db.execute('BEGIN')\n"
    "db.executemany('INSERT INTO ev (type, kind, ns, name, uid, rv, obj) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)', rows)\n"
    "db.execute('COMMIT')\n"
    "print(len(rows), 'rows')\n"
)


def row_burst(t: Table, inputs: Inputs, tmp: Path, runs: int) -> None:
    sc = t.scale
    ours: list[float] = []
    ref: list[float] = []
    for i in range(runs):
        db = copy_db(inputs.db(sc.ingest_large), tmp / f"burst-{i}.db")
        r = timed(*zonegen_cmd(db, "ingest", "--json", str(inputs.burst)))
        ours.append(r.seconds)
        stored = json.loads(r.out.splitlines()[-1])["new_events"]
        if stored != sc.burst:
            raise RuntimeError(f"burst ingest stored {stored} of {sc.burst} events: {r.out}")
        floor_db = tmp / f"floor-{i}.db"
        f = timed(sys.executable, "-c", _FLOOR, str(inputs.burst), str(floor_db))
        ref.append(f.seconds)
        for p in (db, floor_db):
            for suffix in ("", "-wal", "-shm"):
                Path(str(p) + suffix).unlink(missing_ok=True)
    eps = sc.burst * PODS
    t.add("burst", Row(
        f"burst of {count(sc.burst)} slice updates ({count(eps)} endpoint updates) "
        f"stored+projected (`ingest`, whole process), vs decoding the same lines and "
        f"inserting them as rows into SQLite",
        f"{med(ours):.2f} s = {eps / med(ours):,.0f} endpoint updates/s "
        f"(runs {runs_text(ours)})",
        f"{med(ref):.2f} s = {eps / med(ref):,.0f} /s (runs {runs_text(ref)})",
        f"{med(ours) / med(ref):.1f}x", "≤ 3x (≈ 100k endpoint updates/s)"))


def row_rebuild(t: Table, inputs: Inputs, runs: int) -> None:
    sc = t.scale
    times: list[float] = []
    rss = 0.0
    said: dict[str, object] = {}
    for _ in range(runs):
        r = timed(*zonegen_cmd(inputs.events_db, "project", "--rebuild", "--json"))
        times.append(r.seconds)
        rss = max(rss, r.rss_mb)
        said = json.loads(r.out.splitlines()[-1])
    if said.get("identical") is not True or said.get("events") != sc.log_events:
        raise RuntimeError(f"project --rebuild: {said}")
    t.add("rebuild", Row(
        f"`project --rebuild` of {count(sc.log_events)} events",
        f"{med(times):.2f} s, {rss:.0f} MB (runs {runs_text(times)}; replay alone "
        f"{float(str(said['seconds'])):.2f} s, {said['records']:,} records, identical)",
        "— (absolute goal)", f"{med(times) / 10:.2f}x of 10 s", "≤ 10 s"))


def row_dnsperf(t: Table, tmp: Path, runs: int, servers: Servers) -> None:
    from bench.bench_query import dnsperf, query_file

    sc = t.scale
    assert servers.zonegen is not None
    assert servers.named is not None
    data = tmp / "queries.txt"
    query_file(data, sc.zone_services, PODS, 20_000)
    rates: dict[str, list[float]] = {"zonegen": [], "named": []}
    for _ in range(runs):
        for who, port, pid in (("zonegen", servers.zonegen_port, servers.zonegen.pid),
                               ("named", servers.named_port, servers.named.pid)):
            qps, _, _ = dnsperf(port, data, sc.dnsperf_seconds, pid)
            rates[who].append(qps)
    z, n = med(rates["zonegen"]), med(rates["named"])
    t.add("dnsperf", Row(
        f"dnsperf queries/s vs named on the same zone ({count(sc.zone_records)} records, "
        f"bench_query's mix, {sc.dnsperf_seconds} s runs)",
        f"{z:,.0f} q/s (runs {runs_text(rates['zonegen'], '{:,.0f}')})",
        f"{n:,.0f} q/s (runs {runs_text(rates['named'], '{:,.0f}')})",
        f"{z / n:.3f}x", "≥ 0.25x"))


def row_axfr(t: Table, tmp: Path, runs: int, zone_file: Path, procs: Processes,
             servers: Servers) -> None:
    sc = t.scale
    assert servers.zonegen is not None
    d = tmp / "knot"
    d.mkdir()
    port = free_port()
    knot = procs.start(["knotd", "-c", str(knot_conf(d, zone_file, port))], d / "stderr")
    name, address = probe(sc)
    first_answer(knot, time.perf_counter(), port, name, address, d / "knot.log")
    expected = rr_count(zone_file) + 1  # the SOA comes twice
    times: dict[str, list[float]] = {"zonegen": [], "knotd": []}
    for _ in range(runs):
        for who, p in (("zonegen", servers.zonegen_port), ("knotd", port)):
            secs, _ = raw_axfr(p, expected)
            times[who].append(secs)
    procs.stop(knot)
    z, k = med(times["zonegen"]), med(times["knotd"])
    t.add("axfr", Row(
        f"AXFR {count(sc.zone_records)} records ({expected:,} RRs) vs Knot",
        f"{z:.3f} s (runs {runs_text(times['zonegen'], '{:.3f}')})",
        f"{k:.3f} s (runs {runs_text(times['knotd'], '{:.3f}')})",
        f"{z / k:.2f}x", "≤ 0.5x"))


def row_rss(t: Table, inputs: Inputs, tmp: Path, procs: Processes, servers: Servers) -> None:
    from tests.kubeapi import ENDPOINTSLICES, SERVICES, FakeKubeAPI

    sc = t.scale
    assert servers.named is not None
    named_hwm = vm_hwm_mb(servers.named.pid)
    plain_hwm = vm_hwm_mb(servers.zonegen.pid) if servers.zonegen is not None else 0.0
    api = FakeKubeAPI(first_rv=0).start()  # numbered 1, 2, 3, ... as the database's
    try:
        for obj in cluster_objects(sc.zone_services):  # same uid and resourceVersion
            api.add(SERVICES if obj["kind"] == "Service" else ENDPOINTSLICES, obj)
        kubeconfig = api.write_kubeconfig(tmp / "kubeconfig")
        db = copy_db(inputs.db(sc.zone_services), tmp / "watch.db")
        port = free_port()
        log = tmp / "serve-watch.log"
        name, address = probe(sc)
        t0 = time.perf_counter()
        proc = procs.start(zonegen_cmd(db, "serve", "--watch", "--kubeconfig", str(kubeconfig),
                                       "--listen", f"127.0.0.1:{port}", "--poll", "0.2"), log)
        started = first_answer(proc, t0, port, name, address, log)
        deadline = time.monotonic() + 1800
        while len(api.watches()) < 2:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"serve --watch never watched:\n{log.read_text()[-2000:]}")
            time.sleep(0.05)
        s = sc.zone_services - 1
        moved = "10.255.255.1"
        api.modify(ENDPOINTSLICES, f"ns{s % 50}", f"svc-{s}-abcde",
                   lambda o: o["endpoints"][0].update(addresses=[moved]))
        changed = first_answer(proc, time.perf_counter(), port, name, moved, log)
        hwm = vm_hwm_mb(proc.pid)
        procs.stop(proc)
    finally:
        api.stop()
    t.add("rss", Row(
        f"peak RSS of `serve --watch` at {count(sc.zone_records)} records vs named serving "
        f"the file",
        f"{hwm:.0f} MB (first answer {started:.1f} s, a watched change answered in "
        f"{changed:.2f} s; plain `serve` after dnsperf+AXFR: {plain_hwm:.0f} MB)",
        f"{named_hwm:.0f} MB (after dnsperf)", f"{hwm / named_hwm:.2f}x", "≤ 2x"))


# ----------------------------------------------------------------------------- main


def run(scale: Scale, rows: list[str], cache: Path, keep_going: bool) -> Table:
    table = Table(scale)
    print(f"issue #11 table, scale {scale.name} (runs {scale.runs}); "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}", flush=True)
    t = time.perf_counter()
    inputs = prepare(cache, scale, set(rows))
    print(f"inputs ready in {time.perf_counter() - t:.0f} s ({inputs.folder})", flush=True)
    procs = Processes()
    servers = Servers()
    zone_file: Path | None = None

    def attempt(key: str, fn: Callable[[], None]) -> None:
        if key not in rows:
            return
        try:
            fn()
        except Exception as e:  # one broken row must not hide the others
            if not keep_going:
                raise
            table.rows[key] = Row(key, f"FAILED: {str(e).splitlines()[0][:200]}", "", "", "")
            print(f"  {key} FAILED: {e}", file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="bench-issue11-") as d:
        tmp = Path(d)
        try:
            runs = scale.runs
            attempt("ingest", lambda: row_ingest(table, inputs, tmp, runs))
            attempt("burst", lambda: row_burst(table, inputs, tmp, runs))
            attempt("rebuild", lambda: row_rebuild(table, inputs, runs))
            if set(rows) & {"export", "serve", "dnsperf", "axfr", "rss"}:
                def export() -> None:
                    nonlocal zone_file
                    zone_file = row_export(table, inputs, tmp, runs)
                # serve, dnsperf, axfr and the named side of rss need the exported file
                if "export" in rows:
                    attempt("export", export)
                else:
                    export()
                assert zone_file is not None
                zf = zone_file
                if set(rows) & {"serve", "dnsperf", "axfr", "rss"}:
                    attempt("serve", lambda: row_serve(table, inputs, tmp, runs, zf, procs,
                                                       servers))
                    if servers.zonegen is None:  # serve not selected: start one of each
                        row_serve(Table(scale), inputs, tmp, 1, zf, procs, servers)
                attempt("dnsperf", lambda: row_dnsperf(table, tmp, runs, servers))
                attempt("axfr", lambda: row_axfr(table, tmp, runs, zf, procs, servers))
                attempt("rss", lambda: row_rss(table, inputs, tmp, procs, servers))
        finally:
            procs.stop_all()
    return table


@contextmanager
def _stopping_on_sigterm() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C, so the daemons this run started are stopped."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(_sig: int, _frame: object) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", choices=sorted(SCALES), default="small")
    parser.add_argument("--runs", type=int, help="runs per row (default: the scale's)")
    parser.add_argument("--only", help="comma-separated rows: " + ",".join(ROWS))
    parser.add_argument("--cache", type=Path,
                        default=Path(tempfile.gettempdir()) / "zonegen-bench-issue11")
    parser.add_argument("--clean", action="store_true",
                        help="delete the cached inputs (all scales) and exit")
    parser.add_argument("--keep-going", action="store_true",
                        help="print a failed row as FAILED and go on with the others")
    args = parser.parse_args(argv)
    if args.clean:
        shutil.rmtree(args.cache, ignore_errors=True)
        print(f"removed {args.cache}")
        return
    scale = SCALES[args.scale]
    if args.runs:
        scale = Scale(**{**scale.__dict__, "runs": args.runs})
    rows = list(ROWS) if not args.only else [r.strip() for r in args.only.split(",")]
    unknown = set(rows) - set(ROWS)
    if unknown:
        parser.error(f"unknown rows {sorted(unknown)}; choose from {','.join(ROWS)}")
    for tool in ("named", "named-compilezone", "knotd", "dnsperf"):
        if shutil.which(tool) is None:
            print(f"note: {tool} is not installed; rows that need it will fail",
                  file=sys.stderr)
    started = time.perf_counter()
    with _stopping_on_sigterm():
        table = run(scale, rows, args.cache, args.keep_going)
    print()
    print(f"## Issue #11 table, scale {scale.name}: medians of {scale.runs} runs, "
          f"zonegen and references in one run ({time.perf_counter() - started:.0f} s; "
          f"load average now {os.getloadavg()[0]:.1f})")
    print()
    print(table.markdown())


if __name__ == "__main__":
    main()
