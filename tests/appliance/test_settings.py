"""Settings file validation."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import pytest

from appliance import settings as settings_mod
from appliance.settings import Settings, SettingsError, load_settings
from reassembly.applayer.table import PROTOCOLS


def test_defaults_without_file() -> None:
    s = load_settings(None)
    assert s.applayer.http.body_limit == 100 * 1024 * 1024 and s.reassembly.overlap_policy == "first"
    assert s.http is None


def test_values_override(tmp_path: Path) -> None:
    p = tmp_path / "s.yaml"
    p.write_text("applayer:\n  smtp:\n    body_limit: 1000\nreassembly:\n  overlap_policy: last\n")
    s = load_settings(p)
    assert s.applayer.smtp.body_limit == 1000 and s.reassembly.overlap_policy == "last"
    assert s.applayer.http.body_limit == 100 * 1024 * 1024  # only smtp's
    assert isinstance(s, Settings)


def test_deprecated_http_section_is_an_alias(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """``http.body_limit`` was every protocol's limit: it still is, unless ``applayer`` says
    otherwise; the other ``http`` keys are ``applayer.http``'s. One warning per process."""
    monkeypatch.setitem(settings_mod._warned, "http", False)
    p = tmp_path / "s.yaml"
    p.write_text("http:\n  body_limit: 1000\n  max_header_bytes: 2048\napplayer:\n  smb:\n    body_limit: 7\n")
    with caplog.at_level(logging.WARNING, logger="tapsift.settings"):
        s = load_settings(p)
        load_settings(p)
    assert [r.message for r in caplog.records if "deprecated" in r.message] == [
        "settings: the 'http:' section is deprecated; use 'applayer:' (see docs/configuration.md)"]
    limits = {name: sec.body_limit for name, sec in s.applayer.limits().items()}
    assert limits == {"http": 1000, "smtp": 1000, "ftp": 1000, "smb": 7, "irc": 1000, "raw": 1000, "http2": 1000,
                      "websocket": 1000, "imap": 1000, "pop3": 1000, "tls": 1000, "quic": 1000, "dns": 1000}
    assert s.applayer.http.max_header_bytes == 2048 and s.http is None


def test_body_limit_for_every_protocol() -> None:
    s = Settings()
    s.applayer.set_body_limit(5)
    assert {sec.body_limit for sec in s.applayer.limits().values()} == {5}
    assert Settings().applayer.ftp.body_limit == 100 * 1024 * 1024  # defaults are not shared


def test_settings_defaults_are_the_protocol_tables() -> None:
    """Each ``applayer`` section repeats its table entry's default limits (no drift), and every
    protocol that makes objects has a section."""
    sections = Settings().applayer.limits()
    for entry in PROTOCOLS:
        name = entry.limits_from or entry.name
        if name in ("ssh", "socks"):  # looked at, never looked into (socks hands its tunnel on): no limits
            assert name not in sections
            continue
        assert name in sections, f"add a settings section applayer.{name}"
        for f in dataclasses.fields(entry.limits):
            assert getattr(sections[name], f.name) == getattr(entry.limits, f.name), (name, f.name)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("http:\n  body_limt: 5\n", "http.body_limt"),
        ("applayer:\n  http:\n    body_limit: -1\n", "applayer.http.body_limit"),
        ("applayer:\n  gopher:\n    body_limit: 1\n", "applayer.gopher"),
        ("http: [1,\n", ":2:1: invalid YAML"),
        ("reassembly:\n  overlap_policy: middle\n", "reassembly.overlap_policy"),
        ("- a\n", "top level must be a mapping"),
    ],
)
def test_errors_say_where(tmp_path: Path, text: str, needle: str) -> None:
    p = tmp_path / "s.yaml"
    p.write_text(text)
    with pytest.raises(SettingsError) as ei:
        load_settings(p)
    assert needle in str(ei.value) and str(p) in str(ei.value)


def test_unreadable(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="cannot read"):
        load_settings(tmp_path / "missing.yaml")
