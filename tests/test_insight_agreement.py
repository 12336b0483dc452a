"""One store, three places a care lead reads it: the dashboard (``/insights``), the terminal
(``carebot report``) and Prometheus (``/metrics``) show the same numbers, all from
:class:`carebot.insight.metrics.Insight` over the golden store of tests/insight_fixture.py."""

from __future__ import annotations

import argparse
import html
import io
import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from prometheus_client.parser import text_string_to_metric_families

from carebot.cli.report import moment, write_report
from carebot.desk.auth import hash_password
from carebot.insight.metrics import Insight
from carebot.insight.prometheus import headline_samples
from carebot.insight.report import Period, Report, Share
from carebot.runtime import build_runtime
from carebot.server import build_app
from carebot.store.database import Database
from tests.conftest import EXACT_BACKOFF, Clock, make_settings
from tests.fakes import FakeEncoder
from tests.insight_fixture import SECTIONS, build_golden_store

PASSWORD = "lead-password-123"
# After every scripted message; the period is the whole of 30 November to 14 December in
# Berlin, which is also the last 15 days before the clock (the /metrics window).
NOW = datetime(2026, 12, 14, 23, 0, tzinfo=UTC)
PERIOD = Period(datetime(2026, 11, 29, 23, 0, tzinfo=UTC), NOW)
KEYS = (
    "conversations", "involvement", "confirmed", "assumed", "automation", "resolution_rate",
    "durable", "handoffs", "not_helpful", "repeat_contact", "csat_bot", "csat_human",
    "rating_response_bot", "rating_response_human", "emotional",
)  # fmt: skip
FIGURE = re.compile(r'data-metric="([^"]+)" title="([\d,]+) of ([\d,]+)[^"]*: list them"')


@pytest.fixture
async def served(
    tmp_path: Path, database_url: str, clock: Clock
) -> AsyncIterator[tuple[TestServer, Database, Any]]:
    settings = make_settings(
        tmp_path,
        **SECTIONS,
        inbox={"agents": [{"name": "lee", "password_hash": hash_password(PASSWORD),
                           "roles": ["agent", "lead"]}]},
        metrics={"enabled": True, "window_days": 15},
    )  # fmt: skip
    db = Database(database_url)
    await db.upgrade()
    await build_golden_store(db, clock)
    clock.now = NOW
    runtime = await build_runtime(
        settings, encoder=FakeEncoder(), database_url=database_url, backoff=EXACT_BACKOFF,
        clock=clock,
    )  # fmt: skip
    server = TestServer(build_app(settings, runtime, env={}).app)
    await server.start_server()
    try:
        yield server, db, settings
    finally:
        await server.close()
        await runtime.db.close()
        await db.close()


async def dashboard(server: TestServer) -> dict[str, tuple[int, int]]:
    """The figures the page links, as (count, total)."""
    http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    async with http:
        async with http.get(server.make_url("/inbox/login")) as response:
            csrf = re.search(r'name="csrf" value="([^"]+)"', await response.text())
        assert csrf is not None
        form = {"name": "lee", "password": PASSWORD, "csrf": csrf.group(1), "next": "/insights"}
        await http.post(server.make_url("/inbox/login"), data=form)
        query = "?since=2026-11-30&until=2026-12-14"
        async with http.get(server.make_url(f"/insights{query}")) as response:
            assert response.status == 200
            page = html.unescape(await response.text())
    return {
        key: (int(count.replace(",", "")), int(total.replace(",", "")))
        for key, count, total in FIGURE.findall(page)
    }


async def terminal(db: Database, settings: Any) -> dict[str, Any]:
    args = argparse.Namespace(
        view="summary", since=moment("2026-11-30"), until=moment("2026-12-15"), channel=None,
        team=None, format="json", ids=False, out=None,
    )  # fmt: skip
    out = io.StringIO()
    insight = Insight(db=db, settings=settings, clock=lambda: NOW)
    await write_report(args, insight=insight, now=NOW, zone=settings.business_hours.zone(), out=out)
    data: dict[str, Any] = json.loads(out.getvalue())
    return data


async def prometheus(server: TestServer) -> dict[str, float]:
    async with aiohttp.ClientSession() as http, http.get(server.make_url("/metrics")) as r:
        text = await r.text()
    return {
        sample.name + json.dumps(sample.labels, sort_keys=True): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith("carebot_insight_")
    }


async def test_the_dashboard_the_report_and_prometheus_show_the_same_numbers(
    served: tuple[TestServer, Database, Any],
) -> None:
    server, db, settings = served
    report: Report = await Insight(db=db, settings=settings, clock=lambda: NOW).report(PERIOD)
    assert report.conversations.count > 0

    shown = await dashboard(server)
    printed = await terminal(db, settings)
    scraped = await prometheus(server)

    assert set(KEYS) - {"conversations"} <= set(shown)
    for key, (count, total) in shown.items():  # every linked number of the page
        figure = report.lookup(key) if not key.startswith("week.") else None
        if figure is not None:
            assert isinstance(figure, Share)
            assert (count, total) == (figure.count, figure.total), key
    for key in KEYS:
        figure = report.lookup(key)
        assert isinstance(figure, Share)
        assert (printed[key]["count"], printed[key]["total"]) == (figure.count, figure.total)
    for sample in headline_samples(report):
        name = f"carebot_insight_{sample.name}" + json.dumps(dict(sample.labels), sort_keys=True)
        if sample.value is None:
            assert name not in scraped, name  # nothing to count: no sample, never 0
        else:
            assert scraped[name] == pytest.approx(sample.value), name
    assert len(scraped) == sum(1 for s in headline_samples(report) if s.value is not None)
    assert scraped["carebot_insight_conversations{}"] == report.conversations.count


def test_the_period_is_the_metrics_window() -> None:
    assert PERIOD.until - PERIOD.since == timedelta(days=15)
