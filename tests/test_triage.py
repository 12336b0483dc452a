from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from carebot.config import Settings
from carebot.models import Choice, Decision, DecisionKind, IntentScore, Reason
from carebot.nlu.emotion import EmotionScorer
from carebot.nlu.intents import IntentSet, load_intents
from carebot.nlu.matcher import Matcher
from carebot.triage import Triage, TriageContext
from tests.conftest import TEST_INTENTS, make_settings
from tests.decisions import compare_decisions
from tests.fakes import FakeEncoder

OPEN = datetime(2026, 11, 18, 10, 0, tzinfo=UTC)  # a Wednesday morning
CLOSED = datetime(2026, 11, 21, 22, 0, tzinfo=UTC)  # a Saturday night


def build(settings: Settings, intents: IntentSet | None = None) -> Triage:
    intents = intents or load_intents(TEST_INTENTS, settings.placeholders)
    matcher = Matcher.configured(settings.matcher, encoder=FakeEncoder(), intents=intents)
    return Triage(matcher=matcher, emotion=EmotionScorer(settings.emotion), settings=settings)


@pytest.fixture
def triage(settings: Settings) -> Triage:
    return build(settings)


def decide(triage: Triage, text: str, **context: object) -> tuple[DecisionKind, list[str]]:
    decision = triage.decide(text, TriageContext(now=OPEN, **context))  # type: ignore[arg-type]
    return decision.kind, [r.value for r in decision.reasons]


@pytest.mark.parametrize(
    ("text", "kind", "reasons"),
    [
        ("where is my order", DecisionKind.ANSWER, ["confident"]),
        (
            "I would like to speak to a human",
            DecisionKind.HANDOFF,
            ["asked_for_human", "below_threshold"],
        ),
        ("staff member please", DecisionKind.HANDOFF, ["asked_for_human", "confident"]),
        ("please delete my account", DecisionKind.HANDOFF, ["sensitive_intent", "confident"]),
        (
            "where is my order, I will call my lawyer",
            DecisionKind.HANDOFF,
            ["emotional", "confident"],
        ),
        ("purple elephants dance", DecisionKind.CLARIFY, ["below_threshold"]),
        ("return item label", DecisionKind.CLARIFY, ["ambiguous", "below_threshold"]),
        ("where is my order tracking", DecisionKind.ANSWER, ["confident"]),
        ("order", DecisionKind.DRAFT, ["below_threshold"]),
    ],
)
def test_rules(triage: Triage, text: str, kind: DecisionKind, reasons: list[str]) -> None:
    assert decide(triage, text) == (kind, reasons)


def test_answer_fills_placeholders_and_reports_scores(triage: Triage) -> None:
    decision = triage.decide("where is my order", TriageContext(now=OPEN))
    assert decision.reply == "Track it at https://track.example."
    assert decision.intent == "order_status" and decision.score == pytest.approx(1.0)
    assert decision.top[0].intent == "order_status" and len(decision.top) == 3
    assert decision.margin == pytest.approx(decision.top[0].score - decision.top[1].score)
    assert decision.explain().startswith("decision: answer intent=order_status score=1.00 margin=")


def test_an_upset_customer_always_gets_emotional_first(triage: Triage) -> None:
    decision = triage.decide("I want a HUMAN NOW this is USELESS!!!", TriageContext(now=OPEN))
    assert decision.kind is DecisionKind.HANDOFF
    assert decision.reasons[0] is Reason.EMOTIONAL
    assert Reason.ASKED_FOR_HUMAN in decision.reasons


def test_a_sensitive_intent_handoff_carries_a_draft(triage: Triage) -> None:
    decision = triage.decide("delete my account", TriageContext(now=OPEN))
    assert decision.draft == "I can delete your account for you."
    assert decision.reply == Settings().messages.handoff


def test_an_intent_without_an_answer_goes_to_a_person(settings: Settings) -> None:
    shipped = load_intents(TEST_INTENTS, settings.placeholders)
    intents = IntentSet(
        tuple(replace(i, answer="") if i.id == "order_status" else i for i in shipped.intents)
    )
    decision = build(settings, intents).decide("where is my order", TriageContext(now=OPEN))
    assert decision.kind is DecisionKind.HANDOFF
    assert decision.reasons == (Reason.NO_ANSWER, Reason.CONFIDENT)
    assert decision.draft is None and decision.reply == Settings().messages.handoff


def test_a_draft_decision_carries_the_answer_for_the_agent(triage: Triage) -> None:
    decision = triage.decide("order", TriageContext(now=OPEN))
    assert decision.kind is DecisionKind.DRAFT
    assert decision.draft == "Track it at https://track.example."
    assert decision.reply == Settings().messages.holding


def test_clarify_offers_the_close_intents_and_a_number_picks_one(triage: Triage) -> None:
    decision = triage.decide("return item label", TriageContext(now=OPEN))
    assert decision.kind is DecisionKind.CLARIFY
    labels = [c.label for c in decision.choices]
    assert set(labels) == {"Returns", "Return label"}
    assert decision.reply == f'Did you mean "{labels[0]}" or "{labels[1]}"?'
    picked = triage.decide(
        "2", TriageContext(now=OPEN, last_kind=DecisionKind.CLARIFY, offered=decision.choices)
    )
    assert picked.kind is DecisionKind.ANSWER
    assert picked.intent == decision.choices[1].id
    assert picked.reasons == (Reason.CLARIFIED,)


def test_picking_a_sensitive_option_still_hands_off(triage: Triage) -> None:
    offered = (Choice("account_deletion", "Delete account"), Choice("returns", "Returns"))
    decision = triage.decide("delete account", TriageContext(now=OPEN, offered=offered))
    assert decision.kind is DecisionKind.HANDOFF
    assert decision.reasons == (Reason.SENSITIVE_INTENT, Reason.CLARIFIED)


def test_a_second_non_answer_in_a_row_hands_off(triage: Triage) -> None:
    kind, reasons = decide(triage, "purple elephants", last_kind=DecisionKind.CLARIFY)
    assert kind is DecisionKind.HANDOFF
    assert reasons == ["repeated_failure", "below_threshold"]


def test_without_rephrase_first_an_unknown_question_hands_off(tmp_path: Path) -> None:
    triage = build(make_settings(tmp_path, triage={"rephrase_first": False}))
    assert decide(triage, "purple elephants") == (DecisionKind.HANDOFF, ["below_threshold"])


def test_per_intent_threshold_overrides_the_global_one(triage: Triage) -> None:
    # "hello there" scores ~0.82 against "hi there": above the global 0.7, below greeting's 0.9.
    decision = triage.decide("hello there", TriageContext(now=OPEN))
    assert decision.intent == "greeting" and 0.7 < decision.score < 0.9
    assert decision.kind is DecisionKind.DRAFT


def test_outside_business_hours_the_handoff_says_when_people_are_back(triage: Triage) -> None:
    decision = triage.decide("delete my account", TriageContext(now=CLOSED))
    assert decision.reply is not None
    assert "offline right now" in decision.reply
    assert "Monday at 09:00 (UTC)" in decision.reply


def _decision(kind: DecisionKind, score: float, *, emotion: float = 0.0) -> Decision:
    reason = Reason.CONFIDENT if kind is DecisionKind.ANSWER else Reason.BELOW_THRESHOLD
    top = (IntentScore("order_status", score), IntentScore("returns", 0.1))
    return Decision(kind, (reason,), "order_status", score, score - 0.1, emotion, top=top)


@pytest.mark.parametrize(
    ("first", "second", "borderline", "mismatched"),
    [
        # the same decision, scores a little apart: nothing to report
        ((DecisionKind.ANSWER, 0.9), (DecisionKind.ANSWER, 0.9004), 0, 0),
        # another decision right at the answer threshold (0.7 in the test settings): listed
        ((DecisionKind.ANSWER, 0.7002), (DecisionKind.DRAFT, 0.6999), 1, 0),
        # another decision far from every threshold: a real mismatch
        ((DecisionKind.ANSWER, 0.9), (DecisionKind.DRAFT, 0.9), 0, 1),
        # the same decision with scores further apart than the tolerance: a mismatch too
        ((DecisionKind.ANSWER, 0.9), (DecisionKind.ANSWER, 0.95), 0, 1),
    ],
)
def test_comparing_two_numerical_paths_tolerates_only_what_it_states(
    triage: Triage,
    settings: Settings,
    first: tuple[DecisionKind, float],
    second: tuple[DecisionKind, float],
    borderline: int,
    mismatched: int,
) -> None:
    assert settings.matcher.answer_threshold == 0.7
    result = compare_decisions(
        "test", ["text"], [_decision(*first)], [_decision(*second)], triage, settings
    )
    assert (len(result.borderline), len(result.mismatches)) == (borderline, mismatched)


@pytest.mark.parametrize(
    ("mild_threshold", "text", "kind", "reasons", "empathetic"),
    [
        # VADER alone (the tests' settings have no head): "sadly ... late" is 0.42 upset.
        (0.2, "where is my order, sadly it is late", DecisionKind.ANSWER, ["frustrated"], True),
        (0.0, "where is my order, sadly it is late", DecisionKind.ANSWER, [], False),
        (0.2, "where is my order", DecisionKind.ANSWER, [], False),
        (0.2, "where is my order, so disappointed", DecisionKind.HANDOFF, ["emotional"], False),
    ],
)
def test_a_frustrated_customer_gets_the_answer_with_an_offer_of_a_person(
    tmp_path: Path,
    mild_threshold: float,
    text: str,
    kind: DecisionKind,
    reasons: list[str],
    empathetic: bool,
) -> None:
    settings = make_settings(tmp_path, emotion={"head": False, "mild_threshold": mild_threshold})
    decision = build(settings).decide(text, TriageContext(now=OPEN))
    assert decision.kind is kind
    assert [r.value for r in decision.reasons] == [*reasons, "confident"]
    answer = "Track it at https://track.example."
    expected = settings.messages.frustrated_answer.replace("{answer}", answer)
    assert (decision.reply == expected) is empathetic
    if kind is DecisionKind.ANSWER and not empathetic:
        assert decision.reply == answer


@pytest.mark.parametrize(
    ("rephrase_frustrated", "kind"), [(False, DecisionKind.HANDOFF), (True, DecisionKind.CLARIFY)]
)
def test_a_frustrated_customer_the_bot_cannot_place_goes_to_a_person(
    tmp_path: Path, rephrase_frustrated: bool, kind: DecisionKind
) -> None:
    """Not asked to rephrase: measured on the care set's train split, 77 of 135 frustrated
    lines were, and 3 of 360 calm lines are frustrated and not understood."""
    settings = make_settings(
        tmp_path,
        emotion={"head": False, "mild_threshold": 0.2},
        triage={"rephrase_frustrated": rephrase_frustrated},
    )
    triage = build(settings)
    frustrated = triage.decide("sadly the sofa is late", TriageContext(now=OPEN))
    assert frustrated.kind is kind
    assert [r.value for r in frustrated.reasons] == ["below_threshold", "frustrated"]
    if kind is DecisionKind.HANDOFF:
        assert frustrated.reply == settings.messages.handoff
    # a calm message the bot cannot place is still asked to rephrase
    calm = triage.decide("the sofa is late", TriageContext(now=OPEN))
    assert calm.kind is DecisionKind.CLARIFY and frustrated.emotion > calm.emotion


def test_the_frustrated_answer_must_keep_the_answer(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"frustrated_answer[\s\S]*must contain \{answer\}"):
        make_settings(tmp_path, messages={"frustrated_answer": "Sorry about that!"})
