"""serial.next_serial: RFC 1982 monotonic serials with an injected clock."""

from __future__ import annotations

import dns.serial
import pytest
from hypothesis import given
from hypothesis import strategies as st

from zonegen.serial import MODULUS, is_after, next_serial

serials = st.integers(min_value=0, max_value=MODULUS - 1)
clocks = st.integers(min_value=-(2**40), max_value=2**40)


@pytest.mark.parametrize(
    ("previous", "now", "expected"),
    [
        (None, 1_700_000_000, 1_700_000_000),  # first serial: the clock
        (None, 0, 1),  # never 0
        (None, MODULUS, 1),  # 2^32 mod 2^32 is 0, skipped
        (1_700_000_000, 1_700_000_100, 1_700_000_100),  # the clock moved on
        (1_700_000_100, 1_700_000_100, 1_700_000_101),  # two versions in one second
        (1_700_000_100, 1_600_000_000, 1_700_000_101),  # the clock went backwards
        (MODULUS - 1, 5, 5),  # the clock wrapped: 5 is after 2^32 - 1
        (MODULUS - 1, MODULUS - 10, 1),  # wrap by +1 skips 0
        (0, 0, 1),
        (2**31 + 1, 0, 2**31 + 2),  # 0 becomes 1, exactly 2^31 away: previous + 1
        (2**31 + 2, 0, 1),  # 0 becomes 1, which is after: fine
        (5, 5 + 2**31, 6),  # exactly 2^31 ahead is incomparable (RFC 1982 §3.2): +1
    ],
)
def test_next_serial_table(previous: int | None, now: int, expected: int) -> None:
    assert next_serial(previous, now) == expected


def test_previous_out_of_range() -> None:
    with pytest.raises(ValueError, match="not in 0"):
        next_serial(MODULUS, 0)
    with pytest.raises(ValueError, match="not in 0"):
        next_serial(-1, 0)


@given(serials, clocks)
def test_strictly_after_previous(previous: int, now: int) -> None:
    nxt = next_serial(previous, now)
    assert 0 < nxt < MODULUS
    assert dns.serial.Serial(nxt) > dns.serial.Serial(previous)
    assert is_after(nxt, previous)
    assert not is_after(previous, nxt)


@given(st.one_of(st.none(), serials), st.lists(clocks, min_size=1, max_size=50))
def test_monotonic_across_wraparound(start: int | None, nows: list[int]) -> None:
    """Any clock, even stepping backwards or wrapping: each serial is after the last."""
    previous = start
    for now in nows:
        nxt = next_serial(previous, now)
        assert nxt != 0
        if previous is not None:
            assert is_after(nxt, previous)
        previous = nxt


@given(st.integers(min_value=MODULUS - 100, max_value=MODULUS - 1), st.integers(1, 300))
def test_counting_through_the_wrap(start: int, steps: int) -> None:
    """A stuck clock makes serials count up by one, through 2^32 - 1, skipping 0."""
    previous = start
    for _ in range(steps):
        nxt = next_serial(previous, 1000)  # clock far behind in serial terms? see below
        assert is_after(nxt, previous)
        assert nxt in ((previous + 1) % MODULUS or 1, 1000)
        previous = nxt


def test_is_after_incomparable() -> None:
    assert not is_after(0, 2**31)
    assert not is_after(2**31, 0)
    assert is_after(1, MODULUS - 1)
