"""Settings: ``config.toml`` parsed once into typed, frozen settings.

Every key is documented in the shipped ``config.toml``. A wrong key or value fails at start with
the key, the file (and line, when it can be found) and what is allowed. Secrets never live in the
file: it names the environment variable that holds them.
"""

from __future__ import annotations

import os
import re
import string
import tomllib
from collections.abc import Iterable, Mapping
from datetime import time
from functools import cache
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Self, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from carebot.exceptions import ConfigError

Unit = Annotated[float, Field(ge=0.0, le=1.0)]
DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_HOURS = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StoreSettings(_Section):
    url: str = "sqlite+aiosqlite:///.carebot/carebot.db"
    url_env: str = "CAREBOT_DATABASE_URL"
    # PostgreSQL: the most connections one worker opens (its pool, plus one for cross-process
    # events and one for the leader's lock).
    max_connections: Annotated[int, Field(ge=4, le=500)] = 20


class MatcherSettings(_Section):
    model: str = "all-MiniLM-L6-v2"
    backend: Literal["onnx", "torch"] = "onnx"
    onnx_dir: str = ""  # the export's folder; empty: .carebot/onnx/<model name>
    threads: Annotated[int, Field(ge=0, le=256)] = 0  # 0: the cores available
    method: Literal["classifier", "nearest"] = "classifier"
    min_similarity: Unit = 0.5
    reload: bool = True  # an edited intents folder goes live without a restart
    intents_dir: str = "intents"
    cache_dir: str = ".carebot/cache"
    answer_threshold: Unit = 0.5
    draft_threshold: Unit = 0.25
    clarify_margin: Unit = 0.1
    top_k: Annotated[int, Field(ge=2, le=10)] = 3


class EmotionSettings(_Section):
    threshold: Unit = 0.5
    head: bool = True  # the emotion head over the message embedding (trained on data/care)
    # its weights file; empty: the packaged head of [matcher] model (carebot/nlu/data/
    # emotion_head.npz for all-MiniLM-L6-v2, emotion_head_use.npz for use-multilingual)
    head_weights: str = ""
    # the head's output that is the signal ("upset" for the packaged care head; a head trained
    # on GoEmotions has "negative" and "anger"); checked against the head at start
    target: str = "upset"
    # the head's output for "frustrated but still asking" (mild or upset); at or above
    # mild_threshold (and below threshold) an answer gets [messages] frustrated_answer; 0: off
    mild_target: str = "frustrated"
    mild_threshold: Unit = 0.5
    shouting: Unit = 0.0
    exclamations: Unit = 0.0
    # words that set the signal to at least 0.9: one list for every message, or a list per
    # language ({"en": [...], "de": [...]}: a message is matched against its language's)
    escalation_words: tuple[str, ...] | Mapping[str, tuple[str, ...]] = (
        "lawyer",
        "attorney",
        "sue",
        "court",
        "chargeback",
        "scam",
    )

    @field_validator("escalation_words")
    @classmethod
    def _escalation_languages(
        cls, value: tuple[str, ...] | Mapping[str, tuple[str, ...]]
    ) -> tuple[str, ...] | Mapping[str, tuple[str, ...]]:
        if isinstance(value, Mapping):
            table_codes(value, "emotion.escalation_words")
        return value

    def escalation_words_in(self, language: str | None) -> tuple[str, ...]:
        """The escalation words a message in ``language`` is matched against: the one list, or
        that language's (none for a language without a list; every list's for None)."""
        words = self.escalation_words
        if not isinstance(words, Mapping):
            return words
        if language is None:
            return tuple(word for listed in words.values() for word in listed)
        return tuple(words.get(language, ()))


# ---- texts said in several languages: a table of customer-facing texts ([messages],
# [webchat.texts]) and its per-language tables ([messages.de], [webchat.texts.fr]). A language's
# table gives some or all of the texts; one it leaves out is said as the main table writes it.


@cache
def language_codes() -> tuple[str, ...]:
    """The ISO 639-1 codes (lower case) of the languages detection knows (carebot/nlu/
    language.py): those a config or an intent file may name."""
    from lingua import Language

    return tuple(sorted(language.iso_code_639_1.name.lower() for language in Language.all()))


def language_code(value: str) -> str:
    """An ISO 639-1 code that language detection knows, lower case."""
    code = value.strip().lower()
    known = language_codes()
    if code not in known:
        raise ValueError(
            f"{value!r} is not a language code detection knows; use a two-letter ISO 639-1 "
            f"code: {', '.join(known)}"
        )
    return code


def table_codes(codes: Iterable[str], table: str) -> None:
    """Each of ``codes`` (of ``[<table>.<code>]`` tables) a language code, written in lower
    case; else a ValueError saying which."""
    for code in codes:
        if language_code(code) != code:
            raise ValueError(f"write the code in lower case: [{table}.{code.lower()}]")


class LanguageTables(BaseModel):
    """A table of texts with ``[<TABLE>.<code>]`` tables saying them in other languages (kept
    under ``languages``). Subclasses set ``TABLE`` to the name config.toml gives the table."""

    TABLE: ClassVar[str]

    # [<TABLE>.<code>] tables (ISO 639-1): these texts in another language; a text a table
    # leaves out is said as the main table writes it
    languages: Mapping[str, Mapping[str, str]] = Field(default_factory=dict)
    _in_language: dict[str, Self] = PrivateAttr(default_factory=dict)

    def in_language(self, code: str | None) -> Self:
        """These texts in ``code``: its table's texts, and the others as they are; themselves
        for a language without a table (and for None)."""
        return self._in_language.get(code or "", self)

    def texts(self) -> dict[str, str]:
        """Every text by its key (the language tables left out)."""
        return {name: getattr(self, name) for name in self.text_names()}

    def untranslated(self, code: str) -> list[str]:
        """The texts ``code``'s table does not give (said as the main table writes them); an
        empty text (a notice turned off) needs no translation."""
        given = self.languages.get(code, {})
        return [name for name, text in self.texts().items() if text and name not in given]

    @classmethod
    def text_names(cls) -> list[str]:
        return [name for name in cls.model_fields if name != "languages"]

    @model_validator(mode="before")
    @classmethod
    def _gather_languages(cls, data: Any) -> Any:
        """``[messages.de]`` arrives as a table inside ``[messages]``: kept under ``languages``."""
        if not isinstance(data, dict):
            return data
        tables = {key: value for key, value in data.items() if isinstance(value, dict)}
        if not tables:
            return data
        texts = {key: value for key, value in data.items() if key not in tables}
        return {**texts, "languages": {**texts.get("languages", {}), **tables}}

    @model_validator(mode="after")
    def _build_languages(self) -> Self:
        own = self.texts()
        for code, texts in self.languages.items():
            table = f"[{self.TABLE}.{code}]"
            try:
                table_codes([code], self.TABLE)
            except ValueError as exc:
                raise ValueError(f"{table}: {exc}") from None
            unknown = sorted(set(texts) - set(own))
            if unknown:
                raise ValueError(
                    f"{table} {unknown[0]!r}: unknown key; the keys are those of [{self.TABLE}]"
                )
            try:
                said = type(self).model_validate({**own, **texts})
            except ValidationError as exc:
                first = exc.errors()[0]
                field = ".".join(str(part) for part in first["loc"])
                message = first["msg"].removeprefix("Value error, ")
                raise ValueError(f"{table} {field!r}: {message}") from None
            self._in_language[code] = said
        return self


class LanguageThresholds(_Section):
    """``[languages.thresholds.<code>]``: the matcher's thresholds for customers placed in a
    language (each absent one: ``[matcher]``'s)."""

    answer_threshold: Unit | None = None
    draft_threshold: Unit | None = None


class LanguageSettings(_Section):
    """Which languages customers are told apart in (README, "Languages")."""

    # the language of a customer the bot cannot place (ISO 639-1)
    default: str = "en"
    # the languages told apart; fewer than two: every message is in `default`
    detect: tuple[str, ...] = ()
    # how sure detection must be to say a message is in a language; below it (and in a message
    # with fewer than `min_letters` letters: "ok", "thx"), the conversation keeps its language
    min_confidence: Unit = 0.5
    # ...or lead the next language by this factor ("can I cancel my order": English 0.42,
    # Spanish 0.22 among en, de, fr, es)
    min_lead: Annotated[float, Field(ge=1.0, le=100.0)] = 1.5
    min_letters: Annotated[int, Field(ge=1, le=200)] = 10
    # an intent with no answer in the customer's language: "default" answers in `default`'s,
    # after [messages] untranslated_answer in theirs; "handoff" hands them to a person
    missing_answer: Literal["default", "handoff"] = "default"
    # [languages.thresholds.<code>]: answer and draft thresholds for customers placed in a
    # language (a multilingual model is not as sure in every language)
    thresholds: Mapping[str, LanguageThresholds] = Field(default_factory=dict)

    @field_validator("thresholds")
    @classmethod
    def _threshold_codes(
        cls, value: Mapping[str, LanguageThresholds]
    ) -> Mapping[str, LanguageThresholds]:
        table_codes(value, "languages.thresholds")
        return value

    @field_validator("default")
    @classmethod
    def _default_code(cls, value: str) -> str:
        return language_code(value)

    @field_validator("detect")
    @classmethod
    def _detect_codes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        codes = tuple(language_code(code) for code in value)
        if len(set(codes)) != len(codes):
            raise ValueError(f"a language is listed twice: {list(value)}")
        return codes

    @model_validator(mode="after")
    def _default_detected(self) -> LanguageSettings:
        if len(self.detect) >= 2 and self.default not in self.detect:
            raise ValueError(
                f"default {self.default!r} must be one of the languages in detect "
                f"{list(self.detect)}"
            )
        return self


class TriageSettings(_Section):
    human_intent: str = "talk_to_human"
    human_phrases: tuple[str, ...] = ("human", "real person", "agent", "operator")
    rephrase_first: bool = True
    # A frustrated customer ([emotion] mild band) the bot does not understand: asked to
    # rephrase like anyone (true), or handed to a person at once (false)
    rephrase_frustrated: bool = False
    # While a customer waits for a person: confident FAQ answers are still sent...
    answer_while_waiting: bool = True
    # ...except for intents with one of these tags (they get the acknowledgement instead).
    not_answered_while_waiting: tuple[str, ...] = ("smalltalk",)
    # Phrases with which a waiting customer says they no longer need a person.
    withdraw_phrases: tuple[str, ...] = (
        "never mind",
        "nevermind",
        "forget it",
        "no need anymore",
        "not needed anymore",
        "no longer need",
        "don't need help anymore",
        "figured it out",
        "sorted it",
        "all sorted",
        "problem solved",
    )
    # A longer message says more than "never mind": it does not withdraw.
    withdraw_max_words: Annotated[int, Field(ge=1, le=100)] = 10
    # Intents with one of these tags are small talk (greetings, thanks): answering them does
    # not answer a question (no "did that answer?", and no bot resolution on its own).
    small_talk_tags: tuple[str, ...] = ("smalltalk",)


class SurveySettings(_Section):
    """What customers are asked: "did that answer your question?" after a bot answer, and a
    1-5 rating once a conversation is resolved."""

    # always / low_margin (only when the answer's margin is below `low_margin`) / never
    helpful: Literal["always", "low_margin", "never"] = "always"
    low_margin: Unit = 0.3
    rating: bool = True  # ask for a rating after a resolution (once per conversation)
    # A reply counts as the answer to a question only within this many hours of it.
    reply_hours: Annotated[float, Field(gt=0, le=24 * 30)] = 24.0
    # Typed replies to "did that answer?" (a short message starting with one of these words).
    # (in the languages the shipped messages speak: a customer types "ja" or "oui" as well)
    yes_words: tuple[str, ...] = (
        *("yes", "yeah", "yep", "yup", "y", "sure", "correct", "it did"),
        *("ja", "jawohl", "genau", "oui", "sí", "si", "claro"),
    )
    no_words: tuple[str, ...] = (
        *("no", "nope", "nah", "n", "not really", "it didn't"),
        *("nein", "nicht wirklich", "non", "pas vraiment", "no realmente"),
    )
    max_words: Annotated[int, Field(ge=1, le=50)] = 6  # a longer message is a new question


class InsightSettings(_Section):
    """How care leads' numbers are worked out (README, "Insight")."""

    # a bot answer followed by this many hours without a request counts as resolved
    assume_resolved_hours: Annotated[float, Field(gt=0, le=24 * 30)] = 24.0
    # what a contact handled by a person costs (the README explains the default)
    cost_per_contact: Annotated[float, Field(ge=0, le=1_000_000)] = 8.0
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] = "USD"


class MetricsSettings(_Section):
    """``/metrics`` in the Prometheus text format."""

    enabled: bool = False
    # the environment variable holding a bearer token scrapers must send; empty: no token
    token_env: Annotated[str, Field(pattern=r"^([A-Za-z_][A-Za-z0-9_]*)?$")] = ""
    # the headline gauges are over conversations started in the last this many days
    window_days: Annotated[float, Field(gt=0, le=366)] = 7.0


class WaitingSettings(_Section):
    """What a customer waiting for a person is told, and how the expected wait is estimated."""

    # A waiting customer's message gets an acknowledgement once per handoff, and again when
    # they write this many minutes after the last one.
    ack_repeat_minutes: Annotated[float, Field(gt=0, le=24 * 60)] = 30.0
    # The expected wait: the median business-hours time to the first agent reply of the
    # latest `estimate_handoffs` handoffs of the last `estimate_days` days...
    estimate_days: Annotated[float, Field(gt=0, le=365)] = 14.0
    estimate_handoffs: Annotated[int, Field(ge=1, le=10000)] = 200
    # ...when at least this many were answered (else no number is given).
    estimate_min_samples: Annotated[int, Field(ge=1, le=10000)] = 5


Weight = Annotated[float, Field(ge=0, le=1000)]


class PrioritySettings(_Section):
    """How urgent a handoff is: the largest weight of its reasons, plus ``emotion_weight``
    times its emotion signal (0..1). The queue shows the highest priority first."""

    bot_error: Weight = 6.0
    emotional: Weight = 6.0
    public_complaint: Weight = 5.0
    asked_for_human: Weight = 5.0
    sensitive_intent: Weight = 4.0
    repeated_failure: Weight = 4.0
    no_answer: Weight = 3.0
    ambiguous: Weight = 2.0
    below_threshold: Weight = 2.0
    not_helpful: Weight = 3.0
    frustrated: Weight = 2.0
    clarified: Weight = 1.0
    confident: Weight = 1.0
    not_public: Weight = 2.0
    shadow: Weight = 1.0
    moved_private: Weight = 1.0
    praise: Weight = 0.0
    chatter: Weight = 0.0
    spam: Weight = 0.0
    emotion_weight: Weight = 4.0

    def weight(self, reason: str) -> float:
        """The weight of a reason code (0 for one that is not a triage reason, such as an
        agent's own take-over)."""
        if reason == "emotion_weight" or reason not in type(self).model_fields:
            return 0.0
        return float(getattr(self, reason))


class BusinessHoursSettings(_Section):
    timezone: str = "UTC"
    monday: str = "09:00-18:00"
    tuesday: str = "09:00-18:00"
    wednesday: str = "09:00-18:00"
    thursday: str = "09:00-18:00"
    friday: str = "09:00-18:00"
    saturday: str = ""
    sunday: str = ""

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(
                f"unknown time zone {value!r} (use an IANA name such as 'Europe/Berlin')"
            ) from exc
        return value

    @field_validator(*DAYS)
    @classmethod
    def _hours_range(cls, value: str) -> str:
        if value and not _HOURS.match(value):
            raise ValueError(f"{value!r} is not a range like '09:00-18:00' (empty means closed)")
        return value

    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def opening(self, weekday: int) -> tuple[time, time] | None:
        """Opening and closing time on a weekday (0 = Monday), or None when closed."""
        value = getattr(self, DAYS[weekday])
        if not value:
            return None
        start, end = value.split("-")
        close = time.max if end == "24:00" else time.fromisoformat(end)
        return time.fromisoformat(start), close


# The messages that are filled in, and the placeholders each may use.
PLACEHOLDERS: Mapping[str, tuple[str, ...]] = {
    "handoff_closed": ("next_open",),
    "clarify": ("options",),
    "waiting_ack": ("wait",),
    "waiting_ack_closed": ("next_open",),
    "frustrated_answer": ("answer",),
    "untranslated_answer": ("answer",),
    "agent_joined": ("agent",),
    "agent_transferred": ("agent",),
    "resolved": ("agent",),
    "helpful_no_closed": ("next_open",),
    "bot_intro": ("bot_name",),
    "next_open_today": ("time",),
    "next_open_tomorrow": ("time",),
    "next_open_later": ("day", "time"),
    "wait_minutes": ("count",),
    "wait_hours": ("count",),
}
Notice = Annotated[str, Field(min_length=0)]  # a message that may be turned off (empty)


class MessageSettings(LanguageTables, _Section):
    TABLE = "messages"
    model_config = ConfigDict(extra="forbid", frozen=True, str_min_length=1)

    # Put before the bot's first message of every conversation; empty: never said.
    bot_intro: Notice = (
        "Hi, I'm {bot_name}, an automated assistant. A person from our team can take over "
        "whenever you ask."
    )
    # The handoff messages say that a person takes over (the bot never passes for one).
    handoff: str = "Thanks, I'm passing you to a person from our team, who will reply here shortly."
    handoff_closed: str = (
        "Thanks, I'm passing you to a person from our team. We're offline right now and will "
        "reply here from {next_open}."
    )
    holding: str = "Let me check that with a colleague; you'll get an answer here shortly."
    clarify: str = "Did you mean {options}?"
    clarify_or: str = "or"  # between the last two of clarify's options
    rephrase: str = "Sorry, I'm not sure I understood. Could you say it in other words?"
    fallback: str = "Sorry, something went wrong on our side. A colleague will get back to you."
    welcome: str = "Ask me about orders, deliveries, returns or your account."
    media_only: str = (
        "Sorry, I can only read text here. Please type your question, or ask for a person."
    )
    # an intent answer that exists only in [languages] default's language, to a customer
    # writing in another ([languages] missing_answer = "default"); set it in each
    # [messages.<code>] table, in that language
    untranslated_answer: str = "{answer}"
    # an intent answer to a customer who sounds frustrated ([emotion] mild_threshold)
    frustrated_answer: str = (
        "{answer}\n\nI'm sorry this has been frustrating. If this doesn't solve it, just ask "
        "for a person and a colleague will take over."
    )
    waiting_ack: str = (
        "Thanks, a colleague has your conversation and will reply here. "
        "Our team usually answers within {wait}."
    )
    waiting_ack_unknown: str = (
        "Thanks, a colleague has your conversation and will reply here as soon as they can."
    )
    waiting_ack_closed: str = (
        "Thanks, a colleague has your conversation. Our team is offline right now and will "
        "reply here from {next_open}."
    )
    waiting_answer_suffix: str = "A colleague will still follow up here."
    withdrawn: str = (
        "Alright, I've told my colleagues you no longer need them. "
        "If you still want a person, just say so."
    )
    # What the customer is told when an agent takes the conversation, when another agent takes
    # it from them, and when an agent hands it back to the bot. Empty: nothing is said.
    agent_joined: Notice = "{agent} from our team has joined the conversation."
    agent_transferred: Notice = "{agent} has joined the conversation."
    resolved: Notice = (
        "{agent} has marked this conversation as resolved. I'm the assistant again: ask me "
        "anything, or ask for a person."
    )

    # After a bot answer ([survey] helpful), with Yes / No buttons where the channel has them.
    helpful_question: str = "Did that answer your question?"
    helpful_yes_button: str = "Yes"
    helpful_no_button: str = "No"
    helpful_yes: str = "Great, glad I could help!"
    # "No": a person is asked to take over (reason not_helpful).
    helpful_no: str = (
        "Sorry that didn't help. I'm passing you to a person from our team, who will reply here."
    )
    helpful_no_closed: str = (
        "Sorry that didn't help. I'm passing you to a person from our team; we're offline right "
        "now and will reply here from {next_open}."
    )
    # After a resolution ([survey] rating), with buttons 1-5 where the channel has them.
    rating_request: str = (
        "How would you rate this conversation? Reply with a number from 1 (poor) to 5 (great); "
        "you can add a comment after it."
    )
    rating_thanks: str = "Thank you for your rating!"

    # How {next_open} is written (the time zone follows in brackets), and {wait}.
    next_open_today: str = "today at {time}"
    next_open_tomorrow: str = "tomorrow at {time}"
    next_open_later: str = "{day} at {time}"
    day_names: str = "Monday, Tuesday, Wednesday, Thursday, Friday, Saturday, Sunday"
    next_open_never: str = "as soon as possible"
    wait_one_minute: str = "about a minute"
    wait_minutes: str = "about {count} minutes"
    wait_one_hour: str = "about an hour"
    wait_hours: str = "about {count} hours"

    def intro(self, bot_name: str) -> str:
        """``bot_intro`` filled in with the bot's name (``[bot] name``); empty when turned off."""
        return self.bot_intro.format(bot_name=bot_name).strip()

    def intros(self, bot_name: str) -> dict[str, str]:
        """:meth:`intro` by language code ("": the default's), for the store."""
        said = {code: self.in_language(code).intro(bot_name) for code in self.languages}
        return {"": self.intro(bot_name), **said}

    @field_validator("day_names")
    @classmethod
    def _seven_days(cls, value: str) -> str:
        names = [name.strip() for name in value.split(",")]
        if len(names) != 7 or not all(names):
            raise ValueError("must name the seven days from Monday, separated by commas")
        return value

    def day_name(self, weekday: int) -> str:
        """The name of ``weekday`` (0: Monday) in these texts' language."""
        return self.day_names.split(",")[weekday].strip()

    @field_validator("frustrated_answer", "untranslated_answer")
    @classmethod
    def _keeps_answer(cls, value: str) -> str:
        if "{answer}" not in value:
            raise ValueError("must contain {answer}, where the intent's answer goes")
        return value

    @field_validator(*PLACEHOLDERS)
    @classmethod
    def _known_placeholders(cls, value: str, info: ValidationInfo) -> str:
        allowed = PLACEHOLDERS[str(info.field_name)]
        try:
            used = {name for _, name, _, _ in string.Formatter().parse(value) if name is not None}
        except ValueError as exc:
            raise ValueError(f"{exc} (write a literal brace as {{{{ or }}}})") from exc
        unknown = sorted(used - set(allowed))
        if unknown:
            shown = ", ".join(f"{{{name}}}" for name in allowed)
            raise ValueError(f"unknown placeholder {{{unknown[0]}}}; this text may use {shown}")
        return value


class ServerSettings(_Section):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 8080
    secret_env: str = "CAREBOT_SECRET_KEY"
    secret_file: str = ".carebot/secret_key"
    shutdown_timeout: Annotated[float, Field(gt=0, le=300)] = 10.0
    drain_seconds: Annotated[float, Field(ge=0, le=300)] = 0.0  # /readyz 503 before closing
    public_url: Annotated[str, Field(pattern=r"^(https?://[^/?#]+(/[^?#]*)?)?$")] = ""
    workers: Annotated[int, Field(ge=1, le=64)] = 1  # serve's processes on this machine
    machines: Annotated[int, Field(ge=1, le=100)] = 1  # machines serving from this database
    secure_cookies: bool = False  # cookies marked Secure even when the request came over HTTP
    forwarded_for: bool = False  # the client's address is the last X-Forwarded-For entry

    @property
    def total_workers(self) -> int:
        """The worker processes serving from one database, on every machine."""
        return self.workers * self.machines


_PLACEHOLDER = re.compile(r"\{(\w*)\}")
# The web chat texts that have {placeholders}, and which; the others have none.
WEBCHAT_PLACEHOLDERS: dict[str, frozenset[str]] = {
    "offline": frozenset({"next_open"}),
    "agent_typing": frozenset({"agent"}),
    "too_long": frozenset({"length", "limit"}),
    "unread_many": frozenset({"count"}),
    "contact_too_long": frozenset({"limit"}),
}


def fill(template: str, **values: object) -> str:
    """``template`` with each ``{name}`` replaced by ``values[name]``; anything else is kept as
    written (the web chat widget fills the same templates the same way)."""
    return _PLACEHOLDER.sub(
        lambda m: str(values[m.group(1)]) if m.group(1) in values else m.group(0), template
    )


class WebChatTexts(LanguageTables, _Section):
    """Every text of the web chat widget but the conversation itself (config.toml says where
    each one shows), and ``[webchat.texts.<code>]`` tables saying them in other languages."""

    TABLE = "webchat.texts"
    model_config = ConfigDict(extra="forbid", frozen=True, str_min_length=1)

    title: str = "Chat with us"
    online: str = "Online \u2013 we usually reply within minutes"
    offline: str = "Offline \u2013 back {next_open}"
    open_chat: str = "Open chat"
    unread_one: str = "Open chat, 1 new message"
    unread_many: str = "Open chat, {count} new messages"
    close_chat: str = "Close chat"
    conversation: str = "Conversation"
    care_team: str = "Care team"
    suggested_replies: str = "Suggested replies"
    typing: str = "Typing\u2026"
    agent_typing: str = "{agent} is typing\u2026"
    your_message: str = "Your message"
    placeholder: str = "Type your message..."
    send: str = "Send message"
    connecting: str = "Connecting..."
    reconnecting: str = "Reconnecting..."
    too_long: str = "Your message is {length} characters; the limit is {limit}. Please shorten it."
    empty: str = "Your message is empty."
    rate_limited: str = (
        "You are sending messages faster than we can take them. "
        "Please wait a moment, then tap Retry."
    )
    unavailable: str = "We could not take your message right now. Please try again in a moment."
    failed: str = "Something went wrong sending your message. Please try again."
    expired: str = "Your chat session has expired. Please reload the page."
    not_sent: str = "Not sent"
    retry: str = "Retry"
    contact_leave: str = "Leave your contact details"
    contact_update: str = "Update your contact details"
    contact_title: str = "Your contact details"
    contact_intro: str = (
        "Optional: lets our team recognise you on WhatsApp, Telegram or e-mail too."
    )
    contact_name: str = "Name"
    contact_phone: str = "Phone"
    contact_phone_example: str = "+44 20 7946 0958"
    contact_email: str = "E-mail"
    contact_email_example: str = "name@example.com"
    contact_cancel: str = "Cancel"
    contact_save: str = "Save"
    contact_saving: str = "Saving..."
    contact_saved: str = "Thanks, we saved your details."
    contact_missing: str = "Please fill in at least one field."
    contact_bad_email: str = "Please check the e-mail address (like name@example.com)."
    contact_too_long: str = "That is too long: {limit} characters at most."
    contact_failed: str = "We could not save your details. Please try again."
    prechat_title: str = "Before we start"
    prechat_intro: str = (
        "Tell us who you are, so our team can reach you and recognise you on other channels."
    )
    prechat_start: str = "Start chat"
    prechat_skip: str = "Skip"
    prechat_missing: str = "Please fill in every field to start the chat."
    prechat_required: str = "Please tell us who you are (the form below) before you write to us."

    @field_validator("*")
    @classmethod
    def _known_placeholders(cls, value: object, info: ValidationInfo) -> object:
        if not isinstance(value, str):
            return value  # the language tables: each checked as a whole table of texts
        allowed = WEBCHAT_PLACEHOLDERS.get(str(info.field_name), frozenset())
        unknown = sorted(set(_PLACEHOLDER.findall(value)) - allowed)
        if unknown:
            names = ", ".join(f"{{{name}}}" for name in sorted(allowed)) or "none"
            raise ValueError(f"unknown placeholder {{{unknown[0]}}} (allowed here: {names})")
        return value


PrechatMode = Literal["off", "optional", "required"]


class WebChatSettings(_Section):
    enabled: bool = True
    # The widget's header says whether the care team is at work ([business_hours]).
    show_status: bool = True
    max_message_chars: Annotated[int, Field(ge=1, le=20000)] = 2000
    token_days: Annotated[int, Field(ge=1, le=3650)] = 30
    history_limit: Annotated[int, Field(ge=0, le=1000)] = 100
    messages_per_minute: Annotated[int, Field(ge=1, le=10000)] = 30
    allowed_origins: tuple[str, ...] = ()
    # A form before the first message (the visitor's name, e-mail...): "off", "optional" (the
    # visitor may skip it; a site may switch it off or make it required with data-prechat on
    # its script tag) or "required" (on every site: no message is taken before it is filled).
    prechat: PrechatMode = "off"
    prechat_fields: tuple[Literal["name", "email", "phone"], ...] = ("name", "email")
    texts: WebChatTexts = WebChatTexts()

    @field_validator("prechat_fields")
    @classmethod
    def _some_fields_once(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError('name at least one field, e.g. ["name", "email"]')
        if len(set(value)) != len(value):
            raise ValueError(f"each field once: {list(value)!r}")
        return value

    def prechat_for(self, asked: object) -> PrechatMode:
        """The pre-chat mode on a site that asked for ``asked`` (its data-prechat attribute):
        "optional" lets the site choose; "off" and "required" hold on every site."""
        if self.prechat == "optional" and asked in get_args(PrechatMode):
            return asked  # type: ignore[return-value]
        return self.prechat


TeamName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
SlackUser = Annotated[str, Field(pattern=r"^[UW][A-Z0-9]{2,}$")]
SlackChannel = Annotated[str, Field(pattern=r"^([CG][A-Z0-9]{2,})?$")]


class AgentSettings(_Section):
    """One agent: their inbox login, their Slack user and the teams they work in."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.@-]{1,64}$")]
    display_name: str = ""
    password_hash: str = ""
    password_hash_env: str = ""
    # agent: the inbox; lead: /insights and the conversation export; ops: the intents
    roles: tuple[Literal["agent", "lead", "ops"], ...] = ("agent",)
    # the same person in Slack (their user id, e.g. U012AB3CD): one agent on both desks
    slack_user_id: SlackUser | Literal[""] = ""
    teams: tuple[TeamName, ...] = ()  # the [[teams]] they belong to, by name

    @model_validator(mode="after")
    def _one_password_source(self) -> AgentSettings:
        if self.password_hash and self.password_hash_env:
            raise ValueError(
                f"agent {self.name!r} has both password_hash and password_hash_env; keep one"
            )
        if not (self.password_hash or self.password_hash_env or self.slack_user_id):
            raise ValueError(
                f"agent {self.name!r} needs password_hash (an argon2 hash from "
                "'carebot inbox hash-password') or password_hash_env to log in to the inbox, "
                "or slack_user_id for an agent who works in Slack only"
            )
        return self

    @property
    def can_log_in(self) -> bool:
        """Whether the agent has an inbox password (a Slack-only agent has none)."""
        return bool(self.password_hash or self.password_hash_env)

    @property
    def label(self) -> str:
        return self.display_name or self.name


class InboxSettings(_Section):
    session_hours: Annotated[float, Field(gt=0, le=24 * 30)] = 12.0
    # Failed logins (per agent name and per client address) before a temporary lock.
    max_failed_logins: Annotated[int, Field(ge=1, le=100)] = 5
    lockout_minutes: Annotated[float, Field(gt=0, le=24 * 60)] = 15.0
    agents: tuple[AgentSettings, ...] = ()


class SlackSettings(_Section):
    bot_token_env: str = "SLACK_BOT_TOKEN"
    signing_secret_env: str = "SLACK_SIGNING_SECRET"
    app_token_env: str = "SLACK_APP_TOKEN"
    channel: SlackChannel = ""
    api_url: Annotated[str, Field(pattern=r"^https?://")] = "https://slack.com/api/"
    agents: tuple[SlackUser, ...] = ()
    reminder_minutes: Annotated[float, Field(gt=0, le=24 * 60)] = 10.0
    posts_per_second: Annotated[float, Field(gt=0, le=1000)] = 1.0
    members_cache_seconds: Annotated[float, Field(ge=0, le=86400)] = 300.0


DEFAULT_TEAM = "care"  # the one team of a config without [[teams]]


class TeamSettings(_Section):
    """A team that takes handoffs: its Slack channel, its members, its hours and its
    first-response target (README, "Teams")."""

    name: TeamName
    display_name: str = ""
    # its Slack channel; empty: [slack] channel
    slack_channel: SlackChannel = ""
    # agent names ([[inbox.agents]] name); agents may also list the team in their own `teams`.
    # A team with no members at all: the members of its Slack channel may act on its handoffs.
    members: tuple[str, ...] = ()
    # its own hours; absent: [business_hours]
    business_hours: BusinessHoursSettings | None = None
    # the first agent reply is due this many business-hours minutes after the handoff; 0: none
    first_response_minutes: Annotated[float, Field(ge=0, le=7 * 24 * 60)] = 0.0
    # Slack reminds the team's channel this many minutes before the target is breached
    remind_before_minutes: Annotated[float, Field(ge=0, le=24 * 60)] = 5.0
    # new handoffs are assigned in turn to the team's members who are available
    round_robin: bool = False

    @property
    def label(self) -> str:
        return self.display_name or self.name


Visibility = Literal["any", "public", "private"]


class RouteRule(_Section):
    """One routing rule: a handoff matching every condition given goes to ``team`` (the first
    matching rule wins). A list matches when any of its items does; an empty list is no
    condition."""

    team: TeamName
    name: str = ""  # shown to agents ("which rule matched"); empty: "rule N"
    intents: tuple[str, ...] = ()  # the handoff's best intent is one of these
    intent_tags: tuple[str, ...] = ()  # ...or carries one of these tags
    channels: tuple[str, ...] = ()  # telegram, whatsapp, messenger, instagram, webchat, webhook
    reasons: tuple[str, ...] = ()  # handoff reason codes (emotional, asked_for_human, ...)
    words: tuple[str, ...] = ()  # words or phrases anywhere in the customer's message
    visibility: Visibility = "any"  # public comments vs private messages
    customer_ids: tuple[int, ...] = ()  # customer numbers (a VIP list)
    email_domains: tuple[str, ...] = ()  # a customer e-mail address at one of these domains
    # the customer's language ([languages] detect; ISO 639-1): one that was never placed
    # matches no rule with languages
    languages: tuple[str, ...] = ()

    @field_validator("languages")
    @classmethod
    def _language_codes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(language_code(code) for code in value)


class RoutingSettings(_Section):
    """Which team gets a handoff: the first rule that matches, else ``default_team``."""

    default_team: str = ""  # empty: the first of [[teams]]
    rules: tuple[RouteRule, ...] = ()


class BotSettings(_Section):
    """Who the bot says it is ([messages] bot_intro's {bot_name})."""

    name: Annotated[str, Field(min_length=1, max_length=80)] = "carebot"


Rate = Annotated[float, Field(gt=0, le=1000)]
EnvName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]


class TelegramSettings(_Section):
    enabled: bool = False
    token_env: EnvName = "TELEGRAM_BOT_TOKEN"
    mode: Literal["polling", "webhook"] = "polling"
    webhook_secret_env: EnvName = "TELEGRAM_WEBHOOK_SECRET"
    api_url: Annotated[str, Field(pattern=r"^https?://")] = "https://api.telegram.org/bot"
    file_url: Annotated[str, Field(pattern=r"^https?://")] = "https://api.telegram.org/file/bot"
    groups: bool = False
    poll_timeout: Annotated[float, Field(ge=0, le=50)] = 30.0
    per_chat_per_second: Rate = 1.0
    overall_per_second: Rate = 30.0


class MetaSettings(_Section):
    verify_token_env: EnvName = "META_VERIFY_TOKEN"
    app_secret_env: EnvName = "META_APP_SECRET"
    graph_url: Annotated[str, Field(pattern=r"^https?://")] = "https://graph.facebook.com"
    api_version: Annotated[str, Field(pattern=r"^v\d+\.\d+$")] = "v21.0"
    reply_window_hours: Annotated[float, Field(gt=0, le=24 * 30)] = 24.0
    window_warning_minutes: Annotated[float, Field(ge=0, le=24 * 60)] = 60.0
    per_recipient_per_second: Rate = 1.0
    overall_per_second: Rate = 50.0


class MetaChannelSettings(_Section):
    """One Meta channel: ``account_id`` is the WhatsApp phone number id, the Facebook page id or
    the Instagram professional account id."""

    enabled: bool = False
    account_id: Annotated[str, Field(pattern=r"^[0-9]*$")] = ""
    token_env: EnvName = ""

    @model_validator(mode="after")
    def _account_when_enabled(self) -> MetaChannelSettings:
        if self.enabled and not self.account_id:
            raise ValueError("account_id is required when the channel is enabled")
        return self


class WhatsAppSettings(MetaChannelSettings):
    token_env: EnvName = "WHATSAPP_TOKEN"


class MessengerSettings(MetaChannelSettings):
    token_env: EnvName = "MESSENGER_PAGE_TOKEN"


class InstagramSettings(MetaChannelSettings):
    token_env: EnvName = "INSTAGRAM_TOKEN"


class XSettings(_Section):
    """X (API v2): mentions, replies and direct messages of the brand's account ``user_id``."""

    enabled: bool = False
    user_id: Annotated[str, Field(pattern=r"^[0-9]*$")] = ""
    username: Annotated[str, Field(pattern=r"^[A-Za-z0-9_]{0,15}$")] = ""
    consumer_secret_env: EnvName = "X_CONSUMER_SECRET"
    token_env: EnvName = "X_USER_TOKEN"
    api_url: Annotated[str, Field(pattern=r"^https?://")] = "https://api.x.com"
    monthly_call_cap: Annotated[int, Field(ge=0)] = 0  # 0: no cap
    per_recipient_per_second: Rate = 1.0
    overall_per_second: Rate = 5.0

    @model_validator(mode="after")
    def _account_when_enabled(self) -> XSettings:
        if self.enabled and not self.user_id:
            raise ValueError("user_id (the brand's X account id) is required when enabled")
        return self


PublicChannel = Literal["messenger", "instagram", "x"]


class PublicSettings(_Section):
    """Public comments and mentions: what carebot may post in public, and how."""

    # Shadow mode everywhere else: carebot decides and shows agents what it would post, and
    # posts, replies privately and hides nothing in public itself.
    live: tuple[PublicChannel, ...] = ()
    answer_threshold: Unit = 0.7  # an FAQ answer goes out in public only at this score or above
    thanks: Annotated[str, Field(max_length=500)] = ""  # to praise; "" thanks nobody
    hide_spam: bool = True  # hide spam and abuse (never delete; agents can unhide)
    bot_tag: Annotated[str, Field(max_length=60)] = "(automated reply)"
    agent_signature: Annotated[str, Field(max_length=60)] = "- {agent}"
    moved_private: Annotated[str, Field(min_length=1, max_length=500)] = (
        "We've sent you a private message so we can look into this with your details."
    )
    private_reply: Annotated[str, Field(min_length=1, max_length=1000)] = (
        "Hi, thanks for your comment on our post. We need a few details to look into it: "
        "could you reply here with your order number?"
    )
    # The brand's order number formats (regular expressions) for the personal-data guard;
    # empty: the built-in ones (#12345, "order 123456", NW-2026-00123, Bestellnummer 48213).
    order_patterns: tuple[str, ...] = ()
    # The brand's own contact details (its support address, its hotline), written exactly as
    # replies use them: the guard lets these through; every other address or number is refused.
    own_contact_details: tuple[Annotated[str, Field(min_length=3)], ...] = ()

    @field_validator("order_patterns")
    @classmethod
    def _patterns_compile(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(
                    f"order pattern {pattern!r} is not a regular expression: {exc}"
                ) from exc
        return value

    @field_validator("agent_signature")
    @classmethod
    def _known_placeholders(cls, value: str) -> str:
        unknown = {name for _, name, _, _ in string.Formatter().parse(value) if name} - {
            "agent",
            "first_name",
        }
        if unknown:
            raise ValueError(
                f"unknown placeholder {{{sorted(unknown)[0]}}}; use {{agent}} or {{first_name}}"
            )
        return value

    def shadow(self, channel: str) -> bool:
        """Whether carebot only shows agents what it would post on ``channel``."""
        return channel not in self.live

    def signed(self, text: str, agent: str) -> str:
        """An agent's public reply with the brand's signature (none when it is empty)."""
        if not self.agent_signature:
            return text
        first = agent.split()[0] if agent else ""
        mark = self.agent_signature.format(agent=agent, first_name=first)
        return f"{text} {mark}"

    def tagged(self, text: str) -> str:
        """The bot's public reply, marked as automated."""
        return f"{text} {self.bot_tag}" if self.bot_tag else text


class WebhookSettings(_Section):
    enabled: bool = False
    secret_env: EnvName = "CAREBOT_WEBHOOK_SECRET"
    reply_url: Annotated[str, Field(pattern=r"^(https?://.+)?$")] = ""
    tolerance_seconds: Annotated[float, Field(ge=1, le=3600)] = 300.0


class ConversationSettings(_Section):
    """When a conversation ends by itself, and how often that is looked for."""

    # 0: never by idleness (only an agent closes a conversation)
    idle_close_hours: Annotated[float, Field(ge=0, le=24 * 365)] = 24.0
    sweep_seconds: Annotated[float, Field(ge=1, le=24 * 3600)] = 60.0


class CustomerSettings(_Section):
    link_by: tuple[Literal["phone", "email"], ...] = ("phone", "email")


class Settings(_Section):
    """All of carebot's settings. ``source`` is the file they came from (None: defaults)."""

    store: StoreSettings = StoreSettings()
    matcher: MatcherSettings = MatcherSettings()
    emotion: EmotionSettings = EmotionSettings()
    languages: LanguageSettings = LanguageSettings()
    triage: TriageSettings = TriageSettings()
    business_hours: BusinessHoursSettings = BusinessHoursSettings()
    messages: MessageSettings = MessageSettings()
    server: ServerSettings = ServerSettings()
    webchat: WebChatSettings = WebChatSettings()
    inbox: InboxSettings = InboxSettings()
    slack: SlackSettings = SlackSettings()
    telegram: TelegramSettings = TelegramSettings()
    meta: MetaSettings = MetaSettings()
    whatsapp: WhatsAppSettings = WhatsAppSettings()
    messenger: MessengerSettings = MessengerSettings()
    instagram: InstagramSettings = InstagramSettings()
    x: XSettings = XSettings()
    public: PublicSettings = PublicSettings()
    webhook: WebhookSettings = WebhookSettings()
    customers: CustomerSettings = CustomerSettings()
    bot: BotSettings = BotSettings()
    teams: tuple[TeamSettings, ...] = ()
    routing: RoutingSettings = RoutingSettings()
    conversations: ConversationSettings = ConversationSettings()
    waiting: WaitingSettings = WaitingSettings()
    priority: PrioritySettings = PrioritySettings()
    survey: SurveySettings = SurveySettings()
    insight: InsightSettings = InsightSettings()
    metrics: MetricsSettings = MetricsSettings()
    placeholders: Mapping[str, str] = Field(default_factory=dict)
    # [placeholders.<code>]: values in another language, for answers in it ("opening_hours")
    placeholder_languages: Mapping[str, Mapping[str, str]] = Field(default_factory=dict)
    source: Path | None = None

    @model_validator(mode="before")
    @classmethod
    def _gather_placeholder_languages(cls, data: Any) -> Any:
        """``[placeholders.de]`` arrives as a table under ``placeholders``."""
        if not isinstance(data, dict) or not isinstance(data.get("placeholders"), dict):
            return data
        values = data["placeholders"]
        tables = {key: value for key, value in values.items() if isinstance(value, dict)}
        if not tables:
            return data
        plain = {key: value for key, value in values.items() if key not in tables}
        return {**data, "placeholders": plain, "placeholder_languages": tables}

    @model_validator(mode="after")
    def _placeholder_languages_known(self) -> Settings:
        for code, values in self.placeholder_languages.items():
            if code not in language_codes():
                raise ValueError(f"[placeholders.{code}]: {code!r} is not a language code")
            unknown = sorted(set(values) - set(self.placeholders))
            if unknown:
                raise ValueError(
                    f"[placeholders.{code}] {unknown[0]!r}: not a placeholder of [placeholders] "
                    "(a table gives other languages' values of those)"
                )
        return self

    def placeholders_in(self, language: str | None) -> dict[str, str]:
        """The placeholders' values for an answer in ``language`` (None: the default's)."""
        return {**self.placeholders, **self.placeholder_languages.get(language or "", {})}

    @model_validator(mode="after")
    def _teams_fit_together(self) -> Settings:
        teams = [team.name for team in self.teams]
        known = set(teams) or {DEFAULT_TEAM}
        repeated = sorted({name for name in teams if teams.count(name) > 1})
        if repeated:
            raise ValueError(f"[[teams]] name {repeated[0]!r} is used twice; names must differ")
        agents = {agent.name for agent in self.inbox.agents}
        for team in self.teams:
            unknown = [m for m in team.members if m not in agents]
            if unknown:
                raise ValueError(
                    f"team {team.name!r}: member {unknown[0]!r} is not an agent "
                    "(add them to [[inbox.agents]])"
                )
        for agent in self.inbox.agents:
            for name in agent.teams:
                if name not in known:
                    raise ValueError(f"agent {agent.name!r}: no team is named {name!r}")
        wanted = self.routing.default_team
        if wanted and wanted not in known:
            raise ValueError(f"[routing] default_team: no team is named {wanted!r}")
        for number, rule in enumerate(self.routing.rules, start=1):
            if rule.team not in known:
                raise ValueError(f"[[routing.rules]] rule {number}: no team is named {rule.team!r}")
        return self

    def teams_in_effect(self) -> tuple[TeamSettings, ...]:
        """The configured teams; without [[teams]], one team that is today's care channel
        (``[slack] channel``, reminded after ``[slack] reminder_minutes``, no target)."""
        if self.teams:
            return self.teams
        return (TeamSettings(name=DEFAULT_TEAM, display_name="Care team"),)

    def default_team(self) -> TeamSettings:
        """The team of a handoff no rule matched."""
        teams = self.teams_in_effect()
        wanted = self.routing.default_team
        return next((t for t in teams if t.name == wanted), teams[0])

    def team(self, name: str | None) -> TeamSettings:
        """The team called ``name``; the default team for None or a name no longer configured
        (a handoff routed before the config changed)."""
        return next((t for t in self.teams_in_effect() if t.name == name), self.default_team())

    def team_members(self, name: str) -> frozenset[str]:
        """The agent names of a team: its ``members`` and the agents that list it. Empty: the
        team falls back to its Slack channel's members."""
        team = self.team(name)
        listed = {a.name for a in self.inbox.agents if team.name in a.teams}
        return frozenset(team.members) | listed

    def slack_channel(self, team: str | None) -> str:
        """The Slack channel a team's handoffs go to."""
        return self.team(team).slack_channel or self.slack.channel

    def hours_of(self, team: str | None) -> BusinessHoursSettings:
        """A team's business hours (its own, or [business_hours])."""
        return self.team(team).business_hours or self.business_hours

    @property
    def base_dir(self) -> Path:
        return self.source.parent if self.source else Path.cwd()

    def path(self, value: str) -> Path:
        """A path from the config, relative to the config file's folder."""
        p = Path(value).expanduser()
        return p if p.is_absolute() else self.base_dir / p

    def database_url(self, env: Mapping[str, str] | None = None) -> str:
        """The database URL: the named environment variable wins over ``url``.

        A relative SQLite path is resolved against the config file's folder.
        """
        env = os.environ if env is None else env
        url = env.get(self.store.url_env) or self.store.url
        prefix = "sqlite+aiosqlite:///"
        if url.startswith(prefix) and url != prefix and not url.endswith(":memory:"):
            url = prefix + str(self.path(url[len(prefix) :]))
        return url


def load_settings(path: str | os.PathLike[str] | None = None) -> Settings:
    """Read and check a config file; with no path, ``./config.toml`` if it exists, else defaults."""
    if path is None:
        default = Path("config.toml")
        if not default.exists():
            return Settings()
        path = default
    file = Path(path).resolve()
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"Cannot read config file {file}: {exc.strerror}") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: not valid TOML: {exc}") from exc
    try:
        return Settings.model_validate({**data, "source": file})
    except ValidationError as exc:
        raise ConfigError(_describe(exc, file, text)) from exc


def _describe(exc: ValidationError, file: Path, text: str) -> str:
    lines = []
    for error in exc.errors():
        loc = [str(part) for part in error["loc"]]
        if len(loc) > 1 and loc[-1].isdigit() and error["type"] != "extra_forbidden":
            loc = loc[:-1]  # an item of a list: name the list's key (the value is shown)
        key = _key_name(loc)
        where = f"{file}:{_line_of(text, loc)}" if _line_of(text, loc) else str(file)
        if error["type"] == "extra_forbidden":
            allowed = _allowed_keys(loc[:-1])
            lines.append(f"{where}: unknown key {key}. Allowed here: {', '.join(allowed)}.")
        else:
            got = error.get("input")
            shown = "" if isinstance(got, dict) else f" (got {got!r})"
            message = error["msg"].removeprefix("Value error, ")
            # [messages.<code>]'s and [placeholders.<code>]'s checks name the table themselves
            named = message.startswith(("[messages.", "[placeholders."))
            placed = _PLACED.match(message) if named else None
            if placed:
                inner = [*placed["table"].split("."), placed["key"] or ""]
                line = _line_of(text, inner) if placed["key"] else _table_line(text, inner[:-1])
                where = f"{file}:{line}" if line else str(file)
                lines.append(f"{where}: {message}{shown}.")
                continue
            lines.append(f"{where}: {key}: {message}{shown}.")
    return "Invalid configuration:\n  " + "\n  ".join(lines)


def _key_name(loc: list[str]) -> str:
    if not loc:
        return "teams and routing"  # Settings' own checks, across sections
    if len(loc) == 1:
        return f"'{loc[0]}'"
    return f"[{'.'.join(loc[:-1])}] '{loc[-1]}'"


def _allowed_keys(section: list[str]) -> list[str]:
    model: Any = Settings
    for part in section:
        if part.isdigit() or part not in model.model_fields:  # a list's index, a mapping's key
            continue
        model = model.model_fields[part].annotation
        if not hasattr(model, "model_fields"):  # tuple[AgentSettings, ...] and the like
            model = next(a for a in get_args(model) if hasattr(a, "model_fields"))
    if issubclass(model, LanguageTables):  # its tables are [<table>.<code>], not keys
        return [*model.text_names(), f"[{model.TABLE}.<code>] tables"]
    return [name for name in model.model_fields if name != "source"]


_PLACED = re.compile(r"^\[(?P<table>[\w.]+)\](?: '(?P<key>\w+)')?")


def _table_line(text: str, table: list[str]) -> int | None:
    header = f"[{'.'.join(table)}]"
    lines = text.splitlines()
    return next((n for n, line in enumerate(lines, start=1) if line.strip() == header), None)


def _line_of(text: str, loc: list[str]) -> int | None:
    """Best-effort line number of a key in the TOML text (for the error message)."""
    if not loc:
        return None
    section = ".".join(loc[:-1])
    in_section = not section
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped.startswith("["):
            in_section = stripped.strip("[] ") == section
        elif in_section and re.match(rf"{re.escape(loc[-1])}\s*=", stripped):
            return number
    return None
