"""Analysts' exceptions: validated in the policy file (``exceptions:``), applied by the engine on packet time."""

from __future__ import annotations

import pytest

from appliance.model import ContentObject, Direction, Evidence, Finding, FlowRef
from policies.engine import PolicyEngine
from policies.schema import PolicyError, load_policy

BASE = 1_767_225_600_000_000_000  # 2026-01-01
DAY = 86_400 * 10**9

POLICY = """\
zones:
  office: {cidrs: [10.20.0.0/16]}
lists:
  secrets: {type: keywords, keywords: [Nightjar]}
profiles:
  leak:
    category: data-leak
    inspect: [{inspector: keyword, lists: [secrets]}]
policies:
  - name: uploads
    source_zone: office
    profiles: [leak]
"""


def _policy(exceptions: str = "") -> str:
    return POLICY + (f"exceptions:\n{exceptions}" if exceptions else "")


def _issues(text: str) -> list[str]:
    with pytest.raises(PolicyError) as e:
        load_policy(text, source="p.yaml")
    return [f"{i.line}:{i.column}: {i.message}" for i in e.value.issues]


def _obj(host: str = "paste.example.org", url: str = "/api/paste", client: str = "10.20.1.5",
         direction: Direction = Direction.TO_SERVER, sha: str = "a" * 64, filename: str = "plan.txt") -> ContentObject:
    src, dst = (client, "203.0.113.9") if direction == Direction.TO_SERVER else ("203.0.113.9", client)
    flow = FlowRef("C1", 1, src, 40000, dst, 80, "TCP", 0, "eth0", "office", "any")
    return ContentObject(id="F1", source="http", direction=direction, flow=flow, ts_ns=BASE, size=10, md5="b" * 32,
                         sha256=sha, host=host, url=url, filename=filename)


def _decide(engine: PolicyEngine, obj: ContentObject, now: int = BASE) -> tuple[int, int]:
    sel = engine.select("office", "any", obj)
    f = Finding("keyword", obj.id, "secrets", 1.0, (Evidence(0, 8, "Nightjar"),), {})
    d = engine.process(obj, sel, [f], now)
    return len(d.alerts), len(d.excepted)


def test_validation_with_positions() -> None:
    assert _issues(_policy("  - {rule: upload, host: x.example}\n")) == [
        "14:12: undefined rule 'upload' (did you mean 'uploads'?)"]
    assert _issues(_policy("  - {host: x.example}\n"))[0].endswith("names the 'rule' (or 'profile') whose alerts it "
                                                                   "stops")
    assert "needs a scope" in _issues(_policy("  - {rule: uploads}\n"))[0]
    assert "expires must be a date" in _issues(_policy("  - {rule: uploads, host: x, expires: soon}\n"))[0]
    assert "not a valid" in _issues(_policy("  - {rule: uploads, sha256: abc}\n"))[0] or \
        "should match pattern" in _issues(_policy("  - {rule: uploads, sha256: abc}\n"))[0]
    assert "undefined zone 'lab'" in _issues(_policy("  - {rule: uploads, zone: lab}\n"))[0]
    assert "invalid address or network" in _issues(_policy("  - {rule: uploads, client: 10.0.0.0/99}\n"))[0]
    p = load_policy(_policy('  - {rule: uploads, host: "*.example.org", expires: 2026-03-01, by: alice, '
                            'reason: "auditors", alert: A1}\n'), source="p.yaml")
    (e,) = p.exceptions
    assert (e.rule, e.host, e.expires, e.by, e.reason, e.line) == ("uploads", "*.example.org", "2026-03-01", "alice",
                                                                   "auditors", 14)


@pytest.mark.parametrize(("scope", "obj", "stopped"), [
    ("host: paste.example.org", _obj(), True),
    ("host: PASTE.example.org", _obj(), True),
    ("host: other.example", _obj(), False),
    ('host: "*.example.org"', _obj(host="a.b.example.org"), True),
    ('host: "*.example.org"', _obj(host="example.org"), True),
    ('host: "*.example.org"', _obj(host="badexample.org"), False),
    ("url: /api/paste", _obj(), True),
    ('url: "/api/*"', _obj(url="/api/other"), True),
    ("url: /api", _obj(), False),
    ("sha256: " + "a" * 64, _obj(), True),
    ("sha256: " + "c" * 64, _obj(), False),
    ('filename: "*.txt"', _obj(), True),
    ("client: 10.20.1.0/24", _obj(), True),
    ("client: 10.20.1.0/24", _obj(direction=Direction.TO_CLIENT), True),  # the client is the download's receiver
    ("client: 10.99.0.0/16", _obj(), False),
    ("zone: office", _obj(), True),
    ("{dst_zone: office}", _obj(), False),
    ("{host: paste.example.org, url: /other}", _obj(), False),  # every field must match
])
def test_the_engine_stops_what_the_exception_covers(scope: str, obj: ContentObject, stopped: bool) -> None:
    entry = (f"  - {{rule: uploads, {scope[1:-1]}}}\n" if scope.startswith("{") else
             f"  - rule: uploads\n    {scope}\n")
    engine = PolicyEngine(load_policy(_policy(entry)))
    assert _decide(engine, obj) == ((0, 1) if stopped else (1, 0))


def test_expiry_is_packet_time_and_profile_exceptions() -> None:
    engine = PolicyEngine(load_policy(_policy("  - {rule: uploads, host: paste.example.org, expires: 2026-01-05}\n")))
    assert _decide(engine, _obj(), BASE + 4 * DAY) == (0, 1)  # through the end of the expiry day (UTC)
    assert _decide(engine, _obj(), BASE + 5 * DAY) == (1, 0)
    engine = PolicyEngine(load_policy(_policy("  - {profile: leak, host: paste.example.org}\n")))
    assert _decide(engine, _obj()) == (0, 1)
    assert _decide(PolicyEngine(load_policy(_policy())), _obj()) == (1, 0)
