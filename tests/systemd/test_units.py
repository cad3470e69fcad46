"""systemd/: the units pass ``systemd-analyze verify``; sysusers/tmpfiles entries apply to a scratch root."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SYSTEMD = Path(__file__).resolve().parents[2] / "systemd"
UNITS = ("tapsift-sensor@.service", "tapsift-web.service")


def _need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} is not installed (Debian package systemd)")
    return path


def test_units_verify(tmp_path: Path) -> None:
    """The units as shipped, with /opt/tapsift/bin pointed at this checkout's tapsift (verify checks
    that ExecStart programs exist); any warning about our files fails the test."""
    analyze = _need("systemd-analyze")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "tapsift").symlink_to(Path(sys.executable).with_name("tapsift"))
    (bindir / "tapsift-sensor-instance").symlink_to(SYSTEMD / "tapsift-sensor-instance")
    for unit in UNITS:
        text = (SYSTEMD / unit).read_text().replace("/opt/tapsift/bin/", f"{bindir}/")
        (tmp_path / unit).write_text(text)
    p = subprocess.run([analyze, "verify", "--man=no", "./tapsift-sensor@eth1.service", "./tapsift-web.service"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=120,
                       env={**os.environ, "SYSTEMD_LOG_LEVEL": "warning"})
    ours = [ln for ln in (p.stdout + p.stderr).splitlines() if "tapsift" in ln]
    assert p.returncode == 0 and not ours, p.stdout + p.stderr


def test_sensor_unit_hardening() -> None:
    unit = (SYSTEMD / "tapsift-sensor@.service").read_text()
    settings = dict(line.split("=", 1) for line in unit.splitlines() if "=" in line and not line.startswith("#"))
    assert settings["User"] == "tapsift"
    assert settings["NoNewPrivileges"] == "yes"
    assert settings["ProtectSystem"] == "strict"
    assert settings["ProtectHome"] == "yes"
    assert set(settings["CapabilityBoundingSet"].split()) == {"CAP_NET_RAW", "CAP_NET_ADMIN"}
    assert set(settings["AmbientCapabilities"].split()) == {"CAP_NET_RAW", "CAP_NET_ADMIN"}
    assert settings["MemoryMax"]
    assert settings["ExecReload"].endswith("-HUP $MAINPID")
    web = (SYSTEMD / "tapsift-web.service").read_text()
    assert "CapabilityBoundingSet=\n" in web and "NoNewPrivileges=yes" in web


def test_sysusers_and_tmpfiles_apply_to_a_scratch_root(tmp_path: Path) -> None:
    sysusers, tmpfiles = _need("systemd-sysusers"), _need("systemd-tmpfiles")
    if os.geteuid() != 0:
        pytest.skip("systemd-tmpfiles --root needs root to chown")
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    p = subprocess.run([sysusers, f"--root={root}", str(SYSTEMD / "tapsift.sysusers.conf")], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    passwd = (root / "etc" / "passwd").read_text()
    line = next(ln for ln in passwd.splitlines() if ln.startswith("tapsift:"))
    uid = int(line.split(":")[2])
    assert line.endswith(":/var/lib/tapsift:/usr/sbin/nologin") and uid < 1000
    p = subprocess.run([tmpfiles, f"--root={root}", "--create", str(SYSTEMD / "tapsift.tmpfiles.conf")],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    st = (root / "var" / "log" / "tapsift").stat()
    assert st.st_uid == uid and oct(st.st_mode & 0o777) == "0o750"


def test_instance_script_picks_config_or_interface(tmp_path: Path) -> None:
    script = (SYSTEMD / "tapsift-sensor-instance").read_text()
    assert '/etc/tapsift/$inst.yaml' in script and '-i "$inst"' in script
    p = subprocess.run(["sh", "-n", str(SYSTEMD / "tapsift-sensor-instance")], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
