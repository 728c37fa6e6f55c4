"""LISTEN/NOTIFY wake-ups for new versions, against a real PostgreSQL server."""

from __future__ import annotations

import pytest

from zonegen.errors import StoreError
from zonegen.pgnotify import VersionListener, Wakeup, libpq_url, notify_new_version
from zonegen.store import Store

pytest_plugins = ["tests.postgres"]


def test_a_committed_version_wakes_the_listener(postgres_url: str) -> None:
    store = Store.open(postgres_url)
    try:
        with VersionListener(postgres_url) as listener:
            assert listener.wait(0.01) == []  # nothing announced: the timeout ends it
            with store.engine.begin() as conn:
                notify_new_version(conn, 7, 2026010101)
            assert listener.wait(60) == [Wakeup(7, 2026010101)]
    finally:
        store.close()


def test_a_rolled_back_version_is_never_announced(postgres_url: str) -> None:
    store = Store.open(postgres_url)
    try:
        with VersionListener(postgres_url) as listener:
            with store.engine.connect() as conn, conn.begin() as tx:
                notify_new_version(conn, 8, 8)
                tx.rollback()
            with store.engine.begin() as conn:
                notify_new_version(conn, 9, 9)
                notify_new_version(conn, 10, 10)
            # Only the committed ones, in commit order, all in one wake-up.
            assert listener.wait(60) == [Wakeup(9, 9), Wakeup(10, 10)]
    finally:
        store.close()


def test_notify_is_a_no_op_on_sqlite() -> None:
    store = Store.open("sqlite://")
    try:
        with store.engine.begin() as conn:
            notify_new_version(conn, 1, 1)
    finally:
        store.close()


def test_an_unreachable_server_is_one_line(postgres_server: object) -> None:
    url = "postgresql+psycopg://postgres@127.0.0.1:1/nowhere"
    with pytest.raises(StoreError, match=r"^postgresql\+psycopg://postgres@127.0.0.1:1/"
                                         r"nowhere: cannot listen for new versions: "):
        VersionListener(url)


def test_the_password_reaches_libpq() -> None:
    assert libpq_url("postgresql+psycopg://zg:s3cret@db.internal:5433/zonegen") == \
        "postgresql://zg:s3cret@db.internal:5433/zonegen"
