"""The Telegram channel end to end: the real service and python-telegram-bot's client against the
local Bot API stand-in, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from telegram import Bot, Update

from carebot.adapters.telegram import TelegramChannel
from carebot.config import TelegramSettings
from carebot.models import InboundMessage
from carebot.server import Service
from carebot.signing import Signer
from carebot.store.tables import Message, OutboxRow
from tests.conftest import Clock
from tests.service import UPSET, count_rows, logged, running_service, service_settings
from tests.telegram_standin import (
    TelegramStandIn,
    callback_update,
    command_update,
    edited_update,
    photo_update,
    post_update,
    sticker_update,
    text_update,
)
from tests.test_meta import refusing_to_store

T = TypeVar("T")
SECRET = "hook-secret_123"
CHAT = 4242


@asynccontextmanager
async def telegram_service(
    tmp_path: Path,
    database_url: str,
    tg: TelegramStandIn,
    clock: Clock | None = None,
    **telegram: Any,
) -> AsyncIterator[tuple[Service, TestServer]]:
    settings = service_settings(
        tmp_path,
        telegram={
            "enabled": True,
            "api_url": f"{tg.url}/bot",
            "file_url": f"{tg.url}/file/bot",
            "poll_timeout": 5,
            **telegram,
        },
        server={"public_url": "https://care.example", "secret_file": str(tmp_path / "key")},
    )
    env = {"TELEGRAM_BOT_TOKEN": tg.token, "TELEGRAM_WEBHOOK_SECRET": SECRET}
    async with running_service(settings, database_url, clock, env=env) as running:
        yield running


@pytest.fixture
async def tg() -> AsyncIterator[TelegramStandIn]:
    async with TelegramStandIn() as standin:
        yield standin


async def until(service: Service, check: Callable[[AsyncSession], Awaitable[T | None]]) -> T:
    """Wait (on the service's live events, 10 s at most) until ``check`` finds something."""
    async with service.runtime.events.subscribe() as events:
        while True:
            async with service.runtime.db.session() as session:
                found = await check(session)
            if found is not None:
                return found
            await asyncio.wait_for(events.get(), timeout=10)


async def settled_reply(session: AsyncSession) -> OutboxRow | None:
    """The first reply, once it is no longer pending."""
    row = await session.scalar(select(OutboxRow).order_by(OutboxRow.id))
    return row if row is not None and row.status != "pending" else None


async def test_polling_round_trip_with_the_typing_action(
    tmp_path: Path, database_url: str, tg: TelegramStandIn
) -> None:
    async with telegram_service(tmp_path, database_url, tg):
        update_id = tg.push(text_update(CHAT, "where is my order", first_name="Tom"))
        [reply] = await tg.next_sent(1)
        assert reply["chat_id"] == str(CHAT)
        assert reply["text"] == "Track it at https://track.example."
        await tg.wait_for(lambda s: len(s.actions) == 1)
        assert tg.actions[0]["action"] == "typing"
        await tg.wait_for(lambda s: s.waiting_polls == 1)  # polling for what comes next
    methods = [call.method for call in tg.calls]
    assert methods[:2] == ["getMe", "deleteWebhook"]
    # The last poll confirms what was handled (a cancelled long poll may answer later).
    confirmed = {"offset": str(update_id + 1), "timeout": "0"}
    assert any(confirmed.items() <= c.params.items() for c in tg.calls_of("getUpdates"))


async def test_a_redelivered_update_is_answered_once(
    tmp_path: Path, database_url: str, tg: TelegramStandIn
) -> None:
    async with telegram_service(tmp_path, database_url, tg, mode="webhook") as (service, server):
        assert tg.webhook is not None and tg.webhook["secret_token"] == SECRET
        assert tg.webhook["url"] == "https://care.example/telegram/webhook"
        update = text_update(CHAT, "where is my order")
        url = str(server.make_url("/telegram/webhook"))
        assert await post_update(url, update, secret=SECRET) == 200
        assert await post_update(url, update, secret=SECRET) == 200
        await tg.next_sent(1)
        await service.runtime.outbox.deliver_due()
        assert len(tg.sent) == 1
        assert await count_rows(service.runtime.db, Message) == 2  # the message and one reply


@pytest.mark.parametrize(
    ("headers", "content_type"),
    [
        ({"secret": "wrong"}, "application/json"),
        ({}, "application/json"),
        ({"secret": SECRET}, "application/json; charset=utf-8"),
        ({"secret": SECRET}, "text/plain"),
    ],
    ids=["wrong-secret", "no-secret", "charset-suffix", "not-json"],
)
async def test_a_webhook_call_without_the_secret_or_json_is_refused_and_not_processed(
    tmp_path: Path,
    database_url: str,
    tg: TelegramStandIn,
    headers: dict[str, str],
    content_type: str,
) -> None:
    async with telegram_service(tmp_path, database_url, tg, mode="webhook") as (service, server):
        url = str(server.make_url("/telegram/webhook"))
        update = text_update(CHAT, "where is my order")
        status = await post_update(url, update, content_type=content_type, **headers)
        assert status == 403
        assert await count_rows(service.runtime.db, Message) == 0
        assert await post_update(url, update, secret=SECRET) == 200  # the real one goes through
        await tg.next_sent(1)


@pytest.mark.parametrize(
    ("failure", "wanted"),
    [
        ({"status": 429, "retry_after": 1}, [429, 200]),
        ({"status": 502}, [502, 200]),
        ({"status": 500, "times": 2}, [500, 500, 200]),
    ],
    ids=["429-retry-after", "502", "500-twice"],
)
async def test_a_failed_send_is_retried_and_delivered_once(
    tmp_path: Path,
    database_url: str,
    tg: TelegramStandIn,
    failure: dict[str, Any],
    wanted: list[int],
) -> None:
    tg.fail_next("sendMessage", **failure)
    async with telegram_service(tmp_path, database_url, tg) as (service, _server):
        tg.push(text_update(CHAT, "where is my order"))
        row = await until(service, settled_reply)
        assert [call.status for call in tg.calls_of("sendMessage")] == wanted
        assert len(tg.sent) == 1
        assert row.status == "sent" and row.attempts == len(wanted)
        assert row.external_id == str(tg.last_message(CHAT)["message_id"])


async def test_a_chat_that_blocked_the_bot_is_refused_for_good(
    tmp_path: Path, database_url: str, tg: TelegramStandIn
) -> None:
    tg.fail_next("sendMessage", 403, times=5)
    async with telegram_service(tmp_path, database_url, tg) as (service, _server):
        tg.push(text_update(CHAT, "where is my order"))
        row = await until(service, settled_reply)
        assert row.status == "failed"
        assert "blocked" in (row.delivery_error or "")
        assert len(tg.calls_of("sendMessage")) == 1  # not retried


async def test_start_is_greeted(tmp_path: Path, database_url: str, tg: TelegramStandIn) -> None:
    async with telegram_service(tmp_path, database_url, tg) as (service, _server):
        tg.push(command_update(CHAT, "/start"))
        [reply] = await tg.next_sent(1)
        assert reply["text"] == service.runtime.settings.messages.welcome


async def test_a_clarification_offers_buttons_and_a_tap_picks_one(
    tmp_path: Path, database_url: str, tg: TelegramStandIn
) -> None:
    async with telegram_service(tmp_path, database_url, tg):
        tg.push(text_update(CHAT, "return item label"))
        [question] = await tg.next_sent(1)
        keyboard = question["reply_markup"]["inline_keyboard"]
        assert len(keyboard) >= 2
        first = keyboard[0][0]
        message = tg.last_message(CHAT)
        tg.push(
            callback_update(
                CHAT,
                first["callback_data"],
                message_id=message["message_id"],
                keyboard=keyboard,
            )
        )
        answer = (await tg.next_sent(2))[1]
        assert "reply_markup" not in answer or not answer["reply_markup"]
        await tg.wait_for(lambda s: len(s.answered_callbacks) == 1)


async def test_files_get_a_polite_answer_and_reach_the_agent_as_a_link(
    tmp_path: Path, database_url: str, tg: TelegramStandIn, clock: Clock
) -> None:
    tg.add_file("photo-1", b"\x89PNG fake", path="photos/file_1.png")
    async with telegram_service(tmp_path, database_url, tg, clock) as (service, server):
        tg.push(sticker_update(CHAT))
        [polite] = await tg.next_sent(1)
        assert polite["text"] == service.runtime.settings.messages.media_only
        tg.push(text_update(CHAT, UPSET))  # handed to a person
        await tg.next_sent(2)
        tg.push(photo_update(CHAT, "photo-1", caption="the box"))
        conversation_id = await until(
            service,
            lambda session: session.scalar(
                select(Message.conversation_id).where(Message.text.contains("[photo]"))
            ),
        )
        case = await service.runtime.queue.case(conversation_id)
        text = case.messages[-1].text
        assert text.startswith("the box\n[photo] https://care.example/telegram/file/")
        path = text.split("https://care.example", 1)[1]
        async with aiohttp.ClientSession() as http:
            async with http.get(server.make_url(path)) as response:
                assert response.status == 200 and await response.read() == b"\x89PNG fake"
            async with http.get(server.make_url(path + "x")) as response:
                assert response.status == 404
        # While the customer waits for a person, the bot only says that one has it.
        acknowledged = (await tg.next_sent(3))[2]
        assert acknowledged["text"] == service.runtime.settings.messages.waiting_ack_unknown


async def test_an_edited_message_is_handled_as_a_new_one(
    tmp_path: Path, database_url: str, tg: TelegramStandIn
) -> None:
    async with telegram_service(tmp_path, database_url, tg):
        first = text_update(CHAT, "xyzzy plugh")
        tg.push(first)
        await tg.next_sent(1)
        message_id = first["message"]["message_id"]
        edit = edited_update(CHAT, message_id, "where is my order", edit_date=1_800_000_000)
        tg.push(edit)
        replies = await tg.next_sent(2)
        assert replies[1]["text"] == "Track it at https://track.example."


async def test_group_chats_are_ignored_unless_enabled(
    tmp_path: Path, database_url: str, tg: TelegramStandIn
) -> None:
    async with telegram_service(tmp_path, database_url, tg) as (service, _server):
        tg.push(text_update(-100, "where is my order", chat_type="group"))
        tg.push(text_update(CHAT, "where is my order"))
        [reply] = await tg.next_sent(1)
        assert reply["chat_id"] == str(CHAT)
        assert await count_rows(service.runtime.db, Message) == 2


async def test_a_database_outage_logs_the_update_id_and_no_customer_data(
    tmp_path: Path, database_url: str, tg: TelegramStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    """An update that cannot be stored is tried again (and confirmed only once stored); the
    logs above DEBUG name it by its id: its repr holds the customer's text and name."""
    caplog.set_level(logging.DEBUG, logger="carebot.adapters.telegram")
    async with telegram_service(tmp_path, database_url, tg) as (service, _server):
        # Pushed once the database refuses: pushed before, the update could be polled and
        # stored before the refusal began (a new customer's message is one statement on
        # PostgreSQL), and nothing would fail.
        async with (
            refusing_to_store(service.runtime.db, "kaputt"),
            logged("carebot.adapters.telegram", "failed (1 in a row)") as logged_failure,
        ):
            update = text_update(CHAT, "where is my order, kaputt", first_name="Tomasz")
            update_id = tg.push(update)
            async with asyncio.timeout(30):  # a guard against hanging, not a time limit
                await logged_failure.wait()
        failed = f"Taking Telegram update {update_id} failed (1 in a row)"
        [reply] = await tg.next_sent(1)  # stored on a later try, and answered
        assert reply["text"] == "Track it at https://track.example."
    formatter = logging.Formatter()
    above_debug = [formatter.format(r) for r in caplog.records if r.levelno > logging.DEBUG]
    assert any(failed in line for line in above_debug)
    assert not [line for line in above_debug if "kaputt" in line or "Tomasz" in line]
    debug = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert any("kaputt" in line for line in debug)  # the update itself, for debugging


async def test_the_customer_is_told_who_joined_and_when_the_bot_is_back(
    tmp_path: Path, database_url: str, tg: TelegramStandIn
) -> None:
    async with telegram_service(tmp_path, database_url, tg, per_chat_per_second=1000) as (
        service,
        _,
    ):
        tg.push(text_update(CHAT, UPSET, first_name="Tom"))
        [handoff] = await tg.next_sent(1)
        assert "passing you to a person" in handoff["text"]  # in business hours or not
        conversation_id = await until(
            service, lambda session: session.scalar(select(Message.conversation_id))
        )
        await service.runtime.desk.reply(conversation_id, "Ann", "Hi Tom, it ships today.")
        await service.runtime.desk.resolve(conversation_id, "Ann")
        sent = await tg.next_sent(4)
        # Telegram shows no author: the agent's reply is signed, the bot's notices are not.
        assert [m["text"] for m in sent[1:]] == [
            "Ann from our team has joined the conversation.",
            "Ann: Hi Tom, it ships today.",
            "Ann has marked this conversation as resolved. I'm the assistant again: ask me "
            "anything, or ask for a person.",
        ]
        assert {m["chat_id"] for m in sent} == {str(CHAT)}
        rows = await until(service, _all_sent)
        assert [r.meta["notice"] for r in rows] == [None, "agent_joined", None, "resolved"]


async def _all_sent(session: AsyncSession) -> list[OutboxRow] | None:
    rows = list((await session.scalars(select(OutboxRow).order_by(OutboxRow.id))).all())
    return rows if len(rows) == 4 and all(r.status == "sent" for r in rows) else None


@pytest.mark.parametrize("language_code", ["de", None])
def test_the_customers_app_language_comes_as_a_hint(language_code: str | None) -> None:
    """Telegram tells the language of the customer's app: the bot speaks it until one of their
    messages can be placed (carebot.inbox)."""
    update = text_update(CHAT, "Hallo")
    update["message"]["from"]["language_code"] = language_code
    keyboard = [[{"text": "Order status", "callback_data": "order_status"}]]
    tapped = callback_update(CHAT, "order_status", message_id=7, keyboard=keyboard)
    tapped["callback_query"]["from"]["language_code"] = language_code
    bot = Bot("123:abc", base_url="http://127.0.0.1:9/bot")
    settings = TelegramSettings(enabled=True)
    channel = TelegramChannel(bot=bot, settings=settings, links=Signer(b"k" * 32, "file"))
    for raw in (update, tapped):
        event = channel.translate(Update.de_json(raw, bot))
        assert isinstance(event, InboundMessage) and event.language_hints == (
            (language_code,) if language_code else ()
        )
