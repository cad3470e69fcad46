"""Syslog message format, framing, the disk spool and delivery semantics (against local sockets)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tests.appliance.outputs.alert_strategies as hs
from appliance.model import Severity
from appliance.outputs.alertjson import alert_record
from appliance.outputs.spool import Spool, SpoolLocked
from appliance.outputs.syslog import SyslogOutput, frame, syslog_message
from tests.appliance.outputs.alert_factories import alert, content
from tests.appliance.outputs.siem_parsers import RFC3164, RFC5424, parse_cef, parse_leef


def _rec(i: int = 1, **kw):  # type: ignore[no-untyped-def]
    return alert_record(alert(i, **kw), content(i))


def test_rfc5424_header() -> None:
    msg = syslog_message(_rec(), hostname="sensor-1", procid="42")
    m = RFC5424.match(msg)
    assert m, msg[:120]
    pri, ts, host, app, procid, msgid, sd, body = m.groups()
    assert int(pri) == 16 * 8 + 3  # local0, HIGH → err
    assert ts == b"2024-05-01T12:00:00.124456Z"
    assert (host, app, procid, msgid, sd) == (b"sensor-1", b"tapsift", b"42", b"alert", b"-")
    assert json.loads(body)["tapsift"]["alert_id"] == "A00000001"
    assert not body.startswith(b"\xef\xbb\xbf")
    bom = syslog_message(_rec(), bom=True)
    assert RFC5424.match(bom).group(8).startswith(b"\xef\xbb\xbf")  # type: ignore[union-attr]


def test_rfc3164_header_and_severity_mapping() -> None:
    msg = syslog_message(_rec(severity=Severity.INFO), rfc="3164", hostname="sensor-1", procid="42",
                         facility=4, fmt="cef")
    m = RFC3164.match(msg)
    assert m, msg[:120]
    assert int(m.group(1)) == 4 * 8 + 6
    assert m.group(2) == b"May  1 12:00:00" and m.group(3) == b"sensor-1"
    assert m.group(4) == b"tapsift" and m.group(5) == b"42"
    parse_cef(m.group(6).decode())


def test_header_fields_are_sanitised() -> None:
    msg = syslog_message(_rec(), hostname="evil host\n<13>", app_name="a p\rp", msgid="x" * 100)
    m = RFC5424.match(msg)
    assert m and m.group(3) == b"evilhost<13>" and m.group(4) == b"app" and m.group(6) == b"x" * 32


def test_octet_counting_and_lf_framing() -> None:
    assert frame(b"<13>1 - - - - - - h\xc3\xa9") == b"21 <13>1 - - - - - - h\xc3\xa9"
    assert frame(b"abc", "lf") == b"abc\n"
    with pytest.raises(ValueError):
        frame(b"", "nul")


def test_rejects_tiny_max_message() -> None:
    with pytest.raises(ValueError):
        SyslogOutput("127.0.0.1", 514, max_message=256)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(a=hs.alert, obj=st.none() | hs.content, fmt=st.sampled_from(["json", "cef", "leef"]),
       rfc=st.sampled_from(["5424", "3164"]), max_message=st.integers(480, 4096))
def test_any_alert_makes_one_bounded_parsable_line(a, obj, fmt, rfc, max_message) -> None:  # type: ignore[no-untyped-def]
    msg = syslog_message(alert_record(a, obj), fmt=fmt, rfc=rfc, max_message=max_message, hostname="h")
    assert len(msg) <= max_message
    assert b"\n" not in msg and b"\r" not in msg and b"\x00" not in msg
    m = (RFC5424 if rfc == "5424" else RFC3164).match(msg)
    assert m
    body = m.groups()[-1].decode("utf-8")  # strict: valid UTF-8
    if fmt == "json":
        assert isinstance(json.loads(body), dict)
    elif fmt == "cef":
        parse_cef(body)
    else:
        parse_leef(body)


# -- spool ----------------------------------------------------------------------------------------


def test_spool_order_ack_and_reopen(tmp_path: Path) -> None:
    sp = Spool(tmp_path)
    assert sp.append_many([b"a", b"b", b"c"]) == 3
    rows = sp.peek(0, 10)
    assert [m for _, m in rows] == [b"a", b"b", b"c"]
    assert sp.ack(rows[0][0]) == 1
    assert [m for _, m in sp.peek(rows[0][0], 10)] == [b"b", b"c"]
    sp.close()
    sp = Spool(tmp_path)
    assert len(sp) == 2 and sp.bytes == 2
    sp.append(b"d")
    seqs = [s for s, _ in sp.peek(0, 10)]
    assert seqs == sorted(seqs) and seqs[0] > rows[0][0]  # sequence numbers never reused
    sp.close()


def test_spool_full_refuses_new_messages_and_counts_them(tmp_path: Path) -> None:
    sp = Spool(tmp_path, max_bytes=10)
    assert sp.append(b"12345") and sp.append(b"12345")
    assert not sp.append(b"x")
    assert sp.append_many([b"y", b"z"]) == 0
    assert sp.dropped_full == 3
    assert [m for _, m in sp.peek()] == [b"12345", b"12345"]
    sp.ack(sp.peek()[0][0])
    assert sp.append(b"abc")
    sp.close()
    assert Spool(tmp_path, max_bytes=10).dropped_full == 3  # persisted


def test_spool_has_one_owner(tmp_path: Path) -> None:
    sp = Spool(tmp_path)
    with pytest.raises(SpoolLocked):
        Spool(tmp_path)
    sp.close()
    Spool(tmp_path).close()


_CHILD = """
import sys
from appliance.outputs.spool import Spool
sp = Spool(sys.argv[1])
i = 0
while True:
    sp.append(b"msg-%d" % i)
    print(i, flush=True)
    i += 1
"""


def test_spool_survives_kill_9(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    printed = []
    for line in proc.stdout:
        printed.append(int(line))
        if len(printed) >= 300:
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    printed += [int(x) for x in proc.stdout.read().split()]
    sp = Spool(tmp_path)
    got = [m for _, m in sp.peek(0, 100_000)]
    assert got[: len(printed)] == [b"msg-%d" % i for i in printed]
    sp.close()


# -- delivery against a scripted TCP receiver ------------------------------------------------------


class Receiver:
    """A TCP syslog receiver that parses octet-counted frames; can drop its connections."""

    def __init__(self, port: int = 0) -> None:
        self.srv = socket.create_server(("127.0.0.1", port))
        self.port = self.srv.getsockname()[1]
        self.msgs: list[bytes] = []
        self.conns: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            self.conns.append(c)
            threading.Thread(target=self._read, args=(c,), daemon=True).start()

    def _read(self, c: socket.socket) -> None:
        buf = b""
        while True:
            try:
                data = c.recv(65536)
            except OSError:
                return
            if not data:
                c.close()
                return
            buf += data
            while b" " in buf:
                n, rest = buf.split(b" ", 1)
                if len(rest) < int(n):
                    break
                with self.lock:
                    self.msgs.append(rest[: int(n)])
                buf = rest[int(n):]

    def drop_connections(self) -> None:
        for c in self.conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()
        self.conns.clear()

    def ids(self) -> list[str]:
        with self.lock:
            return [json.loads(RFC5424.match(m).group(8))["tapsift"]["alert_id"] for m in self.msgs]  # type: ignore[union-attr]


def _first_seen(ids: list[str]) -> list[str]:
    seen: dict[str, None] = {}
    for i in ids:
        seen.setdefault(i, None)
    return list(seen)


def test_tcp_delivery_in_order_and_confirmed_by_close(tmp_path: Path) -> None:
    rx = Receiver()
    out = SyslogOutput("127.0.0.1", rx.port, "tcp", spool_dir=tmp_path)
    assert out.send_many([_rec(i) for i in range(50)]) == 50
    assert out.pump() == 50
    assert out.flush(5)  # graceful close answered by the receiver → confirmed
    assert rx.ids() == [f"A{i:08d}" for i in range(50)]
    assert out.stats()["delivered"] == 50 and len(out.spool) == 0
    out.close()


def test_tcp_reconnects_and_resends_unconfirmed_in_order(tmp_path: Path) -> None:
    rx = Receiver()
    out = SyslogOutput("127.0.0.1", rx.port, "tcp", spool_dir=tmp_path, confirm_after=0.2)
    out.send_many([_rec(i) for i in range(10)])
    out.pump()
    deadline = time.monotonic() + 5
    while len(rx.ids()) < 10 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.3)
    out.pump()  # 0..9 confirmed (ACKed and healthy after confirm_after)
    assert out.delivered == 10
    out.send_many([_rec(i) for i in range(10, 20)])
    out.pump()
    deadline = time.monotonic() + 5
    while len(rx.ids()) < 20 and time.monotonic() < deadline:
        time.sleep(0.01)
    rx.drop_connections()  # receiver restarts before 10..19 are confirmed
    time.sleep(0.1)
    out.send_many([_rec(i) for i in range(20, 30)])
    assert out.flush(5)
    ids = rx.ids()
    assert _first_seen(ids) == [f"A{i:08d}" for i in range(30)]
    assert ids[:10] == [f"A{i:08d}" for i in range(10)]  # confirmed ones are never repeated
    assert out.reconnects >= 1
    out.close()


def test_outage_keeps_everything_spooled_until_the_receiver_returns(tmp_path: Path) -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there yet
    out = SyslogOutput("127.0.0.1", port, "tcp", spool_dir=tmp_path, backoff_min=0.05, backoff_max=0.2)
    out.start()
    for i in range(20):
        out.send(_rec(i))
        time.sleep(0.01)
    time.sleep(0.3)
    assert len(out.spool) == 20 and out.errors >= 1
    rx = Receiver(port)
    for i in range(20, 30):
        out.send(_rec(i))
    assert out.close(flush_timeout=5)
    assert rx.ids() == [f"A{i:08d}" for i in range(30)]


def test_udp_one_datagram_per_message(tmp_path: Path) -> None:
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(5)
    out = SyslogOutput("127.0.0.1", rx.getsockname()[1], "udp", "leef", spool_dir=tmp_path)
    out.send_many([_rec(i) for i in range(5)])
    assert out.pump() == 5 and len(out.spool) == 0
    got = [rx.recv(65536) for _ in range(5)]
    assert [parse_leef(RFC5424.match(g).group(8).decode())[1]["alertId"] for g in got] == [  # type: ignore[union-attr]
        f"A{i:08d}" for i in range(5)]
    out.close()
    rx.close()
