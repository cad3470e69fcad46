"""DNS over UDP and TCP: queries and answers as EVE ``dns`` events (Suricata's version 2 layout).

One event per message: a query gives ``{"type": "query", "id", "rrname", "rrtype", "opcode",
"tx_id"}``; a response gives ``{"version": 2, "type": "answer", "id", "flags", "qr", "aa", "tc",
"rd", "ra", "opcode", "rrname", "rrtype", "rcode", "answers": [{"rrname", "rrtype", "ttl",
"rdata"}…], "grouped": {"A": [...]…}, "authorities": [...]}`` (SOA and SRV records carry
``soa`` / ``srv`` objects instead of ``rdata``). Names are lower-cased, without the final dot.
Detected by content (a plausible header and a question that parses), port 53 only orders the
probes. TCP carries length-prefixed messages (RFC 1035 §4.2.2). Compression pointers may only
point backwards (no loops); at most ``max_answers`` records of each section are reported; a
malformed message is counted (``dns.malformed``), never raised.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from appliance.model import ContentObject, Direction, Flow, Packet, StreamData, StreamEvent, StreamGap
from reassembly.applayer.base import AppProtocol, Limits, ParserContext

_NONE: list[ContentObject] = []
RRTYPES = {1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 15: "MX", 16: "TXT", 28: "AAAA", 33: "SRV",
           35: "NAPTR", 39: "DNAME", 41: "OPT", 43: "DS", 46: "RRSIG", 47: "NSEC", 48: "DNSKEY", 64: "SVCB",
           65: "HTTPS", 99: "SPF", 255: "ANY", 257: "CAA"}
RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED", 6: "YXDOMAIN",
          7: "YXRRSET", 8: "NXRRSET", 9: "NOTAUTH", 10: "NOTZONE"}
_MAX_NAME = 255
_MAX_TCP_BUF = 65535 + 2


@dataclass(frozen=True, slots=True)
class DnsLimits(Limits):
    max_answers: int = 64
    """Records reported per section of one message."""


class Malformed(Exception):
    """The message does not parse."""


def rrtype_name(t: int) -> str:
    return RRTYPES.get(t, f"TYPE{t}")


def read_name(msg: bytes, pos: int) -> tuple[str, int]:
    """The (possibly compressed) name at ``pos``: (name, position after it)."""
    labels: list[str] = []
    end = -1
    jumps = 0
    total = 0
    while True:
        if pos >= len(msg):
            raise Malformed
        n = msg[pos]
        if n == 0:
            pos += 1
            break
        if n & 0xC0 == 0xC0:
            if pos + 1 >= len(msg):
                raise Malformed
            target = ((n & 0x3F) << 8) | msg[pos + 1]
            if end < 0:
                end = pos + 2
            if target >= pos or jumps > 64:  # pointers go backwards only: no loops
                raise Malformed
            jumps += 1
            pos = target
            continue
        if n & 0xC0:
            raise Malformed  # extended label types
        label = msg[pos + 1:pos + 1 + n]
        if len(label) != n:
            raise Malformed
        total += n + 1
        if total > _MAX_NAME:
            raise Malformed
        labels.append(label.decode("ascii", "backslashreplace"))
        pos += 1 + n
    return ".".join(labels).lower(), (end if end >= 0 else pos)


def _u16(msg: bytes, pos: int) -> int:
    if pos + 2 > len(msg):
        raise Malformed
    return int.from_bytes(msg[pos:pos + 2], "big")


def _rdata(msg: bytes, rtype: int, start: int, length: int) -> dict[str, object]:
    rd = msg[start:start + length]
    if rtype == 1 and length == 4:
        return {"rdata": str(ipaddress.IPv4Address(rd))}
    if rtype == 28 and length == 16:
        return {"rdata": str(ipaddress.IPv6Address(rd))}
    if rtype in (2, 5, 12, 39):
        return {"rdata": read_name(msg, start)[0]}
    if rtype == 15:
        return {"rdata": read_name(msg, start + 2)[0]}
    if rtype == 16:
        parts, pos = [], 0
        while pos < length:
            n = rd[pos]
            parts.append(rd[pos + 1:pos + 1 + n].decode("utf-8", "replace"))
            pos += 1 + n
        return {"rdata": "".join(parts)[:1024]}
    if rtype == 6:
        mname, p = read_name(msg, start)
        rname, p = read_name(msg, p)
        if p + 20 > start + length:
            raise Malformed
        v = [int.from_bytes(msg[p + 4 * i:p + 4 * i + 4], "big") for i in range(5)]
        return {"soa": {"mname": mname, "rname": rname, "serial": v[0], "refresh": v[1], "retry": v[2],
                        "expire": v[3], "minimum": v[4]}}
    if rtype == 33 and length >= 7:
        return {"srv": {"priority": _u16(msg, start), "weight": _u16(msg, start + 2), "port": _u16(msg, start + 4),
                        "name": read_name(msg, start + 6)[0]}}
    return {}


def _records(msg: bytes, pos: int, count: int, keep: int, out: list[dict[str, object]]) -> int:
    for _ in range(count):
        name, pos = read_name(msg, pos)
        rtype, rlen = _u16(msg, pos), _u16(msg, pos + 8)
        if pos + 10 + rlen > len(msg):
            raise Malformed
        if len(out) < keep and rtype != 41:  # OPT (EDNS) is not a record to report
            rec: dict[str, object] = {"rrname": name, "rrtype": rrtype_name(rtype),
                                      "ttl": int.from_bytes(msg[pos + 4:pos + 8], "big")}
            try:
                rec.update(_rdata(msg, rtype, pos + 10, rlen))
            except (Malformed, IndexError, ValueError):
                pass  # the record is reported without its data
            out.append(rec)
        pos += 10 + rlen
    return pos


def parse_message(msg: bytes, max_answers: int = 64) -> dict[str, object]:
    """The EVE ``dns`` fields of one DNS message; `Malformed` when it does not parse."""
    if len(msg) < 12:
        raise Malformed
    qid, flags = _u16(msg, 0), _u16(msg, 2)
    qd, an, ns = _u16(msg, 4), _u16(msg, 6), _u16(msg, 8)
    opcode = (flags >> 11) & 0xF
    pos = 12
    rrname, rrtype = "", ""
    for i in range(min(qd, 16)):
        name, pos = read_name(msg, pos)
        qtype = _u16(msg, pos)
        _u16(msg, pos + 2)
        pos += 4
        if i == 0:
            rrname, rrtype = name, rrtype_name(qtype)
    if not flags & 0x8000:
        return {"type": "query", "id": qid, "rrname": rrname, "rrtype": rrtype, "opcode": opcode}
    out: dict[str, object] = {
        "version": 2, "type": "answer", "id": qid, "flags": f"{flags:x}", "qr": True,
        **{k: True for k, bit in (("aa", 0x400), ("tc", 0x200), ("rd", 0x100), ("ra", 0x80)) if flags & bit},
        "opcode": opcode, "rrname": rrname, "rrtype": rrtype, "rcode": RCODES.get(flags & 0xF, str(flags & 0xF)),
    }
    answers: list[dict[str, object]] = []
    auth: list[dict[str, object]] = []
    pos = _records(msg, pos, an, max_answers, answers)
    _records(msg, pos, ns, max_answers, auth)
    if answers:
        out["answers"] = answers
        grouped: dict[str, list[object]] = {}
        for a in answers:
            if "rdata" in a:
                grouped.setdefault(str(a["rrtype"]), []).append(a["rdata"])
        if grouped:
            out["grouped"] = grouped
    if auth:
        out["authorities"] = auth
    return out


def looks_like_dns(msg: bytes) -> bool:
    """A header with sane counts and a first question that parses (the probe for both transports)."""
    if len(msg) < 17:
        return False
    flags = _u16(msg, 2)
    qd, an, ns, ar = (_u16(msg, p) for p in (4, 6, 8, 10))
    if (flags >> 11) & 0xF not in (0, 1, 2, 4, 5) or not 1 <= qd <= 4 or an > 512 or ns > 512 or ar > 512:
        return False
    if flags & 0x0040:  # the Z bit is zero in every real message
        return False
    try:
        _, pos = read_name(msg, 12)
        qclass = _u16(msg, pos + 2)
    except Malformed:
        return False
    return qclass in (1, 3, 4, 254, 255) or qclass & 0x7FFF == 1  # IN (and mDNS's unicast bit), CH, HS


class DnsDatagrams:
    """One UDP conversation's DNS messages → ``dns`` events."""

    __slots__ = ("count", "ctx", "flow", "max_answers")

    def __init__(self, flow: Flow, ctx: ParserContext) -> None:
        self.flow = flow
        self.ctx = ctx
        self.max_answers = int((ctx.limits or DnsLimits()).max_answers)
        self.count = 0

    def feed_datagram(self, pkt: Packet, direction: Direction) -> list[ContentObject]:
        self.message(bytes(pkt.payload), direction, pkt.ts_ns)
        return _NONE

    def message(self, msg: bytes, direction: Direction, ts_ns: int) -> None:
        try:
            fields = parse_message(msg, self.max_answers)
        except (Malformed, IndexError, ValueError):
            if "dns.malformed" not in self.flow.anomalies:
                self.flow.anomalies.append("dns.malformed")
            return
        if fields["type"] == "query":
            fields["tx_id"] = self.count
            self.count += 1
        d = Direction.TO_CLIENT if fields["type"] == "answer" else Direction.TO_SERVER
        if d != direction and "dns.unexpected_direction" not in self.flow.anomalies:
            self.flow.anomalies.append("dns.unexpected_direction")
        self.ctx.emit_event("dns", fields, ts_ns, direction)

    def close(self, flow: Flow, ts_ns: int) -> list[ContentObject]:
        return _NONE


class DnsStream:
    """DNS over TCP: 2-byte length-prefixed messages in both directions."""

    __slots__ = ("bufs", "dead", "msgs")

    def __init__(self, flow: Flow, ctx: ParserContext) -> None:
        self.msgs = DnsDatagrams(flow, ctx)
        self.bufs = [b"", b""]
        self.dead = [False, False]

    def feed(self, ev: StreamEvent) -> list[ContentObject]:
        d = ev.direction
        if self.dead[d]:
            return _NONE
        if type(ev) is StreamGap:
            self.dead[d] = True  # the length prefixes cannot be followed past a hole
            return _NONE
        if type(ev) is not StreamData:
            return _NONE
        buf = self.bufs[d] + ev.data
        pos = 0
        while len(buf) - pos >= 2:
            n = int.from_bytes(buf[pos:pos + 2], "big")
            if len(buf) - pos - 2 < n:
                break
            self.msgs.message(buf[pos + 2:pos + 2 + n], Direction(d), ev.ts_ns)
            pos += 2 + n
        self.bufs[d] = buf[pos:]
        if len(self.bufs[d]) > _MAX_TCP_BUF:
            self.dead[d] = True
        return _NONE

    def close(self, flow: Flow, ts_ns: int) -> list[ContentObject]:
        return _NONE


def probe_udp(client: bytes, server: bytes, flow: Flow) -> bool:
    return looks_like_dns(client)


def probe_tcp(client: bytes, server: bytes, flow: Flow) -> bool | None:
    """A length prefix that matches, then a DNS message."""
    for b in (client, server):
        if len(b) >= 2:
            n = int.from_bytes(b[:2], "big")
            if n < 17 or n > 65535:
                return False
            if len(b) < 19:
                return None
            return looks_like_dns(b[2:2 + n])  # a message cut before its first name says no
    return None


DNS = AppProtocol("dns", DnsDatagrams, probe=probe_udp, ports=frozenset({53, 5353, 5355}), limits=DnsLimits(),
                  transport="udp")
DNS_TCP = AppProtocol("dns-tcp", DnsStream, probe=probe_tcp, ports=frozenset({53}), limits=DnsLimits(),
                      limits_from="dns")
