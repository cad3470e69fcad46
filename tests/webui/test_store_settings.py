"""Where the console's data lives: SQLite files (two) or one PostgreSQL database (one DSN for both)."""

from __future__ import annotations

from pathlib import Path

import pytest

from webui.settings import ConsoleSettingsError, load_console_settings

PG = "postgresql://console@db.example/tapsift?sslmode=verify-full&sslrootcert=/etc/tapsift/ca.pem"


def test_sqlite_paths_stay_apart(tmp_path: Path) -> None:
    s = load_console_settings(None, alert_db=tmp_path / "a.db", console_db=tmp_path / "c.db")
    assert (s.alert_db, s.console_db) == (str(tmp_path / "a.db"), str(tmp_path / "c.db"))
    assert load_console_settings(None).console_db == "/var/lib/tapsift/console.db"


def test_one_postgresql_dsn_holds_everything(tmp_path: Path) -> None:
    assert load_console_settings(None, alert_db=PG).console_db == PG
    assert load_console_settings(None, console_db=PG).alert_db == PG
    assert load_console_settings(None, alert_db=PG, console_db=PG).console_db == PG
    cfg = tmp_path / "web.yaml"
    cfg.write_text(f"web:\n  alert_db: '{PG}'\n")
    assert load_console_settings(cfg).console_db == PG
    for bad in ({"alert_db": PG, "console_db": tmp_path / "c.db"},
                {"alert_db": PG, "console_db": PG.replace("tapsift?", "other?")},
                {"alert_db": tmp_path / "a.db", "console_db": PG}):
        with pytest.raises(ConsoleSettingsError, match="share one database"):
            load_console_settings(None, **bad)
    with pytest.raises(ConsoleSettingsError, match="unknown store scheme"):
        load_console_settings(None, alert_db="mysql://db/x")
