#!/usr/bin/env python3
"""Write the demo capture: a small office's web traffic over a few minutes (deterministic).

    .venv/bin/python scripts/make_demo.py OUT.pcap [--seed N]

Also writes ``OUT.manifest.json``: every content object that crossed the wire (URL, filename,
direction, md5 of the decoded content). Traffic: intranet and public pages with CSS/JS and
drawn PNG/JPEG images, a PDF and a DOCX download, a gzip'd JSON API, a chunked page, a
multipart upload, a download interrupted and resumed with a 206, keep-alive, DNS/TLS/SSH noise
and one client on a tagged VLAN. Edit the tables (`SITES`, `PAGES`, `DOCUMENTS`, `UPLOADS`) to
plant other text; everything else follows from them.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import sys
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tools import synth as S


@dataclass(frozen=True)
class Site:
    host: str
    ip: str
    port: int = 80


@dataclass(frozen=True)
class Page:
    """An HTML page; ``images`` are (path, kind "png"/"jpeg", label)."""

    site: str
    path: str
    title: str
    paragraphs: tuple[str, ...]
    images: tuple[tuple[str, str, str], ...] = ()
    chunked: bool = False
    gzip: bool = True
    inject: str = ""
    """Raw HTML inserted before ``</body>`` (a compromised page's hidden link block)."""


@dataclass(frozen=True)
class Document:
    """A downloadable document (``kind``: pdf or docx)."""

    site: str
    path: str
    kind: str
    title: str
    paragraphs: tuple[str, ...]
    resumed: bool = False
    """Fetched as a 200 that the client aborts, then a 206 for the rest on a new connection."""
    compress: bool = True
    """PDF only: FlateDecode the page streams."""


@dataclass(frozen=True)
class Upload:
    """A multipart form upload of a document."""

    site: str
    path: str
    filename: str
    kind: str
    title: str
    paragraphs: tuple[str, ...]
    fields: tuple[tuple[str, str], ...] = field(default=())


SITES = {
    "intranet": Site("intranet.corp.example", "10.40.0.10"),
    "wiki": Site("wiki.corp.example", "10.40.0.11", 8080),
    "forum": Site("bbs.example.cn", "198.51.100.88"),
    "casino": Site("lucky-888.example.com", "203.0.113.188"),
    "paste": Site("paste.example.org", "192.0.2.99"),
    "webmail": Site("mail.example.net", "198.51.100.25"),
    "social": Site("photos.example.social", "203.0.113.150"),
    "ads": Site("fenlei.example.cn", "198.51.100.61"),
    "news": Site("news.example.com", "203.0.113.20"),
    "shop": Site("shop.example.net", "198.51.100.30"),
    "api": Site("api.example.org", "203.0.113.45"),
}

PAGES = [
    Page(
        "intranet",
        "/index.html",
        "Welcome to the intranet",
        (
            "The canteen is open from 11:30 to 14:00 this week.",
            "Please remember to lock your screen when you leave your desk.",
            "The quarterly all-hands meeting takes place on Thursday in room B2.",
        ),
        images=(("/img/banner.png", "png", "Intranet"), ("/img/team.jpg", "jpeg", "Team day")),
    ),
    Page(
        "intranet",
        "/hr/holidays.html",
        "Holiday calendar",
        (
            "Public holidays for the coming year are listed below.",
            "Requests for leave should be submitted two weeks in advance.",
        ),
        chunked=True,
    ),
    Page(
        "wiki",
        "/wiki/Printer_setup",
        "Printer setup",
        (
            "The second floor printer is called PRN-2F and supports duplex printing.",
            "Drivers are installed automatically on managed laptops.",
        ),
        images=(("/wiki/images/printer.png", "png", "PRN-2F"),),
    ),
    Page(
        "news",
        "/",
        "Morning headlines",
        (
            "Local weather: mild with some sunshine in the afternoon.",
            "The city council approved the new cycling lanes.",
            "Markets opened slightly higher on Tuesday.",
        ),
        images=(("/media/weather.jpg", "jpeg", "Weather"), ("/media/bikes.jpg", "jpeg", "Cycling lanes")),
    ),
    Page(
        "shop",
        "/products/office-chair",
        "Ergonomic office chair",
        ("Adjustable height, lumbar support and breathable mesh.", "Free delivery within five working days."),
        images=(("/img/chair.jpg", "jpeg", "Chair"), ("/img/chair-side.png", "png", "Side view")),
        chunked=True,
    ),
]

DOCUMENTS = [
    Document(
        "intranet",
        "/files/travel-policy.pdf",
        "pdf",
        "Travel policy",
        (
            "Economy class is the default for flights under six hours.",
            "Hotel bookings go through the travel desk.",
            "Receipts must be uploaded within thirty days.",
        ),
    ),
    Document(
        "intranet",
        "/files/meeting-notes.docx",
        "docx",
        "Project meeting notes",
        (
            "Attendees: design, engineering and operations.",
            "Decision: the release moves to the second week of the month.",
            "Action: update the planning board before Friday.",
        ),
    ),
    Document(
        "wiki",
        "/files/network-handbook.pdf",
        "pdf",
        "Network handbook",
        tuple(
            f"Section {i}: how to request access, report an outage and reach the service desk."
            for i in range(1, 400)
        ),
        resumed=True,
        compress=False,
    ),
]

UPLOADS = [
    Upload(
        "intranet",
        "/expenses/submit",
        "expense-report.docx",
        "docx",
        "Expense report",
        ("Taxi from the airport to the hotel.", "Dinner with the customer team.", "Total: 184.50 EUR."),
        fields=(("employee", "j.doe"), ("month", "2023-11")),
    ),
]

API_CALLS = [
    ("api", "/v1/weather?city=Springfield", {"city": "Springfield", "temp_c": 14, "sky": "partly cloudy"}),
    (
        "api",
        "/v1/calendar/today",
        {"events": [{"time": "09:30", "title": "Stand-up"}, {"time": "14:00", "title": "Design review"}]},
    ),
]

CLIENTS = ["10.20.1.21", "10.20.1.22", "10.20.1.23", "10.20.1.24"]
"""Office desktops (zone ``office`` in policies/sample.yaml)."""
VLAN_CLIENT = ("10.21.20.57", 20)
"""A staff Wi-Fi laptop whose traffic arrives tagged with VLAN 20 (zone ``office-wifi``)."""
RESOLVER = "10.40.0.2"


def prc_id(region: str, birth: str, seq: str) -> str:
    """A resident ID number with a valid GB 11643 check digit (test data, no real person)."""
    body = region + birth + seq
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    return body + "10X98765432"[sum(int(d) * w for d, w in zip(body, weights)) % 11]


# Planted policy violations (what the sample policy should catch), written the way people
# try to slip them past a filter: full-width letters, spaces and dashes inside Chinese
# words, traditional characters, zero-width characters.
VIOLATIONS = [
    Page(
        "forum",
        "/thread/20231114.html",
        "讨论区",
        (
            "今天的天气很好，我们去公园散步。",
            "有人在论坛里提到 法 轮-功 的资料，请管理员注意。",  # separators inside the term
            "另一个帖子写的是 法輪功（繁体）。",  # traditional characters
        ),
    ),
    Page(
        "casino",
        "/promo.html",
        "Lucky 888",
        (
            "欢迎来到网络赌场！百家乐、六合彩，每日充值即送返水 8%。",
            "Online casino bonus: sports betting odds updated every minute.",
        ),
    ),
]

# A classified-ads page selling forged documents and invoices: no keyword list names these
# words; the text classifier (trained by the demo) recognises the genre.
FRAUD_ADS = Page(
    "ads",
    "/ads/services.html",
    "便民服务",
    (
        "专业代开发票，办证，价格优惠，联系客服。",
        "低价刷单，套现，全国包邮，不成功不收费。",
        "We offer fake diplomas and invoice services, fast and cheap, contact us.",
    ),
)

# A local news site compromised by an SEO spammer: a block of gambling links hidden from readers.
HIDDEN_LINKS = Page(
    "news",
    "/local/events.html",
    "This week in Springfield",
    ("The farmers' market returns to the town square on Saturday.", "Library opening hours change in December."),
    inject=(
        '<div style="display:none"><a href="http://www.bocai888.example/">澳门葡京 网络赌场</a> '
        '<a href="http://lhc-vip.example/kaihu">六合彩 开户送彩金</a></div>'
        '<p style="position:absolute;left:-9999px"><a href="http://bet-365-casino.example/">online casino bonus</a></p>'
    ),
)


def product_render() -> bytes:
    """The unreleased product render the demo's fingerprint list knows (shapes only, no fonts,
    so its hashes do not depend on the fonts installed). Its pHash:dHash, 974c67374839487b:
    cceeaa9abbeece4c, is in policies/sample.yaml; the capture carries a resized JPEG copy."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (800, 600), (18, 32, 64))
    d = ImageDraw.Draw(img)
    for i in range(8):
        d.ellipse((40 + i * 30, 60 + i * 12, 420 - i * 10, 520 - i * 20), outline=(200, 120 + i * 8, 40), width=6)
    d.rectangle((470, 90, 760, 520), fill=(230, 230, 235))
    d.rectangle((500, 130, 730, 430), fill=(30, 140, 200))
    d.polygon([(520, 470), (710, 470), (615, 505)], fill=(60, 60, 70))
    for k in range(0, 800, 40):
        d.line((k, 580, k + 30, 600), fill=(255, 210, 0), width=4)
    small = img.resize((480, 360))  # what a phone app would upload: smaller, re-encoded
    buf = io.BytesIO()
    small.save(buf, "JPEG", quality=70)
    return buf.getvalue()


LEAK_UPLOADS = [
    # a customer export pasted to a public paste site: names, ID numbers, mobile numbers
    Upload(
        "paste",
        "/api/paste",
        "customers.csv",
        "csv",
        "name,id_number,mobile",
        tuple(
            f"customer{i},{prc_id('110105', f'1985{m:02d}{d:02d}', f'{i:03d}')},138{i:04d}{(i * 7) % 10000:04d}"
            for i, (m, d) in enumerate([(1, 12), (3, 4), (5, 23), (7, 8), (9, 30), (11, 2), (12, 19)], start=11)
        ),
    ),
    # the unreleased project's plan, uploaded to a file-sharing form with obfuscated code names
    Upload(
        "paste",
        "/upload",
        "plan.txt",
        "txt",
        "Roadmap",
        (
            "ＰＲＯＪＥＣＴ ＮＩＧＨＴＪＡＲ — launch plan, do not forward.",
            "夜\u200b鹰 计划 第三季度的目标如下。",
        ),
        fields=(("visibility", "public"),),
    ),
    # the same plan as a Word document attached to a personal webmail message
    Upload(
        "webmail",
        "/mail/attach",
        "Q3-roadmap.docx",
        "docx",
        "Q3 roadmap (internal)",
        (
            "Milestones for Project Nightjar in the third quarter.",
            "夜鹰计划：第三季度里程碑，请勿外传。",
            "Owner: product team.",
        ),
        fields=(("to", "someone@example.net"),),
    ),
]
CSS = (
    b"body{font-family:Arial,sans-serif;margin:0 auto;max-width:60em}\nh1{color:#225}\nimg{max-width:100%}\n"
)
JS = b"document.addEventListener('DOMContentLoaded',function(){console.log('ready')});\n"


class Demo:
    """Builds the trace and the manifest."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.trace = S.Trace(seed=seed)
        self.manifest: list[dict[str, object]] = []
        self.clock = 0.0
        self.port = 49200

    def _next_port(self) -> int:
        self.port += self.rng.randint(1, 7)
        return self.port

    def _record(
        self,
        site: Site,
        path: str,
        data: bytes,
        direction: str = "download",
        filename: str = "",
        **extra: object,
    ) -> None:
        self.manifest.append(
            {
                "host": site.host,
                "url": path,
                "direction": direction,
                "filename": filename or path.rsplit("/", 1)[-1].split("?")[0],
                "size": len(data),
                "md5": S.md5(data),
                **extra,
            }
        )

    def session(self, client: str, site: Site, link: S.Link | None = None) -> S.Session:
        self.clock += 0.2 + self.rng.random() * 1.5
        self.trace.dns(client, RESOLVER, site.host, site.ip, at=self.clock - 0.01, link=link)
        kw: dict[str, object] = {
            "rtt": 0.001 if site.ip.startswith("10.") else 0.02 + 0.03 * self.rng.random()
        }
        if link is not None:
            kw["link"] = link
        return self.trace.session((client, self._next_port()), (site.ip, site.port), at=self.clock, **kw)

    def host(self, site: Site) -> str:
        return site.host if site.port == 80 else f"{site.host}:{site.port}"

    def browse(self, client: str, page: Page, link: S.Link | None = None) -> None:
        site = SITES[page.site]
        s = self.session(client, site, link)
        html = S.html_page(
            page.title,
            page.paragraphs,
            css=["/static/site.css"],
            js=["/static/app.js"],
            images=[p for p, _, _ in page.images],
        )
        if page.inject:
            html = html.replace(b"</body>", page.inject.encode() + b"\n</body>")
        framing = "chunked" if page.chunked else "length"
        s.http(
            S.http_request("GET", page.path, self.host(site)),
            S.http_response(
                200, html, encoding="gzip" if page.gzip else None, framing=framing, chunk=[1024, 512, 2048]
            ),
        )
        self._record(site, page.path, html, filename=page.path.rsplit("/", 1)[-1] or "index.html")
        for path, ctype, body in (
            ("/static/site.css", "text/css", CSS),
            ("/static/app.js", "application/javascript", JS),
        ):
            s.http(
                S.http_request(
                    "GET", path, self.host(site), headers=[("Referer", f"http://{site.host}{page.path}")]
                ),
                S.http_response(200, body, content_type=ctype),
            )
            self._record(site, path, body)
        for path, kind, label in page.images:
            img = (
                S.png_image(self.rng, 320, 200, label)
                if kind == "png"
                else S.jpeg_image(self.rng, 640, 400, label)
            )
            s.http(
                S.http_request("GET", path, self.host(site)),
                S.http_response(200, img, content_type=f"image/{kind}"),
            )
            self._record(site, path, img)
        s.wait(1.0 + self.rng.random())
        s.close()

    def document_bytes(
        self, kind: str, title: str, paragraphs: tuple[str, ...], compress: bool = True
    ) -> tuple[bytes, str]:
        if kind in ("csv", "txt"):
            text = "\n".join((title, *paragraphs)) + "\n"
            return text.encode().decode("unicode_escape").encode("utf-8") if "\\u" in text else text.encode(), (
                "text/csv" if kind == "csv" else "text/plain; charset=utf-8"
            )
        if kind == "pdf":
            return S.pdf_document(title, paragraphs, compress=compress), "application/pdf"
        return S.docx_document(
            title, paragraphs
        ), "application/vnd.openxmlformats-officedocument.wordprocessingml.document"

    def download(self, client: str, doc: Document) -> None:
        site = SITES[doc.site]
        data, ctype = self.document_bytes(doc.kind, doc.title, doc.paragraphs, doc.compress)
        s = self.session(client, site)
        if not doc.resumed:
            s.http(
                S.http_request("GET", doc.path, self.host(site)),
                S.http_response(200, data, content_type=ctype),
            )
            s.close()
            self._record(site, doc.path, data)
            return
        resp = S.http_response(
            200, data, content_type=ctype, headers=[("Accept-Ranges", "bytes"), ("ETag", '"nh-1"')]
        )
        cut = len(resp) - len(data) + len(data) // 3
        s.http(S.http_request("GET", doc.path, self.host(site)), resp[:cut])
        s.close(by=S.C2S, rst=True)  # the user's laptop went to sleep
        got = cut - (len(resp) - len(data))
        s2 = self.session(client, site)
        s2.http(
            S.http_request(
                "GET", doc.path, self.host(site), headers=[("Range", f"bytes={got}-"), ("If-Range", '"nh-1"')]
            ),
            S.range_response(data, got, None, content_type=ctype, etag="nh-1"),
        )
        s2.close()
        self._record(
            site, doc.path, data, kind="range", note="200 aborted by RST, then 206 on a new connection"
        )

    def upload(self, client: str, up: Upload) -> None:
        site = SITES[up.site]
        data, ctype = self.document_bytes(up.kind, up.title, up.paragraphs)
        body, form_ctype = S.multipart_body(fields=up.fields, files=[("file", up.filename, ctype, data)])
        s = self.session(client, site)
        s.http(
            S.http_request("POST", up.path, self.host(site), body=body, content_type=form_ctype),
            S.http_response(200, b'{"status":"received"}', content_type="application/json"),
        )
        s.close()
        self._record(site, up.path, data, direction="upload", filename=up.filename, kind="part")
        self._record(site, up.path, b'{"status":"received"}', filename="submit")

    def upload_image(self, client: str, site_name: str, path: str, filename: str, data: bytes) -> None:
        site = SITES[site_name]
        body, form_ctype = S.multipart_body(fields=(("caption", "sneak peek"),),
                                            files=[("media", filename, "image/jpeg", data)])
        s = self.session(client, site)
        s.http(
            S.http_request("POST", path, self.host(site), body=body, content_type=form_ctype),
            S.http_response(200, b'{"id":"m-5521"}', content_type="application/json"),
        )
        s.close()
        self._record(site, path, data, direction="upload", filename=filename, kind="part")
        self._record(site, path, b'{"id":"m-5521"}', filename="upload")

    def api(self, client: str) -> None:
        site = SITES["api"]
        s = self.session(client, site)
        for _, path, obj in API_CALLS:
            body = json.dumps(obj, indent=2).encode()
            s.http(
                S.http_request("GET", path, site.host, headers=[("Accept", "application/json")]),
                S.http_response(200, body, content_type="application/json", encoding="gzip"),
            )
            self._record(site, path, body)
        s.close()

    def noise(self, client: str) -> None:
        self.clock += 0.1
        t = self.trace
        sni = self.rng.choice(["mail.example.org", "cdn.example.net", "login.example.com"])
        t.dns(client, RESOLVER, sni, "192.0.2.50", at=self.clock)
        tls = t.session((client, self._next_port()), ("192.0.2.50", 443), at=self.clock + 0.01)
        tls.client_send(S.tls_client_hello(tls.rng, sni))
        tls.server_send(S.tls_server_hello(tls.rng))
        tls.client_send(S.tls_records(tls.rng, self.rng.randint(300, 2000)))
        tls.server_send(S.tls_records(tls.rng, self.rng.randint(5_000, 60_000)))
        tls.close()

    def ssh(self, client: str) -> None:
        self.clock += 0.1
        s = self.trace.session((client, self._next_port()), ("10.40.0.5", 22), at=self.clock)
        s.server_send(S.ssh_banner(server=True))
        s.client_send(S.ssh_banner())
        for _ in range(6):
            s.client_send(s.rng.randbytes(self.rng.randint(40, 200)))
            s.server_send(s.rng.randbytes(self.rng.randint(40, 1400)))
        s.close()

    def build(self) -> None:
        c = CLIENTS
        self.browse(c[0], PAGES[0])
        self.noise(c[1])
        self.browse(c[1], PAGES[3])
        self.download(c[0], DOCUMENTS[0])
        self.api(c[2])
        self.browse(c[2], PAGES[2])
        self.ssh(c[3])
        self.download(c[3], DOCUMENTS[1])
        self.upload(c[3], UPLOADS[0])
        self.browse(c[0], PAGES[1])
        self.noise(c[0])
        self.download(c[1], DOCUMENTS[2])
        guest, vid = VLAN_CLIENT
        self.browse(guest, PAGES[4], link=S.vlan(vid))
        self.noise(c[2])
        self.browse(c[1], VIOLATIONS[0])
        self.browse(guest, VIOLATIONS[1], link=S.vlan(vid))
        self.upload(c[2], LEAK_UPLOADS[0])
        self.upload(c[3], LEAK_UPLOADS[1])
        self.upload(c[0], LEAK_UPLOADS[2])
        self.browse(c[2], HIDDEN_LINKS)
        self.browse(c[3], FRAUD_ADS)
        self.upload_image(c[1], "social", "/api/media/upload", "IMG_4121.jpg", product_render())


def write_library(path: Path) -> int:
    """The demo's fingerprint set as a console library: the product render, hashed (MD5, SHA-256, pHash,
    dHash) with the thumbnail the console shows beside a matched image. Returns the entries added."""
    from fingerprints.library import Library
    from webui.fplib import Upload, add_uploads, thumbs_dir

    with Library(path) as lib:
        st = add_uploads(lib, [Upload("product-render.jpg", product_render())], label="Unreleased product render",
                         category="confidential", source="demo", thumbs=thumbs_dir(path), max_pixels=50_000_000)
    return st.added


def write_evidence(evidence: Path, content_db: str) -> int:
    """The evidence folder: a JPEG thumbnail of every retained image, named after its object
    (``<content id>.jpg``, where the console looks for an object's evidence image)."""
    from PIL import Image

    from appliance.store.content import ContentStore

    evidence.mkdir(parents=True, exist_ok=True)
    n = 0
    with ContentStore.reader(content_db) as store:
        rows = store.db.rows("SELECT content_id, sha256 FROM content WHERE has_bytes = 1 AND "
                             "(sniffed_mime LIKE 'image/%' OR declared_mime LIKE 'image/%')")
        for r in rows:
            data = store.repo.blob(r["sha256"])
            if data is None:
                continue
            try:
                with Image.open(io.BytesIO(data)) as im:
                    im = im.convert("RGB")
                    im.thumbnail((480, 480))
                    im.save(evidence / f"{r['content_id']}.jpg", "JPEG", quality=85)
                    n += 1
            except (OSError, ValueError):
                continue
    return n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", type=Path, nargs="?", help="the capture to write")
    ap.add_argument("--seed", type=int, default=2023)
    ap.add_argument("--library", type=Path, help="also write the demo's fingerprint library (console thumbnails)")
    ap.add_argument("--evidence", type=Path, help="after a read: write the evidence folder from --content-db")
    ap.add_argument("--content-db", help="the content store the read retained")
    a = ap.parse_args(argv)
    if a.library is not None:
        print(f"{a.library}: {write_library(a.library)} fingerprints added")
    if a.evidence is not None:
        if not a.content_db:
            ap.error("--evidence needs --content-db")
        print(f"{a.evidence}: {write_evidence(a.evidence, a.content_db)} evidence images")
    if a.out is None:
        return 0
    demo = Demo(a.seed)
    demo.build()
    a.out.parent.mkdir(parents=True, exist_ok=True)
    n = demo.trace.write(a.out)
    manifest = a.out.with_name(a.out.name.rsplit(".", 1)[0] + ".manifest.json")
    manifest.write_text(json.dumps(demo.manifest, indent=1) + "\n")
    print(
        f"{a.out}: {n} frames, {a.out.stat().st_size} bytes, {len(demo.manifest)} objects ({manifest.name})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
