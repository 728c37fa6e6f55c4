"""Audit and retention: record-set snapshots (compaction bases) and the compaction log.

``record_snapshots`` holds the full record set of one zone version. ``compact`` writes one
at the oldest version it keeps, so past zones after that point stay exact once the older
changes are gone; ``records_at`` also starts from the nearest snapshot instead of folding
the whole journal. ``compactions`` says when history was cut and what was removed, so
exports, ``history`` and IXFR can say plainly where history begins.

Downgrading is refused once a compaction has happened (0001 could not rebuild past zones).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels = None
depends_on = None

_Seq = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "record_snapshots",
        sa.Column("id", _Seq, primary_key=True, autoincrement=True),
        sa.Column("version_id", sa.BigInteger,
                  sa.ForeignKey("zone_versions.id", ondelete="CASCADE"), nullable=False),
        sa.Column("owner", sa.String(1024), nullable=False),
        sa.Column("rtype", sa.Integer, nullable=False),
        sa.Column("ttl", sa.Integer, nullable=True),
        sa.Column("rdata", sa.Text, nullable=False),
        sa.Column("cause_seq", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_record_snapshots_version", "record_snapshots", ["version_id"])
    op.create_index("ix_record_snapshots_owner", "record_snapshots", ["owner", "version_id"])
    op.create_table(
        "compactions",
        sa.Column("id", _Seq, primary_key=True, autoincrement=True),
        sa.Column("compacted_us", sa.BigInteger, nullable=False),
        sa.Column("base_serial", sa.BigInteger, nullable=False),
        sa.Column("base_created_us", sa.BigInteger, nullable=False),
        sa.Column("events_upto_seq", sa.BigInteger, nullable=False),
        sa.Column("versions_deleted", sa.BigInteger, nullable=False),
        sa.Column("changes_deleted", sa.BigInteger, nullable=False),
        sa.Column("events_deleted", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    # After a compaction the snapshots are the only record of the zone at the oldest kept
    # version; 0001 has nowhere to keep them, so its past exports would silently be wrong.
    compacted = op.get_bind().execute(sa.text("SELECT count(*) FROM compactions")).scalar()
    if compacted:
        raise RuntimeError("cannot downgrade below 0002: history was compacted, and 0001 "
                           "cannot hold the snapshot that past zones are rebuilt from")
    op.drop_table("compactions")
    op.drop_index("ix_record_snapshots_owner", table_name="record_snapshots")
    op.drop_index("ix_record_snapshots_version", table_name="record_snapshots")
    op.drop_table("record_snapshots")
