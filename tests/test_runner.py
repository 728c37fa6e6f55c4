"""The projection runner: exactly-once folding, serials, DNS-invisible changes."""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Callable, Collection
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from zonegen.errors import StoreError
from zonegen.ingest import ingest_files
from zonegen.logs import record_fields
from zonegen.metrics import Metrics
from zonegen.model import MODIFIED, PTR, SERVICE, SRV, TXT, A, Event, Record
from zonegen.runner import ProjectionRunner, ensure_projected
from zonegen.serial import is_after
from zonegen.store import PROJECTION, CheckpointMoved, Store

T0 = datetime(2026, 1, 1, tzinfo=UTC)
APEX = Record("dns-version", TXT, ("1.1.0",), 28800)


class Clock:
    """A test clock the test moves by hand (it may even go backwards)."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'z.db'}"


def headless(name: str = "db", rv: str = "1", **meta: Any) -> dict[str, Any]:
    return {"kind": "Service",
            "metadata": {"name": name, "namespace": "shop", "uid": f"u-{name}",
                         "resourceVersion": rv, **meta},
            "spec": {"clusterIP": "None", "ports": [{"name": "pg", "port": 5432}]}}


def slice_(rv: str = "1", ready: bool | None = True, addresses: tuple[str, ...] = ("10.0.0.1",),
           **meta: Any) -> dict[str, Any]:
    conditions = {} if ready is None else {"ready": ready}
    return {"kind": "EndpointSlice", "addressType": "IPv4",
            "metadata": {"name": "db-1", "namespace": "shop", "uid": "u-db-1",
                         "resourceVersion": rv,
                         "labels": {"kubernetes.io/service-name": "db"}, **meta},
            "endpoints": [{"addresses": [a], "conditions": conditions, "hostname": f"db-{i}"}
                          for i, a in enumerate(addresses)],
            "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}]}


def ingest(store: Store, tmp_path: Path, *objs: dict[str, Any], clock: Clock | None = None
           ) -> None:
    path = tmp_path / "in.json"
    path.write_text(json.dumps({"kind": "List", "items": list(objs)}))
    ingest_files(store, [str(path)], project=False)
    ProjectionRunner(store, clock=clock or Clock(T0.timestamp())).catch_up()


def test_first_catch_up_publishes_the_apex_even_with_no_events(db: str) -> None:
    store = Store.open(db)
    runner = ProjectionRunner(store, clock=Clock(1_700_000_000))
    made = runner.catch_up()
    assert [v.serial for v in made] == [1_700_000_000]
    assert store.records_at(made[0].version_id) == {APEX}
    assert runner.catch_up() == []


def test_one_version_per_batch_with_causes(db: str, tmp_path: Path) -> None:
    store = Store.open(db)
    ingest(store, tmp_path, headless(), slice_())
    version = store.latest_version()
    assert version is not None
    journal = store.journal(0)
    assert len(journal) == 1
    assert journal[0].step.from_serial is None  # the first version: no IXFR starts before it
    assert Record("db.shop.svc", A, ("10.0.0.1",)) in journal[0].step.added
    history = store.name_changes(["db-0.db.shop.svc"])
    # The pod's A record was caused by the EndpointSlice event (seq 2), not the Service.
    assert [(ch.added, ch.record.rdata, ch.cause_seq) for ch in history] == [
        (True, ("10.0.0.1",), 2)]


@pytest.mark.parametrize("mutate", [
    pytest.param(lambda s, e: (s["metadata"].update(labels={"team": "x"}), e), id="labels"),
    pytest.param(lambda s, e: (s["metadata"].update(annotations={"a": "b"}), e),
                 id="annotations"),
    pytest.param(lambda s, e: (e["metadata"].update(
        managedFields=[{"manager": "kube-controller-manager"}]), s), id="managedFields"),
    pytest.param(lambda s, e: (e["endpoints"][0].update(nodeName="node-7"), s), id="nodeName"),
    pytest.param(lambda s, e: (e["endpoints"][0].update(
        targetRef={"kind": "Pod", "name": "db-0"}), s), id="targetRef"),
    pytest.param(lambda s, e: (e["endpoints"][0]["conditions"].update(
        serving=False, terminating=True), s), id="serving-terminating"),
    pytest.param(lambda s, e: (s, e), id="resourceVersion-only"),
    pytest.param(lambda s, e: (s.update(status={"loadBalancer": {}}), e), id="status"),
])
def test_dns_invisible_changes_make_no_new_serial(
        db: str, tmp_path: Path,
        mutate: Callable[[dict[str, Any], dict[str, Any]], object]) -> None:
    store = Store.open(db)
    ingest(store, tmp_path, headless(), slice_())
    before = store.latest_version()
    svc, sl = headless(rv="2"), slice_(rv="2")
    mutate(svc, sl)
    ingest(store, tmp_path, svc, sl, clock=Clock(T0.timestamp() + 60))
    # The events are stored (the log is complete) but no zone version was made.
    assert [e.type for e in store.select_events()][-2:] == [MODIFIED, MODIFIED]
    assert store.latest_version() == before
    assert store.max_tracking_seq() == store.max_event_seq()


def test_not_ready_to_not_ready_makes_no_new_serial(db: str, tmp_path: Path) -> None:
    store = Store.open(db)
    ingest(store, tmp_path, headless(), slice_(ready=False, addresses=("10.0.0.1", "10.0.0.2")))
    before = store.latest_version()
    changed = slice_(rv="2", ready=False, addresses=("10.0.0.1", "10.0.0.3"))
    ingest(store, tmp_path, changed, clock=Clock(T0.timestamp() + 60))
    assert store.latest_version() == before


def test_readiness_change_makes_a_new_serial(db: str, tmp_path: Path) -> None:
    store = Store.open(db)
    ingest(store, tmp_path, headless(), slice_(ready=False))
    before = store.latest_version()
    ingest(store, tmp_path, slice_(rv="2", ready=None), clock=Clock(T0.timestamp() + 60))
    after = store.latest_version()
    assert before is not None
    assert after is not None
    assert is_after(after.serial, before.serial)
    journal = store.journal(before.version_id)
    assert Record("db-0.db.shop.svc", A, ("10.0.0.1",)) in journal[0].step.added
    assert journal[0].step.removed == ()


def test_serials_stay_monotonic_across_restarts_even_when_the_clock_goes_back(
        db: str, tmp_path: Path) -> None:
    serials = []
    for i, now in enumerate([2_000_000_000, 1_000_000_000, 2_000_000_000, 5]):
        store = Store.open(db)  # a restart: a new process would do exactly this
        ingest(store, tmp_path, headless(),
               slice_(rv=str(i + 1), addresses=(f"10.0.0.{i + 1}",)), clock=Clock(now))
        version = store.latest_version()
        assert version is not None
        serials.append(version.serial)
        store.close()
    assert serials[0] == 2_000_000_000
    for earlier, later in zip(serials, serials[1:], strict=False):
        assert is_after(later, earlier)
    assert len(set(serials)) == 4


def test_a_restarted_runner_resumes_from_its_checkpoint(db: str, tmp_path: Path) -> None:
    store = Store.open(db)
    ingest(store, tmp_path, headless(), slice_())
    first = ProjectionRunner(store)
    assert first.catch_up() == []
    ingest_files(store, [_write(tmp_path, slice_(rv="2", addresses=("10.0.0.9",)))],
                 project=False)
    second = ProjectionRunner(store, clock=Clock(T0.timestamp() + 5))
    made = second.catch_up()
    assert len(made) == 1
    assert Record("db-0.db.shop.svc", A, ("10.0.0.9",)) in second.projection.records()
    assert Record("db-0.db.shop.svc", A, ("10.0.0.1",)) not in second.projection.records()
    # Each event was projected exactly once.
    assert store.max_tracking_seq() == store.max_event_seq()


def test_two_runners_sharing_a_log_never_publish_the_same_events(db: str,
                                                                  tmp_path: Path) -> None:
    store = Store.open(db)
    ingest(store, tmp_path, headless())
    a, b = ProjectionRunner(store), ProjectionRunner(store)
    a.catch_up()
    b.catch_up()
    ingest_files(store, [_write(tmp_path, slice_())], project=False)
    made_by_a = a.catch_up()
    # b's checkpoint was moved under it: it reloads rather than publishing again.
    assert b.catch_up() == []
    assert len(made_by_a) == 1
    assert b.version == made_by_a[0]
    assert b.projection.records() == a.projection.records()
    assert len(store.versions()) == 2
    with pytest.raises(CheckpointMoved):
        store.commit_version((PROJECTION, 0, 1), serial=1)


def test_rebuild_from_scratch_is_identical(db: str, tmp_path: Path) -> None:
    store = Store.open(db)
    ingest(store, tmp_path, headless(), slice_())
    ingest(store, tmp_path, slice_(rv="2", addresses=("10.0.0.2", "10.0.0.3")))
    ingest(store, tmp_path, headless(name="gone"))
    ingest_files(store, [_write(tmp_path, {"kind": "List", "items": [
        headless(), slice_(rv="2", addresses=("10.0.0.2", "10.0.0.3"))]})],
        snapshot=True)
    report = ProjectionRunner(store).rebuild()
    assert report.identical
    assert report.events == store.max_event_seq()
    assert report.records == len(ProjectionRunner(store).projection.records())
    assert "identical" in report.summary()


def test_stored_object_the_reducers_reject_is_projected_as_absent(
        db: str, caplog: pytest.LogCaptureFixture) -> None:
    store = Store.open(db)
    store.append_events([Event(0, T0, "default", "ADDED", SERVICE, "ns", "x", "u", "1",
                               '{"kind": "Service", "metadata": {"name": "x"}}')])
    runner = ProjectionRunner(store)
    with caplog.at_level("WARNING", logger="zonegen"):
        runner.catch_up()
    assert runner.projection.records() == {APEX}
    assert any(r.name == "zonegen.runner" and "event 1 (Service ns/x)" in r.getMessage()
               and "uid" in r.getMessage() for r in caplog.records)
    assert store.max_tracking_seq(PROJECTION) == 1


def _write(tmp_path: Path, obj: dict[str, Any]) -> str:
    path = tmp_path / f"obj-{id(obj)}.json"
    path.write_text(json.dumps(copy.deepcopy(obj)))
    return str(path)


def test_catch_up_stores_no_snapshot_and_the_newest_version_reads_the_read_model(
        db: str, tmp_path: Path) -> None:
    """#11: a snapshot is the whole zone, so folding never takes one (a burst that
    replaced the zone paid O(zone) for it); the newest version's records come from the
    read model (progress counts its records, not journal rows), past ones from the
    journal, both exact."""
    store = Store.open(db)
    ingest(store, tmp_path, headless())
    runner = ProjectionRunner(store, clock=Clock(T0.timestamp()))
    for i in range(1, 8):
        ingest_files(store, [_write(tmp_path, slice_(rv=str(i + 1),
                                                     addresses=(f"10.0.1.{i}",)))],
                     project=False)
        runner.catch_up()
    assert store.changes_since_snapshot() == sum(
        len(j.step.added) + len(j.step.removed) for j in store.journal(0))
    assert store.snapshot_records(store.versions()[-1].version_id) == []
    latest = store.latest_version()
    assert latest is not None
    told: list[int] = []
    assert store.records_at(latest.version_id, told.append) == set(runner.projection.records())
    assert sum(told) == len(runner.projection.records())
    zone: set[Record] = set()
    for j in store.journal(0):  # past versions fold the journal; the newest agrees
        zone = (zone - set(j.step.removed)) | set(j.step.added)
        assert store.records_at(j.version.version_id) == zone


def test_a_failed_commit_does_not_lose_changes_from_the_journal(
        db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A transient write failure (full disk) must not leave the in-memory projection
    ahead of the store: the retry has to publish the same changes."""
    store = Store.open(db)
    ingest(store, tmp_path, headless(), slice_())
    runner = ProjectionRunner(store, clock=Clock(T0.timestamp() + 10))
    runner.catch_up()
    ingest_files(store, [_write(tmp_path, slice_(rv="2", addresses=("10.0.0.7",)))],
                 project=False)
    real = store.commit_version

    def full_disk(*args: Any, **kwargs: Any) -> Any:
        raise StoreError(f"{store.where}: committing zone version failed: disk is full")

    monkeypatch.setattr(store, "commit_version", full_disk)
    with pytest.raises(StoreError, match="disk is full"):
        runner.catch_up()
    monkeypatch.setattr(store, "commit_version", real)
    made = runner.catch_up()
    assert len(made) == 1
    step = store.journal(made[0].version_id - 1)[-1].step
    assert Record("db-0.db.shop.svc", A, ("10.0.0.7",)) in step.added
    assert Record("db-0.db.shop.svc", A, ("10.0.0.1",)) in step.removed


def test_a_clock_before_1970_still_gives_small_increasing_serials(db: str,
                                                                   tmp_path: Path) -> None:
    store = Store.open(db)
    ingest(store, tmp_path, headless(), slice_(), clock=Clock(-62135596800.0))
    first = store.latest_version()
    ingest(store, tmp_path, slice_(rv="2", addresses=("10.0.0.2",)), clock=Clock(-1.0))
    second = store.latest_version()
    assert first is not None
    assert second is not None
    assert (first.serial, second.serial) == (1, 2)


WEB: dict[str, Any] = {"kind": "Service",
       "metadata": {"name": "web", "namespace": "shop", "uid": "u-web", "resourceVersion": "1"},
       "spec": {"clusterIP": "10.96.0.10", "ports": [{"name": "http", "port": 80}]}}


def _stored(store: Store, tmp_path: Path, *objs: dict[str, Any]) -> None:
    """``objs`` stored as one transaction (one ingest), not projected."""
    path = tmp_path / "in.json"
    path.write_text(json.dumps({"kind": "List", "items": list(objs)}))
    ingest_files(store, [str(path)], project=False)


def test_one_transaction_larger_than_a_batch_is_one_version(db: str, tmp_path: Path) -> None:
    """An initial sync (or relist) bigger than ``batch_size`` is published whole: one
    version with every record, never a partial zone per chunk (#9)."""
    store = Store.open(db)
    _stored(store, tmp_path, headless(), slice_(addresses=("10.0.0.1", "10.0.0.2")), WEB)
    made = ProjectionRunner(store, clock=Clock(1_700_000_000), batch_size=1).catch_up()
    assert [(v.serial, v.last_event_seq) for v in made] == [(1_700_000_000, 3)]
    assert store.records_at(made[0].version_id) == {
        APEX,
        Record("1.0.0.10.in-addr.arpa.", PTR, ("db-0.db.shop.svc",)),
        Record("2.0.0.10.in-addr.arpa.", PTR, ("db-1.db.shop.svc",)),
        Record("10.0.96.10.in-addr.arpa.", PTR, ("web.shop.svc",)),
        Record("_http._tcp.web.shop.svc", SRV, (0, 100, 80, "web.shop.svc")),
        Record("_pg._tcp.db.shop.svc", SRV, (0, 50, 5432, "db-0.db.shop.svc")),
        Record("_pg._tcp.db.shop.svc", SRV, (0, 50, 5432, "db-1.db.shop.svc")),
        Record("db-0.db.shop.svc", A, ("10.0.0.1",)),
        Record("db-1.db.shop.svc", A, ("10.0.0.2",)),
        Record("db.shop.svc", A, ("10.0.0.1",)),
        Record("db.shop.svc", A, ("10.0.0.2",)),
        Record("db.shop.svc", SRV, (0, 50, 5432, "db-0.db.shop.svc")),
        Record("db.shop.svc", SRV, (0, 50, 5432, "db-1.db.shop.svc")),
        Record("web.shop.svc", A, ("10.96.0.10",)),
        Record("web.shop.svc", SRV, (0, 100, 80, "web.shop.svc")),
    }


def test_a_later_multi_event_transaction_is_one_version_with_its_net_change(
        db: str, tmp_path: Path) -> None:
    store = Store.open(db)
    _stored(store, tmp_path, headless(), slice_())
    runner = ProjectionRunner(store, clock=Clock(1_700_000_000), batch_size=1)
    runner.catch_up()
    web2 = copy.deepcopy(WEB)
    web2["metadata"]["resourceVersion"] = "2"
    _stored(store, tmp_path, headless(), slice_(rv="2", addresses=("10.0.0.9",)), WEB)
    path = tmp_path / "in.json"
    path.write_text(json.dumps(web2 | {"spec": {"clusterIP": "10.96.0.11",
                                                "ports": [{"name": "http", "port": 80}]}}))
    ingest_files(store, [str(path)], project=False)
    made = runner.catch_up()
    assert [(v.serial, v.last_event_seq) for v in made] == [(1_700_000_001, 5)]
    step = store.journal(made[0].version_id - 1)[-1].step
    assert set(step.removed) == {
        Record("1.0.0.10.in-addr.arpa.", PTR, ("db-0.db.shop.svc",)),
        Record("db-0.db.shop.svc", A, ("10.0.0.1",)),
        Record("db.shop.svc", A, ("10.0.0.1",)),
    }
    assert set(step.added) == {
        Record("9.0.0.10.in-addr.arpa.", PTR, ("db-0.db.shop.svc",)),
        Record("db-0.db.shop.svc", A, ("10.0.0.9",)),
        Record("db.shop.svc", A, ("10.0.0.9",)),
        Record("11.0.96.10.in-addr.arpa.", PTR, ("web.shop.svc",)),
        Record("_http._tcp.web.shop.svc", SRV, (0, 100, 80, "web.shop.svc")),
        Record("web.shop.svc", A, ("10.96.0.11",)),
        Record("web.shop.svc", SRV, (0, 100, 80, "web.shop.svc")),
    }


class _BusyStore(Store):
    """A store another writer appends to while the runner reads its first chunk."""

    extra: list[Event] = []

    def select_events(self, gt: int = 0, limit: int | None = None,
                      lte: int | None = None,
                      sources: Collection[str] | None = None) -> list[Event]:
        found = super().select_events(gt, limit, lte, sources)
        if self.extra:
            self.append_events([self.extra.pop()])
        return found


def test_catch_up_stops_at_the_newest_event_seen_at_its_start(db: str, tmp_path: Path) -> None:
    """A writer that keeps appending cannot starve the commit: what arrives during a
    catch_up waits for the next one."""
    Store.open(db).close()
    store = _BusyStore.open(db)
    assert isinstance(store, _BusyStore)
    _stored(store, tmp_path, headless(), slice_())
    late = store.select_events()[0]
    store.extra = [Event(0, late.received_at, late.source, MODIFIED, late.kind, late.namespace,
                         late.name, late.uid, "9", late.object_json)]
    runner = ProjectionRunner(store, clock=Clock(1_700_000_000), batch_size=1)
    made = runner.catch_up()
    assert [v.last_event_seq for v in made] == [2]
    assert store.max_event_seq() == 3
    assert store.max_tracking_seq() == 2


@pytest.mark.parametrize("live", [True, False])
def test_each_version_counts_in_the_metrics_latency_only_on_live_paths(
        db: str, tmp_path: Path, live: bool) -> None:
    store = Store.open(db)
    _stored(store, tmp_path, headless(), slice_())
    received = store.select_events()[-1].received_at.timestamp()
    metrics = Metrics()
    runner = ProjectionRunner(store, clock=Clock(received + 2.0), live=live, metrics=metrics)
    runner.catch_up()
    runner.catch_up()  # nothing pending: no version, nothing observed
    sample = metrics.registry.get_sample_value
    assert sample("zonegen_zone_versions_total") == 1.0
    assert sample("zonegen_event_to_version_seconds_count") == (2.0 if live else 0.0)
    assert sample("zonegen_event_to_version_seconds_bucket", {"le": "2.5"}) == (
        2.0 if live else 0.0)
    assert sample("zonegen_event_to_version_seconds_bucket", {"le": "1.0"}) == 0.0


def test_each_new_serial_is_logged_with_its_counts(db: str, tmp_path: Path,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    store = Store.open(db)
    _stored(store, tmp_path, headless(), slice_())
    runner = ProjectionRunner(store, clock=Clock(1_700_000_000), metrics=Metrics())
    runner.catch_up()
    _stored(store, tmp_path, slice_(rv="2", addresses=("10.0.0.9",)))
    with caplog.at_level(logging.INFO, logger="zonegen.runner"):
        runner.catch_up()
    [line] = [r for r in caplog.records if r.name == "zonegen.runner"]
    assert line.levelno == logging.INFO
    assert line.getMessage() == "new serial 1700000001: 3 records added, 3 removed"
    assert record_fields(line) == {"serial": 1_700_000_001, "added": 3, "removed": 3,
                                   "records": 6, "version": 2, "last_event_seq": 3}


def test_ensure_projected_keeps_the_runner_it_is_given(db: str, tmp_path: Path) -> None:
    """The one entry for long-running processes too: their runner (its metrics, its
    serial) is reused, and each call folds on the persisted read model."""
    store = Store.open(db)
    runner = ProjectionRunner(store, clock=Clock(1_700_000_000), metrics=Metrics())
    _stored(store, tmp_path, headless(), slice_())
    first = ensure_projected(store, runner=runner)
    _stored(store, tmp_path, slice_(rv="2", addresses=("10.0.0.9",)))
    second = ensure_projected(store, runner=runner)
    assert Record("db-0.db.shop.svc", A, ("10.0.0.9",)) in runner.records()
    assert [v.serial for v in first.made] == [1_700_000_000]
    assert [v.serial for v in second.made] == [1_700_000_001]
    assert second.version == runner.version == store.latest_version()
    quiet = ensure_projected(store, runner=runner)
    assert (quiet.made, quiet.version) == ((), second.version)


def test_an_initial_sync_larger_than_a_batch_is_one_version_through_the_watcher(
        db: str, tmp_path: Path) -> None:
    """The real watcher (``--once``) against the fake API server, its runner reading two
    events at a time: six listed objects still make exactly one version holding every
    Service with its endpoints (#9: no partial first zone)."""
    from tests.kubeapi import ENDPOINTSLICES, SERVICES, FakeKubeAPI, endpoint_slice, service
    from zonegen.watch import Watcher, WatchOptions, connect

    api = FakeKubeAPI().start()
    try:
        for i, name in enumerate(("a", "b", "c")):
            api.add(SERVICES, service(name, cluster_ip=None))
            api.add(ENDPOINTSLICES, endpoint_slice(name, [f"10.1.0.{i + 1}"]))
        store = Store.open(db)
        cluster = connect(str(api.write_kubeconfig(tmp_path / "kubeconfig")))
        try:
            runner = ProjectionRunner(store, clock=Clock(1_700_000_000), batch_size=2,
                                      metrics=Metrics())
            Watcher(store, cluster, WatchOptions(project=True), runner=runner).sync_once()
        finally:
            cluster.close()
    finally:
        api.stop()
    assert len(store.select_events()) == 6
    [version] = store.versions()
    assert (version.serial, version.last_event_seq) == (1_700_000_000, 6)
    records = store.records_at(version.version_id)
    assert {r for r in records if r.rtype == A} == {
        Record(f"{owner}.default.svc", A, (f"10.1.0.{i + 1}",))
        for i, name in enumerate(("a", "b", "c"))
        for owner in (name, f"10-1-0-{i + 1}.{name}")}


def test_another_sources_objects_never_reach_the_default_zone(db: str, tmp_path: Path) -> None:
    """Issue #13: the default zone folds the `default` source only. The same Service name
    in cluster `east` (another address) changes nothing, and the checkpoint still passes
    its events, so they are not rescanned."""
    store = Store.open(db)
    ingest(store, tmp_path, headless())
    before = ProjectionRunner(store).records()
    version = store.latest_version()
    east = headless()
    east["metadata"]["uid"] = "uid-east"
    path = tmp_path / "east.json"
    path.write_text(json.dumps({"kind": "List", "items": [east, _renamed(headless(), "other")]}))
    ingest_files(store, [str(path)], source="east", project=False)
    runner = ProjectionRunner(store, clock=Clock(T0.timestamp() + 60))
    assert runner.catch_up() == []
    assert store.latest_version() == version
    assert ProjectionRunner(store).records() == before
    assert store.max_tracking_seq(PROJECTION) == store.max_event_seq()
    assert ProjectionRunner(store).rebuild().identical


def _renamed(obj: dict[str, Any], name: str) -> dict[str, Any]:
    obj["metadata"]["name"] = name
    obj["metadata"]["uid"] = f"uid-{name}"
    return obj


def test_catch_up_folds_with_the_cyclic_gc_paused_and_restores_it(
        db: str, tmp_path: Path) -> None:
    """#11: watch/project/export fold bursts too, so the runner (not only ingest) keeps
    the collector's passes over millions of acyclic values out of a catch-up."""
    import gc

    seen: list[bool] = []

    class GcState(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.getMessage().startswith("new serial"):
                seen.append(gc.isenabled())

    store = Store.open(db)
    ingest_files(store, [_write(tmp_path, headless()), _write(tmp_path, slice_())],
                 project=False)
    handler = GcState(level=logging.INFO)
    logger = logging.getLogger("zonegen.runner")
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    assert gc.isenabled()
    try:
        ProjectionRunner(store, clock=Clock(T0.timestamp())).catch_up()
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    assert seen == [False]
    assert gc.isenabled()
