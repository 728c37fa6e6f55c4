"""Time as zonegen reads it from users: ISO 8601, UTC when no offset is given.

Pure; the clock itself is injected (``Callable[[], float]``) wherever time matters, so
tests and replays can stamp events and serials deterministically.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from zonegen.errors import ZonegenError

Clock = Callable[[], float]


class InvalidTime(ZonegenError):
    """A time is not ISO 8601."""


def parse_time(text: str) -> datetime:
    """Parse ISO 8601 (``2026-11-25T03:12``, ``…Z``, ``…+01:00``, or a date); a time
    without an offset is UTC.

    :raises InvalidTime: the text is not ISO 8601.
    """
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidTime(f"time {text!r} is not ISO 8601 (e.g. 2026-11-25T03:12:00Z)") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00 is before year 1 in UTC
        raise InvalidTime(f"time {text!r} is out of range in UTC") from None


def fixed_clock(when: datetime) -> Clock:
    """A clock that always says ``when`` (``ingest --time``)."""
    stamp = when.timestamp()
    return lambda: stamp
