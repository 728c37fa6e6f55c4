"""One zone version's change to the record set, as the zone journal stores it and IXFR
sends it (RFC 1995): the one shape shared by the store, ``zonegen serve`` and
:mod:`zonegen.xfr`. Pure; the store imports it, it imports nothing of the store."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from zonegen.model import Diff, Record


@dataclass(frozen=True, slots=True)
class JournalStep:
    """One zone version's change: ``from_serial`` became ``to_serial`` by removing and
    adding records (plain :class:`Record` values, relative names allowed): the raw
    change of the log. ``from_serial`` is None for a version with no stored predecessor
    (the first one, or the oldest left after a reset): no IXFR starts there. What IXFR
    sends of a step is what :func:`zonegen.selection.select` publishes
    (:meth:`WireZone.published_changes`), so records of other zones, invalid names and a
    CNAME beside other data are left out exactly as in the zone file."""

    from_serial: int | None
    to_serial: int
    removed: Collection[Record]
    added: Collection[Record]

    @classmethod
    def from_diff(cls, from_serial: int | None, to_serial: int, diff: Diff) -> JournalStep:
        return cls(from_serial, to_serial, diff.removed, diff.added)

    def starts_at(self, serial: int) -> bool:
        """Whether this step leads from ``serial`` (RFC 1982: compared modulo 2**32)."""
        from zonegen.serial import MODULUS

        return self.from_serial is not None and self.from_serial % MODULUS == serial % MODULUS
