"""Alerts for the console tests: a small office's hits, one image hit and one hit with hostile evidence."""

from __future__ import annotations

import io
import ipaddress
import shutil
from pathlib import Path

from PIL import Image, ImageDraw

from appliance.model import Alert, ContentObject, Direction, Evidence, Finding, Flow, FlowKey, FlowRef, Severity
from appliance.store import AlertStore
from reassembly.objects import flow_ref

BASE_TS = 1_714_564_800_000_000_000  # 2024-05-01 12:00 UTC
SAMPLE_POLICY = Path(__file__).resolve().parents[2] / "policies" / "sample.yaml"

XSS_SNIPPET = 'Quarterly <script>alert(1)</script> notes <img src=x onerror=alert(2)> Project Nightjar plan'
XSS_URL = '/upload?name=<script>alert(1)</script>&x="><img src=x onerror=alert(2)>'


def _flow(i: int, client: str, server: str, client_zone: str, server_zone: str,
          direction: Direction = Direction.TO_SERVER) -> FlowRef:
    """The `FlowRef` the sensor records for an object going *direction* (src/dest follow the transfer)."""
    cip, sip = ipaddress.ip_address(client).packed, ipaddress.ip_address(server).packed
    flow = Flow(f"C{i:04d}", 900_000 + i, FlowKey.of(cip, 40_000 + i, sip, 80, 6), cip, 40_000 + i, sip, 80,
                "eth1", 0)
    flow.src_zone, flow.dst_zone = client_zone, server_zone
    return flow_ref(flow, direction)


def _obj(i: int, flow: FlowRef, *, host: str, url: str, filename: str = "", mime: str = "text/html",
         direction: Direction = Direction.TO_SERVER, method: str = "POST", size: int = 4096,
         truncated: tuple[str, ...] = (), missing: int = 0) -> ContentObject:
    return ContentObject(id=f"F{i:04d}", source="http", direction=direction, flow=flow, ts_ns=BASE_TS + i,
                         size=size, md5=f"{i:032x}", sha256=f"{i:064x}", sniffed_mime=mime, declared_mime=mime,
                         filename=filename, url=url, host=host, method=method, status=200,
                         user_agent="Mozilla/5.0 (X11; Linux x86_64)", truncated=truncated, missing_bytes=missing)


def _kw(i: int, rule: str, keyword: str, snippet: str, weight: float, start: int = 120) -> Finding:
    s = snippet.find(keyword)
    s = max(s, 0)
    return Finding("keyword", f"F{i:04d}", rule, weight, (Evidence(start + s, start + s + len(keyword), snippet),),
                   {"list": rule, "keyword": keyword, "count": "1", "mode": "substring"})


def demo_alerts(evidence_dir: Path | None = None) -> list[tuple[Alert, ContentObject]]:
    """About 30 hits over two days, from the sample policy's rules and lists."""
    out: list[tuple[Alert, ContentObject]] = []
    hosts = ["files.example.net", "paste.example.org", "mail.example.com", "casino.example.biz", "news.example.com"]
    for i in range(1, 31):
        ts = BASE_TS - (30 - i) * 5_400_000_000_000 // 3  # spread over ~2 days
        host = hosts[i % len(hosts)]
        client = f"10.20.{(i % 3) * 10 + 1}.{i + 10}"
        if i % 5 == 0:
            flow = _flow(i, client, "198.51.100.7", "office", "any", Direction.TO_CLIENT)
            snippet = "Welcome bonus: 网络赌场 百家乐 online casino sports betting, 充值 返水 every day"
            f = (_kw(i, "gambling", "online casino", snippet, 10.0),)
            alert = Alert(f"A{i:05d}", ts, "office-web-content", "gambling-content", Severity.MEDIUM, "fraud",
                          f"F{i:04d}", flow, f, "office", "any")
            obj = _obj(i, flow, host="casino.example.biz", url=f"/promo/{i}", direction=Direction.TO_CLIENT,
                       method="GET")
        elif i % 3 == 0:
            flow = _flow(i, client, "203.0.113.40", "office", "any")
            snippet = "name,id\nZhang Wei,11010519491231002X\nLi Na,440308198801014522\n"
            f = (Finding("dataclass", f"F{i:04d}", "prc-id", 12.0,
                         (Evidence(20, 38, "Zhang Wei,**************002X\nLi Na,"),),
                         {"list": "prc-id", "count": "6"}),)
            alert = Alert(f"A{i:05d}", ts, "office-uploads", "personal-data-leak", Severity.HIGH, "data-leak/pii",
                          f"F{i:04d}", flow, f, "office", "any")
            obj = _obj(i, flow, host=host, url="/upload", filename=f"customers-{i}.csv", mime="text/csv")
        else:
            flow = _flow(i, client, "192.0.2.80", "office", "any")
            snippet = f"Minutes {i}: the Project Nightjar roadmap slips to Q3; CONFIDENTIAL draft"
            f = (_kw(i, "confidential-projects", "Project Nightjar", snippet, 10.0),)
            alert = Alert(f"A{i:05d}", ts, "office-uploads", "confidential-leak", Severity.HIGH,
                          "data-leak/confidential", f"F{i:04d}", flow, f, "office", "any",
                          complete=i % 7 != 0)
            obj = _obj(i, flow, host=host, url=f"/share/{i}", filename=f"minutes-{i}.docx",
                       mime="application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                       truncated=("body_limit",) if i % 7 == 0 else (), missing=1200 if i % 7 == 0 else 0)
        out.append((alert, obj))
    # An image hit: a perceptual match with a thumbnail the sensor wrote to the evidence directory.
    flow = _flow(40, "10.20.1.99", "203.0.113.9", "office", "any", Direction.TO_CLIENT)
    ref = ""
    if evidence_dir is not None:
        (evidence_dir / "thumbs").mkdir(parents=True, exist_ok=True)
        im = Image.new("RGB", (160, 120), (30, 60, 120))
        d = ImageDraw.Draw(im)
        d.rectangle((20, 20, 140, 100), outline=(250, 200, 0), width=4)
        d.text((40, 50), "LOGO", fill=(255, 255, 255))
        buf = io.BytesIO()
        im.save(buf, "JPEG")
        (evidence_dir / "thumbs" / "F0040.jpg").write_bytes(buf.getvalue())
        ref = "thumbs/F0040.jpg"
    f = (Finding("perceptual", "F0040", "banned-logos", 1.0, (Evidence(0, 0, "", ref),),
                 {"list": "banned-logos", "algorithm": "phash", "distance": "4"}),)
    out.append((Alert("A00040", BASE_TS + 60 * 10**9, "office-web-content", "prohibited-content", Severity.CRITICAL,
                      "prohibited", "F0040", flow, f, "office", "any"),
                _obj(40, flow, host="img.example.org", url="/i/banner.jpg", filename="banner.jpg", mime="image/jpeg",
                     direction=Direction.TO_CLIENT, method="GET")))
    return out


def hostile_alert() -> tuple[Alert, ContentObject]:
    """A hit whose evidence, URL, file name and host carry script payloads."""
    flow = _flow(66, "10.20.1.66", "192.0.2.66", "office", "any")
    f = (Finding("keyword", "F0066", "confidential-projects", 10.0,
                 (Evidence(500, 516, XSS_SNIPPET),),
                 {"list": "confidential-projects", "keyword": "Project Nightjar", "note": "<b>bold</b>"}),)
    alert = Alert("A00066", BASE_TS + 120 * 10**9, "office-uploads", "confidential-leak", Severity.HIGH,
                  "data-leak/confidential", "F0066", flow, f, "office", "any")
    obj = _obj(66, flow, host="evil.example<script>alert(3)</script>", url=XSS_URL,
               filename='"><svg onload=alert(4)>.docx')
    return alert, obj


def fill_store(path: str | Path, evidence_dir: Path | None = None) -> int:
    """Create an alert store at *path* (or a DSN) with the demo hits and the hostile one; returns how many."""
    with AlertStore(path) as store:
        return store.add_many([*demo_alerts(evidence_dir), hostile_alert()])


def copy_policy(dest: Path) -> Path:
    shutil.copyfile(SAMPLE_POLICY, dest)
    return dest
