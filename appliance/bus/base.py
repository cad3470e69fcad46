"""The bus interface: streams of entries (field → bytes), consumer groups, at-least-once delivery.

A stream is an append-only log; an entry is a few fields, here mostly one, ``eve``, holding one
EVE JSON line (Suricata's Redis output in stream mode writes the same), and ``sensor``, the
publisher's name. Producers `publish`; consumers read through a *group*: each entry goes to one
consumer of the group and stays *pending* until that consumer acknowledges it (`ack`), which it
does only once the entry's effect is durable (committed to the store, spooled to a SIEM). A
consumer that dies leaves its entries pending; another takes them over after an idle time
(`claim_stale`). Delivery is therefore at least once; the store makes it exactly once by ids.

Every method raises `BusError` when the server cannot be reached or refuses; callers retry with
back-off and keep what they hold (a spool, pending entries), so an outage loses nothing.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from appliance.settings import BusSettings

__all__ = ["EVE_FIELD", "SENSOR_FIELD", "Bus", "BusError", "Fields", "Message", "open_bus"]

EVE_FIELD = "eve"
"""The field holding the JSON line."""
SENSOR_FIELD = "sensor"
"""The publishing sensor's (or worker's) name."""

Fields = Mapping[str, bytes | str]


class BusError(RuntimeError):
    """The bus cannot be reached or refused a command (the message says which and why)."""


@dataclass(frozen=True, slots=True)
class Message:
    """One stream entry as a consumer sees it."""

    stream: str
    id: str
    fields: dict[str, bytes] = field(default_factory=dict)

    @property
    def eve(self) -> bytes:
        return self.fields.get(EVE_FIELD, b"")

    @property
    def sensor(self) -> str:
        return self.fields.get(SENSOR_FIELD, b"").decode("utf-8", "replace")

    def json(self) -> Any:
        """The ``eve`` field parsed; `ValueError` when it is not JSON."""
        return json.loads(self.eve)


class Bus(ABC):
    """A connection to the bus (thread-safe: each call takes a connection of its own)."""

    # -- producing ---------------------------------------------------------------------------
    @abstractmethod
    def publish(self, stream: str, entries: Sequence[Fields], maxlen: int) -> list[str]:
        """Append *entries* in order (the stream capped at about *maxlen*); their ids. On
        `BusError` some may have been appended: the caller sends them again (consumers dedupe)."""

    @abstractmethod
    def length(self, stream: str) -> int:
        """Entries in *stream* (0 when it does not exist)."""

    # -- consuming through a group -----------------------------------------------------------
    @abstractmethod
    def ensure_group(self, stream: str, group: str) -> None:
        """Create *group* on *stream* (and the stream), reading from its start; idempotent."""

    @abstractmethod
    def read_group(self, streams: Sequence[str], group: str, consumer: str, count: int, block_s: float,
                   own: bool = False) -> list[Message]:
        """Up to *count* new entries per stream for *consumer* (waiting up to *block_s*); with
        *own*, the entries already delivered to *consumer* and not acknowledged (after a restart)."""

    @abstractmethod
    def claim_stale(self, stream: str, group: str, consumer: str, idle_s: float, count: int) -> list[Message]:
        """Take over entries other consumers of *group* have held unacknowledged for *idle_s*."""

    @abstractmethod
    def ack(self, stream: str, group: str, ids: Sequence[str]) -> int:
        """Acknowledge entries (done); how many were still pending."""

    @abstractmethod
    def groups(self, stream: str) -> list[dict[str, Any]]:
        """The stream's groups: ``name``, ``consumers``, ``pending``, ``lag`` (None when unknown)."""

    @abstractmethod
    def trim_consumed(self, stream: str) -> int:
        """Drop entries every group has acknowledged (none without groups); how many."""

    @abstractmethod
    def oldest_age_s(self, stream: str, group: str) -> float:
        """Age of the oldest entry not yet acknowledged by *group* (0 when none)."""

    # -- following without a group -----------------------------------------------------------
    @abstractmethod
    def last(self, stream: str) -> Message | None:
        """The newest entry (None when the stream is empty)."""

    @abstractmethod
    def read_after(self, stream: str, after: str, count: int, block_s: float) -> list[Message]:
        """Entries after id *after* (``$``: only those appended from now), waiting up to *block_s*."""

    # -- other -------------------------------------------------------------------------------
    @abstractmethod
    def ping(self) -> None:
        """`BusError` unless the server answers."""

    @abstractmethod
    def close(self) -> None:
        """Release the connections."""


def open_bus(settings: BusSettings) -> Bus:
    """The bus *settings* name: ``redis://``, ``rediss://`` or ``unix://`` → Redis Streams."""
    scheme = settings.url.split(":", 1)[0].lower()
    if scheme in ("redis", "rediss", "unix"):
        from appliance.bus.redis import RedisBus

        return RedisBus.from_settings(settings)
    raise BusError(f"unknown bus scheme {scheme!r} (redis://, rediss:// or unix://)")
