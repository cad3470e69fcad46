"""Sensor settings: one YAML file validated by pydantic (only at this boundary).

Every limit that protects the sensor from hostile traffic lives here with a safe default,
so that ``tapsift read`` works without a file. See docs/configuration.md for the reference.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

MiB = 1024 * 1024


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CaptureSettings(_Section):
    verify_checksums: bool = True
    """Verify IPv4/TCP/UDP checksums and count bad ones as anomalies (packets are still used)."""
    defrag_timeout_s: float = 30.0
    defrag_memcap: int = 64 * MiB


class ReassemblySettings(_Section):
    max_flows: int = Field(1_000_000, ge=16)
    """Flow table size; beyond it the least recently active flows are evicted."""
    stream_memcap: int = Field(16 * MiB, ge=64 * 1024)
    """Out-of-order bytes buffered per stream direction before a gap is declared."""
    memcap: int = Field(1024 * MiB, ge=MiB)
    """Out-of-order bytes buffered over all streams."""
    overlap_policy: Literal["first", "last"] = "first"
    established_timeout_s: float = 300.0
    closed_timeout_s: float = 30.0
    expire_interval_s: float = 5.0
    """How often (in packet time) idle flows are looked for."""


class HttpSettings(_Section):
    body_limit: int = Field(100 * MiB, ge=0)
    """Bytes of a decoded body to hash and keep; beyond it the object is TRUNCATED (0 = no limit)."""
    max_header_bytes: int = Field(64 * 1024, ge=1024)
    max_decoded_bytes: int = Field(256 * MiB, ge=MiB)
    """Hard cap on the output of content decoding of one body."""
    max_decompression_ratio: int = Field(1000, ge=10)
    """Output/input ratio above which a compressed body is treated as a bomb (after 1 MiB)."""
    max_encoding_layers: int = Field(3, ge=1, le=8)
    range_reassembly_bytes: int = Field(256 * MiB, ge=0)
    """Memory for stitching 206 pieces back into whole files (0 = off)."""


class ContentSettings(_Section):
    keep_bytes: int = Field(8 * MiB, ge=0)
    """Bytes of each object kept in memory for inspection (hashes always cover everything)."""
    magic_bytes: int = Field(64 * 1024, ge=512)
    """Head of each object given to libmagic."""


class SyslogSettings(_Section):
    """One SIEM destination (see docs/siem.md)."""

    host: str
    port: int | None = None
    transport: Literal["udp", "tcp", "tls"] = "tcp"
    format: Literal["json", "cef", "leef"] = "json"
    rfc: Literal["5424", "3164"] = "5424"
    max_message: int = Field(2048, ge=480, le=65507)
    spool_dir: str | None = None
    """Disk spool so that an outage loses nothing (default: under the state directory)."""
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    server_name: str | None = None
    facility: str = "local0"


class WebhookSettings(_Section):
    url: str
    style: Literal["json", "slack"] = "json"
    spool_dir: str | None = None


class OutputSettings(_Section):
    eve: str | None = None
    """EVE JSON lines path (``-`` for stdout)."""
    stats_interval_s: float = 0.0
    """Emit a ``stats`` event every N seconds of packet time (0 = only at the end)."""
    store: str | None = None
    """SQLite alert store (the console reads it); none = alerts go to EVE/syslog only."""
    state_dir: str = "/var/lib/tapsift"
    """Where spools live unless an output names its own."""
    syslog: list[SyslogSettings] = []
    webhooks: list[WebhookSettings] = []


class InspectionSettings(_Section):
    policy: str | None = None
    """Zone policy file (YAML); none = extract and report objects only, no alerts."""
    time_budget_s: float = Field(30.0, gt=0)
    """Wall-clock budget for inspecting one object and its children."""
    max_text_bytes: int = Field(32 * MiB, ge=1024)


class Settings(_Section):
    """Top-level settings file."""

    capture: CaptureSettings = CaptureSettings()
    reassembly: ReassemblySettings = ReassemblySettings()
    http: HttpSettings = HttpSettings()
    content: ContentSettings = ContentSettings()
    output: OutputSettings = OutputSettings()
    inspection: InspectionSettings = InspectionSettings()


class SettingsError(ValueError):
    """A settings file that cannot be used; the message says where and why."""


def load_settings(path: str | Path | None) -> Settings:
    """Read and validate a settings file (None → defaults)."""
    if path is None:
        return Settings()
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise SettingsError(f"{p}: cannot read: {exc.strerror or exc}") from exc
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        raise SettingsError(f"{p}{where}: invalid YAML: {getattr(exc, 'problem', exc)}") from exc
    if not isinstance(raw, dict):
        raise SettingsError(f"{p}: the top level must be a mapping")
    try:
        return Settings.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(x) for x in err["loc"])
        raise SettingsError(f"{p}: {loc}: {err['msg']}") from exc
