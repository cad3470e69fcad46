"""Redis Streams behind the `Bus` interface (redis-py; Redis 6.2 or later, 7 tested).

- publishing: ``XADD key MAXLEN ~ N * eve <json> sensor <name>``, pipelined (one round trip per
  batch);
- consuming: ``XREADGROUP`` (``>`` for new entries, ``0`` for one's own pending ones after a
  restart), ``XACK`` once the effect is durable, ``XAUTOCLAIM`` for entries a dead or stuck
  consumer holds;
- trimming: ``XTRIM MINID`` up to the oldest entry some group still needs (`trim_consumed`), so
  a stream holds what is not yet consumed and ``XLEN`` is the backlog.

Connections: ``redis://``, ``rediss://`` (TLS: ``ca_file``, optional client ``cert_file`` /
``key_file``; the server's name is checked) and ``unix://``; the ACL user in the URL, its
password from ``password_file``. Commands fail fast (one retry on a dropped connection, then
`BusError`); the callers keep what they hold and retry with back-off.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from appliance.bus.base import Bus, BusError, Fields, Message

if TYPE_CHECKING:
    from appliance.settings import BusSettings

__all__ = ["RedisBus", "redacted"]

def redacted(url: str) -> str:
    """*url* without a password (``user:***@host``)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _s(v: Any) -> str:
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)


def _fields(raw: Any) -> dict[str, bytes]:
    return {_s(k): v if isinstance(v, bytes) else str(v).encode() for k, v in (raw or {}).items()}


def _next_id(msg_id: str) -> str:
    ms, _, seq = msg_id.partition("-")
    return f"{ms}-{int(seq or 0) + 1}"


class RedisBus(Bus):
    """A Redis server (see the module doc)."""

    def __init__(self, url: str, *, password: str | None = None, ca_file: str | None = None,
                 cert_file: str | None = None, key_file: str | None = None, timeout_s: float = 10.0) -> None:
        self.url = url
        kw: dict[str, Any] = {"socket_timeout": timeout_s, "socket_connect_timeout": timeout_s,
                              "retry": Retry(NoBackoff(), 1), "health_check_interval": 30}
        if password is not None:
            kw["password"] = password
        if url.lower().startswith("rediss:"):
            kw.update(ssl_ca_certs=ca_file, ssl_certfile=cert_file, ssl_keyfile=key_file, ssl_cert_reqs="required")
        elif ca_file or cert_file:
            raise BusError(f"{redacted(url)}: TLS files given for a plain connection (use rediss://)")
        self.timeout_s = timeout_s
        try:
            self.r = redis.Redis.from_url(url, **kw)
        except (ValueError, redis.RedisError) as exc:
            raise BusError(f"{redacted(url)}: {exc}") from None

    @classmethod
    def from_settings(cls, s: BusSettings) -> RedisBus:
        password = None
        if s.password_file:
            try:
                password = Path(s.password_file).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise BusError(f"cannot read the bus password file {s.password_file}: {exc.strerror}") from None
        return cls(s.url, password=password, ca_file=s.ca_file, cert_file=s.cert_file, key_file=s.key_file,
                   timeout_s=s.timeout_s)

    def __repr__(self) -> str:
        return f"RedisBus({redacted(self.url)})"

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        try:
            yield
        except redis.RedisError as exc:
            raise BusError(f"{redacted(self.url)}: {what}: {type(exc).__name__}: {exc}") from None
        except OSError as exc:  # a TLS file that cannot be read, a socket error outside redis-py
            raise BusError(f"{redacted(self.url)}: {what}: {exc}") from None

    # -- producing ---------------------------------------------------------------------------
    def publish(self, stream: str, entries: Sequence[Fields], maxlen: int) -> list[str]:
        if not entries:
            return []
        with self._errors(f"XADD {stream}"):
            pipe = self.r.pipeline(transaction=False)
            for e in entries:
                pipe.xadd(stream, dict(e), maxlen=maxlen, approximate=True)
            return [_s(i) for i in pipe.execute()]

    def length(self, stream: str) -> int:
        with self._errors(f"XLEN {stream}"):
            return int(self.r.xlen(stream))

    # -- consuming ---------------------------------------------------------------------------
    def ensure_group(self, stream: str, group: str) -> None:
        with self._errors(f"XGROUP CREATE {stream} {group}"):
            try:
                self.r.xgroup_create(stream, group, id="0", mkstream=True)
            except redis.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    def read_group(self, streams: Sequence[str], group: str, consumer: str, count: int, block_s: float,
                   own: bool = False) -> list[Message]:
        want = {s: ("0" if own else ">") for s in streams}
        block = None if own else max(1, int(block_s * 1000))
        with self._errors(f"XREADGROUP {group}"):
            try:
                got = self.r.xreadgroup(group, consumer, want, count=count, block=block)
            except redis.ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                for s in streams:  # the stream or the group went away (a Redis without persistence restarted)
                    self.ensure_group(s, group)
                got = self.r.xreadgroup(group, consumer, want, count=count, block=block)
        out: list[Message] = []
        gone: dict[str, list[str]] = {}
        for name, entries in got or []:
            stream = _s(name)
            for mid, fields in entries:
                if fields is None:  # trimmed while pending: nothing left to process
                    gone.setdefault(stream, []).append(_s(mid))
                else:
                    out.append(Message(stream, _s(mid), _fields(fields)))
        for stream, ids in gone.items():
            self.ack(stream, group, ids)
        return out

    def claim_stale(self, stream: str, group: str, consumer: str, idle_s: float, count: int) -> list[Message]:
        out: list[Message] = []
        start = "0-0"
        with self._errors(f"XAUTOCLAIM {stream} {group}"):
            try:
                while len(out) < count:
                    res = self.r.xautoclaim(stream, group, consumer, int(idle_s * 1000), start, count=count - len(out))
                    start = _s(res[0])
                    out += [Message(stream, _s(mid), _fields(f)) for mid, f in res[1] if f is not None]
                    if start == "0-0":
                        break
            except redis.ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
        return out

    def ack(self, stream: str, group: str, ids: Sequence[str]) -> int:
        if not ids:
            return 0
        with self._errors(f"XACK {stream} {group}"):
            return int(self.r.xack(stream, group, *ids))

    def groups(self, stream: str) -> list[dict[str, Any]]:
        with self._errors(f"XINFO GROUPS {stream}"):
            try:
                info = self.r.xinfo_groups(stream)
            except redis.ResponseError as exc:
                if "no such key" in str(exc).lower():
                    return []
                raise
        return [{"name": _s(g["name"]), "consumers": int(g["consumers"]), "pending": int(g["pending"]),
                 "last_delivered": _s(g["last-delivered-id"]), "lag": g.get("lag")} for g in info]

    def _oldest_needed(self, stream: str, g: dict[str, Any]) -> str:
        """The oldest entry group *g* still needs: its oldest pending, else the one after its last delivered."""
        if g["pending"]:
            summary = self.r.xpending(stream, g["name"])
            if summary.get("min"):
                return _s(summary["min"])
        return _next_id(g["last_delivered"])

    def trim_consumed(self, stream: str) -> int:
        groups = self.groups(stream)
        if not groups:
            return 0
        with self._errors(f"XTRIM {stream}"):
            needed = min((self._oldest_needed(stream, g) for g in groups),
                         key=lambda i: tuple(int(x) for x in i.split("-")))
            return int(self.r.xtrim(stream, minid=needed, approximate=False))

    def oldest_age_s(self, stream: str, group: str) -> float:
        with self._errors(f"oldest entry of {stream}"):
            for g in self.groups(stream):
                if g["name"] != group:
                    continue
                oldest = self._oldest_needed(stream, g)
                first = self.r.xrange(stream, min=oldest, count=1)
                if not first:
                    return 0.0
                ms = int(_s(first[0][0]).split("-")[0])
                now_s, now_us = self.r.time()
                return max(0.0, now_s + now_us / 1e6 - ms / 1000)
        return 0.0

    # -- following ---------------------------------------------------------------------------
    def last(self, stream: str) -> Message | None:
        with self._errors(f"XREVRANGE {stream}"):
            got = self.r.xrevrange(stream, "+", "-", count=1)
        return Message(stream, _s(got[0][0]), _fields(got[0][1])) if got else None

    def read_after(self, stream: str, after: str, count: int, block_s: float) -> list[Message]:
        with self._errors(f"XREAD {stream}"):
            got = self.r.xread({stream: after}, count=count, block=max(1, int(block_s * 1000)))
        return [Message(_s(name), _s(mid), _fields(f)) for name, entries in got or [] for mid, f in entries]

    # -- other -------------------------------------------------------------------------------
    def ping(self) -> None:
        with self._errors("PING"):
            self.r.ping()

    def server_time(self) -> float:
        """The server's clock (Unix seconds): stream ids are made of it."""
        with self._errors("TIME"):
            s, us = self.r.time()
        return s + us / 1e6

    def close(self) -> None:
        try:
            self.r.close()
        except redis.RedisError:
            pass


def wait_until_up(bus: Bus, timeout_s: float) -> bool:
    """True once *bus* answers (tests, tools)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            bus.ping()
            return True
        except BusError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
