"""names: labels, owners, name checks, ExternalName targets and zone options."""

from __future__ import annotations

import ipaddress

import dns.name
import dns.reversename
import pytest
from hypothesis import given
from hypothesis import strategies as st

from zonegen.errors import InvalidZone
from zonegen.model import NameServer, ZoneConfig
from zonegen.names import (
    absolute,
    address_label,
    check_label,
    check_name,
    endpoint_label,
    endpoint_owner,
    external_target,
    in_zone,
    parse_nameserver,
    ptr_owner,
    qualify,
    qualify_server,
    service_owner,
    srv_owner,
    zone_config,
)


@pytest.mark.parametrize("label", ["a", "db-0", "0db", "A" * 63, "consul-server-0", "x1"])
def test_check_label_valid(label: str) -> None:
    assert check_label(label) == []


@pytest.mark.parametrize(
    ("label", "fragment"),
    [
        ("", "empty"),
        ("a" * 64, "longer than 63"),
        ("-db", "starts or ends"),
        ("db-", "starts or ends"),
        ("db_0", "characters"),
        ("db.0", "characters"),
        ("dé", "characters"),
    ],
)
def test_check_label_invalid(label: str, fragment: str) -> None:
    reasons = check_label(label)
    assert reasons
    assert any(fragment in r for r in reasons)


@pytest.mark.parametrize(
    ("address", "label"),
    [
        ("10.244.0.6", "10-244-0-6"),
        ("fd00::1", "fd00--1"),
        ("::1", "0--1"),
        ("fd00::", "fd00--0"),
        ("::", "0--0"),
        ("2001:db8::ab:1", "2001-db8--ab-1"),
    ],
)
def test_address_label(address: str, label: str) -> None:
    assert address_label(address) == label
    assert check_label(label) == []


def test_endpoint_label() -> None:
    assert endpoint_label("10.0.0.1", "Web-0") == ("web-0", [])
    assert endpoint_label("10.0.0.1", None) == ("10-0-0-1", [])
    assert endpoint_label("10.0.0.1", "") == ("10-0-0-1", [])
    label, reasons = endpoint_label("fd00::", "bad_name")
    assert label == "fd00--0"
    assert len(reasons) == 1
    assert "bad_name" in reasons[0]


def test_owners() -> None:
    assert service_owner("Default", "DB") == "db.default.svc"
    assert endpoint_owner("db-0", "default", "db") == "db-0.db.default.svc"
    assert srv_owner("http", "TCP", "default", "db") == "_http._tcp.db.default.svc"
    assert ptr_owner("10.244.0.6") == "6.0.244.10.in-addr.arpa."
    assert ptr_owner("fd00::1") == dns.reversename.from_address("fd00::1").to_text()


@given(st.ip_addresses())
def test_ptr_owner_matches_dnspython(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> None:
    text = str(address)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        # dnspython files ::ffff:a.b.c.d under in-addr.arpa; RFC 3596 (and zonegen) under
        # ip6.arpa, since such an address is published as AAAA.
        assert ptr_owner(text).endswith(".0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa.")
        return
    assert ptr_owner(text) == dns.reversename.from_address(text).to_text().lower()


def test_ptr_owner_rejects_non_addresses() -> None:
    with pytest.raises(ValueError, match="IP"):
        ptr_owner("10.0.0.256")
    with pytest.raises(ValueError, match="IP"):
        ptr_owner("example")


def test_absolute_and_in_zone() -> None:
    assert absolute("db.default.svc", "cluster.local.") == "db.default.svc.cluster.local."
    assert absolute("db.default.svc", "k8s.example.org") == "db.default.svc.k8s.example.org."
    assert absolute("6.0.244.10.in-addr.arpa.", "cluster.local.") == "6.0.244.10.in-addr.arpa."
    assert absolute("x", ".") == "x."
    assert in_zone("db.default.svc.cluster.local.", "cluster.local.")
    assert in_zone("cluster.local.", "cluster.local")
    assert in_zone("6.0.244.10.in-addr.arpa.", "10.in-addr.arpa.")
    assert not in_zone("6.0.244.10.in-addr.arpa.", "0.in-addr.arpa.")
    assert not in_zone("xcluster.local.", "cluster.local.")
    assert in_zone("anything.", ".")


def test_check_name_lengths() -> None:
    # cluster.local. takes 15 octets on the wire with its root: 240 are left.
    ok = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 47])  # 239 chars, 240 octets
    assert check_name(ok) == []
    assert dns.name.from_text(absolute(ok)).to_wire() is not None
    too_long = "e." + ok
    reasons = check_name(too_long)
    assert any("longer than 255" in r for r in reasons)
    with pytest.raises(dns.name.NameTooLong):
        dns.name.from_text(absolute(too_long))
    assert any("longer than 63" in r for r in check_name("_" + "p" * 63 + "._tcp.db.default.svc"))
    assert check_name("_" + "p" * 62 + "._tcp.db.default.svc") == []
    assert any("empty label" in r for r in check_name("a..b"))
    assert any("characters" in r for r in check_name("a b.c"))
    assert check_name("6.0.244.10.in-addr.arpa.") == []


@pytest.mark.parametrize(
    ("value", "target"),
    [
        ("example.com", "example.com."),
        ("example.com.", "example.com."),
        ("Example.COM", "example.com."),
        ("_sip._tcp.example.com", "_sip._tcp.example.com."),
        ("localhost", "localhost."),
    ],
)
def test_external_target_valid(value: str, target: str) -> None:
    assert external_target(value) == (target, [])


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("10.0.0.1", "IP address"),
        ("fd00::1", "IP address"),
        ("example.com..", "empty label"),
        ("a..b", "empty"),
        ("", "empty label"),
        (".", "root"),
        ("a" * 64 + ".com", "valid domain name"),
        (".".join(["a" * 63] * 4), "valid domain name"),
        ("foo bar.com", "escaping"),
    ],
)
def test_external_target_invalid(value: str, fragment: str) -> None:
    target, reasons = external_target(value)
    assert target is None
    assert any(fragment in r for r in reasons), reasons


def test_zone_config_forward_defaults() -> None:
    assert zone_config() == ZoneConfig()
    cfg = zone_config("K8s.Example.org")
    assert cfg.zone == "k8s.example.org."
    assert cfg.forward_zone == "k8s.example.org."
    assert cfg.nameservers == (NameServer("ns.dns.k8s.example.org.", "127.0.0.1"),)
    assert cfg.hostmaster == "hostmaster.k8s.example.org."
    assert (cfg.ttl, cfg.refresh, cfg.retry, cfg.expire, cfg.minimum) == (5, 7200, 1800, 86400, 5)


def test_zone_config_reverse_defaults() -> None:
    cfg = zone_config("10.in-addr.arpa")
    assert cfg.is_reverse
    assert cfg.zone == "10.in-addr.arpa."
    assert cfg.forward_zone == "cluster.local."
    assert cfg.nameservers == (NameServer("ns.dns.cluster.local."),)
    assert cfg.hostmaster == "hostmaster.cluster.local."
    cfg6 = zone_config("d.f.ip6.arpa.", forward_zone="k8s.example.org")
    assert cfg6.forward_zone == "k8s.example.org."
    assert cfg6.nameservers == (NameServer("ns.dns.k8s.example.org."),)


def test_zone_config_options() -> None:
    cfg = zone_config(
        "cluster.local",
        nameservers=["ns1=10.0.0.53", "ns2.example.org."],
        hostmaster="admin@example.org",
        ttl=30,
    )
    assert cfg.nameservers == (
        NameServer("ns1.cluster.local.", "10.0.0.53"),
        NameServer("ns2.example.org."),
    )
    assert cfg.hostmaster == "admin.example.org."
    assert cfg.ttl == 30
    assert zone_config(hostmaster="dns-admin").hostmaster == "dns-admin.cluster.local."


def test_parse_nameserver() -> None:
    assert parse_nameserver("ns1", "cluster.local") == NameServer("ns1.cluster.local.")
    assert parse_nameserver("NS1.Example.org.=fd00:0::53", "cluster.local.") == NameServer(
        "ns1.example.org.", "fd00::53")
    with pytest.raises(InvalidZone, match="not an IP address"):
        parse_nameserver("ns1=not-an-ip", "cluster.local")
    with pytest.raises(InvalidZone, match="empty"):
        parse_nameserver("=10.0.0.1", "cluster.local")


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"zone": "bad..zone"}, "label is empty"),
        ({"zone": "."}, "root"),
        ({"zone": "a" * 64}, "valid domain name"),
        ({"ttl": -1}, "TTL"),
        ({"minimum": 2**31}, "minimum"),
        ({"nameservers": ["ns1=300.1.1.1"]}, "not an IP address"),
        ({"nameservers": ["ns1"]}, "needs an address"),
        ({"nameservers": ["ns1.example.org.=10.0.0.1"]}, "outside zone"),
        ({"zone": "10.in-addr.arpa", "nameservers": ["ns=10.0.0.1"]}, "reverse zone"),
        ({"forward_zone": "10.in-addr.arpa"}, "is a reverse zone"),
        ({"hostmaster": "a.b@example.org"}, "local part"),
        ({"zone": "300.in-addr.arpa"}, "label '300' is not a decimal octet 0-255"),
        ({"zone": "010.in-addr.arpa"}, "label '010' is not a decimal octet"),
        ({"zone": "5.4.3.2.1.in-addr.arpa"}, "more than 4 labels"),
        ({"zone": "db8.ip6.arpa"}, "label 'db8' is not one hex digit"),
        ({"zone": ".".join("0" * 33) + ".ip6.arpa"}, "more than 32 labels"),
    ],
)
def test_zone_config_invalid(kwargs: dict[str, object], fragment: str) -> None:
    with pytest.raises(InvalidZone, match=fragment) as info:
        zone_config(**kwargs)  # type: ignore[arg-type]
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("zone", ["in-addr.arpa", "10.in-addr.arpa", "0.2.0.192.in-addr.arpa",
                                  "ip6.arpa", "8.b.d.0.1.0.0.2.ip6.arpa"])
def test_zone_config_accepts_reverse_zones_that_name_a_prefix(zone: str) -> None:
    assert zone_config(zone=zone).zone == zone + "."


@pytest.mark.parametrize(("text", "name"), [
    ("web.shop.svc", "web.shop.svc.cluster.local."),
    ("web.shop.svc.cluster.local", "web.shop.svc.cluster.local."),
    ("web.shop.svc.cluster.local.", "web.shop.svc.cluster.local."),
    ("Web.Shop.svc.Cluster.Local", "Web.Shop.svc.Cluster.Local."),
    ("cluster.local", "cluster.local."),
    ("@", "cluster.local."),
    ("ns1.example.org", "ns1.example.org.cluster.local."),  # an owner name: relative
    ("example.org.", "example.org."),
])
def test_qualify_one_rule_for_names_users_type(text: str, name: str) -> None:
    """README "Names on the command line": a trailing dot or the zone at the end makes a
    name absolute; anything else is relative to the zone."""
    assert qualify(text, "cluster.local.") == name


@pytest.mark.parametrize(("text", "name"), [
    ("ns1", "ns1.cluster.local."),
    ("ns1.example.org", "ns1.example.org."),
    ("ns1.example.org.", "ns1.example.org."),
    ("ns.dns.cluster.local", "ns.dns.cluster.local."),
])
def test_qualify_server_a_dot_makes_a_server_name_absolute(text: str, name: str) -> None:
    assert qualify_server(text, "cluster.local.") == name


def test_nameserver_and_hostmaster_with_a_dot_are_absolute() -> None:
    """``--ns ns1.example.org=ADDR`` published ``ns1.example.org.cluster.local.`` while
    ``--hostmaster admin@example.org`` was absolute: both follow one rule now."""
    assert parse_nameserver("ns1.example.org", "cluster.local") == NameServer(
        "ns1.example.org.")
    cfg = zone_config(nameservers=["ns1.example.org", "ns2=10.0.0.2"],
                      hostmaster="admin.example.org")
    assert cfg.nameservers == (NameServer("ns1.example.org."),
                               NameServer("ns2.cluster.local.", "10.0.0.2"))
    assert cfg.hostmaster == "admin.example.org."
    with pytest.raises(InvalidZone, match="outside zone"):
        zone_config(nameservers=["ns1.example.org=192.0.2.1"])


def test_repeated_nameserver_spellings_give_one_ns() -> None:
    cfg = zone_config(nameservers=["ns1.example.org", "NS1.example.org.", "ns1.example.org"])
    assert cfg.nameservers == (NameServer("ns1.example.org."),)
