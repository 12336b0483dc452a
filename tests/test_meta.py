"""WhatsApp, Messenger and Instagram end to end: the real service (fake encoder) on loopback,
webhook calls signed as Meta signs them, replies going out to the Graph API stand-in.

The service runs on the tests' clock, which stands still: a failed send waits for its retry
until a test moves the clock past the wait. The retry tests pause the outbox worker and deliver
what fell due themselves (``deliver_due``), so that nothing races them for the row and every
step can be checked; one test lets the running worker retry on its own.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import select, text

from carebot.clock import as_utc
from carebot.exceptions import ReplyWindowClosed
from carebot.server import Service
from carebot.store.database import Database
from carebot.store.tables import Conversation, Message
from tests.conftest import Clock
from tests.graph_standin import (
    GraphStandIn,
    Sent,
    instagram_text,
    messenger_postback,
    messenger_quick_reply,
    messenger_text,
    post_webhook,
    sign,
    verify_handshake,
    whatsapp_button_reply,
    whatsapp_image,
    whatsapp_list_reply,
    whatsapp_status,
    whatsapp_text,
)
from tests.service import (
    UPSET,
    count_rows,
    messages,
    outbox,
    paused_worker,
    running_service,
    service_settings,
)
from tests.webhook_standin import Json, ReplyReceiver

APP_SECRET = "meta-app-secret"
VERIFY_TOKEN = "meta-verify-token"
TOKEN = "EAAtest-token"
WEBHOOK_SECRET = "whsec-test"
ENV = {
    "WHATSAPP_TOKEN": TOKEN,
    "MESSENGER_PAGE_TOKEN": TOKEN,
    "INSTAGRAM_TOKEN": TOKEN,
    "META_APP_SECRET": APP_SECRET,
    "META_VERIFY_TOKEN": VERIFY_TOKEN,
    "CAREBOT_WEBHOOK_SECRET": WEBHOOK_SECRET,
}
ACCOUNTS = {"whatsapp": "1111", "messenger": "2222", "instagram": "3333"}
USERS = {"whatsapp": "4915112345678", "messenger": "6100000000000001", "instagram": "17800001"}
CHANNELS = list(ACCOUNTS)
WEBHOOK = "/meta/webhook"
ORDER = "where is my order"
TRACK = "Track it at https://track.example."
FREE = "Returns are free within 30 days."


@pytest.fixture
async def graph() -> AsyncIterator[GraphStandIn]:
    async with GraphStandIn(access_token=TOKEN, version="v21.0") as standin:
        standin.whatsapp_number(ACCOUNTS["whatsapp"])
        standin.page(ACCOUNTS["messenger"])
        standin.page(ACCOUNTS["instagram"])
        yield standin


@pytest.fixture
async def receiver() -> AsyncIterator[ReplyReceiver]:
    async with ReplyReceiver(WEBHOOK_SECRET) as standin:
        yield standin


@pytest.fixture
async def service(
    tmp_path: Path, database_url: str, clock: Clock, graph: GraphStandIn, receiver: ReplyReceiver
) -> AsyncIterator[tuple[Service, TestServer]]:
    """Every channel enabled at once, the Meta ones talking to the Graph stand-in."""
    settings = service_settings(
        tmp_path,
        whatsapp={"enabled": True, "account_id": ACCOUNTS["whatsapp"]},
        messenger={"enabled": True, "account_id": ACCOUNTS["messenger"]},
        instagram={"enabled": True, "account_id": ACCOUNTS["instagram"]},
        meta={"graph_url": graph.url, "api_version": "v21.0"},
        webhook={"enabled": True, "reply_url": receiver.url},
    )
    async with running_service(settings, database_url, clock, env=ENV) as running:
        yield running


# What customers send, per channel.


def text_event(channel: str, words: str, *, user: str = "", message_id: str | None = None) -> Json:
    account, user = ACCOUNTS[channel], user or USERS[channel]
    if channel == "whatsapp":
        return whatsapp_text(account, user, words, message_id=message_id)
    if channel == "messenger":
        return messenger_text(account, user, words, mid=message_id)
    return instagram_text(account, user, words, mid=message_id)


def tap_event(channel: str, choice_id: str, label: str, *, context_id: str | None) -> Json:
    """A tap on a reply button (WhatsApp) or a quick reply (Messenger, Instagram)."""
    account, user = ACCOUNTS[channel], USERS[channel]
    if channel == "whatsapp":
        return whatsapp_button_reply(account, user, choice_id, label, context_id=context_id)
    payload = messenger_quick_reply(account, user, label, choice_id)
    if channel == "instagram":
        payload["object"] = "instagram"
    return payload


async def post(
    server: TestServer, payload: Json, *, secret: str | None = APP_SECRET, **how: Any
) -> tuple[int, str]:
    """POST a webhook call as Meta does, signed with ``secret`` unless told otherwise."""
    return await post_webhook(str(server.make_url(WEBHOOK)), payload, app_secret=secret, **how)


# What carebot sends, per channel.


def text_body(channel: str, words: str, *, user: str = "") -> Json:
    """The Graph API body of a plain text reply."""
    user = user or USERS[channel]
    if channel == "whatsapp":
        return {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": user,
            "type": "text",
            "text": {"body": words, "preview_url": False},
        }
    return {"recipient": {"id": user}, "messaging_type": "RESPONSE", "message": {"text": words}}


def words_of(channel: str, sent: Sent) -> str:
    body = sent.body
    if channel != "whatsapp":
        return str(body["message"]["text"])
    if body["type"] == "interactive":
        return str(body["interactive"]["body"]["text"])
    return str(body["text"]["body"])


def choices_of(channel: str, sent: Sent) -> dict[str, str]:
    """The offered choices, id -> label, from reply buttons or quick replies."""
    if channel == "whatsapp":
        interactive = sent.body["interactive"]
        assert interactive["type"] == "button"
        buttons = interactive["action"]["buttons"]
        assert all(b["type"] == "reply" for b in buttons)
        return {b["reply"]["id"]: b["reply"]["title"] for b in buttons}
    quick = sent.body["message"]["quick_replies"]
    assert all(q["content_type"] == "text" for q in quick)
    return {q["payload"]: q["title"] for q in quick}


# What carebot stored.


@asynccontextmanager
async def refusing_to_store(db: Database, word: str) -> AsyncIterator[None]:
    """The database refuses to store any message containing ``word`` (a trigger), as a full
    disk or a lost connection would; it stores again when the block ends."""
    if db.is_sqlite:
        create = [
            f"CREATE TRIGGER refuse_word BEFORE INSERT ON messages WHEN NEW.text LIKE '%{word}%' "
            "BEGIN SELECT RAISE(ABORT, 'storage failed'); END"
        ]
        drop = ["DROP TRIGGER refuse_word"]
    else:
        create = [
            "CREATE FUNCTION refuse_word() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"IF NEW.text LIKE '%{word}%' THEN RAISE EXCEPTION 'storage failed'; END IF; "
            "RETURN NEW; END $$",
            "CREATE TRIGGER refuse_word BEFORE INSERT ON messages FOR EACH ROW "
            "EXECUTE FUNCTION refuse_word()",
        ]
        drop = ["DROP TRIGGER refuse_word ON messages", "DROP FUNCTION refuse_word()"]
    async with db.transaction() as session:
        for statement in create:
            await session.execute(text(statement))
    try:
        yield
    finally:
        async with db.transaction() as session:
            for statement in drop:
                await session.execute(text(statement))


# The webhook: handshake and signature.


async def test_the_verification_handshake_echoes_the_challenge_only_for_the_right_token(
    service: tuple[Service, TestServer],
) -> None:
    _, server = service
    url = str(server.make_url(WEBHOOK))
    assert await verify_handshake(url, VERIFY_TOKEN, "1158201444") == (200, "1158201444")
    assert (await verify_handshake(url, "guessed", "1158201444"))[0] == 403
    assert (await verify_handshake(url, "", "1158201444"))[0] == 403
    assert (await verify_handshake(url, VERIFY_TOKEN + "x", "1158201444"))[0] == 403


@pytest.mark.parametrize("channel", CHANNELS)
async def test_a_call_with_a_bad_or_missing_signature_is_refused_and_not_processed(
    service: tuple[Service, TestServer], graph: GraphStandIn, channel: str
) -> None:
    running, server = service
    payload = text_event(channel, "where is my order? \U0001f4e6 Grüße")
    # Meta signs the bytes it sends (non-ASCII escaped); a signature over the same JSON
    # serialised another way does not match.
    reserialised = json.dumps(payload, ensure_ascii=False).encode()
    refusals = [
        ({"secret": None}, 401),
        ({"secret": "not-the-app-secret"}, 403),
        ({"signature": "sha256=" + "0" * 64}, 403),
        ({"signature": "garbage"}, 403),
        ({"signature": sign(APP_SECRET, reserialised)}, 403),
    ]
    for how, status in refusals:
        assert (await post(server, payload, **how))[0] == status, how
    tampered = text_event(channel, "where is my order? \U0001f4e6 Grüße", user="666")
    stolen = sign(APP_SECRET, json.dumps(payload).encode())  # a valid signature, other body
    assert (await post(server, tampered, signature=stolen))[0] == 403
    assert await messages(running) == []
    assert graph.calls == []

    assert await post(server, payload) == (200, "EVENT_RECEIVED")
    [first] = await graph.next_sent(1)
    assert first.body == text_body(channel, TRACK)
    assert await messages(running) == [
        ("customer", "where is my order? \U0001f4e6 Grüße"),
        ("bot", TRACK),
    ]


async def test_a_malformed_or_foreign_call_is_answered_without_being_processed(
    service: tuple[Service, TestServer], graph: GraphStandIn
) -> None:
    running, server = service
    for body in (b"not json", b"[1, 2]", b'"text"', b'{"object": "page", "entry": "oops"}'):
        headers = {"X-Hub-Signature-256": sign(APP_SECRET, body)}
        async with (
            aiohttp.ClientSession() as http,
            http.post(server.make_url(WEBHOOK), data=body, headers=headers) as response,
        ):
            assert response.status == 400, body  # not 5xx: Meta would send it again forever
    other_number = whatsapp_text("9999", USERS["whatsapp"], ORDER)  # not our number
    assert await post(server, other_number) == (200, "EVENT_RECEIVED")
    page, psid = ACCOUNTS["messenger"], USERS["messenger"]
    echo = messenger_text(page, page, ORDER)  # the page's own message, echoed back
    echo["entry"][0]["messaging"][0]["recipient"] = {"id": psid}
    echo["entry"][0]["messaging"][0]["message"] |= {"is_echo": True, "app_id": 1517}
    assert await post(server, echo) == (200, "EVENT_RECEIVED")
    assert await messages(running) == []
    assert graph.calls == []


# Malformed payloads: a field carebot reads is missing (or blank), so the call is refused.

MISSING = object()  # the field is left out


def _whatsapp(kind: str, content: Json) -> Callable[[str, str, str], Json]:
    """A WhatsApp message of type ``kind`` with ``content`` (its object)."""

    def build(account: str, user: str, reply: str) -> Json:
        payload = whatsapp_text(account, user, "")
        [message] = payload["entry"][0]["changes"][0]["value"]["messages"]
        del message["text"]
        message |= {"type": kind, kind: copy.deepcopy(content)}  # each test changes its own
        return payload

    return build


def _receipt(page: str, psid: str, reply: str) -> Json:
    delivery = {"mids": [reply], "watermark": 1_795_000_000_000}
    item = {"sender": {"id": psid}, "recipient": {"id": page}, "timestamp": 1_795_000_000_000}
    return {"object": "page", "entry": [{"id": page, "messaging": [item | {"delivery": delivery}]}]}


# What customers send: (channel, (account, user, the id of carebot's reply) -> payload).
SAMPLES: dict[str, tuple[str, Callable[[str, str, str], Json]]] = {
    "wa-text": ("whatsapp", lambda a, u, r: whatsapp_text(a, u, ORDER)),
    "wa-tap": (
        "whatsapp",
        lambda a, u, r: whatsapp_button_reply(a, u, "returns", "Returns", context_id=r),
    ),
    "wa-list": (
        "whatsapp",
        lambda a, u, r: whatsapp_list_reply(a, u, "returns", "Returns", context_id=r),
    ),
    "wa-template-button": ("whatsapp", _whatsapp("button", {"text": "Returns", "payload": "r"})),
    "wa-location": ("whatsapp", _whatsapp("location", {"latitude": 52.5, "longitude": 13.4})),
    "wa-image": ("whatsapp", lambda a, u, r: whatsapp_image(a, u, "media-1")),
    "wa-read": ("whatsapp", lambda a, u, r: whatsapp_status(a, r, "read", u)),
    "wa-failed": (
        "whatsapp",
        lambda a, u, r: whatsapp_status(a, r, "failed", u, errors=[{"code": 131026}]),
    ),
    "messenger-text": ("messenger", lambda a, u, r: messenger_text(a, u, ORDER)),
    "messenger-quick-reply": (
        "messenger",
        lambda a, u, r: messenger_quick_reply(a, u, "Returns", "returns"),
    ),
    "messenger-postback": (
        "messenger",
        lambda a, u, r: messenger_postback(a, u, "Returns", "returns"),
    ),
    "messenger-receipt": ("messenger", _receipt),
    "instagram-text": ("instagram", lambda a, u, r: instagram_text(a, u, ORDER)),
}
WA = ("entry", 0, "changes", 0, "value")
WA_MESSAGE = (*WA, "messages", 0)
ANCHORS = {"payload": (), "value": WA, "message": WA_MESSAGE, "status": (*WA, "statuses", 0)}
ANCHORS["item"] = ("entry", 0, "messaging", 0)
# (sample, the field: an anchor and the path below it, what it is set to): every field the
# translation reads, left out; ids also blank.
MALFORMED = [
    ("wa-text", "payload.object", MISSING),
    ("messenger-text", "payload.entry", MISSING),
    ("wa-text", "payload.entry.0.changes", MISSING),
    ("wa-text", "payload.entry.0.changes.0.field", MISSING),
    ("wa-text", "payload.entry.0.changes.0.value", MISSING),
    ("wa-text", "value.metadata", MISSING),
    ("wa-text", "value.metadata.phone_number_id", MISSING),
    ("wa-text", "value.contacts.0.wa_id", MISSING),
    ("wa-text", "message.from", MISSING),
    ("wa-text", "message.id", MISSING),
    ("wa-text", "message.id", ""),
    ("wa-text", "message.timestamp", MISSING),
    ("wa-text", "message.type", MISSING),
    ("wa-text", "message.text", MISSING),
    ("wa-text", "message.text.body", MISSING),
    ("wa-tap", "message.interactive", MISSING),
    ("wa-tap", "message.interactive.type", MISSING),
    ("wa-tap", "message.interactive.button_reply", MISSING),
    ("wa-tap", "message.interactive.button_reply.title", MISSING),
    ("wa-list", "message.interactive.list_reply.id", MISSING),
    ("wa-template-button", "message.button.text", MISSING),
    ("wa-location", "message.location.latitude", MISSING),
    ("wa-image", "message.image", MISSING),
    ("wa-image", "message.image.id", MISSING),
    ("wa-read", "status.id", MISSING),
    ("wa-read", "status.id", " "),
    ("wa-read", "status.status", MISSING),
    ("wa-read", "status.timestamp", MISSING),
    ("wa-failed", "status.errors.0.code", MISSING),
    ("messenger-text", "payload.entry.0.id", MISSING),
    ("messenger-text", "item.sender", MISSING),
    ("messenger-text", "item.sender.id", MISSING),
    ("messenger-text", "item.timestamp", MISSING),
    ("messenger-text", "item.message.mid", MISSING),
    ("messenger-text", "item.message.mid", ""),
    ("messenger-quick-reply", "item.message.quick_reply.payload", MISSING),
    ("messenger-postback", "item.postback.title", MISSING),
    ("messenger-receipt", "item.delivery.watermark", MISSING),
    ("instagram-text", "item.message.mid", MISSING),
    ("instagram-text", "item.sender.id", MISSING),
]


def _path(field: str) -> tuple[str | int, ...]:
    anchor, *below = field.split(".")
    return (*ANCHORS[anchor], *(int(p) if p.isdigit() else p for p in below))


def _changed(payload: Json, path: tuple[str | int, ...], value: object) -> Json:
    *parents, last = path
    node: Any = payload
    for part in parents:
        node = node[part]
    if value is MISSING:
        del node[last]
    else:
        node[last] = value
    return payload


@pytest.mark.parametrize(
    ("sample", "field", "value"),
    [
        pytest.param(*case, id=f"{case[0]}:{case[1]}" + ("" if case[2] is MISSING else "=blank"))
        for case in MALFORMED
    ],
)
async def test_a_payload_without_a_field_carebot_reads_is_refused_and_nothing_is_stored(
    service: tuple[Service, TestServer],
    graph: GraphStandIn,
    caplog: pytest.LogCaptureFixture,
    sample: str,
    field: str,
    value: object,
) -> None:
    running, server = service
    channel, build = SAMPLES[sample]
    account, user = ACCOUNTS[channel], USERS[channel]
    assert await post(server, text_event(channel, ORDER)) == (200, "EVENT_RECEIVED")
    [reply] = await graph.next_sent(1)
    before = await messages(running)
    path = _path(field)
    payload = _changed(build(account, user, reply.message_id), path, value)
    with caplog.at_level(logging.WARNING, logger="carebot.adapters.meta"):
        status, answer = await post(server, payload)
    assert status == 400, answer
    # The answer and the log name what is wrong: the field, or the object its parent lacks.
    where, name = ".".join(str(part) for part in path), repr(path[-1])
    assert where in answer or name in answer
    [refused] = [r for r in caplog.records if "malformed Meta webhook" in r.getMessage()]
    assert refused.levelno == logging.WARNING
    assert where in refused.getMessage() or name in refused.getMessage()
    assert ORDER not in refused.getMessage() and user not in refused.getMessage()
    await paused_worker(running).deliver_due()
    assert await messages(running) == before  # nothing stored, nothing answered
    assert len(graph.calls) == 1
    [row] = await outbox(running)
    assert (row.delivery_status, row.status_at) == (None, None)


async def test_a_message_with_an_empty_id_does_not_hide_the_next_one(
    service: tuple[Service, TestServer], graph: GraphStandIn
) -> None:
    running, server = service
    for words in (ORDER, "return item label"):  # once stored as "", the second was a "duplicate"
        nameless = _changed(text_event("whatsapp", words), _path("message.id"), "")
        assert (await post(server, nameless))[0] == 400
    assert await post(server, text_event("whatsapp", ORDER)) == (200, "EVENT_RECEIVED")
    [reply] = await graph.next_sent(1)
    assert reply.body == text_body("whatsapp", TRACK)
    assert await messages(running) == [("customer", ORDER), ("bot", TRACK)]


@pytest.mark.parametrize("channel", CHANNELS)
async def test_fields_meta_adds_later_are_ignored(
    service: tuple[Service, TestServer], graph: GraphStandIn, channel: str
) -> None:
    running, server = service
    payload = text_event(channel, ORDER)
    payload["new_top_level"] = {"x": 1}
    entry = payload["entry"][0]
    entry["new_in_entry"] = [1, 2]
    item = entry["changes"][0]["value"] if channel == "whatsapp" else entry["messaging"][0]
    item["new_in_item"] = "yes"
    message = item["messages"][0] if channel == "whatsapp" else item["message"]
    message["new_in_message"] = {"nested": True}
    assert await post(server, payload) == (200, "EVENT_RECEIVED")
    [reply] = await graph.next_sent(1)
    assert reply.body == text_body(channel, TRACK)
    assert await messages(running) == [("customer", ORDER), ("bot", TRACK)]


@pytest.mark.parametrize(
    "payload",
    [
        {"object": "user", "entry": [{"id": "1", "changes": [{"field": "email"}]}]},
        {"object": "page", "entry": [{"id": "2222", "changes": [{"field": "feed"}]}]},
        {
            "object": "whatsapp_business_account",
            "entry": [{"id": "w", "changes": [{"field": "account_update", "value": {"x": 1}}]}],
        },
    ],
    ids=["other-object", "page-feed", "whatsapp-account-update"],
)
async def test_events_carebot_does_not_read_are_acknowledged_and_ignored(
    service: tuple[Service, TestServer], graph: GraphStandIn, payload: Json
) -> None:
    running, server = service
    assert await post(server, payload) == (200, "EVENT_RECEIVED")
    assert await messages(running) == []
    assert graph.calls == []


# Round trips.


@pytest.mark.parametrize("channel", CHANNELS)
async def test_a_question_is_answered_through_the_graph_api(
    service: tuple[Service, TestServer], graph: GraphStandIn, channel: str
) -> None:
    running, server = service
    question = "Where is my order? \U0001f4e6 Grüße"  # Meta escapes it; the signature still fits
    assert await post(server, text_event(channel, question)) == (200, "EVENT_RECEIVED")
    [reply] = await graph.next_sent(1)
    assert reply.node == ACCOUNTS[channel]
    assert reply.body == text_body(channel, TRACK)
    assert await messages(running) == [("customer", question), ("bot", TRACK)]
    [row] = await outbox(running)
    assert (row.channel, row.status, row.attempts) == (channel, "sent", 1)
    assert row.external_id == reply.message_id  # for the delivery reports to come


async def test_a_whatsapp_reaction_to_a_reply_is_not_answered(
    service: tuple[Service, TestServer], graph: GraphStandIn
) -> None:
    running, server = service
    await post(server, text_event("whatsapp", ORDER))
    [reply] = await graph.next_sent(1)
    reaction = text_event("whatsapp", "")
    [message] = reaction["entry"][0]["changes"][0]["value"]["messages"]
    del message["text"]
    message |= {"type": "reaction", "reaction": {"message_id": reply.message_id, "emoji": "👍"}}
    assert await post(server, reaction) == (200, "EVENT_RECEIVED")
    await paused_worker(running).deliver_due()
    assert len(graph.calls) == 1  # no "I can only read text" for a thumbs-up
    assert await messages(running) == [("customer", ORDER), ("bot", TRACK)]


@pytest.mark.parametrize("channel", CHANNELS)
async def test_a_redelivered_message_is_answered_once(
    service: tuple[Service, TestServer], graph: GraphStandIn, channel: str
) -> None:
    running, server = service
    payload = text_event(channel, ORDER)
    assert await post(server, payload) == (200, "EVENT_RECEIVED")
    assert await post(server, payload) == (200, "EVENT_RECEIVED")  # Meta sends it again
    await graph.next_sent(1)
    await paused_worker(running).deliver_due()  # nothing left to send either
    assert len(graph.calls) == 1
    assert await messages(running) == [("customer", ORDER), ("bot", TRACK)]


@pytest.mark.parametrize("channel", CHANNELS)
async def test_clarification_choices_are_buttons_and_a_tap_picks_one(
    service: tuple[Service, TestServer], graph: GraphStandIn, channel: str
) -> None:
    _, server = service
    await post(server, text_event(channel, "return item label"))
    [question] = await graph.next_sent(1)
    offered = choices_of(channel, question)
    assert offered == {"returns": "Returns", "returns_label": "Return label"}
    # "Returns" shares no word with the intents' examples: only the tap can pick it.
    tap = tap_event(channel, "returns", offered["returns"], context_id=question.message_id)
    assert await post(server, tap) == (200, "EVENT_RECEIVED")
    answer = (await graph.next_sent(2))[1]
    assert answer.body == text_body(channel, FREE)  # no buttons this time


@pytest.mark.parametrize("channel", CHANNELS)
async def test_an_agents_reply_is_signed_and_refused_once_the_window_closed(
    service: tuple[Service, TestServer], graph: GraphStandIn, clock: Clock, channel: str
) -> None:
    running, server = service
    await post(server, text_event(channel, UPSET))
    [handoff] = await graph.next_sent(1)
    assert "a person from our team" in words_of(channel, handoff)
    async with running.runtime.db.session() as session:
        conversation = await session.scalar(select(Conversation.id))
    assert conversation is not None
    await running.runtime.desk.reply(conversation, "Ann", "It ships today.")
    joined, reply = (await graph.next_sent(3))[1:]
    # The bot says who joined; the agent's own reply is signed (no author shown otherwise).
    assert joined.body == text_body(channel, "Ann from our team has joined the conversation.")
    assert reply.body == text_body(channel, "Ann: It ships today.")

    clock.advance(24 * 3600 + 1)
    with pytest.raises(ReplyWindowClosed):
        await running.runtime.desk.reply(conversation, "Ann", "Are you still there?")
    with pytest.raises(ReplyWindowClosed):  # nor does Ben take it over by replying
        await running.runtime.desk.reply(
            conversation, "Ben", "Ben here, can I help?", from_colleague=True
        )
    assert (await running.runtime.queue.case(conversation)).agent == "Ann"
    await running.runtime.desk.resolve(conversation, "Ann")  # nothing said: it cannot arrive
    assert len(graph.calls) == 3


# Failed sends.

# (name, the failure injected, the waits before each retry): Meta's throughput error comes as
# HTTP 400 without Retry-After (exponential backoff from 1 s); a 429's Retry-After is honoured.
ON_EVERY_CHANNEL = [
    ("400-130429", {"status": 400, "code": 130429}, [1.0]),
    ("429-retry-after", {"status": 429, "code": 4, "headers": {"Retry-After": "7"}}, [7.0]),
    ("502", {"status": 502, "code": 1}, [1.0]),
]
ON_WHATSAPP = [
    ("400-131056", {"status": 400, "code": 131056}, [1.0]),  # the per-recipient limit
    ("500-twice", {"status": 500, "code": 2, "times": 2}, [1.0, 2.0]),  # the wait doubles
]
RETRIES = [
    pytest.param(channel, failure, waits, id=f"{channel}-{name}")
    for channel in CHANNELS
    for name, failure, waits in ON_EVERY_CHANNEL
] + [
    pytest.param("whatsapp", failure, waits, id=f"whatsapp-{name}")
    for name, failure, waits in ON_WHATSAPP
]


@pytest.mark.parametrize(("channel", "failure", "waits"), RETRIES)
async def test_a_refused_send_is_retried_after_its_wait_and_delivered_once(
    service: tuple[Service, TestServer],
    graph: GraphStandIn,
    clock: Clock,
    channel: str,
    failure: dict[str, Any],
    waits: list[float],
) -> None:
    running, server = service
    graph.fail_next(ACCOUNTS[channel], **failure)
    assert await post(server, text_event(channel, ORDER)) == (200, "EVENT_RECEIVED")
    assert [call.status for call in graph.calls] == [failure["status"]]  # the first attempt
    # Under load the webhook may be answered before the failed attempt is recorded (the send
    # goes on in the background after IMMEDIATE_WAIT): its retry time is set from the clock
    # at that moment, so the clock moves only once it is (failed once in a CI run).
    await running.runtime.outbox.drain()
    worker = paused_worker(running)
    delivered = 0
    for attempt, wait in enumerate(waits, start=1):
        clock.advance(wait - 0.5)
        assert await worker.deliver_due() == 0  # not before its wait
        assert len(graph.calls) == attempt
        clock.advance(0.5)
        delivered = await worker.deliver_due()
        assert len(graph.calls) == attempt + 1
    assert delivered == 1
    assert [call.status for call in graph.calls][-1] == 200
    [reply] = graph.sent
    assert reply.body == text_body(channel, TRACK)
    [row] = await outbox(running)
    assert (row.status, row.attempts, row.last_error) == ("sent", len(waits) + 1, None)
    assert row.external_id == reply.message_id
    clock.advance(3600)
    assert await worker.deliver_due() == 0  # exactly once
    assert len(graph.sent) == 1


async def test_the_running_worker_retries_on_its_own_when_the_wait_is_over(
    service: tuple[Service, TestServer], graph: GraphStandIn, clock: Clock
) -> None:
    running, server = service
    graph.fail_next(ACCOUNTS["messenger"], 400, 130429)
    await post(server, text_event("messenger", ORDER))
    clock.advance(1)
    running.runtime.outbox.wake()
    [reply] = await graph.next_sent(1)
    assert reply.body == text_body("messenger", TRACK)
    assert [call.status for call in graph.calls] == [400, 200]


async def test_a_closed_whatsapp_window_fails_the_reply_for_good(
    service: tuple[Service, TestServer], graph: GraphStandIn, clock: Clock
) -> None:
    running, server = service
    graph.fail_next(ACCOUNTS["whatsapp"], 400, 131047, times=3)
    assert await post(server, text_event("whatsapp", ORDER)) == (200, "EVENT_RECEIVED")
    [row] = await outbox(running)
    assert (row.status, row.attempts) == ("failed", 1)
    assert "131047" in (row.delivery_error or "") and "window" in (row.delivery_error or "")
    clock.advance(24 * 3600)
    assert await paused_worker(running).deliver_due() == 0  # not retried
    assert [call.status for call in graph.calls] == [400]


# Delivery reports.


async def test_whatsapp_delivery_statuses_are_recorded_on_the_reply(
    service: tuple[Service, TestServer], graph: GraphStandIn
) -> None:
    running, server = service
    number, user = ACCOUNTS["whatsapp"], USERS["whatsapp"]
    await post(server, text_event("whatsapp", ORDER))
    await post(server, text_event("whatsapp", ORDER, user="4930123456"))
    first, second = await graph.next_sent(2)
    assert first.message_id and second.message_id

    def at(seconds: int) -> datetime:
        return datetime.fromtimestamp(1_795_000_000 + seconds, UTC)

    for seconds, status in enumerate(["sent", "delivered", "read"], start=1):
        report = whatsapp_status(
            number, first.message_id, status, user, timestamp=1_795_000_000 + seconds
        )
        assert await post(server, report) == (200, "EVENT_RECEIVED")
        row = (await outbox(running))[0]
        assert (row.delivery_status, as_utc(row.status_at)) == (status, at(seconds))
    late = whatsapp_status(number, first.message_id, "delivered", user, timestamp=1_795_000_009)
    await post(server, late)  # arrives after the read report: read stays read
    assert (await outbox(running))[0].delivery_status == "read"

    errors = [{"code": 131026, "title": "Message undeliverable"}]
    failed = whatsapp_status(number, second.message_id, "failed", "4930123456", errors=errors)
    assert await post(server, failed) == (200, "EVENT_RECEIVED")
    row = (await outbox(running))[1]
    assert row.delivery_status == "failed"
    assert row.delivery_error == "131026 Message undeliverable"

    before = [(r.id, r.status, r.delivery_status, r.status_at) for r in await outbox(running)]
    for unknown in (
        whatsapp_status(number, "wamid.unknown", "read", user),
        whatsapp_status("9999", first.message_id, "failed", user),  # another number's
    ):
        assert await post(server, unknown) == (200, "EVENT_RECEIVED")
    after = [(r.id, r.status, r.delivery_status, r.status_at) for r in await outbox(running)]
    assert after == before
    assert await count_rows(running.runtime.db, Message) == 4


async def test_a_messenger_delivery_report_is_recorded_on_the_reply(
    service: tuple[Service, TestServer], graph: GraphStandIn
) -> None:
    running, server = service
    await post(server, text_event("messenger", ORDER))
    [reply] = await graph.next_sent(1)
    page, psid = ACCOUNTS["messenger"], USERS["messenger"]
    item = {
        "sender": {"id": psid},
        "recipient": {"id": page},
        "timestamp": 1_795_000_000_000,
        "delivery": {"mids": [reply.message_id, "m_unknown"], "watermark": 1_795_000_000_000},
    }
    report = {"object": "page", "entry": [{"id": page, "time": 1, "messaging": [item]}]}
    assert await post(server, report) == (200, "EVENT_RECEIVED")
    [row] = await outbox(running)
    assert row.delivery_status == "delivered"
    assert as_utc(row.status_at) == datetime.fromtimestamp(1_795_000_000, UTC)


# Storage failures.


async def test_a_batch_that_could_not_be_stored_is_refused_and_taken_when_sent_again(
    service: tuple[Service, TestServer], graph: GraphStandIn
) -> None:
    running, server = service
    first = text_event("whatsapp", ORDER)
    second = text_event("whatsapp", "where is my order, kaputt", user="4930123456")
    batch = {"object": first["object"], "entry": first["entry"] + second["entry"]}
    async with refusing_to_store(running.runtime.db, "kaputt"):
        status, _ = await post(server, batch)
        assert status == 500  # Meta sends the whole batch again later
    assert await post(server, batch) == (200, "EVENT_RECEIVED")
    replies = await graph.next_sent(2)
    assert [r.body["to"] for r in replies] == [USERS["whatsapp"], "4930123456"]  # each once
    await paused_worker(running).deliver_due()
    assert len(graph.calls) == 2
    assert sorted(await messages(running)) == sorted(
        [
            ("customer", ORDER),
            ("bot", TRACK),
            ("customer", "where is my order, kaputt"),
            ("bot", TRACK),
        ]
    )


async def test_a_whatsapp_photo_gets_a_polite_answer_and_agents_a_link_to_it(
    service: tuple[Service, TestServer], graph: GraphStandIn
) -> None:
    running, server = service
    graph.add_media("media-1", b"\xff\xd8 a photo", "image/jpeg")
    payload = whatsapp_image(ACCOUNTS["whatsapp"], USERS["whatsapp"], "media-1")
    assert await post(server, payload) == (200, "EVENT_RECEIVED")
    [reply] = await graph.next_sent(1)
    assert reply.body["text"]["body"] == running.runtime.settings.messages.media_only
    [(author, stored), _reply] = await messages(running)
    assert author == "customer" and stored.startswith("[image] /meta/media/")
    link = stored.split(" ", 1)[1]
    async with aiohttp.ClientSession() as http:
        async with http.get(server.make_url(link)) as response:
            assert response.status == 200 and response.content_type == "image/jpeg"
            assert await response.read() == b"\xff\xd8 a photo"
        async with http.get(server.make_url(link + "forged")) as response:
            assert response.status == 404
