"""A local Meta Graph API send endpoint, plus the webhook payloads Meta POSTs to carebot.

`POST {url}/{version}/{node}/messages` with `Authorization: Bearer <token>`: a node registered
with `whatsapp_number()` speaks the WhatsApp Cloud API, one registered with `page()` the
Messenger / Instagram Send API. Errors have Meta's shape: `{"error": {"message", "type", "code",
"fbtrace_id"}}`; throughput errors (130429, 131056) come as HTTP 400 without Retry-After.
Comments, private replies, hiding and the look-ups of mentions are `self.public`
(tests/graph_public_standin.py); `usage_header` is sent as `X-Business-Use-Case-Usage` on
every answer.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp
from aiohttp import web

from tests.graph_public_standin import PublicError, PublicGraph
from tests.loopback import Json, StandIn

SIGNATURE_HEADER = "X-Hub-Signature-256"
WABA_ID = "102290129340398"
DISPLAY_NUMBER = "15550783881"
MESSAGES = {
    1: "An unknown error occurred",
    4: "(#4) Application request limit reached",
    100: "(#100) Invalid parameter",
    130429: "(#130429) Rate limit hit",
    131047: "Re-engagement message",
    131056: "(#131056) (Business Account, Consumer Account) pair rate limit hit",
}
DETAILS = {
    131047: "Message failed to send because more than 24 hours have passed since the customer "
    "last replied to this number.",
}
NodeKind = Literal["whatsapp", "page"]
_seq = itertools.count(1)


class GraphError(Exception):
    """An error answer with Meta's body."""

    def __init__(
        self, status: int, code: int, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = dict(headers or {})

    def response(self) -> web.Response:
        error: Json = {"message": self.message, "type": "OAuthException", "code": self.code}
        if self.code in DETAILS:
            error["error_data"] = {"messaging_product": "whatsapp", "details": DETAILS[self.code]}
        error["fbtrace_id"] = f"A{uuid.uuid4().hex[:22]}"
        return web.json_response({"error": error}, status=self.status, headers=self.headers)


@dataclass(frozen=True)
class Sent:
    """A message the Graph API accepted: the node it was posted to, the body, the id returned."""

    node: str
    body: Json
    message_id: str | None


@dataclass(frozen=True)
class Call:
    """Any request to the Graph API and the HTTP status it got (`edge` "" for the node itself:
    a hide, a look-up)."""

    node: str
    body: Json
    status: int
    edge: str = "messages"
    method: str = "POST"


class GraphStandIn(StandIn):
    """The Graph API's `/{version}/{node}/messages` for WhatsApp numbers and pages."""

    def __init__(self, access_token: str = "EAAtest", version: str = "v21.0") -> None:
        super().__init__()
        self.access_token, self.version = access_token, version
        self.nodes: dict[str, NodeKind] = {}
        self.sent: list[Sent] = []
        self.calls: list[Call] = []
        self.read_receipts: list[Json] = []  # WhatsApp {"status": "read", "message_id"} bodies
        self._failures: dict[str, list[GraphError]] = {}
        self.media: dict[str, tuple[bytes, str]] = {}
        self.public = PublicGraph()
        self.usage_header: str | None = None  # X-Business-Use-Case-Usage on every answer

    @property
    def url(self) -> str:
        """The Graph base, `http://127.0.0.1:PORT` (the version comes next in the path)."""
        return self.root

    def _routes(self, app: web.Application) -> None:
        app.router.add_post("/{version}/{node}/messages", self._on_messages)
        app.router.add_post("/{version}/{node}/{edge:comments|replies|mentions}", self._on_public)
        app.router.add_post("/{version}/{node}", self._on_public)
        app.router.add_get("/{version}/{media_id}", self._on_media_info)
        app.router.add_get("/download/{media_id}", self._on_media_download)

    def add_media(self, media_id: str, content: bytes, mime_type: str = "image/jpeg") -> None:
        """A customer's WhatsApp media: `GET /{version}/{media_id}` gives its (token-protected)
        download URL, as the Cloud API does."""
        self.media[media_id] = (content, mime_type)

    def _check_token(self, request: web.Request) -> None:
        auth = request.headers.get("Authorization", "")
        if auth != f"Bearer {self.access_token}":
            raise web.HTTPUnauthorized(text="Invalid OAuth access token.")

    async def _on_media_info(self, request: web.Request) -> web.Response:
        media_id = request.match_info["media_id"]
        if media_id not in self.media:  # a post, a comment, an account: a look-up
            return await self._on_public(request)
        self._check_token(request)
        if media_id not in self.media:
            return GraphError(400, 100, f"Media {media_id} does not exist").response()
        content, mime = self.media[media_id]
        url = f"{self.root}/download/{media_id}"
        return web.json_response(
            {"url": url, "mime_type": mime, "file_size": len(content), "id": media_id}
        )

    async def _on_media_download(self, request: web.Request) -> web.Response:
        self._check_token(request)
        content, mime = self.media[request.match_info["media_id"]]
        return web.Response(body=content, content_type=mime)

    def whatsapp_number(self, phone_number_id: str) -> None:
        """Register a WhatsApp business phone number id."""
        self.nodes[str(phone_number_id)] = "whatsapp"

    def page(self, page_id: str) -> None:
        """Register a Facebook page (or Instagram account) id: Send API node."""
        self.nodes[str(page_id)] = "page"

    def fail_next(
        self,
        node: str,
        status: int,
        code: int,
        message: str | None = None,
        headers: dict[str, str] | None = None,
        times: int = 1,
    ) -> None:
        """The next `times` calls to `node` (sends, replies, hides, look-ups) answer `status` with
        error `code` (and `headers`)."""
        text = message if message is not None else MESSAGES.get(code, f"(#{code}) Error")
        self._failures.setdefault(str(node), []).extend(
            [GraphError(status, code, text, headers)] * times
        )

    def sent_to(self, node: str) -> list[Sent]:
        """The accepted sends through `node`."""
        return [sent for sent in self.sent if sent.node == str(node)]

    async def next_sent(self, count: int = 1, timeout: float = 10.0) -> list[Sent]:
        """Wait until `count` messages were accepted; return the first `count`."""
        await self.wait_for(lambda s: len(s.sent) >= count, timeout)
        return self.sent[:count]

    def _describe(self) -> str:
        seen = ", ".join(f"{c.node}({c.status})" for c in self.calls) or "none"
        return f"sent {len(self.sent)}; calls: {seen}"

    async def _on_messages(self, request: web.Request) -> web.Response:
        return await self._handle(request, "messages", self._answer)

    async def _on_public(self, request: web.Request) -> web.Response:
        return await self._handle(request, request.match_info.get("edge", ""), self._public)

    async def _handle(self, request: web.Request, edge: str, answer: Any) -> web.Response:
        """Record the call, answer it (or its error), with the usage header if one is set."""
        node = request.match_info.get("node") or request.match_info["media_id"]
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = {"raw": raw.decode(errors="replace")}
        if request.method == "GET":
            body = dict(request.query)
        headers = {"X-Business-Use-Case-Usage": self.usage_header} if self.usage_header else {}
        try:
            result = answer(request, node, body)
        except PublicError as refused:
            result = GraphError(refused.status, refused.code, refused.message)
        except GraphError as error:
            result = error
        status = result.status if isinstance(result, GraphError) else 200
        self.calls.append(Call(node, body, status, edge, request.method))
        await self._notify()
        if isinstance(result, GraphError):
            result.headers |= headers
            return result.response()
        return web.json_response(result, headers=headers)

    def _checked(self, request: web.Request, node: str) -> None:
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else None
        if (token or request.query.get("access_token")) != self.access_token:
            raise GraphError(401, 190, "Invalid OAuth access token.")
        if request.match_info["version"] != self.version:
            version = request.match_info["version"]
            raise GraphError(400, 2635, f"Unsupported Graph API version {version}.")
        if self._failures.get(node):
            raise self._failures[node].pop(0)

    def _public(self, request: web.Request, node: str, body: Json) -> Json:
        self._checked(request, node)
        edge = request.match_info.get("edge")
        if request.method == "GET":
            return self.public.look_up(node, request.query.get("fields", ""))
        if edge == "mentions":
            return self.public.mention_reply(node, body)
        if edge:
            return self.public.reply(node, edge, body)
        return self.public.set_hidden(node, body)

    def _answer(self, request: web.Request, node: str, body: Json) -> Json:
        if node not in self.nodes:
            self._checked(request, "")
            raise GraphError(
                400,
                100,
                f"Unsupported post request. Object with ID '{node}' "
                "does not exist, cannot be loaded due to missing permissions, "
                "or does not support this operation.",
            )
        self._checked(request, node)
        if self.nodes[node] == "whatsapp":
            return self._whatsapp(node, body)
        if "comment_id" in (body.get("recipient") or {}):
            return self.public.private_reply(node, body)
        return self._page(node, body)

    def _whatsapp(self, node: str, body: Json) -> Json:
        if body.get("messaging_product") != "whatsapp":
            raise GraphError(400, 100, "(#100) The parameter messaging_product is required.")
        if body.get("status") == "read" and body.get("message_id"):
            self.read_receipts.append(body)
            return {"success": True}
        if not body.get("to"):
            raise GraphError(400, 100, "(#100) The parameter to is required.")
        kind = body.get("type", "text")
        if not isinstance(body.get(kind), dict):
            raise GraphError(400, 100, f"(#100) Param {kind} is required.")
        if kind == "text" and not str(body["text"].get("body", "")).strip():
            raise GraphError(400, 100, "(#100) Param text['body'] must be a non-empty string.")
        wamid = f"wamid.{_unique()}"
        self.sent.append(Sent(node, body, wamid))
        to = str(body["to"])
        contacts = [{"input": to, "wa_id": to}]
        return {"messaging_product": "whatsapp", "contacts": contacts, "messages": [{"id": wamid}]}

    def _page(self, node: str, body: Json) -> Json:
        recipient = (body.get("recipient") or {}).get("id")
        if not recipient:
            raise GraphError(400, 100, "(#100) The parameter recipient is required")
        if body.get("sender_action"):
            self.sent.append(Sent(node, body, None))
            return {"recipient_id": recipient}
        message = body.get("message")
        if not isinstance(message, dict) or not (message.get("text") or message.get("attachment")):
            raise GraphError(400, 100, "(#100) The parameter message is required")
        mid = f"m_{_unique()}"
        self.sent.append(Sent(node, body, mid))
        return {"recipient_id": recipient, "message_id": mid}


def _unique() -> str:
    return f"{next(_seq):06d}{uuid.uuid4().hex[:20]}"


# Webhook payloads, shaped as Meta POSTs them.


def _whatsapp_value(phone_number_id: str, **value: Any) -> Json:
    metadata = {"display_phone_number": DISPLAY_NUMBER, "phone_number_id": phone_number_id}
    value = {"messaging_product": "whatsapp", "metadata": metadata, **value}
    change = {"field": "messages", "value": value}
    return {"object": "whatsapp_business_account", "entry": [{"id": WABA_ID, "changes": [change]}]}


def _whatsapp_message(
    phone_number_id: str,
    wa_id: str,
    content: Json,
    *,
    name: str = "Ann",
    message_id: str | None = None,
    timestamp: int | None = None,
) -> Json:
    message = {"from": wa_id, "id": message_id or f"wamid.{_unique()}"}
    message["timestamp"] = str(int(time.time()) if timestamp is None else timestamp)
    contacts = [{"profile": {"name": name}, "wa_id": wa_id}]
    return _whatsapp_value(phone_number_id, contacts=contacts, messages=[message | content])


def whatsapp_text(
    phone_number_id: str,
    wa_id: str,
    text: str,
    *,
    name: str = "Ann",
    message_id: str | None = None,
    timestamp: int | None = None,
) -> Json:
    """A text message from `wa_id` (a fresh wamid unless `message_id` is given)."""
    content = {"type": "text", "text": {"body": text}}
    return _whatsapp_message(
        phone_number_id, wa_id, content, name=name, message_id=message_id, timestamp=timestamp
    )


def _interactive(reply_type: str, reply: Json, context_id: str | None) -> Json:
    content: Json = {"type": "interactive", "interactive": {"type": reply_type, reply_type: reply}}
    if context_id:
        content["context"] = {"from": DISPLAY_NUMBER, "id": context_id}
    return content


def whatsapp_button_reply(
    phone_number_id: str,
    wa_id: str,
    button_id: str,
    title: str,
    *,
    context_id: str | None = None,
    **kwargs: Any,
) -> Json:
    """A tap on a reply button of the message `context_id` (kwargs as in whatsapp_text)."""
    content = _interactive("button_reply", {"id": button_id, "title": title}, context_id)
    return _whatsapp_message(phone_number_id, wa_id, content, **kwargs)


def whatsapp_list_reply(
    phone_number_id: str,
    wa_id: str,
    row_id: str,
    title: str,
    *,
    description: str = "",
    context_id: str | None = None,
    **kwargs: Any,
) -> Json:
    """A choice from a list message (kwargs as in whatsapp_text)."""
    reply = {"id": row_id, "title": title} | ({"description": description} if description else {})
    content = _interactive("list_reply", reply, context_id)
    return _whatsapp_message(phone_number_id, wa_id, content, **kwargs)


def whatsapp_image(
    phone_number_id: str, wa_id: str, media_id: str, caption: str | None = None, **kwargs: Any
) -> Json:
    """An image (kwargs as in whatsapp_text)."""
    image = {"mime_type": "image/jpeg", "sha256": hashlib.sha256(media_id.encode()).hexdigest()}
    image |= {"id": media_id} | ({"caption": caption} if caption else {})
    return _whatsapp_message(phone_number_id, wa_id, {"type": "image", "image": image}, **kwargs)


def whatsapp_status(
    phone_number_id: str,
    wamid: str,
    status: str,
    recipient_id: str,
    *,
    timestamp: int | None = None,
    errors: list[Json] | None = None,
) -> Json:
    """A delivery update ("sent", "delivered", "read", "failed" with `errors`)."""
    update: Json = {"id": wamid, "status": status, "recipient_id": recipient_id}
    update["timestamp"] = str(int(time.time()) if timestamp is None else timestamp)
    if errors:
        update["errors"] = errors
    return _whatsapp_value(phone_number_id, statuses=[update])


def _messaging(kind: str, node_id: str, sender_id: str, event: Json) -> Json:
    now = int(time.time() * 1000)
    item = {"sender": {"id": sender_id}, "recipient": {"id": node_id}, "timestamp": now} | event
    return {"object": kind, "entry": [{"id": node_id, "time": now, "messaging": [item]}]}


def _mid(mid: str | None) -> str:
    return mid or f"m_{_unique()}"


def messenger_text(page_id: str, psid: str, text: str, *, mid: str | None = None) -> Json:
    """A Messenger text message from the user `psid` to the page."""
    return _messaging("page", page_id, psid, {"message": {"mid": _mid(mid), "text": text}})


def messenger_quick_reply(
    page_id: str, psid: str, text: str, payload: str, *, mid: str | None = None
) -> Json:
    """A tap on a Messenger quick reply: its title as text, its payload in quick_reply."""
    message = {"mid": _mid(mid), "text": text, "quick_reply": {"payload": payload}}
    return _messaging("page", page_id, psid, {"message": message})


def messenger_postback(page_id: str, psid: str, title: str, payload: str) -> Json:
    """A tap on a button of a Messenger template (a postback, not a message)."""
    postback = {"mid": _mid(None), "title": title, "payload": payload}
    return _messaging("page", page_id, psid, {"postback": postback})


def instagram_text(ig_id: str, igsid: str, text: str, *, mid: str | None = None) -> Json:
    """An Instagram direct message (object "instagram", Messenger's messaging shape)."""
    return _messaging("instagram", ig_id, igsid, {"message": {"mid": _mid(mid), "text": text}})


def sign(app_secret: str, raw: bytes) -> str:
    """The `X-Hub-Signature-256` value: "sha256=" + hex HMAC-SHA256(app_secret, raw)."""
    return "sha256=" + hmac.new(app_secret.encode(), raw, hashlib.sha256).hexdigest()


def dumps(payload: Json) -> bytes:
    """The body as Meta serialises it (non-ASCII escaped as \\uXXXX)."""
    return json.dumps(payload, ensure_ascii=True).encode()


async def post_webhook(
    url: str, payload: Json, *, app_secret: str | None = None, signature: str | None = None
) -> tuple[int, str]:
    """POST `payload` as Meta does, signed over the exact bytes sent (`signature` overrides;
    no secret and no signature: no header); returns the status and the body text."""
    raw = dumps(payload)
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers[SIGNATURE_HEADER] = signature
    elif app_secret is not None:
        headers[SIGNATURE_HEADER] = sign(app_secret, raw)
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=raw, headers=headers) as response,
    ):
        return response.status, await response.text()


async def verify_handshake(url: str, verify_token: str, challenge: str) -> tuple[int, str]:
    """The subscription check: GET `url?hub.mode=subscribe&hub.verify_token=..&hub.challenge=..`."""
    query = {"hub.mode": "subscribe", "hub.verify_token": verify_token}
    query["hub.challenge"] = challenge
    async with aiohttp.ClientSession() as session, session.get(url, params=query) as response:
        return response.status, await response.text()
