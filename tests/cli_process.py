"""``python -m cli --db URL ARGS`` as a real process from the checkout, with no
``KUBECONFIG`` of the machine running the tests: for the tests of the commands that talk
to the fake API server (watch, and the commands run next to it). Written once.

``tests.helpers.zonegen`` runs ``cli.py`` with the caller's environment instead; this
one drops ``KUBECONFIG`` so a test only ever reaches the kubeconfig it names."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import IO, Any

from tests.helpers import ROOT


def cli_args(db_url: str, *args: str) -> list[str]:
    """The argument vector of ``zonegen --db DB_URL ARGS``."""
    return [sys.executable, "-m", "cli", "--db", db_url, *args]


def cli_env() -> dict[str, str]:
    """This environment without ``KUBECONFIG``, with the checkout importable first."""
    env = dict(os.environ)
    env.pop("KUBECONFIG", None)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def run_cli(db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``zonegen --db DB_URL ARGS`` run to its end; stdout and stderr captured."""
    return subprocess.run(cli_args(db_url, *args), cwd=ROOT, env=cli_env(),
                          capture_output=True, text=True, timeout=120, check=False)


def start_cli(db_url: str, *args: str, stderr: int | IO[Any]) -> subprocess.Popen[bytes]:
    """``zonegen --db DB_URL ARGS`` started and left running (the caller stops it);
    stdout discarded, stderr to ``stderr``."""
    return subprocess.Popen(cli_args(db_url, *args), cwd=ROOT, env=cli_env(),
                            stdout=subprocess.DEVNULL, stderr=stderr)
