"""``serve`` on PostgreSQL: the serve tests that read a store (answers, AXFR, IXFR from
the journal, new versions picked up by polling, TSIG, NOTIFY) re-run with the store on a
real PostgreSQL server (tests/postgres.py) instead of a SQLite file."""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests import test_serve
from zonegen.ingest import ingest_files
from zonegen.store import Store

pytest_plugins = ["tests.postgres"]

# test_serve's own fixtures, collected here so they take this module's ``store``.
start = test_serve.start
server = test_serve.server


def _rerun() -> dict[str, Callable[..., Any]]:
    out: dict[str, Callable[..., Any]] = {}
    for name, obj in vars(test_serve).items():
        if name.startswith("test_") and inspect.isfunction(obj) and \
                {"store", "server", "start"} & set(inspect.signature(obj).parameters):
            out[name.replace("test_", "test_pg_", 1)] = obj
    return out


globals().update(_rerun())


@pytest.fixture
def store(postgres_url: str) -> Iterator[Store]:
    st = Store.open(postgres_url)
    ingest_files(st, [str(test_serve.DEMO)])
    yield st
    # ServerThread.stop() can return while a refresh (project_pending) still runs in
    # serve's executor with a connection checked out; closing the engine under it
    # leaves psycopg a connection to collect open (a ResourceWarning; silent on
    # SQLite). Let it finish first. (A serve shutdown issue, reported with issue 12.)
    pool: Any = st.engine.pool
    deadline = time.monotonic() + 30
    while pool.checkedout() and time.monotonic() < deadline:
        time.sleep(0.01)
    st.close()
