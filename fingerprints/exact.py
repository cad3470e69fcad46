"""A compact, immutable set of exact digests (MD5, SHA-256) for millions of entries.

Digests are kept as numpy ``uint64`` words: the first 8 bytes (big-endian) in one sorted array,
the remaining words in a parallel array. A lookup is one ``searchsorted`` on the first word and
a comparison of the rest, so 10 M MD5s take 160 MB (16 bytes each, no per-entry object) and a
lookup costs a few microseconds. Loading parses hex with vectorised numpy (no Python object per
line), so a 10 M line list loads in a few seconds. `ExactSet.position` gives the index of a
match, which callers use to find the entry's label (``ExactSet.payload``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import numpy as np

_HEX_LUT = np.full(256, 255, dtype=np.uint8)
for _i, _c in enumerate(b"0123456789abcdef"):
    _HEX_LUT[_c] = _i
for _i, _c in enumerate(b"ABCDEF"):
    _HEX_LUT[_c] = 10 + _i

_LINE_RE_CACHE: dict[int, re.Pattern[bytes]] = {}


def _line_re(digits: int) -> re.Pattern[bytes]:
    """A hex digest at the start of a line (after blanks), followed by a non-hex character or the end."""
    rx = _LINE_RE_CACHE.get(digits)
    if rx is None:
        rx = _LINE_RE_CACHE[digits] = re.compile(
            rb"(?m)^[ \t]*(?:0x)?([0-9a-fA-F]{%d})(?![0-9a-fA-F])" % digits)
    return rx


def hex_to_words(hexdata: bytes | np.ndarray, digest_size: int) -> np.ndarray:
    """Concatenated hex digests → ``(n, digest_size // 8)`` native ``uint64`` (ValueError on a bad digit)."""
    digits = digest_size * 2
    arr = np.frombuffer(hexdata, dtype=np.uint8) if isinstance(hexdata, bytes | bytearray) else hexdata
    if arr.size % digits:
        raise ValueError("hex data is not a whole number of digests")
    nib = _HEX_LUT[arr]
    if nib.size and nib.max() == 255:
        raise ValueError("not a hex digit in the data")
    nib = nib.reshape(-1, digest_size, 2)
    raw = (nib[:, :, 0] << 4) | nib[:, :, 1]
    return raw.view(">u8").astype(np.uint64).reshape(-1, digest_size // 8)


_CHUNK_LINES = 1 << 18


def _line_start_digests(arr: np.ndarray, starts: np.ndarray, ends: np.ndarray, digits: int
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Hex digests at the very start of lines, vectorised: (raw digest bytes (n, digits/2), bad-line mask)."""
    ok = ends - starts >= digits
    idx = starts[ok, None] + np.arange(digits)
    nib = _HEX_LUT[arr[idx]]
    valid = (nib != 255).all(axis=1)
    after = starts[ok] + digits
    has_after = after < ends[ok]
    nxt = np.full(after.shape, 255, dtype=np.uint8)
    nxt[has_after] = _HEX_LUT[arr[after[has_after]]]
    valid &= nxt == 255  # a longer hex run is not this digest
    good = nib[valid].reshape(-1, digits // 2, 2)
    raw = (good[:, :, 0] << 4) | good[:, :, 1]
    bad = np.ones(starts.shape, dtype=bool)
    bad_ok = bad[ok]
    bad_ok[valid] = False
    bad[ok] = bad_ok
    return raw, bad


def parse_hash_list(data: bytes, digest_size: int) -> np.ndarray:
    """Digests of a hash list (one per line as in Suricata's ``filemd5`` files) as uint64 words.

    Lines may carry trailing text (a name or comment after a blank); blank lines, ``#`` comments
    and lines that do not start with a digest of the right length are skipped. Lines that start
    with the digest are parsed with vectorised numpy in chunks (memory: the file plus the
    result); only the rest (leading blanks, ``0x``) go through a regular expression.
    """
    digits = digest_size * 2
    arr = np.frombuffer(data, dtype=np.uint8)
    if not arr.size:
        return np.zeros((0, digest_size // 8), dtype=np.uint64)
    nl = np.flatnonzero(arr == 0x0A)
    starts = np.concatenate(([0], nl + 1))
    ends = np.concatenate((nl, [arr.size]))
    out: list[np.ndarray] = []
    leftovers: list[bytes] = []
    for i in range(0, starts.size, _CHUNK_LINES):
        st, en = starts[i:i + _CHUNK_LINES], ends[i:i + _CHUNK_LINES]
        raw, bad = _line_start_digests(arr, st, en, digits)
        out.append(raw.view(">u8").astype(np.uint64).reshape(-1, digest_size // 8))
        for a, b in zip(st[bad].tolist(), en[bad].tolist()):
            line = data[a:b].strip()
            if line and not line.startswith(b"#"):
                leftovers.append(data[a:b])
    if leftovers:
        found = _line_re(digits).findall(b"\n".join(leftovers))
        if found:
            out.append(hex_to_words(b"".join(found), digest_size))
    return np.concatenate(out) if out else np.zeros((0, digest_size // 8), dtype=np.uint64)


def parse_hash_file(path: str, digest_size: int, block: int = 16 << 20) -> np.ndarray:
    """`parse_hash_list` over a file read in ``block``-byte pieces cut at line ends (bounded memory)."""
    parts: list[np.ndarray] = []
    rest = b""
    with open(path, "rb") as fh:
        while True:
            chunk = fh.read(block)
            if not chunk:
                break
            buf = rest + chunk
            cut = buf.rfind(b"\n") + 1
            if cut == 0:
                rest = buf
                continue
            parts.append(parse_hash_list(buf[:cut], digest_size))
            rest = buf[cut:]
    if rest:
        parts.append(parse_hash_list(rest, digest_size))
    return np.concatenate(parts) if parts else np.zeros((0, digest_size // 8), dtype=np.uint64)


class ExactSet:
    """Sorted digests with an optional parallel ``payload`` (e.g. library row ids)."""

    __slots__ = ("digest_size", "first", "payload", "rest")

    def __init__(self, words: np.ndarray, digest_size: int = 16, payload: np.ndarray | None = None,
                 *, dedupe: bool = True) -> None:
        words = np.asarray(words, dtype=np.uint64).reshape(-1, digest_size // 8)
        self.digest_size = digest_size
        order = np.argsort(words[:, 0])
        words = words[order]
        pay = None if payload is None else np.asarray(payload)[order]
        if dedupe and len(words) > 1:
            same_first = words[1:, 0] == words[:-1, 0]
            if same_first.any():  # rare: resort by all words and drop exact duplicates
                keys = tuple(words[:, i] for i in range(words.shape[1] - 1, -1, -1))
                order = np.lexsort(keys)
                words = words[order]
                pay = None if pay is None else pay[order]
                keep = np.ones(len(words), dtype=bool)
                keep[1:] = (words[1:] != words[:-1]).any(axis=1)
                words = words[keep]
                pay = None if pay is None else pay[keep]
        self.first = np.ascontiguousarray(words[:, 0])
        self.rest = np.ascontiguousarray(words[:, 1:])
        self.payload = pay

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_hex(cls, digests: Iterable[str], digest_size: int = 16, payload: Sequence[int] | None = None
                 ) -> ExactSet:
        """From hex strings (ValueError on a malformed one)."""
        items = [d.strip().lower() for d in digests]
        for d in items:
            if len(d) != digest_size * 2:
                raise ValueError(f"not a {digest_size * 8}-bit digest: {d!r}")
        joined = "".join(items).encode("ascii")
        pay = None if payload is None else np.asarray(payload, dtype=np.int64)
        return cls(hex_to_words(joined, digest_size) if items else np.zeros((0, digest_size // 8), np.uint64),
                   digest_size, pay)

    @classmethod
    def from_raw(cls, digests: Iterable[bytes], digest_size: int = 16, payload: Sequence[int] | None = None
                 ) -> ExactSet:
        """From raw digests (e.g. SQLite BLOBs)."""
        joined = b"".join(digests)
        if len(joined) % digest_size:
            raise ValueError("raw digests of the wrong size")
        words = np.frombuffer(joined, dtype=">u8").astype(np.uint64).reshape(-1, digest_size // 8)
        pay = None if payload is None else np.asarray(payload, dtype=np.int64)
        return cls(words, digest_size, pay)

    @classmethod
    def from_hash_list(cls, path: str, digest_size: int = 16) -> ExactSet:
        """From a hash-list file (see `parse_hash_list`)."""
        return cls(parse_hash_file(path, digest_size), digest_size)

    # ------------------------------------------------------------------ queries

    def __len__(self) -> int:
        return int(self.first.size)

    @property
    def nbytes(self) -> int:
        """Memory held by the arrays."""
        return int(self.first.nbytes + self.rest.nbytes + (0 if self.payload is None else self.payload.nbytes))

    def _words(self, digest: str | bytes) -> np.ndarray | None:
        if isinstance(digest, str):
            try:
                raw = bytes.fromhex(digest.strip())
            except ValueError:
                return None
        else:
            raw = bytes(digest)
        if len(raw) != self.digest_size:
            return None
        return np.frombuffer(raw, dtype=">u8").astype(np.uint64)

    def position(self, digest: str | bytes) -> int:
        """Index of ``digest`` (hex or raw) in the sorted arrays, or -1."""
        w = self._words(digest)
        if w is None or not self.first.size:
            return -1
        first = w[0]
        i = int(np.searchsorted(self.first, first, side="left"))
        n = self.first.size
        while i < n and self.first[i] == first:
            if self.rest.shape[1] == 0 or (self.rest[i] == w[1:]).all():
                return i
            i += 1
        return -1

    def __contains__(self, digest: object) -> bool:
        return isinstance(digest, str | bytes) and self.position(digest) >= 0

    def digest_at(self, i: int) -> str:
        """The hex digest at index ``i``."""
        words = np.concatenate(([self.first[i]], self.rest[i])).astype(">u8")
        return words.tobytes().hex()

    def payload_at(self, i: int) -> int | None:
        return None if self.payload is None else int(self.payload[i])
