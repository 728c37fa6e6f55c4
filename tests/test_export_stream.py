"""Issue #11: the current zone streamed from the persisted read model, in canonical owner
order, is exactly the zone the whole-set paths make: ``zonefile.render_sorted`` writes
``render``'s bytes, ``ZoneSet.from_sorted`` encodes ``WireZone.build``'s records (read
back by dnspython), and ``export``/``serve`` use them on a real store."""

from __future__ import annotations

import io
import random
import shutil
import subprocess
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.name
import dns.rdatatype
import dns.versioned
import dns.zone
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import same
from tests.test_xfr import receive
from tests.test_zonefile import REVERSE4, SAMPLE
from zonegen import xfr, zonefile
from zonegen.export import export_zone
from zonegen.ingest import ingest_files
from zonegen.model import AAAA, CNAME, PTR, SRV, TXT, A, NameServer, Record, ZoneConfig
from zonegen.names import zone_config
from zonegen.selection import NotInOrder, stored_rows
from zonegen.serve.feed import StoreFeed
from zonegen.serve.zoneset import ZoneSet
from zonegen.store import Store
from zonegen.store.readmodel import sort_key
from zonegen.wire import WireZone

DATA = Path(__file__).parent / "data"
FORWARD = ZoneConfig()
SUBZONE = ZoneConfig(zone="svc.cluster.local.", forward_zone="cluster.local.",
                     nameservers=(NameServer("ns.svc.cluster.local.", "10.0.0.53"),))
CONFIGS = (FORWARD, REVERSE4, SUBZONE)


def in_store_order(records: list[Record], rng: random.Random) -> list[Record]:
    """``records`` as ``Store.current_records`` streams them: by (sort_key, rtype), any
    order within one (owner, rtype)."""
    shuffled = list(records)
    rng.shuffle(shuffled)
    return sorted(shuffled, key=lambda r: (sort_key(r.owner), r.rtype))


def sorted_text(records: list[Record], config: ZoneConfig,
                warnings: list[str] | None = None) -> str:
    return "".join(zonefile.render_sorted(records, config, 7, warnings))


# --------------------------------------------------------------------------- text

label = st.sampled_from(["a", "b", "a-b", "ab", "_tcp", "_http", "db", "db-0", "x1", "svc",
                         "shop", "z" * 63, "z" * 64])  # lowercase, as the projector
# makes owners (an upper-case one sorts elsewhere: test_out_of_order_is_refused_not_rendered)
relname = st.lists(label, min_size=1, max_size=5).map(".".join)
ipv4 = st.sampled_from(["10.0.0.1", "10.0.0.2", "10.244.0.6", "127.0.0.1", "10.0.0.53",
                        "300.1.1.1"])
ptr_owner = st.tuples(st.integers(0, 3), st.integers(0, 3)).map(
    lambda t: f"{t[0]}.{t[1]}.0.10.in-addr.arpa.")
ttl = st.one_of(st.none(), st.sampled_from([5, 30, 28800]))
record = st.one_of(
    st.builds(lambda o, a, t: Record(o, A, (a,), t), relname, ipv4, ttl),
    st.builds(lambda o, a: Record(o, AAAA, (a,)), relname, st.sampled_from(["fd00::1", "::x"])),
    st.builds(lambda o, w, t: Record(o, SRV, (0, w, 80, t)), relname, st.integers(0, 2),
              st.one_of(relname, st.just("example.com."))),
    st.builds(lambda o, t, tt: Record(o, CNAME, (t,), tt), relname,
              st.one_of(relname, st.just("example.com.")), ttl),
    st.builds(lambda o, t: Record(o, TXT, (t,), 28800), relname, st.sampled_from(['x "y"', "v"])),
    st.builds(lambda o, t: Record(o, PTR, (t,)), ptr_owner, relname),
    st.builds(lambda t: Record("ns.dns", A, (t,)), ipv4),  # may repeat the glue
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(record, max_size=40), st.randoms(use_true_random=False))
def test_property_render_sorted_is_render_byte_for_byte(records: list[Record],
                                                          rng: random.Random) -> None:
    ordered = in_store_order(records, rng)
    for config in CONFIGS:
        want: list[str] = []
        got: list[str] = []
        expected = "".join(zonefile.render(records, config, 7, want))
        assert sorted_text(ordered, config, got) == expected
        assert same_warnings(got) == same_warnings(want)
        # ``status``'s count: the records ``export`` writes, none written
        assert zonefile.count_rows(stored_rows(ordered), config) == expected.count("\n") - 2


def same_warnings(warnings: list[str]) -> list[str]:
    """Warnings as a sorted list; a bad address is reported once, naming the first owner
    it was seen at, which depends on the input's order (set order for ``render``)."""
    return sorted(w.split(": ", 1)[1] if "is not an IPv" in w else w for w in warnings)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(record, max_size=40), st.randoms(use_true_random=False))
def test_property_from_sorted_is_build(records: list[Record], rng: random.Random) -> None:
    """Same owners in the same (canonical) order, same fragments per owner (their order
    within an owner follows the input), same set-aside records: so AXFR, answers and
    later applies (which read ``extra``) are those of the whole-set build."""
    zones = ZoneSet.from_sorted(CONFIGS, in_store_order(records, rng), 7, 3)
    assert zones.version_id == 3
    for config in CONFIGS:
        streamed = zones.zones[dns.name.from_text(config.zone)]
        built = WireZone.build(records, config, 7)
        assert [(o, sorted(f)) for o, f in streamed.owners()] == \
            [(o, sorted(f)) for o, f in built.owners()]  # canonical order, both
        assert streamed._extra == built._extra
        assert len(streamed) == len(built)


def test_sample_streamed_is_rendered_and_named_checkzone_loads_it(tmp_path: Path) -> None:
    rng = random.Random(11)
    for config in (FORWARD, REVERSE4, zone_config("0.0.d.f.ip6.arpa")):
        text = sorted_text(in_store_order(SAMPLE, rng), config)
        assert text == "".join(zonefile.render(SAMPLE, config, 7))
        if shutil.which("named-checkzone"):
            path = tmp_path / config.zone
            path.write_text(text)
            subprocess.run(["named-checkzone", config.zone, str(path)], check=True,
                           capture_output=True)


def test_out_of_order_is_refused_not_rendered() -> None:
    ordered = in_store_order(SAMPLE, random.Random(1))
    with pytest.raises(NotInOrder):
        sorted_text(list(reversed(ordered)), FORWARD)
    with pytest.raises(NotInOrder):
        ZoneSet.from_sorted([FORWARD], list(reversed(ordered)), 7)
    # one owner spelled two ways (or in upper case), apart: the second sorts elsewhere
    spelled = [*ordered, Record("db.shop.svc.cluster.local.", A, ("10.0.0.9",))]
    with pytest.raises(NotInOrder):
        sorted_text(spelled, FORWARD)
    with pytest.raises(NotInOrder):
        sorted_text([Record("b", A, ("10.0.0.1",)), Record("A", A, ("10.0.0.1",))], FORWARD)


def _stream(services: int) -> Iterator[Record]:
    """A zone's records made one at a time, in canonical owner order."""
    for s in range(services):
        svc = f"svc-{s:07d}.ns.svc"
        for p in range(4):
            yield Record(svc, A, (f"10.{s >> 8 & 255}.{s & 255}.{p}",))
        for p in range(4):
            yield Record(f"_http._tcp.{svc}", SRV, (0, 25, 80, f"p{p}.{svc}"))
        for p in range(4):
            yield Record(f"p{p}.{svc}", A, (f"10.{s >> 8 & 255}.{s & 255}.{p}",))


def _peak(services: int) -> int:
    tracemalloc.start()
    try:
        for _ in zonefile.render_sorted(_stream(services), FORWARD, 7):
            pass
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_render_sorted_memory_does_not_grow_with_the_zone() -> None:
    """O(one owner): four times the records, about the same peak (caches are trimmed)."""
    small, large = _peak(10_000), _peak(40_000)
    assert large < 1.3 * small, (small, large)


# --------------------------------------------------------------------------- store


def consul_store(tmp_path: Path) -> Store:
    store = Store.open(f"sqlite:///{tmp_path / 'z.db'}")
    ingest_files(store, [str(DATA / "consul.json")])
    return store


@pytest.mark.parametrize("config", [zone_config(), zone_config("10.in-addr.arpa")],
                         ids=["forward", "reverse"])
def test_export_streams_what_render_of_the_version_writes(tmp_path: Path,
                                                          config: ZoneConfig) -> None:
    store = consul_store(tmp_path)
    out = io.StringIO()
    result = export_zone(store, config, stream=out)
    version = store.latest_version()
    assert version is not None
    assert out.getvalue() == "".join(zonefile.render(store.records_at(version.version_id),
                                                     config, version.serial))
    assert result.records == out.getvalue().count("\n") - 2


def test_serve_load_axfr_is_the_exported_zone(tmp_path: Path) -> None:
    """The served zone is built from the stream; its AXFR, read by dnspython, holds
    exactly the records of the exported file."""
    store = consul_store(tmp_path)
    configs = (zone_config(), zone_config("10.in-addr.arpa"))
    zones = StoreFeed(store, configs).load()
    assert zones is not None
    for config in configs:
        out = io.StringIO()
        export_zone(store, config, stream=out)
        origin = dns.name.from_text(config.zone)
        query = dns.message.make_query(origin, dns.rdatatype.AXFR)
        received = dns.versioned.Zone(origin)
        receive(xfr.axfr_response(query, zones.zones[origin]), received, dns.rdatatype.AXFR)
        same(received, dns.zone.from_text(out.getvalue(), config.zone, relativize=True))
