"""Editing the sensor's policy file: validate, diff, save atomically with a version, signal a reload."""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import os
import signal
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from policies.schema import Policy, PolicyError, PolicyIssue, load_policy

MAX_POLICY_BYTES = 4 * 1024 * 1024


def version_of(text: str) -> str:
    """The policy version as the sensor logs it: first 12 hex digits of SHA-256 of the bytes."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def normalise(text: str) -> str:
    """Browsers submit CRLF; the file keeps LF and ends with a newline."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text if text.endswith("\n") or not text else text + "\n"


@dataclass(slots=True)
class Validation:
    ok: bool
    issues: list[PolicyIssue] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    summary: str = ""
    policy: Policy | None = None

    def by_line(self) -> dict[int, list[PolicyIssue]]:
        out: dict[int, list[PolicyIssue]] = {}
        for i in self.issues:
            out.setdefault(i.line, []).append(i)
        return out


def validate(text: str, name: str = "policy.yaml") -> Validation:
    """Validate policy *text* with the sensor's own loader (always as text, never as a path)."""
    raw = text.encode("utf-8")
    if len(raw) > MAX_POLICY_BYTES:
        return Validation(False, [PolicyIssue(0, 0, f"policy larger than {MAX_POLICY_BYTES} bytes", name)])
    try:
        pol = load_policy(raw, source=name)
    except PolicyError as exc:
        return Validation(False, list(exc.issues))
    return Validation(True, [], list(pol.warnings), pol.summary(), pol)


def diff_lines(old: str, new: str, old_name: str = "current", new_name: str = "proposed") -> list[tuple[str, str]]:
    """A unified diff as (css class, line) pairs, for the template to escape and colour."""
    out: list[tuple[str, str]] = []
    for line in difflib.unified_diff(old.splitlines(), new.splitlines(), old_name, new_name, n=3, lineterm=""):
        cls = ("hunk" if line.startswith("@@") else "meta" if line.startswith(("---", "+++"))
               else "add" if line.startswith("+") else "del" if line.startswith("-") else "ctx")
        out.append((cls, line))
    return out


def read_policy(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""


def write_atomic(path: Path, text: str) -> None:
    """Replace *path* with *text* atomically (temp file in the same directory, fsync, rename)."""
    path = Path(path)
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o640
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(text.encode("utf-8"))
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def signal_reload(pid_file: Path | None) -> tuple[bool, str]:
    """Send SIGHUP to the sensor named by *pid_file*; (sent, message)."""
    if pid_file is None:
        return False, "no sensor pid file configured; the sensor picks the file up at its next start or SIGHUP"
    try:
        pid = int(Path(pid_file).read_text().strip())
    except (OSError, ValueError) as exc:
        return False, f"cannot read the sensor pid file {pid_file}: {getattr(exc, 'strerror', None) or exc}"
    if pid <= 1:
        return False, f"refusing to signal pid {pid}"
    try:
        os.kill(pid, signal.SIGHUP)
    except ProcessLookupError:
        return False, f"the sensor (pid {pid}) is not running"
    except PermissionError:
        return False, f"not allowed to signal the sensor (pid {pid})"
    return True, f"reload signal sent to the sensor (pid {pid})"
