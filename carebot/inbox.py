"""The inbox: every inbound message goes through here, from any channel.

1. Store it first (deduplicated by channel and external message id; a redelivery stops here).
2. While a human owns the conversation, the bot stays silent: the message is only recorded
   (also when an agent closed the conversation since the message was stored).
3. A greeting (``/start``) or files without text get their standing answer, without triage.
4. Otherwise triage decides, and the decision, its reply (into the outbox) and any handoff are
   stored in one transaction. If triage fails, the customer still gets a fallback reply and
   the conversation goes to a human.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum

from carebot.clock import Clock
from carebot.config import MessageSettings
from carebot.events import Event, EventHub
from carebot.models import (
    ConversationState,
    Decision,
    DecisionKind,
    InboundKind,
    InboundMessage,
    Reason,
)
from carebot.nlu.batching import MatchQueue
from carebot.store.conversations import ConversationStore, Received
from carebot.store.outbox import Queued
from carebot.triage import Triage, TriageContext

log = logging.getLogger(__name__)


class Status(StrEnum):
    DUPLICATE = "duplicate"  # seen before: nothing done
    RECORDED = "recorded"  # a human owns the conversation: stored for the agent, bot silent
    DECIDED = "decided"  # triage decided; the reply (if any) is in the outbox
    NOTICED = "noticed"  # a greeting or files without text: answered without triage


@dataclass(frozen=True, slots=True)
class Outcome:
    status: Status
    received: Received
    decision: Decision | None = None
    outbox_id: int | None = None


class Inbox:
    def __init__(
        self,
        *,
        conversations: ConversationStore,
        triage: Triage,
        matches: MatchQueue,
        messages: MessageSettings,
        clock: Clock,
        on_outbox: Callable[[Queued], Awaitable[None]] | None = None,
        events: EventHub | None = None,
    ) -> None:
        self._conversations = conversations
        self._triage = triage
        self._messages = messages
        self._clock = clock
        self._on_outbox = on_outbox
        self._events = events or EventHub()
        self._matches = matches  # in front of triage's matcher: messages share model calls
        self._locks: weakref.WeakValueDictionary[int, asyncio.Lock] = weakref.WeakValueDictionary()

    async def receive(self, inbound: InboundMessage) -> Outcome:
        received = await self._conversations.receive(inbound)
        if received.duplicate and received.handled:
            log.info(
                "Ignoring redelivered message %s on %s",
                inbound.external_message_id,
                inbound.channel,
            )
            return Outcome(Status.DUPLICATE, received)
        if received.duplicate:
            # Stored before, but never handled (the first attempt failed after storing it):
            # the resend gets the answer the first attempt could not give.
            log.info(
                "Handling redelivered message %s, which was stored but not handled",
                inbound.external_message_id,
            )
        else:
            self._events.publish(Event("customer_message", received.conversation_id))
        return await self._handle(received, inbound)

    async def recover(self) -> int:
        """Handle messages stored before a stop but never decided on. Returns how many."""
        pending = await self._conversations.unhandled()
        for received, inbound in pending:
            await self._handle(received, inbound)
        if pending:
            log.info("Recovered %d message(s) left undecided by the last run", len(pending))
        return len(pending)

    async def _handle(self, received: Received, inbound: InboundMessage) -> Outcome:
        lock = self._locks.setdefault(received.conversation_id, asyncio.Lock())
        async with lock:  # one conversation's messages are decided in order
            if received.duplicate and await self._conversations.is_handled(received.message_id):
                return Outcome(Status.DUPLICATE, received)  # the first delivery finished it
            conversation = await self._conversations.conversation(received.conversation_id)
            state = ConversationState(conversation.state)
            if state.human_owned or state is ConversationState.CLOSED:
                # A human has it, or an agent closed it since the message was stored.
                await self._conversations.mark_handled(received.message_id)
                log.debug(
                    "Conversation %s is %s: recorded %r for the agent",
                    received.conversation_id,
                    conversation.state,
                    inbound.text,
                )
                return Outcome(Status.RECORDED, received)
            notice = self._notice(inbound)
            if notice is not None:
                queued = await self._conversations.record_notice(received, notice)
                if queued is not None and self._on_outbox is not None:
                    await self._on_outbox(queued)
                return Outcome(Status.NOTICED, received)
            timings: dict[str, float] = {}
            started = time.perf_counter()
            decision = await self._decide(received, inbound, timings)
            timings["triage_ms"] = (time.perf_counter() - started) * 1000
            queued = await self._conversations.record_decision(received, decision, timings)
            kind = "handoff" if decision.hands_off else "decision"
            self._events.publish(Event(kind, received.conversation_id))  # before its delivery
            if queued is not None and self._on_outbox is not None:
                await self._on_outbox(queued)
        outbox_id = queued.reply.outbox_id if queued else None
        return Outcome(Status.DECIDED, received, decision, outbox_id)

    def _notice(self, inbound: InboundMessage) -> str | None:
        """The answer to a message triage does not read: a greeting, or files without text."""
        if inbound.kind is InboundKind.START:
            return self._messages.welcome
        if inbound.media_only:
            return self._messages.media_only
        return None

    async def _decide(
        self, received: Received, inbound: InboundMessage, timings: dict[str, float]
    ) -> Decision:
        """Match (micro-batched with messages arriving at the same time), then apply the rules.

        ``timings`` gets the wait for the model, the model's time and the batch size.
        """
        last = await self._conversations.last_turn(received.conversation_id)
        context = TriageContext(now=self._clock(), last_kind=last.kind, offered=last.offered)
        try:
            batched = await self._matches.match(inbound.text)
            timings.update(wait_ms=batched.wait_ms, model_ms=batched.model_ms, batch=batched.batch)
            return self._triage.decide_matched(inbound.text, batched.match, context)
        except Exception:
            log.exception(
                "Triage failed for message %s; handing over to a human", received.message_id
            )
            return Decision(
                kind=DecisionKind.HANDOFF,
                reasons=(Reason.BOT_ERROR,),
                intent=None,
                score=0.0,
                margin=0.0,
                emotion=0.0,
                reply=self._messages.fallback,
            )
