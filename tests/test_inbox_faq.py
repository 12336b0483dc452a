"""The inbox's FAQ answer search: ``GET /inbox/faq?q=words`` through the real service (fake
encoder, test intents), and the conversation page's search box, in Chromium when it is there."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from carebot.server import Service
from tests.chromium import launched, needs_chromium
from tests.conftest import Clock
from tests.service import AGENT_PASSWORD, running_service, service_settings, upset_customer
from tests.test_inbox_web import log_in, page

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"


@pytest.fixture
async def service(
    tmp_path: Path, sqlite_url: str, clock: Clock
) -> AsyncIterator[tuple[Service, TestServer]]:
    async with running_service(service_settings(tmp_path), sqlite_url, clock) as running:
        yield running


@pytest.fixture
async def browser() -> AsyncIterator[aiohttp.ClientSession]:
    """An agent's browser: keeps cookies (for 127.0.0.1 too), does not follow redirects."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield session


async def faq(browser: aiohttp.ClientSession, server: TestServer, **query: str) -> tuple[int, Any]:
    url = server.make_url("/inbox/faq").with_query(query)
    async with browser.get(url, allow_redirects=False) as response:
        if response.content_type == "application/json":
            return response.status, await response.json()
        return response.status, await response.text()


async def test_the_search_needs_a_session(
    service: tuple[Service, TestServer], browser: aiohttp.ClientSession
) -> None:
    _, server = service
    status, body = await faq(browser, server, q="refund")
    assert status == 401 and "Log in" in body
    browser.cookie_jar.update_cookies({"carebot_session": "forged.value"})
    assert (await faq(browser, server, q="refund"))[0] == 401


async def test_the_search_answers_hits_as_json(
    service: tuple[Service, TestServer], browser: aiohttp.ClientSession
) -> None:
    _, server = service
    await log_in(browser, server)
    status, body = await faq(browser, server, q="where is my order")
    assert status == 200
    assert body["query"] == "where is my order"
    first = body["hits"][0]
    assert set(first) == {"intent", "title", "answer", "score", "why", "language"}
    assert first["intent"] == "order_status" and first["title"] == "Order status"
    assert first["answer"] == "Track it at https://track.example."  # placeholder filled in
    assert first["score"] == pytest.approx(1.0, abs=1e-4) and first["why"] == ["meaning", "words"]
    _, body = await faq(browser, server, q="days")  # only in two answers: found by the words
    assert sorted(hit["intent"] for hit in body["hits"]) == ["refunds", "returns"]
    assert all(hit["why"] == ["words"] for hit in body["hits"])


@pytest.mark.parametrize(
    ("query", "status", "hits"),
    [
        ({"q": ""}, 200, 0),
        ({}, 200, 0),
        ({"q": "staff member please"}, 200, 0),  # the human-handoff intent is never offered
        ({"q": "my", "limit": "2"}, 200, 2),
        ({"q": "my", "limit": "0"}, 400, None),
        ({"q": "my", "limit": "two"}, 400, None),
        ({"q": "my", "limit": "21"}, 400, None),
        ({"q": "my", "limit": "2", "language": "de"}, 200, 2),  # none in German: English ones
        ({"q": "my", "language": "xx"}, 400, None),
    ],
)
async def test_the_search_query(
    service: tuple[Service, TestServer],
    browser: aiohttp.ClientSession,
    query: dict[str, str],
    status: int,
    hits: int | None,
) -> None:
    _, server = service
    await log_in(browser, server)
    answered, body = await faq(browser, server, **query)
    assert answered == status
    if hits is None:
        wrong = "language" if "language" in query else "limit"
        assert f"{wrong} must be" in body
    else:
        assert len(body["hits"]) == hits
        assert all(hit["language"] == "en" for hit in body["hits"])


async def test_the_conversation_page_has_the_search_box_beside_the_reply(
    service: tuple[Service, TestServer], browser: aiohttp.ClientSession
) -> None:
    _, server = service
    async with upset_customer(server):
        await log_in(browser, server)
        status, html, _ = await page(browser, server, "/inbox/c/1")
    assert status == 200
    composer = html[html.index('<div id="composer">') : html.index('<aside id="case"')]
    assert 'id="reply-form"' in composer
    assert '<div id="faq-search" class="faq-search" hidden>' in composer  # shown by the script
    assert 'action="/inbox/faq"' in composer and 'name="q" id="faq-words"' in composer


# --- in Chromium ---------------------------------------------------------------------------


@needs_chromium
async def test_an_agent_inserts_an_answer_at_the_cursor(tmp_path: Path, clock: Clock) -> None:
    database = f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}"
    async with (
        running_service(service_settings(tmp_path), database, clock) as (_, server),
        upset_customer(server),
        launched() as chromium,
    ):
        agent = await (await chromium.new_context()).new_page()
        await agent.goto(str(server.make_url("/inbox/login?next=/inbox/c/1")))
        await agent.locator("#login-name").fill("ann")
        await agent.locator("#login-password").fill(AGENT_PASSWORD)
        await agent.locator("#login-button").click()
        reply = agent.locator("#reply-text")
        await reply.fill("Hi Kim, Sorry for the wait.")
        await reply.evaluate("box => box.setSelectionRange(8, 8)")  # after "Hi Kim, "

        await agent.locator("#faq-words").fill("refund")
        hit = agent.locator(".faq-hit").filter(has_text="Refunds take 5 days.")
        await hit.wait_for()
        assert await agent.locator(".faq-hit .faq-title").all_inner_texts() == ["Refunds"]
        ARTIFACTS.mkdir(exist_ok=True)
        await agent.screenshot(path=str(ARTIFACTS / "inbox-faq-search.png"))
        await hit.click()
        assert await reply.input_value() == "Hi Kim, Refunds take 5 days.Sorry for the wait."
        assert await agent.evaluate("document.activeElement.id") == "reply-text"

        await agent.locator("#faq-words").fill("staff member")  # the handoff intent: never
        await agent.locator("#faq-status").filter(has_text="No answer matches").wait_for()
        await agent.locator("#reply-button").click()  # the edited text goes as it is
        await (
            agent.locator('.msg[data-author="agent"]')
            .filter(has_text="Refunds take 5 days.Sorry")
            .wait_for()
        )
