from __future__ import annotations

import pytest

from carebot.config import EmotionSettings
from carebot.nlu.emotion import EmotionScorer

# The rules' weights are set here (the defaults are 0: the packaged head reads capitals and "!!").
scorer = EmotionScorer(
    EmotionSettings(escalation_words=("lawyer", "chargeback"), shouting=0.5, exclamations=0.2)
)


@pytest.mark.parametrize(
    "text", ["where is my order?", "thanks, that helped a lot", "Can I pay with PayPal?"]
)
def test_calm_messages_score_low(text: str) -> None:
    assert scorer.score(text).value < 0.3


def test_shouting_and_exclamations_raise_the_signal() -> None:
    calm = scorer.score("where is my order")
    loud = scorer.score("WHERE IS MY ORDER!!!")
    assert calm.value == 0.0
    assert loud.value >= 0.5
    assert "shouting" in loud.cues and "exclamations" in loud.cues


def test_a_short_acronym_is_not_shouting() -> None:
    assert "shouting" not in scorer.score("Is DHL or UPS used for my order to the USA?").cues


@pytest.mark.parametrize("text", ["I will call my LAWYER", "expect a chargeback"])
def test_an_escalation_word_is_enough_on_its_own(text: str) -> None:
    signal = scorer.score(text)
    assert signal.value >= 0.9
    assert any(cue.startswith("escalation_word:") for cue in signal.cues)


def test_escalation_words_match_whole_words_only() -> None:
    assert scorer.score("my lawyers' office ordered chairs").value < 0.9


def test_signal_stays_in_range() -> None:
    signal = scorer.score("THIS IS THE WORST, MOST HORRIBLE SERVICE EVER!!! LAWYER!!!")
    assert signal.value == 1.0


PER_LANGUAGE = EmotionScorer(
    EmotionSettings(
        escalation_words={"en": ("court", "lawyer"), "fr": ("dégoûtant", "avocat")}, head=False
    ),
    use_head=False,
)


@pytest.mark.parametrize(
    ("text", "language", "escalated"),
    [
        ("see you in court", "en", True),
        ("un délai très court, merci", "fr", False),  # French "court" is "short"
        ("C'est DEGOUTANT", "fr", True),  # any case, with or without accents
        ("je vais appeler mon avocat", "fr", True),
        ("je vais appeler mon avocat", "de", False),  # no list for German: no words
        ("mon avocat, my lawyer", None, True),  # not placed: any language's words
    ],
)
def test_escalation_words_per_language(text: str, language: str | None, escalated: bool) -> None:
    _, floor, cues = PER_LANGUAGE.rules(text, language)
    assert (floor >= 0.9) is escalated
    assert any(cue.startswith("escalation_word:") for cue in cues) is escalated


def test_escalation_words_name_a_known_language() -> None:
    with pytest.raises(ValueError, match="'xx' is not a language code"):
        EmotionSettings(escalation_words={"xx": ("scam",)})
