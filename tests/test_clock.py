"""Times as users type them: ISO 8601, UTC when no offset is given."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from zonegen.clock import InvalidTime, fixed_clock, parse_time


@pytest.mark.parametrize(("text", "expected"), [
    ("2026-11-25T03:12:00Z", datetime(2026, 11, 25, 3, 12, tzinfo=UTC)),
    ("2026-11-25T03:12", datetime(2026, 11, 25, 3, 12, tzinfo=UTC)),
    ("2026-11-25 03:12:30.5", datetime(2026, 11, 25, 3, 12, 30, 500000, tzinfo=UTC)),
    ("2026-11-25T04:12:00+01:00", datetime(2026, 11, 25, 3, 12, tzinfo=UTC)),
    ("2026-11-25", datetime(2026, 11, 25, tzinfo=UTC)),
    (" 2026-11-25T03:12z ", datetime(2026, 11, 25, 3, 12, tzinfo=UTC)),
])
def test_parse_time(text: str, expected: datetime) -> None:
    parsed = parse_time(text)
    assert parsed == expected
    assert parsed.tzinfo is UTC


@pytest.mark.parametrize("text", ["yesterday", "", "2026-13-01", "03:12", "1764040320"])
def test_bad_times_say_what_is_expected(text: str) -> None:
    with pytest.raises(InvalidTime, match="is not ISO 8601"):
        parse_time(text)


def test_fixed_clock() -> None:
    when = datetime(2026, 1, 1, tzinfo=UTC)
    assert fixed_clock(when)() == when.timestamp() == 1767225600.0


@pytest.mark.parametrize("text", ["0001-01-01T00:00+01:00", "9999-12-31T23:59-01:00"])
def test_times_outside_the_utc_range_are_invalid_not_overflow(text: str) -> None:
    with pytest.raises(InvalidTime, match="out of range"):
        parse_time(text)


def test_cli_time_type_is_parse_time() -> None:
    """``cli.TIME`` (every --at/--since/--until/--time) parses as :func:`parse_time`, and a
    bad time stays zonegen's one-line InvalidTime (exit 1), not a click usage error."""
    from cli import TIME

    assert TIME.convert("2026-11-25T04:12+01:00", None, None) == \
        datetime(2026, 11, 25, 3, 12, tzinfo=UTC)
    when = datetime(2026, 1, 1, tzinfo=UTC)
    assert TIME.convert(when, None, None) is when
    with pytest.raises(InvalidTime, match="is not ISO 8601"):
        TIME.convert("soon", None, None)
