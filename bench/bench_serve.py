"""zonegen serve against BIND, side by side on loopback. Prints figures only.

1. AXFR of a 1,000,000-record Kubernetes-like zone (bench/_zone.py: per pod the
   Service A, the per-pod A, the ``_http._tcp`` SRV and the bare SRV) from
   ``zonegen serve`` and from BIND ``named`` as primary of the same zone written by
   zonegen.zonefile; timed by a raw client that only counts messages (a parsing client
   is the bottleneck, docs/PERFORMANCE.md); median of RUNS, interleaved.
2. IXFR bytes for a one-pod change in that zone (zonegen applies it with WireZone.apply).
3. RSS of both servers holding the zone.
4. Latency from ``zonegen ingest`` of a change to a BIND secondary of ``zonegen serve``
   answering it (NOTIFY, SOA query, IXFR), median of LATENCY_RUNS, on the demo zone.

    python -m bench.bench_serve [SERVICES] [PODS] [RUNS] [LATENCY_RUNS]
"""

from __future__ import annotations

import copy
import gc
import json
import os
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dns.message
import dns.query
import dns.rdatatype

# The same free-port and SOA probes the integration tests use.
from tests.integration.conftest import free_port, soa_serial

ROOT = Path(__file__).resolve().parent.parent

ZONE = "cluster.local"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def qname(zone: str) -> bytes:
    return b"".join(bytes([len(label)]) + label.encode() for label in zone.split(".")
                    if label) + b"\0"


def raw_xfr(port: int, rdtype: int, expected: int | None = None,
            serial: int | None = None) -> tuple[int, int, int, float]:
    """(records, messages, bytes, seconds) of one AXFR/IXFR, counting headers only. An
    AXFR ends at ``expected`` records; an IXFR at its second copy of the new SOA."""
    auth = b""
    if serial is not None:  # IXFR: the client's SOA in authority (RFC 1995 §3)
        rdata = b"\0\0" + struct.pack("!IIIII", serial, 0, 0, 0, 0)
        auth = b"\xc0\x0c" + struct.pack("!HHIH", 6, 1, 0, len(rdata)) + rdata
    q = (struct.pack("!HHHHHH", 0x1234, 0, 1, 0, 1 if auth else 0, 0) + qname(ZONE)
         + struct.pack("!HH", rdtype, 1) + auth)
    t0 = time.perf_counter()
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(struct.pack("!H", len(q)) + q)
    f = s.makefile("rb", buffering=1 << 20)
    n = msgs = nbytes = 0
    new_serial = None
    while True:
        ln = struct.unpack("!H", f.read(2))[0]
        m = f.read(ln)
        nbytes += ln + 2
        msgs += 1
        n += struct.unpack("!H", m[6:8])[0]
        if expected is not None:
            if n >= expected:
                break
            continue
        answer = dns.message.from_wire(m, xfr=True, one_rr_per_rrset=True).answer
        if new_serial is None:
            new_serial = answer[0][0].serial
        last = answer[-1]
        if n > 1 and last.rdtype == dns.rdatatype.SOA and last[0].serial == new_serial:
            break
    seconds = time.perf_counter() - t0
    s.close()
    return n, msgs, nbytes, seconds


# --------------------------------------------------------------------------- servers


def serve_static(port: int, services: int, pods: int, ready: str) -> None:
    """Child process: serve the synthetic zone from memory; SIGUSR1 applies a one-pod
    change (pod 0 of service 0 moves to a new address)."""
    from bench._zone import k8s_records
    from zonegen.journal_step import JournalStep
    from zonegen.model import A, Record, ZoneConfig
    from zonegen.serve import ServeOptions, ZoneSet
    from zonegen.testing import ServerThread

    config = ZoneConfig()
    zones = ZoneSet.build([config], k8s_records(services, pods), 1)
    gc.collect()
    st = ServerThread(ServeOptions(listen=(("127.0.0.1", port),)), zones=zones).start()
    svc = "svc-0.ns0.svc"
    host = f"svc-0-0.{svc}"
    old_ip, new_ip = "10.0.0.1", "10.0.0.250"
    removed = {Record(svc, A, (old_ip,)), Record(host, A, (old_ip,))}
    added = {Record(svc, A, (new_ip,)), Record(host, A, (new_ip,))}

    def change(_sig: int, _frame: object) -> None:
        new = st.zones.advance([(2, JournalStep(1, 2, removed, added))], 10, 1000)
        st.call(st.server.publish(new))
        Path(ready + ".changed").write_text("2")

    stopping: list[int] = []
    signal.signal(signal.SIGUSR1, change)
    signal.signal(signal.SIGTERM, lambda sig, _frame: stopping.append(sig))
    Path(ready).write_text(str(os.getpid()))
    while not stopping:
        signal.pause()
    st.stop()


def wait_file(path: Path, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {path}")
        time.sleep(0.01)


def start_named(directory: Path, body: str, port: int) -> int:
    from bench._zone import named_conf

    conf = named_conf(directory, port, body, transfers=True)
    subprocess.run(["named", "-c", str(conf), "-u", "root"], check=True)
    wait_file(directory / "named.pid", 60)
    return int((directory / "named.pid").read_text().split()[0])


def stop_pid(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)


# --------------------------------------------------------------------------- parts


def bench_axfr(tmp: Path, services: int, pods: int, runs: int) -> None:
    from bench._zone import k8s_records
    from zonegen import zonefile
    from zonegen.model import ZoneConfig

    zone_file = tmp / "zone.db"
    t = time.perf_counter()
    zonefile.write(str(zone_file), zonefile.render(k8s_records(services, pods), ZoneConfig(), 1))
    print(f"zone file for named: {zone_file.stat().st_size / 1e6:.0f} MB in "
          f"{time.perf_counter() - t:.1f} s")

    zport, nport = free_port(), free_port()
    ready = tmp / "zonegen.ready"
    child = subprocess.Popen([sys.executable, "-m", "bench.bench_serve", "--serve-static",
                              str(zport), str(services), str(pods), str(ready)])
    named_dir = tmp / "named-primary"
    named_dir.mkdir()
    t = time.perf_counter()
    named_pid = start_named(named_dir, f'zone "{ZONE}" {{ type primary; file "{zone_file}"; }};',
                            nport)
    try:
        deadline = time.monotonic() + 600
        while soa_serial(nport, ZONE + ".") is None and time.monotonic() < deadline:
            time.sleep(0.05)
        print(f"named loaded the zone in {time.perf_counter() - t:.1f} s")
        wait_file(ready, 600)
        expected = services * pods * 4 + 3 + 1  # records + NS + glue + SOA, SOA twice
        print(f"RSS holding the zone: zonegen {rss_mb(child.pid):.0f} MB, "
              f"named {rss_mb(named_pid):.0f} MB")
        times: dict[str, list[float]] = {"zonegen": [], "named": []}
        sizes: dict[str, tuple[int, int, int]] = {}
        for _ in range(runs):
            for name, port in (("zonegen", zport), ("named", nport)):
                n, msgs, nbytes, secs = raw_xfr(port, 252, expected)
                times[name].append(secs)
                sizes[name] = (n, msgs, nbytes)
        for name in ("zonegen", "named"):
            n, msgs, nbytes = sizes[name]
            med = statistics.median(times[name])
            print(f"AXFR from {name:7s}: first {times[name][0]:.3f} s, median {med:.3f} s "
                  f"(runs {', '.join(f'{x:.3f}' for x in times[name])}); {n:,} RRs, "
                  f"{msgs} messages, {nbytes / 1e6:.1f} MB")
        ratio = statistics.median(times["named"]) / statistics.median(times["zonegen"])
        print(f"zonegen is {ratio:.1f}x named (median; zonegen caches nothing per serial: "
              f"every AXFR joins slices of the packed zone)")
        print(f"RSS after {runs} AXFRs: zonegen {rss_mb(child.pid):.0f} MB, "
              f"named {rss_mb(named_pid):.0f} MB")

        os.kill(child.pid, signal.SIGUSR1)
        wait_file(Path(str(ready) + ".changed"), 60)
        n, msgs, nbytes, secs = raw_xfr(zport, 251, serial=1)
        print(f"IXFR of a one-pod change (2 A records moved) from zonegen: {n} RRs, "
              f"{msgs} message, {nbytes} bytes, {secs * 1000:.1f} ms")
    finally:
        child.send_signal(signal.SIGTERM)
        child.wait(30)
        stop_pid(named_pid)


def bench_latency(tmp: Path, runs: int) -> None:
    demo = ROOT / "zonegen" / "data" / "demo.json"
    db = f"sqlite:///{tmp / 'latency.db'}"
    cli = [sys.executable, str(ROOT / "cli.py"), "--db", db]
    subprocess.run([*cli, "ingest", str(demo)], check=True, capture_output=True)
    zport, sport = free_port(), free_port()
    poll = 0.05
    server = subprocess.Popen([*cli, "serve", "--listen", f"127.0.0.1:{zport}", "--notify",
                               f"127.0.0.1:{sport}", "--poll", str(poll)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sec_dir = tmp / "named-secondary"
    sec_dir.mkdir()
    named_pid = 0
    try:
        deadline = time.monotonic() + 60
        while soa_serial(zport, ZONE + ".") is None and time.monotonic() < deadline:
            time.sleep(0.02)
        named_pid = start_named(sec_dir, f"""zone "{ZONE}" {{ type secondary;
            primaries {{ 127.0.0.1 port {zport}; }}; file "sec.db";
            allow-notify {{ 127.0.0.1; }}; request-ixfr yes; }};""", sport)
        while (soa_serial(sport, ZONE + ".") != soa_serial(zport, ZONE + ".")
               and time.monotonic() < deadline):
            time.sleep(0.02)
        doc = json.loads(demo.read_text())
        base = next(i for i in doc["items"] if i["metadata"]["name"] == "consul-server-7xq2k")
        pod = "consul-server-2.consul-server.default.svc.cluster.local."
        from zonegen.store import Store

        store = Store.open(db)
        from_start: list[float] = []
        from_commit: list[float] = []
        for i in range(runs):
            item = copy.deepcopy(base)
            item["metadata"]["resourceVersion"] = str(100000 + i)
            address = f"10.244.9.{i + 1}"
            for ep in item["endpoints"]:
                if ep.get("hostname") == "consul-server-2":
                    ep["addresses"] = [address]
            path = tmp / f"change-{i}.json"
            path.write_text(json.dumps(item))
            query = dns.message.make_query(pod, "A")
            t0 = time.perf_counter()
            subprocess.run([*cli, "ingest", str(path)], check=True, capture_output=True)
            t1 = time.perf_counter()
            while True:
                try:
                    r = dns.query.udp(query, "127.0.0.1", port=sport, timeout=0.5)
                    if r.answer and r.answer[0][0].address == address:
                        break
                except Exception:  # noqa: BLE001, S110
                    pass
                time.sleep(0.002)
                if time.perf_counter() - t0 > 30:
                    raise SystemExit("secondary never answered the change")
            t2 = time.perf_counter()
            answered_at = time.time()
            version = store.latest_version()
            assert version is not None
            from_start.append(t2 - t0)
            from_commit.append(answered_at - version.created_at.timestamp())
            del t1
        print(f"ingest -> BIND secondary answers (serve --poll {poll}), median of {runs}: "
              f"{statistics.median(from_start) * 1000:.0f} ms from starting `zonegen ingest` "
              f"(a new Python process), {statistics.median(from_commit) * 1000:.0f} ms from "
              f"the version's commit (poll + NOTIFY + SOA query + IXFR)")
    finally:
        if named_pid:
            stop_pid(named_pid)
        server.send_signal(signal.SIGTERM)
        server.wait(30)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--serve-static":
        serve_static(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
        return
    services = int(sys.argv[1]) if len(sys.argv) > 1 else 25_000
    pods = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    runs = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    latency_runs = int(sys.argv[4]) if len(sys.argv) > 4 else 20
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as d:
        tmp = Path(d)
        bench_axfr(tmp, services, pods, runs)
        bench_latency(tmp, latency_runs)


if __name__ == "__main__":
    main()
