"""Real clients and servers between network namespaces, captured with tcpdump, read by
``tapsift read``: what crossed the wire must come out (objects by MD5, metadata by value), and
the TLS fingerprints must equal the reference tools' (tshark's JA3/JA3S, ja4plus's JA4).

Peers: curl (HTTP/2 prior knowledge and h2c upgrade) against an ``h2`` server; ``wsproto``
client and server; imaplib/poplib against minimal servers (tests/reassembly/servers.py);
``openssl s_client``/``s_server`` (TLS 1.2 and 1.3); dnspython against a dnspython-made
server; an ``aioquic`` client. Needs root (skipped otherwise).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.reassembly import servers as SV
from tests.reassembly.peers import PY, Peers, unavailable

pytestmark = [pytest.mark.root, pytest.mark.slow]
TAPSIFT = Path(sys.executable).parent / "tapsift"


@pytest.fixture(scope="module")
def peers_ok() -> None:
    why = unavailable()
    if why:
        pytest.skip(why)


def md5(b: bytes) -> str:
    return hashlib.md5(b).hexdigest()


def read(pcap: Path) -> list[dict[str, Any]]:
    p = subprocess.run([str(TAPSIFT), "read", str(pcap), "--eve", "-", "-q"], capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0, p.stderr
    return [json.loads(line) for line in p.stdout.splitlines()]


def files(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {e["fileinfo"]["md5"]: e for e in events if e["event_type"] == "fileinfo"}


def _server(p: Peers, kind: str, port: int, udp: bool = False) -> None:
    p.server(PY, "-m", "tests.reassembly.servers", kind, str(port))
    p.wait_port(port, udp=udp)


def test_http2_prior_knowledge_and_h2c_upgrade(peers_ok: None, tmp_path: Path) -> None:
    up = tmp_path / "cards.csv"
    up.write_bytes(SV.UPLOAD)
    with Peers() as p:
        _server(p, "h2", 8080)
        base = f"http://{p.server_ip}:8080"
        with p.capture(tmp_path / "h2.pcap") as pcap:
            for args in (["--http2-prior-knowledge", f"{base}/report.pdf"],
                         ["--http2", "--compressed", f"{base}/notes.txt"],  # HTTP/1.1 Upgrade: h2c
                         ["--http2-prior-knowledge", "-F", f"file=@{up};type=text/csv", f"{base}/upload"]):
                r = p.client("curl", "-sS", "-o", "/dev/null", "-H", "Host: files.example.org", *args)
                assert r.returncode == 0, r.stderr
    got = files(read(pcap))
    pdf = got[md5(SV.PDF)]
    assert pdf["app_proto"] == "http" and pdf["http"]["url"] == "/report.pdf" and pdf["http"]["status"] == 200
    assert pdf["fileinfo"]["filename"] == "Q3 report.pdf" and pdf["tapsift"]["meta"]["http_version"] == "2"
    notes = got[md5(SV.NOTES)]  # gzip-decoded, answered on stream 1 after the upgrade
    assert notes["http"]["url"] == "/notes.txt" and notes["tapsift"]["meta"]["http2_stream"] == "1"
    assert notes["http"]["hostname"] == "files.example.org"
    upload = got[md5(SV.UPLOAD)]
    assert upload["tapsift"]["direction"] == "upload" and upload["fileinfo"]["filename"] == "cards.csv"


def test_websocket_messages(peers_ok: None, tmp_path: Path) -> None:
    with Peers() as p:
        _server(p, "ws", 8081)
        with p.capture(tmp_path / "ws.pcap") as pcap:
            r = p.client(PY, "-m", "tests.reassembly.servers", "ws-client", p.server_ip, "8081")
            assert r.returncode == 0, r.stderr
    events = read(pcap)
    got = files(events)
    text = got[md5(SV.WS_TEXT.encode())]
    assert text["app_proto"] == "websocket" and text["tapsift"]["declared_mime"] == "text/plain"
    assert text["websocket"]["url"] == "/socket?room=7" and text["tapsift"]["direction"] == "upload"
    binary = got[md5(SV.WS_BINARY)]
    assert binary["tapsift"]["meta"]["websocket_compressed"] == "1" and binary["tapsift"]["direction"] == "download"
    joined = got[md5("\n".join([*SV.WS_SMALL, "bye"]).encode())]
    assert joined["tapsift"]["kind"] == "messages"


def test_imap_and_pop3(peers_ok: None, tmp_path: Path) -> None:
    with Peers() as p:
        _server(p, "imap", 1143)
        _server(p, "pop3", 1110)
        with p.capture(tmp_path / "mail.pcap") as pcap:
            for kind, port in (("imap-client", "1143"), ("pop3-client", "1110")):
                r = p.client(PY, "-m", "tests.reassembly.servers", kind, p.server_ip, port)
                assert r.returncode == 0, r.stderr
    events = read(pcap)
    got = files(events)
    by = {(e["app_proto"], e["tapsift"]["kind"], e["fileinfo"]["md5"]) for e in events if e["event_type"] == "fileinfo"}
    for n in (1, 2):
        assert ("imap", "message", md5(SV.mail(n))) in by and ("imap", "part", md5(SV.attachment(n))) in by
        assert ("pop3", "message", md5(SV.mail(n))) in by and ("pop3", "part", md5(SV.attachment(n))) in by
    assert ("imap", "message", md5(SV.mail(7))) in by  # APPEND
    assert got[md5(SV.mail(7))]["tapsift"]["direction"] == "upload"  # only IMAP carries message 7
    assert ("imap", "part", md5(SV.attachment(3))) in by  # BODY[2], base64-decoded
    partial = [e for e in events if e.get("tapsift", {}).get("meta", {}).get("imap_item") == "BODY[]<0>"]
    assert partial and "partial" in partial[0]["tapsift"]["truncated"]
    top = [e for e in events if e.get("tapsift", {}).get("meta", {}).get("pop3_command") == "TOP"
           and e["tapsift"]["kind"] == "message"]
    assert top and top[0]["fileinfo"]["state"] == "TRUNCATED"
    assert {e["email"]["subject"] for e in events if e.get("email")} >= {"plan 1", "plan 2", "plan 7"}


def _cert(tmp: Path) -> tuple[Path, Path]:
    key, cert = tmp / "key.pem", tmp / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "30", "-subj", "/C=US/O=Tapsift Test/CN=files.example.org", "-addext",
                    "subjectAltName=DNS:files.example.org,DNS:www.example.org"], check=True, capture_output=True)
    return key, cert


def _tshark(pcap: Path, *fields: str) -> list[list[str]]:
    out = subprocess.run(["tshark", "-r", str(pcap), "-d", "tcp.port==4433,tls", "-T", "fields",
                          *(a for f in fields for a in ("-e", f))], capture_output=True, text=True, check=True).stdout
    return [line.split("\t") for line in out.splitlines() if line.strip("\t ")]


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is the JA3 reference")
@pytest.mark.parametrize("version", ["-tls1_2", "-tls1_3"])
def test_tls_metadata_matches_tshark_and_ja4plus(peers_ok: None, tmp_path: Path, version: str) -> None:
    key, cert = _cert(tmp_path)
    with Peers() as p:
        p.server("openssl", "s_server", "-accept", "4433", "-cert", str(cert), "-key", str(key), "-www", version)
        p.wait_port(4433)
        with p.capture(tmp_path / "tls.pcap") as pcap:
            r = p.client("openssl", "s_client", "-connect", f"{p.server_ip}:4433", "-servername",
                         "files.example.org", "-alpn", "h2,http/1.1", input=b"GET / HTTP/1.0\r\n\r\n", timeout=30)
            assert r.returncode == 0, r.stderr
    (tls,) = [e["tls"] for e in read(pcap) if e["event_type"] == "tls"]
    ref = _tshark(pcap, "tls.handshake.ja3", "tls.handshake.ja3_full", "tls.handshake.ja3s",
                  "tls.handshake.ja3s_full")
    ja3 = next(r for r in ref if r[0])
    ja3s = next(r for r in ref if len(r) > 2 and r[2])
    assert (tls["ja3"]["hash"], tls["ja3"]["string"]) == (ja3[0], ja3[1])
    assert (tls["ja3s"]["hash"], tls["ja3s"]["string"]) == (ja3s[2], ja3s[3])
    j4 = subprocess.run([PY, "-m", "ja4plus.cli", "--format", "json", "--types", "ja4", "analyze", str(pcap)],
                        capture_output=True, text=True, check=True).stdout
    assert tls["ja4"] == json.loads(j4.splitlines()[0])["fingerprint"]
    assert tls["sni"] == "files.example.org" and tls["client_alpns"] == ["h2", "http/1.1"]
    if version == "-tls1_2":
        assert tls["version"] == "TLS 1.2" and tls["subject"] == "C=US, O=Tapsift Test, CN=files.example.org"
        assert tls["subjectaltname"] == ["files.example.org", "www.example.org"]
        der = subprocess.run(["openssl", "x509", "-in", str(cert), "-outform", "DER"], capture_output=True,
                             check=True).stdout
        sha1 = hashlib.sha1(der).hexdigest()
        assert tls["fingerprint"] == ":".join(sha1[i:i + 2] for i in range(0, 40, 2))
    else:
        assert tls["version"] == "TLS 1.3" and tls["certificate_encrypted"] is True and "subject" not in tls


def test_dns_udp_and_tcp(peers_ok: None, tmp_path: Path) -> None:
    code = ("import dns.message, dns.query, sys; q = dns.message.make_query('www.dropbox.com', 'A');"
            "dns.query.udp(q, sys.argv[1], port=5300, timeout=5); dns.query.tcp(q, sys.argv[1], port=5300, timeout=5)")
    with Peers() as p:
        _server(p, "dns", 5300, udp=True)
        with p.capture(tmp_path / "dns.pcap") as pcap:
            r = p.client(PY, "-c", code, p.server_ip)
            assert r.returncode == 0, r.stderr
    dns = [e["dns"] for e in read(pcap) if e["event_type"] == "dns"]
    assert [d["type"] for d in dns] == ["query", "answer", "query", "answer"]
    assert all(d["rrname"] == "www.dropbox.com" for d in dns)
    assert dns[1]["grouped"] == {"CNAME": ["edge.www.dropbox.com"], "A": ["192.0.2.44"]}


def test_quic_initial_from_aioquic(peers_ok: None, tmp_path: Path) -> None:
    code = ("import asyncio, sys\n"
            "from aioquic.asyncio import connect\n"
            "from aioquic.quic.configuration import QuicConfiguration\n"
            "async def main():\n"
            "    cfg = QuicConfiguration(is_client=True, alpn_protocols=['h3'], server_name='files.example.org',"
            " idle_timeout=1.0)\n"
            "    try:\n"
            "        async with connect(sys.argv[1], 4434, configuration=cfg, wait_connected=True):\n"
            "            pass\n"
            "    except Exception:\n"
            "        pass\n"
            "asyncio.run(asyncio.wait_for(main(), 3))\n")
    with Peers() as p, p.capture(tmp_path / "quic.pcap") as pcap:
        p.client(PY, "-c", code, p.server_ip, timeout=30)  # no server: the Initials are what matters
    (q,) = [e["quic"] for e in read(pcap) if e["event_type"] == "quic"]
    assert q["sni"] == "files.example.org" and q["alpn"] == ["h3"] and q["version"] == "1"
    j4 = subprocess.run([PY, "-m", "ja4plus.cli", "--format", "json", "--types", "ja4", "analyze", str(pcap)],
                        capture_output=True, text=True, check=True).stdout
    assert q["ja4"] == json.loads(j4.splitlines()[0])["fingerprint"]
