"""Reducers: Kubernetes objects to the small values DNS needs, policy applied once."""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zonegen.errors import InvalidObject
from zonegen.model import (
    Diff,
    Endpoint,
    Endpoints,
    EndpointSlice,
    Port,
    Record,
    Service,
    canonical_ip,
    encode_rdata,
    reduce,
)


def meta(name: str = "x", **extra: Any) -> dict[str, Any]:
    return {"name": name, "namespace": "ns", "uid": f"uid-{name}", "resourceVersion": "7",
            **extra}


def test_consul_seed_reduces_to_what_dns_needs(consul_objects: list[dict[str, Any]]) -> None:
    svc = reduce("Service", consul_objects[0])
    assert isinstance(svc, Service)
    assert (svc.namespace, svc.name, svc.headless, svc.cluster_ips, svc.publish_not_ready) == (
        "default", "consul-server", True, (), True)
    assert svc.ports[1] == Port("serflan-tcp", 8301, "TCP")
    sl = reduce("EndpointSlice", consul_objects[1])
    assert isinstance(sl, EndpointSlice)
    assert sl.service_name == "consul-server"
    assert sl.endpoints[0] == Endpoint(("10.244.0.6",), "consul-server-0", True)
    assert len(sl.ports) == 8


@pytest.mark.parametrize(("spec", "headless", "ips"), [
    ({"clusterIP": "None"}, True, ()),
    ({"clusterIP": "10.96.0.1"}, False, ("10.96.0.1",)),
    ({"clusterIP": "10.96.0.1", "clusterIPs": ["10.96.0.1", "fd00:0:0::1"]}, False,
     ("10.96.0.1", "fd00::1")),
    ({"type": "NodePort", "clusterIP": "10.96.0.2"}, False, ("10.96.0.2",)),
    ({"type": "ExternalName", "externalName": "db.example.com", "clusterIP": "None"}, False,
     ()),
    ({}, False, ()),
])
def test_service_cluster_ips(spec: dict[str, Any], headless: bool,
                             ips: tuple[str, ...]) -> None:
    svc = Service.from_api({"metadata": meta(), "spec": spec})
    assert (svc.headless, svc.cluster_ips) == (headless, ips)


def test_ports_without_or_with_invalid_numbers_keep_counting_but_give_no_number() -> None:
    warnings: list[str] = []
    svc = Service.from_api({"metadata": meta(), "spec": {"clusterIP": "10.0.0.1", "ports": [
        {"name": "a", "port": 80, "protocol": "udp"}, {"name": "b"},
        {"name": "c", "port": 0}, {"name": "d", "port": 65536}, {"name": "e", "port": "80"},
        {"name": "f", "port": True}]}}, warnings)
    assert svc.ports == (Port("a", 80, "UDP"), Port("b", None, "TCP"), Port("c", None, "TCP"),
                         Port("d", None, "TCP"), Port("e", None, "TCP"),
                         Port("f", None, "TCP"))
    assert len(warnings) == 4
    assert "Service ns/x: port c has invalid number 0" in warnings[0]


def test_readiness_absent_means_ready() -> None:
    sl = EndpointSlice.from_api({
        "metadata": meta(labels={"kubernetes.io/service-name": "s"}), "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.0.0.1"]},
                      {"addresses": ["10.0.0.2"], "conditions": {}},
                      {"addresses": ["10.0.0.3"], "conditions": {"ready": None}},
                      {"addresses": ["10.0.0.4"], "conditions": {"ready": False,
                                                                 "serving": True}}]})
    assert [e.ready for e in sl.endpoints] == [True, True, True, False]


def test_wrong_family_addresses_are_dropped_and_ipv6_made_canonical() -> None:
    warnings: list[str] = []
    sl = EndpointSlice.from_api({
        "metadata": meta(labels={"kubernetes.io/service-name": "s"}), "addressType": "IPv6",
        "endpoints": [{"addresses": ["FD00:0:0:0::11", "10.0.0.1", "bogus"]}]}, warnings)
    assert sl.endpoints[0].addresses == ("fd00::11",)
    assert len(warnings) == 2
    assert "'10.0.0.1' is not an IPv6 address" in warnings[0]


def test_slice_without_service_label_belongs_to_no_service() -> None:
    warnings: list[str] = []
    sl = EndpointSlice.from_api({"metadata": meta(), "addressType": "IPv4"}, warnings)
    assert sl.service_name == ""
    assert "no kubernetes.io/service-name label" in warnings[0]


def test_legacy_endpoints_split_per_subset_and_family_and_ignore_not_ready() -> None:
    ep = Endpoints.from_api({"metadata": meta("svc"), "subsets": [
        {"addresses": [{"ip": "10.0.0.1", "hostname": "a"}, {"ip": "fd00::1"}],
         "notReadyAddresses": [{"ip": "10.0.0.9"}],
         "ports": [{"name": "http", "port": 80}]},
        {"addresses": [{"ip": "10.0.0.2"}], "ports": [{"port": 81}]}]})
    assert [(s.name, s.address_type, s.legacy, s.service_name) for s in ep.slices] == [
        ("svc#0-IPv4", "IPv4", True, "svc"), ("svc#0-IPv6", "IPv6", True, "svc"),
        ("svc#1-IPv4", "IPv4", True, "svc")]
    assert ep.slices[0].endpoints == (Endpoint(("10.0.0.1",), "a", True),)
    assert ep.slices[2].ports == (Port("", 81, "TCP"),)


@pytest.mark.parametrize(("kind", "obj", "message"), [
    ("Service", {"metadata": {"uid": "u"}}, "metadata.name is missing"),
    ("Service", {"metadata": {"name": "a"}}, "Service default/a: metadata.uid is missing"),
    ("Service", {"metadata": meta(), "spec": []}, "spec is not an object"),
    ("Service", {"metadata": meta(), "spec": {"clusterIPs": "1.2.3.4"}}, "not a list"),
    ("EndpointSlice", {"metadata": meta(), "endpoints": [1]}, "endpoints[0] is not an object"),
    ("EndpointSlice", {"metadata": meta(), "addressType": "IPv5"}, "IPv5"),
    ("Endpoints", {"metadata": meta(), "subsets": {}}, "subsets is not a list"),
    ("ConfigMap", {"metadata": meta()}, "kind 'ConfigMap'"),
])
def test_malformed_objects_name_the_object(kind: str, obj: dict[str, Any],
                                           message: str) -> None:
    with pytest.raises(InvalidObject, match=message.replace("[", r"\[").replace("]", r"\]")):
        reduce(kind, obj)


@pytest.mark.parametrize(("text", "canonical"), [
    ("10.0.0.1", "10.0.0.1"), ("0.0.0.0", "0.0.0.0"), ("010.0.0.1", None),
    ("256.0.0.1", None), ("1.2.3", None), ("fd00:0:0::11", "fd00::11"), ("::1", "::1"),
    ("FD00::A", "fd00::a"), ("not-an-ip", None), ("", None),
])
def test_canonical_ip(text: str, canonical: str | None) -> None:
    assert canonical_ip(text) == canonical


def test_diff_then_cancels_and_composes() -> None:
    a, b, c = (Record(n, 1, ("10.0.0.1",)) for n in "abc")
    first = Diff(added=frozenset({a, b}), removed=frozenset({c}))
    second = Diff(added=frozenset({c}), removed=frozenset({a}))
    assert first.then(second) == Diff(added=frozenset({b}), removed=frozenset())
    assert not Diff()
    assert Record.from_row(**Record("a", 33, (0, 4, 80, "t"), 7).to_row()) == Record(
        "a", 33, (0, 4, 80, "t"), 7)


@given(st.lists(st.from_regex(r"[0-9]{1,4}", fullmatch=True), min_size=3, max_size=5))
def test_ipv4_fast_path_agrees_with_ipaddress(parts: list[str]) -> None:
    text = ".".join(parts)
    try:
        expected: str | None = str(ipaddress.ip_address(text))
    except ValueError:
        expected = None
    assert canonical_ip(text) == expected


@given(st.lists(st.one_of(st.integers(min_value=0, max_value=2**31), st.text(max_size=12)),
                max_size=4))
def test_encode_rdata_writes_what_json_writes(values: list[int | str]) -> None:
    rdata = tuple(values)
    text = encode_rdata(rdata)
    assert text == json.dumps(list(rdata), separators=(",", ":"))
    assert tuple(json.loads(text)) == rdata


def test_fold_applies_changes_in_order_onto_a_base() -> None:
    from zonegen.model import fold

    assert fold([(True, "a", 1), (True, "b", 2), (False, "a", 3), (True, "c", 4)],
                {"z": 0}) == {"z": 0, "b": 2, "c": 4}
    # A removal of what is not there is no error; a re-addition takes the new cause.
    assert fold([(False, "x", 1), (True, "y", 1), (True, "y", 2)]) == {"y": 2}


def test_net_change_cancels_what_came_and_went() -> None:
    from zonegen.model import net_change

    added, removed = net_change([(True, "a", 1), (False, "a", 2), (False, "b", 3),
                                 (True, "b", 4), (False, "c", 5), (True, "d", 0)])
    assert added == {"d": 0}
    assert removed == {"c": 5}
