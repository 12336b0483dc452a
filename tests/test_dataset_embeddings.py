"""The cached embeddings of dataset splits (training the emotion head, the benchmarks)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from carebot.exceptions import ModelError
from carebot.nlu.dataset_embeddings import DatasetEmbeddings, Progress
from carebot.nlu.encoder import Encoder
from tests.fakes import FakeEncoder

TEXTS = ["where is my order", "thanks a lot", "I am furious"]


class Refusing:
    """An encoder that must not be used: everything has to come from the cache."""

    model_id = FakeEncoder.model_id

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        raise AssertionError("encoded instead of reading the cache")


def embeddings(
    folder: Path, encoder: Encoder, progress: Progress | None = None
) -> DatasetEmbeddings:
    return DatasetEmbeddings(
        folder=folder,
        model="fake/model",
        model_id=FakeEncoder.model_id,
        load=lambda: encoder,
        progress=progress,
    )


def test_a_split_is_encoded_once_then_read_from_the_cache(tmp_path: Path) -> None:
    encoder = FakeEncoder()
    seen: list[tuple[str, int, int]] = []
    cache = embeddings(tmp_path, encoder, lambda *report: seen.append(report))
    vectors, seconds = cache.of("set/train", TEXTS)
    assert np.array_equal(vectors, FakeEncoder().encode(TEXTS)) and seconds >= 0
    assert encoder.calls == [3] and seen == [("set/train", 0, 3), ("set/train", 3, 3)]
    again, recorded = embeddings(tmp_path, Refusing()).of("set/train", TEXTS)
    assert np.array_equal(again, vectors) and recorded == seconds
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".json", ".npy"]
    assert all(p.name.startswith("set-train.fake-model.") for p in tmp_path.iterdir())


@pytest.mark.parametrize("changed", ["texts", "model_id"])
def test_other_texts_or_another_model_are_encoded_again(tmp_path: Path, changed: str) -> None:
    embeddings(tmp_path, FakeEncoder()).of("set/train", TEXTS)
    encoder = FakeEncoder()
    texts = [*TEXTS, "one more"] if changed == "texts" else TEXTS
    if changed == "model_id":
        encoder.model_id = "another-model"
    cache = DatasetEmbeddings.of_encoder(tmp_path, "fake/model", encoder)
    cache.of("set/train", texts)
    assert encoder.calls == [len(texts)]
    assert len(list(tmp_path.glob("*.npy"))) == 2


def test_an_encoder_that_is_not_the_one_named_is_refused(tmp_path: Path) -> None:
    other = FakeEncoder()
    other.model_id = "another-model"
    with pytest.raises(ModelError, match="another-model"):
        embeddings(tmp_path, other).of("set/train", TEXTS)
    assert not list(tmp_path.iterdir())


def test_an_empty_split_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="set/empty has no texts"):
        embeddings(tmp_path, FakeEncoder()).of("set/empty", [])
