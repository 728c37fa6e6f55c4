"""Sources: several clusters in one log (issue #13, part 1).

Every cluster is its own ``tests/kubeapi.py`` server with its own kubeconfig, reached by
the real ``kubernetes`` client. What is checked is what the log holds: each event's
source and origin, the resume points and object heads per source, and the MCS kinds
stored as ``zonegen.mcs`` reads them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.background import in_background
from tests.cli_process import run_cli, start_cli
from tests.helpers import fast, wait_for
from tests.kubeapi import (
    ENDPOINTSLICES,
    SERVICEEXPORTS,
    SERVICEIMPORTS,
    SERVICES,
    FakeKubeAPI,
    endpoint_slice,
    mcs_slice,
    service,
    service_export,
    service_import,
)
from tests.postgres import backend_url, postgres_server, postgres_url  # noqa: F401
from zonegen import mcs
from zonegen.errors import InvalidOption
from zonegen.health import Readiness
from zonegen.ingest import ingest_files
from zonegen.metrics import Metrics
from zonegen.model import ADDED, DELETED, SERVICE, SERVICE_EXPORT, SERVICE_IMPORT, Event
from zonegen.projections import parse_target
from zonegen.runner import adopt_projection, ensure_projected, waiting_sources
from zonegen.sources import check_source_name, resume_key, split_resume_key
from zonegen.store import Store
from zonegen.store.schema import sources as sources_table
from zonegen.watch import SourceWatchers, Watcher, connect
from zonegen.writer import Commit

DEADLINE = 60.0




def rows(store: Store) -> list[tuple[str, str, str, str, str]]:
    """(source, origin, type, kind, namespace/name) of every stored event, in order."""
    return [(e.source, e.origin, e.type, e.kind, f"{e.namespace}/{e.name}")
            for e in store.select_events()]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(f"sqlite:///{tmp_path / 'z.db'}")
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def clusters(tmp_path: Path) -> Iterator[tuple[FakeKubeAPI, FakeKubeAPI, FakeKubeAPI]]:
    """Three clusters: ``a`` without the MCS CRDs, ``b`` serving v1beta1 (and
    v1alpha1), ``c`` serving only v1alpha1."""
    apis = (FakeKubeAPI().start(), FakeKubeAPI(mcs_versions=("v1alpha1", "v1beta1")).start(),
            FakeKubeAPI(mcs_versions=("v1alpha1",)).start())
    try:
        yield apis
    finally:
        for api in apis:
            api.stop()


def kubeconfig(api: FakeKubeAPI, tmp_path: Path, name: str) -> Path:
    return api.write_kubeconfig(tmp_path / f"kubeconfig-{name}", context=f"ctx-{name}")


def one_source(store: Store, api: FakeKubeAPI, tmp_path: Path, name: str,
               **options: Any) -> Watcher:
    cluster = connect(str(kubeconfig(api, tmp_path, name)))
    try:
        watcher = Watcher(store, cluster, fast(source=name, **options))
        watcher.sync_once()
        return watcher
    finally:
        cluster.close()


@contextlib.contextmanager
def watching(store: Store, apis: dict[str, FakeKubeAPI], tmp_path: Path,
             readiness: Readiness | None = None, metrics: Metrics | None = None,
             **options: Any) -> Iterator[SourceWatchers]:
    """Several sources in one process (SourceWatchers), in a thread; stopped on exit."""
    conns = [(connect(str(kubeconfig(api, tmp_path, name))), fast(source=name, **options))
             for name, api in apis.items()]
    watchers = SourceWatchers(store, conns, readiness=readiness or Readiness(),
                              metrics=metrics or Metrics())
    try:
        with in_background(watchers.run, "watchers", DEADLINE):
            yield watchers
    finally:
        for cluster, _ in conns:
            cluster.close()


def add_service(api: FakeKubeAPI, name: str, address: str, namespace: str = "shop") -> None:
    api.add(SERVICES, service(name, namespace, cluster_ip=None))
    api.add(ENDPOINTSLICES, endpoint_slice(name, [address], namespace))


# --------------------------------------------------------------------------- names


def test_source_names_are_rfc1123_labels() -> None:
    assert check_source_name("east-1") == "east-1"
    for bad in ("", "East", "a.b", "a@b", "a:b", "-a", "a-", "x" * 64, "a_b"):
        with pytest.raises(InvalidOption, match="source name"):
            check_source_name(bad)
    assert resume_key("east", None) == "east"
    assert resume_key("east", "shop") == "east@shop"
    assert split_resume_key("east@shop") == ("east", "shop")
    assert split_resume_key("east") == ("east", None)


# --------------------------------------------------------------------------- ingest


def test_ingest_source_keeps_its_objects_apart(store: Store, tmp_path: Path) -> None:
    listing = tmp_path / "list.json"

    def write(*names: str) -> str:
        listing.write_text(json.dumps({"kind": "ServiceList", "items": [
            {**service(n, "shop"), "kind": "Service",
             "metadata": {"name": n, "namespace": "shop", "uid": f"uid-{n}",
                          "resourceVersion": "7"}} for n in names]}))
        return str(listing)

    ingest_files(store, [write("web", "db")], project=False)
    # The same uid and resourceVersion in another cluster is another object, not a
    # duplicate; a snapshot of that cluster deletes nothing of the default source's.
    ingest_files(store, [write("web")], source="east", cluster_id="east.prod",
                 snapshot=True, project=False)
    assert rows(store) == [
        ("default", "ingest", ADDED, SERVICE, "shop/web"),
        ("default", "ingest", ADDED, SERVICE, "shop/db"),
        ("east", "ingest", ADDED, SERVICE, "shop/web"),
    ]
    ingest_files(store, [write()], source="east", snapshot=True, project=False)
    assert rows(store)[3:] == [("east", "ingest", DELETED, SERVICE, "shop/web")]
    assert sorted(store.heads()) == [(SERVICE, "shop", "db"), (SERVICE, "shop", "web")]
    assert not any(h.deleted for h in store.heads().values())
    assert store.heads(source="east")[(SERVICE, "shop", "web")].deleted
    assert [(s.name, s.cluster_id) for s in store.sources()] == [
        ("default", "default"), ("east", "east.prod")]


def test_two_sources_cannot_share_a_cluster_id(store: Store) -> None:
    store.register_source("east", "c1")
    with pytest.raises(InvalidOption, match="cluster id 'c1' is already the cluster id of "
                                            "source east"):
        store.register_source("west", "c1")
    assert [s.name for s in store.sources()] == ["default", "east"]


# --------------------------------------------------------------------------- watch


def test_each_source_has_its_own_events_heads_and_resume_points(
        store: Store, clusters: tuple[FakeKubeAPI, FakeKubeAPI, FakeKubeAPI],
        tmp_path: Path) -> None:
    a, b, _ = clusters
    add_service(a, "web", "10.1.0.1")
    add_service(b, "web", "10.2.0.1")  # the same namespace/name in another cluster
    add_service(b, "api", "10.2.0.2")
    one_source(store, a, tmp_path, "a")
    one_source(store, b, tmp_path, "b")
    assert sorted(rows(store)) == sorted([
        ("a", "watch:ctx-a", ADDED, "Service", "shop/web"),
        ("a", "watch:ctx-a", ADDED, "EndpointSlice", "shop/web-abcde"),
        ("b", "watch:ctx-b", ADDED, "Service", "shop/web"),
        ("b", "watch:ctx-b", ADDED, "EndpointSlice", "shop/web-abcde"),
        ("b", "watch:ctx-b", ADDED, "Service", "shop/api"),
        ("b", "watch:ctx-b", ADDED, "EndpointSlice", "shop/api-abcde"),
    ])
    assert sorted(store.heads(source="a")) == [("EndpointSlice", "shop", "web-abcde"),
                                               ("Service", "shop", "web")]
    assert len(store.heads(source="b")) == 4
    assert store.resume_point("a", "Service") == str(a.rv)
    assert store.resume_point("b", "Service") == str(b.rv)
    assert store.resume_point("default", "Service") is None
    # A relist of b that lacks web deletes b's web only; a's is left alone.
    b.delete(SERVICES, "shop", "web")
    before = len(rows(store))
    one_source(store, b, tmp_path, "b")
    assert rows(store)[before:] == [("b", "watch:ctx-b", DELETED, "Service", "shop/web")]
    assert not store.heads(source="a")[("Service", "shop", "web")].deleted


def test_several_sources_in_one_process_sync_then_watch_and_resume(
        store: Store, clusters: tuple[FakeKubeAPI, FakeKubeAPI, FakeKubeAPI],
        tmp_path: Path) -> None:
    a, b, c = clusters
    add_service(a, "web", "10.1.0.1")
    add_service(b, "web", "10.2.0.1")
    add_service(c, "web", "10.3.0.1")
    apis = {"a": a, "b": b, "c": c}
    with watching(store, apis, tmp_path) as watchers:
        wait_for(lambda: all(w.initial_synced for w in watchers.watchers), "initial syncs",
                 DEADLINE)
        wait_for(lambda: len(b.watches("services")) >= 1, "b watching")
        b.add(SERVICES, service("new", "shop"))
        wait_for(lambda: ("b", "watch:ctx-b", ADDED, "Service", "shop/new") in rows(store),
                 "b's watch event")
        assert {w.source: w.synced for w in watchers.watchers} == {
            "a": {"Service": True, "EndpointSlice": True},
            "b": {"Service": True, "EndpointSlice": True, "ServiceImport": True,
                  "ServiceExport": True},
            "c": {"Service": True, "EndpointSlice": True, "ServiceImport": True,
                  "ServiceExport": True}}
    counts = {s: len([r for r in rows(store) if r[0] == s]) for s in apis}
    assert counts == {"a": 2, "b": 3, "c": 2}
    # While stopped: a change in a and in c. Restarted, each source resumes from its own
    # resume point (no second list of a core kind), and nothing is doubled.
    lists = {n: len(api.lists("services")) for n, api in apis.items()}
    a.modify(SERVICES, "shop", "web", lambda o: o["metadata"]["labels"].update(x="1"))
    c.delete(SERVICES, "shop", "web")
    with watching(store, apis, tmp_path):
        wait_for(lambda: ("a", "watch:ctx-a", "MODIFIED", "Service", "shop/web") in rows(store)
                 and ("c", "watch:ctx-c", DELETED, "Service", "shop/web") in rows(store),
                 "resumed watches")
    assert {n: len(api.lists("services")) for n, api in apis.items()} == lists
    assert len(rows(store)) == 9
    assert {s: store.resume_point(s, "Service") for s in apis} == {
        s: str(api.rv) for s, api in apis.items()}


def test_each_projection_waits_for_its_own_sources_initial_lists(
        tmp_path: Path, clusters: tuple[FakeKubeAPI, FakeKubeAPI, FakeKubeAPI]) -> None:
    """The initial sync gate is per projection: ``source:a`` publishes once a's lists are
    stored while b is still listing; ``source:b`` (and anything folding b) waits."""
    a, b, _ = clusters
    add_service(a, "web", "10.1.0.1")
    add_service(b, "web", "10.2.0.1")
    b.hold(SERVICES)
    store = Store.open(f"sqlite:///{tmp_path / 'gate.db'}")
    for target in ("source:a", "source:b"):
        store.register_projection(parse_target(target))
    readiness, metrics = Readiness(), Metrics()
    synced = metrics.watch_synced_gauge
    try:
        with watching(store, {"a": a, "b": b}, tmp_path, readiness, metrics,
                      project=True) as watchers:
            wait_for(lambda: watchers.watchers[0].initial_synced, "a synced")
            wait_for(lambda: len(b.lists("services")) >= 1, "b listing")
            # b's MCS kinds list on their own, outside its initial round
            wait_for(lambda: watchers.watchers[1].synced.get("ServiceExport")
                     and watchers.watchers[1].synced.get("ServiceImport"), "b's MCS lists")
            wait_for(lambda: store.latest_version("source:a") is not None, "a's version")
            # a's lists are stored, b's are not: b's projection has no version yet;
            # readiness and the synced gauge say which source holds it.
            assert {r[0] for r in rows(store)} == {"a"}
            assert store.latest_version("source:b") is None
            assert waiting_sources(store, parse_target("exports:a,b")) == ("b",)
            assert readiness.reasons() == [
                "watch (source b): initial list of Service not stored",
                "watch (source b): initial list of EndpointSlice not stored"]
            assert synced.labels("a", "Service")._value.get() == 1
            assert synced.labels("b", "Service")._value.get() == 0
            b.release(SERVICES)
            wait_for(lambda: store.latest_version("source:b") is not None, "b's version")
            assert {r[0] for r in rows(store)} == {"a", "b"}
            wait_for(lambda: readiness.ready, "ready")
            assert synced.labels("b", "ServiceImport")._value.get() == 1
            assert metrics.events_stored.labels("b", "Service", ADDED)._value.get() == 1
            assert waiting_sources(store, parse_target("exports:a,b")) == ()
        # Neither projection folded the other's Service.
        for name, address in (("source:a", "10.1.0.1"), ("source:b", "10.2.0.1")):
            with store.current_records(name) as (_, records):
                assert {(r.owner, r.rdata) for r in records if r.rtype == 1} == {
                    ("web.shop.svc", (address,)),
                    (f"{address.replace('.', '-')}.web.shop.svc", (address,))}
        # The default projection folds the source default, of which nothing is stored.
        assert store.latest_version() is None
    finally:
        store.close()


def test_the_gate_reads_the_log_for_sources_other_processes_watch(store: Store,
                                                                  tmp_path: Path) -> None:
    """A source with nothing stored (its ``watch --source`` process has not stored its
    initial list) holds a first version; an event or a resume point (an empty cluster's
    list) releases it; a projection with a version never waits again."""
    spec = parse_target("exports:a,b")
    store.register_source("a")
    store.register_source("b")
    assert waiting_sources(store, spec) == ("a", "b")
    store.append_events([], resume=[("a", "Service", "5")])
    assert waiting_sources(store, spec) == ("b",)
    assert waiting_sources(store, spec, unlisted={"a"}) == ("a", "b")
    listing = tmp_path / "b.json"
    listing.write_text(json.dumps({**service("web", "shop"), "kind": "Service",
                                   "metadata": {"name": "web", "namespace": "shop",
                                                "uid": "u", "resourceVersion": "1"}}))
    ingest_files(store, [str(listing)], source="b", project=False)
    assert waiting_sources(store, spec) == ()
    one = parse_target("source:c")
    assert waiting_sources(store, one) == ("c",)
    ensure_projected(store, spec=one)  # a one-shot command publishes what the log holds
    assert waiting_sources(store, one) == ()


# --------------------------------------------------------------------------- MCS kinds


def test_mcs_kinds_are_listed_and_watched_by_discovery(
        store: Store, clusters: tuple[FakeKubeAPI, FakeKubeAPI, FakeKubeAPI],
        tmp_path: Path) -> None:
    _, hub, old = clusters
    hub.add(SERVICEIMPORTS, service_import("db", "shop", headless=True))
    hub.add(SERVICEIMPORTS, service_import("web", "shop", ips=("10.9.0.1",)))
    hub.add(SERVICEEXPORTS, service_export("db", "shop"))
    hub.add(ENDPOINTSLICES, mcs_slice("db", "east.prod", ["10.1.0.5"], "shop",
                                      hostnames=["db-0"]))
    old.add(SERVICEIMPORTS, service_import("web", "shop", ips=("10.9.0.2",)))
    one_source(store, hub, tmp_path, "hub")
    one_source(store, old, tmp_path, "old")
    events = store.select_events()
    assert sorted((e.source, e.kind, e.name, e.object()["apiVersion"]) for e in events) == [
        ("hub", "EndpointSlice", "db-east-prod", "discovery.k8s.io/v1"),
        ("hub", "ServiceExport", "db", "multicluster.x-k8s.io/v1beta1"),
        ("hub", "ServiceImport", "db", "multicluster.x-k8s.io/v1beta1"),
        ("hub", "ServiceImport", "web", "multicluster.x-k8s.io/v1beta1"),
        ("old", "ServiceImport", "web", "multicluster.x-k8s.io/v1alpha1"),
    ]
    # Preferred version by discovery: v1beta1 where served, else v1alpha1.
    assert {r.path for r in hub.lists("multicluster")} == {
        "/apis/multicluster.x-k8s.io/v1beta1/serviceimports",
        "/apis/multicluster.x-k8s.io/v1beta1/serviceexports"}
    assert {r.path for r in old.lists("multicluster")} == {
        "/apis/multicluster.x-k8s.io/v1alpha1/serviceimports",
        "/apis/multicluster.x-k8s.io/v1alpha1/serviceexports"}
    # What is stored is what zonegen.mcs reads.
    by_name = {(e.source, e.kind, e.name): e for e in events}
    imported = mcs.ServiceImport.from_api(by_name[("hub", SERVICE_IMPORT, "web")].object())
    assert (imported.headless, imported.ips) == (False, ("10.9.0.1",))
    sliced = mcs.McsEndpointSlice.from_api(
        by_name[("hub", "EndpointSlice", "db-east-prod")].object())
    assert (sliced.cluster_id, sliced.import_key) == ("east.prod", ("shop", "db"))
    assert sliced.slice.endpoints[0].hostname == "db-0"
    assert mcs.ServiceExport.from_api(
        by_name[("hub", SERVICE_EXPORT, "db")].object()).key == ("shop", "db")


def test_mcs_watch_events_and_resume(
        store: Store, clusters: tuple[FakeKubeAPI, FakeKubeAPI, FakeKubeAPI],
        tmp_path: Path) -> None:
    _, hub, _ = clusters
    hub.add(SERVICEIMPORTS, service_import("web", "shop", ips=("10.9.0.1",)))
    with watching(store, {"hub": hub}, tmp_path) as watchers:
        wait_for(lambda: watchers.watchers[0].initial_synced, "synced")
        wait_for(lambda: len(hub.watches("serviceimports")) >= 1, "watching imports")
        hub.modify(SERVICEIMPORTS, "shop", "web",
                   lambda o: o["spec"].update(ips=["10.9.0.7"]))
        hub.add(SERVICEEXPORTS, service_export("web", "shop"))
        wait_for(lambda: len(rows(store)) == 3, "watch events")
    # Two streams: each kind's events in order, the kinds interleaved as they arrive.
    assert [r for r in rows(store) if r[3] == SERVICE_IMPORT] == [
        ("hub", "watch:ctx-hub", ADDED, SERVICE_IMPORT, "shop/web"),
        ("hub", "watch:ctx-hub", "MODIFIED", SERVICE_IMPORT, "shop/web")]
    assert [r for r in rows(store) if r[3] == SERVICE_EXPORT] == [
        ("hub", "watch:ctx-hub", ADDED, SERVICE_EXPORT, "shop/web")]
    imported = hub.objects[SERVICEIMPORTS][("shop", "web")]["metadata"]["resourceVersion"]
    assert store.resume_point("hub", SERVICE_IMPORT) == imported
    assert store.resume_point("hub", SERVICE_EXPORT) == str(hub.rv)


def test_mcs_not_installed_is_one_info_line_and_not_watched(
        store: Store, clusters: tuple[FakeKubeAPI, FakeKubeAPI, FakeKubeAPI],
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    a, _, _ = clusters
    partial = FakeKubeAPI(mcs_versions=("v1beta1",), mcs_resources=(SERVICEIMPORTS,)).start()
    try:
        with caplog.at_level(logging.INFO, logger="zonegen"):
            watcher = one_source(store, a, tmp_path, "a")
            only_imports = one_source(store, partial, tmp_path, "p")
    finally:
        partial.stop()
    notes = [r.getMessage() for r in caplog.records if "not served" in r.getMessage()]
    assert notes == [
        f"source a: ServiceImport and ServiceExport not served by the Kubernetes API "
        f"server at {a.url} (multicluster.x-k8s.io CRD not installed); not watched",
        f"source p: ServiceExport not served by the Kubernetes API server at "
        f"{partial.url} (multicluster.x-k8s.io CRD not installed); not watched"]
    assert watcher.kinds == ("Service", "EndpointSlice")
    assert only_imports.kinds == ("Service", "EndpointSlice", "ServiceImport")
    assert [r.path for r in a.discoveries()] == ["/apis/multicluster.x-k8s.io"]


def test_the_cluster_local_projection_ignores_mcs_kinds(store: Store, tmp_path: Path) -> None:
    """ServiceImports and ServiceExports reach the projector as kinds it does not read:
    the cluster-local zone is the same with or without them."""
    objects = tmp_path / "objects.json"
    objects.write_text(json.dumps({"kind": "List", "items": [
        {**service("web", "shop"), "kind": "Service",
         "metadata": {"name": "web", "namespace": "shop", "uid": "u1", "resourceVersion": "1"}},
    ]}))
    ingest_files(store, [str(objects)])
    before = store.records_at(store.latest_version().version_id)  # type: ignore[union-attr]
    imports = tmp_path / "imports.json"
    imports.write_text(json.dumps({"kind": "List", "items": [
        {**service_import("web", "shop", ips=("10.9.0.1",)), "kind": "ServiceImport",
         "apiVersion": "multicluster.x-k8s.io/v1beta1",
         "metadata": {"name": "web", "namespace": "shop", "uid": "u2", "resourceVersion": "2"}},
        {**service_export("web", "shop"), "kind": "ServiceExport",
         "apiVersion": "multicluster.x-k8s.io/v1alpha1",
         "metadata": {"name": "web", "namespace": "shop", "uid": "u3", "resourceVersion": "3"}},
    ]}))
    report = ingest_files(store, [str(imports)])
    assert report.new_events == 2
    assert report.skipped_kinds == {}
    ensure_projected(store)
    latest = store.latest_version()
    assert latest is not None
    assert store.records_at(latest.version_id) == before


# --------------------------------------------------------------------------- command line


def test_cli_watch_several_sources_once(
        tmp_path: Path, clusters: tuple[FakeKubeAPI, FakeKubeAPI, FakeKubeAPI]) -> None:
    a, b, _ = clusters
    add_service(a, "web", "10.1.0.1")
    add_service(b, "web", "10.2.0.1")
    config_a = kubeconfig(a, tmp_path, "a")
    # b's kubeconfig has two contexts; --context picks the one after --source b.
    config_b = tmp_path / "kubeconfig-b"
    doc = json.loads(b.write_kubeconfig(config_b, context="ctx-b").read_text())
    doc["contexts"].append({"name": "ctx-b2", "context": doc["contexts"][0]["context"]})
    doc["current-context"] = "nowhere"
    config_b.write_text(json.dumps(doc))
    db = f"sqlite:///{tmp_path / 'z.db'}"
    done = run_cli(db, "watch", "--once", "--source", "a", "--kubeconfig", str(config_a),
                   "--source", "b", "--kubeconfig", str(config_b), "--context", "ctx-b2",
                   "--cluster-id", "b.prod")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("4 events stored")
    store = Store.open(db)
    try:
        assert sorted({(r[0], r[1]) for r in rows(store)}) == [("a", "watch:ctx-a"),
                                                               ("b", "watch:ctx-b2")]
        assert [(s.name, s.cluster_id) for s in store.sources()] == [
            ("a", "a"), ("b", "b.prod"), ("default", "default")]
        # The default zone folds the source default, of which nothing was listed: the
        # writer makes no version of it (per-source zones: test_projections.py).
        assert store.latest_version() is None
    finally:
        store.close()


@pytest.mark.parametrize(("args", "message"), [
    (["--source", "East"], "source name 'East' is not an RFC 1123 label"),
    (["--kubeconfig", "k", "--source", "a", "--source", "b"],
     "--kubeconfig before the first --source: with several sources, each --kubeconfig, "
     "--context and --cluster-id follows the --source it belongs to"),
    (["--source", "a", "--source", "a"], "--source a given twice"),
    (["--source", "a", "--context", "x", "--context", "y"], "--context given twice for source a"),
    (["--source", "a", "--cluster-id", "A_B"], "is not an RFC 1123 subdomain"),
])
def test_cli_watch_bad_sources_are_usage_errors(tmp_path: Path, args: list[str],
                                                message: str) -> None:
    done = run_cli(f"sqlite:///{tmp_path / 'z.db'}", "watch", "--once", *args)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "z.db").exists()


def test_cli_ingest_source(tmp_path: Path) -> None:
    listing = tmp_path / "svc.json"
    obj = service("web", "shop")
    obj["metadata"].update(uid="u1", resourceVersion="1")
    listing.write_text(json.dumps({**obj, "kind": "Service"}))
    db = f"sqlite:///{tmp_path / 'z.db'}"
    done = run_cli(db, "ingest", "--source", "east", "--cluster-id", "east.prod",
                   "--no-project", str(listing))
    assert done.returncode == 0, done.stderr
    bad = run_cli(db, "ingest", "--source", "a.b", str(listing))
    assert bad.returncode == 2
    assert "source name 'a.b' is not an RFC 1123 label" in bad.stderr
    engine = sa.create_engine(db)
    with engine.connect() as conn:
        assert [tuple(r) for r in conn.execute(sa.text(
            "SELECT source, origin, kind, name FROM events"))] == [
            ("east", "ingest", "Service", "web")]
        assert [tuple(r) for r in conn.execute(sa.select(
            sources_table.c.name, sources_table.c.cluster_id).order_by(
            sources_table.c.name))] == [("default", "default"), ("east", "east.prod")]
    engine.dispose()


@contextlib.contextmanager
def watch_process(db_url: str, config: Path, source: str,
                  log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as err:
        proc = start_cli(db_url, "-v", "watch", "--source", source, "--kubeconfig",
                         str(config), "--no-project", stderr=err)
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(DEADLINE)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(DEADLINE)


def test_one_process_per_source_against_one_database(
        backend_url: str, tmp_path: Path,  # noqa: F811
        clusters: tuple[FakeKubeAPI, FakeKubeAPI, FakeKubeAPI]) -> None:
    a, b, _ = clusters
    add_service(a, "web", "10.1.0.1")
    add_service(b, "web", "10.2.0.1")
    store = Store.open(backend_url)
    try:
        with watch_process(backend_url, kubeconfig(a, tmp_path, "a"), "a",
                           tmp_path / "a.log") as pa, \
                watch_process(backend_url, kubeconfig(b, tmp_path, "b"), "b",
                              tmp_path / "b.log") as pb:
            wait_for(lambda: len(rows(store)) == 4, "both initial lists", DEADLINE)
            wait_for(lambda: a.watches("services") and b.watches("services"), "watches")
            for i in range(5):
                a.add(SERVICES, service(f"a{i}", "shop"))
                b.add(SERVICES, service(f"b{i}", "shop"))
            wait_for(lambda: len(rows(store)) == 14, "both watches' events", DEADLINE)
            for proc in (pa, pb):
                proc.send_signal(signal.SIGTERM)
                assert proc.wait(DEADLINE) == 0
        events: list[Event] = store.select_events()
        assert sorted((e.source, e.name) for e in events if e.kind == SERVICE) == sorted(
            [("a", "web"), ("b", "web")] + [("a", f"a{i}") for i in range(5)]
            + [("b", f"b{i}") for i in range(5)])
        assert [e.seq for e in events] == list(range(1, 15))
        assert store.resume_point("a", "Service") == str(a.rv)
        assert store.resume_point("b", "Service") == str(b.rv)
    finally:
        store.close()


def test_cli_watch_no_mcs_asks_nothing_of_the_group(
        tmp_path: Path, clusters: tuple[FakeKubeAPI, FakeKubeAPI, FakeKubeAPI]) -> None:
    _, hub, _ = clusters
    hub.add(SERVICEIMPORTS, service_import("web", "shop", ips=("10.9.0.1",)))
    done = run_cli(f"sqlite:///{tmp_path / 'z.db'}", "watch", "--once", "--no-mcs",
                   "--kubeconfig", str(kubeconfig(hub, tmp_path, "hub")))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("0 events stored")
    assert hub.discoveries() == []
    assert hub.lists("multicluster") == []


def test_a_410_relist_of_one_source_leaves_the_others_alone(
        store: Store, clusters: tuple[FakeKubeAPI, FakeKubeAPI, FakeKubeAPI],
        tmp_path: Path) -> None:
    """b's watches expire (410 Gone): every stream of b, its MCS kinds included, relists
    as one transaction; a's objects, same names, are never touched."""
    a, b, _ = clusters
    add_service(a, "web", "10.1.0.1")
    add_service(b, "web", "10.2.0.1")
    b.add(SERVICEIMPORTS, service_import("web", "shop", ips=("10.9.0.1",)))
    with watching(store, {"a": a, "b": b}, tmp_path) as watchers:
        wait_for(lambda: all(w.initial_synced for w in watchers.watchers), "synced")
        wait_for(lambda: len(b.watches("serviceimports")) >= 1
                 and len(b.watches("services")) >= 1, "b watching")
        b.stop()
        b.delete(SERVICES, "shop", "web")
        b.delete(SERVICEIMPORTS, "shop", "web")
        b.compact()
        b.start()
        wait_for(lambda: ("b", "watch:ctx-b", DELETED, SERVICE_IMPORT, "shop/web")
                 in rows(store) and ("b", "watch:ctx-b", DELETED, SERVICE, "shop/web")
                 in rows(store), "b's relist")
    assert sorted(r for r in rows(store) if r[2] == DELETED) == [
        ("b", "watch:ctx-b", DELETED, SERVICE, "shop/web"),
        ("b", "watch:ctx-b", DELETED, SERVICE_IMPORT, "shop/web")]
    assert not any(h.deleted for h in store.heads(source="a").values())
    assert store.heads(source="b")[(SERVICE, "shop", "web")].deleted


# --------------------------------------------------------------------------- per-source zones


def _zone_of(db: str, *args: str) -> str:
    done = run_cli(db, "export", *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _headless_zone(zone: str, serial: int, *services: tuple[str, str]) -> str:
    body = "".join(
        f"{name}.shop.svc IN A {ip}\n"
        f"{name}.shop.svc IN SRV 0 100 80 {ip.replace('.', '-')}.{name}.shop.svc.{zone}.\n"
        f"{ip.replace('.', '-')}.{name}.shop.svc IN A {ip}\n"
        f"_http._tcp.{name}.shop.svc IN SRV 0 100 80 "
        f"{ip.replace('.', '-')}.{name}.shop.svc.{zone}.\n"
        for name, ip in sorted(services, key=lambda s: s[0]))
    return (f"$ORIGIN {zone}.\n$TTL 5\n"
            f"@ IN SOA ns.dns.{zone}. hostmaster.{zone}. {serial} 7200 1800 86400 5\n"
            f"@ IN NS ns.dns.{zone}.\nns.dns IN A 127.0.0.1\n"
            'dns-version 28800 IN TXT "1.1.0"\n' + body)


def test_cli_watch_of_two_sources_keeps_each_sources_zone_and_resumes(
        tmp_path: Path, clusters: tuple[FakeKubeAPI, FakeKubeAPI, FakeKubeAPI]) -> None:
    """``watch --source a ... --source b ...`` in one process: each source's zone
    (``export --zone a.k8s.example.org=source:a``, ``--source b``) has its records only
    and its own serials; the watch's writer folds every registered projection, a
    change in b moves only b's serial, and a restart resumes each source."""
    a, b, _ = clusters
    add_service(a, "web", "10.1.0.1")
    add_service(b, "web", "10.2.0.1")
    db = f"sqlite:///{tmp_path / 'z.db'}"
    store = Store.open(db)
    args = ["-v", "watch", "--source", "a", "--kubeconfig", str(kubeconfig(a, tmp_path, "a")),
            "--source", "b", "--kubeconfig", str(kubeconfig(b, tmp_path, "b"))]

    def serial(name: str) -> int | None:
        version = store.latest_version(name)
        return version.serial if version is not None else None

    try:
        with (tmp_path / "watch.log").open("wb") as err:
            proc = start_cli(db, *args, stderr=err)
            try:
                wait_for(lambda: len(rows(store)) == 4, "both initial lists", DEADLINE)
                zone_a = _zone_of(db, "--zone", "a.k8s.example.org=source:a")
                a1 = serial("source:a")
                assert a1 is not None
                assert zone_a == _headless_zone("a.k8s.example.org", a1,
                                                ("web", "10.1.0.1"))
                zone_b = _zone_of(db, "--source", "b")
                b1 = serial("source:b")
                assert b1 is not None
                assert zone_b == _headless_zone("cluster.local", b1, ("web", "10.2.0.1"))
                wait_for(lambda: b.watches("services") and b.watches("endpointslices"),
                         "b watching")
                # The running watch folds the projections export registered.
                add_service(b, "api", "10.2.0.9")
                wait_for(lambda: (serial("source:b") or 0) > b1, "b's new serial", DEADLINE)
                assert serial("source:a") == a1
                b2 = serial("source:b")
                assert b2 is not None
                assert store.max_tracking_seq("source:a") == store.max_tracking_seq(
                    "source:b") == store.max_event_seq()
            finally:
                proc.send_signal(signal.SIGTERM)
                assert proc.wait(DEADLINE) == 0
        # While stopped: a change in a. Restarted, each source resumes from its own
        # resume point (no second list of Services) and only a's serial moves.
        lists = {n: len(api.lists("services")) for n, api in (("a", a), ("b", b))}
        add_service(a, "api", "10.1.0.9")
        with (tmp_path / "watch2.log").open("wb") as err:
            proc = start_cli(db, *args, stderr=err)
            try:
                wait_for(lambda: (serial("source:a") or 0) > a1, "a's new serial", DEADLINE)
            finally:
                proc.send_signal(signal.SIGTERM)
                assert proc.wait(DEADLINE) == 0
        assert {n: len(api.lists("services")) for n, api in (("a", a), ("b", b))} == lists
        assert serial("source:b") == b2
        a2 = serial("source:a")
        assert a2 is not None
        assert _zone_of(db, "--zone", "a.k8s.example.org=source:a") == _headless_zone(
            "a.k8s.example.org", a2, ("web", "10.1.0.1"), ("api", "10.1.0.9"))
        assert _zone_of(db, "--source", "b") == _headless_zone(
            "cluster.local", b2, ("web", "10.2.0.1"), ("api", "10.2.0.9"))
        history = run_cli(db, "history", "--source", "b", "api.shop.svc", "--type", "A")
        assert history.returncode == 0, history.stderr
        assert history.stdout.splitlines()[1].endswith("source=b")
    finally:
        store.close()


def test_the_watch_writer_tells_on_commit_every_projections_versions(
        store: Store, clusters: tuple[FakeKubeAPI, FakeKubeAPI, FakeKubeAPI],
        tmp_path: Path) -> None:
    """``Commit.projected`` carries each projection's new versions; ``Commit.versions``
    stays the default zone's (none here: nothing of the source default is listed)."""
    a, _, _ = clusters
    add_service(a, "web", "10.1.0.1")
    store.register_source("a")
    adopt_projection(store, parse_target("source:a"))
    commits: list[Commit] = []
    cluster = connect(str(kubeconfig(a, tmp_path, "a")))
    try:
        Watcher(store, cluster, fast(source="a", project=True),
                on_commit=commits.append).sync_once()
    finally:
        cluster.close()
    made = [c for c in commits if c.projected]
    assert len(made) == 1
    assert made[0].versions == ()
    version = store.latest_version("source:a")
    assert made[0].projected == (("source:a", (version,)),)
    assert store.latest_version() is None
