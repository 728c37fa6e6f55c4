"""Writer lease: which ``serve --watch`` replica may write, and its fencing epoch.

One row per lease name. The replica holding an unexpired lease is the only one that
watches and writes; taking the lease over increments ``epoch``, and every write
transaction of a leader checks that the epoch is still its own (see
``zonegen.store.lease``), so a paused former leader cannot write after losing it.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "writer_leases",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("holder", sa.String(500), nullable=False),
        sa.Column("epoch", sa.BigInteger, nullable=False),
        sa.Column("expires_us", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("writer_leases")
