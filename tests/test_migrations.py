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

pytest_plugins = ["tests.postgres"]  # backend_url: SQLite and PostgreSQL


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


def test_0004_from_a_populated_0003_database(backend_url: str, tmp_path: Path) -> None:
    """0003 -> 0004 on a database the old code filled (events, a version, a checkpoint,
    one event pending) builds the read model at the checkpoint; 0004 -> 0003 drops it
    and keeps the log."""
    from tests.test_readmodel import Log, _old_catch_up, assert_model_is_a_replay, service

    store = Store.open(backend_url)
    try:
        migrate.downgrade(store.engine, "0003")
        log = Log(store)
        log.append([("Service", "shop", "db", service("db", cluster_ip="10.96.0.1"))])
        _old_catch_up(store, 1_700_000_000)
        log.append([("Service", "shop", "web", service("web", cluster_ip="10.96.0.2"))])
        migrate.upgrade(store.engine, "head")
        assert _diff(store.engine) == []
        assert_model_is_a_replay(store)
        assert store.record_count() == 5  # apex, db A, PTR and two SRVs
        migrate.downgrade(store.engine, "0003")
        assert "current_records" not in sa.inspect(store.engine).get_table_names()
        assert len(store.select_events()) == 2
    finally:
        store.close()
