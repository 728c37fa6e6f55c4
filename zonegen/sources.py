"""Sources: the Kubernetes clusters whose events share one log.

Every event belongs to one source (``events.source``), a short name the operator gives
each cluster (``watch --source east``, ``ingest --source east``); data from before sources
existed is the source ``default``. How an event arrived (``watch:<context>``, ``ingest``,
``demo``) is its *origin*, kept beside it. A source also has a cluster id, the RFC 1123
subdomain the Multi-Cluster Services DNS names use for it (``--cluster-id``, default: the
name). The names' rules live here, once. Pure: no I/O (the ``sources`` table is written
by ``zonegen.store.events``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from zonegen.errors import InvalidOption

DEFAULT_SOURCE = "default"
"""The source of everything logged before sources existed, and of every writer not
told another (``watch``/``ingest`` without ``--source``)."""

MAX_SOURCE_NAME = 63
_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", re.ASCII)


@dataclass(frozen=True, slots=True)
class Source:
    """One row of ``sources``."""

    name: str
    cluster_id: str
    created_at: datetime


def check_source_name(name: str) -> str:
    """``name`` when it is a valid source name: an RFC 1123 label (lowercase letters,
    digits and ``-``, alphanumeric at both ends, at most 63 characters). A label, not a
    subdomain: resume points are keyed ``<source>@<namespace>`` and zone specs
    ``source:<name>``, so the name must never contain ``@``, ``:``, ``,`` or ``.``.

    :raises InvalidOption: one line naming the bad name.
    """
    if not name:
        raise InvalidOption("source name is empty")
    if len(name) > MAX_SOURCE_NAME or not _LABEL.fullmatch(name):
        raise InvalidOption(f"source name {name!r} is not an RFC 1123 label (lowercase "
                            f"letters, digits and '-', starting and ending alphanumeric, "
                            f"at most {MAX_SOURCE_NAME} characters)")
    return name


def check_cluster_id(cluster_id: str) -> str:
    """``cluster_id`` when it is an RFC 1123 subdomain (the MCS ``ClusterName`` rule).

    :raises InvalidOption: one line naming the bad id.
    """
    from zonegen.mcs import check_cluster_id as reasons_against

    reasons = reasons_against(cluster_id)
    if reasons:
        raise InvalidOption("; ".join(reasons))
    return cluster_id


def resume_key(source: str, namespace: str | None) -> str:
    """The ``resume_points.source`` key of one stream: ``<source>`` when it watches all
    namespaces, ``<source>@<namespace>`` for one namespace (a namespaced list's
    resourceVersion is only meaningful to that namespace's watch)."""
    return source if namespace is None else f"{source}@{namespace}"


def split_resume_key(key: str) -> tuple[str, str | None]:
    """``(source, namespace or None)`` of a resume key made by :func:`resume_key`."""
    source, at, namespace = key.partition("@")
    return source, (namespace if at else None)
