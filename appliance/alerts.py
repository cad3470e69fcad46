"""The alert writer: every alert goes to the store, the EVE log and each SIEM output.

One record per alert (`alert_record`) is built once and shared by all sinks, so the
console, the EVE file and the SIEM see the same fields. Outputs spool to disk before
delivery (an outage loses nothing); repeats suppressed by the policy engine are counted
on the first alert in the store.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from appliance.eve import EveWriter
from appliance.model import Alert, ContentObject
from appliance.outputs.alertjson import alert_record
from appliance.outputs.spool import SpooledOutput
from appliance.settings import OutputSettings
from appliance.store import AlertStore
from policies.engine import Suppressed

log = logging.getLogger(__name__)


class AlertWriter:
    """Fans alerts out to the store, EVE and SIEM outputs (the single writer of alerts)."""

    def __init__(self, *, eve: EveWriter | None = None, store: AlertStore | None = None,
                 outputs: list[SpooledOutput] | None = None) -> None:
        self.eve = eve
        self.store = store
        self.outputs = outputs or []
        self.written = 0
        self.suppressed = 0

    @classmethod
    def from_settings(cls, out: OutputSettings, eve: EveWriter | None, *, other_thread: bool = False,
                      sensor: str = "") -> AlertWriter:
        """Open the store and start the outputs named in the settings.

        ``other_thread``: the store is opened here but written from another (single) thread,
        as the live supervisor does (it opens files before dropping privileges).
        """
        from appliance.outputs.syslog import SyslogOutput
        from appliance.outputs.webhook import WebhookOutput

        store = AlertStore(out.store, check_same_thread=not other_thread) if out.store else None
        outputs: list[SpooledOutput] = []
        state = Path(out.state_dir)
        for i, s in enumerate(out.syslog):
            spool = s.spool_dir or str(state / "spool" / f"syslog-{i}-{s.host}-{s.port or 0}")
            Path(spool).mkdir(parents=True, exist_ok=True)
            o = SyslogOutput(s.host, s.port, s.transport, s.format, s.rfc, s.max_message, spool,
                             ca_file=s.ca_file, cert_file=s.cert_file, key_file=s.key_file,
                             server_name=s.server_name, facility=s.facility)
            o.start()
            outputs.append(o)
        for i, w in enumerate(out.webhooks):
            spool = w.spool_dir or str(state / "spool" / f"webhook-{i}")
            Path(spool).mkdir(parents=True, exist_ok=True)
            o = WebhookOutput(w.url, w.style, spool)
            o.start()
            outputs.append(o)
        for i, m in enumerate(out.email):
            from appliance.outputs.email import EmailOutput

            spool = m.spool_dir or str(state / "spool" / f"email-{i}")
            Path(spool).mkdir(parents=True, exist_ok=True)
            password = Path(m.password_file).read_text(encoding="utf-8").strip() if m.password_file else None
            o = EmailOutput(m.host, m.port, m.sender, m.recipients, spool, tls=m.tls, ca_file=m.ca_file,
                            username=m.username, password=password, min_severity=m.min_severity)
            o.start()
            outputs.append(o)
        if out.bus is not None:  # fleet (docs/fleet.md): alerts to the bus's alert stream, spooled
            from appliance.bus.publish import alert_stream

            outputs.append(alert_stream(out, sensor))
        return cls(eve=eve, store=store, outputs=outputs)

    def alert(self, alert: Alert, obj: ContentObject) -> dict[str, Any]:
        """Record and send one alert; returns its record."""
        rec = alert_record(alert, obj)
        if self.store is not None:
            self.store.add(alert, obj, rec)
        if self.eve is not None:
            self.eve.write(rec)
        for o in self.outputs:
            o.send(rec)
        self.written += 1
        return rec

    def record(self, rec: dict[str, Any], ts_ns: int) -> None:
        """Record and send an alert that arrives as its record (from a capture worker)."""
        if self.store is not None:
            self.store.add_record(rec, ts_ns)
        if self.eve is not None:
            self.eve.write(rec)
        for o in self.outputs:
            o.send(rec)
        self.written += 1

    def suppressed_repeat(self, first_id: str) -> None:
        """Count a repeat suppressed in a worker on its first alert."""
        self.suppressed += 1
        if self.store is not None:
            self.store.bump_suppressed(first_id, 1)
        self._bus_suppressed(first_id)

    def suppress(self, s: Suppressed) -> None:
        """Count a suppressed repeat on its first alert."""
        self.suppressed += 1
        if self.store is not None:
            self.store.bump_suppressed(s.first_id, 1)
        self._bus_suppressed(s.first_id)

    def _bus_suppressed(self, first_id: str) -> None:
        """fleet (docs/fleet.md): the ingester counts the repeat on the stored alert."""
        for o in self.outputs:
            if getattr(o, "stream", None) is not None:  # a bus StreamOutput
                o.send({"event_type": "suppressed", "tapsift": {"alert_id": first_id}})

    def close(self, flush_timeout: float = 5.0) -> None:
        """Deliver what can be delivered within ``flush_timeout``; the spools keep the rest."""
        for o in self.outputs:
            try:
                o.close(flush_timeout)
            except Exception:  # an output failing to close must not lose the others
                log.exception("output %s failed to close", o)
        if self.store is not None:
            self.store.close()
