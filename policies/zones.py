"""Zones: which named part of the network an endpoint of a flow is in.

Matching rule (also in docs/policy.md): a zone matches an endpoint (address, capture interface,
VLAN id) when

    (the zone lists no interfaces or the interface is one of them)
    and (the zone lists no VLANs or the VLAN id is one of them)
    and (the zone lists no CIDRs or the address is in one of them).

When several zones match, the most specific wins: the longest matching CIDR prefix first (a zone
matched through a CIDR beats one without CIDRs); then the zone with more kinds of constraint
(VLANs, interfaces) set; then the one defined first in the file. No match gives ``any``.

A flow's source zone is its client's zone, its destination zone its server's; both sides use the
flow's capture interface and VLAN. IPv4-mapped IPv6 addresses (``::ffff:a.b.c.d``) count as IPv4.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

from policies.schema import Policy, ZoneDef

ANY = "any"
_CACHE_MAX = 1 << 16


def _addr(ip: Any) -> tuple[int, int] | None:
    """(family 4|6, integer) for packed bytes, text, or an ipaddress object; None if not an address."""
    if isinstance(ip, bytes | bytearray | memoryview):
        b = bytes(ip)
        if len(b) == 4:
            return 4, int.from_bytes(b, "big")
        if len(b) == 16:
            n = int.from_bytes(b, "big")
            if n >> 32 == 0xFFFF:
                return 4, n & 0xFFFFFFFF
            return 6, n
        return None
    if isinstance(ip, str):
        try:
            ip = ipaddress.ip_address(ip.split("%", 1)[0])
        except ValueError:
            return None
    if isinstance(ip, ipaddress.IPv4Address):
        return 4, int(ip)
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return 4, int(ip.ipv4_mapped)
        return 6, int(ip)
    return None


class ZoneMap:
    """Resolves endpoints to zone names; built once per policy, then read-only (plus a cache)."""

    def __init__(self, zones: Policy | Iterable[ZoneDef]) -> None:
        self.zones: tuple[ZoneDef, ...] = tuple(zones.zones if isinstance(zones, Policy) else zones)
        # Candidate order within one prefix length: more constraint kinds first, then file order.
        order = sorted(range(len(self.zones)),
                       key=lambda i: (-(bool(self.zones[i].vlans) + bool(self.zones[i].interfaces)), i))
        rank = {zi: r for r, zi in enumerate(order)}
        # family → [(prefixlen, mask, {network int: [zone index, ...]})], longest prefix first
        tables: dict[int, dict[int, dict[int, list[int]]]] = {4: {}, 6: {}}
        for zi, z in enumerate(self.zones):
            for net in z.networks:
                fam = net.version
                by_net = tables[fam].setdefault(net.prefixlen, {})
                bucket = by_net.setdefault(int(net.network_address), [])
                if zi not in bucket:
                    bucket.append(zi)
        self._tables: dict[int, list[tuple[int, dict[int, list[int]]]]] = {}
        for fam, by_len in tables.items():
            bits = 32 if fam == 4 else 128
            full = (1 << bits) - 1
            rows = []
            for plen in sorted(by_len, reverse=True):
                mask = full ^ ((1 << (bits - plen)) - 1)
                rows.append((mask, {n: sorted(zs, key=rank.__getitem__) for n, zs in by_len[plen].items()}))
            self._tables[fam] = rows
        self._no_cidr = [zi for zi in order if not self.zones[zi].networks]
        self._cache: dict[tuple[Any, str, int], str] = {}
        self.lookups = 0
        self.cache_hits = 0

    def zone_of(self, ip: str | bytes, iface: str = "", vlan: int = 0) -> str:
        """The zone of one endpoint (``any`` when no zone matches or ``ip`` is not an address)."""
        key = (ip, iface, vlan)
        self.lookups += 1
        hit = self._cache.get(key)
        if hit is not None:
            self.cache_hits += 1
            return hit
        name = self._resolve(ip, iface, vlan)
        if len(self._cache) >= _CACHE_MAX:
            self._cache.clear()
        self._cache[key] = name
        return name

    def _ok(self, zi: int, iface: str, vlan: int) -> bool:
        z = self.zones[zi]
        return (not z.interfaces or iface in z.interfaces) and (not z.vlans or vlan in z.vlans)

    def _resolve(self, ip: Any, iface: str, vlan: int) -> str:
        a = _addr(ip)
        if a is not None:
            fam, n = a
            for mask, table in self._tables[fam]:
                cands = table.get(n & mask)
                if cands:
                    for zi in cands:
                        if self._ok(zi, iface, vlan):
                            return self.zones[zi].name
        for zi in self._no_cidr:
            if self._ok(zi, iface, vlan):
                return self.zones[zi].name
        return ANY

    def zones_for(self, flow: Any) -> tuple[str, str]:
        """(source zone, destination zone) = (client's zone, server's zone).

        Accepts a `Flow` (``client_ip``/``server_ip``), a `FlowRef` (``src_ip``/``dest_ip``), a
        `ContentObject` (its ``flow``) or None (→ ``("any", "any")``).
        """
        if flow is None:
            return ANY, ANY
        if hasattr(flow, "client_ip"):
            src, dst = flow.client_ip, flow.server_ip
        elif hasattr(flow, "src_ip"):
            src, dst = flow.src_ip, flow.dest_ip
        elif hasattr(flow, "flow") and hasattr(flow, "source"):
            return self.zones_for(flow.flow)
        else:
            raise TypeError(f"zones_for: not a flow: {type(flow).__name__}")
        iface = getattr(flow, "iface", "") or ""
        vlan = getattr(flow, "vlan", 0) or 0
        return self.zone_of(src, iface, vlan), self.zone_of(dst, iface, vlan)
