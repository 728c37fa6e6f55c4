"""clusterset: the MCS DNS specification (schema 1.0.0) as exact zone text.

Every rule is asserted on the rendered zone (zonefile.render), parsed back with dnspython
and loaded by named-checkzone; the reducers in zonegen.mcs are tested for v1alpha1 and
v1beta1 objects and for one-line errors naming the object.
"""

from __future__ import annotations

import random
import shutil
import subprocess
from pathlib import Path
from typing import Any

import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.zone
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zonegen import zonefile
from zonegen.clusterset import (
    APEX_RECORDS,
    ClusterObjects,
    ClustersetProjection,
    ExportedService,
    ExportsProjection,
    clusterset_from_exports,
    clusterset_from_imports,
    records_for_exports,
    records_for_import,
)
from zonegen.errors import InvalidName, InvalidObject, InvalidZone
from zonegen.mcs import (
    MCS_SERVICE_NAME_LABEL,
    SOURCE_CLUSTER_LABEL,
    McsEndpointSlice,
    ServiceExport,
    ServiceImport,
    check_cluster_id,
)
from zonegen.model import SRV, Endpoints, EndpointSlice, Port, Record, Service
from zonegen.names import zone_config

DATA = Path(__file__).parent / "data"
ZONE = zone_config("clusterset.local")
SERIAL = 2026120301
HEADER = """$ORIGIN clusterset.local.
$TTL 5
@ IN SOA ns.dns.clusterset.local. hostmaster.clusterset.local. 2026120301 7200 1800 86400 5
@ IN NS ns.dns.clusterset.local.
ns.dns IN A 127.0.0.1
dns-version 28800 IN TXT "1.0.0"
"""
needs_bind = pytest.mark.skipif(shutil.which("named-checkzone") is None,
                                reason="named-checkzone (bind9-utils) is not installed")


# --------------------------------------------------------------------------- object makers


def service_import(name: str, kind: str = "ClusterSetIP", ips: tuple[str, ...] = (),
                   ports: tuple[dict[str, Any], ...] = (), ns: str = "shop",
                   version: str = "v1beta1") -> dict[str, Any]:
    spec: dict[str, Any] = {"type": kind, "ports": list(ports)}
    if ips:
        spec["ips"] = list(ips)
    return {"apiVersion": f"multicluster.x-k8s.io/{version}", "kind": "ServiceImport",
            "metadata": {"name": name, "namespace": ns, "uid": f"uid-si-{ns}-{name}",
                         "resourceVersion": "1"},
            "spec": spec, "status": {"clusters": [{"cluster": "east"}]}}


def ep(address: str | list[str], hostname: str | None = None,
       ready: bool | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"addresses": address if isinstance(address, list) else [address]}
    if hostname is not None:
        out["hostname"] = hostname
    if ready is not None:
        out["conditions"] = {"ready": ready}
    return out


def mcs_slice(name: str, service: str, cluster: str, endpoints: list[dict[str, Any]],
              ports: tuple[dict[str, Any], ...] = ({"name": "pg", "port": 5432,
                                                    "protocol": "TCP"},),
              family: str = "IPv4", ns: str = "shop") -> dict[str, Any]:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name, "namespace": ns, "uid": f"uid-es-{ns}-{name}",
                         "resourceVersion": "1",
                         "labels": {MCS_SERVICE_NAME_LABEL: service,
                                    SOURCE_CLUSTER_LABEL: cluster,
                                    "endpointslice.kubernetes.io/managed-by": "mcs"}},
            "addressType": family, "endpoints": endpoints, "ports": list(ports)}


def local_slice(name: str, service: str, endpoints: list[dict[str, Any]],
                ports: tuple[dict[str, Any], ...] = ({"name": "pg", "port": 5432},),
                family: str = "IPv4", ns: str = "shop") -> EndpointSlice:
    return EndpointSlice.from_api({
        "metadata": {"name": name, "namespace": ns, "uid": f"uid-{name}",
                     "labels": {"kubernetes.io/service-name": service}},
        "addressType": family, "endpoints": endpoints, "ports": list(ports)})


def service(name: str, cluster_ip: str = "None", ns: str = "shop",
            kind: str = "ClusterIP") -> Service:
    spec: dict[str, Any] = {"type": kind, "ports": [{"name": "pg", "port": 5432}]}
    if kind == "ExternalName":
        spec["externalName"] = "db.example.org"
    else:
        spec["clusterIP"] = cluster_ip
    return Service.from_api({"metadata": {"name": name, "namespace": ns, "uid": f"u-{name}"},
                             "spec": spec})


def export(name: str, ns: str = "shop") -> ServiceExport:
    return ServiceExport.from_api({"apiVersion": "multicluster.x-k8s.io/v1alpha1",
                                   "kind": "ServiceExport",
                                   "metadata": {"name": name, "namespace": ns, "uid": "x"}})


def project(imports: list[dict[str, Any]], slices: list[dict[str, Any]],
            warnings: list[InvalidName] | None = None) -> frozenset[Record]:
    return clusterset_from_imports([ServiceImport.from_api(i) for i in imports],
                                   [McsEndpointSlice.from_api(s) for s in slices], warnings)


def render(records: frozenset[Record] | list[Record]) -> str:
    warnings: list[str] = []
    text = "".join(zonefile.render(records, ZONE, SERIAL, warnings))
    assert warnings == []
    return text


def body(text: str) -> str:
    assert text.startswith(HEADER)
    return text[len(HEADER):]


def checkzone(text: str, tmp_path: Path) -> None:
    path = tmp_path / "clusterset.local.zone"
    path.write_text(text)
    proc = subprocess.run(["named-checkzone", "-i", "full", "clusterset.local", str(path)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"loaded serial {SERIAL}" in proc.stdout


def parsed(text: str) -> set[tuple[str, str, str]]:
    """(owner, type, rdata) of every record dnspython reads from the text, SOA/NS/glue
    excluded, so the renderer's output is proven by an independent parser."""
    zone = dns.zone.from_text(text, origin="clusterset.local.", relativize=False)
    out: set[tuple[str, str, str]] = set()
    for name, node in zone.nodes.items():
        for rds in node.rdatasets:
            if rds.rdtype in (dns.rdatatype.SOA, dns.rdatatype.NS) or str(name).startswith(
                    "ns.dns."):
                continue
            for rd in rds:
                out.add((str(name), dns.rdatatype.to_text(rds.rdtype), rd.to_text()))
    return out


def expected_from_records(records: frozenset[Record]) -> set[tuple[str, str, str]]:
    """The same set built straight from the Record fields with dnspython."""
    out: set[tuple[str, str, str]] = set()
    for r in records:
        owner = r.owner if r.owner.endswith(".") else f"{r.owner}.clusterset.local."
        fields = [f'"{f}"' if r.rtype == 16 else str(f) for f in r.rdata]
        if r.rtype == SRV:
            fields[-1] = f"{fields[-1]}.clusterset.local."
        rtype = dns.rdatatype.RdataType(r.rtype)
        rd = dns.rdata.from_text(dns.rdataclass.IN, rtype, " ".join(fields))
        out.add((owner, dns.rdatatype.to_text(rtype), rd.to_text()))
    return out


# --------------------------------------------------------------------------- reducers


@pytest.mark.parametrize("version", ["v1alpha1", "v1beta1"])
def test_service_import_reduces_alike_in_both_versions(version: str) -> None:
    obj = service_import("web", ips=("10.42.0.1", "fd00:0:0::1", "nonsense"),
                         ports=({"name": "http", "port": 80},
                                {"port": 53, "protocol": "udp"}), version=version)
    obj["spec"]["sessionAffinity"] = "None"
    obj["spec"]["ipFamilies"] = ["IPv4", "IPv6"]
    warnings: list[str] = []
    imp = ServiceImport.from_api(obj, warnings)
    assert imp == ServiceImport("shop", "web", "uid-si-shop-web", "1", False,
                                ("10.42.0.1", "fd00::1"),
                                (Port("http", 80, "TCP"), Port("", 53, "UDP")))
    assert warnings == ["ServiceImport shop/web: spec.ips entry 'nonsense' is not an IP "
                        "address; skipped"]


def test_headless_import_keeps_no_ips() -> None:
    imp = ServiceImport.from_api(service_import("db", "Headless", ips=("10.0.0.1",)))
    assert imp.headless
    assert imp.ips == ()


def test_service_import_without_api_version_is_read() -> None:
    obj = service_import("web", ips=("10.42.0.1",))
    del obj["apiVersion"]
    assert ServiceImport.from_api(obj).ips == ("10.42.0.1",)


@pytest.mark.parametrize(("change", "message"), [
    ({"apiVersion": "multicluster.x-k8s.io/v1alpha2"},
     "ServiceImport shop/web: apiVersion 'multicluster.x-k8s.io/v1alpha2' is not "
     "multicluster.x-k8s.io/v1alpha1 or v1beta1"),
    ({"apiVersion": "v1"}, "ServiceImport shop/web: apiVersion 'v1' is not "
     "multicluster.x-k8s.io/v1alpha1 or v1beta1"),
    ({"spec": {"type": "ClusterIP"}},
     "ServiceImport shop/web: spec.type 'ClusterIP' is not ClusterSetIP or Headless"),
    ({"spec": {"ports": []}},
     "ServiceImport shop/web: spec.type None is not ClusterSetIP or Headless"),
    ({"spec": {"type": "ClusterSetIP", "ips": "10.0.0.1"}},
     "ServiceImport shop/web: spec.ips is not a list"),
    ({"spec": {"type": "ClusterSetIP", "ports": [5]}},
     "ServiceImport shop/web: ports[0] is not an object"),
    ({"spec": []}, "ServiceImport shop/web: spec is not an object"),
    ({"metadata": {"name": "web", "namespace": "shop"}},
     "ServiceImport shop/web: metadata.uid is missing"),
])
def test_invalid_service_import_is_one_line_naming_it(change: dict[str, Any],
                                                      message: str) -> None:
    obj = {**service_import("web"), **change}
    with pytest.raises(InvalidObject) as err:
        ServiceImport.from_api(obj)
    assert str(err.value) == message


def test_mcs_slice_reduces_with_cluster_id_and_import() -> None:
    s = McsEndpointSlice.from_api(mcs_slice(
        "db-east-1", "db", "east.prod",
        [ep("10.1.0.5", "db-0"), ep("10.1.0.6", ready=False), ep("10.1.0.7", ready=True)]))
    assert s.cluster_id == "east.prod"
    assert s.import_key == ("shop", "db")
    assert (s.namespace, s.name, s.service_name) == ("shop", "db-east-1", "db")
    assert [(e.addresses, e.hostname, e.ready) for e in s.slice.endpoints] == [
        (("10.1.0.5",), "db-0", True), (("10.1.0.6",), None, False),
        (("10.1.0.7",), None, True)]
    assert s.slice.ports == (Port("pg", 5432, "TCP"),)


def test_mcs_label_wins_over_local_service_name_label() -> None:
    obj = mcs_slice("x", "db", "east", [ep("10.1.0.5")])
    obj["metadata"]["labels"]["kubernetes.io/service-name"] = "derived-db-abc"
    assert McsEndpointSlice.from_api(obj).import_key == ("shop", "db")


@pytest.mark.parametrize(("labels", "message"), [
    ({SOURCE_CLUSTER_LABEL: "east"},
     "EndpointSlice shop/s1: no multicluster.kubernetes.io/service-name label"),
    ({MCS_SERVICE_NAME_LABEL: "db"},
     "EndpointSlice shop/s1: no multicluster.kubernetes.io/source-cluster label"),
    ({MCS_SERVICE_NAME_LABEL: "db", SOURCE_CLUSTER_LABEL: "East"},
     "EndpointSlice shop/s1: cluster id 'East' is not an RFC 1123 subdomain (lowercase "
     "letters, digits, '-' and '.', starting and ending alphanumeric)"),
    ({MCS_SERVICE_NAME_LABEL: "db", SOURCE_CLUSTER_LABEL: "a..b"},
     "EndpointSlice shop/s1: cluster id 'a..b' is not an RFC 1123 subdomain (lowercase "
     "letters, digits, '-' and '.', starting and ending alphanumeric)"),
])
def test_invalid_mcs_slice_is_one_line_naming_it(labels: dict[str, str],
                                                 message: str) -> None:
    obj = mcs_slice("s1", "db", "east", [ep("10.1.0.5")])
    obj["metadata"]["labels"] = labels
    with pytest.raises(InvalidObject) as err:
        McsEndpointSlice.from_api(obj)
    assert str(err.value) == message


def test_cluster_id_rules() -> None:
    assert check_cluster_id("721ab723-13bc-11e5-aec2-42010af0021e") == []
    assert check_cluster_id("east.prod.example") == []
    assert check_cluster_id("") == ["cluster id is empty"]
    assert check_cluster_id("a" * 64) == [f"cluster id {'a' * 64!r} has a label longer "
                                          "than 63 octets"]
    long_id = ".".join(["a" * 63] * 4)  # 255 characters
    assert check_cluster_id(long_id) == [f"cluster id {long_id!r} is longer than 253 "
                                         "characters"]
    assert check_cluster_id("-a")[0].startswith("cluster id '-a' is not an RFC 1123")


def test_service_export_is_existence_only() -> None:
    assert export("db") == ServiceExport("shop", "db", "x", "")
    with pytest.raises(InvalidObject, match="^ServiceExport shop/db: apiVersion 'v1' is not"):
        ServiceExport.from_api({"apiVersion": "v1",
                                "metadata": {"name": "db", "namespace": "shop", "uid": "x"}})


# --------------------------------------------------------------------------- record rules

LONG_ID = ".".join(["c" * 63] * 3) + "." + "c" * 61  # 253 characters, the longest id

HEADLESS_PORTS = ({"name": "pg", "port": 5432, "protocol": "TCP"},
                  {"port": 9187, "protocol": "TCP"})

CASES: list[tuple[str, list[dict[str, Any]], list[dict[str, Any]], str, list[str]]] = [
    ("empty clusterset: only dns-version (MCS §2.2)", [], [], "", []),
    (
        "ClusterSetIP dual stack: A/AAAA, SRV per named port, bare SRV per port",
        [service_import("web", ips=("10.42.42.42", "2001:db8::1"),
                        ports=({"name": "https", "port": 443},
                               {"name": "dns", "port": 53, "protocol": "UDP"},
                               {"port": 8080}))],
        # slices of a ClusterSetIP import publish nothing (MCS §2.3.4)
        [mcs_slice("web-east", "web", "east", [ep("10.1.0.9", "web-0")])],
        """web.shop.svc IN A 10.42.42.42
web.shop.svc IN AAAA 2001:db8::1
web.shop.svc IN SRV 0 100 443 web.shop.svc.clusterset.local.
web.shop.svc IN SRV 0 100 53 web.shop.svc.clusterset.local.
web.shop.svc IN SRV 0 100 8080 web.shop.svc.clusterset.local.
_https._tcp.web.shop.svc IN SRV 0 100 443 web.shop.svc.clusterset.local.
_dns._udp.web.shop.svc IN SRV 0 100 53 web.shop.svc.clusterset.local.
""",
        [],
    ),
    (
        "ClusterSetIP without spec.ips: nothing, one warning",
        [service_import("web", ports=({"name": "https", "port": 443},))], [], "",
        ["ServiceImport shop/web: ClusterSetIP import has no spec.ips; nothing published"],
    ),
    (
        "Headless across clusters: ready endpoints only, hostname else dashed address, "
        "dotted cluster id, IPv6",
        [service_import("db", "Headless", ports=({"name": "ignored", "port": 1},))],
        [
            mcs_slice("db-east", "db", "east.prod",
                      [ep("10.1.0.5", "db-0"), ep("10.1.0.6", "db-1", ready=False)],
                      HEADLESS_PORTS),
            mcs_slice("db-west", "db", "west", [ep("10.2.0.5", "db-0"), ep("10.2.0.6")],
                      HEADLESS_PORTS),
            mcs_slice("db-west6", "db", "west", [ep("fd00::5", "db-0")], HEADLESS_PORTS,
                      family="IPv6"),
        ],
        """db.shop.svc IN A 10.1.0.5
db.shop.svc IN A 10.2.0.5
db.shop.svc IN A 10.2.0.6
db.shop.svc IN AAAA fd00::5
db.shop.svc IN SRV 0 100 5432 10-2-0-6.west.db.shop.svc.clusterset.local.
db.shop.svc IN SRV 0 100 5432 db-0.east.prod.db.shop.svc.clusterset.local.
db.shop.svc IN SRV 0 100 5432 db-0.west.db.shop.svc.clusterset.local.
db.shop.svc IN SRV 0 100 9187 10-2-0-6.west.db.shop.svc.clusterset.local.
db.shop.svc IN SRV 0 100 9187 db-0.east.prod.db.shop.svc.clusterset.local.
db.shop.svc IN SRV 0 100 9187 db-0.west.db.shop.svc.clusterset.local.
_pg._tcp.db.shop.svc IN SRV 0 100 5432 10-2-0-6.west.db.shop.svc.clusterset.local.
_pg._tcp.db.shop.svc IN SRV 0 100 5432 db-0.east.prod.db.shop.svc.clusterset.local.
_pg._tcp.db.shop.svc IN SRV 0 100 5432 db-0.west.db.shop.svc.clusterset.local.
db-0.east.prod.db.shop.svc IN A 10.1.0.5
10-2-0-6.west.db.shop.svc IN A 10.2.0.6
db-0.west.db.shop.svc IN A 10.2.0.5
db-0.west.db.shop.svc IN AAAA fd00::5
""",
        [],
    ),
    (
        "Headless with no ready endpoint: no records at all (NXDOMAIN)",
        [service_import("db", "Headless")],
        [mcs_slice("db-east", "db", "east", [ep("10.1.0.5", "db-0", ready=False)])],
        "", [],
    ),
    (
        "Headless, several addresses of one endpoint, invalid hostname, IPv6 label repair",
        [service_import("db", "Headless")],
        [mcs_slice("db-east", "db", "east", [ep(["fd00::", "fd00::1"], "Bad_Host")],
                   ports=(), family="IPv6")],
        """db.shop.svc IN AAAA fd00::
db.shop.svc IN AAAA fd00::1
fd00--0.east.db.shop.svc IN AAAA fd00::
fd00--1.east.db.shop.svc IN AAAA fd00::1
""",
        ["EndpointSlice shop/db-east: hostname 'Bad_Host' ignored: label 'Bad_Host' has "
         "characters other than letters, digits and '-' (cluster east)"],
    ),
    (
        "A hostname under one cluster equal to another cluster's reserved name is skipped",
        [service_import("db", "Headless")],
        [mcs_slice("db-b", "db", "b", [ep("10.1.0.5", "x")]),
         mcs_slice("db-xb", "db", "x.b", [ep("10.2.0.5", "db-0")])],
        """db.shop.svc IN A 10.1.0.5
db.shop.svc IN A 10.2.0.5
db.shop.svc IN SRV 0 100 5432 db-0.x.b.db.shop.svc.clusterset.local.
_pg._tcp.db.shop.svc IN SRV 0 100 5432 db-0.x.b.db.shop.svc.clusterset.local.
db-0.x.b.db.shop.svc IN A 10.2.0.5
""",
        ["EndpointSlice shop/db-b: name x.b.db.shop.svc is the reserved cluster name of "
         "another cluster (MCS §2.4.4); skipped (cluster b)"],
    ),
    (
        "A name over 255 octets is skipped with a warning naming the slice; the rest stays",
        [service_import("db", "Headless")],
        [mcs_slice("db-long", "db", LONG_ID, [ep("10.1.0.5", "db-0")]),
         mcs_slice("db-east", "db", "east", [ep("10.2.0.5", "db-0")])],
        """db.shop.svc IN A 10.1.0.5
db.shop.svc IN A 10.2.0.5
db.shop.svc IN SRV 0 100 5432 db-0.east.db.shop.svc.clusterset.local.
_pg._tcp.db.shop.svc IN SRV 0 100 5432 db-0.east.db.shop.svc.clusterset.local.
db-0.east.db.shop.svc IN A 10.2.0.5
""",
        [f"EndpointSlice shop/db-long: name 'db-0.{LONG_ID}.db.shop.svc.clusterset.local.' "
         f"is longer than 255 octets (cluster {LONG_ID})"],
    ),
    (
        "Slices of another import or namespace, and FQDN slices, give nothing",
        [service_import("db", "Headless")],
        [mcs_slice("other", "cache", "east", [ep("10.1.0.5")]),
         mcs_slice("elsewhere", "db", "east", [ep("10.1.0.6")], ns="prod"),
         mcs_slice("fqdn", "db", "east", [ep("db.example.org")], family="FQDN")],
        "", [],
    ),
]


@pytest.mark.parametrize(("imports", "slices", "expected", "warned"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_record_rules_as_zone_text(imports: list[dict[str, Any]],
                                   slices: list[dict[str, Any]], expected: str,
                                   warned: list[str], tmp_path: Path) -> None:
    warnings: list[InvalidName] = []
    records = project(imports, slices, warnings)
    text = render(records)
    assert body(text) == expected
    assert [str(w) for w in warnings] == warned
    assert parsed(text) == expected_from_records(records)
    if shutil.which("named-checkzone"):
        checkzone(text, tmp_path)


@pytest.mark.parametrize("version", ["v1alpha1", "v1beta1"])
def test_v1alpha1_and_v1beta1_imports_give_the_same_zone(version: str) -> None:
    imports = [service_import("web", ips=("10.42.0.1",), ports=({"name": "http", "port": 80},),
                              version=version),
               service_import("db", "Headless", version=version)]
    slices = [mcs_slice("db-east", "db", "east", [ep("10.1.0.5", "db-0")])]
    assert body(render(project(imports, slices))) == """db.shop.svc IN A 10.1.0.5
db.shop.svc IN SRV 0 100 5432 db-0.east.db.shop.svc.clusterset.local.
_pg._tcp.db.shop.svc IN SRV 0 100 5432 db-0.east.db.shop.svc.clusterset.local.
db-0.east.db.shop.svc IN A 10.1.0.5
web.shop.svc IN A 10.42.0.1
web.shop.svc IN SRV 0 100 80 web.shop.svc.clusterset.local.
_http._tcp.web.shop.svc IN SRV 0 100 80 web.shop.svc.clusterset.local.
"""


def test_invalid_service_name_publishes_nothing_with_a_warning() -> None:
    warnings: list[InvalidName] = []
    imp = ServiceImport("shop", "Web", "u", "1", False, ("10.0.0.1",), ())
    assert records_for_import(imp, [], warnings) == frozenset()
    assert [str(w) for w in warnings] == [
        "ServiceImport shop/Web: name 'Web' is not lowercase, as Kubernetes object names are"]


def test_operator_named_zone() -> None:
    """Owners stay relative, so the same records render into a zone the operator names."""
    config = zone_config("mcs.example.org")
    records = project([service_import("web", ips=("10.42.0.1",),
                                      ports=({"name": "http", "port": 80},))], [])
    text = "".join(zonefile.render(records, config, SERIAL))
    assert "_http._tcp.web.shop.svc IN SRV 0 100 80 web.shop.svc.mcs.example.org.\n" in text
    assert 'dns-version 28800 IN TXT "1.0.0"\n' in text


# --------------------------------------------------------------------------- golden file

GOLDEN_IMPORTS = [
    service_import("web", ips=("10.42.42.42", "2001:db8::1"),
                   ports=({"name": "https", "port": 443}, {"port": 8080})),
    service_import("db", "Headless"),
    service_import("empty", "Headless"),
]
GOLDEN_SLICES = [
    mcs_slice("db-a", "db", "cluster-a", [ep("10.1.0.5", "my-pet-1"), ep("10.1.0.6")],
              HEADLESS_PORTS),
    mcs_slice("db-b", "db", "b.eu.example", [ep("10.2.0.5", "my-pet-1"),
                                             ep("10.2.0.6", "my-pet-2", ready=False)],
              HEADLESS_PORTS),
    mcs_slice("db-b6", "db", "b.eu.example", [ep("2001:db8::10", "my-pet-1")],
              HEADLESS_PORTS, family="IPv6"),
    mcs_slice("empty-a", "empty", "cluster-a", [ep("10.1.0.9", ready=False)]),
]


def test_golden_zone_file(tmp_path: Path) -> None:
    text = render(project(GOLDEN_IMPORTS, GOLDEN_SLICES))
    assert text == (DATA / "clusterset.local.zone").read_text()


@needs_bind
def test_golden_zone_file_loads_in_bind(tmp_path: Path) -> None:
    checkzone((DATA / "clusterset.local.zone").read_text(), tmp_path)


def test_nothing_at_reserved_cluster_names() -> None:
    records = project(GOLDEN_IMPORTS, GOLDEN_SLICES)
    owners = {r.owner for r in records}
    for cluster in ("cluster-a", "b.eu.example", "eu.example", "example"):
        assert f"{cluster}.db.shop.svc" not in owners
    zone = dns.zone.from_text(render(records), origin="clusterset.local.", relativize=False)
    for cluster in ("cluster-a", "b.eu.example"):
        node = zone.get_node(f"{cluster}.db.shop.svc.clusterset.local.")
        assert node is None or not node.rdatasets


# --------------------------------------------------------------------------- changes


def test_a_cluster_going_away_removes_only_its_records() -> None:
    imports = [service_import("db", "Headless")]
    east = mcs_slice("db-east", "db", "east", [ep("10.1.0.5", "db-0")])
    west = mcs_slice("db-west", "db", "west", [ep("10.2.0.5", "db-0"), ep("10.2.0.6")])
    north = mcs_slice("db-north", "db", "north.eu", [ep("10.3.0.5", "db-0")])
    before = project(imports, [east, west, north])
    after = project(imports, [east, north])
    assert after < before
    assert {(r.owner, r.rtype, r.rdata) for r in before - after} == {
        ("db.shop.svc", 1, ("10.2.0.5",)),
        ("db.shop.svc", 1, ("10.2.0.6",)),
        ("db-0.west.db.shop.svc", 1, ("10.2.0.5",)),
        ("10-2-0-6.west.db.shop.svc", 1, ("10.2.0.6",)),
        ("db.shop.svc", SRV, (0, 100, 5432, "db-0.west.db.shop.svc")),
        ("db.shop.svc", SRV, (0, 100, 5432, "10-2-0-6.west.db.shop.svc")),
        ("_pg._tcp.db.shop.svc", SRV, (0, 100, 5432, "db-0.west.db.shop.svc")),
        ("_pg._tcp.db.shop.svc", SRV, (0, 100, 5432, "10-2-0-6.west.db.shop.svc")),
    }
    # The last cluster going away leaves no records for the import (NXDOMAIN).
    assert project(imports, []) == APEX_RECORDS


def test_one_address_in_two_clusters_publishes_once_at_the_service_name() -> None:
    records = project([service_import("db", "Headless")],
                      [mcs_slice("a", "db", "east", [ep("10.0.0.5", "db-0")]),
                       mcs_slice("b", "db", "west", [ep("10.0.0.5", "db-0")])])
    assert sorted(r.owner for r in records if r.rdata == ("10.0.0.5",)) == [
        "db-0.east.db.shop.svc", "db-0.west.db.shop.svc", "db.shop.svc"]


# --------------------------------------------------------------------------- exports


def three_clusters() -> list[ClusterObjects]:
    legacy = Endpoints.from_api({
        "metadata": {"name": "db", "namespace": "shop", "uid": "e"},
        "subsets": [{"addresses": [{"ip": "10.3.0.5", "hostname": "db-0"}],
                     "ports": [{"name": "pg", "port": 5432}]}]})
    return [
        ClusterObjects(
            "east", (service("db"), service("web", "10.96.0.10"), service("cache")),
            (local_slice("db-x1", "db", [ep("10.1.0.5", "db-0"), ep("10.1.0.6", ready=False)]),
             local_slice("cache-x1", "cache", [ep("10.1.0.7")])),
            (export("db"), export("web"), export("gone"))),
        ClusterObjects(
            "west.eu", (service("db"), service("cache")),
            (local_slice("db-y1", "db", [ep("10.2.0.5", "db-0")]),
             local_slice("db-y2", "db", [ep("fd00::5")], family="IPv6"),
             local_slice("cache-y1", "cache", [ep("10.2.0.7")])),
            (export("db"),)),
        # north: db through legacy Endpoints only; cache exported only here
        ClusterObjects("north", (service("db"), service("cache")), legacy.slices,
                       (export("db"), export("cache"))),
    ]


def test_clusterset_from_exports(tmp_path: Path) -> None:
    warnings: list[InvalidName] = []
    records = clusterset_from_exports(three_clusters(), warnings)
    text = render(records)
    assert body(text) == """db.shop.svc IN A 10.1.0.5
db.shop.svc IN A 10.2.0.5
db.shop.svc IN A 10.3.0.5
db.shop.svc IN AAAA fd00::5
db.shop.svc IN SRV 0 100 5432 db-0.east.db.shop.svc.clusterset.local.
db.shop.svc IN SRV 0 100 5432 db-0.north.db.shop.svc.clusterset.local.
db.shop.svc IN SRV 0 100 5432 db-0.west.eu.db.shop.svc.clusterset.local.
db.shop.svc IN SRV 0 100 5432 fd00--5.west.eu.db.shop.svc.clusterset.local.
_pg._tcp.db.shop.svc IN SRV 0 100 5432 db-0.east.db.shop.svc.clusterset.local.
_pg._tcp.db.shop.svc IN SRV 0 100 5432 db-0.north.db.shop.svc.clusterset.local.
_pg._tcp.db.shop.svc IN SRV 0 100 5432 db-0.west.eu.db.shop.svc.clusterset.local.
_pg._tcp.db.shop.svc IN SRV 0 100 5432 fd00--5.west.eu.db.shop.svc.clusterset.local.
db-0.east.db.shop.svc IN A 10.1.0.5
db-0.west.eu.db.shop.svc IN A 10.2.0.5
fd00--5.west.eu.db.shop.svc IN AAAA fd00::5
db-0.north.db.shop.svc IN A 10.3.0.5
"""
    # cache: exported only from north, whose cache has no endpoints there: nothing.
    assert [str(w) for w in warnings] == [
        "Service shop/web: exported from cluster east: a ClusterIP Service needs an MCS "
        "controller for its ClusterSetIP; not in the clusterset zone"]
    assert parsed(text) == expected_from_records(records)
    if shutil.which("named-checkzone"):
        checkzone(text, tmp_path)


def test_exports_give_what_an_equivalent_import_gives() -> None:
    members = [ExportedService("east", service("db"),
                               (local_slice("s1", "db", [ep("10.1.0.5", "db-0")]),)),
               ExportedService("west", service("db"),
                               (local_slice("s2", "db", [ep("10.2.0.5")]),))]
    via_import = project([service_import("db", "Headless")],
                         [mcs_slice("s1", "db", "east", [ep("10.1.0.5", "db-0")],
                                    ({"name": "pg", "port": 5432},)),
                          mcs_slice("s2", "db", "west", [ep("10.2.0.5")],
                                    ({"name": "pg", "port": 5432},))])
    assert records_for_exports("shop", "db", members) | APEX_RECORDS == via_import


def test_external_name_export_is_refused_with_a_warning() -> None:
    warnings: list[InvalidName] = []
    members = [ExportedService("east", service("ext", kind="ExternalName"), ())]
    assert records_for_exports("shop", "ext", members, warnings) == frozenset()
    assert [str(w) for w in warnings] == [
        "Service shop/ext: exported from cluster east: an ExternalName Service cannot be "
        "exported; not in the clusterset zone"]


@pytest.mark.parametrize(("ids", "message"), [
    (("east", "east"), "cluster id 'east' is given to two sources"),
    (("east", "West"), "cluster id 'West' is not an RFC 1123 subdomain"),
])
def test_bad_source_cluster_ids_are_refused(ids: tuple[str, str], message: str) -> None:
    clusters = [ClusterObjects(i, (), (), ()) for i in ids]
    with pytest.raises(InvalidZone, match=f"^{message}"):
        clusterset_from_exports(clusters)


# --------------------------------------------------------------------------- properties

CLUSTERS = ["a", "b", "x.b", "east.prod", "c" * 63 + "." + "d" * 63 + "." + "e" * 63 + ".ee",
            LONG_ID]
HOSTS = [None, "db-0", "db-1", "x", "Bad_Host"]


@st.composite
def mcs_inputs(draw: st.DrawFn) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    imports = [service_import("db", "Headless"),
               service_import("web", ips=tuple(draw(st.lists(
                   st.sampled_from(["10.42.0.1", "fd00::1"]), max_size=2, unique=True))),
                   ports=({"name": "http", "port": 80}, {"port": 81}))]
    slices = []
    for i in range(draw(st.integers(0, 6))):
        family = draw(st.sampled_from(["IPv4", "IPv6"]))
        eps = []
        for j in range(draw(st.integers(0, 3))):
            n = draw(st.integers(1, 9))
            address = f"10.{i}.{j}.{n}" if family == "IPv4" else f"fd00::{i}:{j}:{n}"
            eps.append(ep(address, draw(st.sampled_from(HOSTS)),
                          draw(st.sampled_from([None, True, False]))))
        ports = draw(st.sampled_from([(), ({"name": "pg", "port": 5432},),
                                      ({"name": "pg", "port": 5432}, {"port": 9187})]))
        slices.append(mcs_slice(f"s{i}", draw(st.sampled_from(["db", "web"])),
                                draw(st.sampled_from(CLUSTERS)), eps, ports, family))
    return imports, slices


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mcs_inputs(), st.randoms(use_true_random=False))
def test_properties(inputs: tuple[list[dict[str, Any]], list[dict[str, Any]]],
                    rnd: random.Random) -> None:
    imports, slices = inputs
    records = project(imports, slices)
    # Independent of input order.
    shuffled_i, shuffled_s = imports[:], slices[:]
    rnd.shuffle(shuffled_i)
    rnd.shuffle(shuffled_s)
    assert project(shuffled_i, shuffled_s) == records
    # Every owner and target is a valid name under the zone: the zone keeps every record.
    warnings: list[str] = []
    assert len(zonefile.zone_records(records, ZONE, warnings)) == len(records)
    assert warnings == []
    # Nothing at <clusterid>.<svc>.<ns>.svc for a cluster backing that Service (MCS
    # §2.3.4 / §2.4.4), even where another cluster's <hostname>.<clusterid> spells it.
    owners = {r.owner for r in records}
    for s in slices:
        labels = s["metadata"]["labels"]
        svc = labels[MCS_SERVICE_NAME_LABEL]
        assert f"{labels[SOURCE_CLUSTER_LABEL]}.{svc}.shop.svc" not in owners
    # No endpoint names under a ClusterSetIP import, no PTR at all.
    assert all(not r.owner.endswith(".web.shop.svc") or r.owner.startswith("_")
               for r in records)
    assert all(r.rtype in (1, 28, 33, 16) for r in records)
    # dnspython reads back exactly the records.
    assert parsed(render(records)) == expected_from_records(records)


@st.composite
def member_slices(draw: st.DrawFn) -> list[tuple[str, str, list[dict[str, Any]], str]]:
    """(cluster, slice name, endpoints, family) of a headless Service's slices."""
    out = []
    for i in range(draw(st.integers(0, 5))):
        family = draw(st.sampled_from(["IPv4", "IPv6"]))
        eps = [ep(f"10.{i}.0.{j}" if family == "IPv4" else f"fd00::{i}:{j}",
                  draw(st.sampled_from(HOSTS)), draw(st.sampled_from([None, True, False])))
               for j in range(draw(st.integers(0, 3)))]
        out.append((draw(st.sampled_from(CLUSTERS[:4])), f"s{i}", eps, family))
    return out


@settings(max_examples=100, deadline=None)
@given(member_slices())
def test_exports_equal_the_equivalent_import(parts: list[tuple[str, str,
                                                              list[dict[str, Any]], str]]) -> None:
    """Deriving from ServiceExports is records_for_import of the Headless import an MCS
    controller would make from the same slices, labelled with each source's cluster id."""
    clusters = []
    for cluster in sorted({p[0] for p in parts}):
        slices = tuple(local_slice(name, "db", eps, family=family)
                       for c, name, eps, family in parts if c == cluster)
        clusters.append(ClusterObjects(cluster, (service("db"),), slices, (export("db"),)))
    via_mcs = project([service_import("db", "Headless")],
                      [mcs_slice(name, "db", c, eps, ({"name": "pg", "port": 5432},), family)
                       for c, name, eps, family in parts])
    assert clusterset_from_exports(clusters) == via_mcs


def test_the_specifications_questions_are_answered() -> None:
    """MCS §2.2-§2.4's example questions, asked of the parsed zone (dnspython lookups are
    case-insensitive, as a name server's are, so the spec's ``clusterA`` finds the
    lowercase id Kubernetes requires)."""
    https = ({"name": "https", "port": 443},)
    imports = [service_import("myservice", ips=("10.42.42.42", "2001:db8::1"), ports=https,
                              ns="test"),
               service_import("headless", "Headless", ports=https, ns="test")]
    slices = [mcs_slice(f"headless-{c}", "headless", c,
                        [ep(f"10.{n}.0.{i}", f"my-pet-{i}") for i in (1, 2, 3)], https,
                        ns="test")
              for n, c in ((3, "clustera"), (4, "clusterb"))]
    zone = dns.zone.from_text(render(project(imports, slices)), origin="clusterset.local.",
                              relativize=False)

    def answer(qname: str, rdtype: str) -> list[str]:
        rds = zone.get_rdataset(qname, rdtype)
        return sorted(rd.to_text() for rd in rds) if rds is not None else []

    assert answer("dns-version.clusterset.local.", "TXT") == ['"1.0.0"']
    assert answer("myservice.test.svc.clusterset.local.", "A") == ["10.42.42.42"]
    assert answer("myservice.test.svc.clusterset.local.", "AAAA") == ["2001:db8::1"]
    assert answer("_https._tcp.myservice.test.svc.clusterset.local.", "SRV") == [
        "0 100 443 myservice.test.svc.clusterset.local."]
    assert answer("headless.test.svc.clusterset.local.", "A") == [
        "10.3.0.1", "10.3.0.2", "10.3.0.3", "10.4.0.1", "10.4.0.2", "10.4.0.3"]
    assert answer("my-pet-1.clusterA.headless.test.svc.clusterset.local.", "A") == [
        "10.3.0.1"]
    assert answer("_https._tcp.headless.test.svc.clusterset.local.", "SRV") == [
        f"0 100 443 my-pet-{i}.{c}.headless.test.svc.clusterset.local."
        for i in (1, 2, 3) for c in ("clustera", "clusterb")]
    # MCS §2.4.4: nothing at <clusterid>.<svc>.<ns>.svc (an empty non-terminal at most).
    for c in ("clusterA", "clusterB"):
        node = zone.get_node(f"{c}.headless.test.svc.clusterset.local.")
        assert node is None or not node.rdatasets


@st.composite
def change_sequences(draw: st.DrawFn) -> list[tuple[str, str, dict[str, Any] | None]]:
    """(kind, name, object or None for a deletion) in the namespace shop."""
    out: list[tuple[str, str, dict[str, Any] | None]] = []
    for _ in range(draw(st.integers(0, 14))):
        if draw(st.booleans()):
            name = draw(st.sampled_from(["db", "web"]))
            obj = None if draw(st.integers(0, 3)) == 0 else service_import(
                name, draw(st.sampled_from(["Headless", "ClusterSetIP"])),
                ips=("10.42.0.1",), ports=({"name": "http", "port": 80},))
            out.append(("ServiceImport", name, obj))
        else:
            name = draw(st.sampled_from(["s0", "s1", "s2"]))
            eps = [ep(f"10.0.{i}.{draw(st.integers(1, 3))}", draw(st.sampled_from(HOSTS)),
                      draw(st.sampled_from([None, False])))
                   for i in range(draw(st.integers(0, 2)))]
            obj = None if draw(st.integers(0, 3)) == 0 else mcs_slice(
                name, draw(st.sampled_from(["db", "web"])),
                draw(st.sampled_from(CLUSTERS[:4])), eps)
            out.append(("EndpointSlice", name, obj))
    return out


@settings(max_examples=150, deadline=None)
@given(change_sequences())
def test_fold_equals_rebuild(changes: list[tuple[str, str, dict[str, Any] | None]]) -> None:
    """Folding changes one at a time gives the records a rebuild from the final objects
    gives, and the diffs applied in order rebuild the same set (the IXFR journal)."""
    proj = ClustersetProjection()
    zone = set(APEX_RECORDS)
    final: dict[tuple[str, str], dict[str, Any]] = {}
    for kind, name, obj in changes:
        reduced = (None if obj is None else ServiceImport.from_api(obj)
                   if kind == "ServiceImport" else McsEndpointSlice.from_api(obj))
        diff = proj.apply(kind, "shop", name, reduced)
        assert diff.added.isdisjoint(zone)
        assert diff.removed <= zone
        zone = (zone - diff.removed) | diff.added
        if obj is None:
            final.pop((kind, name), None)
        else:
            final[(kind, name)] = obj
    expected = project([o for (k, _), o in final.items() if k == "ServiceImport"],
                       [o for (k, _), o in final.items() if k == "EndpointSlice"])
    assert proj.records() == expected
    assert zone == expected
    assert len(proj) == len(expected)


def test_fold_a_slice_moving_between_imports() -> None:
    proj = ClustersetProjection()
    proj.apply("ServiceImport", "shop", "db", ServiceImport.from_api(
        service_import("db", "Headless")))
    proj.apply("ServiceImport", "shop", "cache", ServiceImport.from_api(
        service_import("cache", "Headless")))
    first = proj.apply("EndpointSlice", "shop", "s1", McsEndpointSlice.from_api(
        mcs_slice("s1", "db", "east", [ep("10.1.0.5", "db-0")])))
    assert Record("db-0.east.db.shop.svc", 1, ("10.1.0.5",)) in first.added
    moved = proj.apply("EndpointSlice", "shop", "s1", McsEndpointSlice.from_api(
        mcs_slice("s1", "cache", "east", [ep("10.1.0.5", "db-0")])))
    assert moved.removed == first.added
    assert Record("db-0.east.cache.shop.svc", 1, ("10.1.0.5",)) in moved.added
    gone = proj.apply("EndpointSlice", "shop", "s1", None)
    assert gone.removed == moved.added
    assert proj.records() == APEX_RECORDS
    assert not proj.apply("EndpointSlice", "shop", "unknown", None)


def _local_object(kind: str, name: str, draw: st.DrawFn) -> Any:
    if kind == "Service":
        return service(name, draw(st.sampled_from(["None", "None", "10.96.0.1"])))
    if kind == "ServiceExport":
        return export(name)
    i = draw(st.integers(0, 9))
    if kind == "Endpoints":
        return Endpoints.from_api({
            "metadata": {"name": name, "namespace": "shop", "uid": "e"},
            "subsets": [{"addresses": [{"ip": f"10.9.{i}.1", "hostname": "legacy"}],
                         "ports": [{"name": "pg", "port": 5432}]}]})
    eps = [ep(f"10.0.{i}.{j}", draw(st.sampled_from(HOSTS)),
              draw(st.sampled_from([None, False]))) for j in range(draw(st.integers(0, 2)))]
    return local_slice(name, draw(st.sampled_from(["db", "cache"])), eps)


@st.composite
def export_changes(draw: st.DrawFn) -> list[tuple[str, str, str, Any]]:
    """(cluster, kind, name, reduced object or None) changes in namespace shop."""
    out = []
    for _ in range(draw(st.integers(0, 16))):
        cluster = draw(st.sampled_from(["east", "west.eu", "north"]))
        kind = draw(st.sampled_from(["Service", "EndpointSlice", "Endpoints",
                                     "ServiceExport"]))
        name = draw(st.sampled_from(["s1", "s2"] if kind == "EndpointSlice"
                                    else ["db", "cache"]))
        obj = None if draw(st.integers(0, 3)) == 0 else _local_object(kind, name, draw)
        out.append((cluster, kind, name, obj))
    return out


@settings(max_examples=150, deadline=None)
@given(export_changes())
def test_exports_fold_equals_rebuild(changes: list[tuple[str, str, str, Any]]) -> None:
    proj = ExportsProjection()
    zone = set(APEX_RECORDS)
    final: dict[tuple[str, str, str], Any] = {}
    for cluster, kind, name, obj in changes:
        diff = proj.apply(cluster, kind, "shop", name, obj)
        assert diff.added.isdisjoint(zone)
        assert diff.removed <= zone
        zone = (zone - diff.removed) | diff.added
        if obj is None:
            final.pop((cluster, kind, name), None)
        else:
            final[(cluster, kind, name)] = obj
    clusters = []
    for cid in ("east", "west.eu", "north"):
        mine = {(k, n): o for (c, k, n), o in final.items() if c == cid}
        slices = [o for (k, _), o in mine.items() if k == "EndpointSlice"]
        slices += [s for (k, _), o in mine.items() if k == "Endpoints" for s in o.slices]
        clusters.append(ClusterObjects(
            cid, tuple(o for (k, _), o in mine.items() if k == "Service"), tuple(slices),
            tuple(o for (k, _), o in mine.items() if k == "ServiceExport")))
    expected = clusterset_from_exports(clusters)
    assert proj.records() == expected
    assert zone == expected
    assert len(proj) == len(expected)


def test_exports_fold_refuses_a_bad_cluster_id() -> None:
    with pytest.raises(InvalidZone, match="^cluster id 'East' is not an RFC 1123 subdomain"):
        ExportsProjection().apply("East", "Service", "shop", "db", service("db"))
