"""Console settings: one YAML file (or keyword arguments), validated by pydantic at this boundary.

The console reaches the sensor only through these paths: the alert store (read-only), the policy
file (written atomically), the sensor's pid file (SIGHUP = reload) and its stats file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError


class ConsoleSettings(BaseModel):
    """Everything ``create_app`` needs; see docs/console.md for each field."""

    model_config = ConfigDict(extra="forbid")

    alert_db: Path = Path("/var/lib/tapsift/alerts.db")
    """The sensor's alert store, opened read-only."""
    console_db: Path = Path("/var/lib/tapsift/console.db")
    """Users, sessions, API tokens, audit log, verdicts, policy versions (the console's own SQLite)."""
    policy_path: Path | None = None
    """The sensor's policy file, edited on the policy page."""
    sensor_pid_file: Path | None = None
    """Pid file of the sensor; a policy reload sends SIGHUP to that pid."""
    stats_file: Path | None = None
    """JSON counters the sensor writes periodically (format in docs/console.md)."""
    stats_stale_s: float = Field(60.0, gt=0)
    """Sensor stats older than this are shown as stale."""
    evidence_dir: Path | None = None
    """Where the sensor writes thumbnails and transcripts that ``Evidence.ref`` names (relative paths)."""
    fingerprint_library: Path | None = None
    """The fingerprint library (SQLite file of ``fingerprints.library``); thumbnails of images uploaded
    through the console are kept beside it in ``<library>.thumbs/``."""
    upload_max_bytes: int = Field(32 * 1024 * 1024, ge=1024)
    """Largest file accepted by a fingerprint upload."""

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    secure_cookies: Literal["auto", "always", "never"] = "auto"
    """``auto``: Secure when the request arrived over HTTPS (``trust_proxy_headers`` for a TLS proxy)."""
    trust_proxy_headers: bool = False
    """Believe ``X-Forwarded-Proto``/``X-Forwarded-For`` (only behind a reverse proxy you run)."""

    session_idle_s: float = Field(3600.0, gt=0)
    session_max_s: float = Field(12 * 3600.0, gt=0)
    login_ip_limit: int = Field(20, ge=1)
    """Failed logins allowed from one address per ``login_ip_window_s``; more get HTTP 429."""
    login_ip_window_s: float = Field(300.0, gt=0)
    lockout_threshold: int = Field(5, ge=1)
    """Consecutive failures that lock an account for ``lockout_s``."""
    lockout_s: float = Field(900.0, gt=0)

    argon2_time_cost: int = Field(3, ge=1)
    argon2_memory_kib: int = Field(65536, ge=8)
    argon2_parallelism: int = Field(4, ge=1)

    page_size: int = Field(50, ge=5, le=500)
    csv_max_rows: int = Field(100_000, ge=1)
    image_max_pixels: int = Field(40_000_000, ge=1)
    """Evidence images larger than this are not decoded (decompression bombs)."""


class ConsoleSettingsError(ValueError):
    """A console settings file that cannot be used."""


def load_console_settings(path: str | Path | None = None, **overrides: object) -> ConsoleSettings:
    """Read a YAML settings file (its ``web:`` section if it has one), then apply *overrides*."""
    raw: dict[str, object] = {}
    if path is not None:
        p = Path(path)
        try:
            data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        except OSError as exc:
            raise ConsoleSettingsError(f"{p}: cannot read: {exc.strerror or exc}") from exc
        except yaml.YAMLError as exc:
            raise ConsoleSettingsError(f"{p}: invalid YAML: {exc}") from exc
        if not isinstance(data, dict):
            raise ConsoleSettingsError(f"{p}: the top level must be a mapping")
        raw = dict(data.get("web", data)) if isinstance(data.get("web", data), dict) else {}
    raw.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return ConsoleSettings.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise ConsoleSettingsError(f"{'.'.join(str(x) for x in err['loc'])}: {err['msg']}") from exc
