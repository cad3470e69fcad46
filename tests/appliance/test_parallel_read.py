"""``tapsift read --workers N`` gives the events of one process (compared with
`appliance.parallel_read.canonical`: ids, order and fast-path run times aside), and its flow
hash sends both directions and every IP fragment of a flow to one shard."""

from __future__ import annotations

import json
import socket
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.parallel_read import _shards, canonical, shard_of
from appliance.store import AlertStore

ROOT = Path(__file__).resolve().parents[2]
TAPSIFT = str(Path(sys.executable).with_name("tapsift"))


def _eth_ipv4(src: str, dst: str, proto: int, payload: bytes, *, frag: int = 0, vlan: int | None = None) -> bytes:
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 1, frag, 64, proto, 0,
                     socket.inet_aton(src), socket.inet_aton(dst)) + payload
    tag = struct.pack("!HH", 0x8100, vlan) if vlan is not None else b""
    return b"\x02" * 6 + b"\x04" * 6 + tag + b"\x08\x00" + ip


def _eth_ipv6(src: str, dst: str, payload: bytes) -> bytes:
    ip = struct.pack("!IHBB16s16s", 0x60000000, len(payload), 6, 64, socket.inet_pton(socket.AF_INET6, src),
                     socket.inet_pton(socket.AF_INET6, dst)) + payload
    return b"\x02" * 6 + b"\x04" * 6 + b"\x86\xdd" + ip


@pytest.mark.parametrize("n", [2, 3, 8])
def test_both_directions_and_fragments_share_a_shard(n: int) -> None:
    tcp = struct.pack("!HHIIBBHHH", 40000, 80, 1, 0, 0x50, 0x18, 65535, 0, 0)
    back = struct.pack("!HHIIBBHHH", 80, 40000, 1, 0, 0x50, 0x18, 65535, 0, 0)
    for a, b in (("10.0.0.2", "192.0.2.9"), ("10.77.3.4", "10.77.0.1"), ("172.16.9.9", "8.8.4.4")):
        frames = [_eth_ipv4(a, b, 6, tcp), _eth_ipv4(b, a, 6, back), _eth_ipv4(a, b, 6, tcp, vlan=30),
                  _eth_ipv4(a, b, 6, tcp[:8], frag=0x2000), _eth_ipv4(a, b, 6, b"more", frag=1)]
        got = {shard_of(f, 0, len(f), 1, n) for f in frames}
        assert len(got) == 1
    v6 = {shard_of(f, 0, len(f), 1, n) for f in (_eth_ipv6("2001:db8::1", "2001:db8::2", tcp),
                                                 _eth_ipv6("2001:db8::2", "2001:db8::1", back))}
    assert len(v6) == 1
    arp = b"\xff" * 6 + b"\x04" * 6 + b"\x08\x06" + b"\0" * 28
    assert shard_of(arp, 0, len(arp), 1, n) == 0
    assert shard_of(b"\x02" * 13, 0, 13, 1, n) == 0  # cut short: never raises


@pytest.mark.parametrize("linktype", [1, 101, 113])
def test_vectorised_shards_equal_the_scalar_hash(linktype: int) -> None:
    import random

    import numpy as np

    rng = random.Random(linktype)
    tcp = struct.pack("!HHIIBBHHH", 40000, 80, 1, 0, 0x50, 0x18, 65535, 0, 0)
    frames = []
    for _ in range(400):
        a, b = f"10.{rng.randrange(4)}.{rng.randrange(256)}.1", f"192.0.2.{rng.randrange(256)}"
        f = rng.choice([_eth_ipv4(a, b, 6, tcp), _eth_ipv4(a, b, 17, tcp, vlan=rng.randrange(4096)),
                        _eth_ipv6(f"2001:db8::{rng.randrange(9999):x}", "2001:db8::1", tcp),
                        b"\x02" * 12 + b"\x81\x00\x00\x01" * 5 + b"\x08\x00" + b"\x45" * 40])
        if linktype == 101:
            f = f[14:] if f[12:14] in (b"\x08\x00", b"\x86\xdd") else f
        elif linktype == 113:
            f = b"\0" * 2 + f[:14]
        f = f[:rng.choice([len(f), len(f), rng.randrange(len(f) + 1)])]  # some cut short
        frames.append(f)
    buf = b"".join(frames)
    offs = np.cumsum([0] + [len(f) for f in frames[:-1]])
    lens = np.array([len(f) for f in frames])
    for n in (2, 3, 5):
        want = [shard_of(buf, int(o), int(ln), linktype, n) for o, ln in zip(offs, lens)]
        assert _shards(buf, offs, lens, linktype, n).tolist() == want


def test_flows_spread_over_the_shards() -> None:
    tcp = struct.pack("!HHIIBBHHH", 40000, 80, 1, 0, 0x50, 0x18, 65535, 0, 0)
    shards = [shard_of(f, 0, len(f), 1, 2) for f in (_eth_ipv4(f"10.1.{i}.{j}", "192.0.2.9", 6, tcp)
                                                     for i in range(8) for j in range(1, 50))]
    assert 0.35 < sum(shards) / len(shards) < 0.65


def _read(pcap: Path, out: Path, *extra: str) -> list[dict]:
    eve = out.with_suffix(".json")
    subprocess.run([TAPSIFT, "read", str(pcap), "--eve", str(eve), "-q", *extra], check=True, timeout=600)
    return [json.loads(line) for line in eve.read_text().splitlines()]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("par") / "demo.pcap"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "make_demo.py"), str(out)], check=True,
                   capture_output=True, timeout=300)
    return out


@pytest.mark.slow
def test_demo_with_the_sample_policy_same_events_and_alerts(demo: Path, tmp_path: Path) -> None:
    policy = str(ROOT / "policies" / "sample.yaml")
    one = _read(demo, tmp_path / "one", "--policy", policy, "--workers", "1", "--store", str(tmp_path / "one.db"))
    two = _read(demo, tmp_path / "two", "--policy", policy, "--workers", "2", "--store", str(tmp_path / "two.db"))
    assert canonical(one) == canonical(two)
    alerts = [e for e in two if e["event_type"] == "alert"]
    assert len(alerts) >= 7 and len({e["tapsift"]["alert_id"] for e in alerts}) == len(alerts)
    ids = [e["tapsift"]["content_id"] for e in two if e["event_type"] == "fileinfo"]
    assert len(set(ids)) == len(ids)  # content ids unique across the workers
    [stats] = [e["stats"] for e in two if e["event_type"] == "stats"]
    [ref] = [e["stats"] for e in one if e["event_type"] == "stats"][-1:]
    assert (stats["packets"], stats["objects"], stats["alerts"]) == (ref["packets"], ref["objects"], ref["alerts"])
    assert stats["workers"] == 2
    for db in ("one.db", "two.db"):  # the store got every alert, through one writer
        store = AlertStore.reader(tmp_path / db)
        try:
            assert store.count() == len(alerts)
        finally:
            store.close()


@pytest.mark.slow
def test_impaired_http_workload_same_events(tmp_path: Path) -> None:
    pcap = tmp_path / "w.pcap"
    subprocess.run([sys.executable, str(ROOT / "bench" / "make_workload.py"), str(pcap), "--mb", "6", "--seed", "4",
                    "--tap-loss", "0.002", "--reorder", "0.01"], check=True, capture_output=True, timeout=300)
    policy = str(ROOT / "bench" / "kw_dc_policy.yaml")
    for extra in ((), ("--policy", policy)):
        one = _read(pcap, tmp_path / "one", *extra, "--workers", "1")
        two = _read(pcap, tmp_path / "three", *extra, "--workers", "3")
        assert canonical(one) == canonical(two) and sum(canonical(one).values()) > 20
        (tmp_path / "one.json").unlink()
        (tmp_path / "three.json").unlink()
