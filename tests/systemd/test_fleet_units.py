"""systemd/: the fleet's units (ingester, inspection workers) pass ``systemd-analyze verify`` and are hardened."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.systemd.test_units import SYSTEMD, _need

UNITS = ("tapsift-ingest.service", "tapsift-inspect-worker@.service")


def _settings(unit: str) -> dict[str, str]:
    text = (SYSTEMD / unit).read_text()
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#"))


def test_fleet_units_verify(tmp_path: Path) -> None:
    analyze = _need("systemd-analyze")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "tapsift").symlink_to(Path(sys.executable).with_name("tapsift"))
    for unit in UNITS:
        (tmp_path / unit).write_text((SYSTEMD / unit).read_text().replace("/opt/tapsift/bin/", f"{bindir}/"))
    p = subprocess.run([analyze, "verify", "--man=no", "./tapsift-ingest.service",
                        "./tapsift-inspect-worker@1.service"], cwd=tmp_path, capture_output=True, text=True,
                       timeout=120, env={**os.environ, "SYSTEMD_LOG_LEVEL": "warning"})
    ours = [ln for ln in (p.stdout + p.stderr).splitlines() if "tapsift" in ln]
    assert p.returncode == 0 and not ours, p.stdout + p.stderr


def test_fleet_units_hold_no_privileges() -> None:
    for unit in UNITS:
        s = _settings(unit)
        assert s["User"] == "tapsift" and s["CapabilityBoundingSet"] == "" and s["AmbientCapabilities"] == ""
        assert s["NoNewPrivileges"] == "yes" and s["ProtectSystem"] == "strict" and s["ProtectHome"] == "yes"
        assert s["MemoryMax"] and s["Restart"] == "always"
        assert "AF_PACKET" not in s["RestrictAddressFamilies"]  # neither captures
    assert "--name %H-%i" in _settings("tapsift-inspect-worker@.service")["ExecStart"]
