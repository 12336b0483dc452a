"""Finding FAQ answers for an agent's reply (carebot/console/answer_search.py), with the fake
encoder (bag of words: a query sharing words with an intent's examples is close to it) and the
test intents (tests/data/intents)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from carebot.config import Settings
from carebot.console.answer_search import AnswerSearch, Hit
from carebot.nlu.intents import Intent, IntentSet, load_intents
from carebot.nlu.matcher import Matcher
from tests.conftest import TEST_INTENTS, make_settings
from tests.fakes import FakeEncoder


def searcher(
    settings: Settings, intents: IntentSet | None = None, encoder: FakeEncoder | None = None
) -> AnswerSearch:
    intents = intents or load_intents(TEST_INTENTS, settings.placeholders)
    matcher = Matcher.configured(
        settings.matcher, encoder=encoder or FakeEncoder(), intents=intents
    )
    return AnswerSearch(lambda: matcher, settings)


def found(hits: list[Hit]) -> list[tuple[str, tuple[str, ...]]]:
    return [(hit.intent, hit.why) for hit in hits]


@pytest.fixture
def search(settings: Settings) -> AnswerSearch:
    return searcher(settings)


def test_meaning_finds_an_answer_without_its_words(search: AnswerSearch) -> None:
    (hit,) = search.search("where is my parcel")  # "parcel" is in no intent
    assert found([hit]) == [("order_status", ("meaning",))]
    assert hit.title == "Order status"
    assert hit.answer == "Track it at https://track.example."  # the placeholder filled in
    assert hit.score == pytest.approx(0.75, abs=1e-4)  # 3 of 4 words of "where is my order"


@pytest.mark.parametrize("method", ["nearest", "classifier"])
def test_words_find_what_the_meaning_misses(tmp_path: Path, method: str) -> None:
    """'days' is only in two answers, in no example: its meaning score is 0 for every intent."""
    search = searcher(make_settings(tmp_path, matcher={"method": method}))
    hits = search.search("Days")
    assert sorted(found(hits)) == [("refunds", ("words",)), ("returns", ("words",))]
    assert all(hit.score < 0.01 for hit in hits)


@pytest.mark.parametrize(
    ("words", "intent"),
    [
        ("refund", "refunds"),  # a word starting the title's and the examples' words
        ("REFUNDS take", "refunds"),  # casefolded, in the answer
        ("smalltalk", "greeting"),  # a tag
        ("order status", "order_status"),  # the id's words
        ("track.example", "order_status"),  # the answer as sent, placeholder filled in
    ],
)
def test_the_word_search_looks_at_titles_ids_tags_examples_and_answers(
    search: AnswerSearch, words: str, intent: str
) -> None:
    hits = search.search(words)
    assert hits and hits[0].intent == intent and "words" in hits[0].why


def test_every_word_must_appear(search: AnswerSearch) -> None:
    assert [hit.intent for hit in search.search("refund days")] == ["refunds"]
    assert "refunds" not in [hit.intent for hit in search.search("refund parcel")]


def test_an_answer_holding_every_word_comes_before_a_closer_meaning(settings: Settings) -> None:
    intents = IntentSet(
        (
            Intent("lost_parcel", ("parcel lost in transit",), answer="We send it again."),
            Intent(
                "invoice",
                ("where is my invoice",),
                answer="Any parcel lost since yesterday is replaced.",
            ),
        )
    )
    hits = searcher(settings, intents).search("parcel lost yesterday")
    assert found(hits) == [("invoice", ("words",)), ("lost_parcel", ("meaning",))]
    assert hits[1].score > hits[0].score


@pytest.mark.parametrize(
    ("human_intent", "never", "offered"),
    [
        ("talk_to_human", "talk_to_human", "account_deletion"),
        ("account_deletion", "account_deletion", "talk_to_human"),
    ],
)
def test_the_human_handoff_intent_is_never_offered(
    tmp_path: Path, human_intent: str, never: str, offered: str
) -> None:
    search = searcher(make_settings(tmp_path, triage={"human_intent": human_intent}))
    queries = ["staff member please", "connect me with staff", "delete my account", "account"]
    seen = {hit.intent for words in queries for hit in search.search(words, limit=10)}
    assert never not in seen and offered in seen


def test_an_intent_without_an_answer_is_never_offered(settings: Settings) -> None:
    intents = IntentSet(
        (
            Intent("gift_wrap", ("can you gift wrap it",), answer="   "),
            Intent("gift_card", ("do you sell gift cards",), answer="Yes, from 10 euros."),
            Intent("gift_note", ("add a gift note",)),
        )
    )
    search = searcher(settings, intents)
    assert [hit.intent for hit in search.search("gift", limit=10)] == ["gift_card"]
    for words in ("can you gift wrap it", "add a gift note"):  # their own examples
        assert search.search(words, limit=10) == []


def test_the_limit_keeps_the_best(search: AnswerSearch) -> None:
    every = search.search("my", limit=10)
    assert len(every) == 4
    assert search.search("my", limit=2) == every[:2]
    assert search.search("my", limit=0) == []


@pytest.mark.parametrize("words", ["", "   ", "\n\t"])
async def test_no_words_find_nothing_and_encode_nothing(settings: Settings, words: str) -> None:
    encoder = FakeEncoder()
    search = searcher(settings, encoder=encoder)
    before = list(encoder.calls)
    assert search.search(words) == [] and await search.find(words) == []
    assert encoder.calls == before


async def test_find_encodes_in_the_model_thread(settings: Settings) -> None:
    intents = load_intents(TEST_INTENTS, settings.placeholders)
    matcher = Matcher.configured(settings.matcher, encoder=FakeEncoder(), intents=intents)
    handed: list[Callable[[], Any]] = []

    async def in_model_thread(work: Callable[[], np.ndarray]) -> np.ndarray:
        handed.append(work)
        return work()

    search = AnswerSearch(lambda: matcher, settings, in_model_thread=in_model_thread)
    assert await search.find("refund") == AnswerSearch(lambda: matcher, settings).search("refund")
    assert len(handed) == 1


def test_a_reload_is_searched_at_once(settings: Settings) -> None:
    encoder = FakeEncoder()
    first = IntentSet((Intent("refunds", ("refund money back",), answer="Refunds take 5 days."),))
    second = IntentSet((Intent("refunds", ("refund money back",), answer="Refunds take 3 days."),))
    live = [Matcher.configured(settings.matcher, encoder=encoder, intents=first)]
    search = AnswerSearch(lambda: live[0], settings)
    assert [hit.answer for hit in search.search("refund")] == ["Refunds take 5 days."]
    live[0] = Matcher.configured(settings.matcher, encoder=encoder, intents=second)
    assert [hit.answer for hit in search.search("refund")] == ["Refunds take 3 days."]
    assert search.search("5 days") == []


def test_hits_as_json(search: AnswerSearch) -> None:
    (hit,) = search.search("print label")
    assert hit.as_json() == {
        "intent": "returns_label",
        "title": "Return label",
        "answer": "Print the label from your account.",
        "score": pytest.approx(hit.score, abs=1e-4),
        "why": ["meaning", "words"],
        "language": "en",
    }


def test_answers_come_in_the_customers_language_where_written(tmp_path: Path) -> None:
    folder = tmp_path / "intents"
    folder.mkdir()
    (folder / "returns.yaml").write_text(
        "intents:\n"
        "  - id: refunds\n"
        "    title: {en: Refunds, de: Erstattungen}\n"
        "    examples: [refund please, money back]\n"
        "    answer:\n"
        "      en: Refunds take 5 days at {shop}.\n"
        "      de: Erstattungen dauern 5 Tage bei {shop}.\n"
        "  - id: returns\n"
        "    examples: [return an item, send it back]\n"
        "    answer: Send it back within 30 days.\n",
        encoding="utf-8",
    )
    settings = make_settings(
        tmp_path,
        placeholders={"shop": "Northwind", "de": {"shop": "Nordwind"}},
        matcher={"intents_dir": str(folder)},
    )
    search = searcher(settings, load_intents(folder, settings.placeholders))
    (refunds,) = search.search("refund money back", 5, "de")
    assert refunds.answer == "Erstattungen dauern 5 Tage bei Nordwind."
    assert (refunds.title, refunds.language) == ("Erstattungen", "de")
    # not written in German: the default's, and the hit says so
    (returns,) = search.search("return an item", 5, "de")
    assert (returns.answer, returns.language) == ("Send it back within 30 days.", "en")
    (english,) = search.search("refund money back")
    assert english.answer == "Refunds take 5 days at Northwind." and english.language == "en"
    # the German answer's words find it too
    assert [hit.intent for hit in search.search("Erstattungen", 5, "de")] == ["refunds"]
