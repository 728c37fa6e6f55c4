"""Issue #11: a big zone loaded in two halves, one in a helper process
(``zonegen.serve.halves``), is byte for byte the zone loaded in one piece; whenever the
split cannot give that zone (the halves do not meet in order, the helper read another
version or failed) the load falls back to one piece."""

from __future__ import annotations

import logging
import random
from pathlib import Path

import dns.name
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.test_export_stream import CONFIGS, consul_store, in_store_order, record
from zonegen import zonehalf
from zonegen.model import CNAME, PTR, SRV, A, Record, ZoneConfig
from zonegen.selection import NotInOrder, OwnerSelector, StoredRecord, canonical_key, stored_rows
from zonegen.serve import halves
from zonegen.serve.feed import StoreFeed
from zonegen.serve.zoneset import ZoneSet
from zonegen.store import Store
from zonegen.store.readmodel import ReadModelChange, sort_key
from zonegen.wire import WireZone


def same_zone(got: WireZone, want: WireZone) -> None:
    """Equal as served: owners and their fragments in order, names below (empty
    non-terminals), set-aside records, count, and the AXFR's bytes."""
    assert list(got.owners()) == list(want.owners())
    assert got._base.names == want._base.names
    assert got._base.below == want._base.below
    assert got._extra == want._extra
    assert len(got) == len(want)
    assert [(n, b"".join(map(bytes, p))) for n, p in got.axfr_body(512)] == \
        [(n, b"".join(map(bytes, p))) for n, p in want.axfr_body(512)]


def split_at(rows: list[StoredRecord], config: ZoneConfig, i: int
             ) -> WireZone | None:
    """The zone of ``rows`` built as :func:`halves.load_halves` builds it, split at the
    sort key of row ``i`` (as SQL splits: ``sort_key < middle`` here, the rest there);
    None when a half is out of order or they do not meet in order."""
    middle = sort_key(rows[i][0])
    until = canonical_key(OwnerSelector(config, None).absolute(rows[i][0]) or "x.")
    here = [r for r in rows if sort_key(r[0]) < middle]
    there = [r for r in rows if sort_key(r[0]) >= middle]
    try:
        spans = [zonehalf.build_span(here, config, 7, (None, until), []),
                 zonehalf.build_span(there, config, 7, (until, None), [])]
    except NotInOrder:
        return None
    return WireZone.joined(config, 7, spans)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(record, min_size=1, max_size=40), st.randoms(use_true_random=False),
       st.integers(0, 1000))
def test_property_two_halves_joined_are_the_whole_zone(records: list[Record],
                                                         rng: random.Random, at: int) -> None:
    """Split anywhere, the halves joined are the zone built in one piece, or the split
    says it cannot (None) and the load falls back to one piece."""
    rows = list(stored_rows(in_store_order(records, rng)))
    for config in CONFIGS:
        got = split_at(rows, config, at % len(rows))
        try:
            want: WireZone | None = ZoneSet.from_rows([config], rows, 7).primary
        except NotInOrder:
            want = None
        if want is None:
            assert got is None  # never a zone the whole path would not make
        elif got is not None:
            same_zone(got, want)


def test_plain_zones_split_anywhere_always_join() -> None:
    """The common zone (a Service's A and SRV rows, the NS and glue owners on either
    side of the split): every split point joins, so the fast way is not lost to the
    fallback."""
    records = [Record(f"p{i}.s{s}.ns.svc", A, (f"10.0.{s}.{i}",)) for s in range(4)
               for i in range(3)]
    records += [Record(f"_http._tcp.s{s}.ns.svc", SRV, (0, 10, 80, f"p0.s{s}.ns.svc"))
                for s in range(4)]
    records += [Record("zz", A, ("10.1.0.1",)), Record("a", A, ("10.1.0.2",))]
    rows = list(stored_rows(in_store_order(records, random.Random(3))))
    config = ZoneConfig()
    want = ZoneSet.from_rows([config], rows, 7).primary
    for i in range(len(rows)):
        got = split_at(rows, config, i)
        assert got is not None, rows[i]
        same_zone(got, want)


def test_halves_meeting_out_of_order_are_refused() -> None:
    """One owner in two spellings, one in each half (relative, and absolute in the
    zone): each half is in order by itself, so only the join can see it."""
    rows: list[StoredRecord] = [("a", A, '["10.0.0.1"]', None),
                                ("a.cluster.local.", A, '["10.0.0.2"]', None)]
    rows.sort(key=lambda r: sort_key(r[0]))
    config = ZoneConfig()
    assert split_at(rows, config, 1) is None


def big_store(tmp_path: Path, services: int = 60) -> Store:
    """A store whose newest version holds ``services`` Services' pods, SRV and PTR
    records, and a few odd rows (a CNAME beside data, an invalid address)."""
    records = []
    for s in range(services):
        for i in range(4):
            records.append(Record(f"p{i}.s{s}.ns{s % 3}.svc", A, (f"10.0.{s}.{i}",)))
            records.append(Record(f"{i}.{s}.0.10.in-addr.arpa.", PTR,
                                  (f"p{i}.s{s}.ns{s % 3}.svc",)))
        records.append(Record(f"_http._tcp.s{s}.ns{s % 3}.svc", SRV,
                              (0, 10, 80, f"p0.s{s}.ns{s % 3}.svc")))
    records += [Record("p0.s7.ns1.svc", CNAME, ("elsewhere",)),
                Record("bad.s9.ns0.svc", A, ("300.0.0.1",))]
    store = Store.open(f"sqlite:///{tmp_path / 'z.db'}")
    store.commit_version(("projection", 0, 0), serial=5, read_model=ReadModelChange(
        added=[(("ns", f"svc{i % 7}"), r, True) for i, r in enumerate(records)],
        records=len(records)))
    return store


@pytest.fixture
def two_cpus(monkeypatch: pytest.MonkeyPatch) -> None:
    """The split runs only where two CPUs can be used at once; these tests check the
    split itself, so they must not depend on the machine that runs them."""
    monkeypatch.setattr(halves, "usable_cpus", lambda: 2)


@pytest.mark.usefixtures("two_cpus")
@pytest.mark.parametrize("config", [ZoneConfig(), ZoneConfig(zone="10.in-addr.arpa.")],
                         ids=["forward", "reverse"])
def test_feed_load_split_in_two_processes_is_the_load_in_one(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, config: ZoneConfig) -> None:
    store = big_store(tmp_path)
    try:
        whole = StoreFeed(store, [config], split_records=None).load()
        with caplog.at_level(logging.DEBUG, logger="zonegen"):
            split = StoreFeed(store, [config], split_records=0).load()
        assert whole is not None
        assert split is not None
        joined = [r.getMessage() for r in caplog.records
                  if r.getMessage().startswith("split load: ")]
        assert len(joined) == 1, joined
        assert "rows here" in joined[0], joined  # the helper answered
        assert (split.version_id, split.serial) == (whole.version_id, whole.serial)
        name = dns.name.from_text(config.zone)
        same_zone(split.zones[name], whole.zones[name])
        assert len(split.zones[name]) > 200
        warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        if config.zone == "cluster.local.":
            assert any("300.0.0.1" in w for w in warned)
            assert any("CNAME and other data" in w for w in warned)
    finally:
        store.close()


@pytest.mark.usefixtures("two_cpus")
def test_feed_load_of_a_real_cluster_split_is_the_load_in_one(tmp_path: Path) -> None:
    store = consul_store(tmp_path)
    try:
        config = ZoneConfig()
        whole = StoreFeed(store, [config], split_records=None).load()
        split = StoreFeed(store, [config], split_records=0).load()
        assert whole is not None
        assert split is not None
        same_zone(split.primary, whole.primary)
    finally:
        store.close()


def test_small_zones_and_memory_stores_load_in_one_piece(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = big_store(tmp_path)
    try:
        monkeypatch.setattr(halves, "usable_cpus", lambda: 2)
        assert halves.load_halves(store, "projection", ZoneConfig()) is None  # < MIN_RECORDS
        assert halves.load_halves(store, "projection", ZoneConfig(), 0) is not None
        monkeypatch.setattr(halves, "usable_cpus", lambda: 1)  # one CPU: never split
        assert halves.load_halves(store, "projection", ZoneConfig(), 0) is None
    finally:
        store.close()
    memory = Store.open("sqlite://")
    try:
        assert halves.file_url(memory) is None
    finally:
        memory.close()


def test_helper_reading_another_version_answers_nothing(tmp_path: Path,
                                                        caplog: pytest.LogCaptureFixture
                                                        ) -> None:
    """The helper's snapshot must hold the server's version; otherwise the halves would
    be of two versions, so it says so and the server loads in one piece."""
    store = big_store(tmp_path)
    try:
        url = halves.file_url(store)
        version = store.latest_version("projection")
        assert url is not None
        assert version is not None
        key, owner = store.sample_keys("projection")[0]
        for request, why in [
                ((url, "projection", ZoneConfig(), version.version_id + 1, 5, key, owner),
                 "read another version"),
                ((url + "-missing", "projection", ZoneConfig(), version.version_id, 5, key,
                  owner), "helper failed")]:
            helper = halves._Helper.start()
            try:
                helper.ask(request)
                with caplog.at_level(logging.DEBUG, logger="zonegen"):
                    assert helper.answer() is None
            finally:
                helper.stop()
            assert why in caplog.text
            caplog.clear()
    finally:
        store.close()


def test_sample_keys_are_sorted_keys_of_the_projection(tmp_path: Path) -> None:
    store = big_store(tmp_path)
    try:
        keys = store.sample_keys("projection", samples=17)
        assert 0 < len(keys) <= 17
        assert keys == sorted(keys)
        assert all(sort_key(owner) == key for key, owner in keys)
        assert store.sample_keys("elsewhere") == []
    finally:
        store.close()


@pytest.mark.parametrize(("files", "cpus"), [
    ({"cpu.max": "max 100000\n"}, None),
    ({"cpu.max": "100000 100000\n"}, 1.0),
    ({"cpu.max": "250000 100000\n"}, 2.5),
    ({"cpu.max": "50000 100000\n"}, 0.5),
    ({"cpu.max": "garbage\n"}, None),
    ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
    ({"cpu/cpu.cfs_quota_us": "200000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 2.0),
    ({}, None),
], ids=["v2-none", "v2-one", "v2-two-and-a-half", "v2-half", "v2-bad", "v1-none", "v1-two",
        "no-cgroup"])
def test_cgroup_quota_read_as_cpus(tmp_path: Path, files: dict[str, str],
                                   cpus: float | None) -> None:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert halves._cgroup_quota(tmp_path) == cpus
    usable = halves.usable_cpus(tmp_path)
    assert usable >= 1
    if cpus is not None:
        assert usable <= max(1, int(cpus))
