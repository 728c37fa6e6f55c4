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
from click.testing import CliRunner

from cli import main

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).parent / "data"

SEED_BARE_SRV = {
    f"0 4 {port} consul-server-{i}.consul-server.default.svc.cluster.local."
    for i in range(3) for port in (8300, 8301, 8302, 8500, 8600)
}


def run(*args: str, db: Path | None = None, input: str | None = None) -> tuple[int, str, str]:
    prefix = ["--db", f"sqlite:///{db}"] if db is not None else []
    result = CliRunner().invoke(main, [*prefix, *args], input=input)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
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
    env = {**os.environ, "ZONEGEN_DB": f"sqlite:///{tmp_path / 'z.db'}"}
    proc = subprocess.run([sys.executable, str(ROOT / "cli.py"), "ingest", "/nonexistent"],
                          capture_output=True, text=True, env=env, check=False)
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
