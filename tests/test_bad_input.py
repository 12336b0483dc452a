"""What the fuzzer of every door (tests/fuzz_doors.py) found, one regression test each (or a
parametrized one where the bugs are alike). Each door answers bad input with a 4xx that says
what is wrong, never a 5xx, and logs nothing at ERROR; a message that is odd but someone's
words (a NUL byte, a lone surrogate) is kept, and so are the good messages beside it."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import numpy as np
import pytest
from sqlalchemy import select
from yarl import URL

from carebot.desk.slack import card as cards
from carebot.insight.topics import cluster
from carebot.signing import Signer
from carebot.store.tables import LARGEST_ID, Message, Note, PublicItem
from tests import x_standin
from tests.every_door import (
    ACCOUNTS,
    SIGNED,
    SLACK_AGENT,
    SLACK_CHANNEL,
    X_BRAND,
    Doors,
    Request,
    every_door,
)
from tests.graph_standin import whatsapp_text
from tests.schema_strategies import percent
from tests.slack_standin import (
    block_action,
    event_callback,
    slash_command,
    thread_reply,
    view_submission,
)
from tests.telegram_standin import text_update
from tests.x_standin import direct_message

Json = dict[str, Any]


def deep(levels: int) -> Json:
    """A field nested ``levels`` deep (what no platform sends, and recursion cannot walk)."""
    found: Json = {}
    for _ in range(levels):
        found = {"a": found}
    return found


@pytest.fixture
async def doors(tmp_path: Path, database_url: str) -> AsyncIterator[Doors]:
    async with every_door(tmp_path, database_url) as opened:
        yield opened


@pytest.fixture
def errors(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """The records at ERROR and above (a handler that failed), checked by the test."""
    caplog.set_level(logging.WARNING)
    return caplog


def logged_errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


async def send(
    doors: Doors,
    scheme: str,
    method: str,
    path: str,
    body: bytes | None = None,
    content_type: str = "application/json",
    mode: str = SIGNED,
) -> tuple[int, str]:
    """A request to the service, signed by ``scheme``'s rules; (status, body)."""
    headers = {"Content-Type": content_type} if body is not None else {}
    request = Request(method, path, headers=headers, body=body)
    doors.sign(scheme, request, mode, "")
    if request.cookies:
        request.headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in request.cookies.items())
    url = URL(str(doors.server.make_url("/")).rstrip("/") + request.path, encoded=True)
    async with (
        aiohttp.ClientSession() as http,
        http.request(
            method,
            url,
            data=request.body,
            headers=request.headers,
            allow_redirects=False,
            skip_auto_headers=("Content-Type",),
        ) as answer,
    ):
        return answer.status, await answer.text()


def form(doors: Doors, **fields: str) -> bytes:
    return urlencode({"csrf": doors.agent.csrf, **fields}).encode()


async def texts(doors: Doors, table: Any = Message) -> list[str]:
    async with doors.service.runtime.db.session() as session:
        return list((await session.scalars(select(table.text).order_by(table.id))).all())


# --- odd text: kept, as near as can be to what was sent --------------------------------------


def webhook_event(text: str) -> Json:
    return {"id": f"evt-{len(text)}-{ord(text[-1])}", "user": {"id": "42"}, "text": text}


NUL = ("where is\x00 my order", "where is my order")
SURROGATE = ("where is my order \ud800", "where is my order \ufffd")
ODD = [
    pytest.param(door, *odd, id=f"{door}-{name}")
    for door in ("webhook", "telegram", "x", "webchat")
    for name, odd in (("nul-byte", NUL), ("lone-surrogate", SURROGATE))
]


@pytest.mark.parametrize(("door", "sent", "kept"), ODD)
async def test_text_with_a_nul_byte_or_a_lone_surrogate_is_kept_as_near_as_can_be(
    doors: Doors, errors: pytest.LogCaptureFixture, door: str, sent: str, kept: str
) -> None:
    """PostgreSQL refused NUL bytes (500, and the message lost); neither database takes a lone
    surrogate, which the webhook's, Meta's and X's JSON parser refused besides (400). Found
    through the webhook and the inbox; the same holds at every door."""
    if door == "webchat":
        async with aiohttp.ClientSession() as http:
            ws = await http.ws_connect(doors.server.make_url("/chat/ws"))
            await ws.send_json({"type": "hello", "token": None})
            await ws.receive_json()
            await ws.send_str(json.dumps({"type": "message", "id": "m1", "text": sent}))
            while (frame := await ws.receive_json(timeout=10))["type"] != "ack":
                assert frame["type"] != "error", frame
            await ws.close()
    else:
        body, path = {
            "webhook": (webhook_event(sent), "/webhook"),
            "telegram": (text_update(4242, sent), "/telegram/webhook"),
            "x": (direct_message(X_BRAND, "2200000000000000002", sent), "/x/webhook"),
        }[door]
        status, answer = await send(doors, door, "POST", path, json.dumps(body).encode())
        assert status == 200, answer
    assert kept in await texts(doors)
    assert logged_errors(errors) == []


@pytest.mark.parametrize(("sent", "kept"), [NUL, SURROGATE], ids=["nul-byte", "lone-surrogate"])
async def test_a_meta_batch_with_an_odd_message_keeps_every_message(
    doors: Doors, errors: pytest.LogCaptureFixture, sent: str, kept: str
) -> None:
    """One message of a WhatsApp batch with a NUL byte failed the whole call on PostgreSQL
    (500), with a lone surrogate the JSON parser refused it (400): the good message beside it
    was not taken either."""
    batch = whatsapp_text(ACCOUNTS["whatsapp"], "4915112345678", "return item label")
    odd = whatsapp_text(ACCOUNTS["whatsapp"], "4915112345679", sent)
    value = batch["entry"][0]["changes"][0]["value"]
    value["messages"] += odd["entry"][0]["changes"][0]["value"]["messages"]
    status, answer = await send(doors, "meta", "POST", "/meta/webhook", json.dumps(batch).encode())
    assert (status, answer) == (200, "EVENT_RECEIVED")
    stored = await texts(doors)
    assert "return item label" in stored and kept in stored
    assert logged_errors(errors) == []


async def test_a_post_by_an_account_with_more_followers_than_a_column_holds_is_kept(
    doors: Doors, errors: pytest.LogCaptureFixture
) -> None:
    """A followers count past 2**31 - 1 failed the X delivery on PostgreSQL (the public
    item's reach is an integer column): 500, and the batch's other posts lost with it."""
    famous = x_standin.user("2200000000000000002", "famous", followers=95_215_708_436)
    post = x_standin.tweet(famous, "@acme_care where is my order", mentions=(X_BRAND,))
    body = json.dumps(x_standin.tweets(X_BRAND, post)).encode()
    status, answer = await send(doors, "x", "POST", "/x/webhook", body)
    assert status == 200, answer
    assert "@acme_care where is my order" in await texts(doors)
    async with doors.service.runtime.db.session() as session:
        assert await session.scalar(select(PublicItem.reach)) == LARGEST_ID
    assert logged_errors(errors) == []


async def test_a_webhook_body_with_a_field_nested_too_deeply_gets_400(
    doors: Doors, errors: pytest.LogCaptureFixture
) -> None:
    """An unknown field nested 500 deep was kept in the message's raw payload, and making its
    text storable recursed past the limit: 500."""
    body = json.dumps(webhook_event("hi") | {"extra": deep(500)}).encode()
    status, answer = await send(doors, "webhook", "POST", "/webhook", body)
    assert status == 400 and "nested too deeply" in answer
    assert logged_errors(errors) == []


async def test_a_body_nested_too_deeply_around_a_lone_surrogate_gets_400(
    doors: Doors, errors: pytest.LogCaptureFixture
) -> None:
    """Replacing the lone surrogate walked the nesting and hit the recursion limit: 500."""
    body = b'{"id": "1", "text": "\\ud800", "deep": ' + b"[" * 5_000 + b"]" * 5_000 + b"}"
    status, answer = await send(doors, "webhook", "POST", "/webhook", body)
    assert status == 400 and "nested too deeply" in answer
    assert logged_errors(errors) == []


async def test_an_inbox_note_with_a_nul_byte_is_kept(
    doors: Doors, errors: pytest.LogCaptureFixture
) -> None:
    await send(doors, "webhook", "POST", "/webhook", json.dumps(webhook_event("hi")).encode())
    body = form(doors, text="call back\x00 at 5")
    status, _ = await send(
        doors, "session", "POST", "/inbox/c/1/note", body, "application/x-www-form-urlencoded"
    )
    assert status == 303
    assert await texts(doors, Note) == ["call back at 5"]
    assert logged_errors(errors) == []


# --- bodies that are not what the platform sends: 400 naming the problem ----------------------


def slack_form(payload: Json) -> bytes:
    return urlencode({"payload": json.dumps(payload)}).encode()


def button_press(action_id: str, value: str) -> Json:
    return block_action(
        user=SLACK_AGENT,
        channel=SLACK_CHANNEL,
        message_ts="1.1",
        action_id=action_id,
        value=value,
        response_url="http://127.0.0.1:9/response/",
    )


def button(action_id: str, value: str) -> bytes:
    return slack_form(button_press(action_id, value))


def without_trigger(press: Json) -> Json:
    del press["trigger_id"]
    return press


def slack_view(user: str, callback_id: str, conversation: str) -> Json:
    return view_submission(
        user=user, callback_id=callback_id, private_metadata=conversation, values={}
    )


def without_type(submission: Json) -> Json:
    del submission["view"]["type"]
    return submission


def telegram_dated(seconds: int) -> bytes:
    update = text_update(4242, "hi")
    update["message"]["date"] = seconds
    return json.dumps(update).encode()


FORM = "application/x-www-form-urlencoded"
SLACK_BAD = [
    pytest.param(
        urlencode(slash_command(user=SLACK_AGENT, text="faq refund", response_url="2031")).encode(),
        FORM,
        "response_url",
        id="command-response-url",  # bolt waited 3 s for an ack that never came, then 404
    ),
    pytest.param(button(cards.RESOLVE, "not a number"), FORM, "actions.0", id="button-value"),
    pytest.param(button(cards.RESOLVE, str(LARGEST_ID + 1)), FORM, "actions.0", id="huge-value"),
    pytest.param(
        slack_form(without_type(slack_view(SLACK_AGENT, cards.EDIT_VIEW, "1"))),
        FORM,
        "view.type",
        id="view-without-type",  # bolt read view["type"]: KeyError, 500
    ),
    pytest.param(slack_form({"type": "block_actions", "user": "UANN"}), FORM, "user", id="user"),
    pytest.param(
        slack_form(without_trigger(button_press(cards.EDIT_DRAFT, "1"))),
        FORM,
        "trigger_id",
        id="edit-without-trigger",  # the listener read body["trigger_id"]: KeyError, logged
    ),
    pytest.param(b"payload=%7Bnot+json", FORM, "not JSON", id="payload-not-json"),
    pytest.param(
        b'{"type": "event_callback", "event": "x"}\xff', "application/json", "UTF-8", id="not-utf8"
    ),  # slack_sdk's verifier failed on it: 500
    pytest.param(
        json.dumps(event_callback({"type": "message", "channel": ["C"]}, event_id="Ev1")).encode(),
        "application/json",
        "event.channel",
        id="event-channel",
    ),
]


@pytest.mark.parametrize(("body", "content_type", "named"), SLACK_BAD)
async def test_a_signed_slack_request_of_another_shape_gets_400_naming_the_field(
    doors: Doors, errors: pytest.LogCaptureFixture, body: bytes, content_type: str, named: str
) -> None:
    status, answer = await send(doors, "slack", "POST", "/slack/events", body, content_type)
    assert status == 400, answer
    assert named in answer
    assert logged_errors(errors) == []


async def test_a_slack_event_with_a_nul_byte_is_read_as_storable_text(
    doors: Doors, errors: pytest.LogCaptureFixture
) -> None:
    """A thread reply whose ts held a NUL byte failed the desk's query on PostgreSQL, after
    bolt had answered (logged at ERROR by bolt)."""
    event = thread_reply(
        channel=SLACK_CHANNEL, thread_ts="1.1\x00", user=SLACK_AGENT, text="hi\x00", ts="2.2"
    )
    body = json.dumps(event_callback(event, event_id="Ev\x003")).encode()
    assert (await send(doors, "slack", "POST", "/slack/events", body))[0] == 200
    await doors.settle()  # bolt's listener runs after the answer
    assert logged_errors(errors) == []


async def test_a_slack_edit_button_of_no_conversation_tells_the_agent(
    doors: Doors, errors: pytest.LogCaptureFixture
) -> None:
    """The Edit button's listener failed on a conversation that does not exist (logged at
    ERROR by bolt) and the agent saw nothing. (Transfer's has the same fix; with one team it
    says there is no other team first.)"""
    press = button_press(cards.EDIT_DRAFT, "999") | {"response_url": doors.slack.response_url}
    status, _ = await send(doors, "slack", "POST", "/slack/events", slack_form(press), FORM)
    assert status == 200
    await doors.settle()
    assert any("No conversation" in str(r) for r in doors.slack.responses)
    assert logged_errors(errors) == []


async def test_a_well_formed_slack_reply_still_reaches_bolt(doors: Doors) -> None:
    """(The check before bolt lets Slack's own requests through.)"""
    event = thread_reply(
        channel=SLACK_CHANNEL, thread_ts="1.1", user=SLACK_AGENT, text="hi", ts="2.2"
    )
    body = json.dumps(event_callback(event, event_id="Ev2")).encode()
    assert (await send(doors, "slack", "POST", "/slack/events", body))[0] == 200


TELEGRAM_BAD = [
    pytest.param(b"[" * 100_000 + b"]" * 100_000, "not JSON", id="deep-nesting"),  # RecursionError
    pytest.param(b'"text"', "update_id", id="a-string"),  # AttributeError in PTB
    pytest.param(telegram_dated(10**12), "not a Telegram update", id="date-past-9999"),
    pytest.param(
        json.dumps(text_update(4242, "hi") | {"extra": deep(500)}).encode(),
        "nested more than 64 levels",
        id="deep-unknown-field",  # parsed, then making its text storable recursed: 500
    ),
    pytest.param(
        json.dumps({"update_id": 6, "edited_message": {"message_id": 1, "date": 1}}).encode(),
        "a message needs its 'chat'",
        id="message-without-chat",  # python-telegram-bot took it; reading its chat failed: 500
    ),
    pytest.param(
        json.dumps(
            {"update_id": 5, "message": {"message_id": 1, "date": 1, "chat": "me"}}
        ).encode(),
        "not a Telegram update",
        id="chat-a-string",
    ),
]


@pytest.mark.parametrize(("body", "named"), TELEGRAM_BAD)
async def test_a_telegram_body_that_is_no_update_gets_400(
    doors: Doors, errors: pytest.LogCaptureFixture, body: bytes, named: str
) -> None:
    status, answer = await send(doors, "telegram", "POST", "/telegram/webhook", body)
    assert status == 400, answer
    assert named in answer
    assert logged_errors(errors) == []


# --- the inbox's and the console's forms and paths ---------------------------------------------

FORM_BAD = [
    pytest.param("/inbox/c/1/note", "text=a&text=b", 400, "sent 2 times", id="repeated-field"),
    pytest.param(
        "/inbox/c/1/label",
        f"message_id={LARGEST_ID + 1}&label=upset",
        400,
        "message_id",
        id="message-number-too-big",
    ),
    pytest.param(
        f"/inbox/c/{LARGEST_ID + 1}/note",
        "text=a",
        404,
        "numbers go up to",
        id="conversation-number-too-big",
    ),  # PostgreSQL: out of int32 range, 500
    pytest.param(
        "/inbox/c/77/hide",
        "message_id=5&hidden=1",
        404,
        "No conversation",
        id="hide-unknown-conversation",
    ),  # NoResultFound, 500
    pytest.param(
        "/console/intents", "action=check&proposal=77", 404, "proposal", id="unknown-proposal"
    ),  # StoreError, 500
    pytest.param(
        "/console/propose/reply",
        "message_id=99999999999",
        400,
        "message_id",
        id="proposed-reply-too-big",
    ),
]


@pytest.mark.parametrize(("path", "fields", "status", "named"), FORM_BAD)
async def test_an_inbox_or_console_form_a_page_never_sends_gets_a_4xx_naming_it(
    doors: Doors, errors: pytest.LogCaptureFixture, path: str, fields: str, status: int, named: str
) -> None:
    body = f"csrf={doors.agent.csrf}&{fields}".encode()
    got, answer = await send(doors, "session", "POST", path, body, FORM)
    assert got == status, answer
    assert named in answer
    assert logged_errors(errors) == []


async def test_a_form_body_that_is_no_form_gets_400(
    doors: Doors, errors: pytest.LogCaptureFixture
) -> None:
    """A multipart body without its boundary: aiohttp's parser raised ValueError (500)."""
    status, answer = await send(
        doors, "session", "POST", "/inbox/c/1/close", b"\x00\x01", "multipart/form-data; boundary=x"
    )
    assert status == 400 and "not a form" in answer
    assert logged_errors(errors) == []


PAGES_BAD = [
    pytest.param("/inbox?q=%00", 400, "NUL", id="search-nul-byte"),  # PostgreSQL: 500
    pytest.param("/console/history?intent=59%0077", 400, "NUL", id="history-nul-byte"),
    pytest.param(
        "/console/intents/new?file=" + percent("../../secret"),
        400,
        "yaml",
        id="new-intent-outside-the-folder",
    ),  # IntentEditError, 500
    pytest.param(
        "/console/intents/new?file=" + percent("a\x00.yaml"), 400, "NUL", id="new-intent-nul-byte"
    ),
    pytest.param(
        "/insights?since=0293-09-02", 400, "since must be a day from 1970", id="insights-year-293"
    ),  # the period before it overflowed: 500
]


@pytest.mark.parametrize(("path", "status", "named"), PAGES_BAD)
async def test_a_page_asked_for_what_it_cannot_show_says_so(
    doors: Doors, errors: pytest.LogCaptureFixture, path: str, status: int, named: str
) -> None:
    got, answer = await send(doors, "session", "GET", path)
    assert got == status
    assert named in answer
    assert logged_errors(errors) == []


# --- links, tokens, topics --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scheme", "prefix"), [("telegram-file", "/telegram/file/"), ("wa-media", "/meta/media/")]
)
async def test_a_file_link_the_platform_has_no_file_for_gets_404(
    doors: Doors, scheme: str, prefix: str
) -> None:
    """A validly signed link to a file the platform refuses for good was answered 502."""
    status, answer = await send(doors, scheme, "GET", prefix + "no-such-file")
    assert status == 404, answer
    assert "does not have this file" in answer


WEBCHAT_BAD = [
    # Signer.verify encoded the token and failed: the socket's handler crashed.
    pytest.param(json.dumps({"type": "hello", "token": "x\udfffy"}), "bad_token", id="token"),
    pytest.param("[" * 5_000 + "]" * 5_000, "bad_frame", id="deep-nesting"),  # RecursionError
    pytest.param(json.dumps({"type": "hello", "page": deep(500)}), "bad_frame", id="deep-field"),
]


@pytest.mark.parametrize(("frame", "code"), WEBCHAT_BAD)
async def test_a_web_chat_frame_that_crashed_the_socket_is_refused(
    doors: Doors, errors: pytest.LogCaptureFixture, frame: str, code: str
) -> None:
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(doors.server.make_url("/chat/ws"))
        await ws.send_str(frame)
        answer = await ws.receive_json(timeout=10)
        await ws.close()
    assert (answer["type"], answer["code"]) == ("error", code)
    assert logged_errors(errors) == []


def test_a_value_that_is_not_valid_unicode_is_signed_and_its_token_refused() -> None:
    """A Telegram file id with a lone surrogate failed its link's signing: 500, update lost."""
    signer = Signer(b"k" * 32, "telegram-file")
    assert signer.verify(signer.sign("x\udfffy", ttl=60)) is None
    assert signer.verify(signer.sign("file-1", ttl=60)) == "file-1"
    assert signer.verify("x\udfffy.abc") is None  # a token that is not ASCII: forged


async def test_a_telegram_file_whose_id_is_not_valid_unicode_is_still_taken(
    doors: Doors, errors: pytest.LogCaptureFixture
) -> None:
    update = text_update(4242, "my receipt")
    update["message"]["document"] = {"file_id": "x\udfffy", "file_unique_id": "u1"}
    status, answer = await send(
        doors, "telegram", "POST", "/telegram/webhook", json.dumps(update).encode()
    )
    assert status == 200, answer
    [stored] = [text for text in await texts(doors) if text.startswith("my receipt")]
    assert "[document] https://care.example/telegram/file/" in stored
    assert logged_errors(errors) == []


def test_a_text_the_encoder_found_nothing_in_is_a_topic_of_its_own() -> None:
    """A zero vector (the fake encoder's for a text of no known word) failed the cosine
    distance of the topic clustering: /insights and its export answered 500."""
    vectors = np.array([[1.0, 0.0], [0.0, 0.0], [0.99, 0.14], [0.0, 0.0]], dtype=np.float32)
    labels = cluster(vectors)
    assert labels[0] == labels[2]  # the two alike, together
    assert len({labels[0], labels[1], labels[3]}) == 3  # each empty one alone
