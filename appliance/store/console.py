"""The console's tables as repositories: verdicts, users, sessions, API tokens, devices, audit, policies, throttle.

Each repository wraps an `Executor`: the backend itself (each call its own statement) or a
transaction, so that a change and its audit entry commit together::

    with db.tx() as tx:
        tx.accounts.set_role(uid, role)
        tx.sessions.drop_user(uid)
        tx.audit_log.add(who, "user.role", name, before, after, ip)

`ConsoleRepos` gives them all as attributes of one executor. The SQL is the same on SQLite and
PostgreSQL (see `appliance.store.backend`).
"""

from __future__ import annotations

import json
import time
from typing import Any

from appliance.outputs.alertjson import clean
from appliance.store.backend import Executor
from appliance.store.sensors import SensorRepo

__all__ = [
    "ApiTokenRepo", "AuditRepo", "CaseRepo", "ConsoleRepos", "DeviceRepo", "PolicyRepo", "SearchRepo", "SessionRepo",
    "StateRepo", "ThrottleRepo", "TriageRepo", "UserRepo",
]

Key = tuple[str, str, str]
"""A login-throttle key: (scope, user name, address)."""


class _Repo:
    def __init__(self, ex: Executor) -> None:
        self.ex = ex


class TriageRepo(_Repo):
    """Analysts' verdicts on alerts (``verdicts``: the current one and its assignee; ``verdict_log``: every one)."""

    def set(self, alert_id: str, verdict: str, note: str, user: str, ts: float, assignee: str | None = None) -> None:
        """Record a verdict (and, when given, an assignee; ``""`` unassigns; None keeps the current one)."""
        self.ex.execute(
            'INSERT INTO verdicts (alert_id, verdict, note, "user", ts, assignee) VALUES (?,?,?,?,?,?) '
            'ON CONFLICT (alert_id) DO UPDATE SET verdict = excluded.verdict, note = excluded.note, '
            '"user" = excluded."user", ts = excluded.ts, assignee = COALESCE(?, verdicts.assignee)',
            (alert_id, verdict, note, user, ts, assignee, assignee))
        self.ex.execute('INSERT INTO verdict_log (alert_id, ts, verdict, note, "user", assignee) VALUES (?,?,?,?,?,?)',
                        (alert_id, ts, verdict, note, user, assignee))

    def get(self, alert_id: str) -> dict[str, Any] | None:
        return self.ex.one('SELECT alert_id, verdict, note, "user", ts, assignee FROM verdicts WHERE alert_id = ?',
                           (alert_id,))

    def log(self, alert_id: str) -> list[dict[str, Any]]:
        return self.ex.rows('SELECT ts, verdict, note, "user", assignee FROM verdict_log WHERE alert_id = ? '
                            "ORDER BY id", (alert_id,))

    def assignees(self) -> list[str]:
        return self.ex.column("SELECT DISTINCT assignee FROM verdicts WHERE assignee IS NOT NULL AND assignee <> '' "
                              "ORDER BY 1 LIMIT 200")

    def count(self) -> int:
        return int(self.ex.scalar("SELECT COUNT(*) FROM verdicts"))


class UserRepo(_Repo):
    """Console users (names unique regardless of case)."""

    def count(self) -> int:
        return int(self.ex.scalar("SELECT COUNT(*) FROM users"))

    def admin_count(self) -> int:
        return int(self.ex.scalar("SELECT COUNT(*) FROM users WHERE role = 'admin' AND disabled = 0"))

    def by_name(self, username: str) -> dict[str, Any] | None:
        return self.ex.one("SELECT * FROM users WHERE lower(username) = lower(?)", (username,))

    def by_id(self, uid: int) -> dict[str, Any] | None:
        return self.ex.one("SELECT * FROM users WHERE id = ?", (uid,))

    def list(self) -> list[dict[str, Any]]:
        rows = self.ex.rows("SELECT id, username, role, disabled, created, last_login, "
                            "CASE WHEN totp_secret IS NULL THEN 0 ELSE 1 END AS totp FROM users ORDER BY username")
        return rows

    def add(self, username: str, role: str, pw_hash: str) -> int:
        uid = self.ex.insert("INSERT INTO users (username, role, pw_hash, created) VALUES (?,?,?,?)",
                             (username, role, pw_hash, time.time()), "id")
        return int(uid or 0)

    def set_password_hash(self, uid: int, pw_hash: str) -> None:
        self.ex.execute("UPDATE users SET pw_hash = ? WHERE id = ?", (pw_hash, uid))

    def set_role(self, uid: int, role: str) -> None:
        self.ex.execute("UPDATE users SET role = ? WHERE id = ?", (role, uid))

    def set_disabled(self, uid: int, disabled: bool) -> None:
        self.ex.execute("UPDATE users SET disabled = ? WHERE id = ?", (int(disabled), uid))

    def set_last_login(self, uid: int, ts: float) -> None:
        self.ex.execute("UPDATE users SET last_login = ? WHERE id = ?", (ts, uid))

    def start_totp(self, uid: int, secret: str) -> None:
        self.ex.execute("UPDATE users SET totp_pending = ? WHERE id = ?", (secret, uid))

    def confirm_totp(self, uid: int, step: int) -> None:
        self.ex.execute("UPDATE users SET totp_secret = totp_pending, totp_pending = NULL, totp_last_step = ? "
                        "WHERE id = ?", (step, uid))

    def set_totp_secret(self, uid: int, secret: str | None) -> None:
        """Set (or, with None, clear) the second factor; a pending set-up is dropped."""
        self.ex.execute("UPDATE users SET totp_secret = ?, totp_pending = NULL WHERE id = ?", (secret, uid))

    def set_totp_step(self, uid: int, step: int) -> None:
        self.ex.execute("UPDATE users SET totp_last_step = ? WHERE id = ?", (step, uid))

    def delete(self, uid: int) -> None:
        self.ex.execute("DELETE FROM users WHERE id = ?", (uid,))


class SessionRepo(_Repo):
    """Browser sessions, by the SHA-256 of their cookie."""

    def create(self, token_hash: str, user_id: int, csrf: str, stage: str, ip: str, user_agent: str, now: float,
               *, replace: str = "", expire_before: float = 0.0) -> None:
        if replace:
            self.drop(replace)
        self.ex.execute("DELETE FROM sessions WHERE last_seen < ?", (expire_before,))
        self.ex.execute(
            "INSERT INTO sessions (token_hash, user_id, csrf, stage, created, last_seen, ip, user_agent) "
            "VALUES (?,?,?,?,?,?,?,?)", (token_hash, user_id, csrf, stage, now, now, ip, user_agent[:300]))

    def with_user(self, token_hash: str) -> dict[str, Any] | None:
        return self.ex.one(
            "SELECT s.*, u.username, u.role, u.disabled, u.totp_secret, u.totp_last_step, u.tz FROM sessions s "
            "JOIN users u ON u.id = s.user_id WHERE s.token_hash = ?", (token_hash,))

    def touch(self, token_hash: str, now: float) -> None:
        self.ex.execute("UPDATE sessions SET last_seen = ? WHERE token_hash = ?", (now, token_hash))

    def drop(self, token_hash: str) -> None:
        self.ex.execute("DELETE FROM sessions WHERE token_hash = ?", (token_hash,))

    def drop_user(self, user_id: int, keep: str = "") -> None:
        """End every session of *user_id* but *keep*."""
        self.ex.execute("DELETE FROM sessions WHERE user_id = ? AND token_hash != ?", (user_id, keep))

    def count(self, token_hash: str | None = None) -> int:
        if token_hash is None:
            return int(self.ex.scalar("SELECT COUNT(*) FROM sessions"))
        return int(self.ex.scalar("SELECT COUNT(*) FROM sessions WHERE token_hash = ?", (token_hash,)))


class ApiTokenRepo(_Repo):
    """API tokens, by the SHA-256 of the token."""

    def add(self, user_id: int, name: str, token_hash: str, prefix: str) -> int:
        tid = self.ex.insert("INSERT INTO api_tokens (user_id, name, token_hash, prefix, created) VALUES (?,?,?,?,?)",
                             (user_id, name, token_hash, prefix, time.time()), "id")
        return int(tid or 0)

    def of_user(self, user_id: int) -> list[dict[str, Any]]:
        return self.ex.rows("SELECT id, name, prefix, created, last_used FROM api_tokens WHERE user_id = ? "
                            "ORDER BY id", (user_id,))

    def get(self, tid: int) -> dict[str, Any] | None:
        return self.ex.one("SELECT * FROM api_tokens WHERE id = ?", (tid,))

    def with_user(self, token_hash: str) -> dict[str, Any] | None:
        return self.ex.one("SELECT t.id, t.user_id, t.last_used, u.username, u.role, u.disabled, u.tz "
                           "FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.token_hash = ?", (token_hash,))

    def touch(self, tid: int, now: float) -> None:
        self.ex.execute("UPDATE api_tokens SET last_used = ? WHERE id = ?", (now, tid))

    def delete(self, tid: int) -> None:
        self.ex.execute("DELETE FROM api_tokens WHERE id = ?", (tid,))


class DeviceRepo(_Repo):
    """Trusted browsers (device cookies), by the SHA-256 of the cookie."""

    def count(self, token_hash: str | None = None, user_id: int | None = None) -> int:
        if token_hash is None:
            return int(self.ex.scalar("SELECT COUNT(*) FROM trusted_devices"))
        return int(self.ex.scalar("SELECT COUNT(*) FROM trusted_devices WHERE token_hash = ? AND user_id = ?",
                                  (token_hash, user_id)))

    def refresh(self, token_hash: str, user_id: int, now: float) -> bool:
        return self.ex.execute("UPDATE trusted_devices SET last_used = ? WHERE token_hash = ? AND user_id = ?",
                               (now, token_hash, user_id)) > 0

    def add(self, token_hash: str, user_id: int, now: float, keep: int) -> None:
        """Remember a device; the user's least recently used beyond *keep* are forgotten."""
        self.ex.execute("INSERT INTO trusted_devices (token_hash, user_id, created, last_used) VALUES (?,?,?,?)",
                        (token_hash, user_id, now, now))
        self.ex.execute("DELETE FROM trusted_devices WHERE user_id = ? AND token_hash NOT IN (SELECT token_hash FROM "
                        "trusted_devices WHERE user_id = ? ORDER BY last_used DESC LIMIT ?)", (user_id, user_id, keep))


class AuditRepo(_Repo):
    """The append-only audit log (``before``/``after`` as JSON)."""

    def add(self, user: str, action: str, target: str = "", before: Any = None, after: Any = None,
            ip: str = "") -> None:
        self.ex.execute(
            'INSERT INTO audit (ts, "user", action, target, before, after, ip) VALUES (?,?,?,?,?,?,?)',
            (time.time(), user, action, clean(str(target))[:500],
             None if before is None else json.dumps(clean(before), ensure_ascii=False),
             None if after is None else json.dumps(clean(after), ensure_ascii=False), ip))

    def page(self, limit: int, offset: int, action: str | None = None,
             user: str | None = None) -> tuple[int, list[dict[str, Any]]]:
        """(entries matching, one page of them newest first, ``before``/``after`` decoded)."""
        conds, params = [], []
        if action:
            conds.append("action = ?")
            params.append(action)
        if user:
            conds.append('"user" = ?')
            params.append(user)
        where = (" WHERE " + " AND ".join(conds)) if conds else ""
        total = int(self.ex.scalar(f"SELECT COUNT(*) FROM audit{where}", params))
        got = self.ex.rows(f"SELECT * FROM audit{where} ORDER BY id DESC LIMIT ? OFFSET ?", [*params, limit, offset])
        for r in got:
            for k in ("before", "after"):
                r[k] = json.loads(r[k]) if r[k] is not None else None
        return total, got


class PolicyRepo(_Repo):
    """The policy file's saved versions."""

    def count(self) -> int:
        return int(self.ex.scalar("SELECT COUNT(*) FROM policy_versions"))

    def add(self, user: str, version: str, text: str, comment: str = "") -> int:
        vid = self.ex.insert('INSERT INTO policy_versions (ts, "user", version, text, comment) VALUES (?,?,?,?,?)',
                             (time.time(), user, version, text, comment), "id")
        return int(vid or 0)

    def list(self) -> list[dict[str, Any]]:
        return self.ex.rows('SELECT id, ts, "user", version, comment, length(text) AS size FROM policy_versions '
                            "ORDER BY id DESC")

    def get(self, vid: int) -> dict[str, Any] | None:
        return self.ex.one("SELECT * FROM policy_versions WHERE id = ?", (vid,))


class ThrottleRepo(_Repo):
    """Login-throttle state: consecutive failures per key (see `webui.services.throttle`)."""

    def get(self, key: Key) -> dict[str, Any] | None:
        return self.ex.one('SELECT * FROM login_throttle WHERE scope = ? AND "user" = ? AND ip = ?', key)

    def refused(self, key: Key) -> None:
        self.ex.execute('UPDATE login_throttle SET refused = refused + 1 WHERE scope = ? AND "user" = ? AND ip = ?',
                        key)

    def failed(self, key: Key, failures: int, now: float, blocked_until: float) -> None:
        self.ex.execute(
            'INSERT INTO login_throttle (scope, "user", ip, failures, last_failure, blocked_until, refused) '
            'VALUES (?,?,?,?,?,?,0) ON CONFLICT (scope, "user", ip) DO UPDATE SET failures = excluded.failures, '
            "last_failure = excluded.last_failure, blocked_until = excluded.blocked_until, refused = 0",
            (*key, failures, now, blocked_until))

    def forget_before(self, ts: float) -> None:
        self.ex.execute("DELETE FROM login_throttle WHERE last_failure < ?", (ts,))

    def keep_newest(self, n: int) -> None:
        """Drop all but about the *n* most recently failing keys."""
        self.ex.execute("DELETE FROM login_throttle WHERE last_failure <= (SELECT last_failure FROM "
                        "login_throttle ORDER BY last_failure DESC LIMIT 1 OFFSET ?)", (n,))

    def delete(self, key: Key) -> None:
        self.ex.execute('DELETE FROM login_throttle WHERE scope = ? AND "user" = ? AND ip = ?', key)

    def clear(self, *, user: str | None = None, ip: str | None = None) -> int:
        n = 0
        if user is not None:
            n += self.ex.execute('DELETE FROM login_throttle WHERE "user" = ?', (user,))
        if ip is not None:
            n += self.ex.execute("DELETE FROM login_throttle WHERE ip = ?", (ip,))
        return n

    def waiting_users(self, now: float) -> dict[str, float]:
        """User name → until when some key of theirs (other than the address-only one) waits."""
        rows = self.ex.rows('SELECT "user", MAX(blocked_until) AS until FROM login_throttle '
                            "WHERE scope != 'ip' AND blocked_until > ? GROUP BY \"user\"", (now,))
        return {r["user"]: r["until"] for r in rows}

    def count(self) -> int:
        return int(self.ex.scalar("SELECT COUNT(*) FROM login_throttle"))


class StateRepo(_Repo):
    """Per user: the time zone, and what the hit list showed at the last visit (``is:new``)."""

    VISIT_GAP_S = 1800.0
    """A visit ends after this long without looking at a list; the next one shows what came since."""

    def set_tz(self, uid: int, tz: str) -> None:
        self.ex.execute("UPDATE users SET tz = ? WHERE id = ?", (tz, uid))

    def visit(self, uid: int, max_seq: int, now: float) -> int:
        """Note a look at the hit list showing alerts up to *max_seq*; returns the visit's baseline: the
        newest alert seen in the previous visit (alerts stored after it are new)."""
        row = self.ex.one("SELECT seen_seq, baseline_seq, baseline_ts FROM user_state WHERE user_id = ?", (uid,))
        if row is None:
            self.ex.execute("INSERT INTO user_state (user_id, seen_seq, baseline_seq, baseline_ts) VALUES (?,?,?,?) "
                            "ON CONFLICT (user_id) DO NOTHING", (uid, max_seq, max_seq, now))
            return max_seq
        baseline = int(row["baseline_seq"])
        if now - float(row["baseline_ts"]) > self.VISIT_GAP_S:
            baseline = int(row["seen_seq"])
        self.ex.execute("UPDATE user_state SET seen_seq = ?, baseline_seq = ?, baseline_ts = ? WHERE user_id = ?",
                        (max(int(row["seen_seq"]), max_seq), baseline, now, uid))
        return baseline

    def baseline(self, uid: int) -> int:
        return int(self.ex.scalar("SELECT baseline_seq FROM user_state WHERE user_id = ?", (uid,)) or 0)


class SearchRepo(_Repo):
    """Saved searches, per user and scope (``hits`` or ``content``)."""

    def list(self, uid: int, scope: str) -> list[dict[str, Any]]:
        return self.ex.rows("SELECT id, name, query, created FROM saved_searches WHERE user_id = ? AND scope = ? "
                            "ORDER BY name", (uid, scope))

    def save(self, uid: int, scope: str, name: str, query: str, now: float) -> None:
        self.ex.execute("INSERT INTO saved_searches (user_id, scope, name, query, created) VALUES (?,?,?,?,?) "
                        "ON CONFLICT (user_id, scope, name) DO UPDATE SET query = excluded.query, "
                        "created = excluded.created", (uid, scope, name, query, now))

    def get(self, uid: int, sid: int) -> dict[str, Any] | None:
        return self.ex.one("SELECT * FROM saved_searches WHERE id = ? AND user_id = ?", (sid, uid))

    def delete(self, uid: int, sid: int) -> bool:
        return self.ex.execute("DELETE FROM saved_searches WHERE id = ? AND user_id = ?", (sid, uid)) == 1


class CaseRepo(_Repo):
    """Cases: hits grouped with notes, a status, an assignee and their own log (``case_log``)."""

    def create(self, title: str, description: str, assignee: str, user: str, now: float) -> int:
        cid = self.ex.insert("INSERT INTO cases (title, description, assignee, status, created, created_by, updated) "
                             "VALUES (?,?,?,'open',?,?,?)", (title, description, assignee, now, user, now), "id")
        return int(cid or 0)

    def get(self, cid: int) -> dict[str, Any] | None:
        row = self.ex.one("SELECT * FROM cases WHERE id = ?", (cid,))
        if row is not None:
            row["hits"] = int(self.ex.scalar("SELECT COUNT(*) FROM case_hits WHERE case_id = ?", (cid,)))
        return row

    def list(self, status: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
        cond, params = ("WHERE c.status = ? ", [status]) if status else ("", [])
        return self.ex.rows("SELECT c.*, (SELECT COUNT(*) FROM case_hits h WHERE h.case_id = c.id) AS hits "
                            f"FROM cases c {cond}ORDER BY c.updated DESC LIMIT ?", [*params, limit])

    def update(self, cid: int, now: float, **fields: str) -> None:
        cols = [k for k in ("title", "description", "status", "assignee") if k in fields]
        if cols:
            self.ex.execute(f"UPDATE cases SET {', '.join(f'{c} = ?' for c in cols)}, updated = ? WHERE id = ?",
                            [*(fields[c] for c in cols), now, cid])

    def touch(self, cid: int, now: float) -> None:
        self.ex.execute("UPDATE cases SET updated = ? WHERE id = ?", (now, cid))

    def add_hits(self, cid: int, alert_ids: list[str], user: str, now: float) -> int:
        before = int(self.ex.scalar("SELECT COUNT(*) FROM case_hits WHERE case_id = ?", (cid,)))
        self.ex.executemany("INSERT INTO case_hits (case_id, alert_id, added, added_by) VALUES (?,?,?,?) "
                            "ON CONFLICT (case_id, alert_id) DO NOTHING", [(cid, a, now, user) for a in alert_ids])
        return int(self.ex.scalar("SELECT COUNT(*) FROM case_hits WHERE case_id = ?", (cid,))) - before

    def remove_hit(self, cid: int, alert_id: str) -> bool:
        return self.ex.execute("DELETE FROM case_hits WHERE case_id = ? AND alert_id = ?", (cid, alert_id)) == 1

    def hit_ids(self, cid: int, limit: int = 1000) -> list[str]:
        return self.ex.column("SELECT alert_id FROM case_hits WHERE case_id = ? ORDER BY added DESC LIMIT ?",
                              (cid, limit))

    def of_hit(self, alert_id: str) -> list[dict[str, Any]]:
        return self.ex.rows("SELECT c.id, c.title, c.status FROM case_hits h JOIN cases c ON c.id = h.case_id "
                            "WHERE h.alert_id = ? ORDER BY c.id", (alert_id,))

    def log(self, cid: int, user: str, action: str, detail: str, now: float) -> None:
        self.ex.execute('INSERT INTO case_log (case_id, ts, "user", action, detail) VALUES (?,?,?,?,?)',
                        (cid, now, user, action, clean(detail)[:8000]))

    def history(self, cid: int) -> list[dict[str, Any]]:
        return self.ex.rows('SELECT ts, "user", action, detail FROM case_log WHERE case_id = ? ORDER BY id', (cid,))


class ConsoleRepos:
    """Every console repository over one executor (``self.ex``)."""

    ex: Executor

    @property
    def verdicts(self) -> TriageRepo:
        return TriageRepo(self.ex)

    @property
    def accounts(self) -> UserRepo:
        return UserRepo(self.ex)

    @property
    def sessions(self) -> SessionRepo:
        return SessionRepo(self.ex)

    @property
    def api_tokens(self) -> ApiTokenRepo:
        return ApiTokenRepo(self.ex)

    @property
    def devices(self) -> DeviceRepo:
        return DeviceRepo(self.ex)

    @property
    def audit_log(self) -> AuditRepo:
        return AuditRepo(self.ex)

    @property
    def policies(self) -> PolicyRepo:
        return PolicyRepo(self.ex)

    @property
    def login_throttle(self) -> ThrottleRepo:
        return ThrottleRepo(self.ex)

    @property
    def sensors(self) -> SensorRepo:
        return SensorRepo(self.ex)

    @property
    def user_state(self) -> StateRepo:
        return StateRepo(self.ex)

    @property
    def searches(self) -> SearchRepo:
        return SearchRepo(self.ex)

    @property
    def cases(self) -> CaseRepo:
        return CaseRepo(self.ex)
