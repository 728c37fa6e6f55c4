"""project: every rule of RECORDS.md as exact records, and fold == rebuild.

Expected records are written as zone-text-like lines, ``OWNER TYPE RDATA``, owners
relative to the cluster domain unless they end with a dot, as ``Record`` holds them.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zonegen import model
from zonegen.errors import InvalidName
from zonegen.model import (
    ENDPOINT_SLICE,
    ENDPOINTS,
    SERVICE,
    SRV,
    TXT,
    TYPE_CODES,
    Change,
    Diff,
    Endpoint,
    Endpoints,
    EndpointSlice,
    Port,
    Record,
    Service,
)
from zonegen.project import (
    APEX_RECORDS,
    Projection,
    rebuild,
    records_for_service,
    srv_weight,
)

# --------------------------------------------------------------------------- helpers


def zone(text: str) -> frozenset[Record]:
    """Records from ``OWNER TYPE RDATA`` lines (``;`` starts a comment, a trailing ``\\``
    continues the line, for long reverse names)."""
    out: set[Record] = set()
    for raw in text.replace("\\\n", " ").splitlines():
        line = raw.split(";")[0].strip()
        if not line:
            continue
        owner, rtype, *rdata = line.split()
        code = TYPE_CODES[rtype]
        if code == SRV:
            prio, weight, port, target = rdata
            out.add(Record(owner, code, (int(prio), int(weight), int(port), target)))
        else:
            (value,) = rdata
            out.add(Record(owner, code, (value,)))
    return frozenset(out)


def svc(name: str = "web", ns: str = "default", *, ips: tuple[str, ...] = ("10.96.0.10",),
        headless: bool = False, type: str = "ClusterIP", ports: tuple[Port, ...] = (),
        external: str = "", rv: str = "1") -> Service:
    if headless or type == "ExternalName":
        ips = ()
    return Service(namespace=ns, name=name, uid=f"uid-{ns}-{name}", resource_version=rv,
                   type=type, headless=headless, cluster_ips=ips, external_name=external,
                   ports=ports, publish_not_ready=False)


def port(name: str, number: int | None, protocol: str = "TCP") -> Port:
    return Port(name, number, protocol)


def ep(*addresses: str, hostname: str | None = None, ready: bool = True) -> Endpoint:
    return Endpoint(addresses=addresses, hostname=hostname, ready=ready)


def eps(name: str, service: str, *endpoints: Endpoint, family: model.Family = "IPv4",
        ports: tuple[Port, ...] = (), ns: str = "default", legacy: bool = False,
        rv: str = "1") -> EndpointSlice:
    return EndpointSlice(namespace=ns, name=name, uid=f"uid-{ns}-{name}", resource_version=rv,
                         service_name=service, address_type=family, endpoints=endpoints,
                         ports=ports, legacy=legacy)


def change(obj: model.KubeObject, seq: int = 0) -> Change:
    kind = {Service: SERVICE, EndpointSlice: ENDPOINT_SLICE, Endpoints: ENDPOINTS}[type(obj)]
    return Change(seq, kind, obj.namespace, obj.name, obj)


def delete(kind: str, ns: str, name: str, seq: int = 0) -> Change:
    return Change(seq, kind, ns, name, None)


def reduced(items: list[dict[str, Any]]) -> list[model.KubeObject]:
    return [model.reduce(item["kind"], item) for item in items]


# --------------------------------------------------------------------------- the seed

CONSUL = """
consul-server.default.svc A 10.244.0.6
consul-server.default.svc A 10.244.1.8
consul-server.default.svc A 10.244.2.8
consul-server-0.consul-server.default.svc A 10.244.0.6
consul-server-1.consul-server.default.svc A 10.244.1.8
consul-server-2.consul-server.default.svc A 10.244.2.8
6.0.244.10.in-addr.arpa. PTR consul-server-0.consul-server.default.svc
8.1.244.10.in-addr.arpa. PTR consul-server-1.consul-server.default.svc
8.2.244.10.in-addr.arpa. PTR consul-server-2.consul-server.default.svc
""" + "".join(
    # bare SRV: n = 3 pods x 8 ports = 24 -> weight 4; 8301 and 8302 TCP/UDP collapse: 15.
    f"consul-server.default.svc SRV 0 4 {p} consul-server-{i}.consul-server.default.svc\n"
    for i in range(3) for p in (8300, 8301, 8302, 8500, 8600)
) + "".join(
    # _port._proto SRV: n = 3 pods -> weight 33.
    f"_{name}._{proto}.consul-server.default.svc SRV 0 33 {p} "
    f"consul-server-{i}.consul-server.default.svc\n"
    for i in range(3)
    for name, proto, p in [
        ("http", "tcp", 8500), ("serflan-tcp", "tcp", 8301), ("serflan-udp", "udp", 8301),
        ("serfwan-tcp", "tcp", 8302), ("serfwan-udp", "udp", 8302), ("server", "tcp", 8300),
        ("dns-tcp", "tcp", 8600), ("dns-udp", "udp", 8600),
    ]
)


def test_consul_seed(consul_objects: list[dict[str, Any]]) -> None:
    service, endpoint_slice = reduced(consul_objects)
    assert isinstance(service, Service)
    assert isinstance(endpoint_slice, EndpointSlice)
    warnings: list[InvalidName] = []
    records = records_for_service(service, [endpoint_slice], warnings)
    assert records == zone(CONSUL)
    assert warnings == []
    bare = [r for r in records if r.owner == "consul-server.default.svc" and r.rtype == SRV]
    assert len(bare) == 15
    assert {r.rdata[1] for r in bare} == {4}
    assert Record("_serflan-tcp._tcp.consul-server.default.svc", SRV,
                  (0, 33, 8301, "consul-server-0.consul-server.default.svc")) in records


def test_consul_projection(consul_objects: list[dict[str, Any]]) -> None:
    proj = rebuild(change(o, i) for i, o in enumerate(reduced(consul_objects)))
    assert proj.records() == zone(CONSUL) | APEX_RECORDS
    assert len(proj) == len(zone(CONSUL)) + 1


def test_apex_records() -> None:
    assert frozenset({Record("dns-version", TXT, ("1.1.0",), 28800)}) == APEX_RECORDS
    assert Projection().records() == APEX_RECORDS
    assert len(Projection()) == 1


# --------------------------------------------------------------------------- weights


@pytest.mark.parametrize(
    ("n", "weight"),
    [(1, 100), (2, 50), (3, 33), (4, 25), (5, 20), (6, 16), (24, 4), (50, 2), (51, 1),
     (1000, 1)],
)
def test_weight_table(n: int, weight: int) -> None:
    assert srv_weight(n) == weight


@pytest.mark.parametrize(("pods", "weight"), [(1, 100), (2, 50), (3, 33), (6, 16), (51, 1)])
def test_headless_weight_by_pod_count(pods: int, weight: int) -> None:
    sl = eps("db-x", "db", *(ep(f"10.0.0.{i + 1}") for i in range(pods)),
             ports=(port("pg", 5432),))
    records = records_for_service(svc("db", headless=True), [sl])
    srv = {r.rdata[1] for r in records if r.rtype == SRV}
    assert srv == {weight}  # bare and named: one port, so n = pods for both


# --------------------------------------------------------------------------- ClusterIP


def test_cluster_ip_single_stack_two_ports() -> None:
    service = svc("web", ips=("10.96.0.10",), ports=(port("http", 80), port("", 8080)))
    assert records_for_service(service, []) == zone("""
        web.default.svc A 10.96.0.10
        10.0.96.10.in-addr.arpa. PTR web.default.svc
        ; bare SRV: 1 cluster IP x 2 ports -> n = 2, weight 50, named or not
        web.default.svc SRV 0 50 80 web.default.svc
        web.default.svc SRV 0 50 8080 web.default.svc
        ; _http._tcp: n = number of cluster IPs = 1; the unnamed port has none
        _http._tcp.web.default.svc SRV 0 100 80 web.default.svc
    """)


def test_cluster_ip_dual_stack() -> None:
    service = svc("web", ips=("10.96.0.10", "fd00:10:96::a"),
                  ports=(port("http", 80), port("dns", 53, "UDP")))
    assert records_for_service(service, []) == zone("""
        web.default.svc A 10.96.0.10
        web.default.svc AAAA fd00:10:96::a
        10.0.96.10.in-addr.arpa. PTR web.default.svc
        a.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.6.9.0.0.0.1.0.0.0.0.d.f.ip6.arpa. \\
            PTR web.default.svc
        ; bare: 2 cluster IPs x 2 ports = 4 -> 25
        web.default.svc SRV 0 25 80 web.default.svc
        web.default.svc SRV 0 25 53 web.default.svc
        ; named: 2 cluster IPs -> 50
        _http._tcp.web.default.svc SRV 0 50 80 web.default.svc
        _dns._udp.web.default.svc SRV 0 50 53 web.default.svc
    """)


def test_cluster_ip_with_endpoints() -> None:
    """Endpoint names under a ClusterIP Service, as CoreDNS answers them; SRVs still
    target the Service name and use the Service's port, not the endpoint's."""
    service = svc("api", ips=("10.96.0.20",), ports=(port("http", 80),))
    sl = eps("api-abc", "api", ep("10.244.0.5", hostname="api-0"), ep("10.244.0.6"),
             ep("10.244.0.7", ready=False), ports=(port("http", 8080),))
    assert records_for_service(service, [sl]) == zone("""
        api.default.svc A 10.96.0.20
        20.0.96.10.in-addr.arpa. PTR api.default.svc
        api.default.svc SRV 0 100 80 api.default.svc
        _http._tcp.api.default.svc SRV 0 100 80 api.default.svc
        api-0.api.default.svc A 10.244.0.5
        10-244-0-6.api.default.svc A 10.244.0.6
        5.0.244.10.in-addr.arpa. PTR api-0.api.default.svc
        6.0.244.10.in-addr.arpa. PTR 10-244-0-6.api.default.svc
    """)


def test_cluster_ip_that_is_also_an_endpoint_gets_only_the_service_ptr() -> None:
    service = svc("odd", ips=("10.0.0.1",))
    sl = eps("odd-1", "odd", ep("10.0.0.1"))
    assert records_for_service(service, [sl]) == zone("""
        odd.default.svc A 10.0.0.1
        1.0.0.10.in-addr.arpa. PTR odd.default.svc
        10-0-0-1.odd.default.svc A 10.0.0.1
    """)


def test_cluster_ip_without_ports_or_endpoints() -> None:
    assert records_for_service(svc("bare", ips=("10.96.0.30",)), []) == zone("""
        bare.default.svc A 10.96.0.30
        30.0.96.10.in-addr.arpa. PTR bare.default.svc
    """)


def test_cluster_ip_port_without_number() -> None:
    service = svc("p", ips=("10.96.0.1",), ports=(port("http", 80), port("admin", None)))
    assert records_for_service(service, []) == zone("""
        p.default.svc A 10.96.0.1
        1.0.96.10.in-addr.arpa. PTR p.default.svc
        ; the number-less port gives no SRV but counts: n = 2 -> 50
        p.default.svc SRV 0 50 80 p.default.svc
        _http._tcp.p.default.svc SRV 0 100 80 p.default.svc
    """)


@pytest.mark.parametrize("svc_type", ["ClusterIP", "NodePort", "LoadBalancer"])
def test_service_without_cluster_ip_publishes_nothing(svc_type: str) -> None:
    warnings: list[InvalidName] = []
    service = svc("ghost", ips=(), type=svc_type, ports=(port("http", 80),))
    sl = eps("ghost-1", "ghost", ep("10.244.0.9"))
    assert records_for_service(service, [sl], warnings) == frozenset()
    assert [(w.kind, w.namespace, w.name) for w in warnings] == [
        ("Service", "default", "ghost")]


def test_nodeport_is_a_cluster_ip_service() -> None:
    service = svc("np", ips=("10.96.0.40",), type="NodePort", ports=(port("http", 80),))
    assert records_for_service(service, []) == zone("""
        np.default.svc A 10.96.0.40
        40.0.96.10.in-addr.arpa. PTR np.default.svc
        np.default.svc SRV 0 100 80 np.default.svc
        _http._tcp.np.default.svc SRV 0 100 80 np.default.svc
    """)


# --------------------------------------------------------------------------- headless


def test_headless_ipv6_labels() -> None:
    sl = eps("v6-1", "v6", ep("::1"), ep("fd00::"), ep("fd00::11"), family="IPv6",
             ports=(port("http", 80),))
    assert records_for_service(svc("v6", headless=True), [sl]) == zone("""
        v6.default.svc AAAA ::1
        v6.default.svc AAAA fd00::
        v6.default.svc AAAA fd00::11
        0--1.v6.default.svc AAAA ::1
        fd00--0.v6.default.svc AAAA fd00::
        fd00--11.v6.default.svc AAAA fd00::11
        v6.default.svc SRV 0 33 80 0--1.v6.default.svc
        v6.default.svc SRV 0 33 80 fd00--0.v6.default.svc
        v6.default.svc SRV 0 33 80 fd00--11.v6.default.svc
        _http._tcp.v6.default.svc SRV 0 33 80 0--1.v6.default.svc
        _http._tcp.v6.default.svc SRV 0 33 80 fd00--0.v6.default.svc
        _http._tcp.v6.default.svc SRV 0 33 80 fd00--11.v6.default.svc
        1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa. \\
            PTR 0--1.v6.default.svc
        0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa. \\
            PTR fd00--0.v6.default.svc
        1.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa. \\
            PTR fd00--11.v6.default.svc
    """)


def test_headless_dual_stack_slices() -> None:
    v4 = eps("ds-v4", "ds", ep("10.244.0.5", hostname="ds-0"), ports=(port("http", 80),))
    v6 = eps("ds-v6", "ds", ep("fd00::5", hostname="ds-0"), family="IPv6",
             ports=(port("http", 80),))
    assert records_for_service(svc("ds", headless=True), [v4, v6]) == zone("""
        ds.default.svc A 10.244.0.5
        ds.default.svc AAAA fd00::5
        ds-0.ds.default.svc A 10.244.0.5
        ds-0.ds.default.svc AAAA fd00::5
        ; two (address, port) pairs, one target: the duplicate collapses, n stays 2
        ds.default.svc SRV 0 50 80 ds-0.ds.default.svc
        _http._tcp.ds.default.svc SRV 0 50 80 ds-0.ds.default.svc
        5.0.244.10.in-addr.arpa. PTR ds-0.ds.default.svc
        5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa. \\
            PTR ds-0.ds.default.svc
    """)


def test_headless_not_ready_and_no_addresses() -> None:
    sl = eps("h-1", "h", ep("10.0.0.1", ready=False), ports=(port("http", 80),))
    assert records_for_service(svc("h", headless=True), [sl]) == frozenset()
    assert records_for_service(svc("h", headless=True), []) == frozenset()


def test_absent_ready_is_ready_and_false_is_not() -> None:
    raw = {
        "kind": "EndpointSlice", "addressType": "IPv4",
        "metadata": {"name": "r-1", "namespace": "default", "uid": "u1",
                     "labels": {model.SERVICE_NAME_LABEL: "r"}},
        "endpoints": [
            {"addresses": ["10.0.0.1"]},  # no conditions at all
            {"addresses": ["10.0.0.2"], "conditions": {}},  # ready absent
            {"addresses": ["10.0.0.3"], "conditions": {"ready": False, "serving": True}},
        ],
        "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
    }
    sl = model.reduce(ENDPOINT_SLICE, raw)
    assert isinstance(sl, EndpointSlice)
    service = svc("r", headless=True)
    service = replace(service, publish_not_ready=True)  # the slice decides, not the Service
    assert records_for_service(service, [sl]) == zone("""
        r.default.svc A 10.0.0.1
        r.default.svc A 10.0.0.2
        10-0-0-1.r.default.svc A 10.0.0.1
        10-0-0-2.r.default.svc A 10.0.0.2
        r.default.svc SRV 0 50 80 10-0-0-1.r.default.svc
        r.default.svc SRV 0 50 80 10-0-0-2.r.default.svc
        _http._tcp.r.default.svc SRV 0 50 80 10-0-0-1.r.default.svc
        _http._tcp.r.default.svc SRV 0 50 80 10-0-0-2.r.default.svc
        1.0.0.10.in-addr.arpa. PTR 10-0-0-1.r.default.svc
        2.0.0.10.in-addr.arpa. PTR 10-0-0-2.r.default.svc
    """)


def test_every_address_of_an_endpoint_counts() -> None:
    sl = eps("m-1", "m", ep("10.0.0.1", "10.0.0.2"), ports=(port("", 7000),))
    assert records_for_service(svc("m", headless=True), [sl]) == zone("""
        m.default.svc A 10.0.0.1
        m.default.svc A 10.0.0.2
        10-0-0-1.m.default.svc A 10.0.0.1
        10-0-0-2.m.default.svc A 10.0.0.2
        ; unnamed port: bare SRV only
        m.default.svc SRV 0 50 7000 10-0-0-1.m.default.svc
        m.default.svc SRV 0 50 7000 10-0-0-2.m.default.svc
        1.0.0.10.in-addr.arpa. PTR 10-0-0-1.m.default.svc
        2.0.0.10.in-addr.arpa. PTR 10-0-0-2.m.default.svc
    """)


def test_slices_with_different_ports() -> None:
    a = eps("x-a", "x", ep("10.0.0.1"), ports=(port("http", 8080),))
    b = eps("x-b", "x", ep("10.0.0.2"), ports=(port("http", 9090), port("metrics", 9100)))
    # bare n = 1*1 + 1*2 = 3 -> 33; _http._tcp n = 2 -> 50; _metrics._tcp n = 1 -> 100
    assert records_for_service(svc("x", headless=True, ports=(port("ignored", 1),)),
                               [a, b]) == zone("""
        x.default.svc A 10.0.0.1
        x.default.svc A 10.0.0.2
        10-0-0-1.x.default.svc A 10.0.0.1
        10-0-0-2.x.default.svc A 10.0.0.2
        x.default.svc SRV 0 33 8080 10-0-0-1.x.default.svc
        x.default.svc SRV 0 33 9090 10-0-0-2.x.default.svc
        x.default.svc SRV 0 33 9100 10-0-0-2.x.default.svc
        _http._tcp.x.default.svc SRV 0 50 8080 10-0-0-1.x.default.svc
        _http._tcp.x.default.svc SRV 0 50 9090 10-0-0-2.x.default.svc
        _metrics._tcp.x.default.svc SRV 0 100 9100 10-0-0-2.x.default.svc
        1.0.0.10.in-addr.arpa. PTR 10-0-0-1.x.default.svc
        2.0.0.10.in-addr.arpa. PTR 10-0-0-2.x.default.svc
    """)


def test_portless_slice_and_numberless_port_count_in_n() -> None:
    """A slice without ports publishes A records, no SRV, and its addresses count once
    each in the bare n (CoreDNS's sentinel port -1); a number-less port counts too."""
    with_ports = eps("y-a", "y", ep("10.0.0.1"), ports=(port("http", 80), port("x", None)))
    portless = eps("y-b", "y", ep("10.0.0.2"))
    # bare n = 1*2 + 1*1 = 3 -> 33; _http._tcp n = 1 -> 100
    assert records_for_service(svc("y", headless=True), [with_ports, portless]) == zone("""
        y.default.svc A 10.0.0.1
        y.default.svc A 10.0.0.2
        10-0-0-1.y.default.svc A 10.0.0.1
        10-0-0-2.y.default.svc A 10.0.0.2
        y.default.svc SRV 0 33 80 10-0-0-1.y.default.svc
        _http._tcp.y.default.svc SRV 0 100 80 10-0-0-1.y.default.svc
        1.0.0.10.in-addr.arpa. PTR 10-0-0-1.y.default.svc
        2.0.0.10.in-addr.arpa. PTR 10-0-0-2.y.default.svc
    """)


def test_duplicate_address_counts_twice_publishes_once() -> None:
    a = eps("d-a", "d", ep("10.0.0.1", hostname="d-0"), ports=(port("http", 80),))
    b = eps("d-b", "d", ep("10.0.0.1", hostname="d-0"), ports=(port("http", 80),))
    assert records_for_service(svc("d", headless=True), [a, b]) == zone("""
        d.default.svc A 10.0.0.1
        d-0.d.default.svc A 10.0.0.1
        d.default.svc SRV 0 50 80 d-0.d.default.svc
        _http._tcp.d.default.svc SRV 0 50 80 d-0.d.default.svc
        1.0.0.10.in-addr.arpa. PTR d-0.d.default.svc
    """)


def test_same_hostname_two_addresses_and_one_address_two_names() -> None:
    a = eps("n-a", "n", ep("10.0.0.1", hostname="db"), ep("10.0.0.2", hostname="db"))
    b = eps("n-b", "n", ep("10.0.0.1"))  # same address, no hostname: a second name
    assert records_for_service(svc("n", headless=True), [a, b]) == zone("""
        n.default.svc A 10.0.0.1
        n.default.svc A 10.0.0.2
        db.n.default.svc A 10.0.0.1
        db.n.default.svc A 10.0.0.2
        10-0-0-1.n.default.svc A 10.0.0.1
        1.0.0.10.in-addr.arpa. PTR db.n.default.svc
        1.0.0.10.in-addr.arpa. PTR 10-0-0-1.n.default.svc
        2.0.0.10.in-addr.arpa. PTR db.n.default.svc
    """)


def test_fqdn_slices_are_ignored() -> None:
    fq = eps("f-1", "f", ep("db.example.com"), family="FQDN", ports=(port("http", 80),))
    assert records_for_service(svc("f", headless=True), [fq]) == frozenset()


# --------------------------------------------------------------------------- legacy


def legacy_endpoints(name: str, addresses: list[dict[str, Any]],
                     not_ready: list[dict[str, Any]] | None = None) -> Endpoints:
    raw = {"kind": "Endpoints",
           "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}"},
           "subsets": [{"addresses": addresses, "notReadyAddresses": not_ready or [],
                        "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}]}
    obj = model.reduce(ENDPOINTS, raw)
    assert isinstance(obj, Endpoints)
    return obj


def test_legacy_endpoints_used_without_slices() -> None:
    legacy = legacy_endpoints("old", [{"ip": "10.0.0.1", "hostname": "old-0"}],
                              not_ready=[{"ip": "10.0.0.2"}])
    assert records_for_service(svc("old", headless=True), legacy.slices) == zone("""
        old.default.svc A 10.0.0.1
        old-0.old.default.svc A 10.0.0.1
        old.default.svc SRV 0 100 80 old-0.old.default.svc
        _http._tcp.old.default.svc SRV 0 100 80 old-0.old.default.svc
        1.0.0.10.in-addr.arpa. PTR old-0.old.default.svc
    """)


def test_legacy_endpoints_ignored_when_any_slice_exists() -> None:
    legacy = legacy_endpoints("old", [{"ip": "10.0.0.1", "hostname": "old-0"}])
    empty_fqdn = eps("old-fq", "old", family="FQDN")
    service = svc("old", headless=True)
    assert records_for_service(service, [*legacy.slices, empty_fqdn]) == frozenset()
    proj = rebuild([change(service), change(legacy)])
    assert len(proj) == 6
    diff = proj.apply(change(empty_fqdn))
    assert diff.added == frozenset()
    assert len(diff.removed) == 5
    assert proj.records() == APEX_RECORDS
    back = proj.apply(delete(ENDPOINT_SLICE, "default", "old-fq"))
    assert back.added == diff.removed


# --------------------------------------------------------------------------- invalid names


def test_invalid_hostnames_fall_back_to_dashed_labels() -> None:
    sl = eps("i-1", "i", ep("10.0.0.1", hostname="Upper-0"), ep("10.0.0.2", hostname="bad_one"),
             ep("10.0.0.3", hostname="-dash"), ep("10.0.0.4", hostname="h" * 64),
             ports=(port("http", 80),))
    warnings: list[InvalidName] = []
    records = records_for_service(svc("i", headless=True), [sl], warnings)
    owners = {r.owner for r in records if r.rtype == TYPE_CODES["A"]}
    assert owners == {"i.default.svc", "upper-0.i.default.svc", "10-0-0-2.i.default.svc",
                      "10-0-0-3.i.default.svc", "10-0-0-4.i.default.svc"}
    assert Record("_http._tcp.i.default.svc", SRV, (0, 25, 80, "10-0-0-2.i.default.svc")) \
        in records
    assert [(w.kind, w.namespace, w.name) for w in warnings] == [
        ("EndpointSlice", "default", "i-1")] * 3
    assert "bad_one" in str(warnings[0])


def test_port_name_of_63_characters_makes_a_64_octet_label() -> None:
    long_name = "p" * 63
    sl = eps("l-1", "l", ep("10.0.0.1"), ports=(port(long_name, 80), port("ok", 81)))
    warnings: list[InvalidName] = []
    records = records_for_service(svc("l", headless=True), [sl], warnings)
    assert {r for r in records if r.rtype == SRV} == zone("""
        l.default.svc SRV 0 50 80 10-0-0-1.l.default.svc
        l.default.svc SRV 0 50 81 10-0-0-1.l.default.svc
        _ok._tcp.l.default.svc SRV 0 100 81 10-0-0-1.l.default.svc
    """)
    assert len(warnings) == 1
    assert warnings[0].kind == "EndpointSlice"
    assert "longer than 63" in str(warnings[0])
    # The same port on a ClusterIP Service: warned against the Service.
    warnings.clear()
    records = records_for_service(svc("l", ports=(port(long_name, 80),)), [], warnings)
    assert Record("l.default.svc", SRV, (0, 100, 80, "l.default.svc")) in records
    assert [w.kind for w in warnings] == ["Service"]


def test_longest_names_fit_under_cluster_local() -> None:
    """With S, N and H each a label of at most 63 octets, H.S.N.svc.cluster.local. is at
    most 211 octets on the wire, so the 255-octet rule cannot bite in cluster.local; it
    does in a longer zone, which the renderer re-checks (names.check_name tests it)."""
    ns, name, host = "n" * 63, "s" * 63, "h" * 63
    sl = eps("e", name, ep("10.0.0.1", hostname=host), ns=ns, ports=(port("http", 80),))
    warnings: list[InvalidName] = []
    records = records_for_service(svc(name, ns, headless=True), [sl], warnings)
    assert warnings == []
    assert Record(f"{host}.{name}.{ns}.svc", TYPE_CODES["A"], ("10.0.0.1",)) in records
    assert len(records) == 5


def test_invalid_service_or_namespace_publishes_nothing() -> None:
    warnings: list[InvalidName] = []
    assert records_for_service(svc("a.b", ips=("10.0.0.1",)), [], warnings) == frozenset()
    assert records_for_service(svc("ok", "Bad_NS", ips=("10.0.0.1",)), [], warnings) == \
        frozenset()
    assert [(w.kind, w.name) for w in warnings] == [("Service", "a.b"), ("Service", "ok")]


def test_mixed_case_service_names_cannot_alias_another_service() -> None:
    """Regression: ``Web`` and ``web`` (hand-made data; Kubernetes names are lowercase)
    both projected to ``web.default.svc``, so deleting one gave a Diff removing records
    the other still held: the journal (``export --serial``) lost them, the zone did not."""
    warnings: list[InvalidName] = []
    assert records_for_service(svc("Web"), [], warnings) == frozenset()
    assert records_for_service(svc("web", "Default"), [], warnings) == frozenset()
    assert [(w.kind, w.name) for w in warnings] == [("Service", "Web"), ("Service", "web")]
    proj = Projection()
    proj.apply(change(svc("Web")))
    proj.apply(change(svc("web")))
    before = proj.records()
    diff = proj.apply(delete(SERVICE, "default", "Web"))
    after = proj.records()
    assert diff == Diff(after - before, before - after)
    assert Record("web.default.svc", model.A, ("10.96.0.10",)) in after


# --------------------------------------------------------------------------- ExternalName


@pytest.mark.parametrize(
    ("value", "target"),
    [("example.com", "example.com."), ("example.com.", "example.com."),
     ("DB.Example.COM", "db.example.com."), ("other.default.svc.cluster.local",
                                             "other.default.svc.cluster.local.")],
)
def test_external_name(value: str, target: str) -> None:
    service = svc("ext", type="ExternalName", external=value, ports=(port("http", 80),))
    sl = eps("ext-1", "ext", ep("10.0.0.1"), ports=(port("http", 80),))
    assert records_for_service(service, [sl]) == zone(f"ext.default.svc CNAME {target}")


@pytest.mark.parametrize(
    "value",
    ["10.0.0.1", "fd00::1", "", "a..b", "example.com..", "x" * 64 + ".com",
     "ext.default.svc.cluster.local", "ext.default.svc.cluster.local."],
)
def test_external_name_without_record(value: str) -> None:
    warnings: list[InvalidName] = []
    service = svc("ext", type="ExternalName", external=value)
    assert records_for_service(service, [], warnings) == frozenset()
    assert [(w.kind, w.namespace, w.name) for w in warnings] == [("Service", "default", "ext")]


# --------------------------------------------------------------------------- Projection


def test_slice_before_service_then_move_then_delete() -> None:
    proj = Projection()
    sl = eps("s-1", "a", ep("10.0.0.1"), ports=(port("http", 80),))
    assert not proj.apply(change(sl))  # its Service is missing: nothing yet
    added = proj.apply(change(svc("a", headless=True))).added
    assert added == records_for_service(svc("a", headless=True), [sl])
    proj.apply(change(svc("b", headless=True)))
    moved = eps("s-1", "b", ep("10.0.0.1"), ports=(port("http", 80),))
    diff = proj.apply(change(moved))
    assert diff.removed == added
    assert diff.added == records_for_service(svc("b", headless=True), [moved])
    assert proj.service_records("default", "a") == frozenset()
    gone = proj.apply(delete(SERVICE, "default", "b"))
    assert gone.removed == diff.added
    assert proj.records() == APEX_RECORDS
    assert len(proj) == 1


def test_cluster_ip_shadows_endpoint_ptr_of_another_service() -> None:
    """RECORDS.md: a cluster IP gets only its S.N.svc PTR, even if the address is also
    an endpoint (of any Service; hand-made data only)."""
    endpoint_ptr = Record("1.0.0.10.in-addr.arpa.", model.PTR, ("10-0-0-1.b.default.svc",))
    cluster_ptr = Record("1.0.0.10.in-addr.arpa.", model.PTR, ("a.default.svc",))
    proj = rebuild([change(svc("b", headless=True)), change(eps("b-1", "b", ep("10.0.0.1")))])
    assert endpoint_ptr in proj.records()
    diff = proj.apply(change(svc("a", ips=("10.0.0.1",))))
    assert cluster_ptr in diff.added
    assert endpoint_ptr in diff.removed
    assert endpoint_ptr not in proj.records()
    assert endpoint_ptr in proj.service_records("default", "b")
    assert len(proj) == len(proj.records())
    # b's records change while shadowed: its PTR stays hidden
    diff = proj.apply(change(eps("b-1", "b", ep("10.0.0.1"), ep("10.0.0.2"))))
    assert endpoint_ptr not in diff.added | diff.removed
    diff = proj.apply(delete(SERVICE, "default", "a"))
    assert diff.added == frozenset({endpoint_ptr})
    assert cluster_ptr in diff.removed
    assert len(proj) == len(proj.records())


def test_deleting_unknown_objects_is_a_no_op() -> None:
    proj = Projection()
    for kind in (SERVICE, ENDPOINT_SLICE, ENDPOINTS, "ConfigMap"):
        assert proj.apply(delete(kind, "default", "nothing")) == Diff()
    assert proj.records() == APEX_RECORDS


def test_slice_without_service_label_belongs_to_nobody() -> None:
    proj = rebuild([change(svc("a", headless=True))])
    sl = eps("s-1", "a", ep("10.0.0.1"))
    assert proj.apply(change(sl))
    orphan = eps("s-1", "", ep("10.0.0.1"))
    assert proj.apply(change(orphan)).added == frozenset()
    assert proj.records() == APEX_RECORDS


# --------------------------------------------------------------------------- invisible


def _service_raw(consul_objects: list[dict[str, Any]]) -> dict[str, Any]:
    return copy.deepcopy(consul_objects[0])


Edit = Callable[[dict[str, Any]], None]


def _set(path: list[str | int], value: Any) -> Edit:
    def edit(obj: dict[str, Any]) -> None:
        target: Any = obj
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return edit


INVISIBLE: list[tuple[str, int, Edit]] = [
    ("service labels", 0, _set(["metadata", "labels"], {"app": "other"})),
    ("service annotations", 0, _set(["metadata", "annotations"], {"a": "b"})),
    ("service resourceVersion", 0, _set(["metadata", "resourceVersion"], "9999")),
    ("service managedFields", 0, _set(["metadata", "managedFields"], [{"manager": "x"}])),
    ("service status", 0, _set(["status"], {"loadBalancer": {}})),
    ("service selector", 0, _set(["spec", "selector"], {"app": "x"})),
    ("headless service ports", 0, _set(["spec", "ports"], [])),
    ("slice other labels", 1, _set(["metadata", "labels", "app"], "x")),
    ("slice resourceVersion", 1, _set(["metadata", "resourceVersion"], "9999")),
    ("slice annotations", 1, _set(["metadata", "annotations"], {"a": "b"})),
    ("nodeName", 1, _set(["endpoints", 0, "nodeName"], "elsewhere")),
    ("zone", 1, _set(["endpoints", 0, "zone"], "eu-1a")),
    ("targetRef", 1, _set(["endpoints", 0, "targetRef", "name"], "renamed")),
    ("serving/terminating with ready unchanged", 1,
     _set(["endpoints", 0, "conditions"], {"ready": True, "serving": False,
                                           "terminating": True})),
    ("endpoint order", 1, lambda o: o["endpoints"].reverse()),
    ("port order", 1, lambda o: o["ports"].reverse()),
]


@pytest.mark.parametrize(("what", "index", "edit"), INVISIBLE, ids=[c[0] for c in INVISIBLE])
def test_dns_invisible_changes_give_empty_diffs(
    consul_objects: list[dict[str, Any]], what: str, index: int, edit: Edit,
) -> None:
    proj = rebuild(change(o) for o in reduced(consul_objects))
    before = proj.records()
    raw = copy.deepcopy(consul_objects[index])
    edit(raw)
    diff = proj.apply(change(model.reduce(raw["kind"], raw)))
    assert diff == Diff(), what
    assert not diff
    assert proj.records() == before


def test_not_ready_to_not_ready_is_invisible(consul_objects: list[dict[str, Any]]) -> None:
    raw = copy.deepcopy(consul_objects[1])
    raw["endpoints"][0]["conditions"] = {"ready": False, "serving": True, "terminating": False}
    objs = reduced([consul_objects[0], raw])
    proj = rebuild(change(o) for o in objs)
    raw["endpoints"][0]["conditions"] = {"ready": False, "serving": False, "terminating": True}
    raw["metadata"]["resourceVersion"] = "2000"
    assert proj.apply(change(model.reduce(ENDPOINT_SLICE, raw))) == Diff()


def test_second_cluster_ip_family_changes_records() -> None:
    single = svc("web", ips=("10.96.0.10",), ports=(port("http", 80),))
    proj = rebuild([change(single)])
    dual = svc("web", ips=("10.96.0.10", "fd00::a"), ports=(port("http", 80),), rv="2")
    diff = proj.apply(change(dual))
    assert Record("web.default.svc", TYPE_CODES["AAAA"], ("fd00::a",)) in diff.added
    # weights halve: the single-stack SRVs go, the dual-stack ones come
    assert Record("web.default.svc", SRV, (0, 100, 80, "web.default.svc")) in diff.removed
    assert Record("web.default.svc", SRV, (0, 50, 80, "web.default.svc")) in diff.added


# --------------------------------------------------------------------------- fold == rebuild

NAMESPACES = ("a", "b")
SERVICE_NAMES = ("s1", "s2", "s3")
SLICE_NAMES = ("e1", "e2", "e3")
V4 = ("10.0.0.1", "10.0.0.2", "10.0.0.3", "10.96.0.1")
V6 = ("fd00::1", "fd00::", "::1")

ports_st = st.lists(
    st.builds(Port, st.sampled_from(["", "http", "dns", "p" * 63]),
              st.sampled_from([None, 53, 80]), st.sampled_from(["TCP", "UDP"])),
    max_size=3,
).map(tuple)


@st.composite
def services(draw: st.DrawFn, ns: str, name: str) -> Service:
    kind = draw(st.sampled_from(["ClusterIP", "headless", "ExternalName", "none"]))
    ports = draw(ports_st)
    if kind == "headless":
        return svc(name, ns, headless=True, ports=ports)
    if kind == "ExternalName":
        return svc(name, ns, type="ExternalName",
                   external=draw(st.sampled_from(["example.com", "10.0.0.1", "x..y"])))
    if kind == "none":
        return svc(name, ns, ips=(), ports=ports)
    ips = draw(st.lists(st.sampled_from(["10.96.0.1", "10.0.0.1", "fd00::a"]), min_size=1,
                        max_size=2, unique=True))
    return svc(name, ns, ips=tuple(ips), ports=ports, rv=str(draw(st.integers(0, 3))))


@st.composite
def slices(draw: st.DrawFn, ns: str, name: str) -> EndpointSlice:
    family: model.Family = draw(st.sampled_from(("IPv4", "IPv6", "FQDN")))
    pool = {"IPv4": V4, "IPv6": V6, "FQDN": ("db.example.com",)}[family]
    endpoints = draw(st.lists(st.builds(
        Endpoint,
        st.lists(st.sampled_from(pool), min_size=1, max_size=2).map(tuple),
        st.sampled_from([None, "h1", "H1", "bad_", "h2"]),
        st.booleans(),
    ), max_size=3))
    return eps(name, draw(st.sampled_from([*SERVICE_NAMES, ""])), *endpoints,
               family=family, ports=draw(ports_st), ns=ns)


@st.composite
def legacy(draw: st.DrawFn, ns: str, name: str) -> Endpoints:
    subsets = draw(st.lists(st.tuples(st.lists(st.sampled_from(V4), min_size=1, max_size=3),
                                      ports_st), max_size=2))
    return Endpoints(namespace=ns, name=name, uid="u", resource_version="1", slices=tuple(
        eps(f"{name}#{i}-IPv4", name, *(ep(a) for a in addrs), ports=ports, ns=ns,
            legacy=True)
        for i, (addrs, ports) in enumerate(subsets)))


@st.composite
def changes(draw: st.DrawFn) -> Change:
    kind = draw(st.sampled_from([SERVICE, ENDPOINT_SLICE, ENDPOINTS]))
    ns = draw(st.sampled_from(NAMESPACES))
    name = draw(st.sampled_from(SLICE_NAMES if kind == ENDPOINT_SLICE else SERVICE_NAMES))
    if draw(st.integers(0, 4)) == 0:
        return Change(0, kind, ns, name, None)
    obj: model.KubeObject
    if kind == SERVICE:
        obj = draw(services(ns, name))
    elif kind == ENDPOINT_SLICE:
        obj = draw(slices(ns, name))
    else:
        obj = draw(legacy(ns, name))
    return Change(0, kind, ns, name, obj)


@settings(max_examples=300, deadline=None)
@given(st.lists(changes(), max_size=40), st.lists(changes(), max_size=40))
def test_fold_equals_rebuild(prefix: list[Change], rest: list[Change]) -> None:
    proj = Projection()
    final: dict[model.ObjectKey, Change] = {}
    for c in prefix:
        proj.apply(c)
        final[c.key] = c
    initial = proj.records()
    total = Diff()
    for c in rest:
        before = proj.records()
        diff = proj.apply(c)
        after = proj.records()
        assert diff.added == after - before
        assert diff.removed == before - after
        total = total.then(diff)
        final[c.key] = c
    records = proj.records()
    assert len(proj) == len(records)
    assert records >= APEX_RECORDS
    scratch = rebuild(c for c in final.values() if c.obj is not None)
    assert scratch.records() == records
    # Independently: the union of every Service's records, less endpoint PTRs at an
    # address that some Service has as a cluster IP (RECORDS.md "Reverse zones").
    union = frozenset().union(*(
        scratch.service_records(c.namespace, c.name)
        for c in final.values() if c.kind == SERVICE and c.obj is not None))
    cluster_owners = {r.owner for r in union
                      if r.rtype == model.PTR and str(r.rdata[0]).count(".") == 2}
    assert records == APEX_RECORDS | {
        r for r in union
        if not (r.rtype == model.PTR and r.owner in cluster_owners
                and str(r.rdata[0]).count(".") == 3)}
    assert total == Diff(records - initial, initial - records)


def test_headless_slice_without_published_addresses_beside_one_with() -> None:
    """Regression (found by the fold/rebuild property): an empty slice carrying a named
    port that no published address shares must not break the Service's SRVs."""
    service = svc("s2", headless=True)
    empty = eps("e1", "s2", ports=(port("http", 53),))
    full = eps("e2", "s2", ep("10.0.0.1"), ports=(port("dns", 53, "UDP"),))
    assert records_for_service(service, [empty, full]) == frozenset({
        Record("s2.default.svc", model.A, ("10.0.0.1",)),
        Record("10-0-0-1.s2.default.svc", model.A, ("10.0.0.1",)),
        Record("1.0.0.10.in-addr.arpa.", model.PTR, ("10-0-0-1.s2.default.svc",)),
        Record("s2.default.svc", SRV, (0, 100, 53, "10-0-0-1.s2.default.svc")),
        Record("_dns._udp.s2.default.svc", SRV, (0, 100, 53, "10-0-0-1.s2.default.svc")),
    })


@settings(max_examples=300, deadline=None)
@given(st.lists(changes(), max_size=30), st.lists(changes(), max_size=40))
def test_apply_many_equals_one_by_one_with_causes(prefix: list[Change],
                                                  rest: list[Change]) -> None:
    """Burst folding (#11): one apply_many over a batch gives the same records, and the
    same per-record causes, as apply() per event then net_change (the reference the
    runner used), and the same records as a rebuild."""
    one, many = Projection(), Projection()
    for c in prefix:
        one.apply(c)
        many.apply(c)
    batch = [(seq, c) for seq, c in enumerate(rest, start=100)]
    steps: list[tuple[bool, Record, int]] = []
    for seq, c in batch:
        diff = one.apply(c)
        steps += [(False, r, seq) for r in diff.removed] + [(True, r, seq) for r in diff.added]
    want_added, want_removed = model.net_change(steps)
    got = many.apply_many(batch)
    assert got.added == want_added
    assert got.removed == want_removed
    assert many.records() == one.records()
    assert len(many) == len(one)
    final: dict[model.ObjectKey, Change] = {c.key: c for c in [*prefix, *rest]}
    assert rebuild(c for c in final.values() if c.obj is not None).records() == many.records()


@settings(max_examples=200, deadline=None)
@given(st.lists(changes(), max_size=30), st.lists(changes(), max_size=40),
       st.integers(1, 6))
def test_apply_many_in_chunks_into_one_diff_equals_one_batch(
        prefix: list[Change], rest: list[Change], chunk: int) -> None:
    """A catch-up reads its events in chunks: folding them ``into`` one BatchDiff gives
    exactly the records and causes of one apply_many over them all."""
    whole, chunked = Projection(), Projection()
    for c in prefix:
        whole.apply(c)
        chunked.apply(c)
    batch = [(seq, c) for seq, c in enumerate(rest, start=100)]
    want = whole.apply_many(batch)
    total = got = chunked.apply_many([])
    for start in range(0, len(batch), chunk):
        got = chunked.apply_many(batch[start:start + chunk], into=total)
    assert got is total
    assert got.added == want.added
    assert got.removed == want.removed
    assert chunked.records() == whole.records()


def test_a_record_removed_and_added_again_in_a_later_chunk_is_caused_by_that_add() -> None:
    """Added by seq 2 (first chunk), removed by 3 and added again by 4 (second chunk):
    its cause is 4. Netting each chunk on its own loses that (the second chunk nets to
    nothing for it), so chunks are folded into one diff."""
    proj = rebuild([change(svc("web", headless=True))])
    with_a = eps("web-a", "web", ep("10.0.0.1"))
    without = eps("web-a", "web", ep("10.0.0.2"))
    a = Record("10-0-0-1.web.default.svc", model.A, ("10.0.0.1",))
    total = proj.apply_many([(2, change(with_a))])
    assert total.added[a] == 2
    proj.apply_many([(3, change(without)), (4, change(with_a))], into=total)
    assert total.added[a] == 4


def test_apply_many_cause_is_the_event_that_changed_the_record() -> None:
    """A Service touched twice in one batch: a record added by the first event keeps
    that event as its cause even though the second event touched the Service too."""
    proj = rebuild([change(svc("web", headless=True))])
    first = eps("web-a", "web", ep("10.0.0.1"))
    second = eps("web-b", "web", ep("10.0.0.2"))
    got = proj.apply_many([(7, change(first)), (9, change(second))])
    assert got.added[Record("10-0-0-1.web.default.svc", model.A, ("10.0.0.1",))] == 7
    assert got.added[Record("10-0-0-2.web.default.svc", model.A, ("10.0.0.2",))] == 9
    assert not got.removed
    assert not proj.apply_many([])


# --------------------------------------------------------------------------- read model


def test_object_rows_keep_each_objects_last_change_and_the_service_it_feeds() -> None:
    """The read model's object index: a slice's row names its label's Service; a slice
    that lost its label, a deleted object and a kind the projector does not read are
    dropped (the projection holds nothing for them)."""
    from zonegen.project import fed_service, object_rows

    moved = eps("web-1", "api", ep("10.0.0.1"))
    rows, dropped = object_rows([
        (1, change(svc("web"))),
        (2, change(eps("web-1", "web", ep("10.0.0.1")))),
        (3, change(moved)),
        (4, change(eps("lone", "", ep("10.0.0.2")))),
        (5, change(svc("gone"))),
        (6, delete(SERVICE, "default", "gone")),
        (7, Change(7, "ConfigMap", "default", "x", None)),
    ])
    assert sorted(rows) == [
        (ENDPOINT_SLICE, "default", "web-1", 3, "default", "api"),
        (SERVICE, "default", "web", 1, "default", "web"),
    ]
    assert sorted(dropped) == [("ConfigMap", "default", "x"),
                               (ENDPOINT_SLICE, "default", "lone"),
                               (SERVICE, "default", "gone")]
    assert fed_service(change(moved)) == ("default", "api")


def test_a_partial_projection_folds_like_the_whole_one() -> None:
    """Loaded with one Service's objects and records and the PTRs at the reverse names
    its change could touch (another Service's endpoint PTR there included), a partial
    projection gives the whole projection's diff: the cluster IP that appears hides the
    other Service's endpoint PTR."""
    base = [change(svc("db", headless=True), 1), change(eps("db-1", "db", ep("10.0.0.5")), 2),
            change(svc("api", ips=("10.0.0.9",)), 3)]
    whole = rebuild(base)
    moved = change(svc("api", ips=("10.0.0.5",), rv="2"), 4)
    partial = Projection()
    partial.load_service(("default", "api"), whole.service_records("default", "api"))
    partial.load_objects([base[2]])
    owners = {"5.0.0.10.in-addr.arpa.", "9.0.0.10.in-addr.arpa."}
    partial.load_ptrs(owners, [(key, r) for key, r, _v in whole.rows()
                               if r.rtype == model.PTR and r.owner in owners])
    assert partial.apply_many([(4, moved)]) == whole.apply_many([(4, moved)])
    hidden = Record("5.0.0.10.in-addr.arpa.", model.PTR, ("10-0-0-5.db.default.svc",))
    assert not partial.visible(hidden)
    assert dict(partial.other_ptrs()) == {("default", "db"): hidden}
