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
    """12-19 digits (separators allowed) passing Luhn; ``iin``: also a published scheme's IIN
    range and length (`CARD_SCHEMES`)."""
    d = _digits(s)
    if not 12 <= len(d) <= 19 or len(set(d)) == 1:
        return False
    if luhn_check_digit(d[:-1]) != d[-1]:
        return False
    return iin_plausible(d) if iin else True


CARD_SCHEMES: tuple[tuple[str, tuple[tuple[int, int], ...], frozenset[int]], ...] = (
    # (scheme, IIN ranges as (low, high) prefixes of equal length, card lengths), as the schemes
    # publish them (ISO/IEC 7812 IIN ranges; UnionPay/Visa/Mastercard/Amex/JCB/Discover rules)
    ("visa", ((4, 4),), frozenset((13, 16, 19))),
    ("mastercard", ((51, 55), (2221, 2720)), frozenset((16,))),
    ("amex", ((34, 34), (37, 37)), frozenset((15,))),
    ("unionpay", ((62, 62), (81, 81)), frozenset((16, 17, 18, 19))),
    ("jcb", ((3528, 3589),), frozenset((16, 17, 18, 19))),
    ("discover", ((6011, 6011), (644, 649), (65, 65), (622126, 622925)), frozenset((16, 17, 18, 19))),
    ("diners", ((300, 305), (3095, 3095), (36, 36), (38, 39)), frozenset((14, 15, 16, 17, 18, 19))),
    ("mir", ((2200, 2204),), frozenset((16, 17, 18, 19))),
    ("maestro", ((5018, 5018), (5020, 5020), (5038, 5038), (5893, 5893), (6304, 6304), (6759, 6759),
                 (6761, 6763)), frozenset(range(12, 20))),
    ("rupay", ((60, 60), (6521, 6522), (508, 508), (82, 82)), frozenset((16,))),
)


def card_scheme(d: str) -> str:
    """The scheme whose IIN range and length fit the card number ``d`` (digits), or ''."""
    n = len(d)
    for name, ranges, lengths in CARD_SCHEMES:
        if n not in lengths:
            continue
        for lo, hi in ranges:
            k = len(str(lo))
            if n >= k and lo <= int(d[:k]) <= hi:
                return name
    return ""


def iin_plausible(d: str) -> bool:
    """Whether the issuer prefix and length fit a published scheme (`CARD_SCHEMES`)."""
    return bool(card_scheme(d))


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


_S = r"(?: ?[.+/_-] ?| {1,2})"
"""A separator people type between digit groups: one of ``. + / _ -`` (spaced or not) or spaces
(full-width ones are folded by the N1 normal form)."""
_SEPS = frozenset(".+/_- ")
_DIGITS = frozenset("0123456789")
_ALNUM = frozenset("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
BUILTINS: dict[str, _Builtin] = {
    "prc_id": _Builtin(
        rf"[1-9]\d{{2}}{_S}?\d{{3}}{_S}?(?:18|19|20)\d{{2}}{_S}?(?:0[1-9]|1[0-2]){_S}?"
        rf"(?:0[1-9]|[12]\d|3[01]){_S}?\d{{3}}{_S}?[\dx]",
        lambda s, _o: prc_id_valid(_compact(s))),
    "luhn": _Builtin(
        rf"\d{{4}}(?:{_S}\d{{4}}){{2,3}}(?:{_S}\d{{1,3}})?|\d{{4}}{_S}\d{{6}}{_S}\d{{4,5}}|\d{{6}}{_S}\d{{10,13}}"
        r"|\d{12,19}",
        lambda s, o: luhn_valid(s, iin=bool(o.get("iin", True))) and not _is_prc_id(s)),
    "cn_mobile": _Builtin(
        rf"(?:\(?(?:\+|00)86\)?{_S}?)?1[3-9]\d{_S}?\d{{4}}{_S}?\d{{4}}",
        lambda s, _o: cn_mobile_valid(s)),
    "email": _Builtin("", lambda s, _o: email_valid(s)),  # found around '@' (see _emails)
    "ipv4": _Builtin(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?!\d|\.\d)", lambda s, _o: ipv4_valid(s)),
}
_BOUNDED = frozenset(("prc_id", "luhn", "cn_mobile"))
"""Classes whose matches must stand alone: not touching a letter or digit, nor a separator that
joins them to more digits (a waybill ``SF6976082563565``, digits inside a longer run)."""


def _is_prc_id(s: str) -> bool:
    """An 18-digit run that is a valid PRC ID is reported as one, not as a UnionPay/Diners card."""
    c = _compact(s)
    return len(c) == 18 and prc_id_valid(c)


def _compact(s: str) -> str:
    return "".join(c for c in s if c not in _SEPS)


def standalone(t: str, s: int, e: int) -> bool:
    """Whether ``t[s:e]`` is not part of a longer token (see `_BOUNDED`)."""
    if s > 0:
        c = t[s - 1]
        if c in _ALNUM or (c in _SEPS and c != " " and s > 1 and t[s - 2] in _ALNUM):
            return False
    if e < len(t):
        c = t[e]
        if c in _ALNUM or (c in _SEPS and c != " " and e + 1 < len(t) and t[e + 1] in _DIGITS):
            return False
    return True


VALIDATORS = tuple(BUILTINS)

CLASS_VALIDATORS: dict[str, str] = {"prc_id": "prc_id", "bank_card": "luhn", "cn_mobile": "cn_mobile",
                                    "email": "email", "ipv4": "ipv4"}
"""Built-in class names and the validator that confirms each."""
CLASS_ALIASES: dict[str, str] = {
    **{a: "prc_id" for a in ("cn_id", "id_card", "idcard", "id_number", "china_id", "cn_id_card", "resident_id",
                             "prc_id_card", "身份证", "身份证号", "身份证号码", "居民身份证")},
    **{a: "bank_card" for a in ("card", "bank_card_number", "credit_card", "debit_card", "card_number", "pan",
                                "payment_card", "unionpay", "银行卡", "银行卡号", "信用卡", "信用卡号", "借记卡")},
    **{a: "cn_mobile" for a in ("mobile", "phone", "cell", "cellphone", "cn_phone", "mobile_phone", "phone_number",
                                "手机", "手机号", "手机号码", "电话", "电话号码")},
    **{a: "email" for a in ("e-mail", "mail", "email_address", "邮箱", "电子邮件", "邮件地址", "电子邮箱")},
    **{a: "ipv4" for a in ("ip", "ip_address", "ipv4_address", "ip地址")},
}
"""Other names people give the built-in classes (matched case-insensitively). The policy schema
keeps its own copy (policies may not import inspectors); a test checks the two agree."""


def canonical_class(name: str) -> str:
    """The built-in class named ``name`` or by one of its aliases; ``name`` itself otherwise."""
    key = name.strip().lower()
    return key if key in CLASS_VALIDATORS else CLASS_ALIASES.get(key, name)


def resolve_validator(name: str) -> str:
    """A validator name from a validator, a class name or an alias (``cn_id`` → ``prc_id``,
    ``银行卡`` → ``luhn``); unknown names are returned unchanged."""
    key = name.strip().lower()
    if key in BUILTINS:
        return key
    return CLASS_VALIDATORS.get(canonical_class(key), name)

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
_WINDOW = re.compile(r"[\d+(][\dx .+/_()-]{6,}", re.ASCII)


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
    bounded: bool = False


class DataClassInspector:
    """``dataclass``: data-class lists (``ListSpec.kind == "dataclass"``) on an object's text.

    Params: ``max_text_chars`` (8 Mi), ``max_candidates`` (20,000 per list and object),
    ``max_evidence`` (5), ``snippet_context`` (20; digits in the context are masked too).
    """

    name = "dataclass"
    kinds = frozenset({"text"})
    cost: Literal["cheap", "expensive"] = "cheap"
    cache_context: tuple[str, ...] = ()  # reads the content alone: a repeat's result is reused

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
            validator = resolve_validator(spec.validator) if spec.validator else ""
            if validator and validator not in BUILTINS:
                raise InspectorConfigError(
                    f"{where}: unknown validator {spec.validator!r} (one of {', '.join(VALIDATORS)}, "
                    f"or a class name or alias such as {', '.join(sorted(CLASS_ALIASES)[:6])})")
            if spec.weight < 0:
                raise InspectorConfigError(f"{where}: weight must not be negative")
            opts = dict(spec.options)
            b = BUILTINS.get(validator)
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
            elif validator == "email":
                c = _Class(spec, validate, email=True)
            else:
                c = _Class(spec, validate, builtin_re=re.compile(b.pattern, re.ASCII), bounded=validator in _BOUNDED)
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
                        if not c.bounded or standalone(t, *m.span()):
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
            detail = {"list": c.spec.name, "validator": resolve_validator(c.spec.validator) if c.spec.validator
                      else "none", "count": str(len(valid)),
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
