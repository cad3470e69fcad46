"""The console's app factory: ``create_app(settings)`` wires state, middleware, handlers and the routers.

Nothing imports this module but ``webui.create_app`` (and ``tapsift web``): routes, services and
dependencies never reach back into the app (a test checks the import graph has no cycle).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from webui import handlers
from webui.alerts import ViewFactory
from webui.contentview import ContentViews
from webui.db import ConsoleDB
from webui.middleware import SecurityHeaders
from webui.rendering import TEMPLATES, make_templates
from webui.routes import (
    account,
    audit,
    cases,
    content,
    dashboard,
    fingerprints,
    flows,
    hits,
    login,
    metrics,
    policy,
    searches,
    sensors,
    users,
)
from webui.security import Passwords
from webui.services.throttle import LoginThrottle
from webui.settings import ConsoleSettings

STATIC = TEMPLATES.parent / "static"
ROUTERS = (
    login.public, login.pages, dashboard.pages, hits.pages, cases.pages, flows.pages, content.pages, searches.pages,
    policy.pages, fingerprints.pages, users.pages, account.pages, audit.pages,
    hits.api, cases.api, flows.api, content.api, dashboard.api, policy.api, fingerprints.api, metrics.api,
    metrics.router,
    sensors.pages, sensors.api,  # fleet
)


def create_app(settings: ConsoleSettings | None = None, **overrides: Any) -> FastAPI:
    """The console app; *overrides* are `ConsoleSettings` fields (handy in tests)."""
    if settings is None:
        settings = ConsoleSettings(**overrides)
    elif overrides:
        settings = ConsoleSettings.model_validate({**settings.model_dump(), **overrides})
    app = FastAPI(title="tapsift console API", version="1", docs_url=None, redoc_url=None, openapi_url=None,
                  description="Hits, triage, policy, fingerprints and statistics of a tapsift sensor. "
                              "Authenticate with `Authorization: Bearer <API token>` (create tokens on the "
                              "account page).")
    st = app.state
    st.settings = settings
    st.db = ConsoleDB(settings.console_db, pool_size=settings.db_pool_size)
    st.views = ViewFactory(settings.alert_db, st.db, settings.db_pool_size)
    st.content = ContentViews(settings.content_db, settings.db_pool_size)
    st.passwords = Passwords(settings.argon2_time_cost, settings.argon2_memory_kib, settings.argon2_parallelism)
    st.throttle = LoginThrottle.from_settings(st.db, settings)
    st.templates = make_templates()
    st.flash = {}
    st.counters = {"logins_failed": 0, "logins": 0, "rate_limited": 0, "csrf_refused": 0}
    app.add_middleware(SecurityHeaders, settings=settings)
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    for router in ROUTERS:
        app.include_router(router)
    handlers.install(app)
    return app


def close_app(app: FastAPI) -> None:
    """Close the app's databases (its connection pools on PostgreSQL)."""
    app.state.views.close()
    app.state.content.close()
    app.state.db.close()
