from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from carebot.batching import MatchQueue
from carebot.embedding_cache import EmbeddingCache
from carebot.intents import IntentSet, load_intents
from carebot.matcher import Matcher
from tests.conftest import TEST_INTENTS
from tests.fakes import FakeEncoder


@pytest.fixture
def intents() -> IntentSet:
    return load_intents(TEST_INTENTS)


def test_scores_are_the_closest_example_per_intent(intents: IntentSet) -> None:
    encoder = FakeEncoder()
    matcher = Matcher(encoder=encoder, intents=intents, top_k=len(intents))
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
    assert together == [matcher.match(t) for t in texts]


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
    queue = MatchQueue(matcher)
    texts = ["where is my order", "refund money", "hello", "delete account"]
    encoder.calls.clear()
    results = await asyncio.gather(*(queue.match(t) for t in texts))
    assert encoder.calls == [4]
    assert [r.batch for r in results] == [4, 4, 4, 4]
    assert [r.match for r in results] == [matcher.match(t) for t in texts]
    lone = await queue.match("hello")
    assert lone.batch == 1 and lone.match == results[2].match
    queue.close()
