"""``project --rebuild`` (zonegen.rebuild): a replay of the log compared with the
persisted read model, every difference named exactly."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from zonegen.ingest import ingest_files
from zonegen.model import AAAA, PTR, SRV, A, Record, encode_rdata, row_key
from zonegen.rebuild import rebuild_projection, row_keys
from zonegen.runner import ProjectionRunner
from zonegen.store import PROJECTION, Store
from zonegen.store.readmodel import sort_key


def service(name: str, spec: dict[str, Any], ns: str = "shop") -> dict[str, Any]:
    return {"kind": "Service",
            "metadata": {"name": name, "namespace": ns, "uid": f"u-{ns}-{name}",
                         "resourceVersion": "1"},
            "spec": spec}


def endpoint_slice(name: str, svc: str, addresses: list[str], rv: str = "1",
                   family: str = "IPv4") -> dict[str, Any]:
    return {"kind": "EndpointSlice", "addressType": family,
            "metadata": {"name": name, "namespace": "shop", "uid": f"u-{name}",
                         "resourceVersion": rv,
                         "labels": {"kubernetes.io/service-name": svc}},
            "endpoints": [{"addresses": [a], "hostname": f"{svc}-{i}",
                           "conditions": {"ready": True}} for i, a in enumerate(addresses)],
            "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}]}


OBJECTS = [
    service("db", {"clusterIP": "None", "ports": [{"name": "pg", "port": 5432}]}),
    endpoint_slice("db-1", "db", ["10.0.0.1", "10.0.0.2"]),
    service("web", {"clusterIP": "10.96.0.10", "ports": [{"name": "http", "port": 80}]}),
    endpoint_slice("web-1", "web", ["10.0.1.1"]),
    service("v6", {"clusterIP": "None"}),
    endpoint_slice("v6-1", "v6", ["fd00::1"], family="IPv6"),
    service("ext", {"type": "ExternalName", "externalName": "db.example.com"}),
]


@pytest.fixture
def store(tmp_path: Path) -> Store:
    """A projected log: every object, then a second version of one slice and a
    Service gone again (the replay must take each object's newest event)."""
    s = Store.open(f"sqlite:///{tmp_path / 'z.db'}")
    steps = [OBJECTS, [endpoint_slice("db-1", "db", ["10.0.0.3"], rv="2"),
                       service("gone", {"clusterIP": "None"})]]
    for i, objs in enumerate(steps):
        path = tmp_path / f"in{i}.json"
        path.write_text(json.dumps({"kind": "List", "items": objs}))
        ingest_files(s, [str(path)], project=True)
    path = tmp_path / "delete.json"
    path.write_text(json.dumps({"type": "DELETED", "object": service(
        "gone", {"clusterIP": "None"})}) + "\n")
    ingest_files(s, [str(path)], project=True)
    return s


def db_path(store: Store) -> str:
    return str(store.engine.url.database)


def visible_rows(store: Store) -> set[tuple[str, int, str, int | None]]:
    with store.current_rows(PROJECTION) as (_version, rows):
        return {(o, t, d, ttl) for o, t, d, ttl in rows}


def insert_row(store: Store, r: Record, service: tuple[str, str] = ("shop", "db")) -> None:
    with sqlite3.connect(db_path(store)) as conn:
        conn.execute(
            "INSERT INTO current_records (projection, service_namespace, service_name, "
            "owner, rtype, ttl, rdata, sort_key, visible) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1)",
            (PROJECTION, *service, r.owner, r.rtype, r.ttl, encode_rdata(r.rdata),
             sort_key(r.owner)))


def delete_row(store: Store, r: Record) -> None:
    with sqlite3.connect(db_path(store)) as conn:
        deleted = conn.execute(
            "DELETE FROM current_records WHERE projection = ? AND owner = ? AND rtype = ? "
            "AND rdata = ?", (PROJECTION, r.owner, r.rtype, encode_rdata(r.rdata))).rowcount
    assert deleted == 1


def test_a_replay_equals_the_read_model(store: Store) -> None:
    report = ProjectionRunner(store).rebuild()
    assert report.identical
    assert (report.missing, report.extra) == (frozenset(), frozenset())
    assert report.events == store.max_event_seq() == 10
    assert report.records == len(visible_rows(store)) == len(
        ProjectionRunner(store).projection.records())
    assert Record("db-0.db.shop.svc", A, ("10.0.0.3",)) in ProjectionRunner(store).records()


def test_the_stored_row_keys_are_the_row_keys_of_the_stored_rows(store: Store) -> None:
    """SQLite spells model.row_key exactly, NULL ttls and numbers included."""
    keys = store.stored_row_keys(PROJECTION)
    rows = visible_rows(store)
    assert keys == {row_key(*row) for row in rows}
    assert any(ttl is None for *_, ttl in rows)
    assert any(ttl is not None for *_, ttl in rows)
    assert store.stored_row_keys("no such projection") == set()
    # and a replay's records give the same texts, so an identical model is found so
    assert row_keys(ProjectionRunner(store).projection.records()) == keys


def test_stored_row_keys_are_not_read_so_when_a_row_is_not_plain(store: Store) -> None:
    """rdata that JSON escapes (quotes, backslashes) is not spelled by record_keys as
    stored: the rows themselves are then compared."""
    insert_row(store, Record("7.0.0.10.in-addr.arpa.", PTR, ('a","b',)))
    assert store.stored_row_keys(PROJECTION) is None


def test_a_record_the_read_model_lost_and_one_it_never_should_have_are_named(
        store: Store) -> None:
    lost = Record("db-0.db.shop.svc", A, ("10.0.0.3",))
    bogus = Record("db-9.db.shop.svc", A, ("10.0.0.9",))
    delete_row(store, lost)
    insert_row(store, bogus)
    report = rebuild_projection(store, PROJECTION, None)
    assert not report.identical
    assert report.missing == {bogus}  # in the read model, not in the replay
    assert report.extra == {lost}  # in the replay, not in the read model
    assert report.records == len(ProjectionRunner(store).projection.records())
    assert "DIFFERS from the current projection (1 missing, 1 extra)" in report.summary()


@pytest.mark.parametrize("bogus", [
    Record("odd\towner.db.shop.svc", A, ("10.0.0.9",)),  # a tab: the keys are ambiguous
    Record("odd\nowner.db.shop.svc", A, ("10.0.0.9",)),  # a line break: so is the split
    Record("7.0.0.10.in-addr.arpa.", PTR, ('quo"te.db.shop.svc',)),  # rdata with escapes
    Record("_pg._tcp.db.shop.svc", SRV, (0, 100, 5432, "db-0.db.shop.svc"), 30),  # a ttl
    Record("db.shop.svc", AAAA, ("fd00::9",), None),
])
def test_any_stored_row_the_replay_lacks_is_named(store: Store, bogus: Record) -> None:
    insert_row(store, bogus)
    report = rebuild_projection(store, PROJECTION, None)
    assert (report.identical, report.missing, report.extra) == (False, frozenset({bogus}),
                                                                frozenset())


def test_a_stored_row_that_differs_only_in_its_ttl(store: Store) -> None:
    real = Record("db-0.db.shop.svc", A, ("10.0.0.3",))
    delete_row(store, real)
    insert_row(store, Record(real.owner, real.rtype, real.rdata, 60))
    report = rebuild_projection(store, PROJECTION, None)
    assert report.missing == {Record(real.owner, real.rtype, real.rdata, 60)}
    assert report.extra == {real}


def test_a_row_stored_twice_is_still_identical(store: Store) -> None:
    """The comparison is of record sets (as the zone is): a duplicate row is no
    difference, as before."""
    insert_row(store, Record("db-0.db.shop.svc", A, ("10.0.0.3",)))
    assert rebuild_projection(store, PROJECTION, None).identical


def test_only_the_projections_sources_are_replayed(store: Store) -> None:
    report = rebuild_projection(store, PROJECTION, ["elsewhere"])
    assert report.events == 0
    assert not report.identical
    assert report.extra == frozenset()
    assert len(report.missing) == len(visible_rows(store)) - 1  # all but the apex
