"""The command line, end to end: demo, ingest, project, export, db, and bad input."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import dns.zone
import pytest

from tests.helpers import DATA, ROOT, cli, zonegen

SEED_BARE_SRV = {
    f"0 4 {port} consul-server-{i}.consul-server.default.svc.cluster.local."
    for i in range(3) for port in (8300, 8301, 8302, 8500, 8600)
}


def run(*args: str, db: Path | None = None, input: str | None = None) -> tuple[int, str, str]:
    """:func:`tests.helpers.cli` as (exit code, stdout, stderr)."""
    result = cli(*args, db=db, input=input)
    return result.exit_code, result.stdout, result.stderr


def checkzone(zone: str, text: str, tmp_path: Path) -> str:
    path = tmp_path / f"{zone}.checked"
    path.write_text(text)
    proc = subprocess.run(["named-checkzone", zone, str(path)], capture_output=True,
                          text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


needs_bind = pytest.mark.skipif(shutil.which("named-checkzone") is None,
                                reason="named-checkzone (bind9-utils) is not installed")


@needs_bind
def test_demo_prints_a_zone_bind_loads_with_the_seed_srv_set(tmp_path: Path) -> None:
    code, out, _ = run("demo")
    assert code == 0
    assert "loaded serial 1767225600" in checkzone("cluster.local", out, tmp_path)
    zone = dns.zone.from_text(out, "cluster.local.", relativize=False)
    srv = zone.get_rdataset("consul-server.default.svc.cluster.local.", "SRV")
    assert srv is not None
    assert {r.to_text() for r in srv} == SEED_BARE_SRV
    # The demo is deterministic: same bytes every run.
    assert run("demo")[1] == out


@needs_bind
@pytest.mark.parametrize("zone", ["k8s.example.org", "10.in-addr.arpa", "ip6.arpa"])
def test_demo_in_other_zones(tmp_path: Path, zone: str) -> None:
    code, out, _ = run("demo", "--zone", zone)
    assert code == 0
    checkzone(zone, out, tmp_path)
    if zone == "10.in-addr.arpa":
        assert ("6.0.244 IN PTR consul-server-0.consul-server.default.svc.cluster.local.\n"
                in out)
        assert "10.0.96 IN PTR web.shop.svc.cluster.local.\n" in out
    if zone == "ip6.arpa":
        assert " IN PTR db-0.db.shop.svc.cluster.local.\n" in out


@needs_bind
def test_ingest_then_export_to_a_file(tmp_path: Path) -> None:
    db = tmp_path / "z.db"
    code, out, _ = run("ingest", "--time", "2026-03-01T00:00:00Z", str(DATA / "consul.json"),
                       db=db)
    assert code == 0
    assert out == "2 new events; 0 duplicates skipped; serial 1772323200\n"
    zone_file = tmp_path / "out" / "cluster.local.zone"
    zone_file.parent.mkdir()
    code, out, err = run("export", "-o", str(zone_file), db=db)
    assert code == 0
    assert out == ""
    assert err.startswith("cluster.local. serial 1772323200: ")
    checkzone("cluster.local", zone_file.read_text(), tmp_path)
    code, again, _ = run("export", db=db)
    assert again == zone_file.read_text()
    assert [p.name for p in zone_file.parent.iterdir()] == ["cluster.local.zone"]


def test_project_and_rebuild(tmp_path: Path) -> None:
    db = tmp_path / "z.db"
    run("ingest", "--no-project", str(DATA / "consul.json"), db=db)
    code, out, _ = run("project", db=db)
    assert code == 0
    assert out.startswith("serial ")
    assert "(1 new zone versions)" in out
    code, out, _ = run("project", db=db)
    assert "no DNS-visible change" in out
    code, out, _ = run("project", "--rebuild", db=db)
    assert code == 0
    assert "replayed 2 events into 49 records" in out
    assert "identical" in out


def test_db_commands(tmp_path: Path) -> None:
    db = tmp_path / "z.db"
    assert run("db", "current", db=db)[0] == 1  # reading never creates (issue #9 §2)
    assert not db.exists()
    code, out, _ = run("db", "upgrade", db=db)
    assert code == 0
    assert out.endswith("schema at revision " + run("db", "current", db=db)[1].strip() + "\n")


def test_ingest_from_stdin(tmp_path: Path) -> None:
    db = tmp_path / "z.db"
    code, out, _ = run("ingest", "-", db=db, input=(DATA / "consul.json").read_text())
    assert code == 0
    assert out.startswith("2 new events")


@pytest.mark.parametrize(("args", "message"), [
    (["ingest", "missing.json"], "Error: missing.json: does not exist"),
    (["export", "--zone", "bad..zone"], "Error: zone 'bad..zone' is not a valid domain name"),
    (["export", "--serial", "12345"], "Error: serial 12345 was never published"),
    (["export", "--at", "yesterday"], "Error: time 'yesterday' is not ISO 8601"),
    (["export", "--at", "0001-01-01T00:00+01:00"], "Error: time '0001-01-01T00:00+01:00' "
                                                  "is out of range"),
    (["export", "--ns", "ns1.example.net=not-an-ip"], "Error: "),
])
def test_errors_are_one_line_with_exit_code_1(tmp_path: Path, args: list[str],
                                             message: str) -> None:
    run("db", "upgrade", db=tmp_path / "z.db")  # reading commands never create one
    code, out, err = run(*args, db=tmp_path / "z.db")
    assert code == 1
    assert err.startswith(message)
    assert err.count("\n") == 1
    assert "Traceback" not in err


def test_malformed_input_is_one_line_and_stores_nothing(tmp_path: Path) -> None:
    db = tmp_path / "z.db"
    bad = tmp_path / "bad.json"
    fine = json.loads((DATA / "consul.json").read_text())["items"][0]
    bad.write_text('{"kind": "List", "items": [' + json.dumps(fine) + ", {")
    code, _, err = run("ingest", str(bad), db=db)
    assert code == 1
    assert err.startswith(f"Error: {bad} at character")
    assert err.count("\n") == 1
    code, out, _ = run("project", "--rebuild", db=db)
    assert "replayed 0 events" in out


def test_database_that_is_not_sqlite(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not a database " * 100)
    code, _, err = run("export", db=notes)
    assert code == 1
    assert err == f"Error: {notes}: opening failed: not a SQLite database\n"
    assert notes.read_text().startswith("not a database")


def test_console_script_module_runs_without_traceback(tmp_path: Path) -> None:
    """The real process, as an operator runs it: one line on stderr, exit 1."""
    proc = zonegen(["ingest", "/nonexistent"], db=tmp_path / "z.db")
    assert proc.returncode == 1
    assert proc.stderr == "Error: /nonexistent: does not exist\n"


def test_database_from_a_newer_zonegen_is_one_line(tmp_path: Path) -> None:
    db = tmp_path / "z.db"
    assert run("db", "upgrade", db=db)[0] == 0
    import sqlite3
    with contextlib.closing(sqlite3.connect(db)) as conn, conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999_future'")
    code, _, err = run("export", db=db)
    assert code == 1
    assert err.startswith(f"Error: {db}: database schema is at revision '9999_future'")
    assert err.count("\n") == 1


# --------------------------------------------------------------------------- stdout


@pytest.fixture
def consul_db(tmp_path: Path) -> Path:
    db = tmp_path / "z.db"
    assert run("ingest", str(DATA / "consul.json"), db=db)[0] == 0
    return db


OUTPUT_COMMANDS = [["export"], ["log"], ["history", "consul-server.default.svc"], ["demo"]]


def assert_stdout_error(proc: subprocess.CompletedProcess[str], reason: str) -> None:
    """One line naming standard output, exit 1, and neither a traceback nor Python's
    "Exception ignored" note from the interpreter's own flush at exit."""
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr == f"Error: cannot write to standard output: {reason}\n"


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full")
@pytest.mark.parametrize("args", OUTPUT_COMMANDS)
def test_full_stdout_is_one_line_and_exit_1(consul_db: Path, args: list[str]) -> None:
    with open("/dev/full", "w") as full:
        proc = zonegen(args, db=consul_db, stdout=full)
    assert_stdout_error(proc, "No space left on device")


@pytest.mark.parametrize("args", OUTPUT_COMMANDS)
def test_closed_stdout_pipe_is_one_line_and_exit_1(consul_db: Path, args: list[str]) -> None:
    """`zonegen log | head -1` once head has left: the reader is gone before the first
    write, so the write fails every time (no race with the reader)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = zonegen(args, db=consul_db, stdout=write_end)
    finally:
        os.close(write_end)
    assert_stdout_error(proc, "Broken pipe")


@pytest.mark.parametrize("args", OUTPUT_COMMANDS)
def test_stdout_closed_at_start_is_one_line_and_exit_1(consul_db: Path,
                                                      args: list[str]) -> None:
    """`zonegen log >&-`: Python starts with sys.stdout None, and click would print into
    the void (exit 0, nothing written) or the flush would raise AttributeError."""
    proc = subprocess.run(["sh", "-c", 'exec "$@" >&-', "sh", sys.executable,
                           str(ROOT / "cli.py"), *args], cwd=ROOT, capture_output=True,
                          text=True, env={**os.environ, "ZONEGEN_DB": f"sqlite:///{consul_db}"},
                          timeout=120, check=False)
    assert_stdout_error(proc, "it is closed")


# --------------------------------------------------------------------------- options


def test_log_last_beyond_any_count_is_a_usage_error(consul_db: Path) -> None:
    proc = zonegen(["log", "--last", "99999999999999999999999"], db=consul_db)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.splitlines()[-1] == (
        "Error: Invalid value for '--last': 99999999999999999999999 is not in the range "
        "x<=9223372036854775807.")


def test_export_serial_and_at_together_is_a_usage_error(consul_db: Path) -> None:
    code, out, err = run("export", "--serial", "1772323200", "--at", "2026-03-01", db=consul_db)
    assert code == 2
    assert out == ""
    assert err.splitlines()[-1] == \
        "Error: --serial and --at both pick a version; give one of them"


def test_reverse_zone_that_names_no_prefix_is_refused(tmp_path: Path) -> None:
    code, out, err = run("demo", "--zone", "300.in-addr.arpa")
    assert code == 1
    assert out == ""
    assert err == ("Error: reverse zone 300.in-addr.arpa. is not a valid reverse zone: "
                   "label '300' is not a decimal octet 0-255\n")


def test_ns_with_a_dot_is_absolute_and_repeats_give_one_ns() -> None:
    """README "Names on the command line": ``--ns ns1.example.org`` is that host (it was
    published as ``ns1.example.org.cluster.local.``); repeating it adds no second NS."""
    code, out, _ = run("demo", "--ns", "ns1.example.org", "--ns", "NS1.example.org.",
                       "--ns", "ns1.example.org", "--hostmaster", "admin@example.org")
    assert code == 0
    zone = dns.zone.from_text(out, "cluster.local.", relativize=False)
    ns = zone.get_rdataset("cluster.local.", "NS")
    assert ns is not None
    assert [r.to_text() for r in ns] == ["ns1.example.org."]
    soa = zone.get_rdataset("cluster.local.", "SOA")
    assert soa is not None
    assert soa[0].rname.to_text() == "admin.example.org."


def test_history_finds_a_full_name_without_trailing_dot(consul_db: Path) -> None:
    short = run("history", "consul-server.default.svc", "--type", "SRV", db=consul_db)[1]
    full = run("history", "consul-server.default.svc.cluster.local", "--type", "SRV",
               db=consul_db)[1]
    assert "; no changes" not in short
    assert full == short


COMMANDS = [["db"], ["db", "upgrade"], ["db", "current"], ["ingest"], ["project"],
            ["export"], ["demo"], ["watch"], ["history"], ["diff"], ["log"], ["why"],
            ["compact"], ["serve"], ["status"], ["source"], ["source", "list"],
            ["source", "remove"]]


@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_every_command_help_shows_an_example(args: list[str]) -> None:
    code, out, _ = run(*args, "--help")
    assert code == 0
    example = out.split("Example:\n\n", 1)[1].split("\n\n", 1)[0]
    assert example.strip().startswith(("zonegen ", "kubectl ")), out


def test_every_command_is_covered_by_the_help_test() -> None:
    from cli import db, main, source_group

    assert {c[0] for c in COMMANDS} == set(main.commands)
    assert {c[1] for c in COMMANDS if len(c) > 1 and c[0] == "db"} == set(db.commands)
    assert {c[1] for c in COMMANDS if len(c) > 1 and c[0] == "source"} == set(
        source_group.commands)
