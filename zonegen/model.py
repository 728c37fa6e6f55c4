"""Small frozen values holding only what DNS needs, and the reducers that make them.

Kubernetes objects are reduced here, once, at the edge (as CoreDNS's
``plugin/kubernetes/object`` package does): readiness (absent means ready), port numbers
and address families are decided in ``from_api`` and nothing downstream reads a raw API
dict. Every new field must be something DNS needs. Pure: imports no I/O.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, TypeAlias, TypeVar, cast

from zonegen.errors import InvalidObject

if TYPE_CHECKING:
    from zonegen.mcs import ServiceExport, ServiceImport

# Record types as plain ints (the IANA values dnspython's ``dns.rdatatype`` uses), so
# records stay cheap to build and hash (PERFORMANCE.md).
A = 1
NS = 2
CNAME = 5
SOA = 6
PTR = 12
TXT = 16
AAAA = 28
SRV = 33

TYPE_NAMES: dict[int, str] = {
    A: "A", NS: "NS", CNAME: "CNAME", SOA: "SOA", PTR: "PTR", TXT: "TXT", AAAA: "AAAA", SRV: "SRV",
}
TYPE_CODES: dict[str, int] = {v: k for k, v in TYPE_NAMES.items()}

SERVICE = "Service"
ENDPOINT_SLICE = "EndpointSlice"
ENDPOINTS = "Endpoints"
SERVICE_IMPORT = "ServiceImport"  # multicluster.x-k8s.io, reduced by zonegen.mcs
SERVICE_EXPORT = "ServiceExport"  # multicluster.x-k8s.io, reduced by zonegen.mcs
KINDS = (SERVICE, ENDPOINT_SLICE, ENDPOINTS, SERVICE_IMPORT, SERVICE_EXPORT)

ADDED = "ADDED"
MODIFIED = "MODIFIED"
DELETED = "DELETED"
EVENT_TYPES = (ADDED, MODIFIED, DELETED)

SERVICE_NAME_LABEL = "kubernetes.io/service-name"

Family = Literal["IPv4", "IPv6", "FQDN"]
ObjectKey = tuple[str, str, str]
"""(kind, namespace, name): how the log and the projector index objects."""


def service_key(namespace: str, name: str) -> tuple[str, str]:
    """Index key of a Service; EndpointSlices and Endpoints point at it by this key."""
    return (namespace, name)


# --------------------------------------------------------------------------- values


@dataclass(frozen=True, slots=True)
class Port:
    """A Service or endpoint port. ``number`` is None when the API gives none (or an
    unusable one): such a port gives no SRV but still counts in CoreDNS's weight ``n``."""

    name: str
    number: int | None
    protocol: str  # upper case: TCP, UDP, SCTP


@dataclass(frozen=True, slots=True)
class Service:
    namespace: str
    name: str
    uid: str
    resource_version: str
    type: str  # ClusterIP, NodePort, LoadBalancer, ExternalName
    headless: bool  # clusterIP: None
    cluster_ips: tuple[str, ...]  # canonical text, IPv6 per RFC 5952; empty when headless
    external_name: str  # as given (ExternalName only), "" otherwise
    ports: tuple[Port, ...]
    publish_not_ready: bool

    @property
    def key(self) -> tuple[str, str]:
        return service_key(self.namespace, self.name)

    @classmethod
    def from_api(cls, obj: Mapping[str, Any], warnings: list[str] | None = None) -> Service:
        """Reduce a v1 Service.

        :raises InvalidObject: metadata.name or uid is missing, or spec is not an object.
        """
        if type(obj) is dict:
            fast = _plain_service(obj)
            if fast is not None:
                return fast
        namespace, name, uid, rv = _metadata(obj, SERVICE)
        spec = _mapping(obj.get("spec", {}), SERVICE, namespace, name, "spec")
        svc_type = str(spec.get("type") or "ClusterIP")
        where = f"Service {namespace}/{name}"
        raw_ips = spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else [])
        if not isinstance(raw_ips, list):
            raise InvalidObject(f"{where}: spec.clusterIPs is not a list")
        headless = svc_type != "ExternalName" and any(
            str(ip).strip().lower() == "none" for ip in raw_ips
        )
        cluster_ips: list[str] = []
        if svc_type != "ExternalName" and not headless:
            for ip in raw_ips:
                text = canonical_ip(str(ip))
                if text is None:
                    _warn(warnings, f"{where}: cluster IP {ip!r} is not an IP address; skipped")
                elif text not in cluster_ips:
                    cluster_ips.append(text)
        external = spec.get("externalName") or ""
        if not isinstance(external, str):
            raise InvalidObject(f"{where}: spec.externalName is not a string")
        return cls(
            namespace=namespace, name=name, uid=uid, resource_version=rv,
            type=svc_type,
            headless=headless,
            cluster_ips=tuple(cluster_ips),
            external_name=external if svc_type == "ExternalName" else "",
            ports=_ports(spec.get("ports"), where, "spec.ports", warnings),
            publish_not_ready=bool(spec.get("publishNotReadyAddresses", False)),
        )


class Endpoint(NamedTuple):
    """One endpoint: its addresses (all of them count, not only the first), the
    hostname as given (validated by the projector, which owns name rules) and readiness
    already decided (``conditions.ready`` absent means ready, as the API says).

    A named tuple, as :class:`Record` is: a replay of a large cluster reduces a million
    of them, and a frozen dataclass's ``__init__`` costs twice as much. Only its fields
    are read (copy one with ``_replace``)."""

    addresses: tuple[str, ...]
    hostname: str | None
    ready: bool


@dataclass(frozen=True, slots=True)
class EndpointSlice:
    """A discovery.k8s.io/v1 EndpointSlice, or one subset of a legacy v1 Endpoints
    object for one address family (then ``legacy`` is True and ``name`` is
    ``<endpoints name>#<subset index>-<family>``)."""

    namespace: str
    name: str
    uid: str
    resource_version: str
    service_name: str  # from the kubernetes.io/service-name label; "" when absent
    address_type: Family
    endpoints: tuple[Endpoint, ...]
    ports: tuple[Port, ...]
    legacy: bool = False

    @property
    def service_key(self) -> tuple[str, str]:
        return service_key(self.namespace, self.service_name)

    @classmethod
    def from_api(cls, obj: Mapping[str, Any], warnings: list[str] | None = None) -> EndpointSlice:
        """Reduce a discovery.k8s.io/v1 EndpointSlice.

        Addresses of the wrong family for ``addressType`` are dropped with a warning
        (RECORDS.md) and do not count anywhere; IPv6 is made canonical (RFC 5952).

        :raises InvalidObject: metadata is incomplete or a field has the wrong shape.
        """
        if type(obj) is dict:
            fast = _plain_slice(obj)
            if fast is not None:
                return fast
        namespace, name, uid, rv = _metadata(obj, ENDPOINT_SLICE)
        where = f"EndpointSlice {namespace}/{name}"
        labels = _labels(obj, where)
        service_name = str(labels.get(SERVICE_NAME_LABEL) or "")
        if not service_name:
            _warn(warnings, f"{where}: no {SERVICE_NAME_LABEL} label; it belongs to no Service")
        family = obj.get("addressType", "IPv4")
        if family not in ("IPv4", "IPv6", "FQDN"):
            raise InvalidObject(f"{where}: addressType {family!r} is not IPv4, IPv6 or FQDN")
        endpoints: list[Endpoint] = []
        for i, raw in enumerate(_list(obj.get("endpoints"), where, "endpoints")):
            ep = _mapping(raw, ENDPOINT_SLICE, namespace, name, f"endpoints[{i}]")
            conditions = ep.get("conditions") or {}
            if not isinstance(conditions, Mapping):
                raise InvalidObject(f"{where}: endpoints[{i}].conditions is not an object")
            ready = conditions.get("ready")
            addresses = _addresses(
                _list(ep.get("addresses"), where, f"endpoints[{i}].addresses"),
                family,
                f"{where} endpoints[{i}]",
                warnings,
            )
            hostname = ep.get("hostname")
            endpoints.append(
                Endpoint(
                    addresses=addresses,
                    hostname=str(hostname) if hostname else None,
                    ready=ready is None or bool(ready),
                )
            )
        return cls(
            namespace=namespace, name=name, uid=uid, resource_version=rv,
            service_name=service_name,
            address_type=family,
            endpoints=tuple(endpoints),
            ports=_ports(obj.get("ports"), where, "ports", warnings),
        )


@dataclass(frozen=True, slots=True)
class Endpoints:
    """A legacy v1 Endpoints object, reduced to one slice per (subset, family).

    Only ``subsets[].addresses`` are published, never ``notReadyAddresses``: the
    Endpoints controller already moves pods into ``addresses`` when the Service
    publishes not-ready addresses (RECORDS.md)."""

    namespace: str
    name: str
    uid: str
    resource_version: str
    slices: tuple[EndpointSlice, ...]

    @property
    def service_key(self) -> tuple[str, str]:
        return service_key(self.namespace, self.name)

    @classmethod
    def from_api(cls, obj: Mapping[str, Any], warnings: list[str] | None = None) -> Endpoints:
        """Reduce a v1 Endpoints object.

        :raises InvalidObject: metadata is incomplete or a field has the wrong shape.
        """
        namespace, name, uid, rv = _metadata(obj, ENDPOINTS)
        where = f"Endpoints {namespace}/{name}"
        slices: list[EndpointSlice] = []
        for i, raw in enumerate(_list(obj.get("subsets"), where, "subsets")):
            subset = _mapping(raw, ENDPOINTS, namespace, name, f"subsets[{i}]")
            ports = _ports(subset.get("ports"), where, f"subsets[{i}].ports", warnings,
                           port_where=f"{where} subsets[{i}]")
            by_family: dict[Family, list[Endpoint]] = {"IPv4": [], "IPv6": []}
            for j, addr in enumerate(
                _list(subset.get("addresses"), where, f"subsets[{i}].addresses")
            ):
                a = _mapping(addr, ENDPOINTS, namespace, name, f"subsets[{i}].addresses[{j}]")
                ip = canonical_ip(str(a.get("ip", "")))
                if ip is None:
                    _warn(warnings, f"{where} subsets[{i}].addresses[{j}]: ip "
                          f"{a.get('ip')!r} is not an IP address; skipped")
                    continue
                hostname = a.get("hostname")
                by_family["IPv6" if ":" in ip else "IPv4"].append(
                    Endpoint(addresses=(ip,), hostname=str(hostname) if hostname else None,
                             ready=True)
                )
            for fam, eps in by_family.items():
                if eps:
                    slices.append(EndpointSlice(
                        namespace=namespace, name=f"{name}#{i}-{fam}", uid=uid,
                        resource_version=rv, service_name=name, address_type=fam,
                        endpoints=tuple(eps), ports=ports, legacy=True,
                    ))
        return cls(namespace=namespace, name=name, uid=uid, resource_version=rv,
                   slices=tuple(slices))


KubeObject: TypeAlias = "Service | EndpointSlice | Endpoints | ServiceImport | ServiceExport"


def reduce(kind: str, obj: Mapping[str, Any], warnings: list[str] | None = None) -> KubeObject:
    """Reduce an API object of one of :data:`KINDS`.

    :raises InvalidObject: the kind is not one zonegen reads, or the object is malformed.
    """
    if kind == SERVICE:
        return Service.from_api(obj, warnings)
    if kind == ENDPOINT_SLICE:
        return EndpointSlice.from_api(obj, warnings)
    if kind == ENDPOINTS:
        return Endpoints.from_api(obj, warnings)
    if kind == SERVICE_IMPORT:
        from zonegen.mcs import ServiceImport as Import  # mcs builds on this module

        return Import.from_api(obj, warnings)
    if kind == SERVICE_EXPORT:
        from zonegen.mcs import ServiceExport as Export

        return Export.from_api(obj, warnings)
    raise InvalidObject(f"kind {kind!r} is not one of {', '.join(KINDS)}")


# --------------------------------------------------------------------------- log values


@dataclass(frozen=True, slots=True)
class Event:
    """One observed change, as stored in the append-only log.

    ``object_json`` is the object as received (managedFields stripped), kept as text so
    the log can be replayed by any later version of the reducers."""

    seq: int  # 0 until stored
    received_at: datetime  # timezone-aware UTC
    source: str  # the cluster it belongs to (zonegen.sources)
    type: str  # ADDED / MODIFIED / DELETED
    kind: str
    namespace: str
    name: str
    uid: str
    resource_version: str
    object_json: str
    origin: str = ""  # how it arrived: watch:<context>, ingest, demo

    @property
    def key(self) -> ObjectKey:
        return (self.kind, self.namespace, self.name)

    def object(self) -> dict[str, Any]:
        return stored_object(self.seq, self.object_json)


def stored_object(seq: int, text: str) -> dict[str, Any]:
    """The object event ``seq`` stored as ``text``.

    :raises InvalidObject: the text is not a JSON object.
    :raises ValueError: the text is not JSON.
    """
    value = json.loads(text)
    if not isinstance(value, dict):
        raise InvalidObject(f"event {seq}: stored object is not a JSON object")
    return value


@dataclass(frozen=True, slots=True)
class Change:
    """An event as the projector sees it: the reduced object, or None when deleted."""

    seq: int
    kind: str
    namespace: str
    name: str
    obj: KubeObject | None

    @property
    def key(self) -> ObjectKey:
        return (self.kind, self.namespace, self.name)


RData = tuple[str | int, ...]


class Record(NamedTuple):
    """One resource record as a plain hashable value (STYLE.md #3).

    Names ending in ``.`` are absolute; any other name (owner or target) is relative to
    the forward zone (the cluster domain) and gets it appended only when rendered, so one
    log can publish ``cluster.local`` and ``k8s.example.org`` at one serial. Reverse-zone
    PTR owners are absolute (``6.0.244.10.in-addr.arpa.``). ``ttl`` None means the zone's
    configured TTL. rdata by type: A/AAAA ``(address,)``; SRV ``(priority, weight, port,
    target)``; CNAME/PTR ``(target,)``; TXT ``(text,)``.

    A named tuple, not a frozen dataclass: a replay of a 1M-record cluster makes and
    hashes millions of them, and a tuple is built and hashed in C (the dataclass's
    ``__init__`` and ``__hash__`` are Python functions: a third of ``project --rebuild``'s
    fold). Equal and hashed as before (the tuple of the four fields); code must not
    rely on it being a tuple (unpacking, indexing), only on its fields.
    """

    owner: str
    rtype: int
    rdata: RData
    ttl: int | None = None

    def to_row(self) -> dict[str, Any]:
        return {"owner": self.owner, "rtype": self.rtype, "ttl": self.ttl,
                "rdata": encode_rdata(self.rdata)}

    @classmethod
    def from_row(cls, owner: str, rtype: int, rdata: str, ttl: int | None) -> Record:
        return cls(owner, rtype, decode_rdata(rdata), ttl)


RecordSet = frozenset[Record]

record_of: Callable[[tuple[str, int, RData, int | None]], Record] = cast(
    Callable[[tuple[str, int, RData, int | None]], Record], partial(tuple.__new__, Record))
"""``record_of((owner, rtype, rdata, ttl))`` is ``Record(owner, rtype, rdata, ttl)`` at half
the cost (no argument parsing in Python): the projector's loops make a record per
endpoint address, port and PTR, over a million in a replay of a large cluster."""

_json_rdata = json.JSONEncoder(separators=(",", ":")).encode


def encode_rdata(rdata: RData) -> str:
    """rdata as stored: compact JSON (a tuple of str and int round-trips exactly).

    Names and addresses never need JSON escapes, so they are written directly (the
    same text ``json`` writes, a fraction of its cost: a first version of a large
    cluster, and every burst, stores hundreds of thousands of records); the two shapes
    nearly every record has, one string (A, AAAA, PTR, CNAME) and three numbers and a
    string (SRV), take a path of their own. Anything else goes through the encoder."""
    n = len(rdata)
    if n == 1:
        x = rdata[0]
        # _plain(x), inlined: a call costs as much as the checks on this path.
        if (type(x) is str and x.isascii() and x.isprintable() and '"' not in x
                and "\\" not in x):
            return f'["{x}"]'
    elif n == 4:
        a, b, c, x = rdata
        if (type(a) is int and type(b) is int and type(c) is int and type(x) is str
                and x.isascii() and x.isprintable() and '"' not in x and "\\" not in x):
            return f'[{a},{b},{c},"{x}"]'
    parts = []
    for x in rdata:
        if type(x) is int:
            parts.append(str(x))
        elif type(x) is str and _plain(x):
            parts.append(f'"{x}"')
        else:
            return _json_rdata(rdata)
    return "[" + ",".join(parts) + "]"


def _plain(x: str) -> bool:
    """Printable ASCII without ``"`` and ``\\``: a string JSON writes as it is. String
    methods, not a regular expression: a quarter of the cost."""
    return x.isascii() and x.isprintable() and '"' not in x and "\\" not in x


def row_key(owner: str, rtype: int, rdata: str, ttl: int | None) -> str:
    """One stored record row (``rdata`` as :func:`encode_rdata` stores it) as one string,
    ``"<rtype> <ttl or None> <rdata>\t<owner>"``: ``project --rebuild`` compares a
    replay with the read model as sets of these (a string caches its hash; a tuple of
    the columns hashes them again at every look-up). The read model spells the same
    text in SQL (``EventLog.stored_row_keys``). Unambiguous while neither ``rdata`` nor
    ``owner`` holds a tab: rtype and ttl are integers, and ``rdata`` is a JSON array."""
    return f"{rtype} {ttl} {rdata}\t{owner}"  # the same text as record_key


def record_key(r: Record) -> str:
    """:func:`row_key` of a record as :meth:`Record.to_row` would store it."""
    return f"{r.rtype} {r.ttl} {encode_rdata(r.rdata)}\t{r.owner}"


def record_keys(records: Iterable[Record]) -> set[str]:
    """The :func:`record_key` texts of ``records`` as a set, spelled fast for the
    comparison ``project --rebuild`` makes with the read model's plain texts
    (``EventLog.stored_row_keys``), 1.25M records in a replay of a large cluster.

    The two shapes every projected record has, one string and three numbers and a
    string, are spelled without checking each string for what JSON escapes (a third
    of the cost). So a record whose strings are printable ASCII without ``"`` or
    ``\\`` (every projected record) gets exactly its :func:`record_key`; any other
    one a text with a third quote, a backslash, a second tab or a character that is
    not printable ASCII, which no plain stored text (two quotes, no backslash, one
    tab, printable ASCII) equals: set equality with plain stored texts still means
    equal records. The format specs ``s`` and ``d`` refuse a number where a string
    belongs and the reverse (a bool, which no reducer lets through, reads as the
    number it equals, as records compare). Another shape makes every text
    :func:`record_key`'s."""
    listed = records if isinstance(records, list) else list(records)
    try:
        return {f'{t} {ttl} ["{d[0]:s}"]\t{o}' if len(d) == 1 else
                f'{t} {ttl} [{d[0]:d},{d[1]:d},{d[2]:d},"{d[3]:s}"]\t{o}' if len(d) == 4 else
                _other_shape(d) for o, t, d, ttl in listed}
    except (TypeError, ValueError):
        return set(map(record_key, listed))


def _other_shape(rdata: RData) -> str:
    raise ValueError(f"rdata {rdata!r} is not of a projected record's shape")


def decode_rdata(text: str) -> RData:
    """rdata as :func:`encode_rdata` stored it (always valid JSON). The two shapes
    nearly every row has, one plain string (A, AAAA, PTR, CNAME) and three unsigned
    numbers and a plain string (SRV), are split directly: a read-model load decodes
    every record of the Services a batch touches, and ``json.loads`` was most of that.
    Anything else (escapes, other shapes) goes through ``json``."""
    if text[-2:] == '"]' and "\\" not in text and text.isascii():
        if text[:2] == '["':
            inner = text[2:-2]
            if '"' not in inner:
                return (inner,)
        elif text[:1] == "[":
            p = text[1:-2].split(",", 3)
            if (len(p) == 4 and p[3][:1] == '"' and '"' not in p[3][1:]
                    and p[0].isdigit() and p[1].isdigit() and p[2].isdigit()):
                return (int(p[0]), int(p[1]), int(p[2]), p[3][1:])
    return tuple(json.loads(text))


@dataclass(frozen=True, slots=True)
class Diff:
    """What one change or batch did to the zone: a set difference, nothing more."""

    added: RecordSet = frozenset()
    removed: RecordSet = frozenset()

    def __bool__(self) -> bool:
        return bool(self.added or self.removed)

    def then(self, later: Diff) -> Diff:
        """This diff followed by ``later``: a record added then removed cancels out."""
        return Diff(
            added=(self.added - later.removed) | (later.added - self.removed),
            removed=(self.removed - later.added) | (later.removed - self.added),
        )


@dataclass(frozen=True, slots=True)
class RecordChange:
    """One journal row: record ``record`` was added (or removed), caused by event
    ``cause_seq``; the version it belongs to says the serial."""

    added: bool
    record: Record
    cause_seq: int


K = TypeVar("K")
V = TypeVar("V")
_ABSENT: Any = object()


def fold(changes: Iterable[tuple[bool, K, V]], base: Mapping[K, V] | None = None
         ) -> dict[K, V]:
    """The record set after ``changes`` (``(added, record, value)`` in commit order)
    applied to ``base``: an addition sets the record's value (its cause), a removal
    drops it. The one rule by which the journal, snapshots, ``history`` and ``why``
    rebuild a record set (keys may be ``Record`` values or their stored columns)."""
    current: dict[K, V] = dict(base) if base else {}
    pop = current.pop
    for added, key, value in changes:
        if added:
            current[key] = value
        else:
            pop(key, None)
    return current


def net_change(changes: Iterable[tuple[bool, K, V]]) -> tuple[dict[K, V], dict[K, V]]:
    """``(added, removed)``: what ``changes`` add and remove in all, each with its value
    (cause). A record added then removed (or removed then added) is no change: how one
    batch of events becomes one zone version, and how ``diff`` compares two versions
    from the changes between them."""
    added: dict[K, V] = {}
    removed: dict[K, V] = {}
    for was_added, key, value in changes:
        if was_added:
            if removed.pop(key, _ABSENT) is _ABSENT:
                added[key] = value
        elif added.pop(key, _ABSENT) is _ABSENT:
            removed[key] = value
    return added, removed


@dataclass(frozen=True, slots=True)
class ZoneVersion:
    """One published serial: the batch of events up to ``last_event_seq`` made it."""

    version_id: int
    serial: int
    created_at: datetime
    last_event_seq: int


# --------------------------------------------------------------------------- reducers


_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_CANONICAL_IPV4 = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}", re.ASCII)


def canonical_ip(text: str) -> str | None:
    """The canonical text of an IP address (RFC 5952 for IPv6), or None.

    Dotted-quad IPv4 already in canonical form (nearly every address Kubernetes sends)
    is recognised with string checks: ``ipaddress`` costs ~13 us an address, a quarter
    of reducing a 100-endpoint EndpointSlice."""
    if _CANONICAL_IPV4.fullmatch(text):
        return text
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        return None


# The reducers' fast paths: objects as ``json.loads`` (or the API client's
# ``to_dict``) gives them, plain dicts, lists and strs, in the shape Kubernetes writes.
# Each returns exactly what the general reducer above returns for such an object, or None
# as soon as anything is unusual (a field of another type, an address that is not
# canonical, anything the general path would warn about or reject), and the general
# path then decides, warnings and errors included. Exact ``type`` checks cost a fraction
# of an ABC ``isinstance``; a replay of the log reduces every live object
# (tests/test_model.py compares both paths on random objects).


def _plain_metadata(obj: dict[str, Any]) -> tuple[str, str, str, str] | None:
    meta = obj.get("metadata")
    if type(meta) is not dict:
        return None
    name = meta.get("name")
    namespace = meta.get("namespace") or "default"
    uid = meta.get("uid")
    if (type(name) is not str or not name or type(namespace) is not str
            or type(uid) is not str or not uid):
        return None
    rv = meta.get("resourceVersion") or ""
    return namespace, name, uid, rv if type(rv) is str else str(rv)


def _plain_ports(value: Any) -> tuple[Port, ...] | None:
    if value is None:
        return ()
    if type(value) is not list:
        return None
    ports: list[Port] = []
    for raw in value:
        if type(raw) is not dict:
            return None
        name = raw.get("name") or ""
        protocol = raw.get("protocol") or "TCP"
        number = raw.get("port")
        if type(name) is not str or type(protocol) is not str:
            return None
        if number is not None and (type(number) is not int or not 1 <= number <= 65535):
            return None  # the general path warns
        ports.append(Port(name, number, protocol.upper()))
    return tuple(ports)


def _plain_service(obj: dict[str, Any]) -> Service | None:
    """:meth:`Service.from_api` of a plain, well-formed ClusterIP/NodePort/LoadBalancer
    or headless Service (ExternalName ones take the general path)."""
    ident = _plain_metadata(obj)
    spec = obj.get("spec", {})
    if ident is None or type(spec) is not dict:
        return None
    svc_type = spec.get("type") or "ClusterIP"
    if type(svc_type) is not str or svc_type == "ExternalName":
        return None
    raw_ips = spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else [])
    if type(raw_ips) is not list or any(type(ip) is not str for ip in raw_ips):
        return None
    headless = any(ip.strip().lower() == "none" for ip in raw_ips)
    cluster_ips: list[str] = []
    if not headless:
        for ip in raw_ips:
            text = canonical_ip(ip)
            if text is None:
                return None  # the general path warns
            if text not in cluster_ips:
                cluster_ips.append(text)
    external = spec.get("externalName") or ""
    ports = _plain_ports(spec.get("ports"))
    if type(external) is not str or ports is None:
        return None
    namespace, name, uid, rv = ident
    return Service(namespace, name, uid, rv, svc_type, headless, tuple(cluster_ips), "",
                   ports, bool(spec.get("publishNotReadyAddresses", False)))


def _plain_slice(obj: dict[str, Any]) -> EndpointSlice | None:
    """:meth:`EndpointSlice.from_api` of a plain, well-formed IPv4 or IPv6 slice with a
    ``kubernetes.io/service-name`` label and only canonical addresses of its family."""
    ident = _plain_metadata(obj)
    if ident is None:
        return None
    labels = obj["metadata"].get("labels") or {}
    if type(labels) is not dict:
        return None
    service_name = labels.get(SERVICE_NAME_LABEL)
    family = obj.get("addressType", "IPv4")
    raw_endpoints = obj.get("endpoints")
    if (type(service_name) is not str or not service_name
            or (family != "IPv4" and family != "IPv6")):
        return None
    if raw_endpoints is None:
        raw_endpoints = []
    elif type(raw_endpoints) is not list:
        return None
    v4 = family == "IPv4"
    match = _CANONICAL_IPV4.fullmatch
    endpoints: list[Endpoint] = []
    for ep in raw_endpoints:
        if type(ep) is not dict:
            return None
        conditions = ep.get("conditions") or {}
        raw = ep.get("addresses")
        if type(conditions) is not dict or (raw is not None and type(raw) is not list):
            return None
        addresses: list[str] = []
        for a in raw or ():
            if type(a) is not str:
                return None
            if v4:
                if not match(a):
                    return None  # not canonical IPv4: the general path decides
                addresses.append(a)
            else:
                ip = canonical_ip(a)
                if ip is None or ":" not in ip:
                    return None  # the general path warns
                addresses.append(ip)
        ready = conditions.get("ready")
        hostname = ep.get("hostname")
        endpoints.append(Endpoint(tuple(addresses), str(hostname) if hostname else None,
                                  ready is None or bool(ready)))
    ports = _plain_ports(obj.get("ports"))
    if ports is None:
        return None
    namespace, name, uid, rv = ident
    return EndpointSlice(namespace, name, uid, rv, service_name, family, tuple(endpoints),
                         ports)


def _warn(warnings: list[str] | None, message: str) -> None:
    if warnings is not None:
        warnings.append(message)


def _labels(obj: Mapping[str, Any], where: str) -> Mapping[str, Any]:
    """``metadata.labels`` of an object whose metadata :func:`_metadata` checked."""
    labels = obj["metadata"].get("labels") or {}
    if not isinstance(labels, Mapping):
        raise InvalidObject(f"{where}: metadata.labels is not an object")
    return labels


def _metadata(obj: Mapping[str, Any], kind: str) -> tuple[str, str, str, str]:
    if not isinstance(obj, Mapping):
        raise InvalidObject(f"{kind}: object is not a mapping")
    meta = obj.get("metadata")
    if not isinstance(meta, Mapping):
        raise InvalidObject(f"{kind}: object has no metadata")
    name = meta.get("name")
    namespace = meta.get("namespace") or "default"
    if not isinstance(name, str) or not name:
        raise InvalidObject(f"{kind} in namespace {namespace}: metadata.name is missing")
    if not isinstance(namespace, str):
        raise InvalidObject(f"{kind} {name}: metadata.namespace is not a string")
    uid = meta.get("uid")
    if not isinstance(uid, str) or not uid:
        raise InvalidObject(f"{kind} {namespace}/{name}: metadata.uid is missing")
    rv = meta.get("resourceVersion") or ""
    return namespace, name, uid, str(rv)


def _mapping(value: Any, kind: str, namespace: str, name: str, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidObject(f"{kind} {namespace}/{name}: {path} is not an object")
    return value


def _list(value: Any, where: str, path: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidObject(f"{where}: {path} is not a list")
    return value


def _ports(value: Any, where: str, path: str, warnings: list[str] | None,
           port_where: str | None = None) -> tuple[Port, ...]:
    """The ports list at ``path``; each port's problems are reported at ``port_where``
    (default ``where``)."""
    at = where if port_where is None else port_where
    return tuple(_port(p, at, i, warnings) for i, p in enumerate(_list(value, where, path)))


def _port(raw: Any, where: str, index: int, warnings: list[str] | None) -> Port:
    if not isinstance(raw, Mapping):
        raise InvalidObject(f"{where}: ports[{index}] is not an object")
    name = str(raw.get("name") or "")
    protocol = str(raw.get("protocol") or "TCP").upper()
    number = raw.get("port")
    if number is None:
        return Port(name, None, protocol)
    if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= 65535:
        _warn(warnings, f"{where}: port {name or index} has invalid number {number!r}; "
              "it gives no SRV record")
        return Port(name, None, protocol)
    return Port(name, number, protocol)


def _addresses(raw: list[Any], family: str, where: str,
               warnings: list[str] | None) -> tuple[str, ...]:
    if family == "FQDN":
        return tuple(str(a) for a in raw)
    out: list[str] = []
    for a in raw:
        ip = canonical_ip(str(a))
        if ip is None or ("IPv6" if ":" in ip else "IPv4") != family:
            _warn(warnings, f"{where}: address {a!r} is not an {family} address; skipped")
            continue
        out.append(ip)
    return tuple(out)


# --------------------------------------------------------------------------- publishing


@dataclass(frozen=True, slots=True)
class NameServer:
    """An NS target; ``address`` gives it a glue A/AAAA record when it lies in the zone."""

    name: str  # absolute, with trailing dot
    address: str | None = None


@dataclass(frozen=True, slots=True)
class ZoneConfig:
    """How one zone is published: its apex, the forward zone relative names belong to,
    and the SOA/NS values. Defaults follow CoreDNS (TTL 5, ``ns.dns.<zone>``,
    ``hostmaster.<zone>``, refresh 7200, retry 1800, expire 86400, minimum 5).

    All names are absolute, lowercase, with a trailing dot. Build with
    :func:`zone_config` to get the defaults right for reverse zones."""

    zone: str = "cluster.local."
    forward_zone: str = "cluster.local."
    nameservers: tuple[NameServer, ...] = (NameServer("ns.dns.cluster.local.", "127.0.0.1"),)
    hostmaster: str = "hostmaster.cluster.local."
    ttl: int = 5
    refresh: int = 7200
    retry: int = 1800
    expire: int = 86400
    minimum: int = 5

    @property
    def is_reverse(self) -> bool:
        return self.zone.endswith((".in-addr.arpa.", ".ip6.arpa.")) or self.zone in (
            "in-addr.arpa.", "ip6.arpa.")
