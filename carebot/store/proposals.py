"""The proposal queue: suggested changes to the intents, waiting for an ops person.

A proposal adds examples to an intent, or makes a new intent with examples and a draft answer.
It comes from an agent's reply (the customer's question and what the agent answered), from an
unanswered topic of insight, or from an agent's own idea, and keeps its author and source. Its
flags say what the editor must look at before publishing (personal data in the text, an
example that scores near another intent). Nothing in it is live: an ops person edits, previews
and publishes it through the console, or rejects it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import select, update

from carebot.clock import Clock
from carebot.exceptions import StoreError
from carebot.store.database import Database
from carebot.store.tables import Conversation, Customer, DecisionRow, IntentProposal, Message


class ProposalKind(StrEnum):
    ADD_EXAMPLES = "add_examples"
    NEW_INTENT = "new_intent"


QUESTION_MESSAGES = 3  # customer messages taken as the question before a reply, at most


class Source(StrEnum):
    AGENT_REPLY = "agent_reply"
    TOPIC = "topic"
    AGENT = "agent"


class Status(StrEnum):
    OPEN = "open"
    PUBLISHED = "published"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class Flag:
    """Something the editor must look at: ``field`` is ``answer`` or ``example``, ``text`` the
    part of it concerned, ``kind`` what it is (a kind of personal data, or ``near_intent``) and
    ``message`` the words shown next to the field."""

    field: str
    kind: str
    text: str
    message: str

    def as_json(self) -> dict[str, Any]:
        return {"field": self.field, "kind": self.kind, "text": self.text, "message": self.message}


@dataclass(frozen=True, slots=True)
class Proposal:
    id: int
    kind: ProposalKind
    intent_id: str
    title: str
    examples: tuple[str, ...]
    answer: str
    source: Source
    author: str
    conversation_id: int | None
    message_ids: tuple[int, ...]
    flags: tuple[Flag, ...]
    status: Status
    created_at: datetime
    decided_by: str | None = None
    decided_at: datetime | None = None
    revision_id: int | None = None
    note: str | None = field(default=None)


@dataclass(frozen=True, slots=True)
class Draft:
    """A proposal before it is queued."""

    kind: ProposalKind
    intent_id: str
    examples: tuple[str, ...]
    source: Source
    author: str
    title: str = ""
    answer: str = ""
    conversation_id: int | None = None
    message_ids: tuple[int, ...] = ()
    flags: tuple[Flag, ...] = ()


@dataclass(frozen=True, slots=True)
class Said:
    id: int
    conversation_id: int
    text: str


@dataclass(frozen=True, slots=True)
class ReplyContext:
    """An agent's reply, the customer's question it answered (oldest first: at most
    ``QUESTION_MESSAGES`` of their messages since the bot or an agent last wrote after one of
    them; messages that ask nothing, asking for a person or small talk, are left out, and so is
    what the bot said to them) and the names the text may mention."""

    reply: Said
    question: tuple[Said, ...]
    customer_name: str
    agent_name: str


def _asks_nothing(reasons: str | None, details: dict[str, Any] | None) -> bool:
    """A customer message that is no question for the FAQ: asking for a person, or small
    talk (a greeting, thanks)."""
    asked_for_human = "asked_for_human" in (reasons or "").split(",")
    return asked_for_human or bool((details or {}).get("small_talk"))


class ProposalStore:
    def __init__(self, db: Database, *, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def add(self, draft: Draft) -> Proposal:
        if not draft.examples and draft.kind is ProposalKind.ADD_EXAMPLES:
            raise StoreError("A proposal to add examples needs at least one example")
        row = IntentProposal(
            kind=draft.kind.value,
            intent_id=draft.intent_id,
            title=draft.title,
            examples=list(draft.examples),
            answer=draft.answer,
            source=draft.source.value,
            author=draft.author,
            conversation_id=draft.conversation_id,
            message_ids=list(draft.message_ids),
            flags=[flag.as_json() for flag in draft.flags],
            status=Status.OPEN.value,
            created_at=self._clock(),
        )
        async with self._db.transaction() as session:
            session.add(row)
            await session.flush()
        return _proposal(row)

    async def reply_context(self, message_id: int) -> ReplyContext:
        """The agent's reply ``message_id`` with the customer's question before it."""
        async with self._db.session() as session:
            reply = await session.get(Message, message_id)
            if reply is None:
                raise StoreError(f"No message {message_id}")
            if reply.author != "agent" or reply.direction != "out":
                raise StoreError(
                    f"Message {message_id} is not an agent's reply (it is the {reply.author}'s): "
                    "propose from a message an agent wrote to the customer"
                )
            before = (
                await session.execute(
                    select(Message, DecisionRow.reasons, DecisionRow.details)
                    .outerjoin(DecisionRow, DecisionRow.inbound_message_id == Message.id)
                    .where(
                        Message.conversation_id == reply.conversation_id,
                        Message.id < reply.id,
                    )
                    .order_by(Message.id.desc())
                    .limit(50)
                )
            ).all()
            customer = await session.scalar(
                select(Customer.display_name)
                .join(Conversation, Conversation.customer_id == Customer.id)
                .where(Conversation.id == reply.conversation_id)
            )
        question: list[Said] = []
        answered = False  # the bot wrote after the customer message looked at next
        for message, reasons, details in before:  # newest first
            if message.author == "customer":
                if _asks_nothing(reasons, details):
                    answered = False  # the bot's words after it were about that: go on
                    continue
                if answered:
                    break  # the bot had its say on this one already
                question.append(Said(message.id, message.conversation_id, message.text))
            elif message.author == "agent" and question:
                break  # what came before was an agent's already
            elif question:
                answered = True
            if len(question) == QUESTION_MESSAGES:
                break
        if not question:
            raise StoreError(
                f"No customer question comes before the reply {message_id} (only greetings, "
                "thanks or asking for a person): propose from a reply that answers a question"
            )
        return ReplyContext(
            reply=Said(reply.id, reply.conversation_id, reply.text),
            question=tuple(reversed(question)),
            customer_name=customer or "",
            agent_name=reply.agent or "",
        )

    async def texts_of(self, message_ids: Sequence[int]) -> list[str]:
        """The texts of some messages, in the order of ``message_ids`` (those gone left out)."""
        found: dict[int, str] = {}
        ids = list(message_ids)
        async with self._db.session() as session:
            for start in range(0, len(ids), 1000):
                rows = await session.execute(
                    select(Message.id, Message.text).where(
                        Message.id.in_(ids[start : start + 1000])
                    )
                )
                found.update({row.id: row.text for row in rows})
        return [found[i] for i in ids if i in found]

    async def get(self, proposal_id: int) -> Proposal:
        async with self._db.session() as session:
            row = await session.get(IntentProposal, proposal_id)
        if row is None:
            raise StoreError(f"No proposal {proposal_id}")
        return _proposal(row)

    async def waiting(self) -> list[Proposal]:
        """The open proposals, oldest first (the queue)."""
        return await self._list(
            IntentProposal.status == Status.OPEN.value, order=(IntentProposal.id,)
        )

    async def decided(self, *, limit: int = 50) -> list[Proposal]:
        """The latest published or rejected proposals, newest decision first."""
        return await self._list(
            IntentProposal.status != Status.OPEN.value,
            order=(IntentProposal.decided_at.desc(), IntentProposal.id.desc()),
            limit=limit,
        )

    async def of_conversation(self, conversation_id: int) -> list[Proposal]:
        """The proposals made from the conversation ``conversation_id``, newest first."""
        return await self._list(
            IntentProposal.conversation_id == conversation_id, order=(IntentProposal.id.desc(),)
        )

    async def publish(self, proposal_id: int, *, by: str, revision_id: int) -> Proposal:
        """Mark an open proposal published by ``by`` as ``revision_id``."""
        return await self._decide(proposal_id, Status.PUBLISHED, by, revision_id, None)

    async def reject(self, proposal_id: int, *, by: str, note: str = "") -> Proposal:
        return await self._decide(proposal_id, Status.REJECTED, by, None, note.strip() or None)

    async def _decide(
        self,
        proposal_id: int,
        status: Status,
        by: str,
        revision_id: int | None,
        note: str | None,
    ) -> Proposal:
        async with self._db.transaction() as session:
            done = await session.execute(
                update(IntentProposal)
                .where(
                    IntentProposal.id == proposal_id,
                    IntentProposal.status == Status.OPEN.value,
                )
                .values(
                    status=status.value,
                    decided_by=by,
                    decided_at=self._clock(),
                    revision_id=revision_id,
                    note=note,
                )
            )
            if done.rowcount != 1:  # type: ignore[attr-defined]
                row = await session.get(IntentProposal, proposal_id)
                if row is None:
                    raise StoreError(f"No proposal {proposal_id}")
                raise StoreError(
                    f"Proposal {proposal_id} was already {row.status} by {row.decided_by}"
                )
        return await self.get(proposal_id)

    async def _list(
        self, where: Any, *, order: tuple[Any, ...], limit: int | None = None
    ) -> list[Proposal]:
        query = select(IntentProposal).where(where).order_by(*order)
        if limit is not None:
            query = query.limit(limit)
        async with self._db.session() as session:
            rows = (await session.scalars(query)).all()
        return [_proposal(row) for row in rows]


def _proposal(row: IntentProposal) -> Proposal:
    return Proposal(
        id=row.id,
        kind=ProposalKind(row.kind),
        intent_id=row.intent_id,
        title=row.title,
        examples=tuple(row.examples or ()),
        answer=row.answer,
        source=Source(row.source),
        author=row.author,
        conversation_id=row.conversation_id,
        message_ids=tuple(row.message_ids or ()),
        flags=tuple(Flag(**flag) for flag in row.flags or ()),
        status=Status(row.status),
        created_at=row.created_at,
        decided_by=row.decided_by,
        decided_at=row.decided_at,
        revision_id=row.revision_id,
        note=row.note,
    )
