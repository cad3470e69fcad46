"""The query language: parsing, errors with positions, and compilation to parameterised SQL on both backends."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.model import Alert, ContentObject, Direction, Evidence, Finding, FlowRef, Severity
from appliance.store import AlertQuery, AlertStore
from appliance.store.querylang import (
    And,
    Clause,
    Not,
    Or,
    QueryError,
    Text,
    ip_hex,
    ip_range,
    parse,
    parse_size,
    parse_time,
    quote_value,
)
from tests.fleet_fixtures import BACKENDS, pg_dsn, pg_template, postgres_server  # noqa: F401

BASE = 1_767_225_600_000_000_000  # 2026-01-01 00:00 UTC
DAY = 86_400 * 10**9


def test_grammar() -> None:
    q = parse('category:fraud severity:>=high -host:"casino.example.biz" (src:10.0.0.0/8 OR zone:guest) 机密')
    assert isinstance(q, And) and len(q.items) == 5
    assert q.items[0] == Clause("category", "=", "fraud", 0)
    assert q.items[1] == Clause("severity", ">=", "high", 15)
    assert q.items[2] == Not(Clause("host", "=", "casino.example.biz", 32, quoted=True))
    assert isinstance(q.items[3], Or) and q.items[3].items[0].value == "10.0.0.0/8"
    assert q.items[4] == Text("机密", 89)
    r = parse('ts:[2026-01-01 TO 2026-01-07} "Project Nightjar" NOT triage:fp a OR b AND c')
    assert isinstance(r, Or)
    first = r.items[0]
    assert isinstance(first, And) and first.items[0] == Clause("ts", "range", ("2026-01-01", "2026-01-07", True,
                                                                               False), 0)
    assert first.items[1] == Text("Project Nightjar", 30, phrase=True)
    assert parse("src:2001:db8::1").value == "2001:db8::1"  # type: ignore[union-attr]
    assert parse("ts:>2026-01-07T10:30:00").value == "2026-01-07T10:30:00"  # type: ignore[union-attr]
    assert parse("size:[* TO 1MB]").value == (None, "1MB", True, True)  # type: ignore[union-attr]
    assert parse("   ") is None
    assert parse("customers-3") == Text("customers-3", 0)  # a dash inside a word is part of it


@pytest.mark.parametrize(("q", "pos", "msg"), [
    ("a OR", 2, "OR needs a term on both sides"),
    ("(a b", 0, "unclosed '('"),
    ("a b)", 3, "unmatched ')'"),
    ("src:", 4, "needs a value"),
    ('host:"x', 5, "unterminated quote"),
    ("ts:[2026-01-01 2026-01-02]", 3, "a range is [FROM TO UNTIL]"),
    ("ts:[1 TO 2", 3, "unterminated range"),
    ("AND b", 0, "AND needs a term before it"),
    ("a AND AND b", 2, "AND needs a term on both sides"),
    ("NOT", 0, "NOT needs a term after it"),
    ("()", 0, "empty parentheses"),
])
def test_errors_have_a_position_and_a_message(q: str, pos: int, msg: str) -> None:
    with pytest.raises(QueryError) as e:
        parse(q)
    assert e.value.position == pos and msg in e.value.message


@given(st.text(max_size=80))
@settings(max_examples=300, deadline=None)
def test_any_text_parses_or_fails_with_a_position(q: str) -> None:
    try:
        parse(q)
    except QueryError as exc:
        assert 0 <= exc.position <= len(q)


@given(st.text(min_size=1, max_size=40))
@settings(max_examples=300, deadline=None)
def test_quote_value_reads_back(v: str) -> None:
    q = parse(f"host:{quote_value(v)}")
    assert isinstance(q, Clause) and q.value == v


def test_values() -> None:
    assert parse_size("1MB") == 1_000_000 and parse_size("1.5 KiB") == 1536 and parse_size("700") == 700
    with pytest.raises(ValueError):
        parse_size("lots")
    assert parse_time("2026-01-01") == BASE and parse_time("2026-01-01", end=True) == BASE + DAY
    assert parse_time("now-1d", now_ns=BASE + DAY) == BASE and parse_time(str(BASE)) == BASE
    from zoneinfo import ZoneInfo

    assert parse_time("2026-01-01T08:00", ZoneInfo("Asia/Shanghai")) == BASE  # UTC+8
    assert ip_hex("10.0.0.1") == f"{0xFFFF0A000001:032x}" and ip_hex("not") is None
    assert ip_range("10.0.0.0/8") == (ip_hex("10.0.0.0"), ip_hex("10.255.255.255"))
    assert ip_range("2001:db8::1") == "2001:db8::1"


# --------------------------------------------------------------------------- compiled on a store


def _alert(i: int, *, severity: int, category: str, client: str, host: str, size: int, text: str,
           down: bool = False, zone: str = "office") -> tuple[Alert, ContentObject]:
    server = f"203.0.113.{i}"
    src, dst = (server, client) if down else (client, server)
    flow = FlowRef(f"C{i}", i, src, 80 if down else 40000 + i, dst, 40000 + i if down else 80, "TCP", 0, "eth1",
                   zone, "any")
    obj = ContentObject(id=f"F{i}", source="http", direction=Direction.TO_CLIENT if down else Direction.TO_SERVER,
                        flow=flow, ts_ns=BASE + i * DAY, size=size, md5=f"{i:032x}", sha256=f"{i:064x}",
                        filename=f"f{i}.docx", url=f"/share/{i}", host=host)
    f = Finding("keyword", obj.id, "secrets", 10.0, (Evidence(0, len(text), text),), {"list": "secrets"})
    return Alert(f"A{i}", BASE + i * DAY, "office-uploads", "leak", Severity(severity), category, obj.id, flow, (f,),
                 zone, "any"), obj


ROWS = [
    _alert(1, severity=1, category="fraud", client="10.1.2.3", host="casino.example.biz", size=5_000_000,
           text="网络赌场 online casino"),
    _alert(2, severity=2, category="data-leak/pii", client="10.9.9.9", host="paste.example.org", size=2_000,
           text="客户名单 机密"),
    _alert(3, severity=3, category="fraud", client="192.168.1.5", host="a.b.example.biz", size=900,
           text="quarterly report", zone="guest"),
    _alert(4, severity=4, category="spam", client="2001:db8::5", host="mail.example.com", size=1_500_000,
           text="Project Nightjar roadmap", down=True),
]


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> AlertStore:
    dsn = request.getfixturevalue("pg_dsn") if request.param == "postgresql" else str(tmp_path / "a.db")
    with AlertStore(dsn) as s:
        s.add_many(ROWS)
    s = AlertStore.reader(dsn)
    yield s
    s.close()


@pytest.mark.parametrize(("q", "want"), [
    ("category:fraud", {1, 3}),
    ("-category:fraud", {2, 4}),
    ("severity:>=high", {1, 2}),
    ("severity:critical OR severity:low", {1, 4}),
    ("severity:[medium TO high]", {2, 3}),
    ("src:10.0.0.0/8", {1, 2}),
    ("ip:10.1.0.0/16 OR ip:2001:db8::/32", {1, 4}),
    ("ip:192.168.1.5", {3}),
    ("host:*.example.biz", {1, 3}),
    ("host:casino.example.biz", {1}),
    ("size:>1MB", {1, 4}),
    ("size:[1KB TO 1MB]", {2}),
    ("ts:[2026-01-02 TO 2026-01-03]", {1, 2}),
    ("ts:2026-01-04", {3}),
    ("ts:<2026-01-03", {1}),
    ("机密", {2}),
    ("网络赌场 casino", {1}),
    ('"Project Nightjar"', {4}),
    ("Nightjar OR 机密", {2, 4}),
    ("-机密 -casino", {3, 4}),
    ("(category:fraud OR category:spam) -zone:guest", {1, 4}),
    ("zone:guest", {3}),
    ("hash:" + f"{2:064x}", {2}),
    ("file:f3.docx", {3}),
    ("url:/share/*", {1, 2, 3, 4}),
    ("inspector:keyword list:secrets", {1, 2, 3, 4}),
    ("direction:download", {4}),
    ("triage:new", {1, 2, 3, 4}),
])
def test_compiled_queries_select_the_right_alerts(store: AlertStore, q: str, want: set[int]) -> None:
    rows = store.query(AlertQuery(expr=parse(q)), limit=100)
    assert {int(r["id"][1:]) for r in rows} == want
    assert store.count(AlertQuery(expr=parse(q))) == len(want)


@pytest.mark.parametrize(("q", "msg"), [
    ("colour:red", "unknown field 'colour'"),
    ("severity:enormous", "not a severity"),
    ("src:10.0.0.0/33", "not an address or network"),
    ("size:>lots", "not a size"),
    ("ts:yesterday", "not a time"),
    ("triage:maybe", "not a triage state"),
    ("severty:high", "did you mean 'severity'"),
])
def test_bad_fields_and_values_fail_at_compile_time(store: AlertStore, q: str, msg: str) -> None:
    with pytest.raises(QueryError) as e:
        store.alerts.compile(parse(q), {})  # type: ignore[arg-type]
    assert msg in e.value.message and e.value.position == 0


def test_values_never_reach_the_sql_text(store: AlertStore) -> None:
    evil = "x' OR 1=1 --"
    sql, params = store.alerts.compile(parse(f'host:"{evil}" -category:"{evil}" "{evil}"'), {})  # type: ignore[arg-type]
    assert evil not in sql and "1=1" not in sql and evil in params
    assert store.query(AlertQuery(expr=parse(f'host:"{evil}"'))) == []
