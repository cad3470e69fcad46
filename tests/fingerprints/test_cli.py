"""``tapsift fingerprint`` commands."""

from __future__ import annotations

import hashlib

from appliance.cli import main
from bench.perceptual_bench import encode, scene


def test_fingerprint_commands(tmp_path, capsys):
    db = str(tmp_path / "fp.db")
    img = tmp_path / "x.png"
    img.write_bytes(encode(scene(9)))
    assert main(["fingerprint", "--db", db, "add", str(img), "--category", "pornographic"]) == 0
    h = hashlib.md5(b"bad").hexdigest()
    assert main(["fingerprint", "--db", db, "add", "--hash", h, "--label", "bad.exe"]) == 0
    lst = tmp_path / "l.txt"
    lst.write_text(hashlib.md5(b"one").hexdigest() + "\n" + hashlib.md5(b"two").hexdigest() + "  two.bin\n")
    assert main(["fingerprint", "--db", db, "import", str(lst)]) == 0
    d = tmp_path / "dir"
    d.mkdir()
    (d / "y.png").write_bytes(encode(scene(10)))
    assert main(["fingerprint", "--db", db, "import", str(d), "--images-only"]) == 0
    capsys.readouterr()
    assert main(["fingerprint", "--db", db, "list", "--category", "pornographic"]) == 0
    out = capsys.readouterr().out
    assert "x.png" in out and "phash=" in out
    assert main(["fingerprint", "--db", db, "export", "--algorithm", "md5"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 5
    assert main(["fingerprint", "--db", db, "remove", h]) == 0
    assert main(["fingerprint", "--db", db, "remove", h]) == 1
    assert main(["fingerprint", "--db", db, "stats"]) == 0
    assert "4 entries" in capsys.readouterr().out
