"""Where a store lives: a SQLite file or a PostgreSQL database, named by one string.

- ``/var/lib/tapsift/alerts.db`` or ``sqlite:///relative.db`` / ``sqlite:////abs/alerts.db``
  (SQLAlchemy's spelling: three slashes, then the path): an embedded SQLite file;
- ``postgresql://user@host:5432/db?sslmode=verify-full&sslrootcert=/etc/tapsift/ca.pem``
  (or ``postgres://``): a PostgreSQL database. The query parameters go to libpq unchanged
  (``sslmode``, ``sslrootcert``, ``sslcert``, ``sslkey``, ``passfile``, ``connect_timeout``,
  ``application_name``…), so TLS is configured in the DSN itself.

`redacted` is the form to print: it never shows a password.
"""

from __future__ import annotations

import os
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = ["Dsn"]

Dialect = Literal["sqlite", "postgresql"]


@dataclass(frozen=True, slots=True)
class Dsn:
    """A parsed store location: ``dialect`` and either ``path`` (SQLite) or ``url`` (PostgreSQL)."""

    dialect: Dialect
    path: Path | None = None
    url: str = ""

    @classmethod
    def parse(cls, value: str | os.PathLike[str] | Dsn) -> Dsn:
        if isinstance(value, Dsn):
            return value
        if isinstance(value, os.PathLike):
            return cls("sqlite", Path(value))
        text = str(value).strip()
        if not text:
            raise ValueError("empty store location")
        scheme = text.split(":", 1)[0].lower() if "://" in text else ""
        if scheme in ("postgresql", "postgres"):
            parts = urllib.parse.urlsplit(text)
            if not parts.path.strip("/") and "dbname=" not in parts.query:
                raise ValueError(f"{cls('postgresql', url=text).redacted}: name the database (…/DBNAME)")
            return cls("postgresql", url=text)
        if scheme == "sqlite":
            rest = text[len("sqlite://"):]
            if not rest.startswith("/") or len(rest) < 2:
                raise ValueError("a SQLite DSN is sqlite:///relative/path or sqlite:////absolute/path")
            return cls("sqlite", Path(urllib.parse.unquote(rest[1:])))
        if scheme:
            raise ValueError(f"unknown store scheme {scheme!r} (a path, sqlite:/// or postgresql://)")
        return cls("sqlite", Path(text))

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @property
    def redacted(self) -> str:
        """For messages and logs: the path, or the URL without its password."""
        if self.path is not None:
            return str(self.path)
        parts = urllib.parse.urlsplit(self.url)
        netloc, query = parts.netloc, parts.query
        if parts.password is not None:
            netloc = f"{parts.username or ''}:***@{netloc.rsplit('@', 1)[1]}"
        pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
        if any(k == "password" for k, _ in pairs):
            query = urllib.parse.urlencode([(k, "***" if k == "password" else v) for k, v in pairs])
        return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, ""))

    def __str__(self) -> str:
        return self.redacted
