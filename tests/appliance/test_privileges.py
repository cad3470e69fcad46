"""Deployment traps of the privilege drop, found as a real unprivileged user would meet them.

A user is created for the module (``useradd``, removed after) and every verdict of the checks
is compared with what that user really gets (``runuser -u USER -- test -r/-w``).
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.privileges import check_readable_after_drop, policy_paths, prepare_outputs, runtime_paths
from policies.schema import load_policy

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("useradd") or not shutil.which("runuser"),
                                reason="needs root, useradd and runuser")


@pytest.fixture(scope="module")
def user() -> Iterator[str]:
    name = f"tsift{os.getpid() % 100000}"
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["userdel", name], check=False)


@pytest.fixture
def base() -> Iterator[Path]:
    """A directory the user may enter (pytest's own temp directories are 0700)."""
    d = Path(tempfile.mkdtemp(prefix="tapsift-priv-"))
    d.chmod(0o755)
    try:
        yield d
    finally:
        shutil.rmtree(d)


def can(user: str, flag: str, path: Path | str) -> bool:
    """What the user really gets: ``test -r``/``-w``/``-x`` run as the user."""
    return subprocess.run(["runuser", "-u", user, "--", "test", flag, str(path)]).returncode == 0


def test_unreadable_files_and_directories_are_found(user: str, base: Path) -> None:
    pkg = base / "pkgx"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "lazy.py").write_text("# imported on first use only\n")
    (pkg / "lazy.py").chmod(0o600)  # root's: the dropped user cannot read it
    (pkg / "sub" / "x.py").write_text("")
    (pkg / "sub").chmod(0o700)
    (pkg / "__pycache__").mkdir()
    (pkg / "__pycache__" / "lazy.cpython-311.pyc").write_bytes(b"")
    (pkg / "__pycache__" / "lazy.cpython-311.pyc").chmod(0o600)  # optional: Python reads the source
    problems = check_readable_after_drop(user, [pkg], runtime=False)
    assert sorted(problems) == [f"{pkg / 'lazy.py'}: not readable by {user}",
                                f"{pkg / 'sub'}: directory not readable and searchable by {user}"]
    assert not can(user, "-r", pkg / "lazy.py") and not can(user, "-x", pkg / "sub") and can(user, "-r", pkg)
    (pkg / "lazy.py").chmod(0o644)
    (pkg / "sub").chmod(0o755)
    assert check_readable_after_drop(user, [pkg], runtime=False) == []


def test_a_directory_on_the_way_is_reported_once(user: str, base: Path) -> None:
    hidden = base / "private"
    (hidden / "a").mkdir(parents=True)
    (hidden / "a" / "f.txt").write_text("x")
    hidden.chmod(0o700)
    problems = check_readable_after_drop(user, [hidden / "a" / "f.txt", hidden / "a"], runtime=False)
    assert problems == [f"{hidden}: directory not searchable by {user} (needed to reach {hidden / 'a' / 'f.txt'} "
                        "and 1 more)"]
    assert not can(user, "-r", hidden / "a" / "f.txt")
    assert check_readable_after_drop("no-such-user-here", [base], runtime=False) == [
        "user 'no-such-user-here' does not exist"]


def test_what_a_policy_names_is_checked(user: str, base: Path) -> None:
    models = base / "models"
    models.mkdir()
    (models / "text-v0001.json").write_text("{}")
    (models / "text-v0001.json").chmod(0o600)
    (base / "known.txt").write_text("0" * 32 + "\n")
    (base / "known.txt").chmod(0o640)  # group root: not the user's
    policy = base / "policy.yaml"
    policy.write_text("lists:\n  known: {type: fingerprints, algorithm: md5, path: known.txt}\n"
                      "profiles:\n  p:\n    category: fraud\n    inspect:\n"
                      "      - {inspector: md5, lists: [known]}\n"
                      "      - {inspector: ml_text, params: {model: text-v0001.json}}\n"
                      "policies:\n  - {name: r, profiles: [p]}\n")
    pol = load_policy(policy, model_dir=models)
    paths = policy_paths(pol, models)
    assert paths == [policy, base / "known.txt", models]
    problems = check_readable_after_drop(user, paths, runtime=False)
    assert problems == [f"{base / 'known.txt'}: not readable by {user}",
                        f"{models / 'text-v0001.json'}: not readable by {user}"]
    assert can(user, "-r", policy) and not can(user, "-r", base / "known.txt")


def test_the_runtime_is_checked_and_every_verdict_is_true(user: str) -> None:
    """The interpreter, the standard library, site-packages and every project package; whatever
    the check says about them is what the user really gets."""
    roots = runtime_paths()
    names = {p.name for p in roots}
    assert {"appliance", "inspectors", "fingerprints", "site-packages"} <= names
    assert any(str(p).endswith(("python3", "python3.11")) for p in roots)
    problems = check_readable_after_drop(user)
    reported = {line.split(":", 1)[0] for line in problems}
    for path in reported:
        if path.endswith("more unreadable paths under it"):
            continue
        assert not (can(user, "-r", path) and (not os.path.isdir(path) or can(user, "-x", path))), path
    for p in roots:
        covered = {str(p), os.path.realpath(p)}
        if not any(c == r or c.startswith(r + "/") for c in covered for r in reported):
            assert can(user, "-r", p), (p, problems)


def test_outputs_are_created_owned_by_the_user_and_writable(user: str, base: Path) -> None:
    import pwd

    uid = pwd.getpwnam(user).pw_uid
    eve = base / "log" / "eve.json"
    store = base / "lib" / "alerts.db"
    spool = base / "lib" / "spool" / "siem-1"
    old_spool = base / "old-spool"
    old_spool.mkdir()
    (old_spool / "spool.sqlite3").write_bytes(b"")  # an earlier run as root left it
    problems = prepare_outputs(user, files=[eve], sqlite=[store], dirs=[spool, old_spool])
    assert problems == []
    for p in (eve, store, eve.parent, store.parent, spool, old_spool, old_spool / "spool.sqlite3"):
        assert p.stat().st_uid == uid, p
    for p in (eve, store, old_spool / "spool.sqlite3"):
        assert can(user, "-w", p)
    for d in (eve.parent, store.parent, spool, old_spool):
        assert can(user, "-w", d) and can(user, "-x", d)
    assert stat.S_IMODE(spool.stat().st_mode) == 0o750


def test_shared_directories_are_never_taken_over(user: str) -> None:
    before = os.stat("/var/log")
    problems = prepare_outputs(user, dirs=["/var/log"], files=["/var/log/tapsift-eve-test-never-created.json"])
    assert os.stat("/var/log").st_uid == before.st_uid and os.stat("/var/log").st_mode == before.st_mode
    assert any(p.startswith("/var/log: owned by uid 0 and not writable") for p in problems), problems
    Path("/var/log/tapsift-eve-test-never-created.json").unlink(missing_ok=True)
