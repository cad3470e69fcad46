"""End to end in headless Chromium (Debian's ``chromium`` driven by Playwright; no browser download).

The console runs under uvicorn on 127.0.0.1 with a temporary alert store (the demo hits plus one
whose evidence, URL, host and file name carry script payloads). The story: log in, see the hits,
open one and see the highlighted evidence, mark it a false positive, edit a keyword list, see the
validation error in place, fix it, review the diff, save, see the new version and the audit entry;
the hostile hit shows its payloads as text and runs nothing.
Screenshots go to $TAPSIFT_SCREENSHOTS (docs/screenshots/ when refreshing the docs).

The module runs twice: on SQLite files, and on a PostgreSQL database holding alerts and console
alike (a real server, tests/fleet_fixtures.py); screenshots are taken on the first only.
"""

from __future__ import annotations

import os
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from tests.fleet_fixtures import BACKENDS
from tests.webui.conftest import PASSWORDS, add_users, make_settings
from tests.webui.factories import XSS_SNIPPET, XSS_URL
from webui import create_app
from webui.app import close_app

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
# the docs' screenshots are refreshed on request (TAPSIFT_SCREENSHOTS=docs/screenshots); a plain run
# writes them to a temporary folder so a test run leaves the checkout as it was
SHOTS = Path(os.environ.get("TAPSIFT_SCREENSHOTS") or Path(tempfile.gettempdir()) / f"tapsift-shots-{os.getuid()}")
MAX_SHOT = 300 * 1024


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module", params=BACKENDS)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, object]]:
    tmp = tmp_path_factory.mktemp("console")
    port = _free_port()
    dsn = None
    if request.param == "postgresql":
        pg = request.getfixturevalue("postgres_server")
        dbname = pg.create_database(request.getfixturevalue("pg_template"))
        request.addfinalizer(lambda: pg.drop_database(dbname))
        dsn = pg.dsn(dbname)
    app = create_app(make_settings(tmp, dsn, host="127.0.0.1", port=port))
    app.state.screenshots = dsn is None
    add_users(app)
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False))
    t = threading.Thread(target=srv.run, daemon=True)
    t.start()
    deadline = time.monotonic() + 15
    while not srv.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", app
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


def _shot(page, name: str, take: bool = True) -> Path | None:  # type: ignore[no-untyped-def]
    if not take:
        return None
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / name
    page.screenshot(path=str(path), full_page=False)
    if path.stat().st_size > MAX_SHOT:  # re-quantise to a palette to stay small
        from PIL import Image

        Image.open(path).convert("RGB").quantize(colors=128).save(path, optimize=True)
    assert path.stat().st_size < MAX_SHOT
    return path


def test_console_story(server, browser) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    base, app = server
    ctx = browser.new_context(viewport={"width": 1280, "height": 860}, base_url=base)
    page = ctx.new_page()
    dialogs: list[str] = []
    errors: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.on("pageerror", lambda e: errors.append(str(e)))

    # log in
    page.goto("/hits")
    expect(page).to_have_url(f"{base}/login?next=%2Fhits")
    page.fill("#username", "admin")
    page.fill("#password", PASSWORDS["admin"])
    page.click("button[type=submit]")
    expect(page).to_have_url(f"{base}/hits")

    # the demo hits
    rows = page.locator("#hits tbody tr")
    expect(rows).to_have_count(32)
    expect(page.locator("#hits")).to_contain_text("casino.example.biz")
    expect(page.locator("#hits")).to_contain_text("data-leak/confidential")

    # the dashboard (screenshot)
    page.goto("/?range=all")
    expect(page.locator("svg.chart rect.col:not([height='0.0'])").first).to_be_visible()
    expect(page.locator(".sensor")).to_contain_text("41,250.0")
    _shot(page, "dashboard.png", app.state.screenshots)

    # open a hit: the highlighted evidence
    page.goto("/hits?q=minutes-29")
    page.locator("#hits tbody tr a").first.click()
    expect(page).to_have_url(f"{base}/hits/A00029")
    mark = page.locator("pre.snippet mark")
    expect(mark).to_have_text("Project Nightjar")
    expect(page.locator("pre.snippet")).to_contain_text("roadmap slips to Q3")
    _shot(page, "hit-detail.png", app.state.screenshots)

    # mark it a false positive with a note
    page.fill("#triage textarea[name=note]", "Board minutes shared with the auditors; expected.")
    page.click("button.fp")
    expect(page.locator("#triage-state")).to_have_text("false positive")
    expect(page.locator("p.notice")).to_contain_text("Marked as false positive")
    expect(page.locator("#triage table")).to_contain_text("Board minutes shared with the auditors")

    # edit a keyword list: an invalid weight is shown in place with its line and column
    page.goto("/policy")
    text = page.locator("#policy-text").input_value()
    old = '      - {text: "Project Nightjar", weight: 10}'
    assert old in text
    lines = text.split("\n")
    bad_line = lines.index(old) + 1
    page.locator("#policy-text").fill(text.replace(old, '      - {text: "Project Nightjar", weight: lots}\n'
                                                        '      - {text: "Operation Kestrel", weight: 10}'))
    page.click("#policy-check")
    issues = page.locator("#issues")
    expect(issues).to_be_visible()
    expect(issues).to_contain_text(f"line {bad_line}, column")
    expect(issues).to_contain_text("weight")
    expect(page.locator(f"tr#L{bad_line}.err")).to_contain_text("weight: lots")
    page.locator("#issues a.jump").first.click()  # puts the cursor on the problem (app.js)
    cursor = page.evaluate("() => document.getElementById('policy-text').selectionStart")
    assert page.locator("#policy-text").input_value()[:cursor].count("\n") == bad_line - 1
    # fix it, review the diff, save
    fixed = page.locator("#policy-text").input_value().replace("weight: lots}", "weight: 12}")
    page.locator("#policy-text").fill(fixed)
    page.click("#policy-check")
    expect(page.locator("#policy-ok")).to_contain_text("Valid")
    page.click("#policy-preview")
    expect(page.locator("#diff")).to_contain_text('+      - {text: "Operation Kestrel", weight: 10}')
    expect(page.locator("#diff")).to_contain_text('-      - {text: "Project Nightjar", weight: 10}')
    page.fill("#comment", "Kestrel is the new code name")
    page.click("#policy-save")
    expect(page).to_have_url(f"{base}/policy/versions")
    expect(page.locator("#versions tbody tr").first).to_contain_text("Kestrel is the new code name")
    expect(page.locator("#versions tbody tr").first).to_contain_text("current")
    expect(page.locator("#versions tbody tr")).to_have_count(2)
    assert "Operation Kestrel" in Path(app.state.settings.policy_path).read_text()

    # the audit entries
    page.goto("/audit")
    audit = page.locator("#audit tbody")
    expect(audit.locator("tr").first).to_contain_text("policy.save")
    expect(audit).to_contain_text("hit.triage")
    expect(audit).to_contain_text("false_positive")

    # the hostile hit: payloads are text, nothing runs
    page.goto("/hits/A00066")
    expect(page.locator("pre.snippet")).to_contain_text(XSS_SNIPPET.split(" Project")[0])
    expect(page.locator("pre.snippet mark")).to_have_text("Project Nightjar")
    expect(page.locator("dt:text-is('Request') + dd")).to_contain_text(XSS_URL)
    expect(page.locator("body")).to_contain_text("<svg onload=alert(4)>")
    assert page.locator("script").count() == 1  # only /static/app.js
    assert page.locator("img[src=x], svg[onload]").count() == 0
    page.goto("/hits?q=Quarterly")
    expect(page.locator("#hits")).to_contain_text("evil.example<script>alert(3)</script>")
    page.wait_for_timeout(300)
    assert dialogs == [], f"a dialog fired: {dialogs}"
    assert errors == [], errors
    ctx.close()


def test_hit_pages_name_client_and_server(server, browser) -> None:  # type: ignore[no-untyped-def]
    """An upload and a download: the office PC is the client and the web server the server on both."""
    from playwright.sync_api import expect

    base, _ = server
    ctx = browser.new_context(viewport={"width": 1280, "height": 860}, base_url=base)
    page = ctx.new_page()
    page.goto("/login")
    page.fill("#username", "viewer")
    page.fill("#password", PASSWORDS["viewer"])
    page.click("button[type=submit]")
    expect(page).to_have_url(f"{base}/")

    page.goto("/hits/A00001")  # minutes uploaded from 10.20.11.11 to 192.0.2.80
    expect(page.locator("#flow-direction")).to_have_text("upload (client → server)")
    expect(page.locator("#flow-client")).to_have_text("10.20.11.11:40001 (zone office)")
    expect(page.locator("#flow-server")).to_have_text("192.0.2.80:80 (zone any)")

    page.goto("/hits?category=fraud")  # a casino page downloaded by 10.20.21.15
    page.locator("#hits tbody tr a[href='/hits/A00005']").click()
    expect(page).to_have_url(f"{base}/hits/A00005")
    expect(page.locator("#flow-direction")).to_have_text("download (server → client)")
    expect(page.locator("#flow-client")).to_have_text("10.20.21.15:40005 (zone office)")
    expect(page.locator("#flow-server")).to_have_text("198.51.100.7:80 (zone any)")
    expect(page.locator("#flow dt")).to_have_text(["Transfer", "Client", "Server", "Protocol", "Interface", "Flow"])
    ctx.close()
