"""``domains``: the names a flow talks to (HTTP Host, TLS/QUIC SNI, certificate names, DNS
queries) against domain lists. A cheap metadata inspector.

It looks at two kinds of objects:

* content objects: the name of the flow they crossed, ``host`` (HTTP/1 Host, HTTP/2
  ``:authority``, the WebSocket upgrade's Host) and a CONNECT target (``meta["connect_host"]``),
  so "an upload to a file-sharing domain" is a rule on content (direction ``upload``);
* metadata records (`metadata_object`: one per EVE ``tls``, ``quic`` or ``dns`` event, kind
  ``metadata``, ``source`` = the event type), so "a TLS session to a listed domain" alerts too.

Matching is by label suffix: ``dropbox.com`` matches ``dropbox.com`` and ``www.dropbox.com``,
not ``notdropbox.com``. Names are IDNA-normalised (``bücher.example`` = ``xn--bcher-kva.example``),
lower-cased, without a trailing dot or a port. One finding per (list, matched name): ``rule`` =
the list, ``score`` = its weight, ``detail`` = ``domain`` (the list entry), ``name`` (what
matched) and ``where`` (``host``, ``flow``, ``sni``, ``certificate``, ``dns``…).

Params: ``match``: ``both`` (default), ``objects`` (content objects only) or ``events``
(metadata records only).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Literal

from appliance.model.alerts import Evidence, Finding
from appliance.model.content import ContentObject, Direction, FlowRef
from appliance.model.inspection import InspectorConfig
from inspectors.base import InspectContext, InspectorConfigError

MAX_NAMES = 64
"""Names looked at per object."""


def normalize_domain(name: str) -> str:
    """``name`` as compared: IDNA (punycode) labels, lower case, no trailing dot, port or
    ``*.`` wildcard; empty when it is not a plausible DNS name."""
    n = name.strip().lower()
    if n.startswith("["):  # an IPv6 literal is not a domain
        return ""
    if n.count(":") == 1:
        n = n.split(":", 1)[0]
    n = n.removeprefix("*.").strip(".")
    if not n or len(n) > 253 or " " in n:
        return ""
    if not n.isascii():
        try:
            n = n.encode("idna").decode("ascii")
        except (UnicodeError, ValueError):
            return ""
    labels = n.split(".")
    if any(not lab or len(lab) > 63 for lab in labels):
        return ""
    return n


def suffixes(name: str) -> Iterator[str]:
    """``a.b.c`` → ``a.b.c``, ``b.c``, ``c``."""
    while name:
        yield name
        _, _, name = name.partition(".")


def metadata_names(event_type: str, fields: dict[str, object]) -> list[tuple[str, str]]:
    """(where, name) pairs of one metadata record: SNI, certificate names, DNS query and CNAMEs."""
    out: list[tuple[str, str]] = []
    sni = fields.get("sni")
    if isinstance(sni, str) and sni:
        out.append(("sni", sni))
    if event_type == "tls":
        for san in fields.get("subjectaltname") or ():
            if isinstance(san, str):
                out.append(("certificate", san))
        subject = fields.get("subject")
        if isinstance(subject, str):
            for part in subject.split(", "):
                if part.startswith("CN="):
                    out.append(("certificate", part[3:]))
    elif event_type == "dns":
        rrname = fields.get("rrname")
        if isinstance(rrname, str) and rrname:
            out.append(("dns", rrname))
        for ans in fields.get("answers") or ():
            if isinstance(ans, dict) and ans.get("rrtype") == "CNAME" and isinstance(ans.get("rdata"), str):
                out.append(("dns", str(ans["rdata"])))
    return out[:MAX_NAMES]


def metadata_object(oid: str, ts_ns: int, flow: FlowRef, event_type: str, fields: dict[str, object]) -> ContentObject:
    """The content-object form of one metadata record, for the policy engine: no bytes, kind
    ``metadata``, ``source`` = the event type, ``host`` = its first name, ``meta["names"]`` =
    ``where=name`` pairs joined by commas."""
    names = metadata_names(event_type, fields)
    return ContentObject(
        id=oid, source=event_type, direction=Direction.TO_SERVER, flow=flow, ts_ns=ts_ns, size=0, md5="", sha256="",
        kind="metadata",
        host=names[0][1] if names else "", data=b"",
        meta={"event_type": event_type, "names": ",".join(f"{w}={n}" for w, n in names)},
    )


def object_names(obj: ContentObject) -> list[tuple[str, str]]:
    """(where, name) pairs an object carries: its host and CONNECT target, or a metadata record's names."""
    out: list[tuple[str, str]] = []
    meta = obj.meta or {}
    if obj.kind == "metadata":
        for pair in str(meta.get("names", "")).split(","):
            where, sep, name = pair.partition("=")
            if sep and name:
                out.append((where, name))
        return out[:MAX_NAMES]
    if obj.host:
        out.append(("host", obj.host))
    target = meta.get("connect_host")
    if target:
        out.append(("connect", str(target)))
    return out[:MAX_NAMES]


class DomainInspector:
    """Label-suffix matching of an object's names against ``domains`` lists."""

    name = "domains"
    kinds = frozenset({"any"})
    cost: Literal["cheap", "expensive"] = "cheap"
    needs: frozenset[str] = frozenset()
    """Nothing to extract: names are metadata."""
    cache_context = ("host", "meta")  # the names it matches are metadata, not content
    metadata = True
    """Runs on metadata records (`metadata_object`) as well as on content objects."""

    def __init__(self) -> None:
        self.lists: list[tuple[str, float, frozenset[str]]] = []
        self.match = "both"

    def configure(self, config: InspectorConfig) -> None:
        lists = []
        for spec in config.lists:
            if spec.kind != "domains":
                raise InspectorConfigError(f"list {spec.name!r} has kind {spec.kind!r}; the domains inspector "
                                           "takes 'domains' lists")
            entries = set()
            for raw in spec.options.get("domains", ()):
                norm = normalize_domain(str(raw))
                if not norm:
                    raise InspectorConfigError(f"list {spec.name!r}: {raw!r} is not a domain name")
                entries.add(norm)
            lists.append((spec.name, float(spec.weight), frozenset(entries)))
        self.lists = lists
        match = str(config.params.get("match", "both"))
        if match not in ("both", "objects", "events"):
            raise InspectorConfigError(f"params.match must be both, objects or events, not {match!r}")
        self.match = match

    def inspect(self, obj: ContentObject, ctx: InspectContext) -> Iterator[Finding]:
        is_event = obj.kind == "metadata"
        if (is_event and self.match == "objects") or (not is_event and self.match == "events"):
            return
        yield from self.findings(obj, object_names(obj))

    def findings(self, obj: ContentObject, names: Iterable[tuple[str, str]]) -> Iterator[Finding]:
        seen: set[tuple[str, str]] = set()
        for where, raw in names:
            name = normalize_domain(raw)
            if not name:
                continue
            for lname, weight, entries in self.lists:
                hit = next((s for s in suffixes(name) if s in entries), None)
                if hit is None or (lname, name) in seen:
                    continue
                seen.add((lname, name))
                yield Finding(self.name, obj.id, lname, weight, (Evidence(0, 0, name[:200], f"{where}:{name}"[:256]),),
                              {"domain": hit, "name": name, "where": where, "count": "1"})
