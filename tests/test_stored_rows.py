"""Issue #11: ``export`` and ``serve`` read the read model as stored rows
(``Store.current_rows``: owner, rtype, rdata text, ttl) and make lines and wire fragments
straight from the text (the fast path of ``OwnerSelector``). These are the rows' own
edge cases; tests/test_export_stream.py's property tests cover the rest (every record
there goes through ``stored_rows`` and the same path)."""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path

import dns.name
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.test_export_stream import CONFIGS, FORWARD, consul_store, same_warnings
from zonegen import zonefile
from zonegen.model import CNAME, PTR, SRV, TXT, A, Record, ZoneConfig, encode_rdata
from zonegen.selection import NotInOrder, StoredRecord, decode_rdata, stored_rows
from zonegen.serve.feed import StoreFeed
from zonegen.serve.zoneset import ZoneSet
from zonegen.wire import WireZone

pytest_plugins = ["tests.postgres"]  # backend_url: SQLite and PostgreSQL

# --------------------------------------------------------------------------- decoding

field = st.one_of(st.integers(-(2**40), 2**40), st.text(max_size=12),
                  st.sampled_from(["10.0.0.1", "svc.ns.svc", 'a"b', "a\\b", "\x01", "é", ""]))


@settings(max_examples=400, deadline=None)
@given(st.lists(field, min_size=1, max_size=5).map(tuple))
def test_decode_rdata_is_json_of_what_encode_rdata_stored(rdata: tuple[object, ...]) -> None:
    text = encode_rdata(rdata)  # type: ignore[arg-type]
    assert decode_rdata(text) == tuple(json.loads(text)) == rdata


@pytest.mark.parametrize("text", [
    '["10.0.0.1"]', '[0,10,8080,"a.b"]', '[""]', '[0,0,0,""]', '["\\u00e9"]', '["é"]',
    '[1,"x"]', '["a","b"]', '[-1,2,3,"x"]', '[1.5,2,3,"x"]', '[1,2,3,"x"] ', '[ "x"]',
    '[true]', '[1,2,3,4,"x"]', '["a\\"b"]', '["a\\\\b"]'])
def test_decode_rdata_reads_any_json_as_json_does(text: str) -> None:
    assert decode_rdata(text) == tuple(json.loads(text))


@pytest.mark.parametrize("text", ['["a\x01"]', '[01,2,3,"x"]', '["x"', '["]'])
def test_decode_rdata_refuses_what_json_refuses(text: str) -> None:
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)
    with pytest.raises(json.JSONDecodeError):
        decode_rdata(text)


# --------------------------------------------------------------------------- fast path


def rows_of(records: list[Record]) -> list[StoredRecord]:
    return list(stored_rows(records))


EDGES: list[list[Record]] = [
    # an invalid address among valid ones: the owner goes the general way, warned once
    [Record("a", A, ("10.0.0.1",)), Record("a", A, ("300.0.0.1",)),
     Record("b", A, ("300.0.0.1",))],
    # TTLs other than the zone's, on every fast type
    [Record("a", A, ("10.0.0.1",), 30), Record("a", A, ("10.0.0.1",)),
     Record("_http._tcp.a", SRV, (0, 1, 80, "a"), 60),
     Record("1.0.0.10.in-addr.arpa.", PTR, ("a",), 7)],
    # an SRV target that is no name, and one out of the zone (absolute)
    [Record("_x._tcp.a", SRV, (0, 1, 80, "bad..name")),
     Record("_x._tcp.a", SRV, (0, 1, 80, "example.com."))],
    # SRV rdata of an unusual shape: fields as text (the general path renders it)
    [Record("_y._tcp.a", SRV, ("0", "1", "80", "a"))],
    # CNAME beside data; CNAME alone; TXT
    [Record("a", A, ("10.0.0.1",)), Record("a", CNAME, ("b",)),
     Record("c", CNAME, ("b",)), Record("c", CNAME, ("a",)),
     Record("dns-version", TXT, ("1.1.0",), 28800)],
    # glue repeated by a record, and records equal once published
    [Record("ns.dns", A, ("127.0.0.1",)), Record("p", A, ("10.0.0.9",)),
     Record("p", A, ("10.0.0.9",), 5), Record("p", SRV, (0, 1, 80, "p.cluster.local.")),
     Record("p", SRV, (0, 1, 80, "p"))],
]


def _in_order(records: list[Record]) -> list[Record]:
    from zonegen.store.readmodel import sort_key

    return sorted(records, key=lambda r: (sort_key(r.owner), r.rtype))


@pytest.mark.parametrize("records", EDGES, ids=range(len(EDGES)))
def test_rows_render_and_encode_as_the_whole_set_paths(records: list[Record]) -> None:
    rows = rows_of(_in_order(records))
    for config in CONFIGS:
        want: list[str] = []
        got: list[str] = []
        text = "".join(zonefile.render_rows(rows, config, 7, got))
        assert text == "".join(zonefile.render(records, config, 7, want))
        assert same_warnings(got) == same_warnings(want)
    zones = ZoneSet.from_rows(CONFIGS, rows, 7, 3)
    for config in CONFIGS:
        streamed = zones.zones[dns.name.from_text(config.zone)]
        built = WireZone.build(records, config, 7)
        assert [(o, sorted(f)) for o, f in streamed.owners()] == \
            [(o, sorted(f)) for o, f in built.owners()]
        assert streamed._extra == built._extra
        assert len(streamed) == len(built)


def test_one_owner_in_two_spellings_side_by_side_fast_then_general() -> None:
    """Rows of one owner under two stored spellings, next to each other: the first run
    goes the fast way, the second (a CNAME) cannot, so the first is taken back and
    both are selected together: the CNAME beside the A is set aside, as ``render``
    does."""
    rows: list[StoredRecord] = [("a", A, '["10.0.0.1"]', None),
                                ("a.cluster.local.", CNAME, '["b"]', None)]
    records = [Record(o, t, decode_rdata(d), ttl) for o, t, d, ttl in rows]
    want: list[str] = []
    got: list[str] = []
    text = "".join(zonefile.render_rows(rows, FORWARD, 7, got))
    assert text == "".join(zonefile.render(records, FORWARD, 7, want))
    assert "CNAME" not in text.split("IN NS", 1)[1]
    assert got == want == ["a.cluster.local.: CNAME and other data at one name; CNAME skipped"]
    streamed = ZoneSet.from_rows([FORWARD], rows, 7).primary
    built = WireZone.build(records, FORWARD, 7)
    assert [(o, sorted(f)) for o, f in streamed.owners()] == \
        [(o, sorted(f)) for o, f in built.owners()]
    assert streamed._extra == built._extra


# --------------------------------------------------------------------------- store


def test_current_rows_are_current_records_as_stored(tmp_path: Path) -> None:
    store = consul_store(tmp_path)
    with store.current_records() as (version, records):
        want = [(r.owner, r.rtype, r.rdata, r.ttl) for r in records]
    with store.current_rows() as (row_version, rows):
        got = [(o, t, decode_rdata(d), ttl) for o, t, d, ttl in rows]
    assert row_version == version is not None
    assert got == want
    assert len(got) == store.record_count()


def test_current_rows_on_every_backend_export_and_serve_what_the_version_holds(
        backend_url: str, tmp_path: Path) -> None:
    """SQLite's rows come from the driver's cursor, PostgreSQL's through SQLAlchemy:
    both stream the stored columns, and the zone made of them is the version's."""
    import io

    from tests.test_readmodel import endpoint_slice, ingest, service
    from zonegen.export import export_zone
    from zonegen.store import Store

    store = Store.open(backend_url)
    try:
        objs = [service("api", cluster_ip="10.96.0.10"), service("db"),
                endpoint_slice("db-1", "db", ["10.0.0.1", "10.0.0.2"],
                               hostnames=["db-0", None]),
                endpoint_slice("api-1", "api", ["10.96.0.10", "10.0.0.3"])]
        ingest(store, tmp_path, *objs)
        with store.current_records() as (version, records):
            want = [(r.owner, r.rtype, r.rdata, r.ttl) for r in records]
        with store.current_rows() as (row_version, rows):
            got = [(o, t, decode_rdata(d), ttl) for o, t, d, ttl in rows]
        assert row_version == version is not None
        assert got == want
        for config in (ZoneConfig(), ZoneConfig(zone="10.in-addr.arpa.")):
            out = io.StringIO()
            export_zone(store, config, stream=out)
            assert out.getvalue() == "".join(zonefile.render(
                store.records_at(version.version_id), config, version.serial))
        zones = StoreFeed(store, [ZoneConfig()]).load()
        assert zones is not None
        built = WireZone.build(store.records_at(version.version_id), ZoneConfig(),
                               version.serial)
        assert [(o, sorted(f)) for o, f in zones.primary.owners()] == \
            [(o, sorted(f)) for o, f in built.owners()]
    finally:
        store.close()


def test_current_rows_before_the_first_version_is_empty(tmp_path: Path) -> None:
    from zonegen.store import Store

    store = Store.open(f"sqlite:///{tmp_path / 'z.db'}")
    with store.current_rows() as (version, rows):
        assert version is None
        assert list(rows) == []


def test_serve_load_logs_the_stored_count_without_asking_again(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = consul_store(tmp_path)
    config = ZoneConfig()
    with caplog.at_level(logging.INFO, logger="zonegen"):
        zones = StoreFeed(store, [config]).load()
    assert zones is not None
    loaded = [r for r in caplog.records if r.getMessage().startswith("loaded ")]
    assert len(loaded) == 1
    with store.current_rows(zones=[config]) as (_, rows):
        streamed = len(list(rows))
    assert 0 < streamed < store.record_count()  # the reverse zones' PTRs are not read
    assert f": {streamed} records in " in loaded[0].getMessage()


ODD_OWNERS = ["a.ns.svc", "b.cluster.local.", "C.CLUSTER.LOCAL.", "d.Cluster.Local.",
              "cluster.local.", "local.", "e.example.", "xcluster.local.", "", "@",
              "f_x.ns.svc", "1.0.0.10.in-addr.arpa.", "2.0.0.10.IN-ADDR.ARPA.",
              "3.0.0.11.in-addr.arpa.", "in-addr.arpa.", "g%h.ns.svc", "i.ns.svc."]


@pytest.mark.parametrize("zone", ["cluster.local.", "10.in-addr.arpa.", "in-addr.arpa.",
                                  "local.", "."])
def test_current_rows_of_zones_hold_every_row_the_zone_publishes(
        tmp_path: Path, zone: str) -> None:
    """``current_rows(zones=...)`` reads a superset of what the selection publishes
    (relative owners below the forward zone, absolute ones compared lowercase): what
    ``export`` and ``serve`` stream from it is the zone of every stored row."""
    from zonegen.store import Store
    from zonegen.store.readmodel import ReadModelChange

    config = ZoneConfig(zone=zone, forward_zone="cluster.local.") if zone != "." else \
        ZoneConfig(zone=".", forward_zone="cluster.local.")
    records = [Record(o, PTR if "arpa" in o.lower() else A,
                      ("x.ns.svc",) if "arpa" in o.lower() else (f"10.0.0.{i}",), None)
               for i, o in enumerate(ODD_OWNERS)]
    store = Store.open(f"sqlite:///{tmp_path / 'z.db'}")
    store.commit_version(("projection", 0, 0), serial=5, read_model=ReadModelChange(
        added=[(("ns", "svc"), r, True) for r in records], records=len(records)))
    with store.current_rows(zones=[config]) as (_, rows):
        got = list(rows)
    assert set(got) >= {row for row in stored_rows(records)
                        if zonefile.zone_records([Record(row[0], row[1],
                                                         decode_rdata(row[2]), row[3])],
                                                 config)}
    assert ("e.example." in {row[0] for row in got}) == (zone == ".")
    want: list[str] = []
    kept = [Record(o, t, decode_rdata(d), ttl) for o, t, d, ttl in got]
    assert "".join(zonefile.render(kept, config, 5, [])) == \
        "".join(zonefile.render(records, config, 5, want))


@settings(max_examples=200, deadline=None)
@given(st.sets(st.lists(st.sampled_from(["a", "b", "_tcp", "svc", "ns1"]), max_size=5).map(tuple)),
       st.sampled_from(["cluster.local.", "."]))
def test_names_below_counted_per_parent_is_counted_per_owner(
        labels: set[tuple[str, ...]], zone: str) -> None:
    """The served zone's empty non-terminals (RFC 8020) come from these counts."""
    from zonegen.wire import _count_ancestors, _names_below

    owners = [".".join((*ls, zone.rstrip("."))) + "." if ls else zone for ls in labels]
    owners = [o.replace("..", ".") if o != "." else o for o in owners]
    want: dict[str, int] = {}
    for owner in owners:
        _count_ancestors(want, owner, zone, 1)
    assert _names_below(owners, zone) == want


@pytest.mark.parametrize("ttls", [(None, None, None), (None, 5, None), (30, None, None),
                                  (None, None, 30), (7, 7, 7)])
def test_rows_of_one_owner_sort_as_render_sorts_them_whatever_their_ttls(
        ttls: tuple[int | None, int | None, int | None]) -> None:
    """The fast path writes an owner's lines without their type lead, which sorts them
    as the lead does only with no TTL column: an owner with one goes the general way."""
    a, b, c = ttls
    records = [Record("x.ns.svc", SRV, (0, 10, 80, "a.ns.svc"), a),
               Record("x.ns.svc", A, ("10.0.0.9",), b),
               Record("x.ns.svc", A, ("10.0.0.10",), c),
               Record("x.ns.svc", PTR, ("b.ns.svc",), None),
               Record("x.ns.svc", A, ("10.0.0.10",), 5 if c is None else c)]
    rows = sorted(stored_rows(records), key=lambda row: row[1])  # the store's type order
    assert "".join(zonefile.render_rows(rows, FORWARD, 7)) == \
        "".join(zonefile.render(records, FORWARD, 7))


# --------------------------------------------------------------------------- one loop

plain_label = st.sampled_from(["a", "b", "a-b", "_tcp", "_http", "svc", "ns0", "p-0", "p-1",
                               "z" * 63, "z" * 64, "B"])
plain_name = st.lists(plain_label, min_size=1, max_size=4).map(".".join)
plain_row = st.one_of(
    # the common shapes (fast), and their near misses (general)
    st.builds(lambda o, a, t: (o, A, f'["{a}"]', t), plain_name,
              st.sampled_from(["10.0.0.1", "10.0.0.10", "10.0.0.2", "256.0.0.1", "01.0.0.1"]),
              st.sampled_from([None, None, None, 5, 30])),
    st.builds(lambda o, w, t: (o, SRV, f'[0,{w},80,"{t}"]', None), plain_name,
              st.sampled_from([0, 10]), plain_name),
    st.builds(lambda o, t: (o, SRV, f'[0,1,80,"{t}"]', None), plain_name,
              st.sampled_from(["a.cluster.local.", "bad..name", "example.com."])),
    st.builds(lambda o: (o, SRV, '["0","1","80","a"]', None), plain_name),
    st.builds(lambda o, t: (o, CNAME, f'["{t}"]', None), plain_name, plain_name),
    st.builds(lambda o: (o, TXT, '["v"]', 28800), plain_name),
    st.builds(lambda o: (o + ".cluster.local.", A, '["10.0.0.3"]', None), plain_name),
    st.just(("ns.dns", A, '["127.0.0.1"]', None)),  # repeats the glue
)


@settings(max_examples=300, deadline=None)
@given(st.lists(plain_row, max_size=40), st.randoms(use_true_random=False))
def test_property_rows_loop_writes_what_render_writes(rows: list[StoredRecord],
                                                      rng: random.Random) -> None:
    """``render_rows``' one loop (lines straight from the rows, or the general path for
    any owner it cannot make) writes ``render``'s bytes and warnings, for rows in the
    store's order, including an owner's rows split over two spellings side by side."""
    from zonegen.store.readmodel import sort_key

    rng.shuffle(rows)
    rows.sort(key=lambda r: (sort_key(r[0]), r[1]))
    records = [Record(o, t, decode_rdata(d), ttl) for o, t, d, ttl in rows]
    for config in CONFIGS:
        want: list[str] = []
        got: list[str] = []
        expected = "".join(zonefile.render(records, config, 7, want))
        try:
            text = "".join(zonefile.render_rows(rows, config, 7, got))
        except NotInOrder:  # an absolute spelling sorts elsewhere: export sorts instead
            continue
        assert text == expected
        assert same_warnings(got) == same_warnings(want)
        assert zonefile.count_rows(rows, config) == expected.count("\n") - 2


@pytest.mark.parametrize("rows", [
    [("a.cluster.local.", CNAME, '["b"]', None), ("a", A, '["10.0.0.1"]', None)],
    [("a.cluster.local.", A, '["10.0.0.2"]', None), ("a", A, '["10.0.0.1"]', None),
     ("a", SRV, '[0,1,80,"b"]', None)],
    [("_http._tcp.s", SRV, '[0,1,80,"p.s"]', None), ("p.s", A, '["10.0.0.1"]', None),
     ("p.s", A, '["10.0.0.1"]', None)],
], ids=["general-then-fast", "absolute-then-relative", "target-owner-duplicate"])
def test_rows_loop_edges_agree_with_render(rows: list[StoredRecord]) -> None:
    """The general spelling first, then the plain one, side by side: one owner, selected
    together; an owner met before as an SRV target; an exact duplicate row."""
    records = [Record(o, t, decode_rdata(d), ttl) for o, t, d, ttl in rows]
    want: list[str] = []
    got: list[str] = []
    text = "".join(zonefile.render_rows(rows, FORWARD, 7, got))
    assert text == "".join(zonefile.render(records, FORWARD, 7, want))
    assert got == want
