"""Projections: several zones, each with its own versions, from one log.

- ``zone_versions.projection`` (existing rows: ``projection``, the name of
  ``source:default``), and the version indexes lead with it, since every lookup of a
  serial, a time or the newest version is within one projection.
- ``projections`` (name, kind, sources as JSON, creation time) with the row of the
  default projection, so writers know every projection to keep folding.

Downgrading is refused once versions of another projection exist (0005 has one zone).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels = None
depends_on = None

DEFAULT = "projection"


def upgrade() -> None:
    # No batch (copy-and-move) alteration: record_changes and record_snapshots reference
    # zone_versions ON DELETE CASCADE, and dropping the old copy would delete them. A
    # column with a default and plain index changes are done in place on every backend.
    bind = op.get_bind()
    op.add_column("zone_versions", sa.Column("projection", sa.String(64), nullable=False,
                                             server_default=DEFAULT))
    op.drop_index("ix_zone_versions_serial", table_name="zone_versions")
    op.drop_index("ix_zone_versions_created", table_name="zone_versions")
    op.create_index("ix_zone_versions_projection", "zone_versions", ["projection", "id"])
    op.create_index("ix_zone_versions_serial", "zone_versions", ["projection", "serial"])
    op.create_index("ix_zone_versions_created", "zone_versions", ["projection", "created_us"])
    op.create_table(
        "projections",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("sources", sa.Text, nullable=False),
        sa.Column("created_us", sa.BigInteger, nullable=False),
    )
    bind.execute(sa.text("INSERT INTO projections (name, kind, sources, created_us) "
                         "VALUES (:n, 'cluster-local', '[\"default\"]', :t)"),
                 {"n": DEFAULT, "t": int(time.time() * 1e6)})


def downgrade() -> None:
    bind = op.get_bind()
    others = bind.execute(sa.text("SELECT count(*) FROM zone_versions WHERE projection <> :d"),
                          {"d": DEFAULT}).scalar()
    if others:
        raise RuntimeError("cannot downgrade below 0006: zone versions of projections "
                           "other than the default exist, and 0005 has one zone")
    op.drop_table("projections")
    op.drop_index("ix_zone_versions_projection", table_name="zone_versions")
    op.drop_index("ix_zone_versions_serial", table_name="zone_versions")
    op.drop_index("ix_zone_versions_created", table_name="zone_versions")
    op.create_index("ix_zone_versions_serial", "zone_versions", ["serial"])
    op.create_index("ix_zone_versions_created", "zone_versions", ["created_us"])
    # In place (SQLite >= 3.35 and PostgreSQL), for the same reason as above.
    bind.execute(sa.text("ALTER TABLE zone_versions DROP COLUMN projection"))
