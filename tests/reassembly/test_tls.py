"""TLS handshake metadata: published JA3/JA4 vectors, GREASE, fragmentation, certificates.

The JA3 vector is the one in Salesforce's JA3 README; the JA4 vector is FoxIO's worked example
(technical_details/JA4.md: ``t13d1516h2_8daaf6152771_e5627efa2ab1``). Real handshakes checked
against tshark and ja4plus are in test_carrier_peers.py.
"""

from __future__ import annotations

import datetime
import hashlib
import itertools
import random
import struct

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from appliance.model import Direction
from reassembly.tls_handshake import ja3_string, ja4, md5_hex, parse_hello
from tests.reassembly.applayer_run import Layer
from tests.reassembly.factories import make_flow

C, SV = Direction.TO_SERVER, Direction.TO_CLIENT


def _ext(t: int, data: bytes) -> bytes:
    return struct.pack("!HH", t, len(data)) + data


def _u16s(values: list[int], width: int = 2) -> bytes:
    body = b"".join(struct.pack("!H", v) for v in values)
    return len(body).to_bytes(width, "big") + body


def client_hello(version: int, ciphers: list[int], exts: list[tuple[int, bytes]]) -> bytes:
    """A ClientHello handshake message (type + 3-byte length + body)."""
    rng = random.Random(1)
    ext_bytes = b"".join(_ext(t, d) for t, d in exts)
    body = (struct.pack("!H", version) + rng.randbytes(32) + b"\x00" + _u16s(ciphers) + b"\x01\x00"
            + len(ext_bytes).to_bytes(2, "big") + ext_bytes)
    return b"\x01" + len(body).to_bytes(3, "big") + body


def sni(name: str) -> bytes:
    n = name.encode()
    return struct.pack("!HBH", len(n) + 3, 0, len(n)) + n


def alpn(*protos: str) -> bytes:
    body = b"".join(bytes([len(p)]) + p.encode() for p in protos)
    return len(body).to_bytes(2, "big") + body


def record(ctype: int, body: bytes, version: int = 0x0303) -> bytes:
    return struct.pack("!BHH", ctype, version, len(body)) + body


def test_ja3_readme_vector() -> None:
    hs = client_hello(769, [47, 53, 5, 10, 49161, 49162, 49171, 49172, 50, 56, 19, 4],
                      [(0, sni("example.com")), (10, _u16s([23, 24, 25])), (11, b"\x01\x00")])
    h = parse_hello(hs[4:], client=True)
    assert h is not None
    assert ja3_string(h) == "769,47-53-5-10-49161-49162-49171-49172-50-56-19-4,0-10-11,23-24-25,0"
    assert md5_hex(ja3_string(h)) == "ada70206e40642a3e4461f35503241d5"


FOXIO_CIPHERS = [0x002F, 0x0035, 0x009C, 0x009D, 0x1301, 0x1302, 0x1303, 0xC013, 0xC014, 0xC02B, 0xC02C, 0xC02F,
                 0xC030, 0xCCA8, 0xCCA9]
FOXIO_EXTS = [0x0005, 0x000A, 0x000B, 0x000D, 0x0012, 0x0015, 0x0017, 0x001B, 0x0023, 0x002B, 0x002D, 0x0033,
              0x4469, 0xFF01]
FOXIO_SIGS = [0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601]


def foxio_hello(grease: bool = False) -> bytes:
    rng = random.Random(7)
    exts: list[tuple[int, bytes]] = [(0x0000, sni("example.com")), (0x0010, alpn("h2", "http/1.1"))]
    for t in rng.sample(FOXIO_EXTS, len(FOXIO_EXTS)):  # wire order does not matter to JA4
        data = {0x000D: _u16s(FOXIO_SIGS), 0x002B: b"\x04\x03\x04\x03\x03", 0x000A: _u16s([29, 23]),
                0x000B: b"\x01\x00"}.get(t, b"")
        exts.append((t, data))
    ciphers = list(FOXIO_CIPHERS)
    if grease:
        ciphers.insert(0, 0x5A5A)
        exts.insert(0, (0x1A1A, b""))
        exts.append((0xFAFA, b"\x00"))
    return client_hello(0x0303, ciphers, exts)


@pytest.mark.parametrize("grease", [False, True])
def test_ja4_foxio_example(grease: bool) -> None:
    h = parse_hello(foxio_hello(grease)[4:], client=True)
    assert h is not None
    assert ja4(h) == "t13d1516h2_8daaf6152771_e5627efa2ab1"
    assert ja4(h, "q").startswith("q13d1516h2_")


def test_grease_does_not_change_ja3() -> None:
    a = parse_hello(foxio_hello(False)[4:], client=True)
    b = parse_hello(foxio_hello(True)[4:], client=True)
    assert a is not None and b is not None and ja3_string(a) == ja3_string(b)


def _cert() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example Org"),
                      x509.NameAttribute(NameOID.COMMON_NAME, "files.example.org")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(0x0123456789ABCDEF)
            .not_valid_before(datetime.datetime(2025, 1, 2, 3, 4, 5, tzinfo=datetime.UTC))
            .not_valid_after(datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("files.example.org"),
                                                        x509.DNSName("*.example.org")]), critical=False)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.DER)


def server_flight(der: bytes) -> bytes:
    rng = random.Random(2)
    sh = (struct.pack("!H", 0x0303) + rng.randbytes(32) + b"\x00" + struct.pack("!HB", 0xC02F, 0)
          + _u16s([]) )
    sh_msg = b"\x02" + len(sh).to_bytes(3, "big") + sh
    chain = len(der).to_bytes(3, "big") + der
    cert_msg = b"\x0b" + (len(chain) + 3).to_bytes(3, "big") + len(chain).to_bytes(3, "big") + chain
    done = b"\x0e\x00\x00\x00"
    flight = sh_msg + cert_msg + done
    # the flight split over records at odd places: messages span records
    cuts = [0, 30, 31, 200, len(flight)]
    return b"".join(record(22, flight[a:b]) for a, b in itertools.pairwise(cuts))


@pytest.mark.parametrize("piece", [0, 1, 7])
def test_fragmented_handshake_and_certificate(piece: int) -> None:
    der = _cert()
    hello = foxio_hello()
    recs = record(22, hello[:50], 0x0301) + record(22, hello[50:], 0x0301)  # the ClientHello over two records
    run = Layer()
    run.run([(C, recs), (SV, server_flight(der)), (C, record(20, b"\x01")), (SV, record(23, b"x" * 100))],
            flow=make_flow(sport=443), piece=piece)
    (ev,) = run.events
    f = ev.fields
    assert ev.event_type == "tls" and f["sni"] == "example.com" and f["ja4"] == "t13d1516h2_8daaf6152771_e5627efa2ab1"
    assert f["version"] == "TLS 1.2" and f["cipher_suite"] == "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
    assert f["subject"] == "C=US, O=Example Org, CN=files.example.org" and f["issuerdn"] == f["subject"]
    assert f["serial"] == "01:23:45:67:89:AB:CD:EF"
    assert f["notbefore"] == "2025-01-02T03:04:05" and f["notafter"] == "2026-01-02T03:04:05"
    sha1 = hashlib.sha1(der).hexdigest()
    assert f["fingerprint"] == ":".join(sha1[i:i + 2] for i in range(0, 40, 2))
    assert f["subjectaltname"] == ["files.example.org", "*.example.org"] and f["chain_length"] == 1
    assert f["client_alpns"] == ["h2", "http/1.1"] and "anomalies" not in f


def test_resumed_session_and_bad_records() -> None:
    rng = random.Random(3)
    sh = (struct.pack("!H", 0x0303) + rng.randbytes(32) + b"\x00" + struct.pack("!HB", 0xC02F, 0) + _u16s([]))
    run = Layer()
    run.run([(C, record(22, foxio_hello())), (SV, record(22, b"\x02" + len(sh).to_bytes(3, "big") + sh)
                                               + record(20, b"\x01"))], flow=make_flow(sport=443))
    assert run.events[0].fields["session_resumed"] is True
    run = Layer()
    run.run([(C, record(22, foxio_hello())), (SV, b"\x16\x03\x03\x00\x05HELLOHTTP/1.1 200 OK\r\n")],
            flow=make_flow(sport=443))
    assert run.events[0].fields["sni"] == "example.com"


def test_hostile_bytes_never_raise() -> None:
    rng = random.Random(4)
    hello = bytearray(record(22, foxio_hello()))
    for _ in range(300):
        bad = bytearray(hello)
        for _ in range(rng.randrange(1, 8)):
            bad[rng.randrange(5, len(bad))] = rng.randrange(256)
        run = Layer()
        run.run([(C, bytes(bad)), (SV, bytes(rng.randbytes(rng.randrange(1, 200))))], flow=make_flow(sport=443),
                piece=rng.choice([0, 5]))
        assert "applayer.parser_error" not in run.ended[0].anomalies
