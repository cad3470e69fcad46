"""HTTP/1.x detection by content, on any port.

Both functions look at the first bytes of one direction of a stream and answer True (looks
like HTTP), False (does not) or None (too few bytes to tell). Leading blank lines (CR, LF,
spaces, tabs) are skipped, as servers and clients tolerate them.
"""

from __future__ import annotations

_TCHAR = frozenset(b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_WS = b" \t\r\n"
_MAX_METHOD = 24
_MAX_LEADING = 64

KNOWN_METHODS = frozenset({
    b"GET", b"POST", b"HEAD", b"PUT", b"DELETE", b"OPTIONS", b"CONNECT", b"TRACE", b"PATCH",
    b"PROPFIND", b"PROPPATCH", b"MKCOL", b"COPY", b"MOVE", b"LOCK", b"UNLOCK", b"SEARCH",
    b"REPORT", b"MKACTIVITY", b"CHECKOUT", b"MERGE", b"M-SEARCH", b"NOTIFY", b"SUBSCRIBE",
    b"UNSUBSCRIBE", b"PURGE", b"MKCALENDAR", b"LINK", b"UNLINK", b"SOURCE", b"BIND", b"REBIND",
    b"UNBIND", b"ACL", b"VERSION-CONTROL", b"UPDATE", b"LABEL", b"BASELINE-CONTROL", b"QUERY",
})


def _skip_leading(data: bytes) -> int | None:
    """Index of the first non-blank byte, or None if all blank so far (bounded)."""
    i = 0
    n = len(data)
    while i < n and data[i] in _WS:
        i += 1
        if i > _MAX_LEADING:
            return -1
    return i if i < n else None


def looks_like_http_request(first_bytes: bytes) -> bool | None:
    """``METHOD SP target`` at the start (after blank lines)? None = need more bytes.

    Known methods are accepted at once; an unknown method must be an upper-case token
    followed by a target and an ``HTTP/`` version on the same line.
    """
    i = _skip_leading(first_bytes)
    if i is None:
        return None
    if i < 0:
        return False
    data = first_bytes
    n = len(data)
    j = i
    while j < n and data[j] in _TCHAR:
        j += 1
        if j - i > _MAX_METHOD:
            return False
    if j == n:
        # the method token may continue; decide early for prefixes of nothing known
        tok = data[i:j].upper()
        if any(m.startswith(tok) for m in KNOWN_METHODS) or (tok.isupper() and tok.isalpha()):
            return None
        return False
    if j == i or data[j] not in b" \t":
        return False
    method = data[i:j]
    if method in KNOWN_METHODS:
        return True
    if not (method.isupper() and method.replace(b"-", b"").isalpha()):
        return False
    # An unknown method must prove itself with an HTTP version at the end of the line:
    # ``USER anonymous`` (FTP) and ``EHLO mail`` (SMTP) share the upper-case-token shape.
    eol = data.find(b"\n", j)
    if eol < 0:
        if b" HTTP/" in data[j:].upper():
            return True
        return None if n - i < 2048 else False
    line = data[j:eol].rstrip(b"\r \t")
    k = line.rfind(b" ")
    return k >= 0 and line[k + 1:k + 6].upper() == b"HTTP/" and len(line[:k].strip()) > 0


def looks_like_http_response(first_bytes: bytes) -> bool | None:
    """An ``HTTP/`` status line at the start (after blank lines, any case)? None = need more."""
    i = _skip_leading(first_bytes)
    if i is None:
        return None
    if i < 0:
        return False
    head = first_bytes[i:i + 5].upper()
    if len(head) < 5:
        return None if b"HTTP/".startswith(head) else False
    return head == b"HTTP/"
