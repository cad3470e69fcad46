"""``tapsift iface check|prepare IFACE``: capture-port hygiene (offloads, MTU, IPv6/ARP)."""

from __future__ import annotations

import argparse
import sys


def _check(args: argparse.Namespace) -> int:
    from capture.ifaces import SHORT, check_interface

    bad = 0
    for iface in args.iface:
        rep = check_interface(iface)
        on = [SHORT.get(f, f) for f, (v, _fixed) in rep.offloads.items() if v and f in SHORT]
        print(f"{iface}: mtu {rep.mtu or '?'}, offloads on: {', '.join(on) or 'none'}, "
              f"ipv6 {'on' if rep.ipv6_enabled else 'off' if rep.ipv6_enabled is not None else '?'}")
        for w in rep.warnings:
            print(f"  warning: {w}")
        bad += bool(rep.warnings)
    return 1 if bad else 0


def _prepare(args: argparse.Namespace) -> int:
    from capture.ifaces import prepare_interface

    failed = 0
    for iface in args.iface:
        for step, ok, msg in prepare_interface(iface, mtu=args.mtu, dry_run=args.dry_run):
            print(f"{'ok  ' if ok else 'FAIL'} {step}" + (f"  ({msg})" if msg and not ok else ""),
                  file=sys.stdout if ok else sys.stderr)
            failed += not ok
    return 1 if failed else 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("iface", help="check or prepare capture interfaces")
    psub = p.add_subparsers(dest="iface_command", required=True, metavar="ACTION")
    c = psub.add_parser("check", help="report offloads, MTU and IPv6 of capture interfaces (exit 1 on warnings)")
    c.add_argument("iface", nargs="+")
    c.set_defaults(func=_check)
    pr = psub.add_parser("prepare", help="turn off merging offloads, IPv6 and ARP; NIC ring to max; link up promisc")
    pr.add_argument("iface", nargs="+")
    pr.add_argument("--mtu", type=int, help="also set this MTU")
    pr.add_argument("--dry-run", action="store_true", help="print the steps without running them")
    pr.set_defaults(func=_prepare)
