"""Objects leave the console as ZIPs encrypted with the password ``infected``: read back by Python's zipfile and
by Info-ZIP's unzip, refused without the password, names stripped of paths."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from webui.zipcrypto import encrypted_zip


def test_read_back_with_the_password_only(tmp_path: Path) -> None:
    data = os.urandom(5000) + "机密 content".encode() * 200
    z = encrypted_zip([("../../etc/evil<x>.exe", data), ("报告.txt", "内部资料".encode())])
    zf = zipfile.ZipFile(io.BytesIO(z))
    assert zf.namelist() == ["evilx.exe", "报告.txt"]
    assert zf.read("evilx.exe", pwd=b"infected") == data
    with pytest.raises(RuntimeError, match="password required"):
        zf.read("报告.txt")
    with pytest.raises(RuntimeError):
        zf.read("evilx.exe", pwd=b"wrong")
    if shutil.which("unzip"):
        (tmp_path / "s.zip").write_bytes(z)
        subprocess.run(["unzip", "-q", "-P", "infected", "s.zip"], cwd=tmp_path, check=True)
        assert (tmp_path / "evilx.exe").read_bytes() == data
