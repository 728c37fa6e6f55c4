"""The zones served at one moment: an immutable snapshot plus the in-memory IXFR journal."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import groupby
from operator import itemgetter

import dns.name

from zonegen.journal_step import JournalStep
from zonegen.model import Diff, Record, ZoneConfig
from zonegen.selection import StoredRecord, stored_rows
from zonegen.serial import MODULUS
from zonegen.wire import WireZone, WireZoneBuilder

log = logging.getLogger("zonegen")

_row_owner = itemgetter(0)


@dataclass(frozen=True, slots=True)
class ZoneSet:
    """Every served zone at one serial, with the recent IXFR journal: immutable.

    A transfer takes a reference to the ZoneSet current when it starts and reads only
    from it, so it sends one consistent version however many are committed meanwhile
    (RFC 5936 §2.2: an AXFR is a snapshot of one serial). Journal steps hold plain
    records of the log (relative names), shared by all zones: each zone's encoder keeps
    only its own records (:class:`JournalStep`)."""

    version_id: int
    serial: int
    zones: Mapping[dns.name.Name, WireZone]
    journal: tuple[JournalStep, ...] = ()

    @classmethod
    def build(cls, configs: Sequence[ZoneConfig], records: Iterable[Record], serial: int,
              version_id: int = 0) -> ZoneSet:
        """Encode every zone once from the full record set."""
        recs = records if isinstance(records, (list, tuple, set, frozenset)) else list(records)
        warnings: list[str] = []
        zones = {dns.name.from_text(c.zone): WireZone.build(recs, c, serial, warnings)
                 for c in configs}
        for message in dict.fromkeys(warnings):
            log.warning("%s", message)
        return cls(version_id, serial % MODULUS, zones)

    @classmethod
    def from_sorted(cls, configs: Sequence[ZoneConfig], records: Iterable[Record],
                    serial: int, version_id: int = 0) -> ZoneSet:
        """:meth:`build` from records in canonical owner order (``Store.current_records``),
        in one pass for every zone: each owner's records are selected and encoded as they
        arrive (:class:`~zonegen.selection.OwnerSelector`,
        :class:`~zonegen.wire.WireZoneBuilder`), so loading holds the wire zones and one
        owner, not the record set (issue #11).

        :raises zonegen.selection.NotInOrder: ``records`` were not in owner order for
            some zone (the caller builds from the whole set instead).
        """
        return cls.from_rows(configs, stored_rows(records), serial, version_id)

    @classmethod
    def from_rows(cls, configs: Sequence[ZoneConfig], rows: Iterable[StoredRecord],
                  serial: int, version_id: int = 0) -> ZoneSet:
        """:meth:`from_sorted` from the rows of ``Store.current_rows`` (``(owner, rtype,
        rdata text, ttl)`` in canonical owner order): no ``Record`` is made per row
        (:meth:`~zonegen.selection.OwnerSelector.add_rows`).

        :raises zonegen.selection.NotInOrder: as :meth:`from_sorted`.
        """
        warnings: list[str] = []
        builders = [WireZoneBuilder(c, serial, warnings) for c in configs]
        pairs = [(b.owner_selector(), b) for b in builders]
        if len(pairs) == 1:  # one zone: each owner's rows are read once, no list
            selector, builder = pairs[0]
            pack = builder.add
            for owner, selection in selector.select_rows(rows):
                pack(owner, selection)
        else:
            for stored, group in groupby(rows, _row_owner):
                run = list(group)
                for selector, builder in pairs:
                    done = selector.add_rows(stored, run)
                    if done is not None:
                        builder.add(*done)
            for selector, builder in pairs:
                done = selector.close()
                if done is not None:
                    builder.add(*done)
        zones = {dns.name.from_text(c.zone): builder.finish()
                 for c, (_, builder) in zip(configs, pairs, strict=True)}
        for message in dict.fromkeys(warnings):
            log.warning("%s", message)
        return cls(version_id, serial % MODULUS, zones)

    def advance(self, steps: Sequence[tuple[int, JournalStep]], max_versions: int,
                max_records: int) -> ZoneSet:
        """The next ZoneSet: each ``(version_id, step)`` applied in order to every zone
        with ``WireZone.apply`` (a copy of the owner dict plus the changed records), the
        journal extended and trimmed to the newest ``max_versions`` steps holding at most
        ``max_records`` records."""
        zones = dict(self.zones)
        version_id = self.version_id
        serial = self.serial
        journal = list(self.journal)
        for vid, step in steps:
            diff = Diff(frozenset(step.added), frozenset(step.removed))
            zones = {name: wz.apply(diff, step.to_serial) for name, wz in zones.items()}
            version_id = vid
            serial = step.to_serial % MODULUS
            journal.append(step)
        kept: list[JournalStep] = []
        total = 0
        for step in reversed(journal):
            size = len(step.added) + len(step.removed)
            if len(kept) >= max_versions or total + size > max_records:
                break
            kept.append(step)
            total += size
        return ZoneSet(version_id, serial, zones, tuple(reversed(kept)))

    def find(self, qname: dns.name.Name) -> WireZone | None:
        """The served zone holding ``qname`` (the closest enclosing apex), or None."""
        name = qname
        while True:
            wz = self.zones.get(name)
            if wz is not None:
                return wz
            if len(name) <= 1:
                return None
            name = name.parent()

    @property
    def primary(self) -> WireZone:
        return next(iter(self.zones.values()))

    def steps_since(self, serial: int) -> list[JournalStep] | None:
        """The journal's steps from ``serial`` to this version, or None when the journal
        does not reach back to it."""
        for i in range(len(self.journal) - 1, -1, -1):
            if self.journal[i].starts_at(serial):
                return list(self.journal[i:])
        return None

    def covers(self, serial: int) -> bool:
        """Whether the in-memory journal starts at or before ``serial``."""
        return any(s.starts_at(serial) for s in self.journal)


def zone_changes(configs: Sequence[ZoneConfig], steps: Sequence[JournalStep]
                 ) -> dict[str, tuple[int, int]]:
    """Per zone: the records ``steps`` add and remove in it (its share of the raw change,
    as :func:`zonegen.selection.select` takes it), for the "new serial" log line."""
    from zonegen.selection import select

    return {c.zone: (sum(len(select(s.added, c, None, alone=False).records) for s in steps),
                     sum(len(select(s.removed, c, None, alone=False).records) for s in steps))
            for c in configs}
