"""The web chat channel through the real aiohttp service (fake encoder)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import func, select

from carebot.server import Service
from carebot.signing import Signer
from carebot.store.tables import Message, OutboxRow
from tests.conftest import Clock
from tests.service import Visitor, running_service, service_settings


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
        assert response.status == 200 and (await response.json()) == {"status": "up"}
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
    assert await first.next_of("ack") == {"type": "ack", "id": message_id}
    reply = await first.next_of("message")
    assert reply["author"] == "bot" and reply["text"] == "Track it at https://track.example."
    await first.ws.close()

    again = await visitor(http, server)
    await again.hello(first.token)
    assert [(m["author"], m["text"]) for m in again.history] == [
        ("customer", "where is my order"),
        ("bot", "Track it at https://track.example."),
    ]


async def test_a_handoff_is_flagged_as_a_notice(
    service: tuple[Service, TestServer], http: aiohttp.ClientSession
) -> None:
    _, server = service
    customer = await visitor(http, server)
    await customer.hello()
    await customer.say("delete my account")
    reply = await customer.next_of("message")
    assert reply["handoff"] is True and "colleague" in reply["text"]


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


async def test_sending_too_fast_is_rate_limited(
    service: tuple[Service, TestServer], http: aiohttp.ClientSession
) -> None:
    _, server = service
    customer = await visitor(http, server)
    await customer.hello()
    outcomes = []
    for i in range(9):
        await customer.say(f"hello {i}")
        frame = await customer.receive()
        while frame["type"] not in ("ack", "error"):
            frame = await customer.receive()
        outcomes.append(frame.get("code", frame["type"]))
    assert outcomes == ["ack"] * 8 + ["rate_limited"]


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


async def test_a_non_ascii_token_is_refused_not_a_crash(
    service: tuple[Service, TestServer], http: aiohttp.ClientSession
) -> None:
    _, server = service
    intruder = await visitor(http, server)
    frame = await intruder.hello("abc.é")
    assert frame["code"] == "bad_token"
