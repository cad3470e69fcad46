"""Credentials: argon2id password hashes, RFC 6238 TOTP, random tokens, a login rate limiter."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import struct
import threading
import time
from collections import deque
from urllib.parse import quote

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

ROLES = ("viewer", "analyst", "admin")
"""Each role can do everything the roles before it can."""

PASSWORD_MIN = 10


def role_at_least(role: str, needed: str) -> bool:
    return role in ROLES and ROLES.index(role) >= ROLES.index(needed)


class Passwords:
    """argon2id hashing with the console's cost settings; verification in constant-ish time."""

    def __init__(self, time_cost: int = 3, memory_kib: int = 65536, parallelism: int = 4) -> None:
        self._ph = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism)
        self._dummy = self._ph.hash(secrets.token_hex(16))

    def hash(self, password: str) -> str:
        return self._ph.hash(password)

    def verify(self, pw_hash: str | None, password: str) -> bool:
        """True when *password* matches; a missing user (None) still costs one verification."""
        try:
            return self._ph.verify(pw_hash or self._dummy, password) and pw_hash is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, pw_hash: str) -> bool:
        return self._ph.check_needs_rehash(pw_hash)


def password_problem(password: str, username: str = "") -> str | None:
    """Why *password* is not acceptable, or None."""
    if len(password) < PASSWORD_MIN:
        return f"the password must have at least {PASSWORD_MIN} characters"
    if len(password) > 1024:
        return "the password is too long"
    if username and password.lower() == username.lower():
        return "the password must not be the user name"
    return None


def generate_password() -> str:
    """A random password for first start and resets (about 120 bits)."""
    return secrets.token_urlsafe(15)


def new_token(prefix: str = "") -> str:
    return prefix + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """Sessions and API tokens are stored as SHA-256 (they are random, so no salt or stretching)."""
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8", "replace"), b.encode("utf-8", "replace"))


# --------------------------------------------------------------------------- TOTP (RFC 6238)

TOTP_STEP = 30
TOTP_DIGITS = 6


def totp_secret() -> str:
    """A new base32 secret (160 bits, as RFC 4226 recommends)."""
    return base64.b32encode(secrets.token_bytes(20)).decode("ascii")


def totp_code(secret: str, step: int) -> str:
    """The RFC 6238 code (HMAC-SHA1, 6 digits) for time step *step*."""
    key = base64.b32decode(secret.upper() + "=" * (-len(secret) % 8))
    mac = hmac.new(key, struct.pack(">Q", step), hashlib.sha1).digest()
    off = mac[-1] & 0x0F
    value = struct.unpack(">I", mac[off:off + 4])[0] & 0x7FFFFFFF
    return str(value % 10**TOTP_DIGITS).zfill(TOTP_DIGITS)


def totp_verify(secret: str, code: str, last_step: int = 0, now: float | None = None,
                window: int = 1) -> int | None:
    """The matching time step (±*window* steps, never one ≤ *last_step*: no replay), else None."""
    code = "".join(code.split())
    if not (code.isdigit() and len(code) == TOTP_DIGITS):
        return None
    t = int((time.time() if now is None else now) // TOTP_STEP)
    for step in range(t - window, t + window + 1):
        if step > last_step and hmac.compare_digest(totp_code(secret, step), code):
            return step
    return None


def totp_uri(secret: str, username: str, issuer: str = "tapsift") -> str:
    return (f"otpauth://totp/{quote(issuer)}:{quote(username)}?secret={secret}&issuer={quote(issuer)}"
            f"&digits={TOTP_DIGITS}&period={TOTP_STEP}")


# --------------------------------------------------------------------------- rate limiting


class RateLimiter:
    """Failures per key (client address) in a sliding window; in memory (one console process)."""

    def __init__(self, limit: int, window_s: float) -> None:
        self.limit, self.window_s = limit, window_s
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _prune(self, key: str, now: float) -> deque[float]:
        q = self._hits.setdefault(key, deque())
        while q and q[0] <= now - self.window_s:
            q.popleft()
        return q

    def blocked(self, key: str, now: float | None = None) -> float:
        """Seconds until *key* may try again (0 = now)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            q = self._prune(key, now)
            if len(q) < self.limit:
                return 0.0
            return max(0.0, q[0] + self.window_s - now)

    def fail(self, key: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._prune(key, now).append(now)
            if len(self._hits) > 100_000:  # bound memory under a spray of addresses
                for k in [k for k, v in self._hits.items() if not v][:50_000]:
                    del self._hits[k]

    def reset(self, key: str) -> None:
        with self._lock:
            self._hits.pop(key, None)
