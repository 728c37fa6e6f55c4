"""Reducers: Kubernetes objects to the small values DNS needs, policy applied once."""

from __future__ import annotations

import copy
import ipaddress
import json
from typing import Any

import pytest
from hypothesis import given, settings
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
    record_key,
    record_keys,
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


_RDATA_VALUE = st.one_of(st.integers(min_value=0, max_value=65535), st.text(max_size=8),
                        st.sampled_from(['a"b', "a\\b", "x\ty", "caf\u00e9", "1"]))


@given(st.lists(st.tuples(st.one_of(st.sampled_from(["a.ns.svc", 'q"o', "b\\s"]),
                                    st.text(max_size=6)),
                          st.sampled_from([1, 12, 16, 28, 33]),
                          st.lists(_RDATA_VALUE, min_size=1, max_size=4).map(tuple),
                          st.one_of(st.none(), st.integers(0, 99999))), max_size=8))
def test_record_keys_are_record_key_or_never_a_plain_stored_text(
        rows: list[tuple[str, int, tuple[str | int, ...], int | None]]) -> None:
    # The fast spelling (no per-string check) gives record_key's text, or (quotes,
    # backslashes, other characters JSON escapes) a text no plain stored one equals, so
    # set equality with the read model's plain texts still means equal records.
    records = [Record(*row) for row in rows]
    exact = set(map(record_key, records))
    fast = record_keys(records)
    assert record_keys(iter(records)) == fast
    assert len(fast) == len(exact)
    for r in records:
        (key,) = record_keys([r])
        assert key == record_key(r) or not _plain_text(key)
    assert {k for k in fast if _plain_text(k)} == {k for k in exact if _plain_text(k)}


def _plain_text(key: str) -> bool:
    """What EventLog.stored_row_keys accepts of one row: one tab, two quotes, no
    backslash, printable ASCII otherwise."""
    return (key.isascii() and key.count("\t") == 1 and key.count('"') == 2
            and "\\" not in key and key.replace("\t", " ").isprintable())


def test_record_keys_of_projected_shapes() -> None:
    records = [Record("a.ns.svc", 1, ("10.0.0.1",)), Record("dns-version", 16, ("1.1.0",), 28800),
               Record("_http._tcp.ns.svc", 33, (0, 50, 8080, "a.ns.svc")),
               Record("1.0.0.10.in-addr.arpa.", 12, ("a.ns.svc",))]
    assert record_keys(records) == {
        '1 None ["10.0.0.1"]\ta.ns.svc', '16 28800 ["1.1.0"]\tdns-version',
        '33 None [0,50,8080,"a.ns.svc"]\t_http._tcp.ns.svc',
        '12 None ["a.ns.svc"]\t1.0.0.10.in-addr.arpa.'}
    assert record_keys([Record("x", 16, ('say "hi"',))]) == {'16 None ["say "hi""]\tx'}
    assert not _plain_text('16 None ["say "hi""]\tx')


def test_record_is_a_plain_value_with_fields() -> None:
    r = Record("a.ns.svc", 1, ("10.0.0.1",))
    assert (r.owner, r.rtype, r.rdata, r.ttl) == ("a.ns.svc", 1, ("10.0.0.1",), None)
    assert r == Record(owner="a.ns.svc", rtype=1, rdata=("10.0.0.1",), ttl=None)
    assert hash(r) == hash(Record("a.ns.svc", 1, ("10.0.0.1",)))
    assert r != Record("a.ns.svc", 1, ("10.0.0.1",), 30)
    assert Record.from_row("a.ns.svc", 33, '[0,5,80,"t"]', 7) == Record("a.ns.svc", 33,
                                                                        (0, 5, 80, "t"), 7)
    from zonegen.model import record_of
    assert record_of(("a.ns.svc", 1, ("10.0.0.1",), None)) == r
    assert type(record_of(("a.ns.svc", 1, ("10.0.0.1",), None))) is Record


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


# ---- the reducers' fast paths (plain dicts) against the general ones (any Mapping)

_V4 = st.builds(lambda a, b: f"10.{a}.0.{b}", st.integers(0, 255), st.integers(0, 255)) | (
    st.sampled_from(["010.0.0.1", " 10.0.0.2", "10.0.0.256", "fd00::3", "x"]))
_V6 = st.sampled_from(["fd00::1", "FD00:0:0::2", "2001:db8::", "::ffff:10.0.0.1", "10.0.0.4",
                       " fd00::5", "fd00::g"])
_ODD = st.sampled_from([
    None, 0, 1, -1, 70000, True, False, "", "x", "None", " none", "010.0.0.1",
    " 10.0.0.2", "10.0.0.256", "1.2.3", "fd00::1", "not-an-ip", "FQDN", "IPv6",
    "ExternalName", 53.0, [], {}, ["10.0.0.1"], {"ready": False}])
_PORT = st.fixed_dictionaries(
    {"port": st.sampled_from([53, 8080, 65535])},
    optional={"name": st.sampled_from(["http", "DNS", ""]),
              "protocol": st.sampled_from(["TCP", "udp", "SCTP"])})
_META = st.fixed_dictionaries(
    {"name": st.sampled_from(["web", "db-1"]), "uid": st.just("u-1")},
    optional={"namespace": st.sampled_from(["shop", ""]),
              "resourceVersion": st.sampled_from(["7", "12"]),
              "labels": st.just({"kubernetes.io/service-name": "web"})})


@st.composite
def _slice(draw: st.DrawFn) -> dict[str, Any]:
    family = draw(st.sampled_from(["IPv4", "IPv6"]))
    address = _V4 if family == "IPv4" else _V6
    endpoint = st.fixed_dictionaries(
        {"addresses": st.lists(address, max_size=2)},
        optional={"conditions": st.fixed_dictionaries(
                      {}, optional={"ready": st.sampled_from([True, False, None, 1, 0, "x"])}),
                  "hostname": st.sampled_from(["web-0", "Web_0", ""])})
    meta = dict(draw(_META))
    meta["labels"] = {"kubernetes.io/service-name": "web"}
    return {"metadata": meta, "addressType": family,
            "endpoints": draw(st.lists(endpoint, max_size=3)),
            "ports": draw(st.lists(_PORT, max_size=2))}


_SERVICE = st.fixed_dictionaries(
    {"metadata": _META,
     "spec": st.fixed_dictionaries({}, optional={
         "type": st.sampled_from(["ClusterIP", "NodePort", "ExternalName"]),
         "clusterIP": _V4 | st.sampled_from(["None", " none"]),
         "clusterIPs": st.lists(_V4 | _V6 | st.sampled_from(["None", "NONE "]), max_size=2),
         "externalName": st.just("db.example.com"),
         "ports": st.lists(_PORT, max_size=2),
         "publishNotReadyAddresses": st.booleans()})})


def _paths(value: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key or index below ``value``, as a path from it."""
    items = (value.items() if isinstance(value, dict)
             else enumerate(value) if isinstance(value, list) else ())
    out: list[tuple[Any, ...]] = []
    for k, v in items:
        out.append((*at, k))
        out.extend(_paths(v, (*at, k)))
    return out


@st.composite
def _odd(draw: st.DrawFn, objects: st.SearchStrategy[dict[str, Any]]) -> dict[str, Any]:
    """A well-formed object, half the time with one or two fields replaced by a value
    of another type or shape, or deleted."""
    obj = copy.deepcopy(draw(objects))  # drawn values may be shared (st.just)
    for _ in range(draw(st.sampled_from([0, 0, 1, 2]))):
        paths = _paths(obj)
        if not paths:
            break
        *parent_path, key = draw(st.sampled_from(paths))
        parent: Any = obj
        for k in parent_path:
            parent = parent[k]
        if isinstance(parent, dict) and draw(st.booleans()):
            del parent[key]
        else:
            parent[key] = copy.deepcopy(draw(_ODD))
    return obj


def _reduced(kind: str, obj: Any) -> tuple[Any, list[str]]:
    warnings: list[str] = []
    try:
        return reduce(kind, obj, warnings), warnings
    except InvalidObject as e:
        return f"InvalidObject: {e}", warnings


@settings(max_examples=600)
@given(st.one_of(st.tuples(st.just("Service"), _odd(_SERVICE)),
                 st.tuples(st.just("EndpointSlice"), _odd(_slice()))))
def test_fast_reduce_equals_the_general_one(kind_obj: tuple[str, dict[str, Any]]) -> None:
    """A plain dict takes the reducers' fast path, any other Mapping the general one:
    the same value, the same warnings, the same error, on well-formed objects and on
    every kind of odd field."""
    from types import MappingProxyType

    from hypothesis import event

    from zonegen import model

    kind, obj = kind_obj
    fast = model._plain_service(obj) if kind == "Service" else model._plain_slice(obj)
    event(f"{kind} fast path: {fast is not None}")
    assert _reduced(kind, obj) == _reduced(kind, MappingProxyType(obj))


@pytest.mark.parametrize("kind", ["Service", "EndpointSlice"])
def test_fast_reduce_takes_well_formed_objects(kind: str,
                                               consul_objects: list[dict[str, Any]]) -> None:
    """The fast path answers for the objects Kubernetes writes (the general path is
    not what a replay runs)."""
    from zonegen import model

    obj = next(o for o in consul_objects if o["kind"] == kind)
    fast = model._plain_service(obj) if kind == "Service" else model._plain_slice(obj)
    assert fast is not None
    assert fast == reduce(kind, dict(obj))
