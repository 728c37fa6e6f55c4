"""zonegen.watch against a loopback fake of the API server's list/watch protocol.

The real ``kubernetes`` client is pointed at ``tests/kubeapi.py`` through a kubeconfig
written in ``tmp_path``, so config loading, auth headers, urllib3 and chunked decoding are
all exercised. Nothing waits on a wall-clock threshold: every wait polls a condition until a
generous deadline. Servers, watcher threads and subprocesses are stopped in ``finally``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.background import in_background
from tests.cli_process import cli_logging_to, run_cli
from tests.helpers import fast, wait_for
from tests.kubeapi import (
    ENDPOINTS,
    ENDPOINTSLICES,
    SERVICES,
    FakeKubeAPI,
    endpoint_slice,
    endpoints,
    service,
)
from zonegen import watch as watch_module
from zonegen.errors import WatchError
from zonegen.ingest import ingest_files
from zonegen.model import ADDED, DELETED, MODIFIED, PTR, SERVICE, SRV, TXT, A, Event, Record
from zonegen.store import Store
from zonegen.watch import (
    Backoff,
    Commit,
    Watcher,
    WatchOptions,
    connect,
    iter_lines,
)

pytest_plugins = ["tests.postgres"]  # backend_url: SQLite and PostgreSQL

ROOT = Path(__file__).resolve().parent.parent
DEADLINE = 30.0


# --------------------------------------------------------------------------- helpers




def logged(store: Store) -> list[Event]:
    return store.select_events()


def triples(events: list[Event], kind: str | None = None) -> list[tuple[str, str, str]]:
    """(type, namespace/name, resourceVersion) of stored events, in log order."""
    return [(e.type, f"{e.namespace}/{e.name}", e.resource_version) for e in events
            if kind is None or e.kind == kind]


def server_triples(api: FakeKubeAPI, resource: str) -> list[tuple[str, str, str]]:
    return [(t, n, rv) for t, n, _uid, rv in api.events(resource)]


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'zonegen.db'}"


def _opened(url: str) -> Iterator[Store]:
    """The store at ``url`` for one test, closed after it."""
    s = Store.open(url)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    yield from _opened(db_url)


@pytest.fixture
def any_store(backend_url: str) -> Iterator[Store]:
    """A store on SQLite, then on PostgreSQL (key order and paging must agree)."""
    yield from _opened(backend_url)


@pytest.fixture
def zlog(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Capture the "zonegen" logger even if the CLI turned its propagation off."""
    logger = logging.getLogger("zonegen")
    old_level, old_propagate = logger.level, logger.propagate
    logger.addHandler(caplog.handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield caplog
    finally:
        logger.removeHandler(caplog.handler)
        logger.setLevel(old_level)
        logger.propagate = old_propagate


@contextlib.contextmanager
def watching(store: Store, kubeconfig: Path, options: WatchOptions | None = None,
             on_commit: Callable[[Commit], None] | None = None) -> Iterator[Watcher]:
    """Run a Watcher in a thread; stop it (committing) and re-raise its failure on exit."""
    cluster = connect(str(kubeconfig))
    watcher = Watcher(store, cluster, options or fast(), on_commit=on_commit)
    try:
        with in_background(watcher.run, "watcher", DEADLINE):
            yield watcher
    finally:
        cluster.close()


def sync_once(store: Store, kubeconfig: Path, options: WatchOptions | None = None) -> Watcher:
    cluster = connect(str(kubeconfig))
    try:
        watcher = Watcher(store, cluster, options or fast())
        watcher.sync_once()
        return watcher
    finally:
        cluster.close()


def add_ready(api: FakeKubeAPI, name: str, addresses: list[str],
              namespace: str = "default") -> None:
    api.add(SERVICES, service(name, namespace, cluster_ip=None))
    api.add(ENDPOINTSLICES, endpoint_slice(name, addresses, namespace))


def change_while_down(kube: FakeKubeAPI) -> None:
    """What changes while zonegen is down, after ``add_ready`` of a and b: b goes away,
    c arrives, a's slice changes to 10.0.0.11; then compaction, so the resume point is
    Gone (9 events stored in all after the relist)."""
    kube.delete(SERVICES, "default", "b")
    kube.delete(ENDPOINTSLICES, "default", "b-abcde")
    add_ready(kube, "c", ["10.0.0.3"])
    kube.modify(ENDPOINTSLICES, "default", "a-abcde",
                lambda o: o["endpoints"][0].update(addresses=["10.0.0.11"]))
    kube.compact()


# --------------------------------------------------------------------------- pure parts


@given(st.lists(st.binary(min_size=1, max_size=40).filter(lambda b: b"\n" not in b),
                max_size=20),
       st.lists(st.integers(min_value=1, max_value=17), min_size=1, max_size=10))
def test_iter_lines_is_independent_of_chunk_boundaries(lines: list[bytes],
                                                       cuts: list[int]) -> None:
    body = b"".join(line + b"\n" for line in lines)
    chunks, pos, i = [], 0, 0
    while pos < len(body):
        size = cuts[i % len(cuts)]
        chunks.append(body[pos:pos + size])
        pos += size
        i += 1
    expected = [line for line in lines if line.strip()]
    assert list(iter_lines(iter(chunks))) == expected


def test_iter_lines_keeps_a_final_line_without_newline() -> None:
    assert list(iter_lines(iter([b'{"a":', b"1}\n{", b'"b":2}']))) == [b'{"a":1}', b'{"b":2}']


def test_backoff_is_capped_and_jittered() -> None:
    b = Backoff(0.5, 4.0)
    delays = [b.next() for _ in range(12)]
    assert all(0.25 <= d <= 4.0 for d in delays)
    assert max(delays[6:]) <= 4.0
    assert min(delays[6:]) >= 2.0
    b.reset()
    assert b.next() <= 0.5


# --------------------------------------------------------------------------- listing


def test_initial_sync_stores_objects_without_managed_fields(
        kube: FakeKubeAPI, kubeconfig: Path, store: Store) -> None:
    for i in range(5):
        add_ready(kube, f"svc{i}", [f"10.0.0.{i + 1}"])
    sync_once(store, kubeconfig, fast(page_size=2))

    events = logged(store)
    assert sorted(triples(events)) == sorted(
        server_triples(kube, SERVICES) + server_triples(kube, ENDPOINTSLICES))
    assert {e.type for e in events} == {ADDED}
    assert {(e.source, e.origin) for e in events} == {("default", "watch:fake")}
    for e in events:
        obj = e.object()
        assert "managedFields" not in obj["metadata"]
        assert obj["kind"] == e.kind
        assert e.received_at.tzinfo is not None
    # paged with limit/continue, every request authenticated with the kubeconfig's token
    lists = kube.lists()
    assert any(r.query.get("continue") for r in lists)
    assert all(r.query.get("limit") == "2" for r in lists)
    assert all(r.authorization == "Bearer zonegen-test-token" for r in kube.requests)
    assert store.resume_point("default", "Service") == str(kube.rv)
    assert store.resume_point("default", "EndpointSlice") == str(kube.rv)


def test_relist_records_deletions_recreations_and_changes(
        kube: FakeKubeAPI, kubeconfig: Path, store: Store) -> None:
    add_ready(kube, "keep", ["10.0.0.1"])
    add_ready(kube, "gone", ["10.0.0.2"])
    add_ready(kube, "changed", ["10.0.0.3"])
    add_ready(kube, "reborn", ["10.0.0.4"])
    sync_once(store, kubeconfig)
    before = {(e.kind, e.name): e for e in logged(store)}

    kube.delete(SERVICES, "default", "gone")
    kube.modify(ENDPOINTSLICES, "default", "changed-abcde",
                lambda o: o["endpoints"][0].update(addresses=["10.0.0.33"]))
    kube.delete(SERVICES, "default", "reborn")
    kube.add(SERVICES, service("reborn", cluster_ip=None))
    watcher = sync_once(store, kubeconfig)
    assert watcher.report.stored == 4

    new = triples(logged(store))[len(before):]
    gone = before[("Service", "gone")]
    reborn = before[("Service", "reborn")]
    assert ("MODIFIED", "default/changed-abcde",
            kube.objects[ENDPOINTSLICES][("default", "changed-abcde")]["metadata"][
                "resourceVersion"]) in new
    assert ("DELETED", "default/gone", gone.resource_version) in new
    assert ("DELETED", "default/reborn", reborn.resource_version) in new
    assert new.index(("DELETED", "default/reborn", reborn.resource_version)) < new.index(
        ("ADDED", "default/reborn",
         kube.objects[SERVICES][("default", "reborn")]["metadata"]["resourceVersion"]))
    deleted = next(e for e in logged(store) if e.type == DELETED and e.name == "gone")
    assert deleted.uid == gone.uid
    assert deleted.object_json == gone.object_json  # the last stored object
    # a third sync with nothing changed stores nothing
    assert sync_once(store, kubeconfig).report.stored == 0


def test_once_unreachable_server_is_a_one_line_error(kube: FakeKubeAPI, kubeconfig: Path,
                                                     store: Store) -> None:
    kube.stop()
    with pytest.raises(WatchError, match=rf"127\.0\.0\.1:{kube.port}.*connection refused"):
        sync_once(store, kubeconfig)


def test_missing_configuration_is_a_watch_error(tmp_path: Path) -> None:
    with pytest.raises(WatchError, match="Kubernetes configuration"):
        connect(str(tmp_path / "nope"))


def test_malformed_kubeconfig_is_a_one_line_watch_error(tmp_path: Path) -> None:
    bad = tmp_path / "kubeconfig"
    bad.write_text("clusters: [unclosed\n")
    with pytest.raises(WatchError, match=r"kubeconfig line 2: malformed YAML") as info:
        connect(str(bad))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(("text", "message"), [
    ("- a\n- b\n", r"kubeconfig: not a kubeconfig \(a YAML list, not a mapping\)"),
    ("hello\n", r"kubeconfig: not a kubeconfig \(a YAML scalar, not a mapping\)"),
    ("clusters: 5\n", r"kubeconfig: clusters is a number, not a list"),
    ("users: [3]\n", r"kubeconfig: users\[0\] is a number, not a mapping"),
], ids=["list", "scalar", "clusters-5", "users-item"])
def test_kubeconfig_of_the_wrong_shape_is_one_line(tmp_path: Path, text: str,
                                                   message: str) -> None:
    """Each was a TypeError traceback from the client's kubeconfig merge."""
    bad = tmp_path / "kubeconfig"
    bad.write_text(text)
    with pytest.raises(WatchError, match=message) as info:
        connect(str(bad))
    assert "\n" not in str(info.value)


def test_kubeconfig_list_skips_missing_files_as_kubectl_does(
        kubeconfig: Path, tmp_path: Path, kube: FakeKubeAPI,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", f"{tmp_path / 'missing'}{os.pathsep}{kubeconfig}")
    cluster = connect()
    try:
        assert (cluster.host, cluster.context) == (kube.url, "fake")
    finally:
        cluster.close()


def test_missing_kubeconfig_says_it_does_not_exist(tmp_path: Path) -> None:
    """Was "Invalid kube-config file. No configuration found."."""
    with pytest.raises(WatchError, match=r"nope: does not exist$"):
        connect(str(tmp_path / "nope"))


# --------------------------------------------------------------------------- watching


def test_live_add_modify_delete_reach_store_and_zone(
        kube: FakeKubeAPI, kubeconfig: Path, store: Store) -> None:
    add_ready(kube, "db", ["10.0.0.1"])
    commits: list[Commit] = []
    with watching(store, kubeconfig, fast(project=True), on_commit=commits.append):
        wait_for(lambda: any(c.versions for c in commits), "first zone version")
        first = [v for c in commits for v in c.versions][-1]

        kube.add(SERVICES, service("web", cluster_ip="10.96.0.20"))
        kube.modify(ENDPOINTSLICES, "default", "db-abcde",
                    lambda o: o["endpoints"].append(
                        {"addresses": ["10.0.0.2"], "conditions": {"ready": True}}))
        kube.delete(SERVICES, "default", "db")
        expected = server_triples(kube, SERVICES) + server_triples(kube, ENDPOINTSLICES)
        wait_for(lambda: sorted(triples(logged(store))) == sorted(expected), "live events")
        # The tracking checkpoint moves even when an event changes no record (a slice
        # update can arrive after its Service's deletion, from the other stream).
        wait_for(lambda: store.max_tracking_seq() == store.max_event_seq(),
                 "projection of the live events")
        last = [v for c in commits for v in c.versions][-1]
        assert store.latest_version() == last

    assert last.serial != first.serial
    records = store.records_at(last.version_id)
    owners = {r.owner for r in records}
    assert "web.default.svc" in owners
    assert not any(o == "db.default.svc" for o in owners)  # the Service was deleted
    before = {r.owner for r in store.records_at(first.version_id)}
    assert "db.default.svc" in before


def test_idle_writer_without_projection_waits_instead_of_polling(
        kube: FakeKubeAPI, kubeconfig: Path, store: Store) -> None:
    """With ``project=False`` a committed batch left the writer "dirty" for good: it then
    polled the queue with a zero timeout forever, a CPU at 100 % while idle."""
    add_ready(kube, "db", ["10.0.0.1"])
    with watching(store, kubeconfig, fast(project=False)) as watcher:
        wait_for(lambda: len(logged(store)) == 2, "initial list")
        before = watcher.writer.wakeups
        time.sleep(0.5)
        idle_polls = watcher.writer.wakeups - before
    # An idle writer waits up to a second per get; a spinning one polls ~100k times.
    assert idle_polls < 50


def test_bookmark_advances_resume_point_without_events(
        kube: FakeKubeAPI, kubeconfig: Path, store: Store) -> None:
    add_ready(kube, "db", ["10.0.0.1"])
    with watching(store, kubeconfig):
        wait_for(lambda: len(logged(store)) == 2, "initial list")
        wait_for(lambda: kube.watches("services"), "a Service watch")
        rv = kube.bookmark(SERVICES)
        wait_for(lambda: store.resume_point("default", "Service") == str(rv), "bookmark")
    assert len(logged(store)) == 2


def test_restart_resumes_with_no_missed_and_no_doubled_event(
        kube: FakeKubeAPI, kubeconfig: Path, store: Store) -> None:
    add_ready(kube, "a", ["10.0.0.1"])
    with watching(store, kubeconfig):
        kube.add(SERVICES, service("b"))
        wait_for(lambda: len(logged(store)) == 3, "first run's events")
    resume = store.resume_point("default", "Service")
    # while zonegen is down
    kube.add(SERVICES, service("c"))
    kube.modify(SERVICES, "default", "a", lambda o: o["metadata"]["labels"].update(x="y"))
    kube.delete(SERVICES, "default", "b")
    lists_before = len(kube.lists())
    watches_before = len(kube.watches("services"))
    with watching(store, kubeconfig):
        kube.add(SERVICES, service("d"))
        wait_for(lambda: len(logged(store)) == 7, "second run's events")

    assert triples(logged(store), "Service") == server_triples(kube, SERVICES)
    assert triples(logged(store), "EndpointSlice") == server_triples(kube, ENDPOINTSLICES)
    # it watched from the stored resume point rather than relisting
    assert kube.watches("services")[watches_before].query["resourceVersion"] == resume
    assert len(kube.lists()) == lists_before


@pytest.mark.parametrize("as_http", [False, True], ids=["error-event", "http-410"])
def test_gone_during_downtime_relists_and_records_deletions(
        kube: FakeKubeAPI, kubeconfig: Path, store: Store, as_http: bool,
        zlog: pytest.LogCaptureFixture) -> None:
    kube.gone_as_http = as_http
    add_ready(kube, "a", ["10.0.0.1"])
    add_ready(kube, "b", ["10.0.0.2"])
    with watching(store, kubeconfig):
        wait_for(lambda: len(logged(store)) == 4, "first run")
    b_svc = next(e for e in logged(store) if e.name == "b" and e.kind == "Service")
    change_while_down(kube)
    with watching(store, kubeconfig):
        wait_for(lambda: len(logged(store)) == 9, "relist differences")
        kube.add(SERVICES, service("d"))  # and the watch goes on after the relist
        wait_for(lambda: len(logged(store)) == 10, "event after relist")

    new = {(t, n) for t, n, _ in triples(logged(store)[4:])}
    assert new == {("DELETED", "default/b"), ("DELETED", "default/b-abcde"),
                   ("ADDED", "default/c"), ("ADDED", "default/c-abcde"),
                   ("MODIFIED", "default/a-abcde"), ("ADDED", "default/d")}
    deleted = next(e for e in logged(store) if e.type == DELETED and e.key == b_svc.key)
    assert (deleted.uid, deleted.resource_version) == (b_svc.uid, b_svc.resource_version)
    assert "relisting" in zlog.text


def test_server_down_at_start_retries_with_backoff(
        kube: FakeKubeAPI, kubeconfig: Path, store: Store,
        zlog: pytest.LogCaptureFixture) -> None:
    add_ready(kube, "db", ["10.0.0.1"])
    kube.stop()
    with watching(store, kubeconfig) as watcher:
        wait_for(lambda: watcher.report.reconnects >= 4, "retries")
        kube.start()
        wait_for(lambda: len(logged(store)) == 2, "sync once the server is up")
    refused = [r.getMessage() for r in zlog.records if "connection refused" in r.getMessage()]
    assert refused
    assert all(kube.url in m for m in refused)
    assert all(len(m.splitlines()) == 1 for m in refused)
    # Never spinning: per stream, the delays grow to the cap (0.3 s) and stay within it.
    for kind in ("Service", "EndpointSlice"):
        delays = [float(m.rsplit("reconnecting in ", 1)[1].split()[0])
                  for m in refused if m.startswith(kind)]
        assert len(delays) >= 2
        assert all(d <= 0.3 for d in delays)
        assert all(d >= 0.15 for d in delays[3:])


def test_watch_timeouts_reconnect_quietly_without_loss(
        kube: FakeKubeAPI, kubeconfig: Path, store: Store,
        zlog: pytest.LogCaptureFixture) -> None:
    with watching(store, kubeconfig, fast(timeout_seconds=1)):
        for i in range(3):
            n = len(kube.watches("services"))
            wait_for(lambda n=n: len(kube.watches("services")) > n, "a new watch")
            kube.add(SERVICES, service(f"s{i}"))
        wait_for(lambda: len(logged(store)) == 3, "events across watch timeouts")
    assert triples(logged(store)) == server_triples(kube, SERVICES)
    assert not [r for r in zlog.records if r.levelno >= logging.WARNING]


def test_server_down_mid_watch_and_dropped_connections_lose_nothing(
        kube: FakeKubeAPI, kubeconfig: Path, store: Store) -> None:
    with watching(store, kubeconfig) as watcher:
        wait_for(lambda: len(kube.watches()) >= 2, "watches open")
        for i in range(30):
            kube.add(SERVICES, service(f"s{i}"))
            if i % 10 == 3:
                kube.drop_watches()
        kube.stop()
        for i in range(30, 40):
            kube.add(SERVICES, service(f"s{i}"))
        wait_for(lambda: watcher.report.reconnects >= 3, "reconnect attempts while down")
        kube.start()
        for i in range(40, 45):
            kube.add(SERVICES, service(f"s{i}"))
        wait_for(lambda: len(logged(store)) == 45, "every event")
    assert triples(logged(store)) == server_triples(kube, SERVICES)


def test_malformed_events_are_skipped_with_a_warning(
        kube: FakeKubeAPI, kubeconfig: Path, store: Store,
        zlog: pytest.LogCaptureFixture) -> None:
    bad_list_item = service("listed-bad")
    kube.add(SERVICES, bad_list_item)
    kube.objects[SERVICES][("default", "listed-bad")]["spec"]["ports"] = "not-a-list"
    with watching(store, kubeconfig) as watcher:
        wait_for(lambda: kube.watches("services"), "a Service watch")
        kube.raw_event(SERVICES, "ADDED", {"metadata": {"name": "no-uid",
                                                        "namespace": "shop"}})
        kube.raw_event(SERVICES, "MODIFIED", {"kind": "Service"})
        kube.add(SERVICES, service("good"))
        wait_for(lambda: any(e.name == "good" for e in logged(store)), "the good event")
        assert watcher.report.skipped == 3
    names = {e.name for e in logged(store)}
    assert names == {"good"}
    text = zlog.text
    assert "Service default/listed-bad" in text
    assert "Service shop/no-uid" in text
    # the resume point moved past the bad events
    assert store.resume_point("default", "Service") == str(kube.rv)


def test_legacy_endpoints_and_namespaces(kube: FakeKubeAPI, kubeconfig: Path,
                                         store: Store) -> None:
    for ns in ("shop", "other"):
        kube.add(SERVICES, service("db", ns))
        kube.add(ENDPOINTS, endpoints("db", ["10.0.0.1"], ns))
        kube.add(ENDPOINTSLICES, endpoint_slice("db", ["10.0.0.1"], ns))
    with watching(store, kubeconfig, fast(legacy_endpoints=True, namespaces=("shop",))):
        wait_for(lambda: len(logged(store)) == 2, "initial list")
        kube.add(ENDPOINTS, endpoints("web", ["10.0.0.2"], "shop"))
        kube.add(ENDPOINTS, endpoints("web", ["10.0.0.2"], "other"))
        wait_for(lambda: len(logged(store)) == 3, "namespaced watch")
    assert {(e.kind, e.namespace) for e in logged(store)} == {("Service", "shop"),
                                                              ("Endpoints", "shop")}
    paths = {r.path for r in kube.lists() + kube.watches()}
    assert paths == {"/api/v1/namespaces/shop/services", "/api/v1/namespaces/shop/endpoints"}
    assert {r.path for r in kube.discoveries()} == {"/apis/multicluster.x-k8s.io"}  # 404
    assert store.resume_point("default@shop", "Endpoints") is not None


# --------------------------------------------------------------------------- initial sync


DB_RECORDS = {
    Record("db.default.svc", A, ("10.0.0.1",)),
    Record("10-0-0-1.db.default.svc", A, ("10.0.0.1",)),
    Record("db.default.svc", SRV, (0, 100, 80, "10-0-0-1.db.default.svc")),
    Record("_http._tcp.db.default.svc", SRV, (0, 100, 80, "10-0-0-1.db.default.svc")),
    Record("1.0.0.10.in-addr.arpa.", PTR, ("10-0-0-1.db.default.svc",)),
}


def published(store: Store) -> list[set[Record]]:
    """The records of every stored zone version (the version TXT aside)."""
    return [{r for r in store.records_at(v.version_id) if r.rtype != TXT}
            for v in store.versions()]


def test_once_stores_every_kind_as_one_version(kube: FakeKubeAPI, kubeconfig: Path,
                                               store: Store) -> None:
    """The first version held the Services without their endpoints: each kind was
    committed (and projected) on its own."""
    add_ready(kube, "db", ["10.0.0.1"])
    watcher = sync_once(store, kubeconfig, fast(project=True, batch_size=1))
    assert published(store) == [DB_RECORDS]
    assert watcher.report.commits == 1
    assert watcher.synced == {"Service": True, "EndpointSlice": True}


def test_no_version_until_every_initial_list_is_stored(
        kube: FakeKubeAPI, kubeconfig: Path, store: Store) -> None:
    """A held EndpointSlice list: nothing stored, nothing projected, not synced; then
    one transaction and one version with everything."""
    add_ready(kube, "db", ["10.0.0.1"])
    kube.hold(ENDPOINTSLICES)
    commits: list[Commit] = []
    with watching(store, kubeconfig, fast(project=True, batch_size=1),
                  on_commit=commits.append) as watcher:
        wait_for(lambda: kube.lists("endpointslices"), "the slice list requested")
        wait_for(lambda: [s.listed for s in watcher.status()] == [True, False],
                 "the Service list received, the slice list held")
        watcher.writer.barrier()  # whatever was queued is committed now
        assert logged(store) == []
        assert store.latest_version() is None
        assert watcher.synced == {"Service": False, "EndpointSlice": False}
        assert not kube.watches()  # nobody watches before the initial sync is stored
        kube.release(ENDPOINTSLICES)
        wait_for(lambda: all(watcher.synced.values()), "initial sync")
        wait_for(lambda: store.latest_version() is not None, "the first version")
    assert published(store) == [DB_RECORDS]
    assert [c.stored for c in commits if c.stored] == [2]
    assert {r for c in commits for r in c.resume} == {
        ("default", "Service", str(kube.rv)), ("default", "EndpointSlice", str(kube.rv))}


def test_empty_cluster_initial_sync_makes_the_first_version(
        kube: FakeKubeAPI, kubeconfig: Path, store: Store) -> None:
    """An empty cluster is a complete answer: the zone gets its first (empty) version."""
    with watching(store, kubeconfig, fast(project=True)) as watcher:
        wait_for(lambda: all(watcher.synced.values()), "initial sync")
        wait_for(lambda: store.latest_version() is not None, "the first version")
    assert published(store) == [set()]


def test_relist_after_gone_is_one_transaction(kube: FakeKubeAPI, kubeconfig: Path,
                                              store: Store) -> None:
    """Each list was queued event by event (one commit per event at batch_size=1)."""
    add_ready(kube, "a", ["10.0.0.1"])
    add_ready(kube, "b", ["10.0.0.2"])
    sync_once(store, kubeconfig)
    change_while_down(kube)
    commits: list[Commit] = []
    with watching(store, kubeconfig, fast(batch_size=1), on_commit=commits.append):
        wait_for(lambda: len(logged(store)) == 9, "relist differences")
    # every stream relists, and all of it is one transaction: Services (b deleted, c
    # added) and slices (b deleted, c added, a modified)
    assert [c.stored for c in commits if c.stored] == [5]


# --------------------------------------------------------------------------- paged lists


def ready_records(name: str, namespace: str, ip: str) -> set[Record]:
    """The zone records of a headless Service ``add_ready`` made with one ready pod
    (as DB_RECORDS, for any name, namespace and address)."""
    svc = f"{name}.{namespace}.svc"
    pod = f"{ip.replace('.', '-')}.{svc}"
    reverse = ".".join(reversed(ip.split("."))) + ".in-addr.arpa."
    return {Record(svc, A, (ip,)), Record(pod, A, (ip,)), Record(svc, SRV, (0, 100, 80, pod)),
            Record(f"_http._tcp.{svc}", SRV, (0, 100, 80, pod)), Record(reverse, PTR, (pod,))}


def listed_pages(api: FakeKubeAPI, resource: str) -> list[tuple[str | None, str | None, int]]:
    """(limit, continue token or None, HTTP status) of each list request of
    ``resource``, in order."""
    return [(r.query.get("limit"), r.query.get("continue"), r.status)
            for r in api.lists(f"/{resource}")]


def stored_facts(store: Store) -> list[tuple[str, str, str, str, str, str, str]]:
    return [(e.type, e.kind, e.namespace, e.name, e.uid, e.resource_version, e.object_json)
            for e in logged(store)]


SPREAD = [("s0", "a"), ("s1", "a"), ("s2", "b"), ("s3", "b"), ("s4", "b"), ("s5", "c"),
          ("s6", "default")]
"""Seven ready Services over four namespaces: pages of 2 cut across namespaces."""


def test_a_paged_list_stores_exactly_what_one_page_stores(
        kube: FakeKubeAPI, kubeconfig: Path, tmp_path: Path) -> None:
    for i, (name, ns) in enumerate(SPREAD):
        add_ready(kube, name, [f"10.0.1.{i + 1}"], namespace=ns)
    paged = Store.open(f"sqlite:///{tmp_path / 'paged.db'}")
    whole = Store.open(f"sqlite:///{tmp_path / 'whole.db'}")
    try:
        sync_once(paged, kubeconfig, fast(page_size=2, project=True))
        pages = {r: listed_pages(kube, r) for r in (SERVICES, ENDPOINTSLICES)}
        kube.requests.clear()
        sync_once(whole, kubeconfig, fast(page_size=500, project=True))
        # the server saw limit/continue: 4 pages of at most 2, each token used once
        for resource in (SERVICES, ENDPOINTSLICES):
            tokens = [c for _, c, _ in pages[resource]]
            assert [(limit, c is None, status) for limit, c, status in pages[resource]] == [
                ("2", True, 200), ("2", False, 200), ("2", False, 200), ("2", False, 200)]
            assert len(set(tokens[1:])) == 3
            assert listed_pages(kube, resource) == [("500", None, 200)]
        # the same events, byte for byte, in the same order: Services, then slices,
        # each in the list's (namespace, name) order
        assert stored_facts(paged) == stored_facts(whole)
        assert triples(logged(paged)) == [
            ("ADDED", f"{ns}/{name}{suffix}",
             kube.objects[resource][(ns, name + suffix)]["metadata"]["resourceVersion"])
            for resource, suffix in ((SERVICES, ""), (ENDPOINTSLICES, "-abcde"))
            for name, ns in sorted(SPREAD, key=lambda k: (k[1], k[0]))]
        expected = set().union(*(ready_records(name, ns, f"10.0.1.{i + 1}")
                                 for i, (name, ns) in enumerate(SPREAD)))
        assert published(paged) == published(whole) == [expected]
        for store in (paged, whole):
            assert store.resume_point("default", "Service") == str(kube.rv)
            assert store.resume_point("default", "EndpointSlice") == str(kube.rv)
    finally:
        paged.close()
        whole.close()


def test_an_expired_continue_token_lists_again_and_the_gate_holds_until_the_last_page(
        kube: FakeKubeAPI, kubeconfig: Path, store: Store,
        zlog: pytest.LogCaptureFixture) -> None:
    """The slice list is caught after its first page: nothing is stored or published
    and nobody watches; then its continue token expires (410): the slices are listed
    again from the first page, and everything lands as one commit and one version."""
    for i in range(5):
        add_ready(kube, f"s{i}", [f"10.0.2.{i + 1}"])
    kube.hold_pages(ENDPOINTSLICES)
    commits: list[Commit] = []
    with watching(store, kubeconfig, fast(project=True, page_size=2),
                  on_commit=commits.append) as watcher:
        wait_for(lambda: [c for _, c, _ in listed_pages(kube, ENDPOINTSLICES) if c],
                 "the second slice page asked for")
        wait_for(lambda: [s.listed for s in watcher.status()] == [True, False],
                 "the Service list received, the slice list between pages")
        watcher.writer.barrier()
        assert logged(store) == []
        assert store.latest_version() is None
        assert watcher.synced == {"Service": False, "EndpointSlice": False}
        assert not kube.watches()
        assert kube.expire_continues() == 1
        kube.release(ENDPOINTSLICES)
        wait_for(lambda: all(watcher.synced.values()), "initial sync")
        wait_for(lambda: store.latest_version() is not None, "the first version")
        wait_for(lambda: len(kube.watches()) == 2, "both kinds watched")
    assert [(c is None, status) for _, c, status in listed_pages(kube, ENDPOINTSLICES)] == [
        (True, 200), (False, 410), (True, 200), (False, 200), (False, 200)]
    assert [(c is None, status) for _, c, status in listed_pages(kube, SERVICES)] == [
        (True, 200), (False, 200), (False, 200)]
    assert triples(logged(store)) == [
        ("ADDED", f"default/s{i}{suffix}",
         kube.objects[resource][("default", f"s{i}{suffix}")]["metadata"]["resourceVersion"])
        for resource, suffix in ((SERVICES, ""), (ENDPOINTSLICES, "-abcde")) for i in range(5)]
    assert [c.stored for c in commits if c.stored] == [10]
    assert published(store) == [set().union(*(ready_records(f"s{i}", "default",
                                                            f"10.0.2.{i + 1}")
                                              for i in range(5)))]
    assert "EndpointSlice (all namespaces): HTTP 410: The provided continue parameter " \
           "is too old" in zlog.text
    assert "listing again from the first page" in zlog.text


def test_once_lists_again_after_an_expired_token_then_fails_in_one_line(
        kube: FakeKubeAPI, kubeconfig: Path, store: Store) -> None:
    """A server whose continue tokens always expire: the first page, a 410, four times
    over (three new starts), then one line naming the server and nothing stored."""
    for i in range(3):
        add_ready(kube, f"s{i}", [f"10.0.3.{i + 1}"])
    kube.continues_expire = True
    with pytest.raises(WatchError) as info:
        sync_once(store, kubeconfig, fast(page_size=2))
    assert str(info.value) == (
        f"cannot list services from the Kubernetes API server at {kube.url}: HTTP 410: "
        "The provided continue parameter is too old to display a consistent list result. "
        "You can start a new list without the continue parameter.")
    assert [(c is None, status) for _, c, status in listed_pages(kube, SERVICES)] == [
        (True, 200), (False, 410)] * 4
    assert logged(store) == []
    assert store.resume_point("default", "Service") is None
    # and a server that keeps its tokens again: one complete paged list
    kube.continues_expire = False
    sync_once(store, kubeconfig, fast(page_size=2))
    assert len(logged(store)) == 6


def test_relist_finds_every_deletion_across_pages_of_list_and_heads(
        kube: FakeKubeAPI, kubeconfig: Path, any_store: Store,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """After 410 Gone, objects deleted in several namespaces are found although the
    list comes in pages of 2 and the log's live heads are read 2 at a time: every
    DELETED event in key order, with the changes, as one commit and one version."""
    store = any_store
    monkeypatch.setattr(watch_module, "HEADS_PER_READ", 2)
    for i, (name, ns) in enumerate(SPREAD):
        add_ready(kube, name, [f"10.0.1.{i + 1}"], namespace=ns)
    sync_once(store, kubeconfig, fast(page_size=2, project=True))
    before = {(e.kind, e.namespace, e.name): e for e in logged(store)}
    for name, ns in (("s0", "a"), ("s3", "b"), ("s4", "b"), ("s6", "default")):
        kube.delete(SERVICES, ns, name)
        kube.delete(ENDPOINTSLICES, ns, f"{name}-abcde")
    kube.modify(ENDPOINTSLICES, "c", "s5-abcde",
                lambda o: o["endpoints"][0].update(addresses=["10.0.1.66"]))
    kube.compact()
    commits: list[Commit] = []
    with watching(store, kubeconfig, fast(page_size=2, project=True),
                  on_commit=commits.append):
        wait_for(lambda: len(logged(store)) == 14 + 9, "the relist's changes")
        wait_for(lambda: len(store.versions()) == 2, "its version")

    def deleted(kind: str, ns: str, name: str) -> tuple[str, str, str]:
        head = before[(kind, ns, name)]
        assert head.type == ADDED
        return ("DELETED", f"{ns}/{name}", head.resource_version)

    assert triples(logged(store)[14:]) == [
        deleted("Service", "a", "s0"), deleted("Service", "b", "s3"),
        deleted("Service", "b", "s4"), deleted("Service", "default", "s6"),
        ("MODIFIED", "c/s5-abcde",
         kube.objects[ENDPOINTSLICES][("c", "s5-abcde")]["metadata"]["resourceVersion"]),
        deleted("EndpointSlice", "a", "s0-abcde"), deleted("EndpointSlice", "b", "s3-abcde"),
        deleted("EndpointSlice", "b", "s4-abcde"),
        deleted("EndpointSlice", "default", "s6-abcde")]
    for e in logged(store)[14:]:
        if e.type == DELETED:  # repeats the last stored object
            assert e.object_json == before[e.key].object_json
    assert [c.stored for c in commits if c.stored] == [9]
    assert published(store)[-1] == ready_records("s1", "a", "10.0.1.2") | ready_records(
        "s2", "b", "10.0.1.3") | ready_records("s5", "c", "10.0.1.66")


def test_live_heads_are_read_page_by_page_in_key_order(
        kube: FakeKubeAPI, kubeconfig: Path, any_store: Store) -> None:
    """What the vanished check walks: live heads only, one kind, optionally one
    namespace, in (namespace, name) order, resumed after the last of a page."""
    store = any_store
    for i, (name, ns) in enumerate(SPREAD):
        add_ready(kube, name, [f"10.0.1.{i + 1}"], namespace=ns)
    sync_once(store, kubeconfig)
    kube.delete(SERVICES, "b", "s3")
    sync_once(store, kubeconfig)

    def walk(namespace: str | None) -> list[list[tuple[str, str]]]:
        pages, after = [], None
        while True:
            page = store.live_heads(SERVICE, namespace, "default", after, limit=2)
            pages.append([(ns, name) for ns, name, *_ in page])
            if len(page) < 2:
                return pages
            after = (page[-1][0], page[-1][1])

    assert walk(None) == [[("a", "s0"), ("a", "s1")], [("b", "s2"), ("b", "s4")],
                          [("c", "s5"), ("default", "s6")], []]
    assert walk("b") == [[("b", "s2"), ("b", "s4")], []]
    heads = store.heads([SERVICE], source="default")
    assert store.live_heads(SERVICE, "a", "default") == [
        (ns, name, h.uid, h.resource_version, h.last_seq)
        for (_, ns, name), h in sorted(heads.items()) if ns == "a"]
    assert store.live_heads(SERVICE, None, "other") == []


def test_once_stalled_list_fails_in_one_line_storing_nothing(
        kube: FakeKubeAPI, kubeconfig: Path, store: Store) -> None:
    """A server that accepts and never answers: was a silent 2-minute wait."""
    add_ready(kube, "db", ["10.0.0.1"])
    kube.hold(ENDPOINTSLICES)
    try:
        with pytest.raises(WatchError) as info:
            sync_once(store, kubeconfig, fast(request_timeout=0.5))
    finally:
        kube.release(ENDPOINTSLICES)
    assert str(info.value) == (
        f"cannot list endpointslices from the Kubernetes API server at {kube.url}: "
        "no answer within 0.5 s")
    assert logged(store) == []
    assert store.resume_point("default", "Service") is None


def test_stalled_list_is_retried_with_a_one_line_warning(
        kube: FakeKubeAPI, kubeconfig: Path, store: Store,
        zlog: pytest.LogCaptureFixture) -> None:
    add_ready(kube, "db", ["10.0.0.1"])
    kube.hold(SERVICES)
    with watching(store, kubeconfig, fast(request_timeout=0.3)) as watcher:
        wait_for(lambda: len(kube.lists("services")) >= 2, "a retried list")
        assert logged(store) == []
        kube.release(SERVICES)
        wait_for(lambda: all(watcher.synced.values()), "initial sync")
    stalls = [r.getMessage() for r in zlog.records if "no answer" in r.getMessage()]
    assert stalls
    assert all(m.startswith(f"Service (all namespaces): Kubernetes API server {kube.url}: "
                            "no answer within 0.3 s; reconnecting in ") for m in stalls)
    assert len(logged(store)) == 2


def test_once_refused_list_fails_at_once_storing_nothing(
        kube: FakeKubeAPI, kubeconfig: Path, store: Store) -> None:
    """RBAC without endpointslices: the Services used to be stored before the 403."""
    add_ready(kube, "db", ["10.0.0.1"])
    kube.forbid(ENDPOINTSLICES, "list")
    with pytest.raises(WatchError, match=(
            rf"^the Kubernetes API server at {kube.url} refused to list endpointslices: "
            r"HTTP 403: endpointslices\.discovery\.k8s\.io is forbidden")):
        sync_once(store, kubeconfig)
    assert logged(store) == []
    assert len(kube.lists("endpointslices")) == 1  # no retry


def test_refusal_is_an_error_on_each_backoff_and_in_the_status(
        kube: FakeKubeAPI, kubeconfig: Path, store: Store,
        zlog: pytest.LogCaptureFixture) -> None:
    add_ready(kube, "db", ["10.0.0.1"])
    kube.forbid(ENDPOINTSLICES, "watch")
    with watching(store, kubeconfig) as watcher:
        wait_for(lambda: len([r for r in zlog.records if r.levelno == logging.ERROR]) >= 2,
                 "errors on two backoffs")
        status = {s.kind: s for s in watcher.status()}
        assert status["EndpointSlice"].refused
        assert status["EndpointSlice"].error is not None
        assert "refused to watch endpointslices" in status["EndpointSlice"].error
        assert status["EndpointSlice"].synced  # the list was allowed and is stored
        assert (status["Service"].refused, status["Service"].error) == (False, None)
        kube.forbidden.clear()
        wait_for(lambda: kube.watches("endpointslices") and not any(
            s.error for s in watcher.status()), "recovery")
    errors = [r.getMessage() for r in zlog.records if r.levelno == logging.ERROR]
    assert all("refused to watch endpointslices" in m and kube.url in m for m in errors)
    assert all(len(m.splitlines()) == 1 for m in errors)


# --------------------------------------------------------------------------- one encoding


def test_the_same_object_is_stored_byte_identically_however_it_arrived(
        kube: FakeKubeAPI, kubeconfig: Path, tmp_path: Path) -> None:
    """ingest stored ASCII escapes and the input's key order, watch UTF-8 and the API's
    key order (plus kind/apiVersion appended to list items)."""
    obj = service("caf\u00e9-db")
    obj["metadata"]["annotations"] = {"note": "caf\u00e9 \u2615"}
    served = kube.add(SERVICES, obj)
    # what `kubectl get services -o json` prints: sorted keys, indented, in a List
    printed = tmp_path / "kubectl.json"
    printed.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": [served]},
                                  sort_keys=True, indent=4, ensure_ascii=False))
    stored: dict[str, str] = {}
    for how in ("ingest", "list", "watch"):
        s = Store.open(f"sqlite:///{tmp_path / how}.db")
        try:
            if how == "ingest":
                ingest_files(s, [str(printed)], project=False)
            elif how == "list":
                sync_once(s, kubeconfig)
            else:
                kube.delete(SERVICES, "default", "caf\u00e9-db")
                kube.compact()
                with watching(s, kubeconfig) as watcher:
                    wait_for(lambda w=watcher: all(w.synced.values()), "synced")
                    again = kube.add(SERVICES, obj)
                    assert again["metadata"]["uid"] != served["metadata"]["uid"]
                    wait_for(lambda s=s: logged(s), "the watch event")
                    served = again
            [event] = [e for e in logged(s) if e.kind == "Service"]
            stored[how] = event.object_json
            if how != "watch":
                assert event.uid == served["metadata"]["uid"]
        finally:
            s.close()
    normalise = {k: v.replace(json.loads(v)["metadata"]["uid"], "UID").replace(
        json.loads(v)["metadata"]["resourceVersion"], "RV") for k, v in stored.items()}
    assert normalise["ingest"] == normalise["list"] == normalise["watch"]
    assert stored["ingest"] == stored["list"]


# --------------------------------------------------------------------------- the command


def test_cli_once_then_export(kube: FakeKubeAPI, kubeconfig: Path, db_url: str) -> None:
    add_ready(kube, "db", ["10.0.0.1", "10.0.0.2"])
    done = run_cli(db_url, "watch", "--kubeconfig", str(kubeconfig), "--once")
    assert done.returncode == 0, done.stderr
    assert "2 events stored" in done.stdout
    zone = run_cli(db_url, "export")
    assert zone.returncode == 0, zone.stderr
    assert "db.default.svc" in zone.stdout
    assert "10.0.0.2" in zone.stdout


def test_cli_once_unreachable_exits_nonzero_naming_the_server(
        kube: FakeKubeAPI, kubeconfig: Path, db_url: str) -> None:
    kube.stop()
    done = run_cli(db_url, "watch", "--kubeconfig", str(kubeconfig), "--once")
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert f"127.0.0.1:{kube.port}" in lines[0]


def test_cli_once_stall_and_refusal_are_one_line_exit_1(
        kube: FakeKubeAPI, kubeconfig: Path, db_url: str) -> None:
    add_ready(kube, "db", ["10.0.0.1"])
    kube.hold(SERVICES)
    try:
        stalled = run_cli(db_url, "watch", "--kubeconfig", str(kubeconfig), "--once",
                          "--request-timeout", "0.5")
    finally:
        kube.release(SERVICES)
    assert stalled.returncode == 1
    assert stalled.stderr.splitlines() == [
        f"Error: cannot list services from the Kubernetes API server at {kube.url}: "
        "no answer within 0.5 s"]
    kube.forbid(SERVICES, "list")
    refused = run_cli(db_url, "watch", "--kubeconfig", str(kubeconfig), "--once")
    assert refused.returncode == 1
    [line] = refused.stderr.splitlines()
    assert line.startswith(f"Error: the Kubernetes API server at {kube.url} refused to list "
                           "services: HTTP 403: services is forbidden")


def watch_process(db_url: str, kubeconfig: Path,
                  log: Path) -> contextlib.AbstractContextManager[subprocess.Popen[bytes]]:
    """``zonegen -v watch --no-project`` logging to ``log``, killed at the end of the
    ``with``."""
    return cli_logging_to(log, db_url, "-v", "watch", "--kubeconfig", str(kubeconfig),
                          "--no-project")


def _burst(api: FakeKubeAPI, count: int, stop: threading.Event) -> threading.Thread:
    def run() -> None:
        for i in range(count):
            if stop.is_set():
                return
            api.add(SERVICES, service(f"burst{i}"))

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL],
                         ids=["sigterm", "sigint", "kill-9"])
def test_signal_mid_burst_then_restart_gives_the_complete_log(
        kube: FakeKubeAPI, kubeconfig: Path, db_url: str, store: Store, tmp_path: Path,
        sig: signal.Signals) -> None:
    add_ready(kube, "seed", ["10.0.0.1"])
    stop_burst = threading.Event()
    log = tmp_path / "watch.log"
    try:
        with watch_process(db_url, kubeconfig, log) as proc:
            wait_for(lambda: len(logged(store)) >= 2 and kube.watches("services"),
                     "the watcher running")
            burst = _burst(kube, 3000, stop_burst)
            wait_for(lambda: len(logged(store)) >= 200, "part of the burst stored")
            proc.send_signal(sig)
            code = proc.wait(DEADLINE)
        burst.join(DEADLINE)
    finally:
        stop_burst.set()
    if sig != signal.SIGKILL:
        assert code == 0, log.read_text()
    else:
        assert code == -signal.SIGKILL
    # What is stored is exactly a prefix of the server's history, up to the resume point.
    resume = int(store.resume_point("default", "Service") or 0)
    stored = triples(logged(store), "Service")
    server = server_triples(kube, SERVICES)
    assert stored == [t for t in server if int(t[2]) <= resume]
    # After a restart the log is complete, nothing doubled.
    with watching(store, kubeconfig):
        wait_for(lambda: len(triples(logged(store), "Service")) == len(server),
                 "the rest of the burst")
    assert triples(logged(store), "Service") == server
    assert not [k for k, n in Counter((e.uid, e.resource_version, e.type)
                                      for e in logged(store)).items() if n > 1]


def test_modified_and_deleted_events_types(kube: FakeKubeAPI, kubeconfig: Path,
                                           store: Store) -> None:
    with watching(store, kubeconfig):
        wait_for(lambda: kube.watches("services"), "a Service watch")
        kube.add(SERVICES, service("x"))
        kube.modify(SERVICES, "default", "x", lambda o: o["spec"].update(clusterIP="10.1.1.1"))
        kube.delete(SERVICES, "default", "x")
        wait_for(lambda: len(logged(store)) == 3, "three events")
    assert [e.type for e in logged(store)] == [ADDED, MODIFIED, DELETED]


# --------------------------------------------------------------------------- deploy/


def test_deploy_manifests_grant_exactly_list_and_watch() -> None:
    import yaml

    docs = [d for f in sorted((ROOT / "deploy" / "base").glob("*.yaml"))
            for d in yaml.safe_load_all(f.read_text()) if d]
    by_kind = {d["kind"]: d for d in docs}
    rules = by_kind["ClusterRole"]["rules"]
    granted = {(g, r, tuple(sorted(rule["verbs"])))
               for rule in rules for g in rule["apiGroups"] for r in rule["resources"]}
    assert granted == {("", "services", ("list", "watch")),
                       ("discovery.k8s.io", "endpointslices", ("list", "watch")),
                       ("", "endpoints", ("list", "watch")),
                       ("multicluster.x-k8s.io", "serviceimports", ("list", "watch")),
                       ("multicluster.x-k8s.io", "serviceexports", ("list", "watch"))}
    binding = by_kind["ClusterRoleBinding"]
    account = by_kind["ServiceAccount"]["metadata"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account["name"],
                                    "namespace": account["namespace"]}]
    pod = by_kind["Deployment"]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == account["name"]
    container = pod["containers"][0]
    assert container["args"][1:3] == ["serve", "--watch"]
    assert {(p["containerPort"], p["protocol"]) for p in container["ports"]} == {
        (5353, "UDP"), (5353, "TCP"), (9153, "TCP")}
    assert {(p["port"], p["protocol"]) for p in by_kind["Service"]["spec"]["ports"]} == {
        (5353, "UDP"), (5353, "TCP")}
    mount = container["volumeMounts"][0]
    assert container["args"][0].startswith(f"--db=sqlite:///{mount['mountPath']}/")


def test_a_stream_of_garbage_backs_off_instead_of_spinning(
        kube: FakeKubeAPI, kubeconfig: Path, store: Store) -> None:
    """A proxy answering 200 with non-JSON lines is not a working watch: each reconnect
    must wait a growing backoff, not loop at once."""
    kube.garbage_watches = True
    with watching(store, kubeconfig, fast()) as watcher:
        wait_for(lambda: len(kube.watches("services")) >= 4, "repeated watches")
        pauses = watcher.recent_pauses
    assert len(pauses) >= 3
    assert all(p > 0 for p in pauses)
