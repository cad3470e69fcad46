"""``tapsift run -i IFACE [-i IFACE …] [--workers N]``: live capture under the supervisor."""

from __future__ import annotations

import argparse
import logging
import sys


def _run(args: argparse.Namespace) -> int:
    from appliance.settings import SettingsError, load_settings

    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, stream=sys.stderr,
                        format="tapsift[%(process)d] %(levelname)s %(message)s")
    try:
        settings = load_settings(args.config)
    except SettingsError as exc:
        print(f"tapsift: {exc}", file=sys.stderr)
        return 1
    if args.policy is not None:
        settings.inspection.policy = args.policy
    if args.store is not None:
        settings.output.store = args.store
    if args.state_dir is not None:
        settings.output.state_dir = args.state_dir
    live = settings.live
    if args.interface:
        live.interfaces = list(args.interface)
    for name in ("workers", "bpf", "user", "backend", "ring_mb", "metrics_listen", "stats_interval_s", "pid_file",
                 "stats_file", "inspect_workers", "cheap_workers"):
        v = getattr(args, name)
        if v is not None:
            setattr(live, name, v)
    if args.no_promisc:
        live.promisc = False
    if not live.interfaces:
        print("tapsift: no capture interface (use -i IFACE or live.interfaces in the config)", file=sys.stderr)
        return 2
    if live.check_interfaces and not args.no_check:
        from capture.ifaces import check_interface

        for iface in live.interfaces:
            for warning in check_interface(iface).warnings:
                logging.getLogger("tapsift.iface").warning("%s", warning)

    from appliance.supervisor import Supervisor
    from capture.live import BpfError, LiveError

    sup = Supervisor(settings, config_path=args.config, eve=args.eve)
    try:
        sup.open()
    except (LiveError, BpfError, ValueError, OSError) as exc:
        print(f"tapsift: {exc}", file=sys.stderr)
        return 1
    try:
        return sup.run()
    except (OSError, KeyError) as exc:  # e.g. an unknown live.user
        print(f"tapsift: {exc}", file=sys.stderr)
        return 1


def _workers(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number or 'auto'") from None
    if n < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return n


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("run", help="capture live traffic on interfaces (SPAN/mirror ports) and extract content")
    p.add_argument("-i", "--interface", action="append", metavar="IFACE",
                   help="capture interface (repeatable; replaces live.interfaces)")
    p.add_argument("-w", "--workers", type=int, metavar="N", help="capture worker processes (flow-hash fanout)")
    p.add_argument("--config", metavar="PATH", help="settings file (YAML)")
    p.add_argument("--eve", metavar="PATH", help="EVE JSON lines output ('-' for stdout)")
    p.add_argument("--policy", metavar="FILE", help="zone policy (YAML): inspect objects and raise alerts")
    p.add_argument("--store", metavar="PATH", help="SQLite alert store (the console reads it)")
    p.add_argument("-f", "--bpf", metavar="EXPR", help="kernel BPF filter (tcpdump syntax)")
    p.add_argument("--backend", choices=("afpacket", "pcap"), help="capture backend (default afpacket)")
    p.add_argument("--ring-mb", type=int, metavar="MIB", dest="ring_mb", help="ring size per interface and worker")
    p.add_argument("--user", metavar="USER", help="drop root to this user after opening the sockets")
    p.add_argument("--metrics", metavar="HOST:PORT", dest="metrics_listen",
                   help="Prometheus endpoint (empty string = off)")
    p.add_argument("--stats-interval", type=float, metavar="S", dest="stats_interval_s",
                   help="seconds between stats events")
    p.add_argument("--inspect-workers", type=_workers, metavar="N|auto", dest="inspect_workers",
                   help="processes that take expensive inspection work off the capture path (auto: the cores "
                        "the capture workers leave; 0: the capture workers inspect everything themselves)")
    p.add_argument("--cheap-workers", type=int, metavar="N", dest="cheap_workers",
                   help="processes that take only cheap inspection work (default 1)")
    p.add_argument("--state-dir", metavar="DIR", dest="state_dir",
                   help="where spools live (the job spool at shutdown, SIEM spools); output.state_dir")
    p.add_argument("--pid-file", metavar="PATH", dest="pid_file", help="write the supervisor's pid here")
    p.add_argument("--stats-file", metavar="PATH", dest="stats_file",
                   help="JSON counters for the console, replaced at every stats interval")
    p.add_argument("--no-promisc", action="store_true", help="do not put the interfaces in promiscuous mode")
    p.add_argument("--no-check", action="store_true", help="skip the offload/MTU checks at start")
    p.add_argument("-v", "--verbose", action="store_true")
    p.set_defaults(func=_run)
