"""Core types that flow between adapters, the inbox, triage and the outbox.

Adapters only ever see :class:`InboundMessage` and :class:`OutboundReply`; everything else is
the core's vocabulary.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class InboundKind(StrEnum):
    TEXT = "text"  # something the customer wrote (maybe only an attachment)
    START = "start"  # the customer opened the chat (Telegram's /start): greet, do not triage


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file the customer sent (photo, voice note, sticker, document...).

    ``url`` is a link an agent can open; the bot itself reads text only."""

    kind: str
    url: str
    name: str = ""


class Visibility(StrEnum):
    """Where a conversation happens: in private messages, or in public (comments under a
    brand's post, mentions and replies on X) where everyone reads it."""

    PRIVATE = "private"
    PUBLIC = "public"


class PublicCategory(StrEnum):
    """What a public message is (the public-message classifier's classes)."""

    CARE_REQUEST = "care_request"  # a question or a problem: worked
    COMPLAINT = "complaint"  # dissatisfaction said in public: worked, by a person
    PRAISE = "praise"  # thanks, compliments: a configurable thanks, or nothing
    SPAM = "spam"  # spam and abuse: hidden if configured
    CHATTER = "chatter"  # everything else: recorded and left

    @property
    def worked(self) -> bool:
        return self in (PublicCategory.CARE_REQUEST, PublicCategory.COMPLAINT)


@dataclass(frozen=True, slots=True)
class PublicContext:
    """Where a public message was posted, as its platform tells it.

    ``thread`` is the post the comment is under (Facebook, Instagram) or the post that started
    the conversation (X): a customer's comments under one post are one public conversation.
    ``parent_id`` is the comment or post it answers directly (None, or the thread itself: a
    top-level comment). ``addressed``: the message mentions or quotes the brand (X's API lets
    a brand reply only then). ``reach``: the author's followers or the post's likes, where the
    platform gives a figure."""

    thread: str
    kind: str = "comment"  # comment / mention / reply / quote / post
    parent_id: str | None = None
    post_text: str = ""
    post_url: str = ""
    reach: int | None = None
    addressed: bool = True
    hidden: bool = False

    @property
    def top_level(self) -> bool:
        return self.parent_id is None or self.parent_id == self.thread

    def as_dict(self) -> dict[str, Any]:
        return {
            "thread": self.thread,
            "kind": self.kind,
            "parent_id": self.parent_id,
            "post_text": self.post_text,
            "post_url": self.post_url,
            "reach": self.reach,
            "addressed": self.addressed,
            "hidden": self.hidden,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PublicContext:
        names = set(cls.__dataclass_fields__)
        return cls(**{key: value for key, value in data.items() if key in names})


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """One customer message, as an adapter translated it from its platform event.

    ``profile`` holds what the platform tells about the sender: ``name``, and the identifiers
    customers are linked by across channels (``phone`` in E.164 form, ``email``) when the
    platform gives them."""

    channel: str
    external_user_id: str
    external_message_id: str
    text: str
    sent_at: datetime
    profile: Mapping[str, str] = field(default_factory=dict)
    raw: Mapping[str, Any] = field(default_factory=dict)
    kind: InboundKind = InboundKind.TEXT
    attachments: tuple[Attachment, ...] = ()
    public: PublicContext | None = None  # posted in public (a comment, a mention); None: private
    # the language detected in it (ISO 639-1), set by the inbox before it is stored; None: not
    # placed (adapters leave it: carebot/nlu/language.py)
    language: str | None = None
    # the languages the platform says the customer uses, preferred first, as it writes them
    # ("de-AT", "pt-br": Telegram's app language, the web chat visitor's browser languages):
    # the bot speaks the first one it serves to a customer none of whose messages could be
    # placed yet (a first "Hallo")
    language_hints: tuple[str, ...] = ()

    @property
    def visibility(self) -> Visibility:
        return Visibility.PUBLIC if self.public is not None else Visibility.PRIVATE

    @property
    def media_only(self) -> bool:
        """Files without any text: nothing the bot can read."""
        return bool(self.attachments) and not self.text.strip()

    def stored_text(self) -> str:
        """The text kept for agents: the message, then one line per attachment with its link."""
        lines = [self.text] if self.text.strip() else []
        for item in self.attachments:
            label = f"{item.kind} {item.name}".strip()
            lines.append(f"[{label}] {item.url}".rstrip())
        return "\n".join(lines) or self.text


@dataclass(frozen=True, slots=True)
class DeliveryStatus:
    """What a platform reports about a reply it was given: sent, delivered, read or failed.

    ``external_message_id`` is the platform's id of the reply (what ``Channel.send`` returned).
    """

    channel: str
    external_message_id: str
    status: str
    at: datetime
    error: str | None = None


@dataclass(frozen=True, slots=True)
class ContactDetails:
    """Contact details a customer gave outside a message (a web chat contact form, a shared
    Telegram contact): ``name``, ``phone``, ``email``. They are kept on the channel identity and
    link it to the same customer on other channels."""

    channel: str
    external_user_id: str
    profile: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class PublicChange:
    """A public message changed after it arrived: its author edited it (``edited``, with the new
    ``text``) or it was removed from the platform (``removed``). Agents see both versions."""

    channel: str
    external_message_id: str
    change: str  # edited / removed
    at: datetime
    text: str = ""


ChannelEvent = InboundMessage | DeliveryStatus | ContactDetails | PublicChange


@dataclass(frozen=True, slots=True)
class Choice:
    """A button offered with a reply (e.g. the options of a clarification)."""

    id: str
    label: str


class PublicActionKind(StrEnum):
    """What can be done about a public message (see :mod:`carebot.public.actions`)."""

    REPLY = "reply"  # answer it in public, under it
    PRIVATE_REPLY = "private_reply"  # answer its author privately (a private reply, an X DM)
    HIDE = "hide"  # hide it from everyone but its author and their friends (never delete)
    UNHIDE = "unhide"


@dataclass(frozen=True, slots=True)
class PublicAction:
    """A public action to carry out, carried by an :class:`OutboundReply`: ``target`` is the
    platform's id of the comment or post it is about, ``thread`` the post it is under."""

    kind: PublicActionKind
    target: str
    thread: str
    about: str = "comment"  # what the target is (PublicContext.kind): comment, mention, ...

    def as_dict(self) -> dict[str, str]:
        return {
            "kind": self.kind.value,
            "target": self.target,
            "thread": self.thread,
            "about": self.about,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PublicAction:
        return cls(
            PublicActionKind(data["kind"]),
            str(data["target"]),
            str(data["thread"]),
            str(data.get("about") or "comment"),
        )


@dataclass(frozen=True, slots=True)
class OutboundReply:
    """A reply to deliver to one customer on one channel (built from an outbox row)."""

    outbox_id: int
    channel: str
    external_user_id: str
    text: str
    choices: tuple[Choice, ...] = ()
    author: str = "bot"  # bot / agent
    agent: str | None = None  # the agent's display name, for agent replies
    handoff: bool = False  # this reply tells the customer that a person takes over
    # this reply tells the customer that the conversation changed hands: agent_joined,
    # agent_transferred or resolved (it comes from the bot, so it is never signed)
    notice: str | None = None
    created_at: datetime | None = None
    conversation_id: int | None = None
    # the lease token of whoever claimed the row (carebot/store/outbox.py): every mark of the
    # reply must show it, so a worker that lost its lease cannot overwrite the new holder's
    lease: str | None = None
    # a public action (reply under a comment, private reply, hide, unhide) instead of a message
    public: PublicAction | None = None
    # the conversation's outbox row before this one, when the reply's writer read it (0: this
    # is the first); None: not known (a reply claimed from the outbox). A web chat worker
    # tells by it whether its tabs show the reply before this one without reading the store.
    previous: int | None = None

    def signed_text(self) -> str:
        """The text for channels that show no author: an agent's reply starts with their name."""
        return f"{self.agent}: {self.text}" if self.author == "agent" and self.agent else self.text


@dataclass(frozen=True, slots=True)
class TranscriptLine:
    """One message of a customer's conversation, as a channel shows it back to them."""

    author: str  # customer / bot / agent
    text: str
    at: datetime
    agent: str | None = None
    choices: tuple[Choice, ...] = ()
    handoff: bool = False
    external_id: str | None = None  # the channel's id of a customer message
    outbox_id: int | None = None  # a reply's row in the outbox


class DecisionKind(StrEnum):
    ANSWER = "answer"  # sent to the customer right away
    DRAFT = "draft"  # an agent approves it first
    CLARIFY = "clarify"  # ask the customer which of a few intents they meant, or to rephrase
    HANDOFF = "handoff"  # a human takes the conversation
    LEAVE = "leave"  # a public message with nothing to answer (chatter, praise, spam): recorded


class Reason(StrEnum):
    """Why triage decided what it did. Declared from the most to the least important."""

    BOT_ERROR = "bot_error"
    EMOTIONAL = "emotional"
    PUBLIC_COMPLAINT = "public_complaint"
    ASKED_FOR_HUMAN = "asked_for_human"
    SENSITIVE_INTENT = "sensitive_intent"
    NO_ANSWER = "no_answer"
    REPEATED_FAILURE = "repeated_failure"
    AMBIGUOUS = "ambiguous"
    BELOW_THRESHOLD = "below_threshold"
    NOT_HELPFUL = "not_helpful"
    FRUSTRATED = "frustrated"
    CLARIFIED = "clarified"
    NOT_PUBLIC = "not_public"
    SHADOW = "shadow"
    MOVED_PRIVATE = "moved_private"
    CONFIDENT = "confident"
    PRAISE = "praise"
    CHATTER = "chatter"
    SPAM = "spam"

    @property
    def rank(self) -> int:
        return list(Reason).index(self)


# The reasons that hand a conversation to a person on their own; while a customer waits, a
# later message with one of them adds it to the open handoff.
HANDOFF_REASONS: frozenset[Reason] = frozenset(
    {
        Reason.BOT_ERROR,
        Reason.EMOTIONAL,
        Reason.ASKED_FOR_HUMAN,
        Reason.SENSITIVE_INTENT,
        Reason.NO_ANSWER,
        Reason.REPEATED_FAILURE,
        Reason.NOT_HELPFUL,
    }
)

REASON_WORDS: Mapping[Reason, str] = {
    Reason.BOT_ERROR: "the bot failed while handling the message",
    Reason.EMOTIONAL: "the customer sounds upset",
    Reason.PUBLIC_COMPLAINT: "a complaint in public: a person answers it",
    Reason.ASKED_FOR_HUMAN: "the customer asked for a person",
    Reason.SENSITIVE_INTENT: "the topic always goes to a person",
    Reason.NO_ANSWER: "the topic has no answer written yet",
    Reason.REPEATED_FAILURE: "the bot failed to understand twice in a row",
    Reason.AMBIGUOUS: "the question matched several topics equally well",
    Reason.BELOW_THRESHOLD: "the bot was not sure enough to answer",
    Reason.NOT_HELPFUL: 'the customer said the answer did not help ("did that answer?": no)',
    Reason.FRUSTRATED: "the customer sounds frustrated (an answer comes with an offer of a "
    "person; a message the bot cannot place goes to one)",
    Reason.CLARIFIED: "the customer picked one of the offered topics",
    Reason.NOT_PUBLIC: "the answer may not be posted in public (not marked public, not sure "
    "enough, or it holds personal data)",
    Reason.SHADOW: "shadow mode: carebot posts nothing in public itself; its draft is here",
    Reason.MOVED_PRIVATE: "personal data is needed: answered privately, with a public note",
    Reason.CONFIDENT: "the bot recognised the question",
    Reason.PRAISE: "praise or thanks in public",
    Reason.CHATTER: "public chatter: nothing to answer",
    Reason.SPAM: "spam or abuse in public",
}


class ConversationState(StrEnum):
    BOT = "bot"
    WAITING_FOR_AGENT = "waiting_for_agent"
    WITH_AGENT = "with_agent"
    CLOSED = "closed"

    @property
    def human_owned(self) -> bool:
        """While a human has (or is about to take) the conversation, the bot stays silent."""
        return self in (ConversationState.WAITING_FOR_AGENT, ConversationState.WITH_AGENT)

    def can_become(self, other: ConversationState) -> bool:
        return other in _TRANSITIONS[self]


_TRANSITIONS: Mapping[ConversationState, frozenset[ConversationState]] = {
    ConversationState.BOT: frozenset(
        {
            ConversationState.WAITING_FOR_AGENT,
            ConversationState.WITH_AGENT,
            ConversationState.CLOSED,
        }
    ),
    ConversationState.WAITING_FOR_AGENT: frozenset(
        {ConversationState.WITH_AGENT, ConversationState.BOT, ConversationState.CLOSED}
    ),
    ConversationState.WITH_AGENT: frozenset(
        {ConversationState.WITH_AGENT, ConversationState.BOT, ConversationState.CLOSED}
    ),
    ConversationState.CLOSED: frozenset(),
}


class WaitingAction(StrEnum):
    """What the bot did with a message from a customer waiting for a person (stored with the
    decision as ``details["waiting"]``)."""

    ANSWERED = "answered"  # a confident FAQ answer, with the line that a colleague follows up
    ACKNOWLEDGED = "acknowledged"  # told that a person has it, and the expected wait
    SILENT = "silent"  # acknowledged recently: recorded for the agent only
    WITHDRAWN = "withdrawn"  # the customer no longer needs a person: back to the bot


WITHDRAWN_BY_CUSTOMER = "withdrawn_by_customer"  # how a handoff ended (``Handoff.resolution``)


class CloseReason(StrEnum):
    """Why a conversation ended (stored with it, beside when and by whom)."""

    IDLE = "idle"  # nobody owed the customer an answer and nobody wrote for a while
    CLOSED_BY_AGENT = "closed_by_agent"  # an agent closed it


@dataclass(frozen=True, slots=True)
class IntentScore:
    intent: str
    score: float


@dataclass(frozen=True, slots=True)
class Decision:
    """What triage decided for one message, with every reason that applied, most important first."""

    kind: DecisionKind
    reasons: tuple[Reason, ...]
    intent: str | None
    score: float
    margin: float
    emotion: float
    reply: str | None = None
    draft: str | None = None
    choices: tuple[Choice, ...] = ()
    top: tuple[IntentScore, ...] = ()
    cues: tuple[str, ...] = ()  # what the emotion signal rests on (EmotionSignal.cues)
    small_talk: bool = False  # the intent is small talk ([triage] small_talk_tags)
    language: str | None = None  # the customer's, that the reply is in (None: the default)

    @property
    def reason(self) -> Reason:
        return self.reasons[0]

    @property
    def hands_off(self) -> bool:
        return self.kind in (DecisionKind.HANDOFF, DecisionKind.DRAFT)

    def explain(self) -> str:
        """One line for people reading a transcript (``carebot chat --explain``)."""
        return (
            f"decision: {self.kind.value} intent={self.intent or '-'} score={self.score:.2f} "
            f"margin={self.margin:.2f} emotion={self.emotion:.2f} "
            f"reason={','.join(r.value for r in self.reasons)}"
            + (f" language={self.language}" if self.language else "")
        )
