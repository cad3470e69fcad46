"""Cases: hits grouped under a title, with a status, an assignee, notes and their own audit trail.

Every change is written to the case's log (``case_log``: who, when, what) and to the console's audit
log in the same transaction.
"""

from __future__ import annotations

import time
from typing import Any

from appliance.outputs.alertjson import clean
from appliance.store import NOTE_MAX
from webui.alerts import AlertView
from webui.db import ConsoleDB, ConsoleTx
from webui.errors import ServiceError
from webui.services.sessions import Principal

STATUSES = ("open", "in_progress", "closed")
TITLE_MAX = 200


def _title(title: str) -> str:
    t = clean(str(title)).strip()[:TITLE_MAX]
    if not t:
        raise ServiceError("a case needs a title", 422)
    return t


def create_in(tx: ConsoleTx, who: Principal, title: str, description: str, assignee: str, now: float) -> int:
    """A new case inside the caller's transaction; returns its number."""
    cid = tx.cases.create(_title(title), clean(str(description))[:NOTE_MAX], assignee, who.username, now)
    tx.cases.log(cid, who.username, "created", _title(title), now)
    return cid


def add_hits_in(tx: ConsoleTx, who: Principal, cid: int, alert_ids: list[str], now: float) -> int:
    if tx.cases.get(cid) is None:
        raise ServiceError("no such case", 404)
    n = tx.cases.add_hits(cid, alert_ids, who.username, now)
    if n:
        tx.cases.log(cid, who.username, "hits added", ", ".join(alert_ids[:50]) + (" …" if len(alert_ids) > 50
                                                                                   else ""), now)
        tx.cases.touch(cid, now)
    return n


def create(db: ConsoleDB, who: Principal, title: str, description: str = "", assignee: str = "",
           alert_ids: list[str] | None = None, ip: str = "") -> int:
    now = time.time()
    assignee = assignee.strip()[:100]
    if assignee and db.user_by_name(assignee) is None:
        raise ServiceError(f"no user {assignee!r}", 422)
    with db.tx() as tx:
        cid = create_in(tx, who, title, description, assignee, now)
        if alert_ids:
            add_hits_in(tx, who, cid, alert_ids, now)
        db.audit(tx, who.username, "case.create", f"case {cid}", None, {"title": _title(title)}, ip)
    return cid


def get(db: ConsoleDB, cid: int) -> dict[str, Any]:
    row = db.cases.get(cid)
    if row is None:
        raise ServiceError("no such case", 404)
    return row


def detail(db: ConsoleDB, view: AlertView, cid: int) -> dict[str, Any]:
    """A case with its hits (newest first), notes and log."""
    case = get(db, cid)
    ids = db.cases.hit_ids(cid)
    hits = view.by_ids(ids)
    log = db.cases.history(cid)
    return {"case": case, "hits": hits, "missing": [i for i in ids if i not in {h["id"] for h in hits}],
            "notes": [e for e in log if e["action"] == "note"], "log": log}


def update(db: ConsoleDB, who: Principal, cid: int, *, status: str | None = None, assignee: str | None = None,
           title: str | None = None, note: str = "", ip: str = "") -> None:
    """Change the status, assignee or title and/or add a note (each logged)."""
    case = get(db, cid)
    now = time.time()
    changes: dict[str, str] = {}
    if status is not None and status != case["status"]:
        if status not in STATUSES:
            raise ServiceError(f"status must be one of {', '.join(STATUSES)}", 422)
        changes["status"] = status
    if assignee is not None and assignee.strip() != case["assignee"]:
        a = assignee.strip()[:100]
        if a and db.user_by_name(a) is None:
            raise ServiceError(f"no user {a!r}", 422)
        changes["assignee"] = a
    if title is not None and title.strip() and title.strip() != case["title"]:
        changes["title"] = _title(title)
    note = clean(str(note)).strip()[:NOTE_MAX]
    if not changes and not note:
        raise ServiceError("nothing to change", 400)
    with db.tx() as tx:
        if changes:
            tx.cases.update(cid, now, **changes)
            for k, v in changes.items():
                tx.cases.log(cid, who.username, f"{k} changed", f"{case[k] or '–'} → {v or '–'}", now)
        if note:
            tx.cases.log(cid, who.username, "note", note, now)
            tx.cases.touch(cid, now)
        db.audit(tx, who.username, "case.update", f"case {cid}", {k: case[k] for k in changes},
                 {**changes, **({"note": note} if note else {})}, ip)


def add_hits(db: ConsoleDB, view: AlertView, who: Principal, cid: int, alert_ids: list[str], ip: str = "") -> int:
    found = [r["id"] for r in view.by_ids(alert_ids)]
    if not found:
        raise ServiceError("no such hits", 404)
    now = time.time()
    with db.tx() as tx:
        n = add_hits_in(tx, who, cid, found, now)
        db.audit(tx, who.username, "case.add_hits", f"case {cid}", None, {"ids": found[:200]}, ip)
    return n


def remove_hit(db: ConsoleDB, who: Principal, cid: int, alert_id: str, ip: str = "") -> None:
    get(db, cid)
    now = time.time()
    with db.tx() as tx:
        if not tx.cases.remove_hit(cid, alert_id):
            raise ServiceError("that hit is not in the case", 404)
        tx.cases.log(cid, who.username, "hit removed", alert_id, now)
        tx.cases.touch(cid, now)
        db.audit(tx, who.username, "case.remove_hit", f"case {cid}", {"id": alert_id}, None, ip)
