"""Server-rendered pages. Every route except the login form needs a session; every form posts its CSRF token."""

from __future__ import annotations

import csv
import io
import ipaddress
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse

from appliance.store import TRIAGE_STATES, AlertQuery
from webui import auth, charts, fplib, images, policyedit, service
from webui.alerts import AlertView, open_view
from webui.app import flash, render
from webui.auth import (
    PRELOGIN_COOKIE,
    SESSION_COOKIE,
    Principal,
    UserError,
    client_ip,
    csrf_form,
    is_https,
    require,
)
from webui.evidence import finding_views
from webui.security import ROLES, new_token, same, totp_secret, totp_uri, totp_verify

public = APIRouter(include_in_schema=False)
router = APIRouter(include_in_schema=False, dependencies=[Depends(csrf_form)])

viewer = Depends(require("viewer"))
analyst = Depends(require("analyst"))
admin = Depends(require("admin"))

RANGES = {"1h": 3600, "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400, "all": 0}


def _view(request: Request) -> AlertView:
    s = request.app.state.settings
    return open_view(s.alert_db, s.console_db)


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def _safe_next(target: str | None) -> str:
    """Only local paths after login (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _set_cookie(request: Request, resp: Response, name: str, value: str, max_age: int | None = None) -> None:
    resp.set_cookie(name, value, max_age=max_age, httponly=True, samesite="strict", secure=is_https(request),
                    path="/")


# --------------------------------------------------------------------------- login


@public.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str = "/") -> Response:
    token = new_token()
    resp = render(request, "login.html", form_token=token, next=_safe_next(next))
    _set_cookie(request, resp, PRELOGIN_COOKIE, token, max_age=3600)
    return resp


def _prelogin_ok(request: Request, form: Any) -> bool:
    cookie, sent = request.cookies.get(PRELOGIN_COOKIE, ""), form.get("csrf")
    return bool(cookie) and isinstance(sent, str) and same(cookie, sent)


def _limited(request: Request) -> Response | None:
    wait = request.app.state.login_limiter.blocked(client_ip(request))
    if wait <= 0:
        return None
    request.app.state.counters["rate_limited"] += 1
    resp = render(request, "login.html", 429, form_token=request.cookies.get(PRELOGIN_COOKIE, ""), next="/",
                  error=f"Too many failed logins from your address; try again in {int(wait) + 1} s.")
    resp.headers["Retry-After"] = str(int(wait) + 1)
    return resp


@public.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    form = await request.form()
    if not _prelogin_ok(request, form):
        request.app.state.counters["csrf_refused"] += 1
        return render(request, "error.html", 403, title="Form expired",
                      message="The login form was not accepted; reload the page and try again.")
    limited = _limited(request)
    if limited is not None:
        return limited
    st, ip = request.app.state, client_ip(request)
    username, password = str(form.get("username", ""))[:64], str(form.get("password", ""))[:1024]
    next_url = _safe_next(str(form.get("next", "/")))
    res = auth.check_password(st.db, st.passwords, username, password, lockout_threshold=st.settings.lockout_threshold,
                              lockout_s=st.settings.lockout_s, ip=ip)
    if not res.ok or res.user is None:
        st.login_limiter.fail(ip)
        st.counters["logins_failed"] += 1
        return render(request, "login.html", 401, form_token=request.cookies.get(PRELOGIN_COOKIE, ""),
                      next=next_url, error=res.message, username=username)
    user = res.user
    stage = "totp" if user["totp_secret"] else "ok"
    token, _ = auth.new_session(st.db, user["id"], stage, ip, request.headers.get("user-agent", ""))
    if stage == "ok":
        auth.record_login(st.db, user, ip)
        st.counters["logins"] += 1
    resp = _redirect(next_url if stage == "ok" else f"/login/totp?{urlencode({'next': next_url})}")
    _set_cookie(request, resp, SESSION_COOKIE, token)
    resp.delete_cookie(PRELOGIN_COOKIE, path="/")
    return resp


def _pending(request: Request) -> dict[str, Any] | None:
    st = request.app.state
    row = auth.session_row(st.db, request.cookies.get(SESSION_COOKIE, ""), idle_s=300, max_s=600)
    return row if row is not None and row["stage"] == "totp" else None


@public.get("/login/totp", response_class=HTMLResponse)
def totp_form(request: Request, next: str = "/") -> Response:
    row = _pending(request)
    if row is None:
        return _redirect("/login")
    return render(request, "totp.html", form_token=row["csrf"], next=_safe_next(next))


@public.post("/login/totp", response_class=HTMLResponse)
async def totp_login(request: Request) -> Response:
    form = await request.form()
    row = _pending(request)
    sent = form.get("csrf")
    if row is None or not isinstance(sent, str) or not same(sent, row["csrf"]):
        return _redirect("/login")
    limited = _limited(request)
    if limited is not None:
        return limited
    st, ip = request.app.state, client_ip(request)
    next_url = _safe_next(str(form.get("next", "/")))
    user = st.db.user_by_id(row["user_id"])
    step = totp_verify(row["totp_secret"], str(form.get("code", "")), row["totp_last_step"])
    if user is None or step is None or user["locked_until"] > time.time():
        st.login_limiter.fail(ip)
        st.counters["logins_failed"] += 1
        locked = user is not None and auth.record_second_factor_failure(
            st.db, user, lockout_threshold=st.settings.lockout_threshold, lockout_s=st.settings.lockout_s, ip=ip)
        if locked:
            auth.drop_session(st.db, row["token_hash"])
            return _redirect("/login")
        return render(request, "totp.html", 401, form_token=row["csrf"], next=next_url, error="Wrong code.")
    with st.db.tx() as conn:
        conn.execute("UPDATE users SET totp_last_step = ? WHERE id = ?", (step, user["id"]))
    token, _ = auth.new_session(st.db, user["id"], "ok", ip, request.headers.get("user-agent", ""),
                                replace=row["token_hash"])
    auth.record_login(st.db, user, ip)
    st.counters["logins"] += 1
    resp = _redirect(next_url)
    _set_cookie(request, resp, SESSION_COOKIE, token)
    return resp


@router.post("/logout")
def logout(request: Request, who: Principal = viewer) -> Response:
    st = request.app.state
    auth.drop_session(st.db, who.session_hash)
    st.db.audit(None, who.username, "logout", who.username, ip=client_ip(request))
    resp = _redirect("/login")
    resp.delete_cookie(SESSION_COOKIE, path="/")
    return resp


# --------------------------------------------------------------------------- dashboard


def _range(view: AlertView, name: str) -> tuple[int, int, str]:
    first, last = view.time_bounds()
    if last is None:
        now = time.time_ns()
        return now - 86400 * 10**9, now, "no hits yet"
    until = last + 1
    secs = RANGES.get(name, 86400)
    since = (first or last) if secs == 0 else until - secs * 10**9
    return since, until, f"up to the newest hit ({charts.fmt_ts(last)} UTC)"


@router.get("/", response_class=HTMLResponse)
def dashboard(request: Request, range: str = "24h", who: Principal = viewer) -> Response:
    from webui.sensorstats import read_sensor_stats

    s = request.app.state.settings
    rng = range if range in RANGES else "24h"
    with _view(request) as view:
        since, until, caption = _range(view, rng)
        total = view.count(AlertQuery(since_ns=since, until_ns=until))
        ctx = {
            "range": rng, "ranges": list(RANGES), "caption": caption, "total": total,
            "chart": charts.time_chart(view.histogram(since, until)),
            "by_zone": charts.bars(view.top("zones", since, until), 140),
            "by_category": charts.bars(view.top("category", since, until), 140),
            "by_policy": charts.bars(view.top("policy", since, until), 140),
            "by_host": charts.bars(view.top("host", since, until), 140),
            "by_triage": charts.bars(view.top("triage", since, until), 140),
            "stats": view.stats(), "since": since, "until": until,
        }
    ctx["sensor"] = read_sensor_stats(s.stats_file, s.stats_stale_s)
    return render(request, "dashboard.html", **ctx)


# --------------------------------------------------------------------------- hits


FILTERS = ("since", "until", "zone", "severity", "category", "policy", "inspector", "host", "triage", "q")


def _parse_time(v: str | None) -> int | None:
    if not v:
        return None
    try:
        dt = datetime.fromisoformat(v.strip())
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1e9)


def query_from(params: dict[str, str]) -> AlertQuery:
    """An `AlertQuery` from the hits page's (or the API's) filter parameters."""
    q = AlertQuery()
    q.since_ns, q.until_ns = _parse_time(params.get("since")), _parse_time(params.get("until"))
    sev = params.get("severity", "")
    q.severity = int(sev) if sev.isdigit() and 1 <= int(sev) <= 5 else None
    for name in ("zone", "category", "policy", "inspector", "rule"):
        v = params.get(name, "").strip()
        if v:
            setattr(q, name, v[:200])
    tri = params.get("triage", "")
    q.triage = tri if tri in TRIAGE_STATES else None
    host = params.get("host", "").strip()[:255]
    if host:
        try:
            q.ip = str(ipaddress.ip_address(host))
        except ValueError:
            q.host = host
    text = params.get("q", "").strip()[:500]
    q.text = text or None
    return q


@router.get("/hits", response_class=HTMLResponse)
def hits(request: Request, page: int = 1, who: Principal = viewer) -> Response:
    s = request.app.state.settings
    params = {k: request.query_params.get(k, "") for k in FILTERS}
    q = query_from(params)
    page = max(1, min(page, 100_000))
    with _view(request) as view:
        total = view.count(q)
        rows = view.query(q, s.page_size, (page - 1) * s.page_size)
        options = {"zones": view.zones(), "categories": view.distinct("category"),
                   "policies": view.distinct("policy"), "inspectors": view.inspectors()}
    pages = max(1, (total + s.page_size - 1) // s.page_size)
    active = {k: v for k, v in params.items() if v}
    return render(request, "hits.html", rows=rows, total=total, page=page, pages=pages, params=params,
                  options=options, qs=urlencode(active), prev_qs=urlencode({**active, "page": page - 1}),
                  next_qs=urlencode({**active, "page": page + 1}))


CSV_COLUMNS = ("id", "time_utc", "severity", "category", "policy", "profile", "src_zone", "dst_zone", "src_ip",
               "src_port", "dest_ip", "dest_port", "http_host", "http_url", "file_name", "file_sha256",
               "inspectors", "finding_count", "triage", "complete")


def _csv_cell(v: Any) -> str:
    """Neutralise spreadsheet formulas (CSV injection): a leading = + - @ TAB CR gets a quote."""
    s = "" if v is None else str(v)
    return "'" + s if s[:1] in ("=", "+", "-", "@", "\t", "\r") else s


def _csv_rows(request: Request, q: AlertQuery) -> Iterator[str]:
    s = request.app.state.settings
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(CSV_COLUMNS)
    yield buf.getvalue()
    with _view(request) as view:
        done, batch = 0, 1000
        while done < s.csv_max_rows:
            rows = view.query(q, min(batch, s.csv_max_rows - done), done)
            if not rows:
                break
            buf.seek(0)
            buf.truncate()
            for r in rows:
                r["time_utc"] = charts.fmt_ts(r["ts_ns"])
                w.writerow([_csv_cell(r.get(c)) for c in CSV_COLUMNS])
            done += len(rows)
            yield buf.getvalue()


@router.get("/hits.csv")
def hits_csv(request: Request, who: Principal = viewer) -> Response:
    q = query_from({k: request.query_params.get(k, "") for k in FILTERS})
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return StreamingResponse(_csv_rows(request, q), media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": f'attachment; filename="tapsift-hits-{stamp}.csv"'})


@router.get("/hits/{alert_id}", response_class=HTMLResponse)
def hit_detail(request: Request, alert_id: str, who: Principal = viewer) -> Response:
    st = request.app.state
    with _view(request) as view:
        hit = view.get(alert_id)
    if hit is None:
        raise HTTPException(404, "no such hit")
    import json

    record_json = json.dumps(hit.pop("record"), indent=2, ensure_ascii=False)
    return render(request, "hit.html", hit=hit, findings=finding_views(hit["findings"], st.settings.evidence_dir),
                  verdicts=st.db.verdict_log(alert_id), record_json=record_json)


@router.post("/hits/{alert_id}/triage")
async def hit_triage(request: Request, alert_id: str, who: Principal = analyst) -> Response:
    form = await request.form()
    st = request.app.state
    with _view(request) as view:
        try:
            got = service.set_verdict(st.db, view, who, alert_id, str(form.get("verdict", "")),
                                      str(form.get("note", "")), client_ip(request))
        except service.ServiceError as exc:
            raise HTTPException(exc.status, str(exc)) from None
    flash(request, f"Marked as {got['verdict'].replace('_', ' ')}.")
    return _redirect(f"/hits/{alert_id}")


@router.get("/hits/{alert_id}/evidence/{fi}/{ei}.png")
def hit_evidence_image(request: Request, alert_id: str, fi: int, ei: int, who: Principal = viewer) -> Response:
    st = request.app.state
    with _view(request) as view:
        hit = view.get(alert_id)
    try:
        ref = hit["findings"][fi]["evidence"][ei].get("ref", "") if hit else ""
    except (IndexError, KeyError, TypeError):
        ref = ""
    path = images.safe_join(st.settings.evidence_dir, str(ref))
    if path is None or path.stat().st_size > 64 * 1024 * 1024:
        raise HTTPException(404, "no image")
    try:
        png = images.reencode_png(path.read_bytes(), st.settings.image_max_pixels)
    except images.ImageRefused as exc:
        raise HTTPException(415, str(exc)) from None
    return Response(png, media_type="image/png",
                    headers={"Content-Disposition": "inline; filename=evidence.png",
                             "Cache-Control": "private, max-age=300"})


# --------------------------------------------------------------------------- policy


def _policy_ctx(request: Request, text: str, base_version: str, **extra: Any) -> dict[str, Any]:
    st = request.app.state
    val = extra.pop("validation", None) or policyedit.validate(text, service.policy_path(st.settings).name)
    with _view(request) as view:
        quality = view.rule_quality()
        list_quality = view.list_quality()
    profiles = list(val.policy.profiles.values()) if val.policy else []
    return {"text": text, "base_version": base_version, "validation": val, "lines": text.split("\n"),
            "issues_by_line": val.by_line(), "quality": quality, "list_quality": list_quality,
            "profiles": profiles, "path": str(service.policy_path(st.settings)),
            "pid_file": st.settings.sensor_pid_file, **extra}


@router.get("/policy", response_class=HTMLResponse)
def policy_page(request: Request, who: Principal = viewer) -> Response:
    st = request.app.state
    try:
        text = service.current_policy(st.db, st.settings)
    except service.ServiceError as exc:
        return render(request, "error.html", exc.status, title="Policy", message=str(exc))
    return render(request, "policy.html", **_policy_ctx(request, text, policyedit.version_of(text)))


@router.post("/policy", response_class=HTMLResponse)
async def policy_post(request: Request, who: Principal = analyst) -> Response:
    """One form, three buttons: ``validate`` (errors in place), ``preview`` (the diff), ``save``."""
    form = await request.form()
    st = request.app.state
    text = policyedit.normalise(str(form.get("text", "")))
    base = str(form.get("base_version", ""))
    action = str(form.get("action", "validate"))
    comment = str(form.get("comment", ""))[:500]
    path = service.policy_path(st.settings)
    val = policyedit.validate(text, path.name)
    if action == "validate" or not val.ok:
        status = 200 if val.ok else 422
        return render(request, "policy.html", status,
                      **_policy_ctx(request, text, base, validation=val, checked=True))
    current = service.current_policy(st.db, st.settings)
    if action == "preview":
        return render(request, "policy_preview.html", text=text, base_version=base, comment=comment,
                      diff=policyedit.diff_lines(current, text, f"{path.name} (current)", f"{path.name} (proposed)"),
                      validation=val, new_version=policyedit.version_of(text), pid_file=st.settings.sensor_pid_file,
                      changed=current != text)
    if action == "save":
        try:
            res = service.save_policy(st.db, st.settings, who, text, base, comment,
                                      reload=form.get("reload") == "1", ip=client_ip(request))
        except service.ServiceError as exc:
            return render(request, "policy.html", exc.status,
                          **_policy_ctx(request, text, base, validation=val, save_error=str(exc)))
        flash(request, f"Saved policy version {res.version} (history #{res.version_id}). "
                       + (res.reload_message if form.get("reload") == "1" else "The sensor was not signalled."))
        return _redirect("/policy/versions")
    raise HTTPException(400, "unknown action")


@router.post("/policy/reload")
def policy_reload(request: Request, who: Principal = analyst) -> Response:
    st = request.app.state
    _, msg = service.reload_sensor(st.db, st.settings, who, client_ip(request))
    flash(request, msg)
    return _redirect("/policy")


@router.get("/policy/versions", response_class=HTMLResponse)
def policy_versions(request: Request, who: Principal = viewer) -> Response:
    st = request.app.state
    try:
        current = service.current_policy(st.db, st.settings)
    except service.ServiceError as exc:
        return render(request, "error.html", exc.status, title="Policy", message=str(exc))
    return render(request, "policy_versions.html", versions=st.db.policy_versions(),
                  current_version=policyedit.version_of(current))


@router.get("/policy/versions/{vid}", response_class=HTMLResponse)
def policy_version(request: Request, vid: int, who: Principal = viewer) -> Response:
    st = request.app.state
    row = st.db.policy_version(vid)
    if row is None:
        raise HTTPException(404, "no such version")
    current = service.current_policy(st.db, st.settings)
    return render(request, "policy_version.html", v=row, current_version=policyedit.version_of(current),
                  diff=policyedit.diff_lines(current, row["text"], "current", f"history #{vid}"))


@router.post("/policy/versions/{vid}/rollback", response_class=HTMLResponse)
def policy_rollback(request: Request, vid: int, who: Principal = analyst) -> Response:
    """Rolling back = proposing that version's text again: the diff, then save."""
    st = request.app.state
    row = st.db.policy_version(vid)
    if row is None:
        raise HTTPException(404, "no such version")
    current = service.current_policy(st.db, st.settings)
    path = service.policy_path(st.settings)
    return render(request, "policy_preview.html", text=row["text"], base_version=policyedit.version_of(current),
                  comment=f"rollback to history #{vid} (version {row['version']})",
                  diff=policyedit.diff_lines(current, row["text"], f"{path.name} (current)", f"history #{vid}"),
                  validation=policyedit.validate(row["text"], path.name), new_version=row["version"],
                  pid_file=st.settings.sensor_pid_file, changed=current != row["text"])


# --------------------------------------------------------------------------- users and account


@router.get("/users", response_class=HTMLResponse)
def users_page(request: Request, who: Principal = admin) -> Response:
    return render(request, "users.html", users=request.app.state.db.users(), roles=ROLES, now=time.time())


@router.post("/users", response_class=HTMLResponse)
async def users_add(request: Request, who: Principal = admin) -> Response:
    form = await request.form()
    st = request.app.state
    password = str(form.get("password", "")) or None
    try:
        pw = auth.create_user(st.db, st.passwords, str(form.get("username", "")), str(form.get("role", "")),
                              password, actor=who.username, ip=client_ip(request))
    except UserError as exc:
        return render(request, "users.html", 422, users=st.db.users(), roles=ROLES, now=time.time(), error=str(exc))
    generated = pw if password is None else None
    return render(request, "users.html", users=st.db.users(), roles=ROLES, now=time.time(),
                  created=str(form.get("username", "")), generated=generated)


@router.post("/users/{uid}", response_class=HTMLResponse)
async def users_change(request: Request, uid: int, who: Principal = admin) -> Response:
    form = await request.form()
    st = request.app.state
    user = st.db.user_by_id(uid)
    if user is None:
        raise HTTPException(404, "no such user")
    action, ip = str(form.get("action", "")), client_ip(request)
    before = {"role": user["role"], "disabled": bool(user["disabled"])}
    generated = None
    if action == "role":
        role = str(form.get("role", ""))
        if role not in ROLES:
            raise HTTPException(422, "unknown role")
        if user["role"] == "admin" and role != "admin" and st.db.admin_count() <= 1:
            raise HTTPException(409, "the last admin cannot be demoted")
        with st.db.tx() as conn:
            conn.execute("UPDATE users SET role = ? WHERE id = ?", (role, uid))
            conn.execute("DELETE FROM sessions WHERE user_id = ?", (uid,))
            st.db.audit(conn, who.username, "user.role", user["username"], before, {"role": role}, ip)
    elif action in ("disable", "enable"):
        if action == "disable" and user["role"] == "admin" and st.db.admin_count() <= 1:
            raise HTTPException(409, "the last admin cannot be disabled")
        with st.db.tx() as conn:
            conn.execute("UPDATE users SET disabled = ? WHERE id = ?", (int(action == "disable"), uid))
            conn.execute("DELETE FROM sessions WHERE user_id = ?", (uid,))
            st.db.audit(conn, who.username, f"user.{action}", user["username"], before,
                        {"disabled": action == "disable"}, ip)
    elif action == "unlock":
        with st.db.tx() as conn:
            conn.execute("UPDATE users SET failed = 0, locked_until = 0 WHERE id = ?", (uid,))
            st.db.audit(conn, who.username, "user.unlock", user["username"], None, None, ip)
    elif action == "reset_password":
        from webui.security import generate_password

        generated = generate_password()
        auth.set_password(st.db, st.passwords, user, generated, actor=who.username, ip=ip)
        with st.db.tx() as conn:
            conn.execute("DELETE FROM sessions WHERE user_id = ?", (uid,))
    elif action == "reset_totp":
        with st.db.tx() as conn:
            conn.execute("UPDATE users SET totp_secret = NULL, totp_pending = NULL WHERE id = ?", (uid,))
            st.db.audit(conn, who.username, "user.totp_reset", user["username"], None, None, ip)
    elif action == "delete":
        if uid == who.user_id:
            raise HTTPException(409, "you cannot delete yourself")
        if user["role"] == "admin" and st.db.admin_count() <= 1:
            raise HTTPException(409, "the last admin cannot be deleted")
        with st.db.tx() as conn:
            conn.execute("DELETE FROM users WHERE id = ?", (uid,))
            st.db.audit(conn, who.username, "user.delete", user["username"], before, None, ip)
    else:
        raise HTTPException(400, "unknown action")
    if generated:
        return render(request, "users.html", users=st.db.users(), roles=ROLES, now=time.time(),
                      created=user["username"], generated=generated)
    flash(request, f"User {user['username']}: {action.replace('_', ' ')} done.")
    return _redirect("/users")


@router.get("/account", response_class=HTMLResponse)
def account(request: Request, who: Principal = viewer) -> Response:
    st = request.app.state
    user = st.db.user_by_id(who.user_id)
    tokens = st.db.rows("SELECT id, name, prefix, created, last_used FROM api_tokens WHERE user_id = ? "
                        "ORDER BY id", (who.user_id,))
    pending = user["totp_pending"] if user else None
    return render(request, "account.html", account=user, tokens=tokens, pending=pending,
                  pending_uri=totp_uri(pending, who.username) if pending else "")


@router.post("/account/password", response_class=HTMLResponse)
async def account_password(request: Request, who: Principal = viewer) -> Response:
    form = await request.form()
    st = request.app.state
    user = st.db.user_by_id(who.user_id)
    assert user is not None
    if not st.passwords.verify(user["pw_hash"], str(form.get("current", ""))):
        flash(request, "The current password is wrong.")
        return _redirect("/account")
    if str(form.get("new", "")) != str(form.get("confirm", "")):
        flash(request, "The new passwords differ.")
        return _redirect("/account")
    try:
        auth.set_password(st.db, st.passwords, user, str(form.get("new", "")), actor=who.username,
                          ip=client_ip(request), keep_session=who.session_hash)
    except UserError as exc:
        flash(request, str(exc))
        return _redirect("/account")
    flash(request, "Password changed; your other sessions were logged out.")
    return _redirect("/account")


@router.post("/account/totp", response_class=HTMLResponse)
async def account_totp(request: Request, who: Principal = viewer) -> Response:
    form = await request.form()
    st = request.app.state
    action, ip = str(form.get("action", "")), client_ip(request)
    user = st.db.user_by_id(who.user_id)
    assert user is not None
    if action == "start":
        with st.db.tx() as conn:
            conn.execute("UPDATE users SET totp_pending = ? WHERE id = ?", (totp_secret(), who.user_id))
    elif action == "confirm" and user["totp_pending"]:
        step = totp_verify(user["totp_pending"], str(form.get("code", "")))
        if step is None:
            flash(request, "Wrong code; check the clock of your authenticator and try again.")
            return _redirect("/account")
        with st.db.tx() as conn:
            conn.execute("UPDATE users SET totp_secret = totp_pending, totp_pending = NULL, totp_last_step = ? "
                         "WHERE id = ?", (step, who.user_id))
            st.db.audit(conn, who.username, "user.totp_enable", who.username, None, None, ip)
        flash(request, "Two-factor login is on.")
    elif action == "disable":
        if not st.passwords.verify(user["pw_hash"], str(form.get("current", ""))):
            flash(request, "The current password is wrong.")
            return _redirect("/account")
        with st.db.tx() as conn:
            conn.execute("UPDATE users SET totp_secret = NULL, totp_pending = NULL WHERE id = ?", (who.user_id,))
            st.db.audit(conn, who.username, "user.totp_disable", who.username, None, None, ip)
        flash(request, "Two-factor login is off.")
    return _redirect("/account")


@router.post("/account/tokens", response_class=HTMLResponse)
async def account_token_new(request: Request, who: Principal = viewer) -> Response:
    form = await request.form()
    st = request.app.state
    token = auth.create_api_token(st.db, who, str(form.get("name", "")), client_ip(request))
    user = st.db.user_by_id(who.user_id)
    tokens = st.db.rows("SELECT id, name, prefix, created, last_used FROM api_tokens WHERE user_id = ? "
                        "ORDER BY id", (who.user_id,))
    return render(request, "account.html", account=user, tokens=tokens, new_token=token, pending=None,
                  pending_uri="")


@router.post("/account/tokens/{tid}/delete")
def account_token_delete(request: Request, tid: int, who: Principal = viewer) -> Response:
    st = request.app.state
    row = st.db.one("SELECT * FROM api_tokens WHERE id = ?", (tid,))
    if row is None or (row["user_id"] != who.user_id and not who.can("admin")):
        raise HTTPException(404, "no such token")
    with st.db.tx() as conn:
        conn.execute("DELETE FROM api_tokens WHERE id = ?", (tid,))
        st.db.audit(conn, who.username, "token.revoke", row["name"], {"prefix": row["prefix"]}, None,
                    client_ip(request))
    flash(request, "Token revoked.")
    return _redirect("/account")


# --------------------------------------------------------------------------- audit


@router.get("/audit", response_class=HTMLResponse)
def audit_page(request: Request, page: int = 1, action: str = "", user: str = "",
               who: Principal = admin) -> Response:
    size = 100
    page = max(1, page)
    total, rows = request.app.state.db.audit_page(size, (page - 1) * size, action or None, user or None)
    pages = max(1, (total + size - 1) // size)
    base = {k: v for k, v in (("action", action), ("user", user)) if v}
    return render(request, "audit.html", rows=rows, total=total, page=page, pages=pages, action=action,
                  user_filter=user, prev_qs=urlencode({**base, "page": page - 1}),
                  next_qs=urlencode({**base, "page": page + 1}))


# --------------------------------------------------------------------------- fingerprints


def _fp_page(request: Request, status: int = 200, **extra: Any) -> Response:
    st = request.app.state
    q, category = request.query_params.get("q", ""), request.query_params.get("category", "")
    page = max(1, int(request.query_params.get("page", "1") or 1)) if request.query_params.get(
        "page", "1").isdigit() else 1
    try:
        with fplib.open_library(st.settings) as lib:
            entries, more = fplib.search(lib, q, category, 100, (page - 1) * 100)
            total, counts = len(lib), lib.counts()
    except fplib.LibraryMissing as exc:
        return render(request, "fingerprints.html", 200, missing=str(exc))
    thumbs = fplib.thumbs_dir(fplib.library_path(st.settings))
    with_thumb = {e.id for e in entries if (thumbs / f"{e.id}.png").is_file()}
    return render(request, "fingerprints.html", status, entries=entries, more=more, total=total, counts=counts,
                  q=q, category=category, page=page, with_thumb=with_thumb,
                  next_qs=urlencode({"q": q, "category": category, "page": page + 1}),
                  prev_qs=urlencode({"q": q, "category": category, "page": page - 1}), **extra)


@router.get("/fingerprints", response_class=HTMLResponse)
def fingerprints_page(request: Request, who: Principal = viewer) -> Response:
    return _fp_page(request)


@router.post("/fingerprints", response_class=HTMLResponse)
async def fingerprints_add(request: Request, who: Principal = analyst) -> Response:
    """Upload files/images (``files``) or a hash list/CSV (``hashlist``) with a label and category."""
    from starlette.datastructures import UploadFile

    form = await request.form()
    st = request.app.state
    label, category = str(form.get("label", ""))[:200].strip(), str(form.get("category", ""))[:100].strip()
    kind = str(form.get("kind", "files"))
    limit = st.settings.upload_max_bytes
    uploads: list[fplib.Upload] = []
    for item in form.getlist("files"):
        if isinstance(item, UploadFile) and item.filename:
            data = await item.read(limit + 1)
            if len(data) > limit:
                return _fp_page(request, 413, error=f"{item.filename}: larger than {limit} bytes")
            uploads.append(fplib.Upload(item.filename, data))
    if not uploads:
        return _fp_page(request, 422, error="choose at least one file")
    source = f"console upload by {who.username}"
    try:
        with fplib.open_library(st.settings) as lib:
            if kind == "hashes":
                stats = fplib.add_hash_list(lib, uploads[0].data, uploads[0].filename, label=label,
                                            category=category, source=source)
            else:
                stats = fplib.add_uploads(lib, uploads, label=label, category=category, source=source,
                                          thumbs=fplib.thumbs_dir(fplib.library_path(st.settings)),
                                          max_pixels=st.settings.image_max_pixels)
    except (ValueError, fplib.LibraryMissing) as exc:
        return _fp_page(request, 422, error=str(exc))
    st.db.audit(None, who.username, "fingerprint.add", ", ".join(u.filename[:80] for u in uploads[:10]), None,
                {"kind": kind, "label": label, "category": category, "added": stats.added,
                 "duplicates": stats.duplicates, "invalid": stats.invalid}, client_ip(request))
    flash(request, f"Library: {stats}." + (" " + "; ".join(stats.problems[:5]) if stats.problems else ""))
    return _redirect("/fingerprints")


@router.post("/fingerprints/{fid}/delete")
def fingerprints_delete(request: Request, fid: int, who: Principal = analyst) -> Response:
    st = request.app.state
    try:
        with fplib.open_library(st.settings) as lib:
            entry = lib.get(fid)
            if entry is None:
                raise HTTPException(404, "no such fingerprint")
            lib.remove(str(fid))
    except fplib.LibraryMissing as exc:
        raise HTTPException(404, str(exc)) from None
    thumb = fplib.thumbs_dir(fplib.library_path(st.settings)) / f"{fid}.png"
    thumb.unlink(missing_ok=True)
    st.db.audit(None, who.username, "fingerprint.remove", str(fid), {"label": entry.label, **entry.hashes(),
                "category": entry.category}, None, client_ip(request))
    flash(request, f"Removed fingerprint #{fid} ({entry.label}).")
    return _redirect("/fingerprints")


@router.get("/fingerprints/{fid}/image.png")
def fingerprint_image(request: Request, fid: int, who: Principal = viewer) -> Response:
    try:
        path = fplib.thumbs_dir(fplib.library_path(request.app.state.settings)) / f"{fid}.png"
    except fplib.LibraryMissing:
        raise HTTPException(404, "no library") from None
    if not path.is_file():
        raise HTTPException(404, "no image for this fingerprint")
    try:  # our own PNG, but re-encoded anyway: the directory is writable by others
        png = images.reencode_png(path.read_bytes(), request.app.state.settings.image_max_pixels)
    except images.ImageRefused as exc:
        raise HTTPException(415, str(exc)) from None
    return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=300"})
