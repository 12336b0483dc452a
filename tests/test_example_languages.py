"""Examples per language in the intent files (issue 20): a mapping of language to examples, the
default language's always matched, another's only when customers are told apart in it."""

from __future__ import annotations

from pathlib import Path

import pytest

from carebot.nlu.intents import load_intents, read_intents
from carebot.nlu.matcher import Matcher
from tests.console_forms import form_of, saved
from tests.fakes import FakeEncoder

INTENTS = """\
intents:
  - id: order_status
    examples:
      en:
        - where is my order
        - track my order status
      de:
        - wo ist meine bestellung   # the German customers' words
        - bestellung verfolgen status
    answer: Track it at {tracking_url}.
  - id: returns
    examples:
      - how do I return an item
      - return policy item
    answer: Returns are free within 30 days.
"""


@pytest.fixture
def intents_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "intents"
    folder.mkdir()
    (folder / "shop.yaml").write_text(INTENTS, encoding="utf-8")
    return folder


def write(folder: Path, examples: str) -> Path:
    folder.mkdir(exist_ok=True)
    text = f"intents:\n  - id: a\n    examples:{examples}\n    answer: hi\n"
    (folder / "a.yaml").write_text(text, encoding="utf-8")
    return folder


@pytest.mark.parametrize(
    ("served", "matched"),
    [
        ((), ["where is my order", "track my order status"]),
        (("en", "de"), ["where is my order", "track my order status", "wo ist meine bestellung"]),
    ],
)
def test_another_languages_examples_are_matched_only_when_it_is_served(
    intents_dir: Path, served: tuple[str, ...], matched: list[str]
) -> None:
    intents = load_intents(intents_dir, {"tracking_url": "U"}, served=served)
    order = intents["order_status"]
    assert order.examples == ("where is my order", "track my order status")
    assert order.other_examples == (
        ("de", ("wo ist meine bestellung", "bestellung verfolgen status")),
    )
    texts, labels = intents.examples()
    assert texts[: len(matched)] == matched and labels.count("order_status") == len(
        order.examples_in(served)
    )
    assert intents.example_counts() == [labels.count("order_status"), 2]
    # the matcher holds exactly those: a German question finds its intent only when served
    matcher = Matcher(encoder=FakeEncoder(), intents=intents, method="nearest")
    best = matcher.match("wo ist meine bestellung").best
    assert best is not None and (best.score > 0.99) == ("de" in served)


def test_a_german_default_reads_the_german_list_as_the_examples(intents_dir: Path) -> None:
    order = load_intents(intents_dir, {"tracking_url": "U"}, language="de")["order_status"]
    assert order.examples == ("wo ist meine bestellung", "bestellung verfolgen status")
    assert order.other_examples == (("en", ("where is my order", "track my order status")),)
    assert order.example_lines == (8, 9) and order.other_example_lines == ((5, 6),)


@pytest.mark.parametrize(
    ("examples", "expected"),
    [
        ("\n      EN: [x]", "a.yaml:4: error: a: examples: 'EN' is not a language code"),
        ("\n      en: [x]\n      de: []", "a.yaml:5: error: a: the de examples must be a list"),
        ("\n      en: [x]\n      de: hallo", "a.yaml:5: error: a: the de examples must be a list"),
        ("\n      de: [hallo]", "a.yaml:2: error: a: examples: none in en ([languages] default)"),
        (" {}", "a.yaml:2: error: a: examples: give a list, or lists per language"),
    ],
)
def test_malformed_examples_per_language_name_the_file_and_line(
    tmp_path: Path, examples: str, expected: str
) -> None:
    _, problems = read_intents(write(tmp_path / "i", examples))
    assert any(expected in str(p) for p in problems), [str(p) for p in problems]


def test_an_example_in_two_intents_is_found_in_any_language(tmp_path: Path) -> None:
    folder = tmp_path / "i"
    folder.mkdir()
    (folder / "a.yaml").write_text(
        "intents:\n"
        "  - id: a\n    examples:\n      en: [hello]\n      de: [Guten Tag]\n"
        "  - id: b\n    examples:\n      en: [bye]\n      de: [guten  tag]\n",
        encoding="utf-8",
    )
    _, problems = read_intents(folder)
    assert [str(p).split(": ", 1)[1] for p in problems] == [
        f"error: example 'guten  tag' of 'b' is also an example of 'a' ({folder / 'a.yaml'}:5)"
    ]


def test_an_edit_in_the_console_keeps_the_examples_per_language(intents_dir: Path) -> None:
    form = form_of(intents_dir, "order_status")
    assert form.languages == ("de", "fr") and form.examples == "where is my order\n" + (
        "track my order status"
    )
    assert form.other_examples == {"de": "wo ist meine bestellung\nbestellung verfolgen status"}
    # as the browser posts it back: an English example added, French ones written
    fields = {
        "examples": "where is my order\ntrack my order status\nhas my parcel shipped",
        "answer": "Track it at {tracking_url}.",
        "examples_de": "wo ist meine bestellung\nbestellung verfolgen status",
        "examples_fr": "où est ma commande\n\n",
    }
    text = saved(intents_dir, "order_status", fields)
    assert (
        "    examples:\n      en:\n        - where is my order\n        - track my order status\n"
        "        - has my parcel shipped\n      de:\n"
        "        - wo ist meine bestellung   # the German customers' words\n"
        "        - bestellung verfolgen status\n      fr:\n        - où est ma commande\n"
    ) in text, text
    read = load_intents(intents_dir, {"tracking_url": "U"})["order_status"]
    assert read.examples[-1] == "has my parcel shipped"
    assert dict(read.other_examples)["fr"] == ("où est ma commande",)
    # a plain list stays a plain list when no other language's examples are typed
    form = form_of(intents_dir, "returns")
    fields = {"examples": form.examples, "answer": form.answer, "examples_de": ""}
    assert "    examples:\n      - how do I return" in saved(intents_dir, "returns", fields)


def test_proposed_examples_go_to_their_languages_field(intents_dir: Path) -> None:
    """Examples proposed from customers' messages (unanswered ones, agents' replies) open in
    the form under the language they are written in, when the form shows it."""
    form = form_of(intents_dir, "order_status")
    placed = {
        "wo bleibt mein paket": "de",
        "WO IST MEINE BESTELLUNG": "de",
        "où est mon colis": "fr",
    }
    form.add_examples(
        ["wo bleibt mein paket", "WO IST MEINE BESTELLUNG", "où est mon colis", "ok", "ok"],
        place=placed.get,
    )
    assert form.examples.splitlines() == ["where is my order", "track my order status", "ok"]
    assert form.other_examples == {
        # a German example already there (in any case) is not added twice
        "de": "wo ist meine bestellung\nbestellung verfolgen status\nwo bleibt mein paket",
        "fr": "où est mon colis",
    }
    # without detection (one language served): every example is the default language's
    plain = form_of(intents_dir, "returns")
    plain.add_examples(["wo bleibt mein paket"])
    assert plain.examples.splitlines()[-1] == "wo bleibt mein paket"
