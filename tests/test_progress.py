"""zonegen.progress: a bar on a terminal (a real pty), not one byte on anything else."""

from __future__ import annotations

import fcntl
import io
import json
import logging
import os
import pty
import select
import struct
import subprocess
import sys
import termios
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import pytest

from tests.helpers import run_python
from zonegen.logs import setup_logging
from zonegen.progress import Progress, is_terminal

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def terminal() -> Iterator[tuple[TextIO, int]]:
    """The slave side of a pty as a text stream, and the master fd to read what it shows."""
    master, slave = pty.openpty()
    # A fresh pty is 0x0; tqdm, like any program, sizes its line to the terminal.
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    stream = open(slave, "w", encoding="utf-8", closefd=True)  # noqa: SIM115
    try:
        yield stream, master
    finally:
        stream.close()
        os.close(master)


def drain(master: int) -> str:
    chunks = []
    while select.select([master], [], [], 0.2)[0]:
        chunks.append(os.read(master, 65536))
    return b"".join(chunks).decode("utf-8", "replace")


def test_a_terminal_gets_a_bar_with_known_total(terminal: tuple[TextIO, int]) -> None:
    stream, master = terminal
    assert is_terminal(stream)
    with Progress(250, description="rebuild", unit="event", stream=stream,
                  delay=0) as progress:
        assert progress.shown
        for _ in range(5):
            progress.update(50)
    assert not progress.shown
    shown = drain(master)
    assert "rebuild" in shown
    assert "250/250" in shown
    assert "event" in shown


def test_a_terminal_bar_of_unknown_total_counts_bytes_read(
        terminal: tuple[TextIO, int], tmp_path: Path) -> None:
    stream, master = terminal
    data = tmp_path / "objects.json"
    data.write_text(json.dumps({"items": [{"n": i} for i in range(50_000)]}))
    size = data.stat().st_size
    with Progress(None, description="ingest", unit="B", stream=stream, delay=0) as progress:
        with data.open("rb") as raw:
            loaded = json.load(progress.reading(raw))
        progress.set_total(size)
    assert len(loaded["items"]) == 50_000
    shown = drain(master)
    assert "ingest: 0.00B [" in shown  # unknown total: a byte counter
    kib = f"{size / 1024:.0f}k"
    assert "ingest: 100%|" in shown
    assert f"| {kib}/{kib} [" in shown  # every byte json.load read was counted


def test_log_lines_go_above_a_shown_bar(terminal: tuple[TextIO, int],
                                        capsys: pytest.CaptureFixture[str]) -> None:
    stream, master = terminal
    logger = logging.getLogger("zonegen")
    handlers, level = logger.handlers[:], logger.level
    try:
        setup_logging("json", 1, False)
        with Progress(3, stream=stream, delay=0) as progress:
            logging.getLogger("zonegen.ingest").info("halfway")
            progress.update(3)
        logging.getLogger("zonegen.ingest").info("after")
    finally:
        logger.handlers[:] = handlers
        logger.setLevel(level)
    err = capsys.readouterr().err
    # The record went through tqdm.write in the same JSON shape, then the handler came back.
    assert [json.loads(line)["message"] for line in err.splitlines()] == ["halfway", "after"]
    drain(master)


def test_nothing_is_written_when_not_a_terminal(tmp_path: Path) -> None:
    buffer = io.StringIO()
    read_fd, write_fd = os.pipe()
    pipe = open(write_fd, "w", encoding="utf-8")  # noqa: SIM115
    for stream in (buffer, pipe):
        with Progress(10, description="compact", stream=stream, delay=0) as progress:
            assert not progress.shown
            progress.update(10)
            progress.set_total(20)
    pipe.close()
    with open(read_fd, encoding="utf-8") as reader:
        assert reader.read() == ""
    assert buffer.getvalue() == ""
    data = tmp_path / "f.txt"
    data.write_text("a\nbb\n")
    with Progress(stream=buffer) as progress, data.open() as text:
        assert list(progress.reading(text)) == ["a\n", "bb\n"]
        assert progress.reading(text).name == str(data)  # passes other attributes on
    assert buffer.getvalue() == ""


def test_disabled_on_a_terminal_too(terminal: tuple[TextIO, int]) -> None:
    stream, master = terminal
    with Progress(10, stream=stream, enabled=False, delay=0) as progress:
        progress.update(10)
        assert not progress.shown
    assert drain(master) == ""


def test_a_process_with_piped_stderr_prints_nothing_extra() -> None:
    program = (
        "from zonegen.progress import Progress\n"
        "with Progress(1000, description='rebuild', delay=0) as p:\n"
        "    for _ in range(1000):\n"
        "        p.update()\n"
        "print('done')\n"
    )
    proc = run_python(program)
    assert (proc.stdout, proc.stderr) == ("done\n", "")


def _big_list(path: Path, services: int) -> int:
    items = [{"kind": "Service", "apiVersion": "v1",
              "metadata": {"name": f"svc{i}", "namespace": "default", "uid": f"u{i}",
                           "resourceVersion": str(i + 1)},
              "spec": {"clusterIP": f"10.96.{i // 250}.{i % 250 + 1}",
                       "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}}
             for i in range(services)]
    path.write_text(json.dumps({"kind": "List", "items": items}))
    return path.stat().st_size


def test_ingest_of_a_file_shows_a_byte_bar_on_a_terminal(
        terminal: tuple[TextIO, int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import zonegen.ingest
    from zonegen.ingest import ingest_files
    from zonegen.store import Store

    stream, master = terminal
    data = tmp_path / "services.json"
    size = _big_list(data, 2000)
    assert 100 * 1024 <= size < 1000 * 1024  # tqdm shows it as "NNNk"
    monkeypatch.setattr(zonegen.ingest, "PROGRESS_DELAY", 0.0)  # the bar at once
    monkeypatch.setattr(sys, "stderr", stream)
    store = Store.open(f"sqlite:///{tmp_path / 'p.db'}")
    try:
        report = ingest_files(store, [str(data)], project=False)
    finally:
        store.close()
    assert report.new_events == 2000
    shown = drain(master)
    kib = f"{size / 1024:.0f}k"
    assert f"{data}: 100%|" in shown
    assert f"| {kib}/{kib} [" in shown  # every byte of the file, counted once


def test_ingest_with_stderr_not_a_terminal_prints_only_its_summary(tmp_path: Path) -> None:
    data = tmp_path / "services.json"
    _big_list(data, 2000)
    proc = subprocess.run(
        [sys.executable, str(ROOT / "cli.py"), "--db", f"sqlite:///{tmp_path / 'q.db'}",
         "ingest", "--no-project", str(data)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert (proc.stdout, proc.stderr) == ("2000 new events; 0 duplicates skipped\n", "")
