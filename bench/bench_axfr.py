"""Time the AXFR path for a 1M-RR Kubernetes-like zone: encoding every record once into a
WireZone, joining the fragments into ~64 KB messages, a one-pod incremental apply, and the
resulting IXFR. Prints figures only (PERFORMANCE.md: Knot 0.20-0.25 s for the messages).

    python -m bench.bench_axfr [SERVICES] [PODS] [RUNS]
"""

from __future__ import annotations

import sys
import time

import dns.message
import dns.rdatatype
import dns.xfr
import dns.zone

from bench._zone import k8s_records, median_seconds, rss_mb
from zonegen import wire, xfr
from zonegen.model import SRV, A, Diff, Record, ZoneConfig


def main() -> None:
    services = int(sys.argv[1]) if len(sys.argv) > 1 else 25_000
    pods = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    runs = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    records = k8s_records(services, pods)
    config = ZoneConfig()
    base = rss_mb()
    print(f"records: {len(records):,}; peak RSS {base:.0f} MB")

    med, wz = median_seconds(runs, lambda: wire.WireZone.build(records, config, 1))
    n = len(wz)
    print(f"WireZone.build: median {med:.3f} s ({n / med / 1e3:.0f}k RR/s), {n:,} RRs; "
          f"peak RSS {rss_mb():.0f} MB (+{rss_mb() - base:.0f})")

    query = dns.message.make_query(config.zone, dns.rdatatype.AXFR)
    # nothing cached: every AXFR is this cost
    med, msgs = median_seconds(runs, lambda: xfr.axfr_response(query, wz))
    size = sum(map(len, msgs))
    count = len(msgs)
    del msgs
    print(f"AXFR messages (spans of the packed zone): median {med:.3f} s "
          f"({(n + 1) / med / 1e6:.2f}M RR/s), {count} messages, {size / 1e6:.1f} MB; "
          f"peak RSS {rss_mb():.0f} MB")

    # One pod of one Service goes away and a new one arrives: 8 records change.
    s, p = 7, 3
    svc = f"svc-{s}.ns{s % 50}.svc"
    old_host, new_host = f"svc-{s}-{p}.{svc}", f"svc-{s}-new.{svc}"
    old_ip, new_ip = f"10.0.{s}.{p + 1}", f"10.0.{s}.200"
    w = 100 // pods

    def pod(host: str, ip: str) -> frozenset[Record]:
        return frozenset((Record(svc, A, (ip,)), Record(host, A, (ip,)),
                          Record(f"_http._tcp.{svc}", SRV, (0, w, 8080, host)),
                          Record(svc, SRV, (0, w, 8080, host))))

    diff = Diff(added=pod(new_host, new_ip), removed=pod(old_host, old_ip))
    med, wz2 = median_seconds(runs, lambda: wz.apply(diff, 2))
    t = time.perf_counter()
    wz.folded()
    fold = time.perf_counter() - t
    print(f"WireZone.apply (one pod, {len(diff.added) + len(diff.removed)} records): "
          f"median {med * 1e3:.2f} ms; folding an overlay into a new base: {fold:.2f} s")
    ixfr_q, _ = dns.xfr.make_query(dns.zone.Zone(config.zone), serial=1)
    journal = [xfr.JournalStep.from_diff(1, 2, diff)]
    t = time.perf_counter()
    msgs = xfr.ixfr_response(ixfr_q, wz2, journal)
    dt = time.perf_counter() - t
    print(f"IXFR one pod: {dt * 1e3:.2f} ms, {len(msgs)} message, "
          f"{sum(map(len, msgs))} bytes")


if __name__ == "__main__":
    main()
