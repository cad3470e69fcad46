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


def test_an_import_that_imports_nothing_fails_and_says_why(tmp_path, capsys):
    """A binary file read as a hash list was "0 added, 655 invalid" and exit 0."""
    db = str(tmp_path / "fp.db")
    junk = tmp_path / "photo.txt"
    junk.write_bytes(bytes(range(256)) * 40 + b"\n".join(b"line %d" % i for i in range(655)))
    assert main(["fingerprint", "--db", db, "import", str(junk), "--format", "hashes"]) == 1
    got = capsys.readouterr()
    assert "0 added" in got.out and "nothing imported from" in got.err and "is a fingerprint" in got.err
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing here\n")
    assert main(["fingerprint", "--db", db, "import", str(empty), "--format", "hashes"]) == 1
    assert "holds no entries" in capsys.readouterr().err
    assert main(["fingerprint", "--db", db, "import", str(tmp_path / "missing.txt")]) == 1
    assert "no such file" in capsys.readouterr().err
    good = tmp_path / "l.txt"
    good.write_text(hashlib.md5(b"one").hexdigest() + "\n")
    assert main(["fingerprint", "--db", db, "import", str(good)]) == 0
    assert main(["fingerprint", "--db", db, "import", str(good)]) == 0  # already present: nothing new, no failure
    assert "1 already present" in capsys.readouterr().out
