"""``/api/v1``: hits, triage, policy, fingerprints and stats as JSON; ``/metrics`` for Prometheus.

Authentication: ``Authorization: Bearer <API token>`` (or a console session, with the
``X-CSRF-Token`` header on unsafe methods). The OpenAPI document is at ``/api/v1/openapi.json``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field

from appliance.store import NOTE_MAX
from webui import fplib, policyedit, service
from webui.alerts import AlertView, open_view
from webui.auth import Principal, client_ip, require, require_user
from webui.pages import query_from

router = APIRouter(prefix="/api/v1", tags=["v1"], dependencies=[Depends(require_user)])
metrics_router = APIRouter(tags=["metrics"])

viewer = Depends(require("viewer"))
analyst = Depends(require("analyst"))


def _view(request: Request) -> AlertView:
    s = request.app.state.settings
    return open_view(s.alert_db, s.console_db)


class HitSummary(BaseModel):
    id: str
    ts_ns: int
    severity: int
    category: str
    policy: str
    profile: str
    src_zone: str
    dst_zone: str
    src_ip: str | None = None
    src_port: int | None = None
    dest_ip: str | None = None
    dest_port: int | None = None
    http_host: str | None = None
    http_url: str | None = None
    file_name: str | None = None
    file_sha256: str | None = None
    inspectors: str | None = None
    finding_count: int = 0
    triage: str
    complete: bool = True


class HitPage(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[HitSummary]


class TriageIn(BaseModel):
    verdict: Literal["new", "investigating", "confirmed", "false_positive", "resolved", "ignored"]
    """``confirmed`` is a true positive."""
    note: str = Field("", max_length=NOTE_MAX)


class TriageOut(BaseModel):
    alert_id: str
    verdict: str
    note: str
    user: str
    ts: float


class Issue(BaseModel):
    line: int
    column: int
    message: str


class PolicyOut(BaseModel):
    path: str
    version: str
    text: str


class PolicyCheck(BaseModel):
    ok: bool
    version: str
    issues: list[Issue] = []
    warnings: list[str] = []
    summary: str = ""


class PolicyIn(BaseModel):
    text: str = Field(max_length=policyedit.MAX_POLICY_BYTES)
    base_version: str | None = None
    """The version the edit started from; a save is refused (409) if the file has changed since."""
    comment: str = Field("", max_length=500)
    reload: bool = False
    """Signal the sensor (SIGHUP) after saving."""


class PolicySaved(BaseModel):
    version: str
    history_id: int
    reloaded: bool
    reload_message: str
    warnings: list[str]


class PolicyVersion(BaseModel):
    id: int
    ts: float
    user: str
    version: str
    comment: str
    size: int


class ReloadOut(BaseModel):
    sent: bool
    message: str


@router.get("/hits", response_model=HitPage, summary="List hits (newest first) with the console's filters")
def api_hits(request: Request, since: str = "", until: str = "", zone: str = "", severity: str = "",
             category: str = "", policy: str = "", inspector: str = "", rule: str = "", host: str = "",
             triage: str = "", q: str = "", limit: int = Query(50, ge=1, le=1000), offset: int = Query(0, ge=0),
             who: Principal = viewer) -> HitPage:
    query = query_from({"since": since, "until": until, "zone": zone, "severity": severity, "category": category,
                        "policy": policy, "inspector": inspector, "rule": rule, "host": host, "triage": triage,
                        "q": q})
    with _view(request) as view:
        total = view.count(query)
        rows = view.query(query, limit, offset)
    return HitPage(total=total, limit=limit, offset=offset,
                   items=[HitSummary(**{k: r.get(k) for k in HitSummary.model_fields if k in r}) for r in rows])


@router.get("/hits/{alert_id}", summary="One hit: columns, EVE record, findings, object, verdict history")
def api_hit(request: Request, alert_id: str, who: Principal = viewer) -> dict[str, Any]:
    with _view(request) as view:
        hit = view.get(alert_id)
    if hit is None:
        raise HTTPException(404, "no such hit")
    hit["verdicts"] = request.app.state.db.verdict_log(alert_id)
    return hit


@router.post("/hits/{alert_id}/triage", response_model=TriageOut, summary="Record a verdict (analyst)")
def api_triage(request: Request, alert_id: str, body: TriageIn, who: Principal = analyst) -> TriageOut:
    with _view(request) as view:
        try:
            got = service.set_verdict(request.app.state.db, view, who, alert_id, body.verdict, body.note,
                                      client_ip(request))
        except service.ServiceError as exc:
            raise HTTPException(exc.status, str(exc)) from None
    return TriageOut(**got)


@router.get("/stats", summary="Store totals, rule quality and the sensor's counters")
def api_stats(request: Request, who: Principal = viewer) -> dict[str, Any]:
    from webui.sensorstats import read_sensor_stats

    s = request.app.state.settings
    with _view(request) as view:
        out = {"store": view.stats(), "rules": view.rule_quality(), "lists": view.list_quality()}
    out["sensor"] = read_sensor_stats(s.stats_file, s.stats_stale_s)
    return out


@router.get("/policy", response_model=PolicyOut, summary="The policy file's text and version")
def api_policy(request: Request, who: Principal = viewer) -> PolicyOut:
    st = request.app.state
    try:
        text = service.current_policy(st.db, st.settings)
    except service.ServiceError as exc:
        raise HTTPException(exc.status, str(exc)) from None
    return PolicyOut(path=str(st.settings.policy_path), version=policyedit.version_of(text), text=text)


@router.post("/policy/validate", response_model=PolicyCheck, summary="Validate policy text (nothing is saved)")
def api_policy_validate(request: Request, body: PolicyIn, who: Principal = viewer) -> PolicyCheck:
    text = policyedit.normalise(body.text)
    val = policyedit.validate(text)
    return PolicyCheck(ok=val.ok, version=policyedit.version_of(text), summary=val.summary, warnings=val.warnings,
                       issues=[Issue(line=i.line, column=i.column, message=i.message) for i in val.issues])


@router.put("/policy", response_model=PolicySaved, summary="Save the policy (validated, versioned, audited)",
            responses={409: {"description": "changed since base_version"}, 422: {"description": "invalid"}})
def api_policy_save(request: Request, body: PolicyIn, who: Principal = analyst) -> PolicySaved:
    st = request.app.state
    try:
        res = service.save_policy(st.db, st.settings, who, body.text, body.base_version, body.comment,
                                  body.reload, client_ip(request))
    except service.ServiceError as exc:
        raise HTTPException(exc.status, str(exc)) from None
    return PolicySaved(version=res.version, history_id=res.version_id, reloaded=res.reloaded,
                       reload_message=res.reload_message, warnings=res.warnings)


@router.get("/policy/versions", response_model=list[PolicyVersion], summary="The policy's version history")
def api_policy_versions(request: Request, who: Principal = viewer) -> list[PolicyVersion]:
    st = request.app.state
    try:
        service.current_policy(st.db, st.settings)
    except service.ServiceError as exc:
        raise HTTPException(exc.status, str(exc)) from None
    return [PolicyVersion(**r) for r in st.db.policy_versions()]


@router.post("/policy/reload", response_model=ReloadOut, summary="Signal the sensor to reload the policy")
def api_policy_reload(request: Request, who: Principal = analyst) -> ReloadOut:
    st = request.app.state
    ok, msg = service.reload_sensor(st.db, st.settings, who, client_ip(request))
    return ReloadOut(sent=ok, message=msg)


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


@router.get("/fingerprints", response_model=FingerprintPage, summary="Search the fingerprint library")
def api_fingerprints(request: Request, q: str = "", category: str = "", limit: int = Query(100, ge=1, le=1000),
                     offset: int = Query(0, ge=0), who: Principal = viewer) -> FingerprintPage:
    try:
        with fplib.open_library(request.app.state.settings) as lib:
            entries, more = fplib.search(lib, q, category, limit, offset)
            total = len(lib)
    except fplib.LibraryMissing as exc:
        raise HTTPException(404, str(exc)) from None
    return FingerprintPage(total=total, more=more, items=[_fp(e) for e in entries])


@router.post("/fingerprints", response_model=ImportOut, summary="Add files/images or a hash list (analyst)")
async def api_fingerprints_add(request: Request, files: Annotated[list[UploadFile], File()],
                               kind: Annotated[Literal["files", "hashes"], Form()] = "files",
                               label: Annotated[str, Form()] = "", category: Annotated[str, Form()] = "",
                               who: Principal = analyst) -> ImportOut:
    st = request.app.state
    limit = st.settings.upload_max_bytes
    uploads = []
    for f in files:
        data = await f.read(limit + 1)
        if len(data) > limit:
            raise HTTPException(413, f"{f.filename}: larger than {limit} bytes")
        uploads.append(fplib.Upload(f.filename or "upload", data))
    source = f"api upload by {who.username}"
    try:
        with fplib.open_library(st.settings) as lib:
            if kind == "hashes":
                stats = fplib.add_hash_list(lib, uploads[0].data, uploads[0].filename, label=label[:200],
                                            category=category[:100], source=source)
            else:
                stats = fplib.add_uploads(lib, uploads, label=label[:200], category=category[:100], source=source,
                                          thumbs=fplib.thumbs_dir(fplib.library_path(st.settings)),
                                          max_pixels=st.settings.image_max_pixels)
    except fplib.LibraryMissing as exc:
        raise HTTPException(404, str(exc)) from None
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    st.db.audit(None, who.username, "fingerprint.add", ", ".join(u.filename[:80] for u in uploads[:10]), None,
                {"kind": kind, "label": label[:200], "category": category[:100], "added": stats.added,
                 "duplicates": stats.duplicates, "invalid": stats.invalid}, client_ip(request))
    return ImportOut(added=stats.added, duplicates=stats.duplicates, invalid=stats.invalid, problems=stats.problems)


@router.delete("/fingerprints/{fid}", summary="Remove a fingerprint (analyst)")
def api_fingerprint_delete(request: Request, fid: int, who: Principal = analyst) -> dict[str, Any]:
    st = request.app.state
    try:
        with fplib.open_library(st.settings) as lib:
            entry = lib.get(fid)
            if entry is None:
                raise HTTPException(404, "no such fingerprint")
            lib.remove(str(fid))
    except fplib.LibraryMissing as exc:
        raise HTTPException(404, str(exc)) from None
    (fplib.thumbs_dir(fplib.library_path(st.settings)) / f"{fid}.png").unlink(missing_ok=True)
    st.db.audit(None, who.username, "fingerprint.remove", str(fid),
                {"label": entry.label, "category": entry.category, **entry.hashes()}, None, client_ip(request))
    return {"removed": fid}


@router.get("/openapi.json", include_in_schema=False)
def api_openapi(request: Request, who: Principal = viewer) -> dict[str, Any]:
    return request.app.openapi()


# --------------------------------------------------------------------------- Prometheus


def _label(v: Any) -> str:
    return str(v).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")[:200]


@metrics_router.get("/metrics", response_class=PlainTextResponse,
                    summary="Prometheus text exposition (bearer token of any role)")
def metrics(request: Request, who: Principal = viewer) -> PlainTextResponse:
    from webui.sensorstats import read_sensor_stats

    st = request.app.state
    lines: list[str] = []

    def metric(name: str, kind: str, help_: str, samples: list[tuple[dict[str, Any], float | None]]) -> None:
        lines.append(f"# HELP {name} {help_}")
        lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            if value is None:
                continue
            lab = ",".join(f'{k}="{_label(v)}"' for k, v in labels.items())
            lines.append(f"{name}{{{lab}}} {float(value):g}" if lab else f"{name} {float(value):g}")

    try:
        with _view(request) as view:
            stats = view.stats()
        metric("tapsift_alerts", "gauge", "Alerts in the store.", [({}, stats["alerts"])])
        metric("tapsift_alerts_by_severity", "gauge", "Alerts in the store by severity (1 = critical).",
               [({"severity": k}, v) for k, v in stats["by_severity"].items()])
        metric("tapsift_alerts_by_category", "gauge", "Alerts in the store by category.",
               [({"category": k}, v) for k, v in stats["by_category"].items()])
        metric("tapsift_alerts_by_triage", "gauge", "Alerts by triage state.",
               [({"state": k}, v) for k, v in stats["by_triage"].items()])
        metric("tapsift_store_bytes", "gauge", "Size of the alert store.", [({}, stats["db_bytes"])])
        metric("tapsift_store_up", "gauge", "1 when the alert store could be read.", [({}, 1)])
    except Exception:  # a scrape reports the store as down rather than failing
        metric("tapsift_store_up", "gauge", "1 when the alert store could be read.", [({}, 0)])
    sensor = read_sensor_stats(st.settings.stats_file, st.settings.stats_stale_s)
    if sensor["state"] in ("ok", "stale"):
        metric("tapsift_sensor_packets_total", "counter", "Packets the sensor read.", [({}, sensor["packets"])])
        metric("tapsift_sensor_bytes_total", "counter", "Bytes the sensor read.", [({}, sensor["bytes"])])
        metric("tapsift_sensor_drops_total", "counter", "Packets dropped (kernel and queues).",
               [({}, sensor["drops"])])
        metric("tapsift_sensor_flows", "gauge", "Flows in the flow table.", [({}, sensor["flows"])])
        metric("tapsift_sensor_queue_depth", "gauge", "Items waiting per queue.",
               [({"queue": k}, v) for k, v in sensor["queue_depths"].items()])
        metric("tapsift_sensor_stats_age_seconds", "gauge", "Age of the sensor's stats file.",
               [({}, sensor["age_s"])])
    metric("tapsift_sensor_stats_up", "gauge", "1 when fresh sensor stats were read.",
           [({}, 1 if sensor["state"] == "ok" else 0)])
    c = st.counters
    metric("tapsift_console_logins_total", "counter", "Successful console logins.", [({}, c["logins"])])
    metric("tapsift_console_logins_failed_total", "counter", "Failed console logins.", [({}, c["logins_failed"])])
    metric("tapsift_console_rate_limited_total", "counter", "Logins refused by the rate limiter.",
           [({}, c["rate_limited"])])
    metric("tapsift_console_csrf_refused_total", "counter", "Requests refused for a bad CSRF token.",
           [({}, c["csrf_refused"])])
    return PlainTextResponse("\n".join(lines) + "\n", media_type="text/plain; version=0.0.4")
