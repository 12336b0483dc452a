"""``/insights``, the care lead's numbers, through the real service (fake encoder) with the
report, conversation rows and topics built by hand (tests/insight_reports.py): who may open it,
what its filters ask for, the export, the lists behind the numbers, and, in Debian's Chromium,
that the page shows the fixture's numbers in its cards, charts and tables.

Screenshots go to tests/artifacts/insights/ (printed). ``CAREBOT_DOCS_SCREENSHOT=1`` also
writes the README's docs/insights.png."""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from html import escape, unescape
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from carebot.config import InboxSettings, TeamSettings
from carebot.desk import insight_format as fmt
from carebot.desk.auth import Agents, hash_password
from carebot.desk.insight_filters import Filters
from carebot.exceptions import ModelError
from carebot.insight.report import Period, Share
from carebot.runtime import build_runtime
from carebot.server import build_app
from tests.chromium import launched, needs_chromium
from tests.conftest import EXACT_BACKOFF, ROOT, Clock
from tests.fakes import FakeEncoder
from tests.insight_reports import FixtureInsight, make_rows
from tests.migrated import migrate
from tests.service import AGENT_PASSWORD, service_settings

ARTIFACTS = Path(__file__).resolve().parent / "artifacts" / "insights"
BERLIN = ZoneInfo("Europe/Berlin")
CSRF = re.compile(r'name="csrf" value="([^"]+)"')
# The clock's day (Wednesday 18 Nov 2026) and the 27 before it, in Berlin.
CURRENT = Period(
    datetime(2026, 10, 21, 22, 0, tzinfo=UTC),  # 22 Oct 00:00 summer time
    datetime(2026, 11, 18, 23, 0, tzinfo=UTC),  # 19 Nov 00:00 winter time
)


@pytest.fixture
async def insight() -> FixtureInsight:
    return FixtureInsight(BERLIN, CURRENT, make_rows(1020, CURRENT.since))


@pytest.fixture
async def server(
    tmp_path: Path, clock: Clock, insight: FixtureInsight
) -> AsyncIterator[TestServer]:
    """The service with two agents: ann, a lead, and bob, an agent only."""
    digest = hash_password(AGENT_PASSWORD)
    settings = service_settings(
        tmp_path,
        inbox={
            "agents": [
                {"name": "ann", "password_hash": digest, "roles": ["agent", "lead"]},
                {"name": "bob", "password_hash": digest},
            ]
        },
        business_hours={"timezone": "Europe/Berlin"},
    )
    teams = (
        TeamSettings(name="billing", display_name="Billing", first_response_minutes=15),
        TeamSettings(name="escalation", display_name="Escalation"),
    )
    settings = settings.model_copy(update={"teams": teams})
    database = f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}"
    await migrate(database)
    runtime = await build_runtime(
        settings, encoder=FakeEncoder(), database_url=database, backoff=EXACT_BACKOFF, clock=clock
    )
    service = build_app(settings, runtime, env={}, insight=insight.sources())
    test_server = TestServer(service.app)
    await test_server.start_server()
    try:
        yield test_server
    finally:
        await test_server.close()


async def logged_in(server: TestServer, name: str) -> aiohttp.ClientSession:
    """A browser session (no redirects followed) of ``name``."""
    http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    async with http.get(server.make_url("/inbox/login")) as response:
        match = CSRF.search(await response.text())
    assert match
    form = {"name": name, "password": AGENT_PASSWORD, "csrf": match.group(1), "next": "/insights"}
    async with http.post(server.make_url("/inbox/login"), data=form, allow_redirects=False) as r:
        assert (r.status, r.headers["Location"]) == (303, "/insights")
    return http


async def get(http: aiohttp.ClientSession, server: TestServer, path: str) -> tuple[int, str]:
    async with http.get(server.make_url(path), allow_redirects=False) as response:
        return response.status, await response.text()


# --- who may open it ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "login"),
    [
        ("/insights", "/inbox/login?next=/insights"),
        (
            "/insights/conversations?metric=automation",
            "/inbox/login?next=/insights/conversations?metric%3Dautomation",
        ),
        ("/insights/export.csv", "/inbox/login?next=/insights/export.csv"),
    ],
)
async def test_without_a_login_it_asks_for_one_and_comes_back(
    server: TestServer, path: str, login: str
) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.get(server.make_url(path), allow_redirects=False) as response,
    ):
        assert (response.status, response.headers["Location"]) == (303, login)


@pytest.mark.parametrize(
    "path",
    [
        "/insights",
        "/insights/conversations?metric=automation",
        "/insights/export.csv",
        "/insights?since=nonsense",  # the role is checked before anything else
    ],
)
async def test_an_agent_without_the_lead_role_is_refused(server: TestServer, path: str) -> None:
    http = await logged_in(server, "bob")
    async with http:
        status, html = await get(http, server, path)
        assert status == 403
        assert "Insights are for care leads" in html and 'add "lead" to your roles' in unescape(
            html
        )
        assert "customer_id" not in html and "5001" not in html
        _, inbox = await get(http, server, "/inbox")
    assert 'href="/insights"' not in inbox  # no link to a page bob may not open


async def test_a_lead_finds_the_insights_from_the_inbox(server: TestServer) -> None:
    async with await logged_in(server, "ann") as http:
        status, inbox = await get(http, server, "/inbox")
    assert status == 200 and '<a href="/insights">Insights</a>' in inbox


def test_roles_come_from_the_config_and_the_demo_agent_has_them_all() -> None:
    digest = hash_password(AGENT_PASSWORD)
    agents = Agents.from_settings(
        InboxSettings.model_validate(
            {
                "agents": [
                    {"name": "ann", "password_hash": digest, "roles": ["agent", "lead"]},
                    {"name": "bob", "password_hash": digest},
                ]
            }
        )
    )
    ann, bob = agents.get("ann"), agents.get("bob")
    assert ann is not None and bob is not None
    assert (ann.can("lead"), ann.can("ops"), bob.can("agent"), bob.can("lead")) == (
        True,
        False,
        True,
        False,
    )
    demo, _ = Agents.demo()
    agent = demo.get("agent")
    assert agent is not None and agent.roles == {"agent", "lead", "ops"}


# --- filters -------------------------------------------------------------------------------


async def test_by_default_the_last_28_days_in_the_business_time_zone(
    server: TestServer, insight: FixtureInsight
) -> None:
    async with await logged_in(server, "ann") as http:
        status, html = await get(http, server, "/insights")
    assert status == 200
    assert insight.asked == [CURRENT, CURRENT.previous()]
    assert "22 Oct to 18 Nov 2026 (28 days), all channels" in html
    assert "changes against 24 Sep to 21 Oct 2026" in html


async def test_the_filters_come_from_the_url(server: TestServer, insight: FixtureInsight) -> None:
    query = urlencode({"since": "2026-11-02", "until": "2026-11-08", "channel": "telegram"})
    async with await logged_in(server, "ann") as http:
        status, html = await get(http, server, f"/insights?{query}")
    week = Period(
        datetime(2026, 11, 1, 23, 0, tzinfo=UTC),
        datetime(2026, 11, 8, 23, 0, tzinfo=UTC),
        "telegram",
    )
    assert status == 200 and insight.asked == [week, week.previous()]
    assert "2 Nov to 8 Nov 2026 (7 days), channel telegram" in html
    assert '<option value="telegram" selected>telegram</option>' in html
    assert '<option value="webchat">webchat</option>' in html  # the service's channels


async def test_one_team_from_the_url(server: TestServer, insight: FixtureInsight) -> None:
    async with await logged_in(server, "ann") as http:
        status, html = await get(http, server, "/insights?team=billing")
    billing = Period(CURRENT.since, CURRENT.until, None, "billing")
    assert status == 200 and insight.asked == [billing, billing.previous()]
    assert "22 Oct to 18 Nov 2026 (28 days), all channels, team billing" in html
    assert '<option value="billing" selected>Billing</option>' in html
    assert '<option value="escalation">Escalation</option>' in html
    assert "/insights?since=2026-11-12&amp;until=2026-11-18&amp;team=billing" in html  # presets


async def test_one_label_from_the_url(server: TestServer, insight: FixtureInsight) -> None:
    async with await logged_in(server, "ann") as http:
        status, html = await get(http, server, "/insights?label=Damaged")
    damaged = Period(CURRENT.since, CURRENT.until, None, None, "damaged")
    assert status == 200 and insight.asked == [damaged, damaged.previous()]
    assert "(28 days), all channels, label damaged" in html
    assert 'name="label" value="damaged"' in html
    assert "/insights?since=2026-11-12&amp;until=2026-11-18&amp;label=damaged" in html  # presets


async def test_the_human_figures_by_team(server: TestServer) -> None:
    async with await logged_in(server, "ann") as http:
        status, html = await get(http, server, "/insights")
        rows = {
            team: re.findall(r'data-metric="[^"]+"[^>]*>([^<]+)<|no target', row)
            for team, row in re.findall(r'<tr data-team="(\w+)">(.*?)</tr>', html)
        }
        listed, behind = await get(
            http, server, "/insights/conversations?metric=team.billing.within_target"
        )
    assert status == 200
    # handoffs (count, share), within target, first response p50 / p90, the team's hours
    # p50, resolution p50, CSAT
    assert rows == {
        "billing": ["180 (60.0%)", "88.2%", "3 min", "40 min", "2 min", "2 h", "75.0%"],
        "escalation": ["120 (40.0%)", "", "6 min", "1 h 35 min", "-", "5 h", "70.0%"],
    }
    assert re.search(r'id="within-target">.*>88.2%</a>', html)
    assert "150 of 170 handoffs judged" in html
    assert "handoffs of teams without a target are not counted" in html
    assert listed == 200 and "Team billing: answered within target" in behind


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("since=01/11/2026", "since must be a day like 2026-11-01, not &#39;01/11/2026&#39;"),
        ("since=2026-11-10&until=2026-11-01", "until (2026-11-01) is before since (2026-11-10)"),
        ("channel=Web+Chat", "channel must be a channel&#39;s name such as"),
        ("team=Team+A", "team must be a team&#39;s name such as &#39;billing&#39;"),
        ("team=legal", "There is no team &#39;legal&#39;: the teams are billing, escalation"),
    ],
)
async def test_filters_that_cannot_be_used_are_explained(
    server: TestServer, query: str, message: str
) -> None:
    async with await logged_in(server, "ann") as http:
        status, html = await get(http, server, f"/insights?{query}")
    assert status == 400 and message in html


async def test_a_period_without_conversations_shows_dashes_never_zeros(
    server: TestServer,
) -> None:
    async with await logged_in(server, "ann") as http:
        status, html = await get(http, server, "/insights?since=2026-01-05&until=2026-01-11")
    assert status == 200
    for metric in ("automation", "first_response", "csat_bot", "first_response_business"):
        assert f'<span class="figure-none" data-metric="{metric}"' in html
    assert "0.0%" not in html
    assert re.search(r">0 (s|min)<", html) is None
    assert "no business hours configured" in html
    assert html.count("No conversations in this period.") == 5  # each weekly chart says so
    assert "No rating was asked for in this period." in html
    assert "Nothing went unanswered in this period." in html


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (0, "0 s"),
        (40.4, "40 s"),
        (59.6, "1 min"),
        (250, "4 min"),
        (3600, "1 h"),
        (4800, "1 h 20 min"),
        (86580, "1 d"),
        (2 * 86400 + 3 * 3600, "2 d 3 h"),
    ],
)
def test_durations_read_in_words(seconds: float, shown: str) -> None:
    assert fmt.duration(timedelta(seconds=seconds)) == shown


@pytest.mark.parametrize(
    ("value", "shown"),
    [(None, "-"), (0.0, "0.0%"), (412 / 1020, "40.4%"), (0.0625, "6.3%"), (1.0, "100.0%")],
)
def test_percentages_have_one_decimal_and_round_ties_up_like_the_script(
    value: float | None, shown: str
) -> None:
    assert fmt.percent(value) == shown


@pytest.mark.parametrize(
    ("since", "until", "words"),
    [
        (date(2026, 11, 18), date(2026, 11, 18), "18 Nov 2026"),
        (date(2026, 11, 1), date(2026, 11, 28), "1 Nov to 28 Nov 2026"),
        (date(2025, 12, 15), date(2026, 1, 14), "15 Dec 2025 to 14 Jan 2026"),
    ],
)
def test_a_period_in_words(since: date, until: date, words: str) -> None:
    assert fmt.days(since, until) == words


def test_a_change_against_nothing_is_not_a_change() -> None:
    assert fmt.count_change(12, 0).direction == "none"
    assert fmt.count_change(0, 0).text == "no change"
    assert fmt.rate_change(Share(1, 4), Share(0, 0), 1).text == "no comparison"
    assert fmt.time_change(None, timedelta(minutes=3)).text == "no comparison"


# --- the conversations behind a number -----------------------------------------------------


async def test_a_topic_lists_its_conversations(server: TestServer) -> None:
    listing = "/insights/conversations?" + Filters(date(2026, 10, 22), date(2026, 11, 18)).query(
        topic="gift,card,balance"
    )
    async with await logged_in(server, "ann") as http:
        _, page = await get(http, server, "/insights")
        status, html = await get(http, server, listing)
    assert f'href="{escape(listing)}"' in page
    assert status == 200 and "Unanswered topic: gift, card, balance" in html
    assert re.findall(r'<a href="/inbox/c/(\d+)">', html) == ["14", "438", "703"]


async def test_conversations_counted_but_not_among_the_rows_are_still_linked(
    server: TestServer, insight: FixtureInsight
) -> None:
    del insight.rows[800:]  # the rows stop at 800; CSAT human counts 701..840
    async with await logged_in(server, "ann") as http:
        status, html = await get(http, server, "/insights/conversations?metric=csat_human")
    assert status == 200 and 'id="list-count">140<' in html
    listed = re.findall(r'<th scope="row"><a href="/inbox/c/(\d+)">', html)
    assert listed == [str(i) for i in range(701, 801)]
    elsewhere = html[html.index('id="elsewhere"') :]
    assert re.findall(r'<a href="/inbox/c/(\d+)">', elsewhere) == [str(i) for i in range(801, 841)]


async def test_topics_that_cannot_be_grouped_leave_the_numbers_standing(
    server: TestServer, insight: FixtureInsight
) -> None:
    insight.topics_fail = ModelError("the stored embeddings are of another model: re-embed")
    async with await logged_in(server, "ann") as http:
        status, html = await get(http, server, "/insights")
    assert status == 200 and 'data-metric="automation"' in html
    assert "The topics could not be grouped: the stored embeddings are of another model" in html


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("metric=automation.nonsense", "There is no figure &#39;automation.nonsense&#39;"),
        ("topic=no,such,topic", "No unanswered topic of this period has the keywords"),
        ("", "Say which number to list"),
    ],
)
async def test_an_unknown_number_is_explained(server: TestServer, query: str, message: str) -> None:
    async with await logged_in(server, "ann") as http:
        status, html = await get(http, server, f"/insights/conversations?{query}")
    assert status == 404 and message in html


# --- the export ------------------------------------------------------------------------------

HEADER = (
    "id,customer_id,channel,started,resolver,first_handoff_reason,resolved_at,"
    "first_human_response_seconds,csat,intents,visibility\r\n"
)


async def test_the_export_holds_every_conversation_of_the_period(server: TestServer) -> None:
    async with (
        await logged_in(server, "ann") as http,
        http.get(server.make_url("/insights/export.csv")) as response,
    ):
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
        assert response.headers["Content-Disposition"] == (
            'attachment; filename="carebot-conversations-2026-10-22-to-2026-11-18.csv"'
        )
        body = await response.text()
    lines = body.split("\r\n")
    assert lines[0] + "\r\n" == HEADER and lines[-1] == "" and len(lines) == 1 + 1020 + 1
    assert lines[1] == (
        "1,5001,webchat,2026-10-21T22:37:00+00:00,bot,,2026-10-22T00:37:00+00:00,,5,order_status,"
        "private"
    )


async def test_the_export_of_a_number_holds_its_conversations_exactly(server: TestServer) -> None:
    week = urlencode({"metric": "week.2026-10-19.conversations"})
    topic = urlencode({"topic": "gift,card,balance"})
    async with await logged_in(server, "ann") as http:
        async with http.get(server.make_url(f"/insights/export.csv?{week}")) as response:
            lines = (await response.text()).split("\r\n")
        async with http.get(server.make_url(f"/insights/export.csv?{topic}")) as response:
            body = await response.text()
    assert len(lines) == 1 + 120 + 1  # the first week's conversations
    assert body == HEADER + (
        "14,5014,webchat,2026-10-22T06:38:00+00:00,bot,,2026-10-22T08:38:00+00:00,,5,"
        "order_status,private\r\n"
        "438,5438,telegram,2026-11-02T04:06:00+00:00,,,,,,returns;refund,private\r\n"
        "703,5703,webchat,2026-11-08T23:31:00+00:00,human,emotional,"
        "2026-11-09T01:31:00+00:00,253.5,5,,private\r\n"
    )


# --- in the browser --------------------------------------------------------------------------


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    async with launched() as instance:
        yield instance


async def lead_page(browser: Any, server: TestServer, **options: Any) -> Any:
    """Ann's page on /insights, logged in through the redirect to the login form."""
    context = await browser.new_context(viewport={"width": 1280, "height": 900}, **options)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.errors = errors
    await page.goto(str(server.make_url("/insights")))
    await page.locator("#login-name").fill("ann")
    await page.locator("#login-password").fill(AGENT_PASSWORD)
    await page.locator("#login-button").click()
    await page.locator("#insights").wait_for()
    return page


async def shot(page: Any, name: str, *, full_page: bool = True) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=full_page, animations="disabled")
    print(f"screenshot: {path}")
    return path


# Each card's figures as shown: (label, number, what it is out of, change).
CARDS = {
    "conversations": [("", "1,020", "conversations started in the period", "+8.5%")],
    "involvement": [("", "68.6%", "700 of 1,020 conversations", "+3.7 pts")],
    "automation": [("", "40.4%", "412 of 1,020 conversations", "+3.2 pts")],
    "durable": [("", "95.0%", "380 of 400 bot resolutions 7+ days old", "+0.9 pts")],
    "handoffs": [("", "29.4%", "300 of 1,020 conversations", "-3.6 pts")],
    "first-response": [
        ("Median", "4 min", "280 sampled", "-2 min"),
        ("90th percentile", "1 h 20 min", "280 sampled", "-15 min"),
    ],
    "resolution-time": [
        ("Bot", "1 d", "412 sampled", "no change"),
        ("Human", "3 h 12 min", "260 sampled", "no change"),
    ],
    "csat": [
        ("Bot-resolved", "84.6%", "88 of 104 ratings", "+4.6 pts"),
        ("Human-resolved", "80.0%", "140 of 175 ratings", "+5.0 pts"),
    ],
    "cost-saved": [
        ("", "pending", "known once the period's bot resolutions are 7 days old", "no comparison")
    ],
    "repeat-contact": [("", "8.2%", "31 of 380 customers", "-1.6 pts")],
    "not-helpful": [("", "8.1%", "25 of 310 answers", "no change")],
    "emotional": [("", "7.9%", "190 of 2,410 customer messages", "no change")],
}
DETAILS = {
    "automation": [
        ("Confirmed", "14.7%", "150 of 1,020 conversations"),
        ("Assumed", "25.7%", "262 of 1,020 conversations"),
        ("Resolution rate", "58.9%", "412 of 700 involved conversations"),
    ],
    "first-response": [
        ("Business hours, median", "3 min", "280 sampled"),
        ("Business hours, 90th", "52 min", "280 sampled"),
    ],
    "csat": [
        ("Bot response rate", "25.2%", "104 of 412 requests"),
        ("Human response rate", "58.3%", "175 of 300 requests"),
    ],
}
SHOWN = """() => {
  const text = (root, sel) => (root.querySelector(sel) || { textContent: "" }).textContent.trim();
  const cards = {}, details = {};
  for (const card of document.querySelectorAll(".card")) {
    const id = card.id.replace("card-", "");
    cards[id] = Array.from(card.querySelectorAll(".card-figure")).map((f) => [
      text(f, ".figure-label"), text(f, ".figure-value"), text(f, ".figure-of"),
      text(f, ".change").replace(/^[▲▼=·]\\s*/, "").replace(/ against the previous.*$/, ""),
    ]);
    details[id] = Array.from(card.querySelectorAll(".detail")).map((d) => [
      text(d, "dt"), text(d, ".detail-value"), text(d, ".figure-of"),
    ]);
  }
  return { cards, details };
}"""
CHARTS = """() => Array.from(document.querySelectorAll("canvas[data-chart]")).map((canvas) => {
  const chart = Chart.getChart(canvas);
  const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let painted = 0;
  for (let i = 3; i < pixels.length; i += 4) if (pixels[i] > 0) painted++;
  const figure = canvas.closest(".chart");
  return {
    id: figure.id,
    drawn: Boolean(chart) && !canvas.parentElement.hidden,
    painted,
    label: canvas.getAttribute("aria-label"),
    datasets: chart ? chart.data.datasets.map((d) => [d.label, d.data]) : [],
    table: Array.from(figure.querySelectorAll("tbody tr")).map((row) =>
      Array.from(row.querySelectorAll("th, td")).map((cell) => cell.textContent.trim())),
  };
})"""


WEEKS = ["19 Oct", "26 Oct", "2 Nov", "9 Nov", "16 Nov"]  # Mondays in Berlin


def table(*columns: list[str]) -> list[list[str]]:
    """A chart's table: the weeks, then each series' column."""
    return [list(row) for row in zip(WEEKS, *columns, strict=True)]


# Each chart's datasets (what Chart.js drew) and table (what the server rendered), as the
# fixture (tests/insight_reports.py) has them.
EXPECTED_CHARTS: dict[str, tuple[list[tuple[str, list[float]]], list[list[str]]]] = {
    "chart-conversations": (
        [("Conversations", [120, 240, 250, 230, 180])],
        table(["120", "240", "250", "230", "180"]),
    ),
    "chart-automation": (
        [
            (
                "Automation",
                [44 / 120 * 100, 96 / 240 * 100, 101 / 250 * 100, 95 / 230 * 100, 76 / 180 * 100],
            )
        ],
        table(["36.7%", "40.0%", "40.4%", "41.3%", "42.2%"]),
    ),
    "chart-handoffs": (
        [("emotional", [20, 40, 42, 38, 30]), ("asked for human", [10, 20, 20, 19, 15])],
        table(["20", "40", "42", "38", "30"], ["10", "20", "20", "19", "15"]),
    ),
    "chart-first-response": (
        [("Median", [3, 4, 5, 6, 7]), ("90th percentile", [50, 60, 70, 80, 90])],
        table(
            ["3 min", "4 min", "5 min", "6 min", "7 min"],
            ["50 min", "1 h", "1 h 10 min", "1 h 20 min", "1 h 30 min"],
        ),
    ),
    "chart-emotional": (
        [
            (
                "Emotional",
                [10 / 400 * 100, 15 / 420 * 100, 20 / 440 * 100, 25 / 460 * 100, 30 / 480 * 100],
            )
        ],
        table(["2.5%", "3.6%", "4.5%", "5.4%", "6.3%"]),
    ),
    "chart-csat": (
        [("CSAT", [88 / 104 * 100, 80.0]), ("Response rate", [104 / 412 * 100, 175 / 300 * 100])],
        [["Bot-resolved", "84.6%", "25.2%"], ["Human-resolved", "80.0%", "58.3%"]],
    ),
}


@needs_chromium
async def test_a_lead_sees_the_fixture_numbers_in_cards_charts_and_tables(
    server: TestServer, browser: Any
) -> None:
    page = await lead_page(browser, server)
    shown = await page.evaluate(SHOWN)
    assert shown["cards"] == {key: [list(f) for f in figures] for key, figures in CARDS.items()}
    for card, details in DETAILS.items():
        assert shown["details"][card] == [list(d) for d in details]

    charts = {chart["id"]: chart for chart in await page.evaluate(CHARTS)}
    assert sorted(charts) == sorted(EXPECTED_CHARTS)
    for chart_id, (datasets, rows) in EXPECTED_CHARTS.items():
        chart = charts[chart_id]
        assert chart["drawn"] and chart["painted"] > 1000, chart_id
        assert [name for name, _ in chart["datasets"]] == [name for name, _ in datasets]
        for (_, got), (_, want) in zip(chart["datasets"], datasets, strict=True):
            assert got == pytest.approx(want), chart_id
        assert chart["table"] == rows, chart_id
        assert all(cell in chart["label"] for row in rows for cell in row[1:]), chart_id

    intents = await page.locator("#intent-table tbody tr").all_inner_texts()
    assert [row.split("\t") for row in intents] == [
        ["Order status", "380", "65.8%", "15.8%", "5.7%"],
        ["Returns", "210", "42.9%", "33.3%", "7.1%"],
        ["refund", "150", "26.7%", "50.0%", "20.0%"],
        ["opening_hours", "95", "84.2%", "5.3%", "1.7%"],
    ]
    topics = page.locator(".topic")
    assert await topics.count() == 2
    assert "No intent covers this" in await topics.nth(0).inner_text()
    assert "Add these as examples of “Order status”" in await topics.nth(1).inner_text()
    assert "34 messages from 29 customers" in await topics.nth(0).inner_text()
    assert page.errors == []
    await shot(page, "1-insights")

    # A chart's table is there for screen readers (clipped to a pixel), and shows on request.
    table = page.locator("#chart-automation-table")
    assert (await table.bounding_box())["width"] <= 1
    toggle = page.locator("#chart-automation .table-toggle")
    await toggle.click()
    assert (await table.bounding_box())["width"] > 300
    assert await toggle.get_attribute("aria-expanded") == "true"
    if os.environ.get("CAREBOT_DOCS_SCREENSHOT"):
        target = ROOT / "docs" / "insights.png"
        target.parent.mkdir(exist_ok=True)
        # A full-page capture repeats a sticky header where the viewport was: pin it on top.
        await page.add_style_tag(content=".app-header { position: static !important; }")
        await page.evaluate("window.scrollTo(0, 0)")
        await page.screenshot(path=str(target), full_page=True, animations="disabled")
        print(f"README screenshot: {target}")


@needs_chromium
async def test_a_number_links_to_its_conversations_in_the_inbox(
    server: TestServer, browser: Any
) -> None:
    page = await lead_page(browser, server)
    await page.locator('#card-csat .card-figure:nth-child(2) a[data-metric="csat_human"]').click()
    await page.locator("#conversation-list").wait_for()
    assert await page.locator("#list-title").inner_text() == "Human-resolved, rated 4 or 5"
    assert await page.locator("#list-count").inner_text() == "140"
    links = await page.locator("#conversation-list tbody th a").evaluate_all(
        "links => links.map(a => a.getAttribute('href'))"
    )
    assert links == [f"/inbox/c/{i}" for i in range(701, 841)]
    first = await page.locator("#conversation-list tbody tr").first.inner_text()
    assert first.strip().split("\t") == [
        "#701",
        "webchat",
        "8 Nov 2026 23:17",
        "human",
        "emotional",
        "9 Nov 2026 01:17",
        "4 min",
        "5",
        "-",
    ]
    await shot(page, "2-conversations-behind-csat", full_page=False)

    # A bar of a chart leads to the same list as its cell in the table (week of 26 Oct).
    await page.go_back()
    point = await page.locator("#chart-conversations canvas").evaluate(
        "canvas => { const bar = Chart.getChart(canvas).getDatasetMeta(0).data[1];"
        " return {x: bar.x, y: bar.y + 4}; }"
    )
    await page.locator("#chart-conversations canvas").click(position=point)
    await page.locator("#conversation-list").wait_for()
    assert await page.locator("#list-title").inner_text() == "Week of 26 Oct 2026: conversations"
    assert await page.locator("#list-count").inner_text() == "240"


@needs_chromium
async def test_without_scripts_the_tables_stand_in_for_the_charts(
    server: TestServer, browser: Any
) -> None:
    page = await lead_page(browser, server, java_script_enabled=False)
    assert await page.locator(".chart-canvas").first.is_hidden()
    assert await page.locator("#chart-automation table").is_visible()
    cells = await page.locator("#chart-automation tbody td").all_inner_texts()
    assert cells == ["36.7%", "40.0%", "40.4%", "41.3%", "42.2%"]
    await shot(page, "3-insights-without-scripts")


@needs_chromium
async def test_an_agent_without_the_lead_role_sees_why(server: TestServer, browser: Any) -> None:
    context = await browser.new_context(viewport={"width": 1280, "height": 720})
    page = await context.new_page()
    await page.goto(str(server.make_url("/insights")))
    await page.locator("#login-name").fill("bob")
    await page.locator("#login-password").fill(AGENT_PASSWORD)
    response_status: list[int] = []
    page.on(
        "response",
        lambda r: response_status.append(r.status) if r.url.endswith("/insights") else None,
    )
    await page.locator("#login-button").click()
    await page.locator("#problem-title").wait_for()
    assert await page.locator("#problem-title").inner_text() == "Insights are for care leads"
    assert 403 in response_status
    await shot(page, "4-not-a-lead")
