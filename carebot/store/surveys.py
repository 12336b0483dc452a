"""Surveys in the store: the questions put to customers and their replies (table ``surveys``).

Two questions: "did that answer your question?" after a bot answer (kind ``helpful``, asked
with the answer itself, see :meth:`carebot.store.conversations.ConversationStore.record_decision`)
and a 1-5 rating once a conversation is resolved (kind ``rating``, at most one per
conversation). A customer's message is read as a reply only when it is their next message on
that channel identity after the question, within ``reply_hours`` of it
(:meth:`SurveyStore.pending`); the reply may come in a new conversation when the asked one
ended meanwhile, and it is stored on the question it answers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from carebot.clock import Clock
from carebot.models import Choice
from carebot.store.database import Database
from carebot.store.outbox import Outgoing, Queued, add_reply, last_customer_message
from carebot.store.tables import Conversation, DecisionRow, Handoff, Identity, Message, Survey
from carebot.store.teamwork import placed_language

if TYPE_CHECKING:
    from carebot.store.conversations import Received

HELPFUL = "helpful"
RATING = "rating"


@dataclass(frozen=True, slots=True)
class Question:
    """What to ask: the text, its buttons, and which survey it is."""

    kind: str  # helpful / rating
    text: str
    choices: tuple[Choice, ...]


@dataclass(frozen=True, slots=True)
class Pending:
    """A question the customer's message may be answering."""

    survey_id: int
    kind: str
    conversation_id: int
    asked_at: datetime
    intent: str | None = None  # helpful: the intent of the answer asked about
    answered: bool = False  # answered already: the message can only repeat a button


@dataclass(frozen=True, slots=True)
class Reply:
    """The customer's answer to a pending question (``yes``/``no`` or ``1``..``5``)."""

    pending: Pending
    answer: str
    comment: str | None = None


async def ask(
    session: AsyncSession,
    *,
    conversation: Conversation,
    identity: Identity,
    question: Question,
    now: datetime,
    lease: bool,
    resolver: str | None = None,
) -> Queued:
    """Queue ``question`` as a message of its own and record that it was asked, inside the
    caller's transaction."""
    queued = await add_reply(
        session,
        conversation=conversation,
        identity=identity,
        outgoing=Outgoing(question.text, choices=question.choices),
        now=now,
        lease=lease,
    )
    session.add(asked(conversation, question.kind, queued, now, resolver=resolver))
    return queued


def asked(
    conversation: Conversation,
    kind: str,
    queued: Queued,
    now: datetime,
    *,
    decision_id: int | None = None,
    resolver: str | None = None,
) -> Survey:
    """The row recording that ``queued`` asked a question of ``kind``."""
    return Survey(
        conversation_id=conversation.id,
        identity_id=conversation.identity_id,
        kind=kind,
        decision_id=decision_id,
        resolver=resolver,
        message_id=queued.message_id,
        asked_at=now,
    )


async def has_rating(session: AsyncSession, conversation_id: int) -> bool:
    """Whether the conversation was asked for its rating already (once per conversation)."""
    found = await session.scalar(
        select(Survey.id).where(Survey.conversation_id == conversation_id, Survey.kind == RATING)
    )
    return found is not None


def answered(survey: Survey, reply: Reply, message_id: int, now: datetime) -> None:
    survey.answer = reply.answer
    survey.comment = reply.comment
    survey.answered_at = now
    survey.answer_message_id = message_id


# The latest question asked on a channel identity (read for every message: prepared once).
_LATEST = (
    select(
        Survey.id,
        Survey.kind,
        Survey.conversation_id,
        Survey.asked_at,
        Survey.answer,
        Survey.answer_message_id,
        Survey.message_id,
        DecisionRow.intent,
    )
    .outerjoin(DecisionRow, DecisionRow.id == Survey.decision_id)
    .where(Survey.identity_id == bindparam("identity"))
    .order_by(Survey.id.desc())
    .limit(1)
)

# A customer message of the identity after ``since`` and before ``before`` (one there means the
# question was left behind: the message at hand does not answer it).
_BETWEEN = (
    select(Message.id)
    .join(Conversation, Conversation.id == Message.conversation_id)
    .where(
        Conversation.identity_id == bindparam("identity"),
        Message.author == "customer",
        Message.id > bindparam("since"),
        Message.id < bindparam("before"),
    )
    .limit(1)
)


class SurveyStore:
    def __init__(self, db: Database, *, clock: Clock, reply_hours: float) -> None:
        self._db = db
        self._clock = clock
        self._within = timedelta(hours=reply_hours)

    async def pending(self, received: Received) -> Pending | None:
        """The question ``received`` may answer: the latest one asked on its channel identity,
        asked within ``reply_hours``, with no customer message in between (``answered``: the
        customer's last message answered it, and this one may be a second tap on a button)."""
        if received.new_identity:
            return None  # a customer's first message: nothing was asked yet
        async with self._db.reads() as conn:
            survey = (await conn.execute(_LATEST, {"identity": received.identity_id})).first()
            if survey is None or survey.message_id is None:
                return None
            if self._clock() - survey.asked_at > self._within:
                return None
            since = survey.answer_message_id or survey.message_id
            between = await conn.scalar(
                _BETWEEN,
                {"identity": received.identity_id, "since": since, "before": received.message_id},
            )
            if between is not None:
                return None
            return Pending(
                survey.id,
                survey.kind,
                survey.conversation_id,
                survey.asked_at,
                survey.intent,
                answered=survey.answer is not None,
            )

    async def record(
        self,
        received: Received,
        reply: Reply,
        *,
        text: str | None,
        then: Question | None = None,
        lease: bool = True,
    ) -> list[Queued]:
        """Store the customer's reply, mark their message handled and queue ``text`` (the
        thanks) and ``then`` (the rating request, once per conversation), in one transaction.
        Nothing is queued when a person took the conversation meanwhile."""
        now = self._clock()
        async with self._db.transaction() as session:
            conversation = await session.get_one(
                Conversation, received.conversation_id, with_for_update=True
            )
            survey = await session.get_one(Survey, reply.pending.survey_id, with_for_update=True)
            message = await session.get_one(Message, received.message_id)
            message.handled_at = now
            if survey.answer is not None:
                return []  # answered meanwhile (the same reply delivered twice)
            answered(survey, reply, received.message_id, now)
            if conversation.state != "bot" or not text:
                return []
            identity = await session.get_one(Identity, conversation.identity_id)
            asked_about = await session.get_one(Conversation, survey.conversation_id)
            if then is not None and not await has_rating(session, asked_about.id):
                text = f"{text}\n\n{then.text}"
            else:
                then = None
            queued = await add_reply(
                session,
                conversation=conversation,
                identity=identity,
                outgoing=Outgoing(text, choices=then.choices if then else ()),
                now=now,
                lease=lease,
            )
            if then is not None:
                session.add(asked(asked_about, then.kind, queued, now, resolver="bot"))
            return [queued]


class QuietAnswers:
    """Bot answers followed by quiet: the conversations whose rating request is due after an
    assumed bot resolution (see :mod:`carebot.survey.ratings`)."""

    def __init__(self, db: Database, *, clock: Clock, lease_replies: bool = True) -> None:
        self._db = db
        self._clock = clock
        self._lease = lease_replies

    async def due(self, *, after: datetime, until: datetime) -> list[int]:
        """Conversations with a bot answer in (``after``, ``until``] that is their last one (not
        small talk), with no request from the customer since, never handed over, and not asked
        for a rating yet. Public conversations are never asked: nothing of the kind is posted
        under a customer's comment."""
        handed_over = select(Handoff.id).where(
            Handoff.conversation_id == DecisionRow.conversation_id
        )
        public = select(Conversation.id).where(
            Conversation.id == DecisionRow.conversation_id, Conversation.visibility == "public"
        )
        rated = select(Survey.id).where(
            Survey.conversation_id == DecisionRow.conversation_id, Survey.kind == RATING
        )
        async with self._db.session() as session:
            rows = (
                await session.execute(
                    select(DecisionRow.conversation_id, DecisionRow.inbound_message_id)
                    .where(
                        DecisionRow.kind == "answer",
                        DecisionRow.created_at <= until,
                        DecisionRow.created_at > after,
                        ~handed_over.exists(),
                        ~rated.exists(),
                        ~public.exists(),
                    )
                    .order_by(DecisionRow.id)
                )
            ).all()
            found = []
            for conversation_id in dict.fromkeys(row[0] for row in rows):
                if await _quiet_since_answer(session, conversation_id):
                    found.append(conversation_id)
            return found

    async def request(
        self, conversation_id: int, question: QuestionIn, *, windows: Windows
    ) -> Queued | None:
        """Queue the rating request of a bot-resolved conversation, in the customer's language
        (None: asked already, not asked at all, or the channel's reply window has closed)."""
        now = self._clock()
        async with self._db.transaction() as session:
            conversation = await session.get_one(
                Conversation, conversation_id, with_for_update=True
            )
            if await has_rating(session, conversation_id):
                return None
            identity = await session.get_one(Identity, conversation.identity_id)
            if not windows(identity.channel, await last_customer_message(session, identity.id)):
                return None
            asked = question(await session.scalar(placed_language(conversation_id)))
            if asked is None:
                return None
            return await ask(
                session,
                conversation=conversation,
                identity=identity,
                question=asked,
                now=now,
                lease=self._lease,
                resolver="bot",
            )


# Whether a reply can reach the customer now: (channel, their last message) -> open?
Windows = Callable[[str, datetime | None], bool]
# A question in a customer's language (None: the default); None when it is not asked at all.
QuestionIn = Callable[[str | None], "Question | None"]


async def _quiet_since_answer(session: AsyncSession, conversation_id: int) -> bool:
    """The conversation's last decision is an intent answer (not small talk), and the customer
    wrote nothing since but small talk and survey replies."""
    decisions = (
        await session.execute(
            select(DecisionRow.kind, DecisionRow.details, DecisionRow.inbound_message_id)
            .where(DecisionRow.conversation_id == conversation_id)
            .order_by(DecisionRow.id.desc())
        )
    ).all()
    answer = next((d for d in decisions if not d.details.get("small_talk")), None)
    if answer is None or answer.kind != "answer":
        return False
    later = select(Message.id).where(
        Message.conversation_id == conversation_id,
        Message.author == "customer",
        Message.id > answer.inbound_message_id,
    )
    small_talk = {d.inbound_message_id for d in decisions if d.details.get("small_talk")}
    replies = select(Survey.answer_message_id).where(Survey.conversation_id == conversation_id)
    replied = set((await session.scalars(replies)).all())
    return all(m in small_talk or m in replied for m in (await session.scalars(later)).all())
