"""The projector: Services and their EndpointSlices (or legacy Endpoints) to DNS records.

:func:`records_for_service` is the Kubernetes DNS specification (schema 1.1.0) as CoreDNS
answers it, rule by rule as written down in RECORDS.md; :class:`Projection` folds changes
one at a time and recomputes only the Service a change touches. Pure: imports only the
stdlib, ``zonegen.model``, ``zonegen.names`` and ``zonegen.errors`` — no I/O, no clock.

Spec: https://github.com/kubernetes/dns/blob/master/docs/specification.md (cited "spec §").
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import chain

from zonegen.errors import InvalidName
from zonegen.model import (
    AAAA,
    CNAME,
    ENDPOINT_SLICE,
    ENDPOINTS,
    PTR,
    SERVICE,
    SRV,
    TXT,
    A,
    Change,
    Diff,
    Endpoints,
    EndpointSlice,
    Port,
    Record,
    RecordSet,
    Service,
    record_of,
)
from zonegen.names import (
    MAX_NAME,
    absolute,
    address_label,
    check_label,
    check_name,
    external_target,
    ptr_owner,
    service_owner,
    srv_owner,
    wire_length,
)

ServiceKey = tuple[str, str]
NO_SERVICE: ServiceKey = ("", "")
"""The Service key of records of no Service (the apex) in :meth:`Projection.rows`."""
ObjectRow = tuple[str, str, str, int, str, str]
"""kind, namespace, name, seq, Service namespace, Service name: an object the projection
holds, the event its state comes from and the Service it feeds (the read model's
``projected_objects``)."""
_EMPTY: RecordSet = frozenset()
_ABSENT: object = object()


@dataclass(frozen=True, slots=True)
class BatchDiff:
    """What a batch of events did to the zone, net: each added (removed) record with its
    cause, the seq of the last event whose own change added (removed) it. The same
    mapping ``net_change`` makes from per-event diffs, which ``history``/``why`` read."""

    added: dict[Record, int] = field(default_factory=dict)
    removed: dict[Record, int] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.added or self.removed)

SCHEMA_VERSION = "1.1.0"
DNS_VERSION = Record("dns-version", TXT, (SCHEMA_VERSION,), 28800)
"""spec §2.2: ``dns-version.Z`` TXT holds the schema version; CoreDNS gives it TTL 28800."""

APEX_RECORDS: RecordSet = frozenset({DNS_VERSION})
"""Records every projection holds whatever the cluster contains (spec §2.2)."""


def srv_weight(n: int) -> int:
    """CoreDNS's SRV weight for a question that found ``n`` (address, port) pairs before
    duplicates were removed: ``max(1, floor(100 / n))`` (RECORDS.md "SRV weights";
    ``plugin/backend_lookup.go``). 1→100, 2→50, 3→33, 24→4, 51 and more→1."""
    return max(1, 100 // n) if n > 0 else 100


def _warn(warnings: list[InvalidName] | None, kind: str, namespace: str, name: str,
          reasons: Iterable[str]) -> None:
    if warnings is not None:
        warnings.append(InvalidName(kind, namespace, name, tuple(reasons)))


def _slice_origin(sl: EndpointSlice) -> tuple[str, str]:
    """(kind, name) of the object a slice came from, for warnings that name the object.
    Legacy slices are named ``<endpoints name>#<subset>-<family>`` by ``model``."""
    if sl.legacy:
        return ENDPOINTS, sl.name.partition("#")[0]
    return ENDPOINT_SLICE, sl.name


def effective_slices(slices: Sequence[EndpointSlice]) -> list[EndpointSlice]:
    """The slices whose addresses a Service publishes.

    RECORDS.md "Which endpoint addresses are published": when a Service has any
    EndpointSlice (of any address type, even empty) its legacy Endpoints are ignored,
    since Kubernetes mirrors them into slices and reading both would count twice; FQDN
    slices are ignored (spec §2.4 only defines A/AAAA for endpoints).
    """
    real = [s for s in slices if not s.legacy]
    chosen = real if real else [s for s in slices if s.legacy]
    return [s for s in chosen if s.address_type in ("IPv4", "IPv6")]


# A published address: (address, record type, owner ``H.S.N.svc`` or None when that name
# would be invalid; the address still counts in SRV weights, RECORDS.md).
_Published = tuple[str, int, str | None]


def _published(service: Service, base: str, slices: list[EndpointSlice],
               warnings: list[InvalidName] | None) -> list[tuple[list[_Published], EndpointSlice]]:
    """Per slice, its published addresses with their ``H.S.N.svc`` owners."""
    # Octets left for "H." under S.N.svc.cluster.local. (RFC 1035 §2.3.4: 255 in all).
    room = MAX_NAME - wire_length(absolute(base))
    out: list[tuple[list[_Published], EndpointSlice]] = []
    for sl in slices:
        # RECORDS.md: addressType IPv4 -> A, IPv6 -> AAAA (wrong-family addresses were
        # already dropped by the reducer and count nowhere).
        rtype = A if sl.address_type == "IPv4" else AAAA
        pubs: list[_Published] = []
        for ep in sl.endpoints:
            # RECORDS.md: published when conditions.ready is true or absent; the reducer
            # decided that (and Kubernetes folded publishNotReadyAddresses into it).
            if not ep.ready:
                continue
            host: str | None = None
            if ep.hostname:
                reasons = check_label(ep.hostname)
                if reasons:
                    # RECORDS.md: an invalid hostname is treated as absent, with a warning,
                    # so the address gets its dashed label and its SRVs survive.
                    kind, name = _slice_origin(sl)
                    _warn(warnings, kind, sl.namespace, name,
                          [f"hostname {ep.hostname!r} ignored: " + "; ".join(reasons)])
                else:
                    host = ep.hostname.lower()
            for address in ep.addresses:
                # spec §2.4.1: H is the hostname, else the dashed address (every address
                # of the endpoint counts, RECORDS.md), repaired to stay a valid label.
                label = host or address_label(address)
                owner: str | None = f"{label}.{base}"
                if len(label) + 1 > room:
                    # RECORDS.md: a name over 255 octets is skipped with a warning.
                    kind, name = _slice_origin(sl)
                    _warn(warnings, kind, sl.namespace, name,
                          [f"name {owner}.cluster.local. is longer than {MAX_NAME} octets"])
                    owner = None
                pubs.append((address, rtype, owner))
        out.append((pubs, sl))
    return out


class _SrvOwners:
    """``_port._proto.S.N.svc`` owners of one Service, checked once each (RECORDS.md: a
    64-octet ``_`` + port-name label makes the SRV unpublishable, with one warning)."""

    __slots__ = ("_base", "_owners", "_service", "_warnings")

    def __init__(self, service: Service, warnings: list[InvalidName] | None) -> None:
        self._service = service
        self._warnings = warnings
        self._owners: dict[tuple[str, str], str | None] = {}

    def get(self, port: Port, kind: str, obj_name: str) -> str | None:
        key = _port_key(port)
        if key in self._owners:
            return self._owners[key]
        svc = self._service
        text = srv_owner(key[0], key[1], svc.namespace, svc.name)
        reasons = check_name(text)
        owner = None if reasons else text
        if reasons:
            _warn(self._warnings, kind, svc.namespace, obj_name, reasons)
        self._owners[key] = owner
        return owner


def _port_key(port: Port) -> tuple[str, str]:
    """How CoreDNS matches ``_port._proto`` to a port: name and protocol, case-insensitive
    (``matchPortAndProtocol``); RECORDS.md: ``_proto`` is the lowercased protocol."""
    return port.name.lower(), port.protocol.lower()


def records_for_service(service: Service, slices: Sequence[EndpointSlice],
                        warnings: list[InvalidName] | None = None) -> RecordSet:
    """Every record one Service publishes, owners relative to the cluster domain.

    A pure function of the Service and its EndpointSlices (DESIGN.md "The projection"):
    ``slices`` are all the slices whose ``kubernetes.io/service-name`` names it, plus the
    slices of its legacy Endpoints (used only when there is no real slice).

    :param warnings: receives an :class:`~zonegen.errors.InvalidName` for every name that
        was skipped; the rest of the Service is still published.
    """
    ns, name = service.namespace, service.name
    # spec §2.3.1 / §2.4.1: everything hangs under S.N.svc. Kubernetes guarantees S and N
    # are single labels; hand-made data might not, and a dot would alias another name.
    reasons = check_label(name) + check_label(ns)
    # Kubernetes names are lowercase; a mixed-case one (hand-made data) would alias the
    # lowercase Service's owners, and Projection relies on Services never overlapping.
    reasons += [f"name {n!r} is not lowercase, as Kubernetes object names are"
                for n in (name, ns) if n != n.lower() and not check_label(n)]
    base = service_owner(ns, name)
    if not reasons:
        reasons = check_name(base)
    if reasons:
        _warn(warnings, SERVICE, ns, name, reasons)
        return _EMPTY
    if service.type == "ExternalName":
        return _external_name(service, base, warnings)
    chosen = effective_slices(slices)
    if service.headless:
        return _headless(service, base, chosen, warnings)
    if not service.cluster_ips:
        # RECORDS.md: a ClusterIP/NodePort/LoadBalancer Service with neither clusterIP
        # nor clusterIPs (hand-made data only) publishes nothing, with a warning.
        _warn(warnings, SERVICE, ns, name,
              [f"Service of type {service.type} has no cluster IP; nothing published"])
        return _EMPTY
    return _cluster_ip(service, base, chosen, warnings)


def _external_name(service: Service, base: str, warnings: list[InvalidName] | None) -> RecordSet:
    # spec §2.5.1: S.N.svc.Z CNAME to spec.externalName, and nothing else at or below it.
    target, reasons = external_target(service.external_name)
    if target is None:
        # RECORDS.md: an IP address or an invalid domain name gives no record.
        _warn(warnings, SERVICE, service.namespace, service.name, reasons)
        return _EMPTY
    if target == absolute(base):
        # RECORDS.md: a value equal to the Service's own name gives no record (CoreDNS
        # does the same). Checked against cluster.local.; renderers re-check other zones.
        _warn(warnings, SERVICE, service.namespace, service.name,
              [f"externalName {service.external_name!r} is the Service's own name"])
        return _EMPTY
    return frozenset({Record(base, CNAME, (target,))})


def _headless(service: Service, base: str, slices: list[EndpointSlice],
              warnings: list[InvalidName] | None) -> RecordSet:
    published = _published(service, base, slices, warnings)
    out: set[Record] = set()
    add, new = out.add, record_of  # bound once: a replay makes millions of records here
    # CoreDNS's weights: n counts (address, port) pairs before duplicates are removed,
    # including ports without a number and names skipped as invalid (RECORDS.md).
    n_bare = 0
    n_named: dict[tuple[str, str], int] = {}
    for pubs, sl in published:
        if not pubs:
            continue
        # A slice without ports still counts once per address: CoreDNS adds a sentinel
        # port -1 that matches the bare question (object/endpoint.go) and gives no SRV.
        n_bare += len(pubs) * max(1, len(sl.ports))
        for port in sl.ports:
            if port.name:
                key = _port_key(port)
                n_named[key] = n_named.get(key, 0) + len(pubs)
        for address, rtype, owner in pubs:
            rdata = (address,)
            # spec §2.4.1: S.N.svc A/AAAA for every published endpoint address.
            add(new((base, rtype, rdata, None)))
            if owner is not None:
                # spec §2.4.1: H.S.N.svc A/AAAA for each published address.
                add(new((owner, rtype, rdata, None)))
                # RECORDS.md "Reverse zones": a published endpoint address -> H.S.N.svc,
                # one PTR per distinct target.
                add(new((ptr_owner(address), PTR, (owner,), None)))
    if not out:
        # spec §2.4.1 / RECORDS.md: no published address, no records at all (NXDOMAIN).
        return _EMPTY
    w_bare = srv_weight(n_bare)
    srv_owners = _SrvOwners(service, warnings)
    for pubs, sl in published:
        if not pubs:
            continue  # nothing published from this slice, and n_named never saw it
        kind, obj_name = _slice_origin(sl)
        # RECORDS.md: a headless SRV uses the port of the slice that holds the address;
        # a port without a number gives no SRV; the Service's own spec.ports play no part.
        numbers = [p.number for p in sl.ports if p.number is not None]
        named: list[tuple[int, str, int]] = []
        for p in sl.ports:
            if p.number is None or not p.name:
                continue  # spec §2.4.2: "unnamed ports do not have a SRV record"
            owner = srv_owners.get(p, kind, obj_name)
            if owner is not None:
                named.append((p.number, owner, srv_weight(n_named[_port_key(p)])))
        for _address, _rtype, target in pubs:
            if target is None:
                continue  # RECORDS.md: skipped target name, still counted in n above
            for number in numbers:
                # RECORDS.md: bare S.N.svc SRV per (published address, port), named or not.
                add(new((base, SRV, (0, w_bare, number, target), None)))
            for number, owner, weight in named:
                # spec §2.4.2: _port._proto.S.N.svc SRV 0 W port H.S.N.svc per address.
                add(new((owner, SRV, (0, weight, number, target), None)))
    return frozenset(out)


def _cluster_ip(service: Service, base: str, slices: list[EndpointSlice],
                warnings: list[InvalidName] | None) -> RecordSet:
    out: set[Record] = set()
    ips = service.cluster_ips
    for ip in ips:
        # spec §2.3.1: S.N.svc A/AAAA to each cluster IP (spec.clusterIPs, dual stack).
        out.add(Record(base, AAAA if ":" in ip else A, (ip,)))
        # RECORDS.md "Reverse zones": a cluster IP -> S.N.svc only.
        out.add(Record(ptr_owner(ip), PTR, (base,)))
    # RECORDS.md weights: n counts (cluster IP, port) pairs for the question; a Service
    # without ports gets CoreDNS's sentinel (no SRV at all).
    ports = service.ports
    w_bare = srv_weight(len(ips) * len(ports))
    n_named: dict[tuple[str, str], int] = {}
    for p in ports:
        if p.name:
            n_named[_port_key(p)] = n_named.get(_port_key(p), 0) + len(ips)
    srv_owners = _SrvOwners(service, warnings)
    for p in ports:
        if p.number is None:
            continue  # RECORDS.md: a port without a number gives no SRV (still counts in n)
        # RECORDS.md: bare S.N.svc SRV 0 W <service port> S.N.svc for every port.
        out.add(Record(base, SRV, (0, w_bare, p.number, base)))
        if p.name:  # spec §2.3.2: "unnamed ports do not have a SRV record"
            owner = srv_owners.get(p, SERVICE, service.name)
            if owner is not None:
                # spec §2.3.2: _port._proto.S.N.svc SRV 0 W <service port> S.N.svc.
                weight = srv_weight(n_named[_port_key(p)])
                out.add(Record(owner, SRV, (0, weight, p.number, base)))
    cluster = set(ips)
    for pubs, _sl in _published(service, base, slices, warnings):
        for address, rtype, owner in pubs:
            if owner is None:
                continue
            # RECORDS.md: H.S.N.svc A/AAAA for each published endpoint address of a
            # ClusterIP Service too, as CoreDNS answers them.
            out.add(record_of((owner, rtype, (address,), None)))
            if address not in cluster:
                # RECORDS.md "Reverse zones": other published endpoint addresses ->
                # H.S.N.svc (a cluster IP keeps only its S.N.svc PTR).
                out.add(record_of((ptr_owner(address), PTR, (owner,), None)))
    return frozenset(out)


# --------------------------------------------------------------------------- folding


def fed_service(change: Change) -> ServiceKey | None:
    """The Service whose records an object's new state feeds (``_fold``'s rule): its own
    key for a Service or Endpoints, the ``kubernetes.io/service-name`` label's for an
    EndpointSlice; None when the projection holds nothing for it (deleted, rejected by
    the reducers, an unlabelled slice, a kind the projector does not read)."""
    obj = change.obj
    if isinstance(obj, (Service, Endpoints)):
        return (change.namespace, change.name)
    if isinstance(obj, EndpointSlice) and obj.service_name:
        return (change.namespace, obj.service_name)
    return None


def object_rows(changes: Iterable[tuple[int, Change]]) -> tuple[list[ObjectRow],
                                                             list[tuple[str, str, str]]]:
    """What ``changes`` (in order) leave in the read model's object index: the rows of
    objects the projection holds after them (:data:`ObjectRow`) and the keys of those it
    no longer holds. The last change of each object wins."""
    last: dict[tuple[str, str, str], tuple[int, Change]] = {}
    for seq, change in changes:
        last[(change.kind, change.namespace, change.name)] = (seq, change)
    rows: list[ObjectRow] = []
    dropped: list[tuple[str, str, str]] = []
    for key, (seq, change) in last.items():
        fed = fed_service(change)
        if fed is None:
            dropped.append(key)
        else:
            rows.append((*key, seq, *fed))
    return rows, dropped


class Projection:
    """The current objects and records, updated in place one change at a time.

    Deliberately a mutable container, not a persistent map: copying a dict of 10,000
    Services per event would make a 100k-event replay O(n²), and Python has no cheap
    persistent map in the stdlib. Purity lives in :func:`records_for_service`; this class
    only indexes its inputs and outputs. Records of different Services never overlap
    (every owner or PTR target contains ``S.N``, both single labels), so the zone is
    their union with one exception, which needs a view across Services: RECORDS.md
    "Reverse zones" gives a cluster IP only its ``S.N.svc`` PTR "even if the address is
    also an endpoint" (CoreDNS looks Services up first), so an endpoint PTR of one
    Service is hidden while any Service has that address as a cluster IP (possible only
    in hand-made data). ``_cluster_ptrs`` and ``_endpoint_ptrs`` count PTRs per reverse
    owner, so only a real overlap costs a scan.
    """

    __slots__ = ("_cluster_ptrs", "_count", "_endpoint_ptrs", "_endpoints", "_loaded",
                 "_others", "_ptr_owners", "_raw", "_records", "_services",
                 "_slice_service", "_slices")

    def __init__(self) -> None:
        self._services: dict[ServiceKey, Service] = {}
        self._slices: dict[ServiceKey, dict[str, EndpointSlice]] = {}
        self._slice_service: dict[tuple[str, str], ServiceKey] = {}  # (ns, slice) -> service
        self._endpoints: dict[ServiceKey, Endpoints] = {}
        self._records: dict[ServiceKey, RecordSet] = {}  # per Service, shadowed PTRs too
        self._cluster_ptrs: dict[str, int] = {}  # reverse owner -> Services with that cluster IP
        self._endpoint_ptrs: dict[str, int] = {}  # reverse owner -> endpoint PTRs there
        self._raw = 0  # records of all Services, shadowed PTRs included
        self._count = len(APEX_RECORDS)  # visible records
        # Partial projections only (the runner on the read model, see load_*): the
        # Services whose objects and records were loaded, the reverse owners whose PTR
        # counts were, and other Services' PTRs at those owners (what the cross-Service
        # PTR rule reads there).
        self._loaded: set[ServiceKey] = set()
        self._ptr_owners: set[str] = set()
        self._others: dict[ServiceKey, set[Record]] = {}

    def __len__(self) -> int:
        """Number of records in the zone, apex records included; O(1)."""
        return self._count

    def records(self) -> RecordSet:
        """The whole record set: every Service's records and :data:`APEX_RECORDS`, less
        endpoint PTRs shadowed by another Service's cluster IP."""
        return frozenset(self.visible_records())

    def visible_records(self) -> Iterator[Record]:
        """:meth:`records` one by one, without building the set (each once: records of
        different Services never overlap)."""
        records = chain(APEX_RECORDS, *self._records.values())
        if self._count == self._raw + len(APEX_RECORDS):
            return records  # nothing shadowed
        return (r for r in records if not self._shadowed(r))

    def _shadowed(self, r: Record) -> bool:
        return r.rtype == PTR and not _is_cluster_ptr(r) and r.owner in self._cluster_ptrs

    def service_records(self, namespace: str, name: str) -> RecordSet:
        """The records :func:`records_for_service` gives one Service (empty when none),
        before cross-Service PTR shadowing."""
        return self._records.get((namespace, name), _EMPTY)

    def visible(self, r: Record) -> bool:
        """Whether ``r`` (a record of some Service) is in the zone: RECORDS.md "Reverse
        zones", an endpoint PTR is hidden while a cluster IP has that address."""
        return not self._shadowed(r)

    def rows(self) -> Iterator[tuple[ServiceKey, Record, bool]]:
        """Every record with its Service (:data:`NO_SERVICE` for the apex) and whether
        it is visible: the read model's ``current_records`` (docs/DESIGN.md "Read
        model")."""
        for r in APEX_RECORDS:
            yield NO_SERVICE, r, True
        for key, records in self._records.items():
            for r in records:
                yield key, r, not (r.rtype == PTR and self._shadowed(r))

    def service_keys(self) -> Iterator[ServiceKey]:
        """The Services that have records."""
        return iter(self._records)

    # ---- partial projections: the runner on the read model (docs/DESIGN.md "Read model")

    def is_loaded(self, key: ServiceKey) -> bool:
        return key in self._loaded

    def loaded_services(self) -> Iterator[ServiceKey]:
        """Services loaded by :meth:`load_service` (the only ones a partial projection
        may recompute)."""
        return iter(self._loaded)

    def slice_service(self, namespace: str, name: str) -> ServiceKey | None:
        """The Service a known EndpointSlice feeds now (None: unknown or unlabelled)."""
        return self._slice_service.get((namespace, name))

    def load_service(self, key: ServiceKey, records: RecordSet) -> None:
        """Take one Service's stored records (its objects come by :meth:`load_objects`)
        as they were last computed. A Service is loaded at most once and before any
        change touches it."""
        self._loaded.add(key)
        self._others.pop(key, None)
        if records:
            self._records[key] = records
            self._raw += len(records)

    def load_objects(self, changes: Iterable[Change]) -> None:
        """Take stored objects into the indexes without recomputing anything."""
        for change in changes:
            self._fold(change)

    def needs_ptr_owners(self, owners: Iterable[str]) -> set[str]:
        """Those of ``owners`` whose PTR context is not loaded yet."""
        return {o for o in owners if o not in self._ptr_owners}

    def load_ptrs(self, owners: Iterable[str], stored: Iterable[tuple[ServiceKey, Record]]
                  ) -> None:
        """Take every stored PTR at ``owners`` (reverse names none of this projection's
        changes has touched yet): their counts for the PTR rule, and those of Services
        not loaded, which a shadowing toggle there may show or hide."""
        self._ptr_owners.update(owners)
        cluster, endpoint = self._cluster_ptrs, self._endpoint_ptrs
        for key, r in stored:
            counts = cluster if _is_cluster_ptr(r) else endpoint
            counts[r.owner] = counts.get(r.owner, 0) + 1
            if key not in self._loaded:
                self._others.setdefault(key, set()).add(r)

    def other_ptrs(self) -> Iterator[tuple[ServiceKey, Record]]:
        """The loaded PTRs of Services not loaded."""
        for key, records in self._others.items():
            for r in records:
                yield key, r

    def apply(self, change: Change, warnings: list[InvalidName] | None = None) -> Diff:
        """Fold one change and return what it did to the zone.

        Only the Service(s) the change touches are recomputed: a Service change its own
        key, a slice its old and new Service (a label change moves it), Endpoints their
        Service. Deleting an unknown object is a no-op; a slice whose Service is absent
        is kept and yields records once the Service appears (RECORDS.md).
        """
        total = Diff()
        for key in self._fold(change):
            diff = self._recompute(key, warnings)
            # then(), not a union: with PTR shadowing one key can undo the other's record.
            total = total.then(diff) if total else diff
        return total

    def apply_many(self, changes: Iterable[tuple[int, Change]],
                   warnings: list[InvalidName] | None = None, *,
                   into: BatchDiff | None = None) -> BatchDiff:
        """Fold a batch of ``(seq, change)`` and return its net effect with each record's
        cause: the seq of the last event whose own diff added (or removed) it, exactly
        what folding :meth:`apply` one change at a time and ``net_change`` give.

        Recomputes are deferred: a Service is recomputed only when the batch ends or
        when a later change touches it again (its records depend on its own objects
        only, so a deferred recompute sees the same inputs). Pending recomputes are
        flushed oldest first, up to the retouched one, so Services are recomputed in
        the same order as one by one and cross-Service PTR shadowing (which reads other
        Services' records) sees the same states. Exact causes need the intermediate
        records of a Service touched twice, so such a Service is still recomputed once
        per touch; a burst over distinct Services recomputes each once.

        ``into``: the net effect of earlier batches of the same version (a catch-up
        read in chunks), folded on in place and returned. Merging separately netted
        chunks is not the same: a record added by one chunk, removed and added again by
        the next, is no change within the second, yet its cause is the second add.
        """
        if into is None:
            into = BatchDiff()
        added, removed = into.added, into.removed
        pending: list[tuple[int, tuple[ServiceKey, ...]]] = []  # oldest first
        waiting: dict[ServiceKey, int] = {}  # key -> index in pending of its touch
        done = 0  # pending[:done] are flushed

        def flush(upto: int) -> None:
            nonlocal done
            for seq, keys in pending[done:upto]:
                total = Diff()
                for key in keys:
                    del waiting[key]
                    diff = self._recompute(key, warnings)
                    total = total.then(diff) if total else diff
                # Nearly always nothing cancels (a record this batch added, removed
                # again): then the records go in in bulk, in C, in the same order.
                _fold_into(removed, total.removed, seq, cancelling=added)
                _fold_into(added, total.added, seq, cancelling=removed)
            done = max(done, upto)

        for seq, change in changes:
            hit = [waiting[k] for k in self._keys_before(change) if k in waiting]
            if hit:
                flush(max(hit) + 1)
            keys = self._fold(change)
            if keys:
                # One key twice in one change (never today) would still recompute once.
                keys = tuple(dict.fromkeys(keys))
                for key in keys:
                    waiting[key] = len(pending)
                pending.append((seq, keys))
        flush(len(pending))
        return into

    def _keys_before(self, change: Change) -> tuple[ServiceKey, ...]:
        """The Service keys :meth:`_fold` may touch for ``change``, read before it runs
        (a superset: a no-op delete touches nothing)."""
        ns, name = change.namespace, change.name
        obj = change.obj
        if isinstance(obj, EndpointSlice) or (obj is None and change.kind == ENDPOINT_SLICE):
            keys: list[ServiceKey] = []
            old = self._slice_service.get((ns, name))
            if old is not None:
                keys.append(old)
            if obj is not None and obj.service_name:
                keys.append((ns, obj.service_name))
            return tuple(keys)
        return ((ns, name),)

    @classmethod
    def rebuild(cls, changes: Iterable[Change],
                warnings: list[InvalidName] | None = None) -> Projection:
        """The projection after ``changes``, computing each Service once at the end.

        Equal to folding :meth:`apply` over ``changes`` because records are a pure
        function of the final objects; skipping intermediate diffs halves a replay.
        """
        proj = cls()
        touched: set[ServiceKey] = set()
        for change in changes:
            touched.update(proj._fold(change))
        for key in sorted(touched):
            proj._recompute(key, warnings)
        return proj

    def _fold(self, change: Change) -> tuple[ServiceKey, ...]:
        """Update the object indexes; return the Service keys whose records may change."""
        obj = change.obj
        ns, name = change.namespace, change.name
        if isinstance(obj, Service) or (obj is None and change.kind == SERVICE):
            if obj is None:
                return ((ns, name),) if self._services.pop((ns, name), None) else ()
            self._services[(ns, name)] = obj
            return ((ns, name),)
        if isinstance(obj, Endpoints) or (obj is None and change.kind == ENDPOINTS):
            if obj is None:
                return ((ns, name),) if self._endpoints.pop((ns, name), None) else ()
            self._endpoints[(ns, name)] = obj
            return ((ns, name),)
        if isinstance(obj, EndpointSlice) or (obj is None and change.kind == ENDPOINT_SLICE):
            affected: list[ServiceKey] = []
            old = self._slice_service.pop((ns, name), None)
            if old is not None:
                group = self._slices[old]
                del group[name]
                if not group:
                    del self._slices[old]
                affected.append(old)
            if obj is not None and obj.service_name:
                # RECORDS.md: a slice belongs to the Service named by its
                # kubernetes.io/service-name label, in the same namespace.
                new = (ns, obj.service_name)
                self._slices.setdefault(new, {})[name] = obj
                self._slice_service[(ns, name)] = new
                if new != old:
                    affected.append(new)
            return tuple(affected)
        return ()  # a kind the projector does not read

    def _recompute(self, key: ServiceKey, warnings: list[InvalidName] | None) -> Diff:
        service = self._services.get(key)
        if service is None:
            new = _EMPTY  # RECORDS.md: slices of a missing Service yield nothing
        else:
            group = self._slices.get(key)
            if group:
                slices: Sequence[EndpointSlice] = list(group.values())
            else:
                legacy = self._endpoints.get(key)
                slices = legacy.slices if legacy is not None else ()
            new = records_for_service(service, slices, warnings)
        old = self._records.get(key, _EMPTY)
        if new == old:
            return Diff()
        if new:
            self._records[key] = new
        else:
            del self._records[key]
        gone, came = old - new, new - old
        added, removed = self._reindex_ptrs(gone, came)
        self._count += len(added) - len(removed)
        return Diff(added, removed)

    def _reindex_ptrs(self, gone: RecordSet, came: RecordSet) -> tuple[RecordSet, RecordSet]:
        """Update the cluster-IP PTR counts for one Service's changed records and return
        the visible (added, removed): RECORDS.md, a cluster IP keeps only its own PTR."""
        self._raw += len(came) - len(gone)
        gone_ptrs = [r for r in gone if r.rtype == PTR]
        came_ptrs = [r for r in came if r.rtype == PTR]
        if not gone_ptrs and not came_ptrs:
            return came, gone  # the common case: no reverse names changed
        cluster, endpoint = self._cluster_ptrs, self._endpoint_ptrs
        owners = {r.owner for r in chain(gone_ptrs, came_ptrs)}
        before = {o for o in owners if o in cluster}
        for r in gone_ptrs:
            counts = cluster if _is_cluster_ptr(r) else endpoint
            if counts[r.owner] == 1:
                del counts[r.owner]
            else:
                counts[r.owner] -= 1
        for r in came_ptrs:
            counts = cluster if _is_cluster_ptr(r) else endpoint
            counts[r.owner] = counts.get(r.owner, 0) + 1
        after = {o for o in owners if o in cluster}
        if not before and not after:
            return came, gone  # no cluster IP at these reverse names: nothing shadowed
        removed = {r for r in gone if not (r.rtype == PTR and r.owner in before
                                           and not _is_cluster_ptr(r))}
        added = {r for r in came if not self._shadowed(r)}
        toggled = {o for o in before ^ after if o in endpoint}
        if toggled:
            # Endpoint PTRs of other Services at these addresses change visibility. Only
            # hand-made data makes a cluster IP also a pod IP (the CIDRs are disjoint), so
            # a scan is cheaper overall than indexing every endpoint PTR.
            for records in chain(self._records.values(), self._others.values()):
                for r in records:
                    if (r.rtype == PTR and r.owner in toggled and r not in came
                            and not _is_cluster_ptr(r)):
                        (removed if r.owner in after else added).add(r)
        return frozenset(added), frozenset(removed)


def _is_cluster_ptr(r: Record) -> bool:
    """A cluster-IP PTR targets ``S.N.svc`` (3 labels); an endpoint PTR ``H.S.N.svc``."""
    target = r.rdata[0]
    return isinstance(target, str) and target.count(".") == 2


def rebuild(changes: Iterable[Change], warnings: list[InvalidName] | None = None) -> Projection:
    """A fresh :class:`Projection` folded from ``changes`` (log replay from scratch)."""
    return Projection.rebuild(changes, warnings)


def _fold_into(into: dict[Record, int], records: Collection[Record], seq: int, *,
               cancelling: dict[Record, int]) -> None:
    """Fold ``records`` (removed or added by the event ``seq``) into ``into``, each one
    first cancelling its opposite in ``cancelling`` (a record this batch added and now
    removes, or the reverse). Nearly always nothing cancels: then they go in in bulk,
    in C, in the same order."""
    if not records:
        return
    if cancelling.keys().isdisjoint(records):
        into.update(dict.fromkeys(records, seq))
        return
    for r in records:
        if cancelling.pop(r, _ABSENT) is _ABSENT:
            into[r] = seq
