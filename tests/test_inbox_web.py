"""The built-in agent inbox through the real aiohttp service (fake encoder)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from html import escape
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import func, select

from carebot.models import InboundMessage
from carebot.server import Service
from carebot.store.tables import Conversation, EmotionLabelRow, Message
from tests.conftest import Clock
from tests.service import (
    AGENT_PASSWORD,
    UPSET,
    Visitor,
    running_service,
    service_settings,
    upset_customer,
)

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@pytest.fixture
async def service(
    tmp_path: Path, database_url: str, clock: Clock
) -> AsyncIterator[tuple[Service, TestServer]]:
    async with running_service(service_settings(tmp_path), database_url, clock) as running:
        yield running


@pytest.fixture
async def browser() -> AsyncIterator[aiohttp.ClientSession]:
    """An agent's browser: keeps cookies (for 127.0.0.1 too), does not follow redirects."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield session


async def page(
    browser: aiohttp.ClientSession, server: TestServer, path: str
) -> tuple[int, str, str]:
    async with browser.get(server.make_url(path)) as response:
        html = await response.text()
    match = CSRF.search(html)
    return response.status, html, match.group(1) if match else ""


async def post(
    browser: aiohttp.ClientSession, server: TestServer, path: str, data: dict[str, str]
) -> aiohttp.ClientResponse:
    async with browser.post(server.make_url(path), data=data, allow_redirects=False) as response:
        await response.read()
        return response


async def log_in(
    browser: aiohttp.ClientSession, server: TestServer, password: str = AGENT_PASSWORD
) -> aiohttp.ClientResponse:
    _, _, csrf = await page(browser, server, "/inbox/login")
    return await post(
        browser,
        server,
        "/inbox/login",
        {"name": "ann", "password": password, "csrf": csrf, "next": "/inbox"},
    )


async def states(service: Service) -> list[str]:
    async with service.runtime.db.session() as session:
        return list((await session.scalars(select(Conversation.state))).all())


async def test_pages_need_a_login(
    service: tuple[Service, TestServer], browser: aiohttp.ClientSession
) -> None:
    _, server = service
    async with browser.get(server.make_url("/inbox"), allow_redirects=False) as response:
        assert response.status == 303
        assert response.headers["Location"] == "/inbox/login?next=/inbox"


async def test_a_wrong_password_is_refused(
    service: tuple[Service, TestServer], browser: aiohttp.ClientSession
) -> None:
    _, server = service
    response = await log_in(browser, server, password="wrong password")
    assert response.status == 401
    status, _, _ = await page(browser, server, "/inbox")
    assert "Wrong name or password" not in _ and status == 200  # back on the login page


async def test_login_without_the_form_token_is_refused(
    service: tuple[Service, TestServer], browser: aiohttp.ClientSession
) -> None:
    _, server = service
    await page(browser, server, "/inbox/login")
    response = await post(
        browser, server, "/inbox/login", {"name": "ann", "password": AGENT_PASSWORD}
    )
    assert response.status == 403


async def test_the_session_cookie_is_httponly_and_samesite(
    service: tuple[Service, TestServer], browser: aiohttp.ClientSession
) -> None:
    _, server = service
    response = await log_in(browser, server)
    assert response.status == 303 and response.headers["Location"] == "/inbox"
    cookie = response.cookies["carebot_session"]
    assert cookie["httponly"] and cookie["samesite"] == "Strict" and cookie["path"] == "/"


async def test_an_agent_sees_the_handoff_replies_and_resolves(
    service: tuple[Service, TestServer], browser: aiohttp.ClientSession
) -> None:
    running, server = service
    async with upset_customer(server) as customer:
        await log_in(browser, server)
        _, queue, _ = await page(browser, server, "/inbox")
        conversation_id = int(re.search(r'data-conversation-id="(\d+)"', queue).group(1))  # type: ignore[union-attr]
        _, html, csrf = await page(browser, server, f"/inbox/c/{conversation_id}")
        assert "the customer sounds upset" in html
        assert "where is my order, I will call my lawyer" in html
        assert "Track it at https://track.example." in html  # the bot's draft
        # One team, no first-response target: no transfer form, no target shown.
        assert 'id="transfer"' not in html and 'id="first-response"' not in html

        response = await post(
            browser,
            server,
            f"/inbox/c/{conversation_id}/reply",
            {"text": "Hi, Ann here. Let me check.", "csrf": csrf},
        )
        assert response.status == 303
        # Replying took the conversation over: the customer is told Ann joined, first.
        joined = await customer.next_of("message")
        assert (joined["author"], joined["agent"], joined["text"]) == (
            "bot",
            None,
            "Ann from our team has joined the conversation.",
        )
        reply = await customer.next_of("message")
        assert (reply["author"], reply["agent"], reply["text"]) == (
            "agent",
            "Ann",
            "Hi, Ann here. Let me check.",
        )
        assert await states(running) == ["with_agent"]

        await customer.say("thanks, still waiting")  # recorded for the agent, bot silent
        await customer.next_of("ack")
        response = await post(
            browser, server, f"/inbox/c/{conversation_id}/resolve", {"csrf": csrf}
        )
        assert response.status == 303 and await states(running) == ["bot"]
        resolved = await customer.next_of("message")
        assert (resolved["author"], resolved["text"]) == (
            "bot",
            "Ann has marked this conversation as resolved. I'm the assistant again: ask me "
            "anything, or ask for a person.",
        )
        await customer.say("where is my order")
        assert (await customer.next_of("message"))["author"] == "bot"  # the bot answers again


async def test_an_agent_closes_a_conversation_and_the_customer_starts_a_new_one(
    service: tuple[Service, TestServer], browser: aiohttp.ClientSession
) -> None:
    running, server = service
    async with upset_customer(server) as customer:
        await log_in(browser, server)
        _, html, csrf = await page(browser, server, "/inbox/c/1")
        assert 'id="close-button"' in html
        response = await post(browser, server, "/inbox/c/1/close", {"csrf": csrf})
        assert response.status == 303 and response.headers["Location"] == "/inbox"
        assert await states(running) == ["closed"]

        _, queue, _ = await page(browser, server, "/inbox")  # waiting: nobody any more
        assert 'data-conversation-id="1"' not in queue and "Nobody is waiting" in queue
        _, closed, _ = await page(browser, server, "/inbox?view=resolved")  # it stays findable
        closed = closed.split('id="view-list"')[1]
        assert 'data-conversation-id="1"' in closed and "Closed by Ann" in closed
        status, html, _ = await page(browser, server, "/inbox/c/1")  # still readable
        assert status == 200 and "Closed by Ann" in html and "I will call my lawyer" in html
        assert 'id="reply-form"' not in html and 'id="close-button"' not in html
        async with browser.post(
            server.make_url("/inbox/c/1/reply"), data={"text": "hello?", "csrf": csrf}
        ) as refused:
            assert refused.status == 409
            assert "Conversation 1 is closed; the customer&#39;s next message" in (
                await refused.text()
            )

        await customer.say("where is my order")
        assert (await customer.next_of("message"))["author"] == "bot"
        assert sorted(await states(running)) == ["bot", "closed"]
        _, html, _ = await page(browser, server, "/inbox/c/2")
        history = html.split('id="history"')[1]
        assert 'data-conversation-id="1"' in history and "Closed by Ann" in history


async def test_an_idle_close_reaches_the_inbox_live(
    service: tuple[Service, TestServer], browser: aiohttp.ClientSession, clock: Clock
) -> None:
    running, server = service
    await log_in(browser, server)
    async with upset_customer(server) as customer:
        _, _, csrf = await page(browser, server, "/inbox/c/1")
        await post(browser, server, "/inbox/c/1/reply", {"text": "It ships today.", "csrf": csrf})
        await customer.next_of("message")  # Ann joined
        await customer.next_of("message")  # her reply
    live = await browser.ws_connect(server.make_url("/inbox/events"))
    try:
        clock.advance(25 * 3600)  # the agent wrote last: nobody owes the customer an answer
        assert await running.runtime.closer.sweep() == [1]
        event = await live.receive_json(timeout=5)
        assert (event["kind"], event["conversation_id"]) == ("closed", 1)
    finally:
        await live.close()
    await log_in(browser, server)  # 25 h on, the 12 h session has expired
    _, html, _ = await page(browser, server, "/inbox/c/1")
    assert "Closed automatically after 25 h without a message" in html


async def test_sending_the_draft(
    service: tuple[Service, TestServer], browser: aiohttp.ClientSession
) -> None:
    _, server = service
    async with upset_customer(server) as customer:
        await log_in(browser, server)
        _, _, csrf = await page(browser, server, "/inbox/c/1")
        await post(browser, server, "/inbox/c/1/send-draft", {"csrf": csrf})
        joined = await customer.next_of("message")
        assert joined["text"] == "Ann from our team has joined the conversation."
        reply = await customer.next_of("message")
        assert (reply["author"], reply["text"]) == ("agent", "Track it at https://track.example.")


async def test_taking_over_from_the_inbox_tells_the_customer(
    service: tuple[Service, TestServer], browser: aiohttp.ClientSession
) -> None:
    running, server = service
    async with upset_customer(server) as customer:
        await log_in(browser, server)
        _, html, csrf = await page(browser, server, "/inbox/c/1")
        assert 'id="take-over-button"' in html
        response = await post(browser, server, "/inbox/c/1/take-over", {"csrf": csrf})
        assert response.status == 303 and await states(running) == ["with_agent"]
        joined = await customer.next_of("message")
        assert (joined["author"], joined["agent"], joined["text"]) == (
            "bot",
            None,
            "Ann from our team has joined the conversation.",
        )
        _, html, _ = await page(browser, server, "/inbox/c/1")  # the agent sees it too
        assert "Ann from our team has joined the conversation." in html


LABEL_PRESSED = re.compile(r'name="label" value="(\w+)" class="label-button" aria-pressed="true"')


async def test_an_agent_labels_a_customer_message_upset_or_not(
    service: tuple[Service, TestServer], browser: aiohttp.ClientSession
) -> None:
    running, server = service
    async with upset_customer(server):
        await log_in(browser, server)
        _, html, csrf = await page(browser, server, "/inbox/c/1")
        case = await running.runtime.queue.case(1)
        [upset] = [m.id for m in case.messages if m.author == "customer"]
        reply = next(m.id for m in case.messages if m.author == "bot")
        # Only the customer's message has the actions; nothing is labelled yet.
        assert re.findall(r'class="msg-label"[^>]*data-message-id="(\d+)"', html) == [str(upset)]
        assert 'aria-label="Mark this message not upset"' in html
        assert LABEL_PRESSED.findall(html) == [] and "marked " not in html

        form = {"csrf": csrf, "message_id": str(upset)}
        response = await post(browser, server, "/inbox/c/1/label", form | {"label": "not_upset"})
        assert response.status == 303 and response.headers["Location"] == f"/inbox/c/1#m{upset}"
        _, html, _ = await page(browser, server, "/inbox/c/1")
        assert "marked not upset by Ann" in html and LABEL_PRESSED.findall(html) == ["not_upset"]

        await post(browser, server, "/inbox/c/1/label", form | {"label": "upset"})  # changed
        _, html, _ = await page(browser, server, "/inbox/c/1")
        assert "marked upset by Ann" in html and "marked not upset" not in html
        assert LABEL_PRESSED.findall(html) == ["upset"]

        refused = [
            ({"label": "angry"}, 409, "Unknown emotion label &#39;angry&#39;: use upset or"),
            ({"message_id": str(reply)}, 409, f"Message {reply} is a reply; only customer"),
            ({"message_id": "x1"}, 400, "message_id must be a message number, not 'x1'"),
        ]
        for change, status, words in refused:
            data = form | {"label": "upset"} | change
            async with browser.post(server.make_url("/inbox/c/1/label"), data=data) as answer:
                assert answer.status == status
                assert words in await answer.text()
    async with running.runtime.db.session() as session:
        found = (await session.scalars(select(EmotionLabelRow))).all()
        assert [(r.message_id, r.agent, r.label) for r in found] == [(upset, "Ann", "upset")]


@pytest.mark.parametrize("csrf", ["", "forged-token"])
async def test_a_post_without_the_right_csrf_token_changes_nothing(
    service: tuple[Service, TestServer], browser: aiohttp.ClientSession, csrf: str
) -> None:
    running, server = service
    async with upset_customer(server):
        await log_in(browser, server)
        async with running.runtime.db.session() as session:
            before = await session.scalar(select(func.count()).select_from(Message))
        for action in ("reply", "take-over", "resolve", "send-draft", "close", "label"):
            response = await post(
                browser, server, f"/inbox/c/1/{action}", {"text": "hi", "csrf": csrf}
            )
            assert response.status == 403, action
        async with running.runtime.db.session() as session:
            assert await session.scalar(select(func.count()).select_from(Message)) == before
        assert await states(running) == ["waiting_for_agent"]


async def test_an_impossible_action_is_explained(
    service: tuple[Service, TestServer], browser: aiohttp.ClientSession
) -> None:
    _, server = service
    async with upset_customer(server):
        await log_in(browser, server)
        _, _, csrf = await page(browser, server, "/inbox/c/1")
        await post(browser, server, "/inbox/c/1/resolve", {"csrf": csrf})
        async with browser.post(
            server.make_url("/inbox/c/1/resolve"), data={"csrf": csrf}
        ) as response:
            assert response.status == 409
            text = await response.text()
            assert "is already with the bot, so it cannot be handed back to the bot" in text
            assert "bot;" not in text  # no state names


async def test_a_reply_to_a_carebot_chat_conversation_is_refused_with_the_reason(
    service: tuple[Service, TestServer], browser: aiohttp.ClientSession, clock: Clock
) -> None:
    """A `carebot chat --store` conversation is in the live store, but its terminal channel
    runs only in that command: the inbox shows why the bot's message did not arrive, and an
    agent's reply is refused at once, nothing queued, the text kept in the form."""
    running, server = service
    await running.runtime.inbox.receive(InboundMessage("terminal", "tess", "t1", UPSET, clock.now))
    reason = (
        "the terminal channel is not running in this service: it was a `carebot chat` conversation"
    )
    await log_in(browser, server)
    _, html, csrf = await page(browser, server, "/inbox/c/1")
    assert f"not delivered: {escape(reason)}" in html  # the bot's handoff message
    async with running.runtime.db.session() as session:
        before = await session.scalar(select(func.count()).select_from(Message))

    async with browser.post(
        server.make_url("/inbox/c/1/reply"), data={"text": "Hello Tess", "csrf": csrf}
    ) as refused:
        assert refused.status == 409
        html = await refused.text()
    assert escape(f"T{reason[1:]}, so no reply can reach it.") in html
    assert ">Hello Tess</textarea>" in html
    async with running.runtime.db.session() as session:
        assert await session.scalar(select(func.count()).select_from(Message)) == before
    assert await states(running) == ["waiting_for_agent"]


async def test_live_events_reach_the_inbox(
    service: tuple[Service, TestServer], browser: aiohttp.ClientSession
) -> None:
    _, server = service
    await log_in(browser, server)
    live = await browser.ws_connect(server.make_url("/inbox/events"))
    try:
        async with upset_customer(server):
            events = [await live.receive_json(timeout=5) for _ in range(3)]
        assert [e["kind"] for e in events] == ["customer_message", "handoff", "delivery"]
        assert {e["conversation_id"] for e in events} == {1}
    finally:
        await live.close()


async def test_live_events_need_a_login(
    service: tuple[Service, TestServer], browser: aiohttp.ClientSession
) -> None:
    _, server = service
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await browser.ws_connect(server.make_url("/inbox/events"))
    assert refused.value.status == 401


async def test_a_non_ascii_csrf_token_is_refused_not_a_crash(
    service: tuple[Service, TestServer], browser: aiohttp.ClientSession
) -> None:
    _, server = service
    await page(browser, server, "/inbox/login")
    response = await post(
        browser, server, "/inbox/login", {"name": "ann", "password": AGENT_PASSWORD, "csrf": "é"}
    )
    assert response.status == 403


async def test_the_agent_sees_the_language_each_message_was_written_in(
    tmp_path: Path, database_url: str, clock: Clock, browser: aiohttp.ClientSession
) -> None:
    settings = service_settings(tmp_path, languages={"default": "en", "detect": ["en", "de"]})
    async with running_service(settings, database_url, clock) as (running, server):
        async with aiohttp.ClientSession() as http:
            customer = Visitor(await http.ws_connect(server.make_url("/chat/ws")))
            await customer.hello()
            for text in ("Wo ist meine Bestellung? Ich warte seit Tagen.", "ok"):
                await customer.say(text)
                await customer.next_of("message")
        async with running.runtime.db.session() as session:
            conversation_id = await session.scalar(select(func.max(Conversation.id)))
        await log_in(browser, server)
        _, html, _ = await page(browser, server, f"/inbox/c/{conversation_id}")
    badge = re.search(r'id="conv-language" data-language="(\w+)"[^>]*>([^<]+)<', html)
    assert badge is not None and badge.groups() == ("de", "German (de)")
    tags = re.findall(r'class="msg-language" data-language="(\w+)"', html)
    assert tags == ["de"]  # "ok" was not placed: no tag
