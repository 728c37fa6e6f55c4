"""Projections: which sources feed which zone, named once so every command agrees.

A *projection* folds the events of some sources into one record set with its own zone
versions (serials, IXFR journal, NOTIFY), read model and checkpoint. Three kinds:

- ``cluster-local``, one source: the Kubernetes DNS records of that cluster (RECORDS.md).
  ``source:default`` is the projection every database had before sources existed; it keeps
  its old name ``projection`` (its tracking row and read-model key).
- ``clusterset-imports``, one source (a hub or member cluster holding ServiceImports and
  MCS EndpointSlices): the Multi-Cluster Services ``clusterset.local`` records
  (docs/multicluster.md).
- ``clusterset-exports``, several sources: ``clusterset.local`` derived from the headless
  Services each source exports with a ServiceExport, without an MCS controller.

An operator names one on the command line as the right-hand side of a zone option:
``--zone a.k8s.example.org=source:a``, ``--zone clusterset.local=imports:hub``,
``--zone clusterset.local=exports:a,b,c``. Pure: no I/O (the ``projections`` table is
written by ``zonegen.store.journal``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from zonegen.errors import InvalidOption
from zonegen.sources import DEFAULT_SOURCE, check_source_name

CLUSTER_LOCAL = "cluster-local"
CLUSTERSET_IMPORTS = "clusterset-imports"
CLUSTERSET_EXPORTS = "clusterset-exports"
KINDS = (CLUSTER_LOCAL, CLUSTERSET_IMPORTS, CLUSTERSET_EXPORTS)

_PREFIX = {CLUSTER_LOCAL: "source", CLUSTERSET_IMPORTS: "imports",
           CLUSTERSET_EXPORTS: "exports"}
_KIND_OF = {prefix: kind for kind, prefix in _PREFIX.items()}

DEFAULT_NAME = "projection"
"""Name (tracking row, read-model key, ``zone_versions.projection``) of ``source:default``:
what the single projection of a database from before sources was called."""

MAX_NAME = 64  # trackings.name, zone_versions.projection, read-model key columns


@dataclass(frozen=True, slots=True)
class ProjectionSpec:
    """One projection: its kind and the sources it folds (sorted, distinct)."""

    kind: str
    sources: tuple[str, ...]

    @property
    def target(self) -> str:
        """How an operator writes it: ``source:a``, ``exports:a,b,c``."""
        return f"{_PREFIX[self.kind]}:{','.join(self.sources)}"

    @property
    def name(self) -> str:
        """The stored name: ``projection`` for ``source:default``, else :attr:`target`,
        or, when that is longer than a key column holds, its prefix with a digest (a
        clusterset of many long source names)."""
        if self == DEFAULT:
            return DEFAULT_NAME
        target = self.target
        if len(target) <= MAX_NAME:
            return target
        digest = hashlib.sha256(target.encode()).hexdigest()[:20]
        return f"{_PREFIX[self.kind]}:#{digest}"

    @property
    def default_zone(self) -> str:
        """The zone it is published as when the operator names none."""
        return "cluster.local" if self.kind == CLUSTER_LOCAL else "clusterset.local"


DEFAULT = ProjectionSpec(CLUSTER_LOCAL, (DEFAULT_SOURCE,))
"""``source:default``: what a zone option without ``=`` publishes."""


def parse_target(text: str) -> ProjectionSpec:
    """``source:NAME``, ``imports:NAME`` or ``exports:NAME[,NAME...]`` as a spec.

    :raises InvalidOption: one line naming what is wrong.
    """
    prefix, colon, rest = text.partition(":")
    kind = _KIND_OF.get(prefix.strip().lower())
    if not colon or kind is None:
        raise InvalidOption(f"projection {text!r} is not source:NAME, imports:NAME or "
                            "exports:NAME[,NAME...]")
    names = [n.strip() for n in rest.split(",")]
    if any(not n for n in names):
        raise InvalidOption(f"projection {text!r} names an empty source")
    for n in names:
        check_source_name(n)
    distinct = tuple(sorted(set(names)))
    if kind != CLUSTERSET_EXPORTS and len(distinct) != 1:
        raise InvalidOption(f"projection {text!r}: {prefix}: takes exactly one source "
                            "(exports: takes several)")
    return ProjectionSpec(kind, distinct)


def parse_zone_option(text: str) -> tuple[str, ProjectionSpec]:
    """``ZONE`` or ``ZONE=TARGET`` (a ``--zone`` value) as (zone text, spec); the zone is
    checked by the caller's zone rules. ``=TARGET`` without a zone publishes the target's
    default zone (``cluster.local``, ``clusterset.local``).

    :raises InvalidOption: the target is malformed.
    """
    zone, eq, target = text.partition("=")
    if not eq:
        return zone, DEFAULT
    spec = parse_target(target)
    return (zone.strip() or spec.default_zone), spec
