"""Every projection one ``zonegen serve`` publishes, at one moment: immutable.

Each projection (``source:a``, ``exports:a,b``; :mod:`zonegen.projections`) has its own
:class:`ZoneSet` (its serial and IXFR journal), or none before its first stored version:
then its zones answer SERVFAIL while the others answer (the initial sync gate is per
projection, issue #13). A question finds its zone across all projections, the closest
enclosing apex winning, as one server with several zones would answer.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import dns.name

from zonegen.projections import DEFAULT_NAME
from zonegen.serve.zoneset import ZoneSet
from zonegen.wire import WireZone


@dataclass(frozen=True, slots=True)
class Found:
    """The served zone holding a name: its projection and, once loaded, its zones."""

    projection: str
    zones: ZoneSet | None  # None: the projection has no version yet
    wirezone: WireZone | None


@dataclass(frozen=True, slots=True)
class ServedZones:
    """Every served projection's :class:`ZoneSet` (None until its first version).

    ``zones`` merges the loaded zones of every projection for the quick-answer path; with
    one projection it is that ZoneSet's own mapping (the same object: the quick path
    keeps its reply cache per mapping, so the single-zone path costs what it did)."""

    sets: Mapping[str, ZoneSet | None]  # projection name -> its zones, in serving order
    apexes: Mapping[dns.name.Name, str]  # every served apex -> its projection name
    zones: Mapping[dns.name.Name, WireZone]  # the loaded zones of every projection
    complete: bool = False  # every projection has a version loaded (read per query)

    @classmethod
    def waiting(cls, projections: Sequence[tuple[str, Sequence[str]]]) -> ServedZones:
        """Nothing loaded yet: ``(projection name, its zone names)`` in serving order."""
        apexes = {dns.name.from_text(zone): name for name, zones in projections
                  for zone in zones}
        return cls({name: None for name, _ in projections}, apexes, {})

    @classmethod
    def of(cls, zones: ZoneSet, name: str = DEFAULT_NAME) -> ServedZones:
        """One projection, loaded (benchmarks and tests serving a ZoneSet directly)."""
        return cls({name: zones}, dict.fromkeys(zones.zones, name), zones.zones, True)

    def with_set(self, name: str, zones: ZoneSet) -> ServedZones:
        """These zones with projection ``name`` now serving ``zones``."""
        sets = dict(self.sets)
        sets[name] = zones
        loaded = [s for s in sets.values() if s is not None]
        merged: Mapping[dns.name.Name, WireZone] = loaded[0].zones if len(sets) == 1 else {
            apex: wz for s in loaded for apex, wz in s.zones.items()}
        return ServedZones(sets, self.apexes, merged, len(loaded) == len(sets))

    def loaded(self) -> Iterator[tuple[str, ZoneSet]]:
        """``(projection name, zones)`` of every loaded projection."""
        return ((name, s) for name, s in self.sets.items() if s is not None)

    @property
    def first(self) -> ZoneSet | None:
        """The first projection's zones (what a single-projection server serves)."""
        return next(iter(self.sets.values()), None)

    @property
    def primary(self) -> WireZone | None:
        """The first loaded zone: answers requests that name no zone (other opcodes)."""
        return next(iter(self.zones.values()), None)

    def find(self, qname: dns.name.Name) -> Found | None:
        """The served zone holding ``qname`` (the closest enclosing apex of any
        projection, loaded or not), or None when no served zone holds it."""
        name = qname
        while True:
            projection = self.apexes.get(name)
            if projection is not None:
                zones = self.sets.get(projection)
                return Found(projection, zones,
                             zones.zones.get(name) if zones is not None else None)
            if len(name) <= 1:
                return None
            name = name.parent()
