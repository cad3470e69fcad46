"""Golden cases: each generator writes a capture with `tools.synth` and says what must come out.

Expected values (md5, sizes, missing bytes) are computed here from the bytes that were put on the
wire, never hard-coded. ``python -m tests.pcaps.cases [OUT_DIR] [NAME...]`` writes the captures and
an ``expected.json`` (default ``tests/pcaps/generated/``, which git ignores).

Matching conventions (see ``tests/test_golden.py``): ``filename`` is a base name that the reported
filename must equal or end with after a ``/`` (downloads may report the URL path); ``truncated`` is
a substring one of the reported truncation reasons must contain; ``prefix_of`` means the object is a
prefix of those bytes (md5 checked against the reported size).
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tools import synth as S

CLIENT_IP = "10.20.30.41"
CLIENT6_IP = "2001:db8:20::41"
SERVER_IP = "203.0.113.80"
SERVER6_IP = "2001:db8:cafe::80"
RESOLVER_IP = "10.20.30.1"
HOST = "intranet.example.com"

DOCX_MIME = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


@dataclass(frozen=True)
class Expected:
    """One content object the sensor must report as a ``fileinfo`` event."""

    md5: str | None
    size: int | None
    direction: str
    """``upload`` or ``download``."""
    state: str = "CLOSED"
    filename: str | None = None
    method: str | None = None
    status: int | None = None
    url: str | None = None
    host: str | None = None
    kind: str | None = None
    tx_id: int | None = None
    gaps: bool | None = None
    missing_bytes: int | None = None
    truncated: str | None = None
    size_max: int | None = None
    prefix_of: bytes | None = field(default=None, repr=False, compare=False)

    def to_json(self) -> dict[str, object]:
        d = asdict(self)
        d.pop("prefix_of")
        if self.prefix_of is not None:
            d["prefix_of_md5"] = hashlib.md5(self.prefix_of).hexdigest()
        return {k: v for k, v in d.items() if v is not None}


@dataclass
class Case:
    """A generated capture and what `tapsift read` must extract from it."""

    name: str
    description: str
    pcap: Path
    expected: list[Expected]
    client: tuple[str, int]
    server: tuple[str, int]
    args: list[str] = field(default_factory=list)
    """Extra ``tapsift read`` arguments."""
    allow_extra: bool = False
    """Other fileinfo events (pieces, whole multipart bodies, partial leftovers) are allowed."""
    proto: str = "http"
    """``app_proto`` of every fileinfo event (``http`` for HTTP/1 and HTTP/2)."""
    transport: str = "TCP"
    """The transport every object of the case comes over (EVE ``proto``)."""
    tshark: bool = True
    """tshark exports the case's complete downloads too (False: tricks Wireshark does not read)."""

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "description": self.description,
            "pcap": self.pcap.name,
            "args": self.args,
            "allow_extra": self.allow_extra,
            "proto": self.proto,
            "transport": self.transport,
            "client": list(self.client),
            "server": list(self.server),
            "expected": [e.to_json() for e in self.expected],
        }


Generator = Callable[[Path], Case]
CASES: dict[str, Generator] = {}


def case(fn: Generator) -> Generator:
    CASES[fn.__name__.removeprefix("case_")] = fn
    return fn


def _seed(name: str) -> int:
    return zlib.crc32(name.encode())


def _rng(name: str) -> random.Random:
    return random.Random(_seed(name) ^ 0x5EED)


def _dl(
    body: bytes,
    path: str,
    *,
    host: str = HOST,
    tx_id: int | None = 0,
    status: int = 200,
    kind: str = "body",
    **kw: object,
) -> Expected:
    """An expected, complete download of ``body`` from ``path``."""
    return Expected(
        md5=S.md5(body),
        size=len(body),
        direction="download",
        filename=path.rsplit("/", 1)[-1],
        method="GET",
        status=status,
        url=path,
        host=host,
        kind=kind,
        tx_id=tx_id,
        **kw,
    )  # type: ignore[arg-type]


def _report_pdf(rng: random.Random) -> bytes:
    return S.pdf_document("Quarterly summary", [S.text(rng, 12)[:90] for _ in range(70)])


# --------------------------------------------------------------------------------------------
# plain GET and its link-layer / transport variants
# --------------------------------------------------------------------------------------------


def _plain_get(
    name: str,
    out: Path,
    *,
    link: S.Link | None = None,
    fmt: str = "pcap",
    port: int = 80,
    v6: bool = False,
    description: str,
) -> Case:
    rng = _rng(name)
    body = _report_pdf(rng)
    path = "/docs/q3-summary.pdf"
    cip, sip = (CLIENT6_IP, SERVER6_IP) if v6 else (CLIENT_IP, SERVER_IP)
    client, server = (cip, 49732), (sip, port)
    host = HOST if port == 80 else f"{HOST}:{port}"
    t = S.Trace(seed=_seed(name), link=link or S.Ethernet())
    t.dns(CLIENT6_IP if v6 else CLIENT_IP, "2001:db8:20::1" if v6 else RESOLVER_IP, HOST, sip, at=0.0)
    s = t.session(client, server, at=0.01)
    s.http(S.http_request("GET", path, host), S.http_response(200, body, content_type="application/pdf"))
    s.close()
    pcap = out / f"{name}.{fmt}"
    t.write(pcap, fmt=fmt)
    return Case(name, description, pcap, [_dl(body, path)], client, server)


@case
def case_plain_get(out: Path) -> Case:
    return _plain_get("plain_get", out, description="one GET of a PDF over Ethernet, Content-Length")


@case
def case_vlan_get(out: Path) -> Case:
    return _plain_get("vlan_get", out, link=S.vlan(110), description="plain GET, 802.1Q VLAN 110")


@case
def case_qinq_get(out: Path) -> Case:
    return _plain_get("qinq_get", out, link=S.qinq(300, 110), description="plain GET, QinQ 300/110")


@case
def case_erspan2_get(out: Path) -> Case:
    return _plain_get(
        "erspan2_get",
        out,
        link=S.Erspan(S.vlan(110), version=2),
        description="plain GET mirrored by ERSPAN type II over GRE/IPv4 (inner VLAN 110)",
    )


@case
def case_erspan3_get(out: Path) -> Case:
    return _plain_get("erspan3_get", out, link=S.Erspan(version=3), description="plain GET, ERSPAN type III")


@case
def case_vxlan_get(out: Path) -> Case:
    return _plain_get("vxlan_get", out, link=S.Vxlan(vni=5001), description="plain GET inside VXLAN 5001")


@case
def case_vxlan_src_port_get(out: Path) -> Case:
    return _plain_get("vxlan_src_port_get", out, link=S.Vxlan(vni=5002, sport=4789, dport=34567),
                      description="plain GET inside VXLAN sent from UDP 4789 to port 34567 (a mirror's choice)")


@case
def case_geneve_get(out: Path) -> Case:
    return _plain_get("geneve_get", out, link=S.Geneve(S.vlan(120), options=bytes.fromhex("0103010100000001")),
                      description="plain GET inside Geneve (UDP 6081, one option, inner VLAN 120)")


@case
def case_nflog_get(out: Path) -> Case:
    return _plain_get("nflog_get", out, link=S.Nflog(group=5),
                      description="plain GET logged by an iptables NFLOG rule (LINKTYPE_NFLOG 239)")


@case
def case_offload_get(out: Path) -> Case:
    return _plain_get("offload_get", out, link=S.Offload(S.Ethernet(), side=S.S2C),
                      description="plain GET captured on the server: its TCP/UDP checksums unfinished (TX offload)")


@case
def case_sll_get(out: Path) -> Case:
    return _plain_get("sll_get", out, link=S.Sll(), description="plain GET, Linux cooked capture (SLL)")


@case
def case_rawip_get(out: Path) -> Case:
    return _plain_get("rawip_get", out, link=S.RawIp(), description="plain GET, LINKTYPE_RAW (no link layer)")


@case
def case_pcapng_get(out: Path) -> Case:
    return _plain_get("pcapng_get", out, fmt="pcapng", description="plain GET written as pcapng")


@case
def case_nonstandard_port(out: Path) -> Case:
    return _plain_get("nonstandard_port", out, port=8081, description="plain GET to port 8081")


@case
def case_ipv6_get(out: Path) -> Case:
    return _plain_get("ipv6_get", out, v6=True, description="plain GET over IPv6")


# --------------------------------------------------------------------------------------------
# HTTP framing and encodings
# --------------------------------------------------------------------------------------------


@case
def case_multipart_upload(out: Path) -> Case:
    """POST multipart/form-data with a text field and two files."""
    name = "multipart_upload"
    rng = _rng(name)
    docx = S.docx_document("Team meeting minutes", [S.text(rng, 40) for _ in range(12)])
    png = S.png_image(rng, 300, 180, "whiteboard")
    body, ctype = S.multipart_body(
        fields=[("subject", "Meeting minutes"), ("notify", "team")],
        files=[
            ("attachment", "minutes.docx", DOCX_MIME, docx),
            ("photo", "whiteboard.png", "image/png", png),
        ],
    )
    client, server = (CLIENT_IP, 50211), (SERVER_IP, 80)
    t = S.Trace(seed=_seed(name))
    s = t.session(client, server)
    req = S.http_request(
        "POST",
        "/upload",
        HOST,
        body=body,
        content_type=ctype,
        headers=[("Origin", f"http://{HOST}"), ("Referer", f"http://{HOST}/share")],
    )
    s.http(req, S.http_response(303, b"", content_type=None, headers=[("Location", "/share?ok=1")]))
    s.close()
    pcap = out / f"{name}.pcap"
    t.write(pcap)
    exp = [
        Expected(
            md5=S.md5(d),
            size=len(d),
            direction="upload",
            filename=fn,
            method="POST",
            url="/upload",
            host=HOST,
            kind="part",
            tx_id=0,
        )
        for fn, d in (("minutes.docx", docx), ("whiteboard.png", png))
    ]
    return Case(
        name,
        "multipart upload of a DOCX and a PNG (plus text fields)",
        pcap,
        exp,
        client,
        server,
        allow_extra=True,
    )


@case
def case_chunked_gzip(out: Path) -> Case:
    """A chunked, gzip-encoded HTML page: the object is the decoded page."""
    name = "chunked_gzip"
    rng = _rng(name)
    page = S.html_page("Office news", [S.text(rng, 80) for _ in range(40)], css=["/static/site.css"])
    client, server = (CLIENT_IP, 50312), (SERVER_IP, 80)
    t = S.Trace(seed=_seed(name))
    s = t.session(client, server)
    s.http(
        S.http_request("GET", "/news/index.html", HOST),
        S.http_response(200, page, encoding="gzip", framing="chunked", chunk=[1000, 777, 4096, 13]),
    )
    s.close()
    pcap = out / f"{name}.pcap"
    t.write(pcap)
    return Case(
        name,
        "chunked + gzip response (decoded body expected)",
        pcap,
        [_dl(page, "/news/index.html")],
        client,
        server,
    )


@case
def case_pipelining(out: Path) -> Case:
    """Keep-alive pipelining: three requests in one burst, then three responses."""
    name = "pipelining"
    rng = _rng(name)
    css = (".nav{color:#333}\n" + S.text(rng, 200).replace(".", "}\n.a{") + "}\n").encode()
    js = (
        "function f(){return 1}\n" + "\n".join(f"var v{i} = {rng.randint(0, 999)};" for i in range(900))
    ).encode()
    png = S.png_image(rng, 240, 120, "logo")
    reqs = [
        ("/static/site.css", css, "text/css", "length"),
        ("/static/app.js", js, "application/javascript", "chunked"),
        ("/img/logo.png", png, "image/png", "length"),
    ]
    client, server = (CLIENT_IP, 50413), (SERVER_IP, 80)
    t = S.Trace(seed=_seed(name))
    s = t.session(client, server)
    s.client_send(b"".join(S.http_request("GET", p, HOST) for p, *_ in reqs))
    s.server_send(b"".join(S.http_response(200, b, content_type=ct, framing=fr) for _, b, ct, fr in reqs))
    s.close()
    pcap = out / f"{name}.pcap"
    t.write(pcap)
    exp = [_dl(b, p, tx_id=i) for i, (p, b, _, _) in enumerate(reqs)]
    return Case(
        name, "3 pipelined GETs, then 3 responses (length, chunked, length)", pcap, exp, client, server
    )


@case
def case_ooo_retransmit(out: Path) -> Case:
    """Reordered, late and retransmitted segments; the server's sequence numbers wrap mid-body."""
    name = "ooo_retransmit"
    rng = _rng(name)
    img = S.jpeg_image(rng, 480, 320, "site photo")
    client, server = (CLIENT_IP, 50514), (SERVER_IP, 80)
    t = S.Trace(seed=_seed(name))
    s = t.session(client, server, isn=(None, 2**32 - 20_000))
    s.client_send(S.http_request("GET", "/gallery/site.jpg", HOST), retransmit=[0])
    s.server_send(
        S.http_response(200, img, content_type="image/jpeg"), swap=[2, 11], late={6: 4}, retransmit=[9, -2]
    )
    s.close()
    pcap = out / f"{name}.pcap"
    t.write(pcap)
    return Case(
        name,
        "out-of-order, late (fast-retransmitted) and duplicate segments; seq wraps",
        pcap,
        [_dl(img, "/gallery/site.jpg")],
        client,
        server,
    )


@case
def case_gap_in_body(out: Path) -> Case:
    """The tap loses one segment inside a body (the client ACKs it); a later response is whole."""
    name = "gap_in_body"
    rng = _rng(name)
    csv = "\n".join(f"{i},{S.text(rng, 6)}" for i in range(1500)).encode()
    jsn = json.dumps({"status": "ok", "items": [S.text(rng, 5) for _ in range(20)]}).encode()
    client, server = (CLIENT_IP, 50615), (SERVER_IP, 80)
    t = S.Trace(seed=_seed(name))
    s = t.session(client, server)
    resp = S.http_response(200, csv, content_type="text/csv")
    hdr_len = len(resp) - len(csv)
    sent = s.http(S.http_request("GET", "/export/orders.csv", HOST), resp, drop=[10])[1]
    assert sent is not None
    lost = [(a - hdr_len, b - hdr_len) for a, b in sent.lost_ranges()]
    assert all(a >= 0 for a, _ in lost), "the lost segment must be inside the body"
    received, pos = b"", 0
    for a, b in lost:
        received += csv[pos:a]
        pos = b
    received += csv[pos:]
    s.http(
        S.http_request("GET", "/api/status", HOST), S.http_response(200, jsn, content_type="application/json")
    )
    s.close()
    pcap = out / f"{name}.pcap"
    t.write(pcap)
    missing = sum(b - a for a, b in lost)
    exp = [
        Expected(
            md5=S.md5(received),
            size=len(received),
            direction="download",
            state="TRUNCATED",
            filename="orders.csv",
            method="GET",
            status=200,
            url="/export/orders.csv",
            host=HOST,
            kind="body",
            tx_id=0,
            gaps=True,
            missing_bytes=missing,
        ),
        _dl(jsn, "/api/status", tx_id=1),
    ]
    return Case(
        name,
        f"one {missing}-byte segment lost at the tap inside a body; then a whole response",
        pcap,
        exp,
        client,
        server,
    )


@case
def case_midstream_pickup(out: Path) -> Case:
    """The capture starts in the middle of a response; the later responses must come out whole."""
    name = "midstream_pickup"
    rng = _rng(name)
    big = S.fake_jpeg(rng, 200_000)
    page = S.html_page("Cafeteria menu", [S.text(rng, 60) for _ in range(25)])
    css = ("body{font-family:sans-serif}\n" * 200).encode()
    client, server = (CLIENT_IP, 50716), (SERVER_IP, 80)
    t = S.Trace(seed=_seed(name))
    s = t.session(client, server)
    sent = s.http(
        S.http_request("GET", "/photos/big.jpg", HOST), S.http_response(200, big, content_type="image/jpeg")
    )[1]
    assert sent is not None
    s.http(S.http_request("GET", "/menu.html", HOST), S.http_response(200, page))
    s.http(
        S.http_request("GET", "/static/menu.css", HOST), S.http_response(200, css, content_type="text/css")
    )
    s.close()
    s.capture_from_ns = sent.segments[len(sent.segments) // 2].ts_ns
    pcap = out / f"{name}.pcap"
    t.write(pcap)
    exp = [
        Expected(md5=S.md5(b), size=len(b), direction="download", status=200, state="CLOSED")
        for b in (page, css)
    ]
    return Case(
        name,
        "capture starts after the handshake, half-way through a 200 KB response",
        pcap,
        exp,
        client,
        server,
        allow_extra=True,
    )


@case
def case_body_limit(out: Path) -> Case:
    """A 300 KB body read with ``--body-limit 65536``: truncated with a reason, prefix hashed."""
    name = "body_limit"
    rng = _rng(name)
    body = S.fake_png(rng, 300_000)
    client, server = (CLIENT_IP, 50817), (SERVER_IP, 80)
    t = S.Trace(seed=_seed(name))
    s = t.session(client, server)
    s.http(
        S.http_request("GET", "/maps/floorplan.png", HOST),
        S.http_response(200, body, content_type="image/png"),
    )
    s.close()
    pcap = out / f"{name}.pcap"
    t.write(pcap)
    exp = [
        Expected(
            md5=None,
            size=None,
            direction="download",
            state="TRUNCATED",
            filename="floorplan.png",
            method="GET",
            status=200,
            url="/maps/floorplan.png",
            host=HOST,
            tx_id=0,
            truncated="limit",
            size_max=65536,
            prefix_of=body,
        )
    ]
    return Case(
        name, "body over --body-limit 65536", pcap, exp, client, server, args=["--body-limit", "65536"]
    )


@case
def case_range_two_connections(out: Path) -> Case:
    """A file fetched as two 206 ranges over two connections; the stitched object is the file."""
    name = "range_two_connections"
    rng = _rng(name)
    doc = S.pdf_document("Employee handbook", [S.text(rng, 14)[:95] for _ in range(1800)], compress=False)
    path, cut = "/downloads/handbook.pdf", 65536
    client, server = (CLIENT_IP, 50918), (SERVER_IP, 80)
    t = S.Trace(seed=_seed(name))
    etag = hashlib.sha1(doc).hexdigest()[:16]
    s1 = t.session(client, server)
    s1.http(
        S.http_request("GET", path, HOST, headers=[("Range", f"bytes=0-{cut - 1}")]),
        S.range_response(doc, 0, cut - 1, content_type="application/pdf", etag=etag),
    )
    s1.close()
    s2 = t.session((CLIENT_IP, 50919), server, at=2.0)
    s2.http(
        S.http_request("GET", path, HOST, headers=[("Range", f"bytes={cut}-"), ("If-Range", f'"{etag}"')]),
        S.range_response(doc, cut, None, content_type="application/pdf", etag=etag),
    )
    s2.close()
    pcap = out / f"{name}.pcap"
    t.write(pcap)
    exp = [
        Expected(
            md5=S.md5(doc),
            size=len(doc),
            direction="download",
            filename="handbook.pdf",
            kind="range",
            host=HOST,
            method="GET",
            state="CLOSED",
        )
    ]
    return Case(
        name,
        f"{len(doc)}-byte PDF as 206 ranges 0-{cut - 1} and {cut}- on two connections",
        pcap,
        exp,
        client,
        server,
        allow_extra=True,
    )


@case
def case_tiny_segments(out: Path) -> Case:
    """Request and response cut into 1-13 byte segments (request line and headers split)."""
    name = "tiny_segments"
    rng = _rng(name)
    body = S.text(rng, 500).encode()
    client, server = (CLIENT_IP, 51019), (SERVER_IP, 80)
    t = S.Trace(seed=_seed(name))
    s = t.session(client, server)
    s.client_send(S.http_request("GET", "/notes/todo.txt", HOST), sizes=[1, 2, 3, 5, 7])
    s.server_send(S.http_response(200, body, content_type="text/plain"), sizes=[1, 3, 7, 13])
    s.close()
    pcap = out / f"{name}.pcap"
    t.write(pcap)
    return Case(name, "1-13 byte segments", pcap, [_dl(body, "/notes/todo.txt")], client, server)


@case
def case_close_delimited(out: Path) -> Case:
    """An HTTP/1.0 response without Content-Length, ended by the server's FIN."""
    name = "close_delimited"
    rng = _rng(name)
    body = S.html_page("Legacy intranet", [S.text(rng, 50) for _ in range(30)])
    client, server = (CLIENT_IP, 51120), (SERVER_IP, 80)
    t = S.Trace(seed=_seed(name))
    s = t.session(client, server)
    s.http(
        S.http_request("GET", "/legacy/index.htm", HOST, version="HTTP/1.0"),
        S.http_response(200, body, framing="close", version="HTTP/1.0"),
    )
    s.close(by=S.S2C)
    pcap = out / f"{name}.pcap"
    t.write(pcap)
    return Case(name, "HTTP/1.0 close-delimited body", pcap, [_dl(body, "/legacy/index.htm")], client, server)


@case
def case_head_304_keepalive(out: Path) -> Case:
    """HEAD (Content-Length but no body), a 304, then a 200: only the 200 has an object."""
    name = "head_304_keepalive"
    rng = _rng(name)
    jsn = json.dumps({"rooms": [{"id": i, "name": S.text(rng, 3)} for i in range(40)]}, indent=1).encode()
    client, server = (CLIENT_IP, 51221), (SERVER_IP, 80)
    t = S.Trace(seed=_seed(name))
    s = t.session(client, server)
    s.http(
        S.http_request("HEAD", "/iso/debian.iso", HOST),
        S.http_response(200, bytes(5_000_000), content_type="application/octet-stream", send_body=False),
    )
    s.http(
        S.http_request("GET", "/img/logo.png", HOST, headers=[("If-None-Match", '"abc123"')]),
        S.http_response(304, b"", content_type=None, framing="none", headers=[("ETag", '"abc123"')]),
    )
    s.http(
        S.http_request("GET", "/api/rooms", HOST), S.http_response(200, jsn, content_type="application/json")
    )
    s.close()
    pcap = out / f"{name}.pcap"
    t.write(pcap)
    return Case(
        name,
        "HEAD with Content-Length 5000000 and no body, 304, then 200",
        pcap,
        [_dl(jsn, "/api/rooms", tx_id=2)],
        client,
        server,
    )


@case
def case_rst_midbody(out: Path) -> Case:
    """The server resets the connection 30000 bytes into a 50000-byte body."""
    name = "rst_midbody"
    rng = _rng(name)
    body = S.fake_jpeg(rng, 50_000)
    client, server = (CLIENT_IP, 51322), (SERVER_IP, 80)
    t = S.Trace(seed=_seed(name))
    s = t.session(client, server)
    resp = S.http_response(200, body, content_type="image/jpeg")
    hdr_len = len(resp) - len(body)
    s.http(S.http_request("GET", "/cam/snapshot.jpg", HOST), resp[: hdr_len + 30_000])
    s.close(by=S.S2C, rst=True)
    pcap = out / f"{name}.pcap"
    t.write(pcap)
    part = body[:30_000]
    exp = [
        Expected(
            md5=S.md5(part),
            size=len(part),
            direction="download",
            state="TRUNCATED",
            filename="snapshot.jpg",
            method="GET",
            status=200,
            url="/cam/snapshot.jpg",
            tx_id=0,
        )
    ]
    return Case(name, "RST after 30000 of 50000 body bytes", pcap, exp, client, server)


@case
def case_noise_mixed(out: Path) -> Case:
    """DNS, TLS and SSH around one plain GET: only the GET yields an object."""
    name = "noise_mixed"
    rng = _rng(name)
    body = S.png_image(rng, 200, 200, "badge")
    client, server = (CLIENT_IP, 51423), (SERVER_IP, 80)
    t = S.Trace(seed=_seed(name))
    t.dns(CLIENT_IP, RESOLVER_IP, "mail.example.org", "198.51.100.25", at=0.0)
    tls = t.session((CLIENT_IP, 51424), ("198.51.100.25", 443), at=0.01)
    tls.client_send(S.tls_client_hello(tls.rng, "mail.example.org"))
    tls.server_send(S.tls_server_hello(tls.rng))
    tls.client_send(S.tls_records(tls.rng, 600))
    tls.server_send(S.tls_records(tls.rng, 40_000))
    tls.close()
    ssh = t.session((CLIENT_IP, 51425), ("10.20.30.5", 22), at=0.05)
    ssh.server_send(S.ssh_banner(server=True))
    ssh.client_send(S.ssh_banner())
    ssh.client_send(ssh.rng.randbytes(1200))
    ssh.server_send(ssh.rng.randbytes(900))
    ssh.close()
    s = t.session(client, server, at=0.08)
    s.http(
        S.http_request("GET", "/badges/42.png", HOST), S.http_response(200, body, content_type="image/png")
    )
    s.close()
    pcap = out / f"{name}.pcap"
    t.write(pcap)
    return Case(
        name,
        "DNS, TLS on 443 and SSH on 22 around one GET",
        pcap,
        [_dl(body, "/badges/42.png")],
        client,
        server,
    )


# --------------------------------------------------------------------------------------------
# Extraction that generalises: framing evasions, boundaries, proxies, STARTTLS, SCTP, lost heads
# --------------------------------------------------------------------------------------------

PROXY_IP = "198.51.100.8"


def _raw_response(head: list[bytes], body: bytes, *, eol: bytes = b"\r\n", end: bytes = b"\r\n") -> bytes:
    """A response written by hand: header lines (status line first) joined by ``eol``, then
    ``end`` (what ends the section after the last line's ``eol``), then ``body``."""
    return eol.join(head) + eol + end + body


@case
def case_http_framing_evasions(out: Path) -> Case:
    """Five downloads, each behind a framing trick browsers read through (one connection each)."""
    name = "http_framing_evasions"
    rng = _rng(name)
    files = [S.fake_png(rng, 9000 + 3000 * i) for i in range(5)]
    gz = [S.gzip_bytes(f) for f in files]
    status = b"HTTP/1.1 200 OK"
    ctype = b"Content-Type: image/png"
    variants = [
        ("te_and_cl", _raw_response([status, ctype, b"Transfer-Encoding: chunked", b"Content-Length: %d"
                                     % (len(files[0]) // 2)], S.chunked(files[0], 1000))),
        ("chunk_junk", _raw_response([status, ctype, b"Transfer-Encoding: chunked"],
                                     S.chunked(files[1], [700, 1500], size_line=lambda n: b"%xx\0;q" % n))),
        ("nul_fold", _raw_response([status, ctype, b"Transfer-Encoding:", b"\0chunked", b"Content-Encoding:",
                                    b"\0 gzip"], S.chunked(gz[2], 2000))),
        ("lf_cr_cr", _raw_response([status, ctype, b"Content-Encoding: gzip", b"Content-Length: %d" % len(gz[3])],
                                   gz[3], eol=b"\n", end=b"\r\r\n\r\n")),
        ("cl_junk", _raw_response([status, ctype, b"Content-Length: %d;" % len(files[4])],
                                  files[4] + b"<!-- junk the close ends -->")),
    ]
    t = S.Trace(seed=_seed(name))
    exp = []
    for k, (label, resp) in enumerate(variants):
        path = f"/img/{label}.png"
        s = t.session((CLIENT_IP, 52100 + k), (SERVER_IP, 80), at=0.05 * k)
        s.http(S.http_request("GET", path, HOST), resp)
        s.close(by=S.S2C)
        exp.append(_dl(files[k], path))
    pcap = out / f"{name}.pcap"
    t.write(pcap)
    return Case(name, "TE+CL, chunk-size junk, NUL-folded TE/CE, \\n\\r\\r\\n\\r\\n, Content-Length junk",
                pcap, exp, (CLIENT_IP, 52100), (SERVER_IP, 80), allow_extra=True, tshark=False)


@case
def case_multipart_boundary_mismatch(out: Path) -> Case:
    """Two uploads whose delimiters are not the declared boundary: a tolerated variant (the part
    comes out) and one that matches nothing (the whole body comes out, flagged)."""
    name = "multipart_boundary_mismatch"
    rng = _rng(name)
    shell = ("<?php if(isset($_REQUEST['cmd'])){ system($_REQUEST['cmd']); } ?>\n" + S.text(rng, 30)).encode()
    other = S.png_image(rng, 120, 80, "x")

    def upload(used: str, declared: str, fname: str, data: bytes) -> tuple[bytes, bytes]:
        body = (f"--{used}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{fname}\"\r\n"
                "Content-Type: application/octet-stream\r\n\r\n").encode() + data + f"\r\n--{used}--\r\n".encode()
        req = S.http_request("POST", "/upload.php", HOST, body=body,
                             content_type=f"multipart/form-data; boundary={declared}")
        return req, body

    t = S.Trace(seed=_seed(name))
    req1, _ = upload("----WebKitFormBoundaryZ1", '"----webkitformboundaryz1"', "image.png", other)
    req2, body2 = upload("AaB03x", "----WebKitFormBoundaryX9", "cmd.php", shell)
    for k, req in enumerate((req1, req2)):
        s = t.session((CLIENT_IP, 52200 + k), (SERVER_IP, 80), at=0.1 * k)
        s.http(req, S.http_response(200, b"ok", content_type="text/plain"))
        s.close()
    pcap = out / f"{name}.pcap"
    t.write(pcap)
    up = {"direction": "upload", "method": "POST", "url": "/upload.php", "host": HOST}
    exp = [Expected(md5=S.md5(other), size=len(other), filename="image.png", kind="part", **up),  # type: ignore[arg-type]
           Expected(md5=S.md5(body2), size=len(body2), kind="body", **up)]  # type: ignore[arg-type]
    return Case(name, "multipart: a boundary variant (quotes, case) and a delimiter that matches nothing",
                pcap, exp, (CLIENT_IP, 52200), (SERVER_IP, 80), allow_extra=True, tshark=False)


@case
def case_socks_proxied_http(out: Path) -> Case:
    """HTTP through a SOCKS proxy: SOCKS5 with username/password to a name, SOCKS5 to an IPv6
    address, SOCKS4a to a name, SOCKS4 to an address (the client sends the request before the
    proxy answers)."""
    name = "socks_proxied_http"
    rng = _rng(name)
    files = [S.pdf_document(f"Proxied {i}", [S.text(rng, 10)[:80] for _ in range(30)]) for i in range(4)]
    hands = [
        S.socks5_handshake(HOST, 80, auth=("alice", "s3cret")),
        S.socks5_handshake("2001:db8:cafe::80", 8080),
        S.socks4_handshake(HOST, 80, user="bob"),
        S.socks4_handshake(SERVER_IP, 80),
    ]
    t = S.Trace(seed=_seed(name))
    exp = []
    for k, (asks, answers) in enumerate(hands):
        path = f"/reports/proxied-{k}.pdf"
        s = t.session((CLIENT_IP, 52300 + k), (PROXY_IP, 1080), at=0.1 * k)
        req = S.http_request("GET", path, HOST)
        if k == 3:  # optimistic: the request right behind the SOCKS request
            s.client_send(b"".join(asks) + req)
            s.server_send(b"".join(answers))
        else:
            for ask, answer in zip(asks, answers, strict=True):
                s.client_send(ask)
                s.server_send(answer)
            s.client_send(req)
        s.server_send(S.http_response(200, files[k], content_type="application/pdf"))
        s.close()
        exp.append(_dl(files[k], path))
    pcap = out / f"{name}.pcap"
    t.write(pcap)
    return Case(name, "HTTP inside SOCKS5 (auth, domain; IPv6), SOCKS4a (domain) and SOCKS4 (optimistic)",
                pcap, exp, (CLIENT_IP, 52300), (PROXY_IP, 1080))


@case
def case_smtp_starttls_cleartext(out: Path) -> Case:
    """SMTP that says STARTTLS and then goes on in the clear (a TLS-decrypting broker's mirror)."""
    name = "smtp_starttls_cleartext"
    rng = _rng(name)
    pdf = _report_pdf(rng)
    import base64

    b64 = base64.encodebytes(pdf).replace(b"\n", b"\r\n")
    msg = (b"From: alice@example.org\r\nTo: bob@example.com\r\nSubject: figures\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\n"
           b"See attached.\r\n--b1\r\nContent-Type: application/pdf\r\n"
           b"Content-Disposition: attachment; filename=\"figures.pdf\"\r\nContent-Transfer-Encoding: base64\r\n"
           b"\r\n" + b64 + b"--b1--\r\n")
    client, server = (CLIENT_IP, 52400), ("192.0.2.25", 25)
    t = S.Trace(seed=_seed(name))
    s = t.session(client, server)
    s.server_send(b"220 mx.example.com ESMTP Postfix\r\n")
    for line, reply in ((b"EHLO ws1.example.org", b"250-mx.example.com\r\n250 STARTTLS"),
                        (b"STARTTLS", b"220 2.0.0 Ready to start TLS"),
                        (b"EHLO ws1.example.org", b"250-mx.example.com\r\n250 8BITMIME"),
                        (b"MAIL FROM:<alice@example.org>", b"250 2.1.0 Ok"),
                        (b"RCPT TO:<bob@example.com>", b"250 2.1.5 Ok"),
                        (b"DATA", b"354 End data with <CR><LF>.<CR><LF>")):
        s.client_send(line + b"\r\n")
        s.server_send(reply + b"\r\n")
    s.client_send(msg + b".\r\n")
    s.server_send(b"250 2.0.0 Ok: queued\r\n")
    s.client_send(b"QUIT\r\n")
    s.server_send(b"221 2.0.0 Bye\r\n")
    s.close()
    pcap = out / f"{name}.pcap"
    t.write(pcap)
    exp = [Expected(md5=S.md5(pdf), size=len(pdf), direction="upload", filename="figures.pdf", kind="part")]
    return Case(name, "SMTP: STARTTLS answered 220, then the session in clear text", pcap, exp, client, server,
                allow_extra=True, proto="smtp")


@case
def case_sctp_http(out: Path) -> Case:
    """HTTP over SCTP: two exchanges on streams 1 and 2 of one association (messages fragmented
    to the MTU, one chunk captured twice, two swapped), one more on a second association."""
    name = "sctp_http"
    rng = _rng(name)
    files = [S.pdf_document(f"SCTP {i}", [S.text(rng, 10)[:80] for _ in range(40 + 20 * i)]) for i in range(3)]
    client, server = (CLIENT_IP, 52500), (SERVER_IP, 80)
    t = S.Trace(seed=_seed(name))
    a = t.sctp(client, server)
    a.http(S.http_request("GET", "/sctp/a.pdf", HOST), S.http_response(200, files[0], content_type="application/pdf"),
           stream=1, dup=[2], swap=[1])
    a.http(S.http_request("GET", "/sctp/b.pdf", HOST), S.http_response(200, files[1], content_type="application/pdf"),
           stream=2)
    a.close()
    b = t.sctp((CLIENT_IP, 52501), server, at=0.5)
    b.http(S.http_request("GET", "/sctp/c.pdf", HOST), S.http_response(200, files[2], content_type="application/pdf"))
    b.close(abort=True)
    pcap = out / f"{name}.pcap"
    t.write(pcap)
    exp = [_dl(f, f"/sctp/{c}.pdf") for f, c in zip(files, "abc", strict=True)]
    return Case(name, "HTTP over SCTP streams (fragments, a duplicate, a swap; SHUTDOWN and ABORT)", pcap, exp,
                client, server, transport="SCTP")


@case
def case_response_head_lost(out: Path) -> Case:
    """The tap loses the segment that carries a response's head: the rest of the body still
    comes out (flagged, with the hole as missing bytes), and the next response is whole."""
    name = "response_head_lost"
    rng = _rng(name)
    big = S.fake_jpeg(rng, 200_000)
    css = ("p{margin:0}\n" * 300).encode()
    client, server = (CLIENT_IP, 52600), (SERVER_IP, 80)
    t = S.Trace(seed=_seed(name))
    s = t.session(client, server)
    resp = S.http_response(200, big, content_type="image/jpeg")
    sent = s.http(S.http_request("GET", "/photos/site.jpg", HOST), resp, drop=[0])[1]
    assert sent is not None
    ((a, lost_to),) = sent.lost_ranges()
    assert a == 0 and lost_to > len(resp) - len(big), "the lost segment holds the head"
    s.http(S.http_request("GET", "/static/site.css", HOST), S.http_response(200, css, content_type="text/css"))
    s.close()
    pcap = out / f"{name}.pcap"
    t.write(pcap)
    rest = resp[lost_to:]
    exp = [
        Expected(md5=S.md5(rest), size=len(rest), direction="download", state="TRUNCATED", filename="site.jpg",
                 method="GET", url="/photos/site.jpg", host=HOST, kind="body", tx_id=0, gaps=True,
                 missing_bytes=lost_to, truncated="head_lost"),
        _dl(css, "/static/site.css", tx_id=1),
    ]
    return Case(name, "the segment with a 200 KB response's head lost at the tap; then a whole response",
                pcap, exp, client, server)


# --------------------------------------------------------------------------------------------
# more carriers: HTTP/2 (prior knowledge, h2c), WebSocket, IMAP, POP3 — peers are real libraries
# (h2, wsproto) or sessions scripted as the RFCs write them; the bytes cross a synthesised tap
# --------------------------------------------------------------------------------------------


def _replay(s: S.Session, chunks: list[tuple[object, bytes]]) -> None:
    for d, data in chunks:
        (s.client_send if int(d) == S.C2S else s.server_send)(data)  # type: ignore[call-overload]


@case
def case_h2_prior_knowledge(out: Path) -> Case:
    """HTTP/2 with prior knowledge (the preface), made by the h2 library: a download with a
    Content-Disposition filename, a gzip-encoded text, a CSV upload, 16 KiB DATA frames."""
    from tests.reassembly.h2talk import H2Talk

    name = "h2_prior_knowledge"
    rng = _rng(name)
    pdf = _report_pdf(rng)
    text = S.text(rng, 3000).encode()
    up = ("name,card\n" + "".join(f"user{i},4111111111111111\n" for i in range(800))).encode()
    t2 = H2Talk(authority=HOST)
    a = t2.request("GET", "/docs/q3.pdf")
    b = t2.request("GET", "/notes.txt", headers=[("accept-encoding", "gzip")])
    c = t2.request("POST", "/upload/cards.csv", body=up, headers=[("content-type", "text/csv")])
    t2.respond(a, 200, pdf, headers=[("content-type", "application/pdf"),
                                     ("content-disposition", 'attachment; filename="Q3 summary.pdf"')])
    t2.respond(b, 200, S.gzip_bytes(text), headers=[("content-type", "text/plain"), ("content-encoding", "gzip")])
    t2.respond(c, 201, b"stored", headers=[("content-type", "text/plain")])
    client, server = (CLIENT_IP, 50811), (SERVER_IP, 8080)
    t = S.Trace(seed=_seed(name))
    s = t.session(client, server)
    _replay(s, t2.chunks)  # type: ignore[arg-type]
    s.close()
    pcap = out / f"{name}.pcap"
    t.write(pcap)
    exp = [
        Expected(S.md5(pdf), len(pdf), "download", filename="Q3 summary.pdf", method="GET", status=200,
                 url="/docs/q3.pdf", host=HOST, tx_id=0),
        Expected(S.md5(text), len(text), "download", method="GET", status=200, url="/notes.txt", host=HOST, tx_id=1),
        Expected(S.md5(up), len(up), "upload", method="POST", url="/upload/cards.csv", host=HOST, tx_id=2),
        Expected(S.md5(b"stored"), 6, "download", status=201, tx_id=2),
    ]
    return Case(name, "HTTP/2 prior knowledge: download, gzip text, upload (h2 library frames)", pcap, exp,
                client, server)


@case
def case_websocket_deflate(out: Path) -> Case:
    """A WebSocket upgrade with permessage-deflate (wsproto both ends): a fragmented text message
    up, a binary message down, small chat messages joined per direction."""
    from tests.reassembly.wstalk import C, WsTalk
    from tests.reassembly.wstalk import S as DOWN

    name = "websocket_deflate"
    rng = _rng(name)
    text = S.text(rng, 400)
    blob = S.png_image(rng, 200, 120, "shared screen")
    chat = [f'{{"n":{i},"say":"hi {i}"}}' for i in range(12)]
    w = WsTalk(deflate={"client_no_context_takeover": True}, host=HOST, target="/live?room=3")
    w.send(C, text[:500], finished=False)
    w.ping(DOWN)
    w.send(C, text[500:])
    w.send(DOWN, blob)
    for m in chat:
        w.send(C, m)
    client, server = (CLIENT_IP, 50812), (SERVER_IP, 80)
    t = S.Trace(seed=_seed(name))
    s = t.session(client, server)
    _replay(s, w.chunks)  # type: ignore[arg-type]
    s.close()
    pcap = out / f"{name}.pcap"
    t.write(pcap)
    joined = "\n".join(chat).encode()
    exp = [Expected(S.md5(text.encode()), len(text.encode()), "upload", kind="message", tx_id=1),
           Expected(S.md5(blob), len(blob), "download", kind="message", tx_id=2),
           Expected(S.md5(joined), len(joined), "upload", kind="messages", tx_id=3)]
    return Case(name, "WebSocket with permessage-deflate after an HTTP/1.1 upgrade", pcap, exp, client, server,
                proto="websocket")


def _mail(rng: random.Random, subject: str, attachment: bytes, name: str) -> bytes:
    from email.message import EmailMessage

    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "alice@corp.example", "bob@example.net", subject
    msg.set_content(S.text(rng, 60) + "\n.\n..dots\n")
    msg.add_attachment(attachment, maintype="application", subtype="pdf", filename=name)
    msg.set_boundary(f"=={subject.replace(' ', '-')}==")
    return msg.as_bytes().replace(b"\n", b"\r\n")


@case
def case_imap_fetch_append(out: Path) -> Case:
    """IMAP: FETCH BODY[] (a literal in an item list), a partial FETCH, APPEND with LITERAL+."""
    name = "imap_fetch_append"
    rng = _rng(name)
    pdf1, pdf2 = _report_pdf(rng), _report_pdf(rng)
    m1, m2 = _mail(rng, "plan one", pdf1, "one.pdf"), _mail(rng, "plan two", pdf2, "two.pdf")
    client, server = (CLIENT_IP, 50813), (SERVER_IP, 143)
    t = S.Trace(seed=_seed(name))
    s = t.session(client, server)
    s.server_send(b"* OK [CAPABILITY IMAP4rev1 LITERAL+] ready\r\n")
    s.client_send(b"a1 LOGIN alice secret\r\n")
    s.server_send(b"a1 OK\r\n")
    s.client_send(b"a2 SELECT INBOX\r\n")
    s.server_send(b"* 2 EXISTS\r\na2 OK [READ-WRITE] done\r\n")
    s.client_send(b"a3 UID FETCH 41 (UID FLAGS BODY.PEEK[])\r\n")
    s.server_send(b"* 1 FETCH (UID 41 FLAGS (\\Seen) BODY[] {%d}\r\n" % len(m1) + m1 + b")\r\na3 OK\r\n")
    s.client_send(b"a4 FETCH 2 (BODY.PEEK[]<0.1000>)\r\n")
    s.server_send(b"* 2 FETCH (BODY[]<0> {1000}\r\n" + m2[:1000] + b")\r\na4 OK\r\n")
    s.client_send(b"a5 APPEND Sent (\\Seen) {%d+}\r\n" % len(m2) + m2 + b"\r\n")
    s.server_send(b"a5 OK [APPENDUID 7 9] done\r\n")
    s.client_send(b"a6 LOGOUT\r\n")
    s.server_send(b"* BYE\r\na6 OK\r\n")
    s.close()
    pcap = out / f"{name}.pcap"
    t.write(pcap)
    exp = [Expected(S.md5(m1), len(m1), "download", kind="message"),
           Expected(S.md5(pdf1), len(pdf1), "download", kind="part", filename="one.pdf"),
           Expected(None, 1000, "download", state="TRUNCATED", kind="message", truncated="partial", prefix_of=m2),
           Expected(S.md5(m2), len(m2), "upload", kind="message"),
           Expected(S.md5(pdf2), len(pdf2), "upload", kind="part", filename="two.pdf")]
    return Case(name, "IMAP FETCH, partial FETCH, APPEND (LITERAL+)", pcap, exp, client, server, proto="imap",
                allow_extra=True)


@case
def case_pop3_retr(out: Path) -> Case:
    """POP3: two pipelined RETRs with dot-stuffed lines, then TOP (a partial message)."""
    name = "pop3_retr"
    rng = _rng(name)
    pdf1, pdf2 = _report_pdf(rng), _report_pdf(rng)
    m1, m2 = _mail(rng, "plan one", pdf1, "one.pdf"), _mail(rng, "plan two", pdf2, "two.pdf")

    def stuffed(m: bytes) -> bytes:
        return b"\r\n".join(b"." + ln if ln.startswith(b".") else ln for ln in m.split(b"\r\n")) + b".\r\n"

    client, server = (CLIENT_IP, 50814), (SERVER_IP, 110)
    t = S.Trace(seed=_seed(name))
    s = t.session(client, server)
    s.server_send(b"+OK POP3 ready\r\n")
    s.client_send(b"USER alice\r\n")
    s.server_send(b"+OK\r\n")
    s.client_send(b"PASS secret\r\n")
    s.server_send(b"+OK\r\n")
    s.client_send(b"RETR 1\r\nRETR 2\r\n")
    s.server_send(b"+OK\r\n" + stuffed(m1) + b"+OK\r\n" + stuffed(m2))
    s.client_send(b"QUIT\r\n")
    s.server_send(b"+OK bye\r\n")
    s.close()
    pcap = out / f"{name}.pcap"
    t.write(pcap)
    exp = [Expected(S.md5(m1), len(m1), "download", kind="message", tx_id=1),
           Expected(S.md5(pdf1), len(pdf1), "download", kind="part", filename="one.pdf", tx_id=1),
           Expected(S.md5(m2), len(m2), "download", kind="message", tx_id=2),
           Expected(S.md5(pdf2), len(pdf2), "download", kind="part", filename="two.pdf", tx_id=2)]
    return Case(name, "POP3 pipelined RETR with dot-stuffing", pcap, exp, client, server, proto="pop3",
                allow_extra=True)


# --------------------------------------------------------------------------------------------


def generate(name: str, out: Path) -> Case:
    """Write case ``name``'s capture into ``out`` and return the case."""
    out.mkdir(parents=True, exist_ok=True)
    return CASES[name](out)


def generate_all(out: Path) -> dict[str, Case]:
    return {n: generate(n, out) for n in CASES}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    out = Path(args[0]) if args else Path(__file__).parent / "generated"
    names = args[1:] or list(CASES)
    cases = [generate(n, out) for n in names]
    (out / "expected.json").write_text(json.dumps([c.to_json() for c in cases], indent=1) + "\n")
    for c in cases:
        print(f"{c.pcap}  {c.pcap.stat().st_size:>8} B  {len(c.expected)} object(s)  {c.description}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
