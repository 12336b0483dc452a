"""Facebook Page and Instagram comments and mentions: translated in, public actions out.

Translation only, for :class:`~carebot.adapters.meta.MessengerChannel` (the ``messenger``
channel is the Facebook page, ``instagram`` the professional account). The shared webhook hands
an entry's ``changes`` to :meth:`MetaPublic.translate_changes`:

* Facebook ``feed``, ``item: comment``: ``add`` -> an :class:`InboundMessage` with a
  :class:`PublicContext` (thread = the post, ``parent_id`` = the comment it answers, or the post
  itself for a top-level comment); ``edited`` / ``remove`` -> a :class:`PublicChange`. The
  page's own comments, other items (statuses, photos, reactions...) and other verbs (hide,
  unhide) are not read.
* Facebook ``mention`` (a post or comment that @mentions the page): its text and link are looked
  up (``GET /{id}?fields=message,permalink_url,created_time``) -> a ``mention``.
* Instagram ``comments``: -> a ``comment`` under the media (the account's own are not read);
  ``mentions``: the comment (or caption) is looked up on the account (``mentioned_comment`` /
  ``mentioned_media``) -> a ``mention``.

A look-up that fails raises :class:`DeliveryError`: the webhook answers 500 and stores nothing
of the call, so Meta delivers it again.

Public actions (:class:`carebot.public.actions.PublicActions`): a reply under the comment
(Facebook ``POST /{comment-id}/comments``, Instagram ``POST /{comment-id}/replies``), a private
reply (``POST /{page-or-account-id}/messages`` to ``recipient.comment_id``), hide and unhide
(``POST /{comment-id}`` with ``is_hidden`` on Facebook, ``hide`` on Instagram).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, TypeVar

from pydantic import ValidationError

from carebot.adapters import meta_public_payloads as public
from carebot.adapters.graph import GraphApi
from carebot.adapters.payloads import Payload, at_second, problems
from carebot.exceptions import DeliveryError
from carebot.models import ChannelEvent, InboundMessage, PublicAction, PublicChange, PublicContext
from carebot.pacing import Pacer
from carebot.public.actions import PrivateReplySent

log = logging.getLogger(__name__)
FIELDS = {"messenger": ("feed", "mention"), "instagram": ("comments", "live_comments", "mentions")}
FB_NODE_FIELDS = "message,permalink_url,created_time"
IG_COMMENT_FIELDS = "{id,text,timestamp,from,media}"
IG_MEDIA_FIELDS = "{id,caption,timestamp,permalink,username}"
CHANGES = {"edited": "edited", "remove": "removed"}
P = TypeVar("P", bound=Payload)


class MetaPublic:
    """Comments and mentions of a Messenger (Facebook page) or Instagram channel: mixed into
    :class:`~carebot.adapters.meta.MessengerChannel`, whose ``name``, ``account_id``, Graph API
    client and pacer it uses."""

    name: str
    account_id: str
    _api: GraphApi
    _pacer: Pacer

    @property
    def _facebook(self) -> bool:
        return self.name == "messenger"

    async def translate_changes(self, entry: public.PublicEntry) -> list[ChannelEvent]:
        """The events of an entry's comment and mention changes, looked up where need be."""
        events: list[ChannelEvent] = []
        for change in entry.changes:
            if change.field not in FIELDS[self.name]:
                log.debug("Ignoring a %s %s change", self.name, change.field)
            elif change.feed is not None:
                events.extend(self._feed(change.feed))
            elif change.mention is not None:
                events.extend(await self._page_mention(change.mention))
            elif change.comments is not None:
                assert entry.time is not None  # PublicEntry requires it with comments
                events.extend(self._ig_comment(change.comments, entry.time))
            elif change.mentions is not None:
                events.extend(await self._ig_mention(change.mentions))
            else:
                log.info("Ignoring a %s %s change without a value", self.name, change.field)
        return events

    def _feed(self, value: public.FeedValue) -> list[ChannelEvent]:
        if not value.is_comment_change:
            # A comment hidden or unhidden (by the page, or by carebot itself) is worth a line;
            # statuses, photos, reactions and likes come by the hundred.
            level = logging.INFO if value.item == "comment" else logging.DEBUG
            log.log(level, "Ignoring a Facebook feed change: %s %s", value.item, value.verb)
            return []
        assert value.comment_id and value.post_id and value.created_time is not None
        if value.from_ is not None and value.from_.id == self.account_id:
            log.debug("Ignoring the page's own comment %s (%s)", value.comment_id, value.verb)
            return []
        at = at_second(value.created_time)
        if value.verb in CHANGES:
            text = value.message if value.verb == "edited" else ""
            return [PublicChange(self.name, value.comment_id, CHANGES[value.verb], at, text)]
        assert value.from_ is not None
        post = value.post or public.Post()
        where = PublicContext(
            thread=value.post_id,
            kind="comment",
            parent_id=value.parent_id,
            post_text=post.message,
            post_url=post.permalink_url,
        )
        author = value.from_
        return [
            self._message(
                author.id, author.name, value.comment_id, value.message, at, where, value.raw
            )
        ]

    async def _page_mention(self, mention: public.PageMention) -> list[ChannelEvent]:
        if mention.verb != "add" or mention.sender_id == self.account_id:
            log.info("Ignoring a Facebook mention: %s %s", mention.item, mention.verb)
            return []
        target = mention.comment_id or mention.post_id
        node, answer = await self._look_up(target, {"fields": FB_NODE_FIELDS}, public.FbNode)
        if mention.created_time is not None:
            at = at_second(mention.created_time)
        elif node.created_time is not None:
            at = node.created_time
        else:
            raise DeliveryError(f"the Graph API gave no created_time for mention {target}")
        where = PublicContext(thread=mention.post_id, kind="mention", post_url=node.permalink_url)
        sender, raw = mention.sender_id, mention.raw | {"looked_up": answer}
        return [self._message(sender, mention.sender_name, target, node.message, at, where, raw)]

    def _ig_comment(self, comment: public.IgComment, at: datetime) -> list[ChannelEvent]:
        author = comment.from_
        if author.id == self.account_id:
            log.debug("Ignoring the account's own comment %s", comment.id)
            return []
        where = PublicContext(thread=comment.media.id, kind="comment", parent_id=comment.parent_id)
        text, raw = comment.text, comment.raw
        return [self._message(author.id, author.username, comment.id, text, at, where, raw)]

    async def _ig_mention(self, mention: public.IgMention) -> list[ChannelEvent]:
        if mention.comment_id is not None:
            fields = f"mentioned_comment.comment_id({mention.comment_id}){IG_COMMENT_FIELDS}"
        else:
            fields = f"mentioned_media.media_id({mention.media_id}){IG_MEDIA_FIELDS}"
        query = {"fields": fields}
        found, answer = await self._look_up(self.account_id, query, public.IgMentionLookup)
        where = PublicContext(thread=mention.media_id, kind="mention")
        raw = mention.raw | {"looked_up": answer}
        if mention.comment_id is not None:
            comment = found.mentioned_comment
            if comment is None:
                raise DeliveryError(f"no mentioned_comment {mention.comment_id} in the answer")
            author = comment.from_
            if author.id == self.account_id:
                return []
            text, at = comment.text, comment.timestamp
            return [self._message(author.id, author.username, comment.id, text, at, where, raw)]
        media = found.mentioned_media
        if media is None:
            raise DeliveryError(f"no mentioned_media {mention.media_id} in the answer")
        # A caption's author comes as a username only, not an Instagram-scoped id.
        where = PublicContext(thread=media.id, kind="mention", post_url=media.permalink)
        user, at = f"@{media.username}", media.timestamp
        return [self._message(user, media.username, media.id, media.caption, at, where, raw)]

    async def _look_up(
        self, node: str, params: dict[str, str], model: type[P]
    ) -> tuple[P, dict[str, Any]]:
        """The Graph API's answer about ``node``, as ``model`` and as it came."""
        answer = await self._api.get(node, params)
        try:
            return model.model_validate(answer), answer
        except ValidationError as exc:
            raise DeliveryError(f"unexpected Graph API answer for {node}: {problems(exc)}") from exc

    def _message(
        self,
        user: str,
        name: str,
        message_id: str,
        text: str,
        at: datetime,
        where: PublicContext,
        raw: dict[str, Any],
    ) -> InboundMessage:
        return InboundMessage(
            channel=self.name,
            external_user_id=user,
            external_message_id=message_id,
            text=text,
            sent_at=at,
            profile={"name": name} if name else {},
            raw=raw,
            public=where,
        )

    # Public actions (carebot.public.actions.PublicActions).

    async def reply_public(self, action: PublicAction, text: str) -> str | None:
        """Reply under ``action.target`` in public; the id of the new comment. An Instagram
        mention sits on another account's media: the reply goes through the brand's own
        ``/mentions`` edge, naming the comment and the media."""
        if not self._facebook and action.about == "mention":
            body = {"media_id": action.thread, "message": text}
            if action.target != action.thread:  # a comment's mention; else the caption's
                body["comment_id"] = action.target
            answer = await self._api.post(f"{self.account_id}/mentions", body)
            return _text(answer.get("id"))
        edge = "comments" if self._facebook else "replies"
        answer = await self._api.post(f"{action.target}/{edge}", {"message": text})
        return _text(answer.get("id"))

    async def reply_private(
        self, action: PublicAction, text: str, *, user_id: str
    ) -> PrivateReplySent:
        """A private reply to the author of the comment ``action.target`` (Meta allows one
        per comment, within 7 days of it)."""
        await self._pacer.wait(user_id)
        body = {"recipient": {"comment_id": action.target}, "message": {"text": text}}
        answer = await self._api.send(self.account_id, body)
        return PrivateReplySent(_text(answer.get("message_id")), _text(answer.get("recipient_id")))

    async def set_hidden(self, action: PublicAction, hidden: bool) -> None:
        """Hide (or unhide) the comment ``action.target``; it is never deleted."""
        await self._api.post(action.target, {"is_hidden" if self._facebook else "hide": hidden})


def _text(value: Any) -> str | None:
    return str(value) if value else None
