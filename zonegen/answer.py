"""Small authoritative answers and NOTIFY messages built with dnspython from a
:class:`~zonegen.wire.WireZone`'s fragments (a handful of records per query), sans I/O."""

from __future__ import annotations

from collections.abc import Iterable

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from zonegen.model import AAAA, CNAME, NS, SOA, SRV, A, ZoneConfig
from zonegen.wire import RR_HEAD, WireZone, soa_fragment
from zonegen.xfr import error_response

_IN = dns.rdataclass.IN


def _decode(wirezone: WireZone, owner: str, name: dns.name.Name
            ) -> dict[int, dns.rrset.RRset]:
    """The RRsets at ``owner``, parsed back from its fragments (a handful per query)."""
    plen = wirezone.prefix_length(owner)
    out: dict[int, dns.rrset.RRset] = {}
    for frag in wirezone.fragments_of(owner):
        rtype, _, ttl, rdlen = RR_HEAD.unpack_from(frag, plen)
        rd = dns.rdata.from_wire(_IN, rtype, frag, plen + 10, rdlen)
        rrset = out.get(rtype)
        if rrset is None:
            rrset = out[rtype] = dns.rrset.RRset(name, _IN, rd.rdtype)
        rrset.add(rd, ttl)
    return out


def _additional(response: dns.message.Message, wirezone: WireZone,
                targets: Iterable[dns.name.Name], zone: dns.name.Name) -> None:
    """A/AAAA of in-zone NS and SRV targets (RFC 1035 §3.3.11, RFC 2782)."""
    for target in targets:
        if not target.is_subdomain(zone):
            continue
        sets = _decode(wirezone, target.to_text().lower(), target)
        for rtype in (A, AAAA):
            if rtype in sets and sets[rtype] not in response.additional:
                response.additional.append(sets[rtype])


def answer(query: dns.message.Message | bytes, wirezone: WireZone, max_size: int = 1232, *,
           tcp: bool = False) -> bytes | None:
    """An authoritative answer to an ordinary query (RFC 1034 §4.3.2), as wire.

    AA set, RA clear, RD and id copied, EDNS echoed with our payload (RFC 6891 §7).
    NXDOMAIN or NODATA carry the SOA in authority, TTL min(SOA TTL, minimum) (RFC 2308
    §3); a name above existing names is an empty non-terminal, NODATA (RFC 8020). A CNAME
    answers other types and is followed inside the zone. Names outside the zone get
    REFUSED (we are not a resolver); other opcodes NOTIMP; EDNS versions above 0 BADVERS
    (RFC 6891 §6.1.3); AXFR/IXFR here FORMERR (they belong to :func:`axfr_response` over
    TCP, RFC 5936 §4.2). Over UDP the limit is ``max_size`` capped by the client's EDNS
    payload, 512 without EDNS (RFC 1035 §4.2.1); a reply that does not fit first loses
    its additional section (RFC 2181 §9), then is sent empty with TC set.

    :returns: the reply, or None when the query is too broken to answer.
    """
    if isinstance(query, bytes):
        try:
            query = dns.message.from_wire(query)
        except dns.exception.DNSException:
            return error_response(query, dns.rcode.FORMERR) or None
    response = dns.message.make_response(query, our_payload=max_size)
    if query.opcode() != dns.opcode.QUERY:
        response.set_rcode(dns.rcode.NOTIMP)
        return response.to_wire()
    if query.edns > 0:
        response.set_rcode(dns.rcode.BADVERS)
        return response.to_wire()
    if len(query.question) != 1:
        response.set_rcode(dns.rcode.FORMERR)
        return response.to_wire()
    q = query.question[0]
    zone = dns.name.from_text(wirezone.config.zone)
    if q.rdtype in (dns.rdatatype.AXFR, dns.rdatatype.IXFR):
        response.set_rcode(dns.rcode.FORMERR)
        return response.to_wire()
    if q.rdclass != _IN or not q.name.is_subdomain(zone):
        response.set_rcode(dns.rcode.REFUSED)
        return response.to_wire()
    response.flags |= dns.flags.AA
    _resolve(response, wirezone, q.name, q.rdtype, zone)
    limit = 65535 if tcp else 512 if query.edns < 0 else max(512, min(max_size, query.payload))
    try:
        return response.to_wire(max_size=limit)
    except dns.exception.TooBig:
        pass
    response.additional = []
    try:
        return response.to_wire(max_size=limit)
    except dns.exception.TooBig:
        pass
    response.answer = []
    response.authority = []
    response.flags |= dns.flags.TC
    return response.to_wire(max_size=limit)


def _resolve(response: dns.message.Message, wirezone: WireZone, qname: dns.name.Name,
             qtype: int, zone: dns.name.Name) -> None:
    name = qname
    for _ in range(8):  # CNAME chain bound inside the zone
        owner = name.canonicalize().to_text()
        sets = _decode(wirezone, owner, name)
        if not sets:
            if not wirezone.exists(owner):
                response.set_rcode(dns.rcode.NXDOMAIN)
            _negative(response, wirezone, zone)
            return
        if qtype == dns.rdatatype.ANY:
            response.answer.extend(sets.values())
            return
        if qtype in sets:
            response.answer.append(sets[qtype])
            if qtype == NS:
                _additional(response, wirezone, (rd.target for rd in sets[NS]), zone)
            elif qtype == SRV:
                _additional(response, wirezone, (rd.target for rd in sets[SRV]), zone)
            return
        if CNAME not in sets:
            _negative(response, wirezone, zone)
            return
        response.answer.append(sets[CNAME])
        name = sets[CNAME][0].target
        if not name.is_subdomain(zone):
            return


def _negative(response: dns.message.Message, wirezone: WireZone, zone: dns.name.Name) -> None:
    soa = _decode(wirezone, wirezone.config.zone, zone)[SOA]
    soa.update_ttl(min(soa.ttl, wirezone.config.minimum))
    response.authority.append(soa)


def notify_message(config: ZoneConfig, serial: int, *, id: int | None = None  # noqa: A002
                   ) -> dns.message.Message:
    """A NOTIFY for ``config.zone`` at ``serial`` (RFC 1996 §3): opcode NOTIFY, AA set, RD
    clear, question ``<zone> IN SOA``, and the new SOA in the answer section as the hint
    secondaries may use (§3.7)."""
    zone = dns.name.from_text(config.zone)
    message = dns.message.make_query(zone, dns.rdatatype.SOA, id=id)
    message.set_opcode(dns.opcode.NOTIFY)
    message.flags = (message.flags & ~dns.flags.RD) | dns.flags.AA
    message.answer.append(_decode_soa(config, serial, zone))
    return message


def _decode_soa(config: ZoneConfig, serial: int, zone: dns.name.Name) -> dns.rrset.RRset:
    frag = soa_fragment(config, serial)
    _, _, ttl, rdlen = RR_HEAD.unpack_from(frag, 2)
    rrset = dns.rrset.RRset(zone, _IN, dns.rdatatype.SOA)
    rrset.add(dns.rdata.from_wire(_IN, dns.rdatatype.SOA, frag, 12, rdlen), ttl)
    return rrset
