"""A local Slack stand-in: the Web API and Socket Mode on loopback, plus signed-request helpers.

The real `slack_sdk` clients talk to it through `base_url`. Slack answers API errors with HTTP 200
and `ok: false`; only failures injected with `fail_next` use other statuses.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode

import aiohttp
from aiohttp import WSMsgType, web
from slack_sdk.signature import SignatureVerifier

from tests.loopback import LoopbackServer

TEAM_ID = "T0TEST"
APP_ID = "A0TEST"
BOT_USER_ID = "UBOT"
BOT_ID = "BBOT"
AUTH_TEST = {"ok": True, "url": "https://test.slack.com/", "team": "Test", "user": "carebot"}
AUTH_TEST |= {"team_id": TEAM_ID, "user_id": BOT_USER_ID, "bot_id": BOT_ID}
T = TypeVar("T")
Json = dict[str, Any]
JSON, FORM = "application/json", "application/x-www-form-urlencoded"


class _Fail(Exception):
    """An API error: HTTP 200 with `{"ok": false, "error": ...}`."""


@dataclass(frozen=True)
class Call:
    """One request the stand-in received and how it answered."""

    method: str
    params: Json
    token: str | None
    status: int
    ok: bool


class SlackStandIn(LoopbackServer):
    """Slack's Web API (`/api/{method}`), Socket Mode (`/link/`) and a `response_url` endpoint."""

    def __init__(self, *, bot_token: str = "xoxb-test", app_token: str = "xapp-test") -> None:
        super().__init__()
        self.bot_token, self.app_token = bot_token, app_token
        self.channels: set[str] | None = None  # the channels that exist; None: any non-empty id
        self.calls: list[Call] = []
        self.members: set[str] = set()  # of every channel not in channel_members
        self.channel_members: dict[str, set[str]] = {}  # a channel's own members
        self.messages: dict[str, list[Json]] = {}
        self.ephemeral: list[Json] = []
        self.views: list[Json] = []
        self.responses: list[Json] = []
        self.acks: list[Json] = []
        self.connections = 0  # WebSocket connections accepted so far
        self.users: dict[str, Json] = {}
        self.add_user(BOT_USER_ID, name="carebot", is_bot=True)
        self._failures: dict[str, list[tuple[int, Json | str, dict[str, str]]]] = {}
        self._delays: dict[str, list[float]] = {}
        self._outages: dict[str, tuple[int, Callable[[], bool], Callable[[Json], bool]]] = {}
        self._held: dict[str, list[asyncio.Event]] = {}
        self._sockets: list[web.WebSocketResponse] = []
        self._seq = 0

    def _routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/api/{method}", self._on_api)
        app.router.add_post("/response/", self._on_api)
        app.router.add_get("/link/", self._on_link)

    async def stop(self) -> None:
        """Close the WebSockets and the listening socket: connections are refused afterwards."""
        for ws in list(self._sockets):
            await ws.close(code=1001, message=b"going away")
        await super().stop()

    @property
    def base_url(self) -> str:
        return f"{self.root}/api/"

    @property
    def response_url(self) -> str:
        """Where `respond()` posts; bodies land in `responses`, calls as method "response_url"."""
        return f"{self.root}/response/"

    def fail_next(
        self,
        method: str,
        status: int,
        *,
        retry_after: int | None = None,
        body: Json | str | None = None,
        times: int = 1,
    ) -> None:
        """The next `times` calls of `method` get `status`; a str `body` is sent as text/plain
        (what a proxy in front of Slack answers)."""
        error = "ratelimited" if status == 429 else "internal_error"
        answer = body if body is not None else {"ok": False, "error": error}
        headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
        self._failures.setdefault(method, []).extend([(status, answer, headers)] * times)

    def down(
        self,
        method: str,
        status: int = 500,
        *,
        until: Callable[[], bool],
        only: Callable[[Json], bool] = lambda params: True,
    ) -> None:
        """An outage: every call of `method` (whose params pass `only`) fails with `status`
        until `until()` is true (driven by the test's clock: no real waiting)."""
        self._outages[method] = (status, until, only)

    def slow(self, method: str, seconds: float, *, times: int = 1) -> None:
        """The next calls of `method` are handled (and answered) after `seconds`."""
        self._delays.setdefault(method, []).extend([seconds] * times)

    def hold(self, method: str) -> asyncio.Event:
        """The next call of `method` is handled and seen at once, but answered only when the
        returned event is set: the caller is still waiting while the test acts."""
        release = asyncio.Event()
        self._held.setdefault(method, []).append(release)
        return release

    def add_user(
        self,
        user_id: str,
        *,
        name: str,
        real_name: str = "",
        display_name: str = "",
        is_bot: bool = False,
    ) -> None:
        profile = {"display_name": display_name, "real_name": real_name}
        user = {"id": user_id, "name": name, "real_name": real_name, "is_bot": is_bot}
        self.users[user_id] = {**user, "team_id": TEAM_ID, "profile": profile}

    def successful(self, method: str) -> list[Call]:
        return [call for call in self.calls if call.method == method and call.ok]

    def message(self, channel: str, ts: str) -> Json:
        """The current version of a posted message."""
        for msg in self.messages.get(channel, []):
            if msg["ts"] == ts:
                return msg
        raise KeyError(f"no message {ts} in {channel}")

    def thread(self, channel: str, ts: str) -> list[Json]:
        return [m for m in self.messages.get(channel, []) if m.get("thread_ts") == ts]

    async def wait_for(
        self,
        method: str,
        predicate: Callable[[Call], bool] | None = None,
        *,
        count: int = 1,
        timeout: float = 10.0,
    ) -> list[Call]:
        """At least `count` successful calls of `method` matching `predicate`; returns them all."""

        def matching() -> list[Call]:
            return [c for c in self.successful(method) if predicate is None or predicate(c)]

        return await self._wait(
            lambda: matching() if len(matching()) >= count else None,
            timeout,
            lambda: f"{count} successful {method} call(s), got {len(matching())}",
        )

    async def wait_for_failures(self, method: str, count: int, timeout: float = 10.0) -> None:
        """At least `count` calls of `method` answered with a failure."""

        def failed() -> int:
            return sum(1 for call in self.calls if call.method == method and not call.ok)

        await self._wait(
            lambda: True if failed() >= count else None,
            timeout,
            lambda: f"{count} failed {method} call(s), got {failed()}",
        )

    async def wait_connected(self, timeout: float = 10.0, *, connections: int = 1) -> None:
        """A Socket Mode client is connected, after at least `connections` connects in all."""

        def ready() -> bool | None:
            return (bool(self._sockets) and self.connections >= connections) or None

        await self._wait(ready, timeout, lambda: f"{connections} Socket Mode connection(s)")

    async def push(
        self, kind: str, payload: Json, *, retry_attempt: int = 0, timeout: float = 10.0
    ) -> Json:
        """Send an envelope over Socket Mode and return the client's ack frame."""
        await self.wait_connected(timeout)
        envelope_id = str(uuid.uuid4())
        envelope: Json = {"envelope_id": envelope_id, "type": kind, "payload": payload}
        accepts = kind in ("interactive", "slash_commands")
        envelope |= {"accepts_response_payload": accepts, "retry_reason": ""}
        envelope["retry_attempt"] = retry_attempt
        await self._sockets[-1].send_json(envelope)

        def ack() -> Json | None:
            return next((a for a in self.acks if a.get("envelope_id") == envelope_id), None)

        return await self._wait(ack, timeout, lambda: f"an ack of {kind} envelope {envelope_id}")

    async def _wait(
        self, check: Callable[[], T | None], timeout: float, what: Callable[[], str]
    ) -> T:
        def seen() -> str:
            calls = ", ".join(f"{c.method}({c.status}, ok={c.ok})" for c in self.calls) or "none"
            return f"{what()}; calls: {calls}"

        return await self._until(check, timeout, seen)

    async def _on_api(self, request: web.Request) -> web.Response:
        params = await _read_params(request)
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else None
        method = request.match_info.get("method", "response_url")
        if self._delays.get(method):
            await asyncio.sleep(self._delays[method].pop(0))
        status, headers = 200, dict[str, str]()
        outage = self._outages.get(method)
        if outage is not None and outage[1]():
            del self._outages[method]  # over
            outage = None
        if outage is not None and outage[2](params):
            status, answer = outage[0], {"ok": False, "error": "internal_error"}
        elif self._failures.get(method):
            status, answer, headers = self._failures[method].pop(0)
        else:
            answer = self._api(method, params, token)
        ok = status == 200 and isinstance(answer, dict) and answer.get("ok") is True
        self.calls.append(Call(method, params, token, status, ok))
        await self._notify()
        if self._held.get(method):
            await self._held[method].pop(0).wait()
        if isinstance(answer, str):
            return web.Response(text=answer, status=status, headers=headers)
        return web.json_response(answer, status=status, headers=headers)

    def _api(self, method: str, params: Json, token: str | None) -> Json:
        if method == "response_url":
            self.responses.append(params)
            return {"ok": True}
        handler = self._methods().get(method)
        wanted = self.app_token if method == "apps.connections.open" else self.bot_token
        try:
            if handler is None:
                raise _Fail("unknown_method")
            if token != wanted:
                raise _Fail("invalid_auth")
            return handler(params)
        except _Fail as fail:
            return {"ok": False, "error": str(fail)}

    def _methods(self) -> dict[str, Callable[[Json], Json]]:
        return {
            "auth.test": lambda p: dict(AUTH_TEST),
            "chat.postMessage": self._post_message,
            "chat.update": self._update,
            "chat.postEphemeral": self._post_ephemeral,
            "users.info": self._users_info,
            "conversations.members": self._members,
            "conversations.replies": self._replies,
            "views.open": self._views_open,
            "reactions.add": lambda p: {"ok": True},
            "apps.connections.open": lambda p: {"ok": True, "url": f"ws{self.root[4:]}/link/"},
        }

    def _next_ts(self) -> str:
        self._seq += 1
        return f"{1700000000 + self._seq // 10000}.{self._seq % 10000 * 100:06d}"

    def _channel(self, p: Json) -> str:
        channel = p.get("channel")
        if not channel or (self.channels is not None and channel not in self.channels):
            raise _Fail("channel_not_found")
        return str(channel)

    def _post_message(self, p: Json) -> Json:
        channel = self._channel(p)
        msg = {"type": "message", "user": BOT_USER_ID, "bot_id": BOT_ID, "ts": self._next_ts()}
        msg |= {"text": p.get("text", ""), "blocks": p.get("blocks", [])}
        if p.get("thread_ts"):
            msg["thread_ts"] = p["thread_ts"]
        self.messages.setdefault(channel, []).append(msg)
        return {"ok": True, "channel": channel, "ts": msg["ts"], "message": dict(msg)}

    def _update(self, p: Json) -> Json:
        channel, ts = self._channel(p), p.get("ts", "")
        try:
            msg = self.message(channel, ts)
        except KeyError:
            raise _Fail("message_not_found") from None
        msg.update({k: p[k] for k in ("text", "blocks") if k in p})
        msg["edited"] = {"user": BOT_USER_ID, "ts": self._next_ts()}
        return {"ok": True, "channel": channel, "ts": ts, "text": msg["text"], "message": dict(msg)}

    def _post_ephemeral(self, p: Json) -> Json:
        self._channel(p)
        self.ephemeral.append({**p, "message_ts": self._next_ts()})
        return {"ok": True, "message_ts": self.ephemeral[-1]["message_ts"]}

    def _users_info(self, p: Json) -> Json:
        user = self.users.get(p.get("user", ""))
        return {"ok": True, "user": user} if user else {"ok": False, "error": "user_not_found"}

    def _members(self, p: Json) -> Json:
        channel = self._channel(p)
        members = sorted(self.channel_members.get(channel, self.members))
        cursor = str(p.get("cursor") or "0")
        if not cursor.isdigit() or int(cursor) > len(members):
            raise _Fail("invalid_cursor")
        start = int(cursor)
        end = start + int(p.get("limit") or 100)
        meta = {"next_cursor": str(end) if end < len(members) else ""}
        return {"ok": True, "members": members[start:end], "response_metadata": meta}

    def _replies(self, p: Json) -> Json:
        channel, ts = self._channel(p), p.get("ts", "")
        try:
            parent = dict(self.message(channel, ts))
        except KeyError:
            raise _Fail("thread_not_found") from None
        replies = self.thread(channel, ts)
        if replies:
            parent |= {"thread_ts": ts, "reply_count": len(replies)}
        return {"ok": True, "messages": [parent, *replies], "has_more": False}

    def _views_open(self, p: Json) -> Json:
        if not p.get("trigger_id") or not isinstance(p.get("view"), dict):
            raise _Fail("invalid_arguments")
        view = {"id": f"V{len(self.views) + 1:07d}", **p["view"]}
        self.views.append(view)
        return {"ok": True, "view": view}

    async def _on_link(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        debug = {"host": "applink-standin", "approximate_connection_time": 18060}
        hello = {"type": "hello", "num_connections": 1, "debug_info": debug}
        await ws.send_json({**hello, "connection_info": {"app_id": APP_ID}})
        self._sockets.append(ws)
        self.connections += 1
        await self._notify()
        try:
            async for frame in ws:
                if frame.type == WSMsgType.TEXT:
                    self.acks.append(json.loads(frame.data))
                    await self._notify()
        finally:
            self._sockets.remove(ws)
            await self._notify()
        return ws


async def _read_params(request: web.Request) -> Json:
    """Query string plus a JSON or form body; JSON lists/objects inside form values are decoded."""
    params: Json = dict(request.query)
    raw = await request.read()
    if raw and request.content_type == "application/json":
        params.update(json.loads(raw))
    elif raw:
        params.update(parse_qsl(raw.decode(), keep_blank_values=True))
    return {key: _maybe_json(key, value) for key, value in params.items()}


def _maybe_json(key: str, value: Any) -> Any:
    if key == "text" or not isinstance(value, str) or value[:1] not in ("[", "{"):
        return value
    try:
        decoded = json.loads(value)
    except ValueError:
        return value
    return decoded if isinstance(decoded, list | dict) else value


def signed_headers(
    secret: str, body: bytes | str, *, timestamp: int | None = None, content_type: str = JSON
) -> dict[str, str]:
    """Headers of a request signed with the app's signing secret (`v0=` HMAC of `v0:ts:body`)."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    signature = SignatureVerifier(secret).generate_signature(timestamp=ts, body=body)
    assert signature is not None
    headers = {"X-Slack-Signature": signature, "X-Slack-Request-Timestamp": ts}
    return headers | {"Content-Type": content_type}


async def private_answer(url: Any, slack: SlackStandIn, raw: bytes, secret: str) -> dict[str, Any]:
    """POST a signed form (a slash command or a shortcut) to carebot's Slack endpoint ``url``,
    check it is acknowledged at once with nothing in the body, and return the answer carebot
    then sends to the request's ``response_url`` (the stand-in's)."""
    before = len(slack.responses)
    async with (
        aiohttp.ClientSession() as http,
        http.post(url, data=raw, headers=signed_headers(secret, raw, content_type=FORM)) as r,
    ):
        assert r.status == 200 and await r.text() == ""  # acknowledged, the answer comes after
    await slack.wait_for("response_url", count=before + 1)
    return slack.responses[before]


def form_body(payload: Json) -> bytes:
    """An interactivity body: `payload=<urlencoded JSON>` (send it with FORM as content type)."""
    return urlencode({"payload": json.dumps(payload)}).encode()


def event_callback(event: Json, *, event_id: str, team_id: str = TEAM_ID) -> Json:
    """The Events API envelope around `event`."""
    auth = {"enterprise_id": None, "team_id": team_id, "user_id": BOT_USER_ID, "is_bot": True}
    body: Json = {"token": "verification-token", "team_id": team_id, "api_app_id": APP_ID}
    body |= {"type": "event_callback", "event_id": event_id, "event_time": int(time.time())}
    return body | {"event": event, "authorizations": [auth]}


def thread_reply(*, channel: str, thread_ts: str, user: str, text: str, ts: str) -> Json:
    """A message event in the bot's thread (a customer or an agent writing)."""
    event = {"type": "message", "channel": channel, "channel_type": "channel", "user": user}
    event |= {"text": text, "ts": ts, "event_ts": ts, "thread_ts": thread_ts, "team": TEAM_ID}
    return event | {"parent_user_id": BOT_USER_ID}


def _interaction(kind: str, user: str, trigger_id: str) -> Json:
    person = {"id": user, "username": user.lower(), "name": user.lower(), "team_id": TEAM_ID}
    body = {"type": kind, "team": {"id": TEAM_ID, "domain": "test"}, "user": person}
    body |= {"api_app_id": APP_ID, "token": "verification-token", "trigger_id": trigger_id}
    return body | {"is_enterprise_install": False, "enterprise": None}


def block_action(
    *,
    user: str,
    channel: str,
    message_ts: str,
    action_id: str,
    value: str,
    trigger_id: str = "T-trigger",
    response_url: str = "",
    block_id: str = "card",
) -> Json:
    """A button click on a bot message (a block_actions payload)."""
    container = {"type": "message", "message_ts": message_ts, "channel_id": channel}
    message = {"type": "message", "ts": message_ts, "user": BOT_USER_ID, "bot_id": BOT_ID}
    button = {"type": "button", "action_id": action_id, "block_id": block_id, "value": value}
    body = _interaction("block_actions", user, trigger_id) | {"response_url": response_url}
    body |= {"container": {**container, "is_ephemeral": False}, "message": message}
    button["action_ts"] = f"{time.time():.6f}"
    return body | {"channel": {"id": channel, "name": "care"}, "actions": [button]}


def slash_command(
    *,
    user: str,
    text: str,
    command: str = "/care",
    channel: str = "C0OTHER",
    response_url: str = "",
    trigger_id: str = "T-trigger",
) -> Json:
    """A slash command as Slack sends it: the fields of an HTTP request's form body (send it
    with `urlencode` and FORM as content type), or a "slash_commands" envelope's payload."""
    body = {"token": "verification-token", "team_id": TEAM_ID, "team_domain": "test"}
    body |= {"channel_id": channel, "channel_name": "somewhere", "user_id": user}
    body |= {"user_name": user.lower(), "command": command, "text": text, "api_app_id": APP_ID}
    return body | {"response_url": response_url, "trigger_id": trigger_id}


def view_submission(*, user: str, callback_id: str, private_metadata: str, values: Json) -> Json:
    """A submitted modal; `values` is `state.values`: {block_id: {action_id: {...}}}."""
    view: Json = {"id": "V0000001", "type": "modal", "callback_id": callback_id, "hash": "h"}
    view |= {"private_metadata": private_metadata, "state": {"values": values}, "team_id": TEAM_ID}
    return _interaction("view_submission", user, "T-trigger") | {"view": view, "response_urls": []}
