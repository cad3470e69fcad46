"""Webhook output: POST each alert as generic JSON (the alert record) or a Slack-compatible ``{"text": …}``.

Uses only the standard library (urllib). Delivery goes through the same durable spool as
syslog: a 2xx answer deletes the message; a network error, timeout, 408, 425, 429 or 5xx
keeps it and retries with backoff, in order; any other 4xx means the receiver will never take
this message, so it is dropped and counted (``rejected``) rather than blocking every later
alert.
"""

from __future__ import annotations

import http.client
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from appliance import __version__
from appliance.outputs.alertjson import dumps, fit_json
from appliance.outputs.fields import CONTROL, cut, flat
from appliance.outputs.spool import DEFAULT_MAX_BYTES, SpooledOutput

__all__ = ["WebhookOutput", "slack_text"]

_SEV_NAME = {1: "CRITICAL", 2: "HIGH", 3: "MEDIUM", 4: "LOW", 5: "INFO"}
_RETRY = frozenset({408, 425, 429})


def _plain(value: Any, n: int = 300) -> str:
    """One line of Slack mrkdwn-safe text: controls removed, ``& < >`` escaped, bounded."""
    s = CONTROL.sub("\ufffd", str(value)).replace("\r", " ").replace("\n", " ").replace("\t", " ")
    return cut(s, n).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_text(record: dict[str, Any]) -> str:
    """A short human summary of an alert record for Slack-compatible webhooks."""
    f = flat(record)
    lines = [
        f"*[{_SEV_NAME.get(f['severity'], f['severity'])}] {_plain(f['category'])}*: "
        f"{_plain(f['signature'])} (alert {_plain(f['alert_id'], 40)})",
        f"{_plain(f['src_ip'], 64)}:{f['src_port']} → {_plain(f['dest_ip'], 64)}:{f['dest_port']} "
        f"{_plain(f['proto'], 8)}, zones {_plain(f['src_zone'], 64)} → {_plain(f['dst_zone'], 64)}",
    ]
    if f["http_host"] or f["http_url"]:
        lines.append(f"{_plain(f['http_method'], 16)} {_plain(f['http_host'], 128)}{_plain(f['http_url'])}")
    if f["filename"] or f["sha256"]:
        lines.append(
            f"file {_plain(f['filename'], 128)} ({_plain(f['file_size'], 20)} bytes) "
            f"sha256 {_plain(f['sha256'], 64)}"
        )
    if f["findings"]:
        lines.append(f"findings: {_plain(f['findings'], 500)}")
    if f["evidence"]:
        lines.append(f"evidence: {_plain(f['evidence'], 500)}")
    return "\n".join(lines)


class WebhookOutput(SpooledOutput):
    """POSTs alert records to an HTTP(S) endpoint through a durable spool."""

    name = "webhook"

    def __init__(
        self,
        url: str,
        style: str = "json",
        spool_dir: str | Path | None = None,
        *,
        headers: dict[str, str] | None = None,
        max_body: int = 64 * 1024,
        timeout: float = 10.0,
        ca_file: str | None = None,
        verify: bool = True,
        max_spool_bytes: int = DEFAULT_MAX_BYTES,
        spool_sync: str = "normal",
        backoff_min: float = 0.5,
        backoff_max: float = 30.0,
    ) -> None:
        if style not in ("json", "slack"):
            raise ValueError(f"style must be 'json' or 'slack', not {style!r}")
        if not url.startswith(("http://", "https://")):
            raise ValueError("webhook url must be http:// or https://")
        super().__init__(spool_dir, max_spool_bytes=max_spool_bytes, spool_sync=spool_sync, batch=64,
                         backoff_min=backoff_min, backoff_max=backoff_max)
        self.url = url
        self.style = style
        self.max_body = max(max_body, 1024)
        self.timeout = timeout
        self.headers = {"Content-Type": "application/json; charset=utf-8",
                        "User-Agent": f"tapsift/{__version__}", **(headers or {})}
        self._ctx: ssl.SSLContext | None = None
        if url.startswith("https://"):
            self._ctx = ssl.create_default_context(cafile=ca_file)
            if not verify:
                self._ctx.check_hostname = False
                self._ctx.verify_mode = ssl.CERT_NONE
        self.rejected = 0

    def render(self, record: dict[str, Any]) -> bytes:
        if self.style == "slack":
            return dumps({"text": cut(slack_text(record), self.max_body // 8)}).encode("utf-8")
        return fit_json(record, self.max_body).encode("utf-8")

    def _post(self, body: bytes) -> int:
        req = urllib.request.Request(self.url, data=body, headers=self.headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout, context=self._ctx) as resp:
                resp.read(65536)
                return int(resp.status)
        except urllib.error.HTTPError as e:
            return int(e.code)

    def _pump(self) -> tuple[int, BaseException | None]:
        n = 0
        for seq, body in self.spool.peek(0, self.batch):
            try:
                status = self._post(body)
            except (OSError, ValueError, http.client.HTTPException) as err:
                return n, err
            if 200 <= status < 300:
                self.delivered += self.spool.ack(seq)
                n += 1
            elif status in _RETRY or status >= 500 or status < 400:
                return n, ConnectionError(f"HTTP {status} from webhook")
            else:
                self.rejected += self.spool.ack(seq)
                self.last_error = f"HTTP {status}: message rejected and dropped"
        return n, None

    def stats(self) -> dict[str, Any]:
        out = super().stats()
        out["rejected"] = self.rejected
        return out

