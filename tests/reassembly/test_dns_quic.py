"""DNS (UDP and TCP) and QUIC Initial metadata, from messages and packets real libraries make:
dnspython builds the DNS messages, aioquic the QUIC Initials (v1 and v2)."""

from __future__ import annotations

import ipaddress
import random

import dns.message
import dns.rcode
import dns.rrset
import pytest

from appliance.model import Direction, Packet
from reassembly.applayer.dns import looks_like_dns, parse_message
from reassembly.applayer.quic import QuicLimits, QuicParser, crypto_frames, decrypt_initial, initial_keys, long_packets
from tests.reassembly.applayer_run import Layer
from tests.reassembly.factories import make_flow

C, SV = Direction.TO_SERVER, Direction.TO_CLIENT


def udp(src: tuple[str, int], dst: tuple[str, int], payload: bytes, ts: int) -> Packet:
    return Packet(ts, "eth0", 0, ipaddress.ip_address(src[0]).packed, ipaddress.ip_address(dst[0]).packed,
                  src[1], dst[1], 17, 0, 0, 0, 0, payload)


def _answer(q: dns.message.Message, *records: str) -> bytes:
    r = dns.message.make_response(q)
    for text in records:
        r.answer.append(dns.rrset.from_text(*text.split(maxsplit=4)))
    return r.to_wire()


def test_dns_query_and_answer_events_over_udp() -> None:
    q = dns.message.make_query("WWW.Dropbox.com", "A", id=4242)
    a = _answer(q, "www.dropbox.com. 60 IN CNAME www-env.dropbox-dns.com.",
                "www-env.dropbox-dns.com. 60 IN A 162.125.1.18")
    run = Layer()
    cli, srv = ("10.0.0.5", 53111), ("10.0.0.1", 53)
    run.layer.feed_datagram(udp(cli, srv, q.to_wire(), 1_000))
    run.layer.feed_datagram(udp(srv, cli, a, 2_000))
    qe, ae = run.events
    assert qe.event_type == "dns" and qe.fields == {"type": "query", "id": 4242, "rrname": "www.dropbox.com",
                                                     "rrtype": "A", "opcode": 0, "tx_id": 0}
    assert qe.flow.src_port == 53111
    f = ae.fields
    assert (f["type"], f["rcode"], f["rrname"], f["rd"], f["flags"]) == ("answer", "NOERROR", "www.dropbox.com", True,
                                                                         "8100")  # QR RD
    assert f["answers"] == [
        {"rrname": "www.dropbox.com", "rrtype": "CNAME", "ttl": 60, "rdata": "www-env.dropbox-dns.com"},
        {"rrname": "www-env.dropbox-dns.com", "rrtype": "A", "ttl": 60, "rdata": "162.125.1.18"}]
    assert f["grouped"] == {"CNAME": ["www-env.dropbox-dns.com"], "A": ["162.125.1.18"]}
    assert ae.flow.src_port == 53  # the answer's addresses follow its direction


def test_dns_record_types_nxdomain_and_tcp() -> None:
    q = dns.message.make_query("example.org", "MX")
    a = _answer(q, "example.org. 300 IN MX 10 mail.example.org.", "example.org. 300 IN TXT \"v=spf1 -all\"",
                "example.org. 300 IN AAAA 2001:db8::25")
    f = parse_message(a)
    assert [x.get("rdata") for x in f["answers"]] == ["mail.example.org", "v=spf1 -all", "2001:db8::25"]
    nx = dns.message.make_response(dns.message.make_query("nope.example.org", "A"))
    nx.set_rcode(dns.rcode.NXDOMAIN)
    nx.authority.append(dns.rrset.from_text("example.org.", 60, "IN", "SOA",
                                            "ns1.example.org. admin.example.org. 7 3600 600 86400 60"))
    g = parse_message(nx.to_wire())
    assert g["rcode"] == "NXDOMAIN" and g["authorities"][0]["soa"]["serial"] == 7
    run = Layer()
    wire_q, wire_a = q.to_wire(), a
    run.run([(C, len(wire_q).to_bytes(2, "big") + wire_q), (SV, len(wire_a).to_bytes(2, "big") + wire_a[:10]),
             (SV, wire_a[10:])], flow=make_flow(sport=5353), piece=3)
    assert [e.fields["type"] for e in run.events] == ["query", "answer"]
    assert run.ended[0].app_proto == "dns-tcp"


def test_dns_hostile_messages() -> None:
    loop = bytes.fromhex("1234 8180 0001 0000 0000 0000") + b"\xc0\x0c\x00\x01\x00\x01"  # a pointer to itself
    assert not looks_like_dns(loop)
    rng = random.Random(3)
    q = dns.message.make_query("a.example", "A").to_wire()
    run = Layer()
    for i in range(300):
        junk = bytearray(q)
        for _ in range(rng.randrange(1, 6)):
            junk[rng.randrange(len(junk))] = rng.randrange(256)
        run.layer.feed_datagram(udp(("10.0.0.9", 40000 + i), ("10.0.0.1", 53), bytes(junk), i))
        run.layer.feed_datagram(udp(("10.0.0.1", 53), ("10.0.0.9", 40000 + i), bytes(junk) + rng.randbytes(9), i))
    run.layer.finish()
    assert all(e.event_type == "dns" for e in run.events)


def _aioquic_initials(version: int, sni: str = "files.example.org") -> list[bytes]:
    from aioquic.quic.configuration import QuicConfiguration
    from aioquic.quic.connection import QuicConnection

    cfg = QuicConfiguration(is_client=True, alpn_protocols=["h3"], server_name=sni, supported_versions=[version])
    conn = QuicConnection(configuration=cfg)
    conn.connect(("10.0.0.1", 443), now=0.0)
    return [d for d, _ in conn.datagrams_to_send(now=0.0)]


@pytest.mark.parametrize("version", [0x00000001, 0x6B3343CF])
def test_quic_initial_gives_sni_alpn_ja4(version: int) -> None:
    dgrams = _aioquic_initials(version)
    p = long_packets(dgrams[0])[0]
    plain = decrypt_initial(dgrams[0], p, initial_keys(p.dcid, version))
    assert plain is not None and crypto_frames(plain)
    run = Layer()
    cli, srv = ("10.0.0.5", 50000), ("10.0.0.1", 443)
    for i, d in enumerate(dgrams):
        run.layer.feed_datagram(udp(cli, srv, d, 1000 + i))
    (ev,) = run.events
    f = ev.fields
    assert ev.event_type == "quic" and f["sni"] == "files.example.org" and f["alpn"] == ["h3"]
    assert f["version"] == ("1" if version == 1 else "2") and str(f["ja4"]).startswith("q13d")
    assert str(f["ja4"])[8:10] == "h3"


def test_rfc9001_appendix_a_client_initial_keys() -> None:
    """RFC 9001 A.1 (v1) and RFC 9369 A.1 (v2) test vectors for DCID 0x8394c8f03e515708."""
    dcid = bytes.fromhex("8394c8f03e515708")
    key, iv, hp = initial_keys(dcid, 1)
    assert (key.hex(), iv.hex(), hp.hex()) == ("1f369613dd76d5467730efcbe3b1a22d", "fa044b2f42a3fd3b46fb255c",
                                               "9f50449e04a0e810283a1e9933adedd2")
    key, iv, hp = initial_keys(dcid, 0x6B3343CF)
    assert (key.hex(), iv.hex(), hp.hex()) == ("8b1a0bc121284290a29e0971b5cd045d", "91f73e2351d8fa91660e909f",
                                               "45b95e15235d6f45a6b19cbcb0294ba9")


def test_quic_garbage_and_truncation() -> None:
    dgram = _aioquic_initials(1)[0]
    rng = random.Random(1)
    for i in range(100):
        bad = bytearray(dgram)
        for _ in range(rng.randrange(1, 4)):
            bad[rng.randrange(len(bad))] ^= 0xFF
        flow = make_flow(sport=443)
        parser = QuicParser(flow, type("Ctx", (), {"limits": QuicLimits(), "emit_event": lambda *a, **k: None})())
        parser.feed_datagram(udp(("10.0.0.5", 50000 + i), ("10.0.0.1", 443), bytes(bad[:rng.randrange(1, len(bad))]),
                                 i), C)


def test_quic_client_hello_over_several_packets_in_any_order() -> None:
    from aioquic.quic.configuration import QuicConfiguration
    from aioquic.quic.connection import QuicConnection

    alpns = [f"x-proto-{i:03d}-" + "a" * 40 for i in range(60)]  # a ClientHello of ~3 KB: 3 Initials
    cfg = QuicConfiguration(is_client=True, alpn_protocols=["h3", *alpns], server_name="big.example.org")
    conn = QuicConnection(configuration=cfg)
    conn.connect(("10.0.0.1", 443), now=0.0)
    dgrams = [d for d, _ in conn.datagrams_to_send(now=0.0)]
    assert len(dgrams) >= 2
    run = Layer()
    cli, srv = ("10.0.0.5", 50001), ("10.0.0.1", 443)
    for i, d in enumerate(reversed(dgrams)):
        run.layer.feed_datagram(udp(cli, srv, d, 1000 + i))
    (ev,) = run.events
    assert ev.fields["sni"] == "big.example.org" and ev.fields["alpn"][:2] == ["h3", alpns[0]]
