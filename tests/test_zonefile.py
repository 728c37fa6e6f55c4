"""zonefile: golden text, dnspython and named-checkzone agree with the renderer; atomic write."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import read_only_directory
from zonegen import zonefile
from zonegen.model import AAAA, CNAME, PTR, SRV, TXT, A, NameServer, Record, ZoneConfig
from zonegen.zonefile import ZoneWriteError

DATA = Path(__file__).parent / "data"
SERIAL = 2024061501

FORWARD = ZoneConfig()
REVERSE4 = ZoneConfig(zone="10.in-addr.arpa.")
REVERSE6 = ZoneConfig(zone="0.0.d.f.ip6.arpa.")

SAMPLE: list[Record] = [
    # headless Service with two pods (RECORDS.md)
    Record("db.shop.svc", A, ("10.244.0.6",)),
    Record("db.shop.svc", A, ("10.244.0.10",)),
    Record("db-0.db.shop.svc", A, ("10.244.0.6",)),
    Record("10-244-0-10.db.shop.svc", A, ("10.244.0.10",)),
    Record("_pg._tcp.db.shop.svc", SRV, (0, 50, 5432, "db-0.db.shop.svc")),
    Record("_pg._tcp.db.shop.svc", SRV, (0, 50, 5432, "10-244-0-10.db.shop.svc")),
    Record("db.shop.svc", SRV, (0, 50, 5432, "db-0.db.shop.svc")),
    Record("db.shop.svc", SRV, (0, 50, 5432, "10-244-0-10.db.shop.svc")),
    # dual-stack ClusterIP Service
    Record("web.shop.svc", A, ("10.96.0.20",)),
    Record("web.shop.svc", AAAA, ("fd00::20",)),
    Record("_http._tcp.web.shop.svc", SRV, (0, 50, 80, "web.shop.svc")),
    Record("fd00--1.web.shop.svc", AAAA, ("fd00::1",)),
    # ExternalName, and one pointing at itself (no record, RECORDS.md)
    Record("ext.shop.svc", CNAME, ("example.com.",)),
    Record("loop.shop.svc", CNAME, ("loop.shop.svc.cluster.local.",)),
    Record("dns-version", TXT, ("1.1.0",), 28800),
    Record("note.shop.svc", TXT, ('say "hi" \\ caf\u00e9',)),
    # reverse records: absolute owners, only in their reverse zone
    Record("6.0.244.10.in-addr.arpa.", PTR, ("db-0.db.shop.svc",)),
    Record("10.0.244.10.in-addr.arpa.", PTR, ("10-244-0-10.db.shop.svc",)),
    Record("20.0.96.10.in-addr.arpa.", PTR, ("web.shop.svc",)),
    Record("1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.", PTR,
           ("fd00--1.web.shop.svc",)),
    # not publishable: a 64-octet label
    Record("x" * 64 + ".shop.svc", A, ("10.0.0.1",)),
]

GOLDEN = {
    "cluster.local.zone": FORWARD,
    "10.in-addr.arpa.zone": REVERSE4,
    "0.0.d.f.ip6.arpa.zone": REVERSE6,
}


def text(records: list[Record], config: ZoneConfig, serial: int = SERIAL,
         warnings: list[str] | None = None) -> str:
    return "".join(zonefile.render(records, config, serial, warnings))


def expected(records: list[Record], config: ZoneConfig) -> set[tuple[str, str, int, str]]:
    """The record set built with dnspython straight from the Record fields (not from our
    text), plus SOA/NS/glue: what a correct renderer must produce."""
    out: set[tuple[str, str, int, str]] = set()
    IN = dns.rdataclass.IN

    def add(owner: str, rtype: int, rd: dns.rdata.Rdata, ttl: int) -> None:
        out.add((owner, dns.rdatatype.to_text(rtype), ttl, rd.to_text()))

    for owner, rtype, rdata, ttl in zonefile.zone_records(records, config):
        ttl = config.ttl if ttl is None else ttl
        if rtype in (A, AAAA):
            rd = dns.rdata.from_text(IN, rtype, str(rdata[0]))
        elif rtype == TXT:
            from dns.rdtypes.ANY.TXT import TXT as TXTRdata

            data = str(rdata[0]).encode()
            rd = TXTRdata(IN, TXT, [data[i:i + 255] for i in range(0, max(1, len(data)), 255)])
        elif rtype == SRV:
            from dns.rdtypes.IN.SRV import SRV as SRVRdata

            rd = SRVRdata(IN, SRV, int(rdata[0]), int(rdata[1]), int(rdata[2]),
                          dns.name.from_text(str(rdata[3])))
        else:
            rd = dns.rdata.from_text(IN, rtype, str(rdata[0]))
        add(owner, rtype, rd, ttl)
    mname = config.nameservers[0].name
    add(config.zone, 6, dns.rdata.from_text(
        IN, 6, f"{mname} {config.hostmaster} {SERIAL} {config.refresh} {config.retry} "
               f"{config.expire} {config.minimum}"), config.ttl)
    for ns in config.nameservers:
        add(config.zone, 2, dns.rdata.from_text(IN, 2, ns.name), config.ttl)
        if ns.address and ns.name.endswith("." + config.zone):
            rtype = AAAA if ":" in ns.address else A
            add(ns.name, rtype, dns.rdata.from_text(IN, rtype, ns.address), config.ttl)
    # an RRset with unequal TTLs (RFC 2181 §5.2) is read at its smallest
    smallest: dict[tuple[str, str], int] = {}
    for owner, rtype, ttl, _ in out:
        smallest[owner, rtype] = min(ttl, smallest.get((owner, rtype), ttl))
    return {(owner, rtype, smallest[owner, rtype], rd) for owner, rtype, _, rd in out}


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_golden(name: str) -> None:
    assert text(SAMPLE, GOLDEN[name]) == (DATA / name).read_text()


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_dnspython_reads_what_we_wrote(name: str) -> None:
    config = GOLDEN[name]
    assert zonefile.parse(text(SAMPLE, config), config.zone) == expected(SAMPLE, config)


@pytest.mark.skipif(shutil.which("named-checkzone") is None, reason="BIND not installed")
@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_named_checkzone_accepts_golden(name: str) -> None:
    config = GOLDEN[name]
    result = subprocess.run(["named-checkzone", config.zone, str(DATA / name)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_byte_identical_for_equal_content() -> None:
    shuffled = list(reversed(SAMPLE)) + SAMPLE[:3]  # order and duplicates do not matter
    assert text(shuffled, FORWARD) == text(SAMPLE, FORWARD)
    # the same record named relative or absolute is the same record
    absolute = [Record("db.shop.svc.cluster.local.", A, ("10.244.0.6",))]
    assert text(absolute, FORWARD) == text([Record("db.shop.svc", A, ("10.244.0.6",))], FORWARD)


def test_selection_and_warnings() -> None:
    warnings: list[str] = []
    selected = zonefile.zone_records(SAMPLE, FORWARD, warnings)
    owners = {owner for owner, *_ in selected}
    assert "db.shop.svc.cluster.local." in owners
    assert not any(o.endswith(".arpa.") for o in owners)  # PTRs only in reverse zones
    assert "loop.shop.svc.cluster.local." not in owners
    assert ("_pg._tcp.db.shop.svc.cluster.local.", SRV,
            (0, 50, 5432, "db-0.db.shop.svc.cluster.local."), None) in selected
    assert any("x" * 64 in w for w in warnings)
    assert any("loop.shop.svc" in w and "CNAME" in w for w in warnings)
    reverse = zonefile.zone_records(SAMPLE, REVERSE4)
    assert {rtype for _, rtype, _, _ in reverse} == {PTR}
    assert len(reverse) == 3


def test_long_names_skipped() -> None:
    owner = ".".join(["a" * 60] * 4)  # 244 + len(".cluster.local.") > 254 characters
    warnings: list[str] = []
    assert zonefile.zone_records([Record(owner, A, ("10.0.0.1",))], FORWARD, warnings) == []
    assert warnings
    assert owner in warnings[0]
    srv = Record("_x._tcp.s.n.svc", SRV, (0, 100, 1, owner))
    assert zonefile.zone_records([srv], FORWARD, warnings) == []


def test_canonical_order() -> None:
    """RFC 4034 §6.1: labels compared from the right; a name sorts before its children,
    and "a" before "a-b" (shorter label first), whatever '.' sorts as in ASCII."""
    records = [Record(n, A, ("10.0.0.1",)) for n in ("z", "a.b", "b", "a-b", "a", "_x.a")]
    body = text(records, FORWARD).splitlines()[5:]
    assert [line.split()[0] for line in body] == ["a", "_x.a", "a-b", "b", "a.b", "z"]


def test_in_zone_nameserver_gets_glue_out_of_zone_does_not() -> None:
    config = ZoneConfig(nameservers=(NameServer("ns1.example.org."),
                                     NameServer("ns.dns.cluster.local.", "fd00::53")))
    lines = text([], config).splitlines()
    assert "@ IN NS ns1.example.org." in lines
    assert "ns.dns IN AAAA fd00::53" in lines
    assert not any(line.startswith("ns1") for line in lines)


def test_write_replaces_atomically(tmp_path: Path) -> None:
    path = tmp_path / "cluster.local.zone"
    zonefile.write(path, zonefile.render(SAMPLE, FORWARD, 1))
    first = path.read_text()
    zonefile.write(path, zonefile.render(SAMPLE[:3], FORWARD, 2))
    assert path.read_text() != first
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert sorted(os.listdir(tmp_path)) == ["cluster.local.zone"]


def test_write_to_read_only_directory_keeps_old_file(tmp_path: Path) -> None:
    path = tmp_path / "z.zone"
    path.write_text("old\n")
    with read_only_directory(tmp_path), pytest.raises(ZoneWriteError, match=str(path)):
        zonefile.write(path, ["new\n"])
    assert path.read_text() == "old\n"
    assert os.listdir(tmp_path) == ["z.zone"]


def test_failure_midway_keeps_old_file_and_removes_temp(tmp_path: Path) -> None:
    """A failure while writing (disk full is an OSError from write) leaves the old zone."""
    path = tmp_path / "z.zone"
    path.write_text("old\n")

    def lines():  # type: ignore[no-untyped-def]
        yield "$ORIGIN cluster.local.\n"
        raise OSError(28, "No space left on device")

    with pytest.raises(ZoneWriteError, match="No space left") as info:
        zonefile.write(path, lines())
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)
    assert path.read_text() == "old\n"
    assert os.listdir(tmp_path) == ["z.zone"]


def test_write_to_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(ZoneWriteError):
        zonefile.write(tmp_path / "nope" / "z.zone", ["x\n"])


def test_txt_escaping_and_splitting() -> None:
    assert zonefile.txt_text("1.1.0") == '"1.1.0"'
    assert zonefile.txt_text('a"b\\c') == '"a\\"b\\\\c"'
    assert zonefile.txt_text("\u00e9") == '"\\195\\169"'
    long = zonefile.txt_text("x" * 300)
    assert long == '"' + "x" * 255 + '" "' + "x" * 45 + '"'


# --------------------------------------------------------------------------- property test

label = st.from_regex(r"[a-z0-9_][a-z0-9_-]{0,20}", fullmatch=True)
relname = st.lists(label, min_size=1, max_size=4).map(".".join)
ipv4 = st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: ".".join(map(str, t)))
ipv6 = st.ip_addresses(v=6).map(str)
record = st.one_of(
    st.builds(lambda o, a: Record(o, A, (a,)), relname, ipv4),
    st.builds(lambda o, a: Record(o, AAAA, (a,)), relname, ipv6),
    st.builds(lambda o, p, w, port, t: Record(o, SRV, (p, w, port, t)), relname,
              st.integers(0, 65535), st.integers(0, 65535), st.integers(0, 65535), relname),
    st.builds(lambda o, t: Record(o, CNAME, (t,)), relname, relname),
    st.builds(lambda o, t, ttl: Record(o, TXT, (t,), ttl), relname,
              st.text(max_size=300), st.one_of(st.none(), st.integers(0, 2**31 - 1))),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(record, max_size=30))
def test_property_render_then_dnspython_parse_equals_input(records: list[Record]) -> None:
    rendered = text(records, FORWARD)
    assert zonefile.parse(rendered, FORWARD.zone) == expected(records, FORWARD)
    assert text(list(reversed(records)), FORWARD) == rendered
