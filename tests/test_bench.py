"""The issue #11 bench (bench/bench_issue11.py) at a tiny scale: every row runs and prints
its figures, and its generated cluster is the zone the bench says it is. No figure is
compared with any time: only that each row was measured."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import dns.zone
import pytest

from bench._issue11_data import PODS, ROOT, Scale, cluster_objects, write_events
from bench.bench_issue11 import ROWS, main, run

TINY = Scale("tiny", ingest_small=2, ingest_large=4, burst=4, zone_services=3, events=30,
             dnsperf_seconds=1, runs=1)


def test_generated_cluster_is_four_records_per_pod(tmp_path: Path) -> None:
    src = tmp_path / "cluster.jsonl"
    write_events(src, cluster_objects(3))
    db = f"sqlite:///{tmp_path / 'z.db'}"
    zone_file = tmp_path / "z.zone"
    for args in (["ingest", str(src)], ["export", "-o", str(zone_file)]):
        subprocess.run([sys.executable, "cli.py", "--db", db, *args], cwd=ROOT, check=True,
                       capture_output=True)
    zone = dns.zone.from_file(str(zone_file), "cluster.local", relativize=False)
    rrs = sum(len(rdataset) for _, rdataset in zone.iterate_rdatasets())
    assert rrs == 3 * PODS * 4 + 4  # + SOA, NS, the NS's glue A, dns-version TXT
    pod = zone.get_rdataset("svc-2-0.svc-2.ns2.svc.cluster.local.", "A")
    assert pod is not None
    assert [r.to_text() for r in pod] == ["10.0.2.1"]
    srv = zone.get_rdataset("_http._tcp.svc-2.ns2.svc.cluster.local.", "SRV")
    assert srv is not None
    assert len(srv) == PODS


@pytest.mark.skipif(any(shutil.which(t) is None for t in
                        ("named", "named-compilezone", "knotd", "dnsperf")),
                    reason="needs named, named-compilezone, knotd and dnsperf")
def test_every_row_is_measured_at_a_tiny_scale(tmp_path: Path) -> None:
    table = run(TINY, list(ROWS), tmp_path / "cache", keep_going=False)
    assert list(table.rows) == ["ingest", "burst", "rebuild", "export", "serve", "dnsperf",
                                "axfr", "rss"]
    text = table.markdown()
    assert len(text.splitlines()) == 2 + len(ROWS)
    for row in table.rows.values():
        assert "FAILED" not in row.zonegen
        assert float(row.ratio.split("x")[0]) > 0  # a measured ratio, whatever its value
    assert "`project --rebuild` of 30 events" in text
    # A second run finds its inputs in the cache; --clean removes them.
    assert any((tmp_path / "cache").iterdir())
    main(["--clean", "--cache", str(tmp_path / "cache")])
    assert not (tmp_path / "cache").exists()


def test_sources_bench_at_a_tiny_scale(tmp_path: Path) -> None:
    """bench/bench_sources.py (issue #13): every row measured on both sides; the three
    members' clusterset and the one big source's hold the same number of records."""
    from bench.bench_sources import ROWS as SOURCE_ROWS
    from bench.bench_sources import main as sources_main

    text = sources_main(["--services", "2", "--workdir", str(tmp_path)])
    lines = text.splitlines()
    assert lines[2] == "| | 3 x 2 Services | 1 x 6 Services |"
    assert len(lines) == 4 + len(SOURCE_ROWS)
    rows = {line.split(" | ")[0].lstrip("| "): line for line in lines[4:]}
    assert list(rows) == list(SOURCE_ROWS)
    # 6 clusterset Services' worth of pods, 4 records each, + dns-version, on both sides
    assert rows["clusterset (exports)"].count(f"{2 * 3 * PODS * 4 + 1:,} records") == 2
    assert rows["clusterset rebuild check"].count("identical") == 2
    assert "DIFFERS" not in text
