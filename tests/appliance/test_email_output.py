"""E-mail notifications through a real SMTP server (aiosmtpd) with STARTTLS: delivered, filtered, no header
injection, spooled while the server is down."""

from __future__ import annotations

import email
import socket
import ssl
import subprocess
from email.policy import default
from pathlib import Path

import pytest

from appliance.outputs.email import EmailOutput


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("smtp")
    crt, key = d / "smtp.crt", d / "smtp.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(crt)], check=True, capture_output=True)
    return crt, key


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes, bool]] = []

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        self.messages.append((envelope.mail_from, envelope.rcpt_tos, envelope.original_content or envelope.content,
                              session.ssl is not None))
        return "250 OK"


def _server(port: int, cert: tuple[Path, Path], inbox: _Inbox):  # type: ignore[no-untyped-def]
    from aiosmtpd.controller import Controller

    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(cert[0]), str(cert[1]))
    c = Controller(inbox, hostname="127.0.0.1", port=port, tls_context=ctx, require_starttls=True)
    c.start()
    return c


def _record(i: int, severity: int, host: str = "paste.example.org") -> dict:  # type: ignore[type-arg]
    return {"timestamp": "2026-01-07T10:00:00.000000+0000", "event_type": "alert", "src_ip": "10.20.1.5",
            "src_port": 40000, "dest_ip": "203.0.113.9", "dest_port": 80, "proto": "TCP",
            "alert": {"signature": "office-uploads/confidential-leak", "category": "data-leak", "severity": severity},
            "http": {"hostname": host, "url": "/api/paste", "http_method": "POST"},
            "tapsift": {"alert_id": f"A{i}", "src_zone": "office", "dst_zone": "any", "findings": []}}


def test_starttls_delivery_filtering_and_spooling(tmp_path: Path, cert: tuple[Path, Path]) -> None:
    port = _free_port()
    out = EmailOutput("127.0.0.1", port, "tapsift@example.com", ["soc@example.com", "lead@example.com"],
                      tmp_path / "spool", ca_file=str(cert[0]), min_severity=2, backoff_min=0.05, backoff_max=0.2)
    out.send(_record(1, 1))
    out.send(_record(2, 4))  # below the mail threshold: not mailed
    out.send(_record(3, 2, host="evil.example\r\nBcc: attacker@example.net"))
    assert out.pump() == 0 and out.errors == 1 and len(out.spool) == 2  # no server yet: kept in the spool
    inbox = _Inbox()
    ctl = _server(port, cert, inbox)
    try:
        assert out.flush(10)
    finally:
        ctl.stop()
    out.close(0)
    assert (out.delivered, out.skipped, out.rejected) == (2, 1, 0)
    assert [m[1] for m in inbox.messages] == [["soc@example.com", "lead@example.com"]] * 2
    assert all(m[3] for m in inbox.messages)  # every message went over STARTTLS
    first = email.message_from_bytes(inbox.messages[0][2], policy=default)
    assert first["Subject"] == "[tapsift CRITICAL] data-leak: office-uploads/confidential-leak (A1)"
    assert "10.20.1.5:40000" in first.get_content()
    third = email.message_from_bytes(inbox.messages[1][2], policy=default)
    assert third["Bcc"] is None and "attacker@example.net" in third.get_content()  # text, never a header


def test_a_server_without_starttls_is_refused(tmp_path: Path) -> None:
    from aiosmtpd.controller import Controller

    port = _free_port()
    ctl = Controller(_Inbox(), hostname="127.0.0.1", port=port)
    ctl.start()
    try:
        out = EmailOutput("127.0.0.1", port, "t@example.com", ["soc@example.com"], tmp_path / "s")
        out.send(_record(1, 1))
        assert out.pump() == 0 and "STARTTLS" in out.last_error
        out.close(0)
    finally:
        ctl.stop()
