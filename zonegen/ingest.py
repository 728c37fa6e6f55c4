"""Read what ``kubectl`` prints and store it as events, the same path the watcher takes.

Accepts JSON or YAML: single objects, ``List`` / ``ServiceList`` / ``EndpointSliceList``
/ ``EndpointsList``, concatenated objects, and watch-event streams
(``kubectl get -w -o json --output-watch-events``). JSON is read incrementally, item by
item, so a 200 MB list never sits in memory as one parsed tree. A whole invocation is one
transaction: a truncated file stores nothing, and a snapshot's deletions are only ever
derived from an input read to its end. What to store for each object is decided by
``zonegen.reconcile``, the same rules (and the same stored bytes) as the watcher's lists.
"""

from __future__ import annotations

import io
import json
import logging
import os
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from zonegen.errors import InvalidInput, InvalidObject
from zonegen.model import (
    ENDPOINT_SLICE,
    ENDPOINTS,
    EVENT_TYPES,
    KINDS,
    SERVICE,
    SERVICE_EXPORT,
    SERVICE_IMPORT,
    Event,
    KubeObject,
    ObjectKey,
)
from zonegen.progress import Progress
from zonegen.reconcile import Reconciler, Vanished
from zonegen.runner import gc_paused
from zonegen.sources import DEFAULT_SOURCE
from zonegen.store import EventAppender, ObjectHead, Store

log = logging.getLogger("zonegen")

LIST_KINDS = {
    "ServiceList": SERVICE,
    "EndpointSliceList": ENDPOINT_SLICE,
    "EndpointsList": ENDPOINTS,
    "ServiceImportList": SERVICE_IMPORT,
    "ServiceExportList": SERVICE_EXPORT,
    "List": None,
}
BATCH = 1000
_CARRIED = frozenset({SERVICE, ENDPOINT_SLICE, ENDPOINTS})
"""Kinds whose reducers read neither ``kind``, ``apiVersion`` nor ``managedFields``
(``ServiceImport``'s reads ``apiVersion``): their objects as reduced by ``ingest`` are
handed to the projection (:meth:`_Ingester._add`)."""
CARRIED_AT_MOST = 20_000
"""Objects an ingest hands to the projection at most (a catch-up chunk's worth, the
projection holds as many at once anyway): a large initial list keeps its memory."""
CHUNK = 1 << 20
#: Seconds an ingest of one file runs before its progress bar appears (quick ones never
#: flicker one).
PROGRESS_DELAY = 1.0


@dataclass
class IngestReport:
    """What one ``zonegen ingest`` did, for its one summary line."""

    new_events: int = 0
    duplicates: int = 0
    stale: int = 0  # older versions of objects the log already has newer ones of
    deleted_by_snapshot: int = 0
    skipped_kinds: dict[str, int] = field(default_factory=dict)
    invalid: int = 0
    serial: int | None = None

    def summary(self) -> str:
        parts = [f"{self.new_events} new events", f"{self.duplicates} duplicates skipped"]
        if self.stale:
            parts.append(f"{self.stale} older versions skipped")
        if self.deleted_by_snapshot:
            parts.append(f"{self.deleted_by_snapshot} deletions from snapshot")
        skipped = [f"{n} {kind}" for kind, n in sorted(self.skipped_kinds.items())]
        if skipped:
            parts.append("skipped other kinds: " + ", ".join(skipped))
        if self.invalid:
            parts.append(f"{self.invalid} invalid objects skipped")
        if self.serial is not None:
            parts.append(f"serial {self.serial}")
        return "; ".join(parts)

    def to_json(self) -> dict[str, Any]:
        """The facts of :meth:`summary`, every count present (``ingest --json``)."""
        return {"new_events": self.new_events, "duplicates": self.duplicates,
                "stale": self.stale, "deleted_by_snapshot": self.deleted_by_snapshot,
                "skipped_kinds": dict(sorted(self.skipped_kinds.items())),
                "invalid": self.invalid, "serial": self.serial}


@dataclass(frozen=True, slots=True)
class Item:
    """One object read from input, with its watch type when the input said so."""

    type: str | None
    obj: dict[str, Any]
    where: str  # file and position, for messages
    plain: bool = False  # decoded from JSON text: JSON's own types only (str keys)


# --------------------------------------------------------------------------- reading


def read_items(stream: IO[str], name: str, chunk_size: int = CHUNK) -> Iterator[Item]:
    """Yield every object in ``stream`` (JSON or YAML, any shape kubectl prints), reading
    ``chunk_size`` characters at a time (tests cut values at every boundary with tiny ones).

    :raises InvalidInput: the text is not JSON/YAML, is truncated, or has a shape that
        is not a Kubernetes object, list or watch event.
    """
    head = stream.read(chunk_size)
    stripped = head.lstrip()
    while not stripped:  # only whitespace so far: the first chunk decides nothing
        more = stream.read(chunk_size)
        if not more:
            return
        head += more
        stripped = head.lstrip()
    if stripped[0] in "{[":
        yield from _read_json(_JsonReader(head, stream, name, chunk_size))
    else:
        yield from _read_yaml(head + stream.read(), name)


def _yaml_loader() -> Any:
    """The safe loader, but timestamps stay the strings they are in the API (an unquoted
    ``creationTimestamp: 2024-01-01T00:00:00Z`` would otherwise become a datetime that
    cannot be stored as JSON)."""
    import yaml

    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    class Loader(base):  # type: ignore[misc, valid-type]
        pass

    Loader.add_constructor("tag:yaml.org,2002:timestamp",
                           yaml.constructor.SafeConstructor.construct_yaml_str)
    return Loader


def _read_yaml(text: str, name: str) -> Iterator[Item]:
    import yaml

    loader = _yaml_loader()
    try:
        for i, doc in enumerate(yaml.load_all(io.StringIO(text), Loader=loader)):
            if doc is None:
                continue
            yield from _items_of(doc, f"{name} document {i + 1}")
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise InvalidInput(f"{name}{where}: malformed YAML: {problem}") from None


class _JsonReader:
    """Incremental JSON over a text stream: values are decoded one by one from a
    sliding buffer, so memory follows the largest single object, not the file."""

    def __init__(self, head: str, stream: IO[str], name: str, chunk_size: int) -> None:
        self.chunk_size = chunk_size
        self.buf = head
        self.pos = 0
        self.stream = stream
        self.name = name
        self.eof = False
        self.offset = 0  # characters dropped from the buffer's front
        self.decoder = json.JSONDecoder()

    def where(self) -> str:
        return f"{self.name} at character {self.offset + self.pos}"

    def _more(self) -> bool:
        if self.eof:
            return False
        chunk = self.stream.read(self.chunk_size)
        if not chunk:
            self.eof = True
            return False
        if self.pos > self.chunk_size:
            self.offset += self.pos
            self.buf = self.buf[self.pos:]
            self.pos = 0
        self.buf += chunk
        return True

    def peek(self) -> str:
        """The next non-space character ('' at end of input)."""
        while True:
            while self.pos < len(self.buf) and self.buf[self.pos] in " \t\r\n":
                self.pos += 1
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self._more():
                return ""

    def expect(self, char: str) -> None:
        if self.peek() != char:
            got = self.peek() or "end of input"
            raise InvalidInput(f"{self.where()}: malformed JSON: expected {char!r}, "
                               f"found {got!r}" + (" (truncated?)" if not got else ""))
        self.pos += 1

    def value(self) -> Any:
        self.peek()
        while True:
            try:
                value, end = self.decoder.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError as e:
                # Near the end of the buffer the value may just continue in the next
                # chunk: read more and retry. Otherwise the input itself is broken.
                at_end = e.pos >= len(self.buf) - 1 or "Unterminated" in e.msg
                if (not self.eof and (at_end or len(self.buf) - e.pos < 64)
                        and self._more()):
                    continue
                if at_end:
                    raise InvalidInput(f"{self.where()}: truncated JSON "
                                       f"({e.msg})") from None
                raise InvalidInput(f"{self.name} at character {self.offset + e.pos}: "
                                   f"malformed JSON: {e.msg}") from None
            # A number at the end of the buffer may continue in the next chunk, also
            # when the chunk ends inside its fraction or exponent ("1." "5e" "5e-").
            if (isinstance(value, int | float) and not self.eof
                    and not self.buf[end:].strip(".eE+-") and self._more()):
                continue
            self.pos = end
            return value

    def array(self) -> Iterator[Any]:
        """The values of the array that starts here, decoded one at a time."""
        self.expect("[")
        first = True
        while self.peek() != "]":
            if not first:
                self.expect(",")
            first = False
            yield self.value()
        self.expect("]")

    def string(self) -> str:
        value = self.value()
        if not isinstance(value, str):
            raise InvalidInput(f"{self.where()}: malformed JSON: expected a key")
        return value


def _read_json(reader: _JsonReader) -> Iterator[Item]:
    index = 0
    while True:
        c = reader.peek()
        if not c:
            return
        index += 1
        where = f"{reader.name} value {index}"
        if c == "[":  # a JSON array of objects (not kubectl's, but cheap to accept)
            for n, value in enumerate(reader.array(), 1):
                yield from _items_of(value, f"{where} item {n}", plain=True)
        elif c == "{":
            yield from _read_json_object(reader, where)
        else:
            raise InvalidInput(f"{reader.where()}: malformed JSON: expected an object, "
                               f"found {c!r}")


def _read_json_object(reader: _JsonReader, where: str) -> Iterator[Item]:
    """Read one top-level object; stream its ``items`` array if it has one."""
    reader.expect("{")
    top: dict[str, Any] = {}
    items_pending: list[dict[str, Any]] = []
    streamed = 0
    first = True
    while reader.peek() != "}":
        if not first:
            reader.expect(",")
        first = False
        key = reader.string()
        reader.expect(":")
        if key == "items" and reader.peek() == "[":
            for n, item in enumerate(reader.array()):
                if not isinstance(item, dict):
                    raise InvalidInput(f"{where} items[{n}]: not an object")
                if "kind" in item or top.get("kind") not in (None, "List"):
                    streamed += 1
                    yield from _list_item(item, top.get("kind"), f"{where} items[{n}]",
                                          plain=True)
                else:  # kind-less item before the list's kind: wait for it
                    items_pending.append(item)
            top["items"] = None
        else:
            top[key] = reader.value()
            if key == "items" and top[key] is not None:
                # An empty list would be read as "nothing exists" by --snapshot.
                raise InvalidInput(f"{where}: items is not a list")
    reader.expect("}")
    if "items" in top:
        list_kind = top.get("kind")
        for n, item in enumerate(items_pending):
            yield from _list_item(item, list_kind, f"{where} items[{streamed + n}]",
                                  plain=True)
        if list_kind in LIST_KINDS and LIST_KINDS[list_kind]:
            yield Item("LIST", {"kind": LIST_KINDS[list_kind]}, where)
        return
    yield from _items_of(top, where, plain=True)


def _list_item(item: dict[str, Any], list_kind: Any, where: str, plain: bool = False
               ) -> Iterator[Item]:
    if "kind" not in item and isinstance(list_kind, str) and LIST_KINDS.get(list_kind):
        item = {**item, "kind": LIST_KINDS[list_kind]}
    yield from _items_of(item, where, plain)


def _items_of(doc: Any, where: str, plain: bool = False) -> Iterator[Item]:
    """Classify one decoded document: object, list or watch event. ``plain``: decoded
    from JSON text (:attr:`Item.plain`)."""
    if not isinstance(doc, dict):
        raise InvalidInput(f"{where}: not a Kubernetes object (a {type(doc).__name__})")
    if "object" in doc and "type" in doc and "kind" not in doc:
        etype = str(doc["type"]).upper()
        obj = doc["object"]
        if etype in ("BOOKMARK",):
            return
        if etype == "ERROR":
            log.warning("%s: watch stream reported an error: %s", where,
                        obj.get("message") if isinstance(obj, dict) else obj)
            return
        if etype not in EVENT_TYPES:
            raise InvalidInput(f"{where}: watch event type {doc['type']!r} is not "
                               "ADDED, MODIFIED, DELETED or BOOKMARK")
        if not isinstance(obj, dict):
            raise InvalidInput(f"{where}: watch event object is not an object")
        yield Item(etype, obj, where, plain)
        return
    kind = doc.get("kind")
    if isinstance(kind, str) and (kind in LIST_KINDS or "items" in doc):
        items = doc.get("items") or []
        if not isinstance(items, list):
            raise InvalidInput(f"{where}: items is not a list")
        for n, item in enumerate(items):
            if not isinstance(item, dict):
                raise InvalidInput(f"{where} items[{n}]: not an object")
            yield from _list_item(item, kind, f"{where} items[{n}]", plain)
        if LIST_KINDS.get(kind):
            yield Item("LIST", {"kind": LIST_KINDS[kind]}, where)
        return
    yield Item(None, doc, where, plain)


# --------------------------------------------------------------------------- storing


class _Ingester:
    """Feeds items to the one :class:`Reconciler` and stores its events in bounded
    batches inside the caller's transaction.

    Items are reconciled BATCH at a time, after one bulk look-up of what the batch
    needs from the log (the heads of its objects, whether its versions were stored
    before), so a burst of updates costs a few queries per thousand objects, not one
    per object, and a one-change ingest reads the head of one object, not of all."""

    def __init__(self, appender: EventAppender, heads: Mapping[ObjectKey, ObjectHead],
                 source: str, when: datetime | None, origin: str = "ingest") -> None:
        self.appender = appender
        self.source = source
        self.origin = origin
        self.report = IngestReport()
        self.kinds_listed: set[str] = set()
        self.batch: list[Event] = []
        self._batch_reduced: list[KubeObject | None] = []  # beside batch, same order
        self.reduced: dict[int, KubeObject] = {}
        """Stored event seq -> its object as reduced here (see :meth:`_add`)."""
        self.pending: list[Item] = []
        self.heads = heads
        self._known: dict[tuple[str, str], bool] = {}  # (uid, rv) -> stored as a version
        self.reconciler = Reconciler(heads, source, when or datetime.now(UTC),
                                     known_version=self._known_version, origin=origin)

    def _known_version(self, uid: str, rv: str) -> bool:
        known = self._known.get((uid, rv))
        if known is None:  # not in a prefetched batch (a reducer normalised it)
            known = bool(self.appender.known_versions([(uid, rv)], self.source))
        return known

    def add(self, item: Item) -> None:
        self.pending.append(item)
        if len(self.pending) >= BATCH:
            self.drain()

    def drain(self) -> None:
        """Reconcile the pending items, after looking up in bulk what they ask the log."""
        items, self.pending = self.pending, []
        versions: list[tuple[ObjectKey, tuple[str, str]]] = []
        for item in items:
            kind = item.obj.get("kind")
            meta = item.obj.get("metadata")
            if kind not in KINDS or not isinstance(meta, dict):
                continue
            name, uid = meta.get("name"), meta.get("uid")
            if isinstance(name, str) and isinstance(uid, str) and uid:
                versions.append(((kind, str(meta.get("namespace") or "default"), name),
                                 (uid, str(meta.get("resourceVersion") or ""))))
        if isinstance(self.heads, _LazyHeads):
            self.heads.prefetch(key for key, _pair in versions)
        # The reconciler asks only about objects the log (or this input) already has.
        seen, here = self.reconciler.seen, set()
        pairs: list[tuple[str, str]] = []
        for key, pair in versions:
            if key in here or key in seen or key in self.heads:
                pairs.append(pair)
            here.add(key)
        self._known = dict.fromkeys(pairs, False)
        if pairs:
            self._known.update(dict.fromkeys(
                self.appender.known_versions(pairs, self.source), True))
        for item in items:
            self._add(item)
        self._known = {}

    def _add(self, item: Item) -> None:
        if item.type == "LIST":
            self.kinds_listed.add(item.obj["kind"])
            return
        kind = item.obj.get("kind")
        if kind not in KINDS:
            label = str(kind) if kind else "object without kind"
            self.report.skipped_kinds[label] = self.report.skipped_kinds.get(label, 0) + 1
            return
        try:
            outcomes, reduced = self.reconciler.listed_reduced(kind, item.obj, item.type)
        except InvalidObject as e:
            log.warning("%s: %s; skipped", item.where, e)
            self.report.invalid += 1
            return
        self.kinds_listed.add(kind)
        # The object as reduced here is what projecting its stored event would reduce
        # again (json.loads of the stored form, then the reducer): the same value when
        # the input was JSON text (the stored form is that JSON, less managedFields,
        # with kind and apiVersion filled in, none of which these kinds' reducers
        # read) and the reducer warned of nothing (the projection reports warnings).
        # Carried to the projection (``runner.project_all``), a burst reduces each
        # object once, not twice.
        if not (item.plain and kind in _CARRIED):
            reduced = None
        for i, outcome in enumerate(outcomes):
            self._emit(outcome, reduced if i == len(outcomes) - 1 else None)

    def _emit(self, outcome: Event | Vanished, reduced: KubeObject | None = None) -> None:
        if isinstance(outcome, Vanished):
            outcome = outcome.event(self._stored_object(outcome), self.source,
                                    self.reconciler.now, self.origin)
        self.batch.append(outcome)
        self._batch_reduced.append(reduced)
        if len(self.batch) >= BATCH:
            self.flush()

    def _stored_object(self, gone: Vanished) -> str:
        """The last stored object of ``gone``, for its DELETED event."""
        seq = gone.last_seq
        if seq == 0:  # decided by this input, not stored yet: store it, then look
            self.flush()
            head = self.appender.heads_for([gone.key], self.source).get(gone.key)
            seq = head.last_seq if head is not None else 0
        event = self.appender.get_event(seq) if seq else None
        return event.object_json if event is not None else "{}"

    def flush(self) -> None:
        if not self.batch:
            return
        result = self.appender.append(self.batch)
        self.report.new_events += len(result.stored)
        self.report.duplicates += result.duplicates
        for seq, i in zip(result.stored, result.kept, strict=True):
            reduced = self._batch_reduced[i]
            if reduced is not None and len(self.reduced) < CARRIED_AT_MOST:
                self.reduced[seq] = reduced
        self.batch = []
        self._batch_reduced = []

    def snapshot_deletions(self) -> None:
        """Objects of the listed kinds that the log says exist but the input lacks."""
        self.drain()
        for gone in self.reconciler.vanished(self.kinds_listed):
            self._emit(gone)
            self.report.deleted_by_snapshot += 1

    def finish(self) -> None:
        self.drain()
        self.flush()
        self.report.duplicates += self.reconciler.unchanged
        self.report.stale += self.reconciler.stale


class _LazyHeads(Mapping[ObjectKey, ObjectHead]):
    """The log's object heads of one source, read only for the objects asked about
    (in bulk, per batch of input, by :meth:`prefetch`): an ingest that is not a
    snapshot never needs the heads of objects it does not mention, and reading all of
    them cost a large cluster a quarter of a second. Read inside the appending
    transaction, so no other writer's events slip in; this ingest's own events are
    the reconciler's, which never asks the heads about an object again once it decided
    a version of it. Iterating reads every head (only a snapshot would)."""

    def __init__(self, appender: EventAppender, source: str) -> None:
        self.appender = appender
        self.source = source
        self._heads: dict[ObjectKey, ObjectHead | None] = {}
        self._all = False

    def prefetch(self, keys: Iterable[ObjectKey]) -> None:
        missing = [k for k in set(keys) if k not in self._heads]
        if not missing or self._all:
            return
        found = self.appender.heads_for(missing, self.source)
        for key in missing:
            self._heads[key] = found.get(key)

    def __getitem__(self, key: ObjectKey) -> ObjectHead:
        if key not in self._heads and not self._all:
            self.prefetch([key])
        head = self._heads.get(key)
        if head is None:
            raise KeyError(key)
        return head

    def _every(self) -> dict[ObjectKey, ObjectHead | None]:
        if not self._all:
            self._heads.update(self.appender.heads(self.source))
            self._all = True
        return self._heads

    def __iter__(self) -> Iterator[ObjectKey]:
        return iter([k for k, v in self._every().items() if v is not None])

    def __len__(self) -> int:
        return sum(1 for v in self._every().values() if v is not None)


def ingest_files(
    store: Store,
    files: list[str],
    snapshot: bool = False,
    source: str = DEFAULT_SOURCE,
    when: datetime | None = None,
    project: bool = True,
    stdin: IO[str] | None = None,
    origin: str = "ingest",
    cluster_id: str | None = None,
) -> IngestReport:
    """Ingest kubectl output from ``files`` (``-`` is standard input) in one transaction,
    then project the new events.

    Events belong to ``source`` (a cluster, registered in ``sources`` with
    ``cluster_id``; see ``zonegen.sources``) and record ``origin`` as how they arrived. A
    snapshot only ever deletes objects of its own source.

    :raises InvalidInput: a file is missing, unreadable or malformed; nothing is stored.
    :raises StoreError: the database cannot be written; nothing is stored.
    """
    for name in files:
        # Anything that opens as a file is read as one: pipes, FIFOs, /dev/stdin and
        # process substitution (/dev/fd/N) included.
        if name != "-" and Path(name).is_dir():
            raise InvalidInput(f"{name}: is a directory")
        if name != "-" and not Path(name).exists():
            raise InvalidInput(f"{name}: does not exist")
    with gc_paused():
        store.register_source(source, cluster_id, now=when)
        with store.appending() as appender:
            # A snapshot diffs against every head; anything else reads only its objects'.
            heads: Mapping[ObjectKey, ObjectHead] = (
                appender.heads(source) if snapshot else _LazyHeads(appender, source))
            ingester = _Ingester(appender, heads, source, when, origin)
            for name in files:
                try:
                    if name == "-":
                        _ingest_stream(ingester, stdin or sys.stdin, "<stdin>")
                    else:
                        _ingest_file(ingester, name)
                except UnicodeDecodeError:
                    raise InvalidInput(f"{name}: not UTF-8 text") from None
                except RecursionError:
                    raise InvalidInput(f"{name}: nested too deeply to read") from None
                except OSError as e:
                    raise InvalidInput(f"{name}: {e.strerror or e}") from None
            if snapshot:
                ingester.snapshot_deletions()
            ingester.finish()
            report = ingester.report
        # Committed: these seqs are this input's events for good.
        reduced = ingester.reduced
        if project:
            import time

            from zonegen.clock import fixed_clock
            from zonegen.runner import project_all

            # Every registered projection folds these events (another source's only
            # move its checkpoint); the serial reported is the first one's that folds
            # this source.
            done = project_all(store, fixed_clock(when) if when else time.time,
                               reduced=reduced)
            specs = [spec for spec in store.projections() if source in spec.sources]
            version = done[specs[0].name].version if specs else None
            report.serial = version.serial if version is not None else None
        return report


def _ingest_file(ingester: _Ingester, name: str) -> None:
    """Ingest one file, with a progress bar of bytes read when stderr is a terminal
    (a large list takes minutes; nothing extra is printed anywhere else)."""
    with open(name, "rb") as raw:
        try:
            size: int | None = os.fstat(raw.fileno()).st_size or None
        except OSError:
            size = None
        with Progress(size, description=name, unit="B", delay=PROGRESS_DELAY) as progress:
            source: IO[bytes] = raw
            if progress.shown:
                source = progress.reading(raw)  # type: ignore[assignment]
            with io.TextIOWrapper(source, encoding="utf-8") as stream:
                _ingest_stream(ingester, stream, name)


def _ingest_stream(ingester: _Ingester, stream: IO[str], name: str) -> None:
    for item in read_items(stream, name):
        ingester.add(item)
