"""``/insights`` in Debian's Chromium over the golden store (tests/insight_fixture.py), served by
the real service with its real :class:`~carebot.insight.metrics.Insight` and topics: a lead
logs in, the page draws every chart, each card shows what ``Insight.report`` computes for the
same period (formatted with :mod:`carebot.desk.insight_format`), the unanswered topics are
there, and the automation figure lists exactly the report's conversations.

The service and the browser are test_insight_agreement.py's and test_insights_web.py's
fixtures. The screenshot goes to tests/artifacts/insights/ (printed)."""

from __future__ import annotations

from datetime import date
from typing import Any

from aiohttp.test_utils import TestServer

from carebot.desk import insight_format as fmt
from carebot.insight.metrics import Insight
from carebot.insight.report import Report, Share, Spread
from carebot.store.database import Database
from tests.chromium import needs_chromium
from tests.test_insight_agreement import NOW, PASSWORD, PERIOD
from tests.test_insight_agreement import served as served  # the fixture
from tests.test_insights_web import CHARTS, shot
from tests.test_insights_web import browser as browser  # the fixture

QUERY = "since=2026-11-30&until=2026-12-14"  # PERIOD, in Berlin days
# Each card's figures, big ones then details, in the page's order: the figure's key and what a
# share is out of, or "p50"/"p90" for a duration's median or 90th percentile.
CARDS: dict[str, list[tuple[str, str]]] = {
    "involvement": [("involvement", "conversations")],
    "automation": [
        ("automation", "conversations"),
        ("confirmed", "conversations"),
        ("assumed", "conversations"),
        ("resolution_rate", "involved conversations"),
    ],
    "durable": [("durable", "bot resolutions 7+ days old")],
    "handoffs": [("handoffs", "conversations")],
    "first-response": [
        ("first_response", "p50"),
        ("first_response", "p90"),
        ("first_response_business", "p50"),
        ("first_response_business", "p90"),
    ],
    "resolution-time": [("resolution_time_bot", "p50"), ("resolution_time_human", "p50")],
    "csat": [
        ("csat_bot", "ratings"),
        ("csat_human", "ratings"),
        ("rating_response_bot", "requests"),
        ("rating_response_human", "requests"),
    ],
    "repeat-contact": [("repeat_contact", "customers")],
    "not-helpful": [("not_helpful", "answers")],
    "emotional": [("emotional", "customer messages")],
}
# Every figure of every card, big and detail alike: [its link's key, its number, what it is of].
FIGURES = """() => Object.fromEntries(Array.from(document.querySelectorAll(".card")).map((card) =>
  [card.id.replace("card-", ""),
   Array.from(card.querySelectorAll(".card-figure, .detail")).map((figure) => [
     figure.querySelector("[data-metric]").dataset.metric,
     figure.querySelector(".figure-value, .detail-value").textContent.trim(),
     figure.querySelector(".figure-of").textContent.trim(),
   ])]))"""


def expected_cards(report: Report) -> dict[str, list[list[str]]]:
    """What each card should show for ``report``, formatted as the page formats it."""
    cards: dict[str, list[list[str]]] = {
        "conversations": [
            [
                "conversations",
                fmt.count(report.conversations.count),
                "conversations started in the period",
            ]
        ]
    }
    for card, figures in CARDS.items():
        cards[card] = [expected_figure(report, key, unit) for key, unit in figures]
    saved = report.cost_saved
    of = (
        "known once the period's bot resolutions are 7 days old"
        if saved.pending
        else f"{fmt.count(saved.resolutions)} durable resolutions at "
        f"{saved.cost_per_contact:,.2f} {saved.currency} each"
    )
    cards["cost-saved"] = [["durable", fmt.money(saved), of]]
    return cards


def expected_figure(report: Report, key: str, unit: str) -> list[str]:
    figure = report.lookup(key)
    if unit in ("p50", "p90"):
        assert isinstance(figure, Spread) and figure.samples > 0, f"{key}: the fixture samples it"
        shown = fmt.duration(figure.p50 if unit == "p50" else figure.p90)
        return [key, shown, f"{fmt.count(figure.samples)} sampled"]
    assert isinstance(figure, Share), key
    return [key, fmt.percent(figure.value), fmt.share_of(figure, unit)]


async def lead_opens_insights(browser: Any, server: TestServer) -> tuple[Any, list[str]]:
    """Lee's page on /insights of PERIOD, logged in through the redirect to the login form;
    and the page's errors (uncaught exceptions and console errors) as they come."""
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(f"page error: {error}"))
    page.on(
        "console",
        lambda message: (
            errors.append(f"console: {message.text}") if message.type == "error" else None
        ),
    )
    await page.goto(str(server.make_url(f"/insights?{QUERY}")))
    await page.locator("#login-name").fill("lee")
    await page.locator("#login-password").fill(PASSWORD)
    await page.locator("#login-button").click()
    await page.locator("#insights").wait_for()
    assert page.url.endswith(f"/insights?{QUERY}"), page.url
    return page, errors


@needs_chromium
async def test_a_lead_sees_the_golden_store_as_insight_computes_it(
    served: tuple[TestServer, Database, Any], browser: Any
) -> None:
    server, db, settings = served
    report = await Insight(db=db, settings=settings, clock=lambda: NOW).report(PERIOD)
    assert report.automation.count > 0 and report.conversations.count > 0

    page, errors = await lead_opens_insights(browser, server)
    period = fmt.days(date(2026, 11, 30), date(2026, 12, 14))
    assert await page.locator("#period-words").inner_text() == f"{period} (15 days), all channels"
    assert await page.evaluate(FIGURES) == expected_cards(report)

    charts = await page.evaluate(CHARTS)
    assert len(charts) == 6  # conversations, automation, handoffs, first response, ...
    for chart in charts:
        assert chart["drawn"] and chart["painted"] > 1000, chart["id"]
        assert chart["datasets"] and chart["table"], chart["id"]

    topics = page.locator("#topics")
    assert await topics.locator("#topics-title").inner_text() == "Unanswered topics"
    shown = await topics.inner_text()
    assert "could not be grouped" not in shown
    # The store holds unanswered messages (a "no", a draft below the threshold, a handoff
    # for lack of an answer); the service encodes them with its (fake) encoder and groups them.
    grouped = await topics.locator(".topic").count()
    assert grouped > 0 and "Nothing went unanswered" not in shown
    for topic in await topics.locator(".topic").all():
        assert await topic.locator(".topic-keywords .tag").count() > 0
        assert (await topic.locator(".topic-verdict").inner_text()).strip()
        href = await topic.locator("a.topic-link").get_attribute("href")
        assert href.startswith(f"/insights/conversations?{QUERY}&topic="), href
    print(f"unanswered topics shown: {grouped}")
    await shot(page, "5-golden-store")
    assert errors == []

    await page.locator('#card-automation .card-figure a[data-metric="automation"]').click()
    await page.locator("#insight-conversations").wait_for()
    assert await page.locator("#list-count").inner_text() == fmt.count(report.automation.count)
    links = await page.locator('#insight-conversations a[href^="/inbox/c/"]').evaluate_all(
        "links => links.map(a => a.getAttribute('href'))"
    )
    assert sorted(links) == sorted(f"/inbox/c/{i}" for i in set(report.automation.ids))
    assert len(links) == len(report.automation.ids) == report.automation.count
    assert errors == []
