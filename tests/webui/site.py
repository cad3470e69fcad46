"""A small office's traffic for the console's workflows: a capture made with tools/synth.py, read by the real
sensor (`tapsift read`) into an alert store, a content store and a packet store.

What crosses the wire (sample policy, office 10.20.0.0/16 → the Internet):

- 10.20.1.21 uploads ``plan.txt`` (夜鹰计划 …) to paste.example.org → confidential-leak (high);
- 10.20.1.22 reads a casino page (网络赌场 百家乐 online casino …) → gambling-content (fraud);
- 10.20.1.23 reads the company news (公司年会通知 …) and uploads a quarterly CSV: no alert — found only by
  content search (a policy that adds 年会 to the gambling list would alert on it: the back-test's case);
- 10.20.1.66 posts to a host whose URL, file name and body carry script payloads (and 夜鹰计划) → an alert
  whose every value is hostile;
- ``days`` > 1 repeats the day (other times, same content) for back-test benchmarks.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tools import synth as S

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_POLICY = ROOT / "policies" / "sample.yaml"
START = 1_714_557_600.0  # 2024-05-01 10:00 UTC
PLAN = ("第三季度路线图：夜鹰计划 按期推进，请勿外传。\n"
        "Milestones for the third quarter, internal only.\n" * 3).encode()
CASINO = ("<html><head><title>大奖</title></head><body><h1>网络赌场 欢迎您</h1><p>百家乐 六合彩 online casino, "
          "sports betting 每天 充值 返水 百分之十</p></body></html>").encode()
NEWS = ("<html><body><h1>公司年会通知</h1><p>本周五下午三点在礼堂举行公司年会，请各部门准时参加。"
        "Annual party on Friday at 3 pm in the hall.</p></body></html>").encode()
CSV = "季度,收入\nQ1,1200\nQ2,1350\n".encode()
XSS_HOST = "evil.example"
XSS_PATH = '/up?n=<script>alert(1)</script>&x="><img src=x onerror=alert(2)>'
XSS_NAME = '<svg onload=alert(4)>.txt'
XSS_BODY = ("report <script>alert(5)</script> <img src=x onerror=alert(6)> 夜鹰计划 end\n").encode()


def _upload(s: S.Session, host: str, path: str, body: bytes, ctype: str, filename: str | None = None) -> None:
    if filename is not None:
        body, ctype = S.multipart_body(files=[("file", filename, ctype, body)])
    s.http(S.http_request("POST", path, host, body=body, content_type=ctype), S.http_response(200, b"ok"))


def build(pcap: Path, days: int = 1) -> int:
    """Write the capture; returns its number of frames."""
    t = S.Trace(seed=2024, start=START)
    for day in range(days):
        at = day * 86400.0
        s = t.session(("10.20.1.21", 41001 + day), ("203.0.113.10", 80), at=at + 60)
        _upload(s, "paste.example.org", "/api/paste", PLAN, "text/plain; charset=utf-8", "plan.txt")
        s.close()
        s = t.session(("10.20.1.22", 41101 + day), ("198.51.100.7", 80), at=at + 120)
        s.http(S.http_request("GET", "/promo", "casino.example.biz"), S.http_response(200, CASINO))
        s.close()
        s = t.session(("10.20.1.23", 41201 + day), ("203.0.113.20", 80), at=at + 180)
        s.http(S.http_request("GET", "/news/party", "intranet-news.example.com"), S.http_response(200, NEWS))
        _upload(s, "intranet-news.example.com", "/upload", CSV, "text/csv", "q-report.csv")
        s.close()
        s = t.session(("10.20.1.66", 41301 + day), ("192.0.2.66", 80), at=at + 240)
        _upload(s, XSS_HOST, XSS_PATH, XSS_BODY, "text/plain", XSS_NAME)
        s.close()
    return t.write(pcap)


def read(pcap: Path, policy: Path, alerts: str, content: str, packets: Path | None, eve: Path) -> None:
    """Run the sensor over *pcap* (a subprocess: `tapsift read` tunes the process's garbage collector)."""
    cmd = [sys.executable, "-m", "appliance.cli", "read", str(pcap), "--policy", str(policy), "--store", alerts,
           "--content-db", content, "--eve", str(eve), "-q"]
    if packets is not None:
        cmd += ["--packet-store", str(packets)]
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    subprocess.run(cmd, check=True, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def policy_without_models(dest: Path) -> Path:
    """The sample policy without the text classifier's profile (no model in tests)."""
    text = SAMPLE_POLICY.read_text(encoding="utf-8")
    text = text.replace("profiles: [prohibited-content, gambling-content, hidden-links, fraud-text]",
                        "profiles: [prohibited-content, gambling-content, hidden-links]")
    dest.write_text(text, encoding="utf-8")
    return dest


def make_site(tmp: Path, alerts: str | None = None, content: str | None = None, days: int = 1) -> dict[str, str]:
    """The capture read into stores under *tmp* (or the given DSNs); returns their locations."""
    pcap = tmp / "office.pcap"
    build(pcap, days)
    policy = policy_without_models(tmp / "policy.yaml")
    alerts = alerts or str(tmp / "alerts.db")
    content = content or str(tmp / "content.db")
    read(pcap, policy, alerts, content, tmp / "packets", tmp / "eve.json")
    return {"pcap": str(pcap), "policy": str(policy), "alerts": alerts, "content": content,
            "packets": str(tmp / "packets")}
