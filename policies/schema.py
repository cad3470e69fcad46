"""The policy file: YAML validated by pydantic, with ``file:line:column`` for every problem.

`load_policy` reads a file (or text), checks everything it can (YAML syntax, unknown keys, types,
duplicate names, references between zones/lists/profiles/rules, regexes, CIDRs, thresholds,
inspector names) and either returns a `Policy` (plain frozen dataclasses, no pydantic) or raises
`PolicyError` listing *all* problems, each as ``file:line:column: what is wrong``.

pydantic is used only here, at the boundary; the engine and zone map consume `Policy`.
See docs/policy.md for the reference security staff read.
"""

from __future__ import annotations

import difflib
import hashlib
import ipaddress
import os
import re
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from appliance.model import InspectorConfig, KeywordSpec, ListSpec, ProximitySpec, Severity

# --------------------------------------------------------------------------- vocabulary

DEFAULT_INSPECTORS: frozenset[str] = frozenset(
    {"keyword", "dataclass", "darkword", "hiddenlink", "md5", "perceptual", "ml_text", "ml_image", "domains"}
)
"""Inspector names a policy may use unless the caller passes its own registry's names."""

INSPECTOR_LIST_KINDS: Mapping[str, frozenset[str]] = {
    "keyword": frozenset({"keywords"}),
    "dataclass": frozenset({"dataclass"}),
    "darkword": frozenset({"darkwords"}),
    "md5": frozenset({"fingerprints"}),
    "perceptual": frozenset({"fingerprints"}),
    "domains": frozenset({"domains"}),
}
"""List kinds each built-in inspector consumes; these inspectors need at least one list.
Inspectors not named here (hiddenlink, ml_*, third-party) take any lists or none."""

DEFAULT_MODEL_DIR = "/var/lib/tapsift/models"
"""Where classifier models live unless the sensor's ``inspection.model_dir`` says otherwise (the
same default as `inspectors.modelstore`, which policies may not import)."""

FINGERPRINT_ALGORITHMS: Mapping[str, frozenset[str]] = {
    "md5": frozenset({"md5", "sha256"}),
    "perceptual": frozenset({"phash", "dhash", "pdq"}),
}

CATEGORIES: tuple[str, ...] = (
    # the source document's taxonomy of harmful content
    "pornographic", "violent", "prohibited", "malware-hosting", "hidden-link",
    "abusive", "non-compliant", "vulgar", "fraud", "spam",
    # data-leak classes
    "data-leak", "data-leak/pii", "data-leak/financial", "data-leak/confidential",
    "data-leak/credentials",
)

SEVERITY_NAMES: Mapping[str, Severity] = {s.name.lower(): s for s in Severity}

DATA_CLASSES: Mapping[str, tuple[str, str]] = {
    # name: (pattern, validator). Patterns use [0-9] (Python's \d also matches non-ASCII digits).
    "prc_id": (
        r"(?<![0-9A-Za-z])[1-9][0-9]{5}(?:18|19|20)[0-9]{2}(?:0[1-9]|1[0-2])"
        r"(?:0[1-9]|[12][0-9]|3[01])[0-9]{3}[0-9Xx](?![0-9A-Za-z])",
        "prc_id",
    ),
    "bank_card": (
        r"(?<![0-9])(?:[1-9][0-9]{12,18}|[1-9][0-9]{3}(?:[ -][0-9]{4}){3}(?:[ -]?[0-9]{1,3})?)(?![0-9])",
        "luhn",
    ),
    "cn_mobile": (r"(?<![0-9])(?:(?:\+|00)?86[ -]?)?1[3-9][0-9]{9}(?![0-9])", "cn_mobile"),
    "email": (r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,24}\b",
              "email"),
    "ipv4": (
        r"(?<![0-9.])(?:(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}"
        r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])(?!\.?[0-9])",
        "ipv4",
    ),
}
"""Built-in data classes: the regex that finds candidates and the validator that confirms them."""

VALIDATORS: tuple[str, ...] = ("prc_id", "luhn", "cn_mobile", "email", "ipv4", "none")
DATA_CLASS_ALIASES: Mapping[str, str] = {
    **{a: "prc_id" for a in ("cn_id", "id_card", "idcard", "id_number", "china_id", "cn_id_card", "resident_id",
                             "prc_id_card", "身份证", "身份证号", "身份证号码", "居民身份证")},
    **{a: "bank_card" for a in ("card", "bank_card_number", "credit_card", "debit_card", "card_number", "pan",
                                "payment_card", "unionpay", "银行卡", "银行卡号", "信用卡", "信用卡号", "借记卡")},
    **{a: "cn_mobile" for a in ("mobile", "phone", "cell", "cellphone", "cn_phone", "mobile_phone", "phone_number",
                                "手机", "手机号", "手机号码", "电话", "电话号码")},
    **{a: "email" for a in ("e-mail", "mail", "email_address", "邮箱", "电子邮件", "邮件地址", "电子邮箱")},
    **{a: "ipv4" for a in ("ip", "ip_address", "ipv4_address", "ip地址")},
}
"""Other names of the built-in data classes (``class:``, also accepted as ``validator:``), matched
case-insensitively; the same table as ``inspectors.dataclass.CLASS_ALIASES``."""
KEYWORD_MODES: tuple[str, ...] = ("substring", "word", "regex")
_NAME = re.compile(r"^\w[\w.\-]{0,63}$")


# --------------------------------------------------------------------------- runtime types


@dataclass(slots=True, frozen=True)
class ZoneDef:
    """A zone: an endpoint is in it when every constraint that is set matches (see zones.py)."""

    name: str
    interfaces: frozenset[str] = frozenset()
    vlans: frozenset[int] = frozenset()
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    description: str = ""


@dataclass(slots=True, frozen=True)
class ProfileDef:
    """A profile: inspectors with their lists, the alert thresholds, severity and category."""

    name: str
    category: str
    severity: Severity
    configs: tuple[InspectorConfig, ...]
    weight_threshold: float | None = None
    """Alert when the summed score of the profile's findings reaches this."""
    count_threshold: int | None = None
    """Alert when the number of matches reaches this (if neither is set: 1 match)."""
    description: str = ""


@dataclass(slots=True, frozen=True)
class RuleDef:
    """One ordered policy rule. ``None`` for zones/direction/protocols means any."""

    name: str
    index: int
    profiles: tuple[str, ...]
    src_zones: frozenset[str] | None = None
    dst_zones: frozenset[str] | None = None
    direction: str | None = None
    """``upload``, ``download`` or None (both)."""
    protocols: frozenset[str] | None = None
    continue_: bool = False
    suppression_window_s: float | None = None
    """Overrides the file's suppression window for this rule's alerts."""
    line: int = 0
    description: str = ""


@dataclass(slots=True, frozen=True)
class SuppressionDef:
    window_s: float = 300.0
    key: str = "destination"
    """``destination`` (HTTP host, else server IP), ``source`` (client IP) or ``pair`` (both)."""


@dataclass(slots=True, frozen=True)
class ExceptionDef:
    """An analyst's exception: alerts of ``rule``/``profile`` on what the scope names are not raised.

    Made from a false-positive verdict in the console (``by``, ``reason``, ``alert``); every scope
    field that is set must match; ``expires_ns`` (packet time) ends it. See `matches`."""

    index: int
    rule: str | None = None
    profile: str | None = None
    host: str | None = None
    """Exact (case-insensitive), or ``*.example.com`` for the domain and its subdomains."""
    url: str | None = None
    """Exact, or a prefix ending in ``*``."""
    filename: str | None = None
    """Exact, or a glob (``*.docx``)."""
    sha256: str | None = None
    md5: str | None = None
    zone: str | None = None
    src_zone: str | None = None
    dst_zone: str | None = None
    client: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None
    """The client's address or network (the side that opened the connection)."""
    expires_ns: int | None = None
    expires: str = ""
    by: str = ""
    reason: str = ""
    created: str = ""
    alert: str = ""
    line: int = 0


@dataclass(slots=True, frozen=True)
class Policy:
    """A validated policy file, ready for `ZoneMap` and `PolicyEngine`. Picklable."""

    source: str
    version: str
    """First 12 hex digits of the SHA-256 of the file's bytes."""
    zones: tuple[ZoneDef, ...]
    lists: Mapping[str, ListSpec]
    profiles: Mapping[str, ProfileDef]
    rules: tuple[RuleDef, ...]
    suppression: SuppressionDef = SuppressionDef()
    description: str = ""
    warnings: tuple[str, ...] = ()
    """Non-fatal remarks (unused objects, unreachable rules) as ``file:line:column: warning: …``."""
    marks: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    """(line, column) of what later checks report on: ``profiles.P.inspect.I`` (an inspector
    entry), ``profiles.P.inspect.I.params.model`` and ``lists.L.path`` (files the policy names)."""
    exceptions: tuple[ExceptionDef, ...] = ()
    """Analysts' exceptions (``exceptions:``), in file order."""

    def where(self, key: str) -> str:
        """``source:line:column`` of ``key`` (see `marks`), or just the source."""
        at = self.marks.get(key)
        return f"{self.source}:{at[0]}:{at[1]}" if at else self.source

    def summary(self) -> str:
        return (f"{len(self.zones)} zones, {len(self.lists)} lists, {len(self.profiles)} profiles, "
                f"{len(self.rules)} rules, version {self.version}")


@dataclass(slots=True, frozen=True, order=True)
class PolicyIssue:
    """One problem in a policy file."""

    line: int
    column: int
    message: str
    source: str = field(default="", compare=False)

    def __str__(self) -> str:
        if not self.line:
            return f"{self.source}: {self.message}"
        return f"{self.source}:{self.line}:{self.column}: {self.message}"


class PolicyError(ValueError):
    """A policy file that cannot be used; ``issues`` holds every problem found, in file order."""

    def __init__(self, issues: Iterable[PolicyIssue]) -> None:
        self.issues: tuple[PolicyIssue, ...] = tuple(sorted(issues))
        super().__init__("\n".join(str(i) for i in self.issues))


# --------------------------------------------------------------------------- pydantic models


def _one_or_many(v: Any) -> Any:
    """Accept a single value where a list is expected (``cidrs: 10.0.0.0/8``)."""
    return v if isinstance(v, list) else [v]


def _severity(v: Any) -> Any:
    if isinstance(v, str) and v.lower() in SEVERITY_NAMES:
        return int(SEVERITY_NAMES[v.lower()])
    if isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 5:
        return v
    raise ValueError(f"severity must be one of {', '.join(SEVERITY_NAMES)} (or 1-5), not {v!r}")


def _text_entry(v: Any) -> Any:
    """A keyword written as a bare scalar: ``- secret`` is ``{text: secret}``."""
    if isinstance(v, str):
        return {"text": v}
    if isinstance(v, int | float) and not isinstance(v, bool):
        raise ValueError(f"keyword {v!r} is a number in YAML; put it in quotes: '{v}'")
    return v


def _cidr(v: Any) -> Any:
    if not isinstance(v, str):
        raise ValueError(f"CIDR must be text like 10.20.0.0/16, not {v!r}")
    try:
        ipaddress.ip_network(v, strict=True)
    except ValueError as exc:
        try:
            net = ipaddress.ip_network(v, strict=False)
        except ValueError:
            raise ValueError(f"invalid CIDR {v!r}: {exc}") from None
        raise ValueError(f"invalid CIDR {v!r}: host bits set (did you mean {net}?)") from None
    return v


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


Vlan = Annotated[int, Field(ge=0, le=4095)]
Cidr = Annotated[str, BeforeValidator(_cidr)]
NonEmpty = Annotated[str, Field(min_length=1)]
Weight = Annotated[int, Field(ge=1)]


class ZoneModel(_M):
    description: str = ""
    interfaces: Annotated[list[NonEmpty], BeforeValidator(_one_or_many)] = []
    vlans: Annotated[list[Vlan], BeforeValidator(_one_or_many)] = []
    cidrs: Annotated[list[Cidr], BeforeValidator(_one_or_many)] = []

    @model_validator(mode="after")
    def _constrained(self) -> ZoneModel:
        if not (self.interfaces or self.vlans or self.cidrs):
            raise ValueError("a zone needs at least one of interfaces, vlans, cidrs "
                             "(unmatched traffic is already in zone 'any')")
        return self


class KeywordEntry(_M):
    text: NonEmpty
    weight: Weight = 1
    mode: Literal["substring", "word", "regex"] | None = None

    @model_validator(mode="before")
    @classmethod
    def _bare(cls, v: Any) -> Any:
        return _text_entry(v)


class ProximityEntry(_M):
    a: NonEmpty
    b: NonEmpty
    distance: Annotated[int, Field(ge=1)]
    weight: Weight = 1


class KeywordList(_M):
    type: Literal["keywords"]
    description: str = ""
    mode: Literal["substring", "word", "regex"] = "substring"
    weight: Weight = 1
    keywords: Annotated[list[KeywordEntry], Field(min_length=1)]
    proximity: list[ProximityEntry] = []
    exclusions: list[NonEmpty] = []
    options: dict[str, Any] = {}


class DataClassList(_M):
    type: Literal["dataclass"]
    description: str = ""
    class_: Literal["prc_id", "bank_card", "cn_mobile", "email", "ipv4", "custom"] = Field(
        "custom", alias="class")
    pattern: str = ""
    validator: Literal["prc_id", "luhn", "cn_mobile", "email", "ipv4", "none"] | None = None
    weight: Weight = 1
    options: dict[str, Any] = {}

    @model_validator(mode="before")
    @classmethod
    def _aliases(cls, v: Any) -> Any:
        if isinstance(v, dict):
            v = dict(v)
            for key in ("class", "validator"):
                name = v.get(key)
                if isinstance(name, str) and name.strip().lower() in DATA_CLASS_ALIASES:
                    canon = DATA_CLASS_ALIASES[name.strip().lower()]
                    v[key] = canon if key == "class" else DATA_CLASSES[canon][1]
        return v

    @model_validator(mode="after")
    def _needs_pattern(self) -> DataClassList:
        if self.class_ == "custom" and not self.pattern:
            raise ValueError("a custom data class needs a 'pattern' (or set 'class' to one of "
                             + ", ".join(DATA_CLASSES) + ")")
        return self


class DarkWord(_M):
    text: NonEmpty
    weight: Weight = 1
    prior: Annotated[float, Field(gt=0, le=1)] = 0.5

    @model_validator(mode="before")
    @classmethod
    def _bare(cls, v: Any) -> Any:
        return _text_entry(v)


class DarkwordList(_M):
    type: Literal["darkwords"]
    description: str = ""
    weight: Weight = 1
    words: Annotated[list[DarkWord], Field(min_length=1)]
    options: dict[str, Any] = {}


class FingerprintList(_M):
    type: Literal["fingerprints"]
    description: str = ""
    algorithm: Literal["md5", "sha256", "phash", "dhash", "pdq"]
    path: str = ""
    hashes: list[NonEmpty] = []
    max_distance: Annotated[int, Field(ge=0)] = 0
    weight: Weight = 1
    options: dict[str, Any] = {}

    @model_validator(mode="after")
    def _has_source(self) -> FingerprintList:
        if not self.path and not self.hashes:
            raise ValueError("a fingerprint list needs a 'path' (fingerprint set file) or 'hashes'")
        return self


class DomainList(_M):
    """Domain names matched by label suffix (``dropbox.com`` matches ``www.dropbox.com``)."""

    type: Literal["domains"]
    description: str = ""
    weight: Weight = 1
    domains: Annotated[list[NonEmpty], Field(min_length=1)]
    options: dict[str, Any] = {}


AnyList = Annotated[KeywordList | DataClassList | DarkwordList | FingerprintList | DomainList,
                    Field(discriminator="type")]
LIST_TYPES: tuple[str, ...] = ("keywords", "dataclass", "darkwords", "fingerprints", "domains")


def domain_problem(value: str) -> str | None:
    """Why ``value`` cannot be a domain-list entry (None when it can): a DNS name, IDNA allowed,
    an optional leading ``*.`` (the same as without: entries match by suffix)."""
    n = value.strip().lower().removeprefix("*.").strip(".")
    if not n or len(n) > 253 or any(c in n for c in " /:@[]"):
        return f"not a domain name: {value!r}"
    if not n.isascii():
        try:
            n = n.encode("idna").decode("ascii")
        except (UnicodeError, ValueError):
            return f"not a valid internationalised domain name: {value!r}"
    if any(not lab or len(lab) > 63 for lab in n.split(".")):
        return f"not a domain name (empty or over-long label): {value!r}"
    return None


class InspectModel(_M):
    inspector: NonEmpty
    lists: Annotated[list[NonEmpty], BeforeValidator(_one_or_many)] = []
    params: dict[str, Any] = {}


class ThresholdModel(_M):
    weight: Annotated[float, Field(gt=0)] | None = None
    count: Annotated[int, Field(gt=0)] | None = None


class ProfileModel(_M):
    description: str = ""
    category: Literal[CATEGORIES]  # type: ignore[valid-type]
    severity: Annotated[int, BeforeValidator(_severity)] = int(Severity.MEDIUM)
    inspect: Annotated[list[InspectModel], Field(min_length=1)]
    threshold: ThresholdModel = ThresholdModel()


class RuleModel(_M):
    name: NonEmpty
    description: str = ""
    enabled: bool = True
    source_zone: Annotated[list[NonEmpty], BeforeValidator(_one_or_many)] = ["any"]
    destination_zone: Annotated[list[NonEmpty], BeforeValidator(_one_or_many)] = ["any"]
    direction: Literal["upload", "download", "any"] = "any"
    protocol: Annotated[list[NonEmpty], BeforeValidator(_one_or_many)] = ["any"]
    profiles: Annotated[list[NonEmpty], BeforeValidator(_one_or_many)]
    """Profiles to apply; an empty list exempts the matched traffic (nothing is inspected)."""
    continue_: bool = Field(False, alias="continue")
    suppression_window_s: Annotated[float, Field(ge=0)] | None = None


class SuppressionModel(_M):
    window_s: Annotated[float, Field(ge=0)] = 300.0
    key: Literal["destination", "source", "pair"] = "destination"


def _when(v: Any) -> Any:
    """A date or time as ISO text (YAML reads an unquoted 2026-01-07 as a date)."""
    import datetime as _dt

    if isinstance(v, _dt.datetime | _dt.date):
        return v.isoformat()
    return v


def _address_or_net(v: Any) -> Any:
    if not isinstance(v, str):
        raise ValueError(f"client must be an address or network like 10.20.0.0/16, not {v!r}")
    try:
        ipaddress.ip_network(v, strict=False)
    except ValueError:
        raise ValueError(f"invalid address or network {v!r}") from None
    return v


Hex32 = Annotated[str, Field(pattern=r"^[0-9a-fA-F]{32}$")]
Hex64 = Annotated[str, Field(pattern=r"^[0-9a-fA-F]{64}$")]
When = Annotated[str, BeforeValidator(_when)]
_SCOPES = ("host", "url", "filename", "sha256", "md5", "zone", "src_zone", "dst_zone", "client")


class ExceptionModel(_M):
    rule: NonEmpty | None = None
    profile: NonEmpty | None = None
    host: NonEmpty | None = None
    url: NonEmpty | None = None
    filename: NonEmpty | None = None
    sha256: Hex64 | None = None
    md5: Hex32 | None = None
    zone: NonEmpty | None = None
    src_zone: NonEmpty | None = None
    dst_zone: NonEmpty | None = None
    client: Annotated[str, BeforeValidator(_address_or_net)] | None = None
    expires: When | None = None
    by: str = ""
    reason: str = ""
    created: When = ""
    alert: str = ""

    @model_validator(mode="after")
    def _scoped(self) -> ExceptionModel:
        if self.rule is None and self.profile is None:
            raise ValueError("an exception names the 'rule' (or 'profile') whose alerts it stops")
        if all(getattr(self, k) is None for k in _SCOPES):
            raise ValueError("an exception needs a scope: " + ", ".join(_SCOPES) + " (to stop a whole rule, "
                             "disable it with 'enabled: false')")
        if self.expires is not None:
            _expiry_ns(self.expires)
        return self


def _expiry_ns(v: str) -> int:
    """ISO date (the end of that day, UTC) or date and time (UTC unless it says otherwise) → ns."""
    import datetime as _dt

    try:
        if re.fullmatch(r"\d{4}-\d\d-\d\d", v):
            d = _dt.datetime.fromisoformat(v).replace(tzinfo=_dt.UTC) + _dt.timedelta(days=1)
        else:
            d = _dt.datetime.fromisoformat(v)
            d = d if d.tzinfo else d.replace(tzinfo=_dt.UTC)
    except ValueError:
        raise ValueError(f"expires must be a date (2026-03-01) or a time (2026-03-01T18:00:00Z), not {v!r}") from None
    return int(d.timestamp() * 1_000_000_000)


class PolicyModel(_M):
    description: str = ""
    zones: dict[str, ZoneModel] = {}
    lists: dict[str, AnyList] = {}
    profiles: dict[str, ProfileModel] = {}
    policies: Annotated[list[RuleModel], Field(min_length=1)]
    suppression: SuppressionModel = SuppressionModel()
    exceptions: list[ExceptionModel] = []


# --------------------------------------------------------------------------- YAML with marks

Path_ = tuple[Any, ...]


class _Doc:
    """Plain data from the YAML text plus where every value and mapping key starts."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.values: dict[Path_, yaml.Mark] = {}
        self.keys: dict[Path_, yaml.Mark] = {}
        self.own_keys: set[Path_] = set()
        self.issues: list[PolicyIssue] = []

    def issue(self, mark: yaml.Mark | None, message: str) -> None:
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        self.issues.append(PolicyIssue(line, col, message, self.source))

    def at(self, path: Path_, message: str, *, key: bool = False) -> None:
        """Record an issue at ``path`` (the key's position when ``key`` and the path is a mapping key)."""
        self.issue(self.mark(path, key=key), message)

    def resolve(self, path: Path_) -> Path_:
        """The longest existing path made of ``path``'s elements in order (unknown ones skipped:
        pydantic puts union tags and validator names into its error locations)."""
        found: Path_ = ()
        for el in path:
            cand = (*found, el)
            if cand in self.values:
                found = cand
        return found

    def mark(self, path: Path_, *, key: bool = False) -> yaml.Mark | None:
        """The mark of the value at ``path`` (or of its key), or of its closest existing parent."""
        found = self.resolve(path)
        if key and found and found in self.keys and found[-1] == path[-1]:
            return self.keys[found]
        return self.values.get(found)


class _Loader(yaml.SafeLoader):
    """SafeLoader used only to compose nodes and construct scalars."""


def _compose(text: str, doc: _Doc) -> Any:
    try:
        loader = _Loader(text)
    except yaml.reader.ReaderError as exc:  # non-printable characters are checked up front
        line = text.count("\n", 0, exc.position) + 1
        col = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        doc.issues.append(PolicyIssue(line, col, f"invalid YAML: character {chr(exc.character)!r} is "
                                      "not allowed", doc.source))
        return None
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        return _build(loader, node, (), doc, 0)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        what = exc.problem or str(exc)
        if exc.context and exc.problem:
            what = f"{exc.context}: {exc.problem}"
            cm = exc.context_mark
            if cm is not None and mark is not None and (cm.line, cm.column) != (mark.line, mark.column):
                what += f" (the construct starts at line {cm.line + 1}, column {cm.column + 1})"
        doc.issue(mark, f"invalid YAML: {what}")
        return None
    except yaml.YAMLError as exc:
        doc.issue(None, f"invalid YAML: {exc}")
        return None
    finally:
        loader.dispose()


def _build(loader: _Loader, node: yaml.Node, path: Path_, doc: _Doc, depth: int) -> Any:
    if depth > 64:
        doc.issue(node.start_mark, "nesting too deep (recursive alias?)")
        return None
    doc.values[path] = node.start_mark
    if isinstance(node, yaml.MappingNode):
        merged = getattr(node, "_tapsift_merged", None)  # an aliased node is flattened once
        if merged is None:
            own = sum(1 for k, _ in node.value if k.tag != "tag:yaml.org,2002:merge")
            loader.flatten_mapping(node)  # YAML merge keys (<<): merged pairs come first
            merged = len(node.value) - own
            node._tapsift_merged = merged  # type: ignore[attr-defined]
        out: dict[Any, Any] = {}
        for i, (knode, vnode) in enumerate(node.value):
            if not isinstance(knode, yaml.ScalarNode):
                doc.issue(knode.start_mark, "mapping keys must be plain names")
                continue
            key = loader.construct_object(knode)
            kpath = (*path, key)
            if key in out and (i < merged or kpath not in doc.own_keys):
                # merged values may be overridden by the mapping's own keys
                out.pop(key)
            elif key in out:
                first = doc.keys[kpath]
                doc.issue(knode.start_mark, f"duplicate key {key!r} (first defined at line {first.line + 1})")
                continue
            doc.keys[kpath] = knode.start_mark
            if i >= merged:
                doc.own_keys.add(kpath)
            out[key] = _build(loader, vnode, kpath, doc, depth + 1)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(loader, n, (*path, i), doc, depth + 1) for i, n in enumerate(node.value)]
    return loader.construct_object(node)


# --------------------------------------------------------------------------- pydantic errors → marks


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model class that validates the mapping at ``loc`` (for 'unknown key' hints)."""
    tp: Any = PolicyModel
    for el in loc:
        tp = _strip(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            fld = next((f for n, f in tp.model_fields.items() if (f.alias or n) == el), None)
            if fld is None:
                # a discriminated union's tag in the loc, or a list/dict element
                continue
            tp = fld.annotation
        elif typing.get_origin(tp) is dict:
            tp = typing.get_args(tp)[1]
        elif typing.get_origin(tp) is list:
            tp = typing.get_args(tp)[0]
        elif _is_union(tp):
            members = [_strip(m) for m in typing.get_args(tp)]
            match = [m for m in members if isinstance(m, type) and issubclass(m, BaseModel)
                     and _tag(m) == el]
            if match:
                tp = match[0]
    tp = _strip(tp)
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


def _strip(tp: Any) -> Any:
    while typing.get_origin(tp) is Annotated:
        tp = typing.get_args(tp)[0]
    if _is_union(tp):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return _strip(args[0])
    return tp


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType)


def _tag(model: type[BaseModel]) -> Any:
    f = model.model_fields.get("type")
    if f is None:
        return None
    args = typing.get_args(f.annotation)
    return args[0] if args else None


def _pydantic_issues(exc: ValidationError, doc: _Doc) -> None:
    for err in exc.errors():
        loc = tuple(err["loc"])
        kind = err["type"]
        msg = err["msg"].removeprefix("Value error, ")
        if kind == "extra_forbidden":
            key = loc[-1]
            model = _model_at(loc[:-1])
            allowed = sorted((f.alias or n) for n, f in model.model_fields.items()) if model else []
            hint = difflib.get_close_matches(str(key), allowed, n=1)
            msg = f"unknown key {key!r}"
            if hint:
                msg += f" (did you mean {hint[0]!r}?)"
            elif allowed:
                msg += f" (expected one of: {', '.join(allowed)})"
            doc.at(loc, msg, key=True)
        elif kind == "missing":
            extra = (f": every profile needs one of {', '.join(CATEGORIES)}" if loc[-1] == "category"
                     and len(loc) >= 2 and loc[0] == "profiles" else "")
            doc.at(loc[:-1], f"missing required key {loc[-1]!r}{extra}")
        elif kind == "union_tag_not_found":
            doc.at(loc, f"missing 'type' (one of: {', '.join(LIST_TYPES)})")
        elif kind == "union_tag_invalid":
            tag = err.get("ctx", {}).get("tag", "?")
            doc.at((*loc, "type"), f"unknown list type {tag!r} (expected one of: {', '.join(LIST_TYPES)})")
        elif loc and loc[-1] == "[key]":
            doc.at(loc[:-1], f"name {loc[-2]!r} must be text", key=True)
        elif kind == "value_error":
            doc.at(loc, msg)
        else:
            found = doc.resolve(loc)
            where = next((str(x) for x in reversed(found) if isinstance(x, str)), "")
            if kind.endswith("_type") and isinstance(err.get("input"), bool | int | float | None):
                msg += f" (YAML read {_yaml_word(err['input'])}; put the value in quotes)"
            doc.at(loc, f"{where}: {msg}" if where else msg)


def _yaml_word(v: Any) -> str:
    if v is None:
        return "an empty value / null"
    if isinstance(v, bool):
        return f"it as {'true' if v else 'false'} (yes/no/on/off are booleans)"
    return f"it as the number {v!r}"


# --------------------------------------------------------------------------- semantic checks


def _regex_problem(pattern: str) -> str | None:
    try:
        rx = re.compile(pattern)
    except re.error as exc:
        return f"invalid regex {pattern!r}: {exc.msg} at position {exc.pos}"
    except (RecursionError, OverflowError, ValueError) as exc:
        return f"invalid regex {pattern!r}: {exc}"
    if rx.fullmatch(""):
        return f"regex {pattern!r} matches the empty string"
    return None


def model_name_problem(name: Any, model_dir: str | Path = DEFAULT_MODEL_DIR) -> str | None:
    """What is wrong with a ``params.model`` value, without touching the file system (so the
    console, which may not read the sensor's disk, refuses the same names): a name relative to
    the model directory, without ``..``; an absolute path only inside the directory."""
    if not isinstance(name, str) or not name.strip():
        return f"model must be a file or folder name in the model directory {model_dir}"
    if "\x00" in name or "\\" in name:
        return f"model {name!r}: invalid characters"
    pure = PurePosixPath(name)
    if ".." in pure.parts:
        return f"model {name!r}: '..' is not allowed: models are read from {model_dir} only"
    if pure.is_absolute():
        norm = PurePosixPath(os.path.normpath(name))
        base = PurePosixPath(os.path.abspath(model_dir))
        if norm != base and base not in norm.parents:
            return (f"model {name!r} is outside the model directory {model_dir}: name a model inside it "
                    "(relative names are resolved there)")
    return None


def _semantic_issues(data: dict[str, Any], doc: _Doc, inspectors: frozenset[str],
                     model_dir: str | Path = DEFAULT_MODEL_DIR) -> None:
    """Cross-references and checks pydantic cannot express, done on the raw data (so they are
    reported together with type errors); every access is guarded because the data may be invalid."""
    zones = data.get("zones") if isinstance(data.get("zones"), dict) else {}
    lists = data.get("lists") if isinstance(data.get("lists"), dict) else {}
    profiles = data.get("profiles") if isinstance(data.get("profiles"), dict) else {}
    rules = data.get("policies") if isinstance(data.get("policies"), list) else []

    for section, table in (("zones", zones), ("lists", lists), ("profiles", profiles)):
        for name in table:
            if isinstance(name, str) and not _NAME.match(name):
                doc.at((section, name), f"invalid name {name!r}: use letters, digits, '_', '-', '.' "
                       "(at most 64, starting with a letter or digit)", key=True)
    if "any" in zones:
        doc.at(("zones", "any"), "'any' is reserved: it is the zone of every unmatched address", key=True)

    for lname, lst in lists.items():
        if not isinstance(lst, dict):
            continue
        base = ("lists", lname)
        if lst.get("type") == "keywords":
            group_mode = lst.get("mode", "substring")
            for i, kw in enumerate(lst.get("keywords") or []):
                text, mode = (kw, group_mode) if isinstance(kw, str) else (
                    (kw.get("text"), kw.get("mode", group_mode)) if isinstance(kw, dict) else (None, None))
                if mode == "regex" and isinstance(text, str):
                    p = _regex_problem(text)
                    if p:
                        doc.at((*base, "keywords", i, "text") if isinstance(kw, dict)
                               else (*base, "keywords", i), p)
        elif lst.get("type") == "dataclass" and isinstance(lst.get("pattern"), str) and lst["pattern"]:
            p = _regex_problem(lst["pattern"])
            if p:
                doc.at((*base, "pattern"), p)
        elif lst.get("type") == "domains":
            for i, d in enumerate(lst.get("domains") or []):
                p = domain_problem(d) if isinstance(d, str) else None
                if p:
                    doc.at((*base, "domains", i), p)
        elif lst.get("type") == "fingerprints" and lst.get("algorithm") in ("md5", "sha256"):
            want = 32 if lst["algorithm"] == "md5" else 64
            for i, h in enumerate(lst.get("hashes") or []):
                if isinstance(h, str) and not re.fullmatch(rf"[0-9a-fA-F]{{{want}}}", h):
                    doc.at((*base, "hashes", i), f"not a {lst['algorithm']} hash ({want} hex digits): {h!r}")

    _inspect_issues(profiles, lists, doc, inspectors, model_dir)

    names_seen: dict[str, int] = {}
    for i, rule in enumerate(rules):
        if not isinstance(rule, dict):
            continue
        rname = rule.get("name")
        if isinstance(rname, str):
            if rname in names_seen:
                first = doc.mark(("policies", names_seen[rname], "name"))
                doc.at(("policies", i, "name"), f"duplicate rule name {rname!r}"
                       + (f" (first at line {first.line + 1})" if first else ""))
            else:
                names_seen[rname] = i
        for fld in ("source_zone", "destination_zone"):
            val = rule.get(fld)
            vals = val if isinstance(val, list) else [val] if val is not None else []
            for j, z in enumerate(vals):
                if isinstance(z, str) and z != "any" and z not in zones:
                    where = ("policies", i, fld, j) if isinstance(val, list) else ("policies", i, fld)
                    doc.at(where, f"undefined zone {z!r}" + _suggest(z, zones))
        val = rule.get("profiles")
        vals = val if isinstance(val, list) else [val] if val is not None else []
        for j, pn in enumerate(vals):
            if isinstance(pn, str) and pn not in profiles:
                where = ("policies", i, "profiles", *((j,) if isinstance(val, list) else ()))
                doc.at(where, f"undefined profile {pn!r}" + _suggest(pn, profiles))


def _inspect_issues(profiles: dict[str, Any], lists: dict[str, Any], doc: _Doc, inspectors: frozenset[str],
                    model_dir: str | Path) -> None:
    """The profiles' inspector entries: known inspectors, their lists, their model names."""
    for pname, prof in profiles.items():
        if not isinstance(prof, dict) or not isinstance(prof.get("inspect"), list):
            continue
        for i, use in enumerate(prof["inspect"]):
            if not isinstance(use, dict):
                continue
            base = ("profiles", pname, "inspect", i)
            insp = use.get("inspector")
            params = use.get("params")
            if isinstance(params, dict) and "model" in params:
                problem = model_name_problem(params["model"], model_dir)
                if problem:
                    doc.at((*base, "params", "model"), problem)
            if isinstance(insp, str) and insp not in inspectors:
                hint = difflib.get_close_matches(insp, sorted(inspectors), n=1)
                doc.at((*base, "inspector"), f"unknown inspector {insp!r}"
                       + (f" (did you mean {hint[0]!r}?)" if hint else
                          f" (known: {', '.join(sorted(inspectors))})"))
                continue
            names = use.get("lists", [])
            names = names if isinstance(names, list) else [names]
            kinds = INSPECTOR_LIST_KINDS.get(insp) if isinstance(insp, str) else None
            if kinds and not names:
                doc.at(base, f"inspector {insp!r} needs at least one list ('lists')")
            seen: set[str] = set()
            for j, ln in enumerate(names):
                lpath = (*base, "lists", j) if isinstance(use.get("lists"), list) else (*base, "lists")
                if not isinstance(ln, str):
                    continue
                if ln in seen:
                    doc.at(lpath, f"list {ln!r} named twice")
                seen.add(ln)
                if ln not in lists:
                    doc.at(lpath, f"undefined list {ln!r}" + _suggest(ln, lists))
                    continue
                lst = lists[ln]
                ltype = lst.get("type") if isinstance(lst, dict) else None
                if kinds and ltype in LIST_TYPES and ltype not in kinds:
                    doc.at(lpath, f"list {ln!r} is a {ltype} list; inspector {insp!r} takes "
                           + " or ".join(sorted(kinds)) + " lists")
                algos = FINGERPRINT_ALGORITHMS.get(insp)
                if algos and ltype == "fingerprints" and lst.get("algorithm") not in algos:
                    doc.at(lpath, f"list {ln!r} holds {lst.get('algorithm')} fingerprints; inspector "
                           f"{insp!r} uses " + " or ".join(sorted(algos)))


def _exception_issues(data: dict[str, Any], doc: _Doc) -> None:
    """Exceptions name rules, profiles and zones that exist."""
    exc = data.get("exceptions") if isinstance(data.get("exceptions"), list) else []
    rules = {r.get("name") for r in data.get("policies") or [] if isinstance(r, dict)} \
        if isinstance(data.get("policies"), list) else set()
    profiles = data.get("profiles") if isinstance(data.get("profiles"), dict) else {}
    zones = data.get("zones") if isinstance(data.get("zones"), dict) else {}
    for i, e in enumerate(exc):
        if not isinstance(e, dict):
            continue
        if isinstance(e.get("rule"), str) and e["rule"] not in rules:
            doc.at(("exceptions", i, "rule"), f"undefined rule {e['rule']!r}" + _suggest(e["rule"], rules))
        if isinstance(e.get("profile"), str) and e["profile"] not in profiles:
            doc.at(("exceptions", i, "profile"), f"undefined profile {e['profile']!r}"
                   + _suggest(e["profile"], profiles))
        for key in ("zone", "src_zone", "dst_zone"):
            z = e.get(key)
            if isinstance(z, str) and z != "any" and z not in zones:
                doc.at(("exceptions", i, key), f"undefined zone {z!r}" + _suggest(z, zones))


def _suggest(name: str, known: Iterable[Any]) -> str:
    hint = difflib.get_close_matches(name, [k for k in known if isinstance(k, str)], n=1)
    return f" (did you mean {hint[0]!r}?)" if hint else ""


# --------------------------------------------------------------------------- model → runtime




def _resolve(value: Any, base: Path | None) -> Any:
    """A relative path in a policy file means relative to that file (not to the sensor's cwd)."""
    if base is None or not isinstance(value, str) or not value or Path(value).is_absolute():
        return value
    return str(base / value)


def _to_policy(m: PolicyModel, doc: _Doc, version: str, base: Path | None = None) -> Policy:
    zones = tuple(
        ZoneDef(name, frozenset(z.interfaces), frozenset(z.vlans),
                tuple(ipaddress.ip_network(c) for c in z.cidrs), z.description)
        for name, z in m.zones.items()
    )
    lists = {name: _list_spec(name, lst, base) for name, lst in m.lists.items()}
    profiles = {}
    for name, p in m.profiles.items():
        configs = tuple(
            InspectorConfig(u.inspector, tuple(lists[n] for n in u.lists),
                            dict(u.params))  # params.model names a model in the model directory
            for u in p.inspect
        )
        weight, count = p.threshold.weight, p.threshold.count
        if weight is None and count is None:
            count = 1
        profiles[name] = ProfileDef(name, p.category, Severity(p.severity), configs, weight, count,
                                    p.description)
    rules = []
    for i, r in enumerate(m.policies):
        if not r.enabled:
            continue
        mark = doc.mark(("policies", i))
        rules.append(RuleDef(
            name=r.name, index=i, profiles=tuple(r.profiles),
            src_zones=None if "any" in r.source_zone else frozenset(r.source_zone),
            dst_zones=None if "any" in r.destination_zone else frozenset(r.destination_zone),
            direction=None if r.direction == "any" else r.direction,
            protocols=None if "any" in r.protocol else frozenset(p.lower() for p in r.protocol),
            continue_=r.continue_, suppression_window_s=r.suppression_window_s,
            line=mark.line + 1 if mark else 0, description=r.description,
        ))
    return Policy(
        source=doc.source, version=version, zones=zones, lists=lists, profiles=profiles,
        rules=tuple(rules), suppression=SuppressionDef(m.suppression.window_s, m.suppression.key),
        description=m.description, warnings=tuple(_warnings(m, doc)), marks=_marks(m, doc),
        exceptions=_exceptions(m, doc),
    )


def _exceptions(m: PolicyModel, doc: _Doc) -> tuple[ExceptionDef, ...]:
    out = []
    for i, e in enumerate(m.exceptions):
        mark = doc.mark(("exceptions", i))
        out.append(ExceptionDef(
            index=i, rule=e.rule, profile=e.profile, host=e.host.lower() if e.host else None, url=e.url,
            filename=e.filename, sha256=e.sha256.lower() if e.sha256 else None,
            md5=e.md5.lower() if e.md5 else None, zone=e.zone, src_zone=e.src_zone, dst_zone=e.dst_zone,
            client=ipaddress.ip_network(e.client, strict=False) if e.client else None,
            expires_ns=_expiry_ns(e.expires) if e.expires else None, expires=e.expires or "", by=e.by,
            reason=e.reason, created=e.created, alert=e.alert, line=mark.line + 1 if mark else 0))
    return tuple(out)


def _marks(m: PolicyModel, doc: _Doc) -> dict[str, tuple[int, int]]:
    """Where the inspector entries and the files they name are (see `Policy.marks`)."""
    out: dict[str, tuple[int, int]] = {}

    def put(key: str, path: Path_) -> None:
        mk = doc.mark(path)
        if mk is not None:
            out[key] = (mk.line + 1, mk.column + 1)

    for pname, p in m.profiles.items():
        for i, u in enumerate(p.inspect):
            put(f"profiles.{pname}.inspect.{i}", ("profiles", pname, "inspect", i))
            if "model" in u.params:
                put(f"profiles.{pname}.inspect.{i}.params.model", ("profiles", pname, "inspect", i, "params", "model"))
    for lname, lst in m.lists.items():
        if isinstance(lst, FingerprintList) and lst.path:
            put(f"lists.{lname}.path", ("lists", lname, "path"))
    return out


def _list_spec(name: str, lst: Any, base: Path | None = None) -> ListSpec:
    if isinstance(lst, KeywordList):
        return ListSpec(
            name, "keywords",
            keywords=tuple(KeywordSpec(k.text, k.weight, k.mode or lst.mode) for k in lst.keywords),
            proximity=tuple(ProximitySpec(p.a, p.b, p.distance, p.weight) for p in lst.proximity),
            exclusions=tuple(lst.exclusions), weight=lst.weight, options=dict(lst.options),
        )
    if isinstance(lst, DataClassList):
        # A built-in class leaves the candidate search to the inspector's own tuned scanner
        # (its validator names the class); the regex in DATA_CLASSES documents what it finds.
        # Only a policy's own pattern travels in the spec.
        _, validator = DATA_CLASSES.get(lst.class_, ("", ""))
        pattern = lst.pattern or ""
        if lst.validator is not None:
            validator = "" if lst.validator == "none" else lst.validator
        return ListSpec(name, "dataclass", pattern=pattern, validator=validator, weight=lst.weight,
                        options={"class": lst.class_, **lst.options})
    if isinstance(lst, DarkwordList):
        return ListSpec(
            name, "darkwords", keywords=tuple(KeywordSpec(w.text, w.weight) for w in lst.words),
            weight=lst.weight, options={"priors": {w.text: w.prior for w in lst.words}, **lst.options},
        )
    if isinstance(lst, DomainList):
        return ListSpec(name, "domains", weight=lst.weight, options={"domains": tuple(lst.domains), **lst.options})
    assert isinstance(lst, FingerprintList)
    return ListSpec(
        name, "fingerprints", weight=lst.weight,
        options={"algorithm": lst.algorithm, "path": _resolve(lst.path, base),
                 "hashes": tuple(h.lower() for h in lst.hashes),
                 "max_distance": lst.max_distance, **lst.options},
    )


def _warnings(m: PolicyModel, doc: _Doc) -> list[str]:
    out: list[PolicyIssue] = []

    def warn(path: Path_, msg: str, key: bool = False) -> None:
        mk = doc.mark(path, key=key)
        out.append(PolicyIssue(mk.line + 1 if mk else 1, mk.column + 1 if mk else 1,
                               f"warning: {msg}", doc.source))

    used_zones = {z for r in m.policies for z in (*r.source_zone, *r.destination_zone)}
    used_profiles = {p for r in m.policies if r.enabled for p in r.profiles}
    used_lists = {ln for p in m.profiles.values() for u in p.inspect for ln in u.lists}
    for z in m.zones:
        if z not in used_zones:
            warn(("zones", z), f"zone {z!r} is not used by any rule (it still names traffic in alerts)", True)
    for p in m.profiles:
        if p not in used_profiles:
            warn(("profiles", p), f"profile {p!r} is not used by any enabled rule", True)
    for ln in m.lists:
        if ln not in used_lists:
            warn(("lists", ln), f"list {ln!r} is not used by any profile", True)
    catch_all: int | None = None
    for i, r in enumerate(m.policies):
        if not r.enabled:
            continue
        if catch_all is not None:
            warn(("policies", i), f"rule {r.name!r} is never reached: rule "
                 f"{m.policies[catch_all].name!r} matches all traffic and does not 'continue'")
            break
        if ("any" in r.source_zone and "any" in r.destination_zone and r.direction == "any"
                and "any" in r.protocol and not r.continue_):
            catch_all = i
    return [str(w) for w in sorted(out)]


# --------------------------------------------------------------------------- entry points


def load_policy(src: str | Path | bytes, *, inspectors: Iterable[str] = DEFAULT_INSPECTORS,
                source: str | None = None, model_dir: str | Path = DEFAULT_MODEL_DIR) -> Policy:
    """Load and validate a policy.

    ``src`` is a `Path`, a ``str`` path (a ``str`` containing a newline is taken as YAML text), or
    the file's ``bytes``. ``inspectors`` are the names profiles may use; ``model_dir`` is the
    sensor's model directory (``params.model`` must name something inside it, see
    `model_name_problem`). Raises `PolicyError` with every problem found; an unreadable file is a
    `PolicyError` too.
    """
    if isinstance(src, bytes):
        raw, name = src, source or "<policy>"
    elif isinstance(src, str) and "\n" in src:
        raw, name = src.encode("utf-8"), source or "<policy>"
    else:
        p = Path(src)
        name = source or str(p)
        try:
            raw = p.read_bytes()
        except OSError as exc:
            raise PolicyError([PolicyIssue(0, 0, f"cannot read: {exc.strerror or exc}", name)]) from None
    return _load(raw, name, frozenset(inspectors), model_dir)


def _load(raw: bytes, name: str, inspectors: frozenset[str], model_dir: str | Path = DEFAULT_MODEL_DIR) -> Policy:
    doc = _Doc(name)
    version = hashlib.sha256(raw).hexdigest()[:12]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise PolicyError([PolicyIssue(line, col, "file is not UTF-8", name)]) from None
    data = _compose(text.removeprefix("\ufeff"), doc)
    if doc.issues and data is None:
        raise PolicyError(doc.issues)
    if data is None:
        raise PolicyError([PolicyIssue(1, 1, "policy file is empty", name)])
    if not isinstance(data, dict):
        doc.at((), "the top level must be a mapping (zones, lists, profiles, policies)")
        raise PolicyError(doc.issues)
    model: PolicyModel | None = None
    try:
        model = PolicyModel.model_validate(data)
    except ValidationError as exc:
        _pydantic_issues(exc, doc)
    _semantic_issues(data, doc, inspectors, model_dir)
    _exception_issues(data, doc)
    if doc.issues or model is None:
        raise PolicyError(_dedupe(doc.issues))
    base = Path(name).parent if Path(name).is_file() else None
    return _to_policy(model, doc, version, base)


def _dedupe(issues: list[PolicyIssue]) -> list[PolicyIssue]:
    seen: set[tuple[int, int, str]] = set()
    out = []
    for i in issues:
        k = (i.line, i.column, i.message)
        if k not in seen:
            seen.add(k)
            out.append(i)
    return out


def check_command(path: str | Path, *, inspectors: Iterable[str] = DEFAULT_INSPECTORS) -> tuple[int, str]:
    """``tapsift policy check FILE``: exit code (0 valid, 1 invalid) and the text to print.

    Valid: warnings (if any), then ``FILE: OK (N zones, N lists, N profiles, N rules, version X)``.
    Invalid: one ``FILE:LINE:COLUMN: problem`` line per problem.
    """
    try:
        policy = load_policy(Path(path), inspectors=inspectors)
    except PolicyError as exc:
        return 1, str(exc)
    return 0, "\n".join([*policy.warnings, f"{path}: OK ({policy.summary()})"])
