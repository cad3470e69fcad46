"""Settings file validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.settings import Settings, SettingsError, load_settings


def test_defaults_without_file() -> None:
    s = load_settings(None)
    assert s.http.body_limit == 100 * 1024 * 1024 and s.reassembly.overlap_policy == "first"


def test_values_override(tmp_path: Path) -> None:
    p = tmp_path / "s.yaml"
    p.write_text("http:\n  body_limit: 1000\nreassembly:\n  overlap_policy: last\n")
    s = load_settings(p)
    assert s.http.body_limit == 1000 and s.reassembly.overlap_policy == "last"
    assert isinstance(s, Settings)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("http:\n  body_limt: 5\n", "http.body_limt"),
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
