"""Syslog output against a real rsyslogd on loopback: formats, transports (TLS too), outages, kill -9."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from appliance.model import Direction
from appliance.outputs.alertjson import alert_record
from appliance.outputs.syslog import SyslogOutput
from appliance.store import AlertStore
from tests.appliance.outputs.alert_factories import alert, content
from tests.appliance.outputs.rsyslog_harness import Rsyslog, make_certs
from tests.appliance.outputs.siem_parsers import parse_cef, parse_leef

HOSTILE = "机密 merger plan\r\n<13>1 2024-01-01T00:00:00Z forged - - - - injected | cs1=x ^ a=b \\ \x00\x1b end"
HERE = Path(__file__).parent


def _output(rs: Rsyslog, transport: str, spool: Path, **kw) -> SyslogOutput:  # type: ignore[no-untyped-def]
    port = {"udp": rs.udp_port, "tcp": rs.tcp_port, "tls": rs.tls_port}[transport]
    return SyslogOutput("127.0.0.1", port, transport, spool_dir=spool, ca_file=str(rs.certs["ca"]),
                        server_name="localhost", hostname="sensor-1", **kw)


def _alert_id(fmt: str, msg: str) -> str:
    if fmt == "json":
        return json.loads(msg)["tapsift"]["alert_id"]
    if fmt == "cef":
        return parse_cef(msg)[1]["externalId"]
    return parse_leef(msg)[1]["alertId"]


@pytest.mark.parametrize(("transport", "fmt", "rfc"), [
    (t, f, "5424") for t in ("udp", "tcp", "tls") for f in ("json", "cef", "leef")
] + [("tcp", "json", "3164"), ("tls", "cef", "3164"), ("udp", "leef", "3164")])
def test_formats_parse_after_rsyslog(rsyslog: Rsyslog, tmp_path: Path, transport: str, fmt: str, rfc: str) -> None:
    out = _output(rsyslog, transport, tmp_path / "spool", format=fmt, rfc=rfc)
    recs = [alert_record(alert(i, snippet=HOSTILE, rules=("lan-to-wan", "all-web")),
                         content(i, url=f"/p?q={i}&x=\r\nX: y|^=",
                                 direction=Direction.TO_CLIENT if i % 2 else Direction.TO_SERVER))
            for i in range(5)]
    assert out.send_many(recs) == 5
    assert out.flush(10)
    out.close()
    lines = rsyslog.wait_for(5)
    assert len(lines) == 5, lines
    for i, (inp, app, msgid, msg) in enumerate(lines):
        assert (inp, app) == (transport, "tapsift")
        if rfc == "5424":
            assert msgid == "alert"
        msg = msg.lstrip(" ")
        assert _alert_id(fmt, msg) == f"A{i:08d}"
        word = "download" if i % 2 else "upload"  # src is the client either way
        client = f"10.0.0.{i + 1}"
        if fmt == "json":
            rec = json.loads(msg)
            assert rec["tapsift"]["findings"][0]["evidence"][0]["snippet"] == HOSTILE
            assert rec["http"]["url"] == f"/p?q={i}&x=\r\nX: y|^="
            assert (rec["src_ip"], rec["tapsift"]["direction"], rec["tapsift"]["rules"]) == (
                client, word, ["lan-to-wan", "all-web"])
        elif fmt == "cef":
            hdr, ext = parse_cef(msg)
            assert hdr[5] == "data-leak: lan-to-wan/dlp"
            assert ext["request"] == f"/p?q={i}&x=\r\nX: y|^=" and ext["cs1"] == "lan-to-wan"
            assert ext["cs6"] == HOSTILE.replace("\x00", "\ufffd").replace("\x1b", "\ufffd")
            assert (ext["src"], ext["deviceDirection"]) == (client, "0" if i % 2 else "1")
            assert ext["msg"].startswith(word + ":") and ext["msg"].endswith("rules: lan-to-wan, all-web")
        else:
            _, attrs = parse_leef(msg)
            assert attrs["url"] == f"/p?q={i}&x=  X: y|\ufffd="
            assert attrs["policy"] == "lan-to-wan"
            assert (attrs["src"], attrs["direction"], attrs["rules"]) == (client, word, "lan-to-wan, all-web")


@pytest.mark.parametrize("fmt", ["json", "cef", "leef"])
def test_size_limit_survives_the_receiver(rsyslog: Rsyslog, tmp_path: Path, fmt: str) -> None:
    out = _output(rsyslog, "tcp", tmp_path / "spool", format=fmt, max_message=480)
    out.send(alert_record(alert(1, snippet="s" * 5000, n_findings=10), content(1, url="/" + "u" * 5000)))
    assert out.flush(10)
    out.close()
    [(_, _, _, msg)] = rsyslog.wait_for(1)
    assert len(msg.encode()) < 480
    assert _alert_id(fmt, msg) == "A00000001"
    if fmt == "json":
        assert json.loads(msg)["truncated"] is True


def test_tls_refuses_a_server_it_cannot_verify(rsyslog: Rsyslog, tmp_path: Path) -> None:
    other = make_certs(tmp_path / "other-ca")
    out = SyslogOutput("127.0.0.1", rsyslog.tls_port, "tls", spool_dir=tmp_path / "spool",
                       ca_file=str(other["ca"]), server_name="localhost")
    out.send(alert_record(alert(1), content(1)))
    assert out.pump() == 0
    assert "CERTIFICATE_VERIFY_FAILED" in out.last_error or "certificate verify failed" in out.last_error
    assert len(out.spool) == 1  # kept for when the configuration is fixed
    out.close(flush_timeout=0)
    time.sleep(0.2)
    assert rsyslog.lines() == []


def _outage(rsyslog: Rsyslog, tmp_path: Path, transport: str, outage_s: float, rate_s: float = 0.05) -> None:
    """Alerts keep coming while the receiver is stopped for *outage_s*; all arrive after, in order."""
    out = _output(rsyslog, transport, tmp_path / "spool", format="cef", backoff_min=0.2, backoff_max=1.0)
    out.start()
    sent: list[str] = []

    def send_for(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            i = len(sent)
            out.send(alert_record(alert(i), content(i)))
            sent.append(f"A{i:08d}")
            time.sleep(rate_s)

    send_for(1.5)
    rsyslog.stop()
    stopped_at = len(sent)
    send_for(outage_s)
    assert len(out.spool) >= len(sent) - stopped_at  # everything since the stop is waiting
    rsyslog.start()
    send_for(1.0)
    assert out.close(flush_timeout=20), out.stats()
    ids = [_alert_id("cef", m) for *_, m in rsyslog.wait_for(len(sent))]
    first_seen = list(dict.fromkeys(ids))
    assert first_seen == sent  # nothing lost, in order
    assert len(ids) - len(first_seen) <= 2 * (1.0 / rate_s) + 5  # repeats: only the unconfirmed window


@pytest.mark.parametrize("transport", ["tcp", "tls"])
def test_outage_short(rsyslog: Rsyslog, tmp_path: Path, transport: str) -> None:
    _outage(rsyslog, tmp_path, transport, outage_s=3.0)


@pytest.mark.slow
def test_outage_60s_tls(rsyslog: Rsyslog, tmp_path: Path) -> None:
    outage_s = float(os.environ.get("TAPSIFT_OUTAGE_SECONDS", "60"))
    _outage(rsyslog, tmp_path, "tls", outage_s=outage_s, rate_s=0.05)


_CHILD = """
import sys
sys.path.insert(0, sys.argv[1])
from tests.appliance.outputs.alert_factories import alert, content
from appliance.model import Direction
from appliance.outputs.alertjson import alert_record
from appliance.outputs.syslog import SyslogOutput
from appliance.store import AlertStore
store = AlertStore(sys.argv[2])
out = SyslogOutput("127.0.0.1", int(sys.argv[4]), "tls", "json", spool_dir=sys.argv[3], ca_file=sys.argv[5],
                   server_name="localhost")
out.start()
i = 0
while True:
    a, obj = alert(i), content(i)
    rec = alert_record(a, obj)
    store.add(a, obj, rec)
    out.send(rec)
    print(a.id, flush=True)
    i += 1
"""


def test_kill_9_loses_no_committed_alert(rsyslog: Rsyslog, tmp_path: Path) -> None:
    db, spool = tmp_path / "alerts.db", tmp_path / "spool"
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(HERE), str(db), str(spool), str(rsyslog.tls_port),
         str(rsyslog.certs["ca"])], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    printed: list[str] = []
    for line in proc.stdout:
        printed.append(line.strip())
        if len(printed) >= 400:
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    printed += proc.stdout.read().split()
    with AlertStore(db) as store:
        stored = {r["id"] for r in store.query(limit=10_000)}
    assert set(printed) <= stored
    out = SyslogOutput("127.0.0.1", rsyslog.tls_port, "tls", "json", spool_dir=spool,
                       ca_file=str(rsyslog.certs["ca"]), server_name="localhost")
    assert out.close(flush_timeout=20)
    ids = [json.loads(m)["tapsift"]["alert_id"] for *_, m in rsyslog.wait_for(len(printed))]
    first_seen = list(dict.fromkeys(ids))
    assert first_seen[: len(printed)] == printed
