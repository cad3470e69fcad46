"""The policy engine: which inspectors run on an object, and which findings become alerts.

Pure: no I/O, no wall clock (``now_ns`` is passed in). One engine per policy version; the alert
id counter and the suppressor are separate objects so they survive a reload.

    sel = engine.select(src_zone, dst_zone, obj)          # rules that apply → inspector configs
    configs = engine.configs(sel)                          # one merged config per inspector, all rules
    findings = [... run inspectors ...]
    decision = engine.process(obj, sel, findings, now_ns)  # decide() + suppression
    decision.alerts / decision.suppressed / decision.closed
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from appliance.model import Alert, ContentObject, Direction, Finding, InspectorConfig, ListSpec
from policies.schema import ExceptionDef, Policy, ProfileDef, RuleDef

_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SELECT_CACHE_MAX = 4096


def base62(n: int, width: int = 0) -> str:
    """``n`` in base 62 (digits, upper, lower: ASCII order, so equal widths sort numerically)."""
    out = []
    while n:
        n, r = divmod(n, 62)
        out.append(_B62[r])
    return ("".join(reversed(out)) or "0").rjust(width, "0")


class AlertIds:
    """Deterministic alert ids: ``A`` + 6+ base62 digits of ``start``, ``start+step``, …

    With N workers, worker k uses ``AlertIds(start=k + 1, step=N)`` so ids never collide and a
    replay gives the same ids. Keep one instance across policy reloads.
    """

    def __init__(self, start: int = 1, step: int = 1) -> None:
        if start < 0 or step < 1:
            raise ValueError("AlertIds: start must be >= 0 and step >= 1")
        self._next = start
        self.step = step

    def next(self) -> str:
        n = self._next
        self._next += self.step
        return "A" + base62(n, 6)


# --------------------------------------------------------------------------- selection


@dataclass(slots=True, frozen=True)
class Selection:
    """One rule that applies to an object: its profiles and the inspector configs they need."""

    rule: RuleDef
    profiles: tuple[ProfileDef, ...]
    configs: tuple[InspectorConfig, ...]
    """The profiles' inspector configs, merged per inspector (see `merge_configs`)."""
    src_zone: str = "any"
    dst_zone: str = "any"


def merge_configs(configs: Iterable[InspectorConfig]) -> tuple[InspectorConfig, ...]:
    """One config per (inspector, params): lists of the same inspector are united (by list name,
    first occurrence order). Configs of one inspector with different params stay separate."""
    groups: list[tuple[str, dict, list[ListSpec], set[str]]] = []
    for c in configs:
        params = dict(c.params)
        for group in groups:
            if group[0] == c.inspector and group[1] == params:
                insp, p, lists, names = group
                break
        else:
            insp, p, lists, names = c.inspector, params, [], set()
            groups.append((insp, p, lists, names))
        for spec in c.lists:
            if spec.name not in names:
                names.add(spec.name)
                lists.append(spec)
    return tuple(InspectorConfig(insp, tuple(lists), p) for insp, p, lists, _ in groups)


def inspector_configs(selections: Iterable[Selection]) -> tuple[InspectorConfig, ...]:
    """Everything the selected rules need, each inspector once per distinct params."""
    return merge_configs(c for s in selections for c in s.configs)


def finding_key(f: Finding) -> tuple:
    """What makes two findings the same fact (equal fields); hashable although ``detail`` is a dict."""
    return (f.inspector, f.content_id, f.rule, f.score, f.evidence,
            tuple(sorted((str(k), repr(v)) for k, v in f.detail.items())) if f.detail else ())


def unique_findings(findings: Iterable[Finding]) -> tuple[Finding, ...]:
    """``findings`` without repeats (first occurrence order): an inspector that ran twice on the
    same object (two rules naming it) reports the same fact twice; it must count once."""
    seen: set[tuple] = set()
    out = []
    for f in findings:
        k = finding_key(f)
        if k not in seen:
            seen.add(k)
            out.append(f)
    return tuple(out)


def finding_matches(f: Finding) -> int:
    """How many matches one finding stands for: ``detail["count"]`` when the inspector gives it,
    else the number of evidence items, at least 1."""
    c = f.detail.get("count") if f.detail else None
    if c is not None:
        try:
            return max(1, int(c))
        except (TypeError, ValueError):
            pass
    return max(1, len(f.evidence))


@dataclass(slots=True, frozen=True)
class _ProfileIndex:
    keys: frozenset[tuple[str, str]]
    """(inspector, list name) pairs whose findings count for the profile."""
    open: frozenset[str]
    """Inspectors run without lists: all their findings count."""

    def counts(self, f: Finding) -> bool:
        if f.inspector in self.open:
            return True
        if (f.inspector, f.rule) in self.keys:
            return True
        # ``list:detail`` (e.g. ``gambling:赌博``) counts for list ``gambling``
        head, sep, _ = f.rule.partition(":")
        return bool(sep) and (f.inspector, head) in self.keys


# --------------------------------------------------------------------------- suppression


@dataclass(slots=True, frozen=True)
class Suppressed:
    """An alert that repeated (same rule, profile and host) inside the window of ``first_id``.

    Nothing is lost: the whole alert is here; ``count`` is the number of repeats of ``first_id``
    suppressed so far in this window (the store can set ``alerts.suppressed = count``)."""

    alert: Alert
    first_id: str
    count: int
    host: str


@dataclass(slots=True, frozen=True)
class SuppressionSummary:
    """A closed suppression window: ``count`` repeats of alert ``first_id`` were suppressed."""

    first_id: str
    policy: str
    profile: str
    host: str
    count: int
    first_ts_ns: int
    last_ts_ns: int


@dataclass(slots=True)
class Decision:
    """What `PolicyEngine.process` decided for one object."""

    alerts: list[Alert] = field(default_factory=list)
    """Alerts to store and send."""
    suppressed: list[Suppressed] = field(default_factory=list)
    """Repeats counted into an earlier alert (log them; do not raise them again)."""
    closed: list[SuppressionSummary] = field(default_factory=list)
    """Suppression windows that ended (final counts)."""
    excepted: list[tuple[Alert, ExceptionDef]] = field(default_factory=list)
    """Alerts an analyst's exception stopped (not raised), with the exception."""


@dataclass(slots=True)
class _Window:
    first_id: str
    policy: str
    profile: str
    host: str
    start_ns: int
    last_ns: int
    window_ns: int
    count: int = 0

    def summary(self) -> SuppressionSummary:
        return SuppressionSummary(self.first_id, self.policy, self.profile, self.host, self.count,
                                  self.start_ns, self.last_ns)


class Suppressor:
    """Counts repeats of (rule, profile, host) within ``window_s`` of the first alert instead of
    emitting them. Windows are fixed (they start at the emitted alert and do not slide); time is
    packet time. ``key``: ``destination`` (the object's HTTP host, else the server IP), ``source``
    (client IP) or ``pair``. ``per_rule`` overrides the window per rule name; 0 disables.
    At most ``max_keys`` windows are open; beyond that the oldest are closed early."""

    def __init__(self, window_s: float = 300.0, *, key: str = "destination",
                 per_rule: dict[str, float] | None = None, max_keys: int = 100_000) -> None:
        self._open: dict[tuple[str, str, str], _Window] = {}
        self.max_keys = max_keys
        self._next_sweep = 0
        self.configure(window_s, key=key, per_rule=per_rule)

    def configure(self, window_s: float, *, key: str = "destination",
                  per_rule: dict[str, float] | None = None) -> None:
        """Change the windows (after a policy reload); open windows keep their own length."""
        if key not in ("destination", "source", "pair"):
            raise ValueError(f"suppression key {key!r}")
        self.window_ns = int(window_s * 1e9)
        self.key = key
        self.per_rule_ns = {k: int(v * 1e9) for k, v in (per_rule or {}).items()}

    @classmethod
    def for_policy(cls, policy: Policy) -> Suppressor:
        s = cls(0)
        s.configure_for(policy)
        return s

    def configure_for(self, policy: Policy) -> None:
        self.configure(policy.suppression.window_s, key=policy.suppression.key,
                       per_rule={r.name: r.suppression_window_s for r in policy.rules
                                 if r.suppression_window_s is not None})

    def host_of(self, alert: Alert, obj: ContentObject | None = None) -> str:
        flow = obj.flow if obj is not None and obj.flow is not None else alert.flow
        dst = (obj.host if obj is not None and obj.host else "") or (flow.dest_ip if flow else "")
        src = flow.src_ip if flow else ""
        if self.key == "destination":
            return dst
        if self.key == "source":
            return src
        return f"{src}>{dst}"

    @property
    def open_windows(self) -> int:
        return len(self._open)

    def filter(self, alerts: Sequence[Alert], now_ns: int, obj: ContentObject | None = None) -> Decision:
        """Split ``alerts`` into emitted and suppressed; also returns windows that closed."""
        out = Decision()
        for a in alerts:
            wns = self.per_rule_ns.get(a.policy, self.window_ns)
            if wns <= 0:
                out.alerts.append(a)
                continue
            host = self.host_of(a, obj)
            k = (a.policy, a.profile, host)
            w = self._open.get(k)
            if w is not None and abs(now_ns - w.start_ns) < w.window_ns:
                w.count += 1
                w.last_ns = max(w.last_ns, now_ns)
                out.suppressed.append(Suppressed(a, w.first_id, w.count, host))
                continue
            if w is not None:
                del self._open[k]
                if w.count:
                    out.closed.append(w.summary())
            self._open[k] = _Window(a.id, a.policy, a.profile, host, now_ns, now_ns, wns)
            out.alerts.append(a)
            while len(self._open) > self.max_keys:
                old = self._open.pop(next(iter(self._open)))
                if old.count:
                    out.closed.append(old.summary())
        if now_ns >= self._next_sweep:
            out.closed.extend(self.expire(now_ns))
        return out

    def expire(self, now_ns: int) -> list[SuppressionSummary]:
        """Close windows that ended by ``now_ns``; summaries of those that suppressed something."""
        self._next_sweep = now_ns + 1_000_000_000
        done = [k for k, w in self._open.items() if now_ns - w.start_ns >= w.window_ns]
        out = []
        for k in done:
            w = self._open.pop(k)
            if w.count:
                out.append(w.summary())
        return out

    def flush(self) -> list[SuppressionSummary]:
        """Close every window (end of capture, shutdown)."""
        out = [w.summary() for w in self._open.values() if w.count]
        self._open.clear()
        return out


# --------------------------------------------------------------------------- exceptions


def _host_matches(pattern: str, host: str) -> bool:
    host = host.lower().rstrip(".")
    if pattern.startswith("*."):
        return host == pattern[2:] or host.endswith(pattern[1:])
    return host == pattern


def exception_matches(e: ExceptionDef, alert: Alert, obj: ContentObject | None, now_ns: int) -> bool:
    """Whether *e* stops *alert* (about *obj*) at packet time *now_ns*: not expired, and every field it
    sets matches (rule, profile; the object's host, URL, file name, hashes; zones; the client's address)."""
    import fnmatch
    import ipaddress

    if e.expires_ns is not None and now_ns >= e.expires_ns:
        return False
    if e.rule is not None and e.rule != alert.policy and e.rule not in alert.rules:
        return False
    if e.profile is not None and e.profile != alert.profile:
        return False
    if e.zone is not None and e.zone not in (alert.src_zone, alert.dst_zone):
        return False
    if (e.src_zone is not None and e.src_zone != alert.src_zone) or \
            (e.dst_zone is not None and e.dst_zone != alert.dst_zone):
        return False
    o = obj
    if e.host is not None and (o is None or not _host_matches(e.host, o.host or "")):
        return False
    if e.url is not None and (o is None or not (o.url.startswith(e.url[:-1]) if e.url.endswith("*")
                                                 else o.url == e.url)):
        return False
    if e.filename is not None and (o is None or not fnmatch.fnmatchcase(o.filename, e.filename)):
        return False
    if (e.sha256 is not None and (o is None or o.sha256.lower() != e.sha256)) or \
            (e.md5 is not None and (o is None or o.md5.lower() != e.md5)):
        return False
    if e.client is not None:
        flow = o.flow if o is not None and o.flow is not None else alert.flow
        if flow is None:
            return False
        down = o is not None and o.direction == Direction.TO_CLIENT
        try:
            if ipaddress.ip_address(flow.dest_ip if down else flow.src_ip) not in e.client:
                return False
        except ValueError:
            return False
    return True


# --------------------------------------------------------------------------- engine


class PolicyEngine:
    """Selects rules for objects and turns findings into alerts for one `Policy`."""

    def __init__(self, policy: Policy, *, ids: AlertIds | None = None,
                 suppressor: Suppressor | None = None) -> None:
        self.policy = policy
        self.ids = ids or AlertIds()
        self.suppressor = suppressor if suppressor is not None else Suppressor.for_policy(policy)
        self._index = {
            name: _ProfileIndex(
                frozenset((c.inspector, s.name) for c in p.configs for s in c.lists),
                frozenset(c.inspector for c in p.configs if not c.lists),
            )
            for name, p in policy.profiles.items()
        }
        self._rules = tuple(
            (r, tuple(policy.profiles[n] for n in r.profiles),
             merge_configs(c for n in r.profiles for c in policy.profiles[n].configs))
            for r in policy.rules
        )
        self._cache: dict[tuple[str, str, str, str], tuple[Selection, ...]] = {}
        self._merged: dict[tuple[int, ...], tuple[InspectorConfig, ...]] = {}

    @staticmethod
    def rule_matches(rule: RuleDef, src_zone: str, dst_zone: str, direction: str, protocol: str) -> bool:
        """Zones (``None`` = any), direction (``upload``/``download``) and protocol."""
        return ((rule.src_zones is None or src_zone in rule.src_zones)
                and (rule.dst_zones is None or dst_zone in rule.dst_zones)
                and (rule.direction is None or rule.direction == direction)
                and (rule.protocols is None or protocol in rule.protocols))

    def select(self, src_zone: str, dst_zone: str, obj: ContentObject,
               protocol: str | None = None) -> list[Selection]:
        """The rules that apply to ``obj``, in file order: the first match, plus the following
        matches while the matched rules say ``continue``.

        Direction: ``obj.direction`` TO_SERVER is ``upload``, TO_CLIENT ``download``. Protocol is
        ``obj.source`` unless ``protocol`` is given (pass the root object's protocol for extracted
        children, whose source is ``extract``).
        """
        proto = (protocol if protocol is not None else obj.source).lower()
        key = (src_zone, dst_zone, obj.direction.label, proto)
        hit = self._cache.get(key)
        if hit is None:
            out = []
            for rule, profiles, configs in self._rules:
                if self.rule_matches(rule, src_zone, dst_zone, key[2], proto):
                    out.append(Selection(rule, profiles, configs, src_zone, dst_zone))
                    if not rule.continue_:
                        break
            hit = tuple(out)
            if len(self._cache) >= _SELECT_CACHE_MAX:
                self._cache.clear()
            self._cache[key] = hit
        return list(hit)

    def configs(self, selections: Sequence[Selection]) -> tuple[InspectorConfig, ...]:
        """The inspector configs of all ``selections`` merged across rules (`merge_configs`), so
        each inspector runs once per object even when several matching rules name it. The same
        rules give the same config objects (callers may cache compiled inspectors by identity)."""
        key = tuple(id(s.rule) for s in selections)
        hit = self._merged.get(key)
        if hit is None:
            hit = inspector_configs(selections)
            if len(self._merged) >= _SELECT_CACHE_MAX:
                self._merged.clear()
            self._merged[key] = hit
        return hit

    def profile_findings(self, profile: str, findings: Iterable[Finding]) -> tuple[Finding, ...]:
        """The findings that count for ``profile``: same inspector and ``Finding.rule`` naming one
        of the profile's lists for it (or ``list:…``), or any finding of an inspector the profile
        runs without lists."""
        idx = self._index[profile]
        return tuple(f for f in findings if idx.counts(f))

    @staticmethod
    def fires(profile: ProfileDef, findings: Sequence[Finding]) -> bool:
        """Summed score ≥ weight threshold, or number of matches ≥ count threshold."""
        if not findings:
            return False
        # round away float noise (0.1 + 0.2 ≥ 0.3)
        if (profile.weight_threshold is not None
                and round(sum(f.score for f in findings), 9) >= profile.weight_threshold):
            return True
        if profile.count_threshold is not None:
            return sum(finding_matches(f) for f in findings) >= profile.count_threshold
        return False

    def decide(self, obj: ContentObject, selections: Iterable[Selection], findings: Sequence[Finding],
               now_ns: int) -> list[Alert]:
        """One alert per profile whose findings reach a threshold, carrying those findings.

        A profile that several matching rules apply (``continue``) is judged once, on its
        findings counted once each (repeated findings are dropped, see `unique_findings`); its
        alert names the first of those rules as ``policy`` and all of them in ``rules``. Alerts
        come in the order their profiles first appear in ``selections``.

        ``findings`` are the ones to attribute to ``obj`` (its own, and its children's if the
        caller wants them reported on the parent). No suppression here: see `process`.
        """
        order: dict[str, tuple[Selection, ProfileDef, list[str]]] = {}
        for sel in selections:
            for prof in sel.profiles:
                got = order.get(prof.name)
                if got is None:
                    order[prof.name] = (sel, prof, [sel.rule.name])
                elif sel.rule.name not in got[2]:
                    got[2].append(sel.rule.name)
        if not order:
            return []
        unique = unique_findings(findings)
        alerts = []
        for sel, prof, rules in order.values():
            fs = self.profile_findings(prof.name, unique)
            if not self.fires(prof, fs):
                continue
            flow = obj.flow
            if flow is not None and (flow.src_zone, flow.dst_zone) != (sel.src_zone, sel.dst_zone):
                flow = flow._replace(src_zone=sel.src_zone, dst_zone=sel.dst_zone)
            alerts.append(Alert(
                id=self.ids.next(), ts_ns=now_ns, policy=rules[0], profile=prof.name,
                severity=prof.severity, category=prof.category, content_id=obj.id, flow=flow,
                findings=fs, src_zone=sel.src_zone, dst_zone=sel.dst_zone, complete=obj.complete,
                rules=tuple(rules),
            ))
        return alerts

    def except_(self, alerts: Sequence[Alert], obj: ContentObject | None, now_ns: int
                ) -> tuple[list[Alert], list[tuple[Alert, ExceptionDef]]]:
        """Split *alerts* into raised and stopped by an analyst's exception (the first that matches)."""
        excs = self.policy.exceptions
        if not excs or not alerts:
            return list(alerts), []
        kept, stopped = [], []
        for a in alerts:
            hit = next((e for e in excs if exception_matches(e, a, obj, now_ns)), None)
            if hit is None:
                kept.append(a)
            else:
                stopped.append((a, hit))
        return kept, stopped

    def process(self, obj: ContentObject, selections: Iterable[Selection], findings: Sequence[Finding],
                now_ns: int) -> Decision:
        """`decide`, then analysts' exceptions, then suppression of repeats."""
        kept, stopped = self.except_(self.decide(obj, selections, findings, now_ns), obj, now_ns)
        out = self.suppressor.filter(kept, now_ns, obj)
        out.excepted = stopped
        return out
