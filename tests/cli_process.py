"""``python -m cli --db URL ARGS`` as a real process from the checkout, with no
``KUBECONFIG`` of the machine running the tests: for the tests of the commands that talk
to the fake API server (watch, and the commands run next to it). Written once.

``tests.helpers.zonegen`` runs ``cli.py`` with the caller's environment instead; this
one drops ``KUBECONFIG`` so a test only ever reaches the kubeconfig it names."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from tests.helpers import DEADLINE, ROOT


def cli_args(db_url: str, *args: str) -> list[str]:
    """The argument vector of ``zonegen --db DB_URL ARGS``."""
    return [sys.executable, "-m", "cli", "--db", db_url, *args]


def cli_env() -> dict[str, str]:
    """This environment without ``KUBECONFIG`` and ``ZONEGEN_LOG_FORMAT`` (a test names
    the log format it reads), with the checkout importable first."""
    env = dict(os.environ)
    env.pop("KUBECONFIG", None)
    env.pop("ZONEGEN_LOG_FORMAT", None)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def run_cli(db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``zonegen --db DB_URL ARGS`` run to its end; stdout and stderr captured."""
    return subprocess.run(cli_args(db_url, *args), cwd=ROOT, env=cli_env(),
                          capture_output=True, text=True, timeout=120, check=False)


def start_cli(db_url: str, *args: str, stderr: int | IO[Any],
              stdout: int | IO[Any] = subprocess.DEVNULL) -> subprocess.Popen[bytes]:
    """``zonegen --db DB_URL ARGS`` started and left running (the caller stops it);
    stdout discarded unless ``stdout`` is given, stderr to ``stderr``."""
    return subprocess.Popen(cli_args(db_url, *args), cwd=ROOT, env=cli_env(),
                            stdout=stdout, stderr=stderr)


@contextlib.contextmanager
def _killed_at_exit(proc: subprocess.Popen[Any]) -> Iterator[None]:
    """At the end of the ``with``, however it ends: ``proc`` (started by this test)
    killed if still running, reaped, and its pipes closed."""
    try:
        yield
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(DEADLINE)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


@contextlib.contextmanager
def cli_logging_to(log: Path, db_url: str, *args: str,
                   stdout: int = subprocess.DEVNULL) -> Iterator[subprocess.Popen[bytes]]:
    """``zonegen --db DB_URL ARGS`` (a watch) started with its stderr in the file ``log``
    (stdout discarded, or ``subprocess.PIPE``); at the end of the ``with`` killed if
    still running, and reaped."""
    with log.open("wb") as err:
        proc = start_cli(db_url, *args, stderr=err, stdout=stdout)
        with _killed_at_exit(proc):
            yield proc


@contextlib.contextmanager
def serve_process(db_url: str, *args: str) -> Iterator[subprocess.Popen[str]]:
    """``zonegen --db DB_URL serve ARGS`` started and left running, stdout and stderr
    piped as text; at the end of the ``with`` killed (its own PID) if the test did not
    stop it with :func:`stop_serve`."""
    proc = subprocess.Popen(cli_args(db_url, "serve", *args), cwd=ROOT, env=cli_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with _killed_at_exit(proc):
        yield proc


def serving_line(proc: subprocess.Popen[str]) -> str:
    """The "serving ... on HOST#PORT (udp, tcp)" line of a started serve, read from its
    stderr past the lifecycle lines before it; fails with what it read if serve exits
    first."""
    assert proc.stderr is not None
    seen = ""
    while True:
        line = proc.stderr.readline()
        if not line:
            raise AssertionError(f"no serving line; exit {proc.poll()}: {seen}")
        if "(udp, tcp)" in line:
            return line
        seen += line


def dns_port(line: str) -> int:
    """The DNS port in a serving line (``... on 127.0.0.1#PORT (udp, tcp)``)."""
    bound = re.search(r"#(\d+) \(udp, tcp\)", line)
    assert bound is not None, line
    return int(bound.group(1))


def stop_serve(proc: subprocess.Popen[str]) -> str:
    """Stop serve with SIGTERM as an operator does (nothing to send if it has exited):
    it must exit 0. Its stdout, which ends with the "served ..." summary."""
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    return out
