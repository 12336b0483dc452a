"""The real model (all-MiniLM-L6-v2, packaged) with the shipped intents and config.

The paraphrases below were written for these tests, not copied from the intent examples; a
test checks that none of them appears among the examples.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from carebot.config import Settings, load_settings
from carebot.models import Decision, DecisionKind, Reason
from carebot.nlu.encoder import SentenceTransformerEncoder
from carebot.nlu.intents import load_intents
from carebot.nlu.model_export import export_model
from carebot.nlu.onnx_encoder import OnnxEncoder
from carebot.runtime import build_triage, load_encoder
from carebot.triage import Triage, TriageContext
from tests.conftest import ROOT
from tests.decisions import compare_decisions, record

pytestmark = pytest.mark.model
NOW = datetime(2026, 11, 18, 10, 0, tzinfo=UTC)  # a Wednesday, within business hours

PARAPHRASES = [
    ("has my package been sent out yet", "order_status"),
    ("I'd like to know where my purchase is right now", "order_status"),
    ("how many days until my stuff gets here", "delivery_times"),
    ("what do you charge for postage", "shipping_costs"),
    ("can you deliver to Norway", "international_shipping"),
    ("I moved, please send the parcel to my new flat", "change_address"),
    ("I changed my mind, please stop my order", "cancel_order"),
    ("can I add another shirt to the order I placed this morning", "change_order"),
    ("one of the things I bought wasn't in the box", "missing_item"),
    ("the vase I received is cracked", "damaged_item"),
    ("I ordered a black coat but got a green one", "wrong_item"),
    ("what's the procedure to give back a pair of jeans", "returns"),
    ("I returned my order two weeks ago and still have no money", "refund_status"),
    ("can I swap these boots for a size 42", "exchange"),
    ("my kettle stopped working after 8 months, is it covered", "warranty"),
    ("do you take Apple Pay", "payment_methods"),
    ("checkout keeps rejecting my credit card", "payment_failed"),
    ("I need a VAT receipt for my purchase", "invoice"),
    ("my promo code says invalid", "discount_codes"),
    ("can I buy a voucher as a present for my sister", "gift_cards"),
    ("I can't remember my login password", "password_reset"),
    ("how do I sign up for an account on your site", "create_account"),
    ("please erase my profile and everything you store about me", "account_deletion"),
    ("I need to update the email on my profile", "update_personal_details"),
    ("stop sending me marketing emails", "newsletter_unsubscribe"),
    ("I'm not sure which size fits me for these trousers", "size_guide"),
    ("when will the red dress be available again", "product_availability"),
    ("until what time can I reach your support team today", "opening_hours"),
    ("what's your phone number", "contact_details"),
    ("I wish to make an official complaint", "complaint"),
    ("can I chat with an actual person please", "talk_to_human"),
    ("hiya, anyone there?", "greeting"),
    ("cheers, that was helpful", "thanks"),
    ("ok bye for now", "goodbye"),
]

OUT_OF_SCOPE = [
    "what's the capital of Australia",
    "can you recommend a good pizza place nearby",
    "how do I fix my car's flat tyre",
    "what will the weather be like this weekend",
    "write me a poem about autumn",
    "who won the football match last night",
    "how many calories are in a banana",
    "what is the square root of 144",
    "can you help me with my maths homework",
    "what time is it in Tokyo",
    "do you think aliens exist",
    "how do I learn to play the guitar",
]

UPSET = [
    "I am furious, third time I write and nobody helps!!!",
    "This is the worst shop I have ever ordered from",
    "WHY HAS NOBODY ANSWERED MY EMAILS",
    "I'm so angry, my order is two weeks late and you don't care",
    "absolutely disgusting service, never again",
    "I'm going to report you to consumer protection, this is a scam",
    "You people are useless and rude!!",
    "I've been waiting for ages and I'm really fed up with this terrible service",
    "this is a joke, I want my money back NOW!!!",
    "I'm extremely disappointed and upset with how you treated me",
    "my lawyer will hear about this",
    "horrible experience, you ruined my daughter's birthday",
]


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The packaged model exported to ONNX (and verified) once for this module."""
    out = tmp_path_factory.mktemp("onnx") / "all-MiniLM-L6-v2"
    export_model("all-MiniLM-L6-v2", out)
    return out


@pytest.fixture(scope="module", params=["torch", "onnx"])
def settings(request: pytest.FixtureRequest, export: Path) -> Settings:
    shipped = load_settings(ROOT / "config.toml")
    matcher = shipped.matcher.model_copy(update={"backend": request.param, "onnx_dir": str(export)})
    return shipped.model_copy(update={"matcher": matcher})


@pytest.fixture(scope="module")
def triage(settings: Settings) -> Iterator[Triage]:
    encoder = load_encoder(settings)
    wanted = OnnxEncoder if settings.matcher.backend == "onnx" else SentenceTransformerEncoder
    assert isinstance(encoder, wanted)
    yield build_triage(settings, encoder)


def decide_all(triage: Triage, texts: list[str], context: TriageContext) -> list[Decision]:
    """Each text decided as :meth:`Triage.decide` would, the texts encoded in batches (as the
    service batches messages; test_batched_and_single_encoding_agree holds the two equal):
    hundreds of single torch calls took minutes of CI."""
    matches = triage.matcher.match_many(texts)
    return [triage.decide_matched(t, m, context) for t, m in zip(texts, matches, strict=True)]


def test_both_backends_make_the_same_decisions(export: Path) -> None:
    """On every example of the shipped intents and every paraphrase above: the same kind,
    intent and reasons, scores within tests/decisions.py's tolerance (a message within that
    tolerance of a threshold may decide differently and is listed, not failed)."""
    shipped = load_settings(ROOT / "config.toml")
    texts, _ = load_intents(shipped.path(shipped.matcher.intents_dir)).examples()
    texts += [p if isinstance(p, str) else p[0] for p in PARAPHRASES]
    decided = []
    for encoder in (SentenceTransformerEncoder("all-MiniLM-L6-v2"), OnnxEncoder(export)):
        triage = build_triage(shipped, encoder)
        decided.append(decide_all(triage, texts, TriageContext(now=NOW)))
    result = compare_decisions("torch vs ONNX", texts, *decided, triage, shipped)
    assert result.compared == len(texts) > 400
    record(result)
    assert not result.mismatches, "\n".join([result.summary(), *result.mismatches])


def test_paraphrases_are_not_copied_from_the_examples(triage: Triage) -> None:
    examples = {e.casefold() for i in triage.matcher.intents.intents for e in i.examples}
    assert len(PARAPHRASES) >= 30
    assert not [text for text, _ in PARAPHRASES if text.casefold() in examples]


def test_paraphrases_reach_the_right_intent(triage: Triage) -> None:
    """At least 30 reach their intent (the classifier gets all 34 today; nearest neighbour
    missed a few that share a product word with another intent's example; the misses are
    listed when the bound is not met)."""
    decisions = [(triage.decide(t, TriageContext(now=NOW)), t, i) for t, i in PARAPHRASES]
    misses = [
        f"{text!r} -> {d.intent} (want {intent})"
        for d, text, intent in decisions
        if d.intent != intent
    ]
    assert len(PARAPHRASES) - len(misses) >= 30, misses


def test_every_auto_answered_paraphrase_is_right(triage: Triage) -> None:
    decisions = [(triage.decide(t, TriageContext(now=NOW)), i) for t, i in PARAPHRASES]
    answered = [(d, i) for d, i in decisions if d.kind is DecisionKind.ANSWER]
    assert answered
    assert [d.explain() for d, intent in answered if d.intent != intent] == []


@pytest.mark.parametrize("text", OUT_OF_SCOPE)
def test_out_of_scope_questions_are_not_auto_answered(triage: Triage, text: str) -> None:
    decision = triage.decide(text, TriageContext(now=NOW))
    assert decision.kind is not DecisionKind.ANSWER, decision.explain()


def test_upset_customers_are_handed_off_as_emotional(triage: Triage) -> None:
    """At least 10 of these upset messages (lexicon and cues miss sarcasm such as "this is a
    joke"; the misses are listed when the bound is not met)."""
    decisions = [triage.decide(text, TriageContext(now=NOW)) for text in UPSET]
    handed = [
        d for d in decisions if d.kind is DecisionKind.HANDOFF and d.reasons[0] is Reason.EMOTIONAL
    ]
    misses = [
        f"{t!r}: {d.explain()}" for t, d in zip(UPSET, decisions, strict=True) if d not in handed
    ]
    assert len(handed) >= 10, misses


def test_batched_and_single_encoding_agree(triage: Triage) -> None:
    """Micro-batching pads messages to a common length; the embeddings must not change."""
    import numpy as np

    texts = [text for text, _ in PARAPHRASES[:12]] + UPSET[:4]
    encoder = triage.matcher.encoder
    together = encoder.encode(texts)
    alone = np.vstack([encoder.encode([text]) for text in texts])
    assert np.max(np.abs(together - alone)) < 1e-5
    context = TriageContext(now=NOW)
    batched = [
        triage.decide_matched(t, m, context)
        for t, m in zip(texts, triage.matcher.match_many(texts), strict=True)
    ]
    single = [triage.decide(t, context) for t in texts]
    shipped = load_settings(ROOT / "config.toml")
    name = f"batched vs single, {type(encoder).__name__}"
    result = compare_decisions(name, texts, batched, single, triage, shipped)
    record(result)
    assert not result.mismatches, "\n".join([result.summary(), *result.mismatches])


# Calm messages the GoEmotions head handed to people as upset (issue 13), and what must still go.
CALM = [
    "can I pay with klarna?",
    "can I cancel my order",
    "how do I return shoes that don't fit",
    "the vase arrived broken",
    "I was charged twice for my order",
    "I want to delete my account",
]


@pytest.mark.parametrize("text", CALM)
def test_a_calm_question_or_problem_report_is_not_emotional(triage: Triage, text: str) -> None:
    decision = triage.decide(text, TriageContext(now=NOW))
    assert Reason.EMOTIONAL not in decision.reasons, decision.explain()


def test_the_shipped_calm_examples_stay_with_the_bot(triage: Triage) -> None:
    """Under 3% of the shipped intents' examples (calm questions; not complaint or
    talk_to_human) are flagged emotional (bench/upset.py reports the share; its goal is 2%)."""
    intents = triage.matcher.intents.intents
    texts = [e for i in intents if i.id not in ("complaint", "talk_to_human") for e in i.examples]
    decisions = decide_all(triage, texts, TriageContext(now=NOW))
    flagged = [t for t, d in zip(texts, decisions, strict=True) if Reason.EMOTIONAL in d.reasons]
    assert len(texts) > 400
    assert len(flagged) < 0.03 * len(texts), flagged
