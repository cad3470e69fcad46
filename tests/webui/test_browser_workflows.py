"""The analyst's day in headless Chromium (Debian's chromium through Playwright), on a real read of an office's
traffic (tests/webui/site.py: alert store, content store, packet store):

pivot from a hit into the list and exclude a value; a query with an error shown in place; bulk verdict and a
new case from the list; the case's notes and log; an exception from a false positive, seen in the policy; the
session with its objects and the PCAP download; content search in Chinese; a policy edit back-tested in the
editor; the dashboard (time zone, zoom); auto-refresh picking up a new hit. Hostile values (script in URLs,
hosts, file names, content) stay text throughout.
Screenshots go to $TAPSIFT_SCREENSHOTS (docs/screenshots/ when refreshing the docs).

SQLite only: the same pages on PostgreSQL are covered by the TestClient tests (test_workflows.py,
test_retained.py) and tests/webui/test_browser.py.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from tests.webui.conftest import PASSWORDS, add_users
from tests.webui.site import make_site
from tests.webui.test_browser import ARGS, CHROMIUM, _free_port, _shot
from webui import create_app
from webui.app import close_app

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, object, dict[str, str]]]:
    tmp = tmp_path_factory.mktemp("day")
    site = make_site(tmp)
    port = _free_port()
    app = create_app(alert_db=site["alerts"], console_db=str(tmp / "console.db"), content_db=site["content"],
                     packet_store=site["packets"], policy_path=site["policy"], argon2_time_cost=1,
                     argon2_memory_kib=256, argon2_parallelism=1, refresh_s=5)
    add_users(app)
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False))
    t = threading.Thread(target=srv.run, daemon=True)
    t.start()
    deadline = time.monotonic() + 15
    while not srv.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", app, site
    srv.should_exit = True
    t.join(10)
    close_app(app)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "Debian's chromium is needed: apt-get install chromium"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def page(server, browser):  # type: ignore[no-untyped-def]
    base, _, _ = server
    ctx = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=base, accept_downloads=True)
    pg = ctx.new_page()
    pg.dialogs, pg.errors = [], []
    pg.on("dialog", lambda d: (pg.dialogs.append(d.message), d.accept()))
    pg.on("pageerror", lambda e: pg.errors.append(str(e)))
    pg.goto("/login")
    pg.fill("#username", "analyst")
    pg.fill("#password", PASSWORDS["analyst"])
    pg.click("button[type=submit]")
    pg.wait_for_url(f"{base}/")
    yield pg
    assert not [d for d in pg.dialogs if "alert" in d or d.isdigit()], f"a script ran: {pg.dialogs}"
    assert pg.errors == [], pg.errors
    ctx.close()


def test_pivot_query_error_bulk_case(page, server) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    base, _app, _ = server
    page.goto("/hits/A000001")
    page.locator("#flow-client a").first.click()  # pivot: every hit of this client
    expect(page).to_have_url(f"{base}/hits?q=ip%3A10.20.1.21")
    expect(page.locator("#hits tbody tr")).to_have_count(1)
    page.goto("/hits")
    expect(page.locator("#hits tbody tr")).to_have_count(3)
    row = page.locator("#hits tbody tr", has_text="casino.example.biz")
    row.locator(".where .pv").first.hover()
    row.locator(".where .pv a.px").first.click()  # exclude the casino's host
    expect(page.locator("#q")).to_have_value("-host:casino.example.biz")
    expect(page.locator("#hits tbody tr")).to_have_count(2)
    # a query with an error: shown with its position, no hits listed
    page.fill("#q", "severity:>=high AND (host:x")
    page.click("#filters button[type=submit]")
    expect(page.locator("#query-errors")).to_contain_text("unclosed '('")
    expect(page.locator("#query-errors")).to_contain_text("at character 21")
    expect(page.locator("#hits")).to_have_count(0)
    _shot(page, "query-error.png")
    # bulk: two hits → investigating, assigned, into a new case
    page.goto("/hits?q=category%3Adata-leak%2Fconfidential")
    page.check("#select-all")
    expect(page.locator("#selected-count")).to_have_text("2")
    page.select_option("#bulkbar select[name=verdict]", "investigating")
    page.fill("#bulkbar input[name=assignee]", "analyst")
    page.fill("#bulkbar input[name=new_case]", "Nightjar plan leaving the office")
    _shot(page, "bulk-triage.png")
    page.click("#bulk-apply")
    expect(page.locator("p.notice").first).to_contain_text("2 hits updated; 2 added to case #1")
    expect(page.locator("#hits tbody .tri.t-investigating")).to_have_count(2)
    page.goto("/cases/1")
    expect(page.locator("#case-hits tbody tr")).to_have_count(2)
    page.fill("#case-note", "Both uploads from the same team; asked their manager.")
    page.select_option("#case-form select[name=status]", "in_progress")
    page.click("#case-form button[type=submit]")
    expect(page.locator("#case-status")).to_have_text("in progress")
    expect(page.locator("#case-log")).to_contain_text("status changed")
    expect(page.locator(".note")).to_contain_text("asked their manager")
    _shot(page, "case.png")


def test_exception_from_a_false_positive(page, server) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    base, _app, site = server
    page.goto("/hits/A000002")
    page.fill("#triage textarea[name=note]", "A partner's casino ad campaign we are told to allow.")
    page.click("button.fp")
    expect(page).to_have_url(f"{base}/hits/A000002#exception")
    form = page.locator("#exception")
    expect(form.locator("input[name=reason]")).to_have_value("A partner's casino ad campaign we are told to allow.")
    form.locator("input[name=reload]").uncheck()
    _shot(page, "exception-form.png")
    form.locator("#exception-add").click()
    expect(page).to_have_url(f"{base}/policy#exceptions")
    expect(page.locator("#exception-list")).to_contain_text("casino.example.biz")
    expect(page.locator("#exception-list")).to_contain_text("analyst")
    assert "host: \"casino.example.biz\"" in Path(site["policy"]).read_text(encoding="utf-8")


def test_session_and_pcap(page, server) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    _base, _, _ = server
    page.goto("/hits/A000003")  # the hostile one
    page.click("#session-link")
    expect(page.locator("#session-objects tbody tr")).to_have_count(2)
    expect(page.locator("#session-objects")).to_contain_text("<svg onload=alert(4)>.txt")
    expect(page.locator("#tx-0")).to_contain_text("evil.example")
    assert page.locator("script").count() == 1 and page.locator("svg[onload], img[src=x]").count() == 0
    _shot(page, "session.png")
    with page.expect_download() as d:
        page.click("#pcap-download")
    data = Path(d.value.path()).read_bytes()
    out = subprocess.run(["tcpdump", "-nr", "-", "-q"], input=data, capture_output=True)
    lines = out.stdout.decode().splitlines()
    assert out.returncode == 0 and lines and all("10.20.1.66" in ln for ln in lines)


def test_content_search_in_chinese(page) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    page.goto("/content")
    page.fill("#cq", "年会")
    page.click("#content-filters button[type=submit]")
    expect(page.locator("#content tbody tr")).to_have_count(1)
    expect(page.locator("#content")).to_contain_text("intranet-news.example.com")
    _shot(page, "content-search.png")
    page.locator("#content tbody tr a").first.click()
    expect(page.locator("#content-text mark")).to_have_text("年会")


def test_backtest_of_a_policy_edit(page) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    page.goto("/policy")
    text = page.locator("#policy-text").input_value()
    old = "      - {text: 赌博, weight: 3}"
    assert old in text
    page.locator("#policy-text").fill(text.replace(old, old + "\n      - {text: 年会, weight: 8}"))
    page.select_option("#bt-period", "7d")
    page.click("#policy-backtest")
    expect(page.locator("#bt-new")).to_have_text("1 new")
    expect(page.locator("#bt-lost")).to_have_text("0 lost")
    expect(page.locator("#backtest .bt-new")).to_contain_text("intranet-news.example.com")
    page.locator("#backtest").scroll_into_view_if_needed()
    _shot(page, "backtest.png")


def test_dashboard_time_zone_zoom_and_auto_refresh(page, server) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    from appliance.model import Alert, ContentObject, Direction, Finding, FlowRef, Severity
    from appliance.store import AlertStore

    _base, _, site = server
    page.goto("/account")
    page.fill("#tz", "Asia/Shanghai")
    page.locator("#tz").press("Enter")
    expect(page.locator("#current-tz")).to_have_text("Asia/Shanghai")
    page.goto("/?range=24h")
    expect(page.locator("h2").first).to_contain_text("times Asia/Shanghai")
    expect(page.locator("#category-chart")).to_be_visible()
    _shot(page, "dashboard-breakdowns.png")
    page.locator("#time-chart a.zoom").last.click()
    expect(page.locator("h2").first).to_contain_text("zoomed")
    # auto-refresh: a hit stored now appears in the list without reloading
    page.goto("/hits")
    page.check("#autorefresh")
    flow = FlowRef("Cnew", 1, "10.20.1.77", 41000, "203.0.113.77", 80, "TCP", 0, "", "office", "any")
    obj = ContentObject(id="Fnew", source="http", direction=Direction.TO_SERVER, flow=flow,
                        ts_ns=1_714_561_000_000_000_000, size=1, md5="0" * 32, sha256="0" * 64, host="late.example")
    with AlertStore(site["alerts"]) as store:
        store.add(Alert("A0NEW", obj.ts_ns, "office-uploads", "confidential-leak", Severity.HIGH,
                        "data-leak/confidential", "Fnew", flow, (Finding("keyword", "Fnew", "x", 10.0),), "office",
                        "any"), obj)
    expect(page.locator("#hits")).to_contain_text("late.example", timeout=20_000)
    expect(page.locator("#refresh-note")).to_contain_text("new hits added")
