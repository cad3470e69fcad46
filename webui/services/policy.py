"""The sensor's policy file: read (the first read is history #1), validate, save with a version, roll back, reload."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appliance.outputs.alertjson import clean
from webui import policyedit
from webui.db import ConsoleDB
from webui.errors import ServiceError
from webui.services.sessions import Principal


@dataclass(slots=True)
class SaveResult:
    version: str
    version_id: int
    reloaded: bool
    reload_message: str
    warnings: list[str]


@dataclass(slots=True)
class Proposal:
    """A text proposed to replace the current file: its diff, validation and versions."""

    text: str
    base_version: str
    new_version: str
    diff: list[tuple[str, str]]
    validation: policyedit.Validation
    changed: bool


def policy_path(settings: Any) -> Path:
    if settings.policy_path is None:
        raise ServiceError("no policy file is configured (policy_path)", 404)
    return Path(settings.policy_path)


def current_policy(db: ConsoleDB, settings: Any) -> str:
    """The policy file's text; the first time, it becomes version 1 of the history."""
    path = policy_path(settings)
    text = policyedit.read_policy(path)
    if text and not db.policies.count():
        db.policies.add("system", policyedit.version_of(text), text, "the file as found")
    return text


def validate(settings: Any, text: str) -> policyedit.Validation:
    """Validate *text* (never read as a path) with the sensor's loader, named like the policy file."""
    name = Path(settings.policy_path).name if settings.policy_path is not None else "policy.yaml"
    return policyedit.validate(policyedit.normalise(text), name)


def propose(db: ConsoleDB, settings: Any, text: str, new_name: str = "") -> Proposal:
    """The diff of *text* against the current file, for review before saving."""
    path = policy_path(settings)
    text = policyedit.normalise(text)
    current = current_policy(db, settings)
    diff = policyedit.diff_lines(current, text, f"{path.name} (current)", new_name or f"{path.name} (proposed)")
    return Proposal(text, policyedit.version_of(current), policyedit.version_of(text), diff,
                    policyedit.validate(text, path.name), current != text)


def version(db: ConsoleDB, vid: int) -> dict[str, Any]:
    row = db.policy_version(vid)
    if row is None:
        raise ServiceError("no such version", 404)
    return row


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
    with db.tx() as tx:
        vid = tx.policies.add(who.username, new_version, text, clean(comment)[:500])
        db.audit(tx, who.username, "policy.save", str(path), {"version": old_version},
                 {"version": new_version, "comment": comment[:500], "history_id": vid}, ip)
    reloaded, msg = False, "not reloaded"
    if reload:
        reloaded, msg = reload_sensor(db, settings, who, ip)
    return SaveResult(new_version, vid, reloaded, msg, val.warnings)


def reload_sensor(db: ConsoleDB, settings: Any, who: Principal, ip: str = "") -> tuple[bool, str]:
    """SIGHUP to the sensor named by the pid file; audited whether or not it could be sent."""
    ok, msg = policyedit.signal_reload(settings.sensor_pid_file)
    db.audit(None, who.username, "policy.reload", str(settings.policy_path or ""), None,
             {"sent": ok, "message": msg}, ip)
    return ok, msg
