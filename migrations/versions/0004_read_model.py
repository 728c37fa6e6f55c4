"""The persisted read model (issue #11, docs/DESIGN.md "Read model"): the projection's
current records per Service (with a bytewise DNSSEC-order sort key and the PTR rule's
visibility), the objects it holds at its checkpoint, and its visible record count.

An existing database gets its model built here, at its projection checkpoint, from the
newest event of every live object up to it, by the pure projector (as the runner loaded
it before this revision). Columns are named explicitly so later revisions that add
columns to ``events`` do not break this step.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import sqlalchemy as sa
from alembic import op

from zonegen.model import Change

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels = None
depends_on = None

_Seq = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
PROJECTION = "projection"


def upgrade() -> None:
    op.create_table(
        "current_records",
        sa.Column("id", _Seq, primary_key=True, autoincrement=True),
        sa.Column("projection", sa.String(64), nullable=False),
        sa.Column("service_namespace", sa.String(253), nullable=False),
        sa.Column("service_name", sa.String(253), nullable=False),
        sa.Column("owner", sa.String(1024), nullable=False),
        sa.Column("rtype", sa.Integer, nullable=False),
        sa.Column("ttl", sa.Integer, nullable=True),
        sa.Column("rdata", sa.Text, nullable=False),
        sa.Column("sort_key", sa.LargeBinary, nullable=False),
        sa.Column("visible", sa.Boolean, nullable=False),
    )
    op.create_index("ix_current_records_order", "current_records",
                    ["projection", "sort_key", "rtype"])
    op.create_index("ix_current_records_service", "current_records",
                    ["projection", "service_namespace", "service_name"])
    op.create_table(
        "projected_objects",
        sa.Column("projection", sa.String(64), primary_key=True, nullable=False),
        sa.Column("kind", sa.String(32), primary_key=True, nullable=False),
        sa.Column("namespace", sa.String(253), primary_key=True, nullable=False),
        sa.Column("name", sa.String(253), primary_key=True, nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("service_namespace", sa.String(253), nullable=False),
        sa.Column("service_name", sa.String(253), nullable=False),
    )
    op.create_index("ix_projected_objects_service", "projected_objects",
                    ["projection", "service_namespace", "service_name"])
    op.create_table(
        "read_models",
        sa.Column("projection", sa.String(64), primary_key=True, nullable=False),
        sa.Column("version_id", sa.BigInteger, nullable=True),
        sa.Column("records", sa.BigInteger, nullable=False),
    )
    _build(op.get_bind())


def downgrade() -> None:
    op.drop_table("read_models")
    op.drop_index("ix_projected_objects_service", table_name="projected_objects")
    op.drop_table("projected_objects")
    op.drop_index("ix_current_records_service", table_name="current_records")
    op.drop_index("ix_current_records_order", table_name="current_records")
    op.drop_table("current_records")


def _build(conn: sa.Connection) -> None:
    """The read model at the projection checkpoint, when a zone version exists (before
    the first version the model is empty and the first projection fills it)."""
    from zonegen.project import object_rows, rebuild
    from zonegen.store.readmodel import insert_objects, insert_records, record_row, set_state

    version_id = conn.execute(sa.text("SELECT max(id) FROM zone_versions")).scalar()
    if version_id is None:
        return
    checkpoint = conn.execute(sa.text("SELECT last_seq FROM trackings WHERE name = :n"),
                              {"n": PROJECTION}).scalar() or 0
    changes = list(_latest_changes(conn, int(checkpoint)))
    projection = rebuild(c for _seq, c in changes)
    insert_records(conn, (record_row(PROJECTION, key, r, visible)
                          for key, r, visible in projection.rows()))
    insert_objects(conn, PROJECTION, object_rows(changes)[0])
    set_state(conn, PROJECTION, int(version_id), len(projection))


def _latest_changes(conn: sa.Connection, checkpoint: int) -> Iterator[tuple[int, Change]]:
    """(seq, Change) of the newest event of every live object up to ``checkpoint``; an
    object today's reducers reject is absent (as the runner treats it)."""
    from zonegen.errors import InvalidObject
    from zonegen.model import reduce

    rows = conn.execute(sa.text(
        "SELECT e.seq, e.kind, e.namespace, e.name, e.object FROM events e JOIN "
        "(SELECT max(seq) AS seq FROM events WHERE seq <= :c GROUP BY kind, namespace, name)"
        " newest ON newest.seq = e.seq WHERE e.type != 'DELETED' ORDER BY e.seq"),
        {"c": checkpoint})
    for seq, kind, namespace, name, text in rows:
        try:
            value = json.loads(text)
            obj = reduce(kind, value) if isinstance(value, dict) else None
        except (InvalidObject, ValueError):
            obj = None
        yield int(seq), Change(int(seq), kind, namespace, name, obj)
