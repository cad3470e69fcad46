"""The sensor's PCAP endpoint: a fleet console asks a sensor for the packets of a flow or a time range.

A small HTTP(S) server (standard library, one thread per request) over the sensor's packet store
(`appliance.packetstore`), every request authenticated by a bearer token compared in constant time::

    GET /v1/pcap?since=<ns>&until=<ns>[&flow=<ip_a>,<port_a>,<ip_b>,<port_b>[,<proto>]]
        Authorization: Bearer <token>            → 200 application/vnd.tcpdump.pcap
    GET /v1/health                               → 200 {"files": N, "bytes": …}

A missing or wrong token gets 401, a bad parameter 400, a range longer than ``max_range_s`` 400.
`PacketServer` runs in a thread of the sensor (``serve_in_thread``) or alone (``tapsift pcap serve``);
`fetch_pcap` is the console's client.
"""

from __future__ import annotations

import hmac
import io
import json
import ssl
import threading
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from appliance.packetstore import FlowMatch, PacketReader, list_files

__all__ = ["PacketServer", "fetch_pcap", "parse_flow"]

MAX_RANGE_S = 7 * 86400
MAX_PCAP_BYTES = 256 << 20


def parse_flow(text: str) -> FlowMatch:
    """``ip_a,port_a,ip_b,port_b[,proto]`` (ports may be empty) → `FlowMatch`; ValueError when malformed."""
    parts = text.split(",")
    if len(parts) not in (4, 5):
        raise ValueError("flow is ip_a,port_a,ip_b,port_b[,proto]")

    def port(v: str) -> int | None:
        if not v:
            return None
        n = int(v)
        if not 0 <= n <= 65535:
            raise ValueError("port out of range")
        return n

    proto = int(parts[4]) if len(parts) == 5 and parts[4] else None
    return FlowMatch(parts[0], port(parts[1]), parts[2], port(parts[3]), proto)


def flow_param(flow: FlowMatch) -> str:
    return ",".join(str(x) if x is not None else "" for x in (flow.ip_a, flow.port_a, flow.ip_b, flow.port_b,
                                                                flow.proto))


class _Handler(BaseHTTPRequestHandler):
    server: PacketServer
    protocol_version = "HTTP/1.1"
    server_version = "tapsift-pcap"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _send(self, status: int, body: bytes, ctype: str = "application/json", extra: dict[str, str] | None = None
              ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: int, message: str) -> None:
        extra = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        self._send(status, json.dumps({"detail": message}).encode(), extra=extra)

    def do_GET(self) -> None:
        auth = self.headers.get("Authorization", "")
        given = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
        if not given or not hmac.compare_digest(given.encode(), self.server.token.encode()):
            self._error(401, "a valid bearer token is needed")
            return
        url = urllib.parse.urlsplit(self.path)
        q = urllib.parse.parse_qs(url.query)
        if url.path == "/v1/health":
            files = list_files(self.server.dir)
            self._send(200, json.dumps({"files": len(files), "bytes": sum(f.size for f in files)}).encode())
            return
        if url.path != "/v1/pcap":
            self._error(404, "not found")
            return
        try:
            since, until = int(q["since"][0]), int(q["until"][0])
            flow = parse_flow(q["flow"][0]) if "flow" in q else None
        except (KeyError, ValueError, IndexError) as exc:
            self._error(400, f"bad parameters: {exc}")
            return
        if until <= since or until - since > self.server.max_range_s * 10**9:
            self._error(400, f"the range must be positive and at most {self.server.max_range_s} s")
            return
        buf = io.BytesIO()
        stats = PacketReader(self.server.dir).cut(buf, since, until, flow, self.server.max_bytes)
        self._send(200, buf.getvalue(), "application/vnd.tcpdump.pcap",
                   {"X-Tapsift-Packets": str(stats["packets"]), "X-Tapsift-Truncated": str(stats["truncated"])})


class PacketServer(ThreadingHTTPServer):
    """The endpoint over a packet store directory (see the module doc)."""

    daemon_threads = True

    def __init__(self, directory: str | Path, token: str, host: str = "127.0.0.1", port: int = 0, *,
                 tls_cert: str | None = None, tls_key: str | None = None, max_range_s: int = MAX_RANGE_S,
                 max_bytes: int = MAX_PCAP_BYTES) -> None:
        if len(token) < 16:
            raise ValueError("the PCAP endpoint's token must have at least 16 characters")
        self.dir, self.token = Path(directory), token
        self.max_range_s, self.max_bytes = max_range_s, max_bytes
        super().__init__((host, port), _Handler)
        if tls_cert:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            ctx.load_cert_chain(tls_cert, tls_key)
            self.socket = ctx.wrap_socket(self.socket, server_side=True)
        self.tls = bool(tls_cert)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"{'https' if self.tls else 'http'}://{host}:{port}"

    def serve_in_thread(self) -> threading.Thread:
        t = threading.Thread(target=self.serve_forever, name="tapsift-pcap-endpoint", daemon=True)
        t.start()
        return t


def fetch_pcap(url: str, token: str, since_ns: int, until_ns: int, flow: FlowMatch | None = None, *,
               ca_file: str | None = None, timeout: float = 30.0, max_bytes: int = MAX_PCAP_BYTES) -> bytes:
    """The console's client: the pcap the sensor at *url* cuts; `OSError` when it cannot be had."""
    params = {"since": str(since_ns), "until": str(until_ns)}
    if flow is not None:
        params["flow"] = flow_param(flow)
    req = urllib.request.Request(url.rstrip("/") + "/v1/pcap?" + urllib.parse.urlencode(params),
                                 headers={"Authorization": f"Bearer {token}"})
    ctx = ssl.create_default_context(cafile=ca_file) if url.startswith("https://") else None
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=ctx) as resp:
            data = resp.read(max_bytes + 1)
    except urllib.error.HTTPError as exc:
        raise OSError(f"the sensor answered HTTP {exc.code}") from None
    except urllib.error.URLError as exc:
        raise OSError(f"cannot reach the sensor: {exc.reason}") from None
    if len(data) > max_bytes:
        raise OSError("the PCAP is larger than the console takes")
    return data
