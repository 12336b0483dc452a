"""A local X API v2 (the calls carebot makes), plus the Account Activity deliveries X POSTs.

`POST {url}/2/tweets`, `POST {url}/2/dm_conversations/with/{participant_id}/messages` and
`PUT {url}/2/tweets/{id}/hidden`, with `Authorization: Bearer <token>`. Answers have X's shape:
`{"data": {...}}` (201 for a post or a DM, 200 for hide), and errors are problem objects
`{"title", "detail", "type", "status"}`; `fail_next` injects one (a 429 with
`x-rate-limit-reset`, a 5xx, a 403 "not allowed to reply"). Every call is recorded.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from tests.loopback import Json, StandIn

SIGNATURE_HEADER = "x-twitter-webhooks-signature"
TITLES = {400: "Invalid Request", 401: "Unauthorized", 403: "Forbidden", 429: "Too Many Requests"}
NOT_ALLOWED = (
    "Reply to this conversation is not allowed because you have not been mentioned or "
    "otherwise engaged by the author of the post you are replying to."
)
_ids = itertools.count(1_800_000_000_000_000_001)


class XError(Exception):
    """An error answer with X's problem body."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail
        self.headers = dict(headers or {})

    def response(self) -> web.Response:
        title = TITLES.get(self.status, "Service Unavailable")
        body = {"title": title, "detail": self.detail, "type": "about:blank", "status": self.status}
        return web.json_response(body, status=self.status, headers=self.headers)


@dataclass(frozen=True)
class Call:
    """A request to the API: its kind (tweet, dm, hide), the id in its path (the participant
    of a DM, the post hidden), the body, the status it got and the id it returned."""

    kind: str
    path_id: str | None
    body: Json
    status: int
    id: str | None = None


class XStandIn(StandIn):
    """The X API v2 endpoints carebot calls, for one user access token."""

    def __init__(self, token: str = "x-user-token") -> None:
        super().__init__()
        self.token = token
        self.calls: list[Call] = []
        self.hidden: dict[str, bool] = {}
        self._failures: list[XError] = []

    @property
    def url(self) -> str:
        """The API base, `http://127.0.0.1:PORT` (`/2/...` comes next)."""
        return self.root

    @property
    def accepted(self) -> list[Call]:
        """The calls X carried out."""
        return [call for call in self.calls if call.status < 300]

    def _routes(self, app: web.Application) -> None:
        app.router.add_post("/2/tweets", self._on_tweet)
        app.router.add_post("/2/dm_conversations/with/{participant}/messages", self._on_dm)
        app.router.add_put("/2/tweets/{tweet}/hidden", self._on_hidden)

    def fail_next(
        self, status: int, detail: str = "", *, times: int = 1, reset: int | None = None
    ) -> None:
        """The next `times` calls answer `status` (429: with `x-rate-limit-reset` = `reset`)."""
        headers = {"x-rate-limit-reset": str(reset)} if reset is not None else {}
        error = XError(status, detail or TITLES.get(status, "Service Unavailable"), headers)
        self._failures.extend([error] * times)

    async def next_accepted(self, count: int = 1, timeout: float = 10.0) -> list[Call]:
        """Wait until `count` calls were carried out; return the first `count`."""
        await self.wait_for(lambda s: len(s.accepted) >= count, timeout)
        return self.accepted[:count]

    def _describe(self) -> str:
        seen = ", ".join(f"{c.kind}({c.status})" for c in self.calls) or "none"
        return f"X stand-in calls: {seen}"

    async def _on_tweet(self, request: web.Request) -> web.Response:
        return await self._handle(request, "tweet", None, self._tweet)

    async def _on_dm(self, request: web.Request) -> web.Response:
        return await self._handle(request, "dm", request.match_info["participant"], self._dm)

    async def _on_hidden(self, request: web.Request) -> web.Response:
        return await self._handle(request, "hide", request.match_info["tweet"], self._hide)

    async def _handle(
        self, request: web.Request, kind: str, path_id: str | None, answer: Any
    ) -> web.Response:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = {"raw": raw.decode(errors="replace")}
        try:
            if request.headers.get("Authorization") != f"Bearer {self.token}":
                raise XError(401, "Unauthorized")
            if self._failures:
                raise self._failures.pop(0)
            status, data, made = answer(path_id, body)
        except XError as error:
            self.calls.append(Call(kind, path_id, body, error.status))
            await self._notify()
            return error.response()
        self.calls.append(Call(kind, path_id, body, status, made))
        await self._notify()
        return web.json_response({"data": data}, status=status)

    def _tweet(self, _: str | None, body: Json) -> tuple[int, Json, str]:
        text = body.get("text")
        if not isinstance(text, str) or not text.strip():
            raise XError(400, "The `text` field is required for a post without media.")
        if len(text) > 280:
            raise XError(403, "You are not permitted to perform this action.")
        post = str(next(_ids))
        return 201, {"id": post, "text": text, "edit_history_tweet_ids": [post]}, post

    def _dm(self, participant: str | None, body: Json) -> tuple[int, Json, str]:
        if not isinstance(body.get("text"), str) or not body["text"].strip():
            raise XError(400, "A direct message needs its `text` (or an attachment).")
        event, conversation = str(next(_ids)), f"{participant}-brand"
        return 201, {"dm_conversation_id": conversation, "dm_event_id": event}, event

    def _hide(self, post: str | None, body: Json) -> tuple[int, Json, None]:
        if not isinstance(body.get("hidden"), bool):
            raise XError(400, "The `hidden` field must be a boolean.")
        assert post is not None
        self.hidden[post] = body["hidden"]
        return 200, {"hidden": body["hidden"]}, None


# Account Activity deliveries, shaped as X POSTs them.


def user(user_id: str, screen_name: str, name: str = "", followers: int = 10) -> Json:
    return {
        "id": int(user_id),
        "id_str": user_id,
        "name": name or screen_name.title(),
        "screen_name": screen_name,
        "followers_count": followers,
    }


def tweet(
    author: Json,
    text: str,
    *,
    tweet_id: str | None = None,
    mentions: tuple[str, ...] = (),
    reply_to: tuple[str, str] | None = None,
    quoted: Json | None = None,
    timestamp_ms: int | None = None,
) -> Json:
    """A post by `author` (from `user()`) @mentioning the users `mentions`; `reply_to` is the
    (post id, user id) it answers; `quoted` the post (from `tweet()`) it quotes."""
    post = tweet_id or str(next(_ids))
    stamp = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
    body: Json = {
        "created_at": time.strftime("%a %b %d %H:%M:%S +0000 %Y", time.gmtime(stamp / 1000)),
        "id": int(post),
        "id_str": post,
        "text": text,
        "truncated": False,
        "entities": {"user_mentions": [{"id_str": m, "id": int(m)} for m in mentions]},
        "user": author,
        "in_reply_to_status_id_str": reply_to[0] if reply_to else None,
        "in_reply_to_user_id_str": reply_to[1] if reply_to else None,
        "is_quote_status": quoted is not None,
        "timestamp_ms": str(stamp),
    }
    if quoted is not None:
        body["quoted_status"] = quoted
    return body


def tweets(for_user: str, *posts: Json) -> Json:
    return {"for_user_id": for_user, "tweet_create_events": list(posts)}


def direct_message(
    for_user: str,
    sender: str,
    text: str,
    *,
    recipient: str | None = None,
    event_id: str | None = None,
    names: dict[str, str] | None = None,
) -> Json:
    """A DM from `sender` (to the brand, unless `recipient`); `names` fills the `users` map."""
    event = {
        "type": "message_create",
        "id": event_id or str(next(_ids)),
        "created_timestamp": str(int(time.time() * 1000)),
        "message_create": {
            "target": {"recipient_id": recipient or for_user},
            "sender_id": sender,
            "message_data": {"text": text, "entities": {}},
        },
    }
    users = {
        uid: {"id": uid, "name": name, "screen_name": name.lower().replace(" ", "_")}
        for uid, name in (names or {}).items()
    }
    return {"for_user_id": for_user, "direct_message_events": [event], "users": users}


def deleted(for_user: str, post: str, author: str) -> Json:
    status = {"id": post, "user_id": author}
    stamp = str(int(time.time() * 1000))
    return {
        "for_user_id": for_user,
        "tweet_delete_events": [{"status": status, "timestamp_ms": stamp}],
    }


def sign(consumer_secret: str, message: bytes) -> str:
    """What X sends: "sha256=" + base64 HMAC-SHA256(consumer secret, message) (a delivery's
    raw body, or the CRC token)."""
    mac = hmac.new(consumer_secret.encode(), message, hashlib.sha256).digest()
    return "sha256=" + base64.b64encode(mac).decode()


def dumps(payload: Json) -> bytes:
    return json.dumps(payload).encode()


async def post_webhook(
    url: str, payload: Json | bytes, *, secret: str | None = None, signature_: str | None = None
) -> tuple[int, str]:
    """POST a delivery as X does, signed over the exact bytes sent (`signature_` overrides;
    neither: no header); returns the status and the body text."""
    raw = payload if isinstance(payload, bytes) else dumps(payload)
    headers = {"Content-Type": "application/json"}
    if signature_ is not None:
        headers[SIGNATURE_HEADER] = signature_
    elif secret is not None:
        headers[SIGNATURE_HEADER] = sign(secret, raw)
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=raw, headers=headers) as response,
    ):
        return response.status, await response.text()
