"""``tapsift inspect-worker``: expensive inspection jobs from the bus, on any host (docs/fleet.md)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading


def _run(args: argparse.Namespace) -> int:
    from appliance.bus.base import BusError
    from appliance.bus.redis import redacted
    from appliance.commands.ingest import _settings
    from appliance.fleet.worker import InspectWorker, default_name
    from appliance.settings import SettingsError

    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, stream=sys.stderr,
                        format="tapsift-worker[%(process)d] %(levelname)s %(message)s")
    args.store = None
    args.consumer = None
    try:
        settings = _settings(args)
    except SettingsError as exc:
        print(f"tapsift: {exc}", file=sys.stderr)
        return 1
    if args.policy is not None:
        settings.inspection.policy = args.policy
    if not settings.inspection.policy:
        print("tapsift: an inspection worker needs a policy (--policy or inspection.policy)", file=sys.stderr)
        return 2
    if args.nice:
        try:
            import os

            os.nice(args.nice)
        except OSError:
            pass
    from policies.schema import PolicyError

    name = args.name or default_name()
    try:
        worker = InspectWorker(settings, name)
    except (PolicyError, OSError, BusError, ValueError) as exc:
        first = (str(exc).splitlines() or ["cannot start"])[0]
        print(f"tapsift: {first}", file=sys.stderr)
        return 1
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log = logging.getLogger("tapsift.worker")
    log.info("inspection worker %s on %s (classes: %s)", name, redacted(settings.output.bus.url),
             ", ".join(worker.classes))
    worker.run(stop)  # a job in hand is finished first: SIGTERM stops between jobs
    log.info("stopped: %s", dict(worker.counters))
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("inspect-worker", help="inspect objects the fleet's sensors offer as jobs on the bus")
    p.add_argument("--config", metavar="PATH", help="settings file (output.bus, inspection.*)")
    p.add_argument("--bus", metavar="URL", help="the bus (replaces output.bus.url)")
    p.add_argument("--policy", metavar="FILE", help="zone policy (replaces inspection.policy)")
    p.add_argument("--name", metavar="NAME", help="this worker's consumer name (default: HOST-PID)")
    p.add_argument("--nice", type=int, default=0, metavar="N", help="niceness to add (share a host with a sensor)")
    p.add_argument("-v", "--verbose", action="store_true")
    p.set_defaults(func=_run)
