"""``tapsift`` command line.

Exit status: 0 when the work was done (a malformed capture still counts as read: its
problems are anomalies in the output), 1 when the input cannot be used (unreadable file,
invalid settings), 2 for unusable arguments. Errors are one line on stderr.
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

from appliance import __version__


def peak_rss_kb() -> int:
    """This process's peak resident set size in KiB.

    From /proc (VmHWM, which starts afresh at exec): getrusage's ru_maxrss also carries the
    peak of the parent a process was forked from, so a sensor started by a large process
    would report the parent's peak.
    """
    try:
        with open("/proc/self/status", "rb") as fh:
            for line in fh:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


class _Progress:
    """A one-line progress bar on a terminal (stderr); silent otherwise."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total = max(total, 1)
        self.enabled = enabled
        self.started = time.monotonic()
        self._last = 0.0

    def update(self, position: int, packets: int, objects: int) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last < 0.2:
            return
        self._last = now
        frac = min(1.0, position / self.total)
        width = 30
        bar = "#" * int(frac * width) + "-" * (width - int(frac * width))
        rate = position * 8 / max(now - self.started, 1e-6) / 1e6
        sys.stderr.write(
            f"\r[{bar}] {frac * 100:5.1f}%  {packets:,} pkts  {objects:,} objects  {rate:,.0f} Mbit/s "
        )
        sys.stderr.flush()

    def done(self) -> None:
        if self.enabled:
            sys.stderr.write("\r" + " " * 90 + "\r")
            sys.stderr.flush()


def _stats(pipeline: Any, cpu: float, wall: float) -> dict[str, Any]:
    """The ``stats`` event body: what the sensor did so far."""
    sensor = pipeline.sensor
    st = pipeline.stats
    tcp_counters = dict(getattr(sensor.tcp, "counters", {}))
    mbit = st.bytes * 8 / 1e6
    stats: dict[str, Any] = {
        "packets": st.packets, "bytes": st.bytes, "tcp_packets": st.tcp_packets, "udp_packets": st.udp_packets,
        "other_packets": st.other_packets, "flows": int(tcp_counters.get("flows_created", 0)),
        "objects": st.objects, "anomalies": sum(st.anomalies.values()), "app_proto": dict(st.app_protos),
        "tcp": tcp_counters, "decoder": dict(sensor.decoder.counters),
        "cpu_seconds": round(cpu, 3), "wall_seconds": round(wall, 3),
        "mbit_per_cpu_second": round(mbit / cpu, 1) if cpu > 0 else None,
        "peak_rss_kb": peak_rss_kb(),
    }
    if pipeline.inspection is not None:
        stats["inspection"] = dict(pipeline.inspection.counters)
        stats["alerts"] = st.alerts
        stats["suppressed"] = st.suppressed
        stats["inspector_errors"] = st.inspector_errors
    return stats


def _policy_error(settings: Any, exc: Exception) -> str:
    """One line for a policy that cannot be used."""
    from policies.schema import PolicyError

    if isinstance(exc, PolicyError):
        lines = str(exc).splitlines()
        more = len(lines) - 1
        return (lines[0] if lines else "invalid policy") + (f" (and {more} more problems)" if more > 0 else "")
    return f"cannot read policy {settings.inspection.policy}: {getattr(exc, 'strerror', None) or exc}"


def cmd_read(args: argparse.Namespace) -> int:
    """Read a capture file, extract its content objects, write EVE events."""
    # --workers N: the capture is sharded by flow over N processes, each running `build_pipeline`
    from appliance import parallel_read

    workers = args.workers if args.workers is not None else parallel_read.default_workers(args.capture)
    if args.packet_store or args.content_db:  # the packet store and retention hooks: one pipeline
        workers = 1
    if workers > 1 and parallel_read.usable(args.capture):
        return parallel_read.run(args, workers)
    from appliance.eve import EveWriter, eve_timestamp
    from appliance.settings import SettingsError, load_settings
    from capture.pcapfile import CaptureError, open_capture

    try:
        settings = load_settings(args.config)
    except SettingsError as exc:
        print(f"tapsift: {exc}", file=sys.stderr)
        return 1
    if args.body_limit is not None:
        settings.applayer.set_body_limit(args.body_limit)
    if args.policy is not None:
        settings.inspection.policy = args.policy
    if args.store is not None:
        settings.output.store = args.store
    from appliance.pipeline import Outputs, build_pipeline

    policy_errors: tuple[type[Exception], ...] = ()
    if settings.inspection.policy:
        from policies.schema import PolicyError

        policy_errors = (PolicyError, OSError)
    outputs = Outputs(event=lambda ev: None)  # the EVE writer is opened once the capture is
    fleet = None
    if settings.output.bus is not None:  # fleet (docs/fleet.md): bus outputs, remote inspection, heartbeats
        from appliance.fleet.sensorlink import ReadLink

        fleet = ReadLink(settings, outputs)
    try:
        pipeline = build_pipeline(settings, outputs)
    except policy_errors as exc:
        print(f"tapsift: {_policy_error(settings, exc)}", file=sys.stderr)
        return 1
    try:
        cap = open_capture(args.capture)
    except CaptureError as exc:
        print(f"tapsift: {exc}", file=sys.stderr)
        return 1
    eve_target = args.eve if args.eve is not None else settings.output.eve
    try:
        eve = EveWriter(eve_target)
    except OSError as exc:
        print(f"tapsift: cannot write EVE output {eve_target}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    if fleet is not None:  # fleet: EVE events to the bus too
        fleet.bind(pipeline)
        try:
            eve = fleet.tee(eve)
        except OSError as exc:
            print(f"tapsift: cannot open the bus spool: {exc}", file=sys.stderr)
            return 1
    outputs.event = eve.write
    writer = None
    if pipeline.holder is not None:
        from appliance.alerts import AlertWriter
        from appliance.store import Dsn, StoreError

        try:
            writer = AlertWriter.from_settings(settings.output, eve, sensor=settings.sensor.name)
        except (OSError, StoreError) as exc:
            where = Dsn.parse(settings.output.store).redacted if settings.output.store else "outputs"
            print(f"tapsift: cannot open the alert store or outputs ({where}): {exc}", file=sys.stderr)
            return 1
        outputs.alert, outputs.suppressed = writer.alert, writer.suppress
    extras = _read_extras(args, settings, outputs)
    if extras is None:
        return 1
    cap = extras.tee(cap)
    if fleet is not None:  # fleet: heartbeats from now on
        fleet.start(writer)

    # The packet path allocates short-lived objects by the million; the flow table breaks
    # its reference cycles itself, so young-generation collections are made rarer and the
    # start-up heap is frozen out of the collector's sight.
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    show = sys.stderr.isatty() and not args.quiet
    bar = _Progress(cap.size, show)
    cpu0 = time.process_time()
    wall0 = time.monotonic()
    st = pipeline.sensor.stats
    try:
        def periodic(ts_ns: int) -> None:
            eve.write({"timestamp": eve_timestamp(ts_ns), "event_type": "stats",
                       "stats": _stats(pipeline, time.process_time() - cpu0, time.monotonic() - wall0)})

        def progress() -> None:
            bar.update(cap.position, st.packets, st.objects)

        pipeline.drive(cap, progress=progress, on_stats=periodic,
                       stats_every_ns=int(settings.output.stats_interval_s * 1e9))
        pipeline.finish()
    except KeyboardInterrupt:
        pipeline.finish()
        print("tapsift: interrupted; results so far were written", file=sys.stderr)
    finally:
        bar.done()
    _close_read(args, pipeline, cap, eve, writer, time.process_time() - cpu0, time.monotonic() - wall0)
    extras.close()
    if fleet is not None:  # fleet: the last heartbeat
        fleet.close()
    return 0


def _read_extras(args: argparse.Namespace, settings: Any, outputs: Any) -> Any:
    """`tapsift read`'s packet store (--packet-store) and content retention (--content-db); None on error."""
    from appliance.readextras import ReadExtras

    try:
        return ReadExtras.open(args.packet_store, args.content_db, settings, outputs)
    except (OSError, ValueError) as exc:
        print(f"tapsift: {exc}", file=sys.stderr)
        return None


def _close_read(args: argparse.Namespace, pipeline: Any, cap: Any, eve: Any, writer: Any, cpu: float,
                wall: float) -> None:
    """The end of `tapsift read`: decode anomalies and the final ``stats`` event, the summary line."""
    from appliance.eve import eve_timestamp

    st = pipeline.sensor.stats
    st.anomalies.update(getattr(cap, "anomalies", {}) or {})
    cap.close()
    for code, count in sorted(st.anomalies.items()):
        eve.write({
            "timestamp": eve_timestamp(st.last_ts_ns), "event_type": "anomaly",
            "anomaly": {"type": "decode", "event": code, "count": count},
        })
    stats = _stats(pipeline, cpu, wall)
    eve.write({"timestamp": eve_timestamp(st.last_ts_ns), "event_type": "stats", "stats": stats})
    if writer is not None:
        writer.close()
    eve.close()
    if not args.quiet:
        mbit = st.bytes * 8 / 1e6
        rate = f"{mbit / cpu:,.0f} Mbit/s per CPU-second" if cpu > 0 else "n/a"
        print(
            f"tapsift: {Path(args.capture).name}: {st.packets:,} packets, {_human_bytes(st.bytes)}, "
            f"{stats['flows']:,} flows, {st.objects:,} objects, "
            + (f"{st.alerts:,} alerts, " if pipeline.inspection is not None else "")
            + f"{sum(st.anomalies.values()):,} anomalies; "
            f"{cpu:.2f} s CPU, {rate}",
            file=sys.stderr,
        )


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="tapsift", description="Network-tap content inspection appliance.")
    ap.add_argument("--version", action="version", version=f"tapsift {__version__}")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    rd = sub.add_parser("read", help="read a pcap/pcapng capture (optionally gzip'd) and extract its content")
    rd.add_argument("capture", help="capture file (pcap, pcapng, .gz)")
    rd.add_argument("--eve", metavar="PATH", help="write EVE JSON lines here ('-' for stdout)")
    rd.add_argument("--config", metavar="PATH", help="settings file (YAML)")
    rd.add_argument("--body-limit", type=int, metavar="BYTES",
                    help="bytes of each object to hash and keep (sets every protocol's applayer.*.body_limit)")
    rd.add_argument("--policy", metavar="FILE", help="zone policy (YAML): inspect objects and raise alerts")
    rd.add_argument("--store", metavar="PATH", help="SQLite alert store to add the alerts to")
    rd.add_argument("--packet-store", metavar="DIR", help="also write the packets to a packet store (rotating pcaps)")
    rd.add_argument("--content-db", metavar="DSN", help="retain every object's metadata and text (content store)")
    rd.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")
    rd.add_argument("--workers", type=int, metavar="N",
                    help="pipelines to shard the flows over (default: all cores for captures of 64 MB or more)")
    rd.set_defaults(func=cmd_read)

    import importlib
    import importlib.util

    from appliance.commands import COMMAND_MODULES

    for name in COMMAND_MODULES:
        modname = f"appliance.commands.{name}"
        if importlib.util.find_spec(modname) is not None:
            importlib.import_module(modname).register(sub)
    return ap


def main(argv: list[str] | None = None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    try:
        return int(args.func(args))
    except BrokenPipeError:
        # e.g. `tapsift read x --eve - | head`: not an error of ours
        try:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115
        except OSError:
            pass
        return 0


if __name__ == "__main__":
    sys.exit(main())
