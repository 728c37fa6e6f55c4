"""Alembic environment: runs against the engine zonegen hands over, or ``sqlalchemy.url``."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from zonegen.store import metadata

config = context.config
target_metadata = metadata


def run_migrations_online() -> None:
    engine = config.attributes.get("engine")
    if engine is None:
        engine = sa.create_engine(config.get_main_option("sqlalchemy.url") or "")
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=True,  # SQLite cannot ALTER most things; batch mode copies
        )
        with context.begin_transaction():
            if connection.dialect.name == "postgresql":
                # Replicas starting together on one empty database: one migrates, the
                # others wait here, then find it at head (DDL is transactional there).
                connection.execute(sa.text("SELECT pg_advisory_xact_lock(7012345)"))
            context.run_migrations()
        connection.commit()


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
