"""TLS handshake messages as metadata: ClientHello / ServerHello fields, JA3, JA3S and JA4.

Pure functions over the bytes of one handshake message body (after its 4-byte header), shared
by the TLS parser (`reassembly.applayer.tls`) and the QUIC Initial parser
(`reassembly.applayer.quic`, whose CRYPTO frames carry the same ClientHello). Nothing here
raises on wire data: a malformed message gives ``None`` (the caller flags it).

Fingerprints:

* JA3 (Salesforce): ``SSLVersion,Ciphers,Extensions,EllipticCurves,EllipticCurvePointFormats``,
  decimal values joined by ``-``, GREASE values (RFC 8701) removed; the MD5 of that string.
* JA3S: ``SSLVersion,Cipher,Extensions`` of the ServerHello; its MD5.
* JA4 (FoxIO, ``JA4_a_JA4_b_JA4_c``): ``a`` = transport (``t`` TCP, ``q`` QUIC), the highest
  version offered (supported_versions, else the legacy version), ``d``/``i`` (SNI present or
  not), cipher and extension counts (two digits each, GREASE ignored, at most 99) and the first
  and last character of the first ALPN value (``00`` without ALPN); ``b`` = the first 12 hex
  digits of the SHA-256 of the sorted cipher list (4-digit hex, comma-separated); ``c`` = the
  same of the sorted extension list without SNI and ALPN, ``_``, and the signature algorithms
  in their original order.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

CLIENT_HELLO = 1
SERVER_HELLO = 2
CERTIFICATE = 11
SERVER_HELLO_DONE = 14

EXT_SNI = 0x0000
EXT_GROUPS = 0x000A
EXT_POINT_FORMATS = 0x000B
EXT_SIG_ALGS = 0x000D
EXT_ALPN = 0x0010
EXT_SUPPORTED_VERSIONS = 0x002B
EXT_QUIC_PARAMS = 0x0039

MAX_LIST = 512
"""Entries kept per list (ciphers, extensions, groups…): a hello with more is flagged."""
MAX_NAME = 255
"""Longest SNI kept (a DNS name is at most 253 characters)."""

VERSION_NAMES = {
    0x0002: "SSLv2", 0x0300: "SSLv3", 0x0301: "TLSv1", 0x0302: "TLS 1.1", 0x0303: "TLS 1.2",
    0x0304: "TLS 1.3",
}
"""Suricata's names of the protocol versions (its EVE ``tls.version``)."""

_JA4_VERSIONS = {
    0x0304: "13", 0x0303: "12", 0x0302: "11", 0x0301: "10", 0x0300: "s3", 0x0002: "s2",
    0xFEFF: "d1", 0xFEFD: "d2", 0xFEFC: "d3",
}


def is_grease(v: int) -> bool:
    """A GREASE value (RFC 8701): ``0x?a?a`` with both bytes equal."""
    return (v & 0x0F0F) == 0x0A0A and (v >> 8) == (v & 0xFF)


def version_name(v: int) -> str:
    """Suricata's name for a protocol version (``TLS 1.2``…), else ``0x....``."""
    return VERSION_NAMES.get(v, f"0x{v:04x}")


@dataclass(slots=True)
class Hello:
    """What a ClientHello or ServerHello says (the ServerHello's one cipher is ``ciphers[0]``)."""

    legacy_version: int = 0
    session_id: bytes = b""
    ciphers: list[int] = field(default_factory=list)
    extensions: list[int] = field(default_factory=list)
    """Extension types in wire order (GREASE included)."""
    sni: str = ""
    alpn: list[str] = field(default_factory=list)
    supported_versions: list[int] = field(default_factory=list)
    groups: list[int] = field(default_factory=list)
    point_formats: list[int] = field(default_factory=list)
    sig_algs: list[int] = field(default_factory=list)
    anomalies: list[str] = field(default_factory=list)

    @property
    def version(self) -> int:
        """The negotiated (ServerHello) or highest offered (ClientHello) version."""
        real = [v for v in self.supported_versions if not is_grease(v)]
        return max(real) if real else self.legacy_version


class _Reader:
    """Bounds-checked reads over one message; `Short` when the bytes run out."""

    __slots__ = ("data", "end", "pos")

    def __init__(self, data: bytes, pos: int = 0, end: int | None = None) -> None:
        self.data = data
        self.pos = pos
        self.end = len(data) if end is None else end

    def u8(self) -> int:
        if self.pos + 1 > self.end:
            raise Short
        v = self.data[self.pos]
        self.pos += 1
        return v

    def u16(self) -> int:
        if self.pos + 2 > self.end:
            raise Short
        v = int.from_bytes(self.data[self.pos:self.pos + 2], "big")
        self.pos += 2
        return v

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > self.end:
            raise Short
        v = self.data[self.pos:self.pos + n]
        self.pos += n
        return v

    def sub(self, n: int) -> _Reader:
        if n < 0 or self.pos + n > self.end:
            raise Short
        r = _Reader(self.data, self.pos, self.pos + n)
        self.pos += n
        return r

    @property
    def left(self) -> int:
        return self.end - self.pos


class Short(Exception):
    """A length field points past the end of its container."""


def _u16_list(r: _Reader, out: list[int], hello: Hello) -> None:
    while r.left >= 2:
        v = r.u16()
        if len(out) < MAX_LIST:
            out.append(v)
        elif "tls.hello_list_overflow" not in hello.anomalies:
            hello.anomalies.append("tls.hello_list_overflow")


def _sni(data: bytes) -> str:
    r = _Reader(data)
    lst = r.sub(r.u16())
    while lst.left >= 3:
        kind = lst.u8()
        name = lst.take(lst.u16())
        if kind == 0:
            return name[:MAX_NAME].decode("ascii", "replace").lower().rstrip(".")
    return ""


def _alpn(data: bytes) -> list[str]:
    r = _Reader(data)
    lst = r.sub(r.u16())
    out = []
    while lst.left >= 1 and len(out) < 32:
        out.append(lst.take(lst.u8()).decode("latin-1"))
    return out


def _extension(hello: Hello, etype: int, data: bytes, client: bool) -> None:
    r = _Reader(data)
    if etype == EXT_SNI and client:
        hello.sni = _sni(data)
    elif etype == EXT_ALPN:
        hello.alpn = _alpn(data)
    elif etype == EXT_GROUPS:
        _u16_list(r.sub(r.u16()), hello.groups, hello)
    elif etype == EXT_POINT_FORMATS:
        hello.point_formats = list(r.take(r.u8()))[:MAX_LIST]
    elif etype == EXT_SIG_ALGS:
        _u16_list(r.sub(r.u16()), hello.sig_algs, hello)
    elif etype == EXT_SUPPORTED_VERSIONS:
        if client:
            _u16_list(r.sub(r.u8()), hello.supported_versions, hello)
        else:
            hello.supported_versions = [r.u16()]


def parse_hello(body: bytes, client: bool) -> Hello | None:
    """The fields of a ClientHello (``client``) or ServerHello body; None when malformed.

    A hello whose extensions are cut short keeps what was read (anomaly ``tls.hello_truncated``).
    """
    hello = Hello()
    r = _Reader(body)
    try:
        hello.legacy_version = r.u16()
        r.take(32)  # random
        hello.session_id = r.take(r.u8())
        if client:
            _u16_list(r.sub(r.u16()), hello.ciphers, hello)
            r.take(r.u8())  # compression methods
        else:
            hello.ciphers = [r.u16()]
            r.u8()  # compression method
    except Short:
        return None
    if r.left < 2:
        return hello  # no extensions (SSLv3 / early TLS)
    try:
        exts = r.sub(r.u16())
        while exts.left >= 4:
            etype = exts.u16()
            data = exts.take(exts.u16())
            if len(hello.extensions) < MAX_LIST:
                hello.extensions.append(etype)
            try:
                _extension(hello, etype, data, client)
            except Short:
                hello.anomalies.append("tls.bad_extension")
    except Short:
        hello.anomalies.append("tls.hello_truncated")
    return hello


def _no_grease(values: list[int]) -> list[int]:
    return [v for v in values if not is_grease(v)]


def _dashed(values: list[int]) -> str:
    return "-".join(str(v) for v in values)


def ja3_string(h: Hello) -> str:
    """The JA3 string of a ClientHello."""
    return ",".join((str(h.legacy_version), _dashed(_no_grease(h.ciphers)), _dashed(_no_grease(h.extensions)),
                     _dashed(_no_grease(h.groups)), _dashed(h.point_formats)))


def ja3s_string(h: Hello) -> str:
    """The JA3S string of a ServerHello."""
    return ",".join((str(h.legacy_version), str(h.ciphers[0] if h.ciphers else 0),
                     _dashed(_no_grease(h.extensions))))


def md5_hex(s: str) -> str:
    return hashlib.md5(s.encode("ascii")).hexdigest()


def _alpn_end(b: int) -> str | None:
    """One end byte of the first ALPN value: printable ASCII as itself, 0x80+ as ``9``,
    a control byte as None (the value is then ``99``)."""
    if 0x20 <= b <= 0x7E:
        return chr(b)
    return "9" if b >= 0x80 else None


def _alpn_chars(alpn: list[str]) -> str:
    """JA4's two ALPN characters (FoxIO's reference ``ja4.py``): ``00`` without ALPN."""
    if not alpn or not alpn[0]:
        return "00"
    raw = alpn[0].encode("latin-1", "replace")
    first, last = _alpn_end(raw[0]), _alpn_end(raw[-1])
    return "99" if first is None or last is None else first + last


def _sha12(s: str) -> str:
    return hashlib.sha256(s.encode("ascii")).hexdigest()[:12]


def ja4_parts(h: Hello, transport: str = "t") -> tuple[str, str, str]:
    """(``JA4_a``, the cipher list, the extension+signature string) before hashing (JA4_r)."""
    ciphers = sorted(f"{c:04x}" for c in _no_grease(h.ciphers))
    exts_all = _no_grease(h.extensions)
    exts = sorted(f"{e:04x}" for e in exts_all if e not in (EXT_SNI, EXT_ALPN))
    version = _JA4_VERSIONS.get(h.version, "00")
    sni = "d" if EXT_SNI in h.extensions else "i"
    a = f"{transport}{version}{sni}{min(len(ciphers), 99):02d}{min(len(exts_all), 99):02d}{_alpn_chars(h.alpn)}"
    c = ",".join(exts)
    sigs = _no_grease(h.sig_algs)
    if sigs:
        c += "_" + ",".join(f"{s:04x}" for s in sigs)
    return a, ",".join(ciphers), c


def ja4(h: Hello, transport: str = "t") -> str:
    """The JA4 fingerprint of a ClientHello (``transport``: ``t`` TCP, ``q`` QUIC)."""
    a, b, c = ja4_parts(h, transport)
    return f"{a}_{_sha12(b) if b else '0' * 12}_{_sha12(c) if c else '0' * 12}"


def client_fields(h: Hello, transport: str = "t") -> dict[str, object]:
    """EVE ``tls`` fields of a ClientHello (Suricata's names)."""
    js = ja3_string(h)
    out: dict[str, object] = {"ja3": {"hash": md5_hex(js), "string": js}, "ja4": ja4(h, transport)}
    if h.sni:
        out["sni"] = h.sni
    if h.alpn:
        out["client_alpns"] = list(h.alpn)
    return out


def server_fields(h: Hello) -> dict[str, object]:
    """EVE ``tls`` fields of a ServerHello."""
    js = ja3s_string(h)
    out: dict[str, object] = {"version": version_name(h.version), "ja3s": {"hash": md5_hex(js), "string": js},
                              "cipher_suite": cipher_name(h.ciphers[0] if h.ciphers else 0)}
    if h.alpn:
        out["server_alpns"] = list(h.alpn)
    return out


_CIPHERS = {
    0x1301: "TLS_AES_128_GCM_SHA256", 0x1302: "TLS_AES_256_GCM_SHA384", 0x1303: "TLS_CHACHA20_POLY1305_SHA256",
    0x1304: "TLS_AES_128_CCM_SHA256", 0x1305: "TLS_AES_128_CCM_8_SHA256",
    0xC02B: "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", 0xC02C: "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    0xC02F: "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", 0xC030: "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    0xCCA8: "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", 0xCCA9: "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    0xCCAA: "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    0xC009: "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", 0xC00A: "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    0xC013: "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", 0xC014: "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    0xC023: "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256", 0xC024: "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384",
    0xC027: "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256", 0xC028: "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384",
    0x009C: "TLS_RSA_WITH_AES_128_GCM_SHA256", 0x009D: "TLS_RSA_WITH_AES_256_GCM_SHA384",
    0x009E: "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256", 0x009F: "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384",
    0x002F: "TLS_RSA_WITH_AES_128_CBC_SHA", 0x0035: "TLS_RSA_WITH_AES_256_CBC_SHA",
    0x003C: "TLS_RSA_WITH_AES_128_CBC_SHA256", 0x003D: "TLS_RSA_WITH_AES_256_CBC_SHA256",
    0x000A: "TLS_RSA_WITH_3DES_EDE_CBC_SHA", 0x0005: "TLS_RSA_WITH_RC4_128_SHA",
}


def cipher_name(code: int) -> str:
    """The IANA name of a common cipher suite, else its code as ``0x....``."""
    return _CIPHERS.get(code, f"0x{code:04x}")
