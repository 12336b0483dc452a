"""``carebot intents tune``: the real model, fine-tuned for one step on a tiny intent set."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from carebot.cli import main
from carebot.exceptions import ModelError
from carebot.nlu.encoder import SentenceTransformerEncoder
from carebot.nlu.intents import Intent, IntentSet
from carebot.nlu.tuning import TuneSettings, tune

TINY = IntentSet(
    (
        Intent("order_status", ("where is my order", "track my parcel"), "Track it."),
        Intent("refunds", ("where is my refund", "money back please"), "5 days."),
    )
)


@pytest.mark.model
def test_a_tuned_model_is_a_sentence_model_folder_that_moved(tmp_path: Path) -> None:
    steps: list[tuple[int, int]] = []
    tuned = tune(
        TINY,
        "all-MiniLM-L6-v2",
        tmp_path / "tuned",
        settings=TuneSettings(epochs=1, batch=4, learning_rate=1e-4),
        progress=lambda step, total, _loss: steps.append((step, total)),
    )
    assert (tuned.examples, tuned.intents, tuned.steps) == (4, 2, 1)
    assert steps == [(1, 1)] and np.isfinite(tuned.final_loss)
    base = SentenceTransformerEncoder("all-MiniLM-L6-v2").encode(["where is my order"])
    after = SentenceTransformerEncoder(str(tuned.folder)).encode(["where is my order"])
    assert after.shape == base.shape
    assert np.linalg.norm(after - base) > 1e-4  # the weights changed
    assert np.linalg.norm(after) == pytest.approx(1.0, abs=1e-5)


def test_one_intent_cannot_be_tuned(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="at least two intents"):
        tune(IntentSet(TINY.intents[:1]), "all-MiniLM-L6-v2", tmp_path / "tuned")


def test_the_command_refuses_zero_epochs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["intents", "tune", "--out", "x", "--epochs", "0"]) == 2
    assert "--epochs must be at least 1 (got 0)" in capsys.readouterr().err
