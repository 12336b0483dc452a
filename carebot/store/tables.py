"""The database tables (SQLAlchemy 2 declarative models). Alembic migrations mirror these."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar

from sqlalchemy import (
    JSON,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from carebot.clock import as_utc


def by_conversation(table: str) -> Index:
    """The index a table's rows are found by per conversation: the conversation, then the row's
    id, so that a conversation's rows come in order and its latest ("max(id) where
    conversation_id = ...", "order by id desc limit 1") is one step down the index. With the
    conversation alone, PostgreSQL's plans for "the conversation's latest decision" walked the
    primary key back from the table's newest row until one was the conversation's, or hashed
    the whole table (1.2-2.3 ms a message in bench/workers.py on a fresh database, more as the
    table grows). SQLite's index on a column holds the rowid after it, so there this is the
    index it had."""
    return Index(f"ix_{table}_conversation_id", "conversation_id", "id")


class UTCDateTime(TypeDecorator[datetime]):
    """Stores UTC; always hands back timezone-aware UTC, SQLite included (it keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = as_utc(value)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else as_utc(value)


Timestamp = Annotated[datetime, mapped_column(UTCDateTime())]
# The largest number an Integer id column holds (PostgreSQL's integer): a number past it names
# no row, and a query with it fails on PostgreSQL ("out of int32 range").
LARGEST_ID = 2**31 - 1


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON}


class Customer(Base):
    """One person, whatever channels they write on."""

    __tablename__ = "customers"
    id: Mapped[int] = mapped_column(primary_key=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[Timestamp]


class Identity(Base):
    """A customer's identity on one channel (Telegram user id, phone number, web chat visitor)."""

    __tablename__ = "identities"
    __table_args__ = (UniqueConstraint("channel", "external_user_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    channel: Mapped[str] = mapped_column(String(40))
    external_user_id: Mapped[str] = mapped_column(String(200))
    profile: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[Timestamp]
    linked_by: Mapped[str | None] = mapped_column(String(200))  # why it joined its customer


class ContactPoint(Base):
    """A normalised phone number or e-mail address of a channel identity; identities that share
    one belong to the same customer."""

    __tablename__ = "contact_points"
    __table_args__ = (
        UniqueConstraint("identity_id", "kind", "value", name="uq_contact_points"),
        Index("ix_contact_points_kind_value", "kind", "value"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    identity_id: Mapped[int] = mapped_column(ForeignKey("identities.id"))
    kind: Mapped[str] = mapped_column(String(10))  # phone / email
    value: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[Timestamp]


OPEN = text("state != 'closed'")


class Conversation(Base):
    """A conversation with one channel identity: bot, waiting_for_agent, with_agent or closed.

    A private conversation has ``thread`` ""; a public one (``visibility`` public) is a
    customer's comments under one post, ``thread`` the post's id, ``context`` the post (its
    text, link, kind) as :class:`carebot.models.PublicContext` gives it. An identity has at
    most one conversation that is not closed per thread (a unique partial index)."""

    __tablename__ = "conversations"
    __mapper_args__ = {"eager_defaults": True}  # noqa: RUF012 (SQLAlchemy reads a dict)
    __table_args__ = (
        Index(
            "uq_conversations_open_identity_thread",
            "identity_id",
            "thread",
            unique=True,
            sqlite_where=OPEN,
            postgresql_where=OPEN,
        ),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    identity_id: Mapped[int] = mapped_column(ForeignKey("identities.id"), index=True)
    state: Mapped[str] = mapped_column(String(20), index=True)
    agent: Mapped[str | None] = mapped_column(String(200))
    # when its first customer message came (the insight population is by this)
    created_at: Mapped[Timestamp] = mapped_column(UTCDateTime(), index=True)
    updated_at: Mapped[Timestamp]
    closed_at: Mapped[Timestamp | None] = mapped_column(UTCDateTime(), index=True)
    closed_reason: Mapped[str | None] = mapped_column(String(40))  # a CloseReason
    closed_by: Mapped[str | None] = mapped_column(String(200))  # the agent, for an agent's close
    # Server defaults only (fetched on insert), so that migration tests writing rows of an
    # older revision through this table do not name columns it did not have yet.
    visibility: Mapped[str] = mapped_column(String(10), server_default="private", index=True)
    thread: Mapped[str] = mapped_column(String(200), server_default="")
    context: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class Message(Base):
    """Every message in a conversation, in or out. Inbound ones are unique per channel id."""

    __tablename__ = "messages"
    __table_args__ = (
        by_conversation("messages"),
        UniqueConstraint("channel", "external_id", name="uq_messages_channel_external"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id"))
    direction: Mapped[str] = mapped_column(String(3))  # in / out
    author: Mapped[str] = mapped_column(String(20))  # customer / bot / agent
    agent: Mapped[str | None] = mapped_column(String(200))
    channel: Mapped[str] = mapped_column(String(40))
    external_id: Mapped[str | None] = mapped_column(String(200))
    text: Mapped[str] = mapped_column(Text)
    decision_id: Mapped[int | None] = mapped_column(
        ForeignKey("decisions.id", use_alter=True, name="fk_messages_decision")
    )
    created_at: Mapped[Timestamp]
    handled_at: Mapped[Timestamp | None]  # inbound: decided on, or recorded for an agent
    # inbound: the language detected in it (ISO 639-1); None: not placed (too short, unsure, or
    # [languages] detect tells nothing apart)
    language: Mapped[str | None] = mapped_column(String(8))


class DecisionRow(Base):
    """What triage decided for one inbound message, with its scores, reasons and timings."""

    __tablename__ = "decisions"
    __table_args__ = (by_conversation("decisions"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id"))
    inbound_message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"), unique=True)
    kind: Mapped[str] = mapped_column(String(10))
    intent: Mapped[str | None] = mapped_column(String(200), index=True)
    score: Mapped[float] = mapped_column(Float)
    margin: Mapped[float] = mapped_column(Float)
    emotion: Mapped[float] = mapped_column(Float)
    reasons: Mapped[str] = mapped_column(String(200))  # comma-separated, most important first
    draft: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)  # top intents, choices, timings
    created_at: Mapped[Timestamp]


class Handoff(Base):
    """A conversation handed to a human, until an agent resolves it (or the customer withdraws
    it, or the conversation closes).

    While the customer waits, each of their messages may add reasons, raise the emotion (the
    highest signal since the handoff, with the cues behind it) and so the priority;
    ``last_change`` says what the latest such message changed."""

    __tablename__ = "handoffs"
    __table_args__ = (by_conversation("handoffs"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id"))
    decision_id: Mapped[int | None] = mapped_column(ForeignKey("decisions.id"))
    reason: Mapped[str] = mapped_column(String(40))
    reasons: Mapped[str] = mapped_column(String(200))
    draft: Mapped[str | None] = mapped_column(Text)
    draft_sent_at: Mapped[Timestamp | None]  # the draft goes to the customer once at most
    created_at: Mapped[Timestamp]
    claimed_by: Mapped[str | None] = mapped_column(String(200))
    claimed_at: Mapped[Timestamp | None]
    resolved_by: Mapped[str | None] = mapped_column(String(200))
    resolved_at: Mapped[Timestamp | None]
    # how it ended when no agent did: WITHDRAWN_BY_CUSTOMER (carebot.models)
    resolution: Mapped[str | None] = mapped_column(String(40))
    priority: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    emotion: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    emotion_cues: Mapped[list[str] | None] = mapped_column(JSON, default=list)
    # {"at", "reasons" (codes added), "emotion" ([before, after] or None), "cues"}
    last_change: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    updated_at: Mapped[Timestamp | None]  # when a later customer message last changed it
    acked_at: Mapped[Timestamp | None]  # the waiting customer's latest acknowledgement
    # The team it was routed (or transferred) to, and the routing rule that chose it ("rule 2:
    # billing words", "default team"); None for handoffs from before teams existed.
    team: Mapped[str | None] = mapped_column(String(64), index=True)
    route: Mapped[str | None] = mapped_column(String(200))
    # The agent expected to answer (assigned by a colleague or round-robin); the conversation
    # still waits until they take it over or reply.
    assigned_to: Mapped[str | None] = mapped_column(String(200), index=True)
    assigned_at: Mapped[Timestamp | None]


class OutboxRow(Base):
    """A reply waiting to be delivered; written in the same transaction as what caused it."""

    __tablename__ = "outbox"
    __table_args__ = (
        by_conversation("outbox"),
        # Only pending rows are looked up by due time; sent ones pile up and stay out of it.
        Index(
            "ix_outbox_pending",
            "next_attempt_at",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id"))
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"))
    channel: Mapped[str] = mapped_column(String(40))
    external_user_id: Mapped[str] = mapped_column(String(200))
    text: Mapped[str] = mapped_column(Text)
    meta: Mapped[dict[str, Any]] = mapped_column(default=dict)  # choices, handoff, author, agent
    status: Mapped[str] = mapped_column(String(10))  # pending / sent / failed (refused for good)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[Timestamp]
    locked_until: Mapped[Timestamp | None]
    lease: Mapped[str | None] = mapped_column(String(36))  # the claim's token (fencing)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[Timestamp]
    sent_at: Mapped[Timestamp | None]
    external_id: Mapped[str | None] = mapped_column(String(200), index=True)  # platform's id
    delivery_status: Mapped[str | None] = mapped_column(String(20))  # delivered / read / failed
    delivery_error: Mapped[str | None] = mapped_column(Text)
    status_at: Mapped[Timestamp | None]


class SlackThread(Base):
    """A conversation's thread in a team's Slack channel: its card and how far it is mirrored.

    ``ts`` is None until the card is posted (Slack was down, or the post is still due). A
    conversation has one live thread (``superseded_at`` None); a transfer to another team opens
    a new one in that team's channel and supersedes the old (``transferred_to``).
    """

    __tablename__ = "slack_threads"
    __table_args__ = (
        UniqueConstraint("channel", "ts", name="uq_slack_threads_channel_ts"),
        Index(
            "uq_slack_threads_live",
            "conversation_id",
            unique=True,
            sqlite_where=text("superseded_at IS NULL"),
            postgresql_where=text("superseded_at IS NULL"),
        ),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id"), index=True)
    channel: Mapped[str] = mapped_column(String(40))
    team: Mapped[str | None] = mapped_column(String(64))  # None: before teams (the default one)
    ts: Mapped[str | None] = mapped_column(String(40))
    handoff_id: Mapped[int | None] = mapped_column(ForeignKey("handoffs.id"))
    card_hash: Mapped[str] = mapped_column(String(64), default="")
    mirrored_message_id: Mapped[int] = mapped_column(Integer, default=0)
    reminded_handoff_id: Mapped[int | None] = mapped_column(Integer)
    # the handoff whose first-response breach the thread announced
    breach_noted_handoff_id: Mapped[int | None] = mapped_column(Integer)
    window_warned_for: Mapped[Timestamp | None]  # the customer message whose window it warned of
    # The last reply of the conversation refused for good (outbox id) the thread was told of.
    failures_told_id: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    owner: Mapped[str | None] = mapped_column(String(200))  # the agent the thread last showed
    superseded_at: Mapped[Timestamp | None]  # a newer card replaced this one (a transfer)
    transferred_to: Mapped[str | None] = mapped_column(String(64))  # the team it went to
    created_at: Mapped[Timestamp]
    synced_at: Mapped[Timestamp | None]
    locked_by: Mapped[str | None] = mapped_column(String(100))  # the process syncing it now
    locked_until: Mapped[Timestamp | None]


class SlackEvent(Base):
    """A Slack event already handled, by its ``event_id`` (Slack redelivers on slow acks)."""

    __tablename__ = "slack_events"
    event_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    received_at: Mapped[Timestamp] = mapped_column(UTCDateTime(), index=True)


class EmotionLabelRow(Base):
    """An agent's word on whether a customer message sounds upset, kept for retraining the
    emotion signal: one per message and agent (changed by labelling it again)."""

    __tablename__ = "emotion_labels"
    __table_args__ = (UniqueConstraint("message_id", "agent", name="uq_emotion_labels_message"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"), index=True)
    agent: Mapped[str] = mapped_column(String(200))
    label: Mapped[str] = mapped_column(String(10))  # upset / not_upset
    emotion: Mapped[float | None] = mapped_column(Float)  # what the bot had shown, if it scored it
    labelled_at: Mapped[Timestamp]


RATING = text("kind = 'rating'")


class Survey(Base):
    """A question put to a customer and their reply: "did that answer your question?" after a
    bot answer (kind ``helpful``, about ``decision_id``; answer ``yes``/``no``), or a 1-5 rating
    after a resolution (kind ``rating``, at most one per conversation; ``resolver`` says who
    resolved it: ``bot`` or ``human``; answer ``1``..``5``, with an optional comment).

    ``message_id`` is the outgoing message that asked; ``answer_message_id`` the customer's
    reply, which may have opened a new conversation if the asked one had ended meanwhile."""

    __tablename__ = "surveys"
    __table_args__ = (
        Index(
            "uq_surveys_rating",
            "conversation_id",
            unique=True,
            sqlite_where=RATING,
            postgresql_where=RATING,
        ),
        Index("ix_surveys_identity_asked", "identity_id", "asked_at"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id"), index=True)
    identity_id: Mapped[int] = mapped_column(ForeignKey("identities.id"))
    kind: Mapped[str] = mapped_column(String(10))  # helpful / rating
    decision_id: Mapped[int | None] = mapped_column(ForeignKey("decisions.id"))
    resolver: Mapped[str | None] = mapped_column(String(10))  # rating: bot / human
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"))
    asked_at: Mapped[Timestamp] = mapped_column(UTCDateTime(), index=True)
    answer: Mapped[str | None] = mapped_column(String(10))
    answered_at: Mapped[Timestamp | None]
    answer_message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"), index=True)
    comment: Mapped[str | None] = mapped_column(Text)


class MessageEmbedding(Base):
    """A customer message's sentence embedding, kept for insight (the unanswered topics) so that
    it is not encoded again: float16 bytes (carebot.store.embeddings) and the fingerprint of the
    model that made it (the encoder's ``model_id``), so that vectors of two models are never
    mixed."""

    __tablename__ = "message_embeddings"
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"), primary_key=True)
    model: Mapped[str] = mapped_column(String(200))
    dims: Mapped[int] = mapped_column(Integer)
    vector: Mapped[bytes] = mapped_column(LargeBinary)


class IntentRevision(Base):
    """One change to the intent files published from the ops console (or a rollback of one):
    who, when, which intent, and the file's text before and after, so that the change can be
    shown as a diff and rolled back. The files stay the source the service loads."""

    __tablename__ = "intent_revisions"
    id: Mapped[int] = mapped_column(primary_key=True)
    file: Mapped[str] = mapped_column(String(300))  # relative to the intents folder
    # The intent's id after the change (None: deleted) and before it (None: created); they
    # differ for a rename.
    intent_id: Mapped[str | None] = mapped_column(String(200), index=True)
    previous_id: Mapped[str | None] = mapped_column(String(200), index=True)
    action: Mapped[str] = mapped_column(String(20))  # create / edit / rename / delete / rollback
    author: Mapped[str] = mapped_column(String(200))
    summary: Mapped[str] = mapped_column(Text, default="")
    before: Mapped[str] = mapped_column(Text)  # "" when the file did not exist
    after: Mapped[str] = mapped_column(Text)
    reverts_id: Mapped[int | None] = mapped_column(ForeignKey("intent_revisions.id"))
    created_at: Mapped[Timestamp] = mapped_column(UTCDateTime(), index=True)


class IntentProposal(Base):
    """A suggested change to the intents, waiting for an ops person: add examples to an intent,
    or a new intent, from an agent's reply, an unanswered topic or an agent's own idea."""

    __tablename__ = "intent_proposals"
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))  # add_examples / new_intent
    intent_id: Mapped[str] = mapped_column(String(200))  # the target, or the suggested new id
    title: Mapped[str] = mapped_column(String(200), default="")
    examples: Mapped[list[str]] = mapped_column(JSON, default=list)
    answer: Mapped[str] = mapped_column(Text, default="")
    source: Mapped[str] = mapped_column(String(20))  # agent_reply / topic / agent
    author: Mapped[str] = mapped_column(String(200))
    conversation_id: Mapped[int | None] = mapped_column(ForeignKey("conversations.id"))
    message_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    flags: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(10), index=True)  # open / published / rejected
    created_at: Mapped[Timestamp]
    decided_by: Mapped[str | None] = mapped_column(String(200))
    decided_at: Mapped[Timestamp | None]
    revision_id: Mapped[int | None] = mapped_column(ForeignKey("intent_revisions.id"))
    note: Mapped[str | None] = mapped_column(Text)


class LoginFailure(Base):
    """Failed inbox logins in a row for one agent name or one client address (``key`` is
    ``name:<name>`` or ``address:<address>``), counted by every worker; ``locked_until`` is set
    once there were ``[inbox] max_failed_logins`` of them (carebot.store.logins)."""

    __tablename__ = "login_failures"
    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer)
    last_failed_at: Mapped[Timestamp] = mapped_column(UTCDateTime(), index=True)
    locked_until: Mapped[Timestamp | None]


class InboxSession(Base):
    """An agent's inbox session. The cookie carries the random session id (signed); only its
    SHA-256 is stored, so a copy of the table opens no session. Logging out sets ``ended_at``."""

    __tablename__ = "inbox_sessions"
    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    agent: Mapped[str] = mapped_column(String(200), index=True)
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[Timestamp]
    expires_at: Mapped[Timestamp] = mapped_column(UTCDateTime(), index=True)
    ended_at: Mapped[Timestamp | None]


class ConversationEvent(Base):
    """The conversation's audit trail: who routed, assigned, transferred, took over, resolved
    or closed it, and when (``detail``: the team, the rule, the note, the previous owner)."""

    __tablename__ = "conversation_events"
    __table_args__ = (by_conversation("conversation_events"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id"))
    handoff_id: Mapped[int | None] = mapped_column(ForeignKey("handoffs.id"))
    kind: Mapped[str] = mapped_column(String(20))  # routed / assigned / transferred / ...
    actor: Mapped[str] = mapped_column(String(200))  # an agent's name, or "carebot"
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[Timestamp] = mapped_column(UTCDateTime(), index=True)


class Note(Base):
    """An internal note in a conversation: agents see it (inbox and Slack), the customer never
    does. ``external_id`` is the Slack message's ts for a ``note:`` reply (one row per ts);
    ``slack_ts`` the thread post that showed an inbox note there (None: not posted yet)."""

    __tablename__ = "notes"
    __table_args__ = (UniqueConstraint("via", "external_id", name="uq_notes_via_external"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id"), index=True)
    agent: Mapped[str] = mapped_column(String(200))
    text: Mapped[str] = mapped_column(Text)
    via: Mapped[str] = mapped_column(String(20))  # inbox / slack
    external_id: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[Timestamp]
    slack_ts: Mapped[str | None] = mapped_column(String(64))


class ConversationLabel(Base):
    """A label an agent put on a conversation (insight can filter by it)."""

    __tablename__ = "conversation_labels"
    __table_args__ = (UniqueConstraint("conversation_id", "label", name="uq_conversation_labels"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id"), index=True)
    label: Mapped[str] = mapped_column(String(64), index=True)
    added_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[Timestamp]


class AgentPresence(Base):
    """Whether an agent is available for new handoffs (set by the agent; absent: available)."""

    __tablename__ = "agent_presence"
    agent: Mapped[str] = mapped_column(String(200), primary_key=True)
    available: Mapped[bool]
    updated_at: Mapped[Timestamp]


class TeamRotation(Base):
    """Round-robin assignment: the member of a team who got its latest handoff."""

    __tablename__ = "team_rotation"
    team: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_agent: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[Timestamp]


class PublicItem(Base):
    """A customer's public message (a comment, a mention, a reply on X), beside its
    :class:`Message`: where it sits in the thread, what the classifier made of it, and what
    happened to it since (edited, removed, hidden, answered privately). ``edits`` keeps every
    earlier text with when it was replaced, so agents see both versions. ``private_reply_at`` is
    set once, when the one private reply the platforms allow per comment is queued."""

    __tablename__ = "public_items"
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"), primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id"), index=True)
    channel: Mapped[str] = mapped_column(String(40))
    thread: Mapped[str] = mapped_column(String(200))
    parent_id: Mapped[str | None] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))  # comment / mention / reply / quote / post
    addressed: Mapped[bool] = mapped_column(default=True)
    reach: Mapped[int | None] = mapped_column(Integer)
    category: Mapped[str | None] = mapped_column(String(20), index=True)  # the classifier's
    sent_at: Mapped[Timestamp]  # when the customer posted it (the platform's time)
    hidden: Mapped[bool] = mapped_column(default=False)
    hidden_by: Mapped[str | None] = mapped_column(String(200))
    hidden_reason: Mapped[str | None] = mapped_column(String(200))
    hidden_at: Mapped[Timestamp | None]
    removed_at: Mapped[Timestamp | None]
    edits: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    private_reply_at: Mapped[Timestamp | None]
    private_reply_by: Mapped[str | None] = mapped_column(String(200))


class ApiUsage(Base):
    """Calls made to a platform's API in one calendar month (UTC), for a billed API's cap
    (X bills per call: ``[x] monthly_call_cap``)."""

    __tablename__ = "api_usage"
    platform: Mapped[str] = mapped_column(String(20), primary_key=True)
    period: Mapped[str] = mapped_column(String(7), primary_key=True)  # 2026-12
    calls: Mapped[int] = mapped_column(Integer, default=0)
