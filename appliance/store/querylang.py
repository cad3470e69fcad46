"""The analysts' query language for hits and retained content, parsed by hand and compiled to parameterised SQL.

    category:fraud severity:>=high -host:"casino.example.biz" (src:10.0.0.0/8 OR zone:guest) 机密
    ts:[2026-01-01 TO 2026-01-07] size:>1MB "Project Nightjar" NOT triage:false_positive

Grammar (recursive descent; ``AND`` binds tighter than ``OR``; juxtaposition is ``AND``)::

    query   := or EOF
    or      := and ("OR" and)*
    and     := unary (["AND"] unary)*
    unary   := ("-" | "NOT") unary | "(" or ")" | clause
    clause  := FIELD ":" value | PHRASE | WORD
    value   := PHRASE | ("[" | "{") bound "TO" bound ("]" | "}") | (">=" | ">" | "<=" | "<") WORD | WORD

``AND``, ``OR``, ``NOT`` and ``TO`` are operators only in capitals. A field value may contain
``:`` (IPv6 addresses, times). Free words and phrases are substring searches in any language
(`appliance.store.textindex`). A bad query raises `QueryError` with the character position and
a message. Compilation (`Compiler`) turns the tree into one SQL condition; every value is a
parameter (``?``), the SQL text holds only our own column names and operators.

The fields a query may name are a `Schema` (the hits' in `appliance.store.alerts`, the retained
content's in `appliance.store.content`): each field compiles its clause itself.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

__all__ = [
    "MAX_QUERY", "And", "Clause", "CompileCtx", "Compiler", "FieldSpec", "Node", "Not", "Or", "QueryError",
    "Schema", "Text", "ip_hex", "ip_range", "parse", "parse_size", "parse_time", "quote_value",
]

MAX_QUERY = 2000
"""Longest query accepted (characters)."""
MAX_NODES = 200
"""Most clauses in one query (bounds the SQL a query can make)."""
_FIELD = re.compile(r"([A-Za-z_@][A-Za-z0-9_.]*):")
_KEYWORDS = frozenset({"AND", "OR", "NOT"})
_SPECIAL = frozenset('()"')


class QueryError(ValueError):
    """A query that cannot be used: ``position`` (0-based character offset) and ``message``."""

    def __init__(self, position: int, message: str) -> None:
        super().__init__(f"at character {position + 1}: {message}")
        self.position = position
        self.message = message


# --------------------------------------------------------------------------- the tree


@dataclass(frozen=True, slots=True)
class Text:
    """A free word or quoted phrase: a substring of the searchable text."""

    term: str
    pos: int
    phrase: bool = False


@dataclass(frozen=True, slots=True)
class Clause:
    """``field:value``; ``op`` is ``=``, ``<``, ``<=``, ``>``, ``>=`` or ``range`` (then ``value`` is
    ``(low, high, low_inclusive, high_inclusive)``, an open end ``*`` is None)."""

    name: str
    op: str
    value: Any
    pos: int
    quoted: bool = False


@dataclass(frozen=True, slots=True)
class Not:
    item: Node


@dataclass(frozen=True, slots=True)
class And:
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    items: tuple[Node, ...]


Node = Text | Clause | Not | And | Or


# --------------------------------------------------------------------------- scanning


@dataclass(slots=True)
class _Tok:
    kind: str
    """``(``, ``)``, ``-``, ``WORD``, ``PHRASE``, ``OP`` (AND/OR/NOT), ``CLAUSE``, ``EOF``."""
    pos: int
    text: str = ""
    clause: Clause | None = None


def _phrase(q: str, i: int) -> tuple[str, int]:
    """The phrase starting at the quote ``q[i]``; returns (text, index after the closing quote)."""
    out, j = [], i + 1
    while j < len(q):
        c = q[j]
        if c == "\\" and j + 1 < len(q):
            out.append(q[j + 1])
            j += 2
            continue
        if c == '"':
            return "".join(out), j + 1
        out.append(c)
        j += 1
    raise QueryError(i, "unterminated quote: add the closing \"")


def _word_end(q: str, i: int) -> int:
    j = i
    while j < len(q) and not q[j].isspace() and q[j] not in _SPECIAL:
        j += 1
    return j


def _value(q: str, name: str, start: int, i: int) -> tuple[Clause, int]:
    """The value of the clause ``name:`` whose value starts at ``q[i]``."""
    if i >= len(q) or q[i].isspace() or q[i] == ")":
        raise QueryError(i, f"{name}: needs a value after the colon (quote it if it has spaces)")
    c = q[i]
    if c == '"':
        text, j = _phrase(q, i)
        return Clause(name, "=", text, start, quoted=True), j
    if c in "[{":  # [ ] include the bound, { } exclude it (either end)
        ends = [j for j in (q.find("]", i), q.find("}", i)) if j >= 0]
        if not ends:
            raise QueryError(i, "unterminated range: write [FROM TO UNTIL]")
        close = min(ends)
        parts = re.split(r"\s+TO\s+", q[i + 1:close].strip())
        if len(parts) != 2 or not parts[0] or not parts[1]:
            raise QueryError(i, "a range is [FROM TO UNTIL] (TO in capitals; * for an open end)")
        lo, hi = (None if p == "*" else p.strip('"') for p in parts)
        return Clause(name, "range", (lo, hi, c == "[", q[close] == "]"), start), close + 1
    op = "="
    for cand in (">=", "<=", ">", "<"):
        if q.startswith(cand, i):
            op, i = cand, i + len(cand)
            break
    if i < len(q) and q[i] == '"':
        text, j = _phrase(q, i)
        return Clause(name, op, text, start, quoted=True), j
    j = _word_end(q, i)
    if j == i:
        raise QueryError(i, f"{name}:{op if op != '=' else ''} needs a value")
    return Clause(name, op, q[i:j], start), j


def _tokens(q: str) -> list[_Tok]:
    out: list[_Tok] = []
    i = 0
    while i < len(q):
        c = q[i]
        if c.isspace():
            i += 1
        elif c in "()":
            out.append(_Tok(c, i))
            i += 1
        elif c == '"':
            text, j = _phrase(q, i)
            out.append(_Tok("PHRASE", i, text))
            i = j
        elif c == "-" and i + 1 < len(q) and not q[i + 1].isspace():
            out.append(_Tok("-", i))
            i += 1
        else:
            m = _FIELD.match(q, i)
            if m:
                clause, j = _value(q, m.group(1).lower(), i, m.end())
                out.append(_Tok("CLAUSE", i, q[i:j], clause))
                i = j
                continue
            j = _word_end(q, i)
            word = q[i:j]
            out.append(_Tok("OP" if word in _KEYWORDS else "WORD", i, word))
            i = j
    out.append(_Tok("EOF", len(q)))
    return out


# --------------------------------------------------------------------------- parsing


class _Parser:
    def __init__(self, q: str) -> None:
        self.toks = _tokens(q)
        self.i = 0
        self.nodes = 0

    @property
    def tok(self) -> _Tok:
        return self.toks[self.i]

    def take(self) -> _Tok:
        t = self.toks[self.i]
        self.i += 1
        return t

    def leaf(self, node: Node, pos: int) -> Node:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise QueryError(pos, f"too many terms (at most {MAX_NODES})")
        return node

    def parse(self) -> Node | None:
        if self.tok.kind == "EOF":
            return None
        node = self.or_()
        if self.tok.kind == ")":
            raise QueryError(self.tok.pos, "unmatched ')'")
        if self.tok.kind != "EOF":  # pragma: no cover - or_() consumes everything else
            raise QueryError(self.tok.pos, f"unexpected {self.tok.text or self.tok.kind!r}")
        return node

    def or_(self) -> Node:
        items = [self.and_()]
        while self.tok.kind == "OP" and self.tok.text == "OR":
            t = self.take()
            if self.tok.kind in ("EOF", ")") or (self.tok.kind == "OP" and self.tok.text != "NOT"):
                raise QueryError(t.pos, "OR needs a term on both sides")
            items.append(self.and_())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def and_(self) -> Node:
        items = [self.unary()]
        while True:
            t = self.tok
            if t.kind == "OP" and t.text == "AND":
                self.take()
                if self.tok.kind in ("EOF", ")") or (self.tok.kind == "OP" and self.tok.text != "NOT"):
                    raise QueryError(t.pos, "AND needs a term on both sides")
                items.append(self.unary())
            elif t.kind in ("WORD", "PHRASE", "CLAUSE", "(", "-") or (t.kind == "OP" and t.text == "NOT"):
                items.append(self.unary())
            else:
                break
        return items[0] if len(items) == 1 else And(tuple(items))

    def unary(self) -> Node:
        t = self.tok
        if t.kind == "-" or (t.kind == "OP" and t.text == "NOT"):
            self.take()
            if self.tok.kind in ("EOF", ")") or (self.tok.kind == "OP" and self.tok.text != "NOT"):
                raise QueryError(t.pos, f"{'-' if t.kind == '-' else 'NOT'} needs a term after it")
            return Not(self.unary())
        if t.kind == "(":
            self.take()
            if self.tok.kind == ")":
                raise QueryError(t.pos, "empty parentheses")
            node = self.or_()
            if self.tok.kind != ")":
                raise QueryError(t.pos, "unclosed '(': add the matching ')'")
            self.take()
            return node
        if t.kind == "CLAUSE":
            self.take()
            assert t.clause is not None
            return self.leaf(t.clause, t.pos)
        if t.kind in ("WORD", "PHRASE"):
            self.take()
            return self.leaf(Text(t.text, t.pos, t.kind == "PHRASE"), t.pos)
        if t.kind == ")":
            raise QueryError(t.pos, "unmatched ')'")
        if t.kind == "OP":
            raise QueryError(t.pos, f"{t.text} needs a term before it")
        raise QueryError(t.pos, "the query ends too early")


def parse(q: str) -> Node | None:
    """The tree of query *q* (None for an empty query); `QueryError` when it is not valid."""
    if len(q) > MAX_QUERY:
        raise QueryError(MAX_QUERY, f"the query is longer than {MAX_QUERY} characters")
    return _Parser(q).parse()


def quote_value(value: str) -> str:
    """*value* as a query value: bare when that reads back the same, else quoted with escapes."""
    s = str(value)
    if s and not any(c.isspace() or c in '()"\\[]{}<>' for c in s) and not s.startswith("-") \
            and s not in _KEYWORDS and s not in ("TO",):
        return s
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


# --------------------------------------------------------------------------- values


_UNITS = {"": 1, "B": 1, "K": 1000, "KB": 1000, "M": 10**6, "MB": 10**6, "G": 10**9, "GB": 10**9,
          "T": 10**12, "TB": 10**12, "KIB": 1024, "MIB": 1024**2, "GIB": 1024**3, "TIB": 1024**4}
_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*$")
_REL = re.compile(r"^now(?:\s*-\s*([0-9]+)\s*([smhdw]))?$")
_REL_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_size(v: str) -> int:
    """``1500``, ``1.5MB``, ``64KiB`` → bytes (SI units for KB/MB/GB, binary for KiB/MiB/GiB)."""
    m = _SIZE.match(v)
    if not m or m.group(2).upper() not in _UNITS:
        raise ValueError(f"{v!r} is not a size (e.g. 1500, 64KB, 1.5MB, 2GiB)")
    return int(float(m.group(1)) * _UNITS[m.group(2).upper()])


def parse_time(v: str, tz: tzinfo = UTC, now_ns: int | None = None, end: bool = False) -> int:
    """A time as nanoseconds since the epoch: ISO 8601 (``2026-01-07``, ``2026-01-07T10:00``, with or
    without an offset; without one in *tz*) or ``now``/``now-7d``. A date alone as an upper bound
    (*end*) means the end of that day."""
    s = v.strip()
    if s.isdigit() and len(s) >= 12:  # nanoseconds since the epoch (links the console makes)
        return int(s)
    m = _REL.match(s)
    if m:
        now = now_ns if now_ns is not None else int(datetime.now(UTC).timestamp() * 1e9)
        back = int(m.group(1)) * _REL_UNITS[m.group(2)] if m.group(1) else 0
        return now - back * 10**9
    try:
        dt = datetime.fromisoformat(s.replace(" ", "T", 1) if re.match(r"^\d{4}-\d\d-\d\d \d", s) else s)
    except ValueError:
        raise ValueError(f"{v!r} is not a time (use 2026-01-07, 2026-01-07T10:30 or now-24h)") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=tz)
    if end and re.fullmatch(r"\d{4}-\d\d-\d\d", s):
        dt += timedelta(days=1)
    return int(dt.timestamp() * 1e9)


def ip_hex(ip: ipaddress.IPv4Address | ipaddress.IPv6Address | str | None) -> str | None:
    """An address as 32 hex digits of its IPv6 form (IPv4 mapped into ``::ffff:0:0/96``): sorts like the numbers."""
    if ip is None:
        return None
    try:
        a = ip if not isinstance(ip, str) else ipaddress.ip_address(ip.strip("[]"))
    except ValueError:
        return None
    n = int(a) + (0xFFFF << 32) if a.version == 4 else int(a)
    return f"{n:032x}"


def ip_range(v: str) -> tuple[str, str] | str:
    """A CIDR as the (lowest, highest) `ip_hex` of its addresses, or one address as its text."""
    s = v.strip()
    if "/" in s:
        try:
            net = ipaddress.ip_network(s, strict=False)
        except ValueError:
            raise ValueError(f"{v!r} is not an address or network (e.g. 10.0.0.0/8, 2001:db8::/32)") from None
        lo, hi = ip_hex(net.network_address), ip_hex(net.broadcast_address)
        assert lo is not None and hi is not None
        return lo, hi
    try:
        return str(ipaddress.ip_address(s.strip("[]")))
    except ValueError:
        raise ValueError(f"{v!r} is not an address or network (e.g. 10.1.2.3, 10.0.0.0/8)") from None


# --------------------------------------------------------------------------- compiling


@dataclass(slots=True)
class CompileCtx:
    """What compiling needs besides the tree: the dialect, the user's time zone, "now", the
    search index condition for free text, and per-schema extras (verdict table names…)."""

    dialect: str
    tz: tzinfo = UTC
    now_ns: int | None = None
    text: Callable[[list[str], bool], tuple[str, list[Any]]] | None = None
    """(terms, many) → a condition selecting the rows that contain every term."""
    extra: dict[str, Any] = field(default_factory=dict)


FieldCompiler = Callable[[Clause, CompileCtx], tuple[str, list[Any]]]


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """A field of a schema: its names, what it means (for the help), how a clause on it compiles."""

    names: tuple[str, ...]
    help: str
    compile: FieldCompiler


class Schema:
    """The fields a query language instance knows."""

    def __init__(self, specs: Iterable[FieldSpec]) -> None:
        self.specs = tuple(specs)
        self.by_name = {n: s for s in self.specs for n in s.names}

    def names(self) -> list[str]:
        return [s.names[0] for s in self.specs]


class Compiler:
    """Compiles a tree against a `Schema` (see the module doc)."""

    def __init__(self, schema: Schema, ctx: CompileCtx) -> None:
        self.schema, self.ctx = schema, ctx

    def compile(self, node: Node) -> tuple[str, list[Any]]:
        if isinstance(node, Text):
            return self._text([node.term])
        if isinstance(node, Clause):
            spec = self.schema.by_name.get(node.name)
            if spec is None:
                import difflib

                hint = difflib.get_close_matches(node.name, list(self.schema.by_name), n=1)
                raise QueryError(node.pos, f"unknown field {node.name!r}"
                                 + (f" (did you mean {hint[0]!r}?)" if hint else
                                    f" (fields: {', '.join(self.schema.names())})"))
            try:
                sql, params = spec.compile(node, self.ctx)
            except QueryError:
                raise
            except ValueError as exc:
                raise QueryError(node.pos, f"{node.name}: {exc}") from None
            return f"({sql})", params
        if isinstance(node, Not):
            sql, params = self.compile(node.item)
            return f"NOT COALESCE({sql}, FALSE)", params
        if isinstance(node, And):
            texts = [n.term for n in node.items if isinstance(n, Text)]
            parts: list[tuple[str, list[Any]]] = [self._text(texts)] if texts else []
            parts += [self.compile(n) for n in node.items if not isinstance(n, Text)]
            return "(" + " AND ".join(p[0] for p in parts) + ")", [x for p in parts for x in p[1]]
        assert isinstance(node, Or)
        parts = [self.compile(n) for n in node.items]
        return "(" + " OR ".join(p[0] for p in parts) + ")", [x for p in parts for x in p[1]]

    def _text(self, terms: list[str]) -> tuple[str, list[Any]]:
        terms = [t for t in terms if t.strip()]
        if not terms:
            return "TRUE", []
        if self.ctx.text is None:
            raise QueryError(0, "free-text search is not available here; name a field")
        sql, params = self.ctx.text(terms, bool(self.ctx.extra.get("many")))
        return (f"({sql})" if sql else "TRUE"), params


# --------------------------------------------------------------------------- field compilers


def _range_or_cmp(c: Clause, col: str, conv: Callable[[str, bool], Any]) -> tuple[str, list[Any]]:
    """A comparison or range on one column, values converted by *conv(value, is_upper_bound)*."""
    if c.op == "range":
        lo, hi, lo_inc, hi_inc = c.value
        conds, params = [], []
        if lo is not None:
            conds.append(f"{col} {'>=' if lo_inc else '>'} ?")
            params.append(conv(lo, False))
        if hi is not None:
            conds.append(f"{col} {'<=' if hi_inc else '<'} ?")
            params.append(conv(hi, True))
        return (" AND ".join(conds) or "TRUE"), params
    return f"{col} {c.op} ?", [conv(c.value, c.op in ("<", "<="))]


def number_field(names: tuple[str, ...], col: str, help_: str, conv: Callable[[str], int] | None = None) -> FieldSpec:
    """An integer column (``size`` takes units)."""
    def to_int(v: str, _end: bool) -> int:
        if conv is not None:
            return conv(v)
        try:
            return int(v)
        except ValueError:
            raise ValueError(f"{v!r} is not a whole number") from None

    return FieldSpec(names, help_, lambda c, ctx: _range_or_cmp(c, col, to_int))


def time_field(names: tuple[str, ...], col: str, help_: str) -> FieldSpec:
    """A nanosecond time column; a day alone (``ts:2026-01-07``) is that whole day, in the user's zone."""
    def comp(c: Clause, ctx: CompileCtx) -> tuple[str, list[Any]]:
        if c.op == "=":
            lo = parse_time(c.value, ctx.tz, ctx.now_ns)
            hi = parse_time(c.value, ctx.tz, ctx.now_ns, end=True)
            if hi == lo:
                hi = lo + 60 * 10**9  # a minute: `ts:2026-01-07T10:30`
            return f"{col} >= ? AND {col} < ?", [lo, hi]
        op_end = {"<": False, "<=": True}
        if c.op in op_end:
            return f"{col} < ?", [parse_time(c.value, ctx.tz, ctx.now_ns, end=op_end[c.op])]
        if c.op == "range":
            lo, hi, lo_inc, hi_inc = c.value
            conds, params = [], []
            if lo is not None:  # a day alone as the lower bound: from its start
                conds.append(f"{col} {'>=' if lo_inc else '>'} ?")
                params.append(parse_time(lo, ctx.tz, ctx.now_ns))
            if hi is not None:  # a day alone, included: up to (not including) the next day's start
                end = parse_time(hi, ctx.tz, ctx.now_ns, end=hi_inc)
                day_only = re.fullmatch(r"\d{4}-\d\d-\d\d", hi.strip()) is not None
                conds.append(f"{col} {'<' if day_only or not hi_inc else '<='} ?")
                params.append(end)
            return (" AND ".join(conds) or "TRUE"), params
        return _range_or_cmp(c, col, lambda v, end: parse_time(v, ctx.tz, ctx.now_ns, end=end))

    return FieldSpec(names, help_, comp)


def _prefix_cond(col: str, value: str) -> tuple[str, list[Any]]:
    """``value*``: an index-friendly range; other wildcards: LIKE (``%``/``_`` in the value literal)."""
    if value.endswith("*") and "*" not in value[:-1]:
        p = value[:-1]
        if not p:
            return f"{col} IS NOT NULL", []
        return f"{col} >= ? AND {col} < ?", [p, p[:-1] + chr(ord(p[-1]) + 1)]
    like = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_").replace("*", "%")
    return f"{col} LIKE ? ESCAPE '\\'", [like]


def keyword_field(names: tuple[str, ...], cols: tuple[str, ...], help_: str, lower: bool = False,
                  normalise: Callable[[str], str] | None = None) -> FieldSpec:
    """Exact match on one or more columns (any of them); ``*`` is a wildcard (unquoted)."""
    def comp(c: Clause, ctx: CompileCtx) -> tuple[str, list[Any]]:
        if c.op != "=":
            raise ValueError("takes a value, not a comparison or range")
        v = c.value.lower() if lower else c.value
        if normalise is not None:
            v = normalise(v)
        parts = [(_prefix_cond(col, v) if "*" in v and not c.quoted else (f"{col} = ?", [v])) for col in cols]
        return " OR ".join(f"({p[0]})" if len(cols) > 1 else p[0] for p in parts), [x for p in parts for x in p[1]]

    return FieldSpec(names, help_, comp)


def address_field(names: tuple[str, ...], cols: tuple[tuple[str, str], ...], help_: str) -> FieldSpec:
    """An address (exact, on the text columns) or a CIDR (a range on the ``*_ipx`` hex columns)."""
    def comp(c: Clause, ctx: CompileCtx) -> tuple[str, list[Any]]:
        if c.op != "=":
            raise ValueError("takes an address or a network (10.0.0.0/8), not a comparison")
        got = ip_range(c.value)
        if isinstance(got, str):
            parts = [f"{text} = ?" for text, _ in cols]
            params: list[Any] = [got] * len(cols)
        else:
            parts = [f"({hexcol} >= ? AND {hexcol} <= ?)" for _, hexcol in cols]
            params = [x for _ in cols for x in got]
        return " OR ".join(parts), params

    return FieldSpec(names, help_, comp)


SEVERITIES = {"critical": 1, "high": 2, "medium": 3, "low": 4, "info": 5}


def severity_field(names: tuple[str, ...], col: str) -> FieldSpec:
    """Severity names or 1-5 (1 = critical); ``>=high`` is high or worse (smaller numbers)."""
    def level(v: str) -> int:
        n = SEVERITIES.get(v.lower()) if not v.isdigit() else int(v)
        if n is None or not 1 <= n <= 5:
            raise ValueError(f"{v!r} is not a severity ({', '.join(SEVERITIES)} or 1-5)")
        return n

    flip = {">": "<", ">=": "<=", "<": ">", "<=": ">=", "=": "="}

    def comp(c: Clause, ctx: CompileCtx) -> tuple[str, list[Any]]:
        if c.op == "range":
            lo, hi, lo_inc, hi_inc = c.value
            # "worse" is a smaller number: [low TO high] = from low up to high severity
            conds, params = [], []
            if lo is not None:
                conds.append(f"{col} {'<=' if lo_inc else '<'} ?")
                params.append(level(lo))
            if hi is not None:
                conds.append(f"{col} {'>=' if hi_inc else '>'} ?")
                params.append(level(hi))
            return (" AND ".join(conds) or "TRUE"), params
        return f"{col} {flip[c.op]} ?", [level(c.value)]

    return FieldSpec(names, "critical, high, medium, low, info; >=high is high or worse", comp)


def bool_field(names: tuple[str, ...], col: str, help_: str) -> FieldSpec:
    def comp(c: Clause, ctx: CompileCtx) -> tuple[str, list[Any]]:
        v = str(c.value).lower()
        if c.op != "=" or v not in ("true", "false", "yes", "no", "1", "0"):
            raise ValueError("takes true or false")
        return f"{col} = ?", [1 if v in ("true", "yes", "1") else 0]

    return FieldSpec(names, help_, comp)
