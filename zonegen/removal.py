"""``zonegen source remove``: a cluster going away, as events.

Removing a source appends a DELETED event for every object the log holds as live for
that source (each repeating the object's last stored version, as a watch's vanished
objects do), drops its watch resume points and its ``sources`` row (its cluster id
is free again), all in one transaction, and then folds every registered projection:
each drops exactly that cluster's records, and ``history``/``why`` name the source of
those removals (``... DELETED seq=N source=b``). Nothing of the log is deleted: the
source's events stay, so its past zones can still be exported and audited.

A watch of that source that is still running would list the cluster again and re-add
everything: stop it first. ``default`` is the single-cluster zone's source and is
refused unless forced.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

from zonegen.clock import Clock
from zonegen.errors import InvalidInput
from zonegen.model import DELETED, Event
from zonegen.runner import project_all
from zonegen.sources import DEFAULT_SOURCE
from zonegen.store import Store

ORIGIN = "source-remove"
"""``events.origin`` of the DELETED events a removal appends."""

BATCH = 1000  # events appended per statement batch


@dataclass(frozen=True, slots=True)
class RemovalReport:
    source: str
    deleted: int  # DELETED events appended (objects that were live)
    resume_points: int  # resume points dropped
    serials: tuple[tuple[str, int | None], ...]  # (projection target, serial) after it

    def summary(self) -> str:
        zones = ", ".join(f"{target} serial {serial}" for target, serial in self.serials
                          if serial is not None)
        return (f"source {self.source} removed: {self.deleted} objects deleted, "
                f"{self.resume_points} resume points dropped"
                + (f"; {zones}" if zones else ""))


def remove_source(store: Store, name: str, force: bool = False,
                  clock: Clock = time.time) -> RemovalReport:
    """Remove source ``name`` (see the module docstring).

    :raises InvalidInput: ``default`` without ``force``, or no such source.
    :raises StoreError: the database cannot be written; nothing is stored then.
    """
    if name == DEFAULT_SOURCE and not force:
        raise InvalidInput("source default: it holds the single-cluster zone; "
                           "give --force to remove it anyway")
    known = {state.source.name for state in store.source_states()}
    if name not in known:
        raise InvalidInput(f"source {name}: no such source (known: "
                           f"{', '.join(sorted(known)) or 'none'})")
    now = datetime.fromtimestamp(clock(), UTC)
    deleted = 0
    with store.appending() as appender:
        live = [h for h in appender.heads(name).values() if not h.deleted]
        batch: list[Event] = []
        for head in sorted(live, key=lambda h: (h.kind, h.namespace, h.name)):
            last = appender.get_event(head.last_seq)
            batch.append(Event(0, now, name, DELETED, head.kind, head.namespace,
                               head.name, head.uid, head.resource_version,
                               last.object_json if last is not None else "{}", ORIGIN))
            if len(batch) >= BATCH:
                deleted += len(appender.append(batch).stored)
                batch = []
        deleted += len(appender.append(batch).stored)
        dropped = appender.forget_source(name)
    done = project_all(store, clock)
    serials: list[tuple[str, int | None]] = []
    for spec in store.projections():
        if name in spec.sources:
            version = done[spec.name].version
            serials.append((spec.target, version.serial if version is not None else None))
    return RemovalReport(name, deleted, dropped, tuple(serials))
