"""Answers and the bot's messages in the customer's language (README, "Languages"): intent
answers and titles per language, ``[messages.<code>]`` tables, what triage says to a customer
placed in a language (and when no answer exists in it), the inbox end to end, the check's
reports, and the console carrying translations through an edit."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from carebot.config import LanguageSettings, Settings, load_settings
from carebot.exceptions import ConfigError
from carebot.hours import BusinessHours, describe_wait
from carebot.models import DecisionKind, InboundMessage, Reason
from carebot.nlu.emotion import EmotionScorer
from carebot.nlu.intent_check import check_intents, untranslated_messages
from carebot.nlu.intents import load_intents, read_intents
from carebot.nlu.matcher import Matcher
from carebot.runtime import Runtime
from carebot.triage import Triage, TriageContext
from tests.conftest import make_settings
from tests.console_forms import form_of, saved
from tests.fakes import FakeEncoder, RecordingChannel

OPEN = datetime(2026, 11, 18, 10, 0, tzinfo=UTC)  # a Wednesday morning

INTENTS = """\
intents:
  - id: order_status
    title:
      en: Order status
      de: Bestellstatus
    examples:
      - where is my order
      - track my order status
      - wo ist meine bestellung
      - bestellung verfolgen status
    answer:
      en: Track it at {tracking_url}.
      de: Verfolgen Sie sie unter {tracking_url}.
  - id: returns
    title: Returns
    examples:
      - how do I return an item
      - return policy item
      - artikel zurueckschicken ruecksendung
    answer: Returns are free within 30 days.
  - id: refunds
    title:
      en: Refunds
      de: Erstattungen
    examples:
      - refund money back
      - erstattung geld zurück
      - artikel zurueckschicken erstattung
    answer:
      en: Refunds take 5 days.
      de: Erstattungen dauern 5 Tage.
      fr: "Les remboursements prennent 5 jours : {tracking_url}."
  - id: account_deletion
    handoff: true
    examples:
      - delete my account
      - konto löschen bitte
    answer: I can delete your account for you.
"""

GERMAN = {
    "handoff": "Danke, ich gebe Sie an eine Person aus unserem Team weiter.",
    "clarify": "Meinten Sie {options}?",
    "clarify_or": "oder",
    "rephrase": "Entschuldigung, das habe ich nicht verstanden.",
    "untranslated_answer": "Leider habe ich das nur auf Englisch:\n\n{answer}",
    "bot_intro": "Hallo, ich bin {bot_name}, ein automatischer Assistent.",
    "agent_joined": "{agent} aus unserem Team ist dabei.",
    "resolved": "{agent} hat Ihr Anliegen als gelöst markiert.",
    "rating_request": "Wie zufrieden waren Sie? Antworten Sie mit 1 bis 5.",
}
FRENCH = {
    "handoff": "Merci, je vous passe à une personne de notre équipe.",
    "untranslated_answer": "Désolé, je n'ai cette réponse qu'en anglais :\n\n{answer}",
}


@pytest.fixture
def intents_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "intents"
    folder.mkdir()
    (folder / "shop.yaml").write_text(INTENTS, encoding="utf-8")
    return folder


def language_settings(tmp_path: Path, intents_dir: Path, **languages: object) -> Settings:
    return make_settings(
        tmp_path,
        matcher={"intents_dir": str(intents_dir)},
        placeholders={"fr": {"tracking_url": "https://track.example/fr"}},
        languages={"default": "en", "detect": ["en", "de", "fr"], **languages},
        messages={"de": GERMAN, "fr": FRENCH},
    )


def write(folder: Path, text: str) -> Path:
    folder.mkdir(exist_ok=True)
    (folder / "a.yaml").write_text(text, encoding="utf-8")
    return folder


# --- intent files --------------------------------------------------------------------------


@pytest.mark.parametrize("default", ["en", "de"])
def test_an_answer_and_a_title_may_be_given_per_language(intents_dir: Path, default: str) -> None:
    intents = load_intents(intents_dir, {"tracking_url": "U"}, language=default)
    order, returns = intents["order_status"], intents["returns"]
    other = "de" if default == "en" else "en"
    english, german = "Track it at {tracking_url}.", "Verfolgen Sie sie unter {tracking_url}."
    assert order.answer == (english if default == "en" else german)
    assert order.answer_in(other) == (german if default == "en" else english)
    assert order.label_in("de") == "Bestellstatus" and order.label_in("fr") == order.label
    assert order.render_answer({"tracking_url": "U"}, "de") == "Verfolgen Sie sie unter U."
    # a plain answer is in the default language, whichever it is
    assert returns.answer == "Returns are free within 30 days." and returns.answers == ()
    assert returns.written_in(default) == {default: "Returns are free within 30 days."}


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("\n      EN: hi", "a.yaml:5: error: a: answer: 'EN' is not a language code"),
        ("\n      xx: hi", "a.yaml:5: error: a: answer: 'xx' is not a language code"),
        ("\n      de: ''", "a.yaml:5: error: a: answer: the de text must be non-empty text"),
        ("\n      de: [x]", "a.yaml:5: error: a: answer: the de text must be non-empty text"),
        (" [hi, ho]", "a.yaml:4: error: a: answer must be text, or a mapping of language code"),
    ],
)
def test_a_malformed_answer_per_language_names_the_file_and_line(
    tmp_path: Path, answer: str, expected: str
) -> None:
    folder = write(
        tmp_path / "i", f"intents:\n  - id: a\n    examples: [x, y, z]\n    answer:{answer}\n"
    )
    _, problems = read_intents(folder)
    assert any(expected in str(p) for p in problems), [str(p) for p in problems]


def test_placeholders_are_checked_in_every_language(tmp_path: Path) -> None:
    text = (
        "intents:\n  - id: a\n    examples: [x]\n"
        "    answer:\n      en: At {url}.\n      de: Bei {link}.\n"
    )
    _, problems = read_intents(write(tmp_path / "i", text), {"url": "U"})
    assert [p.message for p in problems] == [
        "a: answer (de) uses {link}, which is not defined under [placeholders] in config.toml"
    ]


def test_the_check_lists_intents_missing_a_language_customers_write_in(intents_dir: Path) -> None:
    languages = LanguageSettings(default="en", detect=("en", "de", "fr"))
    problems = check_intents(intents_dir, placeholders={"tracking_url": "U"}, languages=languages)
    missing = sorted(p.message for p in problems if "no answer in" in p.message)
    assert missing == [
        "account_deletion: no answer in German (de), French (fr): such customers get the "
        "English (en) answer, with [messages] untranslated_answer ([languages] missing_answer)",
        "order_status: no answer in French (fr): such customers get the English (en) answer, "
        "with [messages] untranslated_answer ([languages] missing_answer)",
        "returns: no answer in German (de), French (fr): such customers get the English (en) "
        "answer, with [messages] untranslated_answer ([languages] missing_answer)",
    ]
    # one language only: nothing to report
    assert not [
        p for p in check_intents(intents_dir, placeholders={}) if "no answer in" in p.message
    ]


# --- [messages.<code>] ---------------------------------------------------------------------


def test_messages_per_language_fall_back_to_the_default_text(
    tmp_path: Path, intents_dir: Path
) -> None:
    settings = language_settings(tmp_path, intents_dir)
    german = settings.messages.in_language("de")
    assert german.handoff == GERMAN["handoff"] and german.clarify == "Meinten Sie {options}?"
    assert german.holding == settings.messages.holding  # not translated: said as written
    assert settings.messages.in_language("it") is settings.messages
    assert settings.messages.in_language(None) is settings.messages
    assert settings.messages.intros("Ava") == {
        "": "",  # the tests turn the English introduction off
        "de": "Hallo, ich bin Ava, ein automatischer Assistent.",
        "fr": "",
    }
    warned = {p.message.split(":")[0]: p.message for p in untranslated_messages(settings)}
    # the web chat is on and its texts have no German or French table
    assert set(warned) == {
        "[messages.de]",
        "[messages.fr]",
        "[webchat.texts.de]",
        "[webchat.texts.fr]",
    }
    assert "holding" in warned["[messages.de]"] and "handoff," not in warned["[messages.de]"]


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        (
            '[messages.de]\nclarify = "Meinten Sie {opts}?"\n',
            ":2: [messages.de] 'clarify': unknown placeholder {opts}",
        ),
        ('[messages.de]\nclarfy = "x"\n', ":2: [messages.de] 'clarfy': unknown key"),
        (
            '[placeholders]\na = "x"\n[placeholders.de]\nb = "y"\n',
            ":4: [placeholders.de] 'b': not a placeholder of [placeholders]",
        ),
        ('[messages.xx]\nhandoff = "x"\n', ":1: [messages.xx]: 'xx' is not a language code"),
        ('[messages.DE]\nhandoff = "x"\n', ":1: [messages.DE]: write the code in lower case"),
        (
            '[messages.de]\nfrustrated_answer = "Sorry"\n',
            ":2: [messages.de] 'frustrated_answer': must contain",
        ),
    ],
)
def test_a_wrong_message_table_names_the_table_key_and_line(
    tmp_path: Path, toml: str, expected: str
) -> None:
    path = tmp_path / "config.toml"
    path.write_text(toml, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert f"{path}{expected}" in str(caught.value), caught.value


# --- triage --------------------------------------------------------------------------------


def triage_for(settings: Settings) -> Triage:
    intents = load_intents(
        settings.path(settings.matcher.intents_dir),
        settings.placeholders,
        language=settings.languages.default,
    )
    matcher = Matcher.configured(settings.matcher, encoder=FakeEncoder(), intents=intents)
    return Triage(matcher=matcher, emotion=EmotionScorer(settings.emotion), settings=settings)


@pytest.mark.parametrize(
    ("text", "language", "missing", "kind", "reply"),
    [
        (
            "wo ist meine bestellung",
            "de",
            "default",
            DecisionKind.ANSWER,
            "Verfolgen Sie sie unter https://track.example.",
        ),
        (
            "where is my order",
            None,
            "default",
            DecisionKind.ANSWER,
            "Track it at https://track.example.",
        ),
        (
            "where is my order",
            "en",
            "default",
            DecisionKind.ANSWER,
            "Track it at https://track.example.",
        ),
        # no French answer: the English one (with the English placeholders), introduced in
        # French...
        (
            "where is my order",
            "fr",
            "default",
            DecisionKind.ANSWER,
            "Désolé, je n'ai cette réponse qu'en anglais :\n\nTrack it at https://track.example.",
        ),
        # ...while a French answer gets the French value of a placeholder
        (
            "refund money back",
            "fr",
            "default",
            DecisionKind.ANSWER,
            "Les remboursements prennent 5 jours : https://track.example/fr.",
        ),
        # ...and the plain text of a language with no untranslated_answer of its own
        (
            "where is my order",
            "it",
            "default",
            DecisionKind.ANSWER,
            "Track it at https://track.example.",
        ),
        # or a person, told so in French
        ("where is my order", "fr", "handoff", DecisionKind.HANDOFF, FRENCH["handoff"]),
        ("konto löschen bitte", "de", "default", DecisionKind.HANDOFF, GERMAN["handoff"]),
        ("purple elephants dance", "de", "default", DecisionKind.CLARIFY, GERMAN["rephrase"]),
    ],
)
def test_triage_speaks_the_customers_language(
    tmp_path: Path,
    intents_dir: Path,
    text: str,
    language: str | None,
    missing: str,
    kind: DecisionKind,
    reply: str,
) -> None:
    settings = language_settings(tmp_path, intents_dir, missing_answer=missing)
    decision = triage_for(settings).decide(text, TriageContext(now=OPEN, language=language))
    assert (decision.kind, decision.reply, decision.language) == (kind, reply, language)
    if missing == "handoff":
        assert Reason.NO_ANSWER in decision.reasons
        assert decision.draft == "Track it at https://track.example."  # the agent sees it


def test_thresholds_per_language_apply_to_customers_placed_in_it(
    tmp_path: Path, intents_dir: Path
) -> None:
    """A multilingual model is not as sure in every language: a brand holds each to its own
    precision with [languages.thresholds.<code>]."""
    thresholds = {"de": {"answer_threshold": 0.99}, "en": {"draft_threshold": 0.05}}
    settings = language_settings(tmp_path, intents_dir, thresholds=thresholds)
    triage = triage_for(settings)
    text = "wo ist meine bestellung heute"
    german = triage.decide(text, TriageContext(now=OPEN, language="de"))
    french = triage.decide(text, TriageContext(now=OPEN, language="fr"))  # no table: [matcher]'s
    assert french.kind is DecisionKind.ANSWER and german.score == french.score < 0.99
    assert german.kind is DecisionKind.DRAFT and Reason.BELOW_THRESHOLD in german.reasons
    # the default language's table applies to a customer not placed (language None)
    matcher = settings.matcher
    assert triage.thresholds(None, "de") == (0.99, matcher.draft_threshold)
    assert triage.thresholds(None, None) == (matcher.answer_threshold, 0.05)
    assert triage.thresholds(None, "es") == (matcher.answer_threshold, matcher.draft_threshold)
    with pytest.raises(ValueError, match=r"thresholds\n.*'xx' is not a language code"):
        language_settings(tmp_path, intents_dir, thresholds={"xx": {"answer_threshold": 0.5}})


def test_a_clarification_offers_the_titles_in_the_customers_language(
    tmp_path: Path, intents_dir: Path
) -> None:
    settings = language_settings(tmp_path, intents_dir)
    triage = triage_for(settings)
    decision = triage.decide("artikel zurueckschicken", TriageContext(now=OPEN, language="de"))
    assert decision.kind is DecisionKind.CLARIFY, decision
    assert decision.reply == 'Meinten Sie "Returns" oder "Erstattungen"?'
    chosen = triage.decide(
        "Erstattungen",
        TriageContext(now=OPEN, last_kind=decision.kind, offered=decision.choices, language="de"),
    )
    assert chosen.reply == "Erstattungen dauern 5 Tage."


# --- the inbox, end to end -----------------------------------------------------------------

_ids = itertools.count(1)


@pytest.fixture
def settings(tmp_path: Path, intents_dir: Path) -> Settings:
    settings = language_settings(tmp_path, intents_dir)
    return settings.model_copy(
        update={"survey": settings.survey.model_copy(update={"rating": True})}
    )


def inbound(text: str, user: str, hint: str | None = None) -> InboundMessage:
    return InboundMessage(
        channel="test",
        external_user_id=user,
        external_message_id=f"m{next(_ids)}",
        text=text,
        sent_at=OPEN,
        language_hints=(hint,) if hint else (),
    )


@pytest.mark.parametrize(
    ("hint", "expected"),
    [
        ("de-AT", GERMAN["rephrase"]),  # the platform's language, when detection cannot tell
        ("it", None),  # not a language of detect: the default's
        (None, None),
    ],
)
async def test_the_platforms_language_speaks_to_a_customer_not_placed_yet(
    runtime: Runtime,
    channel: RecordingChannel,
    settings: Settings,
    hint: str | None,
    expected: str | None,
) -> None:
    await runtime.inbox.receive(inbound("Hallo", "uwe", hint))  # too short to place
    assert channel.sent[-1].text.endswith(expected or settings.messages.rephrase)
    # once a message is placed, it wins over the platform's language
    await runtime.inbox.receive(inbound("Where is my order? Please track my order", "uwe", hint))
    await runtime.inbox.receive(inbound("hm", "uwe", hint))
    assert channel.sent[-1].text == settings.messages.rephrase


async def test_a_german_customer_is_answered_and_handed_over_in_german(
    runtime: Runtime, channel: RecordingChannel
) -> None:
    for text in (
        "Wo ist meine Bestellung? Bestellung verfolgen status",
        "ok",  # too short to place: the conversation keeps German
        "Ich möchte mein Konto löschen bitte, Konto löschen",
    ):
        await runtime.inbox.receive(inbound(text, "ute"))
    assert [reply.text for reply in channel.sent] == [
        "Hallo, ich bin carebot, ein automatischer Assistent.\n\n"
        "Verfolgen Sie sie unter https://track.example.",
        GERMAN["rephrase"],
        GERMAN["handoff"],
    ]
    # an agent takes the conversation and resolves it: told in German, rating asked in German
    conversation = (await runtime.conversations.receive(inbound("hallo", "ute"))).conversation_id
    channel.sent.clear()
    await runtime.desk.take_over(conversation, "Ann")
    await runtime.desk.resolve(conversation, "Ann")
    await runtime.outbox.deliver_due()
    assert [reply.text for reply in channel.sent] == [
        "Ann aus unserem Team ist dabei.",
        "Ann hat Ihr Anliegen als gelöst markiert.",
        GERMAN["rating_request"],
    ]
    # an English customer meanwhile: English, without the German introduction
    await runtime.inbox.receive(inbound("Where is my order? Please track my order status", "sam"))
    assert channel.sent[-1].text == "Track it at https://track.example."


# --- the console ---------------------------------------------------------------------------


def test_an_edit_in_the_console_keeps_the_translations(intents_dir: Path) -> None:
    form = form_of(intents_dir, "order_status")
    assert form.languages == ("de", "fr")
    assert form.answers == {"de": "Verfolgen Sie sie unter {tracking_url}."}
    assert form.titles == {"de": "Bestellstatus"}
    # as the browser posts it back: the English answer edited, a French one added
    fields = {
        "title": "Order status",
        "examples": form.examples,
        "answer": "Follow it at {tracking_url}.",
        "title_de": "Bestellstatus",
        "answer_de": "Verfolgen Sie sie unter {tracking_url}.",
        "title_fr": "",
        "answer_fr": "Suivez-la sur {tracking_url}.",
    }
    text = saved(intents_dir, "order_status", fields)
    assert (
        "    answer:\n      en: Follow it at {tracking_url}.\n"
        "      de: Verfolgen Sie sie unter {tracking_url}.\n"
        "      fr: Suivez-la sur {tracking_url}.\n"
    ) in text, text
    read = load_intents(intents_dir, {"tracking_url": "U"})["order_status"]
    assert read.answer == "Follow it at {tracking_url}."
    assert dict(read.answers) == {
        "de": "Verfolgen Sie sie unter {tracking_url}.",
        "fr": "Suivez-la sur {tracking_url}.",
    }
    assert dict(read.titles) == {"de": "Bestellstatus"}
    # a plain intent stays plain when no translation is typed
    plain = form_of(intents_dir, "returns").intent("en")
    assert plain is not None and plain.answers == ()


def test_the_shipped_tables_tell_when_the_team_is_back_in_each_language(tmp_path: Path) -> None:
    shipped = load_settings(Path(__file__).resolve().parent.parent / "config.toml")
    saturday_night = datetime(2026, 11, 21, 22, 0, tzinfo=UTC)
    hours = BusinessHours(shipped.business_hours)
    said = {
        code: hours.describe_next_open(saturday_night, shipped.messages.in_language(code))
        for code in (None, "de", "fr", "es")
    }
    assert said == {
        None: "Monday at 08:00 (Europe/Berlin)",
        "de": "Montag um 08:00 (Europe/Berlin)",
        "fr": "lundi à 08:00 (Europe/Berlin)",
        "es": "el lunes a las 08:00 (Europe/Berlin)",
    }
    waits = [
        describe_wait(timedelta(minutes=70), shipped.messages.in_language(c)) for c in ("de", "es")
    ]
    assert waits == ["etwa einer Stunde", "aproximadamente una hora"]
    # every text of [messages] is given in each shipped table
    assert [shipped.messages.untranslated(code) for code in ("de", "fr", "es")] == [[], [], []]


def test_vader_reads_english_only(tmp_path: Path, intents_dir: Path) -> None:
    """Found on the real model: VADER read the German article "die" as the English verb, and a
    calm German delivery question went to a person as upset."""
    settings = language_settings(tmp_path, intents_dir)
    calm = "Wie lange dauert die Lieferung nach Österreich?"
    scorer = EmotionScorer(settings.emotion)
    assert scorer.score(calm).value > 0.5  # read as English: "die"
    assert scorer.score(calm, language="de").value == 0.0
    decision = triage_for(settings).decide(calm, TriageContext(now=OPEN, language="de"))
    assert Reason.EMOTIONAL not in decision.reasons and decision.emotion == 0.0


def test_training_reads_vader_in_english_rows_only() -> None:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    from carebot.nlu.care_training import _features
    from carebot.nlu.emotion_head import FEATURES

    vader = SentimentIntensityAnalyzer()
    calm = "Wie lange dauert die Lieferung nach Österreich?"
    english, german = (
        dict(zip(FEATURES, _features(calm, vader, code), strict=True)) for code in ("en", "de")
    )
    assert english["vader_compound"] < 0 and german["vader_compound"] == 0.0
    assert german["vader_neu"] == 1.0


@pytest.mark.parametrize(
    ("typed", "answer"),
    [("Ja", "yes"), ("oui", "yes"), ("Sí", "yes"), ("Nein", "no"), ("non", "no")],
)
def test_the_survey_reads_yes_and_no_in_the_shipped_languages(typed: str, answer: str) -> None:
    from carebot.store.surveys import HELPFUL, Pending
    from carebot.survey.questions import Surveys

    surveys = Surveys(store=None, settings=Settings())  # type: ignore[arg-type]
    reply = surveys.read(Pending(1, HELPFUL, 1, OPEN), typed)
    assert reply is not None and reply.answer == answer
