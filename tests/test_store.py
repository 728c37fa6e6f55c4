"""Store contract tests, run against every backend (STYLE.md #12)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event as sa_event

from tests.conftest import read_only_directory
from zonegen.errors import StoreError, UnknownSerial
from zonegen.model import ADDED, DELETED, MODIFIED, SERVICE, A, Event, Record, RecordChange
from zonegen.store import PROJECTION, Store

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def ev(name: str, rv: str, etype: str = ADDED, kind: str = SERVICE, ns: str = "default",
       uid: str | None = None) -> Event:
    return Event(0, T0, "test", etype, kind, ns, name, uid or f"uid-{name}", rv,
                 f'{{"metadata":{{"name":"{name}","resourceVersion":"{rv}"}}}}')


@pytest.fixture(params=["memory", "file"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    url = "sqlite://" if request.param == "memory" else f"sqlite:///{tmp_path / 'z.db'}"
    s = Store.open(url)
    yield s
    s.close()


class TestEventLog:
    def test_append_assigns_sequence_numbers_in_order(self, store: Store) -> None:
        result = store.append_events([ev("a", "1"), ev("b", "1"), ev("a", "2", MODIFIED)])
        assert result.stored == (1, 2, 3)
        assert result.duplicates == 0
        assert [(e.seq, e.name, e.resource_version, e.type) for e in store.select_events()] == [
            (1, "a", "1", ADDED), (2, "b", "1", ADDED), (3, "a", "2", MODIFIED)]
        assert store.max_event_seq() == 3

    def test_reappending_the_same_object_version_is_a_no_op(self, store: Store) -> None:
        store.append_events([ev("a", "1")])
        again = store.append_events([ev("a", "1"), ev("a", "1"), ev("c", "1")])
        assert again.stored == (2,)
        assert again.duplicates == 2
        assert store.max_event_seq() == 2

    def test_resume_point_commits_with_its_events(self, store: Store) -> None:
        store.append_events([ev("a", "1")], resume=[("w", SERVICE, "10")])
        assert store.resume_point("w", SERVICE) == "10"
        bad = Event(0, T0, "test", ADDED, SERVICE, "default", "b", "uid-b", "2",
                    None)  # type: ignore[arg-type]  # NOT NULL violation mid-transaction
        with pytest.raises(StoreError):
            store.append_events([ev("c", "1"), bad], resume=[("w", SERVICE, "20")])
        assert store.resume_point("w", SERVICE) == "10"
        assert [e.name for e in store.select_events()] == ["a"]

    def test_heads_follow_the_newest_event(self, store: Store) -> None:
        store.append_events([ev("a", "1"), ev("b", "1"), ev("a", "2", MODIFIED),
                             ev("b", "1", DELETED)])
        heads = store.heads()
        assert heads[(SERVICE, "default", "a")].resource_version == "2"
        assert heads[(SERVICE, "default", "a")].last_seq == 3
        assert heads[(SERVICE, "default", "b")].deleted is True

    def test_latest_events_reflect_a_past_point(self, store: Store) -> None:
        store.append_events([ev("a", "1"), ev("b", "1"), ev("a", "2", MODIFIED),
                             ev("b", "1", DELETED)])
        assert [(e.name, e.resource_version) for e in store.iter_latest_events(2)] == [
            ("a", "1"), ("b", "1")]
        assert [(e.name, e.resource_version) for e in store.iter_latest_events(4)] == [
            ("a", "2")]

    def test_appending_transaction_is_all_or_nothing(self, store: Store) -> None:
        def truncated_input() -> None:
            with store.appending() as appender:
                appender.append([ev("a", "1")])
                raise RuntimeError("input turned out truncated")

        with pytest.raises(RuntimeError):
            truncated_input()
        assert store.max_event_seq() == 0
        with store.appending() as appender:
            appender.append([ev("a", "1")])
        assert store.max_event_seq() == 1


class TestVersions:
    def test_commit_version_moves_tracking_and_stores_changes(self, store: Store) -> None:
        r1, r2 = Record("a.default.svc", A, ("10.0.0.1",)), Record("b.default.svc", A,
                                                                    ("10.0.0.2",))
        v1 = store.commit_version((PROJECTION, 0, 5), serial=100, created_at=T0,
                                  changes=[RecordChange(True, r1, 3),
                                           RecordChange(True, r2, 5)])
        assert v1 is not None
        v2 = store.commit_version((PROJECTION, 5, 7), serial=101, created_at=T0,
                                  changes=[RecordChange(False, r1, 7)])
        assert v2 is not None
        assert store.max_tracking_seq() == 7
        assert store.latest_version() == v2
        assert store.find_version(100).version_id == v1.version_id
        assert store.records_at(v1.version_id) == {r1, r2}
        assert store.records_at(v2.version_id) == {r2}
        journal = store.journal(v1.version_id)
        assert [(j.previous_serial, j.version.serial, j.added, j.removed) for j in journal] == [
            (100, 101, (), (r1,))]

    def test_tracking_without_version(self, store: Store) -> None:
        assert store.commit_version((PROJECTION, 0, 9)) is None
        assert store.max_tracking_seq() == 9
        assert store.latest_version() is None

    def test_checkpoint_is_compare_and_set(self, store: Store) -> None:
        store.commit_version((PROJECTION, 0, 5), serial=1)
        with pytest.raises(StoreError, match="checkpoint moved"):
            store.commit_version((PROJECTION, 0, 6), serial=2)
        assert store.max_tracking_seq() == 5
        assert store.latest_version() is not None
        assert store.latest_version().serial == 1  # type: ignore[union-attr]

    def test_unknown_serial(self, store: Store) -> None:
        assert store.get_version(42) is None
        with pytest.raises(UnknownSerial, match="42"):
            store.find_version(42)


class TestFailures:
    def test_file_that_is_not_sqlite(self, tmp_path: Path) -> None:
        bogus = tmp_path / "notes.db"
        bogus.write_text("these are my notes, not a database\n" * 50)
        with pytest.raises(StoreError, match="notes.db.*not a SQLite database"):
            Store.open(f"sqlite:///{bogus}")
        assert bogus.read_text().startswith("these are my notes")

    def test_missing_directory(self, tmp_path: Path) -> None:
        with pytest.raises(StoreError, match="does not exist"):
            Store.open(f"sqlite:///{tmp_path / 'nope' / 'z.db'}")

    def test_read_only_location(self, tmp_path: Path) -> None:
        ro = tmp_path / "ro"
        ro.mkdir()
        existing = Store.open(f"sqlite:///{ro / 'old.db'}")
        existing.append_events([ev("a", "1")])
        existing.close()
        with read_only_directory(ro):
            with pytest.raises(StoreError, match=r"new\.db.*(unwritable|read-only)"):
                Store.open(f"sqlite:///{ro / 'new.db'}")
            assert not (ro / "new.db").exists()
        # Nothing already stored was lost.
        s = Store.open(f"sqlite:///{ro / 'old.db'}")
        assert [e.name for e in s.select_events()] == ["a"]
        s.close()

    def test_read_only_database_file(self, tmp_path: Path) -> None:
        path = tmp_path / "z.db"
        s = Store.open(f"sqlite:///{path}")
        s.append_events([ev("a", "1")])
        s.close()
        ro = Store.open(f"sqlite:///file:{path}?mode=ro&uri=true", upgrade=False)
        try:
            with pytest.raises(StoreError, match="z.db"):
                ro.append_events([ev("b", "1")])
        finally:
            ro.close()
        # Nothing already stored was lost.
        s = Store.open(f"sqlite:///{path}")
        assert [e.name for e in s.select_events()] == ["a"]
        s.close()

    def test_bad_url(self) -> None:
        with pytest.raises(StoreError, match="not valid"):
            Store.open("::nonsense::")


def test_concurrent_appends_store_each_event_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'z.db'}"
    Store.open(url).close()
    errors: list[BaseException] = []

    def writer(offset: int) -> None:
        s = Store.open(url)
        try:
            for i in range(40):
                # Both threads append overlapping objects: each exactly once in the end.
                s.append_events([ev(f"o{(i + offset) % 50}", "1"), ev(f"t{offset}-{i}", "1")])
        except BaseException as e:  # noqa: BLE001 - surfaced below
            errors.append(e)
        finally:
            s.close()

    threads = [threading.Thread(target=writer, args=(k * 10,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    s = Store.open(url)
    names = [e.name for e in s.select_events()]
    s.close()
    assert len(names) == len(set(names))
    assert len([n for n in names if n.startswith("t")]) == 120
    assert len([n for n in names if n.startswith("o")]) == 50


KILL_WRITER = """
import sys
from datetime import UTC, datetime
from zonegen.model import Event
from zonegen.store import Store
s = Store.open(sys.argv[1])
i = s.max_event_seq()
print("ready", flush=True)
while True:
    i += 1
    batch = [Event(0, datetime.now(UTC), "w", "ADDED", "Service", "ns", f"s{i}-{k}",
                   f"u{i}-{k}", str(i), "{}") for k in range(20)]
    s.append_events(batch, resume=[("w", "Service", str(i))])
"""


def test_kill_9_between_statements_loses_and_doubles_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'z.db'}"
    for _ in range(3):
        proc = subprocess.Popen([sys.executable, "-c", KILL_WRITER, url],
                                stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready"
            time.sleep(0.3)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        s = Store.open(url)
        stored = s.select_events()
        resume = s.resume_point("w", SERVICE)
        s.close()
        # Every batch is whole, and the resume point names exactly the last one stored.
        assert len(stored) % 20 == 0
        assert resume == stored[-1].resource_version
        assert len({e.uid for e in stored}) == len(stored)


def test_full_disk_is_one_line_and_loses_nothing(tmp_path: Path) -> None:
    """SQLite's max_page_count makes the database file 'full' exactly as a full disk
    does (SQLITE_FULL), without needing a small filesystem."""
    path = tmp_path / "z.db"
    s = Store.open(f"sqlite:///{path}")
    s.append_events([ev("kept", "1")])
    s.close()
    s = Store.open(f"sqlite:///{path}")
    pages = os.path.getsize(path) // 4096 + 2

    @sa_event.listens_for(s.engine, "connect")
    def _cap(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.execute(f"PRAGMA max_page_count={pages}")

    s.engine.dispose()  # reconnect with the cap
    big = [Event(0, T0, "test", ADDED, SERVICE, "default", f"s{i}", f"u{i}", "1", "x" * 5000)
           for i in range(200)]
    with pytest.raises(StoreError, match=r"z\.db: appending events failed: disk is full"):
        s.append_events(big, resume=[("w", SERVICE, "99")])
    assert [e.name for e in s.select_events()] == ["kept"]
    assert s.resume_point("w", SERVICE) is None
    s.close()
