"""serve: a real server on a free loopback port, queried with dnspython over UDP and TCP.

Every test talks to sockets; nothing is mocked. Waits poll with deadlines; no test
asserts on wall-clock durations."""

from __future__ import annotations

import contextlib
import copy
import json
import random
import re
import socket
import struct
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.tsig
import dns.versioned
import dns.xfr
import dns.zone
import pytest

from tests.cli_process import dns_port, run_cli, serve_process, serving_line, stop_serve
from tests.helpers import cli, exported, ingested, same, wait_until
from tests.kubeapi import FakeKubeAPI
from zonegen import tsig
from zonegen.errors import InvalidInput
from zonegen.ingest import ingest_files
from zonegen.model import ZoneConfig
from zonegen.names import zone_config
from zonegen.serve import (
    Responder,
    ServeOptions,
    StoreFeed,
    Transfer,
    ZoneSet,
    extra_zone_config,
    parse_hostport,
    parse_keyfile,
    parse_network,
    parse_tsig_key,
)
from zonegen.store import Store
from zonegen.testing import ServerThread

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "zonegen" / "data" / "demo.json"
CONFIG = zone_config()
REVERSE = extra_zone_config(CONFIG, "10.in-addr.arpa")
ZONE = dns.name.from_text("cluster.local.")
SECRET = "c2VjcmV0LWtleS1mb3ItenhvbmVnZW4tdGVzdHMtMTIzNDU2Nzg="
KEY = dns.tsig.Key("xfr-key.", SECRET, dns.tsig.HMAC_SHA256)
HOST = "127.0.0.1"
POD2 = "consul-server-2.consul-server.default.svc.cluster.local."


def moved_pod(tmp_path: Path, address: str, rv: str) -> Path:
    """The demo's consul EndpointSlice with pod consul-server-2 at ``address``."""
    doc = json.loads(DEMO.read_text())
    slice_ = copy.deepcopy(next(i for i in doc["items"]
                                if i["metadata"]["name"] == "consul-server-7xq2k"))
    slice_["metadata"]["resourceVersion"] = rv
    for ep in slice_["endpoints"]:
        if ep.get("hostname") == "consul-server-2":
            ep["addresses"] = [address]
    path = tmp_path / f"moved-{rv}.json"
    path.write_text(json.dumps(slice_))
    return path


def udp(port: int, message: dns.message.Message, **kw: object) -> dns.message.Message:
    return dns.query.udp(message, HOST, port=port, timeout=5, **kw)  # type: ignore[arg-type]


def tcp(port: int, message: dns.message.Message, **kw: object) -> dns.message.Message:
    return dns.query.tcp(message, HOST, port=port, timeout=5, **kw)  # type: ignore[arg-type]


def transfer_zone(port: int, zone: dns.versioned.Zone | None = None, serial: int | None = None,
                  keyring: object = None) -> dns.versioned.Zone:
    zone = zone if zone is not None else dns.versioned.Zone("cluster.local.")
    rdtype = dns.rdatatype.AXFR if serial is None else dns.rdatatype.IXFR
    query, _ = dns.xfr.make_query(zone, serial=serial,
                                  keyring=keyring)  # type: ignore[arg-type]
    if rdtype == dns.rdatatype.AXFR:
        query, _ = dns.xfr.make_query(zone, serial=None, keyring=keyring)  # type: ignore[arg-type]
    dns.query.inbound_xfr(HOST, zone, query, port=port, timeout=10, lifetime=30)
    return zone


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with ingested(f"sqlite:///{tmp_path / 'zonegen.db'}", DEMO) as st:
        yield st


@pytest.fixture
def start(store: Store) -> Iterator[Callable[..., ServerThread]]:
    servers: list[ServerThread] = []

    def _start(configs: tuple[ZoneConfig, ...] = (CONFIG, REVERSE), **options: object
               ) -> ServerThread:
        options.setdefault("listen", ((HOST, 0),))
        options.setdefault("poll", 0.05)
        feed = StoreFeed(store, configs,
                         max_versions=int(options.get("journal_versions", 1000)),  # type: ignore[call-overload]
                         max_records=int(options.get("journal_records", 500_000)))  # type: ignore[call-overload]
        server = ServerThread(ServeOptions(**options), feed).start()  # type: ignore[arg-type]
        servers.append(server)
        return server

    yield _start
    for server in servers:
        server.stop()


@pytest.fixture
def server(start: Callable[..., ServerThread]) -> ServerThread:
    return start()


# --------------------------------------------------------------------------- answers


def q(name: str, rtype: str, **kw: object) -> dns.message.Message:
    return dns.message.make_query(name, rtype, **kw)  # type: ignore[arg-type]


def test_authoritative_answers_over_udp_and_tcp(server: ServerThread, store: Store) -> None:
    zone = exported(store, CONFIG, relativize=False)
    for name, rtype in [("cluster.local.", "SOA"), ("cluster.local.", "NS"),
                        ("consul-server.default.svc.cluster.local.", "A"),
                        ("consul-server.default.svc.cluster.local.", "SRV"),
                        ("_http._tcp.consul-server.default.svc.cluster.local.", "SRV"),
                        ("consul-server-0.consul-server.default.svc.cluster.local.", "A"),
                        ("db.shop.svc.cluster.local.", "AAAA"),
                        ("search.shop.svc.cluster.local.", "CNAME")]:
        for send in (udp, tcp):
            r = send(server.port, q(name, rtype, use_edns=0))
            assert r.rcode() == dns.rcode.NOERROR
            assert r.flags & dns.flags.AA
            assert not r.flags & dns.flags.RA
            want = zone.find_rdataset(name, rtype)
            assert {rd.to_text() for rd in r.answer[0]} == {rd.to_text() for rd in want}
    # NS additional glue, SRV targets' addresses
    r = udp(server.port, q("cluster.local.", "NS"))
    assert r.find_rrset(r.additional, dns.name.from_text("ns.dns.cluster.local."),
                        dns.rdataclass.IN, dns.rdatatype.A)
    # a CNAME answers any type, followed inside the zone only
    r = udp(server.port, q("search.shop.svc.cluster.local.", "A"))
    assert r.answer[0].rdtype == dns.rdatatype.CNAME
    assert len(r.answer) == 1


def test_reverse_zone_served_at_the_same_serial(server: ServerThread) -> None:
    r = udp(server.port, q("6.0.244.10.in-addr.arpa.", "PTR"))
    assert r.rcode() == dns.rcode.NOERROR
    assert r.flags & dns.flags.AA
    assert r.answer[0][0].target == dns.name.from_text(
        "consul-server-0.consul-server.default.svc.cluster.local.")
    soa = udp(server.port, q("10.in-addr.arpa.", "SOA")).answer[0][0]
    assert soa.serial == server.zones.serial


def test_negative_answers_carry_the_soa(server: ServerThread) -> None:
    r = udp(server.port, q("nothere.cluster.local.", "A"))
    assert r.rcode() == dns.rcode.NXDOMAIN
    assert r.flags & dns.flags.AA
    assert r.authority[0].rdtype == dns.rdatatype.SOA
    assert not r.answer
    r = udp(server.port, q("consul-server.default.svc.cluster.local.", "MX"))  # NODATA
    assert r.rcode() == dns.rcode.NOERROR
    assert not r.answer
    assert r.authority[0].rdtype == dns.rdatatype.SOA
    r = udp(server.port, q("default.svc.cluster.local.", "A"))  # empty non-terminal
    assert r.rcode() == dns.rcode.NOERROR
    assert not r.answer


def test_outside_the_zone_is_refused(server: ServerThread) -> None:
    for name in ("example.com.", "local.", "11.in-addr.arpa."):
        r = udp(server.port, q(name, "A"))
        assert r.rcode() == dns.rcode.REFUSED
        assert not r.flags & dns.flags.AA


def test_a_burst_of_udp_queries_is_answered_in_full(server: ServerThread) -> None:
    """The UDP listener reads queued datagrams in batches: 150 queries sent at once, a
    mix of quick-path and dnspython-path ones, each get their own answer."""
    names = ["consul-server.default.svc.cluster.local.", "nothere.cluster.local.",
             "example.com."]
    queries = {}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        # room for every reply at once (SO_RCVBUFFORCE when privileged, as the server)
        for option in (getattr(socket, "SO_RCVBUFFORCE", 33), socket.SO_RCVBUF):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, option, 4 << 20)
        for i in range(150):
            query = q(names[i % 3], "ANY" if i % 10 == 0 else "A")
            query.id = i
            queries[i] = query
            sock.sendto(query.to_wire(), (HOST, server.port))
        while queries:
            reply = dns.message.from_wire(sock.recv(65535))
            query = queries.pop(reply.id)
            assert reply.question == query.question
            want = {0: dns.rcode.NOERROR, 1: dns.rcode.NXDOMAIN, 2: dns.rcode.REFUSED}
            assert reply.rcode() == want[names.index(query.question[0].name.to_text())]


def test_truncation_and_edns(server: ServerThread) -> None:
    name = "consul-server.default.svc.cluster.local."  # 15 SRV records
    r = udp(server.port, q(name, "SRV"))  # no EDNS: 512 octets
    assert r.flags & dns.flags.TC
    assert not r.answer
    r = tcp(server.port, q(name, "SRV"))
    assert not r.flags & dns.flags.TC
    assert len(r.answer[0]) == 15
    r = udp(server.port, q(name, "SRV", use_edns=0, payload=4096))
    assert not r.flags & dns.flags.TC
    assert len(r.answer[0]) == 15
    assert r.edns == 0
    assert r.payload == 1232
    r = udp(server.port, q("cluster.local.", "SOA", use_edns=1))
    assert r.rcode() == dns.rcode.BADVERS


def test_other_opcodes_and_udp_axfr(server: ServerThread) -> None:
    m = q("cluster.local.", "SOA")
    m.set_opcode(dns.opcode.UPDATE)
    assert udp(server.port, m).rcode() == dns.rcode.NOTIMP
    assert udp(server.port, q("cluster.local.", "AXFR")).rcode() == dns.rcode.FORMERR


# --------------------------------------------------------------------------- transfers


def test_axfr_is_the_exported_zone(server: ServerThread, store: Store) -> None:
    zone = transfer_zone(server.port)
    same(zone, exported(store, CONFIG))
    reverse = dns.versioned.Zone("10.in-addr.arpa.")
    query, _ = dns.xfr.make_query(reverse)
    dns.query.inbound_xfr(HOST, reverse, query, port=server.port, timeout=10)
    same(reverse, exported(store, REVERSE))


def test_new_versions_are_picked_up_and_sent_by_ixfr(server: ServerThread, store: Store,
                                                      tmp_path: Path) -> None:
    zone = transfer_zone(server.port)
    first = server.zones.serial
    ingest_files(store, [str(moved_pod(tmp_path, "10.244.2.50", "5001"))])
    second = store.latest_version()
    assert second is not None
    assert wait_until(lambda: server.zones.serial == second.serial)  # by polling alone
    transfer_zone(server.port, zone, serial=first)
    same(zone, exported(store, CONFIG))
    assert udp(server.port, q(POD2, "A")).answer[0][0].address == "10.244.2.50"
    # exactly the difference: SOA(new) SOA(old) -A SOA(new) +A SOA(new), per message
    query = q("cluster.local.", "IXFR")
    query.authority.append(_soa(first))
    records = [rr for m in dns.query.xfr(HOST, "cluster.local.", port=server.port,
                                          rdtype=dns.rdatatype.IXFR, serial=first)
               for rr in m.answer for rd in rr]
    assert len(records) == 8  # 4 SOAs + 2 removed + 2 added
    # current serial: a single SOA (RFC 1995 §2)
    current = [m for m in dns.query.xfr(HOST, "cluster.local.", port=server.port,
                                         rdtype=dns.rdatatype.IXFR, serial=second.serial)]
    assert len(current) == 1
    assert len(current[0].answer) == 1
    assert current[0].answer[0][0].serial == second.serial
    # unknown serial: the whole zone (RFC 1995 §4)
    fresh = dns.versioned.Zone("cluster.local.")
    transfer_zone(server.port, fresh, serial=(first - 1000) % 2**32)
    same(fresh, exported(store, CONFIG))


def test_ixfr_over_udp_fits_the_clients_payload(server: ServerThread, store: Store,
                                                tmp_path: Path) -> None:
    """Over UDP an IXFR must fit what the client can receive: 512 octets without EDNS
    (RFC 1035 §4.2.1), its EDNS payload otherwise (RFC 6891 §6.2.3), whose OPT record
    comes back (§7); else a single SOA, retry over TCP (RFC 1995 §2)."""
    first = server.zones.serial
    ingest_files(store, [str(moved_pod(tmp_path, "10.244.2.50", "5001"))])
    second = store.latest_version()
    assert second is not None
    assert wait_until(lambda: server.zones.serial == second.serial)
    plain = q("cluster.local.", "IXFR", use_edns=False)
    plain.authority.append(_soa(first))
    wire = _raw_udp_wire(server.port, plain.to_wire())
    assert len(wire) <= 512
    answer = dns.message.from_wire(wire).answer
    assert [rr.rdtype for rr in answer] == [dns.rdatatype.SOA]  # too big for 512: retry
    edns = q("cluster.local.", "IXFR", use_edns=0, payload=1232)
    edns.authority.append(_soa(first))
    wire = _raw_udp_wire(server.port, edns.to_wire())
    reply = dns.message.from_wire(wire, one_rr_per_rrset=True)
    assert len(reply.answer) == 8  # it fits in 1232: 4 SOAs + 2 removed + 2 added
    assert reply.edns == 0


def _soa(serial: int) -> dns.rrset.RRset:
    return dns.rrset.from_text("cluster.local.", 0, "IN", "SOA",
                               f". . {serial} 0 0 0 0")


def test_old_serials_come_from_the_store_journal(start: Callable[..., ServerThread],
                                                 store: Store, tmp_path: Path) -> None:
    server = start(journal_versions=1)
    zone = transfer_zone(server.port)
    first = server.zones.serial
    for i, address in enumerate(("10.244.2.51", "10.244.2.52", "10.244.2.53")):
        ingest_files(store, [str(moved_pod(tmp_path, address, str(6000 + i)))])
        latest = store.latest_version()
        assert latest is not None
        server.wake()
        assert wait_until(lambda: server.zones.serial == latest.serial)  # noqa: B023
    assert len(server.zones.journal) == 1
    assert not server.zones.covers(first)
    messages = list(dns.query.xfr(HOST, "cluster.local.", port=server.port,
                                  rdtype=dns.rdatatype.IXFR, serial=first))
    count = sum(len(rr) for m in messages for rr in m.answer)
    assert count == 2 + 3 * 6  # incremental: 3 versions of 2 SOAs + 4 records, + 2 SOAs
    transfer_zone(server.port, zone, serial=first)
    same(zone, exported(store, CONFIG))


def test_no_stored_version_is_servfail_and_no_notify_until_the_first(tmp_path: Path) -> None:
    """Issue #9: on an empty log ``serve`` publishes nothing (it used to make up a zone of
    SOA, NS and TXT and NOTIFY it): queries, AXFR and IXFR for its zones get SERVFAIL,
    other names REFUSED, no NOTIFY is sent. The first stored version is served at once
    and NOTIFYed."""
    empty = Store.open(f"sqlite:///{tmp_path / 'empty.db'}")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sec:
        sec.bind((HOST, 0))
        sec.settimeout(0)
        options = ServeOptions(listen=((HOST, 0),), poll=3600,
                               notify=((HOST, sec.getsockname()[1]),))
        with ServerThread(options, StoreFeed(empty, (CONFIG, REVERSE))) as st:
            assert st.server.zones is None
            for message, over in [(q("cluster.local.", "SOA"), udp),
                                  (q("web.default.svc.cluster.local.", "A"), tcp),
                                  (q("1.0.0.10.in-addr.arpa.", "PTR"), udp)]:
                assert over(st.port, message).rcode() == dns.rcode.SERVFAIL
            assert udp(st.port, q("example.org.", "A")).rcode() == dns.rcode.REFUSED
            axfr = tcp(st.port, q("cluster.local.", "AXFR"))
            assert axfr.rcode() == dns.rcode.SERVFAIL
            assert not axfr.answer
            ixfr = q("cluster.local.", "IXFR")
            ixfr.authority.append(_soa(1))
            for over in (udp, tcp):
                reply = over(st.port, ixfr)
                assert reply.rcode() == dns.rcode.SERVFAIL
                assert not reply.answer
            assert st.server.report.unloaded == 6
            assert st.server.notifier.sent == 0
            with pytest.raises(BlockingIOError):
                sec.recv(65535)
            assert empty.latest_version() is None  # serve made no version either
            ingest_files(empty, [str(DEMO)])
            st.wake()
            sec.settimeout(10)
            notify = dns.message.from_wire(sec.recv(65535))
            latest = empty.latest_version()
            assert latest is not None
            assert notify.opcode() == dns.opcode.NOTIFY
            assert notify.answer[0][0].serial == latest.serial
            reply = udp(st.port, q("cluster.local.", "SOA"))
            assert reply.rcode() == dns.rcode.NOERROR
            assert reply.answer[0][0].serial == latest.serial
            same(transfer_zone(st.port), exported(empty, CONFIG))
    empty.close()


def test_pending_events_are_projected_by_serve(server: ServerThread, store: Store,
                                               tmp_path: Path) -> None:
    """``ingest --no-project`` + serve: nobody else projects, so serve does."""
    first = server.zones.serial
    ingest_files(store, [str(moved_pod(tmp_path, "10.244.2.60", "7001"))], project=False)
    assert wait_until(lambda: server.zones.serial != first)
    assert udp(server.port, q(POD2, "A")).answer[0][0].address == "10.244.2.60"


def test_a_transfer_sends_the_version_it_started_with(server: ServerThread,
                                                      store: Store, tmp_path: Path) -> None:
    """A transfer holds the ZoneSet current when it began (RFC 5936 §2.2: one serial),
    whatever is published meanwhile."""
    responder = Responder(ServeOptions())
    old = server.zones
    pending = responder.respond(q("cluster.local.", "AXFR").to_wire(), HOST, old, tcp=True)
    assert isinstance(pending, Transfer)
    ingest_files(store, [str(moved_pod(tmp_path, "10.244.2.70", "8001"))])
    server.wake()
    assert wait_until(lambda: server.zones.serial != old.serial)
    _, messages = responder.prepare(pending)
    zone = dns.versioned.Zone("cluster.local.")
    with dns.xfr.Inbound(zone, dns.rdatatype.AXFR) as inbound:
        for wire in messages:
            inbound.process_message(dns.message.from_wire(bytes(wire), xfr=True,
                                                          origin=zone.origin))
    soa = zone.find_rdataset("@", "SOA")[0]
    assert soa.serial == old.serial != server.zones.serial  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- security


def test_tsig_signed_transfers_and_refusals(start: Callable[..., ServerThread],
                                            store: Store) -> None:
    server = start(keys=(KEY,))
    port = server.port
    keyring = {KEY.name: KEY}
    # signed with the key: transferred, every message signed (validated by dnspython)
    zone = transfer_zone(port, keyring=keyring)
    same(zone, exported(store, CONFIG))
    # a signed ordinary query gets a signed answer
    m = q("cluster.local.", "SOA")
    m.use_tsig(keyring, KEY.name)
    assert udp(port, m).had_tsig
    # unsigned: REFUSED (RFC 5936 §6 leaves the policy to us; no TSIG error to give)
    r = tcp(port, q("cluster.local.", "AXFR"))
    assert r.rcode() == dns.rcode.REFUSED
    # wrong secret: NOTAUTH, TSIG error BADSIG, unsigned (RFC 8945 §5.2.2, §5.3.2)
    bad = dns.tsig.Key(KEY.name, b"not-the-secret", dns.tsig.HMAC_SHA256)
    r = _raw_tcp(port, _signed(q("cluster.local.", "AXFR"), bad))
    assert r.rcode() == dns.rcode.NOTAUTH
    assert r.tsig_error == dns.rcode.BADSIG
    assert r.mac == b""
    # unknown key name or algorithm: BADKEY (§5.2.1)
    other = dns.tsig.Key("other-key.", SECRET, dns.tsig.HMAC_SHA256)
    r = _raw_tcp(port, _signed(q("cluster.local.", "AXFR"), other))
    assert r.rcode() == dns.rcode.NOTAUTH
    assert r.tsig_error == dns.rcode.BADKEY
    wrong_alg = dns.tsig.Key(KEY.name, SECRET, dns.tsig.HMAC_SHA512)
    r = _raw_tcp(port, _signed(q("cluster.local.", "AXFR"), wrong_alg))
    assert r.rcode() == dns.rcode.NOTAUTH
    assert r.tsig_error == dns.rcode.BADKEY
    # an hour of clock skew: BADTIME, signed by the key with our time in Other Data
    query = q("cluster.local.", "AXFR")
    skewed = tsig.sign_messages([query.to_wire()], KEY, b"", int(time.time()) - 3600)[0]
    wire = _raw_tcp_wire(port, skewed)
    r = dns.message.from_wire(wire, keyring=False)
    assert r.rcode() == dns.rcode.NOTAUTH
    assert r.tsig_error == dns.rcode.BADTIME
    assert r.mac
    assert len(r.tsig[0].other) == 6
    # ...and that MAC is the key's over the request MAC and the reply (§5.3.2)
    request = dns.message.from_wire(skewed, keyring=False)
    rd = r.tsig[0]  # type: ignore[index]
    assert rd.time_signed == request.tsig[0].time_signed  # type: ignore[index]
    start_of_tsig = len(wire) - len(rd.to_wire()) - len(KEY.name.to_wire()) - 10
    unsigned = wire[:10] + struct.pack("!H", len(r.additional)) + wire[12:start_of_tsig]
    resigned, _ = dns.tsig.sign(unsigned, KEY, rd, rd.time_signed, request.mac)
    assert resigned.mac == rd.mac
    # the same errors over UDP, for ordinary queries too
    r = _raw_udp(port, _signed(q("cluster.local.", "SOA"), bad))
    assert r.rcode() == dns.rcode.NOTAUTH
    assert r.tsig_error == dns.rcode.BADSIG
    assert server.server.report.refused >= 5


def _signed(message: dns.message.Message, key: dns.tsig.Key) -> bytes:
    message.use_tsig(key)
    return message.to_wire()


def _raw_tcp_wire(port: int, wire: bytes) -> bytes:
    with socket.create_connection((HOST, port), timeout=5) as s:
        s.sendall(struct.pack("!H", len(wire)) + wire)
        f = s.makefile("rb")
        (n,) = struct.unpack("!H", f.read(2))
        return f.read(n)


def _raw_tcp(port: int, wire: bytes) -> dns.message.Message:
    return dns.message.from_wire(_raw_tcp_wire(port, wire), keyring=False)


def _raw_udp_wire(port: int, wire: bytes) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(5)
        s.sendto(wire, (HOST, port))
        return s.recv(65535)


def _raw_udp(port: int, wire: bytes) -> dns.message.Message:
    return dns.message.from_wire(_raw_udp_wire(port, wire), keyring=False)


def test_transfer_acl(start: Callable[..., ServerThread]) -> None:
    server = start(allow_transfer=(parse_network("10.255.255.0/24"),))
    assert tcp(server.port, q("cluster.local.", "AXFR")).rcode() == dns.rcode.REFUSED
    ixfr = q("cluster.local.", "IXFR")
    ixfr.authority.append(_soa(1))
    assert udp(server.port, ixfr).rcode() == dns.rcode.REFUSED
    assert tcp(server.port, ixfr).rcode() == dns.rcode.REFUSED
    # ordinary queries stay open
    assert udp(server.port, q("cluster.local.", "SOA")).rcode() == dns.rcode.NOERROR
    assert server.server.report.refused == 3


def test_transfer_of_a_zone_not_served_is_notauth(server: ServerThread) -> None:
    r = tcp(server.port, q("example.com.", "AXFR"))
    assert r.rcode() == dns.rcode.NOTAUTH


def test_signed_transfer_errors_carry_one_tsig(start: Callable[..., ServerThread]) -> None:
    """A FORMERR or NOTAUTH from the transfer code to a signed request is signed once: a
    second TSIG record makes the whole reply unparsable (RFC 8945 §5.1: TSIG is last)."""
    server = start(keys=(KEY,))
    keyring = {KEY.name: KEY}
    no_soa = q("cluster.local.", "IXFR")  # RFC 1995 §3: the SOA is required
    no_soa.use_tsig(keyring, KEY.name)
    chaos = q("cluster.local.", "AXFR", rdclass="CH")
    chaos.use_tsig(keyring, KEY.name)
    for send, query, rcode in [(udp, no_soa, dns.rcode.FORMERR),
                               (tcp, no_soa, dns.rcode.FORMERR),
                               (tcp, chaos, dns.rcode.NOTAUTH)]:
        query.id = random.randrange(65536)
        r = send(server.port, query)
        assert r.rcode() == rcode
        assert r.had_tsig


# --------------------------------------------------------------------------- NOTIFY


def test_notify_is_retried_until_answered_and_signed(start: Callable[..., ServerThread],
                                                     store: Store, tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sec:
        sec.bind((HOST, 0))
        sec.settimeout(10)
        server = start(configs=(CONFIG,), keys=(KEY,), notify=((HOST, sec.getsockname()[1]),),
                       notify_timeout=0.05)
        keyring = {KEY.name: KEY}
        first, peer = sec.recvfrom(65535)  # sent at start; not answered
        again, peer = sec.recvfrom(65535)  # RFC 1996 §3.6: retransmitted
        for wire in (first, again):
            m = dns.message.from_wire(wire, keyring=keyring)  # signed with the key
            assert m.opcode() == dns.opcode.NOTIFY
            assert m.flags & dns.flags.AA
            assert m.question[0].rdtype == dns.rdatatype.SOA
            assert m.answer[0][0].serial == server.zones.serial
        m = dns.message.from_wire(again, keyring=keyring)
        response = dns.message.make_response(m)  # signed over the request MAC
        sec.sendto(response.to_wire(), peer)
        assert wait_until(lambda: server.server.notifier.acknowledged == 1)
        # a new serial: a new NOTIFY
        ingest_files(store, [str(moved_pod(tmp_path, "10.244.2.80", "9001"))])
        server.wake()
        latest = store.latest_version()
        assert latest is not None
        serials = set()
        while latest.serial not in serials:  # bounded by the socket timeout
            m = dns.message.from_wire(sec.recv(65535), keyring=keyring)
            serials.add(m.answer[0][0].serial)


def test_notify_rejected_key_is_named_when_giving_up(start: Callable[..., ServerThread],
                                                    caplog: pytest.LogCaptureFixture) -> None:
    """A secondary that does not know the key (or the secret) answers NOTAUTH with a TSIG
    error, unsigned (RFC 8945 §5.3.2): not an acknowledgement, but the last line must say
    so, not "no answer"."""
    from zonegen.tsig import tsig_error_response

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sec:
        sec.bind((HOST, 0))
        sec.settimeout(10)
        port = sec.getsockname()[1]
        with caplog.at_level("WARNING", logger="zonegen"):
            server = start(configs=(CONFIG,), keys=(KEY,),
                           notify=((HOST, port),), notify_timeout=0.05,
                           notify_attempts=2)
            for error in (dns.rcode.BADKEY, dns.rcode.BADSIG):
                wire, peer = sec.recvfrom(65535)
                request = dns.message.from_wire(wire, keyring=False)
                sec.sendto(tsig_error_response(request, error, int(time.time())), peer)
            assert wait_until(lambda: "NOTIFY" in caplog.text)
    assert server.server.notifier.acknowledged == 0
    (line,) = [r.getMessage() for r in caplog.records if "NOTIFY" in r.getMessage()]
    assert "BADSIG" in line  # the last error seen (16 is BADVERS outside TSIG)
    assert str(KEY.name) in line
    assert f"{HOST}#{port}" in line


# --------------------------------------------------------------------------- robustness


def test_fuzzed_packets_never_stop_the_server(server: ServerThread) -> None:
    rng = random.Random(1996)
    port = server.port
    seeds = [q("consul-server.default.svc.cluster.local.", "SRV", use_edns=0).to_wire(),
             q("cluster.local.", "AXFR").to_wire(),
             _signed(q("cluster.local.", "SOA"), KEY)]
    ixfr = q("cluster.local.", "IXFR")
    ixfr.authority.append(_soa(5))
    seeds.append(ixfr.to_wire())

    def packet() -> bytes:
        choice = rng.random()
        if choice < 0.2:
            return rng.randbytes(rng.randrange(0, 600))
        base = bytearray(rng.choice(seeds))
        if choice < 0.4:
            return bytes(base[:rng.randrange(0, len(base))])  # truncated
        for _ in range(rng.randrange(1, 8)):  # flipped bytes
            base[rng.randrange(len(base))] = rng.randrange(256)
        if choice > 0.9:
            base[2] &= 0x7F  # keep it a query
        return bytes(base)

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.setblocking(False)
        for i in range(3000):
            s.sendto(packet(), (HOST, port))
            if i % 50 == 0:
                with contextlib.suppress(BlockingIOError):
                    while True:
                        s.recv(65535)
    for _ in range(150):
        with socket.create_connection((HOST, port), timeout=5) as c:
            c.settimeout(5)
            for _ in range(rng.randrange(1, 4)):
                p = packet()
                framed = struct.pack("!H", len(p)) + p
                if rng.random() < 0.2:
                    framed = framed[:rng.randrange(0, len(framed) + 1)]  # cut mid-frame
                    c.sendall(framed)
                    break
                c.sendall(framed)
    # Still serving, over both transports. The burst filled the server's UDP receive
    # queue; it is big enough (SO_RCVBUF) that the kernel queued the probe behind the
    # burst rather than dropping it, as it did with the ~208 KB default. A resolver's
    # three tries are all a client gets, so they are all the probe gets.
    assert _udp_answered(port, q("cluster.local.", "SOA"), tries=3)
    assert tcp(port, q("cluster.local.", "SOA")).rcode() == dns.rcode.NOERROR
    assert len(transfer_zone(port).nodes) > 10


def _udp_answered(port: int, query: dns.message.Message, tries: int) -> bool:
    """Whether a NOERROR answer comes within ``tries`` attempts (5 s each), the way a
    stub resolver retries a lost datagram."""
    for _ in range(tries):
        try:
            return udp(port, query).rcode() == dns.rcode.NOERROR
        except dns.exception.Timeout:
            continue
    return False


def test_stalled_clients_do_not_block_others(tmp_path: Path) -> None:
    """A secondary that asks for a big AXFR and never reads holds one buffer and one
    slot until the idle timeout; others are answered meanwhile, and a transfer over the
    cap is told SERVFAIL rather than queued."""
    sys.path.insert(0, str(ROOT / "bench"))
    from _zone import k8s_records

    zones = ZoneSet.build([CONFIG], k8s_records(2500, 10), 7)  # 100k records, ~6 MB
    options = ServeOptions(listen=((HOST, 0),), idle_timeout=1.0, max_transfers=1)
    with ServerThread(options, zones=zones) as st:
        stalled = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.connect((HOST, st.port))
        wire = q("cluster.local.", "AXFR").to_wire()
        stalled.sendall(struct.pack("!H", len(wire)) + wire)
        half = socket.create_connection((HOST, st.port))  # stalls inside a length prefix
        half.sendall(b"\x00")
        try:
            assert wait_until(lambda: st.server._transfers == 1)
            assert udp(st.port, q("cluster.local.", "SOA")).rcode() == dns.rcode.NOERROR
            assert tcp(st.port, q("cluster.local.", "SOA")).rcode() == dns.rcode.NOERROR
            assert tcp(st.port, q("cluster.local.", "AXFR")).rcode() == dns.rcode.SERVFAIL
            # the idle timeout frees both
            assert wait_until(lambda: st.server._transfers == 0 and
                            not st.server._connections)
        finally:
            stalled.close()
            half.close()
        assert _raw_axfr_count(st.port, len(zones.primary) + 1) == len(zones.primary) + 1


def _raw_axfr_count(port: int, expected: int) -> int:
    """Records of an AXFR, counted from message headers as fast as the socket allows
    (a parsing client would be the bottleneck); the first and last message are parsed."""
    wire = q("cluster.local.", "AXFR").to_wire()
    count = 0
    with socket.create_connection((HOST, port), timeout=30) as s:
        s.sendall(struct.pack("!H", len(wire)) + wire)
        f = s.makefile("rb", buffering=1 << 20)
        m = b""
        while count < expected:
            (n,) = struct.unpack("!H", f.read(2))
            m = f.read(n)
            if not count:
                assert dns.message.from_wire(m).answer[0].rdtype == dns.rdatatype.SOA
            count += struct.unpack_from("!H", m, 6)[0]
        assert dns.message.from_wire(m).answer[-1].rdtype == dns.rdatatype.SOA
    return count


@pytest.mark.skipif(not socket.has_ipv6, reason="no IPv6")
def test_ipv6_listener(start: Callable[..., ServerThread]) -> None:
    try:
        server = start(listen=(("::1", 0),))
    except Exception as e:  # noqa: BLE001
        pytest.skip(f"cannot bind ::1: {e}")
    r = dns.query.udp(q("cluster.local.", "SOA"), "::1", port=server.port, timeout=5)
    assert r.rcode() == dns.rcode.NOERROR
    zone = dns.versioned.Zone("cluster.local.")
    query, _ = dns.xfr.make_query(zone)
    dns.query.inbound_xfr("::1", zone, query, port=server.port, timeout=10)  # ::1 allowed
    assert zone.find_rdataset("@", "SOA")


def test_cli_serve_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    assert run_cli(db, "ingest", str(DEMO)).returncode == 0
    with serve_process(db, "--listen", f"{HOST}:0", "--poll", "0.1") as proc:
        port = dns_port(serving_line(proc))
        def answers() -> bool:
            try:
                return udp(port, q("cluster.local.", "SOA")).rcode() == dns.rcode.NOERROR
            except Exception:  # noqa: BLE001
                return proc.poll() is not None
        assert wait_until(answers, 60)
        assert proc.poll() is None, proc.communicate()
        out = stop_serve(proc)
        assert "served cluster.local. up to serial" in out, out


def test_cli_errors_are_one_line(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'e.db'}"
    for args, text in [(["--listen", "nowhere"], "expected HOST:PORT"),
                       (["--tsig-key", "k:hmac-nope:c2VjcmV0"], "unknown TSIG algorithm"),
                       (["--allow-transfer", "10.0.0.300/8"], "not an IP network"),
                       (["--notify", "[::1]:99999"], "out of range")]:
        result = cli("serve", *args, db=db)
        assert result.exit_code == 1, result.output
        assert text in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(("args", "text"), [
    (["--poll", "nan"], "--poll nan"),  # every wait returned at once: a core at 100 %
    (["--poll", "inf"], "--poll inf"),
    (["--poll", "1e300"], "--poll 1e+300"),
    (["--poll", "-1"], "--poll"),
    (["--kubeconfig", "kube.yaml"], "--kubeconfig only applies with --watch"),
    (["--context", "c", "-n", "default"], "--context, --namespace only apply with --watch"),
])
def test_meaningless_options_are_usage_errors(tmp_path: Path, args: list[str],
                                              text: str) -> None:
    """Issue #9: exit 2 (click's usage error) with one line, before anything is served."""
    db = f"sqlite:///{tmp_path / 'u.db'}"
    result = cli("serve", "--listen", f"{HOST}:0", *args, db=db)
    assert result.exit_code == 2, result.output
    assert text in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("poll", [float("nan"), float("inf"), 0.0, -1.0])
def test_serve_options_refuse_a_poll_that_never_waits(poll: float) -> None:
    from zonegen.errors import InvalidOption

    with pytest.raises(InvalidOption, match="--poll"):
        ServeOptions(poll=poll)


# --------------------------------------------------------------------------- parsing


def test_keyfile_parses_bind_syntax(tmp_path: Path) -> None:
    path = tmp_path / "keys.conf"
    path.write_text(f"""
// generated by tsig-keygen
key "xfr-key" {{
    algorithm hmac-sha256;   # the default
    secret "{SECRET}";
}};
/* a second key,
   unquoted name */
key other.example {{ algorithm HMAC-SHA512; secret "{SECRET}"; }};
options {{ directory "/tmp"; }};
""")
    keys = parse_keyfile(path)
    assert [(str(k.name), k.algorithm) for k in keys] == [
        ("xfr-key.", dns.tsig.HMAC_SHA256), ("other.example.", dns.tsig.HMAC_SHA512)]
    assert keys[0].secret == KEY.secret


@pytest.mark.parametrize(("text", "message"), [
    ('key "k" { algorithm hmac-sha256; };', "keys.conf:1: key 'k' has no secret"),
    ('key "k" { algorithm hmac-sha256; secret "!!"; };', "is not base64"),
    ('key "k" { algorithm hmac-md6; secret "c2VjcmV0"; };', "unknown TSIG algorithm"),
    ('key "k" {\n algorithm hmac-sha256\n secret "c2VjcmV0"; };', "keys.conf:3: expected ';'"),
    ('key "k" { algorithm hmac-sha256; secret "c2VjcmV0"; }', "unexpected end of file"),
    ('key "k" { algo hmac-sha256; secret "c2VjcmV0"; };', "unknown field 'algo'"),
    ("# nothing\n", "no key clause"),
])
def test_keyfile_errors_name_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "keys.conf"
    path.write_text(text)
    with pytest.raises(InvalidInput) as e:
        parse_keyfile(path)
    assert message in str(e.value)
    assert "keys.conf" in str(e.value)


def test_option_parsing() -> None:
    assert parse_hostport("[::1]:5353") == ("::1", 5353)
    assert parse_hostport("127.0.0.1:53") == ("127.0.0.1", 53)
    key = parse_tsig_key(f"xfr-key:hmac-sha256:{SECRET}")
    assert key == KEY
    with pytest.raises(InvalidInput, match="NAME:ALGORITHM:BASE64SECRET"):
        parse_tsig_key("xfr-key")
    with pytest.raises(InvalidInput, match="configured twice"):
        ServeOptions(keys=(KEY, KEY))
    opts = ServeOptions()
    assert opts.allowed("127.0.0.9")
    assert opts.allowed("::1")
    assert opts.allowed("::ffff:127.0.0.1")
    assert not opts.allowed("10.0.0.1")


# --------------------------------------------------------------------------- serve --watch


def test_serve_watch_serves_cluster_changes_at_once(
        tmp_path: Path, kube: FakeKubeAPI, kubeconfig: Path) -> None:
    """``serve --watch``: the watcher runs in-process and wakes the server on each
    commit, so a change is served without waiting for a poll (set to an hour here)."""
    import threading

    from tests.background import in_background
    from tests.helpers import fast
    from tests.test_watch import add_ready
    from zonegen.serve import ServeReport, WatchConfig, serve

    st = Store.open(f"sqlite:///{tmp_path / 'w.db'}")
    ready: list[str] = []
    options = ServeOptions(listen=((HOST, 0),), poll=3600)
    watch = WatchConfig(str(kubeconfig), None, fast())
    add_ready(kube, "web", ["10.1.0.1"])

    def run(stop: threading.Event) -> ServeReport:
        return serve(st, [CONFIG], options, watch=watch, ready=ready.append, stop=stop)

    try:
        with in_background(run, "serve --watch", 60) as served:
            def has(name: str, address: str) -> bool:
                if not ready:
                    return served.done
                bound = re.search(r"#(\d+) \(udp, tcp\)", ready[0])
                assert bound is not None, ready
                try:
                    r = udp(int(bound.group(1)), q(name, "A"))
                except dns.exception.Timeout:
                    return False
                return any(rd.address == address for rr in r.answer for rd in rr)

            assert wait_until(lambda: has("web.default.svc.cluster.local.", "10.1.0.1"),
                              60), served
            add_ready(kube, "api", ["10.1.0.2"])
            assert wait_until(lambda: has("api.default.svc.cluster.local.", "10.1.0.2"), 60)
    finally:
        st.close()
    assert "serving cluster.local." in ready[0]
