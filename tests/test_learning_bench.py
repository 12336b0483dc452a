"""bench/learning.py's loop on a tiny CLINC-shaped dataset with the fake encoder: the held-out
intent is learned from the unanswered traffic through the console's file editor, out-of-scope
topics are rejected, the figures are measured on the test rows, and answers the customer said
"No" to are grouped with the unanswered messages. The bench itself (the real model on CLINC150)
is run by hand."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from carebot.nlu.intents import load_intents
from tests.conftest import make_settings
from tests.fakes import FakeEncoder

ROOT = Path(__file__).resolve().parent.parent


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_learning", ROOT / "bench" / "learning.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


learning = _bench()

TEMPLATES = {
    "refund": "how do i get a refund for the {}",
    "delivery": "where is my parcel with the {}",
    "password": "please reset the account password for {}",
    "opening": "when does the shop open on {}",
}
OUT_OF_SCOPE = "what is the weather like on planet {}"
WORDS = [f"w{i}" for i in range(30)]


def _rows(template: str, label: str, start: int, count: int) -> list[list[str]]:
    return [[template.format(WORDS[i]), label] for i in range(start, start + count)]


def _data() -> dict[str, list[list[str]]]:
    split = {"train": (0, 14), "val": (14, 4), "test": (18, 6)}
    data: dict[str, list[list[str]]] = {
        name: [row for label, t in TEMPLATES.items() for row in _rows(t, label, *at)]
        for name, at in split.items()
    }
    data |= {
        "oos_train": _rows(OUT_OF_SCOPE, "oos", 0, 3),
        "oos_val": _rows(OUT_OF_SCOPE, "oos", 3, 3),
        "oos_test": _rows(OUT_OF_SCOPE, "oos", 6, 4),
    }
    return data


def test_the_loop_learns_the_held_out_intent_and_rejects_out_of_scope(tmp_path: Path) -> None:
    (tmp_path / "data" / "clinc150").mkdir(parents=True)
    (tmp_path / "data" / "clinc150" / "data_full.json").write_text(json.dumps(_data()))
    data = learning.read_clinc(tmp_path / "data")
    options = learning.Options(seed=3, known=3, rounds=2, messages=20, examples=6, top=4)
    known, held = learning.choose_known(data, options)
    assert len(known) == 3 and len(held) == 1
    said: list[str] = []

    rounds = learning.learn(
        make_settings(tmp_path), FakeEncoder(), data, options, tmp_path / "work", say=said.append
    )

    first, last = rounds[0], rounds[-1]
    assert (first.held_right, first.held_learned, first.intents) == (0.0, 0, 3)
    assert last.held_learned == 1 and last.intents == 4
    assert last.held_right >= 0.5
    assert all(r.precision == 1.0 for r in rounds)  # out of scope is never answered
    assert sum(r.rejected for r in rounds) >= 1
    assert sum(r.new_intents for r in rounds) == 1
    intents = load_intents(tmp_path / "work" / "intents")
    learned = intents[held[0]]
    assert learned.answer == learning.STAND_IN.format(label=held[0])
    sent = {text for name in ("train", "val") for text, _ in data[name]}
    assert set(learned.examples) <= sent
    assert "oos" not in intents
    assert any(line.startswith("goal: held-out coverage >= 0.5") and "met" in line for line in said)


@pytest.mark.parametrize(
    ("helpful", "wanted", "says_no_wrong", "says_no_right", "said_no", "proposed"),
    [
        ("always", "refund_status", 1.0, 0.0, 6, "new"),
        ("always", "refund_status", 0.0, 1.0, 0, None),
        ("always", "refund_status", 0.0, 0.0, 0, None),
        ("never", "refund_status", 1.0, 1.0, 0, None),  # not asked: nobody can say "No"
        ("always", "refund", 0.0, 1.0, 6, "examples"),  # right answers said "No" to
        ("always", "refund", 1.0, 0.0, 0, None),
    ],
)
def test_answers_said_no_to_are_grouped(
    tmp_path: Path,
    helpful: str,
    wanted: str,
    says_no_wrong: float,
    says_no_right: float,
    said_no: int,
    proposed: str | None,
) -> None:
    # the refund texts of the test rows, asked by customers who wanted ``wanted``: all answered
    # as refund, which is wrong for a "refund_status" the bot has no intent for
    data = {name: [(text, label) for text, label in rows] for name, rows in _data().items()}
    options = learning.Options(
        known=4, examples=14, says_no_wrong=says_no_wrong, says_no_right=says_no_right
    )
    folder = learning.write_start(data, list(TEMPLATES), options, tmp_path / "work")
    settings = learning.with_intents(make_settings(tmp_path, survey={"helpful": helpful}), folder)
    bot = learning.Bot(settings, FakeEncoder(), folder)
    files = learning.IntentFiles(directory=folder, placeholders=settings.placeholders)
    batch = [(text, wanted) for text, label in data["test"] if label == "refund"]
    right = wanted == "refund"

    figures = learning.one_round(
        bot, files, batch, options, learning.Round(1), np.random.default_rng(0)
    )

    assert (figures.sent, figures.unanswered) == (6, 0)
    assert figures.traffic == ((6, 0) if right else (0, 6))
    assert (figures.said_no, figures.said_no_wrong) == (said_no, 0 if right else said_no)
    assert [action for _, action in figures.proposals] == ([proposed] if proposed else [])
    texts = {text for text, _ in batch}
    examples = set(bot.intents[wanted].examples) if wanted in bot.intents else set()
    assert (texts <= examples) is (proposed is not None)
