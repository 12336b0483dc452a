"""Meta's public webhook changes (comments and mentions) and the Graph API answers read for
them, as typed models.

A Messenger or Instagram entry (:class:`~.meta_payloads.MessagingEntry`) may carry
``changes`` beside (or instead of) ``messaging``: :class:`PageChange`. Which model its
``value`` is parsed into depends on ``field``:

* Facebook Page (object ``page``): ``feed`` -> :class:`FeedValue`, ``mention`` ->
  :class:`PageMention`;
* Instagram (object ``instagram``): ``comments`` and ``live_comments`` -> :class:`IgComment`,
  ``mentions`` -> :class:`IgMention`.

Other fields (and a change without a value) keep only their name. What the translation reads
is required (a comment's id, its post and time, its author when it is added...), so a change
without it is refused with 400 naming it, e.g. ``entry.0.changes.0.feed: Value error, a comment
add needs 'from'``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, model_validator

from carebot.adapters.payloads import (
    Id,
    Payload,
    RawPayload,
    Seconds,
    UtcTime,
    at_milli,
    at_second,
)

COMMENT_VERBS = ("add", "edited", "remove")
IG_COMMENT_FIELDS = ("comments", "live_comments")
READ_FIELDS = ("feed", "mention", "mentions", *IG_COMMENT_FIELDS)


class Author(Payload):
    """Who wrote a Facebook comment: a person's (app-scoped) id, or the page's own."""

    id: Id
    name: str = ""


class Post(Payload):
    """The post a Facebook comment is under, as far as the webhook tells."""

    message: str = ""
    permalink_url: str = ""


class FeedValue(RawPayload):
    """A ``feed`` change. Comment adds, edits and removals are read (``comment_id``,
    ``post_id`` and ``created_time`` required; an added comment's author too); other items
    (statuses, photos, reactions, likes) and verbs (hide, unhide) keep ``item`` and ``verb``."""

    item: str
    verb: str
    comment_id: Id | None = None
    post_id: Id | None = None
    parent_id: Id | None = None
    from_: Author | None = Field(default=None, alias="from")
    message: str = ""
    created_time: Seconds | None = None
    post: Post | None = None

    @property
    def is_comment_change(self) -> bool:
        return self.item == "comment" and self.verb in COMMENT_VERBS

    @model_validator(mode="after")
    def _has_what_is_read(self) -> FeedValue:
        if not self.is_comment_change:
            return self
        needed = ["comment_id", "post_id", "created_time"]
        if self.verb == "add":
            needed.append("from_")
        missing = [name.rstrip("_") for name in needed if getattr(self, name) is None]
        if missing:
            raise ValueError(f"a comment {self.verb} needs {', '.join(map(repr, missing))}")
        return self


class PageMention(RawPayload):
    """A ``mention`` change: a post or comment that @mentions the page. Only its ids come; the
    text is fetched from the Graph API."""

    item: str
    verb: str = "add"
    post_id: Id
    comment_id: Id | None = None
    sender_id: Id
    sender_name: str = ""
    created_time: Seconds | None = None

    @model_validator(mode="after")
    def _a_comment_has_its_id(self) -> PageMention:
        if self.item == "comment" and self.comment_id is None:
            raise ValueError("a comment mention needs 'comment_id'")
        return self


class IgAuthor(Payload):
    id: Id
    username: str = ""


class IgMedia(Payload):
    id: Id
    media_product_type: str = ""


class IgComment(RawPayload):
    """A ``comments`` (or ``live_comments``) change: a comment on one of the account's media."""

    id: Id
    from_: IgAuthor = Field(alias="from")
    text: str = ""
    media: IgMedia
    parent_id: Id | None = None


class IgMention(RawPayload):
    """A ``mentions`` change: the account was @mentioned in a comment (``comment_id``) or in a
    caption (``media_id`` only). The text is fetched from the Graph API."""

    media_id: Id
    comment_id: Id | None = None


class PageChange(Payload):
    """One change of an entry; its value sits under the field's own name (``feed``,
    ``mention``, ``comments``, ``mentions``), for the fields carebot reads."""

    field: str
    feed: FeedValue | None = None
    mention: PageMention | None = None
    comments: IgComment | None = None
    mentions: IgMention | None = None

    @model_validator(mode="before")
    @classmethod
    def _value_under_its_field(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        field = data.get("field")
        if field not in READ_FIELDS or data.get("value") is None:  # nothing carebot reads
            return {"field": field}
        name = "comments" if field in IG_COMMENT_FIELDS else field
        return {"field": field, name: data["value"]}


def _seconds_or_millis(value: Any) -> Any:
    """An entry's ``time``: Unix seconds (feed, Instagram) or milliseconds (messaging)."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return at_second(value) if value < 10**11 else at_milli(value)
    return value


EntryTime = Annotated[datetime, BeforeValidator(_seconds_or_millis)]


class PublicEntry(Payload):
    """What a Messenger or Instagram entry carries for comments and mentions: its ``changes``
    and the ``time`` Meta sent them (required with Instagram comments, which carry no time of
    their own)."""

    time: EntryTime | None = None
    changes: tuple[PageChange, ...] = ()

    @model_validator(mode="after")
    def _comments_have_a_time(self) -> PublicEntry:
        if self.time is None and any(c.comments is not None for c in self.changes):
            raise ValueError("an entry with Instagram comments needs its 'time'")
        return self


# What the Graph API answers to the look-ups of mentions.


class FbNode(Payload):
    """``GET /{post-or-comment-id}?fields=message,permalink_url,created_time``."""

    id: Id | None = None
    message: str = ""
    permalink_url: str = ""
    created_time: UtcTime | None = None


class MentionedComment(Payload):
    """``mentioned_comment`` of ``GET /{ig-user-id}``: a comment that @mentions the account."""

    id: Id
    text: str = ""
    timestamp: UtcTime
    from_: IgAuthor = Field(alias="from")
    media: IgMedia | None = None


class MentionedMedia(Payload):
    """``mentioned_media`` of ``GET /{ig-user-id}``: a post whose caption @mentions the
    account. Its author comes as a username only."""

    id: Id
    caption: str = ""
    timestamp: UtcTime
    permalink: str = ""
    username: Id


class IgMentionLookup(Payload):
    mentioned_comment: MentionedComment | None = None
    mentioned_media: MentionedMedia | None = None
