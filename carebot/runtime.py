"""The runtime: the whole pipeline built from settings, started and stopped as one.

``serve``, ``chat`` and the benchmarks all build it here, so they run the same code.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from carebot.agents import AgentDesk
from carebot.channel import Channel, Deliver
from carebot.clock import Clock, utcnow
from carebot.closing import ConversationCloser
from carebot.cluster.leader import Duty, Leadership, LeadingChannel, LeadWorker, Part
from carebot.cluster.notify import Notifier
from carebot.config import Settings
from carebot.events import Event, EventHub
from carebot.inbox import ANSWER_WITHIN, RECOVERY_GRACE, Acknowledgement, Inbox
from carebot.lifecycle import Lifecycle, Stage, Worker, Workers
from carebot.models import ChannelEvent, DeliveryStatus, InboundMessage, PublicChange
from carebot.nlu.batching import MatchQueue
from carebot.nlu.embedding_cache import EmbeddingCache
from carebot.nlu.emotion import EmotionScorer
from carebot.nlu.encoder import Encoder
from carebot.nlu.intents import ParsedFiles, load_intents
from carebot.nlu.language import LanguageDetector
from carebot.nlu.matcher import Matcher
from carebot.nlu.onnx_encoder import MANIFEST, OnnxEncoder, available_cores, export_problem
from carebot.nlu.public_posts import post_classifier as trained_classifier
from carebot.nlu.use_encoder import canonical, is_use, use_encoder
from carebot.outbox import OUTBOX_BACKOFF, OutboxWorker, Routes
from carebot.public.delivery import PublicDelivery
from carebot.public.handling import PostClassifier
from carebot.public.posting import Guard
from carebot.public.posting import public_guard as guard_for
from carebot.public.service import public_parts, takes_public_messages
from carebot.reload import IntentReloader
from carebot.reply_window import NO_WINDOWS, ReplyWindows
from carebot.retry import Backoff
from carebot.store import storable
from carebot.store.closing import ClosingStore
from carebot.store.conversation_lock import ConversationLocks
from carebot.store.conversations import ConversationStore
from carebot.store.customers import CustomerStore
from carebot.store.database import KEPT_APART, Database
from carebot.store.emotion_labels import EmotionLabelStore
from carebot.store.handoffs import HandoffStore, Notices
from carebot.store.outbox import OutboxStore
from carebot.store.pool_share import PoolShare
from carebot.store.public_actions import PublicActionStore
from carebot.store.public_items import PublicStore
from carebot.store.queue import AgentQueue
from carebot.store.response_times import ResponseTimes
from carebot.store.surveys import QuietAnswers, SurveyStore
from carebot.store.teamwork import TeamworkStore
from carebot.store.waiting import WaitingStore
from carebot.survey.questions import Surveys
from carebot.survey.ratings import RatingRequests
from carebot.tasks import Periodic
from carebot.teams.directory import TeamDirectory
from carebot.teams.membership import Membership
from carebot.triage import Priority, Triage

log = logging.getLogger(__name__)
EXPORT_NOTICE = "Exporting the model for fast start, once (about 20 s)..."


def onnx_folder(settings: Settings) -> Path:
    """Where the configured model's ONNX export lives ([matcher] onnx_dir)."""
    cfg = settings.matcher
    if cfg.onnx_dir:
        return settings.path(cfg.onnx_dir)
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", cfg.model.strip("/\\")).strip("-.") or "model"
    return settings.path(".carebot/onnx") / slug


def load_encoder(
    settings: Settings, *, export_if_missing: bool = False, say: Callable[[str], None] | None = None
) -> Encoder:
    """The configured encoder. The multilingual one (``model = "use-multilingual"``) runs
    from its package whatever the backend. With ``backend = "onnx"`` (the default) the model's
    ONNX export, without torch; when it is missing or stale, ``export_if_missing`` exports it
    first, in a child process (``say`` tells the user in one line), else the torch model is
    used and ``say`` explains why. Every command that encodes (serve, chat, eval, intents
    check, emotion train) exports when missing, so each is fast from its first run."""
    cfg = settings.matcher
    if is_use(cfg.model):  # numpy from its package: no export, no torch
        return use_encoder(cfg.model)
    threads = cfg.threads or available_cores()
    say = say or (lambda text: print(text, file=sys.stderr, flush=True))
    if cfg.backend == "onnx":
        folder = onnx_folder(settings)
        problem = export_problem(folder, cfg.model, settings.base_dir)
        if problem is None:
            return OnnxEncoder(folder, threads=threads)
        if export_if_missing:
            if (folder / MANIFEST).exists():  # stale or damaged: say why it is made again
                say(f"{problem} Exporting the model again for fast start (about 20 s)...")
            else:
                say(EXPORT_NOTICE)
            from carebot.nlu.model_export import export_in_child

            export_in_child(cfg.model, folder, base_dir=settings.base_dir)
            return OnnxEncoder(folder, threads=threads)
        say(f"{problem} Using the slower torch backend; run 'carebot model export' to fix it.")
    from carebot.nlu.encoder import SentenceTransformerEncoder

    return SentenceTransformerEncoder(cfg.model, base_dir=settings.base_dir, threads=threads)


def embedding_cache(settings: Settings, encoder: Encoder) -> EmbeddingCache:
    return EmbeddingCache(settings.path(settings.matcher.cache_dir), encoder.model_id)


def emotion_scorer(settings: Settings, encoder: Encoder) -> EmotionScorer:
    """The configured emotion signal; its head is checked against the encoder's dimension.
    Without ``[emotion] head_weights``, the packaged head for ``[matcher] model``."""
    cfg = settings.emotion
    model = settings.matcher.model
    dim = encoder.encode(["dimension probe"]).shape[1] if cfg.head else None
    weights = settings.path(cfg.head_weights) if cfg.head_weights else None  # from config's folder
    scorer = EmotionScorer(cfg, head_weights=weights, dim=dim, model=model)
    head = scorer.head
    if head is not None and canonical(head.encoder) != canonical(model):
        log.warning(
            "The emotion head %s was trained on %s embeddings, but [matcher] model is %s: its "
            "signal may be off. Train a head for this model (carebot emotion train-care "
            "--model) or set [emotion] head = false.",
            head.path,
            head.encoder,
            model,
        )
    return scorer


def build_triage(
    settings: Settings,
    encoder: Encoder,
    cache: EmbeddingCache | None = None,
    parsed: ParsedFiles | None = None,
) -> Triage:
    folder = settings.path(settings.matcher.intents_dir)
    language = settings.languages.default
    served = settings.languages.detect
    intents = load_intents(folder, settings.placeholders, parsed, language=language, served=served)
    if cache is None:  # not `or`: an empty cache is falsy
        cache = embedding_cache(settings, encoder)
    matcher = Matcher.configured(settings.matcher, encoder=encoder, intents=intents, cache=cache)
    return Triage(matcher=matcher, emotion=emotion_scorer(settings, encoder), settings=settings)


@dataclass
class Runtime:
    settings: Settings
    db: Database
    triage: Triage
    inbox: Inbox
    matches: MatchQueue  # the model's queue and thread, in front of triage's matcher
    conversations: ConversationStore
    handoffs: HandoffStore
    outbox: OutboxWorker
    outbox_store: OutboxStore
    events: EventHub
    desk: AgentDesk
    queue: AgentQueue
    clock: Clock
    customers: CustomerStore
    closer: ConversationCloser
    ratings: RatingRequests
    labels: EmotionLabelStore  # agents' emotion labels (the desk writes, the inbox reads)
    teamwork: TeamworkStore  # transfers, availability, the audit trail (README, "Teams")
    public_items: PublicStore  # comments' edits and removals (README, "Public comments")
    public_actions: PublicActionStore  # agents' hiding and unhiding, X's call cap
    # The web chat's history reads for tabs saying hello (:mod:`carebot.store.pool_share`).
    history_reads: PoolShare
    windows: ReplyWindows = NO_WINDOWS
    languages: LanguageDetector | None = None  # [languages] detect's (the inbox places with it)
    channels: dict[str, Channel] = field(default_factory=dict)
    reloader: IntentReloader | None = None  # live intent reload ([matcher] reload)
    cache: EmbeddingCache | None = None  # the example embeddings the matcher was built from
    notifier: Notifier | None = None  # PostgreSQL: events to and from the other workers
    # The periodic workers: started after recovery, stopped together once inbound has stopped
    # (each finishing its pass), before the outbox is flushed. A new one is one more entry.
    workers: list[Worker] = field(default_factory=list)
    # What only one worker of the database runs, while it leads (:mod:`carebot.cluster.leader`):
    # the sweeps here, Slack's parts (added by the server) and the channels' polling.
    singletons: list[Duty] = field(default_factory=list)
    leadership: Leadership | None = None  # set by lifecycle()
    _life: Lifecycle | None = None

    def add_channel(self, channel: Channel) -> None:
        """Register a channel before :meth:`start`; its replies are delivered by the outbox."""
        self.channels[channel.name] = channel

    async def deliver(self, event: ChannelEvent) -> None:
        """The callback channels hand what they receive to; raises when it could not be stored
        (the channel then lets the platform deliver it again). Its text is made storable
        first (:mod:`carebot.store.storable`: no NUL, no lone surrogate)."""
        event = storable.event(event)
        if isinstance(event, InboundMessage):
            await self.inbox.take(event)
        elif isinstance(event, DeliveryStatus):
            conversation_id = await self.outbox_store.record_status(
                event.channel, event.external_message_id, event.status, event.at, event.error
            )
            if conversation_id is not None:
                self.events.publish(Event("delivery", conversation_id))
        elif isinstance(event, PublicChange):
            changed = await self.public_items.apply_change(event)
            if changed is not None:
                self.events.publish(Event("customer_message", changed))
        else:
            await self.customers.update_contact(event)

    def lifecycle(self, *, deliver: Deliver | None = None) -> Lifecycle:
        """This runtime's parts in the service's stages (:mod:`carebot.lifecycle`): the
        channels (started with ``deliver``, by default :meth:`deliver`), the recovery of what
        the last run left undecided, the workers, the outbox and the database. The server adds
        the Slack desk's parts before it starts."""
        life = Lifecycle()
        life.add(Stage.DATABASE, "database", stop=self.db.close)
        if self.notifier is not None:
            relay = self.notifier
            life.add(Stage.DATABASE, "events between workers", start=relay.start, stop=relay.stop)
        for channel in self.channels.values():
            start = functools.partial(channel.start, deliver or self.deliver)
            life.add(Stage.CLIENTS, f"channel {channel.name}", start=start, stop=channel.close)
            life.add(Stage.INBOUND, f"channel {channel.name}", stop=channel.stop)
        life.add(Stage.FLUSH, "outbox", stop=self._flush)
        workers = Workers(self.workers)
        life.add(Stage.IN_FLIGHT, "recovery", start=self.inbox.recover)
        life.add(Stage.IN_FLIGHT, "workers", start=workers.start, stop=workers.stop)
        leadership = self.leadership = self._leadership()
        life.add(Stage.IN_FLIGHT, "leadership", start=leadership.start, stop=leadership.stop)
        life.add(Stage.INBOUND, "the leader's receiving", stop=leadership.stop_inbound)
        life.add(Stage.IN_FLIGHT, "background deciding and sends", stop=self._drain)
        return life

    async def _drain(self) -> None:
        """The deciding still going on in the background first: it may queue sends."""
        await self.inbox.drain()
        await self.outbox.drain()

    def _leadership(self) -> Leadership:
        leadership = Leadership.for_database(self.db)
        for duty in self.singletons:
            leadership.add(duty)
        for channel in self.channels.values():
            if isinstance(channel, LeadingChannel):
                part = Part(channel.start_leading, channel.stop_leading)
                leadership.add(Duty(f"channel {channel.name}", part, inbound=True))
        return leadership

    async def start(self, *, deliver: Deliver | None = None) -> None:
        """Start on its own (``carebot chat``, tests): every stage of :meth:`lifecycle` set
        up. The server runs the stages through aiohttp instead."""
        self._life = self.lifecycle(deliver=deliver)
        await self._life.start()

    async def stop(self) -> None:
        """Stop inbound, finish in-flight work, flush the outbox, close the channels and the
        database, in that order. A runtime that never started is torn down all the same."""
        life, self._life = self._life or self.lifecycle(), None
        await life.stop()

    async def _flush(self) -> None:
        sent = await self.outbox.deliver_due()
        left = await self.outbox_store.pending()
        log.info("Outbox flushed: %d replies delivered, %d still pending", sent, left)


def history_read_share(settings: Settings) -> int:
    """How many web chat tabs of a worker read their visitor's history at once: a quarter of the
    pool ([store] max_connections less those kept apart), so that the tabs of a stopped worker,
    all coming back at once, leave the rest to storing and deciding messages."""
    return max(1, (settings.store.max_connections - KEPT_APART) // 4)


def conversation_locks(settings: Settings) -> int:
    """How many conversations a worker decides at once on PostgreSQL: each holds a connection
    of the pool ([store] max_connections less those kept apart: events, the leader's lock, the
    sent marks) for its lock, and half the pool stays for the deciding and everything else."""
    return max(1, (settings.store.max_connections - KEPT_APART) // 2)


def reply_windows(settings: Settings) -> ReplyWindows:
    """The reply windows of the enabled Meta channels (the others have none)."""
    meta = settings.meta
    enabled = [
        name
        for name, section in (
            ("whatsapp", settings.whatsapp),
            ("messenger", settings.messenger),
            ("instagram", settings.instagram),
        )
        if section.enabled
    ]
    return ReplyWindows(
        {name: meta.reply_window_hours for name in enabled}, meta.window_warning_minutes
    )


def enabled_channels(settings: Settings) -> frozenset[str]:
    """The channels config.toml enables: the service runs each of them (see :class:`Routes`)."""
    sections = {
        "webchat": settings.webchat.enabled,
        "telegram": settings.telegram.enabled,
        "whatsapp": settings.whatsapp.enabled,
        "messenger": settings.messenger.enabled,
        "instagram": settings.instagram.enabled,
        "x": settings.x.enabled,
        "webhook": settings.webhook.enabled,
    }
    return frozenset(name for name, enabled in sections.items() if enabled)


def team_directory(settings: Settings, triage: Triage) -> TeamDirectory:
    """The teams as the stores see them; an intent's tags are read from the live intents
    (the ones in use now, after any reload)."""

    def tags(intent: str) -> tuple[str, ...]:
        intents = triage.matcher.intents
        return intents[intent].tags if intent in intents else ()

    return TeamDirectory(settings, tags=tags)


def build_matching(
    settings: Settings,
    encoder: Encoder,
    cache: EmbeddingCache | None = None,
    events: EventHub | None = None,
) -> tuple[Triage, MatchQueue, IntentReloader | None]:
    """Triage, the micro-batching queue in front of the model, and (``[matcher] reload``) the
    reloader that swaps edited intents in; all three share the matcher and its caches
    (``cache``: the example embeddings, made here if not given). ``events``: the reloader
    tells the other workers of a reload, and hears theirs."""
    cache = cache or embedding_cache(settings, encoder)
    parsed = ParsedFiles(settings.path(settings.matcher.cache_dir) / "parsed")
    triage = build_triage(settings, encoder, cache, parsed)
    matches = MatchQueue(lambda: triage.matcher)
    if not settings.matcher.reload:
        return triage, matches, None
    reloader = IntentReloader(
        settings=settings,
        triage=triage,
        cache=cache,
        in_model_thread=matches.in_model_thread,
        parsed=parsed,
        events=events,
    )
    return triage, matches, reloader


async def build_runtime(
    settings: Settings,
    *,
    encoder: Encoder,
    channels: Mapping[str, Channel] = {},
    clock: Clock = utcnow,
    database_url: str | None = None,
    send_immediately: bool = True,
    backoff: Backoff = OUTBOX_BACKOFF,
    post_classifier: PostClassifier | None = None,
    public_guard: Guard | None = None,
    answer_within: float = ANSWER_WITHIN,
) -> Runtime:
    """Open the database (migrating SQLite automatically) and wire the pipeline together.

    ``send_immediately``: a reply is sent by whoever wrote it, right after the transaction (the
    worker retries failures). False leaves every reply to the outbox worker. ``backoff``: the
    outbox's wait between attempts at a failed send. ``post_classifier``: what public messages
    are (default: trained on the packaged set when a channel brings public messages in);
    ``public_guard``: what may be posted in public (default: carebot.public.guard).
    ``answer_within``: how long a channel waits for a stored message's deciding before it
    answers its platform (:meth:`carebot.inbox.Inbox.take`).
    """
    db = Database(
        database_url or settings.database_url(),
        max_connections=settings.store.max_connections,
        bot_intro=settings.messages.intros(settings.bot.name),
    )
    await db.prepare()
    cache = embedding_cache(settings, encoder)
    events = EventHub()
    triage, matches, reloader = build_matching(settings, encoder, cache, events)
    link_by = settings.customers.link_by
    priority = Priority(settings.priority)
    teams = team_directory(settings, triage)
    conversations = ConversationStore(
        db,
        clock=clock,
        lease_replies=send_immediately,
        link_by=link_by,
        priority=priority,
        teams=teams,
    )
    outbox_store = OutboxStore(db, clock=clock)
    channel_map = dict(channels)
    notifier = None if db.is_sqlite else Notifier(db.asyncpg_dsn(), events)
    routes = Routes(
        channel_map,
        enabled=enabled_channels(settings),
        config_file=settings.source.name if settings.source else "config.toml",
    )
    public_actions = PublicActionStore(db, clock=clock, lease_replies=send_immediately)
    delivery = PublicDelivery(
        store=public_actions, clock=clock, caps={"x": settings.x.monthly_call_cap}
    )
    worker = OutboxWorker(
        store=outbox_store,
        channels=routes,
        clock=clock,
        events=events,
        backoff=backoff,
        deliver=delivery.send,
    )
    closer = ConversationCloser(
        store=ClosingStore(db, clock=clock),
        events=events,
        clock=clock,
        idle_hours=settings.conversations.idle_close_hours,
        interval=settings.conversations.sweep_seconds,
    )
    windows = reply_windows(settings)
    surveys = Surveys(
        store=SurveyStore(db, clock=clock, reply_hours=settings.survey.reply_hours),
        settings=settings,
    )
    customers = CustomerStore(db, clock=clock, link_by=link_by)
    labels = EmotionLabelStore(db, clock=clock)
    notices = Notices(settings.messages)
    if post_classifier is None and takes_public_messages(settings):
        # trained on the packaged set with the matcher's encoder (its vectors are reused)
        post_classifier = await asyncio.to_thread(trained_classifier, encoder, cache)
    public = public_parts(
        settings,
        db=db,
        triage=triage,
        conversations=conversations,
        clock=clock,
        lease_replies=send_immediately,
        classifier=post_classifier,
        guard=public_guard or guard_for(settings.public),
    )
    handoffs = HandoffStore(
        db,
        clock=clock,
        lease_replies=send_immediately,
        windows=windows,
        reachable=routes.check,
        notices=notices,
        rating=surveys.rating_question,
        teams=teams,
        public=public.posting,
    )
    teamwork = TeamworkStore(db, clock=clock, teams=teams)
    ratings = RatingRequests(
        store=QuietAnswers(db, clock=clock, lease_replies=send_immediately),
        question=surveys.rating_question,
        windows=windows,
        clock=clock,
        quiet_hours=settings.insight.assume_resolved_hours,
        lookback_hours=settings.survey.reply_hours,
        on_outbox=worker.dispatch,
        interval=settings.conversations.sweep_seconds,
    )
    languages = LanguageDetector(settings.languages)
    inbox = Inbox(
        conversations=conversations,
        triage=triage,
        matches=matches,
        messages=settings.messages,
        clock=clock,
        waiting=WaitingStore(db, clock=clock, priority=priority, lease_replies=send_immediately),
        acknowledgement=Acknowledgement(times=ResponseTimes(db, clock=clock), settings=settings),
        surveys=surveys,
        on_outbox=worker.dispatch,
        events=events,
        locks=ConversationLocks(db, limit=conversation_locks(settings)),
        public=public.handling,
        answer_within=answer_within,
        languages=languages,
    )
    # What a stopped worker left undecided, looked for again every grace period (not only at
    # start: a message younger than the grace at start is taken by a later pass).
    recovery = Periodic(
        inbox.recover,
        interval=RECOVERY_GRACE.total_seconds(),
        what="recovering undecided messages",
        log=log,
    )
    return Runtime(
        settings=settings,
        db=db,
        triage=triage,
        inbox=inbox,
        matches=matches,
        conversations=conversations,
        handoffs=handoffs,
        outbox=worker,
        outbox_store=outbox_store,
        events=events,
        desk=AgentDesk(
            handoffs=handoffs,
            customers=customers,
            labels=labels,
            events=events,
            on_outbox=worker.dispatch_in_order,
            membership=Membership(settings),
            teamwork=teamwork,
            public=public_actions,
        ),
        queue=AgentQueue(db, clock=clock, windows=windows),
        clock=clock,
        customers=customers,
        closer=closer,
        labels=labels,
        teamwork=teamwork,
        public_items=PublicStore(db, clock=clock),
        public_actions=public_actions,
        windows=windows,
        languages=languages,
        channels=channel_map,
        reloader=reloader,
        cache=cache,
        notifier=notifier,
        history_reads=PoolShare(history_read_share(settings)),
        ratings=ratings,
        workers=[worker, recovery, *([reloader] if reloader else [])],
        singletons=[
            Duty("the idle-conversation sweep", LeadWorker(closer)),
            Duty("the rating requests", LeadWorker(ratings)),
        ],
    )
