"""What the behaviour stage measures: one `Observation` per content object, summed into windows.

An object becomes an observation of the *internal* end of its session (the client when it is
internal, else the server of an inbound session): bytes and objects up (leaving the host) and
down by content class, the destination (HTTP host or peer address) with its category and zone,
the user-agent family, and the findings and alerts the object raised. Extracted children are not
observed (their bytes are their parent's). Everything here is pure and bounded: a window keeps
at most `MAX_WINDOW_DESTS` destinations and one set of minutes.

`FEATURES` is the window vector every detector reads; its order is the order of the stored
baselines (append only: the state file's baselines are indexed by position).
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from appliance.model import Alert, ContentObject, Direction, Finding

CLASSES: tuple[str, ...] = ("document", "image", "archive", "text", "media", "other")
"""Content classes, from the sniffed (else declared) MIME type, else the file name."""

_DOC_MIMES = frozenset({
    "application/pdf", "application/msword", "application/rtf", "text/rtf", "text/csv",
    "application/vnd.ms-excel", "application/vnd.ms-powerpoint", "application/x-ole-storage",
    "application/vnd.ms-outlook", "message/rfc822", "application/x-hwp",
})
_ARCHIVE_MIMES = frozenset({
    "application/zip", "application/x-zip-compressed", "application/x-7z-compressed",
    "application/x-rar", "application/x-rar-compressed", "application/vnd.rar", "application/gzip",
    "application/x-gzip", "application/x-tar", "application/x-bzip2", "application/x-xz",
    "application/zstd", "application/x-zstd", "application/x-git-pack", "application/java-archive",
    "application/x-iso9660-image", "application/vnd.ms-cab-compressed",
})
_TEXT_MIMES = frozenset({
    "application/json", "application/xml", "application/javascript", "application/x-javascript",
    "application/x-www-form-urlencoded", "application/xhtml+xml", "application/ld+json",
})
_EXT_CLASS = {
    **dict.fromkeys(("pdf", "doc", "docx", "xls", "xlsx", "ppt", "pptx", "odt", "ods", "odp", "rtf", "csv",
                     "hwp", "wps", "pages", "key", "numbers", "eml", "msg"), 0),
    **dict.fromkeys(("jpg", "jpeg", "png", "gif", "bmp", "webp", "tif", "tiff", "heic", "svg"), 1),
    **dict.fromkeys(("zip", "7z", "rar", "gz", "tgz", "tar", "bz2", "xz", "zst", "cab", "iso", "jar"), 2),
    **dict.fromkeys(("txt", "html", "htm", "json", "xml", "js", "css", "md", "log"), 3),
    **dict.fromkeys(("mp3", "wav", "ogg", "flac", "m4a", "mp4", "mkv", "avi", "mov", "webm", "wmv"), 4),
}


_CLASS_CACHE: dict[tuple[str, str], int] = {}
_UA_CACHE: dict[str, str] = {}
_CACHE_MAX = 4096


def content_class(mime: str, filename: str = "") -> int:
    """Index into `CLASSES` for a MIME type (parameters ignored), else the file extension."""
    ext = filename.rsplit(".", 1)[-1].lower()[:16] if "." in filename else ""
    key = (mime, ext)
    hit = _CLASS_CACHE.get(key)
    if hit is None:
        hit = _content_class(mime[:256], ext)
        if len(_CLASS_CACHE) >= _CACHE_MAX:
            _CLASS_CACHE.clear()
        _CLASS_CACHE[key] = hit
    return hit


def _content_class(mime: str, ext: str) -> int:
    m = mime.split(";", 1)[0].strip().lower()
    if m:
        if m in _DOC_MIMES or m.startswith(("application/vnd.openxmlformats-officedocument.",
                                             "application/vnd.oasis.opendocument.", "application/vnd.ms-")):
            return 0
        if m.startswith("image/"):
            return 1
        if m in _ARCHIVE_MIMES:
            return 0 if _EXT_CLASS.get(ext) == 0 else 2  # a DOCX sniffed as a bare ZIP
        if m.startswith(("text/", "message/")) or m in _TEXT_MIMES:
            return 3
        if m.startswith(("audio/", "video/")):
            return 4
    return _EXT_CLASS.get(ext, 5) if ext else 5


UA_FAMILIES: tuple[str, ...] = (
    "none", "edge", "opera", "chrome", "firefox", "safari", "msie", "curl", "wget", "python", "powershell",
    "go", "java", "git", "updater", "electron", "other",
)
_UA_RULES: tuple[tuple[str, str], ...] = (
    ("edg/", "edge"), ("opr/", "opera"), ("electron/", "electron"), ("chrome/", "chrome"),
    ("firefox/", "firefox"), ("msie ", "msie"), ("trident/", "msie"), ("curl/", "curl"), ("wget/", "wget"),
    ("python-", "python"), ("python/", "python"), ("aiohttp", "python"), ("httpx", "python"),
    ("powershell", "powershell"), ("go-http-client", "go"), ("okhttp", "java"), ("java/", "java"),
    ("git/", "git"), ("delivery-optimization", "updater"), ("windows-update", "updater"),
    ("safari/", "safari"),
)


def ua_family(user_agent: str) -> str:
    """A small, fixed vocabulary of user-agent families (`UA_FAMILIES`)."""
    if not user_agent:
        return "none"
    hit = _UA_CACHE.get(user_agent)
    if hit is None:
        hit = "other"
        ua = user_agent[:512].lower()
        for needle, family in _UA_RULES:
            if needle in ua:
                hit = family
                break
        if len(_UA_CACHE) >= _CACHE_MAX:
            _UA_CACHE.clear()
        _UA_CACHE[user_agent] = hit
    return hit


def dest_key(host: str, ip: str) -> str:
    """The destination of a transfer: the HTTP host (lower case, no port), else the peer address."""
    h = host.strip().lower().rstrip(".")
    if h:
        if h.startswith("["):  # [v6]:port
            h = h[1:].split("]", 1)[0]
        elif h.count(":") == 1:
            h = h.split(":", 1)[0]
        return h[:253] or ip
    return ip


_SECOND_LEVEL = frozenset({"co", "com", "net", "org", "gov", "edu", "ac", "or", "ne", "go"})


def site_of(dest: str) -> str:
    """The site a destination belongs to: its registrable domain by a simple rule (the last two
    labels, three under ``co.uk``-style second levels), an address as it is. A vendor's
    ``telemetry-3.vendor.io`` and ``telemetry-5.vendor.io`` are one site."""
    if not dest or dest[-1].isdigit() or ":" in dest:
        return dest
    labels = dest.split(".")
    if len(labels) <= 2:
        return dest
    k = 3 if len(labels[-1]) == 2 and labels[-2] in _SECOND_LEVEL else 2
    return ".".join(labels[-k:])


def dest_hash(dest: str) -> int:
    """A stable 63-bit hash of a destination (stored in the state file, so not Python's hash)."""
    return int.from_bytes(hashlib.blake2b(dest.encode("utf-8", "replace"), digest_size=8).digest(), "big") >> 1


class DomainCategories:
    """Destination → category by the longest matching domain suffix (``a.b.example.com`` matches
    an entry ``example.com``); addresses and unknown names give ``""``.

    The mapping is injected: the policy's domain lists, a vendor feed, or a test's dict."""

    def __init__(self, mapping: Mapping[str, str] | None = None) -> None:
        self.mapping = {k.strip().lower().rstrip("."): v for k, v in (mapping or {}).items() if k}
        self._cache: dict[str, str] = {}

    def __call__(self, dest: str) -> str:
        hit = self._cache.get(dest)
        if hit is not None:
            return hit
        cat = ""
        name = dest
        while name:
            cat = self.mapping.get(name, "")
            if cat:
                break
            _, dot, name = name.partition(".")
            if not dot:
                break
        if len(self._cache) > 65536:
            self._cache.clear()
        self._cache[dest] = cat
        return cat


class Internal:
    """Which endpoints are internal: in a configured CIDR, or in a named policy zone (all named
    zones, or only ``zones`` when given). Results are cached (bounded)."""

    def __init__(self, cidrs: Iterable[str] = (), zones: Iterable[str] | None = None) -> None:
        self.nets = tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)
        self.zones = frozenset(zones) if zones is not None else None
        self._cache: dict[str, bool] = {}

    def __call__(self, ip: str, zone: str) -> bool:
        if zone and zone != "any" and (self.zones is None or zone in self.zones):
            return True
        hit = self._cache.get(ip)
        if hit is None:
            try:
                a = ipaddress.ip_address(ip.split("%", 1)[0])
                if a.version == 6 and a.ipv4_mapped is not None:
                    a = a.ipv4_mapped
                hit = any(a in n for n in self.nets)
            except ValueError:
                hit = False
            if len(self._cache) > 65536:
                self._cache.clear()
            self._cache[ip] = hit
        return hit


# --------------------------------------------------------------------------- the window vector


@dataclass(frozen=True, slots=True)
class Feature:
    """One element of the window vector."""

    name: str
    label: str
    """How the explanation names it."""
    unit: float
    """Values are compared as ``log1p(value / unit)``."""
    bytes: bool = False
    seasonal: bool = False
    """Kept in the hour-of-week baseline (the z-score detector looks at it)."""
    alerting: bool = False
    """A deviation can raise an anomaly on its own; others only explain one."""
    offhours: bool = False
    """Raises only when the entity and its peers are usually idle at this hour (any activity is
    unusual then; in working hours a single large upload is compared by `up_bytes_trimmed`)."""
    minimum: float = 0.0
    """Below this value a deviation is not worth an alert (natural units)."""
    floor: float = 1.0
    """Smallest scale (log units) the robust z divides by."""
    upload: bool = False


def _f(name: str, label: str, unit: float, **kw: object) -> Feature:
    return Feature(name, label, unit, **kw)  # type: ignore[arg-type]


KiB = 1024
MiB = 1024 * 1024


def _features() -> tuple[Feature, ...]:
    up = {"bytes": True, "upload": True, "minimum": 2 * MiB}
    out = [
        _f("up_bytes", "bytes up", 16 * KiB, seasonal=True, offhours=True, **{**up, "minimum": 256 * KiB}),
        _f("up_objects", "objects up", 1, seasonal=True, alerting=True, minimum=20, upload=True),
        _f("down_bytes", "bytes down", 16 * KiB, bytes=True, seasonal=True),
        _f("down_objects", "objects down", 1, seasonal=True),
    ]
    for c in CLASSES:
        doc = c == "document"
        out.append(_f(f"up_bytes_{c}", f"{c} bytes up", 16 * KiB, seasonal=doc, alerting=doc, **up))
    for c in CLASSES:
        doc = c == "document"
        out.append(_f(f"up_objects_{c}", f"{c}s up", 1, seasonal=doc, alerting=doc, minimum=10, upload=True))
    for c in CLASSES:
        out.append(_f(f"down_bytes_{c}", f"{c} bytes down", 16 * KiB, bytes=True))
    for c in CLASSES:
        out.append(_f(f"down_objects_{c}", f"{c}s down", 1))
    out += [
        _f("up_destinations", "upload destinations", 1, seasonal=True, alerting=True, minimum=8, upload=True),
        _f("new_destinations", "new destinations", 1, seasonal=True),
        _f("new_dest_up_bytes", "bytes up to new destinations", 16 * KiB, seasonal=True, **up),
        _f("top_dest_up_bytes", "bytes up to the busiest destination", 16 * KiB, seasonal=True, **up),
        _f("risky_up_bytes", "bytes up to risky categories", 16 * KiB, seasonal=True, alerting=True, **up),
        _f("uncategorised_up_bytes", "bytes up to uncategorised destinations", 16 * KiB, **up),
        _f("dataclass_hits", "data-class hits", 1, seasonal=True, alerting=True, minimum=10),
        _f("keyword_hits", "keyword hits", 1, seasonal=True, alerting=True, minimum=10),
        _f("other_findings", "other findings", 1),
        _f("alerts", "alerts", 1, seasonal=True, alerting=True, minimum=3),
        _f("active_minutes", "active minutes", 1, seasonal=True, offhours=True, minimum=10, floor=0.5),
        _f("upload_minutes", "minutes with uploads", 1, seasonal=True, offhours=True, minimum=5, floor=0.5,
           upload=True),
        _f("active_hosts", "active hosts", 1, seasonal=True),
        _f("largest_upload", "largest object up", 16 * KiB, **up),
        _f("up_bytes_trimmed", "bytes up besides the largest object", 16 * KiB, seasonal=True, alerting=True,
           **up),
    ]
    return tuple(out)


FEATURES: tuple[Feature, ...] = _features()
F = len(FEATURES)
INDEX: dict[str, int] = {f.name: i for i, f in enumerate(FEATURES)}
SEASONAL: tuple[int, ...] = tuple(i for i, f in enumerate(FEATURES) if f.seasonal)
"""Positions of the features kept in the hour-of-week baseline."""

I_UP_BYTES, I_UP_OBJ, I_DOWN_BYTES, I_DOWN_OBJ = 0, 1, 2, 3
I_UP_CLASS_BYTES = 4
I_UP_CLASS_OBJ = 4 + len(CLASSES)
I_DOWN_CLASS_BYTES = 4 + 2 * len(CLASSES)
I_DOWN_CLASS_OBJ = 4 + 3 * len(CLASSES)
I_UP_DESTS = INDEX["up_destinations"]
I_NEW_DESTS = INDEX["new_destinations"]
I_NEW_DEST_UP = INDEX["new_dest_up_bytes"]
I_TOP_DEST_UP = INDEX["top_dest_up_bytes"]
I_RISKY_UP = INDEX["risky_up_bytes"]
I_UNCAT_UP = INDEX["uncategorised_up_bytes"]
I_DATACLASS = INDEX["dataclass_hits"]
I_KEYWORD = INDEX["keyword_hits"]
I_OTHER_FINDINGS = INDEX["other_findings"]
I_ALERTS = INDEX["alerts"]
I_ACTIVE_MIN = INDEX["active_minutes"]
I_UPLOAD_MIN = INDEX["upload_minutes"]
I_ACTIVE_HOSTS = INDEX["active_hosts"]
I_LARGEST_UP = INDEX["largest_upload"]
I_UP_TRIMMED = INDEX["up_bytes_trimmed"]

ACTIVE_MINUTES = 10
"""A host with at least this many active minutes in a window counts as active (interactive use;
a machine left on that checks for updates once an hour does not)."""

MAX_WINDOW_DESTS = 64
"""Destinations tracked by name per window and entity; the rest are summed together."""
MAX_WINDOW_LOOKUPS = 512
"""Destinations whose look-ups are remembered per window and host (a scan of thousands of
destinations is looked up object by object beyond this)."""


class Observation(NamedTuple):
    """One content object as the behaviour stage sees it (small and picklable: a capture worker
    can send it to the process that runs the stage)."""

    ts_ns: int
    host: str
    """The internal endpoint's address."""
    zone: str
    dest: str
    dst_zone: str
    upload: bool
    """Bytes leaving the host."""
    cls: int
    size: int
    ua: str
    dataclass_hits: int = 0
    keyword_hits: int = 0
    other_findings: int = 0
    alerts: int = 0
    proto: str = ""


def _matches(f: Finding) -> int:
    c = f.detail.get("count") if f.detail else None
    if c is not None:
        try:
            return max(1, int(c))
        except (TypeError, ValueError):
            pass
    return max(1, len(f.evidence))


def observation(obj: ContentObject, findings: Sequence[Finding], alerts: Sequence[Alert],
                internal: Callable[[str, str], bool]) -> Observation | None:
    """The observation for a top-level object, or None (a child, no flow, or no internal end)."""
    flow = obj.flow
    if flow is None or obj.depth > 0 or obj.parent_id:
        return None
    to_server = obj.direction == Direction.TO_SERVER
    client, server = (flow.src_ip, flow.dest_ip) if to_server else (flow.dest_ip, flow.src_ip)
    if internal(client, flow.src_zone):
        host, zone, peer, peer_zone, upload = client, flow.src_zone, server, flow.dst_zone, to_server
        dest = dest_key(obj.host, peer)
    elif internal(server, flow.dst_zone):
        host, zone, peer, peer_zone, upload = server, flow.dst_zone, client, flow.src_zone, not to_server
        dest = peer
    else:
        return None
    dc = kw = other = 0
    for f in findings:
        if f.inspector == "dataclass":
            dc += _matches(f)
        elif f.inspector == "keyword":
            kw += _matches(f)
        else:
            other += 1
    size = max(0, obj.size)
    return Observation(obj.ts_ns, host, zone or "any", dest, peer_zone or "any", upload,
                       content_class(obj.sniffed_mime or obj.declared_mime, obj.filename), size,
                       ua_family(obj.user_agent), dc, kw, other, len(alerts), obj.source)


class Window:
    """One entity's sums over one window (plain Python numbers: cheap to update per object)."""

    __slots__ = ("dest_bytes", "dest_max", "dests", "minutes", "new_up", "top", "up_minutes", "v")

    def __init__(self) -> None:
        self.v: list[float] = [0.0] * F
        self.dest_bytes: dict[str, float] = {}
        """Upload bytes per destination (at most `MAX_WINDOW_DESTS`, then ``""`` for the rest)."""
        self.dest_max: dict[str, float] = {}
        """The largest object up per destination (same keys)."""
        self.minutes: set[int] = set()
        self.up_minutes: set[int] = set()
        self.new_up: dict[str, int] = {}
        """Destinations first uploaded to in this window → objects sent there (all their bytes
        here count as new)."""
        self.dests: dict[str, list] = {}
        self.top: list[float] | None = None
        """For a zone: the largest member value of each feature (`without_top`)."""
        """What the stage worked out about a destination at its first object in this window
        (hash, category flags, upload checked), so it is looked up once per window, not per object
        (at most `MAX_WINDOW_LOOKUPS`)."""

    def add(self, o: Observation, risky: bool, uncategorised: bool) -> None:
        v = self.v
        size = o.size
        minute = o.ts_ns // 60_000_000_000
        self.minutes.add(minute)
        if o.upload:
            v[I_UP_BYTES] += size
            v[I_UP_OBJ] += 1
            v[I_UP_CLASS_BYTES + o.cls] += size
            v[I_UP_CLASS_OBJ + o.cls] += 1
            if size > v[I_LARGEST_UP]:
                v[I_LARGEST_UP] = size
            self.up_minutes.add(minute)
            db = self.dest_bytes
            key = o.dest if (o.dest in db or len(db) < MAX_WINDOW_DESTS) else ""
            db[key] = db.get(key, 0.0) + size
            dm = self.dest_max
            if size > dm.get(key, 0.0):
                dm[key] = size
            nu = self.new_up
            if o.dest in nu:
                v[I_NEW_DEST_UP] += size
                nu[o.dest] += 1
            if risky:
                v[I_RISKY_UP] += size
            if uncategorised:
                v[I_UNCAT_UP] += size
        else:
            v[I_DOWN_BYTES] += size
            v[I_DOWN_OBJ] += 1
            v[I_DOWN_CLASS_BYTES + o.cls] += size
            v[I_DOWN_CLASS_OBJ + o.cls] += 1
        if o.dataclass_hits or o.keyword_hits or o.other_findings or o.alerts:
            v[I_DATACLASS] += o.dataclass_hits
            v[I_KEYWORD] += o.keyword_hits
            v[I_OTHER_FINDINGS] += o.other_findings
            v[I_ALERTS] += o.alerts

    def merge(self, other: Window) -> None:
        """Add a member's window (zone and user-agent entities are sums of hosts)."""
        v, w = self.v, other.v
        top = self.top
        if top is None:
            top = self.top = [0.0] * F
        for i in range(F):
            v[i] += w[i]
            if w[i] > top[i]:
                top[i] = w[i]
        v[I_LARGEST_UP] = top[I_LARGEST_UP]
        db = self.dest_bytes
        for d, b in other.dest_bytes.items():
            key = d if (d in db or len(db) < MAX_WINDOW_DESTS) else ""
            db[key] = db.get(key, 0.0) + b

    def finish(self) -> list[float]:
        """The final vector: distinct counts filled in."""
        v = self.v
        if self.minutes:
            v[I_ACTIVE_MIN] = float(len(self.minutes))
            v[I_UPLOAD_MIN] = float(len(self.up_minutes))
            v[I_ACTIVE_HOSTS] = 1.0 if len(self.minutes) >= ACTIVE_MINUTES else 0.0
        v[I_UP_TRIMMED] = max(0.0, v[I_UP_BYTES] - v[I_LARGEST_UP])
        if self.dest_bytes:
            v[I_UP_DESTS] = float(len(self.dest_bytes))
            v[I_TOP_DEST_UP] = max(b for d, b in self.dest_bytes.items() if d) if any(self.dest_bytes) else 0.0
        return v

    def without_top(self) -> list[float]:
        """The finished vector less its largest member's share, feature by feature: what the rest
        of a zone did (a zone anomaly must be wider than one host, which its own detectors cover)."""
        if self.top is None:
            return list(self.v)
        return [max(0.0, a - b) for a, b in zip(self.v, self.top, strict=True)]

    @property
    def empty(self) -> bool:
        return not self.minutes and not any(self.v)

    def top_dest(self) -> str:
        """The destination that received most upload bytes in the window (``""`` if none)."""
        named = [(b, d) for d, b in self.dest_bytes.items() if d]
        return max(named)[1] if named else ""
