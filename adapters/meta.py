"""WhatsApp Cloud API, Messenger and Instagram messaging: one webhook, three channels.

Translation only. Meta sends every product's events to one webhook (``/meta/webhook``):

* ``GET``: the verification handshake; the challenge is echoed when ``hub.verify_token`` matches
  the configured token, else 403.
* ``POST``: checked first against ``X-Hub-Signature-256`` (HMAC-SHA256 of the raw body with the
  app secret): missing -> 401, wrong -> 403, and nothing is processed. Then each event becomes
  an :class:`InboundMessage` (text, a tapped button, files and locations as links) or a
  :class:`DeliveryStatus` (sent, delivered, read, failed) for the channel whose account it is
  addressed to. A body that is not a webhook payload is refused with 400 before any of it is
  stored. If the core could not store one, the answer is 500 and Meta sends the batch again
  (what was stored is deduplicated by message id). Once the channels have stopped (shutdown),
calls are answered 503 and nothing is taken: Meta delivers them again later.

Facebook Page and Instagram comments and mentions (an entry's ``changes``) are translated by
:mod:`carebot.adapters.meta_public`, which also gives the Messenger and Instagram channels their
public actions. A mention carries ids only, so its text is looked up in the Graph API while the
call is translated, before anything is stored: a failed look-up answers 500 (Meta sends the
call again) and none of the call is taken.

Replies go out through the Graph API (see :mod:`carebot.adapters.graph`), paced per recipient and
overall. Clarification choices become reply buttons (WhatsApp: up to 3 buttons, else a list of
up to 10; Messenger and Instagram: quick replies).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Iterator
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from aiohttp import web
from pydantic import ValidationError

from carebot.adapters import meta_payloads as payloads
from carebot.adapters.graph import GraphApi
from carebot.adapters.meta_public import MetaPublic
from carebot.adapters.meta_public_payloads import PublicEntry
from carebot.adapters.payloads import at_milli, at_second, problems
from carebot.channel import Deliver
from carebot.exceptions import DeliveryError
from carebot.file_links import FileLinks
from carebot.models import Attachment, ChannelEvent, DeliveryStatus, InboundMessage, OutboundReply
from carebot.pacing import Pacer
from carebot.signing import Signer

log = logging.getLogger(__name__)
WEBHOOK_PATH = "/meta/webhook"
MEDIA_PATH = "/meta/media/"
# Not something the customer wrote to us: an emoji reaction to a message (Messenger's come
# outside ``message`` and are not read either), a notice that their number changed.
NOT_MESSAGES = ("reaction", "system")


class MetaChannel(Protocol):
    """A channel the shared webhook hands its events to: WhatsApp gets a
    :class:`~.meta_payloads.WhatsAppValue`, Messenger and Instagram a
    :class:`~.meta_payloads.MessagingItem`."""

    name: str
    account_id: str

    @property
    def receiving(self) -> bool: ...

    def translate(self, item: Any) -> Iterator[ChannelEvent]: ...


@runtime_checkable
class PublicMetaChannel(Protocol):
    """A channel that also reads an entry's comment and mention ``changes``."""

    async def translate_changes(self, entry: PublicEntry) -> list[ChannelEvent]: ...


class MetaWebhook:
    """The webhook all Meta channels share: handshake, signature, dispatch by account."""

    def __init__(self, *, app_secret: str, verify_token: str, channels: list[MetaChannel]) -> None:
        self._secret = app_secret.encode()
        self._verify_token = verify_token
        self._channels = {(c.name, c.account_id): c for c in channels}
        self._deliver: Deliver | None = None

    def mount(self, app: web.Application, deliver: Deliver) -> None:
        self._deliver = deliver
        app.router.add_get(WEBHOOK_PATH, self._on_verify)
        app.router.add_post(WEBHOOK_PATH, self._on_event)

    async def _on_verify(self, request: web.Request) -> web.Response:
        query = request.query
        token = query.get("hub.verify_token", "")
        if query.get("hub.mode") == "subscribe" and hmac.compare_digest(
            token.encode(), self._verify_token.encode()
        ):
            return web.Response(text=query.get("hub.challenge", ""))
        log.warning("Refused a Meta webhook verification with a wrong verify token")
        raise web.HTTPForbidden(text="wrong verify token")

    async def _on_event(self, request: web.Request) -> web.Response:
        if not all(channel.receiving for channel in self._channels.values()):
            raise web.HTTPServiceUnavailable(text="not receiving (shutting down); deliver again")
        raw = await request.read()
        given = request.headers.get("X-Hub-Signature-256")
        if not given:
            raise web.HTTPUnauthorized(text="X-Hub-Signature-256 is missing")
        expected = "sha256=" + hmac.new(self._secret, raw, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(given.encode(), expected.encode()):
            log.warning("Refused a Meta webhook call with a wrong signature")
            raise web.HTTPForbidden(text="X-Hub-Signature-256 does not match")
        try:
            # Parsed and translated before anything is stored: a malformed batch is refused
            # with 400 and none of it is taken.
            events = await self.events(payloads.parse(raw))
        except ValidationError as exc:
            log.warning("Refused a malformed Meta webhook call: %s", problems(exc))
            log.debug("The malformed Meta webhook call: %r", raw)
            raise web.HTTPBadRequest(text=f"not a webhook payload: {problems(exc)}") from exc
        except DeliveryError as exc:
            log.warning("Could not look up a comment or mention (%s); Meta will send it again", exc)
            raise web.HTTPInternalServerError(text="look-up failed; deliver again") from exc
        assert self._deliver is not None
        try:
            for event in events:
                await self._deliver(event)
        except Exception as exc:
            log.exception("Could not take a Meta webhook batch; Meta will send it again")
            raise web.HTTPInternalServerError(text="not stored; deliver again") from exc
        return web.Response(text="EVENT_RECEIVED")

    async def events(self, payload: payloads.MetaPayload) -> list[ChannelEvent]:
        """Every event of a webhook payload, translated by the channel it is addressed to;
        comment and mention changes may be looked up in the Graph API (DeliveryError when a
        look-up fails)."""
        found: list[ChannelEvent] = []
        if isinstance(payload, payloads.WhatsAppPayload):
            for entry in payload.entry:
                for change in entry.changes:
                    if change.value is not None:  # a "messages" change
                        account = change.value.metadata.phone_number_id
                        found.extend(self._for("whatsapp", account, change.value))
        elif isinstance(payload, payloads.MessagingPayload):
            kind = "messenger" if payload.object == "page" else "instagram"
            for messaging in payload.entry:
                for item in messaging.messaging:
                    found.extend(self._for(kind, messaging.id, item))
                if messaging.changes:
                    found.extend(await self._changes(kind, messaging))
        else:
            log.info("Ignoring a Meta webhook call about %r objects", payload.object)
        return found

    def _for(self, kind: str, account: str, item: Any) -> Iterator[ChannelEvent]:
        channel = self._channels.get((kind, account))
        if channel is None:
            log.info("Ignoring a %s event for account %s, which is not configured", kind, account)
            return
        yield from channel.translate(item)

    async def _changes(self, kind: str, entry: payloads.MessagingEntry) -> list[ChannelEvent]:
        channel = self._channels.get((kind, entry.id))
        if not isinstance(channel, PublicMetaChannel):
            log.info("Ignoring %s changes for account %s, which is not configured", kind, entry.id)
            return []
        return await channel.translate_changes(entry)


class WhatsAppChannel:
    name = "whatsapp"

    def __init__(
        self, *, api: GraphApi, account_id: str, pacer: Pacer, links: Signer, public_url: str
    ) -> None:
        self.account_id = account_id
        self._api = api
        self._lifecycle = _GraphLifecycle(api)
        self._pacer = pacer
        # A customer's file, fetched from WhatsApp when an agent opens its link.
        self._files = FileLinks(
            signer=links,
            public_url=public_url,
            path=MEDIA_PATH,
            platform="WhatsApp",
            fetch=api.media,
        )

    def mount(self, app: web.Application) -> None:
        self._files.mount(app)

    @property
    def receiving(self) -> bool:
        return self._lifecycle.receiving

    async def start(self, deliver: Deliver) -> None:
        await self._lifecycle.start()  # inbound comes through the shared MetaWebhook

    async def stop(self) -> None:
        await self._lifecycle.stop()

    async def close(self) -> None:
        await self._lifecycle.close()

    async def send(self, reply: OutboundReply) -> str | None:
        await self._pacer.wait(reply.external_user_id)
        to = reply.external_user_id.lstrip("+")
        body = {"messaging_product": "whatsapp", "recipient_type": "individual", "to": to}
        body |= _whatsapp_content(reply)
        answer = await self._api.send(self.account_id, body)
        ids = [m.get("id") for m in answer.get("messages", [])]
        return ids[0] if ids and ids[0] else None

    def translate(self, value: payloads.WhatsAppValue) -> Iterator[ChannelEvent]:
        names = {c.wa_id: c.profile.name for c in value.contacts}
        for message in value.messages:
            if message.type in NOT_MESSAGES:
                log.debug("Ignoring a WhatsApp %s", message.type)
                continue
            sender = message.from_
            text, attachments = self._content(message)
            yield InboundMessage(
                channel=self.name,
                external_user_id=sender,
                external_message_id=message.id,
                text=text,
                sent_at=at_second(message.timestamp),
                profile={"name": names.get(sender) or "", "phone": f"+{sender}"},
                raw=message.raw,
                attachments=attachments,
            )
        for status in value.statuses:
            error = "; ".join(f"{e.code} {e.title or e.message}".strip() for e in status.errors)
            yield DeliveryStatus(
                channel=self.name,
                external_message_id=status.id,
                status=status.status,
                at=at_second(status.timestamp),
                error=error or None,
            )

    def _content(self, message: payloads.WhatsAppMessage) -> tuple[str, tuple[Attachment, ...]]:
        if message.text is not None:
            return message.text.body, ()
        if message.interactive is not None:
            tapped = message.interactive
            if tapped.button_reply is not None:  # buttons are only used when no label is cut
                return tapped.button_reply.title, ()
            if tapped.list_reply is not None:  # a list row's title may be shortened: its id
                return tapped.list_reply.id, ()
            return "", ()  # a form's answer (nfm_reply)...: nothing to read
        if message.button is not None:  # a template's quick-reply button
            return message.button.text, ()
        media = message.media()
        if media is not None:
            link = self._files.link(media.id)
            return media.caption, (Attachment(message.type, link, media.filename),)
        if message.location is not None:
            place = message.location
            where = f"https://maps.google.com/?q={place.latitude},{place.longitude}"
            return "", (Attachment("location", where, place.name),)
        return "", (Attachment(message.type, ""),)  # contacts, orders...: nothing to read


class MessengerChannel(MetaPublic):
    """Messenger (``name = "messenger"``, a Facebook page) or Instagram (``"instagram"``, a
    professional account): the same messaging format and Send API; their comments and mentions
    and public actions come from :class:`~carebot.adapters.meta_public.MetaPublic`."""

    def __init__(self, *, name: str, api: GraphApi, account_id: str, pacer: Pacer) -> None:
        self.name = name
        self.account_id = account_id
        self._api = api
        self._lifecycle = _GraphLifecycle(api)
        self._pacer = pacer

    @property
    def receiving(self) -> bool:
        return self._lifecycle.receiving

    async def start(self, deliver: Deliver) -> None:
        await self._lifecycle.start()

    async def stop(self) -> None:
        await self._lifecycle.stop()

    async def close(self) -> None:
        await self._lifecycle.close()

    async def send(self, reply: OutboundReply) -> str | None:
        await self._pacer.wait(reply.external_user_id)
        message: dict[str, Any] = {"text": reply.signed_text()[:2000]}
        if reply.choices:
            message["quick_replies"] = [
                {"content_type": "text", "title": c.label[:20], "payload": c.id}
                for c in reply.choices[:13]
            ]
        body = {
            "recipient": {"id": reply.external_user_id},
            "messaging_type": "RESPONSE",
            "message": message,
        }
        answer = await self._api.send(self.account_id, body)
        return answer.get("message_id") or None

    def translate(self, item: payloads.MessagingItem) -> Iterator[ChannelEvent]:
        sender, at = item.sender.id, at_milli(item.timestamp)
        message = item.message
        if message is not None and not message.is_echo:
            # A quick reply's title may be shortened: its payload is the choice's own id.
            text = (message.quick_reply.payload if message.quick_reply else "") or message.text
            attachments = tuple(Attachment(a.type, a.payload.url) for a in message.attachments)
            yield self._inbound(sender, message.mid, text, at, item, attachments)
        postback = item.postback
        if postback is not None:  # a tapped button of a template
            mid = postback.mid or f"postback:{sender}:{item.timestamp}"
            yield self._inbound(sender, mid, postback.title, at, item, ())
        for mid in item.delivery.mids if item.delivery is not None else []:
            yield DeliveryStatus(self.name, mid, "delivered", at)

    def _inbound(
        self,
        sender: str,
        mid: str,
        text: str,
        at: datetime,
        item: payloads.MessagingItem,
        attachments: tuple[Attachment, ...],
    ) -> InboundMessage:
        return InboundMessage(
            channel=self.name,
            external_user_id=sender,
            external_message_id=mid,
            text=text,
            sent_at=at,
            raw=item.raw,
            attachments=attachments,
        )


class _GraphLifecycle:
    """A Meta channel's lifecycle: receiving (through the shared webhook) from start to stop,
    its Graph API client open from start to close (a send after close raises DeliveryError)."""

    def __init__(self, api: GraphApi) -> None:
        self._api = api
        self.receiving = False

    async def start(self) -> None:
        await self._api.open()
        self.receiving = True

    async def stop(self) -> None:
        self.receiving = False

    async def close(self) -> None:
        self.receiving = False
        await self._api.close()


def _whatsapp_content(reply: OutboundReply) -> dict[str, Any]:
    text = reply.signed_text()
    choices = reply.choices
    if not choices:
        return {"type": "text", "text": {"body": text[:4096], "preview_url": False}}
    if len(choices) <= 3 and all(len(c.label) <= 20 for c in choices):
        action: dict[str, Any] = {
            "buttons": [
                {"type": "reply", "reply": {"id": c.id[:256], "title": c.label}} for c in choices
            ]
        }
        kind = "button"
    else:
        rows = [{"id": c.id[:200], "title": c.label[:24]} for c in choices[:10]]
        action = {"button": "Options", "sections": [{"title": "Options", "rows": rows}]}
        kind = "list"
    return {
        "type": "interactive",
        "interactive": {"type": kind, "body": {"text": text[:1024]}, "action": action},
    }
