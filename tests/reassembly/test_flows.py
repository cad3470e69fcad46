"""FlowTable: ids, lookup, idle expiry on packet time, eviction."""

from __future__ import annotations

import re

from appliance.model import Direction, Flow, FlowKey, FlowState
from reassembly.flows import FlowTable, guess_server_is_dst, make_flow_id, make_uid

SEC = 1_000_000_000
T0 = 1_700_000_000 * SEC
A = bytes([10, 0, 0, 1])
B = bytes([10, 0, 0, 2])


def ip(i: int) -> bytes:
    return bytes([10, 1, i >> 8 & 255, i & 255])


def test_uid_and_flow_id_shape_and_uniqueness() -> None:
    uids = {make_uid(n) for n in range(1, 20001)}
    ids = {make_flow_id(n) for n in range(1, 20001)}
    assert len(uids) == 20000 and len(ids) == 20000
    assert all(re.fullmatch(r"C[0-9A-Za-z]{11}", u) for u in uids)
    assert all(0 < i < 2**51 for i in ids)
    # seeds (worker ids) separate the spaces
    assert make_uid(1) != make_uid((1 << 40) | 1)


def test_ids_are_deterministic_across_tables() -> None:
    def run() -> list[tuple[str, int]]:
        t = FlowTable()
        out = []
        for i in range(50):
            f, _, _ = t.lookup_or_create(ip(i), 40000 + i, B, 80, 6, ts_ns=T0 + i)
            out.append((f.uid, f.flow_id))
        return out

    assert run() == run()
    t1, t2 = FlowTable(seed=1), FlowTable(seed=2)
    f1, _, _ = t1.lookup_or_create(A, 1, B, 2, 17)
    f2, _, _ = t2.lookup_or_create(A, 1, B, 2, 17)
    assert f1.uid != f2.uid and f1.flow_id != f2.flow_id


def test_lookup_or_create_both_directions() -> None:
    t = FlowTable()
    f, d, new = t.lookup_or_create(A, 53000, B, 53, 17, vlan=7, ts_ns=T0, iface="eth1")
    assert new and d is Direction.TO_SERVER
    assert (f.client_ip, f.client_port, f.server_ip, f.server_port) == (A, 53000, B, 53)
    assert f.vlan == 7 and f.iface == "eth1" and f.proto == 17
    g, d2, new2 = t.lookup_or_create(B, 53, A, 53000, 17, vlan=7, ts_ns=T0 + 5)
    assert g is f and not new2 and d2 is Direction.TO_CLIENT
    assert f.pkts == [1, 1] and f.last_ts_ns == T0 + 5 and f.first_ts_ns == T0
    assert t.get(FlowKey.of(A, 53000, B, 53, 17, 7)) is f
    assert t.get(FlowKey.of(A, 53000, B, 53, 17, 8)) is None  # other VLAN
    assert len(t) == 1 and f in t and list(t) == [f]
    # explicit roles
    h, d3, _ = t.lookup_or_create(A, 80, B, 50000, 6, server_is_dst=False)
    assert (h.server_port, d3) == (80, Direction.TO_CLIENT)


def test_guess_server() -> None:
    assert guess_server_is_dst(50000, 80)
    assert not guess_server_is_dst(80, 50000)
    assert guess_server_is_dst(1025, 8080)  # well-known high port beats lower port
    assert not guess_server_is_dst(3306, 40000)
    assert guess_server_is_dst(40000, 30000)  # neither well known: lower port
    assert not guess_server_is_dst(22, 25)  # both < 1024: lower port (the source)
    assert guess_server_is_dst(7, 7)


def test_expire_uses_state_timeouts_on_packet_time() -> None:
    t = FlowTable(established_timeout_ns=300 * SEC, closed_timeout_ns=30 * SEC)
    new, _, _ = t.lookup_or_create(A, 1000, B, 80, 6, ts_ns=T0)
    est, _, _ = t.lookup_or_create(A, 1001, B, 80, 6, ts_ns=T0)
    est.state = FlowState.ESTABLISHED
    assert t.expire(T0 + 30 * SEC - 1) == []
    assert t.expire(T0 + 30 * SEC) == [new]
    # activity pushes the deadline (lazily: nothing to tell the table)
    est.last_ts_ns = T0 + 200 * SEC
    assert t.expire(T0 + 300 * SEC) == []
    assert t.expire(T0 + 500 * SEC - 1) == []
    assert t.expire(T0 + 500 * SEC) == [est]
    assert len(t) == 0 and t.counters["flows_expired"] == 2


def test_mark_closed_shortens_timeout() -> None:
    t = FlowTable()
    f, _, _ = t.lookup_or_create(A, 1000, B, 80, 6, ts_ns=T0)
    f.state = FlowState.ESTABLISHED
    f.last_ts_ns = T0 + 100 * SEC
    assert t.expire(T0 + 131 * SEC) == []
    f.state = FlowState.CLOSED
    t.mark_closed(f)
    assert t.expire(T0 + 129 * SEC) == []
    assert t.expire(T0 + 130 * SEC) == [f]


def test_expire_after_long_time_jump_and_backwards_time() -> None:
    t = FlowTable()
    flows = [t.lookup_or_create(ip(i), 1000, B, 80, 6, ts_ns=T0 + i * SEC)[0] for i in range(5)]
    assert t.expire(T0 - 10 * SEC) == []  # time going backwards: nothing
    assert t.expire(T0 + 10**9 * SEC) == flows  # years later: one pass, deadline order


def test_eviction_prefers_closed_then_earliest_deadline() -> None:
    evicted: list[tuple[str, int]] = []
    t = FlowTable(max_flows=3, on_evict=lambda f, ts: evicted.append((f.uid, ts)))
    f = [t.lookup_or_create(ip(i), 1000, B, 80, 6, ts_ns=T0 + i * SEC)[0] for i in range(3)]
    for x in f:
        x.state = FlowState.ESTABLISHED
    f[0].last_ts_ns = T0 + 10 * SEC  # most recently active
    f[2].state = FlowState.CLOSED
    t.mark_closed(f[2])
    g, _, _ = t.lookup_or_create(ip(10), 1000, B, 80, 6, ts_ns=T0 + 11 * SEC)
    assert evicted == [(f[2].uid, T0 + 11 * SEC)]
    assert f[2] not in t and len(t) == 3
    g.state = FlowState.ESTABLISHED
    g.last_ts_ns = T0 + 11 * SEC
    # no closed flow left: least recently active goes (f[1], last active at T0 + 1 s)
    h, _, _ = t.lookup_or_create(ip(11), 1000, B, 80, 6, ts_ns=T0 + 12 * SEC)
    assert evicted[-1][0] == f[1].uid
    h.state = FlowState.ESTABLISHED
    t.lookup_or_create(ip(12), 1000, B, 80, 6, ts_ns=T0 + 13 * SEC)
    assert evicted[-1][0] == f[0].uid
    assert t.counters["flows_evicted"] == 3 and t.counters["flows_active"] == 3


def test_eviction_half_open_before_established() -> None:
    t = FlowTable(max_flows=2)
    est, _, _ = t.lookup_or_create(A, 1000, B, 80, 6, ts_ns=T0)
    est.state = FlowState.ESTABLISHED
    syn, _, _ = t.lookup_or_create(A, 1001, B, 80, 6, ts_ns=T0 + 100 * SEC)
    t.lookup_or_create(A, 1002, B, 80, 6, ts_ns=T0 + 101 * SEC)
    assert est in t and syn not in t


def test_eviction_many_flows_stays_bounded() -> None:
    t = FlowTable(max_flows=100)
    for i in range(5000):
        fl, _, _ = t.lookup_or_create(ip(i), 1000, B, 80, 6, ts_ns=T0 + i * 1000)
        fl.state = FlowState.ESTABLISHED
    assert len(t) == 100
    assert t.counters["flows_evicted"] == 4900
    assert {f.client_ip for f in t} == {ip(i) for i in range(4900, 5000)}


def test_create_replaces_and_remove_and_clear() -> None:
    t = FlowTable()
    f, _, _ = t.lookup_or_create(A, 1000, B, 80, 6, ts_ns=T0)
    g = t.create(f.key, A, 1000, B, 80, T0 + 1)
    assert isinstance(g, Flow) and g is not f and g.uid != f.uid
    assert t.get(f.key) is g and f not in t
    assert not t.remove(f) and t.remove(g) and len(t) == 0
    t.lookup_or_create(A, 1, B, 2, 17)
    t.lookup_or_create(A, 3, B, 4, 17)
    assert len(t.clear()) == 2 and len(t) == 0 and t.expire(T0 * 2) == []
