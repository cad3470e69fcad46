"""Content objects for the inspector tests."""

from __future__ import annotations

from appliance.model.content import ContentObject
from appliance.model.streams import Direction


def make_obj(data: bytes | None = None, *, text: str | None = None, mime: str = "text/plain",
             oid: str = "Ftest1", meta: dict[str, str] | None = None, **kw) -> ContentObject:
    """A content object for inspector tests."""
    return ContentObject(id=oid, source="http", direction=Direction.TO_CLIENT, flow=None, ts_ns=0,
                         size=len(data or b""), md5="", sha256="", declared_mime=mime, data=data,
                         text=text, meta=meta or {}, **kw)
