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
    return Event(0, T0, "default", etype, kind, ns, name, uid or f"uid-{name}", rv,
                 f'{{"metadata":{{"name":"{name}","resourceVersion":"{rv}"}}}}', "test")


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
        assert [(j.step.from_serial, j.step.to_serial, j.step.added, j.step.removed)
                for j in journal] == [
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


# --------------------------------------------------------------------------- open modes
# (issue #9 §2: never create, migrate or alter a database by accident)

DATA = Path(__file__).parent / "data"
READING = [["export"], ["history", "consul-server.default.svc.cluster.local."],
           ["diff", "1", "2"], ["log"], ["why", "x", "A", "10.0.0.1"], ["db", "current"]]
WRITING = [["ingest", str(DATA / "consul.json")], ["db", "upgrade"], ["project"],
           ["compact", "--keep-versions", "1"]]


def cli(db: str | Path, *args: str) -> tuple[int, str, str]:
    from click.testing import CliRunner

    from cli import main

    url = db if isinstance(db, str) else f"sqlite:///{db}"
    result = CliRunner().invoke(main, ["--db", url, *args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def one_line_error(err: str, *parts: str) -> None:
    assert err.startswith("Error: "), err
    assert err.count("\n") == 1, err
    for part in parts:
        assert part in err, err


def fingerprint(directory: Path) -> dict[str, str]:
    import hashlib

    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.iterdir())}


def service(name: str, rv: str) -> str:
    import json

    return json.dumps({"apiVersion": "v1", "kind": "Service", "metadata": {
        "name": name, "namespace": "default", "uid": f"uid-{name}", "resourceVersion": rv},
        "spec": {"clusterIP": "10.96.0.9", "ports": [{"port": 80, "protocol": "TCP"}]}})


@pytest.mark.parametrize("args", READING, ids=lambda a: a[0] + (a[1] if a[0] == "db" else ""))
def test_reading_a_missing_database_creates_nothing(tmp_path: Path, args: list[str]) -> None:
    path = tmp_path / "typo.db"
    code, _, err = cli(path, *args)
    assert code == 1
    one_line_error(err, str(path), "no such database", "zonegen db upgrade")
    assert list(tmp_path.iterdir()) == []


def test_serve_without_watch_on_a_missing_database_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "typo.db"
    code, _, err = cli(path, "serve", "--listen", "127.0.0.1:0")
    assert code == 1
    one_line_error(err, str(path), "no such database")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args", WRITING, ids=lambda a: " ".join(a[:2]).split("/")[0])
def test_writing_commands_create_the_database(tmp_path: Path, args: list[str]) -> None:
    path = tmp_path / "new.db"
    code, _, err = cli(path, *args)
    assert code == 0, err
    store = Store.open(f"sqlite:///{path}", upgrade=False)
    try:
        from zonegen import migrate

        assert store.current_revision() == migrate.head()
    finally:
        store.close()


@pytest.mark.parametrize("content", [None, "{not json"], ids=["missing", "malformed"])
def test_failed_ingest_creates_no_database(tmp_path: Path, content: str | None) -> None:
    source = tmp_path / "nope.json"
    if content is not None:
        source.write_text(content)
    db = tmp_path / "z.db"
    code, _, err = cli(db, "ingest", str(source))
    assert code == 1
    one_line_error(err, "nope.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == (["nope.json"] if content else [])


def test_failed_ingest_into_an_existing_database_keeps_it(tmp_path: Path) -> None:
    db = tmp_path / "z.db"
    assert cli(db, "ingest", str(DATA / "consul.json"))[0] == 0
    code, _, _ = cli(db, "ingest", str(tmp_path / "nope.json"))
    assert code == 1
    assert cli(db, "log")[1].count("consul-server") == 2


def _backup(tmp_path: Path) -> Path:
    """A database with one projected version and one event projected by nobody."""
    directory = tmp_path / "backup"
    directory.mkdir()
    db = directory / "z.db"
    assert cli(db, "ingest", "--time", "2026-01-01T00:00:00Z", str(DATA / "consul.json"))[0] == 0
    extra = tmp_path / "extra.json"
    extra.write_text(service("late", "900"))
    assert cli(db, "ingest", "--no-project", str(extra))[0] == 0
    return db


def test_read_only_backup_answers_every_reading_command(tmp_path: Path) -> None:
    from tests.conftest import read_only_directory

    db = _backup(tmp_path)
    with read_only_directory(db.parent):
        before = fingerprint(db.parent)
        code, zone, err = cli(db, "export")
        assert code == 0, err
        assert "consul-server-0.consul-server.default.svc" in zone
        assert "late.default.svc" not in zone  # pending, and the database is read-only
        assert "not projected yet" in err
        assert "read-only" in err
        for args in (["history", "consul-server.default.svc.cluster.local."], ["log"],
                     ["db", "current"],
                     ["why", "consul-server.default.svc.cluster.local.", "A", "10.244.0.6"]):
            code, out, err = cli(db, *args)
            assert code == 0, (args, err)
        assert "late" in cli(db, "log")[1]
        code, _, err = cli(db, "ingest", str(DATA / "consul.json"))
        assert code == 1
        one_line_error(err, str(db))
        assert fingerprint(db.parent) == before


def test_read_only_database_file_is_read_not_migrated(tmp_path: Path) -> None:
    import subprocess as sp

    db = _backup(tmp_path)
    before = fingerprint(db.parent)
    if sp.run(["chattr", "+i", str(db)], capture_output=True, check=False).returncode:
        pytest.skip("no chattr +i here")
    try:
        code, zone, err = cli(db, "export")
        assert code == 0, err
        assert "consul-server.default.svc" in zone
    finally:
        sp.run(["chattr", "-i", str(db)], check=True)
    # Its -shm/-wal may come and go; the database itself is unchanged.
    assert fingerprint(db.parent)["z.db"] == before["z.db"]


def test_reading_an_older_schema_says_upgrade_and_changes_nothing(tmp_path: Path) -> None:
    from zonegen import migrate

    db = tmp_path / "z.db"
    store = Store.open(f"sqlite:///{db}")
    migrate.downgrade(store.engine, "0001")
    store.close()
    before = fingerprint(tmp_path)
    for args in (["export"], ["log"]):
        code, _, err = cli(db, *args)
        assert code == 1
        one_line_error(err, str(db), "older", "zonegen db upgrade")
    assert cli(db, "db", "current")[1] == "0001\n"
    assert fingerprint(tmp_path) == before
    assert cli(db, "db", "upgrade")[0] == 0
    assert cli(db, "export")[0] == 0


@pytest.mark.parametrize("args", READING + WRITING + [["watch", "--once"]],
                         ids=lambda a: " ".join(a[:2]).split("/")[0])
def test_another_applications_database_is_refused_and_left_identical(
        tmp_path: Path, args: list[str]) -> None:
    import sqlite3

    db = tmp_path / "app.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
    conn.execute("INSERT INTO invoices VALUES (1, 9.5)")
    conn.commit()
    conn.close()
    before = fingerprint(tmp_path)
    code, _, err = cli(db, *args)
    assert code == 1
    one_line_error(err, str(db), "another application's tables (invoices)")
    assert fingerprint(tmp_path) == before


@pytest.mark.parametrize("args", [["export"], ["ingest", str(DATA / "consul.json")],
                                  ["db", "upgrade"], ["log"]], ids=lambda a: a[0])
def test_an_in_memory_database_is_refused(args: list[str]) -> None:
    code, _, err = cli("sqlite:///:memory:", *args)
    assert code == 1
    one_line_error(err, "in-memory database")


def test_demo_ignores_the_database_option(tmp_path: Path) -> None:
    code, zone, _ = cli("sqlite:///:memory:", "demo")
    assert code == 0
    assert "$ORIGIN cluster.local." in zone


def test_reads_per_source(tmp_path: Path) -> None:
    """What a per-source projection reads: ``select_events``/``iter_latest_events`` with
    ``sources=``; one object name in two sources is two objects."""
    store = Store.open(f"sqlite:///{tmp_path / 'z.db'}")
    try:
        east = [Event(0, T0, "east", e.type, e.kind, e.namespace, e.name, e.uid,
                      e.resource_version, e.object_json, "test")
                for e in (ev("a", "1"), ev("a", "5", MODIFIED))]
        store.append_events([ev("a", "1"), east[0], ev("b", "2"), east[1]])
        assert [(e.seq, e.source) for e in store.select_events(sources=["east"])] == [
            (2, "east"), (4, "east")]
        assert [e.seq for e in store.select_events(gt=1, lte=3, sources=["default"])] == [3]
        assert [(e.source, e.name, e.resource_version)
                for e in store.iter_latest_events(4)] == [
            ("default", "a", "1"), ("default", "b", "2"), ("east", "a", "5")]
        assert [(e.name, e.resource_version)
                for e in store.iter_latest_events(4, sources=["default"])] == [
            ("a", "1"), ("b", "2")]
        assert {k: h.last_seq for k, h in store.heads(source="east").items()} == {
            (SERVICE, "default", "a"): 4}
        assert {k: h.last_seq for k, h in store.heads().items()} == {
            (SERVICE, "default", "a"): 1, (SERVICE, "default", "b"): 3}
    finally:
        store.close()
