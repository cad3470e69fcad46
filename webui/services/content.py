"""Content search: the retained objects (every object, not only alerted ones) with the query language."""

from __future__ import annotations

from typing import Any

from appliance.store.content import ContentRepo
from appliance.store.querylang import Node, QueryError, Text, parse
from webui.errors import ServiceError
from webui.evidence import highlight
from webui.services.hits import COUNT_CAP, FilterError

EXCERPT = 20_000
"""Characters of an object's text shown on its page."""


def query_terms(node: Node | None) -> list[str]:
    """The free-text terms of a query (to highlight), not those under a negation."""
    from appliance.store.querylang import And, Not, Or

    if isinstance(node, Text):
        return [node.term]
    if isinstance(node, And | Or):
        return [t for n in node.items for t in query_terms(n)]
    if isinstance(node, Not):
        return []
    return []


def search(content: ContentRepo, params: dict[str, str], *, tz: Any, limit: int
           ) -> tuple[list[FilterError], int, list[dict[str, Any]], list[str]]:
    """(problems, matches — at most the cap + 1 —, one page newest first, the free-text terms)."""
    text = params.get("q", "").strip()
    extra = {"tz": tz}
    errors: list[FilterError] = []
    expr = None
    if text:
        try:
            expr = parse(text)
            if expr is not None:
                content.compile(expr, extra)
        except QueryError as exc:
            errors.append(FilterError("q", exc.message, exc.position))
    before = None
    b = params.get("before", "").strip()
    if b:
        try:
            ts, seq = b.split(":", 1)
            before = (int(ts), int(seq))
        except ValueError:
            errors.append(FilterError("before", "not a page of this list"))
    if errors:
        return errors, 0, [], []
    total = content.count(expr, extra, COUNT_CAP)
    rows = content.search(expr, extra, limit, before, many=total > 5000)
    return [], total, rows, query_terms(expr)


def detail(content: ContentRepo, content_id: str, terms: list[str]) -> dict[str, Any]:
    """One object: its row, children, and its text with the first occurrence of a search term marked."""
    row = content.get(content_id)
    if row is None:
        raise ServiceError("no such object", 404)
    text = (row.get("text") or "")[:EXCERPT]
    parts: list[tuple[bool, str]] = [(False, text)] if text else []
    for t in terms:
        i = text.casefold().find(t.casefold())
        if i >= 0 and len(text.casefold()) == len(text):
            parts = highlight(text, i, i + len(t), t)
            break
    return {"row": row, "parts": parts, "cut": len(row.get("text") or "") > EXCERPT or
            (row.get("text_len") or 0) > len(row.get("text") or ""), "children": content.children(content_id, 200)}
