"""The tables, as the Alembic migrations in ``migrations/`` create them, and the one
time encoding every table uses (microseconds since the epoch, UTC).

The schema is created and changed only by those migrations; ``tests/test_migrations``
checks that upgrading from empty yields exactly this metadata.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

metadata = sa.MetaData()

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL wants BIGINT.
_SeqType = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _id() -> sa.Column[int]:
    """The auto-incrementing surrogate key of the journal and audit tables."""
    return sa.Column("id", _SeqType, primary_key=True, autoincrement=True)


def _object_columns(key: bool) -> list[sa.Column[Any]]:
    """Which Kubernetes object version a row is about: ``kind``, ``namespace``, ``name``
    (the primary key when ``key``), ``uid`` and ``resource_version``."""
    return [
        sa.Column("kind", sa.String(32), primary_key=key, nullable=False),
        sa.Column("namespace", sa.String(253), primary_key=key, nullable=False),
        sa.Column("name", sa.String(253), primary_key=key, nullable=False),
        sa.Column("uid", sa.String(128), nullable=False),
        sa.Column("resource_version", sa.String(128), nullable=False),
    ]


def _counts(*names: str) -> list[sa.Column[int]]:
    """Required BIGINT columns (sequence numbers, serials, microsecond times, counts)."""
    return [sa.Column(name, sa.BigInteger, nullable=False) for name in names]


def _record_columns(*between: sa.Column[Any]) -> list[sa.Column[Any]]:
    """The version a record row belongs to, then ``between`` (``added`` in
    ``record_changes``), then the record itself: the column order the migrations create."""
    return [
        sa.Column(
            "version_id", sa.BigInteger,
            sa.ForeignKey("zone_versions.id", ondelete="CASCADE"), nullable=False,
        ),
        *between,
        sa.Column("owner", sa.String(1024), nullable=False),
        sa.Column("rtype", sa.Integer, nullable=False),
        sa.Column("ttl", sa.Integer, nullable=True),
        sa.Column("rdata", sa.Text, nullable=False),
        sa.Column("cause_seq", sa.BigInteger, nullable=False),
    ]

events = sa.Table(
    "events",
    metadata,
    sa.Column("seq", _SeqType, primary_key=True, autoincrement=True),
    sa.Column("received_us", sa.BigInteger, nullable=False),
    sa.Column("source", sa.String(255), nullable=False),  # the cluster (sources.name)
    sa.Column("type", sa.String(16), nullable=False),
    *_object_columns(key=False),
    sa.Column("object", sa.Text, nullable=False),
    sa.Column("origin", sa.String(255), nullable=False, server_default=""),  # the feed
    sa.UniqueConstraint("source", "uid", "resource_version", "type",
                        name="uq_events_idempotency"),
    sa.Index("ix_events_object", "kind", "namespace", "name", "source", "seq"),
    sa.Index("ix_events_received", "received_us"),
    sa.Index("ix_events_source", "source", "seq"),
)
"""The log. ``source`` names the cluster an event belongs to (migration 0005 moved every
older row to ``default``); ``origin`` says how it arrived (``watch:<context>``,
``ingest``, ``demo``: what ``source`` held before 0005). Idempotent per source: resource
versions are per cluster, and a restored or cloned cluster can repeat uids."""

object_heads = sa.Table(
    "object_heads",
    metadata,
    sa.Column("source", sa.String(255), primary_key=True, nullable=False),
    *_object_columns(key=True),
    sa.Column("last_seq", sa.BigInteger, nullable=False),
    sa.Column("deleted", sa.Boolean, nullable=False),
)
"""The newest event of every object ever seen, per source: what the log says exists now.
Kept in the same transaction as ``events`` so snapshots and relists diff against it
cheaply; keyed by source, so a relist of one cluster never marks another's objects
vanished."""

resume_points = sa.Table(
    "resume_points",
    metadata,
    sa.Column("source", sa.String(255), primary_key=True),  # <source>[@<namespace>]
    sa.Column("kind", sa.String(32), primary_key=True),
    sa.Column("resource_version", sa.String(128), nullable=False),
)

sources = sa.Table(
    "sources",
    metadata,
    sa.Column("name", sa.String(63), primary_key=True),
    sa.Column("cluster_id", sa.String(253), nullable=False),
    sa.Column("created_us", sa.BigInteger, nullable=False),
    sa.UniqueConstraint("cluster_id", name="uq_sources_cluster_id"),
)
"""The clusters feeding the log (``zonegen.sources``): name, and the MCS cluster id its
clusterset names use (RFC 1123 subdomain, default the name)."""

trackings = sa.Table(
    "trackings",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("last_seq", sa.BigInteger, nullable=False),
)

zone_versions = sa.Table(
    "zone_versions",
    metadata,
    _id(),
    *_counts("serial", "created_us", "last_event_seq"),
    sa.Column("projection", sa.String(64), nullable=False, server_default="projection"),
    sa.Index("ix_zone_versions_projection", "projection", "id"),
    sa.Index("ix_zone_versions_serial", "projection", "serial"),
    sa.Index("ix_zone_versions_created", "projection", "created_us"),
)
"""Every published version of every projection (``zonegen.projections``): each zone has
its own serials, so every lookup is by ``projection`` first (migration 0006)."""

projections = sa.Table(
    "projections",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("sources", sa.Text, nullable=False),  # JSON list of source names
    sa.Column("created_us", sa.BigInteger, nullable=False),
)
"""The projections a writer keeps folding (``watch`` folds every row here after each
batch): registered by the first ``serve``/``export`` that names one. ``projection``
(``source:default``) is always present."""

record_changes = sa.Table(
    "record_changes",
    metadata,
    _id(),
    *_record_columns(sa.Column("added", sa.Boolean, nullable=False)),
    sa.Index("ix_record_changes_owner", "owner", "version_id"),
    sa.Index("ix_record_changes_version", "version_id"),
)

# ---- audit (tables of migration 0002; read by zonegen.store.audit and .retention)

record_snapshots = sa.Table(
    "record_snapshots",
    metadata,
    _id(),
    *_record_columns(),
    sa.Index("ix_record_snapshots_version", "version_id"),
    sa.Index("ix_record_snapshots_owner", "owner", "version_id"),
)
"""The full record set of one zone version. ``compact`` writes one at the oldest version
it keeps (the base that later versions' changes apply to once older changes are gone);
``records_at`` starts from the nearest one instead of folding the whole journal."""

compactions = sa.Table(
    "compactions",
    metadata,
    _id(),
    *_counts(
        "compacted_us", "base_serial", "base_created_us", "events_upto_seq",
        "versions_deleted", "changes_deleted", "events_deleted",
    ),
)
"""One row per ``zonegen compact`` that removed something: where history now begins."""

writer_leases = sa.Table(
    "writer_leases",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("holder", sa.String(500), nullable=False),
    sa.Column("epoch", sa.BigInteger, nullable=False),  # +1 on every takeover: the fence
    sa.Column("expires_us", sa.BigInteger, nullable=False),
)

# ---- the read model (tables of migration 0004; written by zonegen.store.readmodel)
# docs/DESIGN.md "Read model": the projection's current state, persisted and moved in the
# same transaction as each zone version and the projection checkpoint.

def _projection_column() -> sa.Column[str]:
    """Which projection a read-model row belongs to (today only ``PROJECTION``)."""
    return sa.Column("projection", sa.String(64), primary_key=True, nullable=False)


current_records = sa.Table(
    "current_records",
    metadata,
    _id(),
    sa.Column("projection", sa.String(64), nullable=False),
    sa.Column("service_namespace", sa.String(253), nullable=False),
    sa.Column("service_name", sa.String(253), nullable=False),
    sa.Column("owner", sa.String(1024), nullable=False),
    sa.Column("rtype", sa.Integer, nullable=False),
    sa.Column("ttl", sa.Integer, nullable=True),
    sa.Column("rdata", sa.Text, nullable=False),
    # Reversed labels joined by \x01, as bytes: bytewise order (never a collation) is
    # DNSSEC canonical owner order within every zone (zonegen.store.readmodel.sort_key).
    sa.Column("sort_key", sa.LargeBinary, nullable=False),
    sa.Column("visible", sa.Boolean, nullable=False),
    sa.Index("ix_current_records_order", "projection", "sort_key", "rtype"),
    sa.Index("ix_current_records_service", "projection", "service_namespace", "service_name"),
)
"""Every record of every Service as ``records_for_service`` made it (endpoint PTRs
hidden by another Service's cluster IP included, with ``visible`` false), plus the apex
records (service ''): the zone is the visible rows."""

projected_objects = sa.Table(
    "projected_objects",
    metadata,
    _projection_column(),
    sa.Column("kind", sa.String(32), primary_key=True, nullable=False),
    sa.Column("namespace", sa.String(253), primary_key=True, nullable=False),
    sa.Column("name", sa.String(253), primary_key=True, nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("service_namespace", sa.String(253), nullable=False),
    sa.Column("service_name", sa.String(253), nullable=False),
    sa.Index("ix_projected_objects_service", "projection", "service_namespace",
             "service_name"),
)
"""The objects the projection holds at its checkpoint (not ``object_heads``, which runs
ahead with pending events): which event each one's state comes from and the Service it
feeds, so a change loads only the objects of the Services it touches."""

read_models = sa.Table(
    "read_models",
    metadata,
    _projection_column(),
    sa.Column("version_id", sa.BigInteger, nullable=True),
    sa.Column("records", sa.BigInteger, nullable=False),
)
"""One row per projection: its newest zone version and how many visible records it
holds (``len`` without a scan)."""



def unindexed(column: sa.ColumnElement[str]) -> sa.ColumnElement[str]:
    """``column`` as an expression no index can serve: a filter on the source of a scan
    grouped by object must be read from ``ix_events_object`` (which covers it), but
    without table statistics SQLite would take ``ix_events_source`` for it and read
    every event row for the object's name (a 1M-event rebuild: 63 s instead of ~10)."""
    return column.concat("")


def to_us(when: datetime) -> int:
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1_000_000)


def from_us(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1_000_000, tz=UTC)


