"""Multi-Cluster Services API objects (``multicluster.x-k8s.io``) reduced to DNS values.

ServiceImport (v1alpha1 and v1beta1), the EndpointSlices an MCS implementation labels
``multicluster.kubernetes.io/service-name`` and ``.../source-cluster``, and ServiceExport
(existence only) become small frozen values here, once, at the edge, as ``model`` does for
Services and EndpointSlices (whose rules for ports, readiness and address families are
reused, not repeated). Every field must be something DNS needs. Pure: no I/O.

API: https://github.com/kubernetes-sigs/mcs-api (``pkg/apis/v1alpha1``, ``pkg/apis/v1beta1``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from zonegen.errors import InvalidObject
from zonegen.model import SERVICE_EXPORT as SERVICE_EXPORT  # re-exported: kind names
from zonegen.model import SERVICE_IMPORT as SERVICE_IMPORT
from zonegen.model import (
    SERVICE_NAME_LABEL,
    EndpointSlice,
    Port,
    _labels,
    _list,
    _mapping,
    _metadata,
    _port,
    _warn,
    canonical_ip,
)

GROUP = "multicluster.x-k8s.io"
VERSIONS = ("v1alpha1", "v1beta1")
PREFERRED_VERSIONS = ("v1beta1", "v1alpha1")
"""Which version ``watch`` lists, by discovery: the newest the API server serves."""
PLURALS = {SERVICE_IMPORT: "serviceimports", SERVICE_EXPORT: "serviceexports"}
"""Versions read. v1beta1 kept v1alpha1's ``spec.type``/``spec.ips``/``spec.ports`` paths
(it added ``spec.internalTrafficPolicy``, ``spec.trafficDistribution`` and
``status.endpointSliceObjects``, none of which DNS needs); only the withdrawn v1alpha2
draft moved them to the object's root, and it was never released."""

MCS_ENDPOINT_SLICE = "EndpointSlice"

MCS_SERVICE_NAME_LABEL = "multicluster.kubernetes.io/service-name"
SOURCE_CLUSTER_LABEL = "multicluster.kubernetes.io/source-cluster"

CLUSTER_SET_IP = "ClusterSetIP"
HEADLESS = "Headless"

MAX_CLUSTER_ID = 253  # RFC 1123 subdomain, as KEP-2149's ClusterProperty id.k8s.io
_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*",
                        re.ASCII)


def check_cluster_id(cluster_id: str) -> list[str]:
    """Reasons why ``cluster_id`` is not an RFC 1123 subdomain (empty when it is one).

    The MCS API (``ClusterName``) and KEP-2149 allow dots, so a cluster id may be several
    DNS labels (``east.prod``); each label must be 1-63 octets and the whole at most 253.
    Uppercase is refused rather than lowercased: Kubernetes refuses it too, and lowering
    it would let two ids name one DNS subtree.
    """
    if not cluster_id:
        return ["cluster id is empty"]
    reasons: list[str] = []
    if not _SUBDOMAIN.fullmatch(cluster_id):
        reasons.append(f"cluster id {cluster_id!r} is not an RFC 1123 subdomain (lowercase "
                       "letters, digits, '-' and '.', starting and ending alphanumeric)")
    if len(cluster_id) > MAX_CLUSTER_ID:
        reasons.append(f"cluster id {cluster_id!r} is longer than {MAX_CLUSTER_ID} characters")
    if any(len(label) > 63 for label in cluster_id.split(".")):
        reasons.append(f"cluster id {cluster_id!r} has a label longer than 63 octets")
    return reasons


def _api_version(obj: Mapping[str, Any], where: str) -> None:
    """Refuse an apiVersion zonegen does not read (absent is accepted: ``kubectl get -o
    json`` lists and hand-made data may omit it, and both versions share one shape)."""
    api_version = obj.get("apiVersion")
    if api_version is None:
        return
    group, _, version = str(api_version).rpartition("/")
    if group != GROUP or version not in VERSIONS:
        raise InvalidObject(f"{where}: apiVersion {api_version!r} is not "
                            f"{GROUP}/{' or '.join(VERSIONS)}")


@dataclass(frozen=True, slots=True)
class ServiceImport:
    """A ServiceImport: the clusterset-wide Service an MCS controller derived.

    ``ips`` are the ClusterSetIPs (canonical text, RFC 5952), empty for a Headless import
    (the API says they are used only for ClusterSetIP). ``ports`` are ``spec.ports``.
    """

    namespace: str
    name: str
    uid: str
    resource_version: str
    headless: bool
    ips: tuple[str, ...]
    ports: tuple[Port, ...]

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)

    @classmethod
    def from_api(cls, obj: Mapping[str, Any], warnings: list[str] | None = None) -> ServiceImport:
        """Reduce a ServiceImport of ``multicluster.x-k8s.io/v1alpha1`` or ``v1beta1``.

        :raises InvalidObject: metadata is incomplete, apiVersion is another group or
            version, ``spec.type`` is not ClusterSetIP or Headless, or a field has the
            wrong shape.
        """
        namespace, name, uid, rv = _metadata(obj, SERVICE_IMPORT)
        where = f"{SERVICE_IMPORT} {namespace}/{name}"
        _api_version(obj, where)
        spec = _mapping(obj.get("spec", {}), SERVICE_IMPORT, namespace, name, "spec")
        kind = spec.get("type")
        if kind not in (CLUSTER_SET_IP, HEADLESS):
            raise InvalidObject(f"{where}: spec.type {kind!r} is not {CLUSTER_SET_IP} "
                                f"or {HEADLESS}")
        ips: list[str] = []
        for ip in _list(spec.get("ips"), where, "spec.ips"):
            text = canonical_ip(str(ip))
            if text is None:
                _warn(warnings, f"{where}: spec.ips entry {ip!r} is not an IP address; skipped")
            elif text not in ips:
                ips.append(text)
        ports = tuple(_port(p, where, i, warnings)
                      for i, p in enumerate(_list(spec.get("ports"), where, "spec.ports")))
        return cls(
            namespace=namespace,
            name=name,
            uid=uid,
            resource_version=rv,
            headless=kind == HEADLESS,
            ips=() if kind == HEADLESS else tuple(ips),
            ports=ports,
        )


@dataclass(frozen=True, slots=True)
class McsEndpointSlice:
    """An EndpointSlice an MCS implementation made for a ServiceImport: the endpoints one
    member cluster (``cluster_id``) contributes.

    ``slice`` is the cluster-local reduction (readiness, families, ports decided once, in
    ``model``), with ``service_name`` set from ``multicluster.kubernetes.io/service-name``.
    """

    cluster_id: str
    slice: EndpointSlice

    @property
    def namespace(self) -> str:
        return self.slice.namespace

    @property
    def name(self) -> str:
        return self.slice.name

    @property
    def service_name(self) -> str:
        return self.slice.service_name

    @property
    def import_key(self) -> tuple[str, str]:
        """Key of the ServiceImport this slice belongs to (same namespace)."""
        return (self.slice.namespace, self.slice.service_name)

    @classmethod
    def from_api(cls, obj: Mapping[str, Any],
                 warnings: list[str] | None = None) -> McsEndpointSlice:
        """Reduce a discovery.k8s.io/v1 EndpointSlice carrying the two MCS labels.

        :raises InvalidObject: a label is missing, the cluster id is not an RFC 1123
            subdomain, or the slice itself is malformed (as in ``EndpointSlice.from_api``).
        """
        namespace, name, _uid, _rv = _metadata(obj, MCS_ENDPOINT_SLICE)
        where = f"{MCS_ENDPOINT_SLICE} {namespace}/{name}"
        labels = _labels(obj, where)
        service = labels.get(MCS_SERVICE_NAME_LABEL)
        if not isinstance(service, str) or not service:
            raise InvalidObject(f"{where}: no {MCS_SERVICE_NAME_LABEL} label")
        cluster = labels.get(SOURCE_CLUSTER_LABEL)
        if not isinstance(cluster, str) or not cluster:
            raise InvalidObject(f"{where}: no {SOURCE_CLUSTER_LABEL} label")
        reasons = check_cluster_id(cluster)
        if reasons:
            raise InvalidObject(f"{where}: {'; '.join(reasons)}")
        # The slice belongs to the ServiceImport named by the MCS label, whatever its
        # kubernetes.io/service-name says (some implementations point that at a local
        # "dummy" Service); the cluster-local reducer reads the label we set here.
        meta = obj["metadata"]
        local = {**obj, "metadata": {**meta, "labels": {**labels, SERVICE_NAME_LABEL: service}}}
        return cls(cluster_id=cluster, slice=EndpointSlice.from_api(local, warnings))


@dataclass(frozen=True, slots=True)
class ServiceExport:
    """A ServiceExport: only its existence matters to DNS (it marks the Service of the
    same namespace and name as exported to the clusterset)."""

    namespace: str
    name: str
    uid: str
    resource_version: str

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)

    @classmethod
    def from_api(cls, obj: Mapping[str, Any], warnings: list[str] | None = None) -> ServiceExport:
        """Reduce a ServiceExport of ``multicluster.x-k8s.io/v1alpha1`` or ``v1beta1``.

        :raises InvalidObject: metadata is incomplete or apiVersion is not one read here.
        """
        namespace, name, uid, rv = _metadata(obj, SERVICE_EXPORT)
        _api_version(obj, f"{SERVICE_EXPORT} {namespace}/{name}")
        return cls(namespace=namespace, name=name, uid=uid, resource_version=rv)
