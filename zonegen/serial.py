"""SOA serials that only ever move forward (RFC 1982 serial number arithmetic).

A serial is a unix time when the clock allows and ``previous + 1`` otherwise, so it stays
readable as a date yet never repeats or goes backwards across restarts or clock steps
(octodns-bind's ``now % 2**31`` and CoreDNS's ``uint32(unix)`` can do both). The clock is
injected: ``now`` is an argument. Pure: imports only ``dns.serial``.
"""

from __future__ import annotations

import dns.serial

BITS = 32
MODULUS = 2**BITS


def is_after(a: int, b: int) -> bool:
    """Whether serial ``a`` is greater than ``b`` in RFC 1982 arithmetic (§3.2).

    Serials exactly 2^31 apart are incomparable: neither is after the other.
    """
    return bool(dns.serial.Serial(a, BITS) > dns.serial.Serial(b, BITS))


def next_serial(previous: int | None, now: int) -> int:
    """The serial after ``previous``: ``now`` (unix seconds, mod 2^32) when that is after
    ``previous`` in RFC 1982 terms, else ``previous + 1`` mod 2^32.

    The result is always strictly after ``previous`` (secondaries only transfer a zone
    whose serial increased, RFC 1996 §4.7 / RFC 1982 §3.2) and never 0: a wrap skips 0
    to 1, because several tools read serial 0 as "unset" (and so does zonegen's store).
    Skipping it keeps monotonicity: 1 is after 2^32 - 1 (distance 2).

    :param previous: the last published serial, or None for the first one.
    :param now: the current time in unix seconds (any int; reduced mod 2^32).
    :raises ValueError: ``previous`` is not in 0 .. 2^32 - 1.
    """
    candidate = now % MODULUS or 1
    if previous is None:
        return candidate
    if not 0 <= previous < MODULUS:
        raise ValueError(f"serial {previous} is not in 0 .. {MODULUS - 1}")
    if is_after(candidate, previous):
        return candidate
    return (previous + 1) % MODULUS or 1
