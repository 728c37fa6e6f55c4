"""PostgreSQL as a first-class store: the store's contract tests, the runner's and the
audit's store-level tests re-run on a real PostgreSQL server, the migrations from empty,
and every command's output byte-compared with SQLite for the same input.

The server is started by ``tests/postgres.py`` (skipped without PostgreSQL unless
``CI=true``)."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import sqlalchemy as sa

from tests import test_history, test_runner, test_store
from tests.test_history import rollout  # noqa: F401 - fixture of the re-run audit tests
from tests.test_migrations import _diff
from zonegen import migrate
from zonegen.store import Store

pytest_plugins = ["tests.postgres"]  # postgres_server, postgres_url, backend_url

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "zonegen" / "data" / "demo.json"

# --------------------------------------------------------------------------- re-runs

# The store contract (STYLE.md #12), as written for SQLite, on PostgreSQL: the classes
# are collected here again, with this module's ``store`` fixture.


class TestEventLogOnPostgres(test_store.TestEventLog):
    def test_appending_transaction_is_all_or_nothing(self, store: Store) -> None:
        """As on SQLite, except that a rolled-back transaction's sequence numbers stay
        used: a PostgreSQL sequence is not transactional, so numbers can have gaps (a
        reader tails by ``seq >``, never by count). See the report of issue 12."""
        def truncated_input() -> None:
            with store.appending() as appender:
                appender.append([test_store.ev("a", "1")])
                raise RuntimeError("input turned out truncated")

        with pytest.raises(RuntimeError):
            truncated_input()
        assert store.select_events() == []
        with store.appending() as appender:
            appender.append([test_store.ev("a", "1")])
            appender.set_resume_point("w", test_store.SERVICE, "5")
        assert [e.name for e in store.select_events()] == ["a"]
        assert store.resume_point("w", test_store.SERVICE) == "5"

TestVersionsOnPostgres = test_store.TestVersions


def _rerun(module: ModuleType, fixtures: set[str], skip: set[str] = frozenset()  # type: ignore[assignment]
           ) -> dict[str, Callable[..., Any]]:
    """The module's test functions that take one of ``fixtures`` (the ones this module
    overrides with PostgreSQL), to be collected here under ``pg_`` names."""
    out: dict[str, Callable[..., Any]] = {}
    for name, obj in vars(module).items():
        if not name.startswith("test_") or not inspect.isfunction(obj) or name in skip:
            continue
        if fixtures & set(inspect.signature(obj).parameters):
            out[name.replace("test_", "test_pg_", 1)] = obj
    return out


globals().update(_rerun(test_runner, {"db"}))
globals().update(_rerun(test_history, {"store", "rollout"},
                       # reads SQLite's EXPLAIN QUERY PLAN
                       skip={"test_history_query_uses_the_owner_index"}))


@pytest.fixture
def store(postgres_url: str) -> Iterator[Store]:  # noqa: F811 - overrides the SQLite one
    s = Store.open(postgres_url)
    yield s
    s.close()


@pytest.fixture
def db(postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The runner tests' URL, on PostgreSQL. They open stores without closing them
    (harmless on SQLite); psycopg warns about connections collected while open, so the
    stores opened here are closed at the end of the test."""
    opened: list[Store] = []
    real_open = Store.open

    def open_and_remember(url: str = postgres_url, upgrade: bool = True) -> Store:
        s = real_open(url, upgrade)
        opened.append(s)
        return s

    monkeypatch.setattr(Store, "open", open_and_remember)
    yield postgres_url
    for s in opened:
        s.close()


# --------------------------------------------------------------------------- migrations


def test_migrations_from_empty_match_the_metadata_and_round_trip(
        postgres_empty_url: str) -> None:
    store = Store.open(postgres_empty_url, upgrade=False)
    try:
        assert store.current_revision() is None
        store.upgrade()
        assert store.current_revision() == migrate.head()
        assert _diff(store.engine) == []
        migrate.downgrade(store.engine, "base")
        assert set(sa.inspect(store.engine).get_table_names()) <= {"alembic_version"}
        store.upgrade()
        assert _diff(store.engine) == []
    finally:
        store.close()


def test_migrations_from_each_previous_revision(postgres_empty_url: str) -> None:
    store = Store.open(postgres_empty_url, upgrade=False)
    try:
        revisions = [s.revision for s in migrate._scripts().walk_revisions()][::-1]
        for rev in revisions:
            migrate.upgrade(store.engine, rev)
            assert store.current_revision() == rev
        assert _diff(store.engine) == []
    finally:
        store.close()
