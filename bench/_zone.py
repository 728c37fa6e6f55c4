"""Shared helpers for the benches: the reference Kubernetes-like zone of docs/PERFORMANCE.md
(S headless Services x P pods, 4 RRs per pod), peak memory, the median of timed runs, and
the named.conf of BIND as the reference server.

The benches are a package: run them from the repository root as ``python -m bench.NAME``
and import this as ``bench._zone``, without touching ``sys.path``."""

from __future__ import annotations

import resource
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from zonegen.model import SRV, A, Record

T = TypeVar("T")


def rss_mb() -> float:
    """This process's peak resident memory so far, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def median_seconds(runs: int, work: Callable[[], T]) -> tuple[float, T]:
    """The median wall time of ``runs`` (at least one) calls of ``work``, and what the
    last call returned. Each result is dropped before the next call starts, so that two
    never stand in memory at once and the peak RSS printed beside counts one."""
    assert runs >= 1, runs
    times: list[float] = []
    last: list[T] = []
    for _ in range(runs):
        last.clear()
        t = time.perf_counter()
        last.append(work())
        times.append(time.perf_counter() - t)
    return statistics.median(times), last[0]


def k8s_records(services: int = 25_000, pods: int = 10) -> list[Record]:
    """Service A, per-pod A, ``_http._tcp`` SRV and bare SRV per pod (1,000,000 RRs for
    the defaults; the SOA, NS and glue make it 1,000,003 as rendered, 1,000,004 records
    in an AXFR, which sends the SOA twice)."""
    out: list[Record] = []
    add = out.append
    weight = 100 // pods
    for s in range(services):
        svc = f"svc-{s}.ns{s % 50}.svc"
        srv_owner = f"_http._tcp.{svc}"
        for p in range(pods):
            ip = f"10.{(s >> 8) & 255}.{s & 255}.{p + 1}"
            host = f"svc-{s}-{p}.{svc}"
            add(Record(svc, A, (ip,)))
            add(Record(host, A, (ip,)))
            add(Record(srv_owner, SRV, (0, weight, 8080, host)))
            add(Record(svc, SRV, (0, weight, 8080, host)))
    return out


def named_conf(directory: Path, port: int, zones: str, *, transfers: bool = False) -> Path:
    """Write ``directory/named.conf`` and return its path: BIND on loopback ``port``
    serving the zone statements ``zones``, no recursion, no NOTIFY, its log in
    ``directory/named.log``; with ``transfers`` also an unlimited IXFR journal and the
    transfer categories in the log. One text, so every bench compares against the same
    BIND setup."""
    journal = "\n    max-journal-size unlimited;" if transfers else ""
    categories = " category xfer-in { f; }; category xfer-out { f; };" if transfers else ""
    conf = directory / "named.conf"
    conf.write_text(f"""
options {{
    directory "{directory}"; pid-file "{directory}/named.pid";
    listen-on port {port} {{ 127.0.0.1; }}; listen-on-v6 {{ none; }};
    recursion no; allow-query {{ 127.0.0.1; }}; allow-transfer {{ 127.0.0.1; }};
    notify no; dnssec-validation no;{journal}
}};
controls {{ }};
logging {{ channel f {{ file "{directory}/named.log"; severity info; print-time yes; }};
    category default {{ f; }};{categories} }};
{zones}
""")
    return conf
