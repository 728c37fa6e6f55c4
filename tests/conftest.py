"""Shared fixtures: sample objects, database URLs, a fixed clock."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.kubeapi import FakeKubeAPI

DATA = Path(__file__).parent / "data"


@pytest.fixture
def consul_objects() -> list[dict[str, Any]]:
    """The seed's Consul StatefulSet: headless Service + one EndpointSlice, 3 pods, 8 ports."""
    items: list[dict[str, Any]] = json.loads((DATA / "consul.json").read_text())["items"]
    return items


@contextlib.contextmanager
def read_only_directory(path: Path) -> Iterator[None]:
    """Make ``path`` unwritable even for root (tests run as root in CI): chmod for
    ordinary users, the ext4/xfs immutable flag for root; skip where neither works."""
    if os.geteuid() == 0:
        if shutil.which("chattr") is None or subprocess.run(
                ["chattr", "+i", str(path)], capture_output=True, check=False).returncode:
            pytest.skip("cannot make a directory read-only for root here (no chattr +i)")
        undo = ["chattr", "-i", str(path)]
    else:
        path.chmod(0o500)
        undo = ["chmod", "700", str(path)]
    try:
        probe = path / ".probe"
        try:
            probe.touch()
        except OSError:
            pass
        else:
            probe.unlink()
            pytest.skip("the directory is still writable")
        yield
    finally:
        subprocess.run(undo, check=True)


@pytest.fixture
def kube() -> Iterator[FakeKubeAPI]:
    """A real list/watch HTTP server (tests/kubeapi.py) the kubernetes client talks to."""
    api = FakeKubeAPI().start()
    try:
        yield api
    finally:
        api.stop()


@pytest.fixture
def kubeconfig(kube: FakeKubeAPI, tmp_path: Path) -> Path:
    return kube.write_kubeconfig(tmp_path / "kubeconfig")
