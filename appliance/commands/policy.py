"""``tapsift policy check FILE``: validate a zone policy file, and everything it names;
``tapsift policy backtest FILE``: what it would raise over the retained content (`appliance.backtest`).

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


def _time(text: str, end: bool = False) -> int:
    """A time on the command line; a day alone as the end means the end of that day."""
    from appliance.store.querylang import parse_time

    return parse_time(text, end=end)


def _backtest(args: argparse.Namespace) -> int:
    """``tapsift policy backtest POLICY --content-db DSN --since T --until T [--against CURRENT]``."""
    import json

    from appliance.backtest import backtest
    from appliance.store import StoreError
    from appliance.store.content import ContentStore
    from policies.schema import PolicyError, load_policy

    try:
        since, until = _time(args.since), _time(args.until, end=True)
    except ValueError as exc:
        print(f"tapsift: {exc}", file=sys.stderr)
        return 2
    kw = {"model_dir": args.model_dir} if args.model_dir else {}
    try:
        proposed = load_policy(args.file, **kw)
        current = load_policy(args.against, **kw) if args.against else None
    except PolicyError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    try:
        store = ContentStore.reader(args.content_db)
    except StoreError as exc:
        print(f"tapsift: {exc}", file=sys.stderr)
        return 1
    with store:
        res = backtest(store.repo, proposed, current, since, until, max_objects=args.max_objects)
    if args.json:
        print(json.dumps(res.as_dict(), indent=1, ensure_ascii=False))
        return 0
    t = res.totals()
    print(f"{res.objects:,} objects ({res.children:,} children; {res.text_only:,} tested on their text only: "
          f"bytes not kept) in {res.seconds:.1f} s ({res.objects_per_s:,.0f} objects/s)"
          + (" — stopped early (limit)" if res.truncated else ""))
    head = f"{'rule':<28} {'profile':<28} {'current':>8} {'proposed':>8} {'new':>6} {'lost':>6} {'changed':>8}"
    print(head)
    for (policy, profile), c in sorted(res.rules.items()):
        print(f"{policy[:28]:<28} {profile[:28]:<28} {c['current']:>8} {c['proposed']:>8} {c['new']:>6} "
              f"{c['lost']:>6} {c['changed']:>8}")
    print(f"{'total':<57} {t['current']:>8} {t['proposed']:>8} {t['new']:>6} {t['lost']:>6} {t['changed']:>8}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("policy", help="zone policy files")
    psub = p.add_subparsers(dest="policy_command", required=True, metavar="ACTION")
    c = psub.add_parser("check", help="validate a policy file and the files it names "
                                      "(errors as FILE:LINE:COLUMN: problem)")
    c.add_argument("file")
    c.add_argument("-c", "--config", help="sensor settings (for inspection.model_dir)")
    c.add_argument("--model-dir", help="the model directory (default: the settings', else /var/lib/tapsift/models)")
    c.set_defaults(func=_check)
    b = psub.add_parser("backtest", help="what a policy would raise over the retained content of a period "
                                         "(new, lost and changed alerts per rule against --against)")
    b.add_argument("file", help="the proposed policy")
    b.add_argument("--content-db", required=True, metavar="DSN", help="the retained content (retention.store)")
    b.add_argument("--since", required=True, help="start: 2026-01-07, 2026-01-07T10:00, now-7d")
    b.add_argument("--until", default="now", help="end (default now)")
    b.add_argument("--against", metavar="POLICY", help="the current policy, to compare with")
    b.add_argument("--max-objects", type=int, default=1_000_000)
    b.add_argument("--model-dir", help="the model directory")
    b.add_argument("--json", action="store_true", help="the result as JSON")
    b.set_defaults(func=_backtest)
