"""HSTS: ``Strict-Transport-Security`` on responses that came over HTTPS, never over plain HTTP.

In process (the ASGI scope's scheme, a trusted proxy's ``X-Forwarded-Proto``) and end to end:
``tapsift web --tls-cert/--tls-key`` with a certificate made by ``openssl`` for 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.webui.conftest import Env, add_users, login

HSTS = "strict-transport-security"


def test_hsts_only_over_https(env: Env) -> None:
    app = env.app()
    add_users(app)
    with TestClient(app, base_url="http://testserver") as c:
        assert HSTS not in c.get("/login").headers
        assert HSTS not in c.get("/login", headers={"X-Forwarded-Proto": "https"}).headers  # proxy not trusted
    with TestClient(app, base_url="https://testserver") as c:
        for path in ("/login", "/static/app.css", "/nope"):
            assert c.get(path).headers[HSTS] == "max-age=31536000", path
        login(c, "viewer")
        assert c.get("/hits").headers[HSTS] == "max-age=31536000"
        assert c.post("/logout", data={}, headers={"Origin": "https://evil.example"}).headers[HSTS]


def test_hsts_behind_a_trusted_tls_proxy_and_switched_off(env: Env) -> None:
    app = env.app(trust_proxy_headers=True, hsts_max_age_s=600)
    with TestClient(app, base_url="http://testserver") as c:
        assert c.get("/login", headers={"X-Forwarded-Proto": "https"}).headers[HSTS] == "max-age=600"
        assert HSTS not in c.get("/login", headers={"X-Forwarded-Proto": "http"}).headers
        assert HSTS not in c.get("/login").headers
    with TestClient(env.app(hsts_max_age_s=0), base_url="https://testserver") as c:
        assert HSTS not in c.get("/login").headers


# --------------------------------------------------------------------------- end to end


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("tls")
    crt, key = d / "console.crt", d / "console.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(crt)], check=True, capture_output=True)
    return crt, key


@contextlib.contextmanager
def _serve(env: Env, *extra: str) -> Iterator[str]:
    """``tapsift web`` in a subprocess; yields its base URL."""
    port = _free_port()
    cfg = env.tmp / "console.yaml"
    cfg.write_text("web:\n  argon2_time_cost: 1\n  argon2_memory_kib: 256\n  argon2_parallelism: 1\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "appliance.cli", "web", "--config", str(cfg), "--alert-db", str(env.settings.alert_db),
         "--console-db", env.dsn or str(env.tmp / "served.db"), "--host", "127.0.0.1", "--port", str(port),
         "--no-access-log", "--log-level", "warning", *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ})
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert time.monotonic() < deadline, "tapsift web did not start"
            time.sleep(0.1)
        yield f"{'https' if extra else 'http'}://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stderr is not None:
            proc.stderr.close()


@pytest.mark.slow
def test_tapsift_web_over_tls_sends_hsts_and_plain_http_does_not(env: Env, cert: tuple[Path, Path]) -> None:
    crt, key = cert
    with _serve(env, "--tls-cert", str(crt), "--tls-key", str(key)) as base:
        r = httpx.get(f"{base}/login", verify=ssl.create_default_context(cafile=str(crt)))
        assert r.status_code == 200 and r.headers[HSTS] == "max-age=31536000"
        assert "Secure" in r.headers["set-cookie"]
    with _serve(env) as base:
        r = httpx.get(f"{base}/login")
        assert r.status_code == 200 and HSTS not in r.headers and "Secure" not in r.headers["set-cookie"]


def test_tls_options_go_together(env: Env, cert: tuple[Path, Path]) -> None:
    from appliance.cli import main
    from webui.settings import ConsoleSettingsError, load_console_settings

    assert main(["web", "--tls-cert", str(cert[0]), "--console-db", str(env.tmp / "x.db")]) == 2
    with pytest.raises(ConsoleSettingsError, match="tls_cert and tls_key go together"):
        load_console_settings(None, tls_key=cert[1])
