"""Helpers every test module may share, written once: polling, zone comparison, the
zone as ``export`` writes it, and the command line (in process and as a real process).

Plain functions, not fixtures, so a test reads what it calls. Fixtures stay in
``conftest.py``.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, TypeVar

import dns.zone
import pytest
from click.testing import CliRunner, Result

from zonegen.model import ZoneConfig
from zonegen.store import Store
from zonegen.watch import WatchOptions

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).parent / "data"
DEADLINE = 30.0  # seconds; a hang fails the test, a slow machine does not

T = TypeVar("T")


# --------------------------------------------------------------------------- polling


def wait_until(predicate: Callable[[], object], timeout: float = DEADLINE,
               interval: float = 0.01) -> bool:
    """Poll ``predicate`` every ``interval`` until it is truthy (True) or ``timeout``
    seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True


def wait_for(condition: Callable[[], T], what: str, timeout: float = DEADLINE) -> T:
    """Poll ``condition`` until it returns something truthy and return it; fail the test
    naming ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


# --------------------------------------------------------------------------- zones


def same(a: dns.zone.Zone, b: dns.zone.Zone) -> None:
    """Assert two zones hold the same records, TTLs included (Zone equality ignores
    TTLs; the order of rdatasets within a node is not content)."""
    assert a == b
    assert sorted(a.to_text(relativize=True).splitlines()) == \
        sorted(b.to_text(relativize=True).splitlines())


def exported(store: Store, config: ZoneConfig, relativize: bool = True) -> dns.zone.Zone:
    """The zone ``zonegen export`` writes for ``store``, parsed back by dnspython."""
    from zonegen.export import export_zone

    out = io.StringIO()
    export_zone(store, config, stream=out)
    return dns.zone.from_text(out.getvalue(), config.zone, relativize=relativize)


@contextlib.contextmanager
def ingested(url: str, *files: Path) -> Iterator[Store]:
    """The store at ``url`` with ``files`` ingested as ``zonegen ingest FILE...`` does
    (projected), closed at the end of the ``with``: the store a serve test starts from."""
    from zonegen.ingest import ingest_files

    store = Store.open(url)
    ingest_files(store, [str(f) for f in files])
    yield store
    store.close()


# --------------------------------------------------------------------------- the CLI


def cli(*args: str, db: str | Path | None = None, input: str | None = None) -> Result:
    """``zonegen [--db URL] ARGS`` in this process (click's runner); ``db`` is a URL or
    the path of a SQLite file. An exception other than SystemExit is re-raised, so a
    traceback fails the test instead of hiding in ``Result.exception``."""
    from cli import main

    prefix: list[str] = []
    if db is not None:
        prefix = ["--db", db if isinstance(db, str) else f"sqlite:///{db}"]
    result = CliRunner().invoke(main, [*prefix, *args], input=input)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def zonegen(args: Sequence[str], db: Path | None = None, stdout: int | IO[Any] | None = None,
            env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python cli.py ARGS`` as a real process from the checkout, as an operator runs
    it; stderr is captured, stdout too unless ``stdout`` is given."""
    full = {**os.environ, **(env or {})}
    if db is not None:
        full["ZONEGEN_DB"] = f"sqlite:///{db}"
    return subprocess.run(
        [sys.executable, str(ROOT / "cli.py"), *args], cwd=ROOT, env=full, text=True,
        stdout=subprocess.PIPE if stdout is None else stdout, stderr=subprocess.PIPE,
        timeout=120, check=False)


def run_python(program: str) -> subprocess.CompletedProcess[str]:
    """``python -c PROGRAM`` from the checkout, run to its end (a non-zero exit fails
    the test); stdout and stderr captured: what a process of its own writes."""
    return subprocess.run([sys.executable, "-c", program], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, check=True)


def http_get(port: int, path: str, host: str = "127.0.0.1") -> tuple[int, str]:
    """Status and body of ``GET path`` on a loopback HTTP server (metrics, probes)."""
    import http.client

    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def fast(**kwargs: Any) -> WatchOptions:
    """Options with test-sized timings (reconnects in tens of milliseconds)."""
    defaults: dict[str, Any] = {"backoff_initial": 0.05, "backoff_max": 0.3,
                                "timeout_seconds": 5, "project": False}
    defaults.update(kwargs)
    return WatchOptions(**defaults)
