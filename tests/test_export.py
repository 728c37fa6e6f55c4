"""Export: current zone after catching up, past zones, atomic files."""

from __future__ import annotations

import io
import json
import os
import stat
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

import pytest

from tests.test_progress import drain, terminal  # noqa: F401 - the fixture
from zonegen.errors import UnknownSerial
from zonegen.export import export_zone, project_pending, rebuild_check
from zonegen.history import compact
from zonegen.ingest import ingest_files
from zonegen.names import zone_config
from zonegen.progress import Progress
from zonegen.store import Store

DATA = Path(__file__).parent / "data"
T0 = datetime(2026, 3, 1, tzinfo=UTC)


def test_export_projects_pending_events_first(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'z.db'}")
    ingest_files(store, [str(DATA / "consul.json")], project=False)
    out = io.StringIO()
    result = export_zone(store, zone_config(), stream=out)
    assert "consul-server-0.consul-server.default.svc IN A 10.244.0.6\n" in out.getvalue()
    # 48 Consul records without the 3 PTRs, the TXT, SOA, NS and glue.
    assert result.records == 48 - 3 + 1 + 3
    assert project_pending(store).versions == 0


def test_export_to_file_then_a_past_serial_is_byte_identical(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'z.db'}")
    ingest_files(store, [str(DATA / "consul.json")], when=T0)
    first = tmp_path / "first.zone"
    then = export_zone(store, zone_config(), output=str(first))
    slice_ = (DATA / "consul.json").read_text().replace('"10.244.2.8"', '"10.244.2.9"')
    changed = tmp_path / "changed.json"
    changed.write_text(slice_.replace('"resourceVersion": "1388"', '"resourceVersion": "1400"'))
    ingest_files(store, [str(changed)], when=T0.replace(hour=1))
    past = io.StringIO()
    export_zone(store, zone_config(), serial=then.serial, stream=past)
    assert past.getvalue() == first.read_text()
    at = io.StringIO()
    export_zone(store, zone_config(), at=T0.replace(minute=30), stream=at)
    assert at.getvalue() == first.read_text()
    now = io.StringIO()
    export_zone(store, zone_config(), stream=now)
    assert "10.244.2.9" in now.getvalue()
    assert "10.244.2.9" not in first.read_text()


def test_unknown_past_versions(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'z.db'}")
    ingest_files(store, [str(DATA / "consul.json")], when=T0)
    with pytest.raises(UnknownSerial, match="serial 7"):
        export_zone(store, zone_config(), serial=7, stream=io.StringIO())
    with pytest.raises(UnknownSerial, match="2020-01-01"):
        export_zone(store, zone_config(), at=datetime(2020, 1, 1, tzinfo=UTC),
                    stream=io.StringIO())


def test_export_at_a_time_after_pending_events_projects_them_first(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'z.db'}")
    ingest_files(store, [str(DATA / "consul.json")], project=False)
    out = io.StringIO()
    export_zone(store, zone_config(), at=datetime(2100, 1, 1, tzinfo=UTC), stream=out)
    assert "consul-server-0.consul-server.default.svc IN A 10.244.0.6\n" in out.getvalue()


# --------------------------------------------------------------------------- -o safety
# (issue #9 §3: export replaces nothing but a regular file's contents)


@pytest.fixture
def consul_store(tmp_path: Path) -> Iterator[Store]:
    store = Store.open(f"sqlite:///{tmp_path / 'z.db'}")
    ingest_files(store, [str(DATA / "consul.json")], when=T0)
    yield store
    store.close()


def _zone(store: Store) -> str:
    out = io.StringIO()
    export_zone(store, zone_config(), stream=out)
    return out.getvalue()


def test_export_through_a_symlink_replaces_its_target(consul_store: Store,
                                                      tmp_path: Path) -> None:
    real = tmp_path / "named" / "cluster.local.zone"
    real.parent.mkdir()
    real.write_text("old\n")
    links = tmp_path / "etc"
    links.mkdir()
    link = links / "zone"
    link.symlink_to(real)
    export_zone(consul_store, zone_config(), output=str(link))
    assert link.is_symlink()
    assert os.readlink(link) == str(real)
    assert real.read_text() == _zone(consul_store)
    assert sorted(p.name for p in links.iterdir()) == ["zone"]  # no temp file left there
    assert sorted(p.name for p in real.parent.iterdir()) == ["cluster.local.zone"]


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_export_keeps_owner_group_and_mode_of_the_replaced_file(consul_store: Store,
                                                                tmp_path: Path) -> None:
    path = tmp_path / "cluster.local.zone"
    path.write_text("old\n")
    os.chown(path, 4242, 4343)
    path.chmod(0o640)
    export_zone(consul_store, zone_config(), output=str(path))
    st = path.stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (4242, 4343, 0o640)
    assert path.read_text() == _zone(consul_store)


def test_export_to_a_new_file_is_world_readable(consul_store: Store, tmp_path: Path) -> None:
    path = tmp_path / "new.zone"
    export_zone(consul_store, zone_config(), output=str(path))
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def _special(kind: str, path: Path) -> None:
    if kind == "directory":
        path.mkdir()
    elif kind == "FIFO":
        os.mkfifo(path)
    else:
        if os.geteuid() != 0:
            pytest.skip("mknod needs root")
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))


@pytest.mark.parametrize("kind", ["character device", "directory", "FIFO"])
def test_export_refuses_what_is_not_a_regular_file(consul_store: Store, tmp_path: Path,
                                                   kind: str) -> None:
    from zonegen.zonefile import ZoneWriteError

    path = tmp_path / "target"
    _special(kind, path)
    before = path.lstat()
    with pytest.raises(ZoneWriteError, match=rf"target: it is a {kind}, not a regular file"):
        export_zone(consul_store, zone_config(), output=str(path))
    after = path.lstat()
    assert (after.st_mode, after.st_ino, after.st_rdev) == \
        (before.st_mode, before.st_ino, before.st_rdev)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["target", "z.db", "z.db-shm",
                                                          "z.db-wal"]


def test_export_dash_is_standard_output(consul_store: Store, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.chdir(tmp_path)
    result = export_zone(consul_store, zone_config(), output="-")
    assert out.getvalue() == _zone(consul_store)
    assert result.path is None
    assert not (tmp_path / "-").exists()


# --------------------------------------------------------------------------- progress


def _two_versions(tmp_path: Path) -> tuple[Store, int]:
    """The Consul sample at T0, then a snapshot without it: two versions; returns the
    store and the first serial."""
    store = Store.open(f"sqlite:///{tmp_path / 'z.db'}")
    ingest_files(store, [str(DATA / "consul.json")], when=T0)
    more = tmp_path / "more.json"
    more.write_text(json.dumps({
        "kind": "Service", "metadata": {"name": "web", "namespace": "shop", "uid": "u-web",
                                        "resourceVersion": "1"},
        "spec": {"clusterIP": "10.96.0.10", "ports": [{"name": "http", "port": 80}]}}))
    ingest_files(store, [str(more)], when=datetime(2026, 3, 2, tzinfo=UTC))
    versions = store.versions()
    assert len(versions) == 2
    return store, versions[0].serial


def test_long_work_draws_a_bar_on_a_terminal(
        tmp_path: Path, terminal: tuple[TextIO, int]) -> None:  # noqa: F811 - the fixture
    """``project --rebuild`` counts events, ``export --serial`` the rows it folds,
    ``compact`` its steps: each a bar on a terminal (#10)."""
    stream, master = terminal
    store, first = _two_versions(tmp_path)
    events = len(store.select_events())
    report = rebuild_check(store, Progress(description="replaying events", unit="event",
                                           stream=stream, delay=0))
    assert report.identical
    shown = drain(master)
    assert "replaying events" in shown
    assert f"{events}/{events}" in shown

    rows = len(store.records_at(store.versions()[0].version_id))
    export_zone(store, zone_config(), serial=first, stream=io.StringIO(),
                progress=Progress(description="folding", unit="row", stream=stream, delay=0))
    shown = drain(master)
    assert "folding" in shown
    assert f"{rows}row" in shown.replace(" ", "")

    compact(store, keep_versions=1,
            progress=Progress(description="compacting", unit="step", stream=stream, delay=0))
    shown = drain(master)
    assert "compacting" in shown
    assert "5/5" in shown


def test_long_work_prints_nothing_extra_without_a_terminal(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store, first = _two_versions(tmp_path)
    capsys.readouterr()
    rebuild_check(store)
    export_zone(store, zone_config(), serial=first, stream=io.StringIO())
    compact(store, keep_versions=1)
    assert capsys.readouterr() == ("", "")
