"""``tapsift policy check FILE``: validate a zone policy file, and everything it names.

Beyond the file itself (`policies.schema.check_command`), every inspector the policy configures
is built as the sensor builds it (`inspectors.registry.validate_inspectors`): a model that is not
in the model directory or not a model, a fingerprint set that is missing, unreadable or empty,
an inspector whose parameters it refuses: each is a ``FILE:LINE:COLUMN: problem`` line and the
exit code is 1.
"""

from __future__ import annotations

import argparse
import sys


def _check(args: argparse.Namespace) -> int:
    from inspectors.modelstore import set_model_dir
    from inspectors.registry import validate_inspectors
    from policies.schema import PolicyError, load_policy

    model_dir = args.model_dir
    if model_dir is None and args.config:
        from appliance.settings import SettingsError, load_settings

        try:
            model_dir = load_settings(args.config).inspection.model_dir
        except SettingsError as exc:
            print(f"tapsift: {exc}", file=sys.stderr)
            return 1
    kw = {"model_dir": model_dir} if model_dir else {}
    if model_dir:
        set_model_dir(model_dir)
    try:
        policy = load_policy(args.file, **kw)
    except PolicyError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    problems = validate_inspectors(policy)
    if problems:
        print("\n".join([*policy.warnings, *problems]), file=sys.stderr)
        print(f"{args.file}: {len(problems)} problem{'s' if len(problems) != 1 else ''} with what the policy "
              "names: the sensor cannot run it as written", file=sys.stderr)
        return 1
    # spoken keywords the speech engines cannot spot (inspectors.extract.asr)
    print("\n".join([*policy.warnings, *_speech_warnings(args.file), f"{args.file}: OK ({policy.summary()})"]))
    return 0


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
    c = psub.add_parser("check", help="validate a policy file and the files it names "
                                      "(errors as FILE:LINE:COLUMN: problem)")
    c.add_argument("file")
    c.add_argument("-c", "--config", help="sensor settings (for inspection.model_dir)")
    c.add_argument("--model-dir", help="the model directory (default: the settings', else /var/lib/tapsift/models)")
    c.set_defaults(func=_check)
