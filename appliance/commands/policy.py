"""``tapsift policy check FILE``: validate a zone policy file."""

from __future__ import annotations

import argparse
import sys


def _check(args: argparse.Namespace) -> int:
    from policies.schema import check_command

    code, text = check_command(args.file)
    print(text, file=sys.stdout if code == 0 else sys.stderr)
    return code


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("policy", help="zone policy files")
    psub = p.add_subparsers(dest="policy_command", required=True, metavar="ACTION")
    c = psub.add_parser("check", help="validate a policy file (errors as FILE:LINE:COLUMN: problem)")
    c.add_argument("file")
    c.set_defaults(func=_check)
