from __future__ import annotations

from pathlib import Path

import pytest

from carebot.exceptions import IntentError
from carebot.nlu.intent_check import check_intents
from carebot.nlu.intents import Intent, IntentSet, Severity, load_intents, read_intents
from tests.conftest import TEST_INTENTS
from tests.fakes import FakeEncoder

GOOD = """\
intents:
  - id: opening_hours
    examples:
      - when are you open
      - opening hours please
      - what time do you close
    answer: We are open {hours}.
"""


def folder(tmp_path: Path, **files: str) -> Path:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    return tmp_path


def messages(directory: Path, **kwargs: object) -> list[str]:
    return [str(p) for p in check_intents(directory, placeholders={"hours": "9-5"}, **kwargs)]  # type: ignore[arg-type]


def test_test_intents_load() -> None:
    intents = load_intents(TEST_INTENTS, {"tracking_url": "x"})
    assert "order_status" in intents
    assert intents["account_deletion"].handoff is True
    assert intents["greeting"].answer_threshold == 0.9
    assert intents["order_status"].render_answer({"tracking_url": "T"}) == "Track it at T."


def test_a_good_file_has_no_problems(tmp_path: Path) -> None:
    assert messages(folder(tmp_path, **{"hours.yaml": GOOD})) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "intents:\n  - id: a\n    examples: [x, y\n",
            "a.yaml:4: error: YAML syntax: expected ',' or ']', but got '<stream end>' (while "
            "parsing a flow sequence started on line 3)",
        ),
        (
            "intents:\n  - id: a\n    answer: hi\n",
            "a.yaml:2: error: a: missing required field 'examples'",
        ),
        (
            "intents:\n  - id: a\n    examples: [x, y, z]\n    answer: [no]\n",
            "a.yaml:4: error: answer must be text",
        ),
        (
            "intents: []\nout_of_scope:\n  - fine\n  - [not, text]\n",
            "a.yaml:4: error: out_of_scope entries must be non-empty texts",
        ),
        ("out_of_scope: nope\n", "a.yaml:1: error: expected a 'out_of_scope:' list"),
        (
            "intents:\n  - id: a\n    exmaples: [x]\n    examples: [x, y, z]\n    answer: hi\n",
            "a.yaml:3: error: unknown field 'exmaples'",
        ),
        ("intents:\n  - id: a b\n    examples: [x, y, z]\n    answer: hi\n", "must be a word"),
        (
            "intents:\n  - id: a\n    examples: [x, y, z]\n    answer: hi\n"
            "    answer_threshold: 2\n",
            "a.yaml:5: error: answer_threshold must be a number from 0 to 1",
        ),
        (
            "intents:\n  - id: a\n    examples: [x, y, z]\n    answer: hi {nope}\n",
            "answer uses {nope}, which is not defined under [placeholders]",
        ),
        ("- id: a\n", "expected a top-level 'intents:' list"),
    ],
)
def test_errors_name_the_file_and_line(tmp_path: Path, text: str, expected: str) -> None:
    found = messages(folder(tmp_path, **{"a.yaml": text}))
    assert any(expected in line for line in found), found


def test_duplicate_ids_and_shared_examples_across_files(tmp_path: Path) -> None:
    same_id = GOOD.replace("when are you open", "opening times")
    other = GOOD.replace("opening_hours", "shop_hours").replace("when are", "When  are")
    found = messages(folder(tmp_path, **{"a.yaml": GOOD, "b.yaml": same_id, "c.yaml": other}))
    assert any("b.yaml:2: error: duplicate id 'opening_hours'" in f for f in found), found
    shared = "c.yaml:4: error: example 'When  are you open' of 'shop_hours' is also an example of "
    assert any(shared + "'opening_hours' (" in f and "a.yaml:4)" in f for f in found), found


def test_few_examples_is_a_warning_not_an_error(tmp_path: Path) -> None:
    text = "intents:\n  - id: a\n    examples: [x, y]\n    answer: hi\n"
    problems = check_intents(folder(tmp_path, **{"a.yaml": text}), placeholders={})
    assert [p.severity for p in problems] == [Severity.WARNING]
    assert "only 2 example(s)" in problems[0].message


def test_conflicting_examples_are_listed_with_both_scores(tmp_path: Path) -> None:
    text = (
        GOOD
        + """\
  - id: delivery
    examples:
      - delivery time please
      - how long is delivery
      - what time do you close on delivery
    answer: Two days.
"""
    )
    found = messages(folder(tmp_path, **{"a.yaml": text}), encoder=FakeEncoder)
    conflict = [f for f in found if "is closer to" in f]
    expected = (
        "a.yaml:12: warning: example 'what time do you close on delivery' of 'delivery' is "
        "closer to 'opening_hours' ('what time do you close': 0."
    )
    assert any(expected in line for line in conflict), conflict


def test_load_intents_raises_with_every_error(tmp_path: Path) -> None:
    directory = folder(tmp_path, **{"a.yaml": "intents:\n  - id: a\n", "b.yaml": "intents: [1"})
    with pytest.raises(IntentError) as error:
        load_intents(directory)
    assert "a.yaml:2" in str(error.value) and "b.yaml" in str(error.value)


def test_missing_folder(tmp_path: Path) -> None:
    _, problems = read_intents(tmp_path / "none")
    assert "intents folder not found" in str(problems[0])


def test_an_intent_without_an_answer_loads_and_the_check_warns(tmp_path: Path) -> None:
    text = "intents:\n  - id: a\n    examples: [x, y, z]\n"
    directory = folder(tmp_path, **{"a.yaml": text})
    assert load_intents(directory)["a"].answer == ""
    assert messages(directory) == [
        f"{directory / 'a.yaml'}:2: warning: a: no answer yet: it can be evaluated but will be "
        "handed to a person instead of answered"
    ]


def test_out_of_scope_texts_are_kept_apart_from_the_intents(tmp_path: Path) -> None:
    directory = folder(
        tmp_path,
        **{
            "hours.yaml": GOOD + "out_of_scope:\n  - what is the weather\n",
            "oos.yaml": "out_of_scope:\n  - tell me a joke\n  - when are you open\n",
        },
    )
    intents = load_intents(directory, {"hours": "9-5"})
    assert intents.out_of_scope == ("what is the weather", "tell me a joke", "when are you open")
    assert "what is the weather" not in intents.examples()[0]
    assert len(intents) == 1
    assert messages(directory) == [
        f"{directory / 'oos.yaml'}:3: warning: out-of-scope text 'when are you open' is also an "
        f"example of 'opening_hours' ({directory / 'hours.yaml'}:2); evaluation counts it as "
        "out of scope"
    ]


def test_an_intent_set_is_still_built_from_intents_alone() -> None:
    intents = IntentSet((Intent("a", ("x",), "hi"), Intent("b", ("y",))))
    assert intents.out_of_scope == ()
    assert intents["b"].answer == ""
