"""The pipeline builder over generated traffic: HTTP CONNECT tunnels detected afresh, datagram
entries and metadata events reaching EVE, inspector errors in the stats, SIGHUP reloads."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from appliance.cli import _stats
from appliance.metrics import render
from appliance.model import ContentObject, Direction, Flow, Packet
from appliance.pipeline import Outputs, build_pipeline
from appliance.settings import Settings
from capture import fastpath
from capture.pcapfile import open_capture
from reassembly.applayer import AppProtocol, ParserContext
from reassembly.applayer.table import PROTOCOLS
from reassembly.objects import flow_ref
from tools import synth as S

PATHS = [False, True] if fastpath.available() else [False]
CONNECT = b"CONNECT inner.example:80 HTTP/1.1\r\nHost: inner.example:80\r\nProxy-Connection: keep-alive\r\n\r\n"
ESTABLISHED = b"HTTP/1.1 200 Connection established\r\n\r\n"


def _pdf() -> bytes:
    return S.pdf_document("Tunnelled", ("Through the proxy.",))


def _read(pcap: Path, fast: bool = True, settings: Settings | None = None,
          **kw: Any) -> tuple[Any, list[dict[str, Any]]]:
    settings = settings or Settings()
    settings.reassembly.fast_path = fast
    events: list[dict[str, Any]] = []
    pipe = build_pipeline(settings, Outputs(event=events.append), **kw)
    with open_capture(pcap) as cap:
        pipe.drive(cap)
    pipe.finish()
    return pipe, events


def _files(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e["event_type"] == "fileinfo"]


@pytest.mark.parametrize("fast", PATHS)
@pytest.mark.parametrize("optimistic", [False, True])
def test_connect_to_a_plaintext_port_is_detected_afresh(tmp_path: Path, fast: bool, optimistic: bool) -> None:
    """After a 2xx to CONNECT the tunnel's bytes are detected again: the proxied HTTP yields its
    objects, which carry the CONNECT target. A client that does not wait for the 200 too."""
    pdf = _pdf()
    t = S.Trace(seed=21)
    s = t.session(("10.20.1.5", 41000), ("192.0.2.50", 3128))
    inner = S.http_request("GET", "/report.pdf", "inner.example")
    if optimistic:
        s.client_send(CONNECT + inner)
        s.server_send(ESTABLISHED + S.http_response(200, pdf, content_type="application/pdf"))
    else:
        s.client_send(CONNECT)
        s.server_send(ESTABLISHED)
        s.http(inner, S.http_response(200, pdf, content_type="application/pdf"))
    s.close()
    pcap = tmp_path / "connect.pcap"
    t.write(pcap)
    pipe, events = _read(pcap, fast)
    (fi,) = _files(events)
    assert fi["fileinfo"]["md5"] == hashlib.md5(pdf).hexdigest() and fi["fileinfo"]["state"] == "CLOSED"
    assert fi["http"]["url"] == "/report.pdf" and fi["http"]["hostname"] == "inner.example"
    assert fi["tapsift"]["meta"]["connect_host"] == "inner.example:80" and fi["dest_port"] == 41000
    assert dict(pipe.stats.app_protos) == {"http": 1}


@pytest.mark.parametrize("fast", PATHS)
def test_connect_refused_then_plain_http_and_tls_tunnel(tmp_path: Path, fast: bool) -> None:
    """A 407 keeps the connection HTTP (the client's next request is parsed as such); a tunnel
    carrying TLS becomes a TLS flow without objects."""
    body = b"plain answer\n" * 40
    t = S.Trace(seed=22)
    s = t.session(("10.20.1.6", 41001), ("192.0.2.50", 3128))
    s.client_send(CONNECT)
    s.server_send(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")
    s.http(S.http_request("GET", "http://other.example/a.txt", "other.example"),
           S.http_response(200, body, content_type="text/plain"))
    s.close()
    tls = t.session(("10.20.1.6", 41002), ("192.0.2.50", 3128), at=0.5)
    tls.client_send(CONNECT.replace(b":80", b":443"))
    tls.server_send(ESTABLISHED)
    tls.client_send(S.tls_client_hello(tls.rng, "inner.example"))
    tls.server_send(S.tls_server_hello(tls.rng))
    tls.close()
    pcap = tmp_path / "refused.pcap"
    t.write(pcap)
    pipe, events = _read(pcap, fast)
    (fi,) = _files(events)
    assert fi["fileinfo"]["md5"] == hashlib.md5(body).hexdigest()
    assert "connect_host" not in fi["tapsift"].get("meta", {})
    assert dict(pipe.stats.app_protos) == {"http": 1, "tls": 1}


class _Ping:
    """A datagram protocol defined by the test: a metadata event per datagram, an object at the end."""

    def __init__(self, flow: Flow, ctx: ParserContext) -> None:
        self.ctx, self.payloads = ctx, []

    def feed_datagram(self, pkt: Packet, direction: Direction) -> list[ContentObject]:
        self.payloads.append(pkt.payload)
        self.ctx.emit_event("ping", {"seq": len(self.payloads), "way": direction.label}, pkt.ts_ns, direction)
        return []

    def close(self, flow: Flow, ts_ns: int) -> list[ContentObject]:
        b = self.ctx.factory.builder()
        b.add(b"".join(self.payloads))
        return [self.ctx.factory.finish(b, source="ping", direction=Direction.TO_SERVER, flow=flow_ref(flow),
                                        ts_ns=ts_ns, kind="datagrams")]


@pytest.mark.parametrize("fast", PATHS)
def test_udp_reaches_a_datagram_entry_and_its_events_reach_eve(tmp_path: Path, fast: bool) -> None:
    ping = AppProtocol("ping", _Ping, probe=lambda c, s, f: c.startswith(b"PING"), ports=frozenset({7}),
                       transport="udp")
    t = S.Trace(seed=23)
    t.udp(("10.20.1.7", 5001), ("192.0.2.60", 9999), b"PING one", at=0.0)
    t.udp(("192.0.2.60", 9999), ("10.20.1.7", 5001), b"PONG one", at=0.01, to_server=False)
    t.dns("10.20.1.7", "192.0.2.53", "files.example", "192.0.2.61", at=0.02)  # claimed by nobody
    s = t.session(("10.20.1.7", 41003), ("192.0.2.60", 80), at=0.03)
    s.http(S.http_request("GET", "/x.txt", "x.example"), S.http_response(200, b"x" * 300, content_type="text/plain"))
    s.close()
    pcap = tmp_path / "udp.pcap"
    t.write(pcap)
    pipe, events = _read(pcap, fast, protocols=(*PROTOCOLS, ping))
    pings = [e for e in events if e["event_type"] == "ping"]
    assert [(e["ping"], e["src_port"], e["dest_port"]) for e in pings] == [
        ({"seq": 1, "way": "upload"}, 5001, 9999), ({"seq": 2, "way": "download"}, 9999, 5001)]
    assert all(e["tapsift"]["flow_uid"] == pings[0]["tapsift"]["flow_uid"] for e in pings)
    files = {e["app_proto"]: e for e in _files(events)}
    assert files["ping"]["fileinfo"]["md5"] == hashlib.md5(b"PING onePONG one").hexdigest()
    assert "http" in files and pipe.stats.udp_packets == 4
    assert pipe.stats.app_protos == {"http": 1, "ping": 1, "dns": 1}  # the trace's DNS lookup is DNS now
    _, plain = _read(pcap, fast)  # the default table: UDP is only counted
    assert [e["event_type"] for e in plain if e["event_type"] == "ping"] == [] and len(_files(plain)) == 1


POLICY = """
lists:
  projects:
    type: keywords
    keywords:
      - {text: "Project Nightjar", weight: 10}
  cards:
    type: dataclass
    class: bank_card
    weight: 10
profiles:
  leak:
    category: data-leak/confidential
    severity: high
    inspect:
      - inspector: keyword
        lists: [projects]
      - inspector: dataclass
        lists: [cards]
    threshold:
      weight: 10
policies:
  - name: all
    source_zone: any
    destination_zone: any
    profiles: [leak]
"""


def test_inspector_errors_reach_the_stats_event_and_the_metrics(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from inspectors.keyword import KeywordInspector

    def broken(self: Any, obj: Any, ctx: Any) -> Any:
        raise RuntimeError("inspector bug")
        yield

    monkeypatch.setattr(KeywordInspector, "inspect", broken)
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY, encoding="utf-8")
    t = S.Trace(seed=24)
    s = t.session(("10.20.1.8", 41004), ("192.0.2.70", 80))
    s.http(S.http_request("POST", "/save", "docs.example", body=b"Project Nightjar card 4111111111111111",
                          content_type="text/plain"), S.http_response(200, b"ok", content_type="text/plain"))
    s.close()
    pcap = tmp_path / "leak.pcap"
    t.write(pcap)
    settings = Settings()
    settings.inspection.policy = str(policy)
    alerts: list[Any] = []
    settings.reassembly.fast_path = False
    pipe = build_pipeline(settings, Outputs(event=lambda e: None, alert=lambda a, o: alerts.append(a)))
    with open_capture(pcap) as cap:
        pipe.drive(cap)
    pipe.finish()
    assert pipe.stats.inspector_errors >= 1 and len(alerts) == 1  # the card still alerts
    stats = _stats(pipe, 1.0, 1.0)
    assert stats["inspector_errors"] == pipe.stats.inspector_errors and stats["alerts"] == 1
    text = render({"workers": {"w0": {"inspector_errors": 3}}})
    assert 'tapsift_inspector_errors_total{worker="w0"} 3' in text


def test_sighup_takes_new_limits_for_new_flows_and_reloads_the_policy(tmp_path: Path,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    from appliance.supervisor import _reload_worker

    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY, encoding="utf-8")
    cfg = tmp_path / "sensor.yaml"
    cfg.write_text(f"inspection:\n  policy: {policy}\napplayer:\n  http:\n    body_limit: 10\n", encoding="utf-8")
    settings = Settings()
    settings.inspection.policy = str(policy)
    pipe = build_pipeline(settings, Outputs(event=lambda e: None))

    class Sup:
        config_path = str(cfg)

    with caplog.at_level("INFO"):
        _reload_worker(Sup(), pipe)  # type: ignore[arg-type]
    assert pipe.sensor.applayer._limits["http"].body_limit == 10
    assert any("policy reload" in r.message for r in caplog.records)
    cfg.write_text("applayer:\n  http:\n    body_limit: -1\n", encoding="utf-8")  # invalid: kept
    _reload_worker(Sup(), pipe)  # type: ignore[arg-type]
    assert pipe.sensor.applayer._limits["http"].body_limit == 10
