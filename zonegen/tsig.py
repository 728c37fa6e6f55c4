"""TSIG on pre-rendered messages, sans I/O (RFC 8945): signing a transfer's messages,
error replies, and the room a TSIG record takes. dnspython computes every MAC."""

from __future__ import annotations

import struct
from collections.abc import Sequence

import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TSIG
import dns.tsig

from zonegen.wire import append_record

_TSIG_FUDGE = 300  # RFC 8945 §10: 300 seconds recommended


def _tsig_rdata(query: dns.message.Message) -> dns.rdtypes.ANY.TSIG.TSIG:
    rd = query.tsig[0] if query.tsig else None
    if not isinstance(rd, dns.rdtypes.ANY.TSIG.TSIG):
        raise ValueError("message has no TSIG")
    return rd


def _append_tsig(wire: bytes, owner: dns.name.Name, rdata: bytes) -> bytes:
    """``wire`` with one more additional record: a TSIG (class ANY, TTL 0)."""
    return append_record(wire, owner.to_wire() or b"", dns.rdatatype.TSIG,
                         dns.rdataclass.ANY, 0, rdata)


def tsig_error_response(query: dns.message.Message, error: int, now: int,
                        key: dns.tsig.Key | None = None) -> bytes:
    """NOTAUTH with a TSIG error (RFC 8945 §5.2). BADKEY and BADSIG replies are unsigned,
    MAC empty (§5.3.2: the key or MAC is what failed); BADTIME is signed with the key,
    the request's Time Signed kept and our clock in Other Data so the client can see the
    skew (§5.2.3)."""
    request = _tsig_rdata(query)
    response = dns.message.make_response(query)  # unsigned: query.keyring is unset
    response.set_rcode(dns.rcode.NOTAUTH)
    wire = response.to_wire()
    keyname = query.keyname
    if keyname is None:
        raise ValueError("message has no TSIG")
    if error == dns.rcode.BADTIME and key is not None:
        other = struct.pack("!HI", (now >> 32) & 0xFFFF, now & 0xFFFFFFFF)
        template = dns.rdtypes.ANY.TSIG.TSIG(  # type: ignore[no-untyped-call]
            dns.rdataclass.ANY, dns.rdatatype.TSIG, key.algorithm, request.time_signed,
            request.fudge, b"", query.id, error, other)
        signed, _ = dns.tsig.sign(  # type: ignore[no-untyped-call]
            wire, key, template, request.time_signed, request.mac)
        return _append_tsig(wire, key.name, signed.to_wire() or b"")
    rdata = dns.rdtypes.ANY.TSIG.TSIG(  # type: ignore[no-untyped-call]
        dns.rdataclass.ANY, dns.rdatatype.TSIG, request.algorithm, now, _TSIG_FUDGE, b"",
        query.id, error, b"")
    return _append_tsig(wire, keyname, rdata.to_wire() or b"")


def tsig_size(key: dns.tsig.Key) -> int:
    """Octets of the TSIG record ``key`` adds to a reply (RFC 8945 §4.2), MAC at most
    64 octets (HMAC-SHA512)."""
    return (len(key.name.to_wire() or b"") + 10 + len(key.algorithm.to_wire() or b"")
            + 6 + 2 + 2 + 64 + 2 + 2 + 2)


def sign_messages(messages: Sequence[bytes], key: dns.tsig.Key, request_mac: bytes,
                  now: int, *, fudge: int = _TSIG_FUDGE) -> list[bytes]:
    """TSIG-sign a response of one or more pre-rendered messages (RFC 8945 §5.3.1).

    Each message's digest covers the previous MAC, the message as built (ARCOUNT without
    the TSIG) and the timers; the first also covers the request MAC and the key and
    algorithm names. ``dns.tsig.sign`` with ``multi=True`` carries that context, exactly
    as ``dns.renderer.Renderer.add_multi_tsig`` does; the TSIG RR is then appended and
    ARCOUNT incremented. ``now`` is passed in, so tests need no clock patching.
    """
    out: list[bytes] = []
    ctx = None
    for wire in messages:
        (original_id,) = struct.unpack_from("!H", wire)
        template = dns.rdtypes.ANY.TSIG.TSIG(  # type: ignore[no-untyped-call]
            dns.rdataclass.ANY, dns.rdatatype.TSIG, key.algorithm, now, fudge, b"",
            original_id, 0, b"")
        tsig, ctx = dns.tsig.sign(  # type: ignore[no-untyped-call]
            wire, key, template, now, request_mac, ctx, True)
        out.append(_append_tsig(wire, key.name, tsig.to_wire() or b""))
    return out


