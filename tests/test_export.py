"""Export: current zone after catching up, past zones, atomic files."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

import pytest

from zonegen.errors import UnknownSerial
from zonegen.export import export_zone, project_pending
from zonegen.ingest import ingest_files
from zonegen.names import zone_config
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
