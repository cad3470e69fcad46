"""Syslog output: RFC 5424 or RFC 3164 messages carrying JSON, CEF or LEEF, over UDP, TCP or TLS.

Message: ``<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID - MSG`` (RFC 5424, structured data
``-``) or ``<PRI>Mmm dd hh:mm:ss HOSTNAME TAG[PID]: MSG`` (RFC 3164). TIMESTAMP is the
alert's (packet) time in UTC, so a retried message is byte-identical. MSG is UTF-8 without a
BOM by default (RFC 5424 allows MSG-ANY; a leading BOM breaks most JSON/CEF/LEEF parsers;
``bom=True`` adds it). ``max_message`` bounds the whole message (header + MSG, framing
excluded); MSG is shrunk to fit without breaking its format (``fit_json``, ``cef_message``,
``leef_message``). No MSG contains CR, LF or NUL.

Framing: UDP sends one datagram per message; TCP and TLS use RFC 6587 octet counting
(``LEN SP MSG``) or, with ``framing="lf"``, a trailing LF (safe, since no MSG holds one).

Delivery is at-least-once and in order. Plain syslog has no acknowledgements, so over TCP/TLS
a message stays in the spool until (a) its bytes were ACKed by the receiver's TCP stack and
the connection was still healthy (no EOF or reset) ``confirm_after`` seconds after it was
written, or (b) a graceful close was answered by the receiver closing its side (it read
everything before our FIN/close_notify). On any error the
connection is dropped and everything unconfirmed is sent again, in order, after reconnecting:
the receiver may see the last ``confirm_after`` seconds of messages twice (deduplicate on
``alert_id`` / ``externalId`` / ``alertId``). UDP is fire-and-forget: only local send errors
are retried.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import select
import socket
import ssl
import struct
import termios
import time
from collections import deque
from pathlib import Path
from typing import Any

from appliance.outputs.alertjson import fit_json
from appliance.outputs.cef import cef_message
from appliance.outputs.leef import delimiter_spec, leef_message
from appliance.outputs.spool import DEFAULT_MAX_BYTES, SpooledOutput

__all__ = ["FACILITIES", "MIN_MESSAGE", "SyslogOutput", "frame", "syslog_message"]

MIN_MESSAGE = 480
"""RFC 5424 §6.1: every receiver must accept 480 octets; smaller limits are refused."""

FACILITIES = {
    "kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6, "news": 7,
    "uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11, "ntp": 12, "audit": 13, "alert": 14,
    "clock": 15, **{f"local{i}": 16 + i for i in range(8)},
}

SYSLOG_SEVERITY = {1: 2, 2: 3, 3: 4, 4: 5, 5: 6}
"""Alert severity (1 = critical) → syslog severity (2 crit, 3 err, 4 warning, 5 notice, 6 info)."""

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_EVE_TS = re.compile(r"^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)\.(\d{6})\+0000$")
_UNSAFE_MSG = re.compile(rb"[\x00\r\n]")
_BOM = b"\xef\xbb\xbf"


def _printusascii(value: str, limit: int, nil: str = "-") -> str:
    """A header field: printable US-ASCII without spaces (RFC 5424 PRINTUSASCII), bounded."""
    s = "".join(c for c in value if 33 <= ord(c) <= 126)[:limit]
    return s or nil


def _timestamps(eve_ts: str) -> tuple[str, str]:
    """(RFC 5424 timestamp, RFC 3164 timestamp) from an EVE timestamp; NILVALUE/epoch if malformed."""
    m = _EVE_TS.match(eve_ts or "")
    if not m:
        return "-", "Jan  1 00:00:00"
    y, mo, d, hh, mm, ss, us = m.groups()
    month = _MONTHS[min(max(int(mo), 1), 12) - 1]
    return f"{y}-{mo}-{d}T{hh}:{mm}:{ss}.{us}Z", f"{month} {int(d):2d} {hh}:{mm}:{ss}"


def syslog_message(
    record: dict[str, Any],
    *,
    fmt: str = "json",
    rfc: str = "5424",
    max_message: int = 2048,
    facility: int = 16,
    app_name: str = "tapsift",
    hostname: str = "-",
    procid: str = "-",
    msgid: str = "alert",
    bom: bool = False,
    leef_delimiter: str = "^",
) -> bytes:
    """One syslog message (no transport framing) for an alert record, at most *max_message* bytes."""
    sev = SYSLOG_SEVERITY.get((record.get("alert") or {}).get("severity", 3), 4)
    pri = f"<{facility * 8 + sev}>"
    ts5424, ts3164 = _timestamps(record.get("timestamp", ""))
    host = _printusascii(hostname, 255)
    if rfc == "5424":
        header = (
            f"{pri}1 {ts5424} {host} {_printusascii(app_name, 48)} {_printusascii(procid, 128)} "
            f"{_printusascii(msgid, 32)} - "
        ).encode("ascii")
        if bom:
            header += _BOM
    elif rfc == "3164":
        tag = "".join(c for c in app_name if (c.isascii() and c.isalnum()) or c in "_-.")[:32] or "tapsift"
        pid = "".join(c for c in procid if c.isdigit())[:10]
        header = f"{pri}{ts3164} {host} {tag}{f'[{pid}]' if pid else ''}: ".encode("ascii")
    else:
        raise ValueError(f"rfc must be '5424' or '3164', not {rfc!r}")
    budget = max_message - len(header)
    if fmt == "json":
        msg = fit_json(record, budget)
    elif fmt == "cef":
        msg = cef_message(record, budget)
    elif fmt == "leef":
        msg = leef_message(record, budget, leef_delimiter)
    else:
        raise ValueError(f"format must be json, cef or leef, not {fmt!r}")
    body = msg.encode("utf-8", "replace")
    # Defence in depth: the renderers never emit these, and a line break must never reach the wire.
    body = _UNSAFE_MSG.sub(b" ", body)
    return header + body[: max(budget, 0)]


def frame(msg: bytes, framing: str = "octet-counting") -> bytes:
    """Stream framing for one message: RFC 6587 octet counting, or a trailing LF."""
    if framing == "octet-counting":
        return str(len(msg)).encode("ascii") + b" " + msg
    if framing == "lf":
        return msg + b"\n"
    raise ValueError(f"framing must be 'octet-counting' or 'lf', not {framing!r}")


def _unacked_bytes(sock: socket.socket) -> int | None:
    """Bytes in the socket's send queue not yet ACKed by the peer (Linux ``SIOCOUTQ``); None if unknown."""
    try:
        buf = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")
        return struct.unpack("i", buf)[0]
    except (OSError, ValueError, AttributeError):
        return None


class SyslogOutput(SpooledOutput):
    """Sends alert records to a syslog receiver through a durable spool (see the module doc)."""

    name = "syslog"

    def __init__(
        self,
        host: str,
        port: int | None = None,
        transport: str = "udp",
        format: str = "json",
        rfc: str = "5424",
        max_message: int = 2048,
        spool_dir: str | Path | None = None,
        *,
        ca_file: str | None = None,
        cert_file: str | None = None,
        key_file: str | None = None,
        verify: bool = True,
        server_name: str | None = None,
        facility: int | str = "local0",
        app_name: str = "tapsift",
        hostname: str | None = None,
        msgid: str = "alert",
        framing: str = "octet-counting",
        bom: bool = False,
        leef_delimiter: str = "^",
        confirm_after: float = 1.0,
        connect_timeout: float = 5.0,
        send_timeout: float = 10.0,
        max_spool_bytes: int = DEFAULT_MAX_BYTES,
        spool_sync: str = "normal",
        batch: int = 256,
        backoff_min: float = 0.5,
        backoff_max: float = 10.0,
    ) -> None:
        if transport not in ("udp", "tcp", "tls"):
            raise ValueError(f"transport must be udp, tcp or tls, not {transport!r}")
        if format not in ("json", "cef", "leef"):
            raise ValueError(f"format must be json, cef or leef, not {format!r}")
        if rfc not in ("5424", "3164"):
            raise ValueError(f"rfc must be '5424' or '3164', not {rfc!r}")
        if max_message < MIN_MESSAGE:
            raise ValueError(f"max_message must be at least {MIN_MESSAGE}")
        if transport == "udp" and max_message > 65507:
            raise ValueError("max_message over UDP must be at most 65507 (one datagram)")
        if format == "leef":
            delimiter_spec(leef_delimiter)
        frame(b"", framing)
        super().__init__(
            spool_dir, max_spool_bytes=max_spool_bytes, spool_sync=spool_sync, batch=batch,
            backoff_min=backoff_min, backoff_max=backoff_max,
        )
        self.host = host
        self.port = port or (6514 if transport == "tls" else 514)
        self.transport = transport
        self.format = format
        self.rfc = rfc
        self.max_message = max_message
        self.facility = FACILITIES[facility] if isinstance(facility, str) else int(facility)
        if not 0 <= self.facility <= 23:
            raise ValueError("facility must be 0..23")
        self.app_name = app_name
        self.hostname = hostname or socket.gethostname()
        self.msgid = msgid
        self.framing = framing
        self.bom = bom
        self.leef_delimiter = leef_delimiter
        self.confirm_after = confirm_after
        self.connect_timeout = connect_timeout
        self.send_timeout = send_timeout
        self._ssl: ssl.SSLContext | None = None
        self._server_name = server_name or host
        if transport == "tls":
            ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_file)
            ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            if not verify:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            if cert_file:
                ctx.load_cert_chain(cert_file, key_file)
            self._ssl = ctx
        self._sock: socket.socket | None = None
        self._cursor = 0
        self._inflight: deque[tuple[int, float, int, int]] = deque()
        """Written, unconfirmed batches: (last seq, time written, bytes written up to its end, count)."""
        self._written = 0
        self.reconnects = 0

    # -- rendering -------------------------------------------------------------------------

    def render(self, record: dict[str, Any]) -> bytes:
        return syslog_message(
            record, fmt=self.format, rfc=self.rfc, max_message=self.max_message, facility=self.facility,
            app_name=self.app_name, hostname=self.hostname, procid=str(os.getpid()), msgid=self.msgid,
            bom=self.bom, leef_delimiter=self.leef_delimiter,
        )

    # -- connection --------------------------------------------------------------------------

    def _connect(self) -> socket.socket:
        if self.transport == "udp":
            info = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_DGRAM)[0]
            sock = socket.socket(info[0], socket.SOCK_DGRAM)
            sock.settimeout(self.send_timeout)
            sock.connect(info[4])  # connected, so ICMP port-unreachable surfaces as ECONNREFUSED
            return sock
        raw = socket.create_connection((self.host, self.port), timeout=self.connect_timeout)
        try:
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            sock = raw
            if self._ssl is not None:
                sock = self._ssl.wrap_socket(raw, server_hostname=self._server_name)
            sock.settimeout(self.send_timeout)
            return sock
        except BaseException:
            raw.close()
            raise

    def _alive(self) -> bool:
        """False when the receiver closed or reset the connection (it never sends us data)."""
        sock = self._sock
        if sock is None:
            return False
        try:
            readable, _, _ = select.select([sock], [], [], 0)
            if not readable:
                return True
            sock.setblocking(False)
            try:
                data = sock.recv(4096)
            finally:
                sock.settimeout(self.send_timeout)
            return data != b""
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
            return True
        except (OSError, ValueError):
            return False

    def _disconnect(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock = None
        self._cursor = 0  # resend everything not yet confirmed, in order
        self._inflight.clear()
        self._written = 0

    def _fail(self, err: BaseException) -> tuple[int, BaseException]:
        if self._sock is not None:
            self.reconnects += 1
        self._disconnect()
        return 0, err

    def _confirm(self, now: float) -> None:
        """Drop from the spool what the receiver's TCP stack ACKed at least ``confirm_after`` seconds ago.

        Bytes ACKed = bytes written - the send queue (for TLS the queue holds ciphertext, which
        only makes the estimate more cautious).
        """
        if not self._inflight or self._sock is None:
            return
        outq = _unacked_bytes(self._sock)
        acked = self._written - (outq or 0)  # unknown queue (not Linux): time-based only
        upto = 0
        while self._inflight:
            _, t, end, _ = self._inflight[0]
            if t > now - self.confirm_after or end > acked:
                break
            upto = self._inflight.popleft()[0]
        if upto:
            self.delivered += self.spool.ack(upto)

    def _close_confirmed(self, timeout: float) -> bool:
        """Close gracefully; True when the receiver closed its side in answer (so it read everything)."""
        sock, self._sock = self._sock, None
        if sock is None:
            return False
        deadline = time.monotonic() + timeout
        try:
            sock.settimeout(max(0.1, timeout))
            if isinstance(sock, ssl.SSLSocket):
                try:
                    sock = sock.unwrap()  # our close_notify, then the receiver's
                except ssl.SSLEOFError:
                    return True  # the receiver closed the connection in answer to our close_notify
            sock.shutdown(socket.SHUT_WR)
            while (remaining := deadline - time.monotonic()) > 0:
                sock.settimeout(remaining)
                if sock.recv(4096) == b"":
                    return True
            return False
        except (OSError, ValueError):
            return False
        finally:
            with contextlib.suppress(OSError):
                sock.close()

    # -- delivery ------------------------------------------------------------------------------

    def _pump(self) -> tuple[int, BaseException | None]:
        now = time.monotonic()
        stream = self.transport != "udp"
        if stream and self._sock is not None:
            if not self._alive():
                return self._fail(ConnectionResetError("receiver closed the connection"))
            self._confirm(now)
        rows = self.spool.peek(self._cursor, self.batch)
        if not rows:
            return 0, None
        try:
            if self._sock is None:
                self._sock = self._connect()
            if stream:
                data = b"".join(frame(m, self.framing) for _, m in rows)
                self._sock.sendall(data)
                self._written += len(data)
            else:
                for seq, m in rows:
                    self._sock.send(m)
                    self.delivered += self.spool.ack(seq)
        except (OSError, ValueError) as err:
            return self._fail(err)
        self._cursor = rows[-1][0]
        if stream:
            self._inflight.append((self._cursor, now, self._written, len(rows)))
        return len(rows), None

    def _idle_wait(self) -> float:
        return max(0.05, self.confirm_after / 2) if self._inflight else 1.0

    def flush(self, timeout: float = 10.0) -> bool:
        """Deliver everything and confirm it with a graceful close (TCP/TLS); True when the spool is empty."""
        deadline = time.monotonic() + timeout
        tried_close = False
        while time.monotonic() < deadline:
            _, ok = self._pump_ok()
            if len(self.spool) == 0:
                return True
            if ok and not tried_close and self._sock is not None and not self.spool.peek(self._cursor, 1):
                tried_close = True  # once; if unanswered, the time-based confirmation takes over
                with self._pump_lock:
                    upto = self._inflight[-1][0] if self._inflight else 0
                    confirmed = self._close_confirmed(max(0.1, deadline - time.monotonic()))
                    self._disconnect()
                    if confirmed and upto:
                        self.delivered += self.spool.ack(upto)
                if len(self.spool) == 0:
                    return True
            time.sleep(0.05 if ok else min(0.5, max(0.0, deadline - time.monotonic())))
        return len(self.spool) == 0

    def stats(self) -> dict[str, Any]:
        out = super().stats()
        out.update(transport=self.transport, format=self.format, reconnects=self.reconnects,
                   unconfirmed=sum(e[3] for e in list(self._inflight)))
        return out
