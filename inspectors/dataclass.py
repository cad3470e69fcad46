"""Data-class inspector: national IDs, bank cards, phone numbers, e-mail and IPv4 addresses.

Each ``dataclass`` list has a ``validator`` (``prc_id``, ``luhn``, ``cn_mobile``, ``email``,
``ipv4`` or empty) and an optional ``pattern``. Without a pattern the validator's built-in
pattern runs (Python ``re``: vetted, linear, with digit look-arounds Hyperscan lacks). A policy's
own pattern is compiled with Hyperscan (never backtracks, so a hostile text cannot make it
slow); its matches are then checked by the validator, if any.

Matching is on the N1 normal form (full-width digits folded, zero-width characters removed,
lower case), offsets are mapped back to the original text. Each valid match adds the list's
``weight`` to the finding's score; evidence shows the value masked in the middle so that the
alert does not leak it. The validators are pure functions usable on their own.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import hyperscan as hs

from appliance.model.alerts import Evidence, Finding
from appliance.model.content import ContentObject
from appliance.model.inspection import InspectorConfig, ListSpec
from inspectors import normalize as nz
from inspectors.base import DEFAULT_MAX_TEXT_CHARS, InspectContext, InspectorConfigError
from inspectors.keyword import StreamDb, char_offsets, normalized

# --------------------------------------------------------------------------- validators

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
_PROVINCES = frozenset({11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44,
                        45, 46, 50, 51, 52, 53, 54, 61, 62, 63, 64, 65, 71, 81, 82, 83, 91})


def prc_id_check_digit(first17: str) -> str:
    """GB 11643 (ISO 7064 MOD 11-2) check character for 17 digits."""
    return _ID_CHECK[sum(int(c) * w for c, w in zip(first17, _ID_WEIGHTS)) % 11]


def prc_id_valid(s: str) -> bool:
    """18-character PRC resident ID: province code, real birth date (1900-2099), check digit."""
    s = s.strip().upper()
    if len(s) != 18 or not s[:17].isdigit() or not (s[17].isdigit() or s[17] == "X") or not s.isascii():
        return False
    if int(s[:2]) not in _PROVINCES:
        return False
    try:
        born = datetime.date(int(s[6:10]), int(s[10:12]), int(s[12:14]))
    except ValueError:
        return False
    if not 1900 <= born.year <= 2099:
        return False
    return prc_id_check_digit(s[:17]) == s[17]


def _digits(s: str) -> str:
    return "".join(c for c in s if c.isascii() and c.isdigit())


def luhn_check_digit(payload: str) -> str:
    """The Luhn digit to append to ``payload``."""
    total = 0
    for i, c in enumerate(reversed(payload)):
        d = int(c)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


def luhn_valid(s: str, *, iin: bool = False) -> bool:
    """13-19 digits (spaces/hyphens allowed) passing Luhn; ``iin``: also a plausible card prefix."""
    d = _digits(s)
    if not 13 <= len(d) <= 19 or len(set(d)) == 1:
        return False
    if luhn_check_digit(d[:-1]) != d[-1]:
        return False
    return iin_plausible(d) if iin else True


def iin_plausible(d: str) -> bool:
    """Whether the issuer prefix and length fit a major scheme (Visa, Mastercard, UnionPay, Amex,
    JCB, Discover, Diners, Maestro)."""
    n = len(d)
    p2, p4 = int(d[:2]), int(d[:4])
    if d[0] == "4":
        return n in (13, 16, 19)
    if 51 <= p2 <= 55 or 2221 <= p4 <= 2720:
        return n == 16
    if p2 == 62 or p2 == 81:
        return 16 <= n <= 19
    if p2 in (34, 37):
        return n == 15
    if 3528 <= p4 <= 3589:
        return 16 <= n <= 19
    if p4 == 6011 or p2 == 65 or 644 <= int(d[:3]) <= 649:
        return 16 <= n <= 19
    if p2 in (36, 38, 39) or 300 <= int(d[:3]) <= 305:
        return 14 <= n <= 19
    if p2 in (50, 56, 57, 58, 63, 67, 68, 69):
        return 12 <= n <= 19
    return False


_MOBILE_PREFIX = re.compile(r"1(?:3\d|4[5-9]|5[0-35-9]|6[2567]|7[0-8]|8\d|9[0-35-9])\d{8}")


def cn_mobile_valid(s: str) -> bool:
    """Mainland China mobile number: 11 digits 1[3-9]x…, optional +86/0086, spaces/hyphens."""
    d = _digits(s)
    if len(d) == 15 and d.startswith("0086"):
        d = d[4:]
    elif len(d) == 13 and d.startswith("86"):
        d = d[2:]
    return len(d) == 11 and _MOBILE_PREFIX.fullmatch(d) is not None


_LOCAL = re.compile(r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*", re.I)
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?", re.I)


def email_valid(s: str) -> bool:
    """A dot-atom address (RFC 5321 limits) with a DNS domain and an alphabetic TLD."""
    local, at, domain = s.rpartition("@")
    if not at or not local or len(local) > 64 or len(domain) > 253 or not s.isascii():
        return False
    if not _LOCAL.fullmatch(local):
        return False
    labels = domain.split(".")
    if len(labels) < 2 or not all(_LABEL.fullmatch(x) for x in labels):
        return False
    tld = labels[-1]
    return len(tld) >= 2 and tld.isalpha()


def ipv4_valid(s: str) -> bool:
    """Dotted quad, each octet 0-255 without leading zeros."""
    parts = s.split(".")
    if len(parts) != 4:
        return False
    for p in parts:
        if not p.isascii() or not p.isdigit() or len(p) > 3 or (len(p) > 1 and p[0] == "0") or int(p) > 255:
            return False
    return True


@dataclass(slots=True, frozen=True)
class _Builtin:
    pattern: str
    validate: Callable[[str, dict[str, Any]], bool]


_NUM_L, _NUM_R = r"(?<![\d.-])", r"(?![\d])"
BUILTINS: dict[str, _Builtin] = {
    "prc_id": _Builtin(
        r"(?<!\d)[1-9]\d{5}(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[\dx](?![\dx])",
        lambda s, _o: prc_id_valid(s)),
    "luhn": _Builtin(
        _NUM_L + r"(?:\d{13,19}|\d{4}(?:([ -])\d{4}){2,3}(?:\1\d{1,4})?|\d{4}([ -])\d{6}\2\d{4,5})" + _NUM_R,
        lambda s, o: luhn_valid(s, iin=bool(o.get("iin", True)))),
    "cn_mobile": _Builtin(
        r"(?<![\d+])(?:(?:\+|00)86[ -]?)?1[3-9]\d(?:([ -]?)\d{4}\1\d{4})" + _NUM_R,
        lambda s, _o: cn_mobile_valid(s)),
    "email": _Builtin("", lambda s, _o: email_valid(s)),  # found around '@' (see _emails)
    "ipv4": _Builtin(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?!\d|\.\d)", lambda s, _o: ipv4_valid(s)),
}
VALIDATORS = tuple(BUILTINS)

_AT_LOCAL = re.compile(r"[a-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}\Z")
_AT_DOMAIN = re.compile(r"[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?")


def _emails(text: str, cap: int) -> Iterator[tuple[int, int]]:
    """Candidate addresses around each '@' (bounded work per '@', no backtracking blow-up)."""
    pos = text.find("@")
    n = 0
    while pos >= 0 and n < cap:
        m = _AT_LOCAL.search(text, max(0, pos - 64), pos)
        d = _AT_DOMAIN.match(text, pos + 1, pos + 254)
        if m and d:
            s = m.start()
            while s < pos and text[s] == ".":
                s += 1
            e = d.end()
            if s < pos:
                n += 1
                yield s, e
                pos = text.find("@", e)
                continue
        pos = text.find("@", pos + 1)


# Every built-in number pattern lies inside a run of digits and separators that starts with a
# digit or '+' and is at least 7 long: one fast scan finds those runs, the patterns run in them.
_WINDOW = re.compile(r"[\d+][\dx .+-]{6,}", re.ASCII)


def _windows(text: str) -> list[tuple[int, int]]:
    return [m.span() for m in _WINDOW.finditer(text)]


# --------------------------------------------------------------------------- masking


def mask(value: str) -> str:
    """``value`` with its middle hidden: 1101**********1234, j***@example.com."""
    if "@" in value:
        local, _, domain = value.rpartition("@")
        return (local[:1] + "*" * max(1, len(local) - 1)) + "@" + domain
    alnum = [i for i, c in enumerate(value) if c.isalnum()]
    keep = 4 if len(alnum) >= 12 else 2 if len(alnum) >= 6 else 1
    hide = set(alnum[keep:len(alnum) - keep])
    return "".join("*" if i in hide else c for i, c in enumerate(value))


_DIGIT_RUN = re.compile(r"\d")


def _masked_snippet(text: str, s: int, e: int, context: int) -> str:
    left = _DIGIT_RUN.sub("*", text[max(0, s - context):s])
    right = _DIGIT_RUN.sub("*", text[e:e + context])
    return left + mask(text[s:e]) + right


# --------------------------------------------------------------------------- inspector


@dataclass(slots=True)
class _Class:
    spec: ListSpec
    validate: Callable[[str], bool] | None
    builtin_re: re.Pattern[str] | None = None
    hs_index: int = -1  # pattern id in the custom Hyperscan database
    email: bool = False


class DataClassInspector:
    """``dataclass``: data-class lists (``ListSpec.kind == "dataclass"``) on an object's text.

    Params: ``max_text_chars`` (8 Mi), ``max_candidates`` (20,000 per list and object),
    ``max_evidence`` (5), ``snippet_context`` (20; digits in the context are masked too).
    """

    name = "dataclass"
    kinds = frozenset({"text"})
    cost: Literal["cheap", "expensive"] = "cheap"

    def __init__(self) -> None:
        self.classes: list[_Class] = []
        self.db: StreamDb | None = None
        self.params: dict[str, int] = {}

    def configure(self, config: InspectorConfig) -> None:
        classes: list[_Class] = []
        custom: list[bytes] = []
        for spec in config.lists:
            where = f"list {spec.name!r}"
            if spec.kind != "dataclass":
                raise InspectorConfigError(
                    f"{where} has kind {spec.kind!r}; the dataclass inspector takes 'dataclass' lists")
            if spec.validator and spec.validator not in BUILTINS:
                raise InspectorConfigError(
                    f"{where}: unknown validator {spec.validator!r} (one of {', '.join(VALIDATORS)})")
            if spec.weight < 0:
                raise InspectorConfigError(f"{where}: weight must not be negative")
            opts = dict(spec.options)
            b = BUILTINS.get(spec.validator)
            validate = (lambda s, _b=b, _o=opts: _b.validate(s, _o)) if b else None
            if spec.pattern:
                c = _Class(spec, validate, hs_index=len(custom))
                custom.append(spec.pattern.encode("utf-8"))
                try:
                    StreamDb([custom[-1]], [0], [_HS_FLAGS], literal=False)
                except hs.error as exc:
                    raise InspectorConfigError(
                        f"{where}: pattern {spec.pattern!r}: {exc} (Hyperscan syntax: no look-around "
                        "or back-references; \\b is supported)") from None
            elif b is None:
                raise InspectorConfigError(f"{where}: needs a pattern or a validator")
            elif spec.validator == "email":
                c = _Class(spec, validate, email=True)
            else:
                c = _Class(spec, validate, builtin_re=re.compile(b.pattern, re.ASCII))
            classes.append(c)
        p = dict(config.params)
        try:
            self.params = {
                "max_text_chars": int(p.get("max_text_chars", DEFAULT_MAX_TEXT_CHARS)),
                "max_candidates": int(p.get("max_candidates", 20_000)),
                "max_evidence": int(p.get("max_evidence", 5)),
                "snippet_context": int(p.get("snippet_context", 20)),
            }
        except (TypeError, ValueError) as exc:
            raise InspectorConfigError(f"dataclass inspector params: {exc}") from None
        self.db = (StreamDb(custom, list(range(len(custom))), [_HS_FLAGS] * len(custom), literal=False)
                   if custom else None)
        self.classes = classes

    def inspect(self, obj: ContentObject, ctx: InspectContext) -> Iterator[Finding]:
        if not self.classes:
            return
        text = ctx.text(obj)
        if not text:
            return
        cap = self.params["max_text_chars"]
        if len(text) > cap:
            ctx.flag(obj, "dataclass_truncated")
            text = text[:cap]
        n1 = normalized(obj, ctx, text, cap)
        yield from self.scan(text, n1, content_id=obj.id, ctx=ctx, obj=obj)

    def scan(self, text: str, n1: nz.Normalized | None = None, *, content_id: str = "",
             ctx: InspectContext | None = None, obj: ContentObject | None = None) -> list[Finding]:
        """Findings for ``text`` (``n1`` = its cached N1 form, computed when None)."""
        if n1 is None:
            n1 = nz.normalize(text[:self.params.get("max_text_chars", DEFAULT_MAX_TEXT_CHARS)])
        t = n1.text
        cap = self.params.get("max_candidates", 20_000)
        custom = self._custom(t, cap, ctx, obj)
        windows: list[tuple[int, int]] | None = None
        out: list[Finding] = []
        for c in self.classes:
            if c.email:
                spans = list(_emails(t, cap)) if "@" in t else []
            elif c.builtin_re is not None:
                spans = []
                if windows is None:
                    windows = _windows(t)
                for ws, we in windows:  # the patterns only run where digits cluster
                    for m in c.builtin_re.finditer(t, ws, we):
                        spans.append(m.span())
                    if len(spans) >= cap:
                        del spans[cap:]
                        break
            else:
                spans = custom.get(c.hs_index, [])
            if len(spans) >= cap and ctx is not None and obj is not None:
                ctx.flag(obj, "dataclass_candidate_cap")
            valid: list[tuple[int, int]] = []
            invalid = 0
            for s, e in spans:
                if c.validate is None or c.validate(t[s:e]):
                    valid.append(n1.span(s, e))
                else:
                    invalid += 1
            if not valid:
                continue
            ctx_chars = self.params.get("snippet_context", 20)
            ev = tuple(Evidence(s, e, _masked_snippet(text, s, e, ctx_chars))
                       for s, e in valid[:self.params.get("max_evidence", 5)])
            detail = {"list": c.spec.name, "validator": c.spec.validator or "none", "count": str(len(valid)),
                      "invalid": str(invalid)}
            out.append(Finding("dataclass", content_id, c.spec.name, float(c.spec.weight * len(valid)), ev, detail))
        return out

    def _custom(self, t: str, cap: int, ctx: InspectContext | None,
                obj: ContentObject | None) -> dict[int, list[tuple[int, int]]]:
        """Policy patterns via Hyperscan: leftmost start, longest end, non-overlapping."""
        if self.db is None:
            return {}
        data = t.encode("utf-8", "replace")
        hits: list[tuple[int, int, int]] = []
        status = self.db.scan(data, 65536, hits, cap * 8, ctx.expired if ctx else None)
        if status != "ok" and ctx is not None and obj is not None:
            ctx.flag(obj, f"dataclass_{status}")
        best: dict[tuple[int, int], int] = {}
        for pid, s, e in char_offsets(t, data, hits):
            if e > best.get((pid, s), -1):
                best[(pid, s)] = e
        out: dict[int, list[tuple[int, int]]] = {}
        for (pid, s), e in sorted(best.items()):
            spans = out.setdefault(pid, [])
            if (not spans or s >= spans[-1][1]) and len(spans) < cap:
                spans.append((s, e))
        return out


_HS_FLAGS = hs.HS_FLAG_UTF8 | hs.HS_FLAG_CASELESS | hs.HS_FLAG_SOM_LEFTMOST  # no UCP: it rejects \b
