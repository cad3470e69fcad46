"""Console operations shared by the pages and the API; each change is audited (who, what, before/after)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appliance.outputs.alertjson import clean
from appliance.store import NOTE_MAX, TRIAGE_STATES
from webui import policyedit
from webui.alerts import AlertView
from webui.auth import Principal
from webui.db import ConsoleDB


class ServiceError(ValueError):
    """A request that cannot be done; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def set_verdict(db: ConsoleDB, view: AlertView, who: Principal, alert_id: str, verdict: str, note: str,
                ip: str = "") -> dict[str, Any]:
    """Record an analyst's verdict in the console DB (the alert store is the sensor's alone)."""
    if verdict not in TRIAGE_STATES:
        raise ServiceError(f"verdict must be one of {', '.join(TRIAGE_STATES)}", 422)
    hit = view.get(alert_id)
    if hit is None:
        raise ServiceError("no such hit", 404)
    note = clean(str(note))[:NOTE_MAX]
    before = {"verdict": hit["triage"], "note": hit["triage_note"]}
    now = time.time()
    with db.tx() as conn:
        conn.execute("INSERT INTO verdicts (alert_id, verdict, note, user, ts) VALUES (?,?,?,?,?) "
                     "ON CONFLICT(alert_id) DO UPDATE SET verdict = excluded.verdict, note = excluded.note, "
                     "user = excluded.user, ts = excluded.ts", (alert_id, verdict, note, who.username, now))
        conn.execute("INSERT INTO verdict_log (alert_id, ts, verdict, note, user) VALUES (?,?,?,?,?)",
                     (alert_id, now, verdict, note, who.username))
        db.audit(conn, who.username, "hit.triage", alert_id, before, {"verdict": verdict, "note": note}, ip)
    return {"alert_id": alert_id, "verdict": verdict, "note": note, "user": who.username, "ts": now}


# --------------------------------------------------------------------------- policy


@dataclass(slots=True)
class SaveResult:
    version: str
    version_id: int
    reloaded: bool
    reload_message: str
    warnings: list[str]


def policy_path(settings: Any) -> Path:
    if settings.policy_path is None:
        raise ServiceError("no policy file is configured (policy_path)", 404)
    return Path(settings.policy_path)


def current_policy(db: ConsoleDB, settings: Any) -> str:
    """The policy file's text; the first time, it becomes version 1 of the history."""
    path = policy_path(settings)
    text = policyedit.read_policy(path)
    if text and not db.scalar("SELECT COUNT(*) FROM policy_versions"):
        with db.tx() as conn:
            conn.execute("INSERT INTO policy_versions (ts, user, version, text, comment) VALUES (?,?,?,?,?)",
                         (time.time(), "system", policyedit.version_of(text), text, "the file as found"))
    return text


def save_policy(db: ConsoleDB, settings: Any, who: Principal, text: str, base_version: str | None,
                comment: str = "", reload: bool = False, ip: str = "") -> SaveResult:
    """Validate, refuse if the file changed since *base_version*, write atomically, version, audit, reload."""
    path = policy_path(settings)
    text = policyedit.normalise(text)
    val = policyedit.validate(text, path.name)
    if not val.ok:
        raise ServiceError("the policy is invalid:\n" + "\n".join(str(i) for i in val.issues), 422)
    old = current_policy(db, settings)
    old_version = policyedit.version_of(old)
    if base_version and base_version != old_version:
        raise ServiceError(f"the policy file changed since you started editing (it is now version {old_version}); "
                           "reload the page and apply your change again", 409)
    new_version = policyedit.version_of(text)
    if text == old:
        raise ServiceError("no change to save", 400)
    policyedit.write_atomic(path, text)
    with db.tx() as conn:
        cur = conn.execute("INSERT INTO policy_versions (ts, user, version, text, comment) VALUES (?,?,?,?,?)",
                           (time.time(), who.username, new_version, text, clean(comment)[:500]))
        vid = int(cur.lastrowid or 0)
        db.audit(conn, who.username, "policy.save", str(path), {"version": old_version},
                 {"version": new_version, "comment": comment[:500], "history_id": vid}, ip)
    reloaded, msg = False, "not reloaded"
    if reload:
        reloaded, msg = reload_sensor(db, settings, who, ip)
    return SaveResult(new_version, vid, reloaded, msg, val.warnings)


def reload_sensor(db: ConsoleDB, settings: Any, who: Principal, ip: str = "") -> tuple[bool, str]:
    ok, msg = policyedit.signal_reload(settings.sensor_pid_file)
    db.audit(None, who.username, "policy.reload", str(settings.policy_path or ""), None,
             {"sent": ok, "message": msg}, ip)
    return ok, msg
