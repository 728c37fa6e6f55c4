"""Event log, object heads, resume points, projection tracking, zone versions.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels = None
depends_on = None

_Seq = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("seq", _Seq, primary_key=True, autoincrement=True),
        sa.Column("received_us", sa.BigInteger, nullable=False),
        sa.Column("source", sa.String(255), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("namespace", sa.String(253), nullable=False),
        sa.Column("name", sa.String(253), nullable=False),
        sa.Column("uid", sa.String(128), nullable=False),
        sa.Column("resource_version", sa.String(128), nullable=False),
        sa.Column("object", sa.Text, nullable=False),
        sa.UniqueConstraint("uid", "resource_version", "type", name="uq_events_idempotency"),
    )
    op.create_index("ix_events_object", "events", ["kind", "namespace", "name", "seq"])
    op.create_index("ix_events_received", "events", ["received_us"])
    op.create_table(
        "object_heads",
        sa.Column("kind", sa.String(32), primary_key=True),
        sa.Column("namespace", sa.String(253), primary_key=True),
        sa.Column("name", sa.String(253), primary_key=True),
        sa.Column("uid", sa.String(128), nullable=False),
        sa.Column("resource_version", sa.String(128), nullable=False),
        sa.Column("last_seq", sa.BigInteger, nullable=False),
        sa.Column("deleted", sa.Boolean, nullable=False),
    )
    op.create_table(
        "resume_points",
        sa.Column("source", sa.String(255), primary_key=True),
        sa.Column("kind", sa.String(32), primary_key=True),
        sa.Column("resource_version", sa.String(128), nullable=False),
    )
    op.create_table(
        "trackings",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("last_seq", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "zone_versions",
        sa.Column("id", _Seq, primary_key=True, autoincrement=True),
        sa.Column("serial", sa.BigInteger, nullable=False),
        sa.Column("created_us", sa.BigInteger, nullable=False),
        sa.Column("last_event_seq", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_zone_versions_serial", "zone_versions", ["serial"])
    op.create_index("ix_zone_versions_created", "zone_versions", ["created_us"])
    op.create_table(
        "record_changes",
        sa.Column("id", _Seq, primary_key=True, autoincrement=True),
        sa.Column("version_id", sa.BigInteger,
                  sa.ForeignKey("zone_versions.id", ondelete="CASCADE"), nullable=False),
        sa.Column("added", sa.Boolean, nullable=False),
        sa.Column("owner", sa.String(1024), nullable=False),
        sa.Column("rtype", sa.Integer, nullable=False),
        sa.Column("ttl", sa.Integer, nullable=True),
        sa.Column("rdata", sa.Text, nullable=False),
        sa.Column("cause_seq", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_record_changes_owner", "record_changes", ["owner", "version_id"])
    op.create_index("ix_record_changes_version", "record_changes", ["version_id"])


def downgrade() -> None:
    op.drop_table("record_changes")
    op.drop_table("zone_versions")
    op.drop_table("trackings")
    op.drop_table("resume_points")
    op.drop_table("object_heads")
    op.drop_table("events")
