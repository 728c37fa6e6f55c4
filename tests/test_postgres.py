"""PostgreSQL as a first-class store: the store's contract tests, the runner's and the
audit's store-level tests re-run on a real PostgreSQL server, the migrations from empty,
and every command's output byte-compared with SQLite for the same input.

The server is started by ``tests/postgres.py`` (skipped without PostgreSQL unless
``CI=true``)."""

from __future__ import annotations

import copy
import inspect
import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event as sa_event

from tests import test_history, test_runner, test_store
from tests.test_history import rollout  # noqa: F401 - fixture of the re-run audit tests
from tests.test_migrations import _diff
from zonegen import migrate
from zonegen.store import PROJECTION, CheckpointMoved, Store

pytest_plugins = ["tests.postgres"]  # postgres_server, postgres_url, backend_url

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "zonegen" / "data" / "demo.json"

# --------------------------------------------------------------------------- re-runs

# The store contract (STYLE.md #12), as written for SQLite, on PostgreSQL: the classes
# are collected here again, with this module's ``store`` fixture.
TestEventLogOnPostgres = test_store.TestEventLog
TestVersionsOnPostgres = test_store.TestVersions


def _rerun(module: ModuleType, fixtures: set[str], skip: frozenset[str] = frozenset()
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
                       skip=frozenset({"test_history_query_uses_the_owner_index"})))


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
    real_open = Store.open.__func__  # type: ignore[attr-defined]

    def open_and_remember(cls: type[Store], url: str = postgres_url,
                          upgrade: bool = True) -> Store:
        s: Store = real_open(cls, url, upgrade)  # a subclass opens as itself
        opened.append(s)
        return s

    monkeypatch.setattr(Store, "open", classmethod(open_and_remember))
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


# --------------------------------------------------------------------------- commands

T1, T2, T3 = "2026-03-01T03:00:00Z", "2026-03-01T03:10:00Z", "2026-03-01T03:20:00Z"


def _scenario_inputs(tmp: Path) -> dict[str, Path]:
    """demo.json, then a rollout (a watch-event stream), then a snapshot without
    old/legacy: modifications, an addition, deletions of both kinds."""
    demo = json.loads(DEMO.read_text())
    items = {(i["kind"], i["metadata"]["namespace"], i["metadata"]["name"]): i
             for i in demo["items"]}
    web = copy.deepcopy(items[("EndpointSlice", "shop", "web-abc12")])
    web["metadata"]["resourceVersion"] = "3002"
    web["endpoints"] = [
        {"addresses": ["10.244.1.5"], "conditions": {"ready": True},
         "targetRef": {"kind": "Pod", "name": "web-5d9c-x1"}},
        {"addresses": ["10.244.1.9"], "conditions": {"ready": True},
         "targetRef": {"kind": "Pod", "name": "web-5d9c-x3"}},
        {"addresses": ["10.244.4.2"], "conditions": {"ready": True},
         "targetRef": {"kind": "Pod", "name": "web-5d9c-x4"}},
    ]
    db4 = copy.deepcopy(items[("EndpointSlice", "shop", "db-v4")])
    db4["metadata"]["resourceVersion"] = "3003"
    db4["endpoints"][0]["addresses"] = ["10.244.2.12"]
    search = items[("Service", "shop", "search")]
    stream = "".join(json.dumps({"type": t, "object": o}) + "\n" for t, o in
                     [("MODIFIED", web), ("MODIFIED", db4), ("DELETED", search)])
    snapshot = {"kind": "List", "items": [
        i for k, i in items.items()
        if k[0] == "Service" and k[1:] not in {("shop", "search"), ("old", "legacy")}]}
    paths = {"demo": DEMO, "rollout": tmp / "rollout.json",
             "services": tmp / "services.json"}
    paths["rollout"].write_text(stream)
    paths["services"].write_text(json.dumps(snapshot))
    return paths


def _commands(inputs: dict[str, Path]) -> list[list[str]]:
    d, r, s = (str(inputs[k]) for k in ("demo", "rollout", "services"))
    return [
        ["ingest", d, "--time", T1],
        ["ingest", d, "--time", T1],  # nothing new
        ["ingest", r, "--time", T2],
        ["ingest", "--snapshot", s, "--time", T3],
        ["export"],
        ["export", "--zone", "10.in-addr.arpa"],
        ["history", "web.shop.svc"],
        ["history", "db.shop.svc", "--json"],
        ["log"],
        ["log", "--json", "--kind", "EndpointSlice"],
        ["why", "web.shop.svc", "A", "10.96.0.10"],
        ["why", "db-0.db.shop.svc", "A", "10.244.2.12", "--json"],
        ["why", "web.shop.svc", "A", "10.9.9.9"],  # not in the zone: an error line
        ["project", "--rebuild"],
        ["compact", "--keep-versions", "2"],
        ["history", "web.shop.svc"],
        ["log", "--last", "4"],
        ["export"],
    ]


def _serial_commands(serials: list[int]) -> list[list[str]]:
    first, last = serials[0], serials[-1]
    return [["export", "--serial", str(first)], ["diff", str(first), str(last)],
            ["diff", T1, T3, "--json"]]


def _run_cli(url: str, args: list[str]) -> tuple[int, str, str]:
    proc = subprocess.run([sys.executable, "cli.py", "--db", url, *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)
    return proc.returncode, proc.stdout, proc.stderr


def _transcript(url: str, where: str, inputs: dict[str, Path]) -> list[tuple[Any, ...]]:
    """Every command's exit code, stdout and stderr, with the database location and
    the compaction's wall-clock time made neutral."""
    out: list[tuple[Any, ...]] = []
    commands = _commands(inputs)
    compact_at = commands.index(["compact", "--keep-versions", "2"])
    serials: list[int] = []
    for i, args in enumerate(commands):
        if i == compact_at:  # before compaction, the past serials are all kept
            for extra in _serial_commands(serials):
                out.append((extra, *_run_cli(url, extra)))
        code, stdout, stderr = _run_cli(url, args)
        if args[0] == "ingest":
            serials += [int(m) for m in re.findall(r"serial (\d+)", stdout)]
        out.append((args, code, stdout, stderr))
    gone = ["export", "--serial", str(serials[0])]  # compacted away: an error line
    out.append((gone, *_run_cli(url, gone)))

    def neutral(text: str) -> str:
        text = text.replace(where, "<db>")
        text = re.sub(r"compacted on \S+", "compacted on <now>", text)
        return re.sub(r" in [0-9.]+s \([0-9,]+ records/s\)", " in <t>", text)

    return [(args, code, neutral(so), neutral(se)) for args, code, so, se in out]


def test_every_command_prints_the_same_on_sqlite_and_postgresql(
        tmp_path: Path, postgres_server: Any) -> None:
    inputs = _scenario_inputs(tmp_path)
    sqlite_path = tmp_path / "z.db"
    name = postgres_server.create_database(collation="en-US")
    pg_url = postgres_server.url(name)
    try:  # the two transcripts side by side: each is a few dozen CLI start-ups
        with ThreadPoolExecutor(2) as pool:
            sqlite_run = pool.submit(_transcript, f"sqlite:///{sqlite_path}",
                                     str(sqlite_path), inputs)
            pg_run = pool.submit(_transcript, pg_url,
                                 pg_url.replace("postgresql+psycopg://", ""), inputs)
            on_sqlite, on_pg = sqlite_run.result(), pg_run.result()
    finally:
        postgres_server.drop_database(name)
    assert [t[0] for t in on_sqlite] == [t[0] for t in on_pg]
    for a, b in zip(on_sqlite, on_pg, strict=True):
        assert a == b, f"zonegen {' '.join(a[0])} differs on PostgreSQL"
    # The scenario exercises what it claims: versions, a compaction, a refused why.
    failed = [(args, err) for args, code, _, err in on_sqlite if code != 0]
    assert [args for args, _ in failed] == [["why", "web.shop.svc", "A", "10.9.9.9"],
                                            on_sqlite[-1][0]], failed
    assert "history begins at serial" in failed[-1][1]
    # compaction changed no answer about the present
    assert len({t[2] for t in on_sqlite if t[0] == ["export"]}) == 1


# --------------------------------------------------------------------------- concurrency


class Pause:
    """Holds one thread inside its transaction right after a statement starting with
    ``prefix`` ran on ``store``'s engine, until the test releases it: a slow writer,
    made deterministic."""

    def __init__(self, store: Store, prefix: str) -> None:
        self.reached = threading.Event()
        self.release = threading.Event()
        self._armed = True

        @sa_event.listens_for(store.engine, "after_cursor_execute")
        def _pause(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            if self._armed and statement.lstrip().startswith(prefix):
                self._armed = False
                self.reached.set()
                assert self.release.wait(60), "the test never released the paused writer"


def _waiting_on_a_lock(server: Any, url: str) -> bool:
    with server.admin() as conn:
        row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s "
                           "AND wait_event_type = 'Lock'", (url.rsplit("/", 1)[1],)).fetchone()
        return bool(row and row[0])


def _in_thread(target: Callable[[], object]) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            target()
        except BaseException as e:  # noqa: BLE001 - surfaced by the test
            errors.append(e)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, errors


@pytest.mark.parametrize("path", ["append_events", "appending"])
def test_a_reader_tailing_by_seq_never_skips_a_slow_writers_event(
        postgres_server: Any, postgres_url: str, path: str) -> None:
    """Writer A gets its sequence number, then stalls before committing; writer B
    appends after it. Without ordering, B commits seq n+1 first, a reader tailing by
    ``seq >`` moves its mark past n, and A's event n, committed later, is never read.
    With the event log locked for the append transaction, B waits for A."""
    slow, fast, reader = (Store.open(postgres_url) for _ in range(3))
    try:
        pause = Pause(slow, "INSERT INTO events")

        def append(store: Store, name: str) -> None:
            if path == "append_events":
                store.append_events([test_store.ev(name, "1")])
            else:
                with store.appending() as appender:
                    appender.heads()
                    appender.append([test_store.ev(name, "1")])

        a, a_errors = _in_thread(lambda: append(slow, "a"))
        assert pause.reached.wait(60)
        b, b_errors = _in_thread(lambda: append(fast, "b"))
        deadline = time.monotonic() + 60
        while b.is_alive() and not _waiting_on_a_lock(postgres_server, postgres_url):
            assert time.monotonic() < deadline, "writer B neither finished nor waited"
            b.join(0.01)
        seen = {e.seq for e in reader.select_events()}
        mark = max(seen, default=0)
        pause.release.set()
        a.join(60)
        b.join(60)
        assert not a.is_alive()
        assert not b.is_alive()
        assert a_errors == []
        assert b_errors == []
        everything = reader.select_events()
        assert sorted(e.name for e in everything) == ["a", "b"]
        skipped = [(e.seq, e.name) for e in everything if e.seq <= mark and e.seq not in seen]
        assert skipped == [], f"the reader's mark {mark} passed events it never saw"
        by_name = {e.name: e.seq for e in everything}
        assert by_name["a"] < by_name["b"]  # sequence order is commit order
    finally:
        for s in (slow, fast, reader):
            s.close()


def _race_for_the_checkpoint(slow: Store, slow_move: tuple[str, int, int], fast: Store,
                             fast_move: tuple[str, int, int]) -> None:
    """``slow`` reads the checkpoint and stalls; ``fast`` moves it and commits (serial 3);
    ``slow``'s move (serial 2) must then fail with CheckpointMoved, nothing else."""
    pause = Pause(slow, "SELECT trackings.last_seq")
    outcome: list[object] = []

    def slow_commit() -> None:
        try:
            outcome.append(slow.commit_version(slow_move, serial=2))
        except CheckpointMoved as e:
            outcome.append(e)

    a, a_errors = _in_thread(slow_commit)
    assert pause.reached.wait(60)
    assert fast.commit_version(fast_move, serial=3) is not None
    pause.release.set()
    a.join(60)
    assert a_errors == []
    assert len(outcome) == 1
    assert isinstance(outcome[0], CheckpointMoved)


def test_two_projectors_cannot_both_move_the_checkpoint(postgres_url: str) -> None:
    """Projector A reads the checkpoint (5), stalls; projector B moves it 5 -> 8 and
    commits; A's move 5 -> 7 must fail (compare-and-set), not publish the same events
    a second time."""
    first, slow, fast = (Store.open(postgres_url) for _ in range(3))
    try:
        first.commit_version((PROJECTION, 0, 5), serial=1)
        _race_for_the_checkpoint(slow, (PROJECTION, 5, 7), fast, (PROJECTION, 5, 8))
        assert fast.max_tracking_seq() == 8
        assert [v.serial for v in fast.versions()] == [1, 3]
    finally:
        for s in (first, slow, fast):
            s.close()


def test_two_first_projectors_cannot_both_create_the_checkpoint(postgres_url: str) -> None:
    """As above on an empty log: both see no checkpoint; the second insert must be a
    CheckpointMoved, not a raw integrity error."""
    slow, fast = (Store.open(postgres_url) for _ in range(2))
    try:
        _race_for_the_checkpoint(slow, (PROJECTION, 0, 7), fast, (PROJECTION, 0, 8))
        assert [v.serial for v in fast.versions()] == [3]
    finally:
        for s in (slow, fast):
            s.close()


def test_a_failed_ingest_leaves_the_same_sequence_numbers(tmp_path: Path,
                                                          postgres_url: str) -> None:
    """A rolled-back ingest uses up no sequence numbers on PostgreSQL either (its
    sequence is not transactional; the store numbers events itself): later output
    is byte-identical. More objects than one append batch, then input cut short, so
    the ingest rolls back after its first batch was appended."""
    items = [{"kind": "Service", "metadata": {"name": f"s{i}", "namespace": "n",
                                              "uid": f"u{i}", "resourceVersion": "1"},
              "spec": {"clusterIP": "None", "ports": [{"name": "p", "port": 80}]}}
             for i in range(1200)]
    truncated = tmp_path / "cut.json"
    truncated.write_text(json.dumps({"kind": "List", "items": items})[:-40])
    outputs = []
    for url in (f"sqlite:///{tmp_path / 'z.db'}", postgres_url):
        code, _, err = _run_cli(url, ["ingest", str(truncated), "--time", T1])
        assert code != 0, err
        assert _run_cli(url, ["ingest", str(DEMO), "--time", T2])[0] == 0
        outputs.append(_run_cli(url, ["log", "--last", "2"])[1])
    assert outputs[0] == outputs[1]


def test_unreachable_or_missing_database_is_one_line_without_the_password(
        postgres_server: Any) -> None:
    missing = postgres_server.url("no_such_db").replace("postgres@", "postgres:s3cret@")
    for url, why in [("postgresql+psycopg://postgres:s3cret@127.0.0.1:1/x", "refused"),
                     (missing, "does not exist")]:
        code, out, err = _run_cli(url, ["export"])
        assert code == 1
        assert out == ""
        assert len(err.splitlines()) == 1, err
        assert err.startswith("Error: postgresql+psycopg://postgres:***@")
        assert why in err
        assert "s3cret" not in err


def test_a_select_only_role_reads_without_projecting(tmp_path: Path, postgres_url: str,
                                                     postgres_server: Any) -> None:
    """A role that may only read (an auditor) gets the newest stored version and a
    warning about pending events, never a permission error: reading commands on
    PostgreSQL never write when they may not, as on a read-only SQLite file."""
    from zonegen.ingest import ingest_files

    st = Store.open(postgres_url)
    try:
        ingest_files(st, [str(DEMO)])
        before = _run_cli(postgres_url, ["export"])
        changed = json.loads(DEMO.read_text())
        changed["items"] = changed["items"][:1]
        changed["items"][0]["metadata"]["resourceVersion"] = "999999"
        pending = tmp_path / "pending.json"
        pending.write_text(json.dumps(changed))
        ingest_files(st, [str(pending)], project=False)
        pending_seq = st.max_event_seq()
        assert st.max_tracking_seq() < pending_seq
    finally:
        st.close()
    database = sa.make_url(postgres_url).database
    with postgres_server.admin(database) as conn:
        conn.execute("DROP ROLE IF EXISTS auditor")
        conn.execute("CREATE ROLE auditor LOGIN")
        conn.execute("GRANT SELECT ON ALL TABLES IN SCHEMA public TO auditor")
    auditor = postgres_url.replace("postgres@", "auditor@")
    try:
        code, out, err = _run_cli(auditor, ["export"])
        assert (code, out) == (0, before[1]), err
        assert "not projected yet" in err
        assert "read-only" in err
        st = Store.open(postgres_url)
        try:
            assert st.max_tracking_seq() < pending_seq  # nothing was projected
        finally:
            st.close()
    finally:
        with postgres_server.admin(database) as conn:
            conn.execute("REVOKE ALL ON ALL TABLES IN SCHEMA public FROM auditor")
            conn.execute("DROP OWNED BY auditor")
            conn.execute("DROP ROLE auditor")


RACE = """
import sys, time
from zonegen.store import Store
store = Store.open(sys.argv[1], upgrade=False)
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))  # all start migrating together
store.upgrade()
store.close()
"""


def test_replicas_starting_together_on_an_empty_database_migrate_once(
        postgres_empty_url: str) -> None:
    """Several writers (``serve --watch`` replicas) migrating one empty database at
    the same moment: one migrates, the others wait and find it at head; none fails."""
    at = str(time.time() + 4)
    procs = [subprocess.Popen([sys.executable, "-c", RACE, postgres_empty_url, at],
                              cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(4)]
    results = [(p.wait(120), p.communicate()[1]) for p in procs]
    assert [code for code, _ in results] == [0] * 4, results
    store = Store.open(postgres_empty_url, upgrade=False)
    try:
        assert store.current_revision() == migrate.head()
    finally:
        store.close()
