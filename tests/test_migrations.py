"""Migrations: upgrade from empty equals ``store.metadata``; downgrade/upgrade round trip."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from zonegen import migrate
from zonegen.errors import StoreError
from zonegen.store import Store, metadata


def _diff(engine: sa.engine.Engine) -> list[object]:
    with engine.connect() as conn:
        return list(compare_metadata(MigrationContext.configure(conn), metadata))


def test_upgrade_from_empty_matches_metadata(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'z.db'}")
    try:
        assert store.current_revision() == migrate.head()
        assert _diff(store.engine) == []
    finally:
        store.close()


def test_opening_an_empty_database_does_not_migrate_when_told_not_to(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'z.db'}", upgrade=False)
    try:
        assert store.current_revision() is None
        assert sa.inspect(store.engine).get_table_names() == []
    finally:
        store.close()


def test_downgrade_to_base_and_up_again(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'z.db'}")
    try:
        migrate.downgrade(store.engine, "base")
        assert store.current_revision() is None
        assert set(sa.inspect(store.engine).get_table_names()) <= {"alembic_version"}
        store.upgrade()
        assert store.current_revision() == migrate.head()
        assert _diff(store.engine) == []
    finally:
        store.close()


def test_upgrade_is_idempotent(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'z.db'}"
    Store.open(url).close()
    store = Store.open(url)
    try:
        assert store.current_revision() == migrate.head()
    finally:
        store.close()


def test_database_from_a_newer_zonegen_is_a_clear_error_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "z.db"
    Store.open(f"sqlite:///{path}").close()
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999_future'"))
    engine.dispose()
    with pytest.raises(StoreError, match=r"z\.db: database schema is at revision "
                                         r"'9999_future'.*newer zonegen"):
        Store.open(f"sqlite:///{path}")
    store = Store.open(f"sqlite:///{path}", upgrade=False)
    try:
        assert store.current_revision() == "9999_future"
    finally:
        store.close()
