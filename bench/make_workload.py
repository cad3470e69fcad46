#!/usr/bin/env python3
"""Write a reproducible HTTP benchmark capture and a manifest of its objects.

    .venv/bin/python bench/make_workload.py OUT.pcap --mb 300 --seed 1

Traffic: HTTP/1.1 keep-alive sessions (1-8 exchanges) with HTML/CSS/JS/JSON (some gzip, some
chunked), JPEG/PNG images (10 KB-2 MB), PDF and DOCX documents, multipart uploads, 304/404s;
TLS sessions on 443 and DNS as non-HTTP noise; interleaved connections; network loss (late
retransmissions), reordering, duplicates and a little tap loss (real gaps). Frames are built with
`tools.synth` (struct packing), so 300 MB take well under a minute or two.

The manifest (``OUT.manifest.json``) lists every body: ``md5`` of the decoded entity (what
tapsift's fileinfo reports), ``md5_wire`` when the wire body differs (content-encoded),
``md5_body`` for multipart request bodies (what tshark exports), and ``lossy`` when the tap lost
bytes of that message or of an earlier one in the same direction of the flow.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tools import synth as S

DOCX_MIME = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


class Workload:
    def __init__(
        self,
        seed: int,
        target_bytes: int,
        rate_bps: float,
        loss: float,
        tap_loss: float,
        reorder: float,
        dup: float,
    ) -> None:
        self.rng = random.Random(seed)
        self.target = target_bytes
        self.rate_bps = rate_bps
        self.impair = {"loss": loss, "tap_loss": tap_loss, "reorder": reorder, "dup": dup}
        self.objects: list[dict[str, object]] = []
        self.corpus = S.text(random.Random(seed ^ 0xC0FFEE), 400_000)
        self.written = 0
        self.sessions = 0
        self.tls_sessions = 0
        self.clock = 0.0
        self.ports: dict[str, int] = {}
        self.servers = [(f"203.0.113.{i}", f"www{i}.example.com") for i in range(10, 40)]
        self.servers += [(f"198.51.100.{i}", f"cdn{i}.example.net") for i in range(10, 30)]

    # -- content ------------------------------------------------------------------------------

    def prose(self, nbytes: int) -> str:
        start = self.rng.randrange(0, max(1, len(self.corpus) - nbytes))
        out = self.corpus[start : start + nbytes]
        while len(out) < nbytes:
            out += " " + self.corpus[: nbytes - len(out)]
        return out

    def size(self, lo: int, hi: int) -> int:
        """Log-uniform size in [lo, hi]."""
        return int(lo * (hi / lo) ** self.rng.random())

    def response_for(self) -> tuple[str, bytes, str, dict[str, object]]:
        """(path, entity, content type, http_response kwargs)."""
        r = self.rng
        x = r.random()
        n = r.randrange(1_000_000)
        kw: dict[str, object] = {}
        if x < 0.25:
            body = S.html_page(
                f"Page {n}", [self.prose(self.size(500, 8000)) for _ in range(r.randint(2, 15))]
            )
            path, ctype = f"/articles/{n}.html", "text/html; charset=utf-8"
            if r.random() < 0.5:
                kw["encoding"] = "gzip"
            if r.random() < 0.4:
                kw["framing"], kw["chunk"] = "chunked", r.choice([4096, 8192, [1000, 3000, 16384]])
        elif x < 0.38:
            kind = r.choice(["css", "js", "json"])
            text = self.prose(self.size(1000, 60_000))
            body = (json.dumps({"id": n, "text": text}) if kind == "json" else text).encode()
            path = f"/static/{n}.{kind}" if kind != "json" else f"/api/v1/items/{n}"
            ctype = {"css": "text/css", "js": "application/javascript", "json": "application/json"}[kind]
            if r.random() < 0.6:
                kw["encoding"] = "gzip"
        elif x < 0.70:
            body = S.fake_jpeg(r, self.size(10_000, 2_000_000))
            path, ctype = f"/img/{n}.jpg", "image/jpeg"
        elif x < 0.82:
            body = S.fake_png(r, self.size(10_000, 1_000_000))
            path, ctype = f"/img/{n}.png", "image/png"
        elif x < 0.92:
            lines = [self.prose(90) for _ in range(self.size(300, 15_000) // 90)]
            body = S.pdf_document(f"Report {n}", lines, compress=r.random() < 0.5)
            path, ctype = f"/docs/report-{n}.pdf", "application/pdf"
        else:
            body = S.docx_document(
                f"Memo {n}", [self.prose(self.size(200, 3000)) for _ in range(r.randint(3, 60))]
            )
            path, ctype = f"/docs/memo-{n}.docx", DOCX_MIME
        return path, body, ctype, kw

    # -- sessions -------------------------------------------------------------------------------

    def client(self) -> tuple[str, int]:
        ip = f"10.77.{self.rng.randint(1, 8)}.{self.rng.randint(10, 250)}"
        p = self.ports.get(ip, 32768 + self.rng.randrange(20000)) + self.rng.randint(1, 9)
        self.ports[ip] = p if p < 60999 else 32768
        return ip, self.ports[ip]

    def http_session(self, trace_at: float, merger: S.FrameMerger) -> int:
        r = self.rng
        sip, host = r.choice(self.servers)
        cip, cport = self.client()
        s = S.Session(
            (cip, cport),
            (sip, 80),
            rng=random.Random(r.getrandbits(64)),
            start=S.DEFAULT_START + trace_at,
            rtt=0.005 + 0.06 * r.random(),
            rate_bps=r.choice([50e6, 100e6, 200e6, 500e6]),
            **self.impair,
        )
        lossy = [False, False]
        n_ex = r.randint(1, 8)
        for tx in range(n_ex):
            flow = f"{cip}:{cport}-{sip}:80"
            if r.random() < 0.08:  # an upload
                if r.random() < 0.5:
                    data = S.docx_document(
                        "Upload", [self.prose(self.size(200, 3000)) for _ in range(r.randint(3, 40))]
                    )
                    fn, ct = f"draft-{r.randrange(10**6)}.docx", DOCX_MIME
                else:
                    data = S.fake_jpeg(r, self.size(20_000, 1_500_000))
                    fn, ct = f"IMG_{r.randrange(10**4):04d}.jpg", "image/jpeg"
                body, form_ct = S.multipart_body(
                    fields=[("title", self.prose(30))], files=[("file", fn, ct, data)]
                )
                req = S.http_request("POST", "/upload", host, body=body, content_type=form_ct)
                sent = s.client_send(req)
                lossy[0] |= sent.lost_bytes > 0
                self.objects.append(
                    {
                        "flow": flow,
                        "tx_id": tx,
                        "url": "/upload",
                        "host": host,
                        "direction": "upload",
                        "kind": "part",
                        "filename": fn,
                        "size": len(data),
                        "md5": S.md5(data),
                        "md5_body": S.md5(body),
                        "lossy": lossy[0],
                    }
                )
                ent = b'{"ok":true,"id":%d}' % r.randrange(10**6)
                resp = S.http_response(201, ent, content_type="application/json")
                path = "/upload"
            else:
                path, ent, ctype, kw = self.response_for()
                status = 200
                if r.random() < 0.03:
                    status, ent, ctype, kw = (
                        404,
                        S.html_page("Not found", ["The page does not exist."]),
                        "text/html",
                        {},
                    )
                if r.random() < 0.03:
                    req = S.http_request("GET", path, host, headers=[("If-None-Match", '"x"')])
                    sent = s.client_send(req)
                    lossy[0] |= sent.lost_bytes > 0
                    sent = s.server_send(S.http_response(304, b"", content_type=None, framing="none"))
                    lossy[1] |= sent.lost_bytes > 0
                    continue
                resp = S.http_response(status, ent, content_type=ctype, **kw)  # type: ignore[arg-type]
                sent = s.client_send(S.http_request("GET", path, host))
                lossy[0] |= sent.lost_bytes > 0
            sent = s.server_send(resp)
            lossy[1] |= sent.lost_bytes > 0
            obj: dict[str, object] = {
                "flow": flow,
                "tx_id": tx,
                "url": path,
                "host": host,
                "direction": "download",
                "kind": "body",
                "size": len(ent),
                "md5": S.md5(ent),
                "lossy": lossy[1],
            }
            if b"Content-Encoding: gzip" in resp[:1000]:
                obj["md5_wire"] = S.md5(S.gzip_bytes(ent))
                obj["encoding"] = "gzip"
            self.objects.append(obj)
            if tx < n_ex - 1:
                s.wait(r.random() * 0.05)
        s.close(by=r.choice([S.C2S, S.S2C]))
        frames = s.drain()
        merger.push(frames)
        self.sessions += 1
        return sum(len(f) for _, f in frames)

    def tls_session(self, at: float, merger: S.FrameMerger) -> int:
        r = self.rng
        cip, cport = self.client()
        s = S.Session(
            (cip, cport),
            (f"192.0.2.{r.randint(1, 250)}", 443),
            rng=random.Random(r.getrandbits(64)),
            start=S.DEFAULT_START + at,
            rtt=0.01 + 0.05 * r.random(),
        )
        s.client_send(S.tls_client_hello(s.rng, f"svc{r.randrange(100)}.example.org"))
        s.server_send(S.tls_server_hello(s.rng))
        n = self.size(2000, 3_000_000)
        s.client_send(S.tls_records(s.rng, self.size(300, 20_000)))
        s.server_send(S.tls_records(s.rng, n))
        s.close()
        frames = s.drain()
        merger.push(frames)
        self.tls_sessions += 1
        return sum(len(f) for _, f in frames)

    def dns(self, at: float, merger: S.FrameMerger) -> None:
        r = self.rng
        cip, _ = self.client()
        sport, qid = r.randint(32768, 60999), r.getrandbits(16)
        name = f"host{r.randrange(1000)}.example.com"
        ts = int((S.DEFAULT_START + at) * 1e9)
        link = S.Ethernet()
        q, et = S.udp_packet(cip, "10.77.0.53", sport, 53, S.dns_query(name, qid))
        a, _ = S.udp_packet("10.77.0.53", cip, 53, sport, S.dns_response(name, qid, "203.0.113.10"))
        merger.push(
            [(S._us(ts), link.wrap(q, et, True, ts)), (S._us(ts + 3_000_000), link.wrap(a, et, False, ts))]
        )

    def run(self, out: Path) -> None:
        with S.Writer(out) as w:
            merger = S.FrameMerger(w)
            total = 0
            while total < self.target:
                merger.flush(int((S.DEFAULT_START + self.clock) * 1e9))
                x = self.rng.random()
                if x < 0.06:
                    n = self.tls_session(self.clock, merger)
                else:
                    if x < 0.3:
                        self.dns(self.clock, merger)
                    n = self.http_session(self.clock, merger)
                total += n
                # the next connection starts after a share of this one's airtime: ~rate_bps overall
                self.clock += n * 8 / self.rate_bps * (0.5 + self.rng.random())
            merger.flush()
            self.written = w.bytes
            self.frames = w.count


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--mb", type=float, default=300, help="approximate capture size in MB (default 300)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--rate", type=float, default=300, help="nominal aggregate Mbit/s (capture span)")
    ap.add_argument("--loss", type=float, default=0.001, help="segments lost before the tap (retransmitted)")
    ap.add_argument("--tap-loss", type=float, default=0.0001, help="segments the tap loses (real gaps)")
    ap.add_argument("--reorder", type=float, default=0.001)
    ap.add_argument("--dup", type=float, default=0.0005)
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    a.out.parent.mkdir(parents=True, exist_ok=True)
    wl = Workload(a.seed, int(a.mb * 1e6), a.rate * 1e6, a.loss, a.tap_loss, a.reorder, a.dup)
    wl.run(a.out)
    dt = time.perf_counter() - t0
    manifest = a.out.with_name(a.out.name.rsplit(".", 1)[0] + ".manifest.json")
    summary = {
        "capture": a.out.name,
        "seed": a.seed,
        "mb": a.mb,
        "frames": wl.frames,
        "frame_bytes": wl.written,
        "file_bytes": a.out.stat().st_size,
        "http_sessions": wl.sessions,
        "tls_sessions": wl.tls_sessions,
        "objects": len(wl.objects),
        "lossy_objects": sum(1 for o in wl.objects if o["lossy"]),
        "span_s": round(wl.clock, 3),
        "generation_s": round(dt, 1),
        "impairments": {"loss": a.loss, "tap_loss": a.tap_loss, "reorder": a.reorder, "dup": a.dup},
    }
    manifest.write_text(json.dumps({"summary": summary, "objects": wl.objects}, indent=0) + "\n")
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
