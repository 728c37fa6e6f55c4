"""The store: the event log, the zone journal, the audit reader and retention, each a
role of its own (as eventsourcing splits its recorders), sharing one database behind one
:func:`open`. In SQLAlchemy Core, dialect-neutral; it never imports the projector.

Map (one noun a module):

- :mod:`.database`: opening (the open modes: ``read``, ``inspect``, ``write``), the
  connection discipline and one-line errors, SQLite tuning.
- :mod:`.schema`: the tables the migrations create; the time encoding.
- :mod:`.events`: :class:`EventLog`, appending events with resume points; object heads.
- :mod:`.journal`: :class:`ZoneJournal`, zone versions with the projection checkpoint,
  the IXFR journal, past record sets, snapshots, where history begins.
- :mod:`.readmodel`: :class:`ReadModel`, the projection's current records and objects,
  persisted with each zone version (docs/DESIGN.md "Read model").
- :mod:`.audit`: :class:`AuditLog`, what history/diff/log/why read.
- :mod:`.retention`: :class:`Retention`, ``compact``.
- :mod:`.lease`: :class:`WriterLeases`, the ``serve --watch`` replicas' writer lease
  and the fence every write transaction of a leader checks.

:class:`Store` is all roles on one connection: what :func:`open` returns. Code that
needs one role may type its parameter as that role.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from zonegen.store.audit import AuditLog, EventRef, NameChange
from zonegen.store.database import DEFAULT_URL, HOW_TO_CREATE, Database, Mode, connect
from zonegen.store.database import remove_created as _remove_created
from zonegen.store.events import AppendResult, EventAppender, EventLog, ObjectHead
from zonegen.store.journal import (
    PROJECTION,
    CheckpointMoved,
    HistoryStart,
    JournalVersion,
    ZoneJournal,
)
from zonegen.store.lease import WATCH_LEASE, Fence, Lease, LeaseLost, WriterLeases
from zonegen.store.readmodel import (
    NO_SERVICE,
    ReadModel,
    ReadModelChange,
    ReadModelState,
    sort_key,
)
from zonegen.store.retention import CompactionStats, Retention
from zonegen.store.schema import (
    compactions,
    current_records,
    events,
    from_us,
    metadata,
    object_heads,
    projected_objects,
    read_models,
    record_changes,
    record_snapshots,
    resume_points,
    to_us,
    trackings,
    writer_leases,
    zone_versions,
)

__all__ = [
    "DEFAULT_URL", "HOW_TO_CREATE", "PROJECTION", "WATCH_LEASE", "AppendResult", "AuditLog",
    "CheckpointMoved", "CompactionStats", "Database", "EventAppender", "EventLog",
    "EventRef", "Fence", "HistoryStart", "JournalVersion", "Lease", "LeaseLost", "Mode",
    "NO_SERVICE", "NameChange", "ObjectHead", "ReadModel", "ReadModelChange",
    "ReadModelState", "Retention", "Store", "WriterLeases", "ZoneJournal", "compactions",
    "current_records", "events", "from_us", "metadata", "object_heads", "open", "opened",
    "projected_objects", "read_models", "record_changes", "record_snapshots",
    "resume_points", "sort_key", "to_us", "trackings", "writer_leases", "zone_versions",
]


class Store(EventLog, AuditLog, Retention, ReadModel, WriterLeases):
    """Every role on one database: what commands open."""

    @classmethod
    def open(cls, url: str = DEFAULT_URL, upgrade: bool = True) -> Store:
        """A writable store on ``url`` (created when missing; in-memory allowed), for
        library code and tests; migrated to head unless ``upgrade`` is False.

        :raises StoreError: see :func:`open`.
        """
        c = connect(url, "write", memory=True, migrate=upgrade)
        return cls(c.engine, c.where, c.read_only, c.created)


def open(url: str = DEFAULT_URL, mode: Mode = "write",  # noqa: A001 - the store's verb
         memory: bool = False) -> Store:
    """Open the database at ``url`` by the rules of ``mode`` (see
    :mod:`zonegen.store.database`): ``read`` and ``inspect`` never create, migrate or
    alter it; ``write`` creates and migrates. ``memory`` allows ``sqlite://``.

    :raises StoreError: one line naming the database and what to do.
    """
    c = connect(url, mode, memory=memory)
    return Store(c.engine, c.where, c.read_only, c.created)


@contextlib.contextmanager
def opened(url: str = DEFAULT_URL, mode: Mode = "write",
           memory: bool = False) -> Iterator[Store]:
    """:func:`open` for one command: closed at the end, and a database this call
    created is removed again when the command fails before storing anything (a failed
    ``ingest nope.json`` leaves no file behind)."""
    store = open(url, mode, memory)
    try:
        yield store
    except BaseException:
        if not _remove_created(store):
            store.close()
        raise
    store.close()
