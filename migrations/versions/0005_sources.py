"""Sources: every event belongs to one cluster; the old free-text source is its origin.

- ``events.origin`` takes what ``events.source`` held (``ingest``, ``watch:<context>``,
  ``demo``: how the event arrived); ``events.source`` becomes the source *name* (one
  Kubernetes cluster) and every existing row moves to ``default``.
- ``sources`` (name, cluster id, creation time) with the row ``default``.
- ``uq_events_idempotency`` becomes (source, uid, resource_version, type): resource
  versions are per cluster. Index (source, seq) for per-source reads.
- ``object_heads`` gains ``source`` in its key (existing rows: ``default``), so the same
  namespace/name in two clusters are two objects and a relist of one cluster never
  marks another's objects vanished.
- ``resume_points`` keys become ``<source>[@<namespace>]``. Old keys were
  ``<feed>[@<namespace>]`` (``watch:prod@shop``). When every row has one feed they move
  to ``default`` (``default@shop``), so the next ``watch`` resumes; rows of several feeds
  cannot all be the default source's, so they are dropped and the next ``watch`` relists
  (safe: appends are idempotent and objects gone meanwhile get DELETED events).

Downgrading puts ``origin`` back into ``source`` and is refused once the log holds
events of a source other than ``default`` (0003 cannot tell clusters apart).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels = None
depends_on = None

DEFAULT = "default"


def upgrade() -> None:
    bind = op.get_bind()
    op.create_table(
        "sources",
        sa.Column("name", sa.String(63), primary_key=True),
        sa.Column("cluster_id", sa.String(253), nullable=False),
        sa.Column("created_us", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("cluster_id", name="uq_sources_cluster_id"),
    )
    bind.execute(sa.text("INSERT INTO sources (name, cluster_id, created_us) "
                         "VALUES (:n, :n, :t)"), {"n": DEFAULT, "t": int(time.time() * 1e6)})

    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("origin", sa.String(255), nullable=False,
                                   server_default=""))
    bind.execute(sa.text("UPDATE events SET origin = source, source = :d"), {"d": DEFAULT})
    with op.batch_alter_table("events") as batch:
        batch.drop_constraint("uq_events_idempotency", type_="unique")
        batch.create_unique_constraint("uq_events_idempotency",
                                       ["source", "uid", "resource_version", "type"])
    op.create_index("ix_events_source", "events", ["source", "seq"])

    _rekey_object_heads(with_source=True)
    _move_resume_points()


def _rekey_object_heads(with_source: bool) -> None:
    """Recreate ``object_heads`` with (``with_source``) or without ``source`` in its
    key, copying the rows: a primary key cannot be altered in place on SQLite."""
    bind = op.get_bind()
    op.rename_table("object_heads", "object_heads_old")
    key = [sa.Column("source", sa.String(255), primary_key=True)] if with_source else []
    op.create_table(
        "object_heads",
        *key,
        sa.Column("kind", sa.String(32), primary_key=True),
        sa.Column("namespace", sa.String(253), primary_key=True),
        sa.Column("name", sa.String(253), primary_key=True),
        sa.Column("uid", sa.String(128), nullable=False),
        sa.Column("resource_version", sa.String(128), nullable=False),
        sa.Column("last_seq", sa.BigInteger, nullable=False),
        sa.Column("deleted", sa.Boolean, nullable=False),
    )
    columns = "kind, namespace, name, uid, resource_version, last_seq, deleted"
    if with_source:
        bind.execute(sa.text(f"INSERT INTO object_heads (source, {columns}) "  # noqa: S608
                             f"SELECT :d, {columns} FROM object_heads_old"), {"d": DEFAULT})
    else:
        bind.execute(sa.text(f"INSERT INTO object_heads ({columns}) "  # noqa: S608
                             f"SELECT {columns} FROM object_heads_old"))
    op.drop_table("object_heads_old")


def _move_resume_points() -> None:
    bind = op.get_bind()
    rows = bind.execute(sa.text("SELECT source, kind FROM resume_points")).all()
    feeds = {str(r.source).partition("@")[0] for r in rows}
    if len(feeds) != 1:
        bind.execute(sa.text("DELETE FROM resume_points"))
        return
    for r in rows:
        _, at, namespace = str(r.source).partition("@")
        bind.execute(sa.text("UPDATE resume_points SET source = :new "
                             "WHERE source = :old AND kind = :kind"),
                     {"new": DEFAULT + at + namespace, "old": r.source, "kind": r.kind})


def downgrade() -> None:
    bind = op.get_bind()
    others = bind.execute(sa.text("SELECT count(*) FROM events WHERE source <> :d"),
                          {"d": DEFAULT}).scalar()
    if others:
        raise RuntimeError("cannot downgrade below 0005: the log holds events of sources "
                           "other than 'default', and 0003 cannot tell clusters apart")
    _rekey_object_heads(with_source=False)
    op.drop_index("ix_events_source", table_name="events")
    with op.batch_alter_table("events") as batch:
        batch.drop_constraint("uq_events_idempotency", type_="unique")
        batch.create_unique_constraint("uq_events_idempotency",
                                       ["uid", "resource_version", "type"])
    bind.execute(sa.text("UPDATE events SET source = origin"))
    with op.batch_alter_table("events") as batch:
        batch.drop_column("origin")
    # Resume points keep their keys: the next 0003 watch under another name relists.
    op.drop_table("sources")
