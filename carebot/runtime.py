"""The runtime: the whole pipeline built from settings, started and stopped as one.

``serve``, ``chat`` and the benchmarks all build it here, so they run the same code.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from carebot.channel import Channel
from carebot.clock import Clock, utcnow
from carebot.config import Settings
from carebot.embedding_cache import EmbeddingCache
from carebot.emotion import EmotionScorer
from carebot.encoder import Encoder
from carebot.inbox import Inbox
from carebot.intents import load_intents
from carebot.matcher import Matcher
from carebot.outbox import OutboxWorker
from carebot.store.conversations import ConversationStore
from carebot.store.database import Database
from carebot.store.handoffs import HandoffStore
from carebot.store.outbox import OutboxStore
from carebot.triage import Triage

log = logging.getLogger(__name__)


def load_encoder(settings: Settings) -> Encoder:
    """The configured sentence-transformers model (imports torch: call only when matching)."""
    from carebot.encoder import SentenceTransformerEncoder

    return SentenceTransformerEncoder(settings.matcher.model, base_dir=settings.base_dir)


def build_triage(settings: Settings, encoder: Encoder) -> Triage:
    intents = load_intents(settings.path(settings.matcher.intents_dir), settings.placeholders)
    cache = EmbeddingCache(settings.path(settings.matcher.cache_dir), encoder.model_id)
    matcher = Matcher(encoder=encoder, intents=intents, cache=cache, top_k=settings.matcher.top_k)
    return Triage(matcher=matcher, emotion=EmotionScorer(settings.emotion), settings=settings)


@dataclass
class Runtime:
    settings: Settings
    db: Database
    triage: Triage
    inbox: Inbox
    conversations: ConversationStore
    handoffs: HandoffStore
    outbox: OutboxWorker
    outbox_store: OutboxStore
    channels: dict[str, Channel] = field(default_factory=dict)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def start(self) -> None:
        """Handle what the last run left undecided, and start delivering the outbox."""
        await self.inbox.recover()
        self._tasks.append(asyncio.create_task(self.outbox.run(), name="outbox"))

    async def stop(self) -> None:
        """Deliver what is due, stop the outbox worker and close the database."""
        self.outbox.stop()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.outbox.deliver_due()
        await self.db.close()


async def build_runtime(
    settings: Settings,
    *,
    encoder: Encoder,
    channels: Mapping[str, Channel] = {},
    clock: Clock = utcnow,
    database_url: str | None = None,
) -> Runtime:
    """Open the database (migrating SQLite automatically) and wire the pipeline together."""
    db = Database(database_url or settings.database_url())
    if db.is_sqlite:
        await db.upgrade()
    else:
        await db.ping()
        await db.check_migrated()
    triage = build_triage(settings, encoder)
    conversations = ConversationStore(db, clock=clock)
    outbox_store = OutboxStore(db, clock=clock)
    channel_map = dict(channels)
    worker = OutboxWorker(store=outbox_store, channels=channel_map, clock=clock)
    inbox = Inbox(
        conversations=conversations,
        triage=triage,
        messages=settings.messages,
        clock=clock,
        on_outbox=worker.wake,
    )
    return Runtime(
        settings=settings,
        db=db,
        triage=triage,
        inbox=inbox,
        conversations=conversations,
        handoffs=HandoffStore(db, clock=clock),
        outbox=worker,
        outbox_store=outbox_store,
        channels=channel_map,
    )
