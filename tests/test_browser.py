"""End to end in a real browser: Debian's Chromium driven by Playwright, against the real
service on loopback (fake encoder, test intents). Screenshots go to tests/artifacts/."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import select

from carebot.server import Service
from carebot.store.tables import ContactPoint, Identity
from tests.chromium import launched, needs_chromium
from tests.conftest import Clock
from tests.service import AGENT_PASSWORD, running_service, service_settings

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
FAQ, ANSWER = "where is my order", "Track it at https://track.example."
UPSET = "where is my order, I will call my lawyer"
PHONE, EMAIL = "+49 30 123456", "Kim.Lee@Example.com"

pytestmark = needs_chromium


@pytest.fixture
def webchat() -> dict[str, Any]:
    """The [webchat] settings of the service (a test may override this fixture's values)."""
    return {}


@pytest.fixture
async def service(
    tmp_path: Path, clock: Clock, webchat: dict[str, Any]
) -> AsyncIterator[tuple[Service, TestServer]]:
    """The service on the test's clock (Wednesday 10:00 UTC: business hours)."""
    settings = service_settings(tmp_path, webchat=webchat)
    database = f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}"
    async with running_service(settings, database, clock) as s:
        yield s


@pytest.fixture
async def browser() -> AsyncIterator[object]:
    async with launched() as instance:
        yield instance


async def shot(page: object, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), animations="disabled")  # type: ignore[attr-defined]


async def open_chat(
    browser: object, server: TestServer, *, clock: datetime | None = None, **options: Any
) -> object:
    """A customer's page with the open chat. ``clock``: the page's time is faked from there on
    (Playwright's clock: it flows, and the test can move it); ``options`` go to the browser
    context (locale, timezone_id...)."""
    context = await browser.new_context(**options)  # type: ignore[attr-defined]
    page = await context.new_page()
    if clock is not None:
        await page.clock.install(time=clock)
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: dialogs.append(dialog.message))
    page.dialogs = dialogs
    sent: list[dict[str, object]] = []  # the frames the widget sent over its WebSocket
    page.on(
        "websocket",
        lambda ws: ws.on("framesent", lambda payload: sent.append(json.loads(payload))),
    )
    page.sent_frames = sent
    await page.goto(str(server.make_url("/")))
    await page.locator("#carebot-input").wait_for()
    return page


async def say(page: object, text: str) -> None:
    await page.locator("#carebot-input").fill(text)  # type: ignore[attr-defined]
    await page.locator("#carebot-input").press("Enter")  # type: ignore[attr-defined]


def bubbles(page: object, author: str) -> object:
    return page.locator(f'.carebot-msg[data-author="{author}"]')  # type: ignore[attr-defined]


async def agent_login(browser: object, server: TestServer) -> object:
    page = await (await browser.new_context()).new_page()  # type: ignore[attr-defined]
    await page.goto(str(server.make_url("/inbox")))
    await page.locator("#login-name").fill("ann")
    await page.locator("#login-password").fill(AGENT_PASSWORD)
    await page.locator("#login-button").click()
    await page.locator("#queue").wait_for()
    return page


async def test_the_whole_cycle_from_faq_to_agent_and_back(
    service: tuple[Service, TestServer], browser: object
) -> None:
    _, server = service
    customer = await open_chat(browser, server)
    await say(customer, FAQ)
    await bubbles(customer, "bot").filter(has_text=ANSWER).wait_for()
    await shot(customer, "1-customer-faq-answered")

    await say(customer, UPSET)
    notice = customer.locator(".carebot-notice")  # type: ignore[attr-defined]
    await notice.wait_for()
    assert "a person from our team" in await notice.inner_text()
    await shot(customer, "2-customer-handoff-notice")

    agent = await agent_login(browser, server)
    row = agent.locator(".queue-row")  # type: ignore[attr-defined]
    await row.first.wait_for()
    await shot(agent, "3-agent-queue")
    await row.first.click()
    await agent.locator("#handoff-reason").wait_for()
    assert "upset" in await agent.locator("#handoff-reason").inner_text()
    timeline = agent.locator("#timeline")
    assert FAQ in await timeline.inner_text() and UPSET in await timeline.inner_text()
    assert ANSWER in await agent.locator("#draft").inner_text()
    await shot(agent, "4-agent-conversation")

    # Live both ways: the customer's new message appears for the agent without a reload...
    await say(customer, "are you there?")
    await agent.locator('.msg[data-author="customer"]').filter(has_text="are you there?").wait_for()
    # ...and the agent's reply appears in the customer's chat.
    await agent.locator("#reply-text").fill("Hi, Ann here. Your parcel is on its way.")
    await agent.locator("#reply-button").click()
    await bubbles(customer, "agent").filter(has_text="Ann here").wait_for()
    await shot(customer, "5-customer-sees-agent-reply")

    await agent.locator("#resolve-button").click()
    await agent.locator("#queue").wait_for()
    await say(customer, FAQ)
    await bubbles(customer, "bot").filter(has_text=ANSWER).nth(1).wait_for()
    await shot(customer, "6-customer-bot-answers-again")


async def test_a_script_message_is_shown_as_text(
    service: tuple[Service, TestServer], browser: object
) -> None:
    _, server = service
    customer = await open_chat(browser, server)
    payload = "<script>alert('xss')</script><img src=x onerror=alert(1)>"
    await say(customer, payload)
    bubble = bubbles(customer, "customer").filter(has_text="<script>")
    await bubble.wait_for()
    assert (await bubble.locator(".carebot-text").inner_text()).strip() == payload
    await bubbles(customer, "bot").first.wait_for()
    assert customer.dialogs == []  # type: ignore[attr-defined]
    agent = await agent_login(browser, server)
    await agent.goto(str(server.make_url("/inbox/c/1")))
    assert payload in await agent.locator("#timeline").inner_text()
    await shot(customer, "7-script-as-text")


async def test_a_reload_resumes_and_a_second_visitor_sees_nothing_of_it(
    service: tuple[Service, TestServer], browser: object
) -> None:
    _, server = service
    first = await open_chat(browser, server)
    await say(first, FAQ)
    await bubbles(first, "bot").filter(has_text=ANSWER).wait_for()
    await first.reload()  # type: ignore[attr-defined]
    await bubbles(first, "customer").filter(has_text=FAQ).wait_for()

    second = await open_chat(browser, server)
    await second.locator("#carebot-input").wait_for()  # type: ignore[attr-defined]
    await say(second, "hello")
    await bubbles(second, "bot").first.wait_for()
    texts = await second.locator(".carebot-msg").all_inner_texts()  # type: ignore[attr-defined]
    assert not [t for t in texts if FAQ in t or ANSWER in t]
    await shot(second, "8-second-visitor")


async def test_an_oversized_message_from_the_page_api_gets_a_clear_error(
    service: tuple[Service, TestServer], browser: object
) -> None:
    _, server = service
    customer = await open_chat(browser, server)
    await customer.evaluate("window.carebot.send('x'.repeat(2500))")  # type: ignore[attr-defined]
    error = customer.locator(".carebot-error")  # type: ignore[attr-defined]
    await error.wait_for()
    assert await error.inner_text() == (
        "Your message is 2,500 characters; the limit is 2,000. Please shorten it."
    )
    # Into the empty box, to shorten; nothing was sent.
    assert await customer.locator("#carebot-input").input_value() == "x" * 2500  # type: ignore[attr-defined]
    assert [f["type"] for f in customer.sent_frames] == ["hello"]  # type: ignore[attr-defined]


async def contact_points(service: Service) -> list[tuple[str, str, str]]:
    """(identity's channel, kind, value) of every contact point stored."""
    async with service.runtime.db.session() as session:
        found = await session.execute(
            select(Identity.channel, ContactPoint.kind, ContactPoint.value).join(
                ContactPoint, ContactPoint.identity_id == Identity.id
            )
        )
        return sorted((channel, kind, value) for channel, kind, value in found.all())


async def test_a_visitor_leaves_contact_details_that_link_them(
    service: tuple[Service, TestServer], browser: object
) -> None:
    running, server = service
    customer = await open_chat(browser, server)
    link = customer.locator("#carebot-contact-toggle")  # type: ignore[attr-defined]
    assert await link.inner_text() == "Leave your contact details"
    await link.click()
    form = customer.locator("#carebot-contact")  # type: ignore[attr-defined]
    await form.wait_for()
    assert await link.get_attribute("aria-expanded") == "true"
    phone = customer.get_by_label("Phone", exact=True)  # type: ignore[attr-defined]
    email = customer.get_by_label("E-mail", exact=True)  # type: ignore[attr-defined]
    assert (await phone.get_attribute("type"), await email.get_attribute("type")) == (
        "tel",
        "email",
    )
    assert await phone.get_attribute("autocomplete") == "tel"
    await phone.fill(PHONE)
    await email.fill(EMAIL)
    await shot(customer, "9-contact-form")
    await customer.get_by_role("button", name="Save").click()  # type: ignore[attr-defined]

    note = customer.locator("#carebot-contact-note")  # type: ignore[attr-defined]
    await note.filter(has_text="Thanks, we saved your details.").wait_for()
    assert await form.is_hidden()
    assert await link.inner_text() == "Update your contact details"
    assert [f for f in customer.sent_frames if f["type"] == "contact"] == [  # type: ignore[attr-defined]
        {"type": "contact", "phone": PHONE, "email": EMAIL}
    ]
    await shot(customer, "10-contact-saved")

    # Stored with the visitor, normalised, ready to link their other channels.
    assert await contact_points(running) == [
        ("webchat", "email", "kim.lee@example.com"),
        ("webchat", "phone", "+4930123456"),
    ]
    async with running.runtime.db.session() as session:
        [profile] = (await session.scalars(select(Identity.profile))).all()
    assert profile == {
        "phone": PHONE,
        "email": EMAIL,
        # where the visitor was, and their browser, for the agent (the page before it)
        "page_url": str(server.make_url("/")),
        "page_title": "Northwind Goods \u00b7 Well-made things for everyday living",
        "browser": profile["browser"],
    }
    assert re.fullmatch(r"Headless Chrome \d+ on Linux", profile["browser"]), profile

    # The widget remembers that the details were given.
    await customer.reload()  # type: ignore[attr-defined]
    await link.filter(has_text="Update your contact details").wait_for()


async def test_the_contact_form_explains_what_is_missing_or_refused(
    service: tuple[Service, TestServer], browser: object
) -> None:
    running, server = service
    customer = await open_chat(browser, server)
    await customer.locator("#carebot-contact-toggle").click()  # type: ignore[attr-defined]
    form = customer.locator("#carebot-contact")  # type: ignore[attr-defined]
    await form.wait_for()
    error = customer.locator("#carebot-contact-error")  # type: ignore[attr-defined]

    # Nothing filled in: the widget says so and sends nothing.
    await customer.get_by_role("button", name="Save").click()  # type: ignore[attr-defined]
    await error.filter(has_text="at least one field").wait_for()
    await shot(customer, "11-contact-empty")
    # Escape closes the form (not the chat) and brings the focus back to the link.
    await customer.keyboard.press("Escape")  # type: ignore[attr-defined]
    await form.wait_for(state="hidden")
    assert await customer.locator("#carebot-panel").is_visible()  # type: ignore[attr-defined]
    assert (
        await customer.evaluate(  # type: ignore[attr-defined]
            "document.getElementById('carebot-widget').shadowRoot.activeElement.id"
        )
        == "carebot-contact-toggle"
    )
    await say(customer, FAQ)  # a round trip: anything sent before it has arrived by now
    await bubbles(customer, "bot").filter(has_text=ANSWER).wait_for()
    assert [f["type"] for f in customer.sent_frames] == ["hello", "message"]  # type: ignore[attr-defined]

    # The server refuses a name over 200 characters: its message shows, the form keeps it all.
    await customer.locator("#carebot-contact-toggle").press("Enter")  # type: ignore[attr-defined]
    await form.wait_for()
    name = customer.get_by_label("Name", exact=True)  # type: ignore[attr-defined]
    await name.evaluate("(input) => { input.value = 'x'.repeat(201); }")
    await customer.get_by_label("Phone", exact=True).fill(PHONE)  # type: ignore[attr-defined]
    await customer.get_by_label("Phone", exact=True).press("Enter")  # type: ignore[attr-defined]
    await error.filter(has_text="That is too long: 200 characters at most.").wait_for()
    assert await customer.get_by_label("Phone", exact=True).input_value() == PHONE  # type: ignore[attr-defined]
    assert await name.input_value() == "x" * 201
    assert await customer.locator("#carebot-contact-note").inner_text() == ""  # type: ignore[attr-defined]
    assert await contact_points(running) == []


GERMAN = {
    "online": "Online \u2013 wir antworten meist in wenigen Minuten",
    "placeholder": "Ihre Nachricht\u2026",
    "contact_leave": "Kontaktdaten hinterlassen",
    "open_chat": "Chat \u00f6ffnen",
    "close_chat": "Chat schlie\u00dfen",
}


@pytest.mark.parametrize("webchat", [{"texts": GERMAN}])
async def test_the_widget_speaks_the_configured_texts(
    service: tuple[Service, TestServer], browser: object
) -> None:
    _, server = service
    customer = await open_chat(browser, server)
    await customer.locator("#carebot-subtitle").filter(has_text=GERMAN["online"]).wait_for()  # type: ignore[attr-defined]
    box = customer.locator("#carebot-input")  # type: ignore[attr-defined]
    assert await box.get_attribute("placeholder") == GERMAN["placeholder"]
    toggle = customer.locator("#carebot-contact-toggle")  # type: ignore[attr-defined]
    assert await toggle.inner_text() == GERMAN["contact_leave"]
    await customer.get_by_role("button", name=GERMAN["close_chat"]).click()  # type: ignore[attr-defined]
    await customer.get_by_role("button", name=GERMAN["open_chat"]).wait_for()  # type: ignore[attr-defined]


# A site that names the widget's language on its script tag (data-language="fr").
SITE_SAYS_FRENCH = """
new MutationObserver((changes, observer) => {
  for (const change of changes) for (const node of change.addedNodes) {
    if (node.tagName === "SCRIPT" && (node.src || "").endsWith("/chat/widget.js")) {
      node.setAttribute("data-language", "fr");
      observer.disconnect();
    }
  }
}).observe(document, {childList: true, subtree: true});
"""
LANGUAGES = {
    "de": {"placeholder": "Ihre Nachricht eingeben...", "online": "Online \u2013 wir sind da"},
    "fr": {
        "placeholder": "Tapez votre message...",
        "online": "En ligne \u2013 nous sommes l\u00e0",
    },
}
# The demo page's welcome line per language (its data-welcome-<code>, else data-welcome).
DEMO_WELCOME = {
    "en": "Ask me about orders, delivery, returns or payments.",
    "de": "Fragen Sie mich zu Bestellungen, Lieferung, R\u00fccksendungen oder Zahlung.",
    "fr": "Posez-moi vos questions sur les commandes, la livraison, les retours ou le paiement.",
}


@pytest.mark.parametrize("webchat", [{"texts": LANGUAGES}])
@pytest.mark.parametrize(
    ("locale", "site_says_french", "expected"),
    [
        ("de-AT", False, "de"),  # the browser's language
        ("de-AT", True, "fr"),  # the site's data-language wins
        ("it-IT", False, "en"),  # no texts in Italian: [languages] default's
    ],
)
async def test_the_widget_speaks_the_site_or_browser_language(
    service: tuple[Service, TestServer],
    browser: object,
    locale: str,
    site_says_french: bool,
    expected: str,
) -> None:
    _, server = service
    context = await browser.new_context(locale=locale)  # type: ignore[attr-defined]
    if site_says_french:
        await context.add_init_script(SITE_SAYS_FRENCH)
    customer = await context.new_page()
    hellos: list[dict[str, Any]] = []
    customer.on(
        "websocket",
        lambda ws: ws.on("framesent", lambda payload: hellos.append(json.loads(payload))),
    )
    await customer.goto(str(server.make_url("/")))
    texts = LANGUAGES.get(expected, {})
    online = texts.get("online", "Online \u2013 we usually reply within minutes")
    await customer.locator("#carebot-subtitle").filter(has_text=online).wait_for()
    box = customer.locator("#carebot-input")
    assert await box.get_attribute("placeholder") == texts.get(
        "placeholder", "Type your message..."
    )
    welcome = customer.locator('#carebot-messages [data-local="true"]')
    assert (await welcome.inner_text()).strip() == DEMO_WELCOME[expected]
    hello = next(frame for frame in hellos if frame["type"] == "hello")
    assert hello["language"] == expected
    # the bot's hint: the site's language, then the browser's
    wanted = ["fr", locale] if site_says_french else [locale]
    assert hello["languages"][: len(wanted)] == wanted


EVENING = datetime(2026, 11, 18, 20, 0, tzinfo=UTC)  # Wednesday, after hours (09:00-18:00 UTC)


async def test_the_header_says_whether_the_team_is_online(
    service: tuple[Service, TestServer], browser: object, clock: Clock
) -> None:
    _, server = service
    customer = await open_chat(browser, server, clock=clock.now)
    status = customer.locator("#carebot-subtitle")  # type: ignore[attr-defined]
    await status.filter(has_text="Online \u2013 we usually reply within minutes").wait_for()
    assert await status.get_attribute("data-online") == "true"
    await shot(customer, "12-header-online")

    # The panel stays open past closing time: asked again every few minutes.
    clock.now = EVENING
    await customer.clock.run_for("02:00")  # type: ignore[attr-defined]
    await status.filter(has_text="Offline \u2013 back tomorrow at 09:00 (UTC)").wait_for()
    assert await status.get_attribute("data-online") == "false"
    await shot(customer, "13-header-offline")

    # Opening the panel asks at once.
    await customer.locator("#carebot-close").click()  # type: ignore[attr-defined]
    clock.now = EVENING + timedelta(hours=14)  # Thursday 10:00
    await customer.locator("#carebot-launcher").click()  # type: ignore[attr-defined]
    await status.filter(has_text="Online").wait_for()


async def test_message_times_show_in_the_customers_time_zone(
    service: tuple[Service, TestServer], browser: object, clock: Clock
) -> None:
    _, server = service
    # Tokyo is UTC+9: the service's 10:00 UTC is 19:00 there, on the same day.
    customer = await open_chat(
        browser,
        server,
        clock=clock.now + timedelta(hours=2),
        locale="en-GB",
        timezone_id="Asia/Tokyo",
    )
    await say(customer, FAQ)
    answer = bubbles(customer, "bot").filter(has_text=ANSWER)
    await answer.wait_for()
    for author in ("customer", "bot"):
        time = bubbles(customer, author).last.locator("time")
        assert await time.inner_text() == "19:00"
        assert await time.get_attribute("datetime") == "2026-11-18T10:00:00.000Z"
    await shot(customer, "14-message-times")

    # Two days later, the history shows the date as well.
    await customer.clock.set_system_time(clock.now + timedelta(days=2))  # type: ignore[attr-defined]
    await customer.reload()  # type: ignore[attr-defined]
    await answer.wait_for()
    times = customer.locator(".carebot-msg time")  # type: ignore[attr-defined]
    assert await times.all_inner_texts() == ["18 Nov, 19:00", "18 Nov, 19:00"]


async def test_a_message_over_the_limit_stays_in_the_box_with_a_clear_notice(
    service: tuple[Service, TestServer], browser: object
) -> None:
    _, server = service
    customer = await open_chat(browser, server, locale="en-GB")
    box = customer.locator("#carebot-input")  # type: ignore[attr-defined]
    counter = customer.locator("#carebot-count")  # type: ignore[attr-defined]
    notice = customer.locator("#carebot-alert")  # type: ignore[attr-defined]
    await box.fill("y" * 1700)  # near the limit: the counter shows
    assert await counter.inner_text() == "1,700 / 2,000"
    assert await counter.get_attribute("data-over") == "false"

    await box.fill("y" * 2340)  # pasted in whole: nothing cut off
    assert await box.input_value() == "y" * 2340
    assert await counter.inner_text() == "2,340 / 2,000"
    assert await counter.get_attribute("data-over") == "true"
    await box.press("Enter")
    await notice.wait_for()
    assert await notice.inner_text() == (
        "Your message is 2,340 characters; the limit is 2,000. Please shorten it."
    )
    assert await box.input_value() == "y" * 2340  # still there, to edit
    await shot(customer, "15-over-the-limit")

    await box.press("Backspace")  # the notice follows the text...
    await notice.filter(has_text="Your message is 2,339 characters").wait_for()
    await box.fill("y" * 2000)  # ...and goes once it fits
    await notice.wait_for(state="hidden")
    assert await box.get_attribute("aria-invalid") is None
    await box.fill(FAQ)
    await box.press("Enter")
    await bubbles(customer, "bot").filter(has_text=ANSWER).wait_for()
    assert [f["type"] for f in customer.sent_frames] == ["hello", "message"]  # type: ignore[attr-defined]


@pytest.mark.parametrize("webchat", [{"messages_per_minute": 2}])
async def test_messages_sent_too_fast_get_one_notice_and_a_retry(
    service: tuple[Service, TestServer], browser: object, clock: Clock
) -> None:
    _, server = service
    customer = await open_chat(browser, server)
    for n in range(5):
        await say(customer, f"{FAQ} {n}")
    refused = customer.locator('.carebot-msg[data-failed="true"]')  # type: ignore[attr-defined]
    notice = customer.locator(".carebot-error")  # type: ignore[attr-defined]
    await notice.filter(has_text="faster than we can take them").wait_for()
    await customer.locator('.carebot-alert[data-repeat="3"]').wait_for()  # type: ignore[attr-defined]
    assert await notice.count() == 1  # one notice, updated by each refusal
    assert await refused.count() == 3
    assert await refused.locator(".carebot-not-sent").all_inner_texts() == ["Not sent"] * 3
    # Nothing is pasted back into the box: what the customer types next is theirs alone.
    box = customer.locator("#carebot-input")  # type: ignore[attr-defined]
    await box.fill("and one more thing")
    assert await box.input_value() == "and one more thing"
    await shot(customer, "16-rate-limited")

    # Retried while still too fast: still one notice, still not sent.
    await refused.first.get_by_role("button", name="Retry").click()
    await customer.locator('.carebot-alert[data-repeat="4"]').wait_for()  # type: ignore[attr-defined]
    assert (await notice.count(), await refused.count()) == (1, 3)

    # A minute later it goes through: taken, answered, and the notice is gone.
    clock.advance(61)
    await refused.first.get_by_role("button", name="Retry").click()
    await notice.wait_for(state="hidden")
    assert await refused.count() == 2
    await bubbles(customer, "bot").filter(has_text=ANSWER).nth(2).wait_for()
    assert await box.input_value() == "and one more thing"


async def test_an_agent_typing_in_the_inbox_shows_in_the_widget(
    service: tuple[Service, TestServer], browser: object, clock: Clock
) -> None:
    _, server = service
    customer = await open_chat(browser, server, clock=clock.now)
    await pause_clock(customer, clock.now + timedelta(seconds=1))
    await say(customer, UPSET)
    await customer.locator(".carebot-notice").wait_for()  # type: ignore[attr-defined]

    agent = await agent_login(browser, server)
    await agent.clock.install(time=clock.now)  # type: ignore[attr-defined]
    await pause_clock(agent, clock.now + timedelta(seconds=1))
    await agent.add_init_script(COUNT_TYPING_POSTS)  # type: ignore[attr-defined]
    await agent.goto(str(server.make_url("/inbox/c/1")))  # type: ignore[attr-defined]
    reply = agent.locator("#reply-text")  # type: ignore[attr-defined]
    await reply.press_sequentially("Hi, Ann")

    typing = customer.locator("#carebot-typing-text")  # type: ignore[attr-defined]
    await typing.filter(has_text="Ann is typing\u2026").wait_for()
    await shot(customer, "17-agent-typing")
    # Seven keys pressed within the same instant: one notice sent.
    assert await agent.evaluate("window.typingPosts") == 1  # type: ignore[attr-defined]

    # No news from the agent for a while: the customer's widget stops saying it.
    await customer.clock.run_for(6500)  # type: ignore[attr-defined]
    await typing.wait_for(state="hidden")

    # Typing on, three seconds later: a second notice; the reply itself ends it.
    await agent.clock.run_for(3000)  # type: ignore[attr-defined]
    await reply.press_sequentially(" here.")
    await typing.wait_for()
    assert await agent.evaluate("window.typingPosts") == 2  # type: ignore[attr-defined]
    await agent.locator("#reply-button").click()
    await bubbles(customer, "agent").filter(has_text="Hi, Ann here.").wait_for()
    assert await typing.is_hidden()


async def pause_clock(page: Any, at: datetime) -> None:
    """Stop the page's faked clock at ``at``, or a moment after the page's own time when a slow
    load already took it past ``at`` (Playwright cannot pause in the past)."""
    page_ms = await page.evaluate("Date.now()")
    soon = datetime.fromtimestamp(page_ms / 1000 + 0.5, tz=at.tzinfo)
    await page.clock.pause_at(max(at, soon))


# Counts the inbox page's typing notices (the page's own fetch calls).
COUNT_TYPING_POSTS = """
window.typingPosts = 0;
const realFetch = window.fetch;
window.fetch = (url, options) => {
  if (String(url).endsWith("/typing")) window.typingPosts += 1;
  return realFetch(url, options);
};
"""
