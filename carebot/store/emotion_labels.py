"""Agents' labels on customer messages: upset or not upset, kept for retraining the emotion
signal.

An agent labels a customer message from the inbox or from Slack; each agent has one label per
message, which they may change (labelling again replaces it). Each label keeps the emotion value
the bot had shown for the message (None when the bot never scored it: messages that arrive while
a person has the conversation are not triaged), so a retraining run can see where the signal
was wrong. :meth:`EmotionLabelStore.export` gives them in the care data set's shape.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from carebot.clock import Clock
from carebot.exceptions import StoreError
from carebot.store.database import Database
from carebot.store.tables import Conversation, DecisionRow, EmotionLabelRow, Identity, Message


class EmotionLabel(StrEnum):
    UPSET = "upset"
    NOT_UPSET = "not_upset"

    @property
    def words(self) -> str:
        return self.value.replace("_", " ")

    @property
    def care_label(self) -> str:
        """The label in the care data set (data/care): ``upset`` or ``calm``."""
        return "upset" if self is EmotionLabel.UPSET else "calm"


@dataclass(frozen=True, slots=True)
class LabelView:
    """One agent's label on one message, for agents to see."""

    message_id: int
    label: EmotionLabel
    agent: str
    at: str  # ISO time of the last change

    @property
    def words(self) -> str:
        """E.g. "marked not upset by Ann"."""
        return f"marked {self.label.words} by {self.agent}"


def parse_label(value: str) -> EmotionLabel:
    """The label an agent chose; a clear error for anything else."""
    try:
        return EmotionLabel(value)
    except ValueError:
        allowed = " or ".join(label.value for label in EmotionLabel)
        raise StoreError(f"Unknown emotion label {value!r}: use {allowed}") from None


class EmotionLabelStore:
    def __init__(self, db: Database, *, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def label(
        self,
        message_id: int,
        agent: str,
        label: EmotionLabel | str,
        *,
        conversation_id: int | None = None,
    ) -> int:
        """``agent`` says customer message ``message_id`` sounds upset or not (replacing their
        earlier label on it); returns its conversation id. With ``conversation_id``, the
        message must belong to that conversation. The conversation counts as changed (its
        Slack card shows the label)."""
        chosen = parse_label(label)
        now = self._clock()
        async with self._db.transaction() as session:
            message = await session.get(Message, message_id)
            if message is None or (
                conversation_id is not None and message.conversation_id != conversation_id
            ):
                where = f" in conversation {conversation_id}" if conversation_id else ""
                raise StoreError(f"No message with id {message_id}{where}")
            if message.direction != "in":
                raise StoreError(
                    f"Message {message_id} is a reply; only customer messages can be labelled"
                )
            conversation = await session.get_one(
                Conversation, message.conversation_id, with_for_update=True
            )
            emotion = await session.scalar(
                select(DecisionRow.emotion).where(DecisionRow.inbound_message_id == message_id)
            )
            insert = sqlite_insert if self._db.is_sqlite else pg_insert
            values = {"label": chosen.value, "labelled_at": now}
            await session.execute(
                insert(EmotionLabelRow)
                .values(message_id=message_id, agent=agent, emotion=emotion, **values)
                .on_conflict_do_update(index_elements=["message_id", "agent"], set_=values)
            )
            conversation.updated_at = now
            return conversation.id

    async def of_conversation(self, conversation_id: int) -> dict[int, list[LabelView]]:
        """The labels on the conversation's messages, by message id, oldest label first."""
        async with self._db.session() as session:
            rows = (
                await session.scalars(
                    select(EmotionLabelRow)
                    .join(Message, Message.id == EmotionLabelRow.message_id)
                    .where(Message.conversation_id == conversation_id)
                    .order_by(EmotionLabelRow.labelled_at, EmotionLabelRow.id)
                )
            ).all()
        found: dict[int, list[LabelView]] = defaultdict(list)
        for row in rows:
            found[row.message_id].append(_view(row))
        return dict(found)

    async def of_decision(self, decision_id: int | None) -> tuple[int, list[LabelView]] | None:
        """The customer message a decision was made for (a handoff's), with its labels; None
        for no decision (an agent took the conversation over on their own)."""
        if decision_id is None:
            return None
        async with self._db.session() as session:
            message_id = await session.scalar(
                select(DecisionRow.inbound_message_id).where(DecisionRow.id == decision_id)
            )
            if message_id is None:
                return None
            rows = (
                await session.scalars(
                    select(EmotionLabelRow)
                    .where(EmotionLabelRow.message_id == message_id)
                    .order_by(EmotionLabelRow.labelled_at, EmotionLabelRow.id)
                )
            ).all()
        return message_id, [_view(row) for row in rows]

    async def export(self) -> list[dict[str, Any]]:
        """Every label as a row of the care data set (data/care/README.md: ``id``, ``text``,
        ``label`` upset or calm, ``style``, ``kind``), with what the label was given on:
        ``emotion`` (the bot's value, or None), ``agent``, ``labelled_at``, ``channel`` and
        ``message_id``. Oldest label first."""
        async with self._db.session() as session:
            rows = (
                await session.execute(
                    select(EmotionLabelRow, Message.text, Identity.channel)
                    .join(Message, Message.id == EmotionLabelRow.message_id)
                    .join(Conversation, Conversation.id == Message.conversation_id)
                    .join(Identity, Identity.id == Conversation.identity_id)
                    .order_by(EmotionLabelRow.id)
                )
            ).all()
        return [
            {
                "id": f"agent-label-{row.id}",
                "text": text,
                "label": EmotionLabel(row.label).care_label,
                "style": "chat",
                "kind": "agent_label",
                "emotion": row.emotion,
                "agent": row.agent,
                "labelled_at": row.labelled_at.isoformat(),
                "channel": channel,
                "message_id": row.message_id,
            }
            for row, text, channel in rows
        ]


def _view(row: EmotionLabelRow) -> LabelView:
    return LabelView(
        row.message_id, EmotionLabel(row.label), row.agent, row.labelled_at.isoformat()
    )
