"""Webhook output against a local HTTP server: JSON and Slack bodies, retry and reject rules."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from appliance.outputs.alertjson import alert_record
from appliance.outputs.webhook import WebhookOutput, slack_text
from tests.appliance.outputs.alert_factories import alert, content


class Hook:
    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.headers: list[dict[str, str]] = []
        self.statuses: list[int] = []  # scripted answers, then 200
        hook = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                status = hook.statuses.pop(0) if hook.statuses else 200
                if status == 200:
                    hook.bodies.append(body)
                    hook.headers.append(dict(self.headers))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *a: object) -> None:
                pass

        self.srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.srv.server_address[1]}/hook"
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()


@pytest.fixture
def hook() -> Iterator[Hook]:
    h = Hook()
    yield h
    h.srv.shutdown()


def test_generic_json(hook: Hook, tmp_path: Path) -> None:
    out = WebhookOutput(hook.url, "json", tmp_path, headers={"Authorization": "Bearer t"})
    out.send_many([alert_record(alert(i), content(i)) for i in range(3)])
    assert out.flush(5)
    assert [json.loads(b)["tapsift"]["alert_id"] for b in hook.bodies] == [f"A{i:08d}" for i in range(3)]
    assert hook.headers[0]["Authorization"] == "Bearer t"
    assert hook.headers[0]["Content-Type"].startswith("application/json")
    out.close()


def test_slack_text_is_escaped_and_single_purpose(hook: Hook, tmp_path: Path) -> None:
    out = WebhookOutput(hook.url, "slack", tmp_path)
    out.send(alert_record(alert(1, snippet="<!channel> & \x00\r\nboom"), content(1)))
    assert out.flush(5)
    body = json.loads(hook.bodies[0])
    assert list(body) == ["text"]
    assert "&lt;!channel&gt; &amp;" in body["text"] and "\x00" not in body["text"]
    assert body["text"].startswith("*[HIGH] data-leak*: lan-to-wan/dlp (alert A00000001)")
    out.close()
    assert "10.0.0.2:40001 → 192.0.2.80:80" in slack_text(alert_record(alert(1), content(1)))


def test_retry_on_5xx_and_429_in_order_reject_other_4xx(hook: Hook, tmp_path: Path) -> None:
    hook.statuses = [503, 429, 200, 400]
    out = WebhookOutput(hook.url, "json", tmp_path, backoff_min=0.01)
    out.send_many([alert_record(alert(i), content(i)) for i in range(3)])
    assert out.pump() == 0 and len(out.spool) == 3  # 503: kept
    assert out.pump() == 0  # 429: kept
    assert out.pump() == 2  # A0 delivered, A1 rejected with 400 (dropped), A2 delivered
    assert [json.loads(b)["tapsift"]["alert_id"] for b in hook.bodies] == ["A00000000", "A00000002"]
    assert out.stats()["rejected"] == 1 and out.stats()["delivered"] == 2 and len(out.spool) == 0
    out.close()


def test_unreachable_endpoint_keeps_alerts(tmp_path: Path) -> None:
    out = WebhookOutput("http://127.0.0.1:9/", "json", tmp_path, timeout=1)
    out.send(alert_record(alert(1), content(1)))
    assert out.pump() == 0 and len(out.spool) == 1 and out.errors == 1
    out.close(flush_timeout=0)
    out2 = WebhookOutput("http://127.0.0.1:9/", "json", tmp_path)
    assert len(out2.spool) == 1
    out2.close(flush_timeout=0)
