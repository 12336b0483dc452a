"""End to end in a real browser: Debian's Chromium driven by Playwright, against the real
service on loopback (fake encoder, test intents). Screenshots go to tests/artifacts/."""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import select

from carebot.server import Service
from carebot.store.tables import ContactPoint, Identity
from tests.service import AGENT_PASSWORD, running_service, service_settings

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
FAQ, ANSWER = "where is my order", "Track it at https://track.example."
UPSET = "where is my order, I will call my lawyer"
PHONE, EMAIL = "+49 30 123456", "Kim.Lee@Example.com"

pytestmark = pytest.mark.skipif(
    shutil.which(CHROMIUM) is None,
    reason="Debian's chromium is not installed (.ci/run installs it)",
)

playwright_api = pytest.importorskip("playwright.async_api")


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[tuple[Service, TestServer]]:
    settings = service_settings(tmp_path)
    async with running_service(settings, f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}") as s:
        yield s


@pytest.fixture
async def browser() -> AsyncIterator[object]:
    async with playwright_api.async_playwright() as p:
        instance = await p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield instance
        await instance.close()


async def shot(page: object, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), animations="disabled")  # type: ignore[attr-defined]


async def open_chat(browser: object, server: TestServer) -> object:
    context = await browser.new_context()  # type: ignore[attr-defined]
    page = await context.new_page()
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
    assert "colleague" in await notice.inner_text()
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
    assert (await bubble.inner_text()).strip() == payload
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


async def test_an_oversized_message_gets_a_clear_error(
    service: tuple[Service, TestServer], browser: object
) -> None:
    _, server = service
    customer = await open_chat(browser, server)
    await customer.evaluate("window.carebot.send('x'.repeat(2500))")  # type: ignore[attr-defined]
    error = customer.locator(".carebot-error")  # type: ignore[attr-defined]
    await error.wait_for()
    assert "2000" in await error.inner_text()


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
    assert profile == {"phone": PHONE, "email": EMAIL}

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
    await error.filter(has_text="The name is too long.").wait_for()
    assert await customer.get_by_label("Phone", exact=True).input_value() == PHONE  # type: ignore[attr-defined]
    assert await name.input_value() == "x" * 201
    assert await customer.locator("#carebot-contact-note").inner_text() == ""  # type: ignore[attr-defined]
    assert await contact_points(running) == []
