"""The clusterset projector: ServiceImports and their MCS EndpointSlices to DNS records.

:func:`records_for_import` is the Multi-Cluster Services DNS specification (KEP-1645's
DNS specification, schema 1.0.0) rule by rule, as docs/multicluster.md writes it down;
:func:`records_for_exports` derives the same records from several zonegen sources' exported
headless Services when no MCS controller exists; :class:`ClustersetProjection` and
:class:`ExportsProjection` fold changes one at a time into those same functions' results.
Owners are relative to the clusterset zone
(``clusterset.local.`` unless the operator names another), as ``project`` makes them
relative to the cluster domain. Pure: imports only ``model``, ``names``, ``project``,
``mcs`` and ``errors`` — no I/O, no clock.

Spec: kubernetes/enhancements, keps/sig-multicluster/1645-multi-cluster-services-api,
the DNS specification there (cited "MCS §"); docs/multicluster.md restates it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import TypeVar

from zonegen.errors import InvalidName, InvalidZone
from zonegen.mcs import (
    SERVICE_EXPORT,
    SERVICE_IMPORT,
    McsEndpointSlice,
    ServiceExport,
    ServiceImport,
    check_cluster_id,
)
from zonegen.model import (
    AAAA,
    ENDPOINT_SLICE,
    ENDPOINTS,
    SERVICE,
    SRV,
    TXT,
    A,
    Diff,
    Endpoints,
    EndpointSlice,
    Port,
    Record,
    RecordSet,
    Service,
)
from zonegen.names import check_label, check_name, endpoint_label, service_owner, srv_owner
from zonegen.project import _port_key, effective_slices

DEFAULT_ZONE = "clusterset.local."
"""MCS §2.1: ``<clustersetzone>`` "must be ``clusterset.local``" today; zonegen lets the
operator name another (a zone served outside the clusters), as the issue asks."""

SCHEMA_VERSION = "1.0.0"
DNS_VERSION = Record("dns-version", TXT, (SCHEMA_VERSION,), 28800)
"""MCS §2.2: ``dns-version.<clustersetzone>`` TXT "1.0.0"; TTL 28800 as in the spec's
example (and as ``project.DNS_VERSION`` for the cluster-local zone)."""

APEX_RECORDS: RecordSet = frozenset({DNS_VERSION})
"""Records every clusterset zone holds whatever the clusters contain (MCS §2.2)."""

SRV_PRIORITY = 0
SRV_WEIGHT = 100
"""Every clusterset SRV is ``0 100``. MCS §2.3.2/§2.4.2 leave priority and weight open.
Within one answer this selects targets exactly as CoreDNS's cluster-local
``floor(100 / n)`` does (RFC 2782: equal weights, equal chances), but a constant keeps
one cluster's change from rewriting every other cluster's SRVs: a cluster going away
removes only its own records, and the IXFR journal stays small. 100 is CoreDNS's own
zone-transfer weight (``plugin/kubernetes/xfr.go``) and the spec example's second field."""

_EMPTY: RecordSet = frozenset()
_S = TypeVar("_S", McsEndpointSlice, EndpointSlice)
_V = TypeVar("_V", ServiceImport, Service, Endpoints)

# A published endpoint address: (address, record type, owner ``H.C.S.N.svc`` or None when
# that name cannot be published; the address still counts in SRV weights).
_Published = tuple[str, int, str | None]


def _warn(warnings: list[InvalidName] | None, kind: str, namespace: str, name: str,
          reasons: Iterable[str]) -> None:
    if warnings is not None:
        warnings.append(InvalidName(kind, namespace, name, tuple(reasons)))


def _base(namespace: str, name: str, kind: str, zone: str,
          warnings: list[InvalidName] | None) -> str | None:
    """``S.N.svc`` relative to the zone, or None (with a warning) when S or N is not a
    lowercase RFC 1123 label or the name would not fit (same checks as ``project``)."""
    reasons = check_label(name) + check_label(namespace)
    reasons += [f"name {n!r} is not lowercase, as Kubernetes object names are"
                for n in (name, namespace) if n != n.lower() and not check_label(n)]
    base = service_owner(namespace, name)
    if not reasons:
        reasons = check_name(base, zone)
    if reasons:
        _warn(warnings, kind, namespace, name, reasons)
        return None
    return base


def records_for_import(service_import: ServiceImport, slices: Sequence[McsEndpointSlice],
                       warnings: list[InvalidName] | None = None,
                       zone: str = DEFAULT_ZONE) -> RecordSet:
    """Every record one ServiceImport publishes, owners relative to ``zone``.

    A pure function of the import and the MCS EndpointSlices of every member cluster;
    slices of other imports (another namespace or service-name label) are ignored. The
    order of ``slices`` never matters.

    :param zone: the clusterset zone, absolute; names over 255 octets in it are skipped.
    :param warnings: receives an :class:`~zonegen.errors.InvalidName` naming the object
        for every name that was skipped; the rest of the import is still published.
    """
    ns, name = service_import.namespace, service_import.name
    base = _base(ns, name, SERVICE_IMPORT, zone, warnings)
    if base is None:
        return _EMPTY
    if not service_import.headless:
        return _cluster_set_ip(service_import, base, zone, warnings)
    mine = [s for s in slices if s.import_key == service_import.key]
    return _headless(service_import.key, base, mine, zone, warnings)


def _cluster_set_ip(service_import: ServiceImport, base: str, zone: str,
                    warnings: list[InvalidName] | None) -> RecordSet:
    ns, name = service_import.namespace, service_import.name
    ips = service_import.ips
    if not ips:
        # A ClusterSetIP import without spec.ips (the controller has not allocated one
        # yet) has no address to publish, and SRVs must not point at a name without one.
        _warn(warnings, SERVICE_IMPORT, ns, name,
              ["ClusterSetIP import has no spec.ips; nothing published"])
        return _EMPTY
    out: set[Record] = set()
    for ip in ips:
        # MCS §2.3.1: S.N.svc.<clustersetzone> A/AAAA <clusterset-ip> (both families).
        out.add(Record(base, AAAA if ":" in ip else A, (ip,)))
    ports = service_import.ports
    for p in ports:
        if p.number is None:
            continue  # RECORDS.md: a port without a number gives no SRV
        # As the cluster-local zone and the mcs-api conformance suite (a SRV query of
        # S.N.svc.clusterset.local): bare S.N.svc SRV for every port, named or not.
        out.add(Record(base, SRV, (SRV_PRIORITY, SRV_WEIGHT, p.number, base)))
        if not p.name:
            continue  # MCS §2.3.2: "Unnamed ports do not have an SRV record."
        owner = _srv_owner(p, ns, name, zone, SERVICE_IMPORT, name, "", warnings)
        if owner is not None:
            # MCS §2.3.2: _port._proto.S.N.svc SRV <prio> <weight> <port> S.N.svc.
            out.add(Record(owner, SRV, (SRV_PRIORITY, SRV_WEIGHT, p.number, base)))
    # MCS §2.3.4: nothing disambiguates to one cluster's backends under a ClusterSetIP
    # import, so its endpoints (and their H.C.S.N.svc names) are not published at all.
    return frozenset(out)


def _srv_owner(port: Port, namespace: str, service: str, zone: str, kind: str,
               obj_name: str, cluster: str, warnings: list[InvalidName] | None) -> str | None:
    key = _port_key(port)
    text = srv_owner(key[0], key[1], namespace, service)
    reasons = check_name(text, zone)
    if reasons:
        where = f" (cluster {cluster})" if cluster else ""
        _warn(warnings, kind, namespace, obj_name, [r + where for r in reasons])
        return None
    return text


def _headless(key: tuple[str, str], base: str, slices: list[McsEndpointSlice], zone: str,
              warnings: list[InvalidName] | None) -> RecordSet:
    ns, _name = key
    # Deterministic order for warnings (records are a set anyway).
    ordered = sorted((s for s in slices if s.slice.address_type in ("IPv4", "IPv6")),
                     key=lambda s: (s.cluster_id, s.name))
    # MCS §2.4.4: nothing may exist at <clusterid>.S.N.svc. A dotted cluster id makes
    # H.C of one cluster equal to another cluster's id ("x" in "b" vs cluster "x.b"),
    # so such owners are refused, not published at a reserved name. Reserved are the
    # ids of the clusters backing this import (those that could be disambiguated to),
    # which keeps the records a function of the import and its own slices.
    reserved = {f"{s.cluster_id}.{base}" for s in ordered}
    published: list[tuple[list[_Published], McsEndpointSlice]] = []
    for ms in ordered:
        sl = ms.slice
        rtype = A if sl.address_type == "IPv4" else AAAA
        pubs: list[_Published] = []
        for ep in sl.endpoints:
            if not ep.ready:
                continue  # MCS §2.4.1: only _ready_ endpoints (absent means ready, model)
            bad_host = False
            for address in ep.addresses:
                # MCS §2.1 "hostname": the endpoint's hostname, else a unique
                # system-assigned identifier: the cluster-local dashed address (names).
                label, reasons = endpoint_label(address, ep.hostname)
                if reasons and not bad_host:
                    bad_host = True  # one warning per endpoint, not per address
                    _warn(warnings, ENDPOINT_SLICE, sl.namespace, sl.name,
                          [f"{r} (cluster {ms.cluster_id})" for r in reasons])
                # MCS §2.4.1: <hostname>.<clusterid>.S.N.svc A/AAAA per address.
                name = f"{label}.{ms.cluster_id}.{base}"
                owner: str | None = name
                if name in reserved:
                    _warn(warnings, ENDPOINT_SLICE, sl.namespace, sl.name,
                          [f"name {name} is the reserved cluster name of another cluster "
                           f"(MCS §2.4.4); skipped (cluster {ms.cluster_id})"])
                    owner = None
                else:
                    too_long = check_name(name, zone)
                    if too_long:
                        # RECORDS.md: a name over 255 octets is skipped with a warning.
                        _warn(warnings, ENDPOINT_SLICE, sl.namespace, sl.name,
                              [f"{r} (cluster {ms.cluster_id})" for r in too_long])
                        owner = None
                pubs.append((address, rtype, owner))
        published.append((pubs, ms))
    out: set[Record] = set()
    for pubs, _ms in published:
        for address, rtype, owner in pubs:
            # MCS §2.4.1: S.N.svc A/AAAA for every ready endpoint across the clusterset.
            out.add(Record(base, rtype, (address,)))
            if owner is not None:
                out.add(Record(owner, rtype, (address,)))
    if not out:
        # MCS §2.4.1: "If there are no _ready_ endpoints ... the answer should be NXDOMAIN".
        return _EMPTY
    for pubs, ms in published:
        if not pubs:
            continue
        sl = ms.slice
        # As cluster-local headless Services (RECORDS.md): an SRV uses the port of the
        # slice that holds the address; the import's own spec.ports play no part.
        numbers = [p.number for p in sl.ports if p.number is not None]
        named: list[tuple[int, str]] = []
        for p in sl.ports:
            if p.number is None or not p.name:
                continue  # MCS §2.4.2: "Unnamed ports do not have an SRV record."
            owner = _srv_owner(p, ns, key[1], zone, ENDPOINT_SLICE, sl.name, ms.cluster_id,
                               warnings)
            if owner is not None:
                named.append((p.number, owner))
        for _address, _rtype, target in pubs:
            if target is None:
                continue
            for number in numbers:
                # Bare S.N.svc SRV per (ready address, port), as cluster-local and as the
                # mcs-api conformance suite queries it.
                out.add(Record(base, SRV, (SRV_PRIORITY, SRV_WEIGHT, number, target)))
            for number, owner in named:
                # MCS §2.4.2: _port._proto.S.N.svc SRV ... <hostname>.<clusterid>.S.N.svc.
                out.add(Record(owner, SRV, (SRV_PRIORITY, SRV_WEIGHT, number, target)))
    return frozenset(out)


def clusterset_from_imports(imports: Iterable[ServiceImport],
                            slices: Iterable[McsEndpointSlice],
                            warnings: list[InvalidName] | None = None,
                            zone: str = DEFAULT_ZONE) -> RecordSet:
    """The whole clusterset zone's records from one cluster's (hub's or member's) view:
    every import's records plus :data:`APEX_RECORDS`. Slices without an import yield
    nothing until it appears (as slices without a Service, RECORDS.md)."""
    by_import: dict[tuple[str, str], list[McsEndpointSlice]] = {}
    for s in slices:
        by_import.setdefault(s.import_key, []).append(s)
    parts = [records_for_import(imp, by_import.get(imp.key, ()), warnings, zone)
             for imp in sorted(imports, key=lambda i: i.key)]
    return frozenset(chain(APEX_RECORDS, *parts))


# --------------------------------------------------------------------------- exports


@dataclass(frozen=True, slots=True)
class ExportedService:
    """One member cluster's exported Service: the cluster id (the zonegen source's
    configured id), the Service, and its slices (EndpointSlices, plus the slices of its
    legacy Endpoints, chosen by ``project.effective_slices``)."""

    cluster_id: str
    service: Service
    slices: tuple[EndpointSlice, ...]


@dataclass(frozen=True, slots=True)
class ClusterObjects:
    """What one zonegen source holds that clusterset derivation reads: its cluster id,
    Services, EndpointSlices (and legacy Endpoints' slices) and ServiceExports."""

    cluster_id: str
    services: tuple[Service, ...]
    slices: tuple[EndpointSlice, ...]
    exports: tuple[ServiceExport, ...]


def records_for_exports(namespace: str, name: str, members: Sequence[ExportedService],
                        warnings: list[InvalidName] | None = None,
                        zone: str = DEFAULT_ZONE) -> RecordSet:
    """The records a ServiceImport would publish for Service ``namespace/name`` exported
    from ``members``, derived without an MCS controller.

    Only headless exports are derivable: a ClusterSetIP is allocated by an MCS controller
    and no cluster IP of a member is reachable from the others, so an exported ClusterIP
    (or NodePort/LoadBalancer) Service gives nothing, with a warning; ExternalName
    Services cannot be exported at all (KEP-1645). The headless records are exactly
    :func:`records_for_import`'s for a Headless import whose MCS slices are each member's
    own slices labelled with its cluster id; members of another namespace/name are
    ignored.
    """
    mcs_slices: list[McsEndpointSlice] = []
    for m in sorted(members, key=lambda m: m.cluster_id):
        svc = m.service
        if (svc.namespace, svc.name) != (namespace, name):
            continue
        if not svc.headless:
            why = ("an ExternalName Service cannot be exported" if svc.type == "ExternalName"
                   else f"a {svc.type} Service needs an MCS controller for its ClusterSetIP")
            _warn(warnings, SERVICE, namespace, name,
                  [f"exported from cluster {m.cluster_id}: {why}; not in the clusterset zone"])
            continue
        own = [s for s in m.slices if s.service_key == svc.key]
        mcs_slices.extend(McsEndpointSlice(m.cluster_id, s) for s in effective_slices(own))
    synthetic = ServiceImport(namespace=namespace, name=name, uid="", resource_version="",
                              headless=True, ips=(), ports=())
    return records_for_import(synthetic, mcs_slices, warnings, zone)


def clusterset_from_exports(clusters: Iterable[ClusterObjects],
                            warnings: list[InvalidName] | None = None,
                            zone: str = DEFAULT_ZONE) -> RecordSet:
    """The whole clusterset zone derived from several sources' ServiceExports (namespace
    sameness, KEP-1645: ``N/S`` is one Service in every cluster that exports it), plus
    :data:`APEX_RECORDS`. A Service is a member only in the clusters that both hold it
    and export it; a ServiceExport without its Service contributes nothing.

    :raises InvalidZone: a cluster id is not an RFC 1123 subdomain, or two sources share one.
    """
    members: dict[tuple[str, str], list[ExportedService]] = {}
    seen: set[str] = set()
    for c in clusters:
        reasons = check_cluster_id(c.cluster_id)
        if reasons:
            raise InvalidZone("; ".join(reasons))
        if c.cluster_id in seen:
            raise InvalidZone(f"cluster id {c.cluster_id!r} is given to two sources")
        seen.add(c.cluster_id)
        exported = {e.key for e in c.exports}
        by_service: dict[tuple[str, str], list[EndpointSlice]] = {}
        for s in c.slices:
            by_service.setdefault(s.service_key, []).append(s)
        for svc in c.services:
            if svc.key in exported:
                members.setdefault(svc.key, []).append(
                    ExportedService(c.cluster_id, svc, tuple(by_service.get(svc.key, ()))))
    parts = [records_for_exports(ns, name, group, warnings, zone)
             for (ns, name), group in sorted(members.items())]
    return frozenset(chain(APEX_RECORDS, *parts))


# --------------------------------------------------------------------------- folding


class _RecordsByService:
    """A clusterset zone's records kept per ``(namespace, Service)`` key, apex records
    apart: what both incremental projections below share. Keys never share an owner
    (every owner contains ``S.N``), so the zone is the union and replacing one key's
    records is one set difference."""

    __slots__ = ("_count", "_records", "zone")

    def __init__(self, zone: str = DEFAULT_ZONE) -> None:
        self.zone = zone
        self._records: dict[tuple[str, str], RecordSet] = {}
        self._count = len(APEX_RECORDS)

    def __len__(self) -> int:
        """Number of records in the zone, apex records included; O(1)."""
        return self._count

    def records(self) -> RecordSet:
        return frozenset(chain(APEX_RECORDS, *self._records.values()))

    def keys(self) -> list[tuple[str, str]]:
        """The ``(namespace, name)`` keys that hold records now (apex records apart)."""
        return list(self._records)

    def records_of(self, key: tuple[str, str]) -> RecordSet:
        """The records of one key (empty when it has none): what the runner stores
        per key in the read model."""
        return self._records.get(key, _EMPTY)

    def _replace(self, key: tuple[str, str], new: RecordSet) -> Diff:
        """Make ``new`` the records of ``key``; what that did to the zone."""
        old = self._records.get(key, _EMPTY)
        if new == old:
            return Diff()
        if new:
            self._records[key] = new
        else:
            del self._records[key]
        self._count += len(new) - len(old)
        return Diff(new - old, old - new)

    def _recompute(self, key: tuple[str, str], warnings: list[InvalidName] | None) -> Diff:
        raise NotImplementedError

    def _recompute_all(self, touched: Iterable[tuple[str, str]],
                       warnings: list[InvalidName] | None) -> Diff:
        diff = Diff()
        for key in touched:
            diff = diff.then(self._recompute(key, warnings))
        return diff


def _put(objects: dict[tuple[str, str], _V], key: tuple[str, str], obj: _V | None) -> bool:
    """Keep ``obj`` as ``key``'s object (None: it was deleted); whether that changed the
    objects at all (deleting an unknown object changes nothing)."""
    if obj is not None:
        objects[key] = obj
        return True
    return objects.pop(key, None) is not None


def _move_slice(groups: dict[tuple[str, str], dict[str, _S]],
                owner_of: dict[tuple[str, str], tuple[str, str]], namespace: str, name: str,
                obj: _S | None, new: tuple[str, str] | None) -> list[tuple[str, str]]:
    """Re-file slice ``namespace/name`` from the group it was in to ``new`` (None: it is
    gone or names no Service); the group keys whose records must be recomputed."""
    touched: list[tuple[str, str]] = []
    old = owner_of.pop((namespace, name), None)
    if old is not None:
        group = groups[old]
        del group[name]
        if not group:
            del groups[old]
        touched.append(old)
    if obj is not None and new is not None:
        groups.setdefault(new, {})[name] = obj
        owner_of[(namespace, name)] = new
        if new != old:
            touched.append(new)
    return touched


class ClustersetProjection(_RecordsByService):
    """The current ServiceImports, MCS slices and records of one clusterset zone, updated
    one change at a time; only the import a change touches is recomputed.

    The incremental twin of :func:`clusterset_from_imports` (a test folds random change
    sequences and compares): the runner will feed it a source's ServiceImport and MCS
    EndpointSlice events, as it feeds ``project.Projection`` the cluster-local ones.
    Records of different imports never overlap (every owner contains ``S.N``), so the
    zone is their union and a change's :class:`~zonegen.model.Diff` is one set difference.
    """

    __slots__ = ("_imports", "_slice_import", "_slices")

    def __init__(self, zone: str = DEFAULT_ZONE) -> None:
        super().__init__(zone)
        self._imports: dict[tuple[str, str], ServiceImport] = {}
        self._slices: dict[tuple[str, str], dict[str, McsEndpointSlice]] = {}
        self._slice_import: dict[tuple[str, str], tuple[str, str]] = {}  # (ns, slice) -> import

    def apply(self, kind: str, namespace: str, name: str,
              obj: ServiceImport | McsEndpointSlice | None,
              warnings: list[InvalidName] | None = None) -> Diff:
        """Fold one change (``obj`` None: the object was deleted) and return what it did
        to the zone. ``kind`` is ``ServiceImport`` or ``EndpointSlice``; other kinds, and
        deleting an unknown object, change nothing. A slice whose import is absent is
        kept and yields records once the import appears."""
        return self._recompute_all(self._file(kind, namespace, name, obj), warnings)

    def load(self, changes: Iterable[tuple[str, str, str, ServiceImport | McsEndpointSlice
                                           | None]]) -> None:
        """Fold many ``(kind, namespace, name, obj)`` changes, recomputing each touched
        import once at the end, without diffs or warnings: loading a state (the records
        are what :meth:`apply` one at a time gives)."""
        touched: set[tuple[str, str]] = set()
        for kind, namespace, name, obj in changes:
            touched.update(self._file(kind, namespace, name, obj))
        self._recompute_all(sorted(touched), None)

    def _file(self, kind: str, namespace: str, name: str,
              obj: ServiceImport | McsEndpointSlice | None) -> list[tuple[str, str]]:
        """Keep the object; the import keys whose records must be recomputed."""
        touched: list[tuple[str, str]] = []
        if kind == SERVICE_IMPORT:
            key = (namespace, name)
            if _put(self._imports, key, obj if isinstance(obj, ServiceImport) else None):
                touched.append(key)
        elif kind == ENDPOINT_SLICE:
            # The MCS service-name label, same namespace, names the import (mcs.py).
            mcs = obj if isinstance(obj, McsEndpointSlice) else None
            touched += _move_slice(self._slices, self._slice_import, namespace, name, mcs,
                                   mcs.import_key if mcs is not None else None)
        return touched

    def _recompute(self, key: tuple[str, str], warnings: list[InvalidName] | None) -> Diff:
        imp = self._imports.get(key)
        return self._replace(key, _EMPTY if imp is None else records_for_import(
            imp, list(self._slices.get(key, {}).values()), warnings, self.zone))


class _ClusterIndex:
    """One source's objects that export derivation reads, indexed by Service key."""

    __slots__ = ("endpoints", "exports", "services", "slice_service", "slices")

    def __init__(self) -> None:
        self.services: dict[tuple[str, str], Service] = {}
        self.slices: dict[tuple[str, str], dict[str, EndpointSlice]] = {}
        self.slice_service: dict[tuple[str, str], tuple[str, str]] = {}  # (ns, slice) -> key
        self.endpoints: dict[tuple[str, str], Endpoints] = {}
        self.exports: set[tuple[str, str]] = set()

    def member(self, cluster_id: str, key: tuple[str, str]) -> ExportedService | None:
        svc = self.services.get(key)
        if svc is None or key not in self.exports:
            return None
        legacy = self.endpoints.get(key)
        # effective_slices (in records_for_exports) prefers real slices over legacy ones.
        slices = (*self.slices.get(key, {}).values(), *(legacy.slices if legacy else ()))
        return ExportedService(cluster_id, svc, slices)


class ExportsProjection(_RecordsByService):
    """The clusterset zone derived from several sources' ServiceExports, updated one
    change at a time: a change of any source recomputes only the ``N/S`` it touches,
    over that Service's members in every source (:func:`records_for_exports`).

    The incremental twin of :func:`clusterset_from_exports` (fold-vs-rebuild tested).
    """

    __slots__ = ("_clusters",)

    def __init__(self, zone: str = DEFAULT_ZONE) -> None:
        super().__init__(zone)
        self._clusters: dict[str, _ClusterIndex] = {}

    def apply(self, cluster_id: str, kind: str, namespace: str, name: str,
              obj: Service | EndpointSlice | Endpoints | ServiceExport | None,
              warnings: list[InvalidName] | None = None) -> Diff:
        """Fold one change of source ``cluster_id`` (``obj`` None: deleted) and return
        what it did to the zone. Kinds: Service, EndpointSlice, Endpoints, ServiceExport.

        :raises InvalidZone: ``cluster_id`` is not an RFC 1123 subdomain.
        """
        return self._recompute_all(self._file(cluster_id, kind, namespace, name, obj),
                                   warnings)

    def load(self, changes: Iterable[tuple[str, str, str, str, Service | EndpointSlice
                                           | Endpoints | ServiceExport | None]]) -> None:
        """Fold many ``(cluster_id, kind, namespace, name, obj)`` changes, recomputing
        each touched Service once at the end, without diffs or warnings: loading a state.

        :raises InvalidZone: a cluster id is not an RFC 1123 subdomain.
        """
        touched: set[tuple[str, str]] = set()
        for cluster_id, kind, namespace, name, obj in changes:
            touched.update(self._file(cluster_id, kind, namespace, name, obj))
        self._recompute_all(sorted(touched), None)

    def _file(self, cluster_id: str, kind: str, namespace: str, name: str,
              obj: Service | EndpointSlice | Endpoints | ServiceExport | None
              ) -> list[tuple[str, str]]:
        """Keep the object; the Service keys whose records must be recomputed."""
        index = self._clusters.get(cluster_id)
        if index is None:
            reasons = check_cluster_id(cluster_id)
            if reasons:
                raise InvalidZone("; ".join(reasons))
            index = self._clusters[cluster_id] = _ClusterIndex()
        key = (namespace, name)
        touched: list[tuple[str, str]] = []
        if kind == SERVICE:
            if _put(index.services, key, obj if isinstance(obj, Service) else None):
                touched.append(key)
        elif kind == ENDPOINTS:
            if _put(index.endpoints, key, obj if isinstance(obj, Endpoints) else None):
                touched.append(key)
        elif kind == SERVICE_EXPORT:
            if isinstance(obj, ServiceExport):
                index.exports.add(key)
                touched.append(key)
            elif obj is None and key in index.exports:
                index.exports.discard(key)
                touched.append(key)
        elif kind == ENDPOINT_SLICE:
            piece = obj if isinstance(obj, EndpointSlice) and obj.service_name else None
            touched += _move_slice(index.slices, index.slice_service, namespace, name, piece,
                                   piece.service_key if piece is not None else None)
        return touched

    def _recompute(self, key: tuple[str, str], warnings: list[InvalidName] | None) -> Diff:
        members = [m for cid, index in sorted(self._clusters.items())
                   if (m := index.member(cid, key)) is not None]
        return self._replace(key, records_for_exports(
            key[0], key[1], members, warnings, self.zone) if members else _EMPTY)
