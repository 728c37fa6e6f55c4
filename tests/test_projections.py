"""Projection specs (``zonegen.projections``) and the store's versions per projection."""

from __future__ import annotations

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
