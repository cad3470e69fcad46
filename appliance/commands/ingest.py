"""``tapsift ingest``: the fleet's ingester — alerts and heartbeats from the bus into the store (docs/fleet.md)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from typing import Any


def _settings(args: argparse.Namespace) -> Any:
    from appliance.settings import BusSettings, SettingsError, load_settings

    settings = load_settings(args.config)
    if args.store is not None:
        settings.output.store = args.store
    if args.bus is not None:
        bus = settings.output.bus.model_dump() if settings.output.bus is not None else {}
        settings.output.bus = BusSettings.model_validate({**bus, "url": args.bus})
    if args.consumer is not None and settings.output.bus is not None:
        settings.output.bus.consumer = args.consumer
    if settings.output.bus is None:
        raise SettingsError("no bus: give --bus URL or output.bus in the settings")
    return settings


def _ingest(args: argparse.Namespace) -> int:
    from appliance.bus.redis import redacted
    from appliance.fleet.ingest import Ingester
    from appliance.settings import SettingsError

    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, stream=sys.stderr,
                        format="tapsift-ingest[%(process)d] %(levelname)s %(message)s")
    try:
        settings = _settings(args)
    except SettingsError as exc:
        print(f"tapsift: {exc}", file=sys.stderr)
        return 1
    if args.print_acl:  # the Redis ACL users of the fleet, for these key names (docs/fleet.md)
        from appliance.bus.acl import setuser_commands

        print("\n".join(setuser_commands(settings.output.bus)))
        return 0
    out = settings.output
    if not out.store and not (out.syslog or out.webhooks):
        print("tapsift: nothing to ingest into: give --store DSN (or output.store), or SIEM outputs", file=sys.stderr)
        return 2
    ing = Ingester(settings, out.store, forward=not args.no_forward, relay_policy=not args.no_policy)
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    what = ", ".join(c.name for c in ing.consumers) + (", policy relay" if ing.relay is not None else "")
    logging.getLogger("tapsift.ingest").info("ingesting from %s (%s) as %s", redacted(out.bus.url), what,
                                             out.bus.consumer)
    threads_stop = ing.start()
    interval = max(1.0, args.log_interval)
    while not stop.wait(interval):
        logging.getLogger("tapsift.ingest").info("%s", ing.summary())
    threads_stop.set()
    ing.join()
    ing.close()
    logging.getLogger("tapsift.ingest").info("stopped: %s", ing.summary())
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("ingest", help="write the fleet's alerts and heartbeats from the bus into the store "
                                      "(and forward them to SIEMs)")
    p.add_argument("--config", metavar="PATH", help="settings file (output.bus, output.store, output.syslog…)")
    p.add_argument("--store", metavar="DSN", help="the store (postgresql://…; replaces output.store)")
    p.add_argument("--bus", metavar="URL", help="the bus (redis://…, rediss://…, unix://…; replaces output.bus.url)")
    p.add_argument("--consumer", metavar="NAME", help="this ingester's name in its consumer group (default: host name)")
    p.add_argument("--no-forward", action="store_true", help="do not forward alerts to output.syslog/webhooks")
    p.add_argument("--no-policy", action="store_true", help="do not relay saved policy versions to the sensors")
    p.add_argument("--log-interval", type=float, default=60.0, metavar="S", help="seconds between progress lines")
    p.add_argument("--print-acl", action="store_true",
                   help="print the Redis ACL SETUSER commands of the fleet's roles (sensor, worker, ingester) and exit")
    p.add_argument("-v", "--verbose", action="store_true")
    p.set_defaults(func=_ingest)
