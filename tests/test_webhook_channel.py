"""The generic signed webhook channel end to end: the real service (fake encoder) on loopback,
inbound events signed as the format prescribes, replies going out to the reply receiver, which
checks their signature independently of carebot.

As in test_meta, the service runs on the tests' clock, which stands still: the retry tests pause
the outbox worker and deliver what fell due themselves after moving the clock.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import select

from carebot.server import Service
from carebot.store.tables import Conversation, Identity, OutboxRow
from tests.conftest import Clock
from tests.service import UPSET, messages, outbox, paused_worker, running_service, service_settings
from tests.test_meta import refusing_to_store
from tests.webhook_standin import (
    SIGNATURE_HEADER,
    Json,
    ReplyReceiver,
    post_inbound,
    sign_body,
)

SECRET = "whsec-carebot-test"
ENV = {"CAREBOT_WEBHOOK_SECRET": SECRET}
INBOUND = "/webhook"
ORDER = "where is my order"
TRACK = "Track it at https://track.example."
FREE = "Returns are free within 30 days."
_events = iter(range(1, 10_000))


@pytest.fixture
async def receiver() -> AsyncIterator[ReplyReceiver]:
    async with ReplyReceiver(SECRET) as standin:
        yield standin


@pytest.fixture
async def service(
    tmp_path: Path, database_url: str, clock: Clock, receiver: ReplyReceiver
) -> AsyncIterator[tuple[Service, TestServer]]:
    settings = service_settings(tmp_path, webhook={"enabled": True, "reply_url": receiver.url})
    async with running_service(settings, database_url, clock, env=ENV) as running:
        yield running


def event(words: str, *, user: str | Json = "42", event_id: str = "", **more: Any) -> Json:
    """An inbound event in the documented format (a fresh id unless given); ``user`` is the
    user's id or the whole user object."""
    sender = user if isinstance(user, dict) else {"id": user}
    return {"id": event_id or f"evt_{next(_events)}", "user": sender, "text": words} | more


async def post(
    server: TestServer, body: Json, *, secret: str | list[str] | None = SECRET, **how: Any
) -> tuple[int, Any]:
    return await post_inbound(str(server.make_url(INBOUND)), body, secret=secret, **how)


async def post_raw(server: TestServer, raw: bytes, *, chunks: int = 0) -> tuple[int, Any]:
    """POST bytes as they are, correctly signed; in ``chunks`` pieces (chunked transfer
    encoding, no Content-Length) when given. Returns the status and the JSON answer (None when
    the answer is not JSON)."""
    headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign_body(SECRET, raw)}

    async def pieces() -> AsyncIterator[bytes]:
        size = -(-len(raw) // chunks)
        for start in range(0, len(raw), size):
            yield raw[start : start + size]

    data = pieces() if chunks else raw
    async with (
        aiohttp.ClientSession() as http,
        http.post(server.make_url(INBOUND), data=data, headers=headers) as response,
    ):
        is_json = response.content_type == "application/json"
        return response.status, await response.json() if is_json else None


def reply(row: OutboxRow, words: str, **fields: Any) -> Json:
    """The body the receiver should get for the outbox row ``row``."""
    body = {
        "id": f"reply_{row.id}",
        "type": "reply",
        "user": {"id": row.external_user_id},
        "text": words,
        "signed_text": words,
        "author": "bot",
        "agent": None,
        "handoff": False,
        "notice": None,
        "choices": [],
        "created_at": row.created_at.isoformat(),
    }
    return body | fields


async def test_a_question_is_answered_with_a_signed_reply(
    service: tuple[Service, TestServer], receiver: ReplyReceiver
) -> None:
    running, server = service
    user = {"id": "42", "name": "Ann", "phone": "+4930123456", "email": "ann@example.com"}
    question = event("Where is my order? \U0001f4e6", sent_at="2026-11-18T09:59:30Z", user=user)
    assert await post(server, question) == (200, {"ok": True})
    [body] = await receiver.next_received(1)
    [row] = await outbox(running)
    assert body == reply(row, TRACK)
    assert body["created_at"] == "2026-11-18T10:00:00+00:00"
    signature = receiver.headers[0][SIGNATURE_HEADER]
    assert re.fullmatch(r"t=\d+,v1=[0-9a-f]{64}", signature)  # and the receiver checked it
    assert receiver.rejections == []
    assert await messages(running) == [
        ("customer", "Where is my order? \U0001f4e6"),
        ("bot", TRACK),
    ]
    async with running.runtime.db.session() as session:
        identity = await session.scalar(select(Identity))
    assert identity is not None and identity.profile == {
        "name": "Ann",
        "phone": "+4930123456",
        "email": "ann@example.com",
    }


async def test_a_resent_event_is_answered_once(
    service: tuple[Service, TestServer], receiver: ReplyReceiver
) -> None:
    running, server = service
    question = event(ORDER)
    assert await post(server, question) == (200, {"ok": True})
    assert await post(server, question) == (200, {"ok": True})  # the sender retries
    await receiver.next_received(1)
    await paused_worker(running).deliver_due()  # nothing left to send either
    assert len(receiver.received) == 1 and receiver.refused == []
    assert await messages(running) == [("customer", ORDER), ("bot", TRACK)]


async def test_clarification_choices_are_listed_and_the_customer_picks_one_by_id(
    service: tuple[Service, TestServer], receiver: ReplyReceiver
) -> None:
    _, server = service
    await post(server, event("return item label"))
    [question] = await receiver.next_received(1)
    offered = {c["id"]: c["label"] for c in question["choices"]}
    assert offered == {"returns": "Returns", "returns_label": "Return label"}
    await post(server, event("returns"))  # the id of the button the customer tapped
    answer = (await receiver.next_received(2))[1]
    assert (answer["text"], answer["choices"]) == (FREE, [])


async def test_a_handoff_and_the_agents_reply_say_who_wrote_them(
    service: tuple[Service, TestServer], receiver: ReplyReceiver
) -> None:
    running, server = service
    await post(server, event(UPSET))
    [handoff] = await receiver.next_received(1)
    assert handoff["handoff"] is True and handoff["author"] == "bot"
    async with running.runtime.db.session() as session:
        conversation = await session.scalar(select(Conversation.id))
    assert conversation is not None
    await running.runtime.desk.reply(conversation, "Ann", "It ships today.")
    joined, answer = (await receiver.next_received(3))[1:]
    rows = await outbox(running)
    # Replying took the conversation over: the receiver can tell the notice from the reply.
    assert joined == reply(
        rows[1], "Ann from our team has joined the conversation.", notice="agent_joined"
    )
    assert answer == reply(
        rows[2], "It ships today.", signed_text="Ann: It ships today.", author="agent", agent="Ann"
    )


async def test_a_bad_missing_or_stale_signature_is_refused_and_not_processed(
    service: tuple[Service, TestServer], receiver: ReplyReceiver
) -> None:
    running, server = service
    question = event(ORDER)
    raw = json.dumps(question).encode()
    now = int(time.time())
    refusals: list[dict[str, Any]] = [
        {"secret": None},
        {"secret": "not-the-secret"},
        {"timestamp": now - 3600},  # a replay of an old request
        {"timestamp": now + 3600},
        {"signature": sign_body(SECRET, raw).split(",")[1]},  # no t=
        {"signature": f"t=soon,{sign_body(SECRET, raw).split(',')[1]}"},
        {"signature": sign_body(SECRET, json.dumps(event(ORDER, user="666")).encode())},
    ]
    for how in refusals:
        status, _ = await post(server, question, **how)
        assert status == 401, how
    assert await messages(running) == []

    # Within the replay window, and while the secret is rotated (two v1= entries).
    status, _ = await post(server, question, secret=["the-old-secret", SECRET], timestamp=now - 60)
    assert status == 200
    [first] = await receiver.next_received(1)
    assert first["text"] == TRACK
    assert await messages(running) == [("customer", ORDER), ("bot", TRACK)]


MALFORMED = {
    # Not an event at all.
    "not-json": (b"not json", ""),
    "a-list": (b"[1, 2]", ""),
    # A required field left out.
    "no-id": (json.dumps({"user": {"id": "42"}, "text": ORDER}).encode(), "id"),
    "no-user": (json.dumps({"id": "e1", "text": ORDER}).encode(), "user"),
    "no-user-id": (
        json.dumps({"id": "e1", "user": {"name": "Ann"}, "text": ORDER}).encode(),
        "user.id",
    ),
    "no-text": (json.dumps({"id": "e1", "user": {"id": "42"}}).encode(), "text"),
    # Blank, or of the wrong type.
    "blank-id": (json.dumps(event(ORDER, event_id=" ")).encode(), "id"),
    "blank-user-id": (json.dumps(event(ORDER, user="")).encode(), "user.id"),
    "blank-text": (json.dumps({"id": "e1", "user": {"id": "42"}, "text": "  "}).encode(), "text"),
    "text-a-number": (json.dumps({"id": "e1", "user": {"id": "42"}, "text": 7}).encode(), "text"),
    "id-a-bool": (json.dumps(event(ORDER) | {"id": True}).encode(), "id"),
    "user-id-an-object": (json.dumps(event(ORDER, user={"id": {"n": "42"}})).encode(), "user.id"),
    "sent-at-not-a-time": (json.dumps(event(ORDER, sent_at="yesterday")).encode(), "sent_at"),
    # Longer than the database keeps.
    "user-id-too-long": (json.dumps(event(ORDER, user="4" * 201)).encode(), "user.id"),
    "id-too-long": (json.dumps(event(ORDER, event_id="e" * 201)).encode(), "id"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
async def test_a_malformed_event_is_refused_with_400_and_not_stored(
    service: tuple[Service, TestServer],
    receiver: ReplyReceiver,
    caplog: pytest.LogCaptureFixture,
    case: str,
) -> None:
    running, server = service
    raw, field = MALFORMED[case]
    with caplog.at_level(logging.WARNING, logger="carebot.adapters.webhook"):
        status, answer = await post_raw(server, raw)
    assert status == 400, raw
    assert answer["ok"] is False and answer["error"].startswith(field)  # names what is wrong
    [refused] = [r for r in caplog.records if "malformed webhook call" in r.getMessage()]
    assert refused.levelno == logging.WARNING and ORDER not in refused.getMessage()
    assert await messages(running) == []
    assert receiver.received == receiver.refused == []


async def test_fields_the_format_does_not_know_are_ignored(
    service: tuple[Service, TestServer], receiver: ReplyReceiver
) -> None:
    running, server = service
    user = {"id": 42, "phone": 4930123456, "tier": "gold"}  # numbers are taken as their digits
    body = event(f"  {ORDER} ", user=user, channel="sms", sent_at="2026-11-18T09:59:30")
    assert await post(server, body) == (200, {"ok": True})
    await receiver.next_received(1)
    assert await messages(running) == [("customer", ORDER), ("bot", TRACK)]
    async with running.runtime.db.session() as session:
        identity = await session.scalar(select(Identity))
    assert identity is not None and identity.external_user_id == "42"
    assert identity.profile == {"phone": "4930123456"}


async def test_a_large_event_is_read_whole_and_one_over_the_limit_refused(
    service: tuple[Service, TestServer],
) -> None:
    running, server = service
    long = "where is my order " * 11_000  # ~200 KB, within the limit
    assert (await post_raw(server, json.dumps(event(long)).encode()))[0] == 200
    assert (await post_raw(server, json.dumps(event(long)).encode(), chunks=8))[0] == 200
    too_long = json.dumps(event("x" * 300_000)).encode()
    assert (await post_raw(server, too_long))[0] == 413
    assert (await post_raw(server, too_long, chunks=8))[0] == 413
    stored = [words for author, words in await messages(running) if author == "customer"]
    assert stored == [long.strip(), long.strip()]


@pytest.mark.parametrize(
    ("failure", "waits"),
    [
        ({"status": 429, "headers": {"Retry-After": "7"}}, [7.0]),
        ({"status": 503}, [1.0]),
        ({"status": 500, "times": 2}, [1.0, 2.0]),
    ],
    ids=["429-retry-after", "503", "500-twice"],
)
async def test_a_refused_reply_is_retried_after_its_wait_and_delivered_once(
    service: tuple[Service, TestServer],
    receiver: ReplyReceiver,
    clock: Clock,
    failure: dict[str, Any],
    waits: list[float],
) -> None:
    running, server = service
    receiver.fail_next(**failure)
    assert await post(server, event(ORDER)) == (200, {"ok": True})
    assert len(receiver.refused) == 1  # the first attempt
    worker = paused_worker(running)
    delivered = 0
    for attempt, wait in enumerate(waits, start=1):
        clock.advance(wait - 0.5)
        assert await worker.deliver_due() == 0  # not before its wait
        assert len(receiver.refused) + len(receiver.received) == attempt
        clock.advance(0.5)
        delivered = await worker.deliver_due()
        assert len(receiver.refused) + len(receiver.received) == attempt + 1
    assert delivered == 1
    [row] = await outbox(running)
    [body] = receiver.received
    assert body == reply(row, TRACK)
    assert all(refused == body for refused in receiver.refused)  # the same id every time
    assert (row.status, row.attempts, row.last_error) == ("sent", len(waits) + 1, None)
    clock.advance(3600)
    assert await worker.deliver_due() == 0  # exactly once
    assert len(receiver.received) == 1


async def test_the_running_worker_retries_on_its_own_when_the_wait_is_over(
    service: tuple[Service, TestServer], receiver: ReplyReceiver, clock: Clock
) -> None:
    running, server = service
    receiver.fail_next(502)
    await post(server, event(ORDER))
    clock.advance(1)
    running.runtime.outbox.wake()
    [body] = await receiver.next_received(1)
    assert body["text"] == TRACK and len(receiver.refused) == 1


async def test_an_event_that_could_not_be_stored_is_answered_500_and_taken_when_resent(
    service: tuple[Service, TestServer], receiver: ReplyReceiver
) -> None:
    running, server = service
    question = event("where is my order, kaputt")
    async with refusing_to_store(running.runtime.db, "kaputt"):
        status, _ = await post(server, question)
        assert status == 500  # the sender retries
    assert await messages(running) == []
    assert await post(server, question) == (200, {"ok": True})
    [body] = await receiver.next_received(1)
    assert body["text"] == TRACK
    assert await messages(running) == [("customer", "where is my order, kaputt"), ("bot", TRACK)]


async def test_a_call_whose_sender_has_gone_is_let_go_and_taken_when_resent(
    service: tuple[Service, TestServer], receiver: ReplyReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    """A call whose sender closed the connection before the worker read it (a worker back from
    a stop finds its queued calls so) is not handled: the sender saw a failure and resends."""
    running, server = service
    question = event("where is my order")
    raw = json.dumps(question).encode()
    head = (
        f"POST {INBOUND} HTTP/1.1\r\nHost: carebot\r\nContent-Type: application/json\r\n"
        f"{SIGNATURE_HEADER}: {sign_body(SECRET, raw)}\r\nContent-Length: {len(raw)}\r\n\r\n"
    )
    caplog.set_level(logging.INFO, logger="carebot.server")
    with socket.create_connection((server.host, server.port)) as gone:
        gone.sendall(head.encode() + raw)  # and closed before the event loop gets to it
    assert await post(server, event("how do I return an item")) == (200, {"ok": True})
    assert [body["text"] for body in await receiver.next_received(1)] == [FREE]
    assert f"Not handling POST {INBOUND}: its client closed the connection" in caplog.text
    assert await messages(running) == [("customer", "how do I return an item"), ("bot", FREE)]
    assert await post(server, question) == (200, {"ok": True})
    assert [body["text"] for body in await receiver.next_received(2)] == [FREE, TRACK]
