"""The inbox: every inbound message goes through here, from any channel.

1. Store it first (deduplicated by channel and external message id; a redelivery stops here).
2. While an agent has the conversation, the bot stays silent: the message is only recorded
   (also when an agent closed the conversation since the message was stored).
3. While the customer waits for a person (handoff open, no agent has taken over), triage still
   reads the message, and it updates the open handoff (reasons, emotion, priority). The bot
   answers a confident FAQ question (saying that a colleague still follows up), hands the
   conversation back to the bot when the customer no longer needs a person ("never mind,
   found it"), and otherwise acknowledges: once per handoff, and again when the customer
   writes ``[waiting] ack_repeat_minutes`` later, with the expected wait (or when the team is
   back, outside business hours). It never repeats the handoff text.
4. A greeting (``/start``) or files without text get their standing answer, without triage.
5. Otherwise triage decides, and the decision, its reply (into the outbox) and any handoff are
   stored in one transaction. If triage fails, the customer still gets a fallback reply and
   the conversation goes to a human.

Several workers may share one database: whatever handles a message marks it handled with a
conditional update in the transaction that queues the answer, so of two workers handling one
message, one answers and the other's attempt is a no-op (:class:`AlreadyHandled`, logged and
counted in :attr:`Inbox.handled_elsewhere`). At start, and then every :data:`RECOVERY_GRACE`
(a periodic worker of the runtime), :meth:`Inbox.recover` takes the messages stored more than
:data:`RECOVERY_GRACE` ago and still unhandled: a younger one may be in a live worker's hands
right now, and a later pass takes it if it is not.

A conversation's messages are decided one at a time and in the order they were stored, also
across workers: the deciding holds the conversation's lock
(:class:`carebot.store.conversation_lock.ConversationLocks`, an advisory lock on PostgreSQL),
and whoever holds it first decides every message of the conversation stored up to its own and
not handled yet, oldest first; the worker that stored an earlier one then finds it handled.
The order is the order in which the messages' transactions committed: one a peer is storing
right now is not seen yet.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from carebot.clock import Clock
from carebot.config import MessageSettings, Settings
from carebot.events import Event, EventHub
from carebot.hours import BusinessHours, describe_wait
from carebot.models import (
    ConversationState,
    Decision,
    DecisionKind,
    InboundKind,
    InboundMessage,
    Reason,
    WaitingAction,
)
from carebot.nlu.batching import MatchQueue
from carebot.nlu.language import LanguageDetector
from carebot.public.handling import PublicHandling, matching_text
from carebot.store.conversation_lock import ConversationBusy, ConversationLocks
from carebot.store.conversations import (
    AlreadyHandled,
    ConversationStore,
    Embedding,
    LastTurn,
    Received,
)
from carebot.store.outbox import Queued
from carebot.store.response_times import ResponseTimes
from carebot.store.surveys import Question, Reply
from carebot.store.waiting import WaitingReply, WaitingStore
from carebot.survey.questions import NO, REPEATED, YES, Surveys
from carebot.tasks import Background
from carebot.triage import Triage, TriageContext

log = logging.getLogger(__name__)


class Status(StrEnum):
    DUPLICATE = "duplicate"  # seen before: nothing done
    RECORDED = "recorded"  # a human owns the conversation: stored for the agent, bot silent
    DECIDED = "decided"  # triage decided; the reply (if any) is in the outbox
    NOTICED = "noticed"  # a greeting or files without text: answered without triage
    SURVEYED = "surveyed"  # the answer to a survey question (yes, or a rating): not triaged
    WAITING = "waiting"  # the customer waits for a person: see Outcome.waiting


@dataclass(frozen=True, slots=True)
class Outcome:
    status: Status
    received: Received
    decision: Decision | None = None
    outbox_id: int | None = None
    waiting: WaitingAction | None = None  # what the bot did for a waiting customer


# How old an unhandled message must be before recovery takes it: a worker decides a message
# within a few seconds of storing it (triage, then one transaction), so one still unhandled
# after this was left by a worker that stopped. It also absorbs clock skew between machines.
RECOVERY_GRACE = timedelta(seconds=30)
# How long a channel's caller (a platform's webhook call, a web chat frame) waits for the
# deciding of a message once it is stored; past that it is answered and the deciding goes on in
# the background (well under the platforms' webhook timeouts, so a busy service is not sent
# every message again, which would only make it busier).
ANSWER_WITHIN = 5.0
CACHED = timedelta(minutes=1)  # the typical wait is worked out again at most this often
SLOW_STORE = 1.0  # seconds: storing a message slower than this is logged (falling behind)


class Acknowledgement:
    """What a customer waiting for a person is told: a colleague has the conversation, and
    the typical wait (the median working time to a first agent reply, see
    :mod:`carebot.store.response_times`), or, outside business hours, when the team is back."""

    def __init__(self, *, times: ResponseTimes, settings: Settings) -> None:
        self._times = times
        self._hours = BusinessHours(settings.business_hours)
        self._messages = settings.messages
        self._waiting = settings.waiting
        self._estimate: tuple[datetime, timedelta | None] | None = None  # (when, typical wait)

    @property
    def every(self) -> timedelta:
        return timedelta(minutes=self._waiting.ack_repeat_minutes)

    async def text(self, now: datetime, language: str | None = None) -> str:
        """The acknowledgement, in ``language`` (None: the default)."""
        said = self._messages.in_language(language)
        if not self._hours.is_open(now):
            next_open = self._hours.describe_next_open(now, said)
            return said.waiting_ack_closed.format(next_open=next_open)
        wait = await self._typical_wait(now)
        if wait is None:
            return said.waiting_ack_unknown
        return said.waiting_ack.format(wait=describe_wait(wait, said))

    async def _typical_wait(self, now: datetime) -> timedelta | None:
        if self._estimate is None or not timedelta() <= now - self._estimate[0] < CACHED:
            cfg = self._waiting
            wait = await self._times.typical_wait(
                self._hours,
                days=cfg.estimate_days,
                handoffs=cfg.estimate_handoffs,
                min_samples=cfg.estimate_min_samples,
            )
            self._estimate = (now, wait)
        return self._estimate[1]


class Inbox:
    def __init__(
        self,
        *,
        conversations: ConversationStore,
        triage: Triage,
        matches: MatchQueue,
        messages: MessageSettings,
        clock: Clock,
        waiting: WaitingStore,
        acknowledgement: Acknowledgement,
        surveys: Surveys,
        on_outbox: Callable[[Queued], Awaitable[None]] | None = None,
        events: EventHub | None = None,
        locks: ConversationLocks,
        recovery_grace: timedelta = RECOVERY_GRACE,
        public: PublicHandling | None = None,
        answer_within: float = ANSWER_WITHIN,
        languages: LanguageDetector | None = None,
    ) -> None:
        self._conversations = conversations
        self._languages = languages  # each message's language, detected before it is stored
        self._grace = recovery_grace
        self._answer_within = answer_within
        self._background = Background()  # deciding that took longer than answer_within
        # Messages something else handled first (another worker, this one deciding them as an
        # earlier message of their conversation, or an earlier delivery), found by this one.
        self.handled_elsewhere = 0
        self._triage = triage
        self._messages = messages
        self._waiting = waiting
        self._ack = acknowledgement
        self._surveys = surveys
        self._clock = clock
        self._on_outbox = on_outbox
        self._events = events or EventHub()
        self._matches = matches  # in front of triage's matcher: messages share model calls
        # One decider per conversation at a time: in this process, and (PostgreSQL) across
        # the workers on the database.
        self._locks = locks
        self._public = public  # None: public messages are recorded for agents, not decided

    async def receive(self, inbound: InboundMessage) -> Outcome:
        """Store the message, then decide it (and send what it queues)."""
        inbound = self._placed(inbound)
        received = await self._store(inbound)
        if received.duplicate and received.handled:
            return self._ignored(received, inbound)
        self._stored(received, inbound)
        return await self._handle(received, inbound)

    async def take(self, inbound: InboundMessage) -> Outcome | None:
        """For a channel that answers its platform once a message is taken: store it (raises
        when it could not be: the platform delivers it again), then decide it, waiting at most
        ``answer_within`` seconds. Past that, None: the deciding goes on in the background
        (:meth:`drain` waits for it at stop; the message is stored, so if this worker dies
        meanwhile, recovery decides it)."""
        inbound = self._placed(inbound)
        received = await self._store(inbound)
        if received.duplicate and received.handled:
            return self._ignored(received, inbound)
        self._stored(received, inbound)
        done, outcome = await self._background.within(
            self._handle(received, inbound),
            self._answer_within,
            finished=self._finished_in_background,
        )
        if not done:
            log.info(
                "Message %s is slow to decide (over %.0f s); the channel is answered and the "
                "deciding goes on",
                received.message_id,
                self._answer_within,
            )
        return outcome

    async def _store(self, inbound: InboundMessage) -> Received:
        started = time.perf_counter()
        received = await self._conversations.receive(inbound)
        took = time.perf_counter() - started
        if took > SLOW_STORE:
            log.info(
                "Storing message %s took %.1f s (the database or this worker is busy: agents "
                "see it that much later)",
                received.message_id,
                took,
            )
        return received

    def _placed(self, inbound: InboundMessage) -> InboundMessage:
        """``inbound`` with the language detected in it (None: not placed)."""
        if self._languages is None or not self._languages.active or inbound.language:
            return inbound
        return replace(inbound, language=self._languages.detect(inbound.text))

    async def _language(self, received: Received, inbound: InboundMessage) -> str | None:
        """The language the bot speaks to this customer in: this message's, else that of
        their latest message that could be placed (one indexed read, only for a message too
        short or unclear to place), else the first their platform names that is one of
        ``detect`` (``language_hints``), else None (the default)."""
        if inbound.language or self._languages is None or not self._languages.active:
            return inbound.language
        placed = await self._conversations.language(received.conversation_id)
        return placed or self._languages.hinted(inbound.language_hints)

    @staticmethod
    def _finished_in_background(task: asyncio.Task[Outcome]) -> None:
        if task.cancelled() or task.exception() is None:
            return
        failure = task.exception()
        if isinstance(failure, ConversationBusy):  # foreseen: a stopped worker holds it
            log.warning("%s (deciding in the background)", failure)
            return
        log.error(
            "Could not decide a message in the background; recovery takes it again",
            exc_info=failure,
        )

    async def drain(self, timeout: float = RECOVERY_GRACE.total_seconds()) -> None:
        """Wait for the deciding still going on in the background (at stop); what is not
        decided by then stays stored for recovery."""
        await self._background.drain(timeout)

    def _ignored(self, received: Received, inbound: InboundMessage) -> Outcome:
        log.info(
            "Ignoring redelivered message %s on %s",
            inbound.external_message_id,
            inbound.channel,
        )
        # Told again all the same: the worker that stored and decided it may have died before
        # telling anyone (chaos run twenty-four: killed in the instant it handled a web chat
        # message, whose resend a second worker ignored; a third worker's live view never
        # showed it). A view told twice just looks again.
        self._events.publish(Event("customer_message", received.conversation_id))
        return Outcome(Status.DUPLICATE, received)

    def _stored(self, received: Received, inbound: InboundMessage) -> None:
        if received.duplicate:
            # Stored before, but never handled (the first attempt failed after storing it):
            # the resend gets the answer the first attempt could not give.
            log.info(
                "Handling redelivered message %s, which was stored but not handled",
                inbound.external_message_id,
            )
        # Told again for a redelivery: the worker that stored it first may have died before
        # telling anyone (agents' live views would not show it until the conversation's next
        # event; seen in the chaos bench, 5 s late). A view told twice just looks again.
        self._events.publish(Event("customer_message", received.conversation_id))

    async def recover(self) -> int:
        """Handle the messages stored more than :data:`RECOVERY_GRACE` ago but never decided
        on (their worker stopped midway). One another worker handles meanwhile is left to it.
        Returns how many this worker handled."""
        pending = await self._conversations.unhandled(stored_before=self._clock() - self._grace)
        handled = busy = 0
        for received, inbound in pending:
            try:
                outcome = await self._handle(received, inbound, recovered=True)
            except ConversationBusy:
                busy += 1  # its holder decides it, or the next pass does
                continue
            handled += outcome.status is not Status.DUPLICATE
        if pending:
            log.info(
                "Recovered %d message(s) left undecided by a stopped worker (%d handled by "
                "another worker meanwhile, %d in conversations another worker holds: left "
                "for the next pass)",
                handled,
                len(pending) - handled - busy,
                busy,
            )
        return handled

    async def _handle(
        self, received: Received, inbound: InboundMessage, *, recovered: bool = False
    ) -> Outcome:
        """Decide a message holding its conversation's lock, after the conversation's earlier
        messages nobody handled yet (oldest first): a peer that stored one of them first may
        not have reached the lock yet, and then finds it handled."""
        async with self._locks.hold(received.conversation_id):
            if received.opened and not received.duplicate:
                pending = [(received, inbound)]  # its conversation holds nothing before it
            else:
                in_hand = await self._conversations.unhandled_in_hand(received, inbound)
                pending = (
                    in_hand
                    if in_hand is not None
                    else await self._conversations.unhandled_in(  # earlier ones wait too
                        received.conversation_id, up_to=received.message_id
                    )
                )
            decided = False  # an earlier message decided here may change the state read
            for earlier, message in pending:
                if earlier.message_id != received.message_id:
                    await self._handle_earlier(await self._current(earlier, decided), message)
                    decided = True
            now = [r for r, _ in pending if r.message_id == received.message_id]
            if not now:
                # Handled meanwhile: by a peer (as an earlier message of its own, or while
                # recovery listed it), or a redelivery's first delivery, which is not counted.
                self.handled_elsewhere += recovered or not received.duplicate
                return Outcome(Status.DUPLICATE, received)
            # As read under the lock (the state may have changed since the message was stored),
            # with the redelivery mark of this delivery.
            current = await self._current(replace(now[0], duplicate=received.duplicate), decided)
            return await self._handle_locked(current, inbound)

    async def _current(self, received: Received, stale: bool) -> Received:
        """``received`` with its conversation's state read again if it may be ``stale``."""
        if not stale:
            return received
        conversation = await self._conversations.conversation(received.conversation_id)
        return replace(received, state=ConversationState(conversation.state), last_turn=None)

    async def _handle_earlier(self, received: Received, inbound: InboundMessage) -> None:
        """An earlier message of the conversation, stored (maybe by a peer) and not handled:
        decided first, so that the conversation's answers follow its messages. One that fails
        is logged and left to recovery; it does not hold the later ones back."""
        log.info(
            "Deciding message %s of conversation %s first: it was stored earlier and is not "
            "handled yet",
            received.message_id,
            received.conversation_id,
        )
        try:
            await self._handle_locked(received, inbound)
        except Exception:
            log.exception(
                "Could not handle message %s before a later one of its conversation; recovery "
                "takes it again",
                received.message_id,
            )

    async def _handle_locked(self, received: Received, inbound: InboundMessage) -> Outcome:
        try:
            return await self._handle_in_order(received, inbound)
        except AlreadyHandled:
            self.handled_elsewhere += 1
            log.info(
                "Message %s was handled by another worker meanwhile; its answer stands",
                received.message_id,
            )
            return Outcome(Status.DUPLICATE, received)

    async def _handle_in_order(self, received: Received, inbound: InboundMessage) -> Outcome:
        """``received`` as read holding the conversation's lock: its state is current (an
        earlier message decided first may have changed it: see :meth:`_handle_earlier`)."""
        state = received.state
        if inbound.public is not None:
            return await self._public_message(received, inbound, state)
        if state is ConversationState.WAITING_FOR_AGENT:
            return await self._while_waiting(received, inbound)
        if state.human_owned or state is ConversationState.CLOSED:
            # An agent has it, or an agent closed it since the message was stored.
            await self._conversations.mark_handled(received.message_id)
            log.debug(
                "Conversation %s is %s: recorded %r for the agent",
                received.conversation_id,
                state.value,
                inbound.text,
            )
            return Outcome(Status.RECORDED, received)
        language = await self._language(received, inbound)
        survey_reply = await self._survey_reply(received, inbound)
        if survey_reply is not None:
            return await self._answer_survey(received, survey_reply, language)
        notice = self._notice(inbound, language)
        if notice is not None:
            queued = await self._conversations.record_notice(received, notice)
            if queued is not None and self._on_outbox is not None:
                await self._on_outbox(queued)
            return Outcome(Status.NOTICED, received)
        timings: dict[str, float] = {}
        started = time.perf_counter()
        context = await self._context(received, language)
        decision, embedding = await self._decide(received, inbound, timings, context)
        timings["triage_ms"] = (time.perf_counter() - started) * 1000
        ask = self._surveys.helpful_question(decision, language)
        return await self._record(received, decision, timings, ask=ask, embedding=embedding)

    async def _public_message(
        self, received: Received, inbound: InboundMessage, state: ConversationState
    ) -> Outcome:
        """A comment or mention: while a person has (or is about to take) the thread, or
        without public handling, recorded for them; otherwise classified, planned and recorded
        with what it queues (:mod:`carebot.public.handling`). Nothing is ever said in public
        to acknowledge a waiting customer."""
        if self._public is None or state.human_owned or state is ConversationState.CLOSED:
            await self._conversations.mark_handled(received.message_id)
            if self._public is not None:
                await self._classify_for_agents(received, inbound)
            self._events.publish(Event("handoff", received.conversation_id))
            return Outcome(Status.RECORDED, received)
        timings: dict[str, float] = {}
        started = time.perf_counter()
        words = matching_text(inbound.text)
        context = await self._context(received, await self._language(received, inbound))
        decision, embedding = await self._decide(
            received, replace(inbound, text=words), timings, context
        )
        timings["triage_ms"] = (time.perf_counter() - started) * 1000
        posted = None  # the classifier reads the message as posted, @handles and all
        if words != inbound.text:
            posted = (await self._matches.match(inbound.text)).match.vector
        handled = await self._public.handle(received, inbound, decision, timings, embedding, posted)
        kind = "handoff" if handled.plan.hands_off else "decision"
        self._events.publish(Event(kind, received.conversation_id))
        for queued in handled.queued:
            if self._on_outbox is not None:
                await self._on_outbox(queued)
        outbox_id = handled.queued[0].reply.outbox_id if handled.queued else None
        return Outcome(Status.DECIDED, received, handled.plan.decision, outbox_id)

    async def _classify_for_agents(self, received: Received, inbound: InboundMessage) -> None:
        """What a recorded public message is, shown to the agent; it is stored whatever
        becomes of this (a failure is logged: the message itself is safe)."""
        try:
            batched = await self._matches.match(inbound.text)
            await self._public.classify_only(received, inbound, batched.match.vector)  # type: ignore[union-attr]
        except Exception:
            log.exception("Could not classify public message %s for agents", received.message_id)

    async def _record(
        self,
        received: Received,
        decision: Decision,
        timings: dict[str, float],
        *,
        ask: Question | None = None,
        answers: Reply | None = None,
        embedding: Embedding | None = None,
    ) -> Outcome:
        queued = await self._conversations.record_decision(
            received, decision, timings, ask=ask, answers=answers, embedding=embedding
        )
        kind = "handoff" if decision.hands_off else "decision"
        self._events.publish(Event(kind, received.conversation_id))  # before its delivery
        if queued is not None and self._on_outbox is not None:
            await self._on_outbox(queued)
        outbox_id = queued.reply.outbox_id if queued else None
        return Outcome(Status.DECIDED, received, decision, outbox_id)

    async def _survey_reply(self, received: Received, inbound: InboundMessage) -> Reply | None:
        if inbound.kind is not InboundKind.TEXT or inbound.media_only:
            return None
        return await self._surveys.reply(received, inbound.text)

    async def _answer_survey(
        self, received: Received, reply: Reply, language: str | None
    ) -> Outcome:
        """A reply to "did that answer your question?" or to the rating request."""
        messages = self._messages.in_language(language)
        if reply.answer == REPEATED:
            await self._conversations.mark_handled(received.message_id)
            return Outcome(Status.SURVEYED, received)
        if reply.answer == NO:  # a person takes over, as for any handoff
            decision = self._surveys.not_helpful(reply, self._clock(), language)
            return await self._record(received, decision, {}, answers=reply)
        if reply.answer == YES:
            text, then = messages.helpful_yes, self._surveys.rating_question(language)
        else:
            text, then = messages.rating_thanks, None
        sent = await self._surveys.store.record(received, reply, text=text, then=then)
        self._events.publish(Event("decision", received.conversation_id))
        for queued in sent:
            if self._on_outbox is not None:
                await self._on_outbox(queued)
        outbox_id = sent[0].reply.outbox_id if sent else None
        return Outcome(Status.SURVEYED, received, None, outbox_id)

    async def _while_waiting(self, received: Received, inbound: InboundMessage) -> Outcome:
        """A message from a customer waiting for a person (see the module's docstring)."""
        timings: dict[str, float] = {}
        decision, embedding = None, None
        language = await self._language(received, inbound)
        if self._notice(inbound, language) is None:  # files without text, a greeting: not triaged
            started = time.perf_counter()
            # the bot's last word was the handoff
            fresh = TriageContext(now=self._clock(), language=language)
            decision, embedding = await self._decide(received, inbound, timings, fresh)
            timings["triage_ms"] = (time.perf_counter() - started) * 1000
        reply = await self._waiting_reply(inbound, decision, language)
        waited = await self._waiting.record(received, decision, timings, reply, embedding=embedding)
        self._events.publish(Event("handoff", received.conversation_id))  # it may have changed
        if waited.queued is not None and self._on_outbox is not None:
            await self._on_outbox(waited.queued)
        if waited.action is None:
            log.debug("Conversation %s was taken over meanwhile", received.conversation_id)
            return Outcome(Status.RECORDED, received, decision)
        outbox_id = waited.queued.reply.outbox_id if waited.queued else None
        return Outcome(Status.WAITING, received, decision, outbox_id, waited.action)

    async def _waiting_reply(
        self, inbound: InboundMessage, decision: Decision | None, language: str | None
    ) -> WaitingReply:
        said = self._messages.in_language(language)
        if decision is not None and self._triage.withdraws(inbound.text, decision):
            return WaitingReply(withdraw=said.withdrawn)
        if decision is not None and self._triage.answers_while_waiting(decision):
            return WaitingReply(answer=f"{decision.reply}\n\n{said.waiting_answer_suffix}")
        ack = await self._ack.text(self._clock(), language)
        return WaitingReply(ack=ack, ack_every=self._ack.every)

    def _notice(self, inbound: InboundMessage, language: str | None) -> str | None:
        """The answer to a message triage does not read: a greeting, or files without text."""
        said = self._messages.in_language(language)
        if inbound.kind is InboundKind.START:
            return said.welcome
        if inbound.media_only:
            return said.media_only
        return None

    async def _context(self, received: Received, language: str | None) -> TriageContext:
        """The conversation so far, from the bot's last decision, for a customer writing in
        ``language``."""
        if received.opened:  # the conversation's first message: the bot said nothing yet
            last = LastTurn(None, ())
        elif received.last_turn is not None:  # read with the message, under the lock
            last = received.last_turn
        else:
            last = await self._conversations.last_turn(received.conversation_id)
        return TriageContext(
            now=self._clock(), last_kind=last.kind, offered=last.offered, language=language
        )

    async def _decide(
        self,
        received: Received,
        inbound: InboundMessage,
        timings: dict[str, float],
        context: TriageContext,
    ) -> tuple[Decision, Embedding | None]:
        """Match (micro-batched with messages arriving at the same time), then apply the rules.

        ``timings`` gets the wait for the model, the model's time and the batch size.
        ``context``: the conversation so far. Returns the decision and the message's
        embedding, which is kept with the decision (insight groups the messages the bot did not
        answer by it).
        """
        try:
            batched = await self._matches.match(inbound.text)
            timings.update(wait_ms=batched.wait_ms, model_ms=batched.model_ms, batch=batched.batch)
            decision = self._triage.decide_matched(inbound.text, batched.match, context)
        except Exception:
            log.exception(
                "Triage failed for message %s; handing over to a human", received.message_id
            )
            return self._fallback(context.language), None
        vector = batched.match.vector
        model = self._triage.matcher.encoder.model_id
        return decision, Embedding(vector, model) if vector is not None else None

    def _fallback(self, language: str | None) -> Decision:
        """A customer never gets silence: when triage fails, a person takes over."""
        return Decision(
            kind=DecisionKind.HANDOFF,
            reasons=(Reason.BOT_ERROR,),
            intent=None,
            score=0.0,
            margin=0.0,
            emotion=0.0,
            reply=self._messages.in_language(language).fallback,
            language=language,
        )
