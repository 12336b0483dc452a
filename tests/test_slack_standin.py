"""The Slack stand-in speaks what the real slack_sdk clients expect."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.async_client import AsyncBaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient

from tests.slack_standin import (
    FORM,
    JSON,
    SlackStandIn,
    block_action,
    event_callback,
    form_body,
    signed_headers,
    thread_reply,
    view_submission,
)


@pytest.fixture
async def slack() -> AsyncIterator[SlackStandIn]:
    async with SlackStandIn() as standin:
        yield standin


def client(slack: SlackStandIn, **kwargs: Any) -> AsyncWebClient:
    return AsyncWebClient(token="xoxb-test", base_url=slack.base_url, **kwargs)


async def test_post_update_replies_round_trip(slack: SlackStandIn) -> None:
    web = client(slack)
    assert (await web.auth_test())["user_id"] == "UBOT"
    parent = await web.chat_postMessage(channel="C1", text="hi", blocks=[{"type": "divider"}])
    reply = await web.chat_postMessage(channel="C1", text="more", thread_ts=parent["ts"])
    await web.chat_update(channel="C1", ts=parent["ts"], text="edited")
    thread = await web.conversations_replies(channel="C1", ts=parent["ts"])
    assert [m["text"] for m in thread["messages"]] == ["edited", "more"]
    assert slack.message("C1", parent["ts"])["blocks"] == [{"type": "divider"}]
    assert slack.thread("C1", parent["ts"])[0]["ts"] == reply["ts"] > parent["ts"]
    slack.members |= {"U1", "U2", "U3"}
    pages = [
        page["members"] async for page in await web.conversations_members(channel="C1", limit=2)
    ]
    assert pages == [["U1", "U2"], ["U3"]]


async def test_rate_limited_post_is_retried(slack: SlackStandIn) -> None:
    web = client(slack, retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=2)])
    slack.fail_next("chat.postMessage", 429, retry_after=0)
    await web.chat_postMessage(channel="C1", text="hi")
    assert [c.status for c in slack.calls] == [429, 200]
    assert len(slack.successful("chat.postMessage")) == 1
    assert len(slack.messages["C1"]) == 1


MEMBERS_FAILURES = {
    "server-error": (lambda slack: slack.fail_next("conversations.members", 500), 500, None),
    "refused": (
        lambda slack: slack.fail_next(
            "conversations.members", 200, body={"ok": False, "error": "missing_scope"}
        ),
        200,
        "missing_scope",
    ),
    "outage": (
        lambda slack: slack.down("conversations.members", 503, until=lambda: False),
        503,
        None,
    ),
}


@pytest.mark.parametrize("failure", list(MEMBERS_FAILURES))
async def test_the_member_list_answers_and_its_failures_can_be_injected(
    slack: SlackStandIn, failure: str
) -> None:
    """conversations.members (the desk asks it who may act) fails as told, then answers."""
    web = client(slack, retry_handlers=[])
    slack.members |= {"UANN"}
    inject, status, error = MEMBERS_FAILURES[failure]
    inject(slack)
    with pytest.raises(SlackApiError) as caught:
        await web.conversations_members(channel="C1")
    assert caught.value.response.status_code == status
    assert caught.value.response["error"] == (error or "internal_error")
    if failure == "outage":
        assert [c.status for c in slack.calls] == [503]
        with pytest.raises(SlackApiError):
            await web.conversations_members(channel="C1")  # still down
        return
    answer = await web.conversations_members(channel="C1")
    assert answer["members"] == ["UANN"]


async def test_an_outage_ends_when_the_test_says_so(slack: SlackStandIn) -> None:
    web = client(slack, retry_handlers=[])
    over = False
    slack.down("chat.postMessage", 500, until=lambda: over, only=lambda p: p["channel"] == "C1")
    with pytest.raises(SlackApiError):
        await web.chat_postMessage(channel="C1", text="lost")
    await web.chat_postMessage(channel="C2", text="another channel gets through")
    over = True
    await web.chat_postMessage(channel="C1", text="back")
    assert [(c.params["channel"], c.status) for c in slack.calls] == [
        ("C1", 500),
        ("C2", 200),
        ("C1", 200),
    ]


async def test_wrong_token_is_invalid_auth(slack: SlackStandIn) -> None:
    web = AsyncWebClient(token="xoxb-wrong", base_url=slack.base_url)
    with pytest.raises(SlackApiError) as caught:
        await web.chat_postMessage(channel="C1", text="hi")
    assert caught.value.response["error"] == "invalid_auth"


async def test_stop_refuses_connections_until_restart(slack: SlackStandIn) -> None:
    web = client(slack, retry_handlers=[])
    await slack.stop()
    with pytest.raises(aiohttp.ClientConnectionError):
        await web.auth_test()
    await slack.restart()
    assert (await web.auth_test())["ok"]


async def test_wait_for_reports_what_arrived(slack: SlackStandIn) -> None:
    await client(slack).auth_test()
    with pytest.raises(AssertionError, match=r"auth\.test\(200, ok=True\)"):
        await slack.wait_for("chat.postMessage", timeout=0.05)


async def acking_client(slack: SlackStandIn, received: list[SocketModeRequest]) -> SocketModeClient:
    async def listener(sm: AsyncBaseSocketModeClient, req: SocketModeRequest) -> None:
        received.append(req)
        await sm.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))

    sm = SocketModeClient(app_token="xapp-test", web_client=client(slack), ping_interval=0.2)
    sm.socket_mode_request_listeners.append(listener)
    await sm.connect()
    return sm


async def test_socket_mode_envelope_is_acked(slack: SlackStandIn) -> None:
    received: list[SocketModeRequest] = []
    sm = await acking_client(slack, received)
    try:
        event = thread_reply(channel="C1", thread_ts="1.0", user="U1", text="hey", ts="2.0")
        ack = await slack.push("events_api", event_callback(event, event_id="Ev1"))
        assert ack["envelope_id"] == received[0].envelope_id
        assert received[0].payload["event"]["text"] == "hey"
    finally:
        await sm.close()
    assert slack.successful("apps.connections.open")[0].token == "xapp-test"


async def test_socket_mode_reconnects_when_slack_comes_back(slack: SlackStandIn) -> None:
    sm = await acking_client(slack, [])
    try:
        await slack.stop()
        await slack.restart()
        await slack.wait_connected(connections=2)
        assert (await slack.push("interactive", {"type": "block_actions"}))["envelope_id"]
    finally:
        await sm.close()


async def test_bolt_recognises_signed_payloads(slack: SlackStandIn) -> None:
    app = AsyncApp(client=client(slack), signing_secret="s3cret")
    seen: list[str] = []

    @app.action("take")
    async def on_take(ack: AsyncAck, body: dict[str, Any], context: AsyncBoltContext) -> None:
        await ack()
        seen.append(f"{body['actions'][0]['value']}@{context.team_id}/{context.channel_id}")

    @app.view("note")
    async def on_note(ack: AsyncAck, view: dict[str, Any]) -> None:
        await ack()
        seen.append(view["private_metadata"])

    heard = asyncio.Event()

    @app.event("message")
    async def on_message(event: dict[str, Any]) -> None:
        seen.append(event["text"])
        heard.set()

    click = block_action(user="U1", channel="C1", message_ts="1.0", action_id="take", value="42")
    note = view_submission(user="U1", callback_id="note", private_metadata="m", values={})
    event = thread_reply(channel="C1", thread_ts="1.0", user="U1", text="hey", ts="2.0")
    bodies = [(form_body(click), FORM), (form_body(note), FORM)]
    bodies.append((json.dumps(event_callback(event, event_id="Ev1")).encode(), JSON))
    for body, content_type in bodies:
        headers: dict[str, Any] = signed_headers("s3cret", body, content_type=content_type)
        response = await app.async_dispatch(AsyncBoltRequest(body=body.decode(), headers=headers))
        assert response.status == 200, response.body
    await asyncio.wait_for(heard.wait(), 10)
    assert seen == ["42@T0TEST/C1", "m", "hey"]
