"""Login throttling: exponential back-off per (user, address), per address and per account, never a hard lock.

Time is the throttle's injected clock (no sleeping); addresses come from ``X-Forwarded-For`` with
``trust_proxy_headers`` on, so one test client can play several sources.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.webui.conftest import PASSWORDS, Env, add_users, csrf_of
from webui.db import ConsoleDB
from webui.security import totp_code
from webui.services.throttle import LoginThrottle

ATTACKER, OFFICE, HOME = "198.51.100.66", "10.20.1.5", "192.0.2.44"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def throttled_app(env: Env, clock: Clock) -> Iterator[object]:
    """Small numbers to see the back-off: 3 free attempts per (user, address), then 1 s, 2 s, 4 s…"""
    app = env.app(trust_proxy_headers=True, login_free_attempts=3, login_source_free_attempts=100,
                  login_account_free_attempts=100, login_backoff_base_s=1, login_backoff_max_s=60)
    app.state.throttle.clock = clock
    add_users(app)
    yield app
    app.state.db.close()


def attempt(c: TestClient, username: str, password: str, addr: str) -> httpx.Response:
    h = {"X-Forwarded-For": addr}
    page = c.get("/login", headers=h)
    return c.post("/login", data={"csrf": csrf_of(page.text), "username": username, "password": password,
                                  "next": "/"}, headers=h, follow_redirects=False)


def audit(app, action: str) -> list[dict]:  # type: ignore[no-untyped-def]
    return [a for a in app.state.db.audit_page(1000, 0, action)[1]]


def test_backoff_grows_and_the_right_password_waits_too(throttled_app, clock: Clock) -> None:  # type: ignore[no-untyped-def]
    app = throttled_app
    with TestClient(app) as c:
        for _ in range(3):  # the free attempts
            assert attempt(c, "viewer", "wrong-password-1", OFFICE).status_code == 401
        waits = []
        for _ in range(5):
            assert attempt(c, "viewer", "wrong-password-1", OFFICE).status_code == 401  # checked, and wrong
            r = attempt(c, "viewer", PASSWORDS["viewer"], OFFICE)  # refused unchecked, even the right one
            assert r.status_code == 429 and "tapsift_session" not in r.cookies
            assert "Too many failed logins" in r.text
            waits.append(int(r.headers["retry-after"]))
            clock.now += waits[-1]
        assert waits == [1, 2, 4, 8, 16]
        for _ in range(4):  # capped at login_backoff_max_s
            attempt(c, "viewer", "wrong-password-1", OFFICE)
            clock.now += 60
        attempt(c, "viewer", "wrong-password-1", OFFICE)
        assert attempt(c, "viewer", PASSWORDS["viewer"], OFFICE).headers["retry-after"] == "60"
        clock.now += 60
        assert attempt(c, "viewer", PASSWORDS["viewer"], OFFICE).status_code == 303
        c.cookies.clear()
        # a full login starts the user's count again
        assert attempt(c, "viewer", "wrong-password-1", OFFICE).status_code == 401
        assert attempt(c, "viewer", "wrong-password-1", OFFICE).status_code == 401
    # every refusal period is audited once, with the address; failures carry the back-off they started
    throttled = audit(app, "login.throttled")
    assert len(throttled) == 6 and all(a["ip"] == OFFICE and a["after"]["scope"] == "user_ip" for a in throttled)
    failed = audit(app, "login.failed")
    assert [a["after"]["backoff_s"] for a in reversed(failed) if a["after"]][:5] == [1, 2, 4, 8, 16]
    assert app.state.counters["rate_limited"] == 6


def test_an_attacker_cannot_keep_the_real_user_out(throttled_app, clock: Clock) -> None:  # type: ignore[no-untyped-def]
    app = throttled_app
    with TestClient(app) as attacker, TestClient(app) as admin:
        codes = [attempt(attacker, "admin", f"guess-number-{i}", ATTACKER).status_code for i in range(30)]
        assert codes[:4] == [401] * 4 and codes.count(429) >= 20
        # the real admin, from the office, at the same moment: straight in
        r = attempt(admin, "admin", PASSWORDS["admin"], OFFICE)
        assert r.status_code == 303 and r.cookies.get("tapsift_session")
        assert admin.get("/users").status_code == 200
        # ... and a wrong password of theirs is counted apart from the attacker's
        with TestClient(app) as other:
            assert attempt(other, "admin", "typo-password-1", HOME).status_code == 401
        # the attacker is still waiting
        assert attempt(attacker, "admin", PASSWORDS["admin"], ATTACKER).status_code == 429
    # the audit log says who was refused, from where, once per back-off period
    assert {a["ip"] for a in audit(app, "login.throttled")} == {ATTACKER}
    assert len(audit(app, "login.throttled")) == 1


def test_one_address_trying_many_names_is_slowed_down(env: Env, clock: Clock) -> None:
    app = env.app(trust_proxy_headers=True, login_source_free_attempts=5, login_free_attempts=3,
                  login_backoff_base_s=2)
    app.state.throttle.clock = clock
    add_users(app)
    with TestClient(app) as c:
        for i in range(6):
            assert attempt(c, f"user{i}", "some-password-1", ATTACKER).status_code == 401
        r = attempt(c, "viewer", PASSWORDS["viewer"], ATTACKER)
        assert r.status_code == 429 and r.headers["retry-after"] == "2"
        assert attempt(c, "viewer", PASSWORDS["viewer"], OFFICE).status_code == 303  # another address
    assert audit(app, "login.throttled")[0]["after"]["scope"] == "ip"


def test_account_wide_backoff_spares_the_users_own_browsers(env: Env, clock: Clock) -> None:
    """Guesses spread over many addresses slow down that account, but not for browsers it logged in from."""
    app = env.app(trust_proxy_headers=True, login_account_free_attempts=4, login_backoff_base_s=30)
    app.state.throttle.clock = clock
    add_users(app)
    with TestClient(app) as mine, TestClient(app) as fresh:
        r = attempt(mine, "analyst", PASSWORDS["analyst"], OFFICE)
        assert r.status_code == 303 and mine.cookies.get("tapsift_device")
        for i in range(5):  # a botnet: one guess per address
            with TestClient(app) as bot:
                assert attempt(bot, "analyst", "guess-password-1", f"203.0.113.{i + 1}").status_code == 401
        r = attempt(fresh, "analyst", PASSWORDS["analyst"], HOME)
        assert r.status_code == 429 and r.headers["retry-after"] == "30"
        mine.cookies.delete("tapsift_session")
        assert attempt(mine, "analyst", PASSWORDS["analyst"], HOME).status_code == 303  # the known browser
        # a device cookie of another user does not help
        with TestClient(app) as thief:
            thief.cookies.set("tapsift_device", mine.cookies["tapsift_device"])
            assert attempt(thief, "viewer", PASSWORDS["viewer"], HOME).status_code == 303
            assert app.state.db.scalar("SELECT COUNT(*) FROM trusted_devices") == 2
    assert "user" in {a["after"]["scope"] for a in audit(app, "login.throttled")}


def test_unknown_user_and_wrong_password_get_the_same_answer(throttled_app, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    app = throttled_app
    verified: list[str | None] = []
    real_verify = app.state.passwords.verify

    def spy(pw_hash: str | None, password: str) -> bool:
        verified.append(pw_hash)
        return real_verify(pw_hash, password)

    monkeypatch.setattr(app.state.passwords, "verify", spy)

    def answers(username: str) -> list[tuple[int, dict[str, str], str]]:
        out = []
        with TestClient(app) as c:
            h = {"X-Forwarded-For": OFFICE}
            token = csrf_of(c.get("/login", headers=h).text)
            for _ in range(5):
                r = c.post("/login", data={"csrf": token, "username": username, "password": "wrong-password-9"},
                           headers=h)
                headers = {k: v for k, v in r.headers.items() if k not in ("date", "content-length")}
                out.append((r.status_code, headers, r.text.replace(token, "TOKEN").replace(username, "NAME")))
        return out

    unknown, known = answers("nobody-here"), answers("viewer")
    assert unknown == known
    assert [s for s, _, _ in known] == [401, 401, 401, 401, 429]
    assert "wrong user name or password" in known[0][2]
    # the password hash ran for the unknown name too (against the dummy hash), once per checked attempt
    assert len(verified) == 8 and verified[:4] == [None] * 4 and all(verified[4:])


def test_second_factor_is_throttled_too(env: Env, clock: Clock) -> None:
    app = env.app(trust_proxy_headers=True, login_free_attempts=2, login_backoff_base_s=5)
    app.state.throttle.clock = clock
    add_users(app)
    secret = "JBSWY3DPEHPK3PXP"
    with app.state.db.tx() as conn:
        conn.execute("UPDATE users SET totp_secret = ? WHERE username = 'analyst'", (secret,))
    with TestClient(app) as c:
        r = attempt(c, "analyst", PASSWORDS["analyst"], OFFICE)
        assert r.headers["location"].startswith("/login/totp")
        h = {"X-Forwarded-For": OFFICE}
        tok = csrf_of(c.get("/login/totp", headers=h).text)
        for _ in range(3):
            assert c.post("/login/totp", data={"csrf": tok, "code": "000000"}, headers=h).status_code == 401
        good = totp_code(secret, int(time.time() // 30))
        r = c.post("/login/totp", data={"csrf": tok, "code": good}, headers=h)
        assert r.status_code == 429 and r.headers["retry-after"] == "5"
        clock.now += 5
        r = c.post("/login/totp", data={"csrf": tok, "code": good}, headers=h, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/"
    assert len(audit(app, "login.totp_failed")) == 3 and len(audit(app, "login.throttled")) == 1


def test_admin_and_cli_clear_the_throttling(throttled_app, env: Env) -> None:  # type: ignore[no-untyped-def]
    from appliance.cli import main

    app = throttled_app
    with TestClient(app) as c, TestClient(app) as admin:
        for _ in range(4):
            attempt(c, "viewer", "wrong-password-1", OFFICE)
        assert attempt(c, "viewer", PASSWORDS["viewer"], OFFICE).status_code == 429
        assert attempt(admin, "admin", PASSWORDS["admin"], HOME).status_code == 303
        page = admin.get("/users").text
        assert "login throttled" in page and "Clear throttling" in page
        uid = app.state.db.user_by_name("viewer")["id"]
        csrf = csrf_of(page)
        r = admin.post(f"/users/{uid}", data={"action": "unlock", "csrf": csrf}, follow_redirects=False)
        assert r.status_code == 303
        assert "clear login throttling done" in admin.get("/users").text
        assert attempt(c, "viewer", PASSWORDS["viewer"], OFFICE).status_code == 303
        # the same from the command line (another process would do the same on the same database)
        c.cookies.clear()
        for _ in range(4):
            attempt(c, "viewer", "wrong-password-1", OFFICE)
        assert attempt(c, "viewer", PASSWORDS["viewer"], OFFICE).status_code == 429
        db = str(env.settings.console_db)
        assert main(["user", "unlock", "viewer", "--console-db", db]) == 0
        assert attempt(c, "viewer", PASSWORDS["viewer"], OFFICE).status_code == 303
        assert main(["user", "unlock", "--address", OFFICE, "--console-db", db]) == 0
        assert main(["user", "unlock", "--console-db", db]) == 1
    actions = [a["action"] for a in app.state.db.audit_page(1000, 0)[1]]
    assert actions.count("user.unlock") == 2 and "login.unthrottle_address" in actions


def test_cli_lists_throttled_users(throttled_app, env: Env, capsys) -> None:  # type: ignore[no-untyped-def]
    from appliance.cli import main

    # the wall clock here (the CLI reads it), with a back-off long enough never to run out during the test
    throttle = LoginThrottle(throttled_app.state.db, free=3, source_free=100, account_free=100, base_s=3600,
                             max_s=3600, forget_s=86400)
    keys = throttle.keys("viewer", OFFICE, False)
    for _ in range(4):
        throttle.failed(keys)
    assert main(["user", "list", "--console-db", str(env.settings.console_db)]) == 0
    lines = {ln.split()[0]: ln.split()[2] for ln in capsys.readouterr().out.splitlines()}
    assert lines == {"admin": "active", "analyst": "active", "viewer": "throttled"}


def test_concurrent_attempts_stay_within_the_free_budget(console_dsn: str, clock: Clock) -> None:
    db = ConsoleDB(console_dsn)
    t = LoginThrottle(db, free=3, source_free=10, account_free=10, base_s=1, max_s=60, forget_s=3600, clock=clock)
    keys = t.keys("Admin", OFFICE, False)
    assert keys == [("user_ip", "admin", OFFICE), ("ip", "", OFFICE), ("user", "admin", "")]
    assert all(t.admit(keys) is None for _ in range(3))  # three checks at once: the free ones
    busy = t.admit(keys)
    assert busy is not None and busy.scope == "user_ip" and busy.retry_after_s == 1
    for _ in range(3):
        t.failed(keys)
        t.release(keys)
    assert t.admit(keys) is None  # the fourth, once the others are over
    assert t.failed(keys) == 1.0
    t.release(keys)
    assert t.admit(keys).retry_after == 1.0  # type: ignore[union-attr]
    # other names from this address are not held up by the per-user key
    assert t.admit(t.keys("viewer", OFFICE, False)) is None


def test_failures_are_forgotten_and_the_table_stays_bounded(console_dsn: str, clock: Clock) -> None:
    db = ConsoleDB(console_dsn)
    t = LoginThrottle(db, free=1, source_free=1, account_free=1, base_s=1, max_s=60, forget_s=3600, clock=clock)
    for i in range(50):
        t.failed(t.keys(f"name{i}", f"198.51.100.{i}", False))
    assert db.scalar("SELECT COUNT(*) FROM login_throttle") == 150
    clock.now += 3601
    t.failed(t.keys("late", OFFICE, False))
    assert db.scalar("SELECT COUNT(*) FROM login_throttle") == 3
    assert t.admit(t.keys("name1", "198.51.100.1", False)) is None  # forgotten, not blocked


def test_retired_lockout_settings_are_ignored_with_a_warning(tmp_path: Path, caplog) -> None:  # type: ignore[no-untyped-def]
    from webui.settings import load_console_settings

    cfg = tmp_path / "web.yaml"
    cfg.write_text("web:\n  lockout_threshold: 5\n  lockout_s: 900\n  login_free_attempts: 4\n")
    with caplog.at_level(logging.WARNING, logger="tapsift.web"):
        s = load_console_settings(cfg)
    assert s.login_free_attempts == 4 and "lockout_threshold" in caplog.text
