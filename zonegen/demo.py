"""``zonegen demo``: a built-in sample cluster, ingested and exported end to end.

The sample (``zonegen/data/demo.json``) is the Consul StatefulSet of the specification's
seed example plus a few Services that show the other rules: a ClusterIP Service with a
named and an unnamed port and a not-ready pod, a dual-stack headless Service with pod
hostnames, a dual-stack LoadBalancer, an ExternalName and a legacy v1 Endpoints object.
It runs in a temporary database, so it never touches the operator's log.
"""

from __future__ import annotations

import tempfile
from importlib import resources
from pathlib import Path
from typing import IO

from zonegen.export import ExportResult, export_zone
from zonegen.ingest import ingest_files
from zonegen.model import ZoneConfig
from zonegen.store import Store

DEMO_TIME = "2026-01-01T00:00:00+00:00"


def sample_path() -> resources.abc.Traversable:
    return resources.files("zonegen") / "data" / "demo.json"


def run_demo(config: ZoneConfig, stream: IO[str]) -> ExportResult:
    """Ingest the sample into a fresh temporary database and write the zone to ``stream``.

    The events are stamped with a fixed time, so the demo's serial (and its output) is
    the same on every run and every machine.
    """
    from zonegen.clock import parse_time

    with tempfile.TemporaryDirectory(prefix="zonegen-demo-") as tmp, \
            resources.as_file(sample_path()) as sample:
        store = Store.open(f"sqlite:///{Path(tmp) / 'demo.db'}")
        try:
            ingest_files(store, [str(sample)], origin="demo", when=parse_time(DEMO_TIME))
            return export_zone(store, config, stream=stream)
        finally:
            store.close()
