"""Who the web chat visitor is: the pre-chat form ([webchat] prechat, per site), the page they
are on and their browser, kept in the identity's profile for agents (fake encoder, real
service on loopback)."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from sqlalchemy import select

from carebot.adapters.user_agent import browser_label
from carebot.adapters.webchat_visitor import PAGE_URL_MAX_CHARS, page_url
from carebot.config import WebChatSettings
from carebot.models import ContactDetails
from carebot.server import Service
from carebot.store.customers import display_label, visitor_details
from carebot.store.tables import Customer, Identity, Message
from tests.chromium import launched, needs_chromium
from tests.conftest import Clock
from tests.service import Visitor, count_rows, running_service, service_settings

CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
FAQ, ANSWER = "where is my order", "Track it at https://track.example."
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"


@pytest.fixture
def webchat() -> dict[str, Any]:
    return {"prechat": "required"}


@pytest.fixture
async def service(
    tmp_path: Path, database_url: str, clock: Clock, webchat: dict[str, Any]
) -> AsyncIterator[tuple[Service, TestServer]]:
    settings = service_settings(tmp_path, webchat=webchat)
    async with running_service(settings, database_url, clock) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(headers={"User-Agent": CHROME}) as session:
        yield session


async def visitor(http: aiohttp.ClientSession, server: TestServer) -> Visitor:
    return Visitor(await http.ws_connect(server.make_url("/chat/ws")))


async def hello(customer: Visitor, **fields: Any) -> dict[str, Any]:
    await customer.ws.send_json({"type": "hello", "token": None, **fields})
    frame = await customer.receive()
    assert frame["type"] == "welcome", frame
    customer.token = frame["token"]
    return frame


async def profiles(service: Service) -> dict[str, dict[str, str]]:
    """Each identity's profile, by its channel and user id."""
    async with service.runtime.db.session() as session:
        found = (await session.scalars(select(Identity))).all()
        return {f"{i.channel}:{i.external_user_id}": dict(i.profile) for i in found}


async def round_trip(customer: Visitor) -> None:
    """Frames are handled in order: once the status answer is back, all before it were."""
    await customer.ws.send_json({"type": "status"})
    await customer.next_of("status")


async def test_required_prechat_refuses_messages_until_the_form_is_filled(
    service: tuple[Service, TestServer], http: aiohttp.ClientSession
) -> None:
    running, server = service
    customer = await visitor(http, server)
    welcome = await hello(customer)
    assert welcome["prechat"] == {"mode": "required", "fields": ["name", "email"], "done": False}

    message_id = await customer.say(FAQ)
    refused = await customer.next_of("error")
    assert refused["code"] == "prechat_required" and refused["id"] == message_id
    assert "tell us who you are" in refused["message"]
    assert await count_rows(running.runtime.db, Message) == 0

    # A name alone does not fill the form; a malformed e-mail address is refused.
    await customer.ws.send_json({"type": "contact", "name": "Kim Lee"})
    assert await customer.next_of("contact_saved") == {"type": "contact_saved"}
    await customer.ws.send_json({"type": "contact", "email": "kim at example"})
    bad = await customer.next_of("error")
    assert (bad["code"], bad["message"]) == (
        "bad_email",
        "Please check the e-mail address (like name@example.com).",
    )
    await customer.say(FAQ, message_id)
    assert (await customer.next_of("error"))["code"] == "prechat_required"

    await customer.ws.send_json({"type": "contact", "email": "Kim.Lee@Example.com"})
    saved = await customer.next_of("contact_saved")
    assert isinstance(saved["pass"], str) and saved["pass"]
    await customer.say(FAQ, message_id)  # the refused message, sent again: taken now
    assert (await customer.next_of("ack"))["id"] == message_id
    assert (await customer.next_of("message"))["text"] == ANSWER
    await customer.ws.close()

    # A reload with the pass: done. Without it, or with another visitor's, or the pass used as
    # a visitor token: not.
    again = await visitor(http, server)
    welcome = await hello(again, token=customer.token, **{"pass": saved["pass"]})
    assert welcome["prechat"]["done"] is True and len(welcome["history"]) == 2
    stranger = await visitor(http, server)
    assert (await hello(stranger, **{"pass": saved["pass"]}))["prechat"]["done"] is False
    forged = await visitor(http, server)
    await forged.ws.send_json({"type": "hello", "token": saved["pass"]})
    assert (await forged.receive())["code"] == "bad_token"


@pytest.mark.parametrize(
    ("server_mode", "site_mode", "in_effect"),
    [
        ("off", "required", "off"),
        ("off", None, "off"),
        ("optional", None, "optional"),
        ("optional", "off", "off"),
        ("optional", "required", "required"),
        ("optional", "REQUIRED!", "optional"),
        ("required", "off", "required"),
        ("required", "optional", "required"),
    ],
)
def test_a_site_chooses_its_prechat_within_the_servers_rule(
    server_mode: str, site_mode: str | None, in_effect: str
) -> None:
    assert WebChatSettings(prechat=server_mode).prechat_for(site_mode) == in_effect


@pytest.mark.parametrize(
    ("webchat", "site_mode", "taken"),
    [
        ({"prechat": "optional"}, "required", False),  # the site asked for it: enforced
        ({"prechat": "optional"}, None, True),
        ({"prechat": "required"}, "off", False),  # a site cannot switch the server's rule off
    ],
)
async def test_the_prechat_in_effect_is_what_the_server_enforces(
    service: tuple[Service, TestServer],
    http: aiohttp.ClientSession,
    site_mode: str | None,
    taken: bool,
) -> None:
    running, server = service
    customer = await visitor(http, server)
    await hello(customer, prechat=site_mode)
    await customer.say(FAQ)
    if taken:
        assert (await customer.next_of("message"))["text"] == ANSWER
    else:
        assert (await customer.receive())["code"] == "prechat_required"
    assert await count_rows(running.runtime.db, Message) == (2 if taken else 0)


@pytest.mark.parametrize("webchat", [{}])
async def test_the_page_and_browser_are_kept_for_agents_and_follow_the_visitor(
    service: tuple[Service, TestServer], http: aiohttp.ClientSession
) -> None:
    running, server = service
    customer = await visitor(http, server)
    page = {"url": "https://shop.example/p/mug?colour=blue#reviews", "title": " Fjord\n mug "}
    welcome = await hello(customer, page=page)
    assert welcome["prechat"] == {"mode": "off", "fields": ["name", "email"], "done": False}
    # Only looking around leaves nothing behind.
    await customer.ws.send_json({"type": "page", "url": "https://shop.example/p/lamp"})
    await round_trip(customer)
    assert await profiles(running) == {}

    await customer.say(FAQ)
    await customer.next_of("message")
    [key] = await profiles(running)
    assert (await profiles(running))[key] == {
        "page_url": "https://shop.example/p/lamp",
        "page_title": "",  # that page had none: the last one's is not kept for it
        "browser": "Chrome 131 on Windows",
    }

    # A single-page site moves on: kept at once, without a message.
    await customer.ws.send_json(
        {"type": "page", "url": "https://shop.example/checkout#pay", "title": "Checkout"}
    )
    await round_trip(customer)
    assert (await profiles(running))[key]["page_url"] == "https://shop.example/checkout"
    assert (await profiles(running))[key]["page_title"] == "Checkout"
    # Anything but a web page's address changes nothing.
    for url in ("javascript:alert(1)", "file:///home/kim/shop.html", 42):
        await customer.ws.send_json({"type": "page", "url": url, "title": "x"})
    await round_trip(customer)
    assert (await profiles(running))[key]["page_url"] == "https://shop.example/checkout"

    # A returning visitor's new page is kept with the hello.
    await customer.ws.close()
    again = await visitor(http, server)
    await hello(again, token=customer.token, page={"url": "https://shop.example/faq"})
    await round_trip(again)
    assert (await profiles(running))[key]["page_url"] == "https://shop.example/faq"


@pytest.mark.parametrize(
    ("url", "kept"),
    [
        ("https://shop.example/a?b=1#c", "https://shop.example/a?b=1"),
        ("http://shop.example", "http://shop.example"),
        ("https://shop.example/a?" + "q" * 600, "https://shop.example/a"),
        ("https://shop.example/" + "p" * 600, "https://shop.example/" + "p" * 479),
        ("ftp://shop.example/a", None),
        ("https:///no-host", None),
        (None, None),
    ],
)
def test_a_page_address_is_kept_without_fragment_and_trimmed(url: Any, kept: str | None) -> None:
    assert page_url(url) == kept
    assert kept is None or len(kept) <= PAGE_URL_MAX_CHARS


@pytest.mark.parametrize("webchat", [{"prechat": "optional", "prechat_fields": ["name", "email"]}])
async def test_the_prechat_email_links_the_visitor_to_the_customer_on_another_channel(
    service: tuple[Service, TestServer], http: aiohttp.ClientSession
) -> None:
    running, server = service
    await running.runtime.customers.update_contact(
        ContactDetails("telegram", "4242", {"email": "kim.lee@example.com"})
    )
    customer = await visitor(http, server)
    await hello(customer, page={"url": "https://shop.example/help", "title": "Help"})
    await customer.say(FAQ)  # optional: a message before the form is taken
    await customer.next_of("message")
    assert await count_rows(running.runtime.db, Customer) == 2
    await customer.ws.send_json(
        {"type": "contact", "name": "Kim Lee", "email": "KIM.LEE@example.com"}
    )
    assert "pass" in await customer.next_of("contact_saved")

    async with running.runtime.db.session() as session:
        identities = (await session.scalars(select(Identity).order_by(Identity.id))).all()
        [kept] = (await session.scalars(select(Customer))).all()
    assert {i.customer_id for i in identities} == {kept.id}
    assert kept.display_name == "Kim Lee"  # the form's name, as none was set
    webchat_identity = identities[1]
    assert webchat_identity.linked_by == "same email kim.lee@example.com"
    assert visitor_details(webchat_identity) == {
        "name": "Kim Lee",
        "email": "KIM.LEE@example.com",
        "page_url": "https://shop.example/help",
        "page_title": "Help",
        "browser": "Chrome 131 on Windows",
    }
    assert display_label(webchat_identity, kept.display_name) == "Kim Lee"


@pytest.mark.parametrize(
    ("profile", "display_name", "label"),
    [
        ({}, "", "webchat v-3898b49a4c"),
        ({}, "Kim Lee", "Kim Lee"),
        ({"name": " Kim "}, "", "Kim"),
        ({"email": "kim@example.com", "phone": "+4930123456"}, "", "kim@example.com"),
        ({"phone": "+4930123456", "browser": "Chrome 131 on Windows"}, "", "+4930123456"),
        ({"name": "   "}, "  ", "webchat v-3898b49a4c"),
    ],
)
def test_a_customer_is_shown_by_name_then_contact_detail_then_channel_id(
    profile: dict[str, str], display_name: str, label: str
) -> None:
    identity = Identity(channel="webchat", external_user_id="v-3898b49a4c0d1e2f", profile=profile)
    assert display_label(identity, display_name) == label


def test_visitor_details_hold_only_the_documented_keys() -> None:
    identity = Identity(
        channel="webchat",
        external_user_id="v-1",
        profile={"name": "Kim", "username": "kim", "page_url": "https://shop.example/", "x": ""},
    )
    assert visitor_details(identity) == {"name": "Kim", "page_url": "https://shop.example/"}
    identity.profile = {"page_url": "javascript:alert(1)", "browser": "Chrome 131 on Windows"}
    assert visitor_details(identity) == {"browser": "Chrome 131 on Windows"}  # never a link


WIN = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)"
IPHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15"


@pytest.mark.parametrize(
    ("user_agent", "label"),
    [
        (CHROME, "Chrome 131 on Windows"),
        (f"{WIN} Chrome/131.0.0.0 Safari/537.36 Edg/131.0.2903.86", "Edge 131 on Windows"),
        (f"{WIN} Chrome/130.0.0.0 Safari/537.36 OPR/115.0.0.0", "Opera 115 on Windows"),
        (
            "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
            "Firefox 133 on Linux",
        ),
        (
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:133.0) Gecko/20100101 Firefox/133.0",
            "Firefox 133 on macOS",
        ),
        (
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
            "(KHTML, like Gecko) Version/18.1 Safari/605.1.15",
            "Safari 18 on macOS",
        ),
        (
            f"{IPHONE} (KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1",
            "Safari 17 on iOS 17",
        ),
        (
            f"{IPHONE} (KHTML, like Gecko) CriOS/131.0.6778.73 Mobile/15E148 Safari/604.1",
            "Chrome 131 on iOS 17",
        ),
        (
            "Mozilla/5.0 (iPad; CPU OS 16_7 like Mac OS X) AppleWebKit/605.1.15 "
            "(KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1",
            "Safari 16 on iPadOS 16",
        ),
        (
            "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) "
            "SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36",
            "Samsung Internet 26 on Android 14",
        ),
        (
            "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/131.0.0.0 Mobile Safari/537.36",
            "Chrome 131 on Android 10",
        ),
        (
            "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/131.0.0.0 Safari/537.36",
            "Chrome 131 on ChromeOS",
        ),
        (
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "HeadlessChrome/131.0.0.0 Safari/537.36",
            "Headless Chrome 131 on Linux",
        ),
        (
            "Mozilla/5.0 (Windows NT 6.1; Trident/7.0; rv:11.0) like Gecko",
            "Internet Explorer 11 on Windows 7",
        ),
        ("Mozilla/5.0 (Linux; Android 13) SomeBrowser", "a browser on Android 13"),
        ("curl/8.5.0", "curl/8.5.0"),
        ("x" * 300, "x" * 60),
        ("", ""),
        (None, ""),
    ],
)
def test_the_browser_is_told_in_a_few_words(user_agent: str | None, label: str) -> None:
    assert browser_label(user_agent) == label


# ---------------------------------------------------------------- in Chromium

SITE = """<!doctype html><html><head><title>Northwind Goods</title></head><body>
<h1>Northwind Goods</h1>
<script src="{carebot}/chat/widget.js" data-open="true" {attrs} async></script>
</body></html>"""


@pytest.fixture
async def site(
    tmp_path: Path, clock: Clock, webchat: dict[str, Any]
) -> AsyncIterator[tuple[Service, TestServer]]:
    """The service for the browser (SQLite), on the test's clock: business hours."""
    settings = service_settings(tmp_path, webchat=webchat)
    async with running_service(
        settings, f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}", clock
    ) as s:
        yield s


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """Chromium, and the shops' sites its pages open (closed with it)."""
    async with launched() as instance:
        instance.shops = []
        yield instance
        for shop in instance.shops:
            await shop.close()


async def shop_page(browser: Any, server: TestServer, attrs: str = "") -> Any:
    """A shop's page, on a site of its own, embedding the widget with ``attrs`` on its script
    tag, the chat open and welcomed (the header says the team is online). ``page.sockets``,
    ``page.sent_frames``: the widget's socket and what it sent."""
    carebot = str(server.make_url("/")).rstrip("/")

    async def shop(_request: web.Request) -> web.Response:
        html = SITE.format(carebot=carebot, attrs=attrs)
        return web.Response(text=html, content_type="text/html")

    app = web.Application()
    app.router.add_get("/site/{name}", shop)
    shop_server = TestServer(app)
    await shop_server.start_server()
    browser.shops.append(shop_server)
    page = await (await browser.new_context()).new_page()
    page.shop = shop_server
    sent: list[dict[str, Any]] = []
    page.sockets = []

    def follow(ws: Any) -> None:
        page.sockets.append(ws)
        ws.on("framesent", lambda data: sent.append(json.loads(data)))

    page.on("websocket", follow)
    page.sent_frames = sent
    await page.goto(str(shop_server.make_url("/site/mugs")))
    await page.locator("#carebot-subtitle").filter(has_text="Online").wait_for()
    return page


async def say(page: Any, text: str) -> None:
    await page.locator("#carebot-input").fill(text)
    await page.locator("#carebot-input").press("Enter")


async def answered(page: Any, count: int = 1) -> None:
    """Until the page shows ``count`` answers."""
    bot = page.locator('.carebot-msg[data-author="bot"]').filter(has_text=ANSWER)
    await bot.nth(count - 1).wait_for()


async def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), animations="disabled")


@needs_chromium
async def test_a_required_prechat_form_comes_before_the_first_message(
    site: tuple[Service, TestServer], browser: Any
) -> None:
    running, server = site
    page = await shop_page(browser, server)
    form = page.locator('#carebot-contact[data-prechat="required"]')
    await form.wait_for()
    assert await page.locator("#carebot-contact-title").inner_text() == "Before we start"
    assert await page.locator("#carebot-input").is_hidden()
    assert await page.get_by_role("button", name="Skip").count() == 0
    assert await page.get_by_label("Phone", exact=True).is_hidden()  # not asked for

    start = page.get_by_role("button", name="Start chat")
    await page.get_by_label("Name", exact=True).fill("Kim Lee")
    await start.click()
    error = page.locator("#carebot-contact-error")
    await error.filter(has_text="Please fill in every field to start the chat.").wait_for()
    assert await page.get_by_label("E-mail", exact=True).get_attribute("aria-invalid") == "true"
    await page.get_by_label("E-mail", exact=True).fill("kim.lee@")
    await start.click()
    await error.filter(has_text="Please check the e-mail address").wait_for()
    await page.get_by_label("E-mail", exact=True).fill("kim.lee@example.com")
    await shot(page, "prechat-1-required")
    await start.click()

    await page.locator("#carebot-input").wait_for()
    assert await form.count() == 0 and await page.locator("#carebot-contact").is_hidden()
    await say(page, FAQ)
    await answered(page)
    await shot(page, "prechat-2-chatting")
    [profile] = (await profiles(running)).values()
    assert profile["name"] == "Kim Lee" and profile["email"] == "kim.lee@example.com"
    assert profile["page_url"] == str(page.shop.make_url("/site/mugs"))
    assert profile["page_title"] == "Northwind Goods"
    assert re.fullmatch(r"Headless Chrome \d+ on Linux", profile["browser"]), profile
    hello = page.sent_frames[0]
    assert hello["type"] == "hello" and hello["page"]["url"].endswith("/site/mugs")

    # A reload keeps the pass: straight to the conversation.
    await page.reload()
    await page.locator("#carebot-subtitle").filter(has_text="Online").wait_for()
    await answered(page)
    assert await page.locator("#carebot-input").is_visible()
    assert await page.locator("#carebot-contact").is_hidden()


@needs_chromium
@pytest.mark.parametrize("webchat", [{"prechat": "optional"}])
@pytest.mark.parametrize(
    ("attrs", "shown"),
    [("", "optional"), ('data-prechat="off"', None), ('data-prechat="required"', "required")],
)
async def test_a_site_chooses_its_prechat_form_when_the_server_leaves_it_optional(
    site: tuple[Service, TestServer], browser: Any, attrs: str, shown: str | None
) -> None:
    _, server = site
    page = await shop_page(browser, server, attrs)
    form = page.locator("#carebot-contact")
    if shown is None:
        assert await form.is_hidden() and await page.locator("#carebot-input").is_visible()
        await say(page, FAQ)
        await answered(page)
        return
    await page.locator(f'#carebot-contact[data-prechat="{shown}"]').wait_for()
    skip = page.get_by_role("button", name="Skip")
    assert await skip.count() == (1 if shown == "optional" else 0)
    if shown == "required":
        # A message from the page's script before the form: refused, then sent once it is.
        await page.evaluate("window.carebot.send('where is my order')")
        await page.locator(".carebot-msg[data-failed]").wait_for()
        await page.get_by_label("Name", exact=True).fill("Kim")
        await page.get_by_label("E-mail", exact=True).fill("kim@example.com")
        await page.get_by_role("button", name="Start chat").click()
        await answered(page)
        return
    await shot(page, "prechat-3-optional")
    await skip.click()
    await page.locator("#carebot-input").wait_for()
    assert await form.is_hidden()
    await page.reload()  # skipped once: not asked again
    await page.locator("#carebot-subtitle").filter(has_text="Online").wait_for()
    assert await form.is_hidden() and await page.locator("#carebot-input").is_visible()


@needs_chromium
@pytest.mark.parametrize("webchat", [{}])
async def test_a_single_page_site_tells_where_the_visitor_went(
    site: tuple[Service, TestServer], browser: Any
) -> None:
    running, server = site
    page = await shop_page(browser, server)
    await say(page, FAQ)
    await answered(page)
    [socket] = page.sockets
    async with socket.expect_event("framesent", lambda data: '"page"' in data) as sent:
        await page.evaluate(
            "history.pushState({}, '', '/site/checkout#pay'); document.title = 'Checkout'"
        )
    assert json.loads(await sent.value) == {
        "type": "page",
        "url": str(page.shop.make_url("/site/checkout")),
        "title": "Checkout",
    }
    assert [f["type"] for f in page.sent_frames].count("page") == 1  # one for both changes
    await say(page, FAQ)  # frames are handled in order: the page before this message
    await answered(page, 2)
    [profile] = (await profiles(running)).values()
    assert profile["page_url"] == str(page.shop.make_url("/site/checkout"))
    assert profile["page_title"] == "Checkout"
