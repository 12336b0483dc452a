"""The generic webhook channel: any platform without an adapter, over signed JSON POSTs.

Translation only: an inbound POST -> :class:`InboundMessage`; a reply -> a POST to
``[webhook] reply_url``. Both directions use the same signature and format.

**Signature.** Header ``X-Carebot-Signature: t=<unix seconds>,v1=<hex>``, where ``<hex>`` is
HMAC-SHA256 with the shared secret over ``f"{t}."`` followed by the raw body bytes. A request
whose ``t`` is more than ``tolerance_seconds`` (default 300) off the receiver's clock is refused
(replay window). Several ``v1=`` entries are allowed, so a secret can be rotated.

**Inbound** (``POST /webhook``; 401 for a missing, wrong or stale signature; 400 for a malformed
body; 200 once stored; 500 when it could not be stored, so the sender retries)::

    {"id": "evt_123",                      # unique per event: a resend is answered once
     "user": {"id": "42", "name": "Ann", "phone": "+4930...", "email": "ann@example.com"},
     "text": "Where is my order?",
     "sent_at": "2026-11-22T10:00:00Z"}     # optional; ISO 8601, UTC when it has no offset

``phone`` and ``email`` are optional and link the customer to the same person on other channels.
``id`` and ``user.id`` are strings (or numbers) of at most 200 characters; a body is at most
256 KiB (413 beyond). Fields not listed here are ignored. The 400 answer says what is wrong:
``{"ok": false, "error": "user.id: Field required"}``. The body is parsed into
:class:`~carebot.adapters.webhook_payloads.WebhookEvent` first, so nothing is defaulted.

Once the channel has stopped (shutdown), inbound POSTs are answered 503 and nothing is taken:
send them again later.

**Replies** (POST to ``reply_url``; any 2xx is success; 429 with ``Retry-After`` and 5xx are
retried, with exponential backoff when no ``Retry-After`` is given)::

    {"id": "reply_7", "type": "reply", "user": {"id": "42"}, "text": "...",
     "signed_text": "..." | "Ann: ...",
     "author": "bot" | "agent", "agent": "Ann" | null, "handoff": false,
     "notice": null | "agent_joined" | "agent_transferred" | "resolved",
     "choices": [{"id": "order_status", "label": "Order status"}],
     "created_at": "2026-11-22T10:00:01+00:00"}

``author`` says who wrote the reply: the bot, or a person (``agent``: their display name). A
receiver that shows no author beside a message sends ``signed_text`` instead of ``text``: an
agent's reply starts with their name (``"Ann: ..."``), as on Telegram and Meta's platforms; the
bot's messages are never signed with a person's name (its first message of a conversation
introduces it as an automated assistant, ``[messages] bot_intro``).

``notice`` marks the bot's message that the conversation changed hands (an agent joined, another
agent took over, the agent handed it back to the bot), for a receiver that shows those apart.

The receiver should treat ``id`` as an idempotency key: a reply is retried until a 2xx, so it can
arrive twice if the first 2xx was lost.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from datetime import UTC, datetime
from typing import Any

import aiohttp
from aiohttp import web
from pydantic import ValidationError

from carebot.adapters import webhook_payloads as payloads
from carebot.adapters.payloads import problems
from carebot.channel import Deliver
from carebot.exceptions import DeliveryError
from carebot.models import InboundMessage, OutboundReply

log = logging.getLogger(__name__)
HEADER = "X-Carebot-Signature"
INBOUND_PATH = "/webhook"
TIMEOUT = aiohttp.ClientTimeout(total=15)
MAX_BODY = 256 * 1024


def signature(secret: str, raw: bytes, timestamp: int) -> str:
    """The header value for ``raw`` signed at ``timestamp``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + raw, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(secret: str, raw: bytes, header: str | None, *, tolerance: float, now: float) -> str:
    """Empty when ``header`` signs ``raw`` within the replay window, else what is wrong."""
    if not header:
        return f"{HEADER} is missing"
    parts = [p.strip().partition("=") for p in header.split(",")]
    stamps = [value for key, _, value in parts if key == "t"]
    macs = [value for key, _, value in parts if key == "v1"]
    if len(stamps) != 1 or not stamps[0].isdigit() or not macs:
        return f"{HEADER} must look like t=<unix seconds>,v1=<hex>"
    if abs(now - int(stamps[0])) > tolerance:
        return f"the timestamp is more than {tolerance:g} s off: resend with a fresh signature"
    expected = signature(secret, raw, int(stamps[0])).partition(",v1=")[2]
    if not any(hmac.compare_digest(m.encode(), expected.encode()) for m in macs):
        return "the signature does not match"
    return ""


class WebhookChannel:
    name = "webhook"

    def __init__(self, *, secret: str, reply_url: str, tolerance: float = 300.0) -> None:
        self._secret = secret
        self._reply_url = reply_url
        self._tolerance = tolerance
        self._deliver: Deliver | None = None
        self._session: aiohttp.ClientSession | None = None
        self._receiving = False
        self._closed = False

    def mount(self, app: web.Application) -> None:
        app.router.add_post(INBOUND_PATH, self._on_inbound)

    async def start(self, deliver: Deliver) -> None:
        self._deliver = deliver
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=TIMEOUT)
        self._receiving = True

    async def stop(self) -> None:
        """Take no more inbound events (503: the sender retries); replies still go out."""
        self._receiving = False

    async def close(self) -> None:
        """Close the HTTP session; a reply after this raises DeliveryError."""
        self._receiving = False
        self._closed = True
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    async def send(self, reply: OutboundReply) -> str | None:
        if self._session is None:
            state = "closed" if self._closed else "not started"
            raise DeliveryError(f"the webhook channel is {state}")
        raw = json.dumps(_reply_body(reply), ensure_ascii=False).encode()
        headers = {
            "Content-Type": "application/json",
            HEADER: signature(self._secret, raw, int(time.time())),
        }
        try:
            async with self._session.post(self._reply_url, data=raw, headers=headers) as answer:
                if answer.status < 300:
                    return None
                hint = answer.headers.get("Retry-After", "")
                raise DeliveryError(
                    f"{self._reply_url} answered {answer.status}",
                    retry_after=float(hint) if hint.isdigit() else None,
                )
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise DeliveryError(f"{self._reply_url} unreachable: {exc!r}") from exc

    async def _on_inbound(self, request: web.Request) -> web.Response:
        if not self._receiving:
            raise web.HTTPServiceUnavailable(text="not receiving (shutting down); send it again")
        raw = await _read_body(request)
        problem = verify(
            self._secret,
            raw,
            request.headers.get(HEADER),
            tolerance=self._tolerance,
            now=time.time(),
        )
        if problem:
            log.warning("Refused a webhook call: %s", problem)
            raise web.HTTPUnauthorized(text=problem)
        try:
            inbound = self.translate(payloads.parse(raw))
        except ValidationError as exc:
            log.warning("Refused a malformed webhook call: %s", problems(exc))
            log.debug("The malformed webhook call: %r", raw)
            return web.json_response({"ok": False, "error": problems(exc)}, status=400)
        assert self._deliver is not None, "WebhookChannel.start() was not called"
        try:
            await self._deliver(inbound)
        except Exception as exc:
            log.exception("Could not take webhook event %s", inbound.external_message_id)
            raise web.HTTPInternalServerError(text="not stored; send it again") from exc
        return web.json_response({"ok": True})

    def translate(self, event: payloads.WebhookEvent) -> InboundMessage:
        """The event as an inbound message."""
        return InboundMessage(
            channel=self.name,
            external_user_id=event.user.id,
            external_message_id=event.id,
            text=event.text,
            sent_at=event.sent_at or datetime.now(UTC),
            profile=event.user.profile(),
            raw=event.raw,
        )


async def _read_body(request: web.Request) -> bytes:
    """The whole body, or 413 beyond :data:`MAX_BODY`. (One ``content.read(n)`` returns what has
    arrived so far, which can be a part of the body: it would then fail the signature.)"""
    declared = request.content_length
    if declared is not None and declared > MAX_BODY:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_BODY, actual_size=declared)
    raw = bytearray()
    while len(raw) <= MAX_BODY:
        chunk = await request.content.read(MAX_BODY + 1 - len(raw))
        if not chunk:
            break
        raw += chunk
    if len(raw) > MAX_BODY:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_BODY, actual_size=len(raw))
    return bytes(raw)


def _reply_body(reply: OutboundReply) -> dict[str, Any]:
    return {
        "id": f"reply_{reply.outbox_id}",
        "type": "reply",
        "user": {"id": reply.external_user_id},
        "text": reply.text,
        "signed_text": reply.signed_text(),
        "author": reply.author,
        "agent": reply.agent,
        "handoff": reply.handoff,
        "notice": reply.notice,
        "choices": [{"id": c.id, "label": c.label} for c in reply.choices],
        "created_at": (reply.created_at or datetime.now(UTC)).isoformat(),
    }
