"""Before the supervisor drops root: can the dropped user still read and write what it needs?

`appliance.supervisor.drop_privileges` becomes ``live.user`` (its primary group only, no
supplementary groups). Everything opened after that is opened as that user: modules imported
lazily (the perceptual inspector failed on every image because a module it imports on first use
was not readable), the policy's fingerprint sets and models on a reload, rotated EVE files, SQLite
side files. These checks find such traps at start, as the user itself would meet them:

- `check_readable_after_drop` forks a child that drops to the user exactly as the supervisor
  will, then checks with ``access(2)`` (which honours ACLs) that the interpreter, the standard
  library, the venv's site-packages, every module of the project, and the given paths (the
  policy, the files it names, the model directory, …) are readable, and that every directory on
  the way is searchable. One line per problem, the topmost unreadable directory only.
- `prepare_outputs` creates the output files and directories (EVE file, alert store, spool
  directories) owned by the user, and checks, as the user, that it can write them.
- `policy_paths` lists what a policy names (for the first check).

The supervisor calls both before `drop_privileges` and refuses to start on any problem.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pwd
import stat
import sys
import sysconfig
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

PROJECT_PACKAGES = ("appliance", "capture", "reassembly", "inspectors", "policies", "fingerprints", "webui")
"""The project's top-level packages: all their files must stay readable (modules load lazily)."""

SHARED_DIRS = frozenset({"/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/opt", "/proc", "/root", "/run",
                         "/sbin", "/srv", "/sys", "/tmp", "/usr", "/var", "/var/cache", "/var/lib", "/var/log",
                         "/var/spool", "/var/tmp"})
"""Existing directories `prepare_outputs` never takes over (give tapsift a directory of its own)."""

_SKIP_DIRS = frozenset({"__pycache__", "site-packages", "dist-packages", "test", "tests", "idlelib", "turtledemo",
                        "tkinter", "ensurepip"})
"""Not needed at run time (bytecode caches are optional: Python falls back to the source)."""
_MAX_PER_ROOT = 20


class _User:
    __slots__ = ("gid", "name", "uid")

    def __init__(self, name: str) -> None:
        pw = pwd.getpwnam(name)
        self.name, self.uid, self.gid = name, pw.pw_uid, pw.pw_gid


def runtime_paths() -> list[Path]:
    """What the sensor's own code needs: the interpreter (every symlink on the way to it), the
    standard library, the environment's site-packages and the project's packages."""
    out: list[Path] = []
    exe = Path(sys.executable)
    seen = set()
    while exe.is_symlink() and exe not in seen:  # the venv's python → … → the real interpreter
        seen.add(exe)
        out.append(exe)
        exe = (exe.parent / os.readlink(exe)).absolute()
    out.append(Path(os.path.realpath(sys.executable)))
    paths = sysconfig.get_paths()
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        if paths.get(key):
            out.append(Path(paths[key]))
    for name in PROJECT_PACKAGES:
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.submodule_search_locations:
            out.extend(Path(p) for p in spec.submodule_search_locations)
    unique: dict[str, Path] = {}
    for p in out:
        unique.setdefault(str(p), p)
    return list(unique.values())


def policy_paths(policy: Any, model_dir: str | os.PathLike[str] | None = None) -> list[Path]:
    """The policy file, every fingerprint set it names, and the model directory (when a profile
    uses a model). ``policy`` is a `policies.schema.Policy`."""
    out = [Path(policy.source)]
    for spec in policy.lists.values():
        path = dict(spec.options).get("path") if spec.kind == "fingerprints" else None
        if path:
            out.append(Path(path))
    uses_models = any("model" in c.params for p in policy.profiles.values() for c in p.configs)
    if uses_models:
        if model_dir is None:
            from inspectors.modelstore import model_dir as current

            model_dir = current()
        out.append(Path(model_dir))
    return out


# --- running a check as the user ------------------------------------------------------------------


def _as_user(user: _User, fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` in a forked child that dropped to ``user`` as `drop_privileges` does
    (``setgroups([])``, ``setgid``, ``setuid``); its JSON result. Without root, only the current
    user can be checked (in this process)."""
    if os.geteuid() != 0:
        if os.geteuid() != user.uid:
            raise PermissionError(f"checking as {user.name} needs root (running as uid {os.geteuid()})")
        return fn(*args)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 0
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(user.gid)
            os.setuid(user.uid)
            data = json.dumps({"ok": fn(*args)}).encode()
        except BaseException as exc:
            data = json.dumps({"error": f"{type(exc).__name__}: {exc}"}).encode()
            code = 1
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(w, view):]
        finally:
            os._exit(code)
    os.close(w)
    chunks = []
    with os.fdopen(r, "rb") as fh:
        while chunk := fh.read(1 << 16):
            chunks.append(chunk)
    os.waitpid(pid, 0)
    try:
        reply = json.loads(b"".join(chunks) or b"{}")
    except ValueError:
        reply = {}
    if "ok" not in reply:
        raise OSError(f"the check as {user.name} failed: {reply.get('error', 'no answer')}")
    return reply["ok"]


def _scan_readable(roots: list[str], label: str, max_per_root: int) -> list[str]:  # runs as the user
    problems: list[str] = []
    searchable: set[str] = set()
    blocked: dict[str, list[str]] = {}
    for root in roots:
        real = os.path.realpath(root)  # a symlink (the venv's python) is read where it leads
        stop = _blocked_ancestor(root, searchable) or (real != root and _blocked_ancestor(real, searchable))
        if stop:
            blocked.setdefault(stop, []).append(root)
            continue
        if not os.path.lexists(root):
            problems.append(f"{root}: does not exist")
            continue
        problems.extend(_walk(root, label, max_per_root))
    for stop, reached in blocked.items():
        more = f" and {len(reached) - 1} more" if len(reached) > 1 else ""
        problems.insert(0, f"{stop}: directory not searchable by {label} (needed to reach {reached[0]}{more})")
    return problems


def _blocked_ancestor(path: str, searchable: set[str]) -> str | None:
    """The first directory above ``path`` the user cannot search, or None."""
    for anc in reversed(Path(os.path.abspath(path)).parents):
        a = str(anc)
        if a in searchable:
            continue
        if not os.access(a, os.X_OK):
            return a
        searchable.add(a)
    return None


def _walk(root: str, label: str, max_per_root: int) -> list[str]:
    out: list[str] = []
    more = 0

    def bad(path: str, what: str) -> None:
        nonlocal more
        if len(out) < max_per_root:
            out.append(f"{path}: {what} by {label}")
        else:
            more += 1

    if not os.path.isdir(root):
        if not os.access(root, os.R_OK):
            bad(root, "not readable")
        return out
    if not os.access(root, os.R_OK | os.X_OK):
        bad(root, "directory not readable and searchable")
        return out
    for top, dirs, files in os.walk(root, onerror=lambda e: bad(e.filename or root, "not listable")):
        kept = []
        for d in dirs:
            full = os.path.join(top, d)
            if d == "__pycache__" or (d in _SKIP_DIRS and top != root):
                continue
            if os.path.islink(full) and not os.path.exists(full):
                continue
            if not os.access(full, os.R_OK | os.X_OK):
                bad(full, "directory not readable and searchable")
            else:
                kept.append(d)
        dirs[:] = kept
        for f in files:
            full = os.path.join(top, f)
            if not os.path.exists(full):  # a dangling symlink: nothing to read
                continue
            if not os.access(full, os.R_OK):
                bad(full, "not readable")
    if more:
        out.append(f"{root}: and {more} more unreadable paths under it")
    return out


def check_readable_after_drop(user: str, paths: Iterable[str | os.PathLike[str]] = (), *, runtime: bool = True,
                              max_per_root: int = _MAX_PER_ROOT) -> list[str]:
    """Problems (``PATH: what``, one a line) with reading ``paths`` (directories: everything in
    them) and, with ``runtime``, `runtime_paths`, as ``user`` after the drop; empty when all is
    readable. A missing user is a problem too."""
    try:
        u = _User(user)
    except KeyError:
        return [f"user {user!r} does not exist"]
    roots = [str(p) for p in runtime_paths()] if runtime else []
    roots += [os.path.abspath(os.fspath(p)) for p in paths]
    roots = list(dict.fromkeys(roots))
    try:
        return list(_as_user(u, _scan_readable, roots, f"{user}", max_per_root))
    except (OSError, PermissionError) as exc:
        return [str(exc)]


# --- output files -----------------------------------------------------------------------------------


def _scan_writable(files: list[str], dirs: list[str], label: str) -> list[str]:  # runs as the user
    out = []
    for d in dirs:
        if not os.access(d, os.W_OK | os.X_OK):
            out.append(f"{d}: not writable by {label}")
    for f in files:
        parent = os.path.dirname(f) or "."
        if not os.access(f, os.W_OK):
            out.append(f"{f}: not writable by {label}")
        if not os.access(parent, os.W_OK | os.X_OK):
            out.append(f"{parent}: not writable by {label} (new files beside {os.path.basename(f)}: "
                       "rotation, SQLite journals)")
    return out


def _own_dir(path: Path, user: _User, problems: list[str]) -> None:
    """Make ``path`` a directory the user owns: create what is missing (owned by the user); an
    existing root-owned directory of tapsift's own is handed over, a shared one never."""
    missing = []
    p = path
    while not p.exists():
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        d.mkdir(mode=0o750)
        os.chown(d, user.uid, user.gid)
    if missing:
        return
    st = path.stat()
    if not stat.S_ISDIR(st.st_mode):
        problems.append(f"{path}: not a directory")
        return
    if st.st_uid == user.uid:
        return
    real = os.path.realpath(path)
    if real in SHARED_DIRS or st.st_mode & stat.S_IWOTH or st.st_uid != 0:
        if not _user_can_write(st, user):
            problems.append(f"{path}: owned by uid {st.st_uid} and not writable by {user.name}; it is not "
                            f"tapsift's own directory, so it is left alone: give tapsift a directory of its "
                            f"own (e.g. {path}/tapsift)")
        return
    os.chown(path, user.uid, user.gid)
    for child in path.iterdir():  # files an earlier run as root left (spool database, lock)
        if child.is_file() and not child.is_symlink() and child.stat().st_uid == 0:
            os.chown(child, user.uid, user.gid)


def _user_can_write(st: os.stat_result, user: _User) -> bool:
    if st.st_uid == user.uid:
        return bool(st.st_mode & stat.S_IWUSR)
    if st.st_gid == user.gid:
        return bool(st.st_mode & stat.S_IWGRP)
    return bool(st.st_mode & stat.S_IWOTH)


def prepare_outputs(user: str, *, files: Iterable[str | os.PathLike[str]] = (),
                    dirs: Iterable[str | os.PathLike[str]] = (), sqlite: Iterable[str | os.PathLike[str]] = ()
                    ) -> list[str]:
    """Create the outputs the user will write, owned by it, and check as the user that it can.

    ``dirs`` (spool directories) and the parents of ``files`` (EVE file) and ``sqlite`` (alert
    store: also its ``-wal``, ``-shm`` and ``.lock`` side files) are created if missing, owned by
    the user (0750); a root-owned directory of tapsift's own is handed over, a shared one
    (`SHARED_DIRS`, world-writable, or owned by another user) is not and is reported. Files are
    created if missing (0640) and owned by the user. Returns the problems (empty: all writable)."""
    try:
        u = _User(user)
    except KeyError:
        return [f"user {user!r} does not exist"]
    problems: list[str] = []
    files = [Path(os.path.abspath(os.fspath(f))) for f in files]
    dbs = [Path(os.path.abspath(os.fspath(f))) for f in sqlite]
    dir_list = [Path(os.path.abspath(os.fspath(d))) for d in dirs]
    for d in [*dir_list, *(f.parent for f in [*files, *dbs])]:
        try:
            _own_dir(d, u, problems)
        except OSError as exc:
            problems.append(f"{d}: {exc.strerror or exc}")
    for f in [*files, *dbs]:
        sides = [f.with_name(f.name + s) for s in ("-wal", "-shm", "-journal", ".lock")] if f in dbs else []
        try:
            if not f.exists():
                fd = os.open(f, os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o640)
                os.close(fd)
            for g in [f, *sides]:
                if g.exists() and not g.is_symlink() and g.stat().st_uid != u.uid:
                    os.chown(g, u.uid, u.gid)
        except OSError as exc:
            problems.append(f"{f}: {exc.strerror or exc}")
    try:
        problems += _as_user(u, _scan_writable, [str(f) for f in [*files, *dbs]], [str(d) for d in dir_list],
                             user)
    except (OSError, PermissionError) as exc:
        problems.append(str(exc))
    return problems


__all__ = ["PROJECT_PACKAGES", "SHARED_DIRS", "check_readable_after_drop", "policy_paths", "prepare_outputs",
           "runtime_paths"]
