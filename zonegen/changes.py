"""Stored events reduced for the projectors: the one place an event becomes a
:class:`~zonegen.model.Change` (reduce objects at the edge, as CoreDNS does)."""

from __future__ import annotations

import logging

from zonegen.errors import InvalidObject
from zonegen.model import DELETED, Change, Event, reduce, stored_object

log = logging.getLogger("zonegen.runner")  # the projection's one warning channel


def to_change(event: Event, report: bool = False) -> Change:
    """Reduce a stored event for the projector. A stored object the reducers now reject
    is projected as absent, so one bad row never stops the zone; with ``report`` (the
    first time the event is projected) each problem is logged, naming the event."""
    return stored_change(event.seq, event.type, event.kind, event.namespace, event.name,
                         event.object_json, report)


def stored_change(seq: int, type_: str, kind: str, namespace: str, name: str,
                  object_json: str | None, report: bool = False) -> Change:
    """:func:`to_change` of an event given as its stored columns (a replay of the whole
    log reads only these, never an :class:`~zonegen.model.Event` with its arrival
    time). ``object_json`` may be None for a deletion."""
    warnings: list[str] | None = [] if report else None
    try:
        if type_ == DELETED or object_json is None:
            return Change(seq, kind, namespace, name, None)
        try:
            obj = reduce(kind, stored_object(seq, object_json), warnings)
        except (InvalidObject, ValueError) as e:
            if report:
                log.warning("event %d (%s %s/%s): %s; treated as deleted", seq,
                            kind, namespace, name, e)
            return Change(seq, kind, namespace, name, None)
        return Change(seq, kind, namespace, name, obj)
    finally:
        for message in warnings or ():
            log.warning("%s", message)
