"""The fingerprint library: search, upload, remove, thumbnails (``/fingerprints…``) and ``/api/v1/fingerprints…``."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import File, Form, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel
from starlette.datastructures import UploadFile as StarletteUpload

from webui import fplib
from webui.deps import Analyst, ClientIP, DbDep, SettingsDep, Viewer, api_router, page_router
from webui.errors import ServiceError
from webui.rendering import flash, redirect, render
from webui.services import fingerprints as svc

pages = page_router()
api = api_router("fingerprints")
PAGE = 100


def _page(request: Request, settings: SettingsDep, status: int = 200, **extra: Any) -> Response:
    q, category = request.query_params.get("q", ""), request.query_params.get("category", "")
    raw = request.query_params.get("page", "1")
    page = max(1, int(raw)) if raw.isdigit() else 1
    try:
        got = svc.search(settings, q, category, PAGE, (page - 1) * PAGE)
    except ServiceError as exc:
        return render(request, "fingerprints.html", 200, missing=str(exc))
    return render(request, "fingerprints.html", status, entries=got.entries, more=got.more, total=got.total,
                  counts=got.counts, q=q, category=category, page=page, with_thumb=got.with_thumb,
                  next_qs=urlencode({"q": q, "category": category, "page": page + 1}),
                  prev_qs=urlencode({"q": q, "category": category, "page": page - 1}), **extra)


async def _read(files: list[Any], limit: int) -> list[fplib.Upload]:
    """The uploads, each read up to *limit* bytes (`ServiceError` 413 beyond)."""
    out = []
    for f in files:
        if not isinstance(f, StarletteUpload) or not f.filename:
            continue
        data = await f.read(limit + 1)
        if len(data) > limit:
            raise ServiceError(f"{f.filename}: larger than {limit} bytes", 413)
        out.append(fplib.Upload(f.filename, data))
    return out


@pages.get("/fingerprints", response_class=HTMLResponse)
def fingerprints_page(request: Request, who: Viewer, settings: SettingsDep) -> Response:
    return _page(request, settings)


@pages.post("/fingerprints", response_class=HTMLResponse)
async def fingerprints_add(request: Request, who: Analyst, db: DbDep, settings: SettingsDep, ip: ClientIP) -> Response:
    """Upload files/images (``files``) or a hash list/CSV (``kind=hashes``) with a label and category."""
    form = await request.form()
    try:
        uploads = await _read(form.getlist("files"), settings.upload_max_bytes)
        stats = svc.add(db, settings, who, uploads, kind=str(form.get("kind", "files")),
                        label=str(form.get("label", "")), category=str(form.get("category", "")), via="console",
                        ip=ip)
    except ServiceError as exc:
        return _page(request, settings, exc.status if exc.status != 404 else 422, error=str(exc))
    flash(request, f"Library: {stats}." + (" " + "; ".join(stats.problems[:5]) if stats.problems else ""))
    return redirect("/fingerprints")


@pages.post("/fingerprints/{fid}/delete")
def fingerprints_delete(request: Request, fid: int, who: Analyst, db: DbDep, settings: SettingsDep,
                        ip: ClientIP) -> Response:
    entry = svc.remove(db, settings, who, fid, ip)
    flash(request, f"Removed fingerprint #{fid} ({entry.label}).")
    return redirect("/fingerprints")


@pages.get("/fingerprints/{fid}/image.png")
def fingerprint_image(fid: int, who: Viewer, settings: SettingsDep) -> Response:
    return Response(svc.thumbnail_png(settings, fid), media_type="image/png",
                    headers={"Cache-Control": "private, max-age=300"})


# --------------------------------------------------------------------------- API


class FingerprintOut(BaseModel):
    id: int
    label: str
    category: str
    source: str
    hashes: dict[str, str]
    size: int | None = None
    width: int | None = None
    height: int | None = None
    added_ns: int


class FingerprintPage(BaseModel):
    total: int
    more: bool
    items: list[FingerprintOut]


class ImportOut(BaseModel):
    added: int
    duplicates: int
    invalid: int
    problems: list[str]


def _fp(e: Any) -> FingerprintOut:
    return FingerprintOut(id=e.id, label=e.label, category=e.category, source=e.source, hashes=e.hashes(),
                          size=e.size, width=e.width, height=e.height, added_ns=e.added_ns)


@api.get("/fingerprints", response_model=FingerprintPage, summary="Search the fingerprint library")
def api_fingerprints(who: Viewer, settings: SettingsDep, q: str = "", category: str = "",
                     limit: int = Query(100, ge=1, le=1000), offset: int = Query(0, ge=0)) -> FingerprintPage:
    got = svc.search(settings, q, category, limit, offset)
    return FingerprintPage(total=got.total, more=got.more, items=[_fp(e) for e in got.entries])


@api.post("/fingerprints", response_model=ImportOut, summary="Add files/images or a hash list (analyst)")
async def api_fingerprints_add(files: Annotated[list[UploadFile], File()], who: Analyst, db: DbDep,
                               settings: SettingsDep, ip: ClientIP,
                               kind: Annotated[Literal["files", "hashes"], Form()] = "files",
                               label: Annotated[str, Form()] = "", category: Annotated[str, Form()] = "") -> ImportOut:
    uploads = await _read(files, settings.upload_max_bytes)
    stats = svc.add(db, settings, who, uploads, kind=kind, label=label, category=category, via="api", ip=ip)
    return ImportOut(added=stats.added, duplicates=stats.duplicates, invalid=stats.invalid, problems=stats.problems)


@api.delete("/fingerprints/{fid}", summary="Remove a fingerprint (analyst)")
def api_fingerprint_delete(fid: int, who: Analyst, db: DbDep, settings: SettingsDep, ip: ClientIP) -> dict[str, Any]:
    svc.remove(db, settings, who, fid, ip)
    return {"removed": fid}
