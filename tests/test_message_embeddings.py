"""Customer messages' embeddings in the store: float16 with the model's fingerprint, read back
within float16's rounding, never mixed across models. On SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sqlalchemy import select

from carebot.exceptions import StoreError
from carebot.inbox import Status
from carebot.models import InboundMessage
from carebot.runtime import Runtime
from carebot.store.conversations import ConversationStore
from carebot.store.database import Database
from carebot.store.embeddings import (
    RELATIVE_ERROR,
    MessageEmbeddingStore,
    embedding_row,
    pack,
    unpack,
)
from carebot.store.tables import MessageEmbedding
from tests.conftest import Clock
from tests.fakes import FakeEncoder

_ids = itertools.count(1)
SMALLEST_NORMAL = 2.0**-14  # float16's; below it the error is absolute, at most 2**-25


def within_rounding(back: np.ndarray, vector: np.ndarray) -> bool:
    """Every component within float16's rounding of the original (the module's promise)."""
    allowed = np.maximum(np.abs(vector) * RELATIVE_ERROR, 2.0**-25)
    return bool(np.all(np.abs(back - vector) <= allowed))


def unit_vectors(count: int, dims: int = 384, seed: int = 7) -> np.ndarray:
    vectors = np.random.default_rng(seed).normal(size=(count, dims)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


async def messages(db: Database, clock: Clock, count: int) -> list[int]:
    """``count`` customer messages, each in a conversation of its own."""
    store = ConversationStore(db, clock=clock)
    ids = []
    for _ in range(count):
        n = next(_ids)
        received = await store.receive(
            InboundMessage("test", f"u{n}", f"m{n}", f"message {n}", clock.now)
        )
        ids.append(received.message_id)
    return ids


def test_a_vector_comes_back_within_float16_rounding() -> None:
    vectors = unit_vectors(50)
    vectors[0, :5] = [1e-6, -3e-5, SMALLEST_NORMAL, 0.0, 1.0]  # subnormal, normal edge, zero
    for vector in vectors:
        data = pack(vector)
        assert len(data) == 2 * 384
        back = unpack(data, 384)
        assert back.dtype == np.float32
        assert within_rounding(back, vector)
    # What insight computes from them: cosine similarities move by less than 1e-3.
    back = np.stack([unpack(pack(v), 384) for v in vectors[1:]])
    assert np.abs(back @ back.T - vectors[1:] @ vectors[1:].T).max() < 1e-3


@pytest.mark.parametrize(
    ("vector", "problem"),
    [
        (np.zeros((2, 3)), "one row of numbers"),
        (np.zeros(0), "one row of numbers"),
        (np.array([0.1, np.nan]), "finite"),
        (np.array([1e6, 0.0]), "float16's range"),
    ],
)
def test_what_cannot_be_stored_is_refused_with_the_reason(vector: np.ndarray, problem: str) -> None:
    with pytest.raises(StoreError, match=problem):
        pack(vector)


def test_a_stored_vector_of_the_wrong_length_is_an_error() -> None:
    with pytest.raises(StoreError, match="has 3 numbers, its row says 4"):
        unpack(pack(np.ones(3)), 4)


async def test_vectors_saved_come_back_for_their_model(database: Database, clock: Clock) -> None:
    ids = await messages(database, clock, 4)
    vectors = unit_vectors(4)
    store = MessageEmbeddingStore(database)
    assert await store.save(zip(ids[:3], vectors[:3], strict=True), "model-a@1") == 3
    loaded = await store.load([ids[2], ids[0], ids[3], ids[0]], "model-a@1")
    assert loaded.ids == (ids[2], ids[0])  # in the order asked, each once
    for row, i in zip(loaded.vectors, (2, 0), strict=True):
        assert within_rounding(row, vectors[i])
    assert loaded.missing == (ids[3],)
    assert loaded.other_model == {}
    assert loaded.stale == (ids[3],)


async def test_another_models_vectors_are_noticed_not_mixed(
    database: Database, clock: Clock
) -> None:
    ids = await messages(database, clock, 3)
    store = MessageEmbeddingStore(database)
    await store.save([(ids[0], unit_vectors(1)[0])], "model-a@1")
    await store.save([(ids[1], unit_vectors(1, dims=512)[0])], "model-b@2")
    loaded = await store.load(ids, "model-a@2")  # the same model retuned: another fingerprint
    assert loaded.ids == ()
    assert loaded.vectors.shape == (0, 0)
    assert loaded.other_model == {"model-a@1": (ids[0],), "model-b@2": (ids[1],)}
    assert loaded.stale == tuple(ids)
    # Encoded again by the live model, the message's vector is replaced.
    fresh = unit_vectors(1, seed=3)[0]
    await store.save([(ids[0], fresh)], "model-a@2")
    again = await store.load(ids, "model-a@2")
    assert again.ids == (ids[0],) and within_rounding(again.vectors[0], fresh)
    assert again.other_model == {"model-b@2": (ids[1],)}


async def test_the_pipeline_keeps_a_vector_in_its_own_transaction(
    database: Database, clock: Clock
) -> None:
    """The row the pipeline adds beside the decision (embedding_row), with the encoder's id."""
    (message_id,) = await messages(database, clock, 1)
    encoder = FakeEncoder()
    vector = encoder.encode(["where is my parcel"])[0]
    async with database.transaction() as session:
        session.add(embedding_row(message_id, vector, encoder.model_id))
    async with database.session() as session:
        row = await session.scalar(select(MessageEmbedding))
    assert row is not None
    assert (row.message_id, row.model, row.dims, len(row.vector)) == (
        message_id,
        "fake-bag-of-words",
        512,
        1024,
    )
    loaded = await MessageEmbeddingStore(database).load([message_id], encoder.model_id)
    assert within_rounding(loaded.vectors[0], vector)


async def test_many_messages_load_across_query_chunks(database: Database, clock: Clock) -> None:
    ids = await messages(database, clock, 3)
    vectors = unit_vectors(3, dims=8)
    store = MessageEmbeddingStore(database)
    await store.save(zip(ids, vectors, strict=True), "m")
    asked = [*ids, *range(10_000, 12_500)]  # more ids than one query takes
    loaded = await store.load(asked, "m")
    assert loaded.ids == tuple(ids)
    assert len(loaded.missing) == 2500


async def test_the_pipeline_keeps_each_decided_message_embedding_with_its_decision(
    runtime: Runtime, encoder: FakeEncoder
) -> None:
    when = datetime(2026, 12, 1, 10, tzinfo=UTC)
    outcome = await runtime.inbox.receive(
        InboundMessage("test", "u9", "e1", "where is my order", when)
    )
    async with runtime.db.session() as session:
        [row] = (await session.scalars(select(MessageEmbedding))).all()
    assert (row.message_id, row.model) == (outcome.received.message_id, encoder.model_id)
    expected = encoder.encode(["where is my order"])[0]
    assert within_rounding(unpack(row.vector, row.dims), expected)


async def test_a_message_decided_while_the_customer_waits_keeps_its_embedding(
    runtime: Runtime, encoder: FakeEncoder
) -> None:
    """Messages triaged while the customer waits for a person are decided too: their vectors
    are kept with their decisions (the change preview and the topics read them)."""
    when = datetime(2026, 12, 1, 10, tzinfo=UTC)
    first = await runtime.inbox.receive(
        InboundMessage("test", "u9", "e1", "I want to talk to a human", when)
    )
    assert first.decision is not None and first.decision.hands_off
    later = await runtime.inbox.receive(
        InboundMessage("test", "u9", "e2", "where is my order", when + timedelta(minutes=1))
    )
    assert later.status is Status.WAITING and later.decision is not None
    async with runtime.db.session() as session:
        kept = set((await session.scalars(select(MessageEmbedding.message_id))).all())
    assert kept == {first.received.message_id, later.received.message_id}
