"""E-mail notification of alerts: one plain-text message per alert at or above a severity, over SMTP.

Beside the webhooks, through the same durable spool (an outage of the mail server loses nothing;
delivery retries with back-off, in order). The connection uses STARTTLS (``tls="starttls"``, the
submission port 587, certificate and host name checked), implicit TLS (``"ssl"``, port 465) or
none (``"none"``: a local relay only); a login when a user name is given (password from a file).
A message the server refuses permanently (5xx for the recipients or the data) is dropped and
counted (``rejected``) instead of blocking every later alert. Header values are built from the
alert's fields with line breaks removed, so no alert can inject headers.
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any

from appliance import __version__
from appliance.outputs.alertjson import dumps
from appliance.outputs.fields import CONTROL, cut, flat
from appliance.outputs.spool import DEFAULT_MAX_BYTES, SpooledOutput

__all__ = ["EmailOutput", "alert_mail"]

_SEV = {1: "CRITICAL", 2: "HIGH", 3: "MEDIUM", 4: "LOW", 5: "INFO"}


def _line(value: Any, n: int = 200) -> str:
    return cut(CONTROL.sub(" ", str(value)).replace("\r", " ").replace("\n", " "), n)


def alert_mail(record: dict[str, Any], sender: str, recipients: list[str]) -> EmailMessage:
    """The message for one alert record: a short summary and the record as JSON."""
    f = flat(record)
    sev = _SEV.get(f["severity"], str(f["severity"]))
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    msg["Subject"] = _line(f"[tapsift {sev}] {f['category']}: {f['signature']} ({f['alert_id']})", 180)
    msg["Date"] = formatdate(usegmt=True)
    msg["Message-ID"] = make_msgid(domain="tapsift.invalid")
    msg["X-Mailer"] = f"tapsift/{__version__}"
    body = [
        f"Severity: {sev}", f"Category: {_line(f['category'])}", f"Rule: {_line(f['signature'])}",
        f"Alert: {_line(f['alert_id'], 80)}",
        f"From {_line(f['src_ip'], 64)}:{f['src_port']} to {_line(f['dest_ip'], 64)}:{f['dest_port']} "
        f"(zones {_line(f['src_zone'], 64)} → {_line(f['dst_zone'], 64)})",
    ]
    if f["http_host"] or f["http_url"]:
        body.append(f"HTTP: {_line(f['http_method'], 16)} {_line(f['http_host'], 128)}{_line(f['http_url'], 300)}")
    if f["filename"] or f["sha256"]:
        body.append(f"File: {_line(f['filename'], 200)} sha256 {_line(f['sha256'], 64)}")
    if f["findings"]:
        body.append(f"Findings: {_line(f['findings'], 500)}")
    if f["evidence"]:
        body.append(f"Evidence: {_line(f['evidence'], 500)}")
    body += ["", "The alert record:", cut(dumps(record), 60_000)]
    # quoted-printable keeps every line under SMTP's 1,000-character limit (the record is one long line)
    msg.set_content("\n".join(body), charset="utf-8", cte="quoted-printable")
    return msg


class EmailOutput(SpooledOutput):
    """Mails alert records (those at least ``min_severity``) through a durable spool."""

    name = "email"

    def __init__(self, host: str, port: int, sender: str, recipients: list[str], spool_dir: str | Path | None = None,
                 *, tls: str = "starttls", ca_file: str | None = None, username: str | None = None,
                 password: str | None = None, min_severity: int = 2, timeout: float = 15.0,
                 max_spool_bytes: int = DEFAULT_MAX_BYTES, backoff_min: float = 1.0, backoff_max: float = 60.0) -> None:
        if tls not in ("starttls", "ssl", "none"):
            raise ValueError("tls must be starttls, ssl or none")
        if not recipients:
            raise ValueError("an e-mail output needs recipients")
        super().__init__(spool_dir, max_spool_bytes=max_spool_bytes, batch=32, backoff_min=backoff_min,
                         backoff_max=backoff_max)
        self.host, self.port, self.tls, self.timeout = host, port, tls, timeout
        self.sender, self.recipients = sender, list(recipients)
        self.username, self.password = username, password
        self.min_severity = min_severity
        self.ctx = ssl.create_default_context(cafile=ca_file) if tls != "none" else None
        self.skipped = 0
        self.rejected = 0
        self._smtp: smtplib.SMTP | None = None

    def send_many(self, records: Any) -> int:
        keep = []
        for r in records:
            sev = (r.get("alert") or {}).get("severity", 3)
            if isinstance(sev, int) and sev <= self.min_severity:
                keep.append(r)
            else:
                self.skipped += 1
        return super().send_many(keep) if keep else 0

    def render(self, record: dict[str, Any]) -> bytes:
        return alert_mail(record, self.sender, self.recipients).as_bytes(policy=SMTP)  # CRLF line ends

    def _connect(self) -> smtplib.SMTP:
        if self._smtp is not None:
            return self._smtp
        if self.tls == "ssl":
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=self.ctx)
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            smtp.ehlo()
            if self.tls == "starttls":
                smtp.starttls(context=self.ctx)
                smtp.ehlo()
        if self.username:
            smtp.login(self.username, self.password or "")
        self._smtp = smtp
        return smtp

    def _disconnect(self) -> None:
        if self._smtp is not None:
            try:
                self._smtp.quit()
            except (smtplib.SMTPException, OSError):
                self._smtp.close()
            self._smtp = None

    def _pump(self) -> tuple[int, BaseException | None]:
        n = 0
        for seq, body in self.spool.peek(0, self.batch):
            try:
                self._connect().sendmail(self.sender, self.recipients, body)
            except (smtplib.SMTPRecipientsRefused, smtplib.SMTPDataError, smtplib.SMTPSenderRefused) as err:
                code = getattr(err, "smtp_code", None) or 0
                if isinstance(err, smtplib.SMTPRecipientsRefused) or 500 <= code < 600:
                    self.rejected += self.spool.ack(seq)
                    self.last_error = f"refused by the mail server: {err}"
                    continue
                self._disconnect()
                return n, err
            except (smtplib.SMTPException, OSError) as err:
                self._disconnect()
                return n, err
            self.delivered += self.spool.ack(seq)
            n += 1
        return n, None

    def stats(self) -> dict[str, Any]:
        out = super().stats()
        out.update(rejected=self.rejected, skipped=self.skipped)
        return out
