"""X's Account Activity deliveries as typed models.

:func:`parse` turns the raw body X POSTs to carebot's webhook into an :class:`XPayload`:
``for_user_id`` (the brand's account the activity is for), and the lists carebot reads:
``tweet_create_events`` (posts, replies, @mentions and quotes, the brand's own too),
``direct_message_events`` and ``tweet_delete_events``. Tweets arrive in the v1.1 shape (``id_str``,
``user``, ``extended_tweet`` for long posts, ``timestamp_ms``). What the translation in
:mod:`carebot.adapters.x` reads is required: a tweet's id, author, text and time, a direct
message's id, sender and time, a deleted status's id. A delivery without one raises
:class:`pydantic.ValidationError`; other activity (likes, follows, typing, read receipts...)
and fields X adds later are ignored.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field, TypeAdapter, field_validator, model_validator

from carebot.adapters.payloads import Id, Millis, Payload, RawPayload, UtcTime, at_milli, loads

CREATED_AT = "%a %b %d %H:%M:%S %z %Y"  # "Wed Oct 10 20:19:24 +0000 2018"


class User(Payload):
    """A tweet's author."""

    id_str: Id
    screen_name: str
    name: str = ""
    followers_count: int | None = Field(default=None, ge=0)


class Mention(Payload):
    id_str: Id


class Entities(Payload):
    user_mentions: tuple[Mention, ...] = ()


class ExtendedTweet(Payload):
    """A post longer than 140 characters: its whole text and entities."""

    full_text: str
    entities: Entities = Entities()


class _Text(Payload):
    """A post's text, wherever X put it: ``extended_tweet.full_text``, ``full_text`` or
    ``text`` (one of them is required)."""

    text: str | None = None
    full_text: str | None = None
    extended_tweet: ExtendedTweet | None = None

    @model_validator(mode="after")
    def _has_text(self) -> _Text:
        if self.text is None and self.full_text is None and self.extended_tweet is None:
            raise ValueError("a tweet needs its text ('text', 'full_text' or 'extended_tweet')")
        return self

    @property
    def whole_text(self) -> str:
        if self.extended_tweet is not None:
            return self.extended_tweet.full_text
        return self.full_text if self.full_text is not None else self.text or ""


class QuotedTweet(_Text):
    """The post a quote quotes."""

    id_str: Id
    user: User


class Tweet(_Text, RawPayload):
    """A post, reply, mention or quote; its time from ``timestamp_ms`` or ``created_at`` (one
    of them is required)."""

    id_str: Id
    user: User
    timestamp_ms: Millis | None = None
    created_at: UtcTime | None = None
    in_reply_to_status_id_str: Id | None = None
    in_reply_to_user_id_str: Id | None = None
    quoted_status: QuotedTweet | None = None
    retweeted_status: dict[str, Any] | None = None
    entities: Entities = Entities()

    @field_validator("created_at", mode="before")
    @classmethod
    def _x_time(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return datetime.strptime(value, CREATED_AT)
            except ValueError:
                return value  # perhaps ISO 8601; pydantic says so when it is not
        return value

    @model_validator(mode="after")
    def _has_a_time(self) -> Tweet:
        if self.timestamp_ms is None and self.created_at is None:
            raise ValueError("a tweet needs its time ('timestamp_ms' or 'created_at')")
        return self

    @property
    def sent_at(self) -> datetime:
        if self.timestamp_ms is not None:
            return at_milli(self.timestamp_ms)
        assert self.created_at is not None
        return self.created_at

    @property
    def mentioned(self) -> set[str]:
        """The ids of every account the post @mentions (a long post's from its whole text)."""
        found = {m.id_str for m in self.entities.user_mentions}
        if self.extended_tweet is not None:
            found |= {m.id_str for m in self.extended_tweet.entities.user_mentions}
        return found


class Target(Payload):
    recipient_id: Id


class MessageData(Payload):
    text: str = ""  # a file's t.co link is part of the text


class MessageCreate(Payload):
    sender_id: Id
    target: Target
    message_data: MessageData = MessageData()


class DirectMessageEvent(RawPayload):
    """A direct message event; a ``message_create`` one needs its ``message_create`` object."""

    type: str
    id: Id
    created_timestamp: Millis
    message_create: MessageCreate | None = None

    @model_validator(mode="after")
    def _has_its_message(self) -> DirectMessageEvent:
        if self.type == "message_create" and self.message_create is None:
            raise ValueError("a message_create event needs its 'message_create' object")
        return self


class DmUser(Payload):
    """An entry of a delivery's ``users`` map (the people of its direct messages)."""

    id: Id
    name: str = ""
    screen_name: str = ""


class DeletedStatus(Payload):
    id: Id
    user_id: Id | None = None


class TweetDelete(Payload):
    status: DeletedStatus
    timestamp_ms: Millis


class XPayload(Payload):
    """One Account Activity delivery for the account ``for_user_id``."""

    for_user_id: Id
    tweet_create_events: tuple[Tweet, ...] = ()
    direct_message_events: tuple[DirectMessageEvent, ...] = ()
    tweet_delete_events: tuple[TweetDelete, ...] = ()
    users: dict[str, DmUser] = Field(default_factory=dict)


_PAYLOAD = TypeAdapter(XPayload)


def parse(raw: bytes) -> XPayload:
    """The delivery's body as a typed payload; raises ValidationError when it is not JSON, not
    an Account Activity delivery, or lacks a field carebot reads."""
    return _PAYLOAD.validate_python(loads(raw))
