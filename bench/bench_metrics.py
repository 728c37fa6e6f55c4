"""Cost of counting one DNS request in zonegen_dns_requests_total. Prints figures only.

The serve hot path calls ``Metrics.dns_request(proto, qtype, rcode)`` once per answered
query. This times 1,000,000 calls of: an empty loop, a no-op method (the floor of any
hook), a pre-bound prometheus_client child ``.inc()`` (the obvious design, rejected),
``Metrics.dns_request`` (dict lookup + ``next()`` on an ``itertools.count``), its
pre-bound form, and, for scale, the dnspython parse + answer + render of one small query
that every UDP request already pays. Median of RUNS.

    python -m bench.bench_metrics [CALLS] [RUNS]
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable

import dns.message
import dns.rdatatype
from prometheus_client import CollectorRegistry, Counter

from zonegen.metrics import Metrics


class _Nothing:
    def dns_request(self, proto: str, qtype: int, rcode: int) -> None:
        pass


def _timed(body: Callable[[int], None], calls: int, runs: int) -> float:
    """Median ns per call of ``body(calls)``."""
    figures = []
    for _ in range(runs):
        start = time.perf_counter_ns()
        body(calls)
        figures.append((time.perf_counter_ns() - start) / calls)
    return statistics.median(figures)


def main() -> None:
    calls = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    metrics = Metrics()
    nothing = _Nothing()
    plain = Counter("bench_requests_total", "bench", ["proto", "qtype", "rcode"],
                    registry=CollectorRegistry())
    child = plain.labels("udp", "A", "NOERROR")
    bound = metrics.dns_request_counter("udp", 1, 0)

    def empty(n: int) -> None:
        for _ in range(n):
            pass

    def noop_hook(n: int) -> None:
        hook = nothing.dns_request
        for _ in range(n):
            hook("udp", 1, 0)

    def bound_inc(n: int) -> None:
        inc = child.inc
        for _ in range(n):
            inc()

    def bound_count(n: int) -> None:
        for _ in range(n):
            bound()

    def dns_request(n: int) -> None:
        hook = metrics.dns_request
        for _ in range(n):
            hook("udp", 1, 0)

    query = dns.message.make_query("kubernetes.default.svc.cluster.local", "A").to_wire()

    def answer(n: int) -> None:
        for _ in range(n):
            message = dns.message.from_wire(query)
            dns.message.make_response(message).to_wire()

    loop = _timed(empty, calls, runs)
    rows = [
        ("empty loop", loop),
        ("no-op hook call", _timed(noop_hook, calls, runs)),
        ("prometheus_client pre-bound child .inc()", _timed(bound_inc, calls, runs)),
        ("Metrics.dns_request_counter(...)()", _timed(bound_count, calls, runs)),
        ("Metrics.dns_request(udp, A, NOERROR)", _timed(dns_request, calls, runs)),
        ("dnspython parse+answer+render (for scale)",
         _timed(answer, max(1, calls // 20), runs)),
    ]
    print(f"{calls:,} calls, median of {runs} runs, ns per call (loop overhead included):")
    for name, ns in rows:
        print(f"  {name:45s} {ns:8.1f} ns   (+{ns - loop:7.1f} over the empty loop)")
    counted = metrics.dns_requests.value("udp", "A", "NOERROR")
    print(f"  zonegen_dns_requests_total{{udp,A,NOERROR}} after the runs: {counted:,}"
          f" (expected {2 * runs * calls:,})")


if __name__ == "__main__":
    main()
