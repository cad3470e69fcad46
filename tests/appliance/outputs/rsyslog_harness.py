"""A real rsyslogd on loopback for the syslog tests, in its own directory with its own config.

UDP, TCP and TLS (GnuTLS stream driver, CA and server certificate made here with openssl)
inputs on free high ports; every message is written to ``out.log`` as
``<input name> TAB <app-name> TAB <msgid> TAB <raw MSG>``.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

RSYSLOGD = shutil.which("rsyslogd") or ("/usr/sbin/rsyslogd" if Path("/usr/sbin/rsyslogd").exists() else None)


def _free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_certs(d: Path) -> dict[str, Path]:
    """A throwaway CA and a server certificate for localhost/127.0.0.1 (EC P-256, 2 days)."""
    d.mkdir(parents=True, exist_ok=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=tapsift test CA",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost")
    (d / "ext.cnf").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf")
    return {"ca": d / "ca.pem", "cert": d / "server.pem", "key": d / "server.key"}


class Rsyslog:
    """One rsyslogd instance; ``stop()``/``start()`` keep its ports and output file."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.out = root / "out.log"
        self.certs = make_certs(root / "certs")
        self.udp_port = _free_port(socket.SOCK_DGRAM)
        self.tcp_port = _free_port(socket.SOCK_STREAM)
        self.tls_port = _free_port(socket.SOCK_STREAM)
        (root / "work").mkdir()
        self.conf = root / "rsyslog.conf"
        self.conf.write_text(f"""
global(workDirectory="{root / 'work'}" maxMessageSize="64k"
       defaultNetstreamDriverCAFile="{self.certs['ca']}"
       defaultNetstreamDriverCertFile="{self.certs['cert']}"
       defaultNetstreamDriverKeyFile="{self.certs['key']}")
module(load="imudp")
module(load="imtcp" maxSessions="200")
input(type="imudp" address="127.0.0.1" port="{self.udp_port}" name="udp" ruleset="all")
input(type="imtcp" address="127.0.0.1" port="{self.tcp_port}" name="tcp" ruleset="all")
input(type="imtcp" address="127.0.0.1" port="{self.tls_port}" name="tls" ruleset="all"
      streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="anon")
template(name="raw" type="string" string="%inputname%\\t%app-name%\\t%msgid%\\t%msg%\\n")
ruleset(name="all") {{ action(type="omfile" file="{self.out}" template="raw") }}
""")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        assert RSYSLOGD is not None
        self.proc = subprocess.Popen(
            [RSYSLOGD, "-n", "-f", str(self.conf), "-i", str(self.root / "rsyslogd.pid")],
            stdout=subprocess.DEVNULL, stderr=open(self.root / "rsyslogd.err", "ab"),  # noqa: SIM115
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"rsyslogd exited: {(self.root / 'rsyslogd.err').read_text()}")
            if self._listening():
                return
            time.sleep(0.05)
        raise RuntimeError("rsyslogd did not open its ports")

    def _listening(self) -> bool:
        for port in (self.tcp_port, self.tls_port):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            except OSError:
                return False
        hexport = f":{self.udp_port:04X} "
        return hexport in Path("/proc/net/udp").read_text()

    def stop(self) -> None:
        """Graceful stop (SIGTERM), as an operator or systemd would."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=20)
        self.proc = None

    def lines(self) -> list[list[str]]:
        """Received messages as [input, app-name, msgid, MSG]."""
        if not self.out.exists():
            return []
        text = self.out.read_text(encoding="utf-8", errors="strict")
        return [line.split("\t", 3) for line in text.splitlines() if line]

    def wait_for(self, n: int, timeout: float = 15.0) -> list[list[str]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.lines()
            if len(got) >= n:
                return got
            time.sleep(0.05)
        return self.lines()
