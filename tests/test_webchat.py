"""The web chat channel through the real aiohttp service (fake encoder)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from sqlalchemy import func, select

from carebot.adapters.webchat import WebChatChannel
from carebot.config import WebChatSettings, WebChatTexts
from carebot.desk.auth import hash_password
from carebot.events import RESYNC, Event, EventHub
from carebot.models import ChannelEvent, InboundMessage, OutboundReply, TranscriptLine
from carebot.server import Service
from carebot.signing import Signer
from carebot.store.tables import Message, OutboxRow
from tests.conftest import Clock
from tests.service import AGENT_PASSWORD, UPSET, Visitor, running_service, service_settings

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture
async def service(
    tmp_path: Path, database_url: str, clock: Clock
) -> AsyncIterator[tuple[Service, TestServer]]:
    settings = service_settings(
        tmp_path, webchat={"max_message_chars": 50, "messages_per_minute": 8}
    )
    async with running_service(settings, database_url, clock) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def visitor(http: aiohttp.ClientSession, server: TestServer) -> Visitor:
    return Visitor(await http.ws_connect(server.make_url("/chat/ws")))


async def count(service: Service, table: type) -> int:
    async with service.runtime.db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(table)) or 0)


async def test_health_and_readiness(
    service: tuple[Service, TestServer], http: aiohttp.ClientSession
) -> None:
    _, server = service
    async with http.get(server.make_url("/healthz")) as response:
        assert response.status == 200
        assert await response.json() == {"status": "up", "pid": os.getpid()}  # which worker
    async with http.get(server.make_url("/readyz")) as response:
        body = await response.json()
    assert response.status == 200, body
    assert body["checks"] == {"model": True, "outbox": True, "database": True, "migrations": True}


async def test_demo_page_and_widget_are_served(
    service: tuple[Service, TestServer], http: aiohttp.ClientSession
) -> None:
    _, server = service
    async with http.get(server.make_url("/")) as response:
        page = await response.text()
    assert response.status == 200 and '<script src="/chat/widget.js"' in page
    for path in ("/chat/widget.js", "/chat/widget.css"):
        async with http.get(server.make_url(path)) as response:
            assert response.status == 200 and len(await response.read()) > 500


async def test_a_question_gets_an_answer_and_a_reload_resumes_the_conversation(
    service: tuple[Service, TestServer], http: aiohttp.ClientSession
) -> None:
    _, server = service
    first = await visitor(http, server)
    welcome = await first.hello()
    assert welcome["history"] == [] and welcome["max_chars"] == 50
    message_id = await first.say("where is my order")
    now = "2026-11-18T10:00:00.000Z"  # the service's clock
    assert await first.next_of("ack") == {"type": "ack", "id": message_id, "at": now}
    reply = await first.next_of("message")
    assert reply["author"] == "bot" and reply["text"] == "Track it at https://track.example."
    assert reply["at"] == now
    await first.ws.close()

    again = await visitor(http, server)
    await again.hello(first.token)
    # Every message of the history comes with its time, ISO 8601 in UTC.
    assert [(m["author"], m["text"], m["at"]) for m in again.history] == [
        ("customer", "where is my order", now),
        ("bot", "Track it at https://track.example.", now),
    ]


async def test_every_time_sent_is_iso_8601_utc(
    service: tuple[Service, TestServer], http: aiohttp.ClientSession, clock: Clock
) -> None:
    _, server = service
    clock.now = datetime(2026, 11, 18, 10, 5, 7, 123456, tzinfo=UTC)
    first = await visitor(http, server)
    await first.hello()
    await first.say("where is my order")
    frames = [await first.next_of("ack"), await first.next_of("message")]
    again = await visitor(http, server)
    await again.hello(first.token)
    times = [frame["at"] for frame in [*frames, *again.history]]
    assert times == ["2026-11-18T10:05:07.123Z"] * 4
    assert all(ISO_UTC.match(t) for t in times)


async def test_a_handoff_is_flagged_as_a_notice(
    service: tuple[Service, TestServer], http: aiohttp.ClientSession
) -> None:
    _, server = service
    customer = await visitor(http, server)
    await customer.hello()
    await customer.say("delete my account")
    reply = await customer.next_of("message")
    assert reply["handoff"] is True and "a person from our team" in reply["text"]


async def test_clarification_choices_are_sent_as_buttons(
    service: tuple[Service, TestServer], http: aiohttp.ClientSession
) -> None:
    _, server = service
    customer = await visitor(http, server)
    await customer.hello()
    await customer.say("return item label")
    reply = await customer.next_of("message")
    assert {c["label"] for c in reply["choices"]} == {"Returns", "Return label"}
    await customer.say(reply["choices"][0]["label"])
    answer = await customer.next_of("message")
    assert answer["choices"] == [] and answer["author"] == "bot" and not answer["handoff"]


@pytest.mark.parametrize(
    ("token", "why"),
    [("garbage", "not a token"), ("tampered", "altered signature"), ("foreign", "other purpose")],
)
async def test_a_bad_token_is_refused_and_reads_nothing(
    service: tuple[Service, TestServer], http: aiohttp.ClientSession, token: str, why: str
) -> None:
    _running, server = service
    owner = await visitor(http, server)
    await owner.hello()
    await owner.say("where is my order")
    await owner.next_of("message")
    assert owner.token is not None
    forged = {
        "garbage": "garbage",
        "tampered": owner.token[:-3] + ("aaa" if not owner.token.endswith("aaa") else "bbb"),
        "foreign": Signer(b"x" * 48, "inbox-session").sign("v-123", ttl=60),
    }[token]
    intruder = await visitor(http, server)
    frame = await intruder.hello(forged)
    assert frame["type"] == "error" and frame["code"] == "bad_token", why
    closing = await intruder.ws.receive(timeout=5)
    assert closing.type is aiohttp.WSMsgType.CLOSE and closing.data == 4401
    assert intruder.history == []


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("not json", "bad_frame"),
        ('["a list"]', "bad_frame"),
        ('{"type": "message", "text": "no id"}', "bad_frame"),
        ('{"type": "dance"}', "bad_frame"),
        ('{"type": "message", "id": "1", "text": "   "}', "empty"),
        ('{"type": "message", "id": "1", "text": "' + "x" * 51 + '"}', "too_long"),
    ],
)
async def test_bad_frames_get_a_clear_error_and_store_nothing(
    service: tuple[Service, TestServer], http: aiohttp.ClientSession, frame: str, code: str
) -> None:
    running, server = service
    customer = await visitor(http, server)
    await customer.hello()
    before = await count(running, Message)
    await customer.ws.send_str(frame)
    error = await customer.next_of("error")
    assert error["code"] == code and error["message"]
    assert await count(running, Message) == before
    # The socket stays usable after an error.
    await customer.say("where is my order")
    assert (await customer.next_of("message"))["author"] == "bot"


async def test_a_frame_before_hello_is_refused(
    service: tuple[Service, TestServer], http: aiohttp.ClientSession
) -> None:
    _, server = service
    customer = await visitor(http, server)
    await customer.say("hi")
    assert (await customer.next_of("error"))["code"] == "bad_frame"


async def test_a_resent_message_is_answered_once(
    service: tuple[Service, TestServer], http: aiohttp.ClientSession
) -> None:
    running, server = service
    customer = await visitor(http, server)
    await customer.hello()
    await customer.say("where is my order", message_id="same-id")
    await customer.next_of("message")
    await customer.say("where is my order", message_id="same-id")
    await customer.next_of("ack")
    with pytest.raises(asyncio.TimeoutError):
        await customer.next_of("message", timeout=0.5)
    assert await count(running, OutboxRow) == 1


async def outcome(customer: Visitor) -> dict[str, Any]:
    """The ack or error that answers the message just sent."""
    frame = await customer.receive()
    while frame["type"] not in ("ack", "error"):
        frame = await customer.receive()
    return frame


async def test_sending_too_fast_is_rate_limited(
    service: tuple[Service, TestServer], http: aiohttp.ClientSession
) -> None:
    _, server = service
    customer = await visitor(http, server)
    await customer.hello()
    outcomes = []
    for i in range(9):
        await customer.say(f"hello {i}")
        frame = await outcome(customer)
        outcomes.append(frame.get("code", frame["type"]))
    assert outcomes == ["ack"] * 8 + ["rate_limited"]


async def test_a_rate_limited_message_is_taken_when_sent_again_after_a_minute(
    service: tuple[Service, TestServer], http: aiohttp.ClientSession, clock: Clock
) -> None:
    running, server = service
    customer = await visitor(http, server)
    await customer.hello()
    for _ in range(8):
        await customer.say("where is my order")
        assert (await outcome(customer))["type"] == "ack"
    refused = await customer.say("where is my order")
    error = await outcome(customer)
    assert (error["code"], error["id"]) == ("rate_limited", refused)
    assert error["message"] == (
        "You are sending messages faster than we can take them. "
        "Please wait a moment, then tap Retry."
    )
    async with running.runtime.db.session() as session:
        kept = await session.scalar(
            select(func.count()).where(Message.external_id.like(f"%{refused}"))
        )
    assert kept == 0
    clock.advance(61)
    await customer.say("where is my order", message_id=refused)  # the widget's Retry
    assert (await customer.next_of(("ack", "error")))["id"] == refused  # the reply is kept
    reply = await customer.next_of("message")
    assert (reply["text"], reply["at"]) == (
        "Track it at https://track.example.",
        "2026-11-18T10:01:01.000Z",  # answered now, not an answer to one of the eight
    )


async def test_other_tabs_of_the_same_visitor_see_the_whole_conversation(
    service: tuple[Service, TestServer], http: aiohttp.ClientSession
) -> None:
    _, server = service
    tab1 = await visitor(http, server)
    await tab1.hello()
    tab2 = await visitor(http, server)
    await tab2.hello(tab1.token)
    await tab1.say("where is my order")
    echo = await tab2.next_of("message")
    assert (echo["author"], echo["text"]) == ("customer", "where is my order")
    assert (await tab2.next_of("message"))["author"] == "bot"


async def test_a_foreign_origin_is_refused_when_origins_are_configured(
    tmp_path: Path, database_url: str, http: aiohttp.ClientSession
) -> None:
    settings = service_settings(tmp_path, webchat={"allowed_origins": ["https://shop.example"]})
    async with running_service(settings, database_url) as (_, server):
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(
                server.make_url("/chat/ws"), headers={"Origin": "https://evil.example"}
            )
        assert refused.value.status == 403
        ok = await http.ws_connect(
            server.make_url("/chat/ws"), headers={"Origin": "https://shop.example"}
        )
        await ok.close()


async def test_two_visitors_may_use_the_same_message_id(
    service: tuple[Service, TestServer], http: aiohttp.ClientSession
) -> None:
    """Message ids come from browsers: they are only unique per visitor."""
    _, server = service
    first, second = await visitor(http, server), await visitor(http, server)
    await first.hello()
    await second.hello()
    for customer in (first, second):
        await customer.say("where is my order", message_id="1")
        assert (await customer.next_of("message"))["author"] == "bot"
    again = await visitor(http, server)
    await again.hello(first.token)
    assert [m["id"] for m in again.history if m["author"] == "customer"] == ["1"]


async def test_a_message_over_the_limit_is_explained_with_both_numbers(
    tmp_path: Path, database_url: str, http: aiohttp.ClientSession
) -> None:
    settings = service_settings(tmp_path, webchat={"max_message_chars": 2000})
    async with running_service(settings, database_url) as (running, server):
        customer = await visitor(http, server)
        await customer.hello()
        refused = await customer.say("x" * 2340)
        error = await customer.next_of("error")
        assert error == {
            "type": "error",
            "code": "too_long",
            "id": refused,
            "message": "Your message is 2,340 characters; the limit is 2,000. Please shorten it.",
            "max_chars": 2000,
        }
        assert await count(running, Message) == 0


OPEN, CLOSED_EVENING, WEEKEND = (
    datetime(2026, 11, 18, 10, 0, tzinfo=UTC),  # a Wednesday
    datetime(2026, 11, 18, 20, 0, tzinfo=UTC),
    datetime(2026, 11, 21, 12, 0, tzinfo=UTC),  # a Saturday
)


@pytest.mark.parametrize(
    ("now", "status"),
    [
        (OPEN, {"online": True, "text": "Online \u2013 we usually reply within minutes"}),
        (
            CLOSED_EVENING,
            {
                "online": False,
                "text": "Offline \u2013 back tomorrow at 09:00 (UTC)",
                "next_open": "2026-11-19T09:00:00.000Z",
            },
        ),
        (
            WEEKEND,
            {
                "online": False,
                "text": "Offline \u2013 back Monday at 09:00 (UTC)",
                "next_open": "2026-11-23T09:00:00.000Z",
            },
        ),
    ],
)
async def test_the_welcome_says_whether_the_team_is_online(
    service: tuple[Service, TestServer],
    http: aiohttp.ClientSession,
    clock: Clock,
    now: datetime,
    status: dict[str, Any],
) -> None:
    _, server = service
    clock.now = now
    customer = await visitor(http, server)
    welcome = await customer.hello()
    assert welcome["status"] == {"next_open": None, **status}


async def test_the_status_is_asked_again_and_follows_the_clock(
    service: tuple[Service, TestServer], http: aiohttp.ClientSession, clock: Clock
) -> None:
    _, server = service
    customer = await visitor(http, server)
    assert (await customer.hello())["status"]["online"] is True
    clock.now = CLOSED_EVENING
    await customer.ws.send_json({"type": "status"})
    answer = await customer.next_of("status")
    assert answer["status"]["text"] == "Offline \u2013 back tomorrow at 09:00 (UTC)"


async def test_the_widget_is_served_with_the_configured_texts(
    tmp_path: Path, database_url: str, http: aiohttp.ClientSession
) -> None:
    texts = {"online": "Here for you", "agent_typing": "{agent} is writing", "retry": "Again"}
    german = {
        "online": "Wir sind für Sie da",
        "offline": "Offline \u2013 wieder da {next_open}",
        "empty": "Ihre Nachricht ist leer.",
    }
    settings = service_settings(
        tmp_path,
        webchat={"texts": {**texts, "de": german}},
        messages={"de": {"next_open_tomorrow": "morgen um {time}"}},
    )
    clock = Clock()
    async with running_service(settings, database_url, clock) as (_, server):
        async with http.get(server.make_url("/chat/widget.js")) as response:
            script = await response.text()
            tag = response.headers["ETag"]
        assert response.content_type == "text/javascript"
        found = re.search(r"^  const TEXTS = (\{.*\});$", script, re.MULTILINE)
        assert found is not None
        served = json.loads(found.group(1))
        assert served["default"] == "en" and set(served["by_language"]) == {"en", "de"}
        english, in_german = served["by_language"]["en"], served["by_language"]["de"]
        assert {key: english[key] for key in texts} == texts
        assert english["not_sent"] == "Not sent"  # the default of what was not set
        assert set(english) == set(WebChatTexts.text_names()) == set(in_german)
        # German: its table's texts, the others as [webchat.texts] writes them
        assert in_german["online"] == german["online"] and in_german["retry"] == "Again"
        # Unchanged since: the browser keeps its copy.
        async with http.get(
            server.make_url("/chat/widget.js"), headers={"If-None-Match": tag}
        ) as again:
            assert again.status == 304
        customer = await visitor(http, server)
        assert (await customer.hello())["status"]["text"] == "Here for you"
        # A tab whose widget chose German hears the server's notices in German; one that
        # chose a language without texts, in the default's.
        kunde, other = await visitor(http, server), await visitor(http, server)
        assert (await kunde.hello(language="de"))["status"]["text"] == german["online"]
        assert (await other.hello(language="it"))["status"]["text"] == "Here for you"
        await kunde.say("   ")
        assert (await kunde.next_of("error"))["message"] == german["empty"]
        clock.now = CLOSED_EVENING  # {next_open} in German too ([messages.de])
        await kunde.ws.send_json({"type": "status"})
        status = (await kunde.next_of("status"))["status"]
        assert status["text"] == "Offline \u2013 wieder da morgen um 09:00 (UTC)"


async def test_no_status_when_it_is_switched_off(
    tmp_path: Path, database_url: str, http: aiohttp.ClientSession
) -> None:
    settings = service_settings(tmp_path, webchat={"show_status": False})
    async with running_service(settings, database_url) as (_, server):
        customer = await visitor(http, server)
        assert (await customer.hello())["status"] is None
        await customer.ws.send_json({"type": "status"})
        assert await customer.next_of("status") == {"type": "status", "status": None}


CSRF = re.compile(r'name="csrf" value="([^"]+)"')


async def agent(server: TestServer, name: str) -> tuple[aiohttp.ClientSession, str]:
    """A logged-in agent's browser (cookies kept) and its CSRF token."""
    browser = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    async with browser.get(server.make_url("/inbox/login")) as response:
        csrf = CSRF.search(await response.text()).group(1)  # type: ignore[union-attr]
    form = {"name": name, "password": AGENT_PASSWORD, "csrf": csrf, "next": "/inbox"}
    async with browser.post(server.make_url("/inbox/login"), data=form) as response:
        csrf = CSRF.search(await response.text()).group(1)  # type: ignore[union-attr]
    return browser, csrf


async def typing_of(customer: Visitor) -> str:
    """The name in the next "agent is typing" frame (the bot's typing frames have none)."""
    while True:
        frame = await customer.next_of("typing")
        if frame.get("agent"):
            assert frame["on"] is True
            return str(frame["agent"])


async def test_an_agent_typing_in_the_inbox_is_shown_to_that_conversations_visitor_only(
    tmp_path: Path, database_url: str, http: aiohttp.ClientSession
) -> None:
    digest = hash_password(AGENT_PASSWORD)
    people = [
        {"name": n, "display_name": n.title(), "password_hash": digest} for n in ("ann", "bob")
    ]
    settings = service_settings(tmp_path, inbox={"agents": people})
    async with running_service(settings, database_url) as (_, server):
        first, second = await visitor(http, server), await visitor(http, server)
        for customer, text in ((first, UPSET), (second, "where is my order")):
            await customer.hello()
            await customer.say(text)  # conversations 1 and 2
            await customer.next_of("message")
        (ann, ann_csrf), (bob, bob_csrf) = await agent(server, "ann"), await agent(server, "bob")
        try:
            async with ann.get(server.make_url("/inbox/c/1")) as response:
                page = await response.text()
            assert 'data-typing="/inbox/c/1/typing"' in page and "/typing.js" in page
            live = await ann.ws_connect(server.make_url("/inbox/events"))

            async def typing(browser: aiohttp.ClientSession, conversation: int, csrf: str) -> int:
                url = server.make_url(f"/inbox/c/{conversation}/typing")
                async with browser.post(url, data={"csrf": csrf}) as response:
                    return response.status

            assert await typing(http, 1, "") == 401  # no session
            assert await typing(bob, 1, "forged") == 403  # no event either
            assert await typing(bob, 2, bob_csrf) == 204
            assert await typing(ann, 1, ann_csrf) == 204
            # Each visitor hears of the agent typing in their own conversation, nothing else.
            assert await typing_of(first) == "Ann"
            assert await typing_of(second) == "Bob"

            # The inbox pages are not refreshed for it: they hear of real changes only.
            await second.say("thanks")
            heard = [await live.receive_json(timeout=10)]
            while heard[-1]["kind"] != "customer_message":
                heard.append(await live.receive_json(timeout=10))
            assert "agent_typing" not in [change["kind"] for change in heard]
            await live.close()
        finally:
            await ann.close()
            await bob.close()


async def test_a_non_ascii_token_is_refused_not_a_crash(
    service: tuple[Service, TestServer], http: aiohttp.ClientSession
) -> None:
    _, server = service
    intruder = await visitor(http, server)
    frame = await intruder.hello("abc.é")
    assert frame["code"] == "bad_token"


@pytest.mark.parametrize(
    ("stored", "frames"),
    [
        # The reply is pushed as it is sent, before the core returns (its delivery is being
        # recorded then); the ack follows.
        (True, ["typing", "message", "ack", "typing"]),
        # Nothing was stored (the database was unreachable): no ack, which the widget would
        # take for "kept" and forget the message; "unavailable", so it is sent again.
        (False, ["typing", "typing", "error"]),
    ],
    ids=["stored", "not stored"],
)
async def test_a_message_is_acknowledged_only_once_stored_and_handled(
    stored: bool, frames: list[str]
) -> None:
    signer = Signer(b"k" * 48, "webchat-visitor")

    async def deliver(event: ChannelEvent) -> None:
        assert isinstance(event, InboundMessage)
        if not stored:
            raise ConnectionRefusedError("the database is unreachable")
        reply = OutboundReply(1, "webchat", event.external_user_id, "Track it.")
        await channel.send(reply)  # the outbox sends the answer before the core returns

    channel, app = await started_channel(signer, no_history, deliver=deliver)
    async with TestServer(app) as server, aiohttp.ClientSession() as http:
        customer = await visitor(http, server)
        await customer.hello()
        message_id = await customer.say("where is my order")
        seen = [await customer.receive() for _ in frames]
        await customer.ws.close()
    await channel.close()
    assert [frame["type"] for frame in seen] == frames
    assert seen[-1 if not stored else 2]["id"] == message_id
    assert [f.get("on") for f in seen if f["type"] == "typing"] == [True, False]


async def test_a_reply_reaches_the_tab_at_once_while_its_next_message_is_being_handled() -> None:
    """The reply to a tab's message, decided in the background (it took over 5 s: the tab had
    its ack), comes while the tab's next message waits for its conversation: it is pushed at
    once, not held behind that message's ack (the chaos bench saw replies 5 s late so)."""
    signer = Signer(b"k" * 48, "webchat-visitor")
    shown = asyncio.Event()

    async def deliver(event: ChannelEvent) -> None:
        assert isinstance(event, InboundMessage)
        if event.text == "and my invoice?":  # the previous message's reply comes meanwhile
            previous = OutboundReply(1, "webchat", event.external_user_id, "Track it.")
            await channel.send(previous)
            await shown.wait()  # handled once the tab has the previous reply

    channel, app = await started_channel(signer, no_history, deliver=deliver)
    async with TestServer(app) as server, aiohttp.ClientSession() as http:
        customer = await visitor(http, server)
        await customer.hello()
        await customer.say("and my invoice?")
        try:
            reply = await customer.next_of("message", timeout=5.0)  # times out when held
        finally:
            shown.set()  # so that a failure does not leave the handler waiting
        ack = await customer.next_of("ack")
        await customer.ws.close()
    await channel.close()
    assert (reply["id"], reply["text"]) == ("r1", "Track it.")
    assert ack["type"] == "ack"


async def test_a_reply_the_tabs_here_missed_reaches_them_when_another_tab_connects() -> None:
    """Several workers: a reply another worker stored and sent, whose event was lost (that
    worker died before telling the others). A second tab of the visitor connecting here gets
    it in its history; the tab already here gets it pushed then (it used to be marked as shown
    for every tab here, and the first never got it)."""
    signer = Signer(b"k" * 48, "webchat-visitor")
    stored: list[TranscriptLine] = []

    async def transcript(_visitor: str) -> list[TranscriptLine]:
        return list(stored)

    channel, app = await started_channel(signer, transcript)
    async with TestServer(app) as server, aiohttp.ClientSession() as http:
        first = await visitor(http, server)
        await first.hello()
        at = datetime(2026, 11, 18, 10, 0, tzinfo=UTC)
        stored.append(TranscriptLine("bot", "Track it.", at, outbox_id=7))  # by another worker
        second = await visitor(http, server)
        await second.hello(first.token)
        assert [m["id"] for m in second.history] == ["r7"]
        pushed = await first.next_of("message")
        for tab in (first, second):
            await tab.ws.close()
    await channel.close()
    assert (pushed["id"], pushed["text"]) == ("r7", "Track it.")


async def no_history(_visitor: str) -> list[TranscriptLine]:
    return []


async def ignore(_event: ChannelEvent) -> None: ...


async def started_channel(
    signer: Signer,
    transcript: Any,
    hub: EventHub | None = None,
    *,
    deliver: Callable[[ChannelEvent], Awaitable[None]] = ignore,
    **collaborators: Any,
) -> tuple[WebChatChannel, web.Application]:
    """The web chat channel, mounted and started with ``deliver`` as the core; with ``hub``, as
    one of several workers (the hub's events relayed to the others)."""
    if hub is not None:
        hub.relay_to(lambda _event: None)  # other workers share the store
    channel = WebChatChannel(
        settings=WebChatSettings(),
        signer=signer,
        transcript=transcript,
        events=hub,
        **collaborators,
    )
    app = web.Application()
    channel.mount(app)
    await channel.start(deliver)
    return channel, app


@pytest.mark.parametrize("other_tab", [True, False], ids=["another_tab_here", "only_tab"])
async def test_a_reply_sent_while_a_tab_says_hello_reaches_it_after_its_history(
    other_tab: bool,
) -> None:
    """A reply pushed while a new tab's history is being read, and stored after the read (so
    not in it), reaches the new tab at the end of its history. Before, the reply went only to
    the visitor's other tab here, was counted shown, and the new tab later got the next reply
    without it (chaos run 28: a tab out of order)."""
    signer = Signer(b"k" * 48, "webchat-visitor")
    at = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
    stored = [TranscriptLine("bot", "Hello.", at, outbox_id=5)]
    reading, go_on = asyncio.Event(), asyncio.Event()
    hold = False

    async def transcript(visitor_id: str) -> list[TranscriptLine]:
        found = list(stored)  # as the read saw them
        if hold:
            reading.set()
            await go_on.wait()
        return found

    channel, app = await started_channel(signer, transcript)
    async with TestServer(app) as server, aiohttp.ClientSession() as http:
        new = await visitor(http, server)
        await new.hello()  # a new visitor: no history yet
        await new.ws.close()
        first = await visitor(http, server)
        await first.hello(new.token)  # comes back: "Hello." in its history
        visitor_id = signer.verify(str(first.token))
        assert visitor_id is not None and [f["id"] for f in first.history] == ["r5"]
        if not other_tab:
            await first.ws.close()
        hold = True
        second = await visitor(http, server)
        hello = asyncio.create_task(second.hello(first.token))
        await asyncio.wait_for(reading.wait(), timeout=5)
        stored.append(TranscriptLine("bot", "Track it.", at, outbox_id=7))
        await channel.send(OutboundReply(7, "webchat", visitor_id, "Track it.", conversation_id=1))
        go_on.set()
        await asyncio.wait_for(hello, timeout=5)
        hold = False
        stored.append(TranscriptLine("bot", "Anything else?", at, outbox_id=9))
        await channel.send(
            OutboundReply(9, "webchat", visitor_id, "Anything else?", conversation_id=1)
        )
        after = (await second.next_of("message"))["id"]
        if other_tab:
            assert [(await first.next_of("message"))["id"] for _ in range(2)] == ["r7", "r9"]
        await second.ws.close()
        await first.ws.close()
    await channel.close()
    assert [f["id"] for f in second.history] == ["r5", "r7"] and after == "r9"


@pytest.mark.parametrize("writer_knew", [False, True], ids=["read", "known"])
async def test_a_reply_whose_predecessor_the_tabs_here_missed_comes_after_it(
    writer_knew: bool,
) -> None:
    """Several workers: another worker sent reply 7 and its event has not come (or was lost);
    this worker now sends reply 9 of the same conversation. The tab here gets 7 (read from the
    store) before 9, and 9 once; a reply whose predecessor the tab has costs no read. The reply
    before each is read from the store, or (``writer_knew``: a reply just written) carried by
    the reply itself, and then never read."""
    signer = Signer(b"k" * 48, "webchat-visitor")
    at = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)
    stored: list[TranscriptLine] = []
    reads: list[str] = []
    before = {5: None, 7: 5, 9: 7, 11: 9}
    asked_before: list[int] = []

    async def transcript(visitor_id: str) -> list[TranscriptLine]:
        reads.append(visitor_id)
        return list(stored)

    async def reply_before(conversation_id: int, outbox_id: int) -> int | None:
        assert conversation_id == 1
        asked_before.append(outbox_id)
        return before[outbox_id]

    channel, app = await started_channel(signer, transcript, EventHub(), reply_before=reply_before)
    async with TestServer(app) as server, aiohttp.ClientSession() as http:
        tab = await visitor(http, server)
        await tab.hello()
        visitor_id = signer.verify(str(tab.token))
        assert visitor_id is not None

        async def send(outbox_id: int, text: str, *, here: bool) -> None:
            stored.append(TranscriptLine("bot", text, at, outbox_id=outbox_id))
            if here:
                known = before[outbox_id] or 0 if writer_knew else None
                reply = OutboundReply(
                    outbox_id, "webchat", visitor_id, text, conversation_id=1, previous=known
                )
                await channel.send(reply)

        await send(5, "Hello.", here=True)
        await send(7, "Track it.", here=False)  # by another worker, whose event is late
        await send(9, "Anything else?", here=True)
        pushed = [(await tab.next_of("message"))["id"] for _ in range(3)]
        await send(11, "Bye.", here=True)  # its predecessor was shown: no read
        pushed.append((await tab.next_of("message"))["id"])
        await tab.ws.close()
    await channel.close()
    assert pushed == ["r5", "r7", "r9", "r11"]
    assert reads == [visitor_id]  # only for reply 9
    assert asked_before == ([] if writer_knew else [5, 9, 11])


async def test_news_from_other_workers_reach_each_visitor_without_waiting_for_another() -> None:
    """Several workers: replies another worker sent reach the tabs here through a look at the
    store per visitor. Ann's look is slow (a busy pool); Bob's news meanwhile are shown at once,
    not after hers (one look at a time, the relay fell seconds behind under load). Ann's further
    news during her look make one more look, not one each, and her tab gets both, in order."""
    signer = Signer(b"k" * 48, "webchat-visitor")
    at = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
    lines: dict[str, list[TranscriptLine]] = {}
    reads: list[str] = []
    ann_reading, ann_go_on = asyncio.Event(), asyncio.Event()
    ids: dict[int, str] = {}

    async def transcript(visitor_id: str) -> list[TranscriptLine]:
        reads.append(visitor_id)
        found = list(lines.get(visitor_id, []))  # as read when the query ran
        if visitor_id == ids[1] and not ann_go_on.is_set():
            ann_reading.set()
            await ann_go_on.wait()
        return found

    async def visitor_of(conversation_id: int) -> str | None:
        return ids[conversation_id]

    hub = EventHub()
    channel, app = await started_channel(signer, transcript, hub, visitor_of=visitor_of)
    async with TestServer(app) as server, aiohttp.ClientSession() as http:
        ann, bob = await visitor(http, server), await visitor(http, server)
        await ann.hello()
        await bob.hello()
        for conversation, tab in ((1, ann), (2, bob)):
            ids[conversation] = str(signer.verify(str(tab.token)))

        def sent(conversation: int, outbox_id: int, text: str) -> None:  # by another worker
            lines.setdefault(ids[conversation], []).append(
                TranscriptLine("bot", text, at, outbox_id=outbox_id)
            )
            hub.receive(Event("webchat_reply", conversation, ref=outbox_id, remote=True))

        sent(1, 5, "Hello Ann.")
        await ann_reading.wait()
        sent(2, 6, "Hello Bob.")
        try:
            bob_got = await bob.next_of("message", timeout=5.0)  # times out behind Ann's look
            sent(1, 7, "Track it.")
            sent(1, 8, "Anything else?")
        finally:
            ann_go_on.set()  # so that a failure does not leave Ann's look waiting
        ann_got = [(await ann.next_of("message"))["id"] for _ in range(3)]
        for tab in (ann, bob):
            await tab.ws.close()
    await channel.close()
    assert bob_got["id"] == "r6"
    assert ann_got == ["r5", "r7", "r8"]
    assert sorted(reads) == sorted([ids[1], ids[2], ids[1]])  # Ann: her look, then one more


async def test_a_look_at_every_visitor_reads_only_those_missing_their_latest_reply() -> None:
    """Several workers, a resync (or the backstop): one query for every visitor's latest reply,
    then the messages of only the visitor whose tab here lacks it."""
    signer = Signer(b"k" * 48, "webchat-visitor")
    at = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)
    lines: dict[str, list[TranscriptLine]] = {}
    reads: list[str] = []
    latest: dict[str, int] = {}

    async def transcript(visitor_id: str) -> list[TranscriptLine]:
        reads.append(visitor_id)
        return list(lines.get(visitor_id, []))

    async def latest_replies(visitors: list[str]) -> dict[str, int]:
        return {v: latest[v] for v in visitors if v in latest}

    async def visitor_of(_conversation_id: int) -> str | None:
        return None

    hub = EventHub()
    channel, app = await started_channel(
        signer, transcript, hub, visitor_of=visitor_of, latest_replies=latest_replies
    )
    async with TestServer(app) as server, aiohttp.ClientSession() as http:
        ann, bob = await visitor(http, server), await visitor(http, server)
        await ann.hello()
        await bob.hello()
        ann_id, bob_id = signer.verify(str(ann.token)), signer.verify(str(bob.token))
        assert ann_id is not None and bob_id is not None
        await channel.send(OutboundReply(5, "webchat", ann_id, "Hello.", conversation_id=1))
        await ann.next_of("message")
        lines[ann_id] = [TranscriptLine("bot", "Hello.", at, outbox_id=5)]
        lines[bob_id] = [TranscriptLine("bot", "Track it.", at, outbox_id=9)]  # event lost
        latest.update({ann_id: 5, bob_id: 9})
        hub.receive(Event(RESYNC, 0, remote=True))  # the relay reconnected
        pushed = await bob.next_of("message")
        for tab in (ann, bob):
            await tab.ws.close()
    await channel.close()
    assert pushed["id"] == "r9"
    assert reads == [bob_id]


async def test_a_tab_gone_before_its_welcome_still_gets_the_others_what_they_missed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Several workers: a second tab of the visitor connects here and goes away while its
    history is read (a browser that gave up). The reply in that history that the first tab
    here missed (another worker's, whose event was lost) is marked shown: the first tab must
    get it all the same, and the closed tab is no error."""
    signer = Signer(b"k" * 48, "webchat-visitor")
    at = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)
    stored: list[TranscriptLine] = []
    reading, go_on = asyncio.Event(), asyncio.Event()

    async def transcript(_visitor: str) -> list[TranscriptLine]:
        if stored:  # the second tab's hello
            reading.set()
            await go_on.wait()
        return list(stored)

    channel, app = await started_channel(signer, transcript)
    # As `carebot serve` runs it: a handler goes on when its client goes away (the test
    # server would cancel it).
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/chat/ws"
    async with aiohttp.ClientSession() as http:
        first = Visitor(await http.ws_connect(url))
        await first.hello()
        stored.append(TranscriptLine("bot", "Track it.", at, outbox_id=7))  # by another worker
        async with aiohttp.ClientSession() as gone:
            ws = await gone.ws_connect(url)
            await ws.send_json({"type": "hello", "token": first.token})
            await reading.wait()
        # (the session closed: its socket is gone before the welcome is written)
        go_on.set()
        pushed = await first.next_of("message")
        await first.ws.close()
    await channel.close()
    await runner.cleanup()
    assert (pushed["id"], pushed["text"]) == ("r7", "Track it.")
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_hello_whose_history_cannot_be_read_is_asked_to_connect_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    signer = Signer(b"k" * 48, "webchat-visitor")

    async def transcript(_visitor: str) -> list[TranscriptLine]:
        raise TimeoutError("every pooled connection stayed busy")

    channel, app = await started_channel(signer, transcript)
    async with TestServer(app) as server, aiohttp.ClientSession() as http:
        ws = await http.ws_connect(server.make_url("/chat/ws"))
        await ws.send_json({"type": "hello", "token": signer.sign("v-ann", ttl=60)})
        closing = await ws.receive(timeout=10)
    await channel.close()
    assert (closing.type, ws.close_code) == (aiohttp.WSMsgType.CLOSE, 1013)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_tab_gone_before_its_socket_opens_is_no_error(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The browser gave up while the socket's handshake was written (an overloaded worker):
    nothing is logged as an error (aiohttp used to fail ending the half-opened socket)."""
    signer = Signer(b"k" * 48, "webchat-visitor")

    async def transcript(_visitor: str) -> list[TranscriptLine]:
        return []

    prepare = web.WebSocketResponse.prepare
    failed: list[web.WebSocketResponse] = []

    async def gone(self: web.WebSocketResponse, request: web.Request) -> Any:
        if failed:  # aiohttp's own call, ending the response
            return await prepare(self, request)
        failed.append(self)
        await web.StreamResponse.prepare(self, request)  # the handshake's headers go out
        raise ConnectionResetError("Cannot write to closing transport")

    channel, app = await started_channel(signer, transcript)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/chat/ws"
    monkeypatch.setattr(web.WebSocketResponse, "prepare", gone)
    async with aiohttp.ClientSession() as http:
        with contextlib.suppress(aiohttp.ClientError):
            await http.ws_connect(url)
    await channel.close()
    await runner.cleanup()
    assert failed
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_tabs_saying_hello_at_once_read_histories_a_few_at_a_time(
    service: tuple[Service, TestServer],
    http: aiohttp.ClientSession,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The tabs of a stopped worker come back all at once: at most the history share of them
    reads at a time (the rest wait their turn, not in the pool's queue in front of the stores),
    and every one is welcomed with its history in the end."""
    running, server = service
    runtime = running.runtime
    share = runtime.history_reads
    first = await visitor(http, server)
    await first.hello()
    assert first.token
    gate = asyncio.Event()
    reading: list[int] = []
    real = runtime.conversations.transcript

    async def slow_transcript(channel: str, user: str, *, limit: int) -> list[TranscriptLine]:
        reading.append(share.running)
        await gate.wait()
        return await real(channel, user, limit=limit)

    monkeypatch.setattr(runtime.conversations, "transcript", slow_transcript)
    tabs = [await visitor(http, server) for _ in range(share.size + 2)]
    for tab in tabs:
        await tab.ws.send_json({"type": "hello", "token": first.token})
    async with asyncio.timeout(10):
        while (share.running, share.waiting) != (share.size, 2):
            await asyncio.sleep(0.01)
    assert len(reading) == share.size and max(reading) <= share.size
    gate.set()
    for tab in tabs:
        assert (await tab.next_of("welcome"))["token"]
    assert len(reading) == share.size + 2 and max(reading) <= share.size
    assert (share.running, share.waiting) == (0, 0)
