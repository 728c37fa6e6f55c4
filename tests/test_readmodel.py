"""The persisted read model (docs/DESIGN.md "Read model"): what consumers stream, and
that it always equals a full replay of the log."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import dns.name
import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from zonegen.ingest import ingest_files
from zonegen.model import PTR, Record
from zonegen.project import rebuild
from zonegen.runner import ProjectionRunner, to_change
from zonegen.store import Store, sort_key

pytest_plugins = ["tests.postgres"]  # backend_url: SQLite and PostgreSQL

ZONE = dns.name.from_text("cluster.local.")


# --------------------------------------------------------------------------- objects


def service(name: str, ns: str = "shop", rv: str = "1", cluster_ip: str | None = None,
            ports: tuple[str, ...] = ("http",)) -> dict[str, Any]:
    return {"kind": "Service",
            "metadata": {"name": name, "namespace": ns, "uid": f"u-svc-{ns}-{name}",
                         "resourceVersion": rv},
            "spec": {"clusterIP": cluster_ip or "None",
                     "ports": [{"name": p, "port": 80 + i, "protocol": "TCP"}
                               for i, p in enumerate(ports)]}}


def endpoint_slice(name: str, service_name: str | None, addresses: list[str], ns: str = "shop",
                   rv: str = "1", hostnames: list[str | None] | None = None
                   ) -> dict[str, Any]:
    labels = {} if service_name is None else {"kubernetes.io/service-name": service_name}
    hosts = hostnames or [None] * len(addresses)
    return {"kind": "EndpointSlice", "addressType": "IPv4",
            "metadata": {"name": name, "namespace": ns, "uid": f"u-sl-{ns}-{name}",
                         "resourceVersion": rv, "labels": labels},
            "endpoints": [{"addresses": [a], "conditions": {"ready": True},
                           **({"hostname": h} if h else {})}
                          for a, h in zip(addresses, hosts, strict=True)],
            "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}


def ingest(store: Store, tmp_path: Path, *objs: dict[str, Any], project: bool = True) -> None:
    path = tmp_path / "in.json"
    path.write_text(json.dumps({"kind": "List", "items": list(objs)}))
    ingest_files(store, [str(path)], project=project)


def replayed(store: Store) -> frozenset[Record]:
    """The zone a full replay of the log up to the checkpoint gives."""
    checkpoint = store.max_tracking_seq()
    return rebuild(to_change(e) for e in store.select_events(lte=checkpoint)).records()


def streamed(store: Store) -> list[Record]:
    latest = store.latest_version()
    with store.current_records() as (version, records):
        out = list(records)
    assert version == latest
    return out


def canonical(owner: str) -> dns.name.Name:
    if owner.endswith("."):
        return dns.name.from_text(owner)
    return dns.name.from_text(owner, origin=ZONE)


# --------------------------------------------------------------------------- the API


def test_current_records_streams_the_visible_zone_in_canonical_order(
        backend_url: str, tmp_path: Path) -> None:
    """Names a collated text column would reorder (``a-b``/``ab``/``a0``, ``_http``)
    come out in DNSSEC canonical order on SQLite and PostgreSQL alike: the key is
    bytes."""
    store = Store.open(backend_url)
    try:
        names = ["ab", "a-b", "a0", "a", "b", "a-a"]
        objs: list[dict[str, Any]] = []
        for i, name in enumerate(names):
            objs.append(service(name))
            objs.append(endpoint_slice(f"{name}-1", name, [f"10.0.{i}.1", f"10.0.{i}.2"],
                                       hostnames=["web-1", "web1"]))
        objs.append(service("api", cluster_ip="10.96.0.10"))
        ingest(store, tmp_path, *objs)
        records = streamed(store)
        assert set(records) == replayed(store)
        assert len(records) == len(set(records)) == store.record_count()
        keys = [(canonical(r.owner), r.rtype) for r in records if not r.owner.endswith(".")]
        assert keys == sorted(keys)
        ptrs = [canonical(r.owner) for r in records if r.rtype == PTR]
        assert ptrs == sorted(ptrs)
        assert [sort_key(r.owner) for r in records] == sorted(sort_key(r.owner)
                                                              for r in records)
    finally:
        store.close()


def test_current_records_before_the_first_version_is_empty(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'z.db'}")
    ingest(store, tmp_path, service("db"), project=False)
    with store.current_records() as (version, records):
        assert (version, list(records)) == (None, [])
    assert store.record_count() == 0


def test_an_endpoint_ptr_shadowed_by_a_cluster_ip_is_kept_but_not_streamed(
        backend_url: str, tmp_path: Path) -> None:
    """RECORDS.md "Reverse zones": a cluster IP keeps only its own PTR. The hidden
    endpoint PTR stays stored (visible false), and shows again when the cluster IP
    goes."""
    store = Store.open(backend_url)
    try:
        ingest(store, tmp_path, service("db"), endpoint_slice("db-1", "db", ["10.0.0.5"]),
               service("api", cluster_ip="10.0.0.5"))
        hidden = Record("5.0.0.10.in-addr.arpa.", PTR, ("10-0-0-5.db.shop.svc",))
        shown = Record("5.0.0.10.in-addr.arpa.", PTR, ("api.shop.svc",))
        assert (("shop", "db"), hidden, False) in set(store.iter_model())
        assert shown in streamed(store)
        assert hidden not in streamed(store)
        assert set(streamed(store)) == replayed(store)
        assert store.record_count() == len(streamed(store))
        ingest(store, tmp_path, service("api", rv="2", cluster_ip="10.0.0.6"))
        assert hidden in streamed(store)
        assert shown not in streamed(store)
        assert set(streamed(store)) == replayed(store)
        assert store.record_count() == len(streamed(store))
    finally:
        store.close()


_label = st.text(alphabet="ab-_0z", min_size=1, max_size=4).filter(
    lambda s: not s.startswith("-") and not s.endswith("-"))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(_label, min_size=1, max_size=4), min_size=2, max_size=20))
def test_sort_key_is_dnssec_canonical_order(names: list[list[str]]) -> None:
    """Relative forward owners and absolute PTR owners: bytewise key order equals
    dnspython's name order (RFC 4034 §6.1) within a zone."""
    owners = [".".join(labels) for labels in names]
    assert [canonical(o) for o in sorted(owners, key=sort_key)] == sorted(
        canonical(o) for o in owners)
    absolute = [f"{o}.in-addr.arpa." for o in owners]
    assert [canonical(o) for o in sorted(absolute, key=sort_key)] == sorted(
        canonical(o) for o in absolute)


def test_rebuild_compares_with_the_persisted_model(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'z.db'}")
    ingest(store, tmp_path, service("db"), endpoint_slice("db-1", "db", ["10.0.0.1"]))
    assert ProjectionRunner(store).rebuild().identical
    # A persisted model that lost a row is caught: the check reads the stored model.
    with store.engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM current_records WHERE rtype = 12")
    report = ProjectionRunner(store).rebuild()
    assert not report.identical
    assert {r.rtype for r in report.extra} == {PTR}


# --------------------------------------------------------------------------- properties

NAMESPACES = ("a", "b")
SERVICES = ("s0", "s1", "s2")
SLICES = ("e0", "e1", "e2", "e3")
IPS = tuple(f"10.0.0.{i}" for i in range(1, 6))  # cluster IPs and endpoints overlap


@st.composite
def _op(draw: st.DrawFn) -> tuple[str, str, str, dict[str, Any] | None]:
    """(kind, namespace, name, object or None for a deletion)."""
    ns = draw(st.sampled_from(NAMESPACES))
    kind = draw(st.sampled_from(("Service", "EndpointSlice", "EndpointSlice", "Endpoints")))
    if kind == "EndpointSlice":
        name = draw(st.sampled_from(SLICES))
    else:
        name = draw(st.sampled_from(SERVICES))
    if draw(st.integers(0, 5)) == 0:
        return kind, ns, name, None
    if kind == "Service":
        ips = draw(st.lists(st.sampled_from(IPS), max_size=1))
        return kind, ns, name, service(name, ns, cluster_ip=ips[0] if ips else None)
    addresses = draw(st.lists(st.sampled_from(IPS), min_size=0, max_size=3, unique=True))
    if kind == "Endpoints":
        return kind, ns, name, {
            "kind": "Endpoints",
            "metadata": {"name": name, "namespace": ns, "uid": f"u-ep-{ns}-{name}"},
            "subsets": [{"addresses": [{"ip": a} for a in addresses],
                         "ports": [{"name": "http", "port": 80}]}] if addresses else []}
    owner = draw(st.sampled_from((*SERVICES, None)))
    hosts = draw(st.lists(st.sampled_from((None, "h0", "h1")), min_size=len(addresses),
                          max_size=len(addresses)))
    return kind, ns, name, endpoint_slice(name, owner, addresses, ns, hostnames=hosts)


class Log:
    """Appends events for random operations, numbering resourceVersions itself."""

    def __init__(self, store: Store, *, at_0003: bool = False) -> None:
        """``at_0003``: the database is at revision 0003 (before ``events.origin``), so
        rows are written with that revision's columns, as its code wrote them."""
        self.store = store
        self.rv = 0
        self.at_0003 = at_0003

    def append(self, ops: list[tuple[str, str, str, dict[str, Any] | None]]) -> None:
        from datetime import UTC, datetime

        from zonegen.model import ADDED, DELETED, Event

        batch = []
        for kind, ns, name, obj in ops:
            self.rv += 1
            body = obj or {"kind": kind, "metadata": {"name": name, "namespace": ns}}
            body["metadata"]["resourceVersion"] = str(self.rv)
            body["metadata"]["uid"] = f"u-{kind}-{ns}-{name}"
            batch.append(Event(0, datetime(2026, 1, 1, tzinfo=UTC), "default",
                               ADDED if obj is not None else DELETED, kind, ns, name,
                               body["metadata"]["uid"], str(self.rv), json.dumps(body)))
        if self.at_0003:
            _append_0003(self.store, batch)
        else:
            self.store.append_events(batch)


def _append_0003(store: Store, batch: list[Any]) -> None:
    """Append events and move object heads with revision 0003's columns (raw SQL: the
    current code writes the newest schema's columns)."""

    with store.engine.begin() as conn:
        for e in batch:
            seq = conn.execute(sa.text(
                "INSERT INTO events (received_us, source, type, kind, namespace, name, uid, "
                "resource_version, object) VALUES (1767225600000000, 'test', :type, :kind, "
                ":ns, :name, :uid, :rv, :obj) RETURNING seq"),
                {"type": e.type, "kind": e.kind, "ns": e.namespace, "name": e.name,
                 "uid": e.uid, "rv": e.resource_version, "obj": e.object_json}).scalar_one()
            key = {"kind": e.kind, "ns": e.namespace, "name": e.name}
            conn.execute(sa.text("DELETE FROM object_heads WHERE kind = :kind AND "
                                 "namespace = :ns AND name = :name"), key)
            conn.execute(sa.text(
                "INSERT INTO object_heads (kind, namespace, name, uid, resource_version, "
                "last_seq, deleted) VALUES (:kind, :ns, :name, :uid, :rv, :seq, :deleted)"),
                {**key, "uid": e.uid, "rv": e.resource_version, "seq": seq,
                 "deleted": e.type == "DELETED"})


def _events_0003(store: Store, lte: int) -> list[Any]:
    """The events up to ``lte`` read with revision 0003's columns."""

    from zonegen.model import Event
    from zonegen.store.schema import from_us

    with store.engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT seq, received_us, source, type, kind, namespace, name, uid, "
            "resource_version, object FROM events WHERE seq <= :lte ORDER BY seq"),
            {"lte": lte}).all()
    return [Event(int(r.seq), from_us(r.received_us), r.source, r.type, r.kind, r.namespace,
                  r.name, r.uid, r.resource_version, r.object) for r in rows]


def model(store: Store) -> list[tuple[tuple[str, str], Record, bool]]:
    return sorted(((k, r, v) for k, r, v in store.iter_model()), key=repr)


def assert_model_is_a_replay(store: Store) -> None:
    """The persisted model (rows, visibility, objects, count) equals a full replay of
    the log up to the checkpoint."""
    from zonegen.project import object_rows

    checkpoint = store.max_tracking_seq()
    changes = [(e.seq, to_change(e)) for e in store.select_events(lte=checkpoint)]
    full = rebuild(c for _s, c in changes)
    assert model(store) == sorted(full.rows(), key=repr)
    assert store.projected() == sorted(object_rows(changes)[0])
    assert store.record_count() == len(full) == len(streamed(store))
    assert set(streamed(store)) == full.records()


def stored_changes(store: Store) -> set[tuple[bool, Record, int]]:
    """The newest version's record changes with their causes, as stored."""
    from zonegen.store import record_changes

    version = store.latest_version()
    assert version is not None
    with store.engine.connect() as conn:
        return {(bool(r.added), Record.from_row(r.owner, r.rtype, r.rdata, r.ttl),
                 int(r.cause_seq))
                for r in conn.execute(record_changes.select().where(
                    record_changes.c.version_id == version.version_id))}


@settings(max_examples=25, deadline=None)
@given(st.lists(st.lists(_op(), min_size=1, max_size=8), min_size=1, max_size=6),
       st.integers(1, 5))
def test_the_persisted_model_equals_a_full_replay(
        batches: list[list[tuple[str, str, str, dict[str, Any] | None]]],
        batch_size: int) -> None:
    """Random Services, slices moving between Services (and losing their label),
    legacy Endpoints, deletions and cluster IPs equal to endpoint IPs (PTR shadowing),
    projected in random batches and chunk sizes: after every catch-up the persisted
    model equals a full replay, and the stored causes equal the old whole-projection
    path's."""
    from zonegen.project import Projection

    store = Store.open("sqlite://")
    log = Log(store)
    reference = Projection()
    seen = 0
    for i, ops in enumerate(batches):
        log.append(ops)
        pending = [(e.seq, to_change(e)) for e in store.select_events(gt=seen)]
        seen = store.max_event_seq()
        expected = reference.apply_many(pending)
        made = ProjectionRunner(store, batch_size=batch_size).catch_up()
        assert_model_is_a_replay(store)
        if i == 0:
            assert stored_changes(store) == {
                (True, r, expected.added.get(r, 0)) for r in reference.records()}
        elif expected:
            assert stored_changes(store) == \
                {(True, r, s) for r, s in expected.added.items()} | \
                {(False, r, s) for r, s in expected.removed.items()}
        else:
            assert made == []
    store.close()


Ops = list[tuple[str, str, str, dict[str, Any] | None]]
_batches = st.lists(st.lists(_op(), min_size=1, max_size=8), min_size=1, max_size=5)


def _project(store: Store, log: Log, batches: list[Ops], start: float = 1.7e9) -> None:
    for i, ops in enumerate(batches):
        log.append(ops)
        ProjectionRunner(store, clock=lambda i=i: start + 60 * i).catch_up()


@settings(max_examples=10, deadline=None)
@given(_batches, _batches)
def test_the_persisted_model_survives_compaction(before: list[Ops], after: list[Ops]) -> None:
    """``compact`` keeps every event the model's object index points at: the model
    still equals a replay of what is left, and later changes still fold on it."""
    from datetime import UTC, datetime

    store = Store.open("sqlite://")
    log = Log(store)
    _project(store, log, before)
    latest = store.latest_version()
    assert latest is not None
    store.compact(latest.version_id, datetime(2026, 6, 1, tzinfo=UTC))
    assert_model_is_a_replay(store)
    _project(store, log, after, start=1.8e9)
    assert_model_is_a_replay(store)
    store.close()


@settings(max_examples=10, deadline=None)
@given(_batches, _batches)
def test_a_failed_commit_leaves_the_model_at_the_previous_checkpoint(
        before: list[Ops], failing: list[Ops]) -> None:
    """A crash between batches: the commit fails after the version, its changes and
    the model's rows were written (the last statement of the transaction raises).
    Nothing of it stays, and the next catch-up folds the same events correctly."""
    from sqlalchemy import event as sa_event

    store = Store.open("sqlite://")
    log = Log(store)
    _project(store, log, before)
    state = (store.max_tracking_seq(), store.versions(), model(store),
             store.projected(), store.record_count())
    for ops in failing:
        log.append(ops)

    def crash(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.startswith("UPDATE read_models"):
            raise RuntimeError("power cut")

    sa_event.listen(store.engine, "before_cursor_execute", crash)
    with pytest.raises(RuntimeError, match="power cut"):
        ProjectionRunner(store, clock=lambda: 1.9e9).catch_up()
    sa_event.remove(store.engine, "before_cursor_execute", crash)
    assert state == (store.max_tracking_seq(), store.versions(),
                     model(store), store.projected(),
                     store.record_count())
    ProjectionRunner(store, clock=lambda: 1.9e9).catch_up()
    assert store.max_tracking_seq() == store.max_event_seq()
    assert_model_is_a_replay(store)
    store.close()


def _old_catch_up(store: Store, now: int) -> None:
    """What the runner of revision 0003 committed: a version and its changes from the
    whole in-memory projection, with the checkpoint, and no read model. Written with
    0003's columns in raw SQL (today's code writes columns of later revisions)."""
    from zonegen.model import encode_rdata
    from zonegen.store import PROJECTION

    with store.engine.begin() as conn:
        checkpoint = int(conn.execute(sa.text("SELECT last_seq FROM trackings WHERE name = :n"),
                                      {"n": PROJECTION}).scalar() or 0)
        upto = int(conn.execute(sa.text("SELECT max(seq) FROM events")).scalar() or 0)
        first = conn.execute(sa.text("SELECT count(*) FROM zone_versions")).scalar_one() == 0
    before = rebuild(to_change(e) for e in _events_0003(store, checkpoint)).records()
    after = rebuild(to_change(e) for e in _events_0003(store, upto)).records()
    rows = [(False, r) for r in before - after] + \
        [(True, r) for r in (after if first else after - before)]
    with store.engine.begin() as conn:
        if checkpoint:
            conn.execute(sa.text("UPDATE trackings SET last_seq = :u WHERE name = :n"),
                         {"u": upto, "n": PROJECTION})
        else:
            conn.execute(sa.text("INSERT INTO trackings (name, last_seq) VALUES (:n, :u)"),
                         {"u": upto, "n": PROJECTION})
        conn.execute(sa.text("INSERT INTO zone_versions (serial, created_us, last_event_seq) "
                             "VALUES (:s, :c, :u)"), {"s": now, "c": now * 1_000_000, "u": upto})
        vid = conn.execute(sa.text("SELECT max(id) FROM zone_versions")).scalar_one()
        for added, r in rows:
            conn.execute(sa.text(
                "INSERT INTO record_changes (version_id, added, owner, rtype, ttl, rdata, "
                "cause_seq) VALUES (:v, :a, :o, :t, :ttl, :d, :c)"),
                {"v": vid, "a": added, "o": r.owner, "t": r.rtype, "ttl": r.ttl,
                 "d": encode_rdata(r.rdata), "c": upto})


@settings(max_examples=8, deadline=None)
@given(_batches, st.lists(_op(), min_size=1, max_size=8))
def test_migration_0004_builds_the_model_of_a_0003_database(
        batches: list[Ops], pending: Ops) -> None:
    """A database created at 0003 and projected by the old path, with events left
    pending: upgrading builds the model at its checkpoint (not at the newest event),
    and the pending events then fold on it."""
    from zonegen import migrate

    store = Store.open("sqlite://", upgrade=False)
    migrate.upgrade(store.engine, "0003")
    log = Log(store, at_0003=True)
    for i, ops in enumerate(batches):
        log.append(ops)
        _old_catch_up(store, 1_700_000_000 + i)
    log.append(pending)
    migrate.upgrade(store.engine, "head")
    assert store.max_tracking_seq() < store.max_event_seq()
    assert_model_is_a_replay(store)
    ProjectionRunner(store, clock=lambda: 1.8e9).catch_up()
    assert_model_is_a_replay(store)
    store.close()


def test_the_rebuild_scan_reads_the_object_index_alone(tmp_path: Path) -> None:
    """``newest_events`` (what ``project --rebuild`` scans) and the projection load group
    the log by object, (source, kind, namespace, name): SQLite answers both from
    ``ix_events_object`` without reading one event row (migration 0007; before it, the
    source was read from the table, and a 1M-event rebuild took 63 s instead of ~10)."""
    from sqlalchemy import event as sa_event

    store = Store.open(f"sqlite:///{tmp_path / 'z.db'}")
    try:
        seen: list[str] = []

        def remember(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            if "GROUP BY" in statement:
                seen.append(statement)

        sa_event.listen(store.engine, "before_cursor_execute", remember)
        list(store.newest_events(10))
        list(store.newest_events(10, sources=["default"]))
        sa_event.remove(store.engine, "before_cursor_execute", remember)
        assert len(seen) == 2
        with store.engine.connect() as conn:
            for statement in seen:
                params = {"seq_1": 10, "source_1_1": "default"}
                plan = " | ".join(str(r[-1]) for r in conn.exec_driver_sql(
                    "EXPLAIN QUERY PLAN " + statement.replace("?", "10", 1).replace(
                        "?", "'default'"), ()))
                assert "USING COVERING INDEX ix_events_object" in plan, (plan, params)
                assert "TEMP B-TREE" not in plan, plan
    finally:
        store.close()
