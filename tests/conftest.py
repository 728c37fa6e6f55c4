"""Shared fixtures: sample objects, database URLs, a fixed clock."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

DATA = Path(__file__).parent / "data"


@pytest.fixture
def consul_objects() -> list[dict[str, Any]]:
    """The seed's Consul StatefulSet: headless Service + one EndpointSlice, 3 pods, 8 ports."""
    items: list[dict[str, Any]] = json.loads((DATA / "consul.json").read_text())["items"]
    return items
