"""Reconciling what was listed with what the log holds, and how an object is stored.

Both ways in, ``zonegen ingest`` (a kubectl file, a ``--snapshot``) and ``zonegen watch``
(a list at start or after 410 Gone), ask the same question: given the objects now listed
and the log's object heads, which events make the log a true history? This module is the
one answer, and :func:`stored_object` the one stored form of an object, so the same
Kubernetes object is stored as the same bytes however it arrived (DESIGN.md, "The event
log"). Pure: no I/O; the one question only the database can answer ("was this version
stored before?") is asked through a callable the caller passes in.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from zonegen.errors import InvalidObject
from zonegen.model import (
    ADDED,
    DELETED,
    ENDPOINT_SLICE,
    ENDPOINTS,
    MODIFIED,
    SERVICE,
    Event,
    KubeObject,
    ObjectKey,
    reduce,
)

API_VERSIONS = {SERVICE: "v1", ENDPOINT_SLICE: "discovery.k8s.io/v1", ENDPOINTS: "v1"}
"""The apiVersion a stored object gets when the input left it out (list items do)."""


def stored_object(kind: str, obj: Mapping[str, Any]) -> str:
    """The object as the log stores it: compact JSON with sorted keys and ASCII escapes,
    ``kind`` and ``apiVersion`` filled in when absent (list items omit them), and without
    ``metadata.managedFields`` (server-side-apply bookkeeping, often most of an object's
    bytes, never DNS-relevant). Sorted keys make it canonical: the API server and kubectl
    order keys differently. ASCII escapes keep any string storable (a lone surrogate in
    hand-made JSON would not encode as UTF-8).

    :raises TypeError, ValueError: a value JSON has no form for (YAML ``!!binary``).
    """
    out = dict(obj)
    meta = out.get("metadata")
    if isinstance(meta, Mapping) and "managedFields" in meta:
        out["metadata"] = {k: v for k, v in meta.items() if k != "managedFields"}
    out.setdefault("kind", kind)
    if kind in API_VERSIONS:
        out.setdefault("apiVersion", API_VERSIONS[kind])
    return json.dumps(out, separators=(",", ":"), sort_keys=True)


def decode(kind: str, obj: Mapping[str, Any], warnings: list[str] | None = None
           ) -> tuple[KubeObject, str]:
    """The reduced object and its stored form, the two things every way in needs.
    ``warnings``: receives the reducer's (not logged here).

    :raises InvalidObject: the reducer rejects it, or it has values JSON cannot hold.
    """
    try:
        reduced = reduce(kind, obj, warnings)
    except InvalidObject:
        raise
    except (ValueError, TypeError, AttributeError) as e:
        raise InvalidObject(str(e)) from None
    try:
        return reduced, stored_object(kind, obj)
    except (TypeError, ValueError) as e:  # YAML values JSON has no form for (!!binary)
        raise InvalidObject(f"not storable as JSON ({e})") from None


def content_version(object_json: str) -> str:
    """A resourceVersion for hand-made objects that have none: their content decides
    what is "the same version"."""
    return "sha256:" + hashlib.sha256(object_json.encode()).hexdigest()[:20]


@dataclass(frozen=True, slots=True)
class LoggedObject:
    """One object version the log holds (or this reconcile decided): who it is and the
    sequence number of its newest stored event."""

    kind: str
    namespace: str
    name: str
    uid: str
    resource_version: str
    last_seq: int

    @property
    def key(self) -> ObjectKey:
        return (self.kind, self.namespace, self.name)


@dataclass(frozen=True, slots=True)
class ObjectHead(LoggedObject):
    """The newest stored event of one object (``zonegen.store`` reads them from
    ``object_heads``): what the reconcile diffs a listing against."""

    deleted: bool


@dataclass(frozen=True, slots=True)
class Vanished(LoggedObject):
    """An object the log holds as live that is gone: absent from a complete listing, or
    replaced under the same name by a new uid. Its DELETED event repeats the last stored
    object, which only the caller can read: ``last_seq`` (0 when the reconcile itself
    produced that version, not stored yet)."""

    def event(self, object_json: str, source: str, now: datetime, origin: str = "") -> Event:
        return Event(0, now, source, DELETED, self.kind, self.namespace, self.name,
                     self.uid, self.resource_version, object_json, origin)


@dataclass(frozen=True, slots=True)
class _Version:
    uid: str
    resource_version: str
    deleted: bool


def _raw_key(kind: str, obj: Mapping[str, Any]) -> ObjectKey | None:
    meta = obj.get("metadata")
    if isinstance(meta, Mapping) and isinstance(meta.get("name"), str):
        return (kind, str(meta.get("namespace") or "default"), meta["name"])
    return None


def _raw_version(obj: Mapping[str, Any]) -> tuple[str, str] | None:
    meta = obj.get("metadata")
    if isinstance(meta, Mapping):
        return (str(meta.get("uid") or ""), str(meta.get("resourceVersion") or ""))
    return None


class Reconciler:
    """Decides, object by object, the events that bring the log level with a listing.

    Feed it every listed object with :meth:`listed` (in input order; the same object may
    come more than once, as in a watch-event stream), then, for a listing known to be
    complete for some kinds, ask :meth:`vanished` for what the log holds and the listing
    lacks. The rules, in one place:

    - a version the log's head already is: nothing (counted in ``unchanged``);
    - a version stored before and since superseded (re-reading an old kubectl file): not
      news, nothing (``stale``); never for content-derived versions, since hand-made
      objects may return to earlier content;
    - same name, new uid: the old object was deleted and re-created (Vanished, then ADDED);
    - otherwise ADDED, or MODIFIED when the log holds the same uid live; an input that
      says what happened (a watch event's type) keeps its type;
    - an object the reducer rejects still exists: it is marked seen, so a complete
      listing never records its deletion (its last readable state stays), and
      :class:`InvalidObject` tells the caller why.

    :param heads: the log's newest event per object (deleted ones included), at least
        for every kind and namespace listed.
    :param known_version: whether ``(uid, resourceVersion)`` is stored as an object
        version; only asked when the object has a head. Default: never.
    """

    def __init__(self, heads: Mapping[ObjectKey, ObjectHead], source: str, now: datetime,
                 known_version: Callable[[str, str], bool] | None = None,
                 origin: str = "") -> None:
        self.heads = heads
        self.source = source
        self.origin = origin
        self.now = now
        self.known_version = known_version or (lambda uid, rv: False)
        self.unchanged = 0
        self.stale = 0
        self.seen: set[ObjectKey] = set()
        self._mine: dict[ObjectKey, _Version] = {}  # versions decided here, newest
        self._versions: set[tuple[str, str]] = set()  # object versions decided here

    def _head(self, key: ObjectKey) -> tuple[_Version, int] | None:
        """The newest version of ``key`` (decided here, else stored) and its seq."""
        mine = self._mine.get(key)
        if mine is not None:
            return mine, 0
        head = self.heads.get(key)
        if head is None:
            return None
        return _Version(head.uid, head.resource_version, head.deleted), head.last_seq

    def listed(self, kind: str, obj: dict[str, Any], typ: str | None = None
               ) -> list[Event | Vanished]:
        """The events ``obj`` (of ``kind``) needs, in order: at most a Vanished for the
        object it replaces, then its own event.

        :param typ: ADDED/MODIFIED/DELETED when the input said (a watch stream); None for
            a listed object.
        :raises InvalidObject: the object is malformed or not storable; it counts as seen.
        """
        return self.listed_reduced(kind, obj, typ)[0]

    def listed_reduced(self, kind: str, obj: dict[str, Any], typ: str | None = None
                       ) -> tuple[list[Event | Vanished], KubeObject | None]:
        """:meth:`listed`, with ``obj`` as the reducer gave it when the last event
        returned is its own ADDED or MODIFIED and the reducer had nothing to warn
        about (else None): ``ingest`` hands it to the projection of those events, so a
        burst reduces each object once (see ``zonegen.ingest``)."""
        key = _raw_key(kind, obj)
        if key is not None and typ != DELETED:
            known = self._head(key)
            # Unchanged on a relist: skip the decode and encode work.
            if (known is not None and not known[0].deleted
                    and (known[0].uid, known[0].resource_version) == _raw_version(obj)):
                self.seen.add(key)
                self.unchanged += 1
                return [], None
        if key is not None:
            self.seen.add(key)  # it exists, even if unreadable below
        warnings: list[str] = []
        reduced, object_json = decode(kind, obj, warnings)
        key = (kind, reduced.namespace, reduced.name)
        self.seen.add(key)
        uid, rv = reduced.uid, reduced.resource_version or content_version(object_json)
        out: list[Event | Vanished] = []
        if typ != DELETED:
            current = self._head(key)
            live = current is not None and not current[0].deleted
            if current is not None and live and (current[0].uid, current[0].resource_version
                                                 ) == (uid, rv):
                self.unchanged += 1
                return [], None
            if (current is not None and not rv.startswith("sha256:")
                    and ((uid, rv) in self._versions or self.known_version(uid, rv))):
                self.stale += 1
                return [], None
            if current is not None and live and current[0].uid != uid:
                head, seq = current
                out.append(Vanished(kind, key[1], key[2], head.uid, head.resource_version,
                                    seq))
                self._mine[key] = _Version(head.uid, head.resource_version, True)
                live = False
            if typ is None:
                typ = MODIFIED if live else ADDED
            self._versions.add((uid, rv))
        self._mine[key] = _Version(uid, rv, typ == DELETED)
        out.append(Event(0, self.now, self.source, typ, kind, reduced.namespace,
                         reduced.name, uid, rv, object_json, self.origin))
        return out, (None if warnings or typ == DELETED else reduced)

    def vanished(self, kinds: Iterable[str]) -> list[Vanished]:
        """Objects of ``kinds`` the log holds as live that no :meth:`listed` call saw, for
        a listing complete for those kinds (a snapshot, a watch list), in key order."""
        wanted = set(kinds)
        out: list[Vanished] = []
        for key in sorted(set(self.heads) | set(self._mine)):
            if key[0] not in wanted or key in self.seen:
                continue
            current = self._head(key)
            if current is None or current[0].deleted:
                continue
            head, seq = current
            out.append(Vanished(*key, head.uid, head.resource_version, seq))
            self._mine[key] = _Version(head.uid, head.resource_version, True)
        return out
