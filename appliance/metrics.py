"""Prometheus text exposition of the sensor's counters (stdlib ``http.server`` in a thread).

`render` turns the supervisor's stats snapshot (the same dict as the ``stats`` EVE event) into
the text format 0.0.4; `MetricsServer` serves it at ``/metrics`` on a local address. The
server only reads a snapshot the supervisor already made, so a scrape never touches a worker.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["MetricsServer", "parse_listen", "render"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_WORKER_COUNTERS = (
    ("packets", "tapsift_packets_total", "Packets processed by the worker"),
    ("bytes", "tapsift_bytes_total", "Frame bytes processed by the worker"),
    ("flows", "tapsift_flows_total", "TCP flows created"),
    ("gaps", "tapsift_stream_gaps_total", "TCP stream gaps (missing bytes) declared"),
    ("objects", "tapsift_objects_total", "Content objects extracted"),
    ("alerts", "tapsift_alerts_total", "Alerts raised"),
    ("anomalies", "tapsift_anomalies_total", "Decoder and stream anomalies"),
    ("not_inspected", "tapsift_not_inspected_total", "Objects shed by the full inspection queue"),
    ("inspector_errors", "tapsift_inspector_errors_total", "Inspector runs that raised (logged and counted)"),
    ("events_dropped", "tapsift_events_dropped_total", "EVE lines dropped because the writer queue was full"),
)


def _esc(v: object) -> str:
    return str(v).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(**kw: object) -> str:
    return "{" + ",".join(f'{k}="{_esc(v)}"' for k, v in kw.items()) + "}" if kw else ""


def render(snap: dict[str, Any]) -> str:
    """Prometheus text for a stats snapshot (see `appliance.supervisor.Supervisor.snapshot`)."""
    out: list[str] = []

    def family(name: str, kind: str, help_: str) -> None:
        out.append(f"# HELP {name} {help_}")
        out.append(f"# TYPE {name} {kind}")

    family("tapsift_uptime_seconds", "gauge", "Seconds since the sensor started")
    out.append(f"tapsift_uptime_seconds {snap.get('uptime', 0)}")
    family("tapsift_kernel_packets_total", "counter", "Packets the kernel offered a capture socket (incl. drops)")
    for iface, ifs in sorted(snap.get("interfaces", {}).items()):
        for w, ws in sorted(ifs.get("workers", {}).items()):
            out.append(f"tapsift_kernel_packets_total{_labels(iface=iface, worker=w)} {ws.get('kernel_packets', 0)}")
    family("tapsift_kernel_drops_total", "counter", "Packets dropped by the kernel because a capture ring was full")
    for iface, ifs in sorted(snap.get("interfaces", {}).items()):
        for w, ws in sorted(ifs.get("workers", {}).items()):
            out.append(f"tapsift_kernel_drops_total{_labels(iface=iface, worker=w)} {ws.get('kernel_drops', 0)}")
    workers = snap.get("workers", {})
    for key, name, help_ in _WORKER_COUNTERS:
        family(name, "counter", help_)
        for w, ws in sorted(workers.items()):
            out.append(f"{name}{_labels(worker=w)} {ws.get(key, 0)}")
    family("tapsift_worker_up", "gauge", "1 when the capture worker process is running")
    for w, ws in sorted(workers.items()):
        out.append(f"tapsift_worker_up{_labels(worker=w)} {1 if ws.get('alive') else 0}")
    family("tapsift_worker_restarts_total", "counter", "Capture worker restarts after a crash")
    for w, ws in sorted(workers.items()):
        out.append(f"tapsift_worker_restarts_total{_labels(worker=w)} {ws.get('restarts', 0)}")
    family("tapsift_queue_depth", "gauge", "Items waiting in a bounded queue")
    for q, depth in sorted(snap.get("queues", {}).items()):
        out.append(f"tapsift_queue_depth{_labels(queue=q)} {depth}")
    _inspection(snap.get("inspection"), out, family)
    family("tapsift_eve_events_total", "counter", "EVE events written")
    out.append(f"tapsift_eve_events_total {snap.get('eve_events', 0)}")
    family("tapsift_reloads_total", "counter", "SIGHUP reloads handled")
    out.append(f"tapsift_reloads_total {snap.get('reloads', 0)}")
    return "\n".join(out) + "\n"


def _inspection(ins: dict[str, Any] | None, out: list[str], family: Callable[[str, str, str], None]) -> None:
    """Per cost class: queue depth, bytes and oldest age; offered, inspected and shed (by
    reason) jobs; the result cache's hits and lookups."""
    if not ins:
        return
    classes = ins.get("classes", {})
    for key, name, kind, help_ in (
        ("queued", "tapsift_inspection_queued", "gauge", "Objects waiting for inspection, per cost class"),
        ("queued_bytes", "tapsift_inspection_queued_bytes", "gauge", "Bytes of the objects waiting, per cost class"),
        ("oldest_age_s", "tapsift_inspection_oldest_age_seconds", "gauge",
         "How long the oldest waiting object has waited, per cost class"),
        ("offered", "tapsift_inspection_offered_total", "counter", "Objects queued for inspection, per cost class"),
        ("inspected", "tapsift_inspected_total", "counter", "Objects inspected, per cost class"),
    ):
        family(name, kind, help_)
        for cls, st in sorted(classes.items()):
            out.append(f"{name}{_labels(**{'class': cls})} {st.get(key, 0)}")
    family("tapsift_inspection_shed_total", "counter",
           "Objects not inspected (each has a not_inspected record), per cost class and reason")
    for cls, st in sorted(classes.items()):
        for reason, n in sorted(st.get("shed", {}).items()):
            out.append(f"tapsift_inspection_shed_total{_labels(**{'class': cls, 'reason': reason})} {n}")
    family("tapsift_inspection_in_hand", "gauge", "Objects being inspected now (taken off the queue, not done)")
    out.append(f"tapsift_inspection_in_hand {ins.get('in_hand', 0)}")
    cache = ins.get("cache", {})
    family("tapsift_result_cache_hits_total", "counter", "Objects whose content was inspected before (cache hits)")
    out.append(f"tapsift_result_cache_hits_total {cache.get('hits', 0)}")
    family("tapsift_result_cache_lookups_total", "counter", "Result cache lookups")
    out.append(f"tapsift_result_cache_lookups_total {cache.get('lookups', 0)}")


def parse_listen(text: str) -> tuple[str, int] | None:
    """``HOST:PORT`` → (host, port); empty → None (endpoint off)."""
    if not text:
        return None
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"metrics address {text!r} is not HOST:PORT")
    return host.strip("[]") or "127.0.0.1", int(port)


class MetricsServer:
    """Serves ``render(snapshot())`` at ``/metrics`` from a daemon thread."""

    def __init__(self, host: str, port: int, snapshot: Callable[[], dict[str, Any]]) -> None:
        snap = snapshot

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?")[0] not in ("/metrics", "/"):
                    self.send_error(404)
                    return
                body = render(snap()).encode()
                self.send_response(200)
                self.send_header("Content-Type", CONTENT_TYPE)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.address = self.httpd.server_address[:2]
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="metrics", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
