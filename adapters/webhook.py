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
     "sent_at": "2026-11-22T10:00:00Z"}     # optional

``phone`` and ``email`` are optional and link the customer to the same person on other channels.
``id`` and ``user.id`` are strings (or numbers) of at most 200 characters; a body is at most
256 KiB (413 beyond).

Once the channel has stopped (shutdown), inbound POSTs are answered 503 and nothing is taken:
send them again later.

**Replies** (POST to ``reply_url``; any 2xx is success; 429 with ``Retry-After`` and 5xx are
retried, with exponential backoff when no ``Retry-After`` is given)::

    {"id": "reply_7", "type": "reply", "user": {"id": "42"}, "text": "...",
     "author": "bot" | "agent", "agent": "Ann" | null, "handoff": false,
     "choices": [{"id": "order_status", "label": "Order status"}],
     "created_at": "2026-11-22T10:00:01+00:00"}

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

from carebot.channel import Deliver
from carebot.exceptions import DeliveryError
from carebot.models import InboundMessage, OutboundReply

log = logging.getLogger(__name__)
HEADER = "X-Carebot-Signature"
INBOUND_PATH = "/webhook"
TIMEOUT = aiohttp.ClientTimeout(total=15)
MAX_BODY = 256 * 1024
MAX_ID = 200  # characters of a user's or an event's id (what the database keeps)


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
            inbound = self.translate(json.loads(raw))
        except (ValueError, TypeError, KeyError) as exc:
            return web.json_response({"ok": False, "error": str(exc)}, status=400)
        assert self._deliver is not None
        try:
            await self._deliver(inbound)
        except Exception as exc:
            log.exception("Could not take webhook event %s", inbound.external_message_id)
            raise web.HTTPInternalServerError(text="not stored; send it again") from exc
        return web.json_response({"ok": True})

    def translate(self, body: Any) -> InboundMessage:
        """The event as an inbound message; ValueError says what is missing."""
        if not isinstance(body, dict):
            raise ValueError("the body must be a JSON object")
        user = body.get("user")
        if not isinstance(user, dict):
            raise ValueError("user.id is required")
        user_id = _identifier(user.get("id"), "user.id")
        event_id = _identifier(body.get("id"), "id (unique per event)")
        text = body.get("text")
        if not isinstance(text, str) or not text.strip():
            raise ValueError("text must be a non-empty string")
        profile = {k: str(user[k]) for k in ("name", "phone", "email") if user.get(k)}
        sent_at = body.get("sent_at")
        return InboundMessage(
            channel=self.name,
            external_user_id=user_id,
            external_message_id=event_id,
            text=text.strip(),
            sent_at=datetime.fromisoformat(sent_at) if sent_at else datetime.now(UTC),
            profile=profile,
            raw=body,
        )


def _identifier(value: Any, what: str) -> str:
    """An id given as a string (or a number): required, and short enough to be stored."""
    if isinstance(value, bool) or not isinstance(value, str | int) or not str(value).strip():
        raise ValueError(f"{what} is required: a string")
    if len(str(value)) > MAX_ID:
        raise ValueError(f"{what} is longer than {MAX_ID} characters")
    return str(value)


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
        "author": reply.author,
        "agent": reply.agent,
        "handoff": reply.handoff,
        "choices": [{"id": c.id, "label": c.label} for c in reply.choices],
        "created_at": (reply.created_at or datetime.now(UTC)).isoformat(),
    }
