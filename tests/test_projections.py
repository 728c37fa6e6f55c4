"""Projection specs (``zonegen.projections``) and the store's versions per projection."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from zonegen.errors import InvalidOption
from zonegen.model import A, Record, RecordChange
from zonegen.projections import (
    CLUSTER_LOCAL,
    CLUSTERSET_EXPORTS,
    CLUSTERSET_IMPORTS,
    DEFAULT,
    ProjectionSpec,
    parse_target,
    parse_zone_option,
)
from zonegen.store import PROJECTION, Store

T0 = datetime(2026, 3, 1, 3, 0, tzinfo=UTC)


def test_targets_parse_to_specs_with_stable_names() -> None:
    assert parse_target("source:a") == ProjectionSpec(CLUSTER_LOCAL, ("a",))
    assert parse_target("source:a").name == "source:a"
    assert parse_target("source:default") == DEFAULT
    assert DEFAULT.name == PROJECTION == "projection"
    assert parse_target("imports:hub") == ProjectionSpec(CLUSTERSET_IMPORTS, ("hub",))
    spec = parse_target("exports: c,a ,b,a")
    assert spec == ProjectionSpec(CLUSTERSET_EXPORTS, ("a", "b", "c"))
    assert spec.name == spec.target == "exports:a,b,c"
    assert spec.default_zone == "clusterset.local"


def test_a_long_exports_list_gets_a_digest_name_within_the_key_columns() -> None:
    names = [f"cluster-{i:02d}-" + "x" * 40 for i in range(5)]
    spec = parse_target("exports:" + ",".join(names))
    assert len(spec.name) <= 64
    assert spec.name.startswith("exports:#")
    assert parse_target("exports:" + ",".join(reversed(names))).name == spec.name


@pytest.mark.parametrize(("text", "message"), [
    ("cluster:a", "is not source:NAME"),
    ("source", "is not source:NAME"),
    ("source:", "names an empty source"),
    ("exports:a,,b", "names an empty source"),
    ("source:a,b", "takes exactly one source"),
    ("imports:a,b", "takes exactly one source"),
    ("source:East", "not an RFC 1123 label"),
    ("source:a.b", "not an RFC 1123 label"),
])
def test_bad_targets_are_one_line_naming_them(text: str, message: str) -> None:
    with pytest.raises(InvalidOption, match=message):
        parse_target(text)


def test_zone_options() -> None:
    assert parse_zone_option("cluster.local") == ("cluster.local", DEFAULT)
    assert parse_zone_option("a.k8s.example.org=source:a") == \
        ("a.k8s.example.org", ProjectionSpec(CLUSTER_LOCAL, ("a",)))
    assert parse_zone_option("=exports:a,b") == \
        ("clusterset.local", ProjectionSpec(CLUSTERSET_EXPORTS, ("a", "b")))


def _rec(address: str) -> Record:
    return Record("web.shop.svc", A, (address,))


def test_versions_serials_journals_and_snapshots_are_per_projection(tmp_path: Path) -> None:
    """Two projections committing interleaved versions: each sees only its own."""
    store = Store.open(f"sqlite:///{tmp_path / 'z.db'}")
    try:
        assert store.register_projection(parse_target("source:east"))
        assert not store.register_projection(parse_target("source:east"))
        assert [s.name for s in store.projections()] == ["projection", "source:east"]
        d1 = store.commit_version((PROJECTION, 0, 1), serial=10, created_at=T0,
                                  changes=[RecordChange(True, _rec("10.0.0.1"), 1)])
        e1 = store.commit_version(("source:east", 0, 2), serial=500, created_at=T0,
                                  changes=[RecordChange(True, _rec("10.9.0.1"), 2)])
        d2 = store.commit_version((PROJECTION, 1, 3), serial=11,
                                  created_at=T0 + timedelta(minutes=1),
                                  changes=[RecordChange(False, _rec("10.0.0.1"), 3),
                                           RecordChange(True, _rec("10.0.0.2"), 3)])
        assert d1 is not None
        assert e1 is not None
        assert d2 is not None
        assert store.latest_version() == d2
        assert store.latest_version("source:east") == e1
        assert [v.serial for v in store.versions()] == [10, 11]
        assert [v.serial for v in store.versions(projection="source:east")] == [500]
        assert store.get_version(500) is None
        assert store.get_version(500, "source:east") == e1
        assert store.version_at(T0 + timedelta(minutes=5), "source:east") == e1
        assert [j.step.added for j in store.journal(d1.version_id)] == [(_rec("10.0.0.2"),)]
        assert store.journal(e1.version_id, projection="source:east") == []
        assert store.records_at(e1.version_id) == {_rec("10.9.0.1")}
        assert store.records_at(d2.version_id) == {_rec("10.0.0.2")}
        # A snapshot of one projection is never the base of another's fold.
        store.save_snapshot(d1.version_id)
        assert store.records_at(e1.version_id) == {_rec("10.9.0.1")}
        assert store.changes_since_snapshot() == 2
        assert store.changes_since_snapshot("source:east") == 1
        assert store.changes_between(d1.version_id, d2.version_id) == [
            (False, _rec("10.0.0.1")), (True, _rec("10.0.0.2"))]
        assert store.changes_between(0, d2.version_id, "source:east") == [
            (True, _rec("10.9.0.1"))]
    finally:
        store.close()


def test_each_cluster_local_projection_folds_only_its_source(tmp_path: Path) -> None:
    """The same Service name in two sources: each source's projection has only its own
    cluster IP, its own serials and its own read model."""
    import json

    from tests.test_readmodel import service
    from zonegen.model import ADDED, SERVICE, Event
    from zonegen.runner import ProjectionRunner, ensure_projected

    store = Store.open(f"sqlite:///{tmp_path / 'z.db'}")
    try:
        events = [Event(0, T0, src, ADDED, SERVICE, "shop", "web", f"u-{src}", "1",
                        json.dumps(service("web", cluster_ip=ip)), "test")
                  for src, ip in (("default", "10.96.0.1"), ("east", "10.96.0.2"))]
        store.append_events(events)
        east = parse_target("source:east")
        made = ProjectionRunner(store, clock=lambda: 2e9, spec=east).catch_up()
        assert [v.serial for v in made] == [2_000_000_000]
        assert store.latest_version() is None
        done = ensure_projected(store, lambda: 1.9e9)
        assert done.version is not None
        assert done.version.serial == 1_900_000_000
        a = Record("web.shop.svc", A, ("10.96.0.1",))
        b = Record("web.shop.svc", A, ("10.96.0.2",))
        with store.current_records() as (_v, records):
            mine = set(records)
        with store.current_records(east.name) as (_v, records):
            theirs = set(records)
        assert a in mine
        assert b not in mine
        assert b in theirs
        assert a not in theirs
        assert ensure_projected(store, spec=east).made == ()
    finally:
        store.close()


# --------------------------------------------------------------------------- per-source zones, CLI

ROOT = Path(__file__).resolve().parent.parent


def _svc(name: str, ip: str, uid: str, rv: str, port: tuple[str, int] = ("http", 80)
         ) -> dict[str, object]:
    return {"kind": "Service", "apiVersion": "v1",
            "metadata": {"name": name, "namespace": "shop", "uid": uid, "resourceVersion": rv},
            "spec": {"type": "ClusterIP", "clusterIP": ip, "clusterIPs": [ip],
                     "ports": [{"name": port[0], "port": port[1], "protocol": "TCP"}]}}


def _listing(path: Path, *items: dict[str, object]) -> str:
    path.write_text(json.dumps({"kind": "List", "items": list(items)}))
    return str(path)


def zg(db: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "cli.py", "--db", db, *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def ok(db: str, *args: str) -> str:
    done = zg(db, *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def soa_serial(zone: str) -> int:
    return int(next(line for line in zone.splitlines() if " SOA " in line).split()[5])


def zone_a(serial: int) -> str:
    return (f"$ORIGIN a.k8s.example.org.\n$TTL 5\n"
            f"@ IN SOA ns.dns.a.k8s.example.org. hostmaster.a.k8s.example.org. {serial} "
            "7200 1800 86400 5\n"
            "@ IN NS ns.dns.a.k8s.example.org.\n"
            "ns.dns IN A 127.0.0.1\n"
            'dns-version 28800 IN TXT "1.1.0"\n'
            "web.shop.svc IN A 10.96.1.10\n"
            "web.shop.svc IN SRV 0 100 80 web.shop.svc.a.k8s.example.org.\n"
            "_http._tcp.web.shop.svc IN SRV 0 100 80 web.shop.svc.a.k8s.example.org.\n")


def zone_b(serial: int, db_ip: str | None) -> str:
    db = "" if db_ip is None else (
        f"db.shop.svc IN A {db_ip}\n"
        "db.shop.svc IN SRV 0 100 5432 db.shop.svc.cluster.local.\n"
        "_pg._tcp.db.shop.svc IN SRV 0 100 5432 db.shop.svc.cluster.local.\n")
    web = "" if db_ip is None else (
        "web.shop.svc IN A 10.96.2.10\n"
        "web.shop.svc IN SRV 0 100 80 web.shop.svc.cluster.local.\n"
        "_http._tcp.web.shop.svc IN SRV 0 100 80 web.shop.svc.cluster.local.\n")
    return (f"$ORIGIN cluster.local.\n$TTL 5\n"
            f"@ IN SOA ns.dns.cluster.local. hostmaster.cluster.local. {serial} "
            "7200 1800 86400 5\n"
            "@ IN NS ns.dns.cluster.local.\n"
            "ns.dns IN A 127.0.0.1\n"
            'dns-version 28800 IN TXT "1.1.0"\n' + db + web)


@pytest.fixture
def two_sources(tmp_path: Path) -> str:
    """A log with sources a (web) and b (web, db), ingested by the CLI."""
    db = f"sqlite:///{tmp_path / 'z.db'}"
    ok(db, "ingest", "--source", "a", "--time", "2026-12-01T10:00:00Z",
       _listing(tmp_path / "a.json", _svc("web", "10.96.1.10", "a-web", "10")))
    ok(db, "ingest", "--source", "b", "--time", "2026-12-01T10:00:00Z",
       _listing(tmp_path / "b.json", _svc("web", "10.96.2.10", "b-web", "20"),
                _svc("db", "10.96.2.20", "b-db", "21", ("pg", 5432))))
    return db


def test_each_source_exports_its_own_zone_with_its_own_serials(two_sources: str,
                                                               tmp_path: Path) -> None:
    db = two_sources
    a1 = ok(db, "export", "--zone", "a.k8s.example.org=source:a")
    assert a1 == zone_a(soa_serial(a1))
    b1 = ok(db, "export", "--source", "b")
    assert b1 == zone_b(soa_serial(b1), "10.96.2.20")
    # The default zone (the source default) holds neither cluster's Services.
    assert "web.shop.svc" not in ok(db, "export")
    # Both projections are registered now: ingest folds b's change into b's zone only.
    out = ok(db, "ingest", "--source", "b", "--time", "2026-12-01T11:00:00Z",
             _listing(tmp_path / "b2.json", _svc("web", "10.96.2.10", "b-web", "20"),
                      _svc("db", "10.96.2.21", "b-db", "22", ("pg", 5432))))
    b2 = ok(db, "export", "--source", "b")
    assert out.strip().endswith(f"serial {soa_serial(b2)}")
    assert soa_serial(b2) == soa_serial(b1) + 1  # the clock (11:00) is behind: serial + 1
    assert b2 == zone_b(soa_serial(b2), "10.96.2.21")
    assert ok(db, "export", "--zone", "a.k8s.example.org=source:a") == a1
    # A past version of one projection, by its own serial.
    assert ok(db, "export", "--source", "b", "--serial", str(soa_serial(b1))) == b1
    # A serial of b's that a never published (both first versions came from the wall
    # clock, so a's may equal b1's within one second; b1 and b2 differ, so one is free).
    foreign = next(s for s in (soa_serial(b1), soa_serial(b2)) if s != soa_serial(a1))
    other = zg(db, "export", "--zone", "a.k8s.example.org=source:a", "--serial",
               str(foreign))
    assert other.returncode == 1
    assert other.stderr.startswith(f"Error: serial {foreign} ")
    # history and why name the source of each cause.
    history = ok(db, "history", "--source", "b", "db.shop.svc", "--type", "A")
    causes = [line.split("  ")[-1].strip() for line in history.splitlines()[1:]]
    assert causes == ["Service shop/db rv=21 ADDED seq=3 source=b",
                      "Service shop/db rv=22 MODIFIED seq=4 source=b",
                      "Service shop/db rv=22 MODIFIED seq=4 source=b"]
    why = ok(db, "why", "--zone", "cluster.local=source:b", "db.shop.svc", "A", "10.96.2.21")
    assert why.splitlines()[:3] == [
        "db.shop.svc.cluster.local. 5 IN A 10.96.2.21",
        f"  added at serial {soa_serial(b2)} (2026-12-01T11:00:00Z); current serial "
        f"{soa_serial(b2)}",
        "  caused by Service shop/db rv=22 MODIFIED seq=4 source=b"]
    assert why.splitlines()[-1].split()[:5] == ["Service", "shop/db", "rv=22", "seq=4",
                                                "MODIFIED"]
    # diff and status per projection
    diff = ok(db, "diff", "--source", "b", str(soa_serial(b1)), str(soa_serial(b2)))
    assert diff.splitlines()[1:] == ["-db.shop.svc.cluster.local. 5 IN A 10.96.2.20",
                                     "+db.shop.svc.cluster.local. 5 IN A 10.96.2.21"]
    status = json.loads(ok(db, "status", "--source", "b", "--json"))
    assert status["serial"] == soa_serial(b2)
    assert status["projection"] == "source:b"
    assert {k: (v["serial"], v["lag"], v["records"])
            for k, v in status["projections"].items()} == {
        "source:default": (status["projections"]["source:default"]["serial"], 0, 1),
        "source:a": (soa_serial(a1), 0, 5), "source:b": (soa_serial(b2), 0, 9)}
    assert sorted(status["sources"]) == ["a", "b", "default"]
    log = ok(db, "log", "--source", "a")
    assert [line.split()[-2:] for line in log.splitlines()] == [
        ["SOURCE", "ORIGIN"], ["a", "ingest"]]


def test_source_remove_drops_only_that_clusters_records(two_sources: str) -> None:
    db = two_sources
    a1 = ok(db, "export", "--zone", "a.k8s.example.org=source:a")
    b1 = ok(db, "export", "--source", "b")
    out = ok(db, "source", "remove", "b")
    b2 = ok(db, "export", "--source", "b")
    assert out == (f"source b removed: 2 objects deleted, 0 resume points dropped; "
                   f"source:b serial {soa_serial(b2)}\n")
    assert soa_serial(b2) > soa_serial(b1)
    assert b2 == zone_b(soa_serial(b2), None)
    assert ok(db, "export", "--zone", "a.k8s.example.org=source:a") == a1
    history = ok(db, "history", "--source", "b", "web.shop.svc", "--type", "A")
    assert history.splitlines()[-1].endswith(
        "removed  A     5    10.96.2.10  Service shop/web rv=20 DELETED seq=5 source=b")
    log = ok(db, "log", "--source", "b", "--json")
    assert [(e["type"], e["name"], e["origin"]) for e in map(json.loads, log.splitlines())
            ][-2:] == [("DELETED", "db", "source-remove"), ("DELETED", "web", "source-remove")]
    # The registration is gone (its cluster id is free); its events stay.
    listed = json.loads(ok(db, "source", "list", "--json"))
    assert (listed["b"]["events"], listed["b"]["registered"]) == (4, False)
    assert ok(db, "source", "list").splitlines()[1] == (
        "b: cluster id b, 4 events, last " + listed["b"]["last_event"]
        + ", no watch resume point (not registered)")
    assert ok(db, "source", "remove", "b").startswith("source b removed: 0 objects deleted")
    refused = zg(db, "source", "remove", "default")
    assert (refused.returncode, refused.stderr) == (
        1, "Error: source default: it holds the single-cluster zone; give --force to "
           "remove it anyway\n")
    unknown = zg(db, "source", "remove", "nope")
    assert (unknown.returncode, unknown.stderr) == (
        1, "Error: source nope: no such source (known: a, b, default)\n")


def test_projection_options_bad_input_is_one_line(two_sources: str, tmp_path: Path) -> None:
    db = two_sources
    for zone, message in (("x=source:", "projection 'source:' names an empty source"),
                          ("=nope:a", "projection 'nope:a' is not source:NAME, imports:NAME "
                                      "or exports:NAME[,NAME...]")):
        done = zg(db, "export", "--zone", zone)
        assert done.returncode == 2
        assert done.stderr.splitlines()[-1] == f"Error: Invalid value for '--zone': {message}"
    both = zg(db, "export", "--zone", "x=source:a", "--source", "a")
    assert both.returncode == 2
    assert both.stderr.splitlines()[-1] == (
        "Error: --source NAME and --zone ZONE=TARGET both pick a projection; give one of "
        "them")
    unknown = zg(db, "export", "--source", "c")
    assert (unknown.returncode, unknown.stderr) == (
        1, f"Error: projection source:c: no such source c in {tmp_path / 'z.db'} "
           "(known: a, b, default)\n")
    ok(db, "export", "--source", "a")  # registers source:a
    read_only = f"sqlite:///file:{tmp_path / 'z.db'}?mode=ro&uri=true"
    assert soa_serial(ok(read_only, "export", "--source", "a")) == soa_serial(
        ok(db, "export", "--source", "a"))
    refused = zg(read_only, "export", "--source", "b")
    assert refused.returncode == 1
    assert refused.stderr.splitlines() == [
        f"Error: projection source:b is not registered in file:{tmp_path / 'z.db'}, "
        "which is "
        "read-only: name it once with write access first (zonegen export --zone "
        "ZONE=source:b)"]


def test_project_folds_and_rebuilds_every_registered_projection(two_sources: str) -> None:
    db = two_sources
    ok(db, "export", "--source", "a")
    ok(db, "export", "--source", "b")
    rebuilt = ok(db, "project", "--rebuild").splitlines()
    assert [line.split(":")[0] + ":" + line.split(":")[1] for line in rebuilt] == [
        "source:default", "source:a", "source:b"]
    assert all(line.endswith("identical to the current projection") for line in rebuilt)
    one = json.loads(ok(db, "project", "--rebuild", "--source", "b", "--json"))
    assert (one["events"], one["records"], one["identical"]) == (2, 9, True)
    assert ok(db, "project", "--projection", "source:a").startswith("source:a: serial ")
