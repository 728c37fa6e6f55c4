"""The clusterset runner through the store: ServiceImports and MCS EndpointSlices of a hub
source, and ServiceExport-ed headless Services of several sources, become
``clusterset.local`` zone versions (exact zone text, serials, causes), loaded by
named-checkzone; fold == rebuild after random change sequences; restart.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.test_clusterset import ep, mcs_slice, service_import
from zonegen import zonefile
from zonegen.clusterset import ClusterObjects, clusterset_from_exports, clusterset_from_imports
from zonegen.clusterset_runner import ClustersetRunner
from zonegen.errors import InvalidInput
from zonegen.ingest import ingest_files
from zonegen.mcs import McsEndpointSlice, ServiceExport, ServiceImport
from zonegen.model import AAAA, SRV, A, EndpointSlice, Record, Service
from zonegen.names import zone_config
from zonegen.projections import parse_target
from zonegen.store import Store

T0 = 1_800_000_000
IMPORTS = parse_target("imports:hub")
EXPORTS = parse_target("exports:a,b,c")
needs_bind = pytest.mark.skipif(shutil.which("named-checkzone") is None,
                                reason="named-checkzone (bind9-utils) is not installed")


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class World:
    """One store on disk, objects ingested per source, zones rendered as ``export``
    would (the read model's records, canonical order)."""

    def __init__(self, tmp_path: Path) -> None:
        self.dir = tmp_path
        self.store = Store.open(f"sqlite:///{tmp_path / 'z.db'}")
        self.clock = Clock()
        self.n = 0

    def ingest(self, source: str, *objs: dict[str, Any], snapshot: bool = False,
               cluster_id: str | None = None) -> None:
        self.n += 1
        path = self.dir / f"in{self.n}.json"
        path.write_text(json.dumps({"kind": "List", "items": list(objs)}))
        ingest_files(self.store, [str(path)], snapshot=snapshot, source=source,
                     project=False, cluster_id=cluster_id)

    def runner(self, spec: Any = IMPORTS) -> ClustersetRunner:
        return ClustersetRunner(self.store, clock=self.clock, spec=spec)

    def zone(self, name: str, zone: str = "clusterset.local") -> str:
        version = self.store.latest_version(name)
        assert version is not None
        warnings: list[str] = []
        with self.store.current_records(name) as (_v, records):
            text = "".join(zonefile.render_sorted(records, zone_config(zone),
                                                  version.serial, warnings))
        assert warnings == []
        return text


def header(serial: int, zone: str = "clusterset.local") -> str:
    return f"""$ORIGIN {zone}.
$TTL 5
@ IN SOA ns.dns.{zone}. hostmaster.{zone}. {serial} 7200 1800 86400 5
@ IN NS ns.dns.{zone}.
ns.dns IN A 127.0.0.1
dns-version 28800 IN TXT "1.0.0"
"""


def checkzone(text: str, tmp_path: Path, zone: str = "clusterset.local") -> None:
    path = tmp_path / f"{zone}.zone"
    path.write_text(text)
    proc = subprocess.run(["named-checkzone", "-i", "full", zone, str(path)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# --------------------------------------------------------------------------- objects


def hub_objects() -> list[dict[str, Any]]:
    v4v6 = service_import("web", ips=("10.42.0.1", "fd00:42::1"),
                          ports=({"name": "http", "port": 80}, {"port": 8080}),
                          version="v1alpha1")
    return [
        v4v6,
        service_import("db", kind="Headless", ports=({"name": "pg", "port": 5432},)),
        service_import("idle", kind="Headless"),
        # east.prod: a dotted cluster id; one endpoint without hostname, one not ready
        mcs_slice("db-east", "db", "east.prod",
                  [ep("10.1.0.1", "db-0"), ep("10.1.0.2"), ep("10.1.0.3", "db-2", ready=False)]),
        mcs_slice("db-west", "db", "west", [ep("10.2.0.1", "db-0")],
                  ports=({"name": "pg", "port": 15432, "protocol": "TCP"},)),
        mcs_slice("db-west6", "db", "west", [ep("fd00::5", "db-1")], family="IPv6"),
        # idle: no ready endpoint anywhere -> NXDOMAIN
        mcs_slice("idle-east", "idle", "east.prod", [ep("10.1.0.9", ready=False)]),
        # a ClusterSetIP import's MCS slices publish no endpoint names (MCS §2.3.4)
        mcs_slice("web-east", "web", "east.prod", [ep("10.1.0.7", "web-0")]),
    ]


HUB_BODY = """db.shop.svc IN A 10.1.0.1
db.shop.svc IN A 10.1.0.2
db.shop.svc IN A 10.2.0.1
db.shop.svc IN AAAA fd00::5
db.shop.svc IN SRV 0 100 15432 db-0.west.db.shop.svc.clusterset.local.
db.shop.svc IN SRV 0 100 5432 10-1-0-2.east.prod.db.shop.svc.clusterset.local.
db.shop.svc IN SRV 0 100 5432 db-0.east.prod.db.shop.svc.clusterset.local.
db.shop.svc IN SRV 0 100 5432 db-1.west.db.shop.svc.clusterset.local.
_pg._tcp.db.shop.svc IN SRV 0 100 15432 db-0.west.db.shop.svc.clusterset.local.
_pg._tcp.db.shop.svc IN SRV 0 100 5432 10-1-0-2.east.prod.db.shop.svc.clusterset.local.
_pg._tcp.db.shop.svc IN SRV 0 100 5432 db-0.east.prod.db.shop.svc.clusterset.local.
_pg._tcp.db.shop.svc IN SRV 0 100 5432 db-1.west.db.shop.svc.clusterset.local.
10-1-0-2.east.prod.db.shop.svc IN A 10.1.0.2
db-0.east.prod.db.shop.svc IN A 10.1.0.1
db-0.west.db.shop.svc IN A 10.2.0.1
db-1.west.db.shop.svc IN AAAA fd00::5
web.shop.svc IN A 10.42.0.1
web.shop.svc IN AAAA fd00:42::1
web.shop.svc IN SRV 0 100 80 web.shop.svc.clusterset.local.
web.shop.svc IN SRV 0 100 8080 web.shop.svc.clusterset.local.
_http._tcp.web.shop.svc IN SRV 0 100 80 web.shop.svc.clusterset.local.
"""


def svc(name: str, cluster_ip: str = "None", rv: str = "1") -> dict[str, Any]:
    return {"kind": "Service",
            "metadata": {"name": name, "namespace": "shop", "uid": f"u-svc-{name}",
                         "resourceVersion": rv},
            "spec": {"clusterIP": cluster_ip, "ports": [{"name": "pg", "port": 5432}]}}


def local_slice(name: str, service: str, endpoints: list[dict[str, Any]],
                rv: str = "1", family: str = "IPv4") -> dict[str, Any]:
    return {"kind": "EndpointSlice", "addressType": family,
            "metadata": {"name": name, "namespace": "shop", "uid": f"u-es-{name}",
                         "resourceVersion": rv,
                         "labels": {"kubernetes.io/service-name": service}},
            "endpoints": endpoints,
            "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}]}


def export(name: str) -> dict[str, Any]:
    return {"apiVersion": "multicluster.x-k8s.io/v1alpha1", "kind": "ServiceExport",
            "metadata": {"name": name, "namespace": "shop", "uid": f"u-se-{name}",
                         "resourceVersion": "1"}}


def member_objects(world: World) -> None:
    world.ingest("a", svc("db"), svc("web", "10.96.0.10"),
                 local_slice("db-a1", "db", [ep("10.1.0.5", "db-0"), ep("10.1.0.6", ready=False)]),
                 export("db"), export("web"), cluster_id="east.prod")
    world.ingest("b", svc("db"), local_slice("db-b1", "db", [ep("10.2.0.5", "db-0")]),
                 local_slice("db-b2", "db", [ep("fd00::5")], family="IPv6"),
                 export("db"), cluster_id="west")
    # c holds db but does not export it: not a member
    world.ingest("c", svc("db"), local_slice("db-c1", "db", [ep("10.3.0.5", "db-0")]))


EXPORTS_BODY = """db.shop.svc IN A 10.1.0.5
db.shop.svc IN A 10.2.0.5
db.shop.svc IN AAAA fd00::5
db.shop.svc IN SRV 0 100 5432 db-0.east.prod.db.shop.svc.{z}.
db.shop.svc IN SRV 0 100 5432 db-0.west.db.shop.svc.{z}.
db.shop.svc IN SRV 0 100 5432 fd00--5.west.db.shop.svc.{z}.
_pg._tcp.db.shop.svc IN SRV 0 100 5432 db-0.east.prod.db.shop.svc.{z}.
_pg._tcp.db.shop.svc IN SRV 0 100 5432 db-0.west.db.shop.svc.{z}.
_pg._tcp.db.shop.svc IN SRV 0 100 5432 fd00--5.west.db.shop.svc.{z}.
db-0.east.prod.db.shop.svc IN A 10.1.0.5
db-0.west.db.shop.svc IN A 10.2.0.5
fd00--5.west.db.shop.svc IN AAAA fd00::5
"""


# --------------------------------------------------------------------------- imports


def test_imports_record_rules_as_zone_text(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.ingest("hub", *hub_objects())
    runner = world.runner()
    made = runner.catch_up()
    assert [v.serial for v in made] == [T0]
    text = world.zone(IMPORTS.name)
    assert text == header(T0) + HUB_BODY
    # nothing at the reserved <clusterid>.<svc>.<ns>.svc names, nothing for "idle"
    owners = {r.owner for r in runner.records()}
    assert not owners & {"east.prod.db.shop.svc", "prod.db.shop.svc", "west.db.shop.svc"}
    assert not any("idle" in o or "web-0" in o for o in owners)
    # the pure core from the same objects gives the same records
    objs = hub_objects()
    assert runner.records() == clusterset_from_imports(
        [ServiceImport.from_api(o) for o in objs if o["kind"] == "ServiceImport"],
        [McsEndpointSlice.from_api(o) for o in objs if o["kind"] == "EndpointSlice"])
    assert runner.catch_up() == []
    if shutil.which("named-checkzone"):
        checkzone(text, tmp_path)


def test_each_record_is_caused_by_its_event(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.ingest("hub", *hub_objects())
    runner = world.runner()
    runner.catch_up()
    seq = {(e.kind, e.name): e.seq for e in world.store.select_events()}
    history = world.store.name_changes(["db-0.west.db.shop.svc", "web.shop.svc"],
                                       projection=IMPORTS.name)
    causes = {(c.record.owner, c.record.rtype, c.cause_seq) for c in history}
    assert ("db-0.west.db.shop.svc", A, seq[("EndpointSlice", "db-west")]) in causes
    assert ("web.shop.svc", A, seq[("ServiceImport", "web")]) in causes


def test_names_over_255_octets_are_skipped_with_a_warning(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    long_id = ".".join(["c" * 60] * 4)  # 243 characters: H.C.db.shop.svc.clusterset.local. > 255
    world = World(tmp_path)
    world.ingest("hub", service_import("db", kind="Headless"),
                 mcs_slice("db-long", "db", long_id, [ep("10.9.0.1", "db-0")]))
    with caplog.at_level(logging.WARNING, logger="zonegen.runner"):
        world.runner().catch_up()
    assert world.zone(IMPORTS.name) == header(T0) + """db.shop.svc IN A 10.9.0.1
"""
    assert any("EndpointSlice shop/db-long" in m and "255" in m and long_id in m
               for m in caplog.messages), caplog.messages


def test_a_cluster_going_away_removes_only_its_endpoints(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.ingest("hub", *hub_objects())
    runner = world.runner()
    first = runner.catch_up()[0]
    # the hub's controller deletes west's slices (its cluster left the clusterset)
    world.clock.now = T0 + 60
    world.ingest("hub", *[o for o in hub_objects() if "west" not in o["metadata"]["name"]],
                 snapshot=True)
    made = runner.catch_up()
    assert [v.serial for v in made] == [T0 + 60]
    step = world.store.journal(first.version_id, projection=IMPORTS.name)[0].step
    assert (step.from_serial, step.to_serial) == (T0, T0 + 60)
    assert step.added == ()
    assert sorted((r.owner, r.rtype, r.rdata) for r in step.removed) == sorted([
        ("db.shop.svc", A, ("10.2.0.1",)),
        ("db.shop.svc", AAAA, ("fd00::5",)),
        ("db.shop.svc", SRV, (0, 100, 15432, "db-0.west.db.shop.svc")),
        ("_pg._tcp.db.shop.svc", SRV, (0, 100, 15432, "db-0.west.db.shop.svc")),
        ("db-0.west.db.shop.svc", A, ("10.2.0.1",)),
        ("db-1.west.db.shop.svc", AAAA, ("fd00::5",)),
        ("db.shop.svc", SRV, (0, 100, 5432, "db-1.west.db.shop.svc")),
        ("_pg._tcp.db.shop.svc", SRV, (0, 100, 5432, "db-1.west.db.shop.svc")),
    ])
    deleted = {e.name: e.seq for e in world.store.select_events() if e.type == "DELETED"}
    history = world.store.name_changes(["db-0.west.db.shop.svc"], projection=IMPORTS.name)
    assert [(c.added, c.cause_seq) for c in history] == [
        (True, next(e.seq for e in world.store.select_events() if e.name == "db-west")),
        (False, deleted["db-west"])]
    assert world.zone(IMPORTS.name) == header(T0 + 60) + "\n".join(
        line for line in HUB_BODY.splitlines()
        if "west" not in line and "10.2.0.1" not in line and "fd00::5" not in line) + "\n"


def test_events_of_other_sources_move_no_serial(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.ingest("hub", *hub_objects())
    runner = world.runner()
    first = runner.catch_up()[0]
    # the same import and slices in another cluster, and a cluster-local object
    world.ingest("other", *hub_objects())
    world.ingest("default", svc("db"))
    world.clock.now = T0 + 60
    assert runner.catch_up() == []
    assert world.store.latest_version(IMPORTS.name) == first
    assert world.store.max_tracking_seq(IMPORTS.name) == world.store.max_event_seq()
    assert world.zone(IMPORTS.name) == header(T0) + HUB_BODY


def test_dns_invisible_changes_move_no_serial(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.ingest("hub", *hub_objects())
    runner = world.runner()
    first = runner.catch_up()[0]
    changed = hub_objects()
    for o in changed:
        o["metadata"]["resourceVersion"] = "2"
        o["metadata"]["annotations"] = {"x": "y"}
    world.ingest("hub", *changed)
    assert runner.catch_up() == []
    assert world.store.latest_version(IMPORTS.name) == first


def west_slice(address: str, rv: str) -> dict[str, Any]:
    obj = mcs_slice("db-west", "db", "west", [ep(address, "db-0")],
                    ports=({"name": "pg", "port": 15432, "protocol": "TCP"},))
    obj["metadata"]["resourceVersion"] = rv
    return obj


def test_a_restarted_runner_continues(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.ingest("hub", *hub_objects()[:3])
    old = world.runner()
    old.catch_up()
    world.ingest("hub", *hub_objects()[3:])
    world.clock.now = T0 + 60
    new = world.runner()
    assert [v.serial for v in new.catch_up()] == [T0 + 60]
    assert new.full_loads == 1
    assert world.zone(IMPORTS.name) == header(T0 + 60) + HUB_BODY
    # the old runner's state is stale (another runner committed): it reloads, finds
    # nothing pending and makes no version
    world.ingest("hub", west_slice("10.2.0.2", "2"))
    world.clock.now = T0 + 120
    assert [v.serial for v in old.catch_up()] == [T0 + 120]
    assert old.full_loads == 2
    assert new.catch_up() == []
    assert "db-0.west.db.shop.svc IN A 10.2.0.2\n" in world.zone(IMPORTS.name)
    assert new.rebuild().identical
    # a kept runner folds on its state without reloading
    world.ingest("hub", west_slice("10.2.0.3", "3"))
    assert len(old.catch_up()) == 1
    assert old.full_loads == 2


def test_only_clusterset_specs() -> None:
    with pytest.raises(InvalidInput, match="source:a: this runner folds clusterset"):
        ClustersetRunner(Store.open("sqlite://"), spec=parse_target("source:a"))


# --------------------------------------------------------------------------- exports


@pytest.mark.parametrize("zone", ["clusterset.local", "clusterset.example.org"])
def test_exports_record_rules_as_zone_text(tmp_path: Path, zone: str,
                                           caplog: pytest.LogCaptureFixture) -> None:
    world = World(tmp_path)
    member_objects(world)
    with caplog.at_level(logging.WARNING, logger="zonegen.runner"):
        made = world.runner(EXPORTS).catch_up()
    assert [v.serial for v in made] == [T0]
    text = world.zone(EXPORTS.name, zone)
    assert text == header(T0, zone) + EXPORTS_BODY.format(z=zone)
    assert ("Service shop/web: exported from cluster east.prod: a ClusterIP Service needs "
            "an MCS controller for its ClusterSetIP; not in the clusterset zone"
            ) in caplog.messages
    if shutil.which("named-checkzone"):
        checkzone(text, tmp_path, zone)


def test_exports_a_member_going_away_and_a_new_member(tmp_path: Path) -> None:
    world = World(tmp_path)
    member_objects(world)
    runner = world.runner(EXPORTS)
    first = runner.catch_up()[0]
    world.clock.now = T0 + 60
    # cluster b's objects all deleted but one (an empty snapshot deletes nothing: safety)
    world.ingest("b", svc("other"), snapshot=True)
    world.ingest("c", export("db"))  # c exports db now
    made = runner.catch_up()
    assert [v.serial for v in made] == [T0 + 60]
    step = world.store.journal(first.version_id, projection=EXPORTS.name)[0].step
    assert {r.owner for r in step.removed} == {
        "db.shop.svc", "_pg._tcp.db.shop.svc", "db-0.west.db.shop.svc",
        "fd00--5.west.db.shop.svc"}
    assert all(any(w in str(r) for w in ("west", "10.2.0.5", "fd00::5")) for r in step.removed)
    assert len(step.removed) == 8
    assert {r.owner for r in step.added} == {"db.shop.svc", "_pg._tcp.db.shop.svc",
                                             "db-0.c.db.shop.svc"}
    assert runner.rebuild().identical


def test_exports_cluster_id_change_republishes(tmp_path: Path,
                                               caplog: pytest.LogCaptureFixture) -> None:
    world = World(tmp_path)
    member_objects(world)
    world.runner(EXPORTS).catch_up()
    world.store.register_source("b", "west.eu")
    world.ingest("c", svc("other"))  # any event; the id change itself is no event
    world.clock.now = T0 + 60
    runner = world.runner(EXPORTS)
    with caplog.at_level(logging.WARNING, logger="zonegen.runner"):
        assert [v.serial for v in runner.catch_up()] == [T0 + 60]
    assert [m for m in caplog.messages if "differ from the stored zone" in m] == [
        "projection exports:a,b,c: 1 services differ from the stored zone (a source's "
        "cluster id changed?); republished"]
    assert "db-0.west.eu.db.shop.svc IN A 10.2.0.5\n" in world.zone(EXPORTS.name)
    assert "db-0.west.db.shop.svc" not in world.zone(EXPORTS.name)
    assert runner.rebuild().identical
    # the ids are stored with the rows: a restarted runner compares nothing more
    caplog.clear()
    world.ingest("c", svc("more"))
    with caplog.at_level(logging.WARNING, logger="zonegen.runner"):
        assert world.runner(EXPORTS).catch_up() == []
    assert not [m for m in caplog.messages if "differ" in m]


def test_exports_shared_cluster_ids_are_refused(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.ingest("a", svc("db"), cluster_id="b")
    runner = world.runner(parse_target("exports:a,b"))
    with pytest.raises(InvalidInput, match="sources a and b share cluster id 'b'"):
        runner.catch_up()


# --------------------------------------------------------------------------- properties


SOURCES = ("a", "b")


@st.composite
def histories(draw: st.DrawFn) -> list[tuple[str, list[dict[str, Any]], bool]]:
    """Steps (source, objects, catch up after?) of objects in namespace shop; an object
    absent from a step is kept (the step is not a snapshot), ``None`` in a slot deletes."""
    steps: list[tuple[str, list[dict[str, Any]], bool]] = []
    for i in range(draw(st.integers(1, 6))):
        source = draw(st.sampled_from(SOURCES))
        objs: list[dict[str, Any]] = []
        for name in draw(st.lists(st.sampled_from(["db", "web"]), max_size=2, unique=True)):
            kind = draw(st.sampled_from(["Service", "EndpointSlice", "ServiceExport"]))
            rv = str(i + 2)
            if kind == "Service":
                objs.append(svc(name, draw(st.sampled_from(["None", "10.96.0.1"])), rv))
            elif kind == "ServiceExport":
                objs.append({**export(name), "metadata": {
                    **export(name)["metadata"], "resourceVersion": rv}})
            else:
                eps = [ep(f"10.0.{j}.{draw(st.integers(1, 3))}",
                          draw(st.sampled_from([None, "p"])),
                          draw(st.sampled_from([None, False])))
                       for j in range(draw(st.integers(0, 2)))]
                objs.append(local_slice(f"{name}-{source}", draw(st.sampled_from(
                    ["db", "web"])), eps, rv))
        steps.append((source, objs, draw(st.booleans())))
    return steps


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(histories(), st.sets(st.sampled_from(["db", "web"])))
def test_exports_fold_equals_rebuild(tmp_path_factory: pytest.TempPathFactory,
                                     steps: list[tuple[str, list[dict[str, Any]], bool]],
                                     deleted: set[str]) -> None:
    world = World(tmp_path_factory.mktemp("h"))
    runner = world.runner(parse_target("exports:a,b"))
    final: dict[str, dict[tuple[str, str], dict[str, Any]]] = {s: {} for s in SOURCES}
    for source, objs, catch in steps:
        world.ingest(source, *objs)
        for o in objs:
            final[source][(o["kind"], o["metadata"]["name"])] = o
        if catch:
            world.clock.now += 1
            runner.catch_up()
    # a final snapshot of a deletes its objects named in ``deleted``
    kept = [o for (k, n), o in final["a"].items() if o["metadata"].get("name") not in deleted
            and not any(n.startswith(d) for d in deleted)]
    world.ingest("a", *kept, snapshot=True)
    final["a"] = {(o["kind"], o["metadata"]["name"]): o for o in kept}
    world.clock.now += 1
    runner.catch_up()
    clusters = [ClusterObjects(
        source,
        tuple(Service.from_api(o) for o in objs.values() if o["kind"] == "Service"),
        tuple(EndpointSlice.from_api(o) for o in objs.values() if o["kind"] == "EndpointSlice"),
        tuple(ServiceExport.from_api(o) for o in objs.values() if o["kind"] == "ServiceExport"))
        for source, objs in final.items()]
    expected = clusterset_from_exports(clusters)
    assert runner.records() == expected
    report = runner.rebuild()
    assert report.identical
    # the IXFR journal folded from the first version gives the same zone
    version = world.store.latest_version(runner.name)
    assert version is not None
    assert world.store.records_at(version.version_id) == set(expected)
    # a fresh runner (restart) agrees and has nothing to do
    assert world.runner(parse_target("exports:a,b")).catch_up() == []


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(["ServiceImport", "EndpointSlice"]),
                          st.sampled_from(["db", "web"]), st.integers(0, 3),
                          st.booleans()), max_size=8))
def test_imports_fold_equals_rebuild(tmp_path_factory: pytest.TempPathFactory,
                                     changes: list[tuple[str, str, int, bool]]) -> None:
    world = World(tmp_path_factory.mktemp("h"))
    runner = world.runner()
    final: dict[tuple[str, str], dict[str, Any]] = {}
    for i, (kind, name, variant, catch) in enumerate(changes):
        if kind == "ServiceImport":
            obj = service_import(name, ["Headless", "ClusterSetIP"][variant % 2],
                                 ips=("10.42.0.1",), ports=({"name": "http", "port": 80},))
        else:
            obj = mcs_slice(f"s{variant % 2}", name, ["east", "west.eu"][variant // 2],
                            [ep(f"10.0.{variant}.{i}", None if i % 2 else "p")])
        obj["metadata"]["resourceVersion"] = str(i + 2)
        world.ingest("hub", obj)
        final[(kind, obj["metadata"]["name"])] = obj
        if catch:
            world.clock.now += 1
            runner.catch_up()
    world.clock.now += 1
    runner.catch_up()
    expected = clusterset_from_imports(
        [ServiceImport.from_api(o) for (k, _), o in final.items() if k == "ServiceImport"],
        [McsEndpointSlice.from_api(o) for (k, _), o in final.items() if k == "EndpointSlice"])
    assert runner.records() == expected
    assert runner.rebuild().identical
    version = world.store.latest_version(runner.name)
    assert version is not None
    assert world.store.records_at(version.version_id) == set(expected)


def test_record_values_are_plain(tmp_path: Path) -> None:
    """The records read back from the store equal the projector's (SRV rdata types)."""
    world = World(tmp_path)
    world.ingest("hub", *hub_objects())
    runner = world.runner()
    runner.catch_up()
    assert Record("web.shop.svc", SRV, (0, 100, 80, "web.shop.svc")) in runner.records()
