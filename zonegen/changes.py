"""Stored events reduced for the projectors: the one place an event becomes a
:class:`~zonegen.model.Change` (reduce objects at the edge, as CoreDNS does)."""

from __future__ import annotations

import logging

from zonegen.errors import InvalidObject
from zonegen.model import DELETED, Change, Event, reduce

log = logging.getLogger("zonegen.runner")  # the projection's one warning channel


def to_change(event: Event, report: bool = False) -> Change:
    """Reduce a stored event for the projector. A stored object the reducers now reject
    is projected as absent, so one bad row never stops the zone; with ``report`` (the
    first time the event is projected) each problem is logged, naming the event."""
    warnings: list[str] | None = [] if report else None
    try:
        if event.type == DELETED:
            return Change(event.seq, event.kind, event.namespace, event.name, None)
        try:
            obj = reduce(event.kind, event.object(), warnings)
        except (InvalidObject, ValueError) as e:
            if report:
                log.warning("event %d (%s %s/%s): %s; treated as deleted", event.seq,
                            event.kind, event.namespace, event.name, e)
            return Change(event.seq, event.kind, event.namespace, event.name, None)
        return Change(event.seq, event.kind, event.namespace, event.name, obj)
    finally:
        for message in warnings or ():
            log.warning("%s", message)
