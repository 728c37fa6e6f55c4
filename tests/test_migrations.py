"""Migrations: upgrade from empty equals ``store.metadata``; downgrade/upgrade round trip."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from zonegen import migrate
from zonegen.errors import StoreError
from zonegen.model import ADDED, SERVICE, Event
from zonegen.store import Store, metadata

pytest_plugins = ["tests.postgres"]  # backend_url, empty_backend_url: SQLite and PostgreSQL


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
        log = Log(store, at_0003=True)
        log.append([("Service", "shop", "db", service("db", cluster_ip="10.96.0.1"))])
        _old_catch_up(store, 1_700_000_000)
        log.append([("Service", "shop", "web", service("web", cluster_ip="10.96.0.2"))])
        migrate.upgrade(store.engine, "head")
        assert _diff(store.engine) == []
        assert_model_is_a_replay(store)
        assert store.record_count() == 5  # apex, db A, PTR and two SRVs
        migrate.downgrade(store.engine, "0003")
        assert "current_records" not in sa.inspect(store.engine).get_table_names()
        assert sa.inspect(store.engine).get_table_names().count("events") == 1
        with store.engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM events")).scalar_one() == 2
    finally:
        store.close()
# ---- 0005: sources (tested from the revision before it, whatever that is after merges)

SOURCES_REVISION = "0005"


def _before_sources() -> str:
    """The revision 0005 upgrades from, read from the scripts (not a literal)."""
    cfg = Config()
    cfg.set_main_option("script_location", migrate._script_location())
    previous = ScriptDirectory.from_config(cfg).get_revision(SOURCES_REVISION).down_revision
    assert isinstance(previous, str)
    return previous


def _old_log(url: str, resume_keys: list[str]) -> sa.engine.Engine:
    """A database at the revision before 0005 with two feeds' events in it."""
    engine = sa.create_engine(url)
    migrate.upgrade(engine, _before_sources())
    with engine.begin() as conn:
        for seq, (source, name, rv) in enumerate(
                [("ingest", "a", "1"), ("watch:prod", "b", "2"), ("ingest", "a", "3")], 1):
            conn.execute(sa.text(
                "INSERT INTO events (seq, received_us, source, type, kind, namespace, name, "
                "uid, resource_version, object) VALUES (:seq, 1, :source, 'ADDED', "
                "'Service', 'shop', :name, :uid, :rv, '{}')"),
                {"seq": seq, "source": source, "name": name, "uid": f"u-{name}", "rv": rv})
        for name, rv in (("a", "3"), ("b", "2")):
            conn.execute(sa.text(
                "INSERT INTO object_heads VALUES ('Service', 'shop', :n, :u, :rv, :seq, :d)"),
                {"n": name, "u": f"u-{name}", "rv": rv, "seq": int(rv), "d": False})
        for i, key in enumerate(resume_keys):
            conn.execute(sa.text("INSERT INTO resume_points VALUES (:k, :kind, :rv)"),
                         {"k": key, "kind": f"Kind{i}", "rv": str(100 + i)})
    return engine


def test_sources_migration_moves_the_log_to_the_default_source(empty_backend_url: str) -> None:
    engine = _old_log(empty_backend_url, ["watch:prod", "watch:prod@shop"])
    migrate.upgrade(engine, SOURCES_REVISION)
    with engine.connect() as conn:
        assert [tuple(r) for r in conn.execute(sa.text(
            "SELECT seq, source, origin, name FROM events ORDER BY seq"))] == [
            (1, "default", "ingest", "a"), (2, "default", "watch:prod", "b"),
            (3, "default", "ingest", "a")]
        assert [tuple(r) for r in conn.execute(sa.text(
            "SELECT name, cluster_id FROM sources"))] == [("default", "default")]
        assert [tuple(r) for r in conn.execute(sa.text(
            "SELECT source, kind, namespace, name, last_seq FROM object_heads "
            "ORDER BY name"))] == [("default", "Service", "shop", "a", 3),
                                   ("default", "Service", "shop", "b", 2)]
        assert [tuple(r) for r in conn.execute(sa.text(
            "SELECT source, kind, resource_version FROM resume_points ORDER BY kind"))] == [
            ("default", "Kind0", "100"), ("default@shop", "Kind1", "101")]
    migrate.upgrade(engine, "head")
    assert _diff(engine) == []
    # Idempotency is per source now: the same version of u-a in another cluster is new.
    store = Store.open(empty_backend_url)
    try:
        again = [Event(0, datetime.now(UTC), src, ADDED, SERVICE, "shop", "a", "u-a", "3",
                       "{}", "test") for src in ("default", "b")]
        result = store.append_events(again)
        assert (len(result.stored), result.duplicates) == (1, 1)
        assert store.heads(source="b")[(SERVICE, "shop", "a")].last_seq == 4
        assert store.heads()[(SERVICE, "shop", "a")].last_seq == 3
    finally:
        store.close()
    engine.dispose()


def test_sources_migration_drops_resume_points_of_several_feeds(empty_backend_url: str) -> None:
    engine = _old_log(empty_backend_url, ["watch:prod", "watch:staging@shop"])
    migrate.upgrade(engine, SOURCES_REVISION)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM resume_points")).scalar() == 0
    engine.dispose()


def test_sources_migration_downgrades_to_the_old_source_text(empty_backend_url: str) -> None:
    engine = _old_log(empty_backend_url, ["watch:prod"])
    migrate.upgrade(engine, SOURCES_REVISION)
    migrate.downgrade(engine, _before_sources())
    with engine.connect() as conn:
        assert [tuple(r) for r in conn.execute(sa.text(
            "SELECT seq, source FROM events ORDER BY seq"))] == [
            (1, "ingest"), (2, "watch:prod"), (3, "ingest")]
        assert "sources" not in sa.inspect(conn).get_table_names()
    engine.dispose()


def test_sources_downgrade_is_refused_once_another_source_logged(empty_backend_url: str) -> None:
    engine = _old_log(empty_backend_url, [])
    migrate.upgrade(engine, SOURCES_REVISION)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE events SET source = 'east' WHERE seq = 2"))
    with pytest.raises(RuntimeError, match="sources other than 'default'"):
        migrate.downgrade(engine, _before_sources())
    assert migrate.current(engine) == SOURCES_REVISION
    engine.dispose()


# ---- 0006: projections (zone versions per projection)

PROJECTIONS_REVISION = "0006"


def _versions_at_0005(url: str) -> sa.engine.Engine:
    """A database at 0005 with two versions and their record changes, a snapshot and a
    checkpoint, written with 0005's columns."""
    engine = sa.create_engine(url)
    migrate.upgrade(engine, "0005")
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO trackings (name, last_seq) VALUES ('projection', 7)"))
        for vid, serial in ((1, 100), (2, 101)):
            conn.execute(sa.text(
                "INSERT INTO zone_versions (id, serial, created_us, last_event_seq) "
                "VALUES (:i, :s, :c, :e)"), {"i": vid, "s": serial, "c": vid * 10, "e": vid})
            conn.execute(sa.text(
                "INSERT INTO record_changes (version_id, added, owner, rtype, ttl, rdata, "
                "cause_seq) VALUES (:v, :a, 'web.shop.svc', 1, NULL, :d, :v)"),
                {"v": vid, "a": True, "d": f'["10.0.0.{vid}"]'})
        conn.execute(sa.text(
            "INSERT INTO record_snapshots (version_id, owner, rtype, ttl, rdata, cause_seq) "
            "VALUES (1, 'web.shop.svc', 1, NULL, '[\"10.0.0.1\"]', 1)"))
    return engine


def test_projections_migration_keeps_every_version_change_and_snapshot(
        empty_backend_url: str) -> None:
    """In place: the journal rows that reference zone_versions ON DELETE CASCADE survive
    the upgrade and the downgrade (a copy-and-move alteration would delete them)."""
    engine = _versions_at_0005(empty_backend_url)
    migrate.upgrade(engine, PROJECTIONS_REVISION)
    with engine.connect() as conn:
        assert [tuple(r) for r in conn.execute(sa.text(
            "SELECT id, serial, projection FROM zone_versions ORDER BY id"))] == [
            (1, 100, "projection"), (2, 101, "projection")]
        assert conn.execute(sa.text("SELECT count(*) FROM record_changes")).scalar() == 2
        assert conn.execute(sa.text("SELECT count(*) FROM record_snapshots")).scalar() == 1
        assert [tuple(r) for r in conn.execute(sa.text(
            "SELECT name, kind, sources FROM projections"))] == [
            ("projection", "cluster-local", '["default"]')]
    migrate.upgrade(engine, "head")
    assert _diff(engine) == []
    store = Store.open(empty_backend_url)
    try:
        from zonegen.model import A, Record
        assert store.latest_version() is not None
        assert [v.serial for v in store.versions()] == [100, 101]
        latest = store.latest_version()
        assert latest is not None
        assert store.records_at(latest.version_id) == {
            Record("web.shop.svc", A, ("10.0.0.1",)), Record("web.shop.svc", A, ("10.0.0.2",))}
    finally:
        store.close()
    migrate.downgrade(engine, "0005")
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM record_changes")).scalar() == 2
        assert conn.execute(sa.text("SELECT count(*) FROM record_snapshots")).scalar() == 1
        assert "projections" not in sa.inspect(engine).get_table_names()
        assert "projection" not in {c["name"] for c in
                                    sa.inspect(engine).get_columns("zone_versions")}
    engine.dispose()


def test_projections_migration_refuses_to_downgrade_with_other_zones(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'z.db'}"
    store = Store.open(url)
    try:
        store.commit_version(("source:east", 0, 0), serial=5)
        migrate.downgrade(store.engine, PROJECTIONS_REVISION)
        with pytest.raises(RuntimeError, match="other than the default"):
            migrate.downgrade(store.engine, "0005")
        assert store.current_revision() == PROJECTIONS_REVISION
    finally:
        store.close()


def test_0007_object_index_covers_the_source(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'z.db'}")
    try:
        def columns() -> list[str | None]:
            index = next(i for i in sa.inspect(store.engine).get_indexes("events")
                         if i["name"] == "ix_events_object")
            return list(index["column_names"])

        assert columns() == ["kind", "namespace", "name", "source", "seq"]
        migrate.downgrade(store.engine, "0006")
        assert columns() == ["kind", "namespace", "name", "seq"]
        store.upgrade()
        assert columns() == ["kind", "namespace", "name", "source", "seq"]
        assert _diff(store.engine) == []
    finally:
        store.close()


def test_shipped_head_read_from_the_files_is_alembics_head() -> None:
    assert migrate.shipped_head() == migrate.head() is not None


def test_reading_a_database_at_head_never_imports_alembic(tmp_path: Path) -> None:
    """A reading command (export, serve, status) tells a database at head from the
    version table and the migration files alone: Alembic's import and its parse of
    every migration cost each such command about 0.2 s of its start."""
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'z.db'}"
    Store.open(url).close()
    code = ("import sys\nfrom zonegen import store\n"
            f"store.open({url!r}, mode='read').close()\n"
            f"store.open({url!r}, mode='write').close()\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'alembic'))\n")
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "[]"
