"""Zone resolution: interfaces, VLANs, CIDRs (v4/v6), longest prefix, 'any'."""

from __future__ import annotations

import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.model import FlowKey
from appliance.model.flows import Flow
from policies.schema import ZoneDef
from policies.zones import ZoneMap
from tests.policies.factories import flow_ref, obj, policy


def zone(name: str, *cidrs: str, ifaces: tuple[str, ...] = (), vlans: tuple[int, ...] = ()) -> ZoneDef:
    return ZoneDef(name, frozenset(ifaces), frozenset(vlans), tuple(ipaddress.ip_network(c) for c in cidrs))


ZM = ZoneMap([
    zone("office", "10.20.0.0/16"),
    zone("finance", "10.20.50.0/24"),
    zone("voice", "10.20.30.0/24", vlans=(30,)),
    zone("dmz", "192.0.2.0/24", ifaces=("eth2",)),
    zone("port3", ifaces=("eth3",)),
    zone("guest", vlans=(40,)),
    zone("v6lab", "2001:db8::/32"),
    zone("v6host", "2001:db8:1::/48", "2001:db8:1:2::5/128"),
])


def test_cidr_and_longest_prefix() -> None:
    assert ZM.zone_of("10.20.1.1") == "office"
    assert ZM.zone_of("10.20.50.9") == "finance"
    assert ZM.zone_of("10.21.0.1") == "any"
    assert ZM.zone_of("2001:db8:ffff::1") == "v6lab"
    assert ZM.zone_of("2001:db8:1::9") == "v6host"
    assert ZM.zone_of("2001:db9::1") == "any"


def test_combined_constraints_are_anded() -> None:
    assert ZM.zone_of("10.20.30.7", vlan=30) == "voice"
    assert ZM.zone_of("10.20.30.7", vlan=0) == "office"  # VLAN does not match: next-longest prefix
    assert ZM.zone_of("192.0.2.10", "eth2") == "dmz"
    assert ZM.zone_of("192.0.2.10", "eth1") == "any"


def test_interface_and_vlan_only_zones() -> None:
    assert ZM.zone_of("198.51.100.7", "eth3") == "port3"
    assert ZM.zone_of("198.51.100.7", "eth1", 40) == "guest"
    # a CIDR match beats a zone without CIDRs
    assert ZM.zone_of("10.20.1.1", "eth3") == "office"


def test_tie_break_more_constraints_then_file_order() -> None:
    zm = ZoneMap([zone("a", "10.0.0.0/8"), zone("b", "10.0.0.0/8", vlans=(5,)), zone("c", "10.0.0.0/8")])
    assert zm.zone_of("10.1.1.1", vlan=5) == "b"
    assert zm.zone_of("10.1.1.1", vlan=6) == "a"
    zm2 = ZoneMap([zone("x", ifaces=("eth1",)), zone("y", ifaces=("eth1",), vlans=(7,))])
    assert zm2.zone_of("1.1.1.1", "eth1", 7) == "y" and zm2.zone_of("1.1.1.1", "eth1", 8) == "x"


def test_address_forms() -> None:
    assert ZM.zone_of(bytes([10, 20, 50, 1])) == "finance"
    assert ZM.zone_of(ipaddress.ip_address("2001:db8:1::1").packed) == "v6host"
    mapped = ipaddress.ip_address("::ffff:10.20.50.1")
    assert ZM.zone_of(str(mapped)) == "finance" and ZM.zone_of(mapped.packed) == "finance"
    assert ZM.zone_of("fe80::1%eth0") == "any"
    assert ZM.zone_of("not an ip") == "any" and ZM.zone_of(b"\x01\x02") == "any"


def test_cache_hits_and_results_stable() -> None:
    zm = ZoneMap([zone("office", "10.20.0.0/16")])
    for _ in range(3):
        assert zm.zone_of("10.20.0.1") == "office" and zm.zone_of("8.8.8.8") == "any"
    assert zm.lookups == 6 and zm.cache_hits == 4


def test_zones_for_flow_flowref_object() -> None:
    ip = ipaddress.ip_address
    key = FlowKey.of(ip("10.20.1.2").packed, 40000, ip("192.0.2.9").packed, 80, 6, 0)
    f = Flow("C1", 1, key, ip("10.20.1.2").packed, 40000, ip("192.0.2.9").packed, 80, "eth2", 0)
    assert ZM.zones_for(f) == ("office", "dmz")
    assert ZM.zones_for(flow_ref("10.20.50.3", "203.0.113.5")) == ("finance", "any")
    assert ZM.zones_for(obj(flow=flow_ref("10.20.30.3", "10.20.1.1", vlan=30))) == ("voice", "office")
    assert ZM.zones_for(None) == ("any", "any")


def test_from_policy() -> None:
    p = policy("""
        zones:
          office: {cidrs: [10.20.0.0/16, 'fd00:20::/32']}
        lists: {k: {type: keywords, keywords: [x]}}
        profiles: {p: {category: spam, inspect: [{inspector: keyword, lists: [k]}]}}
        policies: [{name: r, source_zone: office, profiles: [p]}]
    """)
    zm = ZoneMap(p)
    assert zm.zone_of("fd00:20::1") == "office" and zm.zone_of("10.20.9.9") == "office"


# A zone per random IPv4 network: the answer must be the longest containing prefix, first in file.
nets = st.lists(
    st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 32)).map(
        lambda t: ipaddress.IPv4Network((t[0] >> (32 - t[1]) << (32 - t[1]) if t[1] else 0, t[1]))),
    min_size=1, max_size=12,
)


@settings(max_examples=200, deadline=None)
@given(nets, st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=8), st.data())
def test_longest_prefix_matches_ipaddress(networks: list, addrs: list[int], data: st.DataObject) -> None:
    # bias addresses into the networks half of the time
    addrs += [int(n.network_address) + data.draw(st.integers(0, n.num_addresses - 1)) for n in networks[:4]]
    zm = ZoneMap([ZoneDef(f"z{i}", networks=(n,)) for i, n in enumerate(networks)])
    for a in addrs:
        ip = ipaddress.IPv4Address(a)
        containing = [(i, n) for i, n in enumerate(networks) if ip in n]
        want = "any"
        if containing:
            best = max(n.prefixlen for _, n in containing)
            want = f"z{min(i for i, n in containing if n.prefixlen == best)}"
        assert zm.zone_of(str(ip)) == want
        assert zm.zone_of(ip.packed) == want


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2**128 - 1), st.integers(0, 128)), min_size=1, max_size=6),
       st.integers(0, 2**128 - 1))
def test_v6_matches_ipaddress(raw: list[tuple[int, int]], a: int) -> None:
    networks = [ipaddress.IPv6Network((n >> (128 - p) << (128 - p) if p else 0, p)) for n, p in raw]
    first = networks[0]
    addr = ipaddress.IPv6Address(int(first.network_address) | (a & ((1 << (128 - first.prefixlen)) - 1)))
    if addr.ipv4_mapped is not None:
        return
    zm = ZoneMap([ZoneDef(f"z{i}", networks=(n,)) for i, n in enumerate(networks)])
    containing = [(i, n) for i, n in enumerate(networks) if addr in n]
    best = max(n.prefixlen for _, n in containing)
    assert zm.zone_of(str(addr)) == f"z{min(i for i, n in containing if n.prefixlen == best)}"
