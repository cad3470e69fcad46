"""A labelled month of office traffic, as transfers a sensor would see (for bench/anomaly_bench.py).

Generated, seeded and fixed before the detectors were tuned: `PARAMS` and the two seeds
(`TUNE_SEED` for tuning, `VALIDATE_SEED` held out) are part of the benchmark, not knobs.

The world: a site in Europe/Berlin (the month crosses the DST change and the Easter holidays),
four zones (two offices, engineering, a server subnet), ~300 internal hosts with their own
rhythm (start/end of day, lunch dip, activity level, evenings and weekends for some, sick days,
vacations), new hires arriving during the month, and a catalogue of external destinations with
categories (web, saas, cloud-storage, file-sharing, paste, webmail, social, cdn, update, chat,
code-hosting; a fifth of the web is uncategorised).

Normal traffic that a naive detector would flag, on purpose:
- heavy-tailed sizes (a single 30 MB upload is legitimate now and then), browsing to new sites;
- occasional legitimate document uploads to a never-seen, uncategorised site;
- a zone (office-b) adopting a new SaaS mid-month (a new destination for ~100 hosts);
- drift: a tenth of the hosts upload more and more over the month; three hosts change role
  (a step up in uploads, to a new cloud-storage destination);
- periodic traffic: chat presence posts every 5 min from every workstation, servers' monitoring
  every 60 s and a licence heartbeat every 10 min, and three hosts that install an app posting
  telemetry every 5 min mid-month (a legitimate new "beacon");
- machines left on overnight (update checks, telemetry), nightly server backups of gigabytes,
  large update downloads at night, engineers working odd hours.

Injected anomalies (each with its subject and the time span it covers):
- ``bulk``: 20-60x the host's median daily upload volume in 1-3 hours (documents or archives);
- ``slow``: +2-4x the host's median daily upload volume per working day for 3-6 days, spread
  over working hours to one destination (each hour stays within normal hourly variation);
- ``newdest``: 1-6 documents/archives posted to a destination the host never used (paste,
  file-sharing, webmail, or an uncategorised site);
- ``offhours``: a normal hour's activity (browsing, uploads) in the middle of the night or on a
  weekend, by a host that is never active then;
- ``beacon``: small uploads every 30 s-10 min (jitter up to 15 %) to a new, uncategorised
  destination for 2-12 hours;
- ``zoneburst``: a quarter to half of a zone's hosts upload documents with data-class findings
  within 1-2 hours (subject: the zone).

Nothing here imports tapsift: the bench turns `Transfer`s into content objects.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import NamedTuple
from zoneinfo import ZoneInfo

TUNE_SEED = 1
"""The seed the detectors were tuned on."""
VALIDATE_SEED = 2
"""A seed never looked at while tuning."""


@dataclass(frozen=True)
class Params:
    """The benchmark's fixed parameters."""

    start: str = "2024-03-04"
    """A Monday; 30 days cover the DST change (31 March) and Good Friday / Easter Monday."""
    days: int = 30
    timezone: str = "Europe/Berlin"
    holidays: tuple[str, ...] = ("2024-03-29", "2024-04-01")
    zones: tuple[tuple[str, str, int, str], ...] = (
        ("office-a", "10.10", 130, "office"),
        ("office-b", "10.20", 100, "office"),
        ("eng", "10.30", 50, "engineer"),
        ("servers", "10.90", 12, "server"),
    )
    new_hires: int = 8
    nightowl_share: float = 0.06
    left_on_share: float = 0.3
    trend_share: float = 0.1
    role_changes: int = 3
    new_app_hosts: int = 3
    widget_hosts: int = 4
    legit_newdest_doc_p: float = 0.006
    """Chance that a document upload goes to a never-seen, uncategorised site."""
    anomalies: tuple[tuple[str, int], ...] = (
        ("bulk", 16), ("slow", 12), ("newdest", 16), ("offhours", 12), ("beacon", 12), ("zoneburst", 4),
    )
    first_anomaly_day: int = 10
    """Anomalies start after this many days (warm-up of the baselines)."""


PARAMS = Params()

KB = 1024
MB = 1024 * 1024


class Transfer(NamedTuple):
    """One content object as the sensor would report it."""

    ts_ns: int
    client: str
    """Internal host address (the side that opened the connection)."""
    server: str
    upload: bool
    """True: client → server (request body); False: a download."""
    mime: str
    size: int
    domain: str
    user_agent: str
    dataclass_hits: int = 0
    keyword_hits: int = 0


@dataclass(frozen=True)
class Truth:
    """An injected anomaly: its kind, subject (host address or zone name) and time span."""

    kind: str
    subject: str
    zone: str
    start_ns: int
    end_ns: int
    participants: tuple[str, ...] = ()
    """For a zone burst: the hosts that took part (alerts naming them are not false)."""
    note: str = ""


@dataclass
class Host:
    ip: str
    zone: str
    persona: str
    first_day: int
    activity: float
    start_h: float
    end_h: float
    up_rate: float
    doc_scale: float
    browse: list[str]
    up_dests: list[str]
    left_on: bool
    ua: str
    late_p: float
    weekend_p: float
    absent: set[int] = field(default_factory=set)
    trend: float = 1.0
    role_day: int | None = None
    role_dest: str = ""
    app_day: int | None = None
    app_dest: str = ""
    widget_day: int | None = None
    widget_dest: str = ""
    saas_day: int | None = None


@dataclass
class World:
    params: Params
    seed: int
    tz: ZoneInfo
    hosts: list[Host]
    categories: dict[str, str]
    """Domain → category for the categorised part of the catalogue (the injected mapping)."""
    server_ip: dict[str, str]
    truth: list[Truth]
    day0: datetime
    internal_cidrs: tuple[str, ...]
    zone_cidrs: dict[str, str]
    _extra: dict[int, list[Transfer]] = field(default_factory=dict)
    _hours: dict[tuple[int, int], float] = field(default_factory=dict)

    @property
    def start_ns(self) -> int:
        return int(self.day0.timestamp()) * 1_000_000_000

    @property
    def end_ns(self) -> int:
        return int((self.day0 + timedelta(days=self.params.days)).timestamp()) * 1_000_000_000

    def transfers(self) -> Iterator[Transfer]:
        """Every transfer of the month in time order (generated a day at a time)."""
        for day in range(self.params.days):
            rng = random.Random(f"{self.seed}/day/{day}")
            batch = list(self._extra.pop(day, []))
            for h in self.hosts:
                batch.extend(_host_day(self, h, day, rng))
            batch.sort()
            yield from batch


# --------------------------------------------------------------------------- catalogue

UAS = {
    "firefox": "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:124.0) Gecko/20100101 Firefox/124.0",
    "chrome": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/123.0.0.0 Safari/537.36",
    "edge": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/123.0.0.0 Safari/537.36 Edg/123.0.2420.65",
    "curl": "curl/8.5.0",
    "python": "python-requests/2.31.0",
    "git": "git/2.44.0",
    "backup": "restic/0.16.4",
    "agent": "node_exporter-push/1.7",
    "updater": "Microsoft-Delivery-Optimization/10.0",
    "app": "Electron/29.1.0 TelemetryClient",
    "beacon": "Mozilla/4.0 (compatible; MSIE 7.0; Windows NT 6.1)",
}

DOC_MIMES = (
    ("application/pdf", ".pdf"),
    ("application/vnd.openxmlformats-officedocument.wordprocessingml.document", ".docx"),
    ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", ".xlsx"),
)


def _catalogue(rng: random.Random) -> tuple[dict[str, str], dict[str, list[str]]]:
    """(domain → category for the categorised ones, category → domains)."""
    by_cat: dict[str, list[str]] = {}

    def add(cat: str, n: int, stem: str, tld: str = "com") -> None:
        by_cat.setdefault(cat, []).extend(f"{stem}{i}.{tld}" for i in range(n))

    add("web", 900, "site", "net")
    add("saas", 18, "workapp")
    add("cloud-storage", 6, "drive")
    add("file-sharing", 6, "sendfile")
    add("paste", 4, "pastebin")
    add("webmail", 4, "mail")
    add("social", 8, "social")
    add("cdn", 30, "cdn")
    add("update", 4, "update")
    add("chat", 1, "chat")
    add("code-hosting", 2, "code")
    by_cat["saas-new"] = ["newsuite.com"]
    by_cat["monitoring"] = ["monitor.corp"]
    by_cat["licence"] = ["licence-vendor.com"]
    cats: dict[str, str] = {}
    for cat, domains in by_cat.items():
        for d in domains:
            if cat == "web" and rng.random() < 0.2:
                continue  # uncategorised
            cats[d] = {"saas-new": "saas", "monitoring": "internal", "licence": "business"}.get(cat, cat)
    return cats, by_cat


def _server_ip(domain: str) -> str:
    if domain.endswith(".corp"):
        return "10.90.0.5"
    h = sum((i + 1) * ord(c) for i, c in enumerate(domain))
    return f"{(h % 3) * 40 + 100}.{(h >> 2) % 250 + 1}.{(h >> 5) % 250 + 1}.{h % 250 + 2}"


# --------------------------------------------------------------------------- world


def build(seed: int, params: Params = PARAMS) -> World:
    """The world for ``seed``: hosts, catalogue, injected anomalies (transfers come lazily)."""
    rng = random.Random(f"{seed}/world")
    tz = ZoneInfo(params.timezone)
    y, m, d = (int(x) for x in params.start.split("-"))
    day0 = datetime(y, m, d, tzinfo=tz)
    categories, by_cat = _catalogue(rng)
    web = by_cat["web"]
    hosts: list[Host] = []
    zone_cidrs = {}
    for zone, prefix, count, persona in params.zones:
        zone_cidrs[zone] = f"{prefix}.0.0/16"
        for i in range(count):
            hosts.append(_host(rng, params, f"{prefix}.{1 + i // 200}.{10 + i % 200}", zone, persona, 0, by_cat, web))
    offices = [z for z, _, _, p in params.zones if p == "office"]
    for i in range(params.new_hires):
        zone = offices[i % len(offices)]
        prefix = next(p for z, p, _, _ in params.zones if z == zone)
        hosts.append(_host(rng, params, f"{prefix}.5.{10 + i}", zone, "office", 6 + 2 * i, by_cat, web))
    w = World(params, seed, tz, hosts, categories, {}, [], day0, ("10.0.0.0/8",), zone_cidrs)
    _habits(w, rng, by_cat)
    _inject(w, rng, by_cat)
    doms = {d for ds in by_cat.values() for d in ds} | {t for h in hosts for t in (h.app_dest, h.widget_dest) if t}
    doms |= {tr.domain for ts in w._extra.values() for tr in ts}
    w.server_ip = {dom: _server_ip(dom) for dom in doms}
    return w


def _host(rng: random.Random, p: Params, ip: str, zone: str, persona: str, first_day: int,
          by_cat: dict[str, list[str]], web: list[str]) -> Host:
    nightowl = persona == "office" and rng.random() < p.nightowl_share
    start = rng.gauss(8.3, 0.6) if persona != "engineer" else rng.gauss(9.5, 0.9)
    length = rng.gauss(8.8, 0.7)
    browse = [web[min(len(web) - 1, int(rng.paretovariate(0.9)) * 7 + rng.randrange(7))] for _ in range(40)]
    browse += rng.sample(by_cat["social"], 2) + rng.sample(by_cat["cdn"], 4)
    up_dests = rng.sample(by_cat["saas"], 3)
    if rng.random() < 0.35:
        up_dests.append(rng.choice(by_cat["cloud-storage"]))
    if persona == "engineer":
        up_dests.append(rng.choice(by_cat["code-hosting"]))
    ua = rng.choice(("firefox", "chrome", "chrome", "edge"))
    return Host(
        ip=ip, zone=zone, persona="nightowl" if nightowl else persona, first_day=first_day,
        activity=math.exp(rng.gauss(0, 0.35)), start_h=start, end_h=start + length,
        up_rate=math.exp(rng.gauss(math.log(1.2 if persona != "engineer" else 2.0), 0.4)),
        doc_scale=math.exp(rng.gauss(math.log(350 * KB), 0.5)),
        browse=browse, up_dests=up_dests, left_on=rng.random() < p.left_on_share or persona == "server",
        ua=ua, late_p={"office": 0.04, "engineer": 0.12}.get(persona, 0.0) if not nightowl else 0.35,
        weekend_p={"office": 0.02, "engineer": 0.08}.get(persona, 0.0),
    )


def _habits(w: World, rng: random.Random, by_cat: dict[str, list[str]]) -> None:
    """Absences, drift, role changes, new apps, the office-b SaaS adoption."""
    p = w.params
    workers = [h for h in w.hosts if h.persona != "server"]
    for h in workers:
        for _ in range(rng.choice((0, 0, 1, 1, 2))):
            h.absent.add(rng.randrange(p.days))
        if rng.random() < 0.15:
            first = rng.randrange(p.days - 5)
            h.absent.update(range(first, first + 7))
        if rng.random() < p.trend_share:
            h.trend = rng.uniform(2.0, 3.0)
        if h.zone == "office-b":
            h.saas_day = int(rng.gauss(15, 2))
    pool = [h for h in workers if h.first_day == 0]
    picks = rng.sample(pool, p.role_changes + p.new_app_hosts + p.widget_hosts)
    for i, h in enumerate(picks):
        if i < p.role_changes:
            h.role_day = rng.randrange(12, 21)
            h.role_dest = rng.choice(by_cat["cloud-storage"])
        elif i < p.role_changes + p.new_app_hosts:
            h.app_day = rng.randrange(10, 21)
            h.app_dest = f"telemetry-{i}.app-vendor.io"
        else:
            h.widget_day = rng.randrange(10, 21)
            h.widget_dest = f"widget-{i}.weather-feed.net"


# --------------------------------------------------------------------------- one host, one day


def _hour_ts(w: World, day: int, hour: float) -> int:
    """Local ``hour`` (fractional) of ``day`` as UTC nanoseconds."""
    h = min(int(hour), 23)
    key = (day, h)
    base = w._hours.get(key)
    if base is None:
        d = w.day0 + timedelta(days=day)
        base = w._hours[key] = datetime(d.year, d.month, d.day, h, tzinfo=w.tz).timestamp()
    return int((base + (hour - h) * 3600) * 1e9)


def _is_holiday(w: World, day: int) -> bool:
    return (w.day0 + timedelta(days=day)).strftime("%Y-%m-%d") in w.params.holidays


def _weekend(w: World, day: int) -> bool:
    return (w.day0 + timedelta(days=day)).weekday() >= 5


def _lognormal(rng: random.Random, median: float, sigma: float) -> int:
    return max(64, int(median * math.exp(rng.gauss(0, sigma))))


def _sessions(w: World, h: Host, day: int, rng: random.Random) -> list[tuple[float, float]]:
    """The host's active periods on ``day`` as (start hour, end hour), local time."""
    if day < h.first_day or day in h.absent:
        return []
    off = _weekend(w, day) or _is_holiday(w, day)
    if h.persona == "server":
        return [(0.0, 24.0)]
    if off:
        if rng.random() < h.weekend_p:
            s = rng.uniform(10, 16)
            return [(s, s + rng.uniform(1, 3))]
        return []
    start = h.start_h + rng.gauss(0, 0.3)
    end = h.end_h + rng.gauss(0, 0.4)
    out = [(start, end)]
    if rng.random() < h.late_p:
        s = rng.uniform(19.0, 21.0)
        out.append((s, min(23.5, s + rng.uniform(0.5, 2.0 if h.persona != "nightowl" else 2.5))))
    return out


def _host_day(w: World, h: Host, day: int, rng: random.Random) -> list[Transfer]:
    out: list[Transfer] = []
    ua = UAS[h.ua]
    for s, e in _sessions(w, h, day, rng):
        if h.persona == "server":
            out += _server_day(w, h, day, rng)
            continue
        t = s
        while t < e:
            lunch = 0.5 if 12.0 <= t < 13.0 else 1.0
            ramp = min(1.0, (t - s) / 0.5 + 0.3, (e - t) / 0.5 + 0.3)
            _active_hour(w, h, day, t, min(e, t + 1.0), h.activity * lunch * ramp, rng, ua, out)
            t += 1.0
    if h.left_on and h.persona != "server" and day >= h.first_day:
        _night(w, h, day, rng, out)
    return out


def _uploads_scale(h: Host, day: int, days: int) -> float:
    scale = 1.0 + (h.trend - 1.0) * day / days
    if h.role_day is not None and day >= h.role_day:
        scale *= 4.0
    return scale


def _active_hour(w: World, h: Host, day: int, t0: float, t1: float, lam: float, rng: random.Random, ua: str,
                 out: list[Transfer]) -> None:
    def at() -> int:
        return _hour_ts(w, day, rng.uniform(t0, t1))

    for _ in range(_poisson(rng, 10 * lam)):  # page visits
        dom = rng.choice(h.browse) if rng.random() > 0.12 else f"site{rng.randrange(900)}.net"
        ts = at()
        out.append(Transfer(ts, h.ip, dom, False, "text/html", _lognormal(rng, 60 * KB, 0.8), dom, ua))
        if rng.random() < 0.7:
            cdn = h.browse[-1]  # the last four are the host's CDNs
            out.append(Transfer(ts + 200_000_000, h.ip, cdn, False, rng.choice(("image/jpeg", "image/png")),
                                _lognormal(rng, 120 * KB, 1.0), cdn, ua))
        r = rng.random()
        if r < 0.06:
            out.append(Transfer(ts + 500_000_000, h.ip, dom, False, "video/mp4", _lognormal(rng, 6 * MB, 0.8), dom, ua))
        elif r < 0.11:
            out.append(Transfer(ts + 500_000_000, h.ip, dom, False, "application/pdf", _lognormal(rng, 800 * KB, 1.0),
                                dom, ua))
        elif r < 0.13:
            out.append(Transfer(ts + 500_000_000, h.ip, dom, False, "application/zip", _lognormal(rng, 8 * MB, 1.2),
                                dom, ua))
    scale = _uploads_scale(h, day, w.params.days)
    for _ in range(_poisson(rng, h.up_rate * lam * scale)):
        ts = at()
        r = rng.random()
        if r < 0.5:
            dom = rng.choice(h.browse)
            out.append(Transfer(ts, h.ip, dom, True, rng.choice(("application/x-www-form-urlencoded",
                                                                  "application/json")),
                                _lognormal(rng, 3 * KB, 1.0), dom, ua))
            continue
        dest = _upload_dest(w, h, day, rng)
        if r < 0.88:
            mime = rng.choice(DOC_MIMES)[0]
            size = _lognormal(rng, h.doc_scale, 1.0)
        elif r < 0.97:
            mime, size = "image/jpeg", _lognormal(rng, 900 * KB, 0.8)
        else:
            mime, size = "application/zip", _lognormal(rng, 6 * MB, 1.2)
        if h.persona == "engineer" and rng.random() < 0.3:
            dest = next((d for d in h.up_dests if w.categories.get(d) == "code-hosting"), dest)
            mime, size = "application/x-git-pack", _lognormal(rng, 400 * KB, 1.5)
        dc = _poisson(rng, 1.5) + 1 if mime in (m for m, _ in DOC_MIMES) and rng.random() < 0.1 else 0
        kw = 1 if dc == 0 and rng.random() < 0.04 else 0
        out.append(Transfer(ts, h.ip, dest, True, mime, size, dest, ua, dc, kw))
    # chat presence every 5 minutes while active (every workstation: highly prevalent)
    t = t0 + rng.uniform(0, 1 / 12)
    while t < t1:
        ts = _hour_ts(w, day, t)
        out.append(Transfer(ts, h.ip, "chat0.com", True, "application/json", 180 + rng.randrange(40),
                            "chat0.com", UAS["app"]))
        t += 300 / 3600 * (1 + rng.uniform(-0.01, 0.01))
    _apps(w, h, day, t0, t1, rng, out)


def _upload_dest(w: World, h: Host, day: int, rng: random.Random) -> str:
    if rng.random() < w.params.legit_newdest_doc_p:
        return f"site{900 + rng.randrange(5000)}.org"  # a never-seen, uncategorised site
    if h.role_day is not None and day >= h.role_day and rng.random() < 0.5:
        return h.role_dest
    if h.saas_day is not None and day >= h.saas_day and rng.random() < 0.4:
        return "newsuite.com"
    return rng.choice(h.up_dests)


def _apps(w: World, h: Host, day: int, t0: float, t1: float, rng: random.Random, out: list[Transfer]) -> None:
    """Legitimate periodic newcomers: a telemetry app (uploads) and a weather widget (downloads)."""
    if h.app_day is not None and day >= h.app_day:
        t = t0 + rng.uniform(0, 0.05)
        while t < t1:
            out.append(Transfer(_hour_ts(w, day, t), h.ip, h.app_dest, True, "application/json",
                                400 + rng.randrange(300), h.app_dest, UAS["app"]))
            t += 300 / 3600 * (1 + rng.uniform(-0.03, 0.03))
    if h.widget_day is not None and day >= h.widget_day:
        t = t0 + rng.uniform(0, 0.2)
        while t < t1:
            out.append(Transfer(_hour_ts(w, day, t), h.ip, h.widget_dest, False, "application/json",
                                2000 + rng.randrange(500), h.widget_dest, UAS["chrome"]))
            t += 900 / 3600


def _night(w: World, h: Host, day: int, rng: random.Random, out: list[Transfer]) -> None:
    """A machine left on: hourly update checks and telemetry; now and then a large update."""
    upd = f"update{sum(map(ord, h.ip)) % 4}.com"
    for hour in (*range(0, 7), *range(20, 24)):
        ts = _hour_ts(w, day, hour + rng.uniform(0, 1))
        out.append(Transfer(ts, h.ip, upd, False, "application/json", 900 + rng.randrange(600), upd, UAS["updater"]))
        out.append(Transfer(ts + 1_000_000_000, h.ip, upd, True, "application/json", 1500 + rng.randrange(1500), upd,
                            UAS["updater"]))
    if rng.random() < 0.05:
        ts = _hour_ts(w, day, 3 + rng.uniform(0, 1))
        out.append(Transfer(ts, h.ip, upd, False, "application/octet-stream", _lognormal(rng, 300 * MB, 0.5), upd,
                            UAS["updater"]))


def _server_day(w: World, h: Host, day: int, rng: random.Random) -> list[Transfer]:
    out: list[Transfer] = []
    idx = int(h.ip.rsplit(".", 1)[1])
    backup = "drive0.com"
    base = _hour_ts(w, day, 1.0 + (idx % 4) * 0.25)
    total = _lognormal(rng, 2000 * MB, 0.3)
    parts = 20
    for i in range(parts):
        out.append(Transfer(base + i * 60_000_000_000, h.ip, backup, True, "application/octet-stream",
                            total // parts, backup, UAS["backup"]))
    t = rng.uniform(0, 60)
    end = 86400.0
    while t < end:
        ts = _hour_ts(w, day, t / 3600)
        out.append(Transfer(ts, h.ip, "monitor.corp", True, "application/json", 2000 + rng.randrange(800),
                            "monitor.corp", UAS["agent"]))
        t += 60 + rng.uniform(-0.5, 0.5)
    if idx % 6 == 0:
        t = rng.uniform(0, 600)
        while t < end:
            out.append(Transfer(_hour_ts(w, day, t / 3600), h.ip, "licence-vendor.com", True, "application/json",
                                300, "licence-vendor.com", UAS["curl"]))
            t += 600 + rng.uniform(-2, 2)
    for _ in range(_poisson(rng, 6)):  # admin work
        ts = _hour_ts(w, day, rng.uniform(9, 17))
        out.append(Transfer(ts, h.ip, "update1.com", False, "application/octet-stream",
                            _lognormal(rng, 20 * MB, 1.0), "update1.com", UAS["curl"]))
    return out


def _poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    if lam > 30:
        return max(0, int(rng.gauss(lam, math.sqrt(lam)) + 0.5))
    n, p, limit = 0, 1.0, math.exp(-lam)
    while True:
        p *= rng.random()
        if p <= limit:
            return n
        n += 1


# --------------------------------------------------------------------------- anomalies


def _median_daily_upload(h: Host) -> float:
    """What the host uploads on a usual working day (bytes), for scaling the injections."""
    hours = max(1.0, h.end_h - h.start_h - 0.5)
    per_hour = h.up_rate * h.activity * (0.5 * 3 * KB + 0.38 * h.doc_scale * math.exp(0.5)
                                         + 0.09 * 900 * KB + 0.03 * 6 * MB)
    return per_hour * hours


def _inject(w: World, rng: random.Random, by_cat: dict[str, list[str]]) -> None:
    p = w.params
    candidates = [h for h in w.hosts if h.persona != "server" and h.first_day == 0
                  and h.role_day is None and h.app_day is None]
    used: dict[str, list[tuple[int, int]]] = {}
    makers = {"bulk": _bulk, "slow": _slow, "newdest": _newdest, "offhours": _offhours, "beacon": _beacon}
    for kind, count in p.anomalies:
        for _ in range(count):
            if kind == "zoneburst":
                _zoneburst(w, rng)
                continue
            for _attempt in range(50):
                h = rng.choice(candidates)
                day = rng.randrange(p.first_anomaly_day, p.days - 1)
                if kind == "slow":
                    day = min(day, p.days - 7)
                if day in h.absent or any(abs(day - d) < 4 for d, _ in used.get(h.ip, [])):
                    continue
                if kind in ("bulk", "slow", "newdest") and (_weekend(w, day) or _is_holiday(w, day)) \
                        and rng.random() < 0.7:
                    continue
                break
            used.setdefault(h.ip, []).append((day, 0))
            makers[kind](w, h, day, rng, by_cat)


def _add(w: World, transfers: list[Transfer]) -> tuple[int, int]:
    first = min(t.ts_ns for t in transfers)
    last = max(t.ts_ns for t in transfers)
    for t in transfers:
        # each transfer goes in the batch of the local day it belongs to
        local = datetime.fromtimestamp(t.ts_ns / 1e9, w.tz)
        day = (local.date() - w.day0.date()).days
        if 0 <= day < w.params.days:
            w._extra.setdefault(day, []).append(t)
    return first, last


def _bulk(w: World, h: Host, day: int, rng: random.Random, by_cat: dict[str, list[str]]) -> None:
    k = rng.uniform(20, 60)
    total = k * _median_daily_upload(h)
    night = rng.random() < 0.5
    start = rng.uniform(0.5, 4.5) if night else rng.uniform(h.start_h + 1, h.end_h - 3)
    hours = rng.uniform(1, 3)
    dest = rng.choice([d for d in h.up_dests if w.categories.get(d) in ("cloud-storage", "saas")]
                      + by_cat["file-sharing"][:2])
    out = []
    archives = rng.random() < 0.5
    sent = 0
    while sent < total:
        ts = _hour_ts(w, day, start + rng.uniform(0, hours))
        if archives:
            size = int(min(total - sent, _lognormal(rng, total / 3, 0.3))) + 1
            mime = "application/zip"
        else:
            size = _lognormal(rng, max(h.doc_scale * 2, total / 40), 0.6)
            mime = rng.choice(DOC_MIMES)[0]
        out.append(Transfer(ts, h.ip, dest, True, mime, size, dest, UAS[h.ua]))
        sent += size
    first, last = _add(w, out)
    w.truth.append(Truth("bulk", h.ip, h.zone, first, last, note=f"{total / MB:.0f} MB to {dest}"))


def _slow(w: World, h: Host, day: int, rng: random.Random, by_cat: dict[str, list[str]]) -> None:
    ndays = rng.randint(3, 6)
    extra = rng.uniform(2, 4) * _median_daily_upload(h)
    dest = rng.choice(h.up_dests)
    out = []
    d = day
    done = 0
    while done < ndays and d < w.params.days:
        if not (_weekend(w, d) or _is_holiday(w, d) or d in h.absent):
            sent = 0.0
            while sent < extra:
                ts = _hour_ts(w, d, rng.uniform(h.start_h + 0.5, h.end_h - 0.5))
                size = _lognormal(rng, h.doc_scale * 1.5, 0.7)
                out.append(Transfer(ts, h.ip, dest, True, rng.choice(DOC_MIMES)[0], size, dest, UAS[h.ua]))
                sent += size
            done += 1
        d += 1
    first, last = _add(w, out)
    w.truth.append(Truth("slow", h.ip, h.zone, first, last, note=f"{ndays} days, +{extra / MB:.1f} MB/day"))


def _newdest(w: World, h: Host, day: int, rng: random.Random, by_cat: dict[str, list[str]]) -> None:
    if rng.random() < 0.7:
        dest = rng.choice(by_cat["paste"] + by_cat["file-sharing"] + by_cat["webmail"])
    else:
        dest = f"upload-{rng.randrange(10**6)}.xyz"  # uncategorised
    start = rng.uniform(h.start_h + 0.5, h.end_h - 2)
    out = []
    for _ in range(rng.randint(1, 6)):
        ts = _hour_ts(w, day, start + rng.uniform(0, 1.5))
        if rng.random() < 0.75:
            mime, size = rng.choice(DOC_MIMES)[0], _lognormal(rng, h.doc_scale * 1.5, 0.8)
        else:
            mime, size = "application/zip", _lognormal(rng, 4 * MB, 0.8)
        out.append(Transfer(ts, h.ip, dest, True, mime, size, dest, UAS[h.ua]))
    first, last = _add(w, out)
    w.truth.append(Truth("newdest", h.ip, h.zone, first, last, note=dest))


def _offhours(w: World, h: Host, day: int, rng: random.Random, by_cat: dict[str, list[str]]) -> None:
    weekend_day = next((d for d in range(day, min(w.params.days, day + 7)) if _weekend(w, d)), None)
    if weekend_day is not None and rng.random() < 0.3:
        day, start = weekend_day, rng.uniform(1.0, 5.0)
    else:
        start = rng.uniform(0.5, 4.5)
    hours = rng.uniform(1, 3)
    out: list[Transfer] = []
    t = start
    while t < start + hours:
        _active_hour(w, h, day, t, min(start + hours, t + 1), h.activity * rng.uniform(1.0, 2.0), rng,
                     UAS[h.ua], out)
        t += 1
    # the hour's chat presence is what a logged-in user would show; an intruder does not run chat
    out = [tr for tr in out if tr.domain != "chat0.com"]
    dest = rng.choice(h.up_dests)
    for _ in range(rng.randint(1, 4)):
        ts = _hour_ts(w, day, start + rng.uniform(0, hours))
        out.append(Transfer(ts, h.ip, dest, True, rng.choice(DOC_MIMES)[0], _lognormal(rng, h.doc_scale, 0.8),
                            dest, UAS[h.ua]))
    first, last = _add(w, out)
    w.truth.append(Truth("offhours", h.ip, h.zone, first, last, note=f"{hours:.1f} h from {start:.1f}"))


def _beacon(w: World, h: Host, day: int, rng: random.Random, by_cat: dict[str, list[str]]) -> None:
    period = rng.choice((30, 60, 60, 120, 300, 600))
    jitter = rng.uniform(0, 0.15)
    hours = rng.uniform(2, 12)
    start = rng.uniform(h.start_h, h.end_h - 1)
    dest = f"cdn-{rng.randrange(10**6)}.top"
    out = []
    t = start * 3600
    end = t + hours * 3600
    while t < end:
        ts = _hour_ts(w, day, t / 3600)
        out.append(Transfer(ts, h.ip, dest, True, "application/octet-stream", 200 + rng.randrange(1800), dest,
                            UAS["beacon"]))
        t += period * (1 + rng.uniform(-jitter, jitter))
    first, last = _add(w, out)
    w.truth.append(Truth("beacon", h.ip, h.zone, first, last, note=f"every {period}s ±{jitter:.0%} to {dest}"))


def _zoneburst(w: World, rng: random.Random) -> None:
    zones = [z for z, _, _, p in w.params.zones if p in ("office", "engineer")]
    zone = rng.choice(zones)
    for _ in range(50):
        day = rng.randrange(w.params.first_anomaly_day, w.params.days - 1)
        if not (_weekend(w, day) or _is_holiday(w, day)):
            break
    members = [h for h in w.hosts if h.zone == zone and h.first_day <= day and day not in h.absent]
    part = rng.sample(members, int(len(members) * rng.uniform(0.25, 0.5)))
    start = rng.uniform(9.5, 15)
    hours = rng.uniform(1, 2)
    dest = rng.choice(rng.choice((w.hosts[0].up_dests, ["sendfile0.com"])))
    out = []
    for h in part:
        for _ in range(rng.randint(2, 10)):
            ts = _hour_ts(w, day, start + rng.uniform(0, hours))
            out.append(Transfer(ts, h.ip, dest, True, rng.choice(DOC_MIMES)[0], _lognormal(rng, h.doc_scale, 0.8),
                                dest, UAS[h.ua], dataclass_hits=rng.randint(3, 40), keyword_hits=rng.randint(0, 3)))
    first, last = _add(w, out)
    w.truth.append(Truth("zoneburst", zone, zone, first, last, tuple(h.ip for h in part),
                         note=f"{len(part)} hosts to {dest}"))
