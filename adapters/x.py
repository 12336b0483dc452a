"""X (API v2): @mentions, replies, quotes and direct messages of the brand's account.

Translation only. X's Account Activity API delivers the account's activity to one webhook,
``/x/webhook``:

* ``GET ?crc_token=T``: the challenge-response check X makes on registration and about hourly
  (a failed one stops deliveries): ``{"response_token": "sha256=" + base64(HMAC-SHA256(consumer
  secret, T))}``; 400 without ``crc_token``.
* ``POST``: checked first against ``x-twitter-webhooks-signature`` (``sha256=`` + base64
  HMAC-SHA256 of the raw body under the consumer secret, compared in constant time): missing ->
  401, wrong -> 403, and nothing is processed. A body that is not a delivery is refused with 400
  naming the problem, before any of it is stored. If the core could not store an event the
  answer is 500 and X delivers again (what was stored is deduplicated by its id). Once the
  channel has stopped (shutdown), deliveries are answered 503 and nothing is taken.

What becomes of a delivery:

* ``tweet_create_events``: a public :class:`InboundMessage` per post of someone else (the
  brand's own posts and retweets, which carry no words of the customer, are left out). Its
  :class:`PublicContext`: ``kind`` is ``quote`` (it quotes the brand), ``reply`` (it answers a
  post) or ``mention``; ``thread`` is the post it answers, or its own id when it starts the
  conversation (the core joins a reply to an earlier conversation by its parent); ``addressed``
  says whether it @mentions the brand, quotes the brand or answers the brand (X lets a
  self-serve app reply only then). The text is the customer's as X shows it, with X's HTML
  escapes (``&amp;`` ``&lt;`` ``&gt;``) undone; the ``@handles`` X puts at the start of a reply
  are kept, as the customer's post shows them.
* ``direct_message_events`` (``message_create``): a private :class:`InboundMessage` per message
  someone else sent (the brand's own, sent from carebot or the X app, are left out); its id is
  the DM event id, the sender's name comes from the delivery's ``users``.
* ``tweet_delete_events``: a :class:`PublicChange` ``removed`` for the post. X has no edit
  event: an edited post arrives as a new post.

Replies go out through the X API (:mod:`carebot.adapters.x_api`), paced: ``send`` (and a
private reply) is a direct message; :class:`~carebot.public.actions.PublicActions` posts a reply
and hides or unhides one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import logging
from collections.abc import Iterator, Mapping

from aiohttp import web
from pydantic import ValidationError

from carebot.adapters import x_payloads as payloads
from carebot.adapters.payloads import at_milli, problems
from carebot.adapters.x_api import XApi
from carebot.channel import Deliver
from carebot.models import (
    ChannelEvent,
    InboundMessage,
    OutboundReply,
    PublicAction,
    PublicChange,
    PublicContext,
)
from carebot.pacing import Pacer
from carebot.public.actions import PrivateReplySent

log = logging.getLogger(__name__)
WEBHOOK_PATH = "/x/webhook"
SIGNATURE_HEADER = "x-twitter-webhooks-signature"
DM_LIMIT = 10_000  # characters of a direct message


def signature(consumer_secret: str, message: bytes) -> str:
    """``sha256=`` + base64 HMAC-SHA256 of ``message``: the CRC answer and X's signature."""
    mac = hmac.new(consumer_secret.encode(), message, hashlib.sha256).digest()
    return "sha256=" + base64.b64encode(mac).decode()


class XChannel:
    """The brand's X account ``user_id``: its webhook in, the X API out."""

    name = "x"

    def __init__(self, *, api: XApi, user_id: str, consumer_secret: str, pacer: Pacer) -> None:
        self.user_id = user_id
        self._api = api
        self._secret = consumer_secret
        self._pacer = pacer
        self._deliver: Deliver | None = None
        self._receiving = False

    def mount(self, app: web.Application) -> None:
        app.router.add_get(WEBHOOK_PATH, self._on_crc)
        app.router.add_post(WEBHOOK_PATH, self._on_event)

    @property
    def receiving(self) -> bool:
        return self._receiving

    async def start(self, deliver: Deliver) -> None:
        self._deliver = deliver
        await self._api.open()
        self._receiving = True

    async def stop(self) -> None:
        self._receiving = False

    async def close(self) -> None:
        self._receiving = False
        await self._api.close()

    async def send(self, reply: OutboundReply) -> str | None:
        """A direct message to the customer; its dm_event_id."""
        text = reply.signed_text()
        labels = [choice.label for choice in reply.choices]  # X DMs have no buttons
        text += "".join(f"\n{n}) {label}" for n, label in enumerate(labels, start=1))
        return await self._direct_message(reply.external_user_id, text)

    async def reply_public(self, action: PublicAction, text: str) -> str | None:
        """Reply in public to the post ``action.target``; the reply's id."""
        await self._pacer.wait(action.thread)
        return await self._api.reply(action.target, text)

    async def reply_private(
        self, action: PublicAction, text: str, *, user_id: str
    ) -> PrivateReplySent:
        """A direct message to the author of ``action.target``: on X the same user id."""
        return PrivateReplySent(await self._direct_message(user_id, text), user_id)

    async def set_hidden(self, action: PublicAction, hidden: bool) -> None:
        """Hide (or unhide) a reply to one of the brand's posts."""
        await self._pacer.wait(action.thread)
        await self._api.set_hidden(action.target, hidden)

    async def _direct_message(self, user_id: str, text: str) -> str | None:
        await self._pacer.wait(user_id)
        return await self._api.direct_message(user_id, text[:DM_LIMIT])

    async def _on_crc(self, request: web.Request) -> web.Response:
        token = request.query.get("crc_token")
        if not token:
            raise web.HTTPBadRequest(text="crc_token is missing")
        answer = {"response_token": signature(self._secret, token.encode())}
        return web.json_response(answer)

    async def _on_event(self, request: web.Request) -> web.Response:
        if not self._receiving:
            raise web.HTTPServiceUnavailable(text="not receiving (shutting down); deliver again")
        raw = await request.read()
        given = request.headers.get(SIGNATURE_HEADER)
        if not given:
            raise web.HTTPUnauthorized(text=f"{SIGNATURE_HEADER} is missing")
        if not hmac.compare_digest(given.encode(), signature(self._secret, raw).encode()):
            log.warning("Refused an X webhook call with a wrong signature")
            raise web.HTTPForbidden(text=f"{SIGNATURE_HEADER} does not match")
        try:
            # Parsed and translated before anything is stored: a malformed delivery is refused
            # with 400 and none of it is taken.
            events = list(self.events(payloads.parse(raw)))
        except ValidationError as exc:
            log.warning("Refused a malformed X webhook call: %s", problems(exc))
            log.debug("The malformed X webhook call: %r", raw)
            words = f"not an Account Activity delivery: {problems(exc)}"
            raise web.HTTPBadRequest(text=words) from exc
        assert self._deliver is not None
        try:
            for event in events:
                await self._deliver(event)
        except Exception as exc:
            log.exception("Could not take an X webhook delivery; X will send it again")
            raise web.HTTPInternalServerError(text="not stored; deliver again") from exc
        return web.json_response({"ok": True})

    def events(self, payload: payloads.XPayload) -> Iterator[ChannelEvent]:
        """Every event of a delivery for the brand's account, translated."""
        if payload.for_user_id != self.user_id:
            log.info("Ignoring an X delivery for account %s, not configured", payload.for_user_id)
            return
        for tweet in payload.tweet_create_events:
            message = self.tweet(tweet)
            if message is not None:
                yield message
        for event in payload.direct_message_events:
            dm = self.direct_message(event, payload.users)
            if dm is not None:
                yield dm
        for deleted in payload.tweet_delete_events:
            yield PublicChange(
                self.name, deleted.status.id, "removed", at_milli(deleted.timestamp_ms)
            )

    def tweet(self, tweet: payloads.Tweet) -> InboundMessage | None:
        """A post of someone else as a public message; None for the brand's own and retweets."""
        if tweet.user.id_str == self.user_id:
            log.debug("Ignoring the brand's own post %s", tweet.id_str)
            return None
        if tweet.retweeted_status is not None:
            log.debug("Ignoring a retweet %s", tweet.id_str)
            return None
        return InboundMessage(
            channel=self.name,
            external_user_id=tweet.user.id_str,
            external_message_id=tweet.id_str,
            text=html.unescape(tweet.whole_text),
            sent_at=tweet.sent_at,
            profile={"name": tweet.user.name, "username": tweet.user.screen_name},
            raw=tweet.raw,
            public=self._context(tweet),
        )

    def _context(self, tweet: payloads.Tweet) -> PublicContext:
        quoted = tweet.quoted_status
        quotes_brand = quoted is not None and quoted.user.id_str == self.user_id
        parent = tweet.in_reply_to_status_id_str
        kind = "quote" if quotes_brand else "reply" if parent is not None else "mention"
        return PublicContext(
            thread=parent or tweet.id_str,
            kind=kind,
            parent_id=parent,
            post_text=html.unescape(quoted.whole_text) if quoted is not None else "",
            post_url=f"https://x.com/{tweet.user.screen_name}/status/{tweet.id_str}",
            reach=tweet.user.followers_count,
            addressed=(
                self.user_id in tweet.mentioned
                or quotes_brand
                or tweet.in_reply_to_user_id_str == self.user_id
            ),
        )

    def direct_message(
        self, event: payloads.DirectMessageEvent, users: Mapping[str, payloads.DmUser]
    ) -> InboundMessage | None:
        """A direct message someone else sent as a private message; None otherwise."""
        created = event.message_create
        if event.type != "message_create" or created is None:
            return None
        sender = created.sender_id
        if sender == self.user_id:
            log.debug("Ignoring the brand's own direct message %s", event.id)
            return None
        user = users.get(sender)
        profile = {"name": user.name, "username": user.screen_name} if user is not None else {}
        return InboundMessage(
            channel=self.name,
            external_user_id=sender,
            external_message_id=event.id,
            text=created.message_data.text,
            sent_at=at_milli(event.created_timestamp),
            profile=profile,
            raw=event.raw,
        )
