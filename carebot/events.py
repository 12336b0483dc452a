"""Live events inside one process: what changed, for screens that show it as it happens.

The pipeline and the agent desk publish; the agent inbox's live view, the Slack desk and the web
chat subscribe. Events carry ids only (subscribers read what they need from the store), except
``agent_typing``, which names the agent who is typing (it is stored nowhere). A slow subscriber
loses the oldest events of its own queue, never blocks a publisher.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Event:
    kind: str  # customer_message, decision, handoff, agent_action, delivery, undelivered, closed
    conversation_id: int
    agent: str = ""  # kind agent_typing (an agent types a reply): the agent's display name


class EventHub:
    def __init__(self, *, queue_size: int = 100) -> None:
        self._queues: set[asyncio.Queue[Event]] = set()
        self._size = queue_size

    def publish(self, event: Event) -> None:
        for queue in self._queues:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(event)

    @contextlib.asynccontextmanager
    async def subscribe(self, *, size: int | None = None) -> AsyncIterator[asyncio.Queue[Event]]:
        queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=size or self._size)
        self._queues.add(queue)
        try:
            yield queue
        finally:
            self._queues.discard(queue)

    @property
    def subscribers(self) -> int:
        return len(self._queues)
