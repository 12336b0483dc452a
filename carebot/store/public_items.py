"""Public items: a customer's comments and mentions, beside their messages.

A public message is stored as every message is (:class:`~carebot.store.conversations.
ConversationStore.receive`), in the public conversation of its thread, plus one
:class:`~carebot.store.tables.PublicItem` row: where it sits (thread, parent, kind), whether it
addressed the brand, its reach. What happens to it afterwards is written here too: an edit
keeps the earlier text, a removal marks it removed, hiding says who and why.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from carebot.clock import Clock
from carebot.models import (
    InboundMessage,
    PublicActionKind,
    PublicChange,
    PublicContext,
    Visibility,
)
from carebot.public.rules import PRIVATE_REPLY_WINDOW, ItemFacts, platform_name, refusal
from carebot.store.database import Database
from carebot.store.tables import (
    LARGEST_ID,
    Conversation,
    DecisionRow,
    Identity,
    Message,
    OutboxRow,
    PublicItem,
)

log = logging.getLogger(__name__)

# What the conversation keeps of its thread; the rest is each item's own.
THREAD_KEYS = ("thread", "post_text", "post_url")


def thread_columns(public: PublicContext | None) -> dict[str, Any]:
    """A new conversation's visibility, thread and context columns."""
    if public is None:
        return {"visibility": Visibility.PRIVATE.value, "thread": "", "context": None}
    context = {key: value for key, value in public.as_dict().items() if key in THREAD_KEYS}
    return {"visibility": Visibility.PUBLIC.value, "thread": public.thread, "context": context}


def add_public_item(
    session: Any, message: Message, conversation: Conversation, inbound: InboundMessage
) -> PublicItem:
    """The public item of a message just stored (in the caller's transaction)."""
    public = inbound.public
    assert public is not None
    item = PublicItem(
        message_id=message.id,
        conversation_id=conversation.id,
        channel=inbound.channel,
        thread=public.thread,
        parent_id=public.parent_id,
        kind=public.kind,
        addressed=public.addressed,
        # A count past what the column holds (no platform has so many followers) is kept as
        # the largest it holds, not refused: the message is someone's.
        reach=None if public.reach is None else min(public.reach, LARGEST_ID),
        sent_at=inbound.sent_at,
        hidden=public.hidden,
        edits=[],
    )
    session.add(item)
    return item


async def answered_thread(
    session: AsyncSession, identity: Identity, inbound: InboundMessage
) -> Conversation | None:
    """The open public conversation of this customer that ``inbound`` answers: its parent is
    one of the conversation's messages (the customer's own, or a reply carebot posted there),
    though the platform names another thread (on X a reply's thread is the post it answers,
    so a back-and-forth would otherwise split). Locked like any conversation it joins."""
    public = inbound.public
    if public is None or not public.parent_id:
        return None
    open_public = (
        Conversation.identity_id == identity.id,
        Conversation.visibility == Visibility.PUBLIC.value,
        Conversation.state != "closed",
    )
    by_customer = select(Message.conversation_id).where(
        Message.channel == inbound.channel, Message.external_id == public.parent_id
    )
    by_us = select(OutboxRow.conversation_id).where(
        OutboxRow.channel == inbound.channel, OutboxRow.external_id == public.parent_id
    )
    return await session.scalar(
        select(Conversation)
        .where(*open_public, Conversation.id.in_(by_customer.union(by_us)))
        .order_by(Conversation.id.desc())
        .limit(1)
        .with_for_update()
    )


async def private_reply_origin(
    session: AsyncSession, identity: Identity, now: datetime
) -> dict[str, Any] | None:
    """A new private conversation's link to the public thread it comes from: the customer's
    latest comment on this channel answered privately within the last 7 days (the platforms'
    window for a private reply), as ``{"from_public": conversation id, "comment": id}``."""
    found = (
        await session.execute(
            select(PublicItem.conversation_id, Message.external_id)
            .join(Message, Message.id == PublicItem.message_id)
            .join(Conversation, Conversation.id == PublicItem.conversation_id)
            .where(
                Conversation.customer_id == identity.customer_id,
                PublicItem.channel == identity.channel,
                PublicItem.private_reply_at.is_not(None),
                PublicItem.private_reply_at >= now - PRIVATE_REPLY_WINDOW,
            )
            .order_by(PublicItem.private_reply_at.desc())
            .limit(1)
        )
    ).first()
    if found is None:
        return None
    return {"from_public": found[0], "comment": found[1]}


def public_context(conversation: Conversation, item: PublicItem | None) -> PublicContext | None:
    """A stored public message's context, as the adapter gave it (None: a private message)."""
    if item is None:
        return None
    thread = conversation.context or {}
    return PublicContext(
        thread=item.thread,
        kind=item.kind,
        parent_id=item.parent_id,
        post_text=str(thread.get("post_text") or ""),
        post_url=str(thread.get("post_url") or ""),
        reach=item.reach,
        addressed=item.addressed,
        hidden=item.hidden,
    )


def edited(item: PublicItem, message: Message, text: str, at: datetime) -> bool:
    """Record an edit: the earlier text joins ``edits``; False when the text is unchanged."""
    if text == message.text:
        return False
    item.edits = [*item.edits, {"text": message.text, "replaced_at": at.isoformat()}]
    message.text = text
    return True


class PublicStore:
    """What happens to public items after they arrive (each method is one transaction)."""

    def __init__(self, db: Database, *, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def view(self, conversation_id: int) -> PublicView | None:
        """What the desks show of a public conversation (None: a private one)."""
        async with self._db.session() as session:
            return await public_view(session, conversation_id)

    async def apply_change(self, change: PublicChange) -> int | None:
        """An edit or a removal the platform reported; the item's conversation (None: carebot
        never had the message, or nothing changed). A change to a message carebot never
        stored is logged and dropped: there is nothing of it to update."""
        async with self._db.transaction() as session:
            row = (
                await session.execute(
                    select(PublicItem, Message)
                    .join(Message, Message.id == PublicItem.message_id)
                    .where(
                        Message.channel == change.channel,
                        Message.external_id == change.external_message_id,
                    )
                    .with_for_update()
                )
            ).first()
            if row is None:
                log.info(
                    "A %s public message %s was %s, but carebot never stored it",
                    change.channel,
                    change.external_message_id,
                    change.change,
                )
                return None
            item, message = row
            if change.change == "removed":
                if item.removed_at is not None:
                    return None
                item.removed_at = change.at
            elif not edited(item, message, change.text, change.at):
                return None
            return item.conversation_id


@dataclass(frozen=True, slots=True)
class ItemView:
    """One public message as agents see it."""

    message_id: int
    external_id: str
    text: str
    kind: str
    category: str | None
    reach: int | None
    top_level: bool
    hidden: bool
    hidden_by: str | None
    hidden_reason: str | None
    removed_at: datetime | None
    edits: tuple[dict[str, Any], ...]
    private_reply_at: datetime | None
    private_reply_by: str | None
    plan: dict[str, Any] | None  # the bot's plan (decision details "public"), when it decided
    # why the platform would refuse to hide it (an X mention, another account's Instagram
    # post), None when it may be hidden; unhiding a hidden one is always allowed
    hide_refusal: str | None = None


@dataclass(frozen=True, slots=True)
class PublicView:
    """A public conversation for the desks: the platform, the post, and its public messages."""

    conversation_id: int
    channel: str
    platform: str
    thread: str
    post_text: str
    post_url: str
    items: tuple[ItemView, ...]

    @property
    def latest(self) -> ItemView | None:
        live = [item for item in self.items if item.removed_at is None]
        return live[-1] if live else None


async def public_view(session: AsyncSession, conversation_id: int) -> PublicView | None:
    """What the inbox and the Slack card show of a public conversation (None: private)."""
    conversation = await session.get(Conversation, conversation_id)
    if conversation is None or conversation.visibility != Visibility.PUBLIC.value:
        return None
    rows = (
        await session.execute(
            select(PublicItem, Message, DecisionRow.details)
            .join(Message, Message.id == PublicItem.message_id)
            .outerjoin(DecisionRow, DecisionRow.inbound_message_id == Message.id)
            .where(PublicItem.conversation_id == conversation_id)
            .order_by(PublicItem.message_id)
        )
    ).all()
    context = conversation.context or {}
    items = tuple(_item_view(item, message, details) for item, message, details in rows)
    channel = rows[0][1].channel if rows else ""
    return PublicView(
        conversation_id=conversation_id,
        channel=channel,
        platform=platform_name(channel),
        thread=conversation.thread,
        post_text=str(context.get("post_text") or ""),
        post_url=str(context.get("post_url") or ""),
        items=items,
    )


def _item_view(item: PublicItem, message: Message, details: dict[str, Any] | None) -> ItemView:
    return ItemView(
        message_id=item.message_id,
        external_id=message.external_id or "",
        text=message.text,
        kind=item.kind,
        category=item.category,
        reach=item.reach,
        top_level=item.parent_id is None or item.parent_id == item.thread,
        hidden=item.hidden,
        hidden_by=item.hidden_by,
        hidden_reason=item.hidden_reason,
        removed_at=item.removed_at,
        edits=tuple(item.edits or ()),
        private_reply_at=item.private_reply_at,
        private_reply_by=item.private_reply_by,
        plan=(details or {}).get("public"),
        hide_refusal=None if item.hidden else _hide_refusal(item),
    )


def item_facts(item: PublicItem) -> ItemFacts:
    """What the platforms' rules read of a stored public message."""
    return ItemFacts(
        channel=item.channel,
        kind=item.kind,
        top_level=item.parent_id is None or item.parent_id == item.thread,
        addressed=item.addressed,
        hidden=item.hidden,
        removed=item.removed_at is not None,
        sent_at=item.sent_at,
        private_reply_at=item.private_reply_at,
    )


def _hide_refusal(item: PublicItem) -> str | None:
    return refusal(PublicActionKind.HIDE, item_facts(item), item.sent_at)
