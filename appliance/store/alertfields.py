"""The fields of the hits' query language (`appliance.store.querylang`): how each compiles on ``alerts``.

Every compiler returns a condition on the ``alerts`` row (alias ``alerts``) whose indexes the store
keeps: time, severity, category, policy, zones, addresses (exact on ``src_ip``/``dest_ip``, CIDR as
a range on ``src_ipx``/``dest_ipx``), host, hashes, flow; findings' inspector and list, analysts'
verdicts, assignees and cases through subqueries on their (indexed) tables.
"""

from __future__ import annotations

from typing import Any

from appliance.store.querylang import (
    Clause,
    CompileCtx,
    FieldSpec,
    Schema,
    address_field,
    bool_field,
    keyword_field,
    number_field,
    parse_size,
    severity_field,
    time_field,
)

__all__ = ["HIT_FIELDS"]

TRIAGE_STATES = ("new", "investigating", "confirmed", "false_positive", "resolved", "ignored")
_TRIAGE_ALIASES = {"tp": "confirmed", "true_positive": "confirmed", "fp": "false_positive", "open": "new"}


def _hash(v: str) -> str:
    return v.strip().lower()


def _triage(c: Clause, ctx: CompileCtx) -> tuple[str, list[Any]]:
    if c.op != "=":
        raise ValueError("takes a state")
    v = _TRIAGE_ALIASES.get(c.value.lower(), c.value.lower())
    if v not in TRIAGE_STATES:
        raise ValueError(f"{c.value!r} is not a triage state ({', '.join(TRIAGE_STATES)})")
    return ctx.extra["repo"].triage_is(v)


def _console_table(ctx: CompileCtx, name: str) -> str:
    """A console table's name as the alert connection sees it (``console.`` on SQLite)."""
    verdicts = ctx.extra["repo"].verdicts
    if not verdicts:
        raise ValueError("needs the console's tables")
    return verdicts.rsplit(".", 1)[0] + "." + name if "." in verdicts else name


def _assignee(c: Clause, ctx: CompileCtx) -> tuple[str, list[Any]]:
    if c.op != "=":
        raise ValueError("takes a user name, me or none")
    v = c.value
    if v.lower() == "me":
        v = str(ctx.extra.get("user") or "")
    t = _console_table(ctx, "verdicts")
    if v.lower() == "none":
        return f"alerts.id NOT IN (SELECT alert_id FROM {t} WHERE assignee IS NOT NULL AND assignee <> '')", []
    return f"alerts.id IN (SELECT alert_id FROM {t} WHERE assignee = ?)", [v]


def _case(c: Clause, ctx: CompileCtx) -> tuple[str, list[Any]]:
    if c.op != "=" or not str(c.value).lstrip("#").isdigit():
        raise ValueError("takes a case number")
    t = _console_table(ctx, "case_hits")
    return f"alerts.id IN (SELECT alert_id FROM {t} WHERE case_id = ?)", [int(str(c.value).lstrip("#"))]


def _findings(col: str) -> Any:
    def comp(c: Clause, ctx: CompileCtx) -> tuple[str, list[Any]]:
        sql, params = keyword_field((col,), (col,), "").compile(c, ctx)
        return f"alerts.seq IN (SELECT alert_seq FROM findings WHERE {sql})", params

    return comp


def _port(c: Clause, ctx: CompileCtx) -> tuple[str, list[Any]]:
    a, pa = number_field(("port",), "src_port", "").compile(c, ctx)
    b, pb = number_field(("port",), "dest_port", "").compile(c, ctx)
    return f"({a}) OR ({b})", [*pa, *pb]


def _is(c: Clause, ctx: CompileCtx) -> tuple[str, list[Any]]:
    v = str(c.value).lower()
    if v == "new":
        return "alerts.seq > ?", [int(ctx.extra.get("baseline_seq") or 0)]
    if v in ("partial", "incomplete"):
        return "alerts.complete = 0", []
    if v == "suppressed":
        return "alerts.suppressed > 0", []
    raise ValueError(f"is:{c.value} is unknown (is:new — since your last visit, is:partial, is:suppressed)")


HIT_FIELDS = Schema([
    keyword_field(("id",), ("alerts.id",), "the hit's id"),
    time_field(("ts", "time", "@timestamp"), "alerts.ts_ns", "time: 2026-01-07, [2026-01-01 TO 2026-01-07], >now-24h"),
    severity_field(("severity", "sev"), "alerts.severity"),
    keyword_field(("category", "cat"), ("alerts.category",), "category (data-leak/pii, fraud…)"),
    keyword_field(("policy", "rule"), ("alerts.policy",), "the policy rule that raised it"),
    keyword_field(("profile",), ("alerts.profile",), "the profile that fired"),
    keyword_field(("zone",), ("alerts.src_zone", "alerts.dst_zone"), "either zone of the session"),
    keyword_field(("src_zone", "client_zone"), ("alerts.src_zone",), "the client's zone"),
    keyword_field(("dst_zone", "server_zone"), ("alerts.dst_zone",), "the server's zone"),
    address_field(("ip", "addr"), (("alerts.src_ip", "alerts.src_ipx"), ("alerts.dest_ip", "alerts.dest_ipx")),
                  "either address, or a network: ip:10.0.0.0/8"),
    address_field(("src", "src_ip"), (("alerts.src_ip", "alerts.src_ipx"),), "EVE source address (or network)"),
    address_field(("dst", "dest", "dest_ip"), (("alerts.dest_ip", "alerts.dest_ipx"),),
                  "EVE destination address (or network)"),
    FieldSpec(("port",), "either port", _port),
    number_field(("src_port",), "alerts.src_port", "EVE source port"),
    number_field(("dest_port", "dst_port"), "alerts.dest_port", "EVE destination port"),
    keyword_field(("host",), ("alerts.http_host",), "HTTP host (*.example.com for a domain)"),
    keyword_field(("url",), ("alerts.http_url",), "HTTP URL path (/upload* for a prefix)"),
    keyword_field(("file", "filename"), ("alerts.file_name",), "file name (*.docx)"),
    keyword_field(("md5",), ("alerts.file_md5",), "file MD5", normalise=_hash),
    keyword_field(("sha256",), ("alerts.file_sha256",), "file SHA-256", normalise=_hash),
    keyword_field(("hash",), ("alerts.file_sha256", "alerts.file_md5"), "MD5 or SHA-256", normalise=_hash),
    number_field(("size",), "alerts.file_size", "file size: >1MB, [10KB TO 5MB]", conv=parse_size),
    keyword_field(("mime", "type"), ("alerts.file_mime",), "MIME type (image/*)"),
    keyword_field(("proto",), ("alerts.proto",), "transport (TCP, UDP)"),
    keyword_field(("app", "app_proto"), ("alerts.app_proto",), "application protocol (http, smtp…)"),
    keyword_field(("direction",), ("alerts.direction",), "upload or download"),
    bool_field(("complete",), "alerts.complete", "content was whole (true) or partial (false)"),
    FieldSpec(("inspector",), "inspector that found it (keyword, dataclass…)", _findings("inspector")),
    FieldSpec(("list",), "the list that matched", _findings("rule")),
    FieldSpec(("triage", "verdict", "status"), "new, investigating, confirmed (tp), false_positive (fp), "
              "resolved, ignored", _triage),
    FieldSpec(("assignee",), "assigned analyst (me, none)", _assignee),
    FieldSpec(("case",), "case number", _case),
    keyword_field(("flow",), ("alerts.flow_uid",), "the session (flow id)"),
    keyword_field(("content",), ("alerts.content_id",), "the content object's id"),
    keyword_field(("sensor",), ("alerts.sensor",), "the sensor that raised it"),
    FieldSpec(("is",), "is:new (since your last visit), is:partial, is:suppressed", _is),
])
"""The hits' fields, first name canonical (the others are aliases)."""
