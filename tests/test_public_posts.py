"""The public-message classifier (carebot.nlu.public_posts): trained with the fake encoder it
answers a PublicCategory for any text, reuses a given vector and is deterministic; with the real
model (marked ``model``) it gets the obvious cases right."""

from __future__ import annotations

from pathlib import Path

import pytest

from carebot.exceptions import ModelError
from carebot.models import PublicCategory
from carebot.nlu.public_posts import (
    PACKAGED_TRAIN,
    PostRow,
    PublicPostClassifier,
    load_rows,
    post_classifier,
)
from tests.fakes import FakeEncoder

TEXTS = [
    "where is my order??",
    "worst service ever, never again",
    "love it!! 😍",
    "Earn $500 a day, DM me",
    "@lena look at this",
    "",
    "🙈",
    "https://example.invalid/x?y=1",
    "Bonjour, livrez-vous en Belgique ?",
    "a" * 2000,
]


@pytest.fixture(scope="module")
def trained() -> tuple[PublicPostClassifier, FakeEncoder]:
    encoder = FakeEncoder()
    return PublicPostClassifier.trained(encoder), encoder


def test_the_packaged_train_split_has_every_class() -> None:
    rows = load_rows()
    assert PACKAGED_TRAIN.is_file() and len(rows) == 480
    assert {row.label for row in rows} == set(PublicCategory)


@pytest.mark.parametrize("text", TEXTS)
def test_any_text_gets_a_category(
    trained: tuple[PublicPostClassifier, FakeEncoder], text: str
) -> None:
    classifier, _ = trained
    assert isinstance(classifier.classify(text, None), PublicCategory)
    assert sum(classifier.probabilities(text).values()) == pytest.approx(1.0)


def test_a_given_vector_is_used_and_nothing_is_encoded(
    trained: tuple[PublicPostClassifier, FakeEncoder],
) -> None:
    classifier, encoder = trained
    text = "does this come in XL?"
    vector = FakeEncoder().encode([text])[0]
    calls = len(encoder.calls)
    assert classifier.classify(text, vector) == classifier.classify(text, None)
    assert len(encoder.calls) == calls + 1  # only the call without a vector encoded


def test_the_classifier_is_deterministic() -> None:
    first, second = PublicPostClassifier.trained(FakeEncoder()), post_classifier(FakeEncoder())
    for text in TEXTS:
        assert first.probabilities(text) == second.probabilities(text)


def test_the_training_embeddings_come_from_the_cache(tmp_path: Path) -> None:
    from carebot.nlu.embedding_cache import EmbeddingCache

    cache = EmbeddingCache(tmp_path, FakeEncoder.model_id)
    post_classifier(FakeEncoder(), cache)
    encoder = FakeEncoder()
    post_classifier(encoder, EmbeddingCache(tmp_path, FakeEncoder.model_id))
    assert encoder.calls == []


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ('{"text": "hi"}\n', "needs 'text' and a 'label'"),
        ('{"text": "hi", "label": "question"}\n', "needs 'text' and a 'label'"),
        ("not json\n", "line 1"),
        ("\n", "has no rows"),
    ],
)
def test_a_bad_set_file_is_a_clear_error(tmp_path: Path, content: str, problem: str) -> None:
    path = tmp_path / "set.jsonl"
    path.write_text(content)
    with pytest.raises(ModelError, match=problem):
        load_rows(path)


def test_one_label_cannot_be_trained() -> None:
    rows = [PostRow("hi", PublicCategory.CHATTER), PostRow("yo", PublicCategory.CHATTER)]
    with pytest.raises(ModelError, match="two labels"):
        PublicPostClassifier.trained(FakeEncoder(), rows)


@pytest.mark.model
def test_the_shipped_classifier_gets_the_obvious_cases_right() -> None:
    from carebot.nlu.encoder import SentenceTransformerEncoder

    classifier = post_classifier(SentenceTransformerEncoder("all-MiniLM-L6-v2"))
    expected = {
        "where is my order??": PublicCategory.CARE_REQUEST,
        "worst service ever, never again": PublicCategory.COMPLAINT,
        "love it!! 😍": PublicCategory.PRAISE,
        "Earn $500 a day, DM me": PublicCategory.SPAM,
        "@lena look at this": PublicCategory.CHATTER,
    }
    assert {text: classifier.classify(text, None) for text in expected} == expected
