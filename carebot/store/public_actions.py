"""Public actions in the store: the bot's plan for a public message, and agents' public
replies, private replies, hiding and unhiding, each checked and queued in one transaction.

Every public action is an outbox row (delivered, retried and never dropped like any reply),
with an outgoing message in the public conversation so agents read what was posted, replied
privately or hidden, and by whom. Before anything is stored: the personal-data guard for any
text (:class:`carebot.public.posting.PublicPosting`) and the platform's rules
(:mod:`carebot.public.rules`) with the item's row locked, so two agents cannot both send the
one private reply a comment allows. Hiding and unhiding are written to the audit trail with who
and why. X bills per call: :meth:`PublicActionStore.take_call` counts them against
``[x] monthly_call_cap``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from carebot.clock import Clock
from carebot.exceptions import PublicRefused, StoreError
from carebot.models import OutboundReply, PublicAction, PublicActionKind
from carebot.public.rules import refusal, text_refusal
from carebot.store.customers import merge_customers
from carebot.store.database import Database
from carebot.store.outbox import Outgoing, Queued, add_reply
from carebot.store.public_items import item_facts
from carebot.store.tables import (
    ApiUsage,
    Conversation,
    ConversationEvent,
    Identity,
    Message,
    PublicItem,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Step:
    """One public action to queue: ``text`` is posted as is (tagged or signed already)."""

    kind: PublicActionKind
    text: str = ""
    why: str = ""


async def target_item(
    session: AsyncSession, conversation_id: int, message_id: int | None = None
) -> tuple[PublicItem, Message]:
    """The public item an action is about (locked): ``message_id``'s, or the conversation's
    latest one that was not removed."""
    query = (
        select(PublicItem, Message)
        .join(Message, Message.id == PublicItem.message_id)
        .where(PublicItem.conversation_id == conversation_id)
    )
    if message_id is not None:
        query = query.where(PublicItem.message_id == message_id)
    else:
        query = query.where(PublicItem.removed_at.is_(None)).order_by(PublicItem.message_id.desc())
    row = (await session.execute(query.limit(1).with_for_update())).first()
    if row is None:
        raise PublicRefused(f"conversation {conversation_id} has no public message to act on")
    return row[0], row[1]


async def queue_step(
    session: AsyncSession,
    *,
    conversation: Conversation,
    item: PublicItem,
    message: Message,
    step: Step,
    actor: str,
    author: str,
    now: datetime,
    lease: bool,
    decision_id: int | None = None,
    via: str | None = None,
) -> Queued:
    """Queue ``step`` on ``item`` (locked by the caller), after the platform's rules; the
    item's row records it (a private reply, hidden or not) in the same transaction."""
    refused = refusal(step.kind, item_facts(item), now)
    if refused is None and step.kind is PublicActionKind.REPLY:
        refused = text_refusal(item.channel, step.text)
    if refused is not None:
        raise PublicRefused(refused)
    identity = await session.get_one(Identity, conversation.identity_id)
    if step.kind is PublicActionKind.PRIVATE_REPLY:
        item.private_reply_at, item.private_reply_by = now, actor
    elif step.kind in (PublicActionKind.HIDE, PublicActionKind.UNHIDE):
        hide = step.kind is PublicActionKind.HIDE
        item.hidden, item.hidden_at = hide, now
        item.hidden_by, item.hidden_reason = actor, (step.why or None) if hide else None
        detail = {"message_id": item.message_id, "reason": step.why}
        session.add(
            ConversationEvent(
                conversation_id=conversation.id,
                kind="hidden" if hide else "unhidden",
                actor=actor,
                detail=detail,
                created_at=now,
            )
        )
    action = PublicAction(step.kind, message.external_id or "", item.thread, item.kind)
    outgoing = Outgoing(
        step.text,
        author=author,
        agent=actor if author == "agent" else None,
        decision_id=decision_id,
        via=via,
        public=action,
    )
    return await add_reply(
        session,
        conversation=conversation,
        identity=identity,
        outgoing=outgoing,
        now=now,
        lease=lease,
    )


class PublicActionStore:
    """Agents' public actions and the outbox's checks (each method is one transaction)."""

    def __init__(self, db: Database, *, clock: Clock, lease_replies: bool = True) -> None:
        self._db = db
        self._clock = clock
        self._lease = lease_replies

    async def set_hidden(
        self,
        conversation_id: int,
        agent: str,
        *,
        message_id: int,
        hidden: bool,
        why: str = "",
        via: str = "inbox",
    ) -> Queued:
        """An agent hides (or unhides) one public message; raises PublicRefused when the
        platform's rules forbid it."""
        kind = PublicActionKind.HIDE if hidden else PublicActionKind.UNHIDE
        async with self._db.transaction() as session:
            conversation = await session.get(Conversation, conversation_id, with_for_update=True)
            if conversation is None:
                raise StoreError(f"No conversation with id {conversation_id}")
            item, message = await target_item(session, conversation_id, message_id)
            return await queue_step(
                session,
                conversation=conversation,
                item=item,
                message=message,
                step=Step(kind, why=why or ("hidden by an agent" if hidden else "")),
                actor=agent,
                author="agent",
                now=self._clock(),
                lease=self._lease,
                via=via,
            )

    async def refusal_before_send(self, reply: OutboundReply) -> str | None:
        """Why a queued public action may no longer be carried out (the comment was removed
        since it was queued); None when it may."""
        if reply.public is None or reply.public.kind is PublicActionKind.UNHIDE:
            return None
        async with self._db.session() as session:
            removed = await session.scalar(
                select(PublicItem.removed_at)
                .join(Message, Message.id == PublicItem.message_id)
                .where(Message.channel == reply.channel, Message.external_id == reply.public.target)
            )
        if removed is None:
            return None
        return f"the comment was removed on the platform at {removed:%Y-%m-%d %H:%M} UTC"

    async def link_recipient(self, reply: OutboundReply, recipient_id: str) -> None:
        """A private reply reached ``recipient_id`` in private messages: that identity is the
        same customer as the commenter (Messenger's Page-scoped id may differ from theirs)."""
        if recipient_id == reply.external_user_id:
            return
        now = self._clock()
        async with self._db.transaction() as session:
            commenter = await session.scalar(
                select(Identity).where(
                    Identity.channel == reply.channel,
                    Identity.external_user_id == reply.external_user_id,
                )
            )
            if commenter is None:
                return
            known = await session.scalar(
                select(Identity).where(
                    Identity.channel == reply.channel, Identity.external_user_id == recipient_id
                )
            )
            why = f"private reply to comment {reply.public.target if reply.public else ''}"
            if known is None:
                session.add(
                    Identity(
                        customer_id=commenter.customer_id,
                        channel=reply.channel,
                        external_user_id=recipient_id,
                        profile=dict(commenter.profile),
                        created_at=now,
                        linked_by=why[:200],
                    )
                )
            elif known.customer_id != commenter.customer_id:
                keep, gone = sorted((known.customer_id, commenter.customer_id))
                await merge_customers(session, keep, gone, reason=why)

    async def take_call(self, platform: str, cap: int) -> bool:
        """Count one call to a billed API this month; False (nothing counted) once ``cap``
        calls were made (``cap`` 0: no cap, always True)."""
        if cap <= 0:
            return True
        period = f"{self._clock():%Y-%m}"
        async with self._db.transaction() as session:
            insert = sqlite_insert if self._db.is_sqlite else pg_insert
            await session.execute(
                insert(ApiUsage)
                .values(platform=platform, period=period, calls=0)
                .on_conflict_do_nothing(index_elements=["platform", "period"])
            )
            taken = await session.scalar(
                update(ApiUsage)
                .where(
                    ApiUsage.platform == platform,
                    ApiUsage.period == period,
                    ApiUsage.calls < cap,
                )
                .values(calls=ApiUsage.calls + 1)
                .returning(ApiUsage.calls)
            )
            return taken is not None

    async def calls(self, platform: str) -> int:
        """Calls counted this month."""
        period = f"{self._clock():%Y-%m}"
        async with self._db.session() as session:
            found = await session.scalar(
                select(ApiUsage.calls).where(
                    ApiUsage.platform == platform, ApiUsage.period == period
                )
            )
        return found or 0
