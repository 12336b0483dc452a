"""Live events: what changed, for screens that show it as it happens.

The pipeline and the agent desk publish; the agent inbox's live view, the Slack desk and the web
chat subscribe. Events carry ids only (subscribers read what they need from the store), except
``agent_typing``, which names the agent who is typing (it is stored nowhere). A subscriber
whose queue is full never blocks a publisher: what it holds is replaced by one ``resync`` event
(look again at everything) before the new event, so falling behind costs it a fresh look, not
a silently missed change.

With several workers on one PostgreSQL database, a relay (:mod:`carebot.cluster.notify`) also
sends every event published here to the other workers, and hands theirs to :meth:`EventHub.
receive`, marked ``remote``. An event is published after the transaction that made the change
has committed, so whoever receives it reads the change. Events are hints: the tables stay the
source of truth, and subscribers look again now and then, and on a ``resync`` event (sent when
the relay may have missed some: after its connection was lost).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

RESYNC = "resync"  # events may have been missed: whoever shows something, look again


@dataclass(frozen=True, slots=True)
class Event:
    # customer_message, decision, handoff, agent_action, delivery, undelivered, closed,
    # agent_typing, webchat_reply, intents, resync
    kind: str
    conversation_id: int
    agent: str = ""  # kind agent_typing (an agent types a reply): the agent's display name
    ref: int = 0  # a row the event is about, when the kind has one (webchat_reply: outbox id)
    remote: bool = False  # published by another worker, relayed here


class EventHub:
    def __init__(self, *, queue_size: int = 100) -> None:
        self._queues: set[asyncio.Queue[Event]] = set()
        self._size = queue_size
        self._relay: Callable[[Event], None] | None = None

    def relay_to(self, relay: Callable[[Event], None] | None) -> None:
        """Also hand every event published here to ``relay`` (which sends it to the other
        workers); None: this process is alone."""
        self._relay = relay

    @property
    def shared(self) -> bool:
        """Whether other workers may publish and subscribe too (events are relayed)."""
        return self._relay is not None

    def publish(self, event: Event) -> None:
        """An event of this process: to its subscribers, and to the other workers."""
        self.receive(event)
        if self._relay is not None:
            self._relay(event)

    def receive(self, event: Event) -> None:
        """An event for this process's subscribers only (a relayed one, or a resync)."""
        for queue in self._queues:
            if queue.full():
                while not queue.empty():
                    queue.get_nowait()
                queue.put_nowait(Event(RESYNC, 0))
            queue.put_nowait(event)

    @contextlib.asynccontextmanager
    async def subscribe(self, *, size: int | None = None) -> AsyncIterator[asyncio.Queue[Event]]:
        # (two at least: a full queue gets a resync and the new event)
        queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=max(2, size or self._size))
        self._queues.add(queue)
        try:
            yield queue
        finally:
            self._queues.discard(queue)

    @property
    def subscribers(self) -> int:
        return len(self._queues)
