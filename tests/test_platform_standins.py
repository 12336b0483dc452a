"""The Telegram, Graph and signed-webhook stand-ins behave like the platforms they replace."""

from __future__ import annotations

import asyncio
import datetime as dtm
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
import telegram
from aiohttp import web
from multidict import CIMultiDict
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import BadRequest, Conflict, Forbidden, InvalidToken, NetworkError, RetryAfter
from telegram.ext import ApplicationBuilder, ContextTypes, MessageHandler, filters

from carebot.retry import Backoff
from tests import graph_standin as meta
from tests import telegram_standin as tgs
from tests.graph_standin import GraphStandIn
from tests.loopback import LoopbackServer
from tests.telegram_standin import TelegramStandIn
from tests.webhook_standin import (
    SIGNATURE_HEADER,
    ReplyReceiver,
    check_signature,
    post_inbound,
    sign_body,
)

Json = dict[str, Any]
PNID, PAGE, SECRET = "1066", "2077", "app-secret"


@dataclass
class Seen:
    method: str
    headers: CIMultiDict[str]
    raw: bytes
    query: dict[str, str]


class Echo(LoopbackServer):
    """Records what a sender under test delivers; answers a hub.challenge, else "ok"."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[Seen] = []

    def _routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/hook", self._on_hook)

    @property
    def url(self) -> str:
        return f"{self.root}/hook"

    async def _on_hook(self, request: web.Request) -> web.Response:
        raw = await request.read()
        self.seen.append(Seen(request.method, request.headers.copy(), raw, dict(request.query)))
        return web.Response(text=request.query.get("hub.challenge", "ok"))


@pytest.fixture
async def tg() -> AsyncIterator[TelegramStandIn]:
    async with TelegramStandIn() as standin:
        yield standin


def make_bot(tg: TelegramStandIn, token: str | None = None) -> telegram.Bot:
    url = tg.url
    return telegram.Bot(token or tg.token, base_url=f"{url}/bot", base_file_url=f"{url}/file/bot")


@pytest.fixture
async def bot(tg: TelegramStandIn) -> AsyncIterator[telegram.Bot]:
    async with make_bot(tg) as client:
        yield client


@pytest.fixture
async def graph() -> AsyncIterator[GraphStandIn]:
    async with GraphStandIn() as standin:
        standin.whatsapp_number(PNID)
        standin.page(PAGE)
        yield standin


@pytest.fixture
async def echo() -> AsyncIterator[Echo]:
    async with Echo() as server:
        yield server


@pytest.fixture
async def receiver() -> AsyncIterator[ReplyReceiver]:
    async with ReplyReceiver() as server:
        yield server


# Telegram, through the real python-telegram-bot client


async def test_initialize_calls_get_me(tg: TelegramStandIn, bot: telegram.Bot) -> None:
    assert (bot.id, bot.username) == (123456, "carebot_test_bot")
    assert [(c.method, c.status) for c in tg.calls] == [("getMe", 200)]


async def test_send_message_records_decoded_keyboard(
    tg: TelegramStandIn, bot: telegram.Bot
) -> None:
    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("Yes", callback_data="yes")]])
    first = await bot.send_message(chat_id=42, text="Hello", reply_markup=keyboard)
    second = await bot.send_message(chat_id=42, text="Again", parse_mode="HTML")
    [sent, _] = await tg.next_sent(2)
    assert (sent["chat_id"], sent["text"]) == ("42", "Hello")
    assert sent["reply_markup"] == {"inline_keyboard": [[{"text": "Yes", "callback_data": "yes"}]]}
    assert first.reply_markup == keyboard and first.chat.type == "private"
    assert second.message_id > first.message_id and second.from_user == bot.bot
    assert tg.last_message(42)["message_id"] == second.message_id


async def test_get_updates_offset_drops_confirmed(tg: TelegramStandIn, bot: telegram.Bot) -> None:
    ids = [tg.push(tgs.text_update(42, text)) for text in ("a", "b", "c")]
    assert [u.update_id for u in await bot.get_updates()] == ids
    [last] = await bot.get_updates(offset=ids[1] + 1, timeout=0)
    assert last.message is not None and last.message.text == "c"
    assert await bot.get_updates(offset=ids[2] + 1, timeout=0) == ()
    assert tg.pending == []


async def test_push_keeps_given_update_id(tg: TelegramStandIn, bot: telegram.Bot) -> None:
    update = tgs.text_update(42, "twice")
    assert tg.push(update) == tg.push(dict(update)) == update["update_id"]
    assert [u.update_id for u in await bot.get_updates(timeout=0)] == [update["update_id"]] * 2


async def test_long_poll_answers_when_an_update_arrives(
    tg: TelegramStandIn, bot: telegram.Bot
) -> None:
    poll = asyncio.create_task(bot.get_updates(timeout=5))
    await tg.wait_for(lambda s: s.waiting_polls == 1)
    tg.push(tgs.text_update(42, "hi"))
    [update] = await poll
    assert update.message is not None and update.message.text == "hi"


async def test_stop_ends_a_pending_long_poll(tg: TelegramStandIn, bot: telegram.Bot) -> None:
    poll = asyncio.create_task(bot.get_updates(timeout=30))
    await tg.wait_for(lambda s: s.waiting_polls == 1)
    async with asyncio.timeout(2):
        await tg.stop()
        assert await poll == ()
    await tg.restart()
    assert (await bot.get_me()).username == "carebot_test_bot"


async def test_application_polls_and_replies(tg: TelegramStandIn) -> None:
    builder = ApplicationBuilder().token(tg.token).base_url(f"{tg.url}/bot")
    app = builder.base_file_url(f"{tg.url}/file/bot").build()

    async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.message is not None
        await update.message.reply_text(f"echo: {update.message.text}")

    app.add_handler(MessageHandler(filters.TEXT, echo))
    tg.push(tgs.text_update(42, "hi"))
    assert app.updater is not None
    async with app:
        await app.start()
        await app.updater.start_polling(timeout=5)
        [reply] = await tg.next_sent()
        await app.updater.stop()
        await app.stop()
    assert (reply["chat_id"], reply["text"]) == ("42", "echo: hi")
    assert [c.method for c in tg.calls[:2]] == ["getMe", "deleteWebhook"]
    assert tg.calls_of("getUpdates")[-1].params["timeout"] == "0" and tg.pending == []


def seconds(value: int | dtm.timedelta) -> float:
    return value.total_seconds() if isinstance(value, dtm.timedelta) else value


@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")  # int retry_after
async def test_injected_429_raises_retry_after(tg: TelegramStandIn, bot: telegram.Bot) -> None:
    tg.fail_next("sendMessage", 429, retry_after=7)
    with pytest.raises(RetryAfter) as caught:
        await bot.send_message(chat_id=42, text="hi")
    assert seconds(caught.value.retry_after) == 7
    await bot.send_message(chat_id=42, text="hi")
    assert [c.status for c in tg.calls_of("sendMessage")] == [429, 200]
    assert len(tg.sent) == 1


@pytest.mark.parametrize(
    ("status", "description", "error", "message"),
    [
        (500, None, NetworkError, "Internal Server Error"),
        (502, None, NetworkError, "Bad Gateway"),
        (403, None, Forbidden, "Forbidden: bot was blocked by the user"),
        (400, "Bad Request: chat not found", BadRequest, "Chat not found"),  # PTB trims it
    ],
)
async def test_injected_errors_map_to_ptb_exceptions(
    tg: TelegramStandIn,
    bot: telegram.Bot,
    status: int,
    description: str | None,
    error: type[Exception],
    message: str,
) -> None:
    tg.fail_next("sendMessage", status, description, times=2)
    for _ in range(2):
        with pytest.raises(error, match=message):
            await bot.send_message(chat_id=42, text="hi")
    await bot.send_message(chat_id=42, text="hi")
    assert [c.status for c in tg.calls_of("sendMessage")] == [status, status, 200]


async def test_wrong_token_is_invalid_token(tg: TelegramStandIn) -> None:
    with pytest.raises(InvalidToken):
        async with make_bot(tg, "999:wrong"):  # initialize() calls getMe
            pass
    assert tg.calls[0].status == 401


async def test_unknown_method_is_404(tg: TelegramStandIn) -> None:
    async with aiohttp.ClientSession() as session:
        url = f"{tg.url}/bot{tg.token}/sendTelepathy"
        async with session.post(url, json={"chat_id": 1}) as response:
            assert response.status == 404
            assert await response.json() == {
                "ok": False,
                "error_code": 404,
                "description": "Not Found",
            }


async def test_get_file_and_download(tg: TelegramStandIn, bot: telegram.Bot) -> None:
    tg.add_file("ph1", b"\xff\xd8jpeg", path="photos/file_7.jpg")
    file = await bot.get_file("ph1")
    assert (file.file_size, file.file_path) == (6, f"{tg.url}/file/bot{tg.token}/photos/file_7.jpg")
    assert await file.download_as_bytearray() == bytearray(b"\xff\xd8jpeg")
    with pytest.raises(BadRequest, match="Invalid file_id"):
        await bot.get_file("nope")


async def test_webhook_registration(tg: TelegramStandIn, bot: telegram.Bot) -> None:
    hook = "https://carebot.example/telegram"
    await bot.set_webhook(hook, secret_token="s3cret", allowed_updates=["message"])
    assert tg.webhook is not None
    assert tg.webhook["secret_token"] == "s3cret"
    assert tg.webhook["allowed_updates"] == ["message"]
    assert (await bot.get_webhook_info()).url == hook
    with pytest.raises(Conflict):
        await bot.get_updates()
    await bot.delete_webhook()
    assert tg.webhook is None and (await bot.get_webhook_info()).url == ""


async def test_chat_actions_and_callback_answers_are_recorded(
    tg: TelegramStandIn, bot: telegram.Bot
) -> None:
    await bot.send_chat_action(chat_id=42, action="typing")
    await bot.answer_callback_query("cq1", text="Thanks")
    assert [(a["chat_id"], a["action"]) for a in tg.actions] == [("42", "typing")]
    assert tg.answered_callbacks[0]["callback_query_id"] == "cq1"


KEYBOARD = [[{"text": "Yes", "callback_data": "yes"}, {"text": "No", "callback_data": "no"}]]
BUILDERS: list[tuple[str, Callable[[], Json], Json]] = [
    ("text", lambda: tgs.text_update(42, "hello"), {"message.text": "hello"}),
    ("private", lambda: tgs.text_update(42, "x"), {"effective_chat.type": "private"}),
    (
        "group",
        lambda: tgs.text_update(-100, "hi", chat_type="group", user_id=7),
        {"effective_chat.type": "group", "effective_user.id": 7},
    ),
    (
        "command",
        lambda: tgs.command_update(42, "/start"),
        {"message.entities.0.type": "bot_command"},
    ),
    (
        "photo",
        lambda: tgs.photo_update(42, "ph1", caption="look"),
        {"message.photo.-1.file_id": "ph1", "message.caption": "look"},
    ),
    ("voice", lambda: tgs.voice_update(42, "vo1"), {"message.voice.file_id": "vo1"}),
    ("sticker", lambda: tgs.sticker_update(42), {"message.sticker.emoji": "👍"}),
    (
        "document",
        lambda: tgs.document_update(42, "d1", "a.pdf"),
        {"message.document.file_name": "a.pdf"},
    ),
    (
        "edited",
        lambda: tgs.edited_update(42, 5, "fixed", 1_700_000_000),
        {"message": None, "edited_message.text": "fixed", "edited_message.message_id": 5},
    ),
    (
        "callback",
        lambda: tgs.callback_update(42, "no", message_id=9, keyboard=KEYBOARD),
        {
            "callback_query.data": "no",
            "callback_query.message.reply_markup.inline_keyboard.0.1.text": "No",
            "effective_chat.id": 42,
        },
    ),
    (
        "contact",
        lambda: tgs.contact_update(42, "+4915550000", user_id=42),
        {"message.contact.phone_number": "+4915550000", "message.contact.user_id": 42},
    ),
]


def dig(value: Any, path: str) -> Any:
    """`dig(update, "message.photo.-1.file_id")`: attributes, and indexes where numeric."""
    for step in path.split("."):
        value = value[int(step)] if step.lstrip("-").isdigit() else getattr(value, step)
    return value


@pytest.mark.parametrize(("kind", "build", "expected"), BUILDERS)
async def test_builders_parse_as_ptb_updates(
    tg: TelegramStandIn, kind: str, build: Callable[[], Json], expected: Json
) -> None:
    data = build()
    update = Update.de_json(json.loads(json.dumps(data)), make_bot(tg))
    assert update.update_id == data["update_id"]
    assert {path: dig(update, path) for path in expected} == expected
    assert build()["update_id"] > data["update_id"]
    if kind == "command":
        assert filters.COMMAND.check_update(update)


@pytest.mark.parametrize("secret", [None, "s3cret"])
async def test_post_update_delivers_like_telegram(echo: Echo, secret: str | None) -> None:
    update = tgs.text_update(42, "hi")
    assert await tgs.post_update(echo.url, update, secret=secret) == 200
    [seen] = echo.seen
    assert json.loads(seen.raw) == update
    assert seen.headers["Content-Type"] == "application/json"
    assert seen.headers.get(tgs.SECRET_HEADER) == secret


# Meta's Graph API, through aiohttp


async def graph_post(
    graph: GraphStandIn,
    node: str,
    body: Json,
    *,
    token: str | None = "EAAtest",
    version: str = "v21.0",
) -> tuple[int, Json, CIMultiDict[str]]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{graph.url}/{version}/{node}/messages", json=body, headers=headers
        ) as response,
    ):
        return response.status, await response.json(), response.headers.copy()


WA_TEXT: Json = {"messaging_product": "whatsapp", "to": "4915550001", "type": "text"}
WA_TEXT |= {"text": {"body": "Hello"}}
PAGE_TEXT: Json = {"recipient": {"id": "psid1"}, "messaging_type": "RESPONSE"}
PAGE_TEXT |= {"message": {"text": "Hello", "quick_replies": []}}


@pytest.mark.parametrize(
    ("node", "body", "prefix"), [(PNID, WA_TEXT, "wamid."), (PAGE, PAGE_TEXT, "m_")]
)
async def test_graph_send_returns_message_id(
    graph: GraphStandIn, node: str, body: Json, prefix: str
) -> None:
    status, answer, _ = await graph_post(graph, node, body)
    assert status == 200
    [sent] = await graph.next_sent()
    assert (sent.node, sent.body) == (node, body)
    assert sent.message_id is not None and sent.message_id.startswith(prefix)
    if node == PNID:
        assert answer["messages"] == [{"id": sent.message_id}]
        assert answer["contacts"] == [{"input": "4915550001", "wa_id": "4915550001"}]
    else:
        assert answer == {"recipient_id": "psid1", "message_id": sent.message_id}


@pytest.mark.parametrize(
    ("node", "body", "options", "status", "code"),
    [
        (PNID, WA_TEXT, {"token": "EAAwrong"}, 401, 190),
        (PNID, WA_TEXT, {"token": None}, 401, 190),
        (PNID, WA_TEXT, {"version": "v2.0"}, 400, 2635),
        ("999", WA_TEXT, {}, 400, 100),
        (PNID, {"to": "49"}, {}, 400, 100),
        (PNID, {"messaging_product": "whatsapp", "type": "text"}, {}, 400, 100),
        (PAGE, {"message": {"text": "hi"}}, {}, 400, 100),
    ],
)
async def test_graph_refuses_bad_requests(
    graph: GraphStandIn, node: str, body: Json, options: Json, status: int, code: int
) -> None:
    got, answer, _ = await graph_post(graph, node, body, **options)
    assert (got, answer["error"]["code"]) == (status, code)
    assert answer["error"]["type"] == "OAuthException" and answer["error"]["fbtrace_id"]
    assert graph.sent == [] and graph.calls[0].status == status


@pytest.mark.parametrize(
    ("status", "code", "headers"),
    [
        (400, 130429, None),
        (400, 131056, None),
        (400, 131047, None),
        (500, 1, None),
        (429, 4, {"Retry-After": "1"}),
    ],
)
async def test_graph_injected_failures(
    graph: GraphStandIn, status: int, code: int, headers: dict[str, str] | None
) -> None:
    graph.fail_next(PNID, status, code, headers=headers)
    got, answer, got_headers = await graph_post(graph, PNID, WA_TEXT)
    assert (got, answer["error"]["code"]) == (status, code)
    assert got_headers.get("Retry-After") == (headers or {}).get("Retry-After")
    assert (await graph_post(graph, PNID, WA_TEXT))[0] == 200
    assert [c.status for c in graph.calls] == [status, 200] and len(graph.sent) == 1


@pytest.mark.parametrize(
    ("payload", "obj", "path", "expected"),
    [
        (
            meta.whatsapp_text(PNID, "49155", "Grüße ✓"),
            "whatsapp_business_account",
            ("messages", 0, "text", "body"),
            "Grüße ✓",
        ),
        (
            meta.whatsapp_button_reply(PNID, "49155", "yes", "Yes"),
            "whatsapp_business_account",
            ("messages", 0, "interactive", "button_reply", "id"),
            "yes",
        ),
        (
            meta.whatsapp_list_reply(PNID, "49155", "r2", "Refunds"),
            "whatsapp_business_account",
            ("messages", 0, "interactive", "list_reply", "title"),
            "Refunds",
        ),
        (
            meta.whatsapp_image(PNID, "49155", "media1", caption="bill"),
            "whatsapp_business_account",
            ("messages", 0, "image", "id"),
            "media1",
        ),
        (
            meta.whatsapp_status(PNID, "wamid.X", "failed", "49155", errors=[{"code": 131047}]),
            "whatsapp_business_account",
            ("statuses", 0, "errors", 0, "code"),
            131047,
        ),
        (meta.messenger_text(PAGE, "psid1", "hi"), "page", ("message", "text"), "hi"),
        (
            meta.messenger_quick_reply(PAGE, "psid1", "Yes", "YES"),
            "page",
            ("message", "quick_reply", "payload"),
            "YES",
        ),
        (meta.instagram_text("ig1", "igsid1", "hej"), "instagram", ("sender", "id"), "igsid1"),
    ],
)
async def test_graph_payloads_are_signed_over_the_sent_bytes(
    echo: Echo, payload: Json, obj: str, path: tuple[str | int, ...], expected: Any
) -> None:
    assert await meta.post_webhook(echo.url, payload, app_secret=SECRET) == (200, "ok")
    [seen] = echo.seen
    assert seen.raw.isascii() and json.loads(seen.raw) == payload and payload["object"] == obj
    digest = hmac.new(SECRET.encode(), seen.raw, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(seen.headers[meta.SIGNATURE_HEADER], f"sha256={digest}")
    entry = payload["entry"][0]
    node: Any = entry["changes"][0]["value"] if "changes" in entry else entry["messaging"][0]
    for key in path:
        node = node[key]
    assert node == expected


@pytest.mark.parametrize(("secret", "signature"), [(None, None), (SECRET, "sha256=00")])
async def test_post_webhook_signature_override(
    echo: Echo, secret: str | None, signature: str | None
) -> None:
    await meta.post_webhook(
        echo.url, meta.messenger_text(PAGE, "p", "x"), app_secret=secret, signature=signature
    )
    assert echo.seen[0].headers.get(meta.SIGNATURE_HEADER) == signature


async def test_verify_handshake_sends_hub_query(echo: Echo) -> None:
    assert await meta.verify_handshake(echo.url, "tok", "12345") == (200, "12345")
    query = {"hub.mode": "subscribe", "hub.verify_token": "tok", "hub.challenge": "12345"}
    assert (echo.seen[0].method, echo.seen[0].query) == ("GET", query)


# The generic signed webhook channel


async def test_reply_receiver_records_signed_bodies(receiver: ReplyReceiver) -> None:
    body = {"conversation": "c1", "text": "Grüße"}
    delivery = asyncio.create_task(post_inbound(receiver.url, body, secret="whsec-test"))
    assert await receiver.next_received() == [body]
    assert await delivery == (200, {"ok": True})
    assert receiver.rejected_signatures == 0


def stale(seconds: int) -> Callable[[bytes], str]:
    return lambda raw: sign_body("whsec-test", raw, timestamp=int(time.time()) + seconds)


@pytest.mark.parametrize(
    ("make_header", "reason"),
    [
        (lambda raw: sign_body("wrong", raw), "mismatch"),
        (lambda raw: f"t={int(time.time())},v1=deadbeef", "mismatch"),
        (lambda raw: None, "missing"),
        (lambda raw: "v1=abc", "malformed"),
        (stale(-301), "stale"),
        (stale(301), "stale"),
    ],
)
async def test_reply_receiver_rejects_bad_signatures(
    receiver: ReplyReceiver, make_header: Callable[[bytes], str | None], reason: str
) -> None:
    raw = json.dumps({"text": "hi"}).encode()
    header = make_header(raw)
    headers = {"Content-Type": "application/json"} | ({SIGNATURE_HEADER: header} if header else {})
    async with (
        aiohttp.ClientSession() as session,
        session.post(receiver.url, data=raw, headers=headers) as response,
    ):
        assert response.status == 401
    assert (receiver.received, receiver.rejected_signatures) == ([], 1)
    assert receiver.rejections == [reason]


async def test_rotated_keys_any_v1_matches() -> None:
    raw = b'{"a": 1}'
    header = sign_body(["old", "new"], raw, timestamp=1_700_000_000)
    assert header.count("v1=") == 2
    assert check_signature(header, raw, ["new"], now=1_700_000_100) is None
    assert check_signature(header, raw, ["other"], now=1_700_000_100) == "mismatch"
    expected = hmac.new(b"old", b"1700000000." + raw, hashlib.sha256).hexdigest()
    assert header.split(",")[1] == f"v1={expected}"
    async with ReplyReceiver(secret=["newest", "new"]) as receiver:
        assert (await post_inbound(receiver.url, {"a": 1}, secret=["old", "new"]))[0] == 200


@pytest.mark.parametrize(
    ("status", "headers"), [(500, None), (503, None), (429, {"Retry-After": "1"})]
)
async def test_reply_receiver_fail_next_then_success(
    receiver: ReplyReceiver, status: int, headers: dict[str, str] | None
) -> None:
    receiver.fail_next(status, headers=headers)
    body = {"text": "hi"}
    async with aiohttp.ClientSession() as session:
        raw = json.dumps(body).encode()
        signed = {SIGNATURE_HEADER: sign_body("whsec-test", raw)}
        async with session.post(receiver.url, data=raw, headers=signed) as response:
            assert response.status == status
            assert response.headers.get("Retry-After") == (headers or {}).get("Retry-After")
    assert (receiver.received, receiver.refused) == ([], [body])
    assert await post_inbound(receiver.url, body, secret="whsec-test") == (200, {"ok": True})
    assert receiver.received == [body]


async def test_wait_for_times_out_with_a_description(receiver: ReplyReceiver) -> None:
    with pytest.raises(AssertionError, match="received 0"):
        await receiver.next_received(timeout=0.05)


class Hook(LoopbackServer):
    """A bot's webhook: records each update it is given (with the secret token header and
    content type) and answers the statuses queued in ``answers`` first, then 200."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, int, str | None, str]] = []  # text, status, secret, type
        self.answers: list[int] = []

    def _routes(self, app: web.Application) -> None:
        app.router.add_post("/hook", self._on_update)

    @property
    def url(self) -> str:
        return f"{self.root}/hook"

    async def _on_update(self, request: web.Request) -> web.Response:
        update = await request.json()
        status = self.answers.pop(0) if self.answers else 200
        secret = request.headers.get(tgs.SECRET_HEADER)
        self.seen.append((update["message"]["text"], status, secret, request.content_type))
        return web.Response(status=status, text="ok")


async def test_with_a_webhook_updates_are_posted_in_order_per_chat_until_answered_2xx(
    tg: TelegramStandIn, bot: telegram.Bot
) -> None:
    """As Telegram does: each update POSTed with the secret token; one that is not answered
    2xx, or whose connection fails, is delivered again, and the chat's next update waits."""
    tg.webhook_backoff = Backoff(base=0.01, cap=0.05)
    async with Hook() as hook:
        await bot.set_webhook(hook.url, secret_token="s3cret")
        hook.answers = [502, 500]  # the first update is refused twice
        for text in ("a", "b", "c"):
            tg.push(tgs.text_update(42, text))
        await tg.wait_for(lambda s: not s.pending)
        assert [(text, status) for text, status, *_ in hook.seen] == [
            ("a", 502),
            ("a", 500),
            ("a", 200),
            ("b", 200),
            ("c", 200),
        ]
        assert {(secret, kind) for *_, secret, kind in hook.seen} == {
            ("s3cret", "application/json")
        }
        assert [d.status for d in tg.deliveries] == [502, 500, 200, 200, 200]
        await hook.stop()  # the bot's server is down: the connection fails
        update_id = tg.push(tgs.text_update(43, "d"))
        await tg.wait_for(lambda s: len(s.deliveries) > 5)
        await hook.restart()
        await tg.wait_for(lambda s: update_id in s.delivered)
    failed = tg.deliveries[5]
    assert failed.status is None and "ClientConnectorError" in failed.error
    assert hook.seen[-1][:2] == ("d", 200)


async def test_without_a_webhook_pushed_updates_wait_for_get_updates(
    tg: TelegramStandIn, bot: telegram.Bot
) -> None:
    async with Hook() as hook:
        await bot.set_webhook(hook.url)
        await bot.delete_webhook()
        tg.push(tgs.text_update(42, "hi"))
        updates = await bot.get_updates()
    assert [u.message.text for u in updates if u.message] == ["hi"] and hook.seen == []
