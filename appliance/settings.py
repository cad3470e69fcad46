"""Sensor settings: one YAML file validated by pydantic (only at this boundary).

Every limit that protects the sensor from hostile traffic lives here with a safe default,
so that ``tapsift read`` works without a file. See docs/configuration.md for the reference.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

MiB = 1024 * 1024
log = logging.getLogger("tapsift.settings")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _host_name() -> str:
    import socket

    return socket.gethostname() or "tapsift"


class SensorSettings(_Section):
    """Who this sensor is."""

    name: str = Field(default_factory=_host_name, min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$")
    """The sensor's name (default: the host name). Part of every flow's id (and so of every
    content and alert id: `appliance.model.ids`), so ids stay unique across sensors, and written
    in alert records (``tapsift.sensor``). Give every sensor its own; keep it when the host is
    renamed, or a re-read of an old capture makes new ids."""


class CaptureSettings(_Section):
    checksums: Literal["auto", "verify", "off"] = "auto"
    """IPv4/TCP/UDP checksums: ``verify`` counts every bad one as an anomaly (packets are still
    used), ``off`` skips them, ``auto`` verifies until a source shows checksum offload, then
    stops for it and counts ``checksum.offload`` once (capture/checksums.py)."""
    defrag_timeout_s: float = 30.0
    defrag_memcap: int = 64 * MiB

    @model_validator(mode="before")
    @classmethod
    def _verify_checksums_alias(cls, data: Any) -> Any:
        """The deprecated ``verify_checksums: true|false`` is ``checksums: verify|off``."""
        if isinstance(data, dict) and "verify_checksums" in data:
            data = dict(data)
            old = data.pop("verify_checksums")
            if "checksums" in data:
                raise ValueError("verify_checksums is the deprecated name of checksums: give only checksums")
            if not isinstance(old, bool):
                raise ValueError("verify_checksums must be true or false (better: checksums: auto|verify|off)")
            data["checksums"] = "verify" if old else "off"
        return data

    @property
    def verify_checksums(self) -> bool:
        """Deprecated: False only when ``checksums`` is ``off``."""
        return self.checksums != "off"


class ReassemblySettings(_Section):
    max_flows: int = Field(1_000_000, ge=16)
    """Flow table size; beyond it the least recently active flows are evicted."""
    stream_memcap: int = Field(16 * MiB, ge=64 * 1024)
    """Out-of-order bytes buffered per stream direction before a gap is declared."""
    memcap: int = Field(1024 * MiB, ge=MiB)
    """Out-of-order bytes buffered over all streams."""
    overlap_policy: Literal["first", "last"] = "first"
    established_timeout_s: float = 300.0
    closed_timeout_s: float = 30.0
    ack_gap_delay_s: float = Field(0.2, ge=0)
    """An ACK past a hole makes it a gap only after this long (packet time): a mirror merging
    ports, or a split tap, can show the ACK before the retransmission that fills the hole."""
    expire_interval_s: float = 5.0
    """How often (in packet time) idle flows are looked for."""
    fast_path: bool = True
    """Carry in-order TCP data of established IPv4 flows through the C fast path
    (``capture/_fastpath.c``) when it is built; same objects, several times fewer CPU
    seconds. ``false`` forces the pure-Python path (for comparison or debugging)."""


class BodyLimitSettings(_Section):
    """Limits of a protocol whose only limit is the object size."""

    body_limit: int = Field(100 * MiB, ge=0)
    """Bytes of an object to hash and keep; beyond it the object is TRUNCATED (0 = no limit)."""


class HttpLimitSettings(BodyLimitSettings):
    max_header_bytes: int = Field(64 * 1024, ge=1024)
    max_decoded_bytes: int = Field(256 * MiB, ge=MiB)
    """Hard cap on the output of content decoding of one body."""
    max_decompression_ratio: int = Field(1000, ge=10)
    """Output/input ratio above which a compressed body is treated as a bomb (after 1 MiB)."""
    max_encoding_layers: int = Field(3, ge=1, le=8)
    range_reassembly_bytes: int = Field(256 * MiB, ge=0)
    """Memory for stitching 206 pieces back into whole files (0 = off)."""


class SmtpLimitSettings(BodyLimitSettings):
    max_line: int = Field(8192, ge=64)
    """Longest command/reply line kept; a longer DATA line is fed on in pieces."""


class Http2LimitSettings(HttpLimitSettings):
    max_streams: int = Field(512, ge=1)
    """Streams followed at once on one connection."""
    max_connection_bytes: int = Field(1024 * MiB, ge=0)
    """DATA bytes of one connection made into objects (0 = no limit)."""
    max_header_block: int = Field(256 * 1024, ge=4096)
    max_frame_bytes: int = Field(1 * MiB, ge=16384)


class WebSocketLimitSettings(BodyLimitSettings):
    max_messages: int = Field(10000, ge=1)
    coalesce_max_message: int = Field(1024, ge=0)
    """Text messages shorter than this are joined per direction (0 = every message alone)."""
    coalesce_bytes: int = Field(64 * 1024, ge=1024)
    max_decoded_bytes: int = Field(64 * MiB, ge=MiB)
    max_decompression_ratio: int = Field(1000, ge=10)


class MailboxLimitSettings(BodyLimitSettings):
    max_line: int = Field(8192, ge=64)


class ImapLimitSettings(BodyLimitSettings):
    max_line: int = Field(16384, ge=256)


class TlsLimitSettings(BodyLimitSettings):
    max_handshake_bytes: int = Field(256 * 1024, ge=4096)


class QuicLimitSettings(BodyLimitSettings):
    max_initial_packets: int = Field(16, ge=1)
    max_crypto_bytes: int = Field(64 * 1024, ge=4096)


class DnsLimitSettings(BodyLimitSettings):
    max_answers: int = Field(64, ge=1)


class ApplayerSettings(_Section):
    """Per-protocol limits of the application layer (``applayer.<protocol>``); the names are
    those of the protocol table (`reassembly.applayer.table`), whose defaults these repeat."""

    http: HttpLimitSettings = HttpLimitSettings()
    smtp: SmtpLimitSettings = SmtpLimitSettings()
    ftp: BodyLimitSettings = BodyLimitSettings()
    """FTP data transfers."""
    smb: BodyLimitSettings = BodyLimitSettings()
    irc: BodyLimitSettings = BodyLimitSettings()
    """IRC DCC transfers."""
    raw: BodyLimitSettings = BodyLimitSettings()
    """Unrecognised streams kept because a file signature starts them."""
    http2: Http2LimitSettings = Http2LimitSettings()
    websocket: WebSocketLimitSettings = WebSocketLimitSettings()
    imap: ImapLimitSettings = ImapLimitSettings()
    pop3: MailboxLimitSettings = MailboxLimitSettings()
    tls: TlsLimitSettings = TlsLimitSettings()
    """Handshake metadata only (``body_limit`` is not used)."""
    quic: QuicLimitSettings = QuicLimitSettings()
    dns: DnsLimitSettings = DnsLimitSettings()

    def limits(self) -> dict[str, BodyLimitSettings]:
        """Protocol name → its limits object (what `AppLayer` takes)."""
        return {name: getattr(self, name) for name in type(self).model_fields}

    def set_body_limit(self, limit: int) -> None:
        """One body limit for every protocol (``tapsift read --body-limit``)."""
        for section in self.limits().values():
            section.body_limit = limit


class DeprecatedHttpSettings(_Section):
    """The old ``http:`` section, read into ``applayer`` (a warning is logged once)."""

    body_limit: int | None = Field(None, ge=0)
    """Was the byte limit of every protocol: still sets each ``applayer.*.body_limit`` not given."""
    max_header_bytes: int | None = Field(None, ge=1024)
    max_decoded_bytes: int | None = Field(None, ge=MiB)
    max_decompression_ratio: int | None = Field(None, ge=10)
    max_encoding_layers: int | None = Field(None, ge=1, le=8)
    range_reassembly_bytes: int | None = Field(None, ge=0)


_warned = {"http": False}


class ContentSettings(_Section):
    keep_bytes: int = Field(8 * MiB, ge=0)
    """Bytes of each object kept in memory for inspection (hashes always cover everything)."""
    magic_bytes: int = Field(64 * 1024, ge=512)
    """Head of each object given to libmagic."""


class SyslogSettings(_Section):
    """One SIEM destination (see docs/siem.md)."""

    host: str
    port: int | None = None
    transport: Literal["udp", "tcp", "tls"] = "tcp"
    format: Literal["json", "cef", "leef"] = "json"
    rfc: Literal["5424", "3164"] = "5424"
    max_message: int = Field(2048, ge=480, le=65507)
    spool_dir: str | None = None
    """Disk spool so that an outage loses nothing (default: under the state directory)."""
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    server_name: str | None = None
    facility: str = "local0"


class WebhookSettings(_Section):
    url: str
    style: Literal["json", "slack"] = "json"
    spool_dir: str | None = None


class EmailSettings(_Section):
    """E-mail notification of alerts (SMTP; STARTTLS unless ``tls: none``)."""

    host: str
    port: int = Field(587, ge=1, le=65535)
    tls: Literal["starttls", "ssl", "none"] = "starttls"
    """``starttls`` (port 587), ``ssl`` (implicit TLS, port 465), ``none`` (a local relay only)."""
    ca_file: str | None = None
    username: str | None = None
    password_file: str | None = None
    """A file holding the SMTP password (never the password itself in the settings)."""
    sender: str
    recipients: list[str] = Field(min_length=1)
    min_severity: int = Field(2, ge=1, le=5)
    """Mail alerts at least this severe (1 = critical … 5 = info)."""
    spool_dir: str | None = None
# --- fleet (docs/fleet.md): the event bus, remote inspection ---------------------------------------
class BusSettings(_Section):
    """The fleet's event bus (Redis Streams): sensors publish to it, the ingester and the
    inspection workers consume from it (docs/fleet.md)."""

    url: str = Field(min_length=1)
    """``redis://[user@]host:port/db``, ``rediss://…`` (TLS) or ``unix:///path/redis.sock?db=0``."""
    password_file: str | None = None
    """A file holding the ACL user's password (keep it out of the URL)."""
    ca_file: str | None = None
    """TLS: the CA that signed the server's certificate (``rediss://``)."""
    cert_file: str | None = None
    """TLS client certificate (with ``key_file``), when the server asks for one."""
    key_file: str | None = None
    events_key: str = "tapsift:eve"
    """EVE events other than alerts (``fileinfo``, ``anomaly``, ``tls``, ``stats``…)."""
    alerts_key: str = "tapsift:alerts"
    sensors_key: str = "tapsift:sensors"
    """Heartbeats (the sensor registry)."""
    policy_key: str = "tapsift:policy"
    """Policy versions pushed to the sensors."""
    jobs_key: str = "tapsift:jobs"
    """Prefix of the inspection job streams (one per cost class: ``tapsift:jobs:expensive``)."""
    events: bool = True
    """Publish EVE events; false: alerts and heartbeats only."""
    maxlen: int = Field(1_000_000, ge=1000)
    """Approximate cap of each stream (``XADD … MAXLEN ~``); publishers hold back (spool) at 90 %."""
    spool_max_mb: int = Field(256, ge=1)
    """Disk spool per stream while Redis is away or the stream is full; beyond it new messages are
    dropped and counted."""
    heartbeat_s: float = Field(5.0, gt=0)
    """How often a sensor (and an inspection worker) reports to the registry."""
    follow_policy: bool = True
    """A live sensor applies the policy versions pushed on ``policy_key``."""
    consumer: str = Field(default_factory=_host_name, min_length=1, max_length=200)
    """This consumer's name in its group (ingester, worker); a restart under the same name re-reads
    its own unacknowledged entries at once."""
    batch: int = Field(500, ge=1, le=10_000)
    """Entries read (and committed to the store) at a time by the ingester."""
    claim_idle_s: float = Field(60.0, gt=0)
    """Entries a consumer took and has not acknowledged after this long are given to another."""
    retry_max_s: float = Field(30.0, gt=0)
    """Longest wait between two attempts when the store or Redis is down (back-off doubles up to it)."""
    policy_poll_s: float = Field(10.0, gt=0)
    """The ingester looks for a newer saved policy this often (and at once on a console's push)."""
    timeout_s: float = Field(10.0, gt=0)
    """Connect and socket timeout towards Redis."""


class RemoteInspectionSettings(_Section):
    """Expensive inspection offered as jobs on the bus to ``tapsift inspect-worker`` processes."""

    enabled: bool = False
    inline_max_bytes: int = Field(8 * MiB, ge=1024, le=512 * MiB)
    """Largest object sent as a job (its bytes travel in the job); larger ones follow ``oversize``."""
    oversize: Literal["local", "shed"] = "local"
    """``local``: inspected here (the local pool, or inline in ``tapsift read``); ``shed``: a
    ``not_inspected`` record."""
    max_backlog: int = Field(1000, ge=1)
    """Jobs of a class in Redis (waiting or being inspected) beyond which sensors fall back to
    their local rules (counted)."""
    max_backlog_mb: int = Field(1024, ge=1)
    """Bytes of a class's jobs in Redis beyond which sensors fall back likewise (Redis memory)."""
    claim_idle_s: float = Field(120.0, gt=0)
    """A job a worker took and has not finished after this long is given to another worker."""
    group: str = "tapsift-inspect"


class OutputSettings(_Section):
    eve: str | None = None
    """EVE JSON lines path (``-`` for stdout)."""
    stats_interval_s: float = 0.0
    """Emit a ``stats`` event every N seconds of packet time (0 = only at the end)."""
    store: str | None = None
    """The alert store (the console reads it): a SQLite path (or ``sqlite:///…``) or a ``postgresql://``
    DSN (docs/fleet.md); none = alerts go to EVE/syslog only."""
    state_dir: str = "/var/lib/tapsift"
    """Where spools live unless an output names its own."""
    syslog: list[SyslogSettings] = []
    webhooks: list[WebhookSettings] = []
    email: list[EmailSettings] = []
    bus: BusSettings | None = None
    """The fleet's event bus (Redis Streams, docs/fleet.md); none = one box."""

    @field_validator("store")
    @classmethod
    def _store_location(cls, v: str | None) -> str | None:
        if v is not None:
            from appliance.store.dsn import Dsn

            Dsn.parse(v)  # ValueError: the settings file names no usable store
        return v


class PrioritySettings(_Section):
    """One priority rule (``inspection.priorities``); a field left out matches anything."""

    source_zone: str | None = None
    destination_zone: str | None = None
    direction: Literal["upload", "download"] | None = None
    priority: int = Field(ge=0, le=9)


class ExtractorCostSettings(_Section):
    """One row of the extractor cost table (``inspection.extractor_costs.<family>``)."""

    cost: Literal["cheap", "expensive"]
    max_bytes: int = Field(0, ge=0)
    """Cheap only up to this size (0 = any size)."""


class InspectionSettings(_Section):
    policy: str | None = None
    """Zone policy file (YAML); none = extract and report objects only, no alerts."""
    model_dir: str = Field(default_factory=lambda: os.environ.get("TAPSIFT_MODEL_DIR") or "/var/lib/tapsift/models")
    """The only folder classifier models are read from: a policy's ``params.model`` names a file
    or folder inside it (relative names resolve there; ``..``, paths outside it and symlinks
    leading out are refused). Default: ``$TAPSIFT_MODEL_DIR``, else /var/lib/tapsift/models."""
    time_budget_s: float = Field(30.0, gt=0)
    """Wall-clock budget for inspecting one object and its children."""
    max_text_bytes: int = Field(32 * MiB, ge=1024)
    max_depth: int = Field(3, ge=0, le=16)
    """Nesting depth of extracted children (a ZIP in a ZIP in a DOCX…)."""
    max_children: int = Field(256, ge=0)
    max_expanded_bytes: int = Field(256 * MiB, ge=MiB)
    """Bytes the children of one object may expand to, together."""
    worker_memory_bytes: int = Field(1024 * MiB, ge=64 * MiB)
    """Address-space limit (RLIMIT_AS) of each parser worker process."""
    max_pixels: int = Field(50_000_000, ge=10_000)
    """Images larger than this are not decoded (a pixel bomb)."""
    result_cache_entries: int = Field(100_000, ge=0)
    """Inspection results kept per inspecting process, by content (sha256) and configuration: a
    repeat of the same content costs a lookup and still alerts for its own flow (0 = no cache)."""
    result_cache_mb: int = Field(64, ge=0)
    """Memory of those results per process (estimated); least recently used go first."""
    priorities: list[PrioritySettings] = Field(default_factory=lambda: [PrioritySettings(direction="upload",
                                                                                          priority=0)])
    """Which queued objects are inspected first (0 first; the first matching rule wins): by
    default uploads (data leaving through the client) before downloads."""
    default_priority: int = Field(1, ge=0, le=9)
    """Priority of objects no ``priorities`` rule matches."""
    extractor_costs: dict[str, ExtractorCostSettings] = Field(default_factory=dict)
    """Overrides of the extractor cost table (`inspectors/extract/cost.py`), by family:
    ``{pdf: {cost: cheap, max_bytes: 1048576}}``."""
    vosk_model_dir: str = ""
    """A Vosk model directory (docs/media.md): free transcription of speech, and spotting of the
    spoken keywords in its vocabulary; empty: pocketsphinx keyword spotting only."""
    remote: RemoteInspectionSettings = RemoteInspectionSettings()
    """Expensive inspection on ``tapsift inspect-worker`` hosts through ``output.bus`` (docs/fleet.md)."""


class RetentionSettings(_Section):
    """Content retention: every object's metadata and text, sessions, small objects' bytes (appliance/retention.py)."""

    store: str | None = None
    """The content store: a SQLite path (its own file, not the alert store) or the fleet's ``postgresql://``
    DSN; none = no retention."""
    max_age_days: float = Field(7.0, gt=0)
    """Keep this long before the newest object (packet time)."""
    max_bytes: int = Field(20 * 1024 * MiB, ge=MiB)
    """Size cap; the oldest hours go first."""
    max_text_bytes: int = Field(256 * 1024, ge=1024)
    """Text kept per object."""
    keep_bytes: int = Field(1 * MiB, ge=0)
    """Objects up to this size keep their bytes (download, back-test); 0 = none."""
    objects: Literal["all", "alerting"] = "all"
    """``alerting``: only the objects of sessions that raised an alert."""
    queue: int = Field(20_000, ge=10)
    """Objects waiting for the writer thread; beyond it they are dropped, counted."""
    queue_bytes: int = Field(256 * MiB, ge=MiB)
    batch: int = Field(500, ge=1)


class PacketStoreSettings(_Section):
    """A ring of recent traffic on disk (appliance/packetstore.py): the console cuts flows' PCAPs from it."""

    dir: str | None = None
    """Where the rotating pcap files go (each capture worker its own files); none = off."""
    max_bytes: int = Field(10 * 1024 * MiB, ge=MiB)
    """Size cap of all files; the oldest go first."""
    max_age_s: float = Field(86400.0, gt=0)
    """Files older than this (packet time, before the newest) are removed."""
    file_bytes: int = Field(64 * MiB, ge=64 * 1024)
    """Size of one file before the next is started."""
    listen: str | None = None
    """``HOST:PORT`` of the token-authenticated PCAP endpoint for a fleet console; none = off."""
    token_file: str | None = None
    """The endpoint's bearer token (a file, mode 0600)."""
    tls_cert: str | None = None
    tls_key: str | None = None


class LiveSettings(_Section):
    """Live capture (``tapsift run``): interfaces, workers, rings, process model, metrics."""

    interfaces: list[str] = Field(default_factory=list)
    """Capture interfaces (``-i`` on the command line replaces this list)."""
    workers: int = Field(1, ge=1, le=64)
    """Capture worker processes; each interface's packets are spread over them by flow hash."""
    backend: Literal["afpacket", "pcap"] = "afpacket"
    """``afpacket``: tapsift's own TPACKET_V3 ring; ``pcap``: libpcap through pcapy-ng."""
    ring_mb: int = Field(64, ge=1, le=4096)
    """Ring size per interface and worker (MiB)."""
    block_kb: int = Field(1024, ge=4, le=65536)
    """Ring block size (KiB, a power of two): also the largest frame captured whole."""
    block_timeout_ms: int = Field(50, ge=1, le=10_000)
    """A partly filled ring block is handed over after this long."""
    bpf: str = ""
    """Kernel BPF filter (tcpdump syntax), e.g. ``not port 22``; empty = everything."""
    promisc: bool = True
    fanout_group: int | None = Field(None, ge=0, le=0xFFFF)
    """Fanout group id of the first interface (the next ones count up); default from the pid."""
    user: str | None = None
    """Drop root to this user (and its group) once sockets and outputs are open."""
    check_interfaces: bool = True
    """Warn at start about offloads (GRO/LRO/TSO/checksum), MTU and addresses on capture ports."""
    stats_interval_s: float = Field(10.0, ge=0)
    """Wall-clock seconds between ``stats`` events (0 = only at the end)."""
    metrics_listen: str = "127.0.0.1:9917"
    """Prometheus endpoint ``HOST:PORT`` (port 0 = any free port; empty = off)."""
    event_queue: int = Field(4096, ge=16)
    """Batches of EVE lines waiting for the single writer; beyond it lines are dropped and counted."""
    inspect_workers: Annotated[int, Field(ge=0, le=64)] | Literal["auto"] = "auto"
    """Inspection processes that take expensive work (and help with cheap work when it backs
    up). ``auto``: the cores the capture workers leave, at least 1. 0 = no pool: each capture
    worker inspects its objects itself (simple; a burst of OCR then stalls capture)."""
    cheap_workers: int = Field(1, ge=1, le=64)
    """With a pool: processes that take only cheap work (text of pages, JSON, documents;
    keywords, data classes, hashes), so it is never stuck behind OCR."""
    cheap_nice: int = Field(10, ge=0, le=19)
    """Niceness added to the cheap processes: capture keeps ~90 % of a core it contends for
    (their queue absorbs a burst), the expensive work waits for them."""
    inspect_nice: int = Field(19, ge=0, le=19)
    """Niceness added to the expensive processes (and their extraction sandboxes): they run on
    what capture and the cheap work leave; what waits past its budget is shed, not packets."""
    cheap_queue: int = Field(20_000, ge=1)
    """Cheap objects waiting; beyond it they are shed with a ``not_inspected`` record."""
    cheap_queue_mb: int = Field(256, ge=1)
    """Their bytes (the queue is on a tmpfs: memory)."""
    inspect_queue: int = Field(2_000, ge=1)
    """Expensive objects waiting; beyond it they are shed with a ``not_inspected`` record."""
    inspect_queue_mb: int = Field(512, ge=1)
    """Their bytes."""
    cheap_budget_s: float = Field(300.0, gt=0)
    """A cheap object that waited longer is shed (reason ``too_old``) rather than inspected late."""
    expensive_budget_s: float = Field(120.0, gt=0)
    """The same for expensive objects."""
    job_dir: str | None = None
    """The job queue's directory (a tmpfs); default ``$RUNTIME_DIRECTORY/jobs`` under systemd,
    else ``/dev/shm/tapsift-jobs-<hash of output.state_dir>``."""
    spool_mb: int = Field(512, ge=0)
    """At shutdown, jobs still queued go to ``<output.state_dir>/jobs.spool`` (up to this size;
    the rest are recorded as not inspected); the next start inspects them first."""
    worker_inspect_bytes: int = Field(0, ge=0)
    """With a pool: plain-text objects up to this size whose rules use only cheap inspectors
    are inspected in the capture worker itself instead of being queued (0 = everything is
    queued; see docs/deployment.md for when inline inspection pays)."""
    restart_backoff_s: float = Field(1.0, ge=0)
    """Delay before a crashed worker is restarted (doubles on repeated crashes, up to 30 s)."""
    shutdown_timeout_s: float = Field(20.0, ge=1)
    """How long workers get to flush on SIGTERM before they are killed."""
    eve_rotate_mb: int = Field(0, ge=0)
    """Rotate the EVE file when it exceeds this size (0 = never; logrotate + SIGHUP works too)."""
    eve_rotate_interval_s: float = Field(0, ge=0)
    """Rotate the EVE file this often (0 = never)."""
    eve_rotate_keep: int = Field(10, ge=1, le=1000)
    pid_file: str | None = None
    """Written at start (the console's policy reload sends SIGHUP to this pid)."""
    stats_file: str | None = None
    """A small JSON file of counters, replaced at every stats interval (the console's dashboard)."""
    """Rotated EVE files kept (``eve.json.1`` … ``eve.json.N``)."""


class BehaviourSettings(_Section):
    """Behaviour anomalies (docs/behaviour.md): baselines per internal host, zone and user-agent
    family, and the detectors' modelling parameters. Alert thresholds are in the policy's
    behaviour profiles."""

    enabled: bool = False
    state_path: str | None = None
    """SQLite state file (baselines, anomalies, verdicts); default ``<state_dir>/behaviour.db``."""
    timezone: str = "UTC"
    """The site's time zone for hour-of-week baselines: ``UTC``, ``+08:00`` or an IANA name."""
    holidays: list[str] = []
    """Public holidays (``YYYY-MM-DD``): treated as Sundays."""
    window_s: int = Field(3600, ge=300, le=86400)
    """Window length; must divide a day."""
    grace_s: float = Field(60.0, ge=0, le=3600)
    """A window closes this long (packet time) after its end, for objects that finish late."""
    internal_cidrs: list[str] = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"]
    """Addresses whose behaviour is followed (besides those in the policy's named zones)."""
    internal_zones: list[str] | None = None
    """Which policy zones are internal (None: every named zone)."""
    warmup_days: float = Field(7.0, ge=0)
    """A host's baselines learn this long before its own detectors may raise."""
    history_weeks: int = Field(4, ge=1, le=12)
    """Weeks of hour-of-week history kept per entity."""
    min_samples: int = Field(6, ge=3)
    max_hosts: int = Field(10_000, ge=16)
    """Hosts followed; beyond it the least recently active is evicted (counted)."""
    max_destinations: int = Field(512, ge=16, le=65536)
    """Destinations remembered per host (least recently seen forgotten first)."""
    max_tracks: int = Field(16, ge=1, le=1024)
    """Destinations per host whose upload times are kept for the periodicity detector."""
    idle_days: float = Field(35.0, gt=0)
    """Hosts idle longer are forgotten."""
    user_agents: bool = True
    """Also follow user-agent families (site-wide)."""
    offhours_peer_share: float = Field(0.003, ge=0, le=1)
    """An hour is "off" for a zone when at most this share of its hosts is usually active then."""
    common_share: float = Field(0.05, gt=0, le=1)
    """A destination used by this share of a zone's hosts is not new or suspicious for its hosts."""
    category_risk: dict[str, float] = {}
    """Upload risk per destination category for the novelty detector (merged over the defaults)."""
    min_events: int = Field(12, ge=4, le=32)
    min_period_s: float = Field(10.0, gt=0)
    max_period_s: float = Field(3600.0, gt=0)
    retrain_interval_s: float = Field(86400.0, gt=0)
    forest_capacity: int = Field(8192, ge=256)
    forest_trees: int = Field(100, ge=10, le=1000)
    forest_min_samples: int = Field(512, ge=64)
    persist_interval_s: float = Field(21600.0, gt=0)
    seed: int = 0

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        from inspectors.behaviour.clock import load_tz

        load_tz(v)
        return v

    @field_validator("holidays")
    @classmethod
    def _dates(cls, v: list[str]) -> list[str]:
        from datetime import date

        for d in v:
            date.fromisoformat(d)
        return v

    @field_validator("window_s")
    @classmethod
    def _divides_day(cls, v: int) -> int:
        if 86400 % v:
            raise ValueError("window_s must divide a day (e.g. 900, 1800, 3600)")
        return v

    @field_validator("internal_cidrs")
    @classmethod
    def _cidrs(cls, v: list[str]) -> list[str]:
        import ipaddress

        for c in v:
            ipaddress.ip_network(c, strict=False)
        return v

    def state_file(self, state_dir: str) -> str:
        """The state file: ``state_path``, else ``behaviour.db`` in the state directory."""
        return self.state_path or str(Path(state_dir) / "behaviour.db")


class Settings(_Section):
    """Top-level settings file."""

    sensor: SensorSettings = Field(default_factory=SensorSettings)
    capture: CaptureSettings = CaptureSettings()
    reassembly: ReassemblySettings = ReassemblySettings()
    applayer: ApplayerSettings = ApplayerSettings()
    http: DeprecatedHttpSettings | None = None
    """Deprecated: use ``applayer.http`` (``http.body_limit`` sets every protocol's body limit)."""
    content: ContentSettings = ContentSettings()
    output: OutputSettings = OutputSettings()
    live: LiveSettings = LiveSettings()
    inspection: InspectionSettings = InspectionSettings()
    behaviour: BehaviourSettings = BehaviourSettings()
    retention: RetentionSettings = RetentionSettings()
    packet_store: PacketStoreSettings = PacketStoreSettings()
    web: dict[str, Any] = Field(default_factory=dict)
    """The console's section (validated by ``tapsift web``; see docs/console.md), so one file
    can configure both services."""

    @model_validator(mode="after")
    def _http_alias(self) -> Settings:
        """Read the deprecated ``http:`` section into ``applayer`` (explicit ``applayer`` keys win)."""
        old = self.http
        if old is None:
            return self
        if not _warned["http"]:
            _warned["http"] = True
            log.warning("settings: the 'http:' section is deprecated; use 'applayer:' (see docs/configuration.md)")
        given = self.applayer.model_fields_set
        for key in old.model_fields_set:
            value = getattr(old, key)
            if value is None:
                continue
            targets = self.applayer.limits() if key == "body_limit" else {"http": self.applayer.http}
            for name, section in targets.items():
                if name not in given or key not in section.model_fields_set:
                    setattr(section, key, value)
        self.http = None
        return self


class SettingsError(ValueError):
    """A settings file that cannot be used; the message says where and why."""


def load_settings(path: str | Path | None) -> Settings:
    """Read and validate a settings file (None → defaults)."""
    if path is None:
        return Settings()
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise SettingsError(f"{p}: cannot read: {exc.strerror or exc}") from exc
    import yaml  # only when there is a file: start-up of `tapsift read` without --config skips it

    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        raise SettingsError(f"{p}{where}: invalid YAML: {getattr(exc, 'problem', exc)}") from exc
    if not isinstance(raw, dict):
        raise SettingsError(f"{p}: the top level must be a mapping")
    try:
        return Settings.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(x) for x in err["loc"])
        raise SettingsError(f"{p}: {loc}: {err['msg']}") from exc
