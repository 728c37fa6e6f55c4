"""Zone transfers as wire bytes, sans I/O: AXFR (RFC 5936) and IXFR (RFC 1995) from a
:class:`~zonegen.wire.WireZone` and a journal of steps. Pure: no sockets, no store."""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence

import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.serial
import dns.xfr

from zonegen.journal_step import JournalStep as JournalStep  # re-exported: IXFR's input
from zonegen.model import Diff
from zonegen.serial import MODULUS
from zonegen.wire import HEADER, WireZone, chunk_fragments, soa_fragment

XFR_MESSAGE_SIZE = 65535 - 1024
"""Default size limit of one transfer message: the TCP maximum less room for a TSIG
record (key name up to 255 octets, HMAC-SHA512 MAC) that the socket layer may append."""

_QR, _AA, _TC, _RD = 0x8000, 0x0400, 0x0200, 0x0100

_QR, _AA, _RD = 0x8000, 0x0400, 0x0100
_IN = dns.rdataclass.IN


def _parse(query: dns.message.Message | bytes) -> dns.message.Message:
    return query if isinstance(query, dns.message.Message) else dns.message.from_wire(query)


def error_response(query: dns.message.Message | bytes, rcode: dns.rcode.Rcode) -> bytes:
    """A reply carrying only ``rcode`` (FORMERR, REFUSED, NOTAUTH, NOTIMP...), id and
    question copied. For wire that does not parse, a bare header with the query's id and
    opcode (RFC 1035 §4.1.1); b"" when even the header is missing."""
    if isinstance(query, bytes):
        wire = query
        try:
            query = dns.message.from_wire(wire)
        except Exception:  # noqa: BLE001 - any parse failure: answer from the header
            if len(wire) < 12:
                return b""
            (qid, flags) = struct.unpack_from("!HH", wire)
            return HEADER.pack(qid, _QR | (flags & 0x7800) | (rcode & 0xF), 0, 0, 0, 0)
    response = dns.message.make_response(query)
    response.set_rcode(rcode)
    return response.to_wire()


def _transfer_error(query: dns.message.Message, rcode: dns.rcode.Rcode) -> bytes:
    """:func:`error_response` left unsigned: transfer replies, errors included, are
    signed by :func:`sign_messages` (dnspython would sign a reply to a signed query
    itself, and a second TSIG record makes the message unparsable, RFC 8945 §5.1)."""
    response = dns.message.make_response(query)
    response.set_rcode(rcode)
    response.keyring = None
    response.tsig = None
    return response.to_wire()


def _question(query: dns.message.Message) -> bytes:
    q = query.question[0]
    return (q.name.to_wire() or b"") + struct.pack("!HH", q.rdtype, q.rdclass)


def _messages(query: dns.message.Message, question: bytes,
              body: Iterable[tuple[int, bytes | Sequence[bytes | memoryview]]]
              ) -> list[bytes]:
    """Header + question + body for each chunk (its bytes, or the pieces to join).
    Every message repeats the question (RFC 5936 §2.2.1 allows it) because fragments
    point at it; id copied, QR and AA set, RD copied, RA clear."""
    flags = _QR | _AA | (query.flags & _RD)
    head = HEADER.pack
    return [b"".join((head(query.id, flags, 1, count, 0, 0), question, chunk))
            if isinstance(chunk, bytes) else
            b"".join((head(query.id, flags, 1, count, 0, 0), question, *chunk))
            for count, chunk in body]


def _check(query: dns.message.Message, wirezone: WireZone) -> bytes | None:
    """An error reply when the query is not a transfer of this zone, else None."""
    if len(query.question) != 1:
        return _transfer_error(query, dns.rcode.FORMERR)
    q = query.question[0]
    if q.rdclass != _IN or q.name != dns.name.from_text(wirezone.config.zone):
        # RFC 5936 §2.2.1: NotAuth for a zone the server is not authoritative for.
        return _transfer_error(query, dns.rcode.NOTAUTH)
    return None


def axfr_response(query: dns.message.Message | bytes, wirezone: WireZone, *,
                  max_size: int = XFR_MESSAGE_SIZE) -> list[bytes]:
    """The AXFR response messages (RFC 5936 §2.2): SOA first and last, id copied, AA set,
    the question in every message; each at most ``max_size`` bytes before any TSIG.

    Also serves an IXFR that falls back to a full transfer (RFC 1995 §4): the question is
    copied as asked, so the type there stays IXFR.
    """
    query = _parse(query)
    error = _check(query, wirezone)
    if error is not None:
        return [error]
    question = _question(query)
    return _messages(query, question,
                     wirezone.axfr_body(max_size - HEADER.size - len(question)))


class Unjoined:
    """One transfer message left in its parts: its header and question (``head``), then
    the zone's own buffers (slices of the packed fragments, the SOA). An AXFR of 1M
    records is ~1,000 messages and 63 MB: joining each message, then its TCP length
    prefix, copied all of it twice per transfer into freshly allocated memory (page
    faults included, ~0.1 s in a new process); the parts go to the socket as they are
    (:func:`framed`)."""

    __slots__ = ("head", "pieces", "size")

    def __init__(self, head: bytes, pieces: Sequence[bytes | memoryview]) -> None:
        self.head = head
        self.pieces = pieces
        self.size = len(head) + sum(map(len, pieces))

    def __len__(self) -> int:
        return self.size

    def __bytes__(self) -> bytes:
        return b"".join((self.head, *self.pieces))


Message = bytes | Unjoined
"""A transfer message as sent: whole, or in parts (:class:`Unjoined`)."""


def framed(message: Message) -> list[bytes | memoryview]:
    """``message`` with its TCP length prefix (RFC 1035 §4.2.2), as the buffers to write:
    the prefix joins the head (a few dozen bytes), the zone's buffers are not copied."""
    prefix = len(message).to_bytes(2, "big")
    if isinstance(message, Unjoined):
        return [prefix + message.head, *message.pieces]
    return [prefix + message]


def header_of(message: Message) -> bytes:
    """The 12-byte DNS header of ``message`` (counts and rcode for logs and metrics)."""
    return (message.head if isinstance(message, Unjoined) else message)[:HEADER.size]


def axfr_parts(query: dns.message.Message | bytes, wirezone: WireZone, *,
               max_size: int = XFR_MESSAGE_SIZE) -> list[Message]:
    """:func:`axfr_response`'s messages, each left in its parts (:class:`Unjoined`): the
    same bytes once joined. For an unsigned transfer (TSIG signs whole messages)."""
    query = _parse(query)
    error = _check(query, wirezone)
    if error is not None:
        return [error]
    question = _question(query)
    flags = _QR | _AA | (query.flags & _RD)
    head = HEADER.pack
    return [Unjoined(head(query.id, flags, 1, count, 0, 0) + question,
                     [chunk] if isinstance(chunk, bytes) else chunk)
            for count, chunk in wirezone.axfr_body(max_size - HEADER.size - len(question))]


def _journal_chain(journal: Iterable[JournalStep], start: int,
                   end: int) -> list[JournalStep] | None:
    """The steps leading from serial ``start`` to ``end``, or None when the journal does
    not reach back that far or has a gap."""
    by_from = {step.from_serial % MODULUS: step for step in journal
               if step.from_serial is not None}
    steps: list[JournalStep] = []
    serial = start % MODULUS
    while serial != end:
        step = by_from.get(serial)
        if step is None or len(steps) > len(by_from):
            return None
        steps.append(step)
        serial = step.to_serial % MODULUS
    return steps


def client_serial(query: dns.message.Message) -> int | None:
    """The serial an IXFR client has (its query's authority SOA, RFC 1995 §3), or None
    for an AXFR query.

    :raises ValueError: an IXFR query without that SOA.
    """
    try:
        return dns.xfr.extract_serial_from_query(query)
    except KeyError:
        # find_rrset misses an RRset appended to .authority by hand (no index entry)
        q = query.question[0]
        soas = [rrset for rrset in query.authority
                if rrset.rdtype == dns.rdatatype.SOA and rrset.name == q.name and rrset]
        if not soas:
            raise ValueError("IXFR query without an SOA") from None
        return int(soas[0][0].serial)


def ixfr_response(query: dns.message.Message | bytes, wirezone: WireZone,
                  journal: Iterable[JournalStep], *, max_size: int = XFR_MESSAGE_SIZE,
                  udp: bool = False, condense: bool = False) -> list[bytes]:
    """The IXFR response messages (RFC 1995).

    - The client's serial (from the query's authority SOA, via
      ``dns.xfr.extract_serial_from_query``) is the current one or newer (RFC 1982): a
      single SOA (RFC 1995 §2).
    - The journal reaches back to it: SOA(new), then per version SOA(old), removed
      records, SOA(version), added records, and SOA(new) last (RFC 1995 §4). With
      ``condense`` the versions are merged into one difference first (RFC 1995 §5).
    - Otherwise the full zone, AXFR-style, question type IXFR (RFC 1995 §4).
    - ``udp``: when the answer does not fit in one ``max_size`` message, a single SOA
      telling the client to retry over TCP (RFC 1995 §2).

    :raises: nothing for bad queries; they get FORMERR or NOTAUTH replies.
    """
    query = _parse(query)
    error = _check(query, wirezone)
    if error is not None:
        return [error]
    try:
        client = client_serial(query)
    except ValueError:
        return [_transfer_error(query, dns.rcode.FORMERR)]  # RFC 1995 §3: SOA required
    question = _question(query)
    limit = max_size - HEADER.size - len(question)
    single = [(1, wirezone.soa)]
    if client is None:  # an AXFR query sent here
        return axfr_response(query, wirezone, max_size=max_size)
    if dns.serial.Serial(client) >= dns.serial.Serial(wirezone.serial):
        return _messages(query, question, single)
    steps = _journal_chain(journal, client, wirezone.serial)
    if steps is None:
        if udp:
            return _messages(query, question, single)
        return _messages(query, question, wirezone.axfr_body(limit))
    if condense and len(steps) > 1:
        merged = Diff(frozenset(steps[0].added), frozenset(steps[0].removed))
        for step in steps[1:]:
            merged = merged.then(Diff(frozenset(step.added), frozenset(step.removed)))
        steps = [JournalStep.from_diff(steps[0].from_serial, steps[-1].to_serial, merged)]
    config = wirezone.config
    changes = wirezone.published_changes(
        [Diff(frozenset(step.added), frozenset(step.removed)) for step in steps])
    frags = [wirezone.soa]
    previous = client  # each step of the chain leads on from the one before
    for step, (removed, added) in zip(steps, changes, strict=True):
        frags.append(soa_fragment(config, previous))
        previous = step.to_serial
        frags.extend(removed)
        frags.append(soa_fragment(config, step.to_serial))
        frags.extend(added)
    frags.append(wirezone.soa)
    body = chunk_fragments(frags, limit)
    if udp and len(body) > 1:
        body = single
    return _messages(query, question, body)


