"""Back-testing a policy edit from the editor: what it would raise over the retained content of a period."""

from __future__ import annotations

import time
from typing import Any

from appliance.backtest import BacktestResult, backtest
from appliance.store.content import ContentRepo
from appliance.store.querylang import parse_time
from webui import policyedit
from webui.db import ConsoleDB
from webui.errors import ServiceError
from webui.services import policy as policy_svc

PERIODS = {"24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400}


def period(content: ContentRepo, name: str, since: str, until: str, tz: Any) -> tuple[int, int]:
    """[since, until) of a named period ending at the newest retained object, or of the given times."""
    if name in PERIODS:
        newest = content.newest()
        if newest is None:
            raise ServiceError("no content is retained yet", 404)
        return newest + 1 - PERIODS[name] * 10**9, newest + 1
    try:
        a, b = parse_time(since, tz), parse_time(until, tz, end=True)
    except ValueError as exc:
        raise ServiceError(str(exc), 422) from None
    if b <= a:
        raise ServiceError("the end is not after the start", 422)
    return a, b


def run(settings: Any, db: ConsoleDB, content: ContentRepo | None, text: str, period_name: str, since: str,
        until: str, tz: Any) -> BacktestResult:
    """Run the proposed *text* and the current policy file over the period (editor limits apply)."""
    if content is None:
        raise ServiceError("no content store is configured (content_db): nothing to back-test on", 404)
    val = policy_svc.validate(settings, text)
    if not val.ok or val.policy is None:
        raise ServiceError("fix the policy's problems first (Check)", 422)
    current_text = policy_svc.current_policy(db, settings)
    current = policyedit.validate(current_text).policy if current_text else None
    a, b = period(content, period_name, since, until, tz)
    t0 = time.monotonic()
    res = backtest(content, val.policy, current, a, b, max_objects=settings.backtest_max_objects,
                   time_budget_s=settings.backtest_time_s)
    res.seconds = time.monotonic() - t0
    return res
