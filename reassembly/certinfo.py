"""X.509 certificate fields for EVE ``tls`` events, in Suricata's formats.

`certificate_fields(der)` parses one DER certificate with the ``cryptography`` package and
returns ``subject`` / ``issuerdn`` (``C=US, O=Example, CN=www.example.com``: RDNs in
certificate order, as Suricata writes them), ``serial`` (upper-case hex bytes joined by
``:``), ``fingerprint`` (SHA-1 of the DER, lower-case, ``:``-joined), ``notbefore`` /
``notafter`` (``YYYY-MM-DDTHH:MM:SS``, UTC) and ``subjectaltname`` (DNS names). A certificate
that does not parse gives only its fingerprint (the caller flags it). Never raises.
"""

from __future__ import annotations

import hashlib
from typing import Any

MAX_SAN = 64
"""DNS names kept from a certificate's subjectAltName."""
_MAX_TEXT = 1024


def _colon_hex(data: bytes, upper: bool) -> str:
    h = data.hex()
    h = h.upper() if upper else h
    return ":".join(h[i:i + 2] for i in range(0, len(h), 2))


def fingerprint(der: bytes) -> str:
    """Suricata's ``tls.fingerprint``: SHA-1 of the DER certificate, ``aa:bb:…``."""
    return _colon_hex(hashlib.sha1(der).digest(), upper=False)


def _dn(name: Any) -> str:
    parts = []
    for rdn in name.rdns:
        for attr in rdn:
            try:
                key = attr.rfc4514_attribute_name
            except Exception:  # an OID cryptography has no short name for
                key = attr.oid.dotted_string
            value = attr.value if isinstance(attr.value, str) else bytes(attr.value).hex()
            parts.append(f"{key}={value}")
    return ", ".join(parts)[:_MAX_TEXT]


def _serial(n: int) -> str:
    length = max(1, (n.bit_length() + 7) // 8)
    return _colon_hex(n.to_bytes(length, "big", signed=False), upper=True)


def certificate_fields(der: bytes) -> tuple[dict[str, object], bool]:
    """(EVE fields, parsed) for one DER certificate; ``parsed`` is False when it did not parse."""
    out: dict[str, object] = {"fingerprint": fingerprint(der)}
    try:
        from cryptography import x509

        cert = x509.load_der_x509_certificate(der)
        out["subject"] = _dn(cert.subject)
        out["issuerdn"] = _dn(cert.issuer)
        out["serial"] = _serial(cert.serial_number)
        out["notbefore"] = cert.not_valid_before_utc.strftime("%Y-%m-%dT%H:%M:%S")
        out["notafter"] = cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%S")
    except Exception:  # not DER, an unsupported algorithm, a bad date: only the fingerprint
        return out, False
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [n.lower() for n in san.get_values_for_type(x509.DNSName)][:MAX_SAN]
        if names:
            out["subjectaltname"] = names
    except Exception:  # no SAN, or one that does not parse
        pass
    return out, True
