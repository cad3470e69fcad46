"""The same document raises the same alert whichever carrier took it out: an HTTP upload, an
SMTP attachment, an FTP STOR (the policy and the inspectors do not care about the carrier)."""

from __future__ import annotations

import json
import subprocess
import sys
from email.message import EmailMessage
from pathlib import Path

from tools import synth as S

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DOC = S.docx_document("Q3 roadmap", ("Milestones for Project Nightjar.", "夜鹰计划：第三季度里程碑。"))
CLIENT = "10.20.7.7"  # zone "office" in policies/sample.yaml


def _http(t: S.Trace) -> None:
    body, ctype = S.multipart_body(files=[("file", "roadmap.docx", "application/octet-stream", DOC)])
    s = t.session((CLIENT, 40100), ("198.51.100.10", 80), at=0.0)
    s.http(S.http_request("POST", "/upload", "share.example.net", body=body, content_type=ctype),
           S.http_response(200, b"ok", content_type="text/plain"))
    s.close()


def _smtp(t: S.Trace) -> None:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "alice@corp.example", "bob@example.net", "plan"
    msg.set_content("see attached")
    msg.add_attachment(DOC, maintype="application", subtype="octet-stream", filename="roadmap.docx")
    data = msg.as_bytes().replace(b"\n", b"\r\n")
    s = t.session((CLIENT, 40101), ("198.51.100.11", 25), at=1.0)
    s.server_send(b"220 mx.example.net ESMTP\r\n")
    s.client_send(b"EHLO pc7.corp.example\r\n")
    s.server_send(b"250-mx.example.net\r\n250 8BITMIME\r\n")
    s.client_send(b"MAIL FROM:<alice@corp.example>\r\n")
    s.server_send(b"250 ok\r\n")
    s.client_send(b"RCPT TO:<bob@example.net>\r\n")
    s.server_send(b"250 ok\r\n")
    s.client_send(b"DATA\r\n")
    s.server_send(b"354 go ahead\r\n")
    s.client_send(data.replace(b"\r\n.", b"\r\n..") + b"\r\n.\r\n")
    s.server_send(b"250 queued\r\n")
    s.client_send(b"QUIT\r\n")
    s.server_send(b"221 bye\r\n")
    s.close()


def _ftp(t: S.Trace) -> None:
    ctl = t.session((CLIENT, 40102), ("198.51.100.12", 21), at=2.0)
    ctl.server_send(b"220 ftp ready\r\n")
    ctl.client_send(b"USER alice\r\n")
    ctl.server_send(b"331 password\r\n")
    ctl.client_send(b"PASS secret\r\n")
    ctl.server_send(b"230 ok\r\n")
    ctl.client_send(b"TYPE I\r\n")
    ctl.server_send(b"200 ok\r\n")
    ctl.client_send(b"PASV\r\n")
    ctl.server_send(b"227 Entering Passive Mode (198,51,100,12,195,80)\r\n")  # port 50000
    ctl.client_send(b"STOR roadmap.docx\r\n")
    ctl.server_send(b"150 ok\r\n")
    data = t.session((CLIENT, 40103), ("198.51.100.12", 50000), at=2.5)
    data.client_send(DOC)
    data.close()
    ctl.server_send(b"226 done\r\n")
    ctl.close()


def test_same_alert_over_http_smtp_and_ftp(tmp_path: Path) -> None:
    t = S.Trace(seed=21)
    _http(t)
    _smtp(t)
    _ftp(t)
    pcap = tmp_path / "carriers.pcap"
    t.write(pcap)
    p = subprocess.run([str(BIN / "tapsift"), "read", str(pcap), "--policy", str(ROOT / "policies" / "sample.yaml"),
                        "--eve", "-", "-q"], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    events = [json.loads(line) for line in p.stdout.splitlines()]
    alerts = [e for e in events if e["event_type"] == "alert"]
    by_proto = {e["app_proto"]: e for e in alerts}
    assert set(by_proto) == {"http", "smtp", "ftp-data"}, [(e["app_proto"], e["alert"]["signature"]) for e in alerts]
    for proto, e in by_proto.items():
        assert e["alert"]["signature"] == "office-uploads/confidential-leak", proto
        assert e["fileinfo"]["filename"] == "roadmap.docx", proto
        assert {f["detail"]["keyword"] for f in e["tapsift"]["findings"]} == {"Project Nightjar", "夜鹰计划"}, proto
    assert len({e["fileinfo"]["md5"] for e in alerts}) == 1  # the very same file each time
    assert by_proto["smtp"]["smtp"]["mail_from"] == "alice@corp.example"
