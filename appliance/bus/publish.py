"""A sensor's side of the bus: ordered, disk-spooled publishing to one stream per kind.

`StreamOutput` is a `SpooledOutput` (the SIEM outputs' spool and delivery loop): ``send`` appends
the record's JSON line to a bounded SQLite spool on disk and returns; a thread moves the spool
to the stream in batches (``XADD … MAXLEN ~``, one round trip per batch) and deletes a batch from
the spool only once Redis has it. So:

- Redis down, or unreachable: the spool fills, in order; on reconnection it drains in order
  (catch-up), and a sensor restarted meanwhile drains what the last run left;
- the stream too long (the consumers are behind: ``XLEN`` at 90 % of ``maxlen``): the sensor
  holds back (counted in ``held_back``) rather than let ``MAXLEN`` trim entries nobody read;
- the spool full (``spool_max_mb``): new messages are refused and counted (``dropped_full``);
  the oldest are kept, order is never broken.

A batch that reached Redis but whose reply was lost is sent again: consumers see it twice and
the store keeps one copy (alert ids). `EveTee` sends the EVE events (everything but alerts, which
the alert writer sends with the store's and the SIEM's copies) to the events stream.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from appliance.bus.base import EVE_FIELD, SENSOR_FIELD, Bus, BusError, open_bus
from appliance.outputs.alertjson import dumps
from appliance.outputs.spool import SpooledOutput

__all__ = ["BackPressure", "EveTee", "StreamOutput", "alert_stream", "event_stream", "spool_dir_for"]

log = logging.getLogger(__name__)

HIGH_WATER = 0.9
"""Share of ``maxlen`` at which publishers hold back."""


class BackPressure(BusError):
    """The stream holds as many entries as it may: the consumers are behind."""


def spool_dir_for(state_dir: str | Path, stream: str) -> Path:
    """Where a stream's spool lives: ``STATE_DIR/spool/bus-<key>``."""
    return Path(state_dir) / "spool" / ("bus-" + re.sub(r"[^A-Za-z0-9_.-]+", "_", stream))


class StreamOutput(SpooledOutput):
    """Records (or ready JSON lines) of one kind to one stream, through a disk spool (module doc)."""

    def __init__(self, connect: Callable[[], Bus], stream: str, sensor: str, spool_dir: str | Path | None, *,
                 maxlen: int, max_spool_bytes: int, batch: int = 256) -> None:
        super().__init__(spool_dir, max_spool_bytes=max_spool_bytes, batch=batch, backoff_min=0.2, backoff_max=5.0)
        self.name = f"bus:{stream}"
        self.connect = connect
        self.stream = stream
        self.sensor = sensor
        self.maxlen = maxlen
        self.high_water = max(1, int(maxlen * HIGH_WATER))
        self.held_back = 0
        """Delivery attempts put off because the stream was at its high-water mark."""
        self._bus: Bus | None = None

    def render(self, record: dict[str, Any]) -> bytes:
        if self.sensor and record.get("event_type") == "alert":
            ts = record.setdefault("tapsift", {})
            if isinstance(ts, dict):
                ts.setdefault("sensor", self.sensor)
        return dumps(record).encode("utf-8")

    def send_lines(self, lines: Iterable[str]) -> int:
        """Spool JSON lines as they are (already serialised by a capture worker)."""
        n = self.spool.append_many(line.encode("utf-8") for line in lines)
        self._wake.set()
        return n

    def _connected(self) -> Bus:
        if self._bus is None:
            self._bus = self.connect()
        return self._bus

    def _pump(self) -> tuple[int, BaseException | None]:
        sent = 0
        while True:
            batch = self.spool.peek(0, self.batch)
            if not batch:
                return sent, None
            try:
                bus = self._connected()
                if bus.length(self.stream) >= self.high_water:
                    self.held_back += 1
                    return sent, BackPressure(f"{self.stream} holds {self.high_water}+ entries: holding back")
                sensor = self.sensor.encode("utf-8")
                bus.publish(self.stream, [{EVE_FIELD: m, SENSOR_FIELD: sensor} for _, m in batch], self.maxlen)
            except BusError as exc:
                return sent, exc
            self.spool.ack(batch[-1][0])
            self.delivered += len(batch)
            sent += len(batch)

    def _disconnect(self) -> None:
        if self._bus is not None:
            self._bus.close()
            self._bus = None

    def stats(self) -> dict[str, Any]:
        return {**super().stats(), "held_back": self.held_back}


def _output(settings: Any, stream: str, sensor: str, state_dir: str | Path) -> StreamOutput:
    bus = settings
    spool = spool_dir_for(state_dir, stream)
    spool.mkdir(parents=True, exist_ok=True)
    return StreamOutput(lambda: open_bus(bus), stream, sensor, spool, maxlen=bus.maxlen,
                        max_spool_bytes=bus.spool_max_mb << 20)


def alert_stream(out: Any, sensor: str, start: bool = True) -> StreamOutput:
    """The alert stream output of ``output`` settings *out* (``out.bus`` set), started."""
    o = _output(out.bus, out.bus.alerts_key, sensor, out.state_dir)
    if start:
        o.start()
    return o


def event_stream(out: Any, sensor: str, start: bool = True) -> StreamOutput:
    """The EVE event stream output of ``output`` settings *out*, started."""
    o = _output(out.bus, out.bus.events_key, sensor, out.state_dir)
    if start:
        o.start()
    return o


class EveTee:
    """An `EveWriter` that also sends every event but alerts to an events `StreamOutput`.

    Lines are collected and spooled in batches (at ``batch`` lines and at every ``flush``), so
    the writer pays one spool transaction per batch, not per line.
    """

    def __init__(self, eve: Any, events: StreamOutput, batch: int = 256) -> None:
        self.eve = eve
        self.events = events
        self.batch = batch
        self._lines: list[str] = []

    @property
    def written(self) -> int:
        return int(getattr(self.eve, "written", 0))

    def write(self, event: dict[str, Any]) -> None:
        self.eve.write(event)
        if event.get("event_type") != "alert":
            self._lines.append(dumps(event))
            if len(self._lines) >= self.batch:
                self._send()

    def write_line(self, line: str) -> None:
        self.eve.write_line(line)
        self._lines.append(line)
        if len(self._lines) >= self.batch:
            self._send()

    def _send(self) -> None:
        lines, self._lines = self._lines, []
        try:
            self.events.send_lines(lines)
        except Exception:  # the EVE file must go on whatever the spool does
            log.exception("cannot spool %d EVE events for the bus", len(lines))

    def flush(self) -> None:
        self.eve.flush()
        if self._lines:
            self._send()

    def reopen(self) -> None:
        self.eve.reopen()

    def rotate(self) -> None:
        self.eve.rotate()

    def close(self, flush_timeout: float = 5.0) -> None:
        """Close the file, then deliver what can be delivered in *flush_timeout* (the spool keeps the rest)."""
        self.flush()
        self.eve.close()
        self.events.close(flush_timeout)

    def __getattr__(self, name: str) -> Any:  # rotations, rotate_bytes… of the wrapped writer
        return getattr(self.eve, name)
