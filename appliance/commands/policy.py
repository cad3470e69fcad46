"""``tapsift policy check FILE``: validate a zone policy file."""

from __future__ import annotations

import argparse
import sys


def _check(args: argparse.Namespace) -> int:
    from policies.schema import check_command

    code, text = check_command(args.file)
    if code == 0:  # spoken keywords the speech engines cannot spot (inspectors.extract.asr)
        text = "\n".join([*_speech_warnings(args.file), text])
    print(text, file=sys.stdout if code == 0 else sys.stderr)
    return code


def _speech_warnings(path: str) -> list[str]:
    from inspectors.extract.asr import policy_speech_warnings
    from policies.schema import load_policy

    try:
        return policy_speech_warnings(load_policy(path))
    except Exception as exc:  # a warning must not fail a valid policy
        return [f"speech: keyword coverage not checked ({type(exc).__name__}: {exc})"]


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("policy", help="zone policy files")
    psub = p.add_subparsers(dest="policy_command", required=True, metavar="ACTION")
    c = psub.add_parser("check", help="validate a policy file (errors as FILE:LINE:COLUMN: problem)")
    c.add_argument("file")
    c.set_defaults(func=_check)
