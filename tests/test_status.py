"""``zonegen status``: exact values from a store built by hand, as text and JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import cli
from zonegen.history import compact
from zonegen.ingest import ingest_files
from zonegen.names import zone_config
from zonegen.status import ResumePoint, SourceStatus, Writer, ZoneCount, status
from zonegen.store import Store

T0 = datetime(2026, 1, 1, tzinfo=UTC)
T1 = datetime(2026, 1, 1, 0, 5, tzinfo=UTC)
T2 = datetime(2026, 1, 1, 0, 9, 30, tzinfo=UTC)
S0 = int(T0.timestamp())
CONFIGS = [zone_config(), zone_config(zone="10.in-addr.arpa")]


def headless(rv: str = "1") -> dict[str, Any]:
    return {"kind": "Service",
            "metadata": {"name": "db", "namespace": "shop", "uid": "u-db",
                         "resourceVersion": rv},
            "spec": {"clusterIP": "None", "ports": [{"name": "pg", "port": 5432}]}}


def slice_(rv: str, *addresses: str) -> dict[str, Any]:
    return {"kind": "EndpointSlice", "addressType": "IPv4",
            "metadata": {"name": "db-1", "namespace": "shop", "uid": "u-db-1",
                         "resourceVersion": rv,
                         "labels": {"kubernetes.io/service-name": "db"}},
            "endpoints": [{"addresses": [a], "conditions": {"ready": True}}
                          for a in addresses],
            "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}]}


def stored(store: Store, tmp_path: Path, when: datetime, project: bool,
           *objs: dict[str, Any]) -> None:
    path = tmp_path / "in.json"
    path.write_text(json.dumps({"kind": "List", "items": list(objs)}))
    ingest_files(store, [str(path)], when=when, project=project)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """One version at T0 (a headless Service with two endpoints), then one EndpointSlice
    change stored at T1 and not projected, and two watch resume points."""
    path = tmp_path / "z.db"
    store = Store.open(f"sqlite:///{path}")
    stored(store, tmp_path, T0, True, headless(), slice_("1", "10.0.0.1", "10.0.0.2"))
    stored(store, tmp_path, T1, False, slice_("2", "10.0.0.1", "10.0.0.2", "10.0.0.3"))
    store.append_events([], resume=[("default", "Service", "120"),
                                    ("default@shop", "EndpointSlice", "456")])
    store.close()
    return path


def test_status_reports_exact_values_and_never_projects(db: Path) -> None:
    store = Store.open(f"sqlite:///{db}")
    report = status(store, CONFIGS)
    assert report.database == str(db)
    assert (report.serial, report.serial_time) == (S0, T0)
    # SOA, NS, glue A, TXT, db A x2, db-N A x2, db SRV x2, _pg._tcp SRV x2 /
    # SOA, NS, PTR x2 (the pending third endpoint is not in them)
    assert report.zones == (ZoneCount("cluster.local.", 12), ZoneCount("10.in-addr.arpa.", 4))
    assert (report.events, report.pending) == (3, 1)
    assert report.last_events == (("EndpointSlice", T1), ("Service", T0))
    assert report.resume_points == (ResumePoint("default", "Service", "120"),
                                    ResumePoint("default@shop", "EndpointSlice", "456"))
    assert report.sources == (SourceStatus("default", "default", 3, T1, (
        (None, "Service", "120"), ("shop", "EndpointSlice", "456"))),)
    assert (report.oldest_serial, report.compacted_at) == (S0, None)
    # status counts pending events; it does not project them
    assert [v.serial for v in store.versions()] == [S0]


def test_status_text_is_aligned_and_json_is_one_object(db: Path) -> None:
    text = cli("status", "--extra-zone", "10.in-addr.arpa", db=db)
    assert text.exit_code == 0, text.output
    assert text.stdout.splitlines() == [
        f"database        {db}",
        f"serial          {S0} (2026-01-01T00:00:00Z)",
        "records         cluster.local. 12",
        "                10.in-addr.arpa. 4",
        "events stored   3",
        "events pending  1",
        "last event      EndpointSlice 2026-01-01T00:05:00Z",
        "                Service 2026-01-01T00:00:00Z",
        "resume points   default Service 120",
        "                default@shop EndpointSlice 456",
        "sources         default: cluster id default, 3 events, last 2026-01-01T00:05:00Z, "
        "watch synced (2 resume points)",
        f"oldest serial   {S0}",
    ]
    out = cli("status", "--json", db=db)
    assert out.exit_code == 0, out.output
    assert out.stdout.count("\n") == 1
    assert json.loads(out.stdout) == {
        "database": str(db), "serial": S0, "serial_time": "2026-01-01T00:00:00Z",
        "zones": {"cluster.local.": 12}, "events": 3, "events_pending": 1,
        "last_event": {"EndpointSlice": "2026-01-01T00:05:00Z",
                       "Service": "2026-01-01T00:00:00Z"},
        "resume_points": [
            {"source": "default", "kind": "Service", "resource_version": "120"},
            {"source": "default@shop", "kind": "EndpointSlice", "resource_version": "456"}],
        "sources": {"default": {
            "cluster_id": "default", "registered": True, "events": 3,
            "last_event": "2026-01-01T00:05:00Z",
            "synced": True, "resume_points": [
                {"namespace": None, "kind": "Service", "resource_version": "120"},
                {"namespace": "shop", "kind": "EndpointSlice", "resource_version": "456"}]}},
        "oldest_serial": S0, "compacted_at": None, "writer": None,
        "projection": "source:default",
        "projections": {"source:default": {
            "name": "projection", "serial": S0, "serial_time": "2026-01-01T00:00:00Z",
            "checkpoint": 2, "lag": 1, "lag_exact": True, "records": 11}},
    }


def test_status_after_compaction_names_the_oldest_serial_left(db: Path, tmp_path: Path
                                                               ) -> None:
    store = Store.open(f"sqlite:///{db}")
    stored(store, tmp_path, T2, True, slice_("3", "10.0.0.9"))
    compact(store, keep_versions=1, clock=lambda: T2.timestamp() + 60)
    report = status(store, CONFIGS[:1])
    s1 = int(T2.timestamp())
    assert (report.serial, report.oldest_serial) == (s1, s1)
    assert report.compacted_at == datetime(2026, 1, 1, 0, 10, 30, tzinfo=UTC)
    assert report.pending == 0
    assert report.to_json()["compacted_at"] == "2026-01-01T00:10:30Z"
    assert report.lines()[-1] == f"oldest serial   {s1} (compacted on 2026-01-01T00:10:30Z)"


def test_status_of_an_empty_database_says_so(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    Store.open(f"sqlite:///{path}").close()
    out = cli("status", db=path)
    assert out.exit_code == 0, out.output
    assert out.stdout.splitlines() == [
        f"database        {path}",
        "serial          none yet (no zone version stored)",
        "records         none",
        "events stored   0",
        "events pending  0",
        "last event      none",
        "resume points   none",
        "sources         default: cluster id default, 0 events, last none, no watch resume "
        "point",
        "oldest serial   none",
    ]



def test_status_names_the_replica_that_writes(db: Path) -> None:
    """With ``serve --watch`` replicas the writer lease says who writes (issue #12)."""
    store = Store.open(f"sqlite:///{db}")
    try:
        lease = store.take_lease("node-a/4242", 3600)
        assert lease is not None
        until = datetime.fromtimestamp(lease.expires_us / 1e6, UTC)
        report = status(store, CONFIGS[:1])
    finally:
        store.close()
    assert report.writer == Writer("node-a/4242", 1, until)
    iso = until.isoformat(timespec="seconds").replace("+00:00", "Z")
    assert report.lines()[-1] == f"writer          node-a/4242 (epoch 1, lease until {iso})"
    assert report.to_json()["writer"] == {"holder": "node-a/4242", "epoch": 1,
                                         "lease_expires": iso}



def test_status_per_source(db: Path, tmp_path: Path) -> None:
    """Each cluster on its own line: events, newest arrival, whether a watch synced."""
    store = Store.open(f"sqlite:///{db}")
    try:
        path = tmp_path / "east.json"
        path.write_text(json.dumps({"kind": "List", "items": [headless("9")]}))
        ingest_files(store, [str(path)], source="east", cluster_id="east.prod", when=T2,
                     project=False)
        store.append_events([], resume=[("west@shop", "Service", "77")])
        report = status(store, CONFIGS[:1])
    finally:
        store.close()
    assert [s.text() for s in report.sources] == [
        "default: cluster id default, 3 events, last 2026-01-01T00:05:00Z, watch synced "
        "(2 resume points)",
        "east: cluster id east.prod, 1 events, last 2026-01-01T00:09:30Z, no watch resume "
        "point",
        "west: cluster id west, 0 events, last none, watch synced (1 resume points) "
        "(not registered)",
    ]
    assert report.to_json()["sources"]["west"]["resume_points"] == [
        {"namespace": "shop", "kind": "Service", "resource_version": "77"}]


def test_status_per_projection(db: Path, tmp_path: Path) -> None:
    """A line per registered projection: serial, records, checkpoint and the events of
    its own sources not folded yet; ``spec`` selects the zone the report is about."""
    from zonegen.projections import parse_target
    from zonegen.runner import adopt_projection

    store = Store.open(f"sqlite:///{db}")
    try:
        path = tmp_path / "east.json"
        path.write_text(json.dumps({"kind": "List", "items": [headless("9")]}))
        ingest_files(store, [str(path)], source="east", when=T2, project=False)
        east = parse_target("source:east")
        adopt_projection(store, east)
        before = status(store, CONFIGS[:1], east)
        ingest_files(store, [str(path)], source="east", when=T2)  # folds every projection
        after = status(store, CONFIGS[:1], east)
        text = after.lines()
    finally:
        store.close()
    assert [p.text() for p in before.projections] == [
        # the fixture leaves one default event unprojected; status never projects
        f"source:default: serial {S0} (2026-01-01T00:00:00Z), 11 records, checkpoint "
        "seq 2, 1 events behind",
        "source:east: no version yet, 0 records, checkpoint seq 0, 1 events behind"]
    assert before.serial is None
    assert after.projections[1].text() == (
        f"source:east: serial {int(T2.timestamp())} (2026-01-01T00:09:30Z), 1 records, "
        "checkpoint seq 4, 0 events behind")
    assert (after.serial, after.projection) == (int(T2.timestamp()), "source:east")
    assert [z.records for z in after.zones] == [4]  # SOA, NS, glue, dns-version
    assert text[text.index(next(t for t in text if t.startswith("projections"))) + 1] \
        .strip() == after.projections[1].text()


def test_status_counts_each_zone_as_export_writes_it_from_the_read_model(
        tmp_path: Path) -> None:
    """Each zone's count is the read model's records as ``export`` selects and writes
    them (CNAME rule, duplicates, glue, invalid records skipped), not a fold of the
    journal: this read model was committed with no record changes at all, so a fold
    would find an empty zone."""
    import io

    from zonegen.export import export_zone
    from zonegen.model import AAAA, CNAME, PTR, SRV, TXT, A, Record
    from zonegen.store.readmodel import ReadModelChange

    records = [
        Record("a.ns.svc", A, ("10.0.0.1",), None),
        Record("a.ns.svc", A, ("10.0.0.1",), 5),  # the same line once written
        Record("a.ns.svc", CNAME, ("b.ns.svc",), None),  # beside other data: skipped
        Record("b.ns.svc", CNAME, ("c.ns.svc",), None),
        Record("b.ns.svc", CNAME, ("a.ns.svc",), None),  # several alone: one kept
        Record("c.ns.svc", A, ("10.0.0.300",), None),  # not an address: skipped
        Record("c.ns.svc", AAAA, ("fd00::1",), 30),
        Record("_pg._tcp.db.ns.svc", SRV, (0, 10, 5432, "a.ns.svc"), None),
        Record("ns.dns", A, ("127.0.0.1",), None),  # the glue itself: written once
        Record("dns-version", TXT, ("1.1.0",), 28800),
        Record("1.0.0.10.in-addr.arpa.", PTR, ("a.ns.svc",), None),
        Record("2.0.0.10.in-addr.arpa.", PTR, ("bad name.ns.svc",), None),  # skipped
    ]
    path = tmp_path / "z.db"
    store = Store.open(f"sqlite:///{path}")
    store.commit_version(("projection", 0, 0), serial=S0, read_model=ReadModelChange(
        added=[(("ns", "svc"), r, True) for r in records], records=len(records)))
    written = {}
    for config in CONFIGS:
        out = io.StringIO()
        written[config.zone] = export_zone(store, config, stream=out).records
        assert written[config.zone] == out.getvalue().count("\n") - 2
    assert written == {"cluster.local.": 8, "10.in-addr.arpa.": 3}
    report = status(store, CONFIGS)
    assert report.zones == (ZoneCount("cluster.local.", 8), ZoneCount("10.in-addr.arpa.", 3))
    store.close()
