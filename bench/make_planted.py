#!/usr/bin/env python3
"""The live benchmark's workload: the `make_workload` HTTP mix with planted violations.

    .venv/bin/python bench/make_planted.py bench/data/planted.pcap --mb 200 --per-kind 500 --seed 14

Background: `make_workload.Workload` (HTML/CSS/JS/JSON, noise JPEG/PNG, PDF, DOCX, uploads, TLS,
DNS, impairments), with the clients in the office zone of ``policies/sample.yaml``
(10.20.1–8.x) so that both benchmark policies inspect everything. Planted: ``--per-kind``
objects of each kind, each carrying the prohibited term ``falun gong`` (weight 10 in both the
sample policy's ``prohibited-terms`` and ``bench/live_policy.yaml``), each at its own URL
``/planted/<kind>/<n>.<ext>``, spread over the capture in their own sessions:

| kind | object |
|---|---|
| ``html`` | a downloaded page (the term in one paragraph of several) |
| ``text`` | a plain-text upload (``POST``, ``text/plain``) |
| ``json`` | a JSON API body (``POST``, ``application/json``) |
| ``docx`` | a downloaded Word document |
| ``pdf`` | a downloaded PDF |
| ``image`` | a downloaded JPEG with the term rendered in it (DejaVu Sans 30 px: OCR reads it) |

The manifest (``OUT.manifest.json``) adds ``planted``: one entry per planted object (kind, URL,
direction, size) beside the background objects and the summary.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from make_workload import DOCX_MIME, Workload

from tools import synth as S

TERM = "falun gong"
KINDS = ("html", "text", "json", "docx", "pdf", "image")
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


class PlantedWorkload(Workload):
    """`Workload` with office clients and planted sessions interleaved."""

    def __init__(self, *args: object, per_kind: int, **kw: object) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self.todo = [k for k in KINDS for _ in range(per_kind)]
        self.prng = random.Random(self.rng.getrandbits(64))
        self.prng.shuffle(self.todo)
        self.planted: list[dict[str, object]] = []
        self._font = None

    def client(self) -> tuple[str, int]:
        ip = f"10.20.{self.rng.randint(1, 8)}.{self.rng.randint(10, 250)}"  # office, not voice/finance
        p = self.ports.get(ip, 32768 + self.rng.randrange(20000)) + self.rng.randint(1, 9)
        self.ports[ip] = p if p < 60999 else 32768
        return ip, self.ports[ip]

    def image(self, n: int) -> bytes:
        from PIL import Image, ImageDraw, ImageFont

        if self._font is None:
            self._font = ImageFont.truetype(FONT, 30)
        r = self.prng
        img = Image.new("RGB", (640, 220), tuple(r.randint(225, 255) for _ in range(3)))
        d = ImageDraw.Draw(img)
        d.text((20, 30), f"Notice {n}: join {TERM} today", font=self._font, fill=(20, 20, 20))
        d.text((20, 120), self.prose(30).strip(), font=self._font, fill=(40, 40, 90))
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=85)
        return buf.getvalue()

    def planted_object(self, kind: str, n: int) -> tuple[str, bytes, str, str]:
        """(path, entity, content type, direction)."""
        para = [self.prose(self.size(300, 3000)) for _ in range(self.prng.randint(2, 8))]
        para.insert(self.prng.randrange(len(para) + 1), f"Members of {TERM} meet on Sunday (item {n}).")
        if kind == "html":
            return f"/planted/html/{n}.html", S.html_page(f"Page {n}", para), "text/html; charset=utf-8", "download"
        if kind == "text":
            return f"/planted/text/{n}.txt", "\n\n".join(para).encode(), "text/plain; charset=utf-8", "upload"
        if kind == "json":
            body = json.dumps({"id": n, "title": f"note {n}", "body": " ".join(para)}).encode()
            return f"/planted/json/{n}", body, "application/json", "upload"
        if kind == "docx":
            return f"/planted/docx/{n}.docx", S.docx_document(f"Memo {n}", para), DOCX_MIME, "download"
        if kind == "pdf":
            lines = [ln for p in para for ln in _wrap(p, 90)]
            return f"/planted/pdf/{n}.pdf", S.pdf_document(f"Report {n}", lines), "application/pdf", "download"
        return f"/planted/image/{n}.jpg", self.image(n), "image/jpeg", "download"

    def planted_session(self, at: float, merger: S.FrameMerger) -> int:
        kind = self.todo.pop()
        n = len(self.planted)
        path, ent, ctype, direction = self.planted_object(kind, n)
        sip, host = self.rng.choice(self.servers)
        cip, cport = self.client()
        s = S.Session((cip, cport), (sip, 80), rng=random.Random(self.rng.getrandbits(64)),
                      start=S.DEFAULT_START + at, rtt=0.005 + 0.03 * self.rng.random(),
                      rate_bps=self.rng.choice([50e6, 100e6, 200e6]), **self.impair)
        if direction == "upload":
            sent = s.client_send(S.http_request("POST", path, host, body=ent, content_type=ctype))
            s.server_send(S.http_response(201, b'{"ok":true}', content_type="application/json"))
        else:
            s.client_send(S.http_request("GET", path, host))
            sent = s.server_send(S.http_response(200, ent, content_type=ctype))
        s.close()
        frames = s.drain()
        merger.push(frames)
        self.planted.append({"kind": kind, "url": path, "host": host, "direction": direction, "size": len(ent),
                             "md5": S.md5(ent), "lossy": sent.lost_bytes > 0})
        return sum(len(f) for _, f in frames)

    def run(self, out: Path) -> None:
        with S.Writer(out) as w:
            merger = S.FrameMerger(w)
            total = 0
            planted_total = len(self.todo)
            while total < self.target or self.todo:
                merger.flush(int((S.DEFAULT_START + self.clock) * 1e9))
                x = self.rng.random()
                # planted sessions keep pace with the bytes written: spread evenly over the capture
                if self.todo and len(self.planted) / planted_total <= total / self.target:
                    n = self.planted_session(self.clock, merger)
                elif x < 0.06:
                    n = self.tls_session(self.clock, merger)
                else:
                    if x < 0.3:
                        self.dns(self.clock, merger)
                    n = self.http_session(self.clock, merger)
                total += n
                self.clock += n * 8 / self.rate_bps * (0.5 + self.rng.random())
            merger.flush()
            self.written = w.bytes
            self.frames = w.count


def _wrap(text: str, width: int) -> list[str]:
    out, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            out.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return out + ([line] if line else [])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--mb", type=float, default=200, help="approximate capture size in MB (default 200)")
    ap.add_argument("--per-kind", type=int, default=500, help="planted objects of each kind (default 500)")
    ap.add_argument("--seed", type=int, default=14)
    ap.add_argument("--rate", type=float, default=300, help="nominal aggregate Mbit/s (capture span)")
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    a.out.parent.mkdir(parents=True, exist_ok=True)
    wl = PlantedWorkload(a.seed, int(a.mb * 1e6), a.rate * 1e6, 0.001, 0.0, 0.001, 0.0005, per_kind=a.per_kind)
    wl.run(a.out)
    manifest = a.out.with_name(a.out.name.rsplit(".", 1)[0] + ".manifest.json")
    summary = {"capture": a.out.name, "seed": a.seed, "mb": a.mb, "frames": wl.frames, "frame_bytes": wl.written,
               "objects": len(wl.objects) + len(wl.planted), "planted": len(wl.planted),
               "planted_per_kind": a.per_kind, "term": TERM, "generation_s": round(time.perf_counter() - t0, 1)}
    manifest.write_text(json.dumps({"summary": summary, "planted": wl.planted, "objects": wl.objects}) + "\n")
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
