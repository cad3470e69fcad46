"""Substring search over a few text fields in any language, on SQLite and PostgreSQL alike.

Users type terms (split on white space, AND-ed, never parsed as query syntax); each term must
occur as a case-insensitive substring of one of the fields. Three kinds of term, three ways:

- **3 characters or more**: a trigram index — SQLite FTS5 ``tokenize='trigram'`` (table
  ``<name>_fts``, one column per field), PostgreSQL ``pg_trgm`` (a GIN ``gin_trgm_ops`` index on
  ``<name>_text.doc``, the fields joined by newlines, queried with ``ILIKE``). CJK terms
  included: pg_trgm sees CJK characters as word characters in a UTF-8 ctype (``C.UTF-8``).
- **1–2 CJK characters** (Han, kana, Hangul — no spaces between words, so such terms are
  common and too short for trigrams): an n-gram index. At insert, every distinct CJK
  character and pair of adjacent CJK characters of the fields becomes a key (`gram_keys`);
  a term is found by its one key, exactly, without reading the text. SQLite: FTS5 table
  ``<name>_grams`` (``unicode61``, ``detail=none``); PostgreSQL: ``<name>_text.grams``,
  a ``text[]`` with a GIN index, queried with ``@>``.
- **1–2 other characters** (``Q3``, ``id``): a substring test (``instr`` / ``ILIKE``) on the rows
  the other terms and filters leave; a query made of such terms only reads every row.

Keys are ASCII (``g`` + 6 hex digits per character) so no tokenizer's idea of a word, case
or normalisation can change them. `TextIndex` holds the SQL for one index; the alert search
is ``TextIndex("alerts", …)``; content search adds its own with its own migration:

    SQLite:  CREATE VIRTUAL TABLE content_fts USING fts5(body, name, tokenize = 'trigram');
             CREATE VIRTUAL TABLE content_grams USING fts5(grams, tokenize = 'unicode61', detail = none,
                                                           columnsize = 0);
    Postgre: CREATE TABLE content_text (content_seq BIGINT PRIMARY KEY REFERENCES …, doc TEXT NOT NULL,
                                        grams TEXT[] NOT NULL DEFAULT '{}');
             CREATE INDEX content_text_trgm ON content_text USING gin (doc gin_trgm_ops);
             CREATE INDEX content_text_grams ON content_text USING gin (grams);
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from appliance.store.backend import Executor

__all__ = ["MAX_GRAMS", "Term", "TextIndex", "cjk_grams", "gram_key", "gram_keys", "is_cjk", "plan"]

MAX_GRAMS = 100_000
"""Distinct n-grams kept per document (bounds memory on hostile input; real evidence has far fewer)."""

_CJK_RANGES = (
    (0x1100, 0x11FF),  # Hangul Jamo
    (0x3005, 0x3007),  # 々 〆 〇
    (0x3041, 0x30FF),  # Hiragana, Katakana
    (0x3105, 0x312F),  # Bopomofo
    (0x3131, 0x318E),  # Hangul compatibility Jamo
    (0x31F0, 0x31FF),  # Katakana phonetic extensions
    (0x3400, 0x4DBF),  # CJK Extension A
    (0x4E00, 0x9FFF),  # CJK Unified Ideographs
    (0xA960, 0xA97F),  # Hangul Jamo Extended-A
    (0xAC00, 0xD7AF),  # Hangul syllables
    (0xF900, 0xFAFF),  # CJK compatibility ideographs
    (0xFF66, 0xFF9F),  # half-width Katakana
    (0x20000, 0x3134F),  # CJK Extensions B-G, compatibility supplement
)
_CJK_CLASS = "".join(f"{chr(a)}-{chr(b)}" for a, b in _CJK_RANGES)
_CJK_RUN = re.compile(f"[{_CJK_CLASS}]+")


@functools.lru_cache(maxsize=1 << 15)
def is_cjk(ch: str) -> bool:
    """A CJK letter (not punctuation such as ・ or 。 inside those blocks)."""
    return bool(_CJK_RUN.fullmatch(ch)) and unicodedata.category(ch)[0] in "LN"


def cjk_grams(*texts: str, limit: int = MAX_GRAMS) -> list[str]:
    """Distinct CJK characters and adjacent pairs of the texts, first seen first (at most *limit*)."""
    seen: dict[str, None] = {}
    for text in texts:
        for run in _CJK_RUN.findall(text or ""):
            prev = ""
            for ch in run:
                if not is_cjk(ch):
                    prev = ""
                    continue
                seen.setdefault(ch)
                if prev:
                    seen.setdefault(prev + ch)
                prev = ch
                if len(seen) >= limit:
                    return list(seen)[:limit]
    return list(seen)


@functools.lru_cache(maxsize=1 << 15)
def gram_key(gram: str) -> str:
    """The index key of a 1-2 character gram: ``g`` and six hex digits per code point."""
    return "g" + "".join(f"{ord(c):06x}" for c in gram)


def gram_keys(*texts: str, limit: int = MAX_GRAMS) -> list[str]:
    return [gram_key(g) for g in cjk_grams(*texts, limit=limit)]


@dataclass(frozen=True, slots=True)
class Term:
    text: str
    kind: Literal["trigram", "gram", "scan"]


def plan(text: str | list[str]) -> list[Term]:
    """The query's terms and how each is found (see the module doc). *text* is split on white space;
    a list is taken as its terms (a term may hold spaces: a phrase, matched as one substring)."""
    out = []
    for t in (text.split() if isinstance(text, str) else [x for x in text if x.strip()]):
        if len(t) >= 3:
            out.append(Term(t, "trigram"))
        elif all(is_cjk(c) for c in t):
            out.append(Term(t, "gram"))
        else:
            out.append(Term(t, "scan"))
    return out


def _like(term: str) -> str:
    return "%" + term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


class TextIndex:
    """The search index of one kind of row (integer keys), named as in the module doc."""

    def __init__(self, name: str, fields: Sequence[str], pg_key: str) -> None:
        self.fields = tuple(fields)
        self.fts, self.grams, self.pg_table, self.pg_key = f"{name}_fts", f"{name}_grams", f"{name}_text", pg_key

    def add(self, ex: Executor, key: int, values: Sequence[str | None]) -> None:
        """Index one row's fields (in the order of ``fields``)."""
        vals = [v or "" for v in values]
        keys = gram_keys(*vals)
        if ex.dialect == "sqlite":
            cols = ", ".join(self.fields)
            ex.execute(f"INSERT INTO {self.fts} (rowid, {cols}) VALUES (?{', ?' * len(vals)})", [key, *vals])
            if keys:
                ex.execute(f"INSERT INTO {self.grams} (rowid, grams) VALUES (?, ?)", (key, " ".join(keys)))
        else:
            ex.execute(f"INSERT INTO {self.pg_table} ({self.pg_key}, doc, grams) VALUES (?, ?, CAST(? AS text[]))",
                       (key, "\n".join(vals), keys))

    def add_many(self, ex: Executor, items: Sequence[tuple[int, Sequence[str | None]]]) -> None:
        """Index several rows: (key, field values) pairs, in batched statements."""
        if not items:
            return
        rows = [(key, [v or "" for v in values]) for key, values in items]
        if ex.dialect == "sqlite":
            cols = ", ".join(self.fields)
            ex.executemany(f"INSERT INTO {self.fts} (rowid, {cols}) VALUES (?{', ?' * len(self.fields)})",
                           [[key, *vals] for key, vals in rows])
            grams = [(key, " ".join(keys)) for key, vals in rows if (keys := gram_keys(*vals))]
            if grams:
                ex.executemany(f"INSERT INTO {self.grams} (rowid, grams) VALUES (?, ?)", grams)
        else:
            ex.executemany(f"INSERT INTO {self.pg_table} ({self.pg_key}, doc, grams) VALUES (?, ?, CAST(? AS text[]))",
                           [(key, "\n".join(vals), gram_keys(*vals)) for key, vals in rows])

    def remove(self, ex: Executor, keys_sql: str, params: Sequence[Any]) -> None:
        """Drop the entries whose key is among *keys_sql* (a subquery)."""
        if ex.dialect == "sqlite":
            ex.execute(f"DELETE FROM {self.fts} WHERE rowid IN ({keys_sql})", params)
            ex.execute(f"DELETE FROM {self.grams} WHERE rowid IN ({keys_sql})", params)
        else:
            ex.execute(f"DELETE FROM {self.pg_table} WHERE {self.pg_key} IN ({keys_sql})", params)

    def condition(self, dialect: str, text: str | list[str], key_col: str, many: bool = False) -> tuple[str, list[Any]]:
        """A condition on *key_col* selecting the rows that contain every term, or ``""`` for no terms
        (*text*: split on white space, or a list of terms, phrases included).

        *many*: the caller knows many rows match (PostgreSQL then lets the planner walk the newest rows and
        test each; otherwise the matches are found first, as one set, whatever its estimate of their number)."""
        terms = plan(text)
        if not terms:
            return "", []
        if dialect == "sqlite":
            return self._sqlite(terms, key_col)
        return self._pg(terms, key_col, many)

    def _sqlite(self, terms: list[Term], key_col: str) -> tuple[str, list[Any]]:
        # One condition per index, intersected by the outer query: SQLite evaluates an FTS5 MATCH again
        # for each row when it is combined with a rowid constraint in the same subquery (seconds).
        tri = [t.text for t in terms if t.kind == "trigram"]
        grams = [gram_key(t.text) for t in terms if t.kind == "gram"]
        scans = [t.text for t in terms if t.kind == "scan"]
        conds, params = [], []
        if tri:
            conds.append(f"{key_col} IN (SELECT rowid FROM {self.fts} WHERE {self.fts} MATCH ?)")
            params.append(" AND ".join('"' + t.replace('"', '""') + '"' for t in tri))
        if grams:
            conds.append(f"{key_col} IN (SELECT rowid FROM {self.grams} WHERE {self.grams} MATCH ?)")
            params.append(" AND ".join(grams))
        for s in scans:
            found = " OR ".join(f"instr(lower({f}), lower(?))" for f in self.fields)
            if conds:  # read the text of the rows the indexed terms leave
                conds.append(f"EXISTS (SELECT 1 FROM {self.fts} WHERE rowid = {key_col} AND ({found}))")
            else:  # no indexed term: one pass over all the text
                conds.append(f"{key_col} IN (SELECT rowid FROM {self.fts} WHERE {found})")
            params.extend([s] * len(self.fields))
        return " AND ".join(conds), params

    def _pg(self, terms: list[Term], key_col: str, many: bool) -> tuple[str, list[Any]]:
        sub, params = [f"SELECT {self.pg_key} FROM {self.pg_table} WHERE TRUE"], []
        for t in terms:
            if t.kind != "gram":
                sub.append("AND doc ILIKE ? ESCAPE '\\'")
                params.append(_like(t.text))
        grams = [gram_key(t.text) for t in terms if t.kind == "gram"]
        if grams:
            sub.append("AND grams @> CAST(? AS text[])")
            params.append(grams)
        # OFFSET 0 keeps the matches one set: the planner's guess of how many rows match is poor, and with a
        # LIMIT it may walk the newest rows probing the text of each — fast when many match, seconds when few do
        return f"{key_col} IN ({' '.join(sub)}{'' if many else ' OFFSET 0'})", params
