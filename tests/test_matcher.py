from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from carebot.nlu.batching import MatchQueue
from carebot.nlu.embedding_cache import EmbeddingCache
from carebot.nlu.intents import IntentSet, load_intents
from carebot.nlu.matcher import Match, Matcher
from tests.conftest import TEST_INTENTS
from tests.fakes import FakeEncoder


@pytest.fixture
def intents() -> IntentSet:
    return load_intents(TEST_INTENTS)


def same(a: Match, b: Match) -> bool:
    """The same intents in the same order, the same scores up to float rounding (a batch sums
    in another order than a single message)."""
    return [s.intent for s in a.top] == [s.intent for s in b.top] and all(
        x.score == pytest.approx(y.score, abs=1e-6) for x, y in zip(a.top, b.top, strict=True)
    )


def test_nearest_scores_are_the_closest_example_per_intent(intents: IntentSet) -> None:
    encoder = FakeEncoder()
    matcher = Matcher(encoder=encoder, intents=intents, top_k=len(intents), method="nearest")
    match = matcher.match("where is my return label")
    query = encoder.encode(["where is my return label"])[0]
    for scored in match.top:
        examples = encoder.encode(list(intents[scored.intent].examples))
        assert scored.score == pytest.approx(float(np.max(examples @ query)))
    assert [s.score for s in match.top] == sorted((s.score for s in match.top), reverse=True)
    assert match.margin == pytest.approx(match.top[0].score - match.top[1].score)
    assert len(
        matcher.match(
            "hello",
        ).top
    ) == len(intents)


def test_top_k_limits_the_intents_kept(intents: IntentSet) -> None:
    match = Matcher(encoder=FakeEncoder(), intents=intents, top_k=2).match("where is my order")
    assert [s.intent for s in match.top][:1] == ["order_status"] and len(match.top) == 2


def test_match_many_equals_one_by_one_in_one_encoder_call(intents: IntentSet) -> None:
    encoder = FakeEncoder()
    matcher = Matcher(encoder=encoder, intents=intents)
    texts = ["where is my order", "refund money", "hello", "delete account"]
    encoder.calls.clear()
    together = matcher.match_many(texts)
    assert encoder.calls == [4]
    assert all(same(a, matcher.match(t)) for a, t in zip(together, texts, strict=True))


def test_the_cache_encodes_each_example_once_across_restarts(
    intents: IntentSet, tmp_path: Path
) -> None:
    encoder = FakeEncoder()
    total = sum(len(i.examples) for i in intents.intents)
    first = Matcher(encoder=encoder, intents=intents, cache=EmbeddingCache(tmp_path, "m"))
    assert encoder.calls == [total]
    restarted = FakeEncoder()
    second = Matcher(encoder=restarted, intents=intents, cache=EmbeddingCache(tmp_path, "m"))
    assert restarted.calls == []
    assert second.match("refund money") == first.match("refund money")


def test_the_cache_is_keyed_by_model(tmp_path: Path) -> None:
    encoder = FakeEncoder()
    EmbeddingCache(tmp_path, "model-a").encode(["hello"], encoder)
    other = EmbeddingCache(tmp_path, "model-b")
    assert len(other) == 0
    other.encode(["hello", "bye"], encoder)
    assert encoder.calls == [1, 2]


def test_a_corrupt_cache_is_ignored_and_rebuilt(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path, "m")
    cache.encode(["hello"], FakeEncoder())
    for file in tmp_path.glob("*.npz"):
        file.write_bytes(b"not a numpy file")
    encoder = FakeEncoder()
    vectors = EmbeddingCache(tmp_path, "m").encode(["hello"], encoder)
    assert encoder.calls == [1] and vectors.shape == (1, FakeEncoder.dims)


async def test_messages_arriving_together_share_one_encoder_call(intents: IntentSet) -> None:
    encoder = FakeEncoder()
    matcher = Matcher(encoder=encoder, intents=intents)
    queue = MatchQueue(lambda: matcher)
    texts = ["where is my order", "refund money", "hello", "delete account"]
    encoder.calls.clear()
    results = await asyncio.gather(*(queue.match(t) for t in texts))
    assert encoder.calls == [4]
    assert [r.batch for r in results] == [4, 4, 4, 4]
    assert all(same(r.match, matcher.match(t)) for r, t in zip(results, texts, strict=True))
    lone = await queue.match("hello")
    assert lone.batch == 1 and same(lone.match, results[2].match)
    queue.close()


def test_the_classifier_picks_the_intent_and_scores_within_zero_and_one(
    intents: IntentSet,
) -> None:
    matcher = Matcher(encoder=FakeEncoder(), intents=intents, top_k=len(intents))
    match = matcher.match("where is my order please")
    assert match.best is not None and match.best.intent == "order_status"
    assert all(0.0 <= s.score <= 1.0 for s in match.top)
    assert [s.score for s in match.top] == sorted((s.score for s in match.top), reverse=True)
    assert match.intents is intents and match.vector is not None


def test_a_message_unlike_every_example_scores_low_though_the_classifier_must_pick(
    intents: IntentSet,
) -> None:
    matcher = Matcher(encoder=FakeEncoder(), intents=intents)
    assert matcher.head is not None
    unlike = "zebra quantum xylophone"  # no word in common with any example
    probabilities = matcher.head.probabilities(FakeEncoder().encode([unlike]))[0]
    assert probabilities.max() > 1 / len(intents)  # the classifier alone would name one
    assert matcher.match(unlike).score < 0.01  # the similarity evidence says: none of these


def test_training_is_deterministic_and_a_reload_starts_from_the_previous_head(
    intents: IntentSet,
) -> None:
    encoder = FakeEncoder()
    first = Matcher(encoder=encoder, intents=intents)
    again = Matcher(encoder=encoder, intents=intents)
    assert first.head is not None and again.head is not None
    np.testing.assert_array_equal(first.head.weights, again.head.weights)
    fewer = IntentSet(intents.intents[1:])
    reloaded = Matcher(encoder=encoder, intents=fewer, previous=first)
    assert reloaded.head is not None and reloaded.head.ids == first.head.ids[1:]
    for text in ("refund money", "delete account"):
        best, before = reloaded.match(text).best, first.match(text).best
        assert best is not None and before is not None and best.intent == before.intent


def test_one_intent_is_scored_by_similarity_evidence_alone(intents: IntentSet) -> None:
    one = IntentSet(intents.intents[:1])
    matcher = Matcher(encoder=FakeEncoder(), intents=one)
    assert matcher.head is None
    assert matcher.match(one.intents[0].examples[0]).score > 0.99
    assert matcher.match("zebra quantum xylophone").score < 0.01


def test_an_unknown_method_is_refused(intents: IntentSet) -> None:
    with pytest.raises(ValueError, match="unknown matcher method 'magic'"):
        Matcher(encoder=FakeEncoder(), intents=intents, method="magic")
