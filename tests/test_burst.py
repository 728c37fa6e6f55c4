"""Issue #11's burst and one-change ingest: the work of an ingest and its catch-up
follows the change, not the cluster (statements, query plans, rows touched), with the
results unchanged (tests/test_readmodel.py proves the model equals a replay)."""

from __future__ import annotations

import gc
import io
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import event as sa_event

from zonegen.changes import to_change
from zonegen.errors import InvalidInput
from zonegen.ingest import _Ingester, _LazyHeads, ingest_files, read_items
from zonegen.model import PTR, decode_rdata, encode_rdata
from zonegen.project import rebuild
from zonegen.runner import ProjectionRunner
from zonegen.sources import DEFAULT_SOURCE
from zonegen.store import Store, current_records

ROOT = Path(__file__).resolve().parent.parent
BIG_TABLES = ("events", "object_heads", "projected_objects", "current_records",
              "record_changes")
# An index search bounded only by the leading columns every row shares reads the table.
_WHOLE = ("(source=?)", "(projection=?)", "(projection=? AND kind=?)")


def service(s: int) -> dict[str, Any]:
    return {"kind": "Service",
            "metadata": {"name": f"svc-{s}", "namespace": f"ns{s % 3}", "uid": f"u-svc-{s}",
                         "resourceVersion": "1"},
            "spec": {"clusterIP": "None", "ports": [{"name": "http", "port": 80}]}}


def endpoint_slice(s: int, rv: int, gen: int = 0) -> dict[str, Any]:
    return {"kind": "EndpointSlice", "addressType": "IPv4",
            "metadata": {"name": f"svc-{s}-x", "namespace": f"ns{s % 3}",
                         "uid": f"u-sl-{s}", "resourceVersion": str(rv),
                         "labels": {"kubernetes.io/service-name": f"svc-{s}"}},
            "endpoints": [{"addresses": [f"10.{s}.{gen}.{p + 1}"],
                           "conditions": {"ready": True}, "hostname": f"p{p}"}
                          for p in range(3)],
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}


def write(path: Path, objs: list[dict[str, Any]]) -> str:
    path.write_text("".join(json.dumps({"type": "MODIFIED", "object": o}) + "\n"
                            for o in objs))
    return str(path)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Store]:
    """A file database (query plans need a real one) of 40 projected Services."""
    store = Store.open(f"sqlite:///{tmp_path / 'z.db'}")
    path = tmp_path / "cluster.json"
    path.write_text(json.dumps({"kind": "List", "items": [
        o for s in range(40) for o in (service(s), endpoint_slice(s, 1))]}))
    ingest_files(store, [str(path)])
    yield store
    store.close()


class Statements:
    """Every statement the store's engine runs, with its first parameter set."""

    def __init__(self, store: Store) -> None:
        self.engine = store.engine
        self.seen: list[tuple[str, Any]] = []
        sa_event.listen(self.engine, "before_cursor_execute", self._record)

    def _record(self, _conn: Any, _cursor: Any, sql: str, params: Any, _context: Any,
                executemany: bool) -> None:
        self.seen.append((sql, params[0] if executemany and params else params))

    def stop(self) -> None:
        sa_event.remove(self.engine, "before_cursor_execute", self._record)

    def on(self, table: str) -> list[tuple[str, Any]]:
        return [(sql, p) for sql, p in self.seen if f" {table}" in sql.replace('"', " ")]


def whole_table_reads(store: Store, statements: list[tuple[str, Any]]) -> list[str]:
    """The plan lines of ``statements`` that read a big table whole (or all of one
    source or projection)."""
    out: list[str] = []
    with store.engine.connect() as conn:
        for sql, params in statements:
            if not sql.lstrip().upper().startswith(("SELECT", "DELETE", "UPDATE")):
                continue
            plan = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params).all()
            for row in plan:
                detail = str(row[-1])
                words = detail.split()
                table = words[1] if len(words) > 1 else ""
                if table in BIG_TABLES and (words[0] == "SCAN" or detail.endswith(_WHOLE)):
                    out.append(f"{detail}  <-  {sql[:120]}")
    return out


def test_a_one_change_ingest_reads_no_table_whole(cluster: Store, tmp_path: Path) -> None:
    """Every look-up of a one-change ingest and its catch-up is an index search by the
    changed object's or Service's key: none reads all events, heads, objects or records
    (SQLite answered row-value ``IN`` lists by reading every row of the source)."""
    watched = Statements(cluster)
    report = ingest_files(cluster, [write(tmp_path / "one.json", [endpoint_slice(7, 2, 1)])])
    watched.stop()
    assert report.new_events == 1
    assert whole_table_reads(cluster, watched.seen) == []


def test_a_burst_is_looked_up_in_bulk(cluster: Store, tmp_path: Path) -> None:
    """120 updates of known objects: the log is asked a few statements per batch, not
    one per object (whether each version was stored before, the heads)."""
    burst = [endpoint_slice(s % 40, 10 + s, 1 + s // 40) for s in range(120)]
    watched = Statements(cluster)
    report = ingest_files(cluster, [write(tmp_path / "burst.json", burst)], project=False)
    watched.stop()
    assert report.new_events == 120
    assert len(watched.on("events")) <= 10
    assert len(watched.on("object_heads")) <= 10


def test_a_moved_service_keeps_its_rows(cluster: Store, tmp_path: Path) -> None:
    """Every endpoint of a Service moves: its removed records' rows take the added ones
    (updated in place), and the model still equals a full replay."""
    def rows() -> dict[int, tuple[str, str]]:
        c = current_records.c
        with cluster.engine.connect() as conn:
            return {int(r.id): (r.owner, r.rdata) for r in conn.execute(
                sa.select(c.id, c.owner, c.rdata).where(c.service_name == "svc-5"))}

    before = rows()
    ingest_files(cluster, [write(tmp_path / "move.json", [endpoint_slice(5, 2, 9)])])
    after = rows()
    assert set(after) == set(before)
    assert {rdata for _o, rdata in after.values()} >= {'["10.5.9.1"]', '["10.5.9.2"]'}
    assert not {rdata for _o, rdata in after.values()} & {'["10.5.0.1"]'}
    checkpoint = cluster.max_tracking_seq()
    full = rebuild(to_change(e) for e in cluster.select_events(lte=checkpoint))
    assert sorted(cluster.iter_model(), key=repr) == sorted(full.rows(), key=repr)


def test_a_changed_address_is_rewritten_in_its_own_row(cluster: Store, tmp_path: Path
                                                        ) -> None:
    """Every endpoint of a Service moves: each A record that keeps its owner (the
    Service's and each hostname's) is rewritten in a row of its own owner and type, so
    only rdata changes and no index entry moves; the PTRs, whose owners change, take
    the other freed rows. The model still equals a full replay."""
    def rows() -> dict[int, tuple[str, int]]:
        c = current_records.c
        with cluster.engine.connect() as conn:
            return {int(r.id): (r.owner, r.rtype) for r in conn.execute(
                sa.select(c.id, c.owner, c.rtype).where(c.service_name == "svc-5"))}

    before = rows()
    ingest_files(cluster, [write(tmp_path / "move.json", [endpoint_slice(5, 2, 9)])])
    after = rows()
    assert set(after) == set(before)
    kept = {i for i, (owner, _t) in before.items() if not owner.endswith(".arpa.")}
    assert len(kept) > 3
    assert {i: after[i] for i in kept} == {i: before[i] for i in kept}
    checkpoint = cluster.max_tracking_seq()
    full = rebuild(to_change(e) for e in cluster.select_events(lte=checkpoint))
    assert sorted(cluster.iter_model(), key=repr) == sorted(full.rows(), key=repr)


def test_a_burst_reads_no_stored_version_it_replaces(cluster: Store, tmp_path: Path) -> None:
    """A slice update that is the first change of its Service in the batch, keeping it
    in that Service, replaces the stored version before any recompute could see it:
    that version is not read from the log (half of loading a burst's Services). A
    Service touched earlier in the batch (here by its own update) and a slice moving
    to another Service still read theirs. Causes and the model stay a replay's."""
    stored = {(kind, name): seq for kind, _ns, name, seq, _sns, _sname in cluster.projected()}
    moved = endpoint_slice(31, 60, 2)
    moved["metadata"]["labels"]["kubernetes.io/service-name"] = "svc-34"  # both ns1
    bumped = {**service(20), "metadata": {**service(20)["metadata"], "resourceVersion": "7"}}
    burst = [endpoint_slice(s, 50 + s, 2) for s in range(10)] + \
        [bumped, endpoint_slice(20, 70, 2), moved]
    watched = Statements(cluster)
    report = ingest_files(cluster, [write(tmp_path / "burst.json", burst)])
    watched.stop()
    assert report.new_events == 13
    read: set[int] = set()
    for sql, params in watched.on("events"):
        if "events.seq IN" in sql:
            read.update(p for p in params if isinstance(p, int))
    for s in range(10):
        assert stored[("EndpointSlice", f"svc-{s}-x")] not in read
        assert stored[("Service", f"svc-{s}")] in read
    assert stored[("EndpointSlice", "svc-20-x")] in read
    assert stored[("EndpointSlice", "svc-31-x")] in read
    checkpoint = cluster.max_tracking_seq()
    full = rebuild(to_change(e) for e in cluster.select_events(lte=checkpoint))
    assert sorted(cluster.iter_model(), key=repr) == sorted(full.rows(), key=repr)


def test_bench_splits_a_burst_by_phase(cluster: Store, tmp_path: Path) -> None:
    """bench/bench_burst.py's ``split`` times one whole ingest of a burst phase by
    phase, on a copy of the database (run as its own process: it wraps functions)."""
    db = cluster.engine.url.database
    assert db is not None
    burst = write(tmp_path / "burst.json", [endpoint_slice(s, 50 + s, 3) for s in range(40)])
    before = cluster.max_event_seq()
    done = subprocess.run([sys.executable, "-m", "bench.bench_burst", "split", db, burst],
                          cwd=ROOT, capture_output=True, text=True, check=True)
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"ingest of {burst}: 40 new events")
    assert lines[1].split() == ["wall", "CPU"]
    labels = [line.rsplit(None, 4)[0].strip() for line in lines[2:]]
    assert labels[:3] == ["open the store", "reconcile (decode, reduce, look up the log)",
                          "append events"]
    assert "their stored records" in labels
    assert "read-model rows" in labels
    assert "journal rows (record_changes)" in labels
    for line in lines[2:]:
        wall, cpu = line.rsplit(None, 4)[1::2]
        assert float(wall) >= 0
        assert float(cpu) >= 0
    assert cluster.max_event_seq() == before


def test_ingest_leaves_the_garbage_collector_as_it_found_it(tmp_path: Path) -> None:
    store = Store.open("sqlite://")
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    try:
        assert gc.isenabled()
        ingest_files(store, [write(tmp_path / "a.json", [service(1)])])
        assert gc.isenabled()
        with pytest.raises(InvalidInput):
            ingest_files(store, [str(bad)])
        assert gc.isenabled()
        gc.disable()
        ingest_files(store, [write(tmp_path / "b.json", [endpoint_slice(1, 2)])])
        assert not gc.isenabled()
    finally:
        gc.enable()
        store.close()


_text = st.text(st.characters(codec="utf-8"), max_size=12)
_rdata = st.one_of(
    st.tuples(_text), st.tuples(st.integers(0, 65535), st.integers(0, 65535),
                                st.integers(0, 65535), _text),
    st.lists(st.one_of(st.integers(-2**40, 2**40), _text), max_size=5).map(tuple))


@settings(max_examples=500, deadline=None)
@given(_rdata)
def test_rdata_is_stored_as_json_writes_it_and_read_back_exactly(rdata: tuple[Any, ...]
                                                                  ) -> None:
    text = encode_rdata(rdata)
    assert text == json.dumps(list(rdata), separators=(",", ":"))
    assert decode_rdata(text) == rdata
    assert [type(x) for x in decode_rdata(text)] == [type(x) for x in rdata]


def _ingested(store: Store, text: str) -> _Ingester:
    """Store ``text`` (kubectl output) as ``ingest_files`` does, without projecting."""
    with store.appending() as appender:
        ingester = _Ingester(appender, _LazyHeads(appender, DEFAULT_SOURCE), DEFAULT_SOURCE,
                             None)
        for item in read_items(io.StringIO(text), "input"):
            ingester.add(item)
        ingester.finish()
    return ingester


def _odd_objects() -> list[dict[str, Any]]:
    """Objects of every carried kind, taking the reducers' fast and general paths."""
    v6 = endpoint_slice(2, 1)
    v6["addressType"] = "IPv6"
    for p, ep in enumerate(v6["endpoints"]):
        ep["addresses"] = [f"FD00:0::{p + 1}"]  # not canonical: the general path
    unlabelled = endpoint_slice(3, 1)
    del unlabelled["metadata"]["labels"]  # the reducer warns: not carried
    legacy = {"kind": "Endpoints", "metadata": {"name": "svc-4", "namespace": "ns1",
                                                "uid": "u-ep-4", "resourceVersion": "3"},
              "subsets": [{"addresses": [{"ip": "10.4.0.1", "hostname": "a"}],
                           "ports": [{"name": "http", "port": 80}]}]}
    managed = service(5)
    managed["metadata"]["managedFields"] = [{"manager": "kubectl"}]
    del managed["kind"]  # a list item: the list gives the kind
    return [service(1), endpoint_slice(1, 1), v6, unlabelled, legacy, managed]


def test_ingest_carries_what_its_stored_events_reduce_to(tmp_path: Path) -> None:
    """The objects ``ingest`` reduced are handed to the projection of their events
    instead of reducing the stored form again: each equals what the stored event
    reduces to. Not carried: an object the reducer warned about (the projection logs
    the warning), and anything read from YAML (its types may not survive JSON)."""
    store = Store.open("sqlite://")
    try:
        objs = _odd_objects()
        text = json.dumps({"kind": "List", "items": objs[:5]}) + json.dumps(
            {"kind": "ServiceList", "items": [objs[5]]})
        ingester = _ingested(store, text)
        events = {e.seq: e for e in store.select_events()}
        assert len(events) == 6
        unlabelled = [seq for seq, e in events.items() if e.name == "svc-3-x"]
        assert sorted(ingester.reduced) == sorted(set(events) - set(unlabelled))
        for seq, obj in ingester.reduced.items():
            assert obj == to_change(events[seq]).obj
        again = [{**o, "metadata": {**o["metadata"], "resourceVersion": "9"}}
                 for o in objs if "kind" in o]
        assert _ingested(store, yaml.safe_dump_all(again)).reduced == {}
    finally:
        store.close()


def test_a_carried_object_that_is_not_its_events_is_reduced_again(tmp_path: Path) -> None:
    """The runner takes a carried object only for the event it names (kind, name, uid,
    version): any other is ignored and the stored event reduced, so the model is a
    replay's either way."""
    store = Store.open(f"sqlite:///{tmp_path / 'z.db'}")
    try:
        ingest_files(store, [write(tmp_path / "a.json",
                                   [service(1), endpoint_slice(1, 1), service(2)])],
                     project=False)
        first, slice_seq, other = (e.seq for e in store.select_events())
        wrong = to_change(store.select_events()[2]).obj  # svc-2 offered for svc-1
        assert wrong is not None
        runner = ProjectionRunner(store, reduced={first: wrong, slice_seq: wrong})
        runner.catch_up()
        full = rebuild(to_change(e) for e in store.select_events())
        assert sorted(store.iter_model(), key=repr) == sorted(full.rows(), key=repr)
        assert other
    finally:
        store.close()


def test_ptrs_at_takes_known_rows_as_reading_them_would(cluster: Store, tmp_path: Path
                                                        ) -> None:
    """``ptrs_at`` with the rows the caller holds (read by ``records_of``) returns what
    it returns reading every row, also at an address two Services publish and at a
    cluster IP that shadows an endpoint's PTR."""
    shared = endpoint_slice(41, 1)
    shared["endpoints"][0]["addresses"] = ["10.3.0.1"]  # svc-3's first endpoint too
    clustered = {**service(42), "spec": {"clusterIP": "10.5.0.2",
                                         "ports": [{"name": "http", "port": 80}]}}
    ingest_files(cluster, [write(tmp_path / "more.json",
                                 [service(41), shared, clustered])])
    owners = {r.owner for _k, r, _v in cluster.iter_model() if r.rtype == PTR}
    assert "1.0.3.10.in-addr.arpa." in owners
    everything = cluster.ptrs_at(owners)
    stored = cluster.records_of([("ns0", "svc-3"), ("ns2", "svc-5"), ("ns1", "svc-7")])
    known = {row[0]: (key, r, row) for key, records in stored.items()
             for r, row in records.items() if r.rtype == PTR}
    assert len(known) >= 9
    assert sorted(cluster.ptrs_at(owners, known=known), key=repr) == sorted(everything,
                                                                              key=repr)
    assert any(not visible for _k, _r, (_id, visible) in everything)
    assert sum(r.owner == "1.0.3.10.in-addr.arpa." for _k, r, _v in everything) == 2


def test_ingest_carries_at_most_a_chunk_of_objects(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A large input carries only the first ``CARRIED_AT_MOST`` objects (its memory
    stays bounded); the rest are reduced from the log, with the same zone."""
    monkeypatch.setattr("zonegen.ingest.CARRIED_AT_MOST", 2)
    store = Store.open(f"sqlite:///{tmp_path / 'z.db'}")
    try:
        objs = [o for s in range(3) for o in (service(s), endpoint_slice(s, 1))]
        assert len(_ingested(store, json.dumps({"kind": "List", "items": objs})).reduced) == 2
        ingest_files(store, [write(tmp_path / "b.json", [endpoint_slice(s, 2, 1)
                                                         for s in range(3)])])
        full = rebuild(to_change(e) for e in store.select_events())
        assert sorted(store.iter_model(), key=repr) == sorted(full.rows(), key=repr)
    finally:
        store.close()
