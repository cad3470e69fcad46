"""Console settings: one YAML file (or keyword arguments), validated by pydantic at this boundary.

The console reaches the sensor only through these paths: the alert store (read-only), the policy
file (written atomically), the sensor's pid file (SIGHUP = reload) and its stats file.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from appliance.store.dsn import Dsn

log = logging.getLogger("tapsift.web")


def _location(v: Any) -> Any:
    return os.fspath(v) if isinstance(v, os.PathLike) else v


StoreLocation = Annotated[str, BeforeValidator(_location)]
"""A SQLite path (or ``sqlite:///…``) or a ``postgresql://`` DSN (see docs/fleet.md)."""


class PacketEndpoint(BaseModel):
    """A sensor's PCAP endpoint (`appliance.packetserver`) for a fleet console."""

    model_config = ConfigDict(extra="forbid")

    url: str
    """``https://sensor.example:9918`` (http only on a trusted network)."""
    token_file: Path
    """A file holding the endpoint's bearer token."""
    ca_file: Path | None = None
    """The CA that signed the sensor's certificate (default: the system's)."""


class ConsoleSettings(BaseModel):
    """Everything ``create_app`` needs; see docs/console.md for each field."""

    model_config = ConfigDict(extra="forbid")

    alert_db: StoreLocation = "/var/lib/tapsift/alerts.db"
    """The sensor's alert store, opened read-only: a SQLite path, or a PostgreSQL DSN that holds the
    console's tables too."""
    console_db: StoreLocation = "/var/lib/tapsift/console.db"
    """Users, sessions, API tokens, audit log, verdicts, policy versions: the console's own SQLite file,
    or on PostgreSQL the same DSN as ``alert_db`` (the default when ``alert_db`` is one)."""
    db_pool_size: int = Field(8, ge=1, le=200)
    """PostgreSQL only: connections per pool (one pool for the console's tables, one for reading alerts)."""
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
    content_db: StoreLocation | None = None
    """The retained content (the sensor's ``retention.store``), read-only: content search, sessions, object
    downloads, policy back-tests; none = off. On PostgreSQL usually the same DSN as ``alert_db``."""
    packet_store: Path | None = None
    """The sensor's packet store directory (one box): PCAPs of flows are cut from it."""
    packet_sensors: dict[str, PacketEndpoint] = {}
    """Fleet: sensor name → its PCAP endpoint (alerts name their sensor)."""
    download_role: Literal["viewer", "analyst", "admin"] = "analyst"
    """The least role that may download PCAPs and extracted objects (as password-protected ZIPs)."""
    refresh_s: int = Field(30, ge=5, le=3600)
    """How often lists check for new hits when auto-refresh is on."""
    backtest_max_objects: int = Field(200_000, ge=1)
    backtest_time_s: float = Field(120.0, gt=0)
    """A back-test from the policy editor stops after this many objects or seconds (the CLI has no limit)."""

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    tls_cert: Path | None = None
    """Serve HTTPS with this certificate chain (PEM); ``tls_key`` goes with it."""
    tls_key: Path | None = None
    hsts_max_age_s: int = Field(31_536_000, ge=0)
    """``Strict-Transport-Security`` max-age on responses that arrived over HTTPS (0: no header)."""
    secure_cookies: Literal["auto", "always", "never"] = "auto"
    """``auto``: Secure when the request arrived over HTTPS (``trust_proxy_headers`` for a TLS proxy)."""
    trust_proxy_headers: bool = False
    """Believe ``X-Forwarded-Proto``/``X-Forwarded-For`` (only behind a reverse proxy you run)."""

    session_idle_s: float = Field(3600.0, gt=0)
    session_max_s: float = Field(12 * 3600.0, gt=0)
    login_free_attempts: int = Field(3, ge=1)
    """Failed logins for one user name from one address before that pair is slowed down."""
    login_source_free_attempts: int = Field(20, ge=1)
    """Failed logins from one address (any user names) before the address is slowed down."""
    login_account_free_attempts: int = Field(50, ge=1)
    """Failed logins for one user name from everywhere before browsers without that account's
    device cookie (set at each successful login) are slowed down for it."""
    login_backoff_base_s: float = Field(1.0, gt=0)
    """The first wait once the free attempts are spent; each further failure doubles it."""
    login_backoff_max_s: float = Field(900.0, gt=0)
    login_backoff_forget_s: float = Field(86400.0, gt=0)
    """Failures older than this (since the last one) are forgotten."""

    argon2_time_cost: int = Field(3, ge=1)
    argon2_memory_kib: int = Field(65536, ge=8)
    argon2_parallelism: int = Field(4, ge=1)

    page_size: int = Field(50, ge=5, le=500)
    csv_max_rows: int = Field(100_000, ge=1)
    image_max_pixels: int = Field(40_000_000, ge=1)
    """Evidence images larger than this are not decoded (decompression bombs)."""

    @model_validator(mode="after")
    def _one_database(self) -> ConsoleSettings:
        """On PostgreSQL the alerts and the console's tables are one database: one DSN for both."""
        alerts, console = Dsn.parse(self.alert_db), Dsn.parse(self.console_db)
        if (alerts.is_sqlite and console.is_sqlite) or alerts.url == console.url:
            return self
        if not alerts.is_sqlite and "console_db" not in self.model_fields_set:
            self.console_db = self.alert_db
        elif not console.is_sqlite and "alert_db" not in self.model_fields_set:
            self.alert_db = self.console_db
        else:
            raise ValueError("on PostgreSQL the alerts and the console share one database: give alert_db and "
                             "console_db the same DSN (or only one of them)")
        return self

    @model_validator(mode="after")
    def _tls_pair(self) -> ConsoleSettings:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together")
        return self


class ConsoleSettingsError(ValueError):
    """A console settings file that cannot be used."""


RETIRED = {
    "login_ip_limit": "login_source_free_attempts", "login_ip_window_s": "login_backoff_forget_s",
    "lockout_threshold": "login_free_attempts", "lockout_s": "login_backoff_max_s",
}
"""Keys of earlier versions (a hard account lock) and the settings that replace them."""


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
    retired = sorted(k for k in raw if k in RETIRED)
    for k in retired:
        del raw[k]
    if retired:
        log.warning("ignoring retired console settings (login throttling replaced the account lock): %s",
                    ", ".join(f"{k} (see {RETIRED[k]})" for k in retired))
    try:
        return ConsoleSettings.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(x) for x in err["loc"])
        raise ConsoleSettingsError(f"{where}: {err['msg']}" if where else err["msg"]) from exc
