"""zonegen's Prometheus metric families and the cheap hooks that move them.

Every family lives in a :class:`Metrics` object with its own ``CollectorRegistry`` (not
prometheus_client's global one), so tests and several servers in one process never
collide; :func:`process_metrics` is the one instance a running zonegen shares. Components
call the hooks (``event_stored``, ``zone_published`` …) where the fact happens; the hooks
only move values, they never do I/O. Imports no other zonegen module but the pure
``zonegen.sources``.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime

import dns.rcode
import dns.rdatatype
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.metrics_core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from zonegen import __version__
from zonegen.sources import DEFAULT_SOURCE

#: Every family name a scrape can show, as Prometheus sees it (counters with ``_total``).
#: deploy/monitoring/zonegen-dashboard.json may use only these (tests/test_deploy.py checks it).
FAMILIES: tuple[str, ...] = (
    "zonegen_build_info",
    "zonegen_events_stored_total",
    "zonegen_zone_serial",
    "zonegen_zone_records",
    "zonegen_zone_versions_total",
    "zonegen_event_to_version_seconds",
    "zonegen_watch_reconnects_total",
    "zonegen_watch_synced",
    "zonegen_watch_last_event_timestamp_seconds",
    "zonegen_transfers_total",
    "zonegen_transfer_bytes_total",
    "zonegen_notify_total",
    "zonegen_dns_requests_total",
    "zonegen_store_errors_total",
    "zonegen_leader",
    "zonegen_lease_epoch",
)

#: Buckets of ``zonegen_event_to_version_seconds``: from a fast local commit (ms) to a
#: large first list or a stalled projection (minutes). CoreDNS's programming-duration
#: histogram spans the same range.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
)

#: Label values pre-created at 0, so ``rate()`` and "failures" panels see the series
#: before the first occurrence (a counter that appears at 1 hides its first increment).
TRANSFER_TYPES = ("AXFR", "IXFR")
TRANSFER_RESULTS = ("ok", "refused", "failed")
NOTIFY_RESULTS = ("acknowledged", "refused", "timeout", "failed")

#: Query types counted by name; any other type is counted as ``other``, so a client
#: cycling through 65536 qtypes cannot grow the series without bound (CoreDNS does the
#: same in its ``coredns_dns_requests_total``).
_COUNTED_QTYPES = frozenset(
    int(dns.rdatatype.from_text(t)) for t in (
        "A", "AAAA", "ANY", "AXFR", "CNAME", "DS", "DNSKEY", "HTTPS", "IXFR", "MX", "NS",
        "NSEC", "PTR", "SOA", "SRV", "SVCB", "TXT",
    )
)


def _qtype_label(qtype: int | str) -> str:
    if isinstance(qtype, str):
        try:
            qtype = int(dns.rdatatype.from_text(qtype))
        except (dns.rdatatype.UnknownRdatatype, ValueError):
            return "other"
    if qtype not in _COUNTED_QTYPES:
        return "other"
    return dns.rdatatype.to_text(dns.rdatatype.RdataType(qtype))


def _rcode_label(rcode: int | str) -> str:
    if isinstance(rcode, str):
        return rcode.upper() if rcode.upper() in dns.rcode.Rcode.__members__ else "other"
    try:
        return dns.rcode.Rcode(rcode).name
    except ValueError:
        return "other"


def _epoch(moment: datetime | float) -> float:
    return moment.timestamp() if isinstance(moment, datetime) else float(moment)


class _RequestCounts(Collector):
    """``zonegen_dns_requests_total``, read from plain counts at scrape time.

    Measured (bench/bench_metrics.py): a prometheus_client child's ``inc()`` (a Python
    method, a check and a ``threading.Lock``) costs about ten no-op calls per query;
    ``next()`` on an ``itertools.count`` is one atomic C call. The scrape reads each count
    from its ``repr`` (``count(41)``), the one way to read it without moving it.
    """

    def __init__(self) -> None:
        self._counts: dict[tuple[str, str, str], itertools.count[int]] = {}
        self._lock = threading.Lock()

    def count(self, proto: str, qtype: str, rcode: str) -> itertools.count[int]:
        """The one count of a label tuple (created at 0)."""
        with self._lock:
            return self._counts.setdefault((proto, qtype, rcode), itertools.count())

    def value(self, proto: str, qtype: str, rcode: str) -> int:
        with self._lock:
            count = self._counts.get((proto, qtype, rcode))
        return 0 if count is None else _count_value(count)

    def describe(self) -> Iterable[Metric]:
        return [self._family()]

    def collect(self) -> Iterable[Metric]:
        family = self._family()
        with self._lock:
            counts = list(self._counts.items())
        for labels, count in counts:
            family.add_metric(list(labels), _count_value(count))
        return [family]

    @staticmethod
    def _family() -> CounterMetricFamily:
        return CounterMetricFamily("zonegen_dns_requests", "DNS requests answered.",
                                   labels=["proto", "qtype", "rcode"])


def _count_value(count: itertools.count[int]) -> int:
    text = repr(count)  # "count(41)"
    return int(text[text.index("(") + 1:-1])


class Metrics:
    """The metric families of one zonegen process (or one test).

    Hooks are thread-safe (prometheus_client locks each value) and cheap; the per-query
    one, :meth:`dns_request`, costs a dict lookup and one C call (bench/bench_metrics.py).
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self.build_info = Info("zonegen_build", "zonegen version.", registry=r)
        self.build_info.info({"version": __version__})
        self.events_stored = Counter(
            "zonegen_events_stored_total", "Events appended to the event log.",
            ["source", "kind", "type"], registry=r)
        self.zone_serial = Gauge(
            "zonegen_zone_serial", "SOA serial of the zone version being published.",
            ["zone"], registry=r)
        self.zone_records = Gauge(
            "zonegen_zone_records", "Records in the zone version being published.",
            ["zone"], registry=r)
        self.zone_versions = Counter(
            "zonegen_zone_versions_total", "Zone versions committed (each a new serial).",
            registry=r)
        self.event_to_version = Histogram(
            "zonegen_event_to_version_seconds",
            "Time from an event's arrival to the commit of the zone version publishing it.",
            buckets=LATENCY_BUCKETS, registry=r)
        self.watch_reconnects = Counter(
            "zonegen_watch_reconnects_total",
            "Watch streams re-established after an error or a closed stream.",
            ["source", "kind"], registry=r)
        self.watch_synced_gauge = Gauge(
            "zonegen_watch_synced",
            "1 once the initial list of the kind is stored and the API server answers.",
            ["source", "kind"], registry=r)
        self.watch_last_event = Gauge(
            "zonegen_watch_last_event_timestamp_seconds",
            "Unix time of the last watch event (or bookmark) received for the kind.",
            ["source", "kind"], registry=r)
        self.transfers = Counter(
            "zonegen_transfers_total", "Zone transfers answered, by type and result.",
            ["type", "result"], registry=r)
        self.transfer_bytes = Counter(
            "zonegen_transfer_bytes_total", "Bytes sent in zone transfers.",
            ["type"], registry=r)
        self.notifies = Counter(
            "zonegen_notify_total", "NOTIFY messages sent to secondaries, by outcome.",
            ["result"], registry=r)
        self.dns_requests = _RequestCounts()
        r.register(self.dns_requests)
        self.store_errors = Counter(
            "zonegen_store_errors_total", "Database operations that failed.",
            ["operation"], registry=r)
        # Created by the first lease_changed(): a single-replica zonegen has no lease, and
        # a constant "leader 0" there would read as "not the writer".
        self.leader: Gauge | None = None
        self.lease_epoch: Gauge | None = None
        for typ in TRANSFER_TYPES:
            self.transfer_bytes.labels(typ)
            for result in TRANSFER_RESULTS:
                self.transfers.labels(typ, result)
        for result in NOTIFY_RESULTS:
            self.notifies.labels(result)
        self._dns_counts: dict[tuple[str, int | str, int | str], itertools.count[int]] = {}
        self._lock = threading.Lock()  # guards the child cache and lazy families

    # -- event log -----------------------------------------------------------------

    def event_stored(self, kind: str, type: str, n: int = 1,
                     source: str = DEFAULT_SOURCE) -> None:
        """``n`` events of ``source`` (the cluster), ``kind`` (Service …) and ``type``
        (ADDED …) were committed."""
        self.events_stored.labels(source, kind, type).inc(n)

    def store_error(self, operation: str) -> None:
        """A database ``operation`` (append, commit_version, read …) failed."""
        self.store_errors.labels(operation).inc()

    # -- projection and publication --------------------------------------------------

    def version_committed(self, arrivals: Iterable[datetime | float],
                          now: datetime | float | None = None) -> None:
        """A new zone version was committed; ``arrivals`` are the ``received_at`` of the
        events it publishes (datetimes or Unix seconds). Observes one latency per event,
        as CoreDNS observes one programming duration per endpoint change (about 1 µs
        each). Pass arrivals only on live paths (watch, serve --watch): a rebuild or an
        ingest of old files would record the events' age, not a latency."""
        end = time.time() if now is None else _epoch(now)
        self.zone_versions.inc()
        observe = self.event_to_version.observe
        for arrival in arrivals:
            observe(max(0.0, end - _epoch(arrival)))

    def zone_published(self, zone: str, serial: int, records: int) -> None:
        """``zone`` is now served (or written) at ``serial`` with ``records`` records."""
        self.zone_serial.labels(zone).set(serial)
        self.zone_records.labels(zone).set(records)

    # -- watch -----------------------------------------------------------------------

    # Every watch family is per stream of one source (one cluster): label ``source``.

    def watch_synced(self, kind: str, synced: bool, source: str = DEFAULT_SOURCE) -> None:
        """The initial list of ``kind`` is stored and the API server answers (or not)."""
        self.watch_synced_gauge.labels(source, kind).set(1 if synced else 0)
        self.watch_reconnects.labels(source, kind)  # exported at 0 from the start

    def watch_reconnect(self, kind: str, source: str = DEFAULT_SOURCE) -> None:
        """The watch of ``kind`` is being re-established."""
        self.watch_reconnects.labels(source, kind).inc()

    def watch_event_seen(self, kind: str, when: datetime | float | None = None,
                         source: str = DEFAULT_SOURCE) -> None:
        """A watch event or bookmark of ``kind`` arrived (now, unless ``when``)."""
        self.watch_last_event.labels(source, kind).set(
            time.time() if when is None else _epoch(when))

    def watch_event_setter(self, kind: str,
                           source: str = DEFAULT_SOURCE) -> Callable[[float], None]:
        """A bound ``set()`` of ``kind``'s last-event gauge, for a stream that records
        every event: a third of :meth:`watch_event_seen`'s cost (no label lookup after
        the first). The series appears with the first event, not at 0 before it (a
        dashboard's ``time() - last event`` must not read "55 years")."""
        gauge = self.watch_last_event
        child: Gauge | None = None

        def seen(when: float) -> None:
            nonlocal child
            if child is None:
                child = gauge.labels(source, kind)
            child.set(when)

        return seen

    # -- serving -----------------------------------------------------------------------

    def transfer(self, type: str, result: str, nbytes: int = 0) -> None:
        """A zone transfer (``AXFR``/``IXFR``) ended with ``result`` after ``nbytes``."""
        self.transfers.labels(type, result).inc()
        if nbytes:
            self.transfer_bytes.labels(type).inc(nbytes)

    def notify(self, result: str) -> None:
        """A NOTIFY to one secondary ended with ``result`` (see NOTIFY_RESULTS)."""
        self.notifies.labels(result).inc()

    def dns_request(self, proto: str, qtype: int | str, rcode: int | str) -> None:
        """One DNS request answered over ``proto`` (udp/tcp) for ``qtype`` (int or text)
        with ``rcode``. The per-query hot path: a dict lookup and ``next()`` on an
        ``itertools.count``, atomic in C; label text is computed once per new tuple."""
        count = self._dns_counts.get((proto, qtype, rcode))
        if count is None:
            count = self._dns_count(proto, qtype, rcode)
        next(count)

    def dns_request_counter(self, proto: str, qtype: int | str,
                            rcode: int | str) -> Callable[[], int]:
        """A bound ``inc()`` of one label tuple, for a caller that keeps it itself."""
        return self._dns_count(proto, qtype, rcode).__next__

    def _dns_count(self, proto: str, qtype: int | str, rcode: int | str) -> itertools.count[int]:
        key = (proto, qtype, rcode)
        with self._lock:
            count = self._dns_counts.get(key)
            if count is None:
                count = self.dns_requests.count(proto, _qtype_label(qtype), _rcode_label(rcode))
                if len(self._dns_counts) < 4096:  # raw ints vary more than their labels
                    self._dns_counts[key] = count
            return count

    # -- replicas ------------------------------------------------------------------------

    def lease_changed(self, leader: bool, epoch: int) -> None:
        """This replica holds (or lost) the writer lease, last seen at ``epoch``."""
        with self._lock:
            if self.leader is None or self.lease_epoch is None:
                self.leader = Gauge(
                    "zonegen_leader", "1 while this replica holds the writer lease.",
                    registry=self.registry)
                self.lease_epoch = Gauge(
                    "zonegen_lease_epoch", "Epoch of the writer lease this replica last saw.",
                    registry=self.registry)
        self.leader.set(1 if leader else 0)
        self.lease_epoch.set(epoch)


_process_metrics: Metrics | None = None
_process_lock = threading.Lock()


def process_metrics() -> Metrics:
    """The process-wide :class:`Metrics`: what ``--metrics-listen`` serves and what the
    components of a running serve/watch report to."""
    global _process_metrics
    with _process_lock:
        if _process_metrics is None:
            _process_metrics = Metrics()
        return _process_metrics
