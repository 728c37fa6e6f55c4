"""``project --rebuild``: the log replayed from nothing, compared with the persisted read
model (docs/DESIGN.md "Read model": the two must be identical; issue #11).

The replay is a true one: every event up to the projection's checkpoint is counted, and
the newest event of each object (the one that decides its state: a state is a function
of each object's last change) is read from the log, reduced and folded into a fresh
:class:`~zonegen.project.Projection`, each Service computed once at the end. The result
is then compared with every visible row the read model holds. What makes 1M events
cheap:

- one query gives each object's newest event and its event count (the object index
  groups), with only the columns a change needs (no ``datetime`` per event);
- the reducers' fast paths (``zonegen.model``) take the decoded objects;
- the comparison is between sets of row texts (:func:`~zonegen.model.row_key`): SQLite
  spells the stored rows' texts in one aggregate, in a second thread while this one
  replays (the aggregate runs inside SQLite, which releases the GIL), so the stored
  side costs no Python object per row but its string;
- Python's cyclic collector is paused: a replay makes millions of small acyclic values
  and the collector's full passes over them cost more than the replay itself.

Only when the texts differ (or cannot be read so) are the rows themselves compared,
which names every missing and extra record exactly as before.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor

from zonegen import project
from zonegen.changes import stored_change
from zonegen.model import Change, Record, RecordSet, encode_rdata, record_keys
from zonegen.progress import Progress
from zonegen.runner import RebuildReport, gc_paused
from zonegen.store import Store


def rebuild_projection(store: Store, name: str, sources: Iterable[str] | None,
                       progress: Progress | None = None) -> RebuildReport:
    """Replay the log of ``sources`` (None: every source) up to projection ``name``'s
    checkpoint and compare with its read model. Stores nothing. ``progress`` (default:
    a bar on stderr when it is a terminal) counts the events replayed."""
    checkpoint = store.max_tracking_seq(name)
    bar = progress if progress is not None else Progress(
        description="replaying events", unit="event")
    chosen = None if sources is None else tuple(sources)
    with gc_paused(), ThreadPoolExecutor(1, thread_name_prefix="rebuild") as pool:
        stored = pool.submit(store.stored_row_keys, name)
        started = time.perf_counter()
        with bar:
            count, projection = replay(store, checkpoint, chosen, bar)
        seconds = time.perf_counter() - started
        keys = stored.result()
        records = len(projection)
        identical = keys is not None and len(keys) == records and keys == row_keys(
            projection.visible_records())
        missing: frozenset[Record] = frozenset()
        extra: frozenset[Record] = frozenset()
        if not identical:
            replayed = projection.records()
            missing, extra = compare_rows(store, name, replayed)
            records = len(replayed)
            identical = not missing and not extra
            del replayed
        # Freed while the collector is still off: once it is back, its first pass
        # would walk every record still alive (a second of a 1M-event replay).
        del keys, projection
    return RebuildReport(events=count, records=records, identical=identical,
                         missing=missing, extra=extra, seconds=seconds)


def replay(store: Store, checkpoint: int, sources: Iterable[str] | None,
           bar: Progress | None = None) -> tuple[int, project.Projection]:
    """(events counted, the projection folded from the newest event of each object) up
    to ``checkpoint``."""
    count = 0

    def changes() -> Iterator[Change]:
        nonlocal count
        for seq, n, type_, kind, namespace, name, text in store.replay_rows(
                checkpoint, sources=None if sources is None else tuple(sources),
                total=None if bar is None else bar.set_total):
            count += n
            if bar is not None:
                bar.update(n)
            yield stored_change(seq, type_, kind, namespace, name, text)

    projection = project.rebuild(changes())
    if bar is not None:
        bar.set_total(count)  # also when there was nothing to replay
    return count, projection


def row_keys(records: Iterable[Record]) -> set[str]:
    """The :func:`~zonegen.model.row_key` texts of ``records``."""
    return record_keys(records)


def compare_rows(store: Store, name: str, replayed: RecordSet
                 ) -> tuple[frozenset[Record], frozenset[Record]]:
    """(missing, extra): the read model's visible records the replay lacks, and the
    replayed records it lacks, compared as stored columns (rdata as its stored text)."""
    replayed_rows = {(r.owner, r.rtype, encode_rdata(r.rdata), r.ttl): r for r in replayed}
    with store.current_rows(name) as (_version, rows):
        # Plain tuples: elsewhere than SQLite the rows are SQLAlchemy Row objects.
        current_rows = {(o, t, d, ttl) for o, t, d, ttl in rows}
    missing = frozenset(Record.from_row(o, t, d, ttl)
                        for o, t, d, ttl in current_rows - replayed_rows.keys())
    extra = frozenset(r for row, r in replayed_rows.items() if row not in current_rows)
    return missing, extra
