"""``tapsift user``: manage console users (add, list, passwd, unlock, del) in the console database."""

from __future__ import annotations

import argparse
import getpass
import sys


def _open(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from webui.db import ConsoleDB
    from webui.security import Passwords
    from webui.settings import load_console_settings

    s = load_console_settings(args.config, console_db=args.console_db)
    return ConsoleDB(s.console_db), Passwords(s.argon2_time_cost, s.argon2_memory_kib, s.argon2_parallelism)


def _read_password(args: argparse.Namespace) -> str | None:
    """From stdin (--password-stdin), else a prompt on a terminal, else None (generate one)."""
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if args.generate or not sys.stdin.isatty():
        return None
    first = getpass.getpass("Password (empty: generate one): ")
    if not first:
        return None
    if getpass.getpass("Again: ") != first:
        raise ValueError("the passwords differ")
    return first


def _run(args: argparse.Namespace) -> int:
    from webui.auth import UserError, create_user, set_password
    from webui.settings import ConsoleSettingsError

    try:
        db, pw = _open(args)
    except ConsoleSettingsError as exc:
        print(f"tapsift: {exc}", file=sys.stderr)
        return 1
    actor = f"cli:{getpass.getuser()}"
    try:
        if args.user_command == "add":
            given = _read_password(args)
            password = create_user(db, pw, args.name, args.role, given, actor=actor)
            print(f"added {args.name} ({args.role})")
            if given is None:
                print(f"password (shown once): {password}")
        elif args.user_command == "list":
            for u in db.users():
                state = "disabled" if u["disabled"] else "locked" if u["locked_until"] else "active"
                print(f"{u['username']:24s} {u['role']:8s} {state:8s} totp={'on' if u['totp'] else 'off'}")
        else:
            user = db.user_by_name(args.name)
            if user is None:
                print(f"tapsift: no user {args.name!r}", file=sys.stderr)
                return 1
            if args.user_command == "passwd":
                given = _read_password(args)
                from webui.security import generate_password

                password = given if given is not None else generate_password()
                set_password(db, pw, user, password, actor=actor)
                with db.tx() as conn:
                    conn.execute("DELETE FROM sessions WHERE user_id = ?", (user["id"],))
                print(f"password of {args.name} changed" + ("" if given else f" to (shown once): {password}"))
            elif args.user_command == "unlock":
                with db.tx() as conn:
                    conn.execute("UPDATE users SET failed = 0, locked_until = 0 WHERE id = ?", (user["id"],))
                    db.audit(conn, actor, "user.unlock", args.name)
                print(f"unlocked {args.name}")
            elif args.user_command == "del":
                with db.tx() as conn:
                    conn.execute("DELETE FROM users WHERE id = ?", (user["id"],))
                    db.audit(conn, actor, "user.delete", args.name, {"role": user["role"]}, None)
                print(f"deleted {args.name}")
    except (UserError, ValueError) as exc:
        print(f"tapsift: {exc}", file=sys.stderr)
        return 1
    finally:
        db.close()
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from appliance.commands.web import add_console_options

    p = sub.add_parser("user", help="console users")
    usub = p.add_subparsers(dest="user_command", required=True, metavar="ACTION")
    a = usub.add_parser("add", help="add a user (the first admin, for instance)")
    a.add_argument("name")
    a.add_argument("--role", choices=("viewer", "analyst", "admin"), default="viewer")
    for q in (a, usub.add_parser("passwd", help="set a user's password")):
        if q is not a:
            q.add_argument("name")
        q.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
        q.add_argument("--generate", action="store_true", help="generate a password and print it once")
    usub.add_parser("list", help="list users")
    usub.add_parser("unlock", help="clear a lockout").add_argument("name")
    usub.add_parser("del", help="delete a user").add_argument("name")
    for q in usub.choices.values():
        add_console_options(q)
    p.set_defaults(func=_run)
