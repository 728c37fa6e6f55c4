"""quickanswer: every reply equals what the dnspython path (xfr.answer, and Responder's
REFUSED for names outside every zone) sends for the same query: same header bytes, same
question bytes, same length, the same RRsets in the same order with the same TTLs; byte
for byte whenever no RRset holds two records (dnspython shuffles those, we rotate)."""

from __future__ import annotations

import struct

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.tsig
import dns.tsigkeyring
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from zonegen import answer, xfr
from zonegen.model import AAAA, CNAME, PTR, SRV, TXT, A, Diff, Record, ZoneConfig
from zonegen.quickanswer import quick_answer
from zonegen.serve import Responder, ServeOptions, ZoneSet, extra_zone_config

CONFIG = ZoneConfig()
REVERSE = extra_zone_config(CONFIG, "10.in-addr.arpa")

RECORDS = [
    Record("db.shop.svc", A, ("10.244.0.6",)),
    Record("db.shop.svc", A, ("10.244.0.7",)),
    Record("db-0.db.shop.svc", A, ("10.244.0.6",)),
    Record("db-1.db.shop.svc", A, ("10.244.0.7",)),
    Record("db-1.db.shop.svc", AAAA, ("fd00::7",)),
    Record("_pg._tcp.db.shop.svc", SRV, (0, 50, 5432, "db-0.db.shop.svc")),
    Record("_pg._tcp.db.shop.svc", SRV, (0, 50, 5432, "db-1.db.shop.svc")),
    Record("_pg._tcp.db.shop.svc", SRV, (0, 50, 5433, "db-1.db.shop.svc")),
    Record("_x._tcp.db.shop.svc", SRV, (0, 50, 80, "www.example.com.")),
    Record("alias.shop.svc", CNAME, ("db.shop.svc",)),
    Record("dns-version", TXT, ("1.1.0",), 28800),
    Record("6.0.244.10.in-addr.arpa.", PTR, ("db-0.db.shop.svc",)),
]
ZONES = ZoneSet.build([CONFIG, REVERSE], RECORDS, 7)


def reference(wire: bytes, zones: ZoneSet, payload: int, tcp: bool) -> bytes:
    """What ``Responder.respond`` sent for an unsigned query before the quick path."""
    query = dns.message.from_wire(wire)
    wz = zones.find(query.question[0].name)
    if wz is None:
        response = dns.message.make_response(query, our_payload=payload)
        response.set_rcode(dns.rcode.REFUSED)
        return response.to_wire()
    reply = answer.answer(query, wz, payload, tcp=tcp)
    assert reply is not None
    return reply


def question_end(wire: bytes) -> int:
    pos = 12
    while wire[pos]:
        pos += wire[pos] + 1
    return pos + 5


def assert_same(quick: bytes, ref: bytes) -> None:
    assert len(quick) == len(ref)
    assert quick[:question_end(ref)] == ref[:question_end(ref)]  # header and question
    mine, theirs = dns.message.from_wire(quick), dns.message.from_wire(ref)
    assert mine.edns == theirs.edns
    assert mine.payload == theirs.payload
    for section in ("answer", "authority", "additional"):
        a, b = getattr(mine, section), getattr(theirs, section)
        assert a == b, section  # RRsets in order; each compared as a set of rdatas
        assert [(rr.name.to_text(), rr.ttl) for rr in a] == \
            [(rr.name.to_text(), rr.ttl) for rr in b]
    if all(len(rr) == 1 for s in (theirs.answer, theirs.authority, theirs.additional)
           for rr in s):
        assert quick == ref


def query(name: str, rdtype: str | int, **kw: object) -> bytes:
    return dns.message.make_query(name, rdtype, **kw).to_wire()  # type: ignore[arg-type]


def test_answers_equal_the_dnspython_path() -> None:
    cases = [("db.shop.svc.cluster.local.", "A"), ("DB.Shop.svc.cluster.LOCAL.", "A"),
             ("_pg._tcp.db.shop.svc.cluster.local.", "SRV"),
             ("_x._tcp.db.shop.svc.cluster.local.", "SRV"),
             ("db-1.db.shop.svc.cluster.local.", "AAAA"),
             ("dns-version.cluster.local.", "TXT"), ("cluster.local.", "SOA"),
             ("cluster.local.", "NS"), ("cluster.local.", "A"),
             ("nope.shop.svc.cluster.local.", "A"), ("_tcp.db.shop.svc.cluster.local.", "SRV"),
             ("alias.shop.svc.cluster.local.", "CNAME"),
             ("6.0.244.10.in-addr.arpa.", "PTR"), ("7.0.244.10.in-addr.arpa.", "PTR"),
             ("10.in-addr.arpa.", "SOA"), ("example.org.", "A"), ("local.", "SOA"),
             # negative answers of one length, sharing labels with the SOA's names or not
             ("zz.dnz.cluster.local.", "A"), ("zz.dns.cluster.local.", "A"),
             ("ns.dns.cluster.local.", "TXT"), ("hostmaster.cluster.local.", "A"),
             ("hostmastex.cluster.local.", "A"), ("x.hostmaster.cluster.local.", "A")]
    for name, rdtype in cases:
        for kw in ({"use_edns": False}, {"use_edns": 0}, {"use_edns": 0, "payload": 4096}):
            wire = query(name, rdtype, **kw)
            quick = quick_answer(wire, ZONES.zones)
            assert quick is not None, (name, rdtype)
            assert_same(quick, reference(wire, ZONES, 1232, False))


def test_question_case_echoed_and_rrset_rotates() -> None:
    wire = query("Db.SHOP.svc.Cluster.Local.", "A")
    first, second = quick_answer(wire, ZONES.zones), quick_answer(wire, ZONES.zones)
    assert first is not None
    assert second is not None
    assert first[12:question_end(first)] == wire[12:question_end(wire)]
    a, b = dns.message.from_wire(first).answer[0], dns.message.from_wire(second).answer[0]
    assert a == b
    assert [rd.address for rd in a] == [rd.address for rd in b][::-1]  # two records


def test_new_version_is_answered_from_its_own_records() -> None:
    wire = query("db-0.db.shop.svc.cluster.local.", "A")
    assert quick_answer(wire, ZONES.zones) is not None  # cached for version 7
    moved = Diff(frozenset({Record("db-0.db.shop.svc", A, ("10.244.0.9",))}),
                 frozenset({Record("db-0.db.shop.svc", A, ("10.244.0.6",))}))
    newer = ZONES.advance([(8, xfr.JournalStep(7, 8, moved.removed, moved.added))], 10, 100)
    reply = quick_answer(wire, newer.zones)
    assert reply is not None
    assert [rd.address for rd in dns.message.from_wire(reply).answer[0]] == ["10.244.0.9"]
    assert_same(reply, reference(wire, newer, 1232, False))


def test_truncation_drops_additional_then_sets_tc() -> None:
    records = [Record("big.svc", A, (f"10.0.{i // 250}.{i % 250}",)) for i in range(100)]
    records += [Record("_h._tcp.big.svc", SRV, (0, 1, 80, f"p-{i}.big.svc")) for i in range(12)]
    records += [Record(f"p-{i}.big.svc", A, (f"10.1.0.{i}",)) for i in range(12)]
    zones = ZoneSet.build([CONFIG], records, 1)
    for name, kw, tcp in [("big.svc.cluster.local.", {"use_edns": False}, False),
                          ("big.svc.cluster.local.", {"use_edns": 0}, False),
                          ("big.svc.cluster.local.", {"use_edns": 0, "payload": 4096}, False),
                          ("big.svc.cluster.local.", {"use_edns": False}, True),
                          ("_h._tcp.big.svc.cluster.local.", {"use_edns": 0, "payload": 700},
                           False),
                          ("_h._tcp.big.svc.cluster.local.", {"use_edns": False}, False)]:
        for payload in (512, 1232, 4096):
            rdtype = "SRV" if name.startswith("_") else "A"
            wire = query(name, rdtype, **kw)
            quick = quick_answer(wire, zones.zones, payload, tcp=tcp)
            assert quick is not None
            assert_same(quick, reference(wire, zones, payload, tcp))
    srv = quick_answer(query("_h._tcp.big.svc.cluster.local.", "SRV", use_edns=0, payload=700),
                       zones.zones)
    assert srv is not None
    parsed = dns.message.from_wire(srv)
    assert parsed.answer
    assert not parsed.additional  # dropped: it did not fit
    assert not parsed.flags & dns.flags.TC


# --------------------------------------------------------------------------- fallbacks


def test_declines_what_it_does_not_handle() -> None:
    name = "db.shop.svc.cluster.local."
    keyring = dns.tsigkeyring.from_text({"k.": ("hmac-sha256", "c2VjcmV0c2VjcmV0")})
    signed = dns.message.make_query(name, "A")
    signed.use_tsig(keyring, keyname="k.")
    cookie = dns.message.make_query(name, "A", use_edns=0,
                                    options=[dns.edns.GenericOption(10, b"\x01" * 8)])
    padded = dns.message.make_query(name, "A", use_edns=0, pad=128)
    plain = query(name, "A")
    pointer = plain[:12] + b"\xc0\x0c" + plain[-4:]  # a question name that is a pointer
    declined = {
        "TSIG": signed.to_wire(),
        "EDNS option": cookie.to_wire(),
        "padding": padded.to_wire(),
        "EDNS version 1": query(name, "A", use_edns=1),
        "ANY": query(name, "ANY"),
        "AXFR": query("cluster.local.", "AXFR"),
        "IXFR": query("cluster.local.", "IXFR"),
        "OPT as qtype": query(name, 41),
        "class CH": query(name, "A", rdclass="CH"),
        "CNAME met": query("alias.shop.svc.cluster.local.", "A"),
        "response": plain[:2] + bytes((plain[2] | 0x80,)) + plain[3:],
        "NOTIFY": answer.notify_message(CONFIG, 1).to_wire(),
        "two questions": plain[:5] + b"\x02" + plain[6:] + plain[12:],
        "answer record": plain[:7] + b"\x01" + plain[8:],
        "trailing junk": plain + b"\x00",
        "truncated": plain[:-1],
        "header only": plain[:12],
        "compressed name": pointer,
        "odd label": query("db\\.x.shop.svc.cluster.local.", "A"),
        "label type 0x40": plain[:12] + b"\x41" + plain[13:],
    }
    for what, wire in declined.items():
        assert quick_answer(wire, ZONES.zones) is None, what
    assert quick_answer(plain, {}) is None  # no zone loaded


def test_responder_falls_back_for_declined_queries() -> None:
    responder = Responder(ServeOptions())
    cname = query("alias.shop.svc.cluster.local.", "A")
    outcome = responder.respond(cname, "127.0.0.1", ZONES, tcp=False)
    assert outcome is not None
    reply = dns.message.from_wire(outcome.messages[0])  # type: ignore[union-attr]
    assert [rr.rdtype for rr in reply.answer] == [dns.rdatatype.CNAME, dns.rdatatype.A]
    chaos = query("version.bind.", "TXT", rdclass="CH")
    outcome = responder.respond(chaos, "127.0.0.1", ZONES, tcp=False)
    assert outcome is not None
    assert dns.message.from_wire(outcome.messages[0]).rcode() == dns.rcode.REFUSED  # type: ignore[union-attr]
    garbage = b"\x12\x34\x01\x00\x00\x01" + b"\xff" * 10
    outcome = responder.respond(garbage, "127.0.0.1", ZONES, tcp=False)
    assert outcome is not None
    assert outcome.messages[0][3] & 0xF == dns.rcode.FORMERR  # type: ignore[union-attr]


def test_responder_answers_plain_queries_through_the_quick_path() -> None:
    responder = Responder(ServeOptions(udp_payload=1232))
    wire = query("_pg._tcp.db.shop.svc.cluster.local.", "SRV", use_edns=0)
    outcome = responder.respond(wire, "127.0.0.1", ZONES, tcp=False)
    assert outcome is not None
    assert_same(outcome.messages[0], reference(wire, ZONES, 1232, False))  # type: ignore[union-attr]


# --------------------------------------------------------------------------- property test

LABELS = ["a", "b", "c", "_t", "x-1"]
label = st.sampled_from(LABELS)
relname = st.lists(label, min_size=1, max_size=3).map(".".join)
ttl = st.one_of(st.none(), st.sampled_from([5, 30, 3600]))
hot = st.sampled_from(["a", "b", "a.b", "x-1.c"])  # owners many records share
owner = st.one_of(relname, hot)
record = st.one_of(
    st.builds(lambda o, i, t: Record(o, A, (f"10.0.0.{i}",), t), owner, st.integers(1, 40),
              ttl),
    st.builds(lambda o, i, t: Record(o, AAAA, (f"fd00::{i}",), t), owner, st.integers(1, 3),
              ttl),
    st.builds(lambda o, w, t, t2: Record(o, SRV, (0, w, 80, t), t2), owner,
              st.integers(0, 2), st.one_of(hot, relname, st.just("out.example.com.")), ttl),
    st.builds(lambda o, t: Record(o, TXT, (t,)), owner, st.text("xy ", max_size=300)),
    st.builds(lambda o, t: Record(o, CNAME, (t,)), relname, st.one_of(hot, relname)),
    st.builds(lambda i, t: Record(f"{i}.0.0.10.in-addr.arpa.", PTR, (t,)),
              st.integers(1, 4), st.one_of(hot, relname)),
)
bulk = st.one_of(  # RRsets big enough to truncate
    st.builds(lambda o, n, t: [Record(o, A, (f"10.0.1.{i}",), t) for i in range(n)], hot,
              st.integers(10, 60), ttl),
    st.builds(lambda o, n, t: [Record(o, SRV, (0, 1, 80 + i, t)) for i in range(n)], owner,
              st.integers(5, 40), hot),
)
zone_records = st.lists(st.one_of(record.map(lambda r: [r]), bulk), max_size=40).map(
    lambda lists: [r for rs in lists for r in rs])
qname = st.one_of(
    st.builds(lambda n: f"{n}.cluster.local.", relname),
    st.builds(lambda i: f"{i}.0.0.10.in-addr.arpa.", st.integers(1, 5)),
    st.sampled_from(["cluster.local.", "10.in-addr.arpa.", "0.10.in-addr.arpa.",
                     "example.com.", "local.", "ns.dns.cluster.local.",
                     "dns.cluster.local."]),
)
qtype = st.sampled_from(["A", "AAAA", "SRV", "TXT", "CNAME", "NS", "SOA", "PTR", "MX",
                         "HTTPS", "CAA"])


def mixed_case(name: str, flips: list[bool]) -> str:
    return "".join(c.upper() if flip else c for c, flip in zip(name, flips + [False] * len(name),
                                                                 strict=False))


def absolute(record: Record) -> str:
    return record.owner if record.owner.endswith(".") else f"{record.owner}.cluster.local."


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(zone_records, st.lists(record, max_size=4), st.data())
def test_property_quick_answer_equals_dnspython(records: list[Record], added: list[Record],
                                                data: st.DataObject) -> None:
    zones = ZoneSet.build([CONFIG, REVERSE], records, 1)
    if added:  # the overlay of an applied version too
        zones = zones.advance([(2, xfr.JournalStep(1, 2, frozenset(records[:2]),
                                                   frozenset(added)))], 10, 1000)
    owners = sorted({absolute(r) for r in records + added})
    # existing names (often), their parents (empty non-terminals), their children
    # (NXDOMAIN), and names outside or at the top of the zones
    names = st.one_of(qname, *([st.sampled_from(owners)] * 3 if owners else []),
                      *([st.sampled_from(owners).map(lambda n: n.split(".", 1)[1]),
                         st.sampled_from(owners).map(lambda n: f"zz.{n}")] if owners else []))
    types = st.one_of(qtype, *([st.sampled_from(sorted({dns.rdatatype.to_text(r.rtype)
                                                         for r in records + added}))] * 2
                               if records + added else []))
    for _ in range(data.draw(st.integers(1, 8))):
        if records and data.draw(st.booleans()):  # a name and type that exist
            rec = data.draw(st.sampled_from(records))
            name, rdtype = absolute(rec), dns.rdatatype.to_text(rec.rtype)
        else:
            name, rdtype = data.draw(names), data.draw(types)
        flips = data.draw(st.lists(st.booleans(), max_size=40))
        edns_payload = data.draw(st.sampled_from([None, 100, 512, 600, 1232, 4096]))
        payload = data.draw(st.sampled_from([512, 1232, 4096]))
        tcp = data.draw(st.booleans())
        if edns_payload is None:
            wire = query(mixed_case(name, flips), rdtype, use_edns=False)
        else:
            wire = query(mixed_case(name, flips), rdtype, use_edns=0, payload=edns_payload)
        quick = quick_answer(wire, zones.zones, payload, tcp=tcp)
        ref = reference(wire, zones, payload, tcp)
        if quick is None:  # only a CNAME to follow is left to dnspython here
            parsed = dns.message.from_wire(reference(wire, zones, payload, True))  # untruncated
            assert parsed.answer
            assert parsed.answer[0].rdtype == dns.rdatatype.CNAME
            assert dns.rdatatype.from_text(rdtype) != dns.rdatatype.CNAME
            event("CNAME left to dnspython")
            continue
        parsed = dns.message.from_wire(ref)
        event(f"rcode {parsed.rcode()} tc {bool(parsed.flags & dns.flags.TC)} "
              f"an {bool(parsed.answer)} ar {bool(parsed.additional)}")
        assert_same(quick, ref)
        again = quick_answer(wire, zones.zones, payload, tcp=tcp)  # from the caches
        assert again is not None
        assert_same(again, ref)
        other_id = struct.pack("!H", (struct.unpack_from("!H", wire)[0] + 1) % 65536)
        third = quick_answer(other_id + wire[2:], zones.zones, payload, tcp=tcp)
        assert third is not None
        assert third[:2] == other_id
        assert third[2:12] == quick[2:12]
