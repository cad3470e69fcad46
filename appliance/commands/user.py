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


def _list(db) -> None:  # type: ignore[no-untyped-def]
    from webui.services.throttle import throttled_users

    throttled = throttled_users(db)
    for u in db.users():
        state = "disabled" if u["disabled"] else "throttled" if u["username"].lower() in throttled else "active"
        print(f"{u['username']:24s} {u['role']:8s} {state:9s} totp={'on' if u['totp'] else 'off'}")


def _unthrottle_address(db, address: str | None, actor: str) -> None:  # type: ignore[no-untyped-def]
    from webui.services.throttle import clear_throttle

    if address is None:
        raise ValueError("name a user, or --address ADDR")
    n = clear_throttle(db, ip=address)
    db.audit(None, actor, "login.unthrottle_address", address, None, {"cleared": n})
    print(f"cleared the login throttling of address {address} ({n} key{'s' if n != 1 else ''})")


def _run(args: argparse.Namespace) -> int:
    from webui.errors import UserError
    from webui.services.users import create_user, delete_user, set_password, unlock
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
            _list(db)
        elif args.user_command == "unlock" and args.name is None:
            _unthrottle_address(db, args.address, actor)
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
                n = unlock(db, user, actor=actor)
                if args.address is not None:
                    _unthrottle_address(db, args.address, actor)
                print(f"cleared the login throttling of {args.name} ({n} key{'s' if n != 1 else ''})")
            elif args.user_command == "del":
                delete_user(db, user, actor=actor)
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
    u = usub.add_parser("unlock", help="clear login throttling of a user (every address) and/or of an address")
    u.add_argument("name", nargs="?")
    u.add_argument("--address", metavar="ADDR", help="also (or only) clear the throttling of this client address")
    usub.add_parser("del", help="delete a user").add_argument("name")
    for q in usub.choices.values():
        add_console_options(q)
    p.set_defaults(func=_run)
