"""Audit: history of a name, past zones, diffs, the event log, why, and compaction.

Scenarios ingest whole-cluster snapshots at controlled times (``ingest_files(...,
snapshot=True, when=...)``), save the zone exported while each serial was current, and
assert exact histories, past zones and diffs against those saves.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import cli
from zonegen import history, migrate
from zonegen.errors import UnknownSerial
from zonegen.export import export_zone
from zonegen.ingest import ingest_files
from zonegen.names import zone_config
from zonegen.runner import ProjectionRunner
from zonegen.store import EventRef, Store

T0 = datetime(2026, 3, 1, 3, 0, tzinfo=UTC)
CFG = zone_config("cluster.local")
REV = zone_config("10.in-addr.arpa")

# --------------------------------------------------------------------------- objects


def service(name: str, rv: str, ns: str = "shop", cluster_ip: str | None = None,
            ports: tuple[tuple[str, int], ...] = (("http", 80),)) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": ns, "uid": f"uid-svc-{ns}-{name}",
                     "resourceVersion": rv},
        "spec": {"clusterIP": cluster_ip or "None", "clusterIPs": [cluster_ip or "None"],
                 "type": "ClusterIP",
                 "ports": [{"name": p, "port": n, "protocol": "TCP"} for p, n in ports]},
    }


def endpoint_slice(name: str, svc: str, rv: str, addresses: list[str], ns: str = "shop",
                   port: tuple[str, int] = ("http", 80)) -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": name, "namespace": ns, "uid": f"uid-eps-{ns}-{name}",
                     "resourceVersion": rv,
                     "labels": {"kubernetes.io/service-name": svc}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [a], "conditions": {"ready": True}} for a in addresses],
        "ports": [{"name": port[0], "port": port[1], "protocol": "TCP"}],
    }


class Cluster:
    """Ingests snapshots at controlled times and keeps the zone exported at each serial."""

    def __init__(self, store: Store, tmp: Path) -> None:
        self.store = store
        self.tmp = tmp
        self.n = 0
        self.zones: dict[int, str] = {}  # serial -> zone text exported while current
        self.reverse: dict[int, str] = {}
        self.times: dict[int, datetime] = {}

    def snapshot(self, when: datetime, *objects: dict[str, Any]) -> int:
        self.n += 1
        path = self.tmp / f"snap{self.n}.json"
        kinds = {"Service", "EndpointSlice"}
        path.write_text(json.dumps({"kind": "List", "items": list(objects)}))
        # A kind absent from this snapshot is still listed (as an empty list), so its
        # vanished objects get DELETED events.
        files = [str(path)]
        for k in sorted(kinds - {o["kind"] for o in objects}):
            empty = self.tmp / f"snap{self.n}-{k}.json"
            empty.write_text(json.dumps({"kind": f"{k}List", "items": []}))
            files.append(str(empty))
        report = ingest_files(self.store, files, snapshot=True, when=when)
        assert report.serial is not None
        self.zones[report.serial] = export_text(self.store, CFG)
        self.reverse[report.serial] = export_text(self.store, REV)
        self.times.setdefault(report.serial, when)
        return report.serial


def export_text(store: Store, config: Any, **kw: Any) -> str:
    out = io.StringIO()
    export_zone(store, config, stream=out, **kw)
    return out.getvalue()


@pytest.fixture
def store() -> Iterator[Store]:
    s = Store.open("sqlite:///:memory:")
    yield s
    s.close()


@pytest.fixture
def rollout(store: Store, tmp_path: Path) -> tuple[Cluster, list[int]]:
    """web.shop: two pods, rolled to two new ones in two steps, then deleted; api.shop
    (a ClusterIP Service) stays throughout."""
    c = Cluster(store, tmp_path)
    api = service("api", "10", cluster_ip="10.96.0.10")
    api_eps = endpoint_slice("api-x", "api", "11", ["10.0.9.1"])
    serials = [
        c.snapshot(T0, api, api_eps, service("web", "20"),
                   endpoint_slice("web-abc", "web", "21", ["10.0.0.1", "10.0.0.2"])),
        c.snapshot(T0 + timedelta(minutes=10), api, api_eps, service("web", "20"),
                   endpoint_slice("web-abc", "web", "22", ["10.0.0.2", "10.0.0.3"])),
        c.snapshot(T0 + timedelta(minutes=20), api, api_eps, service("web", "20"),
                   endpoint_slice("web-abc", "web", "23", ["10.0.0.3", "10.0.0.4"])),
        c.snapshot(T0 + timedelta(minutes=30), api, api_eps),
    ]
    return c, serials


# --------------------------------------------------------------------------- history


def _rows(entries: list[history.HistoryEntry]) -> list[tuple[Any, ...]]:
    return [(e.serial, e.change, e.type, e.rdata,
             (e.cause.kind, e.cause.name, e.cause.resource_version, e.cause.type)
             if e.cause else None) for e in entries]


def test_history_of_a_name_is_exact(store: Store, rollout: tuple[Cluster, list[int]]) -> None:
    _, (s0, s1, s2, s3) = rollout
    entries = history.name_history(store, "web.shop.svc", CFG, type="A")
    eps = "EndpointSlice", "web-abc"
    assert _rows(entries) == [
        (s0, "added", "A", "10.0.0.1", (*eps, "21", "ADDED")),
        (s0, "added", "A", "10.0.0.2", (*eps, "21", "ADDED")),
        (s1, "removed", "A", "10.0.0.1", (*eps, "22", "MODIFIED")),
        (s1, "added", "A", "10.0.0.3", (*eps, "22", "MODIFIED")),
        (s2, "removed", "A", "10.0.0.2", (*eps, "23", "MODIFIED")),
        (s2, "added", "A", "10.0.0.4", (*eps, "23", "MODIFIED")),
        # The Service's deletion removes the rest (its slice went in the same batch;
        # the first event to take a record away is its cause).
        (s3, "removed", "A", "10.0.0.3", entries[-2].cause and (
            entries[-2].cause.kind, entries[-2].cause.name,
            entries[-2].cause.resource_version, "DELETED")),
        (s3, "removed", "A", "10.0.0.4", entries[-1].cause and (
            entries[-1].cause.kind, entries[-1].cause.name,
            entries[-1].cause.resource_version, "DELETED")),
    ]
    assert entries[0].name == "web.shop.svc.cluster.local."
    assert entries[0].time == T0
    assert entries[-1].time == T0 + timedelta(minutes=30)
    assert all(e.ttl == 5 for e in entries)
    assert entries[0].cause is not None
    assert entries[0].cause_seq == entries[0].cause.seq


def test_history_names_the_rollout_that_removed_an_srv_target(
        store: Store, rollout: tuple[Cluster, list[int]]) -> None:
    _, (_, s1, _, _) = rollout
    entries = history.name_history(store, "_http._tcp.web.shop.svc.cluster.local.", CFG,
                                   type="srv")
    removed = [e for e in entries if e.change == "removed" and "10-0-0-1" in e.rdata]
    assert len(removed) == 1
    gone = removed[0]
    assert gone.serial == s1
    assert gone.rdata == "0 50 80 10-0-0-1.web.shop.svc.cluster.local."
    assert gone.cause is not None
    assert (gone.cause.kind, gone.cause.name, gone.cause.resource_version) == \
        ("EndpointSlice", "web-abc", "22")


def test_history_window_and_absolute_and_reverse_names(
        store: Store, rollout: tuple[Cluster, list[int]]) -> None:
    _, (s0, s1, s2, s3) = rollout
    window = history.name_history(store, "web.shop.svc.cluster.local.", CFG,
                                  since=T0 + timedelta(minutes=5),
                                  until=T0 + timedelta(minutes=20))
    assert {e.serial for e in window} == {s1, s2}
    # "What did it resolve to at 03:12?" is the fold of the history up to then.
    at = T0 + timedelta(minutes=12)
    current: set[str] = set()
    for e in history.name_history(store, "web.shop.svc", CFG, type="A", until=at):
        (current.add if e.change == "added" else current.discard)(e.rdata)
    assert current == {"10.0.0.2", "10.0.0.3"}
    ptr = history.name_history(store, "2.0.0", REV)
    assert [(e.serial, e.change, e.rdata) for e in ptr] == [
        (s0, "added", "10-0-0-2.web.shop.svc.cluster.local."),
        (s2, "removed", "10-0-0-2.web.shop.svc.cluster.local."),
    ]
    assert ptr[0].name == "2.0.0.10.in-addr.arpa."
    assert history.name_history(store, "nothing.shop.svc", CFG) == []
    assert history.name_history(store, "WEB.shop.svc", CFG, type="A")[0].rdata == "10.0.0.1"


@pytest.mark.parametrize(("name", "rtype"), [
    ("bad..name", None), ("a" * 64 + ".shop.svc", None), ("sp ace.svc", None),
    ("web.shop.svc", "MX"), ("web.shop.svc", "SOA"),
])
def test_history_rejects_bad_names_and_types(store: Store, name: str, rtype: str | None
                                             ) -> None:
    with pytest.raises(history.InvalidQuery):
        history.name_history(store, name, CFG, type=rtype)


# --------------------------------------------------------------------------- past zones


def test_export_serial_and_at_reproduce_every_published_zone(
        store: Store, rollout: tuple[Cluster, list[int]]) -> None:
    c, serials = rollout
    for serial in serials:
        assert export_text(store, CFG, serial=serial) == c.zones[serial]
        assert export_text(store, REV, serial=serial) == c.reverse[serial]
        when = c.times[serial]
        assert export_text(store, CFG, at=when + timedelta(minutes=9)) == c.zones[serial]
    with pytest.raises(UnknownSerial, match="never published"):
        export_text(store, CFG, serial=12345)
    with pytest.raises(UnknownSerial, match="at or before"):
        export_text(store, CFG, at=T0 - timedelta(seconds=1))


def test_records_at_uses_a_snapshot_and_stays_exact(
        store: Store, rollout: tuple[Cluster, list[int]]) -> None:
    c, serials = rollout
    before = {s: store.records_at(store.find_version(s).version_id) for s in serials}
    store.save_snapshot(store.find_version(serials[1]).version_id)
    for s in serials:
        assert store.records_at(store.find_version(s).version_id) == before[s]
        assert export_text(store, CFG, serial=s) == c.zones[s]


_ADDRS = [f"10.1.0.{i}" for i in range(1, 7)]


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.booleans(), st.sets(st.sampled_from(_ADDRS)),
                          st.booleans(), st.integers(1, 3600)), min_size=1, max_size=8),
       st.integers(0, 9))
def test_export_serial_equals_the_zone_saved_then(
        tmp_path_factory: pytest.TempPathFactory,
        steps: list[tuple[bool, set[str], bool, int]], compact_after: int) -> None:
    """For every serial N: ``export --serial N`` == the zone exported while N was
    current; and after compacting, the same for every kept N."""
    tmp = tmp_path_factory.mktemp("h")
    s = Store.open("sqlite:///:memory:")
    try:
        c = Cluster(s, tmp)
        when = T0
        for i, (with_svc, addrs, with_db, gap) in enumerate(steps):
            when += timedelta(seconds=gap)
            objs = [endpoint_slice("app-1", "app", f"e{i}", sorted(addrs))]
            if with_svc:
                objs.append(service("app", "s1"))
            if with_db:
                objs += [service("db", "d1", cluster_ip="10.96.1.1"),
                         endpoint_slice("db-1", "db", f"d{i}", sorted(addrs)[:2])]
            c.snapshot(when, *objs)
        for serial, text in c.zones.items():
            assert export_text(s, CFG, serial=serial) == text
            assert export_text(s, REV, serial=serial) == c.reverse[serial]
        versions = s.versions()
        keep = 1 + compact_after % len(versions)
        history.compact(s, keep_versions=keep)
        kept = {v.serial for v in versions[-keep:]}
        for serial, text in c.zones.items():
            if serial in kept:
                assert export_text(s, CFG, serial=serial) == text
            else:
                with pytest.raises(UnknownSerial, match="history begins at serial"):
                    export_text(s, CFG, serial=serial)
        # The projection still loads and equals a replay of what is left.
        report = ProjectionRunner(s).rebuild()
        assert report.identical
        assert ProjectionRunner(s).projection.records() == \
            frozenset(s.records_at(versions[-1].version_id))
    finally:
        s.close()


# --------------------------------------------------------------------------- diff


def test_diff_between_serials_and_times(store: Store, rollout: tuple[Cluster, list[int]]
                                        ) -> None:
    _, (s0, s1, s2, _) = rollout
    d = history.diff_versions(store, str(s0), str(s2), CFG)
    a_lines = [x.text() for x in d.lines if x.type == "A"]
    assert a_lines == [  # DNSSEC canonical order: a name before the names below it
        "-web.shop.svc.cluster.local. 5 IN A 10.0.0.1",
        "-web.shop.svc.cluster.local. 5 IN A 10.0.0.2",
        "+web.shop.svc.cluster.local. 5 IN A 10.0.0.3",
        "+web.shop.svc.cluster.local. 5 IN A 10.0.0.4",
        "-10-0-0-1.web.shop.svc.cluster.local. 5 IN A 10.0.0.1",
        "-10-0-0-2.web.shop.svc.cluster.local. 5 IN A 10.0.0.2",
        "+10-0-0-3.web.shop.svc.cluster.local. 5 IN A 10.0.0.3",
        "+10-0-0-4.web.shop.svc.cluster.local. 5 IN A 10.0.0.4",
    ]
    # Backwards is the inverse; times pick the version current then; A == A is empty.
    back = history.diff_versions(store, s2, s0, CFG)
    flip = {"+": "-", "-": "+"}
    assert sorted(flip[x.change] + x.text()[1:] for x in back.lines) == \
        sorted(x.text() for x in d.lines)
    by_time = history.diff_versions(store, (T0 + timedelta(minutes=1)).isoformat(),
                                    "2026-03-01T03:25:00", CFG)
    assert (by_time.old.serial, by_time.new.serial) == (s0, s2)
    assert by_time.lines == d.lines
    assert history.diff_versions(store, s1, s1, CFG).lines == ()
    # The diff applied to the old zone gives the new one.
    old = store.records_at(store.find_version(s0).version_id)
    new = store.records_at(store.find_version(s2).version_id)
    assert len(d.lines) == len(old ^ new) - sum(1 for r in old ^ new if r.owner.endswith("."))
    rev = history.diff_versions(store, s0, s2, REV)
    assert [x.text() for x in rev.lines] == [
        "-1.0.0.10.in-addr.arpa. 5 IN PTR 10-0-0-1.web.shop.svc.cluster.local.",
        "-2.0.0.10.in-addr.arpa. 5 IN PTR 10-0-0-2.web.shop.svc.cluster.local.",
        "+3.0.0.10.in-addr.arpa. 5 IN PTR 10-0-0-3.web.shop.svc.cluster.local.",
        "+4.0.0.10.in-addr.arpa. 5 IN PTR 10-0-0-4.web.shop.svc.cluster.local.",
    ]


def test_diff_unknown_versions(store: Store, rollout: tuple[Cluster, list[int]]) -> None:
    _, (s0, *_) = rollout
    with pytest.raises(UnknownSerial):
        history.diff_versions(store, s0, 1, CFG)
    with pytest.raises(UnknownSerial):
        history.diff_versions(store, "2020-01-01", s0, CFG)
    with pytest.raises(history.ZonegenError, match="ISO 8601"):
        history.diff_versions(store, "yesterday", s0, CFG)


# --------------------------------------------------------------------------- log, why


def test_event_log_filters(store: Store, rollout: tuple[Cluster, list[int]]) -> None:
    everything = list(history.event_log(store))
    assert [e.seq for e in everything] == sorted(e.seq for e in everything)
    assert [(e.kind, e.name, e.resource_version, e.type) for e in everything][-2:] == [
        ("EndpointSlice", "web-abc", "23", "DELETED"), ("Service", "web", "20", "DELETED")]
    slices = list(history.event_log(store, kind="endpointslice", namespace="shop"))
    assert {e.kind for e in slices} == {"EndpointSlice"}
    assert len(slices) == 5  # api-x, web-abc x3, web-abc deletion
    later = list(history.event_log(store, since=T0 + timedelta(minutes=10)))
    assert [e.resource_version for e in later] == ["22", "23", "23", "20"]
    assert [e.seq for e in history.event_log(store, last=2)] == \
        [e.seq for e in everything[-2:]]
    assert list(history.event_log(store, name="web", kind="Service"))[0].type == "ADDED"
    with pytest.raises(history.InvalidQuery, match="kind 'Pod'"):
        list(history.event_log(store, kind="Pod"))
    assert history.event_json(everything[0])["object"]["kind"] == "Service"


def test_why_names_the_change_and_the_current_objects(
        store: Store, tmp_path: Path) -> None:
    c = Cluster(store, tmp_path)
    c.snapshot(T0, service("web", "20"), endpoint_slice("web-abc", "web", "21", ["10.0.0.1"]))
    s1 = c.snapshot(T0 + timedelta(minutes=1), service("web", "20"),
                    endpoint_slice("web-abc", "web", "21", ["10.0.0.1"]),
                    endpoint_slice("web-def", "web", "30", ["10.0.0.7"]))
    report = history.why(store, "web.shop.svc", "A", "10.0.0.7", CFG)
    assert report.record == "web.shop.svc.cluster.local. 5 IN A 10.0.0.7"
    assert report.serial == s1
    assert report.current_serial == s1
    assert report.cause is not None
    assert (report.cause.kind, report.cause.name, report.cause.resource_version) == \
        ("EndpointSlice", "web-def", "30")
    assert report.service == ("shop", "web")
    assert [(o.kind, o.name, o.resource_version) for o in report.objects] == [
        ("Service", "web", "20"), ("EndpointSlice", "web-abc", "21"),
        ("EndpointSlice", "web-def", "30")]
    srv = history.why(store, "_http._tcp.web.shop.svc", "SRV",
                      "0 50 80 10-0-0-7.web.shop.svc", CFG)
    assert srv.cause is not None
    assert srv.cause.name == "web-def"
    ptr = history.why(store, "7.0.0", "PTR", "10-0-0-7.web.shop.svc.cluster.local.", REV)
    assert ptr.service == ("shop", "web")
    own = history.why(store, "dns-version", "TXT", '"1.1.0"', CFG)
    assert own.service is None
    assert own.cause is None
    with pytest.raises(history.InvalidQuery, match="not in the current zone.*10.0.0.1"):
        history.why(store, "web.shop.svc", "A", "10.0.0.9", CFG)
    with pytest.raises(history.InvalidQuery, match="not valid A rdata"):
        history.why(store, "web.shop.svc", "A", "fd00::1", CFG)
    with pytest.raises(history.InvalidQuery, match="not valid SRV rdata"):
        history.why(store, "_http._tcp.web.shop.svc", "SRV", "0 x 80 a", CFG)


# --------------------------------------------------------------------------- compaction


def test_compaction_keeps_later_answers_and_says_where_history_begins(
        store: Store, rollout: tuple[Cluster, list[int]], tmp_path: Path) -> None:
    c, (s0, s1, s2, s3) = rollout
    full_history = history.name_history(store, "web.shop.svc", CFG)
    diff_23 = history.diff_versions(store, s2, s3, CFG)
    events_before = list(history.event_log(store))
    # Keep what `export --at` needs for the last 5 minutes of 03:25: s2 is current at 03:20.
    report = history.compact(store, keep_days=5 / 1440,
                             clock=lambda: (T0 + timedelta(minutes=25)).timestamp())
    assert report.removed_anything
    assert report.versions_deleted == 2
    assert report.start is not None
    assert report.start.version.serial == s2
    assert f"history begins at serial {s2} (compacted on 2026-03-01T03:25:00Z)" in \
        report.summary()
    # Events of s0 and s1 went, except api's (still its newest): web's and web-abc's
    # were superseded by later events that the projection loads instead.
    after = list(history.event_log(store))
    assert [(e.name, e.resource_version) for e in events_before if e not in after] == \
        [("web", "20"), ("web-abc", "21"), ("web-abc", "22")]
    assert report.events_deleted == 3
    # Later answers are unchanged.
    for s in (s2, s3):
        assert export_text(store, CFG, serial=s) == c.zones[s]
        assert export_text(store, REV, serial=s) == c.reverse[s]
    assert history.diff_versions(store, s2, s3, CFG) == diff_23
    start = store.history_start()
    assert start is not None
    assert start.version.serial == s2
    # Earlier ones say plainly where history begins.
    for gone in (s0, s1):
        with pytest.raises(UnknownSerial,
                           match=rf"history begins at serial {s2} \(compacted on"):
            export_text(store, CFG, serial=gone)
    with pytest.raises(UnknownSerial, match="history begins at serial"):
        export_text(store, CFG, at=T0 + timedelta(minutes=15))
    with pytest.raises(UnknownSerial, match="history begins at serial"):
        history.diff_versions(store, s1, s3, CFG)
    # History: what was there when kept history begins, then the kept changes as before.
    now = history.name_history(store, "web.shop.svc", CFG, type="A")
    assert [(e.change, e.serial, e.rdata) for e in now[:2]] == [
        ("present", s2, "10.0.0.2"), ("present", s2, "10.0.0.3")]
    # 10.0.0.2 was added by rv 21 (event and change both compacted); 10.0.0.3 by rv 22,
    # whose change survives in the snapshot but whose event is gone.
    assert (now[0].cause, now[0].cause_seq) == (None, -1)
    added_3 = next(e for e in full_history
                   if (e.type, e.change, e.rdata) == ("A", "added", "10.0.0.3"))
    assert now[1].cause is None
    assert now[1].cause_seq == added_3.cause_seq
    assert now[2:] == [e for e in full_history if e.serial in (s2, s3) and e.type == "A"]
    # The projection still loads, and the log still rebuilds the same zone.
    runner = ProjectionRunner(store)
    assert runner.projection.records() == frozenset(
        store.records_at(store.find_version(s3).version_id))
    assert runner.rebuild().identical
    # Life goes on: a new Service after compaction projects and diffs normally.
    s4 = c.snapshot(T0 + timedelta(hours=1), service("api", "10", cluster_ip="10.96.0.10"),
                    endpoint_slice("api-x", "api", "11", ["10.0.9.1"]),
                    service("web", "40"), endpoint_slice("web-new", "web", "41", ["10.0.0.5"]))
    assert export_text(store, CFG, serial=s4) == c.zones[s4]
    assert export_text(store, CFG, serial=s2) == c.zones[s2]
    assert history.name_history(store, "web.shop.svc", CFG, type="A")[-1].rdata == "10.0.0.5"
    # Compacting again to the same point is a no-op.
    again = history.compact(store, keep_versions=3)
    assert not again.removed_anything
    assert "nothing to compact" in again.summary()


def test_compaction_keeps_the_causes_it_can_and_why_still_answers(
        store: Store, tmp_path: Path) -> None:
    c = Cluster(store, tmp_path)
    s0 = c.snapshot(T0, service("web", "20"), endpoint_slice("web-a", "web", "21", ["10.0.0.1"]))
    for i in range(1, 4):
        c.snapshot(T0 + timedelta(minutes=i), service("web", "20"),
                   endpoint_slice("web-a", "web", "21", ["10.0.0.1"]),
                   endpoint_slice("web-b", "web", f"3{i}", [f"10.0.1.{i}"]))
    history.compact(store, keep_versions=1)
    report = history.why(store, "web.shop.svc", "A", "10.0.0.1", CFG)
    assert report.present_since_start
    # The Service and web-a never changed after s0: their newest events are kept.
    assert report.cause is not None
    assert report.cause.name == "web-a"
    assert {o.name for o in report.objects} == {"web", "web-a", "web-b"}
    gone = store.get_event(report.cause_seq)
    assert gone is not None
    with pytest.raises(UnknownSerial, match="history begins"):
        store.find_version(s0)


def test_compact_needs_exactly_one_limit(store: Store) -> None:
    for kw in ({}, {"keep_days": 1.0, "keep_versions": 1}, {"keep_versions": 0},
               {"keep_days": -1.0}):
        with pytest.raises(history.InvalidQuery):
            history.compact(store, **kw)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- indexes


def test_history_query_uses_the_owner_index(store: Store,
                                            rollout: tuple[Cluster, list[int]]) -> None:
    seen: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, params: Any, context: Any,
                executemany: bool) -> None:
        if "record_changes" in statement and "owner IN" in statement:
            seen.append((statement, params))

    sa.event.listen(store.engine, "before_cursor_execute", capture)
    try:
        history.name_history(store, "web.shop.svc", CFG, type="A")
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", capture)
    assert seen
    with store.engine.connect() as conn:
        statement, params = seen[0]
        plan = " | ".join(str(r[-1]) for r in
                          conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, params))
    assert "ix_record_changes_owner" in plan, plan
    assert "SCAN record_changes" not in plan, plan
    assert "SCAN zone_versions" not in plan, plan


# --------------------------------------------------------------------------- migration


def test_migration_0002_round_trip_keeps_data(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'z.db'}"
    s = Store.open(url, upgrade=False)
    migrate.upgrade(s.engine, "0001")
    assert s.current_revision() == "0001"
    c = Cluster(s, tmp_path)
    s.upgrade()
    serial = c.snapshot(T0, service("web", "1"), endpoint_slice("w", "web", "2", ["10.0.0.1"]))
    migrate.downgrade(s.engine, "0001")
    tables = set(sa.inspect(s.engine).get_table_names())
    assert "record_snapshots" not in tables
    assert "compactions" not in tables
    migrate.upgrade(s.engine, "0002")
    assert s.current_revision() == "0002"
    s.upgrade()  # today's code reads today's schema; the data came through 0001 and back
    assert export_text(s, CFG, serial=serial) == c.zones[serial]
    s.close()


def test_migration_0002_refuses_to_downgrade_after_compaction(store: Store,
                                                              tmp_path: Path) -> None:
    c = Cluster(store, tmp_path)
    c.snapshot(T0, service("web", "1"))
    c.snapshot(T0 + timedelta(minutes=1), service("web", "2", cluster_ip="10.96.0.1"))
    assert history.compact(store, keep_versions=1).removed_anything
    with pytest.raises(RuntimeError, match="compacted"):
        migrate.downgrade(store.engine, "0001")


# --------------------------------------------------------------------------- CLI


@pytest.fixture
def cli_db(tmp_path: Path) -> tuple[str, list[int]]:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    s = Store.open(url)
    c = Cluster(s, tmp_path)
    serials = [
        c.snapshot(T0, service("web", "20"),
                   endpoint_slice("web-abc", "web", "21", ["10.0.0.1", "10.0.0.2"])),
        c.snapshot(T0 + timedelta(minutes=10), service("web", "20"),
                   endpoint_slice("web-abc", "web", "22", ["10.0.0.2", "10.0.0.3"])),
    ]
    s.close()
    return url, serials


def test_cli_history_table_and_json(cli_db: tuple[str, list[int]]) -> None:
    url, (s0, s1) = cli_db
    r = cli("history", "web.shop.svc", "--type", "A", db=url)
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert lines[0].split() == ["TIME", "SERIAL", "CHANGE", "TYPE", "TTL", "RDATA", "CAUSE"]
    assert lines[3].split()[:6] == ["2026-03-01T03:10:00Z", str(s1), "removed", "A", "5",
                                    "10.0.0.1"]
    assert "EndpointSlice shop/web-abc rv=22 MODIFIED" in lines[3]
    assert len({line.index("SERIAL") if i == 0 else line.index(str(s0 if i < 3 else s1))
                for i, line in enumerate(lines)}) == 1  # aligned
    r = cli("history", "web.shop.svc.cluster.local.", "--json", "--since",
            "2026-03-01T03:05", db=url)
    docs = [json.loads(line) for line in r.output.splitlines()]
    assert {d["serial"] for d in docs} == {s1}
    assert docs[0]["cause"]["resourceVersion"] == "22"


def test_cli_export_diff_log_why_compact(cli_db: tuple[str, list[int]]) -> None:
    url, (s0, s1) = cli_db
    assert cli("export", "--serial", str(s0), db=url).output.count("IN A 10.0.0.1") == 2
    assert cli("export", "--at", "2026-03-01T03:05:00", db=url).output == \
        cli("export", "--serial", str(s0), db=url).output
    r = cli("diff", str(s0), str(s1), db=url)
    assert r.exit_code == 0
    assert r.output.startswith(f"; cluster.local. serial {s0}")
    assert "+web.shop.svc.cluster.local. 5 IN A 10.0.0.3" in r.output.splitlines()
    r = cli("diff", "--json", str(s0), str(s1), db=url)
    assert {"change": "added", "name": "web.shop.svc.cluster.local.", "ttl": 5, "type": "A",
            "rdata": "10.0.0.3"} in [json.loads(x) for x in r.output.splitlines()]
    r = cli("log", "--kind", "EndpointSlice", db=url)
    assert r.exit_code == 0
    assert len(r.output.splitlines()) == 3
    r = cli("log", "--json", "--last", "1", db=url)
    assert json.loads(r.output)["object"]["metadata"]["resourceVersion"] == "22"
    r = cli("why", "_http._tcp.web.shop.svc", "SRV", "0", "50", "80",
            "10-0-0-3.web.shop.svc", db=url)
    assert r.exit_code == 0, r.output
    assert "EndpointSlice shop/web-abc rv=22 MODIFIED" in r.output
    r = cli("compact", "--keep-versions", "1", db=url)
    assert r.exit_code == 0
    assert f"history begins at serial {s1}" in r.output
    r = cli("history", "web.shop.svc", "--type", "A", db=url)
    assert r.output.startswith(f"; history begins at serial {s1} (compacted on ")
    assert "present" in r.output


@pytest.mark.parametrize(("args", "message"), [
    (["export", "--serial", "42"], "serial 42 was never published"),
    (["export", "--at", "tomorrow"], "is not ISO 8601"),
    (["diff", "1", "2"], "serial 1 was never published"),
    (["diff", "2026-13-01", "2"], "is not ISO 8601"),
    (["history", "bad..name"], "is not a valid DNS name"),
    (["history", "web.shop.svc", "--type", "MX"], "record type 'MX'"),
    (["history", "web.shop.svc", "--since", "soon"], "is not ISO 8601"),
    (["log", "--kind", "Pod"], "kind 'Pod'"),
    (["log", "--last", "0"], "at least 1"),
    (["why", "web.shop.svc", "A", "10.9.9.9"], "not in the current zone"),
    (["why", "web.shop.svc", "BOGUS", "x"], "record type 'BOGUS'"),
    (["compact"], "--keep-days D or --keep-versions K"),
    (["compact", "--keep-days", "nan"], "must be a number of days"),
    (["compact", "--keep-days", "1e300"], "must be a number of days"),
])
def test_cli_errors_are_one_line(cli_db: tuple[str, list[int]], args: list[str],
                                 message: str) -> None:
    url, _ = cli_db
    r = cli(*args, db=url)
    assert r.exit_code == 1, r.output
    assert r.output.count("\n") == 1, r.output
    assert r.output.startswith("Error: "), r.output
    assert message in r.output


def test_a_full_name_without_trailing_dot_is_absolute_in_history_and_why(
        store: Store, tmp_path: Path) -> None:
    """names.qualify's rule (README, "Names on the command line"): a name that ends with
    the zone is absolute, trailing dot or not, as owner and inside rdata."""
    c = Cluster(store, tmp_path)
    s0 = c.snapshot(T0, service("web", "20"),
                    endpoint_slice("web-abc", "web", "21", ["10.0.0.7"]))
    full = history.name_history(store, "web.shop.svc.cluster.local", CFG, type="A")
    assert [(e.serial, e.change, e.name, e.rdata) for e in full] == [
        (s0, "added", "web.shop.svc.cluster.local.", "10.0.0.7")]
    assert full == history.name_history(store, "web.shop.svc", CFG, type="A")
    srv = history.why(store, "_http._tcp.web.shop.svc.cluster.local", "SRV",
                      "0 100 80 10-0-0-7.web.shop.svc.cluster.local", CFG)
    assert srv.record == ("_http._tcp.web.shop.svc.cluster.local. 5 IN SRV "
                          "0 100 80 10-0-0-7.web.shop.svc.cluster.local.")
    ptr = history.why(store, "7.0.0.10.in-addr.arpa", "PTR",
                      "10-0-0-7.web.shop.svc.cluster.local", REV)
    assert ptr.service == ("shop", "web")


# --------------------------------------------------------------------------- sources


def test_log_shows_source_and_origin(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "east.json"
    path.write_text(json.dumps({"kind": "List", "items": [service("db", "5")]}))
    ingest_files(store, [str(path)], when=T0, project=False)
    ingest_files(store, [str(path)], source="east", when=T0, project=False)
    events = list(history.event_log(store))
    assert [(e.source, e.origin) for e in events] == [("default", "ingest"),
                                                      ("east", "ingest")]
    assert list(history.format_log(events)) == [
        "SEQ  RECEIVED              TYPE   KIND     OBJECT   RV  SOURCE   ORIGIN",
        "1    2026-03-01T03:00:00Z  ADDED  Service  shop/db  5   default  ingest",
        "2    2026-03-01T03:00:00Z  ADDED  Service  shop/db  5   east     ingest",
    ]
    assert {k: history.event_json(events[1])[k] for k in ("source", "origin")} == {
        "source": "east", "origin": "ingest"}


def test_history_names_the_source_of_a_cause_outside_the_default_one() -> None:
    def entry(source: str) -> history.HistoryEntry:
        cause = EventRef(7, T0, "ADDED", "Service", "shop", "db", "u", "5", source)
        return history.HistoryEntry(T0, 3, "added", "db.shop.svc.cluster.local.", "A", 5,
                                    "10.0.0.1", 7, cause)

    assert history.format_history([entry("default"), entry("east")])[1:] == [
        "2026-03-01T03:00:00Z  3       added   A     5    10.0.0.1  "
        "Service shop/db rv=5 ADDED seq=7",
        "2026-03-01T03:00:00Z  3       added   A     5    10.0.0.1  "
        "Service shop/db rv=5 ADDED seq=7 source=east",
    ]
    assert entry("east").to_json()["cause"]["source"] == "east"


def test_why_lists_only_the_default_sources_objects(store: Store, tmp_path: Path) -> None:
    """The same Service in another cluster is another object: why of the default zone's
    record names the default source's Service and slices only."""
    c = Cluster(store, tmp_path)
    c.snapshot(T0, service("web", "20"), endpoint_slice("web-abc", "web", "21", ["10.0.0.1"]))
    east = tmp_path / "east.json"
    east.write_text(json.dumps({"kind": "List", "items": [
        service("web", "40"), endpoint_slice("web-xyz", "web", "41", ["10.9.0.1"])]}))
    ingest_files(store, [str(east)], source="east", when=T0 + timedelta(minutes=1),
                 project=False)
    report = history.why(store, "web.shop.svc", "A", "10.0.0.1", CFG)
    assert [(o.kind, o.name, o.resource_version) for o in report.objects] == [
        ("Service", "web", "20"), ("EndpointSlice", "web-abc", "21")]
