"""What agents do with a handed-off conversation: take it over, reply, resolve it, close it.

The Slack desk and the built-in inbox both act through these methods, so the state machine
(bot -> waiting_for_agent -> with_agent -> bot, and any of them -> closed) lives in one place.

The customer is told when the conversation changes hands (:class:`Notices`): an agent joins
(taking it over, or replying or sending the draft without taking it over first), another agent
takes it from them, or an agent hands it back to the bot. The notice is queued in the outbox in
the same transaction as the change, before the agent's reply, so it is delivered first and
retried like every reply. Closing says nothing to the customer.

An agent never takes a conversation from a colleague without saying so: taking it over,
replying or sending the draft while another agent has it raises :class:`OwnedByColleague`
(naming them) unless the caller passes ``from_colleague=True``, once the agent has confirmed.

Resolving also asks the customer for their rating (``rating``, :mod:`carebot.survey`), once
per conversation, after the notice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from carebot.clock import Clock
from carebot.config import MessageSettings, PublicSettings, Settings
from carebot.exceptions import StoreError
from carebot.models import CloseReason, ConversationState, PublicActionKind, Visibility
from carebot.public.posting import PublicPosting, refuse_all
from carebot.reply_window import NO_WINDOWS, ReplyWindows
from carebot.store.database import Database
from carebot.store.open_handoffs import open_handoff
from carebot.store.outbox import Outgoing, Queued, add_reply, last_customer_message
from carebot.store.public_actions import Step, queue_step, target_item
from carebot.store.surveys import QuestionIn, ask, has_rating
from carebot.store.tables import Conversation, DecisionRow, Handoff, Identity
from carebot.store.teamwork import agent_handoff, placed_language
from carebot.teams.directory import TeamDirectory


class OwnedByColleague(StoreError):
    """Another agent has the conversation: taking it from them must be confirmed (the action
    again with ``from_colleague=True``). ``owner`` is the agent who has it."""

    def __init__(self, conversation_id: int, owner: str) -> None:
        super().__init__(
            f"{owner} has conversation {conversation_id}. Take it over from {owner} first "
            "(they are told), or leave it to them."
        )
        self.conversation_id = conversation_id
        self.owner = owner


Sent = list[Queued]  # what an agent's action queued for the customer, in delivery order
AGENT_INITIATED = "agent_initiated"
JOINED, TRANSFERRED, RESOLVED = "agent_joined", "agent_transferred", "resolved"


@dataclass(frozen=True, slots=True)
class Notices:
    """What the customer is told when their conversation changes hands (``[messages]``
    agent_joined, agent_transferred, resolved, in the customer's language); ``{agent}``
    becomes the agent's display name, and an empty text says nothing. ``messages`` None: nothing
    is ever said."""

    messages: MessageSettings | None = None

    @property
    def per_language(self) -> bool:
        """Whether the texts differ by language (the customer's is then looked up)."""
        return self.messages is not None and bool(self.messages.languages)

    def text(self, kind: str, agent: str, language: str | None = None) -> str:
        if self.messages is None:
            return ""
        said = self.messages.in_language(language)
        templates = {
            JOINED: said.agent_joined,
            TRANSFERRED: said.agent_transferred,
            RESOLVED: said.resolved,
        }
        return templates[kind].format(agent=agent)


# A refused move, as the agent who asked for it reads it (carebot.models.ConversationState).
_WHERE = {
    ConversationState.BOT: "with the bot",
    ConversationState.WAITING_FOR_AGENT: "waiting for an agent",
    ConversationState.WITH_AGENT: "with an agent",
    ConversationState.CLOSED: "closed",
}
_MOVED = {
    ConversationState.BOT: "handed back to the bot",
    ConversationState.WAITING_FOR_AGENT: "handed over again",
    ConversationState.WITH_AGENT: "taken over",
    ConversationState.CLOSED: "closed",
}


class HandoffStore:
    def __init__(
        self,
        db: Database,
        *,
        clock: Clock,
        lease_replies: bool = True,
        windows: ReplyWindows = NO_WINDOWS,
        reachable: Callable[[str], None] = lambda _channel: None,
        notices: Notices = Notices(),
        rating: QuestionIn = lambda _language: None,  # after an agent's resolution
        teams: TeamDirectory | None = None,  # the team of a handoff an agent starts
        public: PublicPosting | None = None,  # agents' replies in public conversations
    ) -> None:
        """``reachable(channel)`` raises a StoreError with the reason when no reply can be
        delivered on that channel (:meth:`carebot.outbox.Routes.check`)."""
        self._db = db
        self._clock = clock
        self._lease = lease_replies
        self._windows = windows
        self._reachable = reachable
        self._notices = notices
        self._rating = rating
        self._teams = teams or TeamDirectory(Settings())
        self._public = public or PublicPosting(PublicSettings(), guard=refuse_all)

    async def take_over(
        self, conversation_id: int, agent: str, *, from_colleague: bool = False
    ) -> Sent:
        """``agent`` owns the conversation from now on; the bot stays silent. Returns what was
        queued for the customer (the notice that the agent joined, if any). Raises
        OwnedByColleague when another agent has it, unless ``from_colleague``."""
        async with self._db.transaction() as session:
            _, sent = await self._claim(session, conversation_id, agent, from_colleague)
            return sent

    async def reply(
        self,
        conversation_id: int,
        agent: str,
        text: str,
        *,
        via: str = "inbox",
        from_colleague: bool = False,
        private: bool = False,
    ) -> Sent:
        """Queue an agent's reply to the customer (taking the conversation over if needed:
        then the notice that the agent joined goes first). The reply is the last of the
        returned list. Raises OwnedByColleague like :meth:`take_over`.

        In a public conversation the reply is posted under the customer's latest comment,
        signed and guarded (:class:`carebot.public.posting.PublicPosting`); ``private`` sends
        it as the comment's private reply (a direct message on X) instead. Raises
        :class:`~carebot.public.posting.PublicRefused` with the reason, storing nothing, when
        the guard or the platform's rules refuse it."""
        _not_empty(text)
        async with self._db.transaction() as session:
            conversation, sent = await self._claim(session, conversation_id, agent, from_colleague)
            reply = await self._add_reply(session, conversation, agent, text, via, private)
            return [*sent, reply]

    async def send_draft(
        self,
        conversation_id: int,
        agent: str,
        *,
        text: str | None = None,
        via: str = "inbox",
        from_colleague: bool = False,
    ) -> Sent:
        """Queue the open handoff's draft (or the agent's edit of it, ``text``) as the agent's
        reply: once, however often it is asked (a double click, or two agents at once). Like
        :meth:`reply`, the reply is the last of the returned list."""
        if text is not None:
            _not_empty(text)
        async with self._db.transaction() as session:
            conversation, sent = await self._claim(session, conversation_id, agent, from_colleague)
            handoff = await open_handoff(session, conversation_id)
            if handoff is None or not handoff.draft:
                raise StoreError(f"Conversation {conversation_id} has no draft to send")
            if handoff.draft_sent_at is not None:
                raise StoreError(f"The draft of conversation {conversation_id} was already sent")
            handoff.draft_sent_at = self._clock()
            draft = text or handoff.draft
            private = await _drafted_as_private(session, handoff)
            reply = await self._add_reply(session, conversation, agent, draft, via, private)
            return [*sent, reply]

    async def _add_reply(
        self,
        session: AsyncSession,
        conversation: Conversation,
        agent: str,
        text: str,
        via: str,
        private: bool = False,
    ) -> Queued:
        if conversation.visibility == Visibility.PUBLIC.value:
            return await self._public_reply(session, conversation, agent, text, via, private)
        identity = await session.get_one(Identity, conversation.identity_id)
        self._reachable(identity.channel)  # refused with the reason, before anything is stored
        last = await last_customer_message(session, identity.id)
        window = self._windows.window(identity.channel, last)
        if window is not None:
            window.check(self._clock())  # refused with the reason, before anything is stored
        return await add_reply(
            session,
            conversation=conversation,
            identity=identity,
            outgoing=Outgoing(text, author="agent", agent=agent, via=via),
            now=self._clock(),
            lease=self._lease,
        )

    async def resolve(self, conversation_id: int, agent: str) -> Sent:
        """Hand the conversation back to the bot and close its open handoff. Returns what was
        queued for the customer (the notice that the bot has it again, if any)."""
        now = self._clock()
        async with self._db.transaction() as session:
            conversation = await self._get(session, conversation_id)
            self._move(conversation, ConversationState.BOT)
            conversation.agent = None
            handoff = await open_handoff(session, conversation_id, lock=False)
            if handoff is not None:
                handoff.resolved_by, handoff.resolved_at = agent, now
            sent = await self._notice(session, conversation, RESOLVED, agent)
            if handoff is not None:
                sent += await self._ask_rating(session, conversation)
            return sent

    async def close(self, conversation_id: int, agent: str) -> None:
        """End the conversation now (whatever its state): its open handoff is resolved by
        ``agent``, and the customer's next message starts a new conversation."""
        now = self._clock()
        async with self._db.transaction() as session:
            conversation = await self._get(session, conversation_id)
            self._move(conversation, ConversationState.CLOSED)
            conversation.closed_at = now
            conversation.closed_reason = CloseReason.CLOSED_BY_AGENT.value
            conversation.closed_by = agent
            handoff = await open_handoff(session, conversation_id, lock=False)
            if handoff is not None:
                handoff.resolved_by, handoff.resolved_at = agent, now

    async def open_handoff(self, conversation_id: int) -> Handoff | None:
        async with self._db.session() as session:
            return await open_handoff(session, conversation_id, lock=False)

    async def _claim(
        self, session: AsyncSession, conversation_id: int, agent: str, from_colleague: bool
    ) -> tuple[Conversation, Sent]:
        """``agent`` owns the conversation (if not already), with the notice of it queued;
        taken from a colleague only when ``from_colleague`` (else OwnedByColleague)."""
        now = self._clock()
        conversation = await self._get(session, conversation_id)
        previous = (
            conversation.agent if conversation.state == ConversationState.WITH_AGENT else None
        )
        if previous == agent:
            return conversation, []
        if previous and not from_colleague:
            raise OwnedByColleague(conversation_id, previous)
        self._move(conversation, ConversationState.WITH_AGENT)
        conversation.agent = agent
        handoff = await open_handoff(session, conversation_id, lock=False)
        if handoff is None:
            handoff = await agent_handoff(
                session, conversation_id, agent, reason=AGENT_INITIATED, teams=self._teams, now=now
            )
        handoff.claimed_by, handoff.claimed_at = agent, now
        kind = TRANSFERRED if previous else JOINED
        return conversation, await self._notice(session, conversation, kind, agent)

    async def _notice(
        self, session: AsyncSession, conversation: Conversation, kind: str, agent: str
    ) -> Sent:
        """Queue the customer's notice of ``kind`` (none when its text is empty, or when the
        channel's reply window has closed: the platform would refuse it)."""
        language = None
        if self._notices.per_language:
            language = await session.scalar(placed_language(conversation.id))
        text = self._notices.text(kind, agent, language)
        if not text.strip():
            return []
        identity = await self._reachable_now(session, conversation)
        if identity is None:
            return []
        outgoing = Outgoing(text, author="bot", notice=kind)
        queued = await add_reply(
            session,
            conversation=conversation,
            identity=identity,
            outgoing=outgoing,
            now=self._clock(),
            lease=self._lease,
        )
        return [queued]

    async def _ask_rating(self, session: AsyncSession, conversation: Conversation) -> Sent:
        """The rating request after an agent's resolution, once per conversation."""
        if self._rating(None) is None or await has_rating(session, conversation.id):
            return []
        identity = await self._reachable_now(session, conversation)
        question = self._rating(await session.scalar(placed_language(conversation.id)))
        if identity is None or question is None:
            return []
        queued = await ask(
            session,
            conversation=conversation,
            identity=identity,
            question=question,
            now=self._clock(),
            lease=self._lease,
            resolver="human",
        )
        return [queued]

    async def _public_reply(
        self,
        session: AsyncSession,
        conversation: Conversation,
        agent: str,
        text: str,
        via: str,
        private: bool,
    ) -> Queued:
        """An agent's reply in a public conversation: under the latest comment, or privately."""
        identity = await session.get_one(Identity, conversation.identity_id)
        self._reachable(identity.channel)
        item, message = await target_item(session, conversation.id)
        kind = PublicActionKind.PRIVATE_REPLY if private else PublicActionKind.REPLY
        # a private reply is not public: it is where personal data may be asked for and given
        posted = text.strip() if private else self._public.by_agent(text, agent)
        return await queue_step(
            session,
            conversation=conversation,
            item=item,
            message=message,
            step=Step(kind, posted),
            actor=agent,
            author="agent",
            now=self._clock(),
            lease=self._lease,
            via=via,
        )

    async def _reachable_now(
        self, session: AsyncSession, conversation: Conversation
    ) -> Identity | None:
        """The conversation's identity, or None when its channel's reply window has closed
        (the platform would refuse a message), or when it is public: nothing about a change
        of hands, and no rating request, is ever posted under a customer's comment."""
        if conversation.visibility == Visibility.PUBLIC.value:
            return None
        identity = await session.get_one(Identity, conversation.identity_id)
        last = await last_customer_message(session, identity.id)
        window = self._windows.window(identity.channel, last)
        if window is not None and not window.is_open(self._clock()):
            return None
        return identity

    def _move(self, conversation: Conversation, target: ConversationState) -> None:
        current = ConversationState(conversation.state)
        if current is ConversationState.CLOSED:
            raise StoreError(
                f"Conversation {conversation.id} is closed; the customer's next message starts "
                "a new one"
            )
        if not current.can_become(target):  # said in the agent's words, not the states' names
            raise StoreError(
                f"Conversation {conversation.id} is already {_WHERE[current]}, so it cannot be "
                f"{_MOVED[target]}"
            )
        conversation.state = target.value
        conversation.updated_at = self._clock()

    async def _get(self, session: AsyncSession, conversation_id: int) -> Conversation:
        conversation = await session.get(Conversation, conversation_id, with_for_update=True)
        if conversation is None:
            raise StoreError(f"No conversation with id {conversation_id}")
        return conversation


async def _drafted_as_private(session: AsyncSession, handoff: Handoff) -> bool:
    """Whether the handoff's draft was written as a private reply: in shadow mode, a public
    question carebot would have moved to private messages (its plan, kept with the decision)."""
    if handoff.decision_id is None:
        return False
    details = await session.scalar(
        select(DecisionRow.details).where(DecisionRow.id == handoff.decision_id)
    )
    plan = (details or {}).get("public") or {}
    return any(step.get("kind") == "private_reply" for step in plan.get("shadowed", []))


def _not_empty(text: str) -> None:
    if not text.strip():
        raise StoreError("An agent reply cannot be empty")
